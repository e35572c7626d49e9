// Extra buffers (nr_extra_bufs / legacy nr_arg3): a chain of spare buffers
// linked through their first 4 bytes from netmap_if.ni_bufs_head. The
// application may swap them into slots; whatever is on the chain when the
// port is closed goes back to the pool.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstring>
#include <memory>
#include <set>
#include <vector>

#include "mem/region.h"
#include "util/test_util.h"

namespace {

using nmtest::RawPort;

std::shared_ptr<unetmap::Region> region(uint16_t id) {
  int err = 0;
  return unetmap::Region::get(id, unetmap::RegionConfig::from_env(), &err);
}

// Register name asking for `extra` spare buffers.
bool open_with_extra(RawPort& p, const char* name, uint32_t extra, uint16_t mem_id = 0) {
  p.fd = ::open("/dev/netmap", O_RDWR);
  if (p.fd < 0) return false;
  nmreq_header h{};
  h.nr_version = NETMAP_API;
  h.nr_reqtype = NETMAP_REQ_REGISTER;
  snprintf(h.nr_name, sizeof h.nr_name, "%s", name);
  p.reg = nmreq_register{};
  p.reg.nr_mode = NR_REG_ALL_NIC;
  p.reg.nr_extra_bufs = extra;
  p.reg.nr_mem_id = mem_id;
  h.nr_body = uintptr_t(&p.reg);
  if (ioctl(p.fd, NIOCCTRL, &h) < 0) return false;
  p.mem = mmap(nullptr, p.reg.nr_memsize, PROT_READ | PROT_WRITE, MAP_SHARED, p.fd, 0);
  if (p.mem == MAP_FAILED) return false;
  p.nifp = NETMAP_IF(p.mem, p.reg.nr_offset);
  return true;
}

std::vector<uint32_t> chain(const RawPort& p) {
  std::vector<uint32_t> v;
  netmap_ring* r = p.tx();
  for (uint32_t b = p.nifp->ni_bufs_head; b && v.size() < 100000;) {
    v.push_back(b);
    memcpy(&b, NETMAP_BUF(r, b), 4);
  }
  return v;
}

// Take the first extra buffer into the slot at tx->cur (NS_BUF_CHANGED);
// the slot's own buffer takes its place at the head of the chain.
uint32_t swap_in_extra(RawPort& tx) {
  netmap_ring* r = tx.tx();
  netmap_slot& s = r->slot[r->cur];
  uint32_t extra = tx.nifp->ni_bufs_head, next;
  memcpy(&next, NETMAP_BUF(r, extra), 4);
  uint32_t old = s.buf_idx;
  memcpy(NETMAP_BUF(r, old), &next, 4);
  tx.nifp->ni_bufs_head = old;
  s.buf_idx = extra;
  s.flags = NS_BUF_CHANGED;
  return extra;
}

TEST(ExtraBufs, ChainIsGivenAndReturnedAtClose) {
  RawPort keep("eb}0");  // keeps the pipe (and region 1) alive across the test
  ASSERT_TRUE(keep.ok());
  const uint32_t before = region(1)->bufs_in_use();
  {
    RawPort p;
    ASSERT_TRUE(open_with_extra(p, "eb{0", 16)) << strerror(errno);
    EXPECT_EQ(p.reg.nr_extra_bufs, 16u);
    std::vector<uint32_t> c = chain(p);
    ASSERT_EQ(c.size(), 16u);
    std::set<uint32_t> distinct(c.begin(), c.end());
    EXPECT_EQ(distinct.size(), 16u);
    for (uint32_t b : c) EXPECT_GE(b, 2u);
    EXPECT_EQ(region(1)->bufs_in_use(), before + 16);
  }
  EXPECT_EQ(region(1)->bufs_in_use(), before) << "the chain went back to the pool at close";
}

// Swap an extra buffer into a tx slot, put the slot's buffer on the chain:
// the receiver gets the extra buffer's data; at close the (new) chain is
// freed and the pool count is back where it was.
TEST(ExtraBufs, SwappedIntoASlotAndSent) {
  RawPort keep("null:es");  // keeps region 1 for the counts
  ASSERT_TRUE(keep.ok());
  const uint32_t base = region(1)->bufs_in_use();
  RawPort rx("es}0");
  ASSERT_TRUE(rx.ok());
  const uint32_t before = region(1)->bufs_in_use();
  {
    RawPort tx;
    ASSERT_TRUE(open_with_extra(tx, "es{0", 4)) << strerror(errno);
    ASSERT_EQ(tx.reg.nr_extra_bufs, 4u);
    netmap_ring* r = tx.tx();
    netmap_slot& s = r->slot[r->cur];
    uint32_t extra = swap_in_extra(tx);
    memcpy(NETMAP_BUF(r, extra), "extra buffer payload", 20);
    s.len = 60;
    r->head = r->cur = nm_ring_next(r, r->cur);
    ASSERT_EQ(tx.txsync(), 0);
    ASSERT_EQ(rx.poll(POLLIN, 2000), 1);
    netmap_ring* rr = rx.rx();
    ASSERT_FALSE(nm_ring_empty(rr));
    EXPECT_EQ(rr->slot[rr->cur].buf_idx, extra) << "zero copy: the receiver has that buffer";
    EXPECT_EQ(memcmp(NETMAP_BUF(rr, rr->slot[rr->cur].buf_idx), "extra buffer payload", 20), 0);
    EXPECT_EQ(chain(tx).size(), 4u);
  }
  // The sender's end closed: its other extra buffers went back; the one
  // swapped in belongs to the ring now, and the ring's buffer swapped out
  // onto the chain is still the ring's (nothing an application writes on a
  // chain decides what is freed): it goes back with the pipe.
  EXPECT_EQ(region(1)->bufs_in_use(), before + 1);
  rx.close();
  EXPECT_EQ(region(1)->bufs_in_use(), base) << "with the pipe, every buffer came back";
}

// A chain the application broke (a loop, a bad index) is freed as far as it
// is valid, never twice, and never beyond the region.
TEST(ExtraBufs, GarbageChainIsHarmless) {
  RawPort keep("eg}0");
  ASSERT_TRUE(keep.ok());
  const uint32_t before = region(1)->bufs_in_use();
  {
    RawPort p;
    ASSERT_TRUE(open_with_extra(p, "eg{0", 8));
    std::vector<uint32_t> c = chain(p);
    ASSERT_EQ(c.size(), 8u);
    // Make the 3rd point back to the 1st: a loop.
    memcpy(NETMAP_BUF(p.tx(), c[2]), &c[0], 4);
  }
  // The registration's extra buffers come back exactly once, wherever the
  // chain points: the owner tags decide, not the chain.
  EXPECT_EQ(region(1)->bufs_in_use(), before);
  {
    RawPort p;
    ASSERT_TRUE(open_with_extra(p, "eg{0", 2));
    p.nifp->ni_bufs_head = 0xfffffff0u;  // out of the region
  }
  EXPECT_EQ(region(1)->bufs_in_use(), before) << "a bad head loses nothing";
}

// Legacy NIOCREGIF: nr_arg3 asks, and tells how many were given.
TEST(ExtraBufs, LegacyArg3) {
  int fd = ::open("/dev/netmap", O_RDWR);
  ASSERT_GE(fd, 0);
  nmreq r{};
  strcpy(r.nr_name, "el{0");
  r.nr_version = 14;
  r.nr_flags = NR_REG_ALL_NIC;
  r.nr_arg3 = 5;
  ASSERT_EQ(ioctl(fd, NIOCREGIF, &r), 0) << strerror(errno);
  EXPECT_EQ(r.nr_arg3, 5u);
  ::close(fd);
}

}  // namespace

