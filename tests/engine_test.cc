// The packet engine (src/core/engine.h) on its own: ring arithmetic at the
// wrap, chain walking (bounded, open and broken chains), the copy of a
// frame into rings of other buffer sizes and header lengths (never a slot
// longer than its buffer, every byte kept, nothing written when the frame
// may not go), and the offloads (checksums, TCP segmentation). The rings
// here are plain arrays of slots over a vector of buffers.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/engine.h"
#include "util/offload_frames.h"

using namespace unetmap;

namespace {

// n slots over buffers of b bytes: slot i names buffer i + 2 (0 and 1 are
// never packet buffers, as in a region).
struct TestRing {
  uint32_t n, b;
  std::vector<netmap_slot> slot;
  std::vector<uint8_t> mem;
  TestRing(uint32_t nslots, uint32_t bsize) : n(nslots), b(bsize), slot(nslots), mem(size_t(nslots + 2) * bsize) {
    for (uint32_t i = 0; i < n; i++) slot[i] = netmap_slot{i + 2, 0, 0, 0};
  }
  uint8_t* buf(uint32_t idx) { return mem.data() + size_t(idx) * b; }
  // The destination's resolver: only the ring's own buffers.
  auto bufs() {
    return [this](uint32_t idx) -> uint8_t* { return idx >= 2 && idx < n + 2 ? buf(idx) : nullptr; };
  }
  // Put `data` at slot `at` as a chain of slots of `chunk` bytes at most.
  uint32_t put(uint32_t at, const std::vector<uint8_t>& data, uint32_t chunk) {
    size_t off = 0;
    do {
      const uint32_t c = uint32_t(std::min<size_t>(chunk, data.size() - off));
      if (c) memcpy(buf(slot[at].buf_idx), data.data() + off, c);
      off += c;
      slot[at].len = uint16_t(c);
      slot[at].flags = off < data.size() ? NS_MOREFRAG : 0;
      at = next_slot(at, n);
    } while (off < data.size());
    return at;
  }
  // The fragments of the frame at slot `at`, as a copy source.
  auto frags(uint32_t at) {
    return [this, at](uint32_t i) {
      const netmap_slot& s = slot[ring_add(at, i, n)];
      return Frag{buf(s.buf_idx), s.len};
    };
  }
  // The bytes of slots [at, at + count), and whether the chain is whole
  // (NS_MOREFRAG on all but the last) with every length within a buffer.
  std::vector<uint8_t> bytes(uint32_t at, uint32_t count, std::string* why) {
    std::vector<uint8_t> out;
    for (uint32_t i = 0; i < count; i++, at = next_slot(at, n)) {
      const netmap_slot& s = slot[at];
      if (s.len > b) *why += "slot " + std::to_string(i) + " len " + std::to_string(s.len) + " > buffer; ";
      if (bool(s.flags & NS_MOREFRAG) != (i + 1 < count)) *why += "slot " + std::to_string(i) + " flags; ";
      const uint8_t* p = buf(s.buf_idx);
      out.insert(out.end(), p, p + std::min<uint32_t>(s.len, b));
    }
    return out;
  }
};

std::vector<uint8_t> pattern(size_t len, uint8_t seed) { return nmtest::offload_detail::bytes(len, seed); }

CopyRule rule(uint32_t src_buf, uint32_t dst_buf, uint32_t src_hdr = 0, uint32_t dst_hdr = 0,
              uint32_t max_frame = 65535) {
  CopyRule r;
  r.src_buf = src_buf;
  r.dst_buf = dst_buf;
  r.src_hdr = src_hdr;
  r.dst_hdr = dst_hdr;
  r.max_frame = max_frame;
  return r;
}

// Copy the frame at src slot `at` (nfrags fragments) into dst at `dat`;
// returns the destination slots used (0: refused), checking that the copy
// wrote exactly the slots frame_slots() announced.
uint32_t copy(TestRing& src, uint32_t at, uint32_t nfrags, TestRing& dst, uint32_t dat, const CopyRule& r) {
  const FrameSpan f = frame_at(src.slot.data(), at, nfrags, src.n);
  EXPECT_EQ(f.nslots, nfrags);
  const uint32_t need = frame_slots(src.frags(at), nfrags, f.len, r);
  if (need == 0) return 0;
  const uint32_t end = copy_frame(src.frags(at), nfrags, r, dst.slot.data(), dst.n, dat, dst.bufs());
  EXPECT_EQ(ring_dist(dat, end, dst.n), need % dst.n) << "copy_frame wrote other than frame_slots said";
  return need;
}

}  // namespace

