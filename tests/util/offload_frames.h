// Frames as a sender that offloads leaves them (a partial checksum, GSO),
// and scapy's verdict on what the packet engine made of them
// (tests/scripts/check_offload.py): engine_test checks vnet_finish() with
// them, vhost_test the VALE mismatch path. CHECK_OFFLOAD_PY names the
// script.
#pragma once

#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/engine.h"

namespace nmtest {

namespace offload_detail {

inline uint32_t sum16(const uint8_t* p, size_t n, uint32_t s = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) s += uint32_t(p[i]) << 8 | p[i + 1];
  if (n & 1) s += uint32_t(p[n - 1]) << 8;
  return s;
}
inline uint16_t folded(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return uint16_t(s);
}
inline void put_be16(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
inline std::vector<uint8_t> bytes(size_t len, uint32_t seed) {
  std::vector<uint8_t> v(len);
  uint32_t x = 0x9e3779b9u * (seed + 1);
  for (auto& c : v) {
    x = x * 1664525u + 1013904223u;
    c = uint8_t(x >> 24);
  }
  return v;
}
inline bool write_file(const std::string& path, const void* p, size_t n) {
  FILE* fp = fopen(path.c_str(), "wb");
  if (!fp) return false;
  const bool ok = fwrite(p, 1, n, fp) == n;
  return fclose(fp) == 0 && ok;
}

}  // namespace offload_detail

// An Ethernet frame (an optional VLAN tag) with IPv4 or IPv6 and TCP (12
// bytes of options) or UDP, `payload` bytes of data, as a sender that
// offloads leaves it: the IPv4 header checksum right, the TCP/UDP field
// holding the pseudo-header's sum for the device to finish.
struct Offloaded {
  std::vector<uint8_t> frame, payload;
  uint32_t l4 = 0;
  unetmap::VnetHdr hdr;  // NEEDS_CSUM at the transport's checksum; no GSO
  // The header's 10 bytes as they go on the wire (little-endian), then
  // `len - 10` zero bytes (num_buffers for 12), then the frame.
  std::vector<uint8_t> with_header(uint32_t len) const {
    std::vector<uint8_t> w(len, 0);
    const uint16_t f[4] = {hdr.hdr_len, hdr.gso_size, hdr.csum_start, hdr.csum_offset};
    w[0] = hdr.flags, w[1] = hdr.gso_type;
    for (int i = 0; i < 4; i++) w[2 + 2 * i] = uint8_t(f[i]), w[3 + 2 * i] = uint8_t(f[i] >> 8);
    w.insert(w.end(), frame.begin(), frame.end());
    return w;
  }
};

inline Offloaded offloaded(bool v6, bool tcp, uint32_t payload, bool vlan, uint8_t tcp_flags = 0x18) {
  using namespace offload_detail;
  Offloaded o;
  const uint32_t l3 = vlan ? 18 : 14, iph = v6 ? 40 : 20, l4h = tcp ? 32 : 8;
  o.l4 = l3 + iph;
  o.payload = bytes(payload, payload + v6 + 2 * tcp);
  std::vector<uint8_t>& f = o.frame;
  f.assign(o.l4 + l4h + payload, 0);
  memset(f.data(), 0x02, 6);
  memset(f.data() + 6, 0x04, 6);
  if (vlan) put_be16(&f[12], 0x8100), put_be16(&f[14], 42);
  put_be16(&f[l3 - 2], v6 ? 0x86dd : 0x0800);
  uint8_t* ip = &f[l3];
  const uint8_t proto = tcp ? 6 : 17;
  uint32_t pseudo = proto + l4h + payload;
  if (v6) {
    ip[0] = 0x60;
    put_be16(ip + 4, l4h + payload);
    ip[6] = proto, ip[7] = 64;
    for (int i = 0; i < 32; i++) ip[8 + i] = uint8_t(0x20 + i);
    pseudo = sum16(ip + 8, 32, pseudo);
  } else {
    ip[0] = 0x45;
    put_be16(ip + 2, iph + l4h + payload);
    put_be16(ip + 4, 0xfff0);  // ids wrap within the segments
    ip[8] = 64, ip[9] = proto;
    const uint8_t addrs[8] = {10, 0, 0, 1, 10, 0, 0, 2};
    memcpy(ip + 12, addrs, 8);
    put_be16(ip + 10, uint16_t(~folded(sum16(ip, 20))));
    pseudo = sum16(ip + 12, 8, pseudo);
  }
  uint8_t* l4 = &f[o.l4];
  put_be16(l4, 40000), put_be16(l4 + 2, tcp ? 80 : 9999);  // no port scapy decodes further
  if (tcp) {
    put_be16(l4 + 4, 0xffff), put_be16(l4 + 6, 0xf000);  // sequence numbers wrap too
    l4[12] = 8 << 4;
    l4[13] = tcp_flags;
    put_be16(l4 + 14, 512);
    const uint8_t opts[12] = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2};  // NOP NOP timestamps
    memcpy(l4 + 20, opts, 12);
  } else {
    put_be16(l4 + 4, l4h + payload);
  }
  const uint32_t at = tcp ? 16 : 6;
  put_be16(l4 + at, folded(pseudo));
  memcpy(l4 + l4h, o.payload.data(), payload);
  o.hdr.flags = unetmap::kVnetNeedsCsum;
  o.hdr.csum_start = uint16_t(o.l4);
  o.hdr.csum_offset = uint16_t(at);
  return o;
}

// scapy's verdict on frames (check_offload.py KIND ...): "" if it agrees,
// else what it says is wrong.
inline std::string scapy_says(const char* kind, const std::vector<std::vector<uint8_t>>& frames,
                              const std::vector<uint8_t>& payload, uint32_t mtu, uint32_t maxseg) {
  char dir[] = "/tmp/unetmap-offload.XXXXXX";
  if (!mkdtemp(dir)) return "mkdtemp failed";
  const std::string d = dir;
  std::vector<uint8_t> pcap;
  auto put32 = [&](uint32_t v) {
    for (int i = 0; i < 4; i++) pcap.push_back(uint8_t(v >> 8 * i));
  };
  put32(0xa1b2c3d4), put32(2 | 4u << 16), put32(0), put32(0), put32(262144), put32(1);  // Ethernet
  for (const auto& f : frames) {
    put32(0), put32(0), put32(uint32_t(f.size())), put32(uint32_t(f.size()));
    pcap.insert(pcap.end(), f.begin(), f.end());
  }
  std::string said;
  if (!offload_detail::write_file(d + "/frames.pcap", pcap.data(), pcap.size()) ||
      !offload_detail::write_file(d + "/payload", payload.data(), payload.size()))
    said = "cannot write " + d;
  const std::string cmd = std::string("/usr/bin/python3 ") + CHECK_OFFLOAD_PY + " " + kind + " " + d +
                          "/frames.pcap " + d + "/payload " + std::to_string(mtu) + " " +
                          std::to_string(maxseg) + " 2>&1";
  FILE* p = said.empty() ? popen(cmd.c_str(), "r") : nullptr;
  char line[512];
  while (p && fgets(line, sizeof line, p)) said += line;
  const int rc = p ? pclose(p) : -1;
  const std::string rm = "rm -rf " + d;
  if (system(rm.c_str()) != 0) said += "(cleanup failed)";
  if (rc == 0 && said.rfind("ok: ", 0) == 0) return "";
  return said.empty() ? "check_offload.py did not run" : said;
}

}  // namespace nmtest
