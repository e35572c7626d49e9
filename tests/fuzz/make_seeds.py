#!/usr/bin/env python3
"""Writes the binary seed corpora of the fuzzers (tests/fuzz/corpus/nmreq,
corpus/ring, corpus/vhost): valid requests of every type, ring operations,
and vhost-user sessions that set up a device and run its queues, in the
input formats that nmreq_fuzz.cc, ring_fuzz.cc and vhost_fuzz.cc describe. The name
corpus (corpus/name) is plain text, written by hand. Inputs of findings
are kept beside the seeds as regress_<what>.

    python3 tests/fuzz/make_seeds.py    # rewrites the seeds
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------- nmreq
API = 14
REQ = dict(REGISTER=1, PORT_INFO_GET=2, VALE_ATTACH=3, VALE_DETACH=4, VALE_LIST=5,
           PORT_HDR_SET=6, PORT_HDR_GET=7, VALE_NEWIF=8, VALE_DELIF=9,
           VALE_POLLING_ENABLE=10, VALE_POLLING_DISABLE=11, POOLS_INFO_GET=12,
           SYNC_KLOOP_START=13, SYNC_KLOOP_STOP=14, CSB_ENABLE=15)
OPT_EXTMEM, OPT_CSB = 1, 3
NR_REG_ALL_NIC, NR_REG_SW, NR_REG_NIC_SW, NR_REG_ONE_NIC, NR_REG_NULL = 1, 2, 3, 4, 7
NR_MONITOR_TX, NR_MONITOR_RX, NR_ZCOPY_MON, NR_EXCLUSIVE = 0x100, 0x200, 0x400, 0x800
CTRL, REGIF, GINFO = 0, 1, 2
MMAP, SYNC, POLL = 0x10, 0x20, 0x40
# pointer kinds of a fixup
ARENA, NULL, GUARD, EXTMEM, KERNEL = 0, 1, 2, 3, 4

HDR_OPTIONS, HDR_BODY = 72, 80  # offsets in nmreq_header
BODY, OPT1, OPT2 = 256, 512, 640  # where the seeds put things
SECOND = 4096  # the second request's header


def header(reqtype, name, version=API):
    return struct.pack("<HHI64sQQ", version, reqtype, 0, name.encode(), 0, 0)


def register(mode=NR_REG_ALL_NIC, ringid=0, flags=0, mem_id=0, rings=(0, 0), slots=(0, 0),
             extra=0):
    return struct.pack("<QQIIHHHHHHII4xQ", 0, 0, slots[0], slots[1], rings[0], rings[1], 0, 0,
                       mem_id, ringid, mode, extra, flags)


def option(reqtype, size):
    return struct.pack("<QIIQ", 0, reqtype, 0, size)


def pools(if_num=0, if_size=0, ring_num=0, ring_size=0, buf_num=0, buf_size=0, mem_id=0):
    return struct.pack("<QH6xQIIQIIQII", 0, mem_id, 0, if_num, if_size, 0, ring_num, ring_size,
                       0, buf_num, buf_size)


def legacy(name, cmd=0, flags=0, ringid=0, arg1=0, arg2=0, arg3=0, rings=(0, 0), slots=(0, 0),
           version=11):
    return struct.pack("<16sIIIIIHHHHHHIII", name.encode(), version, 0, 0, slots[0], slots[1],
                       rings[0], rings[1], ringid, cmd, arg1, arg2, arg3, flags, 0)


class Req:
    def __init__(self, ops, ops2=0):
        self.ops, self.ops2 = ops, ops2
        self.arena = bytearray(8192)
        self.fix = []

    def put(self, at, data):
        self.arena[at:at + len(data)] = data
        return self

    def ptr(self, at, kind, off=0):
        self.fix.append(struct.pack("<HBH", at, kind, off))
        return self

    def bytes(self):
        arena = bytes(self.arena).rstrip(b"\0")
        return bytes([self.ops, self.ops2, len(self.fix)]) + b"".join(self.fix) + arena


def ctrl(reqtype, name, body=b"", ops=MMAP | SYNC | POLL, at=0):
    r = Req(ops)
    return add_ctrl(r, reqtype, name, body, at)


def add_ctrl(r, reqtype, name, body=b"", at=0):
    r.put(at, header(reqtype, name))
    if body:
        r.put(at + BODY, body).ptr(at + HDR_BODY, ARENA, at + BODY)
    return r


def nmreq_seeds():
    s = {}
    s["register_pipe"] = ctrl(REQ["REGISTER"], "p{0", register())
    s["register_pipe_slave_one_ring"] = ctrl(REQ["REGISTER"], "p}3", register(NR_REG_ONE_NIC, 0))
    s["register_vale_conf"] = ctrl(REQ["REGISTER"], "vale0:a",
                                   register(rings=(2, 2), slots=(128, 64), extra=4))
    s["register_vale_excl"] = ctrl(REQ["REGISTER"], "vale0:x", register(flags=NR_EXCLUSIVE))
    s["register_null_mem"] = ctrl(REQ["REGISTER"], "null:n", register(mem_id=3, rings=(3, 1)))
    s["register_null_mode"] = ctrl(REQ["REGISTER"], "null:m", register(NR_REG_NULL))
    s["register_nic_sw"] = ctrl(REQ["REGISTER"], "lo", register(NR_REG_NIC_SW))
    # A port and a monitor of it, on a second fd.
    r = ctrl(REQ["REGISTER"], "vale0:m", register())
    r.ops2 = CTRL + 1
    add_ctrl(r, REQ["REGISTER"], "vale0:m", register(flags=NR_MONITOR_TX | NR_MONITOR_RX),
             SECOND)
    s["register_then_monitor"] = r
    r = ctrl(REQ["REGISTER"], "p{7", register())
    r.ops2 = CTRL + 1
    add_ctrl(r, REQ["REGISTER"], "p{7", register(flags=NR_ZCOPY_MON), SECOND)
    s["register_then_zcopy_monitor"] = r
    # Register, then ask on the same fd.
    r = ctrl(REQ["REGISTER"], "vale0:i", register())
    r.ops2 = CTRL + 1 | 4
    add_ctrl(r, REQ["PORT_INFO_GET"], "vale0:i", bytes(32), SECOND)
    s["register_then_port_info"] = r
    r = ctrl(REQ["REGISTER"], "vale0:j", register())
    r.ops2 = CTRL + 1 | 4
    add_ctrl(r, REQ["POOLS_INFO_GET"], "", pools(), SECOND)
    s["register_then_pools_info"] = r
    s["port_info"] = ctrl(REQ["PORT_INFO_GET"], "vale0:b", bytes(32), 0)
    s["port_info_pipe_mem"] = ctrl(REQ["PORT_INFO_GET"], "q{1", struct.pack("<Q8xHHHHH6x", 0, 0, 0, 0, 0, 2), 0)
    s["pools_info"] = ctrl(REQ["POOLS_INFO_GET"], "", pools(), 0)
    s["pools_info_mem1"] = ctrl(REQ["POOLS_INFO_GET"], "", pools(mem_id=1), 0)
    # Persistent VALE ports: make, attach, list, detach, delete.
    newif = struct.pack("<IIHHHH", 64, 64, 1, 1, 0, 0)
    s["vale_newif"] = ctrl(REQ["VALE_NEWIF"], "v0", newif, 0)
    r = ctrl(REQ["VALE_NEWIF"], "v1", newif, 0)
    r.ops2 = CTRL + 1
    add_ctrl(r, REQ["VALE_ATTACH"], "vale1:v1", register() + bytes(8), SECOND)
    s["vale_newif_attach"] = r
    r = ctrl(REQ["VALE_NEWIF"], "v2", newif, 0)
    r.ops2 = CTRL + 1
    add_ctrl(r, REQ["VALE_LIST"], "", struct.pack("<HHI", 0, 0, 0), SECOND)
    s["vale_newif_list"] = r
    r = ctrl(REQ["VALE_NEWIF"], "v3", newif, 0)
    r.ops2 = CTRL + 1
    add_ctrl(r, REQ["VALE_DELIF"], "v3", b"", SECOND)
    s["vale_newif_delif"] = r
    r = ctrl(REQ["VALE_NEWIF"], "v4", newif, 0)
    r.ops2 = CTRL + 1
    add_ctrl(r, REQ["VALE_DETACH"], "vale1:v4", bytes(8), SECOND)
    s["vale_newif_detach"] = r
    s["vale_list_name"] = ctrl(REQ["VALE_LIST"], "vale0:a", struct.pack("<HHI", 0, 0, 0), 0)
    s["vale_polling"] = ctrl(REQ["VALE_POLLING_ENABLE"], "vale0:a", bytes(16), 0)
    s["csb_enable"] = ctrl(REQ["CSB_ENABLE"], "vale0:a", bytes(16), 0)
    # Options: extmem on a MAP_SHARED file, an unknown option, a loop.
    r = ctrl(REQ["REGISTER"], "vale0:e", register())
    r.put(OPT1, option(OPT_EXTMEM, 96) + bytes(8) +
          pools(if_num=8, ring_num=8, ring_size=4096, buf_num=128, buf_size=2048))
    r.ptr(HDR_OPTIONS, ARENA, OPT1).ptr(OPT1 + 24, EXTMEM, 0)
    s["register_extmem"] = r
    r = ctrl(REQ["REGISTER"], "netmap:f{0", register())
    r.put(OPT1, option(OPT_EXTMEM, 96) + bytes(8) + pools())
    r.ptr(HDR_OPTIONS, ARENA, OPT1).ptr(OPT1 + 24, EXTMEM, 16)
    s["register_extmem_fit"] = r
    r = ctrl(REQ["REGISTER"], "p{2", register())
    r.put(OPT1, option(OPT_CSB, 40)).put(OPT2, option(OPT_EXTMEM, 96))
    r.ptr(HDR_OPTIONS, ARENA, OPT1).ptr(OPT1, ARENA, OPT2).ptr(OPT2 + 24, GUARD, 0)
    s["options_chain"] = r
    r = ctrl(REQ["REGISTER"], "p{3", register())
    r.put(OPT1, option(OPT_CSB, 40))
    r.ptr(HDR_OPTIONS, ARENA, OPT1).ptr(OPT1, ARENA, OPT1)
    s["options_loop"] = r
    r = ctrl(REQ["PORT_INFO_GET"], "vale0:c", bytes(32), 0)
    r.put(OPT1, option(OPT_EXTMEM, 96)).ptr(HDR_OPTIONS, ARENA, OPT1)
    s["options_extmem_not_register"] = r
    r = ctrl(REQ["REGISTER"], "p{4", register())
    r.ptr(HDR_OPTIONS, GUARD, 8)
    s["options_fault"] = r
    r = ctrl(REQ["REGISTER"], "p{5", b"")
    r.ptr(HDR_BODY, KERNEL, 0)
    s["body_fault"] = r
    s["old_version"] = Req(MMAP).put(0, header(REQ["REGISTER"], "p{6", 10))
    # Legacy struct nmreq: NIOCREGIF, NIOCGINFO, nr_cmd.
    s["legacy_regif"] = Req(REGIF | MMAP | SYNC | POLL).put(0, legacy("p{8", flags=NR_REG_ALL_NIC))
    s["legacy_regif_ringid"] = Req(REGIF | SYNC).put(0, legacy("vale0:l", ringid=0x4000 | 0, version=12))
    s["legacy_regif_pipe_mode"] = Req(REGIF).put(0, legacy("pm", flags=5, ringid=2))
    s["legacy_ginfo"] = Req(GINFO).put(0, legacy(""))
    s["legacy_ginfo_port"] = Req(GINFO).put(0, legacy("vale0:g", arg2=0))
    r = Req(REGIF).put(0, legacy("lv", cmd=6, rings=(1, 1), slots=(64, 64)))
    r.ops2 = REGIF + 1
    r.put(SECOND, legacy("vale2:lv", cmd=1))
    s["legacy_newif_attach"] = r
    s["legacy_list"] = Req(REGIF).put(0, legacy("", cmd=4))
    s["legacy_delif"] = Req(REGIF).put(0, legacy("nothing", cmd=7))
    s["legacy_unknown_cmd"] = Req(REGIF).put(0, legacy("vale0:a", cmd=13))
    return {k: v.bytes() for k, v in s.items()}


# ----------------------------------------------------------------- ring
# ring_fuzz.cc: a sequence of operations, each an opcode byte and operands.
OP_HEAD, OP_CUR, OP_TAIL, OP_SLOT, OP_FLAGS, OP_TXSYNC, OP_RXSYNC, OP_POLL, OP_GOOD, OP_HDR, OP_IF, OP_DATA = range(12)


def ring_seeds():
    def op(code, port=0, ring=0, *args):
        return bytes([code, port, ring]) + b"".join(args)

    u32 = lambda v: struct.pack("<I", v & 0xffffffff)
    u16 = lambda v: struct.pack("<H", v & 0xffff)
    u64 = lambda b: bytes(b).ljust(8, b"\0")

    def frame(port, idx, ring=0):  # broadcast from 02:00:00:00:00:0f
        return (op(OP_DATA, port, ring, bytes([idx, 0]), u64([0xff] * 6 + [2, 0])) +
                op(OP_DATA, port, ring, bytes([idx, 8]), u64([0, 0, 0, 0x0f, 0x88, 0xb5, 1, 2])))

    s = {}
    # Send 3 packets well: slots as they are, head and cur forward, sync.
    for port in range(4):
        s[f"send_port{port}"] = (frame(port, 0) + frame(port, 1) + op(OP_SLOT, port, 0, bytes([0]), bytes([0]), u32(0), u16(60), u16(0)) +
                                 op(OP_SLOT, port, 0, bytes([1]), bytes([0]), u32(0), u16(1514), u16(0)) +
                                 op(OP_HEAD, port, 0, bytes([1]), u32(2)) + op(OP_CUR, port, 0, bytes([1]), u32(2)) +
                                 op(OP_TXSYNC, port, 0) + op(OP_GOOD) + op(OP_RXSYNC, port, 0) + op(OP_POLL, port, 0))
    s["head_past_tail"] = op(OP_HEAD, 0, 0, bytes([0]), u32(100000)) + op(OP_TXSYNC, 0, 0)
    s["cur_before_head"] = op(OP_HEAD, 1, 0, bytes([1]), u32(5)) + op(OP_CUR, 1, 0, bytes([1]), u32(2)) + op(OP_TXSYNC, 1, 0)
    s["rx_head_forward"] = op(OP_GOOD) + op(OP_HEAD, 0, 0x80, bytes([1]), u32(1)) + op(OP_CUR, 0, 0x80, bytes([1]), u32(1)) + op(OP_RXSYNC, 0, 0)
    s["bad_buf_idx"] = op(OP_SLOT, 0, 0, bytes([0]), bytes([1]), u32(1 << 30), u16(60), u16(0)) + op(OP_HEAD, 0, 0, bytes([1]), u32(1)) + op(OP_TXSYNC, 0, 0)
    s["buf_idx_of_peer"] = frame(1, 0) + op(OP_SLOT, 1, 0, bytes([0]), bytes([2]), u32(0), u16(60), u16(0)) + op(OP_HEAD, 1, 0, bytes([1]), u32(1)) + op(OP_TXSYNC, 1, 0) + op(OP_GOOD)
    s["long_len"] = frame(0, 0) + op(OP_SLOT, 0, 0, bytes([0]), bytes([0]), u32(0), u16(60000), u16(0)) + op(OP_HEAD, 0, 0, bytes([1]), u32(1)) + op(OP_TXSYNC, 0, 0)
    # An NS_MOREFRAG chain left open, then rewritten between two syncs.
    # (slot indexes count from head: 255 is the slot before it)
    s["morefrag_rewrite"] = (frame(0, 0) + frame(0, 1) + op(OP_SLOT, 0, 0, bytes([0]), bytes([0]), u32(0), u16(60), u16(1 << 11)) +
                             op(OP_HEAD, 0, 0, bytes([1]), u32(1)) + op(OP_TXSYNC, 0, 0) +
                             op(OP_SLOT, 0, 0, bytes([255]), bytes([0]), u32(0), u16(65535), u16(0)) +
                             op(OP_SLOT, 0, 0, bytes([0]), bytes([1]), u32(7), u16(60), u16(0)) +
                             op(OP_HEAD, 0, 0, bytes([1]), u32(2)) + op(OP_TXSYNC, 0, 0) + op(OP_GOOD))
    s["ring_flags"] = op(OP_FLAGS, 0, 0, u32(0xffffffff)) + op(OP_TXSYNC, 0, 0) + op(OP_POLL, 0, 0)
    s["ring_header"] = op(OP_HDR, 0, 0, bytes([1]), u32(0)) + op(OP_HDR, 0, 0, bytes([2]), u32(7)) + op(OP_TXSYNC, 0, 0) + op(OP_RXSYNC, 0, 0)
    s["netmap_if"] = op(OP_IF, 0, 0, bytes([8]), u32(0xffffffff)) + op(OP_TXSYNC, 0, 0) + op(OP_POLL, 0, 0)
    s["monitor_sync"] = op(OP_GOOD) + op(OP_RXSYNC, 2, 0) + op(OP_RXSYNC, 3, 0) + op(OP_POLL, 2, 0)
    return s


# ---------------------------------------------------------------- vhost
V_GET_FEATURES, V_SET_FEATURES, V_SET_OWNER, V_SET_MEM_TABLE = 1, 2, 3, 5
V_SET_NUM, V_SET_ADDR, V_SET_BASE, V_GET_BASE, V_KICK, V_CALL = 8, 9, 10, 11, 12, 13
V_GET_PF, V_SET_PF, V_ENABLE, V_SET_STATUS = 15, 16, 18, 39
F_MRG, F_INDIRECT, F_EVENT_IDX, F_PF, F_V1, F_PACKED, F_IN_ORDER = 15, 28, 29, 30, 32, 34, 35
UVA = 0x7f0000100000  # where the front end says guest memory is
QSIZE = 8
# queue q's rings in guest memory: desc, avail (driver area), used (device area)
RINGS = {0: (0x000, 0x080, 0x100), 1: (0x200, 0x280, 0x300)}


def vmsg(req, payload=b"", nfds=0, flags=1):
    return struct.pack("<BBHB", req, flags, len(payload), nfds) + payload


def vhost_memory(packed):
    """The first page of guest memory: one transmit chain (queue 1: a
    header descriptor and a frame descriptor) and one receive buffer
    (queue 0) made available."""
    m = bytearray(4096)
    def desc(q, i, addr, ln, flags, nxt_or_id):
        off = RINGS[q][0] + 16 * i
        if packed:  # addr, len, id, flags
            struct.pack_into("<QIHH", m, off, addr, ln, nxt_or_id, flags)
        else:       # addr, len, flags, next
            struct.pack_into("<QIHH", m, off, addr, ln, flags, nxt_or_id)
    avail_bit = 0x80  # packed: AVAIL set, USED clear, as in the first lap
    if packed:
        desc(1, 0, 0x800, 12, 1 | avail_bit, 0)
        desc(1, 1, 0x810, 200, avail_bit, 7)
        desc(0, 0, 0xc00, 1024, 2 | avail_bit, 3)
    else:
        desc(1, 0, 0x800, 12, 1, 1)
        desc(1, 1, 0x810, 200, 0, 0)
        desc(0, 0, 0xc00, 1024, 2, 0)
        for q in (0, 1):  # avail: flags 0, idx 1, ring[0] = 0
            struct.pack_into("<HHH", m, RINGS[q][1], 0, 1, 0)
    m[0x810:0x810 + 14] = b"\xff" * 6 + b"\x02" + b"\0" * 5 + b"\x08\x00"
    return bytes(m)


def vhost_session(packed=False, features=(F_MRG, F_INDIRECT, F_EVENT_IDX, F_PF, F_V1)):
    f = sum(1 << b for b in features) | ((1 << F_PACKED) if packed else 0)
    s = vmsg(V_GET_FEATURES) + vmsg(V_GET_PF) + vmsg(V_SET_PF, struct.pack("<Q", 1 << 3))
    s += vmsg(V_SET_FEATURES, struct.pack("<Q", f)) + vmsg(V_SET_OWNER)
    s += vmsg(V_SET_MEM_TABLE, struct.pack("<IIQQQQ", 1, 0, 0, 64 << 10, UVA, 0), nfds=1, flags=9)
    for q in (0, 1):
        d, a, u = RINGS[q]
        s += vmsg(V_SET_NUM, struct.pack("<II", q, QSIZE))
        s += vmsg(V_SET_ADDR, struct.pack("<IIQQQQ", q, 0, UVA + d, UVA + u, UVA + a, 0))
        s += vmsg(V_SET_BASE, struct.pack("<II", q, 0x8000 if packed else 0))
        s += vmsg(V_CALL, struct.pack("<Q", q), nfds=1 | 4)  # an eventfd
        s += vmsg(V_KICK, struct.pack("<Q", q), nfds=1 | 4)
        s += vmsg(V_ENABLE, struct.pack("<II", q, 1))
    s += vmsg(V_SET_STATUS, struct.pack("<Q", 0xf))
    s += vmsg(V_GET_BASE, struct.pack("<II", 1, 0))
    return s


def vhost_seeds():
    s = {}
    s["split"] = bytes([0]) + vhost_memory(False) + vhost_session(False)
    s["packed"] = bytes([0]) + vhost_memory(True) + vhost_session(True)
    s["split_two_pairs"] = bytes([1]) + vhost_memory(False) + vhost_session(False)
    s["split_plain"] = bytes([0]) + vhost_memory(False) + vhost_session(False, (F_PF, F_V1))
    s["packed_in_order"] = bytes([0]) + vhost_memory(True) + vhost_session(True, (F_IN_ORDER, F_PF, F_V1))
    return s


def offload_seeds():
    """[mtu:2] [virtio-net header:10] [frame]: GSO and partial-checksum frames."""
    def frame(v6, proto, payload, vlan=False):
        eth = b"\x02" * 6 + b"\x04" * 6 + (b"\x81\x00\x00\x2a" if vlan else b"")
        l4 = (struct.pack(">HHIIBBHHH", 40000, 80, 1, 0, 5 << 4, 0x18, 512, 0, 0) if proto == 6
              else struct.pack(">HHHH", 40000, 9999, 8 + payload, 0))
        data = bytes(i & 0xFF for i in range(payload))
        if v6:
            ip = struct.pack(">IHBB", 6 << 28, len(l4) + payload, proto, 64) + bytes(range(32))
            return eth + b"\x86\xdd" + ip + l4 + data
        ip = struct.pack(">BBHHHBBH", 0x45, 0, 20 + len(l4) + payload, 1, 0, 64, proto, 0) + bytes(8)
        return eth + b"\x08\x00" + ip + l4 + data

    def seed(mtu, flags, gso, gso_size, start, off, f):
        return struct.pack("<HBBHHHH", mtu - 68, flags, gso, 0, gso_size, start, off) + f
    s = {}
    s["tcp4"] = seed(1500, 1, 1, 1448, 34, 16, frame(False, 6, 6000))
    s["tcp6_vlan"] = seed(1500, 1, 4, 1428, 58, 16, frame(True, 6, 5000, True))
    s["udp4"] = seed(1500, 1, 3, 1480, 34, 6, frame(False, 17, 4000))
    s["udp6"] = seed(1280, 1, 3, 1200, 54, 6, frame(True, 17, 3000))
    s["csum"] = seed(1500, 1, 0, 0, 34, 16, frame(False, 6, 300))
    return s


def write(dirname, seeds):
    """Writes the seeds; other files there (regress_*: inputs of findings) stay."""
    d = os.path.join(HERE, "corpus", dirname)
    os.makedirs(d, exist_ok=True)
    for name, data in sorted(seeds.items()):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write("nmreq", nmreq_seeds())
    write("ring", ring_seeds())
    write("vhost", vhost_seeds())
    write("offload", offload_seeds())