TEST(Engine, RingArithmeticAtTheWrap) {
  const uint32_t n = 8;
  EXPECT_EQ(next_slot(6, n), 7u);
  EXPECT_EQ(next_slot(7, n), 0u);
  EXPECT_EQ(prev_slot(0, n), 7u);
  EXPECT_EQ(prev_slot(1, n), 0u);
  EXPECT_EQ(ring_add(6, 3, n), 1u);
  EXPECT_EQ(ring_add(6, 2, n), 0u);
  EXPECT_EQ(ring_add(3, n, n), 3u);
  EXPECT_EQ(ring_sub(1, 3, n), 6u);
  EXPECT_EQ(ring_sub(5, 5, n), 0u);
  EXPECT_EQ(ring_sub(3, n, n), 3u);
  EXPECT_EQ(ring_dist(6, 1, n), 3u);
  EXPECT_EQ(ring_dist(1, 6, n), 5u);
  EXPECT_EQ(ring_dist(4, 4, n), 0u);
  // A producer at tail, its consumer at cur: one slot always stays empty.
  EXPECT_EQ(ring_space(0, 0, n), 7u);  // empty ring
  EXPECT_EQ(ring_space(5, 5, n), 7u);
  EXPECT_EQ(ring_space(7, 0, n), 0u);  // full, at the wrap
  EXPECT_EQ(ring_space(4, 5, n), 0u);  // full
  EXPECT_EQ(ring_space(6, 2, n), 3u);  // 6, 7, 0 may be filled; 1 stays empty
  for (uint32_t t = 0; t < n; t++)
    for (uint32_t c = 0; c < n; c++) {
      EXPECT_EQ(ring_add(t, ring_dist(t, c, n), n), c);
      EXPECT_EQ(ring_sub(c, ring_dist(t, c, n), n), t);
      EXPECT_EQ(ring_space(t, c, n) + ring_dist(c, t, n), n - 1) << t << " " << c;
    }
}

TEST(Engine, FrameAtWalksAChainAcrossTheWrap) {
  TestRing r(8, 2048);
  // Slots 6, 7, 0: one frame of three fragments; 1: a frame of one.
  r.slot[6] = netmap_slot{8, 100, NS_MOREFRAG, 0};
  r.slot[7] = netmap_slot{9, 2048, NS_MOREFRAG | NS_NO_LEARN, 0};
  r.slot[0] = netmap_slot{2, 7, 0, 0};
  r.slot[1] = netmap_slot{3, 60, 0, 0};
  FrameSpan f = frame_at(r.slot.data(), 6, 4, r.n);
  EXPECT_EQ(f.nslots, 3u);
  EXPECT_EQ(f.len, 2155u);
  EXPECT_EQ(f.maxlen, 2048u);
  EXPECT_EQ(f.flags, NS_MOREFRAG | NS_NO_LEARN);
  EXPECT_FALSE(f.buf0);
  f = frame_at(r.slot.data(), 1, 1, r.n);
  EXPECT_EQ(f.nslots, 1u);
  EXPECT_EQ(f.len, 60u);
  r.slot[7].buf_idx = 0;
  EXPECT_TRUE(frame_at(r.slot.data(), 6, 3, r.n).buf0);
}

