// Leases (core/lease.h) tested directly, on a kring state and a ring in
// shared memory that no port owns: reservation and publication in order,
// a hole left by a producer that has not finished, a hole closed when its
// producer died, wrap-around at the ring's end, a full ring, a full lease
// table, a stale generation, and a producer that died inside lease_lock.
//
// Only lease.h's functions move the leases; the test plays the consumer
// (it writes hwcur, as the ring's rxsync does) and the producers (slots
// filled between lease_open and lease_close). A dead producer is a real
// child process that took a lease and exited; a dead lease is reclaimed
// only once it is older than the mechanism's grace period, so those tests
// retry the reclaim until it happens, under a deadline, and check the ring
// afterwards.
#include "core/lease.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <new>
#include <thread>
#include <vector>

#include "util/test_util.h"

namespace {

using nmtest::Child;
using nmtest::now_ms;
using unetmap::KringState;
using unetmap::LeaseGuard;

// A kring state and its netmap ring, in MAP_SHARED memory (a child process
// sees the same bytes). Slot i starts with buffer kBuf0 + i; the ring is
// empty at `at` (hwcur == hwtail == lease_tail).
constexpr uint32_t kBuf0 = 1000;
constexpr uint32_t kGen = 7;

class TestRing {
 public:
  explicit TestRing(uint32_t nslots, uint32_t at = 0) : n_(nslots) {
    const size_t ring_off = (sizeof(KringState) + 4095) & ~size_t(4095);  // netmap_ring is aligned
    size_ = ring_off + sizeof(netmap_ring) + nslots * sizeof(netmap_slot);
    base_ = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (base_ == MAP_FAILED) abort();
    ks = new (base_) KringState();
    ks->lease_lock.init();
    ks->nslots = nslots;
    ks->gen.store(kGen);
    ks->hwcur.store(at);
    ks->hwtail.store(at);
    ks->lease_tail = at;
    ring = reinterpret_cast<netmap_ring*>(static_cast<char*>(base_) + ring_off);
    for (uint32_t i = 0; i < nslots; i++) {
      ring->slot[i].buf_idx = kBuf0 + i;
      ring->slot[i].len = 0;
      ring->slot[i].flags = 0;
      ring->slot[i].ptr = 0;
    }
  }
  ~TestRing() { munmap(base_, size_); }
  TestRing(const TestRing&) = delete;
  TestRing& operator=(const TestRing&) = delete;

  uint32_t n() const { return n_; }
  uint32_t hwtail() const { return ks->hwtail.load(); }
  uint32_t at(uint32_t i) const { return i % n_; }

  // Reserve k slots under the lock, as a VALE sender does; false if the
  // ring cannot take the lease.
  bool open(uint32_t k, uint32_t* start, uint32_t* slot) {
    LeaseGuard g(ks);
    if (!g.ok() || !unetmap::lease_usable(ks, kGen) || unetmap::lease_room(ks) < k) return false;
    unetmap::lease_open(ks, k, start, slot);
    return true;
  }
  uint32_t room() {
    LeaseGuard g(ks);
    return g.ok() ? unetmap::lease_room(ks) : ~0u;
  }
  // Write `mark` into the lease's slots (len and ptr), as a producer's copy.
  void fill(uint32_t start, uint32_t k, uint16_t mark) {
    for (uint32_t i = 0; i < k; i++) {
      netmap_slot& s = ring->slot[at(start + i)];
      s.len = mark;
      s.ptr = uint64_t(mark) << 16 | i;
    }
  }
  void close(uint32_t slot) { unetmap::lease_close(ks, ring, slot, kGen); }
  // The consumer released everything up to `head` (its rxsync).
  void consume(uint32_t head) { ks->hwcur.store(head); }
  uint32_t pending() {
    LeaseGuard g(ks);
    return ks->lease_count;
  }
  std::vector<uint32_t> buffers() const {
    std::vector<uint32_t> v;
    for (uint32_t i = 0; i < n_; i++) v.push_back(ring->slot[i].buf_idx);
    std::sort(v.begin(), v.end());
    return v;
  }
  // Retry the consumer-side reclaim until the published tail leaves `from`
  // (a dead lease's grace period is the mechanism's own); false at the
  // deadline.
  bool reclaim_until_tail_moves(uint32_t from, int timeout_ms = 5000) {
    const double end = now_ms() + timeout_ms;
    while (hwtail() == from) {
      unetmap::reclaim_stalled(ks, ring, hwtail());
      if (hwtail() != from) break;
      if (now_ms() > end) return false;
      std::this_thread::yield();
    }
    return true;
  }

