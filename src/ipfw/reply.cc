#include "ipfw/reply.h"

#include <string.h>

namespace unetmap::ipfw {
namespace {

inline uint16_t be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
inline uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
inline void put16(uint8_t* p, uint32_t v) { p[0] = uint8_t(v >> 8), p[1] = uint8_t(v); }
inline void put32(uint8_t* p, uint32_t v) { put16(p, v >> 16), put16(p + 2, v); }

uint32_t sum(const uint8_t* p, uint32_t n, uint32_t s) {
  for (uint32_t k = 0; k + 1 < n; k += 2) s += be16(p + k);
  if (n & 1) s += uint32_t(p[n - 1]) << 8;
  return s;
}

uint16_t fold(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return uint16_t(~s);
}

// Ethernet (and VLAN tags) of the reply, then the IP header with the
// addresses swapped; returns the offset of the upper layer.
uint32_t ip_head(const Packet& p, uint8_t* out, uint8_t proto, uint32_t l4_len) {
  memcpy(out, p.frame, p.l3);  // the tags come back as they went
  memcpy(out, p.frame + 6, 6);
  memcpy(out + 6, p.frame, 6);
  uint8_t* ip = out + p.l3;
  if (p.ipv == 4) {
    memset(ip, 0, 20);
    ip[0] = 0x45;
    put16(ip + 2, 20 + l4_len);
    ip[8] = 64;
    ip[9] = proto;
    memcpy(ip + 12, p.dst, 4);
    memcpy(ip + 16, p.src, 4);
    put16(ip + 10, fold(sum(ip, 20, 0)));
    return p.l3 + 20;
  }
  memset(ip, 0, 40);
  ip[0] = 0x60;
  put16(ip + 4, l4_len);
  ip[6] = proto;
  ip[7] = 64;
  memcpy(ip + 8, p.dst, 16);
  memcpy(ip + 24, p.src, 16);
  return p.l3 + 40;
}

// The pseudo-header sum of the reply's addresses (swapped) for TCP or ICMPv6.
uint32_t pseudo(const Packet& p, uint8_t proto, uint32_t l4_len) {
  const uint32_t n = p.ipv == 6 ? 16 : 4;
  return sum(p.src, n, sum(p.dst, n, proto + l4_len));
}

uint32_t tcp_rst(const Packet& p, uint8_t* out) {
  const uint8_t* t = p.frame + p.l4;
  if (p.tcp_flags & 0x04) return 0;  // never answer a RST
  if (p.len - p.l4 < 20) return 0;
  const uint32_t doff = (t[12] >> 4) * 4u;
  const uint32_t hdrs = p.l4 - p.l3;  // IP header and IPv6's extension headers
  const uint32_t ip_payload = p.ip_len > hdrs ? p.ip_len - hdrs : 0;
  const uint32_t data = ip_payload > doff ? ip_payload - doff : 0;
  const uint32_t l4 = ip_head(p, out, 6, 20);
  uint8_t* r = out + l4;
  memset(r, 0, 20);
  put16(r, p.dport);
  put16(r + 2, p.sport);
  if (p.tcp_flags & 0x10) {  // it acked: the RST takes that sequence number
    put32(r + 4, be32(t + 8));
    r[13] = 0x04;
  } else {
    const uint32_t len = data + ((p.tcp_flags & 0x02) ? 1 : 0) + ((p.tcp_flags & 0x01) ? 1 : 0);
    put32(r + 8, be32(t + 4) + len);
    r[13] = 0x14;
  }
  r[12] = 5 << 4;
  put16(r + 16, fold(sum(r, 20, pseudo(p, 6, 20))));
  return l4 + 20;
}

bool is_icmp_error(const Packet& p) {
  if (!p.has_icmp) return p.proto == 1 || p.proto == 58;  // unreadable: left alone
  if (p.proto == 58) return p.icmp_type < 128;
  const uint8_t t = p.icmp_type;
  return t == 3 || t == 4 || t == 5 || t == 11 || t == 12;
}

uint32_t icmp_unreach(const Packet& p, uint32_t code, uint8_t* out, uint32_t cap) {
  if (is_icmp_error(p)) return 0;
  const uint32_t hdr = p.ipv == 4 ? 20 : 40;
  // The quote: IPv4's header and 8 bytes; IPv6: as much as a 1280-byte packet holds.
  uint32_t quote = p.len - p.l3;
  if (quote > p.ip_len) quote = p.ip_len;  // not the Ethernet padding
  const uint32_t want = p.ipv == 4 ? (p.l4 - p.l3) + 8 : 1280 - 40 - 8;
  if (quote > want) quote = want;
  if (p.l3 + hdr + 8 + quote > cap) quote = cap - p.l3 - hdr - 8;
  const uint32_t l4_len = 8 + quote;
  const uint8_t proto = p.ipv == 4 ? 1 : 58;
  const uint32_t l4 = ip_head(p, out, proto, l4_len);
  uint8_t* r = out + l4;
  memset(r, 0, 8);
  if (p.ipv == 4) {
    r[0] = 3;
    r[1] = uint8_t(code);
  } else {
    r[0] = 1;
    r[1] = code == 3 ? 4 : code == 1 ? 3 : 1;  // port, address, else administratively prohibited
  }
  memcpy(r + 8, p.frame + p.l3, quote);
  const uint32_t s = p.ipv == 4 ? sum(r, l4_len, 0) : sum(r, l4_len, pseudo(p, 58, l4_len));
  put16(r + 2, fold(s));
  return l4 + l4_len;
}

}  // namespace

uint32_t make_reply(const Packet& p, Action a, uint32_t code, uint8_t* out, uint32_t cap) {
  if (!p.ipv || p.frag || cap < 128 || p.l3 + 60 > cap) return 0;
  // Nobody to answer: a packet to a group, or from one (a reply to a
  // forged group source would go to every host), or from no address.
  if ((p.frame[0] & 1) || (p.frame[6] & 1)) return 0;
  static const uint8_t kZero[16] = {};
  if (p.ipv == 4 && (p.dst[0] >= 224 || p.src[0] >= 224 || !memcmp(p.src, kZero, 4))) return 0;
  if (p.ipv == 6 && (p.dst[0] == 0xff || p.src[0] == 0xff || !memcmp(p.src, kZero, 16))) return 0;
  if (p.proto == 6 && p.has_tcp && (a == Action::kReject || a == Action::kReset)) return tcp_rst(p, out);
  if (a == Action::kReset) return 0;
  return icmp_unreach(p, a == Action::kReject ? 1 : code, out, cap);
}

}  // namespace unetmap::ipfw