TEST(Engine, FrameAtNeverLooksPastWhatIsThere) {
  TestRing r(8, 2048);
  r.slot[6] = netmap_slot{8, 100, NS_MOREFRAG, 0};
  r.slot[7] = netmap_slot{9, 100, NS_MOREFRAG, 0};
  r.slot[0] = netmap_slot{2, 100, 0, 0};  // the end, but not among the slots present
  EXPECT_EQ(frame_at(r.slot.data(), 6, 2, r.n).nslots, 0u) << "open chain: its end is not there yet";
  EXPECT_EQ(frame_at(r.slot.data(), 6, 0, r.n).nslots, 0u);
  EXPECT_EQ(frame_at(r.slot.data(), 6, 3, r.n).nslots, 3u);
  // A broken chain: NS_MOREFRAG on every slot of the ring never ends.
  for (auto& s : r.slot) s.flags = NS_MOREFRAG;
  EXPECT_EQ(frame_at(r.slot.data(), 3, r.n, r.n).nslots, 0u);
  // Bounded by what is there even when that wraps more than once.
  EXPECT_EQ(frame_at(r.slot.data(), 3, 3 * r.n, r.n).nslots, 0u);
}

// 2048 -> 4096 -> 2048: each fragment keeps slots of its own where it
// fits, is split where it does not, and every byte arrives.
TEST(Engine, CopyAcrossBufferSizesKeepsEveryByte) {
  for (uint32_t len : {1u, 60u, 2047u, 2048u, 2049u, 3000u, 4096u, 4097u, 9000u, 65535u}) {
    SCOPED_TRACE(len);
    const std::vector<uint8_t> f = pattern(len, uint8_t(len));
    TestRing a(64, 2048), b(64, 4096), c(64, 2048);
    const uint32_t at = 60;  // chains wrap
    a.put(at, f, 2048);
    const uint32_t na = frame_at(a.slot.data(), at, a.n, a.n).nslots;
    ASSERT_EQ(na, (len + 2047) / 2048);
    const uint32_t nb = copy(a, at, na, b, 62, rule(2048, 4096));
    EXPECT_EQ(nb, na) << "fragments that fit keep their own slots";
    std::string why;
    EXPECT_TRUE(b.bytes(62, nb, &why) == f) << "2048 -> 4096: bytes differ";
    EXPECT_EQ(why, "");
    const uint32_t nc = copy(b, 62, nb, c, 63, rule(4096, 2048));
    EXPECT_EQ(nc, na);
    EXPECT_TRUE(c.bytes(63, nc, &why) == f) << "4096 -> 2048: bytes differ";
    EXPECT_EQ(why, "");
    // One fragment of the whole frame (as a 64 KiB buffer would hold it)
    // into 2048-byte buffers: split over a chain of full slots.
    TestRing big(4, 65536), d(64, 2048);
    big.put(1, f, 65536);
    const uint32_t nd = copy(big, 1, 1, d, 50, rule(65536, 2048));
    EXPECT_EQ(nd, (len + 2047) / 2048);
    EXPECT_TRUE(d.bytes(50, nd, &why) == f) << "65536 -> 2048: bytes differ";
    EXPECT_EQ(why, "");
    for (uint32_t i = 0; i + 1 < nd; i++) EXPECT_EQ(d.slot[ring_add(50, i, d.n)].len, 2048u);
  }
}

// A chain of short fragments between equal buffers arrives as it was
// sent (netmap's VALE keeps the sender's fragments).
TEST(Engine, CopyKeepsTheSendersFragments) {
  TestRing a(16, 2048), b(16, 2048);
  const std::vector<uint8_t> f = pattern(200, 7);
  a.put(0, f, 54);  // 54, 54, 54, 38
  ASSERT_EQ(copy(a, 0, 4, b, 0, rule(2048, 2048)), 4u);
  for (uint32_t i = 0; i < 4; i++) EXPECT_EQ(b.slot[i].len, a.slot[i].len) << i;
  std::string why;
  EXPECT_TRUE(b.bytes(0, 4, &why) == f);
  EXPECT_EQ(why, "");
}

