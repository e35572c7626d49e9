"""NetmapDesc between two Python descriptors: netmap's ring/slot API, the
batch API (lists, numpy arrays, buffers), poll/select on getfd(), the
context manager and errors. Each test body runs in a fresh interpreter
(conftest.isolated) with its own runtime directory."""

import errno
import os

from frames import numbered


# ---------------------------------------------------------------- ring/slot API

def _ring_api_roundtrip(n, length):
    import netmap

    with netmap.NetmapDesc("netmap:pipe{1") as tx, netmap.NetmapDesc("netmap:pipe}1") as rx:
        assert tx.interface.tx_rings == 1 and rx.interface.rx_rings == 1
        assert tx.interface.name == "pipe{1"
        t = tx.transmit_rings[0]
        r = rx.receive_rings[0]
        assert t.dir == 0 and r.dir == 1 and t.num_slots == r.num_slots
        assert len(t.slots) == t.num_slots
        sent = 0
        got = []
        while len(got) < n:
            # fill what the tx ring has room for
            while sent < n and t.space() > 0:
                s = t.slots[t.cur]
                f = numbered(sent, length)
                s.buf[: len(f)] = f
                s.len = len(f)
                s.flags = 0
                t.head = t.cur = (t.cur + 1) % t.num_slots
                sent += 1
            tx.txsync()
            rx.rxsync()
            assert not r.empty() or sent == len(got)
            while not r.empty():
                s = r.slots[r.cur]
                got.append(bytes(s.buf[: s.len]))
                r.head = r.cur = (r.cur + 1) % r.num_slots
        rx.rxsync()
        assert len(got) == n
        for i, f in enumerate(got):
            assert f == numbered(i, length), f"frame {i} differs"
        return len(got)


def test_ring_slot_api_pipe_byte_by_byte(isolated):
    # more frames than slots: the rings wrap several times
    assert isolated(_ring_api_roundtrip, 3000, 97) == 3000


# ---------------------------------------------------------------- batch API

def _batch_list_roundtrip():
    import netmap

    with netmap.NetmapDesc("netmap:pipe{2") as tx, netmap.NetmapDesc("netmap:pipe}2") as rx:
        # bytes, bytearray and memoryview frames of many lengths, some longer
        # than one buffer (NS_MOREFRAG chains)
        lens = [60 + (i * 37) % 1400 for i in range(500)] + [3000, 5000, 2048, 2049]
        frames = []
        for i, l in enumerate(lens):
            f = numbered(i, l)
            frames.append(f if i % 3 == 0 else bytearray(f) if i % 3 == 1 else memoryview(f))
        assert tx.send(frames, timeout=5000) == len(frames)
        got = []
        while len(got) < len(frames):
            part = rx.recv(max=256, timeout=5000)
            assert part, "no frame within 5 s"
            got += part
        assert [bytes(f) for f in frames] == got
        # a tuple too
        assert tx.send((b"a" * 60, b"b" * 61)) == 2
        assert rx.recv(timeout=5000) == [b"a" * 60, b"b" * 61]
        # nothing left: recv without timeout returns at once, empty
        assert rx.recv() == []


def test_batch_send_list_recv_bytes(isolated):
    isolated(_batch_list_roundtrip)


def _batch_numpy_roundtrip():
    import numpy as np

    import netmap

    n, width = 5000, 128
    rng = np.random.default_rng(7)
    arr = rng.integers(0, 256, size=(n, width), dtype=np.uint8)
    lens = rng.integers(60, width + 1, size=n).astype(np.uint32)
    with netmap.NetmapDesc("netmap:pipe{3") as tx, netmap.NetmapDesc("netmap:pipe}3") as rx:
        buf = np.zeros((n, 256), dtype=np.uint8)
        got_lens = np.zeros(n, dtype=np.uint16)
        got = 0
        sent = 0
        while got < n:
            # the pipe holds one ring of frames: send what fits, then receive
            sent += tx.send(arr[sent:], lens[sent:])
            k = rx.recv_into(buf[got:], got_lens[got:], timeout=5000)
            assert k > 0, "no frame within 5 s"
            got += k
        assert sent == n and got == n
        assert (got_lens == lens).all()
        for i in range(n):
            l = int(lens[i])
            assert (buf[i, :l] == arr[i, :l]).all(), f"frame {i} differs"
            assert not buf[i, l:].any()

        # whole rows, no lengths: every frame is `width` bytes
        assert tx.send(arr[:100], timeout=5000) == 100
        got_lens32 = np.zeros(100, dtype=np.uint32)
        assert rx.recv_into(buf, got_lens32, timeout=5000) == 100
        assert (got_lens32 == width).all() and (buf[:100, :width] == arr[:100]).all()

        # a 1-D buffer of frames back to back, cut by lengths; received into
        # a bytearray with array('I') lengths and a stride
        import array

        pieces = [numbered(1000 + i, 60 + i) for i in range(50)]
        packed = b"".join(pieces)
        assert tx.send(packed, [len(p) for p in pieces], timeout=5000) == 50
        ba = bytearray(50 * 512)
        al = array.array("I", [0] * 50)
        k = 0
        while k < 50:
            m = rx.recv_into(memoryview(ba)[k * 512:], memoryview(al)[k:], 512, timeout=5000)
            assert m > 0
            k += m
        for i, p in enumerate(pieces):
            assert al[i] == len(p) and bytes(ba[i * 512: i * 512 + len(p)]) == p

        # a frame longer than the stride is cut, its length stays whole
        assert tx.send([numbered(7, 300)], timeout=5000) == 1
        small = np.zeros((1, 100), dtype=np.uint8)
        sl = np.zeros(1, dtype=np.int64)
        assert rx.recv_into(small, sl, timeout=5000) == 1
        assert sl[0] == 300 and bytes(small[0]) == numbered(7, 300)[:100]


