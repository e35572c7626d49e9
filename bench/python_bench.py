#!/usr/bin/env python3
"""python_bench.py - the Python sides of bench/python.sh. Each command prints
one line "summary: func=F packets=N seconds=S mpps=M".

  send PORT SECONDS LEN       unetmap: batch send of LEN-byte frames (a numpy
                              array of 1024 rows per call) for SECONDS
  recv PORT COUNT             unetmap: recv_into a numpy buffer until COUNT
                              frames or a second without any
  sendp IFACE COUNT LEN       scapy: sendp of COUNT LEN-byte frames
  sniff IFACE COUNT SECONDS   scapy: sniff until COUNT frames or SECONDS
  rawsend IFACE SECONDS LEN   an AF_PACKET socket sending LEN-byte frames for
                              SECONDS (the traffic for sniff)

Readiness: recv, sniff print "ready" on stderr once they listen.
"""

import socket
import struct
import sys
import time

ETHERTYPE = 0x88B5  # IEEE local experimental: nothing else on the veth uses it


def frame(i, length):
    head = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + struct.pack("!H", ETHERTYPE)
    body = struct.pack("!Q", i) * ((length - len(head)) // 8 + 1)
    return (head + body)[:length]


def summary(func, packets, seconds):
    mpps = packets / seconds / 1e6 if seconds > 0 else 0.0
    print(f"summary: func={func} packets={packets} seconds={seconds:.3f} mpps={mpps:.4f}", flush=True)


def nm_send(port, seconds, length):
    import numpy as np

    import netmap

    arr = np.frombuffer(b"".join(frame(i, length) for i in range(1024)), dtype=np.uint8).reshape(1024, length)
    with netmap.NetmapDesc(port) as d:
        sent = 0
        t0 = time.perf_counter()
        end = t0 + seconds
        while True:
            sent += d.send(arr, timeout=1000)
            t = time.perf_counter()
            if t >= end:
                break
        summary("py-send", sent, t - t0)


def nm_recv(port, count):
    import numpy as np

    import netmap

    buf = np.empty((1024, 2048), dtype=np.uint8)
    lens = np.empty(1024, dtype=np.uint32)
    with netmap.NetmapDesc(port) as d:
        print("ready", file=sys.stderr, flush=True)
        got = d.recv_into(buf, lens, timeout=10000)
        if not got:
            summary("py-recv", 0, 0)
            return
        t0 = time.perf_counter()
        got = 0  # the first batch starts the clock
        t = t0
        while got < count:
            k = d.recv_into(buf, lens, timeout=1000)
            if not k:
                break
            got += k
            t = time.perf_counter()
        summary("py-recv", got, t - t0)


def sc_sendp(iface, count, length):
    from scapy.all import Raw, sendp

    pkts = [Raw(frame(i, length)) for i in range(count)]
    t0 = time.perf_counter()
    sendp(pkts, iface=iface, verbose=False)
    summary("scapy-sendp", count, time.perf_counter() - t0)


def sc_sniff(iface, count, seconds):
    from scapy.all import conf, sniff

    times = []

    def started():
        print("ready", file=sys.stderr, flush=True)

    def seen(_p):
        times.append(time.perf_counter())

    sniff(iface=iface, count=count, timeout=seconds, store=False, prn=seen, started_callback=started)
    n = len(times)
    # the rate from the first frame to the last (a frame's dissection included)
    summary("scapy-sniff", n - 1 if n > 1 else 0, times[-1] - times[0] if n > 1 else 0)


def raw_send(iface, seconds, length):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    frames = [frame(i, length) for i in range(1024)]
    sent = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        for f in frames:
            try:
                s.send(f)
            except OSError:
                pass
        sent += len(frames)
    summary("raw-send", sent, time.perf_counter() - t0)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "send":
        nm_send(args[0], float(args[1]), int(args[2]))
    elif cmd == "recv":
        nm_recv(args[0], int(args[1]))
    elif cmd == "sendp":
        sc_sendp(args[0], int(args[1]), int(args[2]))
    elif cmd == "sniff":
        sc_sniff(args[0], int(args[1]), float(args[2]))
    elif cmd == "rawsend":
        raw_send(args[0], float(args[1]), int(args[2]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
