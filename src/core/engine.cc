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

// The IPv4 header checksum of the iph bytes at ip.
void put_ip4_checksum(uint8_t* ip, uint32_t iph) {
  ip[10] = ip[11] = 0;
  put16(ip + 10, fold(sum_bytes(ip, iph, 0)));
}

// An IP packet in an Ethernet frame (one optional VLAN tag): IPv4 with its
// options, or IPv6 whose next header is the transport (no extension
// headers); the packet's end is the frame's.
struct IpInfo {
  uint16_t type = 0;  // 0x0800 or 0x86dd
  uint32_t l3 = 0, l4 = 0;
  uint8_t proto = 0;
};
bool parse_ip(const uint8_t* f, uint32_t len, IpInfo* ip) {
  ip->l3 = l3_offset(f, len, &ip->type);
  const uint32_t l3 = ip->l3;
  if (l3 == 0) return false;
  if (ip->type == 0x0800 && len >= l3 + 20 && (f[l3] >> 4) == 4) {
    const uint32_t iph = (f[l3] & 0xf) * 4u;
    if (iph < 20 || len < l3 + iph) return false;
    if (be16(f + l3 + 6) & 0x3fff) return false;  // already a fragment
    ip->l4 = l3 + iph;
    ip->proto = f[l3 + 9];
    return true;
  }
  if (ip->type == 0x86dd && len >= l3 + 40 && (f[l3] >> 4) == 6) {
    ip->l4 = l3 + 40;
    ip->proto = f[l3 + 6];
    return true;
  }
  return false;
}

// Segments bigger than this are never made (a frame's IP packet is at
// most 64 KiB; this leaves room for its Ethernet header and a tag).
constexpr uint32_t kSegBuf = 65536 + 256;

// Where TCP's header ends in frame f (parsed as ip): its data's offset,
// or 0 if the header is not all there.
uint32_t tcp_data_at(const uint8_t* f, uint32_t len, const IpInfo& ip) {
  if (len < ip.l4 + 20) return 0;
  const uint32_t hdrs = ip.l4 + (f[ip.l4 + 12] >> 4) * 4u;
  return hdrs < ip.l4 + 20 || hdrs > len ? 0 : hdrs;
}

// Whether a partial checksum's field (at start + offset, 2 bytes) lies in
// a frame of len bytes.
bool partial_fits(uint32_t len, uint32_t start, uint32_t offset) {
  return start < len && offset <= len - start && len - start - offset >= 2;
}

// Finish a partial checksum (NEEDS_CSUM) whose field partial_fits(): the
// 16-bit field at start + offset holds the pseudo-header's sum; the sum of
// everything from start to the end, complemented, goes there.
void finish_partial(uint8_t* f, uint32_t len, uint32_t start, uint32_t offset) {
  uint16_t c = fold(sum_bytes(f + start, len - start, 0));
  if (c == 0) c = 0xffff;  // as Linux does: 0 would mean "no checksum" to UDP
  put16(f + start + offset, c);
}

// The data bytes each IP fragment of a UDP GSO frame carries (a multiple
// of 8), or 0 if none fit.
uint32_t frag_size(const IpInfo& ip, uint32_t mtu, uint32_t gso_size) {
  const uint32_t fixed = ip.l4 - ip.l3 + (ip.type == 0x86dd ? 8 : 0);  // + IPv6's fragment header
  if (mtu <= fixed) return 0;
  uint32_t fs = mtu - fixed;
  if (gso_size < fs) fs = gso_size;
  return fs & ~7u;
}

// Cut the UDP datagram of frame f (parsed as ip) into IP fragments of fs
// data bytes, IPv4 or IPv6 (a fragment header inserted).
void ip_fragment(const uint8_t* f, uint32_t len, const IpInfo& ip, uint32_t fs, SegmentSink out) {
  static thread_local uint8_t seg[kSegBuf];
  static thread_local uint32_t v6_id = 0x5eed0000u ^ uint32_t(reinterpret_cast<uintptr_t>(&v6_id));
  const bool v4 = ip.type == 0x0800;
  const uint32_t l3 = ip.l3, iph = ip.l4 - ip.l3;
  const uint32_t hdrs = ip.l4 + (v4 ? 0 : 8);  // what every fragment starts with
  const uint32_t id = v4 ? 0 : ++v6_id;
  for (uint32_t off = ip.l4; off < len;) {
    const uint32_t part = len - off <= fs ? len - off : fs;
    const bool more = off + part < len;
    const uint32_t at = off - ip.l4;  // the fragment's offset in the datagram
    memcpy(seg, f, ip.l4);
    memcpy(seg + hdrs, f + off, part);
    if (v4) {
      put16(seg + l3 + 2, iph + part);
      put16(seg + l3 + 6, (more ? 0x2000 : 0) | at / 8);  // DF cleared: this is fragmenting
      put_ip4_checksum(seg + l3, iph);
    } else {
      uint8_t* fh = seg + ip.l4;
      fh[0] = ip.proto;  // next header: the transport
      fh[1] = 0;
      put16(fh + 2, at | (more ? 1 : 0));  // at is a multiple of 8: the low 3 bits are flags
      put16(fh + 4, id >> 16);
      put16(fh + 6, id & 0xffff);
      seg[l3 + 6] = 44;  // the fixed header's next header: a fragment header
      put16(seg + l3 + 4, 8 + part);
    }
    out.fn(out.ctx, seg, hdrs + part);
    off += part;
  }
}