// virtio-net header lengths 0, 10, 12 on each side: equal ones pass
// through; otherwise the source's is dropped and a zeroed one of the
// destination's length added, also when the header spans fragments or
// has a fragment of its own.
TEST(Engine, HeaderLengthsPassThroughOrAreReplaced) {
  const uint32_t hdrs[] = {0, 10, 12};
  for (uint32_t sh : hdrs)
    for (uint32_t dh : hdrs)
      for (uint32_t chunk : {2048u, 6u, 12u, 10u, 100u}) {
        SCOPED_TRACE(testing::Message() << "src hdr " << sh << " dst hdr " << dh << " chunk " << chunk);
        const std::vector<uint8_t> payload = pattern(1500, uint8_t(sh + dh));
        std::vector<uint8_t> sent(sh, 0xee);  // a header the destination must not see unless equal
        sent.insert(sent.end(), payload.begin(), payload.end());
        std::vector<uint8_t> want;
        if (sh == dh) {
          want = sent;
        } else {
          want.assign(dh, 0);
          want.insert(want.end(), payload.begin(), payload.end());
        }
        TestRing a(512, 2048), b(512, 2048);
        a.put(0, sent, chunk);
        const uint32_t na = frame_at(a.slot.data(), 0, a.n, a.n).nslots;
        ASSERT_GT(na, 0u);
        const uint32_t nb = copy(a, 0, na, b, 0, rule(2048, 2048, sh, dh));
        ASSERT_GT(nb, 0u);
        std::string why;
        EXPECT_TRUE(b.bytes(0, nb, &why) == want) << "bytes differ";
        EXPECT_EQ(why, "");
      }
}

TEST(Engine, FrameShorterThanItsHeaderDoesNotGo) {
  TestRing a(8, 2048), b(8, 2048);
  a.put(0, pattern(8, 1), 2048);
  EXPECT_EQ(frame_slots(a.frags(0), 1, 8, rule(2048, 2048, 12, 0)), 0u);
  EXPECT_EQ(frame_slots(a.frags(0), 1, 8, rule(2048, 2048, 10, 12)), 0u);
  EXPECT_EQ(frame_slots(a.frags(0), 1, 8, rule(2048, 2048, 12, 12)), 1u) << "equal: just bytes";
  // Exactly a header: an empty frame with the destination's header.
  a.put(0, pattern(10, 2), 2048);
  ASSERT_EQ(copy(a, 0, 1, b, 0, rule(2048, 2048, 10, 12)), 1u);
  EXPECT_EQ(b.slot[0].len, 12u);
  ASSERT_EQ(copy(a, 0, 1, b, 0, rule(2048, 2048, 10, 0)), 1u);
  EXPECT_EQ(b.slot[0].len, 0u);
}

// The maximum frame size counts the frame as the destination gets it,
// its header included.
TEST(Engine, FrameLongerThanTheMaximumDoesNotGo) {
  TestRing a(8, 4096);
  a.put(0, pattern(1514, 3), 4096);
  EXPECT_EQ(frame_slots(a.frags(0), 1, 1514, rule(4096, 2048, 0, 0, 1514)), 1u);
  EXPECT_EQ(frame_slots(a.frags(0), 1, 1514, rule(4096, 2048, 0, 0, 1513)), 0u);
  EXPECT_EQ(frame_slots(a.frags(0), 1, 1514, rule(4096, 2048, 0, 12, 1525)), 0u);
  EXPECT_EQ(frame_slots(a.frags(0), 1, 1514, rule(4096, 2048, 0, 12, 1526)), 1u);
  a.put(0, pattern(3000, 3), 4096);
  EXPECT_EQ(frame_slots(a.frags(0), 1, 3000, rule(4096, 2048, 0, 0, 2999)), 0u);
  EXPECT_EQ(frame_slots(a.frags(0), 1, 3000, rule(4096, 2048, 0, 0, 3000)), 2u);
}

// put_frame: all of the frame or nothing, where the room is short.
TEST(Engine, NoRoomInTheDestinationWritesNothing) {
  TestRing a(8, 4096), b(8, 2048);
  const std::vector<uint8_t> f = pattern(5000, 4);  // 2048 + 2048 + 904 in b
  a.put(0, f, 4096);
  for (auto& s : b.slot) s = netmap_slot{s.buf_idx, 0x7777, 0x55, 0};
  uint32_t tail = 6, room = 2;
  EXPECT_FALSE(put_frame(a.frags(0), 2, 5000, rule(4096, 2048), b.slot.data(), b.n, &tail, &room, b.bufs()));
  EXPECT_EQ(tail, 6u);
  EXPECT_EQ(room, 2u);
  for (const auto& s : b.slot) EXPECT_EQ(s.len, 0x7777u) << "a slot was written";
  room = 3;
  EXPECT_TRUE(put_frame(a.frags(0), 2, 5000, rule(4096, 2048), b.slot.data(), b.n, &tail, &room, b.bufs()));
  EXPECT_EQ(tail, 1u);
  EXPECT_EQ(room, 0u);
  std::string why;
  EXPECT_TRUE(b.bytes(6, 3, &why) == f);
  EXPECT_EQ(why, "");
  EXPECT_EQ(b.slot[1].len, 0x7777u) << "the slot after the frame was written";
}

