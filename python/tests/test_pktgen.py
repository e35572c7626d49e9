"""Traffic between Python and pkt-gen through a pipe and a VALE switch:
Python's frames counted by pkt-gen -f rx, pkt-gen -f tx's frames checked
byte by byte by Python."""

import os
import subprocess
import time

import pytest

from conftest import PKTGEN, needs_pktgen
from frames import numbered, pktgen_frame

N = 20000


def _python_sends(port, n, length, peer):
    """Distinct frames 0..n-1 through port, in batches of lists. Returns
    (frames sent, frames a VALE switch dropped for peer)."""
    import netmap

    with netmap.NetmapDesc(port) as d:
        sent = 0
        while sent < n:
            batch = [numbered(i, length) for i in range(sent, min(n, sent + 256))]
            k = d.send(batch, timeout=10000)
            assert k == len(batch), f"only {k} of {len(batch)} sent in 10 s"
            sent += k
        c = d.counters()["tx"]
        assert c["packets"] == n and c["bytes"] == n * length, c
        dropped = 0
        if peer.startswith("vale"):
            # the sender's txsync forwards through the switch: its counts are final now
            dropped = {p["name"]: p for p in netmap.switch_ports(peer.split(":")[0])}[peer]["drops"]
        return sent, dropped


@needs_pktgen
@pytest.mark.parametrize("tx_port,rx_port", [("netmap:pipe{7", "netmap:pipe}7"), ("vale0:py", "vale0:pg")])
def test_python_to_pktgen(isolated, pktgen, tx_port, rx_port):
    length = 90
    # -W: pkt-gen ends a second after the last frame if a switch dropped some
    rx = pktgen("-i", rx_port, "-f", "rx", "-n", str(N), "-w", "0", "-W")
    rx.wait_open(rx_port)
    sent, dropped = isolated(_python_sends, tx_port, N, length, rx_port)
    assert sent == N
    assert rx.wait(30) == 0, rx.stderr()
    s = rx.summary()
    # a pipe loses nothing; a VALE switch may drop for a receiver that falls
    # behind, and counts what it drops
    assert int(s["packets"]) + dropped == N, (s, dropped)
    assert int(s["bytes"]) == int(s["packets"]) * length, s
    if rx_port.startswith("netmap:pipe"):
        assert dropped == 0 and int(s["packets"]) == N


def _python_receives(port, peer, n, length, rate):
    """Open port, run pkt-gen -f tx on peer (at rate pps, 0: unlimited),
    receive its n frames and check each against pkt-gen's frame. Returns
    (frames received, rx packets counted on port, frames the switch dropped
    for port)."""
    import numpy as np

    import netmap

    expect = np.frombuffer(pktgen_frame(length), dtype=np.uint8)
    with netmap.NetmapDesc(port) as d:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        rate_args = ["-R", str(rate)] if rate else []
        tx = subprocess.Popen([PKTGEN, "-i", peer, "-f", "tx", "-n", str(n), "-l", str(length), "-w", "0"] + rate_args,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        try:
            buf = np.zeros((1024, 2048), dtype=np.uint8)
            lens = np.zeros(1024, dtype=np.uint32)
            got = 0
            deadline = time.monotonic() + 30
            while got < n and time.monotonic() < deadline:
                k = d.recv_into(buf, lens, timeout=1000)
                if k == 0 and tx.poll() is not None:
                    break  # pkt-gen is done and nothing more comes
                assert (lens[:k] == length).all(), lens[:k]
                bad = np.nonzero((buf[:k, :length] != expect).any(axis=1))[0]
                assert bad.size == 0, f"frame {got + bad[0]} differs from pkt-gen's"
                got += k
            out, err = tx.communicate(timeout=30)
        finally:
            if tx.poll() is None:
                tx.kill()
                tx.wait()
        assert tx.returncode == 0, err
        assert f"packets={n} " in out, out
        counted = d.counters()["rx"]["packets"]
        dropped = 0
        if port.startswith("vale"):
            sw = port.split(":")[0]
            dropped = {p["name"]: p for p in netmap.switch_ports(sw)}[port]["drops"]
        return got, counted, dropped


@needs_pktgen
def test_pktgen_to_python_pipe(isolated):
    # a pipe holds the sender back: every frame arrives
    got, counted, _ = isolated(_python_receives, "netmap:pipe}8", "netmap:pipe{8", N, 128, 0)
    assert got == N and counted == N


@needs_pktgen
def test_pktgen_to_python_vale(isolated):
    # a VALE switch drops what a full receiver ring cannot take (netmap's
    # semantics): at 100 kpps Python keeps up, and whatever it missed the
    # switch must have counted as dropped for it
    got, counted, dropped = isolated(_python_receives, "vale1:py", "vale1:pg", N, 128, 100000)
    assert got > 0 and counted == got
    assert got + dropped == N, (got, dropped)