def test_batch_numpy_send_recv_into(isolated):
    isolated(_batch_numpy_roundtrip)


def _batch_errors():
    import numpy as np

    import netmap

    with netmap.NetmapDesc("netmap:pipe{4") as tx, netmap.NetmapDesc("netmap:pipe}4") as rx:
        for bad, exc in [([b""], ValueError), ([b"x" * 70000], ValueError), ([1, 2], TypeError),
                         (np.zeros((2, 2, 2), np.uint8), TypeError), (np.zeros((2, 60), np.uint16), TypeError)]:
            try:
                tx.send(bad)
            except exc:
                pass
            else:
                raise AssertionError(f"send({type(bad)}) did not raise {exc}")
        try:
            rx.recv_into(np.zeros((4, 64), np.uint8), np.zeros(4, np.float32))
        except TypeError:
            pass
        else:
            raise AssertionError("float lengths accepted")
        try:
            rx.recv_into(b"read-only" * 100, np.zeros(4, np.uint32))
        except (TypeError, BufferError):
            pass
        else:
            raise AssertionError("read-only buffer accepted")
        # nothing was sent by the refused calls
        assert rx.recv(timeout=100) == []


def test_batch_api_refuses_bad_input(isolated):
    isolated(_batch_errors)


# ---------------------------------------------------------------- poll / select

def _poll_blocks_until_data():
    import select
    import threading
    import time

    import netmap

    with netmap.NetmapDesc("netmap:pipe{5") as tx, netmap.NetmapDesc("netmap:pipe}5") as rx:
        p = select.poll()
        p.register(rx.getfd(), select.POLLIN)
        # nothing there: poll waits its whole timeout and reports nothing
        t0 = time.monotonic()
        assert p.poll(200) == []
        assert time.monotonic() - t0 >= 0.19
        # a tx port has room at once
        q = select.poll()
        q.register(tx, select.POLLOUT)
        assert q.poll(0) == [(tx.getfd(), select.POLLOUT)]

        go = threading.Event()
        frame = numbered(42, 60)

        def sender():
            go.wait(10)
            tx.send([frame])

        th = threading.Thread(target=sender)
        th.start()
        t0 = time.monotonic()
        go.set()
        ev = p.poll(5000)  # returns when the frame arrives
        elapsed = time.monotonic() - t0
        th.join(10)
        assert ev == [(rx.getfd(), select.POLLIN)], ev
        assert elapsed < 5
        assert rx.recv() == [frame]

        # select.select and the descriptor's own poll, the same way
        assert select.select([rx], [], [], 0.1) == ([], [], [])
        assert rx.poll(select.POLLIN, 100) == 0
        tx.send([frame])
        r, w, x = select.select([rx], [], [], 5)
        assert r == [rx]
        assert rx.poll(select.POLLIN, 5000) & select.POLLIN
        assert rx.recv() == [frame]
        # recv with a timeout blocks for the next frame, sent by a thread
        th = threading.Thread(target=lambda: (go.wait(10), tx.send([frame])))
        th.start()
        assert rx.recv(timeout=5000) == [frame]
        th.join(10)
    return netmap.select_installed, netmap.interposed


def test_getfd_poll_blocks_until_data(isolated):
    installed, interposed = isolated(_poll_blocks_until_data)
    # select.poll served netmap's fd: libnetmap preloaded, or the module's poll installed
    assert installed != interposed


# ---------------------------------------------------------------- lifetime, errors

def _context_manager_closes():
    import errno as e
    import os as o

    import netmap

    with netmap.NetmapDesc("netmap:pipe{6") as d:
        fd = d.getfd()
        o.fstat(fd)  # open
        assert not d.closed
        users = {p["name"]: p["users"] for p in netmap.ports()}
        assert users["pipe{6"] == 1
        ring = d.transmit_rings[0]
        view = ring.slots[0].buf
        view[:4] = b"abcd"
    assert d.closed
    try:
        o.fstat(fd)
    except OSError as ex:
        assert ex.errno == e.EBADF
    else:
        raise AssertionError("the fd is still open after the with block")
    assert all(p["name"] != "pipe{6" or p["users"] == 0 for p in netmap.ports())
    for call in (d.txsync, d.rxsync, d.getfd, lambda: d.send([b"x" * 60]), d.recv):
        try:
            call()
        except ValueError:
            pass
        else:
            raise AssertionError("a closed NetmapDesc still works")
    # the memory stays mapped while a buffer of it is referenced
    assert bytes(view[:4]) == b"abcd"
    d.close()  # twice is fine
    return True


def test_context_manager_closes_fd(isolated):
    assert isolated(_context_manager_closes)


def _bad_names():
    import netmap

    out = []
    for name in ("nosuchprefix:eth0", "netmap:", "vale0:a@conf:bogus=1"):
        try:
            netmap.NetmapDesc(name)
        except netmap.NetmapError as e:
            assert isinstance(e, OSError)
            out.append((name, e.errno, str(e)))
        else:
            raise AssertionError(f"{name} opened")
    try:
        netmap.NetmapDesc("netmap:pipe{1", 1)
    except ValueError:
        pass
    else:
        raise AssertionError("flags accepted")
    return out


def test_bad_port_name_raises_oserror(isolated):
    out = isolated(_bad_names)
    name, err, msg = out[0]
    assert err == errno.EINVAL
    assert "nosuchprefix:eth0" in msg and "prefix unknown" in msg  # the library's words
    for name, err, msg in out:
        assert err != 0 and msg, (name, err, msg)