// A destination slot whose index names no buffer of the ring (its
// application wrote it) comes up empty; the chain goes on.
TEST(Engine, DestinationSlotWithABadIndexComesUpEmpty) {
  TestRing a(8, 4096), b(8, 2048);
  a.put(0, pattern(3000, 5), 4096);
  b.slot[1].buf_idx = 0x7ffffff0;
  ASSERT_EQ(copy(a, 0, 1, b, 0, rule(4096, 2048)), 2u);
  EXPECT_EQ(b.slot[0].len, 2048u);
  EXPECT_EQ(b.slot[0].flags, NS_MOREFRAG);
  EXPECT_EQ(b.slot[1].len, 0u);
  EXPECT_EQ(b.slot[1].flags, 0);
}

// Every length from 0 to 3 buffers, into buffers of 64, 2048 and 4096
// bytes: never a slot longer than its buffer, every byte kept.
TEST(Engine, NoSlotEverLongerThanItsBuffer) {
  for (uint32_t db : {64u, 2048u, 4096u}) {
    TestRing a(4, 16384), b(512, db);
    for (uint32_t len = 0; len <= 3 * db + 1; len += (len < 200 ? 1 : 61)) {
      const std::vector<uint8_t> f = pattern(len, uint8_t(db + len));
      a.put(0, f, 16384);
      const uint32_t nb = copy(a, 0, 1, b, 0, rule(16384, db));
      ASSERT_EQ(nb, len <= db ? 1u : (len + db - 1) / db) << "len " << len << " into " << db;
      std::string why;
      ASSERT_TRUE(b.bytes(0, nb, &why) == f) << "len " << len << " into " << db;
      ASSERT_EQ(why, "") << "len " << len << " into " << db;
    }
  }
}

TEST(Engine, GatherFrameFailsOnABadFragmentOrTooSmallABuffer) {
  TestRing a(8, 2048);
  const std::vector<uint8_t> f = pattern(3000, 6);
  a.put(0, f, 2048);
  std::vector<uint8_t> out(4000);
  EXPECT_EQ(gather_frame(a.frags(0), 2, out.data(), 4000), 3000u);
  EXPECT_TRUE(std::equal(f.begin(), f.end(), out.begin()));
  EXPECT_EQ(gather_frame(a.frags(0), 2, out.data(), 2999), 0u);
  const auto bad = [&](uint32_t i) { return i == 1 ? Frag{nullptr, kBadFrag} : a.frags(0)(i); };
  EXPECT_EQ(gather_frame(bad, 2, out.data(), 4000), 0u);
}

// ---- offloads ----

namespace {

uint32_t sum16(const uint8_t* p, size_t n, uint32_t s = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) s += uint32_t(p[i]) << 8 | p[i + 1];
  if (n & 1) s += uint32_t(p[n - 1]) << 8;
  return s;
}
uint16_t folded(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return uint16_t(s);
}

