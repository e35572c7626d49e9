// The packet engine's offloads (engine.h): what a NIC's offloads leave
// for software to do, and what VALE ports with virtio-net headers will ask.
//
// Checksums. Frames may carry a TCP/UDP checksum that the sender left for
// the hardware to finish (a veth peer with checksum offload, the usual
// case in containers): valid on the way to a NIC, invalid to a stack that
// receives them as they are. fix_l4_checksum() computes it afresh.
//
// Segmentation. A socket sees frames as the stack has them: a veth peer's
// TSO or a NIC's GRO gives TCP frames of up to 64 KiB, which
// tcp_segment() cuts back to the wire's size, as the NIC would have sent
// them, each with its own headers and checksums.
#include "core/engine.h"

#include <cstring>

namespace unetmap {

namespace {

uint16_t be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

// One's complement sum of n bytes, big-endian words.
uint32_t sum_bytes(const uint8_t* p, uint32_t n, uint32_t sum) {
  for (; n >= 2; p += 2, n -= 2) sum += be16(p);
  if (n) sum += uint32_t(p[0]) << 8;
  return sum;
}

uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

// Where the IP header starts and its version, or 0.
uint32_t l3_offset(const uint8_t* f, uint32_t len, uint16_t* type) {
  if (len < 14) return 0;
  *type = be16(f + 12);
  if (*type == 0x8100 && len >= 18) {
    *type = be16(f + 16);
    return 18;
  }
  return 14;
}

void put16(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}

}  // namespace

bool tcp_segment(const uint8_t* f, uint32_t len, uint32_t mtu, SegmentSink out) {
  uint16_t type = 0;
  uint32_t l3 = l3_offset(f, len, &type), iph;
  if (type == 0x0800 && len >= l3 + 20 && f[l3 + 9] == 6) {
    iph = (f[l3] & 0xf) * 4u;
  } else if (type == 0x86dd && len >= l3 + 40 && f[l3 + 6] == 6) {
    iph = 40;
  } else {
    return false;
  }
  const uint32_t l4 = l3 + iph;
  if (len < l4 + 20) return false;
  const uint32_t hdrs = l4 + (f[l4 + 12] >> 4) * 4u;  // through the TCP header
  if (hdrs > len || mtu <= hdrs - l3) return false;
  const uint32_t mss = mtu - (hdrs - l3);
  const uint32_t seq0 = uint32_t(be16(f + l4 + 4)) << 16 | be16(f + l4 + 6);
  const uint8_t flags = f[l4 + 13];
  const uint16_t id0 = type == 0x0800 ? be16(f + l3 + 4) : 0;
  static thread_local uint8_t seg[65536];
  for (uint32_t off = hdrs, k = 0; off < len; off += mss, k++) {
    const uint32_t part = len - off < mss ? len - off : mss;
    memcpy(seg, f, hdrs);
    memcpy(seg + hdrs, f + off, part);
    const uint32_t seq = seq0 + (off - hdrs);
    put16(seg + l4 + 4, seq >> 16);
    put16(seg + l4 + 6, seq & 0xffff);
    uint8_t fl = flags;
    if (off + part < len) fl &= uint8_t(~0x09);  // FIN, PSH: last segment only
    if (k > 0) fl &= uint8_t(~0x80);             // CWR: first only
    seg[l4 + 13] = fl;
    if (type == 0x0800) {
      put16(seg + l3 + 2, hdrs - l3 + part);
      put16(seg + l3 + 4, uint16_t(id0 + k));
      seg[l3 + 10] = seg[l3 + 11] = 0;
      put16(seg + l3 + 10, fold(sum_bytes(seg + l3, iph, 0)));
    } else {
      put16(seg + l3 + 4, hdrs - l4 + part);
    }
    fix_l4_checksum(seg, hdrs + part);
    out.fn(out.ctx, seg, hdrs + part);
  }
  return true;
}

void fix_l4_checksum(uint8_t* f, uint32_t len) {
  uint32_t off = 14;
  if (len < off) return;
  uint16_t type = be16(f + 12);
  if (type == 0x8100 && len >= 18) {
    type = be16(f + 16);
    off = 18;
  }
  uint8_t proto;
  uint32_t l4, l4_len, sum = 0;
  if (type == 0x0800) {
    if (len < off + 20) return;
    const uint8_t* ip = f + off;
    uint32_t ihl = (ip[0] & 0xf) * 4u, total = be16(ip + 2);
    if (ihl < 20 || total < ihl || off + total > len) return;
    if (be16(ip + 6) & 0x3fff) return;  // a fragment
    proto = ip[9];
    l4 = off + ihl;
    l4_len = total - ihl;
    sum = sum_bytes(ip + 12, 8, 0);  // addresses
  } else if (type == 0x86dd) {
    if (len < off + 40) return;
    const uint8_t* ip = f + off;
    proto = ip[6];
    l4 = off + 40;
    l4_len = be16(ip + 4);
    if (l4 + l4_len > len) return;
    sum = sum_bytes(ip + 8, 32, 0);
  } else {
    return;
  }
  uint32_t at;
  if (proto == 6 && l4_len >= 20) {
    at = l4 + 16;
  } else if (proto == 17 && l4_len >= 8) {
    at = l4 + 6;
    if (type == 0x0800 && be16(f + at) == 0) return;  // IPv4 UDP without a checksum
  } else {
    return;
  }
  sum += proto + l4_len;
  f[at] = f[at + 1] = 0;
  uint16_t c = fold(sum_bytes(f + l4, l4_len, sum));
  if (proto == 17 && c == 0) c = 0xffff;
  f[at] = uint8_t(c >> 8);
  f[at + 1] = uint8_t(c);
}

}  // namespace unetmap
