"""Type stub of the netmap module (unetmap's Python bindings, python/netmap_module.cc)."""

import sys
from types import TracebackType
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Type, TypedDict, Union

if sys.version_info >= (3, 12):
    from collections.abc import Buffer as _Buffer
else:
    from typing_extensions import Buffer as _Buffer  # PEP 688

# A bytes-like object: bytes, bytearray, memoryview, array.array, a numpy array...
BytesLike = _Buffer
_FileLike = Union[int, Any]  # an fd, or an object with fileno()

class NetmapError(OSError):
    """A netmap or unetmap call failed: .errno and the library's message."""

error = NetmapError

interposed: bool
"""True when libnetmap's poll/select are the process's (libnetmap preloaded)."""
select_installed: bool
"""True when import netmap installed netmap.poll/netmap.select as select.poll/select.select."""

class NetmapInterface:
    """A port's netmap_if (read-only)."""
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def flags(self) -> int: ...
    @property
    def tx_rings(self) -> int: ...
    @property
    def rx_rings(self) -> int: ...
    @property
    def host_tx_rings(self) -> int: ...
    @property
    def host_rx_rings(self) -> int: ...
    @property
    def bufs_head(self) -> int: ...

class NetmapSlot:
    """A slot of a ring, read and written in place."""
    buf_idx: int
    len: int
    flags: int
    """NS_* flags: NsMorefrag, NsBufChanged, ..."""
    ptr: int
    @property
    def buf(self) -> memoryview:
        """The buffer buf_idx names: a writable memoryview of nr_buf_size bytes; the frame is buf[:len]."""

class NetmapRing:
    """A netmap ring in the shared memory."""
    @property
    def num_slots(self) -> int: ...
    @property
    def nr_buf_size(self) -> int: ...
    @property
    def ringid(self) -> int: ...
    @property
    def dir(self) -> int:
        """0: tx, 1: rx."""
    @property
    def buf_ofs(self) -> int: ...
    head: int
    cur: int
    @property
    def tail(self) -> int: ...
    flags: int
    @property
    def tv_sec(self) -> int: ...
    @property
    def tv_usec(self) -> int: ...
    @property
    def slots(self) -> List[NetmapSlot]: ...
    def space(self) -> int:
        """Slots from cur to tail: free (tx) or filled (rx)."""
    def empty(self) -> bool: ...

class _Counters(TypedDict):
    packets: int
    bytes: int
    drops: int

class _DescCounters(TypedDict):
    tx: _Counters
    rx: _Counters