// An Ethernet + IPv4 + TCP frame with `payload` bytes of data, checksums
// left wrong (as a sender that offloads them leaves them).
std::vector<uint8_t> tcp4(uint32_t payload, uint32_t seq) {
  std::vector<uint8_t> f(14 + 20 + 20 + payload);
  memset(f.data(), 0x02, 12);
  f[12] = 0x08, f[13] = 0x00;
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x45;
  const uint32_t total = 40 + payload;
  ip[2] = uint8_t(total >> 8), ip[3] = uint8_t(total);
  ip[4] = 0x12, ip[5] = 0x34;
  ip[8] = 64, ip[9] = 6;
  const uint8_t addrs[8] = {10, 0, 0, 1, 10, 0, 0, 2};
  memcpy(ip + 12, addrs, 8);
  uint8_t* tcp = ip + 20;
  tcp[0] = 0x30, tcp[1] = 0x39, tcp[2] = 0x00, tcp[3] = 0x50;
  tcp[4] = uint8_t(seq >> 24), tcp[5] = uint8_t(seq >> 16), tcp[6] = uint8_t(seq >> 8), tcp[7] = uint8_t(seq);
  tcp[12] = 5 << 4;
  tcp[13] = 0x18;  // PSH, ACK
  tcp[16] = 0xde, tcp[17] = 0xad;  // wrong
  std::vector<uint8_t> data = pattern(payload, 9);
  memcpy(tcp + 20, data.data(), payload);
  return f;
}

// The TCP checksum of an IPv4 frame is right (the sum over pseudo-header
// and segment folds to 0xffff).
bool tcp4_checksum_ok(const std::vector<uint8_t>& f) {
  const uint8_t* ip = f.data() + 14;
  const uint32_t ihl = (ip[0] & 0xf) * 4u, total = uint32_t(ip[2]) << 8 | ip[3];
  const uint32_t l4 = total - ihl;
  uint32_t s = sum16(ip + 12, 8) + 6 + l4;
  return folded(sum16(ip + ihl, l4, s)) == 0xffff;
}

}  // namespace

TEST(Engine, L4ChecksumIsComputedAfresh) {
  std::vector<uint8_t> f = tcp4(333, 1000);
  EXPECT_FALSE(tcp4_checksum_ok(f));
  fix_l4_checksum(f.data(), uint32_t(f.size()));
  EXPECT_TRUE(tcp4_checksum_ok(f));
  // Other frames are left alone.
  std::vector<uint8_t> arp(60, 0xab);
  arp[12] = 0x08, arp[13] = 0x06;
  const std::vector<uint8_t> before = arp;
  fix_l4_checksum(arp.data(), uint32_t(arp.size()));
  EXPECT_TRUE(arp == before);
}

TEST(Engine, TcpSegmentationCutsToTheMtuAndKeepsTheStream) {
  const uint32_t payload = 5000, mtu = 1500, seq0 = 0xfffff000;  // sequence numbers wrap
  const std::vector<uint8_t> f = tcp4(payload, seq0);
  std::vector<std::vector<uint8_t>> segs;
  ASSERT_TRUE(tcp_segment(f.data(), uint32_t(f.size()), mtu,
                          [&](uint8_t* p, uint32_t len) { segs.emplace_back(p, p + len); }));
  ASSERT_EQ(segs.size(), 4u);  // 1460 * 3 + 620
  EXPECT_LE(segs.size(), tcp_segments_max(uint32_t(f.size()), mtu));
  std::vector<uint8_t> stream;
  uint32_t want_seq = seq0;
  for (size_t i = 0; i < segs.size(); i++) {
    SCOPED_TRACE(i);
    const std::vector<uint8_t>& s = segs[i];
    const uint8_t* ip = s.data() + 14;
    const uint32_t total = uint32_t(ip[2]) << 8 | ip[3];
    EXPECT_LE(total, mtu);
    EXPECT_EQ(total + 14, s.size());
    EXPECT_EQ(folded(sum16(ip, 20)), 0xffff) << "IP header checksum";
    EXPECT_TRUE(tcp4_checksum_ok(s)) << "TCP checksum";
    const uint8_t* tcp = ip + 20;
    const uint32_t seq = uint32_t(tcp[4]) << 24 | uint32_t(tcp[5]) << 16 | uint32_t(tcp[6]) << 8 | tcp[7];
    EXPECT_EQ(seq, want_seq);
    EXPECT_EQ(bool(tcp[13] & 0x08), i + 1 == segs.size()) << "PSH on the last segment only";
    stream.insert(stream.end(), tcp + 20, s.data() + s.size());
    want_seq += uint32_t(s.size() - 54);
  }
  EXPECT_TRUE(stream == std::vector<uint8_t>(f.begin() + 54, f.end())) << "the data stream differs";
  // Not TCP: nothing made.
  std::vector<uint8_t> udp = f;
  udp[14 + 9] = 17;
  segs.clear();
  EXPECT_FALSE(tcp_segment(udp.data(), uint32_t(udp.size()), mtu, [&](uint8_t* p, uint32_t len) {
    segs.emplace_back(p, p + len);
  }));
  EXPECT_TRUE(segs.empty());
}

