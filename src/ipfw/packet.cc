#include "ipfw/packet.h"

#include <string.h>

namespace unetmap::ipfw {
namespace {

inline uint16_t be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

// The upper layer's header of a first (or only) fragment: what rules look
// at must be in the frame (TCP: 20 bytes, UDP: 8, SCTP: 12, ICMP: 4), else
// the packet is truncated.
void upper(const uint8_t* f, uint32_t len, Packet* p) {
  const uint8_t* u = f + p->l4;
  const uint32_t room = len - p->l4;
  switch (p->proto) {
    case 6:
    case 17:
    case 132: {
      const uint32_t need = p->proto == 6 ? 20 : p->proto == 17 ? 8 : 12;
      if (room < need) {
        p->truncated = true;
        return;
      }
      p->has_ports = true;
      p->sport = be16(u);
      p->dport = be16(u + 2);
      if (p->proto == 6) {
        p->has_tcp = true;
        p->tcp_flags = u[13];
      }
      break;
    }
    case 1:
    case 58:
      if (room < 4) {
        p->truncated = true;
        return;
      }
      p->has_icmp = true;
      p->icmp_type = u[0];
      break;
    default:
      break;
  }
}

void ipv4(const uint8_t* f, uint32_t len, Packet* p) {
  const uint8_t* ip = f + p->l3;
  p->truncated = true;
  if (len - p->l3 < 20 || (ip[0] >> 4) != 4) return;
  const uint32_t ihl = (ip[0] & 15) * 4u;
  if (ihl < 20 || len - p->l3 < ihl) return;
  p->truncated = false;
  p->ipv = 4;
  p->dscp = ip[1] >> 2;
  p->ip_len = be16(ip + 2);
  p->ttl = ip[8];
  p->proto = ip[9];
  memcpy(p->src, ip + 12, 4);
  memcpy(p->dst, ip + 16, 4);
  const uint16_t off = be16(ip + 6);
  p->frag = (off & 0x1fff) != 0;
  p->fragmented = (off & 0x3fff) != 0;
  p->l4 = p->l3 + ihl;
  if (!p->frag) upper(f, len, p);
}

void ipv6(const uint8_t* f, uint32_t len, Packet* p) {
  const uint8_t* ip = f + p->l3;
  p->truncated = true;
  if (len - p->l3 < 40 || (ip[0] >> 4) != 6) return;
  p->ipv = 6;
  p->dscp = uint8_t((be16(ip) >> 4) & 0xff) >> 2;
  p->ip_len = uint16_t(be16(ip + 4) + 40u > 0xffff ? 0xffff : be16(ip + 4) + 40u);
  p->ttl = ip[7];
  memcpy(p->src, ip + 8, 16);
  memcpy(p->dst, ip + 24, 16);
  uint8_t next = ip[6];
  uint32_t at = p->l3 + 40;
  // Extension headers, every one (each takes 8 bytes or more, so the
  // frame's length bounds the walk): hop-by-hop, routing, fragment,
  // destination options, AH, mobility, HIP, shim6.
  for (;;) {
    if (next == 0 || next == 43 || next == 60 || next == 135 || next == 139 || next == 140) {
      if (len - at < 8) return;
      const uint8_t nx = f[at];
      const uint32_t hl = (f[at + 1] + 1u) * 8;
      if (len - at < hl) return;
      at += hl;
      next = nx;
    } else if (next == 51) {  // AH: its length in 4-byte words, less 2
      if (len - at < 8) return;
      const uint8_t nx = f[at];
      const uint32_t hl = (f[at + 1] + 2u) * 4;
      if (len - at < hl) return;
      at += hl;
      next = nx;
    } else if (next == 44) {
      if (len - at < 8) return;
      const uint16_t off = be16(f + at + 2);
      p->fragmented = true;
      p->frag = p->frag || (off & 0xfff8) != 0;
      next = f[at];
      at += 8;
    } else {
      break;
    }
  }
  p->truncated = false;
  p->proto = next;
  p->l4 = at;
  if (!p->frag) upper(f, len, p);
}

}  // namespace

void parse_packet(const uint8_t* f, uint32_t len, Packet* p) {
  *p = Packet();
  p->frame = f;
  p->len = p->wire_len = len;
  if (len < 14) return;
  uint32_t off = 12;
  uint16_t type = be16(f + 12);
  for (int k = 0; type == 0x8100 || type == 0x88a8 || type == 0x9100; k++) {
    if (k == kMaxTags || len < off + 6) {  // what it carries cannot be seen
      p->truncated = true;
      return;
    }
    off += 4;
    type = be16(f + off);
  }
  p->l3 = off + 2;
  if (type == 0x0800) ipv4(f, len, p);
  else if (type == 0x86dd) ipv6(f, len, p);
}

}  // namespace unetmap::ipfw