namespace {

// The extra buffers of a VALE port come from its own (private) region, go
// through the switch by copy, and return to that region at close.
TEST(ExtraBufs, OnAValePort) {
  RawPort rx("vale0:xr");
  ASSERT_TRUE(rx.ok());
  RawPort tx;
  ASSERT_TRUE(open_with_extra(tx, "vale0:xt", 8)) << strerror(errno);
  ASSERT_EQ(tx.reg.nr_extra_bufs, 8u);
  auto reg = region(tx.reg.nr_mem_id);
  const uint32_t with_extra = reg->bufs_in_use();
  netmap_ring* r = tx.tx();
  netmap_slot& s = r->slot[r->cur];
  char* f = NETMAP_BUF(r, swap_in_extra(tx));
  memset(f, 0xff, 6);  // broadcast
  memset(f + 6, 0x02, 6);
  memcpy(f + 14, "through the switch", 18);
  s.len = 60;
  r->head = r->cur = nm_ring_next(r, r->cur);
  ASSERT_EQ(tx.txsync(), 0);
  ASSERT_EQ(rx.poll(POLLIN, 2000), 1);
  netmap_ring* rr = rx.rx();
  ASSERT_FALSE(nm_ring_empty(rr));
  EXPECT_EQ(memcmp(NETMAP_BUF(rr, rr->slot[rr->cur].buf_idx) + 14, "through the switch", 18), 0);
  EXPECT_EQ(reg->bufs_in_use(), with_extra) << "swapping moves buffers, never allocates";
  tx.close();
  // The sender's port (and its private region) went with its last user.
  struct stat st;
  EXPECT_NE(stat((unetmap::runtime_dir() + "/" + unetmap::Region::file_name(tx.reg.nr_mem_id)).c_str(), &st), 0);
}

// Swap the first extra buffer into the rx slot at cur (NS_BUF_CHANGED): the
// received buffer goes to the head of the chain, kept by the application.
uint32_t keep_received(RawPort& p) {
  netmap_ring* r = p.rx();
  netmap_slot& s = r->slot[r->cur];
  uint32_t extra = p.nifp->ni_bufs_head, next;
  memcpy(&next, NETMAP_BUF(r, extra), 4);
  uint32_t got = s.buf_idx;
  memcpy(NETMAP_BUF(r, got), &next, 4);
  p.nifp->ni_bufs_head = got;
  s.buf_idx = extra;
  s.flags = NS_BUF_CHANGED;
  r->head = r->cur = nm_ring_next(r, r->cur);
  return got;
}

// Send the buffer at the head of p's chain (swapped into the tx slot at cur).
void send_extra(RawPort& p, const char* text) {
  netmap_ring* r = p.tx();
  netmap_slot& s = r->slot[r->cur];
  char* f = NETMAP_BUF(r, swap_in_extra(p));
  memset(f, 0xff, 6);  // broadcast
  memset(f + 6, 0x02, 6);
  memcpy(f + 14, text, strlen(text) + 1);
  s.len = 60;
  r->head = r->cur = nm_ring_next(r, r->cur);
  ASSERT_EQ(p.txsync(), 0);
}

// Extra buffers sent and received on VALE ports sharing one region (@N):
// each side swaps a spare buffer into a tx slot to send, and into an rx slot
// to keep what it received; at close every chain goes back, and the
// region's pool count is where it was.
TEST(ExtraBufs, SentAndReceivedOnValePorts) {
  constexpr uint16_t kMem = 7;
  RawPort keep;  // keeps region 7 alive so its count can be compared
  ASSERT_TRUE(open_with_extra(keep, "vale3:xk", 0, kMem)) << strerror(errno);
  auto reg = region(kMem);
  const uint32_t before = reg->bufs_in_use();
  {
    RawPort a, b;
    ASSERT_TRUE(open_with_extra(a, "vale3:xa", 8, kMem)) << strerror(errno);
    ASSERT_TRUE(open_with_extra(b, "vale3:xb", 8, kMem)) << strerror(errno);
    ASSERT_EQ(a.reg.nr_extra_bufs, 8u);
    ASSERT_EQ(b.reg.nr_extra_bufs, 8u);
    EXPECT_EQ(a.reg.nr_mem_id, kMem);
    const uint32_t opened = reg->bufs_in_use();
    for (int round = 0; round < 3; round++) {
      send_extra(a, "from a");
      ASSERT_EQ(b.poll(POLLIN, 2000), 1);
      ASSERT_FALSE(nm_ring_empty(b.rx()));
      char text[8];
      memcpy(text, NETMAP_BUF(b.rx(), b.rx()->slot[b.rx()->cur].buf_idx) + 14, 7);
      EXPECT_STREQ(text, "from a");
      uint32_t kept = keep_received(b);
      ASSERT_EQ(b.rxsync(), 0);
      EXPECT_EQ(b.nifp->ni_bufs_head, kept) << "the received buffer is on b's chain";
      send_extra(b, "from b");  // and goes out again
      ASSERT_EQ(a.poll(POLLIN, 2000), 1);
      ASSERT_FALSE(nm_ring_empty(a.rx()));
      memcpy(text, NETMAP_BUF(a.rx(), a.rx()->slot[a.rx()->cur].buf_idx) + 14, 7);
      EXPECT_STREQ(text, "from b");
      keep_received(a);
      ASSERT_EQ(a.rxsync(), 0);
    }
    EXPECT_EQ(chain(a).size(), 8u);
    EXPECT_EQ(chain(b).size(), 8u);
    EXPECT_EQ(reg->bufs_in_use(), opened) << "swaps move buffers, never allocate";
  }
  EXPECT_EQ(reg->bufs_in_use(), before) << "ports and chains went back to the pool";
}

}  // namespace