// ---- virtio-net header offloads (vnet_finish), checked by scapy ----

namespace {

using nmtest::Offloaded;
using nmtest::offloaded;
using nmtest::scapy_says;

std::vector<std::vector<uint8_t>> finish(const VnetHdr& h, std::vector<uint8_t> f, uint32_t mtu, bool* ok) {
  std::vector<std::vector<uint8_t>> out;
  *ok = vnet_finish(h, f.data(), uint32_t(f.size()), mtu,
                    [&](uint8_t* p, uint32_t len) { out.emplace_back(p, p + len); });
  return out;
}

struct GsoCase {
  const char* name;
  bool v6, tcp, vlan;
  uint32_t payload, gso_size, mtu, frames;
};
void PrintTo(const GsoCase& c, std::ostream* os) { *os << c.name; }

}  // namespace

class VnetGso : public ::testing::TestWithParam<GsoCase> {};

// A GSO frame cut by vnet_finish(): as many frames as vnet_frames() said,
// and scapy finds them right (checksums, lengths, sequence, fragments)
// and together equal to the data sent.
TEST_P(VnetGso, FramesAreWhatScapyExpects) {
  const GsoCase& c = GetParam();
  Offloaded o = offloaded(c.v6, c.tcp, c.payload, c.vlan, c.tcp ? 0x19 | 0x80 : 0);  // FIN PSH ACK CWR
  o.hdr.gso_type = c.tcp ? (c.v6 ? kGsoTcp6 : kGsoTcp4) | kGsoEcn : kGsoUdp;
  o.hdr.gso_size = uint16_t(c.gso_size);
  const uint32_t len = uint32_t(o.frame.size());
  EXPECT_EQ(vnet_frames(o.hdr, o.frame.data(), len, c.mtu), c.frames);
  bool ok = false;
  const auto frames = finish(o.hdr, o.frame, c.mtu, &ok);
  ASSERT_TRUE(ok);
  ASSERT_EQ(frames.size(), c.frames);
  const uint32_t maxseg = c.gso_size < c.mtu ? c.gso_size : c.mtu;
  EXPECT_EQ(scapy_says(c.tcp ? "tcp" : "udp", frames, o.payload, c.mtu, maxseg), "");
}

INSTANTIATE_TEST_SUITE_P(
    Engine, VnetGso,
    ::testing::Values(
        // 64000 bytes at 1448 a segment (timestamps on): 45 segments.
        GsoCase{"Tcp4", false, true, false, 64000, 1448, 1500, 45},
        // The mtu, not gso_size, limits: 1500 - 20 - 32 = 1448 a segment.
        GsoCase{"Tcp4MtuLimits", false, true, true, 10000, 9000, 1500, 7},
        GsoCase{"Tcp6Vlan", true, true, true, 30000, 1428, 1500, 22},
        // UFO: 8 + 20000 bytes in fragments of 1480: 14 of them.
        GsoCase{"Udp4", false, false, false, 20000, 1480, 1500, 14},
        // IPv6 fragments: 1500 - 40 - 8 = 1452, rounded down to 1448.
        GsoCase{"Udp6", true, false, true, 9000, 4000, 1500, 7},
        // A datagram that fits goes whole.
        GsoCase{"Udp4Fits", false, false, false, 1000, 1480, 1500, 1}),
    [](const ::testing::TestParamInfo<GsoCase>& i) { return std::string(i.param.name); });