class NetmapDesc:
    """An open netmap port (nmport_open). A context manager; one thread at a time."""

    def __init__(self, ifname: str, flags: int = 0) -> None:
        """Open ifname ('netmap:pipe{1', 'vale0:a', 'null:x', ...). flags must be 0. Raises NetmapError."""
    @property
    def interface(self) -> NetmapInterface: ...
    @property
    def transmit_rings(self) -> List[Optional[NetmapRing]]: ...
    @property
    def receive_rings(self) -> List[Optional[NetmapRing]]: ...
    @property
    def first_tx_ring(self) -> int: ...
    @property
    def last_tx_ring(self) -> int: ...
    @property
    def first_rx_ring(self) -> int: ...
    @property
    def last_rx_ring(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def mem_id(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def txsync(self) -> None: ...
    def rxsync(self) -> None: ...
    def getfd(self) -> int: ...
    def fileno(self) -> int: ...
    def getringid(self) -> int: ...
    def getflags(self) -> int: ...
    def close(self) -> None: ...
    def __enter__(self) -> "NetmapDesc": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
    def poll(self, events: int = ..., timeout: int = -1) -> int:
        """Wait up to timeout ms (negative: forever) for events; revents, 0 on timeout."""
    def send(
        self,
        frames: Union[Sequence[BytesLike], BytesLike],
        lengths: Optional[Iterable[int]] = None,
        *,
        timeout: int = 0,
    ) -> int:
        """Send a list of bytes-like frames, the rows of a 2-D uint8 array, or a 1-D
        buffer cut by lengths; returns how many were sent. timeout (ms): 0 no wait,
        negative no limit."""
    def recv_into(
        self,
        buffer: BytesLike,
        lengths: BytesLike,
        stride: Optional[int] = None,
        *,
        timeout: int = 0,
    ) -> int:
        """Receive frames into buffer (frame i at i*stride; a 2-D array: its rows) and
        their lengths into lengths (a 1-D integer buffer); returns how many."""
    def recv(self, max: int = 1024, *, timeout: int = 0) -> List[bytes]: ...
    def counters(self) -> _DescCounters: ...

class Poll:
    """select.poll's interface over libnetmap's poll."""
    def __init__(self) -> None: ...
    def register(self, fd: _FileLike, eventmask: int = ...) -> None: ...
    def modify(self, fd: _FileLike, eventmask: int) -> None: ...
    def unregister(self, fd: _FileLike) -> None: ...
    def poll(self, timeout: Optional[float] = None) -> List[Tuple[int, int]]: ...

def poll() -> Poll: ...
def select(
    rlist: Iterable[_FileLike],
    wlist: Iterable[_FileLike],
    xlist: Iterable[_FileLike],
    timeout: Optional[float] = None,
) -> Tuple[List[Any], List[Any], List[Any]]: ...

# ---- control and statistics (unetmap/unetmap.h)

class PortInfo(TypedDict):
    name: str
    type: str
    mem_id: int
    tx_rings: int
    rx_rings: int
    persistent: bool
    users: int

class RingInfo(TypedDict):
    ring: int
    tx: bool
    host: bool
    slots: int
    users: int
    monitors: int
    hwcur: int
    hwtail: int
    packets: int
    bytes: int
    drops: int
    fwd_drops: int

class PortStats(TypedDict):
    tx_packets: int
    tx_bytes: int
    tx_drops: int
    rx_packets: int
    rx_bytes: int
    rx_drops: int

class SwitchInfo(TypedDict):
    name: str
    lookup: str
    ports: int

class SwitchPort(TypedDict):
    name: str
    index: int
    mem_id: int
    hdr_len: int
    tx_rings: int
    rx_rings: int
    tx_slots: int
    rx_slots: int
    persistent: bool
    tx_packets: int
    tx_bytes: int
    rx_packets: int
    drops: int
    tx_drops: int

class RegionSizes(TypedDict):
    if_num: int
    if_size: int
    ring_num: int
    ring_size: int
    buf_num: int
    buf_size: int

class RegionInfo(TypedDict):
    mem_id: int
    persistent: bool
    ports: int
    sizes: RegionSizes
    memsize: int
    bufs_in_use: int
    uid: int
    gid: int
    mode: int
    error: int  # 0, or the errno value of a region file that cannot be read

class WorkerInfo(TypedDict):
    name: str
    kind: str
    state: str
    supervised: bool
    pid: int
    restarts: int
    exit_status: int
    exit_signal: int
    since: int
    reason: str
    log: str
    supervisor: int
    status: str
    args: List[str]

def last_error() -> str: ...
def ports() -> List[PortInfo]: ...
def port_rings(port: str) -> List[RingInfo]: ...
def port_stats(port: str) -> PortStats: ...
def nic_backend(port: str) -> str: ...
def switches() -> List[SwitchInfo]: ...
def switch_ports(switch: str) -> List[SwitchPort]: ...
def switch_set_lookup(switch: str, lookup: str) -> None: ...
def regions() -> List[RegionInfo]: ...
def region_create(
    mem_id: int,
    *,
    if_num: int = 0,
    if_size: int = 0,
    ring_num: int = 0,
    ring_size: int = 0,
    buf_num: int = 0,
    buf_size: int = 0,
) -> None: ...
def region_delete(mem_id: int) -> None: ...
def workers() -> List[WorkerInfo]: ...

# ---- constants (netmap's module names)
RegDefault: int
RegAllNic: int
RegSw: int
RegNicSw: int
RegOneNic: int
RegPipeMaster: int
RegPipeSlave: int
RegNull: int
RegOneSw: int
RegMonitorTx: int
RegMonitorRx: int
RegZcopyMon: int
RegExclusive: int
RegRxRingsOnly: int
RegTxRingsOnly: int
NrTimestamp: int
NrForward: int
NsBufChanged: int
NsReport: int
NsForward: int
NsNoLearn: int
NsIndirect: int
NsMorefrag: int
