"""Control and statistics from unetmap's C API, checked against the
traffic a test has just sent."""

import errno

from frames import numbered


def _pipe_stats(n, length):
    import netmap

    assert netmap.ports() == []  # a fresh runtime directory
    with netmap.NetmapDesc("netmap:pipe{9") as tx, netmap.NetmapDesc("netmap:pipe}9") as rx:
        ports = {p["name"]: p for p in netmap.ports()}
        assert ports["pipe{9"]["type"] == "pipe" and ports["pipe}9"]["type"] == "pipe"
        assert ports["pipe{9"]["users"] == 1 and ports["pipe{9"]["mem_id"] == tx.mem_id

        before = netmap.port_stats("pipe{9")
        assert before["tx_packets"] == 0
        assert tx.send([numbered(i, length) for i in range(n)], timeout=5000) == n
        got = 0
        while got < n:
            k = len(rx.recv(timeout=5000))
            assert k
            got += k

        st = netmap.port_stats("pipe{9")
        assert st["tx_packets"] == n and st["tx_bytes"] == n * length, st
        assert st["tx_drops"] == 0
        rings = netmap.port_rings("pipe{9")
        txr = [r for r in rings if r["tx"] and not r["host"]]
        assert len(txr) == 1 and txr[0]["packets"] == n and txr[0]["bytes"] == n * length, rings
        assert txr[0]["users"] == 1 and txr[0]["slots"] == tx.transmit_rings[0].num_slots

        # the receiving end counts what it released (recv ends with an rxsync)
        st = netmap.port_stats("pipe}9")
        assert st["rx_packets"] == n and st["rx_drops"] == 0, st
        rxr = [r for r in netmap.port_rings("pipe}9") if not r["tx"] and not r["host"]]
        assert rxr[0]["packets"] == n

        assert tx.counters()["tx"] == {"packets": n, "bytes": n * length, "drops": 0}
        assert rx.counters()["rx"]["packets"] == n

        regions = {r["mem_id"]: r for r in netmap.regions()}
        assert tx.mem_id in regions and regions[tx.mem_id]["ports"] >= 2
        assert regions[tx.mem_id]["sizes"]["buf_size"] == tx.transmit_rings[0].nr_buf_size
    return True


def test_pipe_stats_count_the_traffic(isolated):
    assert isolated(_pipe_stats, 700, 75)


def _vale_stats(n, length):
    import netmap

    assert netmap.switches() == []
    with netmap.NetmapDesc("vale2:a") as a, netmap.NetmapDesc("vale2:b") as b:
        sw = {s["name"]: s for s in netmap.switches()}
        assert sw["vale2"]["ports"] == 2 and sw["vale2"]["lookup"] == "learning", sw
        assert a.send([numbered(i, length) for i in range(n)], timeout=5000) == n
        got = []
        while len(got) < n:
            part = b.recv(timeout=5000)
            assert part
            got += part
        assert got == [numbered(i, length) for i in range(n)]
        ports = {p["name"]: p for p in netmap.switch_ports("vale2")}
        assert ports["vale2:a"]["tx_packets"] == n and ports["vale2:a"]["tx_bytes"] == n * length, ports
        assert ports["vale2:b"]["rx_packets"] == n, ports
        assert ports["vale2:a"]["tx_drops"] == 0 and ports["vale2:b"]["drops"] == 0

        netmap.switch_set_lookup("vale2", "hub")
        assert {s["name"]: s["lookup"] for s in netmap.switches()}["vale2"] == "hub"
        try:
            netmap.switch_set_lookup("vale2", "no-such-lookup")
        except netmap.NetmapError as e:
            assert e.errno and "no-such-lookup" in str(e) or e.errno
        else:
            raise AssertionError("an unknown lookup accepted")
    try:
        netmap.switch_ports("vale99")
    except netmap.NetmapError as e:
        assert e.errno == errno.ENOENT, e
    else:
        raise AssertionError("switch_ports of no switch")
    try:
        netmap.port_stats("no-such-port")
    except netmap.NetmapError as e:
        assert e.errno == errno.ENOENT, e
    else:
        raise AssertionError("port_stats of no port")
    return True


def test_vale_switch_stats(isolated):
    assert isolated(_vale_stats, 300, 64)


def _regions():
    import netmap

    netmap.region_create(77, buf_num=4096, buf_size=2048)
    r = {x["mem_id"]: x for x in netmap.regions()}[77]
    assert r["persistent"] and r["ports"] == 0
    assert r["sizes"]["buf_num"] >= 4096 and r["sizes"]["buf_size"] == 2048
    with netmap.NetmapDesc("netmap:pipe{10@77") as d:
        assert d.mem_id == 77
        try:
            netmap.region_delete(77)
        except netmap.NetmapError as e:
            assert e.errno == errno.EBUSY, e
        else:
            raise AssertionError("a region in use was deleted")
    netmap.region_delete(77)
    assert 77 not in {x["mem_id"] for x in netmap.regions()}
    try:
        netmap.region_delete(77)
    except netmap.NetmapError as e:
        assert e.errno == errno.ENOENT
    else:
        raise AssertionError("deleted twice")
    assert isinstance(netmap.workers(), list)
    return True


def test_regions_create_delete(isolated):
    assert isolated(_regions)
