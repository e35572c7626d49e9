#!/usr/bin/python3
"""Checks frames the packet engine made from one offloaded frame, with
scapy's parsers and checksums, not the engine's (tests/engine_test.cc).

check_offload.py tcp|udp|csum FRAMES.pcap PAYLOAD MTU MAXSEG

  tcp   TCP segments (IPv4 or IPv6): every IP and TCP checksum right, IP
        packets of at most MTU bytes, payloads of at most MAXSEG, sequence
        numbers contiguous, IPv4 ids consecutive, PSH and FIN on the last
        segment only, CWR on the first only, and the payloads together
        equal to the bytes of file PAYLOAD.
  udp   IP fragments of one UDP datagram: reassembled by scapy
        (defragment, defragment6), fragments within MTU with data of at
        most MAXSEG bytes, a multiple of 8 but the last; the datagram's
        UDP checksum right and its payload that of file PAYLOAD.
  csum  single frames: each TCP or UDP checksum right, and the payloads
        one after the other equal to PAYLOAD.

Prints "ok: ..." and exits 0, or prints what is wrong and exits 1.
"""
import sys

from scapy.all import IP, TCP, UDP, IPv6, IPv6ExtHdrFragment, rdpcap, raw
from scapy.layers.inet import defragment
from scapy.layers.inet6 import defragment6

problems = []


def fail(msg):
    problems.append(msg)


def ip4_checksum(ip):
    """The IPv4 header checksum scapy computes (the field cleared)."""
    copy = ip.copy()
    del copy.chksum
    return IP(raw(copy)).chksum


def ip_layer(p):
    return p[IP] if IP in p else p[IPv6]


def check_ip(i, p, mtu):
    ip = ip_layer(p)
    size = len(raw(ip))
    if size > mtu:
        fail(f"frame {i}: IP packet of {size} bytes > mtu {mtu}")
    if IP in p:
        if p[IP].len != size:
            fail(f"frame {i}: IPv4 length {p[IP].len}, packet {size}")
        if ip4_checksum(p[IP]) != p[IP].chksum:
            fail(f"frame {i}: IPv4 header checksum {p[IP].chksum:#06x} wrong")
    elif p[IPv6].plen != size - 40:
        fail(f"frame {i}: IPv6 payload length {p[IPv6].plen}, packet {size - 40}")


def l4_checksum_ok(p, cls):
    ip = ip_layer(p).copy()
    want = ip[cls].chksum
    del ip[cls].chksum
    return ip.__class__(raw(ip))[cls].chksum == want


def check_tcp(frames, payload, mtu, maxseg):
    data = b""
    seq0 = frames[0][TCP].seq
    ids = []
    for i, p in enumerate(frames):
        if TCP not in p:
            fail(f"frame {i}: not TCP")
            continue
        check_ip(i, p, mtu)
        t = p[TCP]
        if not l4_checksum_ok(p, TCP):
            fail(f"frame {i}: TCP checksum {t.chksum:#06x} wrong")
        seg = bytes(t.payload)
        if len(seg) > maxseg:
            fail(f"frame {i}: {len(seg)} bytes of data > {maxseg}")
        if t.seq != (seq0 + len(data)) & 0xFFFFFFFF:
            fail(f"frame {i}: seq {t.seq}, expected {(seq0 + len(data)) & 0xFFFFFFFF}")
        last = i == len(frames) - 1
        for flag, where in (("P", last), ("F", last)):
            if flag in t.flags and not where:
                fail(f"frame {i}: flag {flag} before the last segment")
        if "C" in t.flags and i > 0:
            fail(f"frame {i}: CWR after the first segment")
        if IP in p:
            ids.append(p[IP].id)
        data += seg
    if ids and ids != [(ids[0] + k) & 0xFFFF for k in range(len(ids))]:
        fail(f"IPv4 ids not consecutive: {ids[:6]}...")
    if data != payload:
        fail(f"the stream differs: {len(data)} bytes, expected {len(payload)}")
    return f"{len(frames)} TCP segments, {len(data)} bytes"


def check_udp(frames, payload, mtu, maxseg):
    v6 = IPv6 in frames[0]
    for i, p in enumerate(frames):
        check_ip(i, p, mtu)
        if len(frames) == 1:
            break
        if v6:
            if IPv6ExtHdrFragment not in p:
                fail(f"frame {i}: no fragment header")
                continue
            fh = p[IPv6ExtHdrFragment]
            more, data = fh.m, bytes(fh.payload)
        else:
            more, data = bool(p[IP].flags.MF), bytes(p[IP].payload)
        if len(data) > maxseg:
            fail(f"fragment {i}: {len(data)} bytes > {maxseg}")
        if more and len(data) % 8:
            fail(f"fragment {i}: {len(data)} bytes, not a multiple of 8")
        if more != (i < len(frames) - 1):
            fail(f"fragment {i}: more-fragments flag {more}")
    if len(frames) == 1:
        whole = frames[0]
    elif v6:
        whole = defragment6(frames)
    else:
        out = defragment(frames)
        whole = out[0] if len(out) == 1 else None
    if whole is None or UDP not in whole:
        fail("scapy could not reassemble one UDP datagram")
        return ""
    # Reassembled, the datagram's checksum covers all of it.
    if not l4_checksum_ok(whole, UDP):
        fail(f"the datagram's UDP checksum {whole[UDP].chksum:#06x} is wrong")
    got = bytes(whole[UDP].payload)
    if got != payload:
        fail(f"the datagram differs: {len(got)} bytes, expected {len(payload)}")
    return f"{len(frames)} fragments, {len(got)} bytes"


def check_csum(frames, payload, mtu):
    data = b""
    for i, p in enumerate(frames):
        check_ip(i, p, mtu)
        cls = TCP if TCP in p else UDP if UDP in p else None
        if cls is None:
            fail(f"frame {i}: neither TCP nor UDP")
            continue
        if not l4_checksum_ok(p, cls):
            fail(f"frame {i}: {cls.__name__} checksum {p[cls].chksum:#06x} wrong")
        data += bytes(p[cls].payload)
    if data != payload:
        fail(f"payloads differ: {len(data)} bytes, expected {len(payload)}")
    return f"{len(frames)} frames with checksums"


def main():
    kind, pcap, payload_file, mtu, maxseg = sys.argv[1:6]
    frames = list(rdpcap(pcap))
    payload = open(payload_file, "rb").read()
    if not frames:
        print("no frames")
        return 1
    if kind == "tcp":
        what = check_tcp(frames, payload, int(mtu), int(maxseg))
    elif kind == "udp":
        what = check_udp(frames, payload, int(mtu), int(maxseg))
    else:
        what = check_csum(frames, payload, int(mtu))
    if problems:
        print("\n".join(problems[:20]))
        return 1
    print("ok: " + what)
    return 0


if __name__ == "__main__":
    sys.exit(main())
