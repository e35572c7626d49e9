// The packet engine: what every path that moves packets between rings
// shares (VALE, monitors, NIC ports, the bridge's forwarding core).
//
// Ring arithmetic. A ring of n slots; a producer never fills the slot
// before its consumer's next one (one slot stays empty, as in netmap), so
// a producer at `tail` whose consumer is at `cur` may fill
// ring_space(tail, cur, n) slots.
//
// Frames. A frame is a chain of slots linked by NS_MOREFRAG; frame_at()
// finds its slots and bytes among the slots present, never reading past
// them (a chain that does not end there is open: its last fragment is
// still to come, or never will be).
//
// Copies. copy_frame() copies one frame, given as fragments (buffer,
// length), into the slots of a destination ring whose buffers hold B
// bytes. The rule (DESIGN.md §6): a frame never arrives with a slot length
// beyond its buffer. Each source fragment goes to destination slots of its
// own, so a frame between rings of equal buffers keeps the chain the
// sender made (as netmap's VALE does); a fragment longer than B is split
// over a NS_MOREFRAG chain of ceil(len / B) slots. frame_slots() says how
// many destination slots that takes, or 0 if the frame may not go (longer
// than the destination's maximum frame, or shorter than its own header):
// the caller reserves that many (all or nothing) or drops the frame and
// counts it. Nothing is ever cut short.
//
// virtio-net headers (netmap's virt_hdr_len: 0, 10 or 12 bytes in front of
// the Ethernet frame, per port). Equal lengths on both sides: the header is
// part of the bytes and passes through. Different: the source's header is
// dropped and the destination gets a zeroed one of its own length. (A
// header that asks for work does not go through this copy: VALE's
// mismatch path finishes it with vnet_finish() first, or, between two
// lengths that both have a header, copies its fields over.)
//
// Sources and destinations are given by callables, inlined into the
// caller's loop: a fragment source `Frag src(uint32_t i)` for i < nfrags,
// and a buffer resolver `uint8_t* bufs(uint32_t buf_idx)` that returns the
// destination slot's buffer, or nullptr if that slot names no buffer the
// destination ring owns (its application may have written anything
// there): such a slot gets length 0, and the copy goes on.
//
// Offloads (engine.cc): TCP/UDP checksums, TCP segmentation and IP
// fragmentation of Ethernet frames, for NIC ports, VALE's mismatch path
// and vhost-user ports (what a virtio-net header asks for).
#pragma once

#include <net/netmap.h>

#include <cstdint>
#include <cstring>