// What vnet_finish() will do with a frame: its parse, the GSO protocol it
// needs (6 TCP, 17 UDP, 0 none) and the frames it makes (0: bad header).
struct VnetPlan {
  IpInfo ip;
  uint8_t gso_proto = 0;
  uint32_t frames = 0;
  uint32_t seg = 0;  // TCP: the mss; UDP: the fragment size
};

constexpr uint32_t kVnetMaxFrames = 256;  // more from one frame is an attack, not traffic

VnetPlan plan_vnet(const VnetHdr& h, const uint8_t* f, uint32_t len, uint32_t mtu) {
  VnetPlan p;
  const uint8_t type = h.gso_type & uint8_t(~kGsoEcn);
  if ((h.flags & kVnetNeedsCsum) && !partial_fits(len, h.csum_start, h.csum_offset)) return p;
  if (type == kGsoNone) {
    if (h.gso_type & kGsoEcn) return p;
    p.frames = 1;
    return p;
  }
  if (h.gso_size == 0 || len > kSegBuf || !parse_ip(f, len, &p.ip)) return p;
  const bool v4 = p.ip.type == 0x0800;
  if (type == kGsoTcp4 || type == kGsoTcp6) {
    if (p.ip.proto != 6 || v4 != (type == kGsoTcp4)) return p;
    const uint32_t hdrs = tcp_data_at(f, len, p.ip);
    if (hdrs == 0 || mtu <= hdrs - p.ip.l3) return p;
    p.seg = mtu - (hdrs - p.ip.l3);
    if (h.gso_size < p.seg) p.seg = h.gso_size;
    p.gso_proto = 6;
    p.frames = len == hdrs ? 1 : (len - hdrs + p.seg - 1) / p.seg;
  } else if (type == kGsoUdp) {
    if (p.ip.proto != 17 || len < p.ip.l4 + 8) return p;
    p.seg = frag_size(p.ip, mtu, h.gso_size);
    if (p.seg == 0) return p;
    p.gso_proto = 17;
    p.frames = (len - p.ip.l4 + p.seg - 1) / p.seg;
  } else {
    return p;  // an unknown type
  }
  if (p.frames > kVnetMaxFrames) p.frames = 0;
  return p;
}

}  // namespace

bool tcp_segment(const uint8_t* f, uint32_t len, uint32_t mtu, SegmentSink out, uint32_t mss_cap) {
  static thread_local uint8_t seg[kSegBuf];
  IpInfo ip;
  if (len > sizeof seg || !parse_ip(f, len, &ip) || ip.proto != 6) return false;
  const uint32_t l3 = ip.l3, iph = ip.l4 - ip.l3, l4 = ip.l4;
  const uint32_t hdrs = tcp_data_at(f, len, ip);  // through the TCP header
  if (hdrs == 0 || mtu <= hdrs - l3) return false;
  uint32_t mss = mtu - (hdrs - l3);
  if (mss_cap && mss_cap < mss) mss = mss_cap;
  const uint32_t seq0 = uint32_t(be16(f + l4 + 4)) << 16 | be16(f + l4 + 6);
  const uint8_t flags = f[l4 + 13];
  const bool v4 = ip.type == 0x0800;
  const uint16_t id0 = v4 ? be16(f + l3 + 4) : 0;
  uint32_t off = hdrs, k = 0;
  do {  // one segment (a frame of headers alone is one too)
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
    if (v4) {
      put16(seg + l3 + 2, hdrs - l3 + part);
      put16(seg + l3 + 4, uint16_t(id0 + k));
      put_ip4_checksum(seg + l3, iph);
    } else {
      put16(seg + l3 + 4, hdrs - l4 + part);
    }
    fix_l4_checksum(seg, hdrs + part);
    out.fn(out.ctx, seg, hdrs + part);
    off += part;
    k++;
  } while (off < len);
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

uint32_t vnet_frames(const VnetHdr& h, const uint8_t* frame, uint32_t len, uint32_t mtu) {
  return plan_vnet(h, frame, len, mtu).frames;
}

bool vnet_finish(const VnetHdr& h, uint8_t* f, uint32_t len, uint32_t mtu, SegmentSink out) {
  const VnetPlan p = plan_vnet(h, f, len, mtu);
  if (p.frames == 0) return false;
  if (p.gso_proto == 6) return tcp_segment(f, len, mtu, out, p.seg);  // every checksum afresh
  if (h.flags & kVnetNeedsCsum) finish_partial(f, len, h.csum_start, h.csum_offset);
  if (p.gso_proto == 17 && p.frames > 1) {
    ip_fragment(f, len, p.ip, p.seg, out);
  } else {
    out.fn(out.ctx, f, len);
  }
  return true;
}

}  // namespace unetmap
