// What ipfw's rules look at in a frame: parsed once per packet, bounded
// by the frame's length whatever its headers claim.
#pragma once

#include <cstdint>

namespace unetmap::ipfw {

struct Packet {
  const uint8_t* frame = nullptr;
  uint32_t len = 0;        // bytes at frame (all the parser may read)
  uint32_t wire_len = 0;   // the whole packet's length (counters); len unless set
  uint8_t ipv = 0;         // 4, 6, or 0: not IP (ARP and the rest)
  bool truncated = false;  // IP by its type, but a header it needs is not all in the
                           // frame (or too many tags): no rule can judge it
  uint8_t proto = 0;       // the upper-layer protocol (after IPv6's extension headers)
  uint8_t src[16] = {}, dst[16] = {};  // IPv4 in the first 4 bytes
  bool has_ports = false;  // TCP, UDP or SCTP with its ports in the frame
  uint16_t sport = 0, dport = 0;
  bool has_tcp = false;    // the TCP header's flags are in the frame
  uint8_t tcp_flags = 0;
  bool has_icmp = false;
  uint8_t icmp_type = 0;
  bool frag = false;       // a fragment other than the first
  bool fragmented = false; // any fragment (first included)
  uint16_t ip_len = 0;     // IPv4 total length, IPv6 payload length + 40
  uint8_t ttl = 0;         // TTL or hop limit
  uint8_t dscp = 0;
  uint32_t l3 = 0, l4 = 0; // offsets of the IP header and the upper layer in frame
};

// Fill *p from an Ethernet frame (up to kMaxTags VLAN tags, 802.1Q,
// 802.1ad or 0x9100). Only the frame's first len bytes are read.
constexpr int kMaxTags = 4;
void parse_packet(const uint8_t* frame, uint32_t len, Packet* p);

}  // namespace unetmap::ipfw