// NEEDS_CSUM alone: the frame goes whole, its checksum finished (one
// scapy run checks the four kinds).
TEST(Engine, VnetNeedsCsumIsFinished) {
  std::vector<std::vector<uint8_t>> done, untouched;
  std::vector<uint8_t> payloads;
  for (bool v6 : {false, true}) {
    for (bool tcp : {false, true}) {
      SCOPED_TRACE(std::string(v6 ? "IPv6 " : "IPv4 ") + (tcp ? "TCP" : "UDP"));
      Offloaded o = offloaded(v6, tcp, 333, v6);
      bool ok = false;
      const auto frames = finish(o.hdr, o.frame, 1500, &ok);
      ASSERT_TRUE(ok);
      ASSERT_EQ(frames.size(), 1u);
      EXPECT_EQ(frames[0].size(), o.frame.size());
      done.push_back(frames[0]);
      payloads.insert(payloads.end(), o.payload.begin(), o.payload.end());
      // Without NEEDS_CSUM the frame is passed as it is (its checksum still partial).
      const auto same = finish(VnetHdr{}, o.frame, 1500, &ok);
      ASSERT_TRUE(ok);
      ASSERT_EQ(same.size(), 1u);
      EXPECT_TRUE(same[0] == o.frame);
      untouched.push_back(same[0]);
    }
  }
  EXPECT_EQ(scapy_says("csum", done, payloads, 1500, 1500), "");
  EXPECT_NE(scapy_says("csum", untouched, payloads, 1500, 1500), "");  // the check can fail
}

// A bad header makes nothing (the caller drops the frame and counts it).
TEST(Engine, VnetBadHeadersMakeNothing) {
  const Offloaded t4 = offloaded(false, true, 5000, false), u6 = offloaded(true, false, 5000, false);
  const uint32_t len = uint32_t(t4.frame.size());
  struct Bad {
    const char* why;
    const Offloaded& o;
    VnetHdr h;
  };
  auto with = [](VnetHdr h, auto f) {
    f(h);
    return h;
  };
  const VnetHdr g4 = with(t4.hdr, [](VnetHdr& h) { h.gso_type = kGsoTcp4, h.gso_size = 1448; });
  const Bad bad[] = {
      {"unknown gso_type 2", t4, with(g4, [](VnetHdr& h) { h.gso_type = 2; })},
      {"UDP_L4 (5) is not offered", t4, with(g4, [](VnetHdr& h) { h.gso_type = 5; })},
      {"ECN without GSO", t4, with(t4.hdr, [](VnetHdr& h) { h.gso_type = kGsoEcn; })},
      {"gso_size 0", t4, with(g4, [](VnetHdr& h) { h.gso_size = 0; })},
      {"TCPv6 on an IPv4 frame", t4, with(g4, [](VnetHdr& h) { h.gso_type = kGsoTcp6; })},
      {"TCPv4 on a UDP frame", u6, with(g4, [&](VnetHdr& h) { h.csum_start = uint16_t(u6.l4); })},
      {"UDP GSO on a TCP frame", t4, with(g4, [](VnetHdr& h) { h.gso_type = kGsoUdp; })},
      {"csum_start past the end", t4, with(t4.hdr, [&](VnetHdr& h) { h.csum_start = uint16_t(len); })},
      {"checksum field past the end", t4, with(t4.hdr, [&](VnetHdr& h) { h.csum_offset = uint16_t(len - t4.l4 - 1); })},
      {"a segment of 8 bytes: 625 frames", t4, with(g4, [](VnetHdr& h) { h.gso_size = 8; })},
      {"UDP fragments of fewer than 8 bytes", u6, with(u6.hdr, [](VnetHdr& h) { h.gso_type = kGsoUdp, h.gso_size = 7; })},
  };
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.why);
    EXPECT_EQ(vnet_frames(b.h, b.o.frame.data(), uint32_t(b.o.frame.size()), 1500), 0u);
    bool ok = true;
    EXPECT_TRUE(finish(b.h, b.o.frame, 1500, &ok).empty());
    EXPECT_FALSE(ok);
  }
  // A frame cut short in its headers, and one too short for Ethernet.
  VnetHdr g = g4;
  g.flags = 0;
  for (uint32_t cut : {13u, 20u, 40u, 60u}) {
    EXPECT_EQ(vnet_frames(g, t4.frame.data(), cut, 1500), 0u) << cut;
    bool ok = true;
    EXPECT_TRUE(finish(g, std::vector<uint8_t>(t4.frame.begin(), t4.frame.begin() + cut), 1500, &ok).empty());
  }
}
