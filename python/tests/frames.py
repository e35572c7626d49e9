"""Frames for the tests: distinct numbered ones, and pkt-gen's."""

import socket
import struct


def numbered(i, length):
    """A frame of `length` bytes, broadcast Ethernet, whose payload says i
    (and differs from every other i's in every 8 bytes)."""
    head = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x88\xb5"  # local experimental ethertype
    body = struct.pack("!Q", i) * ((length - len(head)) // 8 + 1)
    return (head + body)[:length]


def _csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def pktgen_frame(length=60, src_mac="00:00:00:00:00:01", dst_mac="ff:ff:ff:ff:ff:ff",
                 src="10.0.0.1", sport=1234, dst="10.1.0.1", dport=4321):
    """The frame pkt-gen -f tx sends with its defaults: Ethernet, IPv4, UDP
    (checksum 0), payload 'a'..'z' by offset in the frame."""
    eth = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", "")) + b"\x08\x00"
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, length - 14, 0, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    udp = struct.pack("!HHHH", sport, dport, length - 34, 0)
    payload = bytes(ord("a") + i % 26 for i in range(42, length))
    return eth + ip + udp + payload
