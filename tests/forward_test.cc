// The forwarding core of bridge (tools/forward.*), driven in one process
// between pipes: a packet waits until its last fragment is there, never
// straddles two tx rings, is dropped only if no tx ring could ever hold
// it, is cut into the tx ring's buffers when copied, and the batch limit
// counts packets.
#include <gtest/gtest.h>

#include "forward.h"
#include "util/test_util.h"

using unetmap::fwd::Counters;

namespace {

struct Port {
  nmport_d* d;
  explicit Port(const char* spec) : d(nmport_open(spec)) {}
  ~Port() {
    if (d) nmport_close(d);
  }
  netmap_ring* tx(unsigned i = 0) const { return NETMAP_TXRING(d->nifp, i); }
  netmap_ring* rx(unsigned i = 0) const { return NETMAP_RXRING(d->nifp, i); }
  void txsync() const { ASSERT_EQ(ioctl(d->fd, NIOCTXSYNC, nullptr), 0) << strerror(errno); }
  void rxsync() const { ASSERT_EQ(ioctl(d->fd, NIOCRXSYNC, nullptr), 0) << strerror(errno); }
};

// Put one slot of `len` bytes (byte i = fill + i) on tx ring 0 and advance
// head past it; returns its buffer index.
uint32_t put_slot(netmap_ring* r, uint16_t len, uint16_t flags, uint8_t fill) {
  netmap_slot& s = r->slot[r->cur];
  uint8_t* b = reinterpret_cast<uint8_t*>(NETMAP_BUF(r, s.buf_idx));
  for (uint16_t i = 0; i < len; i++) b[i] = uint8_t(fill + i);
  s.len = len;
  s.flags = flags;
  r->head = r->cur = nm_ring_next(r, r->cur);
  return s.buf_idx;
}

// A packet of `slots` full buffers (the last one `last` bytes).
void put_packet(netmap_ring* r, uint32_t slots, uint16_t last, uint8_t fill) {
  const uint16_t bsz = uint16_t(r->nr_buf_size);
  for (uint32_t i = 0; i + 1 < slots; i++) put_slot(r, bsz, NS_MOREFRAG, uint8_t(fill + i));
  put_slot(r, last, 0, uint8_t(fill + slots - 1));
}

}  // namespace

TEST(Forward, PacketWaitsForItsLastFragmentThenMovesZeroCopy) {
  Port in("netmap:fa{0"), src("netmap:fa}0"), dst("netmap:fb}0"), out("netmap:fb{0");
  ASSERT_TRUE(in.d && src.d && dst.d && out.d);
  ASSERT_TRUE(unetmap::fwd::same_region(src.d, dst.d));
  Counters c;
  const uint32_t b0 = put_slot(in.tx(), 100, NS_MOREFRAG, 1);
  in.txsync();
  src.rxsync();
  EXPECT_EQ(unetmap::fwd::rx_pending(src.d), 1u);
  EXPECT_EQ(unetmap::fwd::forward(src.d, dst.d, 64, true, &c), 0u);
  EXPECT_EQ(c.packets, 0u);
  EXPECT_EQ(unetmap::fwd::rx_pending(src.d), 1u) << "the fragment must stay on the rx ring";

  const uint32_t b1 = put_slot(in.tx(), 50, 0, 2);
  in.txsync();
  src.rxsync();
  EXPECT_EQ(unetmap::fwd::forward(src.d, dst.d, 64, true, &c), 1u);
  EXPECT_EQ(c.packets, 1u);
  EXPECT_EQ(c.bytes, 150u);
  EXPECT_EQ(unetmap::fwd::rx_pending(src.d), 0u);
  netmap_ring* t = dst.tx();
  EXPECT_EQ(t->slot[0].buf_idx, b0);
  EXPECT_EQ(t->slot[1].buf_idx, b1);
  EXPECT_EQ(t->slot[0].flags, NS_BUF_CHANGED | NS_MOREFRAG);
  EXPECT_EQ(t->slot[1].flags, NS_BUF_CHANGED);
  EXPECT_EQ(t->head, 2u);
  dst.txsync();
  out.rxsync();
  netmap_ring* r = out.rx();
  ASSERT_EQ(nm_ring_space(r), 2u);
  EXPECT_EQ(r->slot[0].buf_idx, b0);
  EXPECT_EQ(r->slot[0].len, 100u);
  EXPECT_EQ(r->slot[1].buf_idx, b1);
  EXPECT_EQ(r->slot[1].len, 50u);
  EXPECT_EQ(reinterpret_cast<uint8_t*>(NETMAP_BUF(r, b1))[49], uint8_t(2 + 49));
}