namespace unetmap {

// ---- ring arithmetic (netmap's nm_next, nm_prev, nm_ring_space) ----

// The slot after i, and the slot before i.
inline uint32_t next_slot(uint32_t i, uint32_t n) { return i + 1 == n ? 0 : i + 1; }
inline uint32_t prev_slot(uint32_t i, uint32_t n) { return i == 0 ? n - 1 : i - 1; }
// k slots after i, k slots before i (k <= n).
inline uint32_t ring_add(uint32_t i, uint32_t k, uint32_t n) {
  i += k;
  return i >= n ? i - n : i;
}
inline uint32_t ring_sub(uint32_t i, uint32_t k, uint32_t n) { return i >= k ? i - k : i + n - k; }
// Slots from `from` up to (not including) `to`.
inline uint32_t ring_dist(uint32_t from, uint32_t to, uint32_t n) {
  return to >= from ? to - from : to + n - from;
}
// Slots a producer at `tail` may fill before it reaches its consumer's
// next slot `cur` (the slot before cur stays empty).
inline uint32_t ring_space(uint32_t tail, uint32_t cur, uint32_t n) {
  return ring_dist(tail, prev_slot(cur, n), n);
}

// ---- frames ----

// One frame of a ring: nslots 0 if it is open (no slot without
// NS_MOREFRAG among those present).
struct FrameSpan {
  uint32_t nslots = 0;
  uint32_t len = 0;     // bytes, the sum of the slots' lengths
  uint32_t maxlen = 0;  // the longest fragment
  uint16_t flags = 0;   // the slots' flags, or'ed
  bool buf0 = false;    // a slot names buffer 0 (never a packet's)
};

// The frame whose first slot is i, among the `avail` slots from i on, of
// a ring of n slots. Slot is netmap_slot or a copy of its first fields
// (buf_idx, len, flags).
template <class Slot>
inline FrameSpan frame_at(const Slot* slot, uint32_t i, uint32_t avail, uint32_t n) {
  FrameSpan f;
  for (uint32_t c = 1; c <= avail; c++, i = next_slot(i, n)) {
    const Slot& s = slot[i];
    const uint32_t len = s.len;
    const uint16_t flags = s.flags;
    f.len += len;
    if (len > f.maxlen) f.maxlen = len;
    f.flags |= flags;
    f.buf0 |= s.buf_idx == 0;
    if (!(flags & NS_MOREFRAG)) {
      f.nslots = c;
      return f;
    }
  }
  f.nslots = 0;
  return f;
}

// ---- copies ----

// One fragment of a source frame.
struct Frag {
  const uint8_t* buf;
  uint32_t len;
};
// The length of a fragment its source cannot give (a slot that names no
// buffer of the ring): gather_frame() fails on it.
constexpr uint32_t kBadFrag = ~0u;

// How a frame goes from one port to another.
struct CopyRule {
  uint32_t src_buf = 0;    // source buffer size: bytes readable at a Frag's buf (0: exactly len)
  uint32_t dst_buf = 0;    // destination buffer size (B)
  uint32_t src_hdr = 0;    // virtio-net header lengths (0, 10, 12)
  uint32_t dst_hdr = 0;
  uint32_t max_frame = 65535;  // longest frame the destination takes, its header included
  uint16_t flags = 0;      // or'ed into every destination slot (NS_TXMON for monitors)
};

namespace engine_detail {

// What one slot may carry: its buffer, within what a slot's len can say.
inline uint32_t slot_room(uint32_t buf_size) { return buf_size < 0xffff ? buf_size : 0xffff; }

// Slots a destination fragment of len bytes takes.
inline uint32_t slots_for(uint32_t len, uint32_t b) { return len <= b ? 1 : (len + b - 1) / b; }

// Move (fi, off) past `skip` bytes of the fragments; false if they are
// not there. Fragments the skip empties are passed.
template <class Src>
inline bool skip_bytes(const Src& src, uint32_t nfrags, uint32_t skip, uint32_t* fi, uint32_t* off) {
  for (; *fi < nfrags; ++*fi, *off = 0) {
    const uint32_t len = src(*fi).len;
    if (skip <= len) {
      *off = skip;
      if (skip == len && skip != 0 && *fi + 1 < nfrags) {
        ++*fi;
        *off = 0;
      }
      return true;
    }
    skip -= len;
  }
  return false;
}

}  // namespace engine_detail

// Destination slots for the frame of `nfrags` fragments and `len` bytes
// (their sum) under rule r; 0 if it may not go.
template <class Src>
inline uint32_t frame_slots(const Src& src, uint32_t nfrags, uint32_t len, const CopyRule& r) {
  const uint32_t b = engine_detail::slot_room(r.dst_buf);
  if (nfrags == 1 && r.src_hdr == r.dst_hdr) return len <= r.max_frame ? engine_detail::slots_for(len, b) : 0;
  uint32_t fi = 0, off = 0, add = 0;
  if (r.src_hdr != r.dst_hdr) {
    if (len < r.src_hdr || !engine_detail::skip_bytes(src, nfrags, r.src_hdr, &fi, &off)) return 0;
    len = len - r.src_hdr + r.dst_hdr;
    add = r.dst_hdr;
  }
  if (len > r.max_frame || nfrags == 0) return 0;
  uint32_t slots = engine_detail::slots_for(add + src(fi).len - off, b);
  for (fi++; fi < nfrags; fi++) slots += engine_detail::slots_for(src(fi).len, b);
  return slots;
}

namespace engine_detail {

// copy_frame() past its one-slot case: fragments split over slots, and
// header lengths that differ.
template <class Src, class Bufs>
__attribute__((noinline)) uint32_t copy_chain(const Src& src, uint32_t nfrags, const CopyRule& r,
                                              netmap_slot* dst, uint32_t n, uint32_t at, const Bufs& bufs) {
  const uint32_t b = slot_room(r.dst_buf);
  uint32_t fi = 0, off = 0, zeros = 0;
  if (r.src_hdr != r.dst_hdr) {
    skip_bytes(src, nfrags, r.src_hdr, &fi, &off);
    zeros = r.dst_hdr;
  }
  for (; fi < nfrags; fi++, off = 0) {
    const Frag f = src(fi);
    const uint8_t* p = f.buf + off;
    uint32_t left = f.len - off;
    do {  // one destination slot
      netmap_slot& s = dst[at];
      uint8_t* d = bufs(s.buf_idx);
      uint32_t put = zeros < b ? zeros : b;
      if (d && put) memset(d, 0, put);
      zeros -= put;
      uint32_t c = left < b - put ? left : b - put;
      if (d && c) memcpy(d + put, p, c);
      put += c;
      p += c;
      left -= c;
      const bool more = left || zeros || fi + 1 < nfrags;
      s.len = uint16_t(d ? put : 0);
      s.flags = uint16_t(r.flags | (more ? NS_MOREFRAG : 0));
      at = next_slot(at, n);
    } while (left || zeros);
  }
  return at;
}

}  // namespace engine_detail

// Copy the frame into destination slots from `at` (a ring of n slots),
// which the caller reserved: frame_slots() of them, for a frame it did not
// refuse. Returns the slot after the frame. The usual case (one fragment
// that fits one slot) is inlined into the caller's loop.
template <class Src, class Bufs>
inline uint32_t copy_frame(const Src& src, uint32_t nfrags, const CopyRule& r, netmap_slot* dst,
                           uint32_t n, uint32_t at, const Bufs& bufs) {
  if (__builtin_expect(nfrags == 1 && r.src_hdr == r.dst_hdr, 1)) {
    const Frag f = src(0);
    if (f.len <= r.dst_buf && f.len <= 0xffff) {
      netmap_slot& s = dst[at];
      uint8_t* d = bufs(s.buf_idx);
      if (d) {
        // Whole 64-byte blocks where both buffers have them (buffer sizes
        // are multiples of 64).
        uint32_t cl = (f.len + 63) & ~63u;
        if (cl > r.dst_buf || cl > r.src_buf) cl = f.len;
        memcpy(d, f.buf, cl);
      }
      s.len = uint16_t(d ? f.len : 0);
      s.flags = r.flags;
      return next_slot(at, n);
    }
  }
  return engine_detail::copy_chain(src, nfrags, r, dst, n, at, bufs);
}

// Copy the frame to the destination at *tail if it may go and fits in
// *room slots (both then move past it); false, nothing written, if not.
template <class Src, class Bufs>
inline bool put_frame(const Src& src, uint32_t nfrags, uint32_t len, const CopyRule& r, netmap_slot* dst,
                      uint32_t n, uint32_t* tail, uint32_t* room, const Bufs& bufs) {
  const uint32_t need = frame_slots(src, nfrags, len, r);
  if (need == 0 || need > *room) return false;
  *tail = copy_frame(src, nfrags, r, dst, n, *tail, bufs);
  *room -= need;
  return true;
}

// A frame in one flat buffer, as a copy source.
struct FlatFrag {
  const uint8_t* p;
  uint32_t len;
  Frag operator()(uint32_t) const { return Frag{p, len}; }
};

// The first n bytes of the frame (at most n: the frame may be shorter)
// into dst: how many there were.
template <class Src>
inline uint32_t gather_head(const Src& src, uint32_t nfrags, uint8_t* dst, uint32_t n) {
  uint32_t got = 0;
  for (uint32_t i = 0; i < nfrags && got < n; i++) {
    const Frag f = src(i);
    const uint32_t t = f.len < n - got ? f.len : n - got;
    memcpy(dst + got, f.buf, t);
    got += t;
  }
  return got;
}

// Copy the frame's bytes into one flat buffer of cap bytes (a socket's
// frame): its length, or 0 if it does not fit.
template <class Src>
inline uint32_t gather_frame(const Src& src, uint32_t nfrags, uint8_t* dst, uint32_t cap) {
  uint32_t len = 0;
  for (uint32_t i = 0; i < nfrags; i++) {
    const Frag f = src(i);
    if (f.len > cap - len) return 0;
    memcpy(dst + len, f.buf, f.len);
    len += f.len;
  }
  return len;
}

// ---- offloads (engine.cc) ----

// Recompute the TCP or UDP checksum of an Ethernet frame (IPv4 or IPv6,
// one optional VLAN tag, not an IP fragment); other frames are left alone.
void fix_l4_checksum(uint8_t* frame, uint32_t len);

// Called with each segment tcp_segment() makes (valid until it returns).
struct SegmentSink {
  void (*fn)(void* ctx, uint8_t* frame, uint32_t len);
  void* ctx;
};

template <class F>
inline SegmentSink sink_of(const F& f) {
  return SegmentSink{[](void* c, uint8_t* p, uint32_t l) { (*static_cast<const F*>(c))(p, l); },
                     const_cast<void*>(static_cast<const void*>(&f))};
}

// Cut a TCP frame whose IP packet is longer than `mtu` into frames whose
// IP packets are at most mtu (and whose payloads are at most mss bytes,
// if mss is not 0), each with its own headers and checksums, passed in
// order to out. False (nothing passed) if the frame is not TCP over
// IPv4/IPv6 or its headers leave no room for data.
bool tcp_segment(const uint8_t* frame, uint32_t len, uint32_t mtu, SegmentSink out, uint32_t mss = 0);
template <class F>
inline bool tcp_segment(const uint8_t* frame, uint32_t len, uint32_t mtu, const F& f) {
  return tcp_segment(frame, len, mtu, sink_of(f));
}
// The most segments tcp_segment() makes of a frame of len bytes (an
// upper bound, for reserving room first).
inline uint32_t tcp_segments_max(uint32_t len, uint32_t mtu) {
  return mtu > 80 ? len / (mtu - 80) + 2 : len;
}

// ---- virtio-net headers (netmap's virt_hdr_len; virtio 1.x, 5.1.6) ----

// The first 10 bytes of a header, the part every length has (a 12-byte
// one adds num_buffers). Multi-byte fields are little-endian.
struct VnetHdr {
  uint8_t flags = 0;     // kVnetNeedsCsum, kVnetDataValid
  uint8_t gso_type = 0;  // kGso*
  uint16_t hdr_len = 0;  // a hint only: never trusted
  uint16_t gso_size = 0;
  uint16_t csum_start = 0;
  uint16_t csum_offset = 0;
};
constexpr uint32_t kVnetHdrCommon = 10;
constexpr uint8_t kVnetNeedsCsum = 1, kVnetDataValid = 2;
constexpr uint8_t kGsoNone = 0, kGsoTcp4 = 1, kGsoUdp = 3, kGsoTcp6 = 4, kGsoEcn = 0x80;

inline VnetHdr read_vnet_hdr(const uint8_t* p) {
  auto le = [p](int i) { return uint16_t(p[i] | p[i + 1] << 8); };
  VnetHdr h;
  h.flags = p[0];
  h.gso_type = p[1];
  h.hdr_len = le(2);
  h.gso_size = le(4);
  h.csum_start = le(6);
  h.csum_offset = le(8);
  return h;
}
// Whether a header asks for work: a checksum to finish or a frame to cut.
inline bool vnet_wants_work(const uint8_t* p) { return (p[0] & kVnetNeedsCsum) || p[1] != kGsoNone; }

// Do in software what header h asks of the frame that follows it (len
// bytes, the header not included), as a device without offloads would
// have to: NEEDS_CSUM completes the checksum at csum_start + csum_offset;
// a GSO frame is cut into frames whose IP packets are at most mtu bytes
// and whose payloads are at most gso_size (TCP: segments with their own
// sequence numbers, flags, IP ids, lengths and checksums; UDP: IP
// fragments of the one datagram, IPv4 or IPv6). The frames are passed in
// order to out; a frame that asks for nothing is passed as it is. False,
// nothing passed, if the header is bad: an unknown gso_type, a GSO frame
// that is not what its type says or has gso_size 0, checksum offsets
// outside the frame, more than 256 frames to make. The frame's bytes may be changed.
bool vnet_finish(const VnetHdr& h, uint8_t* frame, uint32_t len, uint32_t mtu, SegmentSink out);
template <class F>
inline bool vnet_finish(const VnetHdr& h, uint8_t* frame, uint32_t len, uint32_t mtu, const F& f) {
  return vnet_finish(h, frame, len, mtu, sink_of(f));
}
// The frames vnet_finish() makes of this frame (at most 256), 0 if its
// header is bad: callers reserve room with it first.
uint32_t vnet_frames(const VnetHdr& h, const uint8_t* frame, uint32_t len, uint32_t mtu);

}  // namespace unetmap
