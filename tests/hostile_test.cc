// Hostile applications (issue 9, finding 3): what an application writes
// into its rings after the sync prologue checked it never reaches the
// library's lookups, copies or swaps unchecked, and never reaches another
// port as a length beyond its buffer or a buffer index that is not one.
//
// First, one test per path that read a slot twice (each fails without its
// fix): a VALE NS_MOREFRAG chain left pending and rewritten before its last
// fragment (the same process, and another process that never read it), a
// destination with smaller buffers than a fragment, and zero-copy monitors
// whose slots (or the watched port's) are rewritten before a swap.

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mem/region.h"
#include "ports/vale.h"
#include "util/test_util.h"

namespace {

using nmtest::Child;
using nmtest::Event;
using nmtest::RawPort;

// The region of an open port (kept mapped while the result lives).
std::shared_ptr<unetmap::Region> region_of_id(uint16_t id) {
  int err = 0;
  return unetmap::Region::get(id, unetmap::RegionConfig::from_env(), &err, nullptr, false);
}
std::shared_ptr<unetmap::Region> region_of(const RawPort& p) { return region_of_id(p.reg.nr_mem_id); }

unetmap::KringState* kstate_of(const RawPort& p, netmap_ring* ring,
                               std::shared_ptr<unetmap::Region>* keep) {
  *keep = region_of(p);
  uint64_t ofs = uint64_t(reinterpret_cast<char*>(ring) - static_cast<char*>(p.mem));
  return (*keep)->kring(uint32_t((ofs - (*keep)->hdr()->ring_pool) / (*keep)->cfg().ring_size));
}

// A 60-byte broadcast frame whose bytes 14.. are `tag` repeated.
void put_frame(netmap_ring* r, uint32_t i, uint16_t len, uint16_t flags, uint8_t tag) {
  netmap_slot& s = r->slot[i];
  uint8_t* f = reinterpret_cast<uint8_t*>(NETMAP_BUF(r, s.buf_idx));
  memset(f, 0xff, 6);
  const uint8_t src[6] = {0x02, 0, 0, 0, 0, 0x33};
  memcpy(f + 6, src, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  memset(f + 14, tag, len - 14);
  s.len = len;
  s.flags = flags;
}

struct Got {
  std::vector<uint16_t> lens;  // per slot
  std::vector<uint8_t> tags;   // byte 14 of each slot's buffer with len > 14
  bool oversized = false;      // some slot claimed more than its buffer
  bool bad_index = false;      // some slot named no buffer of the region
};

// Everything on p's rx ring 0 now (after an rxsync), released.
Got drain(RawPort& p) {
  Got g;
  EXPECT_EQ(p.rxsync(), 0);
  netmap_ring* r = p.rx();
  auto reg = region_of(p);
  while (!nm_ring_empty(r)) {
    const netmap_slot& s = r->slot[r->cur];
    g.lens.push_back(s.len);
    if (s.len > r->nr_buf_size) g.oversized = true;
    if (!reg->valid_buf(s.buf_idx)) g.bad_index = true;
    if (!g.oversized && !g.bad_index && s.len > 14)
      g.tags.push_back(reinterpret_cast<uint8_t*>(NETMAP_BUF(r, s.buf_idx))[14]);
    r->head = r->cur = nm_ring_next(r, r->cur);
  }
  EXPECT_EQ(p.rxsync(), 0);
  return g;
}

const unetmap::ValePortInfo* vale_port(std::vector<unetmap::ValeSwitchInfo>* v,
                                        const std::string& sw, const std::string& port) {
  std::string why;
  v->clear();
  EXPECT_EQ(unetmap::vale_list(sw, v, &why), 0) << why;
  for (auto& s : *v)
    for (auto& p : s.ports)
      if (p.name == port) return &p;
  return nullptr;
}

// Start a chain on s (first fragment, NS_MOREFRAG), txsync it: the switch
// keeps it until the last fragment. Then rewrite the fragment already
// handed over the way `rewrite` says, add the last fragment and txsync.
// Run in a child, so that a crash inside the library is an exit status.
int pending_chain_rewritten(RawPort& s, const std::function<void(netmap_slot&)>& rewrite) {
  Child c([&] {
    netmap_ring* t = s.tx();
    put_frame(t, 0, 60, NS_MOREFRAG, 0xa1);
    t->head = t->cur = 1;
    if (s.txsync() != 0) return 10;
    rewrite(t->slot[0]);
    put_frame(t, 1, 60, 0, 0xa2);
    t->head = t->cur = 2;
    int rc = s.txsync();
    return rc == 0 ? 0 : errno == EINVAL ? 1 : 11;
  });
  return c.wait(10000);
}

// The first fragment of a pending chain gets a length beyond its buffer
// after the check: the receiver must not see it (it got 60000 in a
// 2048-byte buffer). What was handed over is what is sent.
TEST(Hostile, ValePendingFragmentRewrittenWithALongLength) {
  RawPort r("valeh:r"), s("valeh:s");
  ASSERT_TRUE(r.ok() && s.ok());
  int rc = pending_chain_rewritten(s, [](netmap_slot& sl) { sl.len = 60000; });
  ASSERT_EQ(rc, 0) << "the sender's txsync failed or crashed";
  Got g = drain(r);
  EXPECT_FALSE(g.oversized) << "the receiver got a length beyond its buffer";
  EXPECT_EQ(g.lens, (std::vector<uint16_t>{60, 60})) << "the chain as it was handed over";
  EXPECT_EQ(g.tags, (std::vector<uint8_t>{0xa1, 0xa2}));
}

// The same with a buffer index far outside the region: the lookup read it
// (SIGSEGV in the sender).
TEST(Hostile, ValePendingFragmentRewrittenWithABadBufferIndex) {
  RawPort r("valeh:r"), s("valeh:s");
  ASSERT_TRUE(r.ok() && s.ok());
  int rc = pending_chain_rewritten(s, [](netmap_slot& sl) { sl.buf_idx = 0x7ffffff0; });
  ASSERT_EQ(rc, 0) << "the sender's txsync failed or crashed (128+11: SIGSEGV)";
  Got g = drain(r);
  EXPECT_FALSE(g.oversized || g.bad_index);
  EXPECT_EQ(g.lens, (std::vector<uint16_t>{60, 60})) << "the chain as it was handed over";
}

// Another process shares the binding (fork) and completes a chain it never
// read, after a fragment was rewritten: the fragment is checked again and
// the packet dropped, counted in the sender's tx drops; nothing crashes and
// the receiver gets nothing bad. The next packet goes through.
TEST(Hostile, ValePendingFragmentRewrittenBeforeAnotherProcessSyncs) {
  for (int variant = 0; variant < 2; variant++) {
    SCOPED_TRACE(variant);
    const std::string sw = "valeh" + std::to_string(variant);
    RawPort r((sw + ":r").c_str()), s((sw + ":s").c_str());
    ASSERT_TRUE(r.ok() && s.ok());
    Event go;
    Child other([&] {  // forked before s ever synced: its view read nothing
      if (go.wait(10000) < 0) return 20;
      netmap_ring* t = s.tx();
      if (variant == 0) t->slot[0].len = 60000;
      else t->slot[0].buf_idx = 0x7ffffff0;
      put_frame(t, 1, 60, 0, 0xa2);
      t->head = t->cur = 2;
      return s.txsync() == 0 ? 0 : 21;
    });
    netmap_ring* t = s.tx();
    put_frame(t, 0, 60, NS_MOREFRAG, 0xa1);
    t->head = t->cur = 1;
    ASSERT_EQ(s.txsync(), 0);
    go.signal();
    ASSERT_EQ(other.wait(10000), 0) << "the other process's txsync failed or crashed";
    Got g = drain(r);
    EXPECT_FALSE(g.oversized || g.bad_index);
    EXPECT_TRUE(g.lens.empty()) << "a packet with a bad fragment was forwarded";
    std::vector<unetmap::ValeSwitchInfo> v;
    const unetmap::ValePortInfo* ps = vale_port(&v, sw, sw + ":s");
    ASSERT_NE(ps, nullptr);
    EXPECT_EQ(ps->tx_drops, 1u) << "the dropped packet is counted";
    // The sender goes on.
    ASSERT_EQ(s.txsync(), 0);
    put_frame(t, t->cur, 60, 0, 0xa3);
    t->head = t->cur = nm_ring_next(t, t->cur);
    ASSERT_EQ(s.txsync(), 0);
    g = drain(r);
    EXPECT_EQ(g.tags, (std::vector<uint8_t>{0xa3}));
  }
}

// A receiver whose buffers are shorter than a fragment does not get it (it
// got len 3000 in a 2048-byte buffer): dropped, counted at the receiver.
TEST(Hostile, ValeFragmentLongerThanTheReceiversBuffersIsDropped) {
  setenv("UNETMAP_BUF_SIZE", "4096", 1);  // the sender's private region
  RawPort s("valeb:s");
  unsetenv("UNETMAP_BUF_SIZE");
  RawPort r("valeb:r");
  ASSERT_TRUE(r.ok() && s.ok());
  ASSERT_EQ(s.tx()->nr_buf_size, 4096u);
  ASSERT_EQ(r.rx()->nr_buf_size, 2048u);
  netmap_ring* t = s.tx();
  put_frame(t, 0, 3000, 0, 0xb1);
  put_frame(t, 1, 2048, 0, 0xb2);
  t->head = t->cur = 2;
  ASSERT_EQ(s.txsync(), 0);
  Got g = drain(r);
  EXPECT_FALSE(g.oversized) << "the receiver got a length beyond its buffer";
  EXPECT_EQ(g.tags, (std::vector<uint8_t>{0xb2}));
  std::vector<unetmap::ValeSwitchInfo> v;
  const unetmap::ValePortInfo* pr = vale_port(&v, "valeb", "valeb:r");
  ASSERT_NE(pr, nullptr);
  EXPECT_EQ(pr->drops, 1u);
}

// Send `count` 60-byte frames on a (tx ring 0) and txsync.
void send_frames(RawPort& a, uint32_t count, uint8_t tag) {
  ASSERT_EQ(a.txsync(), 0);
  netmap_ring* t = a.tx();
  for (uint32_t i = 0; i < count; i++) {
    ASSERT_GT(nm_ring_space(t), 0u);
    put_frame(t, t->cur, 60, 0, tag);
    t->head = t->cur = nm_ring_next(t, t->cur);
  }
  ASSERT_EQ(a.txsync(), 0);
}

// A zero-copy monitor writes lengths beyond its buffers into the free slots
// it will swap to the port: the port never gets them (it did, as the
// length of its tx slots and of the receiver's released slots).
TEST(Hostile, ZeroCopyMonitorSlotLengthsAreCheckedBeforeASwap) {
  RawPort a("zl{0", NR_REG_ALL_NIC, 0, 0, 64), b("zl}0");
  ASSERT_TRUE(a.ok() && b.ok());
  RawPort z("zl{0", NR_REG_ALL_NIC, 0, NR_ZCOPY_MON);
  ASSERT_TRUE(z.ok()) << strerror(z.err);
  netmap_ring* zr = z.rx();
  for (uint32_t i = 0; i < zr->num_slots; i++) zr->slot[i].len = 60000;
  send_frames(a, 10, 0xc1);
  Got g = drain(b);
  EXPECT_EQ(g.lens.size(), 10u);
  ASSERT_EQ(a.txsync(), 0);  // the slots come back to a: swaps would happen now
  netmap_ring* t = a.tx();
  for (uint32_t i = 0; i < t->num_slots; i++)
    EXPECT_LE(t->slot[i].len, t->nr_buf_size) << "tx slot " << i;
  netmap_ring* br = b.rx();
  for (uint32_t i = 0; i < br->num_slots; i++)
    EXPECT_LE(br->slot[i].len, br->nr_buf_size) << "rx slot " << i;
  ASSERT_EQ(z.rxsync(), 0);
  EXPECT_TRUE(nm_ring_empty(zr)) << "nothing swapped in";
  std::shared_ptr<unetmap::Region> keep;
  EXPECT_GT(kstate_of(z, zr, &keep)->fwd_drops, 0u);
  // Traffic goes on.
  send_frames(a, 5, 0xc2);
  g = drain(b);
  EXPECT_EQ(g.tags, std::vector<uint8_t>(5, 0xc2));
}

// The watched port rewrites tx slots it had handed over, before the txsync
// that gives them back: the monitor never gets a bad index or length (it
// got buffer 0x7ffffff0, and lengths of 60000).
TEST(Hostile, ZeroCopyMonitorNeverGetsTheWatchedPortsBadSlots) {
  RawPort a("zw{0", NR_REG_ALL_NIC, 0, 0, 64), b("zw}0");
  ASSERT_TRUE(a.ok() && b.ok());
  auto reg = region_of(a);
  const uint32_t base = reg->bufs_in_use();
  RawPort z("zw{0", NR_REG_ALL_NIC, 0, NR_ZCOPY_MON);
  ASSERT_TRUE(z.ok()) << strerror(z.err);
  send_frames(a, 10, 0xd1);
  EXPECT_EQ(drain(b).lens.size(), 10u);
  netmap_ring* t = a.tx();
  std::vector<uint32_t> keep_idx;
  for (uint32_t i = 0; i < 10; i++) {
    keep_idx.push_back(t->slot[i].buf_idx);
    if (i % 2) t->slot[i].buf_idx = 0x7ffffff0;
    else t->slot[i].len = 60000;
  }
  ASSERT_EQ(a.txsync(), 0);
  Got g = drain(z);
  EXPECT_FALSE(g.oversized) << "the monitor got a length beyond its buffer";
  EXPECT_FALSE(g.bad_index) << "the monitor got a buffer index that is no buffer";
  EXPECT_TRUE(g.lens.empty());
  // Put the buffers back, so that closing frees what the ring owns.
  for (uint32_t i = 0; i < 10; i++) t->slot[i].buf_idx = keep_idx[i];
  z.close();
  EXPECT_EQ(reg->bufs_in_use(), base) << "no buffer lost";
}

}  // namespace