TEST(Forward, CopyHonoursTheBatchLimitAndKeepsEveryByte) {
  Port in("netmap:ca{0"), src("netmap:ca}0"), dst("netmap:cb}0"), out("netmap:cb{0");
  ASSERT_TRUE(in.d && src.d && dst.d && out.d);
  for (uint8_t p = 0; p < 3; p++) put_packet(in.tx(), 2, 952, uint8_t(10 * p));  // 3000 bytes
  in.txsync();
  src.rxsync();
  Counters c;
  EXPECT_EQ(unetmap::fwd::forward(src.d, dst.d, 2, false, &c), 2u);
  EXPECT_EQ(unetmap::fwd::forward(src.d, dst.d, 2, false, &c), 1u);
  EXPECT_EQ(c.packets, 3u);
  EXPECT_EQ(c.bytes, 9000u);
  dst.txsync();
  out.rxsync();
  netmap_ring* r = out.rx();
  ASSERT_EQ(nm_ring_space(r), 6u);
  for (uint32_t i = 0; i < 6; i++) {
    const netmap_slot& s = r->slot[i];
    EXPECT_EQ(s.len, i % 2 ? 952u : r->nr_buf_size) << "slot " << i;
    EXPECT_EQ(!!(s.flags & NS_MOREFRAG), i % 2 == 0) << "slot " << i;
    const uint8_t* b = reinterpret_cast<const uint8_t*>(NETMAP_BUF(r, s.buf_idx));
    const uint8_t fill = uint8_t(10 * (i / 2) + i % 2);
    EXPECT_EQ(b[0], fill);
    EXPECT_EQ(b[s.len - 1], uint8_t(fill + s.len - 1));
  }
}

// tx rings of 8 slots (7 usable): two 3-slot packets fill ring 0 but one
// slot; the third goes whole to ring 1. A 9-slot packet fits no ring.
TEST(Forward, PacketsDoNotStraddleTxRingsAndTooLongOnesAreDropped) {
  Port in("netmap:ra{0"), src("netmap:ra}0");
  Port dst("netmap:rb}0@conf:rings=2,slots=8"), out("netmap:rb{0@conf:rings=2,slots=8");
  ASSERT_TRUE(in.d && src.d && dst.d && out.d);
  ASSERT_EQ(dst.tx(0)->num_slots, 8u);
  ASSERT_EQ(dst.d->last_tx_ring, 1u);
  for (uint8_t p = 0; p < 3; p++) put_packet(in.tx(), 3, 60, p);
  put_packet(in.tx(), 9, 60, 7);
  put_packet(in.tx(), 1, 60, 8);
  in.txsync();
  src.rxsync();
  Counters c;
  EXPECT_EQ(unetmap::fwd::forward(src.d, dst.d, 64, true, &c), 4u);
  EXPECT_EQ(c.drops, 1u);
  EXPECT_EQ(unetmap::fwd::rx_pending(src.d), 0u);
  EXPECT_EQ(dst.tx(0)->head, 6u);
  EXPECT_EQ(dst.tx(1)->head, 4u);  // the third 3-slot packet, then the 1-slot one
  EXPECT_FALSE(dst.tx(1)->slot[2].flags & NS_MOREFRAG);
  EXPECT_FALSE(dst.tx(1)->slot[3].flags & NS_MOREFRAG);
  EXPECT_EQ(dst.tx(1)->slot[3].len, 60u);
}