  KringState* ks;
  netmap_ring* ring;

 private:
  uint32_t n_;
  size_t size_;
  void* base_;
};

std::vector<uint32_t> all_buffers(uint32_t n) {
  std::vector<uint32_t> v;
  for (uint32_t i = 0; i < n; i++) v.push_back(kBuf0 + i);
  return v;
}

// A lease of k slots taken by a child process that then exits without
// closing it (a sender killed mid-copy). Returns the lease's start.
uint32_t dead_lease(TestRing& r, uint32_t k) {
  nmtest::Event ev;
  Child c([&] {
    uint32_t start, slot;
    if (!r.open(k, &start, &slot)) return 1;
    r.fill(start, k, 0xdead);  // half a copy: these bytes must never be published
    ev.send(start);
    return 0;  // no lease_close
  });
  uint32_t start = ~0u;
  EXPECT_TRUE(ev.recv(&start, 10000));
  EXPECT_EQ(c.wait(10000), 0);
  return start;
}

// ===========================================================================
// Reservation and publication.

TEST(Lease, AnEmptyRingOffersAllButOneSlot) {
  TestRing r(8);
  EXPECT_EQ(r.room(), 7u);
  TestRing w(8, 5);  // the same anywhere in the ring
  EXPECT_EQ(w.room(), 7u);
  uint32_t start, slot;
  EXPECT_FALSE(r.open(8, &start, &slot));
  EXPECT_EQ(r.pending(), 0u);
}

TEST(Lease, LeasesAreConsecutiveAndPublishInOrderWhenClosedInOrder) {
  TestRing r(16);
  uint32_t a, sa, b, sb;
  ASSERT_TRUE(r.open(3, &a, &sa));
  ASSERT_TRUE(r.open(2, &b, &sb));
  EXPECT_EQ(a, 0u);
  EXPECT_EQ(b, 3u);  // right after the first reservation
  EXPECT_EQ(r.room(), 15u - 5u);
  EXPECT_EQ(r.hwtail(), 0u) << "a reservation is not published before it is closed";
  r.fill(a, 3, 0xa);
  r.close(sa);
  EXPECT_EQ(r.hwtail(), 3u);
  r.fill(b, 2, 0xb);
  r.close(sb);
  EXPECT_EQ(r.hwtail(), 5u);
  EXPECT_EQ(r.pending(), 0u);
  // Publication does not give slots back: only the consumer does.
  EXPECT_EQ(r.room(), 10u);
  r.consume(5);
  EXPECT_EQ(r.room(), 15u);
}

TEST(Lease, ALeaseClosedEarlyWaitsForTheOneBeforeIt) {
  TestRing r(16);
  uint32_t a, sa, b, sb, c, sc;
  ASSERT_TRUE(r.open(2, &a, &sa));
  ASSERT_TRUE(r.open(3, &b, &sb));
  ASSERT_TRUE(r.open(1, &c, &sc));
  r.fill(c, 1, 0xc);
  r.close(sc);
  r.fill(b, 3, 0xb);
  r.close(sb);
  EXPECT_EQ(r.hwtail(), 0u) << "published past a lease that is still being filled";
  // A slow producer is alive: neither the consumer's reclaim nor another
  // publication may take its slots, however long it takes (3 ms is past
  // the grace period after which a dead producer's lease is reclaimed).
  const double t0 = now_ms();
  while (now_ms() < t0 + 3) {
    unetmap::reclaim_stalled(r.ks, r.ring, r.hwtail());
    LeaseGuard g(r.ks);
    ASSERT_TRUE(g.ok());
    unetmap::advance_leases(r.ks, r.ring);
    ASSERT_EQ(r.hwtail(), 0u) << "a live producer's lease was taken";
  }
  EXPECT_EQ(r.hwtail(), 0u);
  EXPECT_EQ(r.pending(), 3u);
  r.fill(a, 2, 0xa);
  r.close(sa);
  EXPECT_EQ(r.hwtail(), 6u) << "the first close publishes every done lease after it";
  EXPECT_EQ(r.pending(), 0u);
  const uint16_t want[] = {0xa, 0xa, 0xb, 0xb, 0xb, 0xc};
  for (uint32_t i = 0; i < 6; i++) EXPECT_EQ(r.ring->slot[i].len, want[i]) << "slot " << i;
}

TEST(Lease, AMiddleLeaseHoldsBackOnlyWhatFollowsIt) {
  TestRing r(16);
  uint32_t a, sa, b, sb, c, sc;
  ASSERT_TRUE(r.open(1, &a, &sa));
  ASSERT_TRUE(r.open(1, &b, &sb));
  ASSERT_TRUE(r.open(1, &c, &sc));
  r.close(sa);
  EXPECT_EQ(r.hwtail(), 1u);
  r.close(sc);
  EXPECT_EQ(r.hwtail(), 1u);
  r.close(sb);
  EXPECT_EQ(r.hwtail(), 3u);
}

TEST(Lease, ReservationsWrapAroundTheRingEnd) {
  TestRing r(8, 6);
  uint32_t a, sa, b, sb;
  ASSERT_TRUE(r.open(3, &a, &sa));  // 6, 7, 0
  ASSERT_TRUE(r.open(2, &b, &sb));  // 1, 2
  EXPECT_EQ(a, 6u);
  EXPECT_EQ(b, 1u);
  EXPECT_EQ(r.room(), 2u);
  r.close(sa);
  EXPECT_EQ(r.hwtail(), 1u);
  r.close(sb);
  EXPECT_EQ(r.hwtail(), 3u);
  r.consume(3);
  EXPECT_EQ(r.room(), 7u);
  EXPECT_EQ(r.buffers(), all_buffers(8));
}

TEST(Lease, AFullRingHasNoRoomUntilTheConsumerReleases) {
  for (uint32_t at : {0u, 3u}) {
    SCOPED_TRACE(at);
    TestRing r(8, at);
    uint32_t a, sa, x, sx;
    ASSERT_TRUE(r.open(7, &a, &sa));
    EXPECT_EQ(r.room(), 0u);
    EXPECT_FALSE(r.open(1, &x, &sx));
    r.close(sa);
    EXPECT_EQ(r.hwtail(), r.at(at + 7)) << "one slot stays empty: full is not empty";
    EXPECT_EQ(r.room(), 0u);
    EXPECT_FALSE(r.open(1, &x, &sx));
    r.consume(r.at(at + 2));  // the consumer read two slots
    EXPECT_EQ(r.room(), 2u);
    ASSERT_TRUE(r.open(2, &x, &sx));
    EXPECT_EQ(x, r.at(at + 7));
    r.close(sx);
    EXPECT_EQ(r.hwtail(), r.at(at + 9));
  }
}

TEST(Lease, TheLeaseTableHoldsAtMostMaxLeasesAndIsReused) {
  TestRing r(64);
  std::vector<uint32_t> slots;
  for (uint32_t i = 0; i < unetmap::kMaxLeases; i++) {
    uint32_t s, sl;
    ASSERT_TRUE(r.open(1, &s, &sl)) << i;
    slots.push_back(sl);
  }
  {
    LeaseGuard g(r.ks);
    EXPECT_FALSE(unetmap::lease_usable(r.ks, kGen)) << "a 17th lease would overwrite the first";
  }
  r.close(slots[0]);
  uint32_t s, sl;
  ASSERT_TRUE(r.open(1, &s, &sl));
  EXPECT_EQ(sl, slots[0]) << "the freed entry is the next one used";
  for (size_t i = 1; i < slots.size(); i++) r.close(slots[i]);
  r.close(sl);
  EXPECT_EQ(r.hwtail(), unetmap::kMaxLeases + 1);
  // Many rounds around the circular table and the ring.
  for (uint32_t i = 0; i < 10 * unetmap::kMaxLeases; i++) {
    uint32_t a, sa, b, sb;
    const uint32_t t = r.hwtail();
    ASSERT_TRUE(r.open(2, &a, &sa));
    ASSERT_TRUE(r.open(3, &b, &sb));
    r.close(sb);
    r.close(sa);
    ASSERT_EQ(r.hwtail(), r.at(t + 5));
    r.consume(r.hwtail());
  }
  EXPECT_EQ(r.pending(), 0u);
}

TEST(Lease, ARingOfAnotherGenerationOrBeingDestroyedTakesNoLease) {
  TestRing r(8);
  LeaseGuard g(r.ks);
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(unetmap::lease_usable(r.ks, kGen));
  EXPECT_FALSE(unetmap::lease_usable(r.ks, kGen + 1));
  r.ks->dead = 1;
  EXPECT_FALSE(unetmap::lease_usable(r.ks, kGen));
}

TEST(Lease, ACloseWithAStaleGenerationPublishesNothing) {
  TestRing r(8);
  uint32_t a, sa;
  ASSERT_TRUE(r.open(2, &a, &sa));
  r.ks->gen.store(kGen + 1);  // the ring was destroyed and made again meanwhile
  r.close(sa);
  EXPECT_EQ(r.hwtail(), 0u);
  EXPECT_EQ(r.pending(), 1u);
}

// ===========================================================================
// A producer that dies.

TEST(Lease, ADeadProducersLastLeaseIsGivenBack) {
  TestRing r(8);
  const uint32_t d = dead_lease(r, 3);
  ASSERT_EQ(d, 0u);
  EXPECT_EQ(r.pending(), 1u);
  EXPECT_EQ(r.room(), 4u);
  // Nothing after the hole: it is dropped, the ring looks empty again and
  // its slots are free for the next producer. The dead producer's half
  // copy is never published.
  const double end = now_ms() + 5000;
  while (r.pending() != 0 && now_ms() < end) unetmap::reclaim_stalled(r.ks, r.ring, r.hwtail());
  ASSERT_EQ(r.pending(), 0u) << "the dead lease was never reclaimed";
  EXPECT_EQ(r.hwtail(), 0u);
  EXPECT_EQ(r.room(), 7u);
  EXPECT_EQ(r.buffers(), all_buffers(8));
  uint32_t a, sa;
  ASSERT_TRUE(r.open(2, &a, &sa));
  EXPECT_EQ(a, 0u) << "the reclaimed slots are reserved again";
}

TEST(Lease, AHoleOfADeadProducerIsClosedOnceEveryLaterLeaseIsDone) {
  TestRing r(16, 2);
  const uint32_t d = dead_lease(r, 3);  // 2, 3, 4
  ASSERT_EQ(d, 2u);
  uint32_t b, sb, c, sc;
  ASSERT_TRUE(r.open(2, &b, &sb));  // 5, 6
  ASSERT_TRUE(r.open(1, &c, &sc));  // 7
  r.fill(b, 2, 0xb);
  r.fill(c, 1, 0xc);
  r.close(sc);
  // b is alive and not done: the hole must stay, however old it gets.
  const double t0 = now_ms();
  while (now_ms() < t0 + 3) {
    unetmap::reclaim_stalled(r.ks, r.ring, r.hwtail());
    ASSERT_EQ(r.hwtail(), 2u) << "closed the hole while a later lease was being filled";
  }
  EXPECT_EQ(r.pending(), 3u);
  r.close(sb);
  // Now the hole closes: b's and c's slots move down over it.
  ASSERT_TRUE(r.reclaim_until_tail_moves(2)) << "the hole was never closed";
  EXPECT_EQ(r.hwtail(), 5u);
  EXPECT_EQ(r.pending(), 0u);
  const uint16_t want[] = {0xb, 0xb, 0xc};
  for (uint32_t i = 0; i < 3; i++) EXPECT_EQ(r.ring->slot[2 + i].len, want[i]) << "slot " << 2 + i;
  for (uint32_t i = 0; i < 3; i++) EXPECT_NE(r.ring->slot[2 + i].len, 0xdead);
  // Descriptors were swapped, not copied: every buffer is still in the ring
  // once, and the slots after the tail are free for reservation.
  EXPECT_EQ(r.buffers(), all_buffers(16));
  EXPECT_EQ(r.room(), 15u - 3u);
  uint32_t e, se;
  ASSERT_TRUE(r.open(1, &e, &se));
  EXPECT_EQ(e, 5u);
}

// Closing a hole moves slots in several writes. A closer killed after any
// of them (simulated: advance_leases stops after `budget` steps, with the
// lock held, as a process killed there leaves it) left the ring half
// moved, and the next closer moved it again from the start: slots
// swapped back, a dead producer's half-written slot published. The move
// is journalled; the next holder of the lock finishes it.
TEST(Lease, AHoleCloserKilledAtAnyStepIsFinishedByTheNextLocker) {
  for (uint32_t budget = 0; budget <= 11; budget++) {
    SCOPED_TRACE("killed after step " + std::to_string(budget));
    TestRing r(16, 2);
    ASSERT_EQ(dead_lease(r, 3), 2u);  // 2, 3, 4
    const double since = now_ms();
    uint32_t b, sb, c, sc;
    ASSERT_TRUE(r.open(2, &b, &sb));  // 5, 6
    ASSERT_TRUE(r.open(1, &c, &sc));  // 7
    r.fill(b, 2, 0xb);
    r.fill(c, 1, 0xc);
    r.close(sc);
    r.close(sb);
    while (now_ms() < since + 2) std::this_thread::yield();  // the dead lease's grace period
    {
      LeaseGuard g(r.ks, r.ring);
      ASSERT_TRUE(g.ok());
      uint32_t left = budget;
      unetmap::advance_leases(r.ks, r.ring, &left);
      if (left == 0 && r.ks->hole.active) {
        EXPECT_EQ(r.hwtail(), 2u) << "published before the move was done";
      }
    }
    {
      LeaseGuard g(r.ks, r.ring);  // the next locker
      ASSERT_TRUE(g.ok());
      unetmap::advance_leases(r.ks, r.ring);
    }
    EXPECT_EQ(r.ks->hole.active, 0u);
    EXPECT_EQ(r.hwtail(), 5u);
    EXPECT_EQ(r.pending(), 0u);
    const uint16_t want[] = {0xb, 0xb, 0xc};
    for (uint32_t i = 0; i < 3; i++) EXPECT_EQ(r.ring->slot[2 + i].len, want[i]) << "slot " << 2 + i;
    EXPECT_EQ(r.ring->slot[2].ptr & 0xffff, 0u);
    EXPECT_EQ(r.ring->slot[3].ptr & 0xffff, 1u);
    EXPECT_EQ(r.buffers(), all_buffers(16)) << "every buffer in the ring once";
    uint32_t e, se;
    ASSERT_TRUE(r.open(1, &e, &se));
    EXPECT_EQ(e, 5u);
  }
}

TEST(Lease, AHoleInTheMiddleIsClosedAfterTheLeaseBeforeItPublishes) {
  TestRing r(16);
  uint32_t a, sa, b, sb;
  ASSERT_TRUE(r.open(2, &a, &sa));       // 0, 1
  const uint32_t d = dead_lease(r, 4);  // 2..5
  ASSERT_EQ(d, 2u);
  ASSERT_TRUE(r.open(1, &b, &sb));  // 6
  r.fill(b, 1, 0xb);
  r.close(sb);
  EXPECT_EQ(r.hwtail(), 0u);
  r.fill(a, 2, 0xa);
  r.close(sa);  // publishes a; the hole is next
  const uint32_t t = r.hwtail();
  ASSERT_TRUE(t == 2u || t == 3u) << t;  // 3: the hole was already old enough
  if (t == 2u) {
    ASSERT_TRUE(r.reclaim_until_tail_moves(2));
  }
  EXPECT_EQ(r.hwtail(), 3u);
  EXPECT_EQ(r.ring->slot[2].len, 0xb);
  EXPECT_EQ(r.pending(), 0u);
  EXPECT_EQ(r.buffers(), all_buffers(16));
}

TEST(Lease, AHoleAcrossTheRingEndIsClosed) {
  TestRing r(8, 5);
  const uint32_t d = dead_lease(r, 4);  // 5, 6, 7, 0
  ASSERT_EQ(d, 5u);
  uint32_t b, sb;
  ASSERT_TRUE(r.open(2, &b, &sb));  // 1, 2
  EXPECT_EQ(b, 1u);
  r.fill(b, 2, 0xb);
  r.close(sb);
  ASSERT_TRUE(r.reclaim_until_tail_moves(5));
  EXPECT_EQ(r.hwtail(), 7u);
  EXPECT_EQ(r.ring->slot[5].len, 0xb);
  EXPECT_EQ(r.ring->slot[6].len, 0xb);
  EXPECT_EQ(r.ring->slot[5].ptr & 0xffff, 0u);  // b's first slot, then its second
  EXPECT_EQ(r.ring->slot[6].ptr & 0xffff, 1u);
  EXPECT_EQ(r.buffers(), all_buffers(8));
  EXPECT_EQ(r.room(), 7u - 2u);
}

TEST(Lease, TheConsumerReclaimsOnlyWhenItsRingLooksEmpty) {
  TestRing r(16);
  uint32_t a, sa;
  ASSERT_TRUE(r.open(2, &a, &sa));
  r.close(sa);
  ASSERT_EQ(r.hwtail(), 2u);
  const uint32_t d = dead_lease(r, 3);
  ASSERT_EQ(d, 2u);
  // The consumer has not read slots 0 and 1 yet (its head is 0): it has
  // work, so the cheap check does not look at the leases.
  const double t0 = now_ms();
  while (now_ms() < t0 + 3) {
    unetmap::reclaim_stalled(r.ks, r.ring, 0);
    ASSERT_EQ(r.pending(), 1u);
  }
  // At the tail (ring empty for it), the dead lease goes.
  unetmap::reclaim_stalled(r.ks, r.ring, 2);
  EXPECT_EQ(r.pending(), 0u);
  EXPECT_EQ(r.hwtail(), 2u);
  EXPECT_EQ(r.room(), 15u - 2u);
}

// A producer killed inside lease_lock, half-way through a reservation
// (the lease counted, lease_tail not yet moved): the next locker repairs
// lease_tail from the counted leases.
TEST(Lease, AProducerThatDiedHoldingTheLockIsRepairedByTheNextLocker) {
  TestRing r(16);
  uint32_t a, sa;
  ASSERT_TRUE(r.open(2, &a, &sa));
  Child c([&] {
    LeaseGuard g(r.ks);
    if (!g.ok()) return 1;
    uint32_t start, slot;
    unetmap::lease_open(r.ks, 5, &start, &slot);
    r.ks->lease_tail = start;  // as if killed before lease_tail was written
    _exit(0);                  // the lock is never released
  });
  ASSERT_EQ(c.wait(10000), 0);
  {
    LeaseGuard g(r.ks);
    ASSERT_TRUE(g.ok()) << "the dead holder's lock was not recovered";
    EXPECT_EQ(r.ks->lease_tail, 7u) << "lease_tail not recomputed from the counted leases";
    EXPECT_EQ(unetmap::lease_room(r.ks), 15u - 7u);
  }
  uint32_t b, sb;
  ASSERT_TRUE(r.open(1, &b, &sb));
  EXPECT_EQ(b, 7u) << "a new lease overlaps the dead one's";
  r.close(sa);
  EXPECT_EQ(r.hwtail(), 2u);
}

// ===========================================================================
// Concurrency: the invariant the mechanism exists for.

// Several producers take leases of random sizes and fill them outside the
// lock, each slot with its reservation number; a consumer reads what is
// published. Every published slot must be filled (never a slot still being
// copied), and reservation numbers must come in order with no gap.
TEST(Lease, ConcurrentProducersPublishFilledSlotsInReservationOrder) {
  TestRing r(64);
  constexpr int kProducers = 3;
  constexpr uint32_t kLeasesEach = 4000;
  std::atomic<uint64_t> next_seq{0};  // written under lease_lock only
  std::atomic<int> done{0};
  std::atomic<bool> stop{false};
  auto producer = [&](uint32_t seed) {
    uint32_t x = seed;
    for (uint32_t i = 0; i < kLeasesEach && !stop.load();) {
      x = x * 1103515245u + 12345u;
      const uint32_t k = 1 + (x >> 16) % 4;
      uint32_t start, slot;
      uint64_t seq0;
      {
        LeaseGuard g(r.ks);
        if (!g.ok()) return;
        if (!unetmap::lease_usable(r.ks, kGen) || unetmap::lease_room(r.ks) < k) {
          continue;  // full: retry (the lock is released first)
        }
        unetmap::lease_open(r.ks, k, &start, &slot);
        seq0 = next_seq.fetch_add(k);
      }
      for (uint32_t j = 0; j < k; j++) {
        netmap_slot& s = r.ring->slot[r.at(start + j)];
        s.ptr = seq0 + j + 1;  // 0 = not filled
        s.len = uint16_t(k);
      }
      r.close(slot);
      i++;
    }
    done.fetch_add(1);
  };
  std::vector<std::thread> th;
  for (int p = 0; p < kProducers; p++) th.emplace_back(producer, 17u + p);
  uint64_t expect = 1;
  std::string failure;
  const double end = now_ms() + 60000;
  for (;;) {
    const uint32_t head = r.ks->hwcur.load();
    const uint32_t tail = r.ks->hwtail.load(std::memory_order_acquire);
    for (uint32_t i = head; i != tail; i = r.at(i + 1)) {
      netmap_slot& s = r.ring->slot[i];
      if (failure.empty() && s.ptr != expect)
        failure = "slot " + std::to_string(i) + " holds reservation " + std::to_string(s.ptr) +
                  ", want " + std::to_string(expect);
      s.ptr = 0;  // the next lease of this slot must write it again
      expect++;
    }
    r.consume(tail);
    if (!failure.empty() || now_ms() > end) break;
    if (done.load() == kProducers && r.hwtail() == tail && r.pending() == 0) break;
    std::this_thread::yield();
  }
  stop.store(true);
  for (auto& t : th) t.join();
  EXPECT_EQ(failure, "");
  EXPECT_EQ(done.load(), kProducers);
  EXPECT_EQ(expect - 1, next_seq.load()) << "published slots != reserved slots";
  EXPECT_EQ(r.buffers(), all_buffers(64));
}

}  // namespace
