// IP frames built field by field for tests of code that parses them
// (ipfw's matcher, lb's flow hash): Ethernet, an optional VLAN tag, IPv4
// or IPv6, then TCP, UDP or ICMP.
#pragma once

#include <arpa/inet.h>
#include <string.h>

#include <cstdint>
#include <vector>

namespace nmtest {

// A frame: Ethernet, optional VLAN tag, IPv4 or IPv6, then TCP, UDP or ICMP.
struct FrameSpec {
  bool v6 = false;
  const char* src = "10.0.0.1";
  const char* dst = "10.0.0.2";
  uint8_t proto = 6;
  uint16_t sport = 1234, dport = 80;
  uint8_t tcp_flags = 0x02;
  uint8_t icmp_type = 8;
  uint8_t ttl = 64, dscp = 0;
  uint16_t frag_off = 0;  // IPv4: offset in 8-byte units
  bool vlan = false;
  uint32_t payload = 20;
  uint8_t smac[6] = {2, 0, 0, 0, 0, 1}, dmac[6] = {2, 0, 0, 0, 0, 2};
};

inline std::vector<uint8_t> frame(const FrameSpec& s) {
  std::vector<uint8_t> f(14, 0);
  memcpy(&f[0], s.dmac, 6);
  memcpy(&f[6], s.smac, 6);
  size_t at = 12;
  if (s.vlan) {
    f.insert(f.begin() + 12, {0x81, 0x00, 0x00, 0x05});
    at = 16;
  }
  f[at] = s.v6 ? 0x86 : 0x08;
  f[at + 1] = s.v6 ? 0xdd : 0x00;
  const uint32_t l4len = (s.proto == 6 ? 20 : 8) + s.payload;
  std::vector<uint8_t> ip(s.v6 ? 40 : 20, 0);
  if (s.v6) {
    ip[0] = uint8_t(0x60 | s.dscp >> 2);
    ip[1] = uint8_t((s.dscp & 3) << 6);
    ip[4] = uint8_t(l4len >> 8), ip[5] = uint8_t(l4len);
    ip[6] = s.proto, ip[7] = s.ttl;
    inet_pton(AF_INET6, s.src, &ip[8]);
    inet_pton(AF_INET6, s.dst, &ip[24]);
  } else {
    ip[0] = 0x45;
    ip[1] = uint8_t(s.dscp << 2);
    const uint32_t tot = 20 + l4len;
    ip[2] = uint8_t(tot >> 8), ip[3] = uint8_t(tot);
    ip[6] = uint8_t(s.frag_off >> 8), ip[7] = uint8_t(s.frag_off);
    ip[8] = s.ttl, ip[9] = s.proto;
    inet_pton(AF_INET, s.src, &ip[12]);
    inet_pton(AF_INET, s.dst, &ip[16]);
  }
  f.insert(f.end(), ip.begin(), ip.end());
  std::vector<uint8_t> l4(l4len, 0);
  if (s.proto == 6 || s.proto == 17) {
    l4[0] = uint8_t(s.sport >> 8), l4[1] = uint8_t(s.sport);
    l4[2] = uint8_t(s.dport >> 8), l4[3] = uint8_t(s.dport);
    if (s.proto == 6) l4[12] = 0x50, l4[13] = s.tcp_flags;
  } else {
    l4[0] = s.icmp_type;
  }
  f.insert(f.end(), l4.begin(), l4.end());
  return f;
}

}  // namespace nmtest
