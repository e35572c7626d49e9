// The kernel/user boundary: whatever an application writes into its rings
// or its requests is validated, a bad value never crashes the library nor
// touches another port, and the error is netmap's.
//
// Ring checks follow netmap's nm_txsync_prologue / nm_rxsync_prologue: on a
// bad head/cur/slot the sync fails with EINVAL and the ring is reset to the
// last good state (head == cur == the previous head, tail unchanged).
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <random>
#include <string>
#include <vector>

#include "abi/devnetmap.h"
#include "core/registry.h"
#include "mem/region.h"
#include "util/test_util.h"

namespace {

using nmtest::Child;
using nmtest::PktSpec;
using nmtest::RawPort;

struct RingState {
  uint32_t head, cur, tail;
};
RingState state(const netmap_ring* r) { return {r->head, r->cur, r->tail}; }

#define EXPECT_RESET_TO(ring, st)                       \
  do {                                                  \
    EXPECT_EQ((ring)->head, (st).head) << "head";       \
    EXPECT_EQ((ring)->cur, (st).head) << "cur";         \
    EXPECT_EQ((ring)->tail, (st).tail) << "tail";       \
  } while (0)

// A 64-slot pipe: master m sends, slave s receives.
class Ring : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(m.open("v{0", NR_REG_ALL_NIC, 0, 0, 64)) << strerror(m.err);
    ASSERT_TRUE(s.open("v}0")) << strerror(s.err);
    tx = m.tx();
    rx = s.rx();
    spec.max = 1500;
  }
  // Send packets [from, to) and sync.
  void send(uint32_t from, uint32_t to) {
    for (uint32_t i = from; i < to; i++) nmtest::put_pkt(tx, spec, i, 0);
    ASSERT_EQ(m.txsync(), 0) << strerror(errno);
  }
  // Receive exactly n packets starting at seq, intact.
  void expect_received(uint32_t seq, uint32_t n) {
    ASSERT_EQ(s.rxsync(), 0) << strerror(errno);
    ASSERT_EQ(nm_ring_space(rx), n);
    std::vector<uint8_t> pkt;
    for (uint32_t i = 0; i < n; i++) {
      uint32_t ns, first;
      bool ch;
      ASSERT_TRUE(nmtest::peek_pkt(rx, &pkt, &ns, &ch, &first));
      ASSERT_EQ(nmtest::check_pkt(spec, pkt, seq + i, 0), "");
      rx->head = rx->cur = nm_ring_next(rx, rx->cur);
    }
    ASSERT_EQ(s.rxsync(), 0);
  }
  // A bad txsync: -1/EINVAL and the ring back to `before`.
  void expect_bad_txsync(const RingState& before) {
    errno = 0;
    EXPECT_EQ(m.txsync(), -1);
    EXPECT_EQ(errno, EINVAL);
    EXPECT_RESET_TO(tx, before);
  }
  void expect_bad_rxsync(const RingState& before) {
    errno = 0;
    EXPECT_EQ(s.rxsync(), -1);
    EXPECT_EQ(errno, EINVAL);
    EXPECT_RESET_TO(rx, before);
  }
  uint32_t buf_total() {
    nmreq_pools_info pi{};
    EXPECT_EQ(nmtest::ctrl(m.fd, NETMAP_REQ_POOLS_INFO_GET, m.nifp->ni_name, &pi), 0);
    return pi.nr_buf_pool_objtotal;
  }

  RawPort m, s;
  netmap_ring* tx = nullptr;
  netmap_ring* rx = nullptr;
  PktSpec spec;
};

TEST_F(Ring, TxHeadBeyondTail) {
  send(0, 5);  // in flight before the bad syncs
  send(5, 63);
  RingState full = state(tx);
  ASSERT_EQ(full.head, full.tail) << "ring should be full";
  tx->head = tx->cur = nm_ring_next(tx, full.tail);  // one past tail
  expect_bad_txsync(full);
  tx->head = tx->cur = (full.tail + 30) % 64;
  expect_bad_txsync(full);

  // The receiver releases 10: tail wraps past the end of the ring.
  ASSERT_EQ(s.rxsync(), 0);
  rx->head = rx->cur = 10;
  ASSERT_EQ(s.rxsync(), 0);
  ASSERT_EQ(m.txsync(), 0);
  RingState st = state(tx);
  ASSERT_EQ(st.tail, 9u);
  tx->head = tx->cur = 20;  // beyond tail 9 (63 -> 9 is the free span)
  expect_bad_txsync(st);
  // Everything sent before still arrives, in order, intact.
  rx->head = rx->cur = 0;  // (undo nothing: the 10 released are gone)
  ASSERT_EQ(s.rxsync(), -1) << "moving head backwards must fail";
  EXPECT_EQ(rx->head, 10u);
  expect_received(10, 53);
  // And the port still works.
  send(63, 70);
  expect_received(63, 7);
}

TEST_F(Ring, TxCurBeforeHead) {
  send(0, 3);
  RingState st = state(tx);
  tx->head = (st.head + 10) % 64;
  tx->cur = (st.head + 5) % 64;
  expect_bad_txsync(st);
  expect_received(0, 3);
}

TEST_F(Ring, TxHeadOrCurOutOfRange) {
  send(0, 2);
  RingState st = state(tx);
  for (uint32_t bad : {64u, 65u, 1000u, 0x7fffffffu, 0xffffffffu}) {
    tx->head = bad;
    tx->cur = st.head;
    expect_bad_txsync(st);
    tx->head = st.head;
    tx->cur = bad;
    expect_bad_txsync(st);
  }
  expect_received(0, 2);
}

TEST_F(Ring, TxBadBufferIndex) {
  send(0, 4);  // in flight
  const uint32_t total = buf_total();
  ASSERT_GT(total, 2u);
  for (uint32_t bad : {0u, 1u, total, total + 1, 0xffffffffu}) {
    RingState st = state(tx);
    uint32_t i = tx->cur;
    nmtest::put_pkt(tx, spec, 4, 0);
    nmtest::put_pkt(tx, spec, 5, 0);
    uint32_t j = nm_ring_next(tx, i);
    uint32_t saved = tx->slot[j].buf_idx;
    tx->slot[j].buf_idx = bad;
    expect_bad_txsync(st);
    // Nothing of the batch moved, not even the good slot before the bad one.
    EXPECT_EQ(tx->slot[j].buf_idx, bad) << "slot contents are the application's";
    tx->slot[j].buf_idx = saved;
  }
  expect_received(0, 4);
  send(4, 6);
  expect_received(4, 2);
}

// A refused sync has no effect at all, also on the slots before the bad
// one that the sync had already looked at (pipes check in the pass that
// moves the slots): their NS_BUF_CHANGED flags stay, nothing reaches the
// receiver, and a swap in a released rx slot is not copied back.
TEST_F(Ring, RefusedSyncsLeaveEveryFlagAndSlotAsTheyWere) {
  RingState st = state(tx);
  const uint32_t i = tx->cur, j = nm_ring_next(tx, i);
  nmtest::put_pkt(tx, spec, 0, 0);
  nmtest::put_pkt(tx, spec, 1, 0);
  tx->slot[i].flags |= NS_BUF_CHANGED;
  const uint32_t saved = tx->slot[j].buf_idx;
  tx->slot[j].buf_idx = 1;
  expect_bad_txsync(st);
  EXPECT_TRUE(tx->slot[i].flags & NS_BUF_CHANGED) << "cleared by a refused txsync";
  ASSERT_EQ(s.rxsync(), 0);
  EXPECT_EQ(nm_ring_space(rx), 0u) << "a refused txsync delivered";
  tx->slot[j].buf_idx = saved;
  tx->head = tx->cur = nm_ring_next(tx, j);
  ASSERT_EQ(m.txsync(), 0) << strerror(errno);
  EXPECT_FALSE(tx->slot[i].flags & NS_BUF_CHANGED) << "the sender's flag is cleared once sent";
  ASSERT_EQ(s.rxsync(), 0);
  ASSERT_EQ(nm_ring_space(rx), 2u);
  EXPECT_TRUE(rx->slot[i].flags & NS_BUF_CHANGED) << "the receiver learns of the new buffer";

  // The receiver swaps the buffers of its two slots, then hands them back
  // with a third, bad slot: refused, and the sender's slots are unchanged.
  send(2, 3);
  ASSERT_EQ(s.rxsync(), 0);
  ASSERT_EQ(nm_ring_space(rx), 3u);
  RingState rst = state(rx);
  const uint32_t k = nm_ring_next(rx, j);
  const uint32_t bi = rx->slot[i].buf_idx, bj = rx->slot[j].buf_idx, bk = rx->slot[k].buf_idx;
  rx->slot[i].buf_idx = bj;
  rx->slot[j].buf_idx = bi;
  rx->slot[i].flags = rx->slot[j].flags = NS_BUF_CHANGED;
  rx->slot[k].buf_idx = 1;
  rx->head = rx->cur = nm_ring_next(rx, k);
  expect_bad_rxsync(rst);
  EXPECT_EQ(tx->slot[i].buf_idx, bi) << "a refused rxsync copied a slot back";
  EXPECT_EQ(tx->slot[j].buf_idx, bj);
  EXPECT_EQ(rx->slot[i].flags, NS_BUF_CHANGED) << "a refused rxsync cleared a flag";
  rx->slot[k].buf_idx = bk;
  rx->head = rx->cur = nm_ring_next(rx, k);
  ASSERT_EQ(s.rxsync(), 0) << strerror(errno);
  EXPECT_EQ(tx->slot[i].buf_idx, bj) << "the swap reaches the sender";
  EXPECT_EQ(tx->slot[j].buf_idx, bi);
  EXPECT_EQ(rx->slot[i].flags & NS_BUF_CHANGED, 0);
  ASSERT_EQ(m.txsync(), 0);
  send(3, 5);
  expect_received(3, 2);
}

TEST_F(Ring, TxLengthBeyondBuffer) {
  RingState st = state(tx);
  const uint32_t bsz = tx->nr_buf_size;
  netmap_slot& sl = tx->slot[tx->cur];
  for (uint32_t bad : {bsz + 1, 65535u}) {
    sl.len = uint16_t(bad);
    sl.flags = 0;
    tx->head = tx->cur = nm_ring_next(tx, st.head);
    expect_bad_txsync(st);
  }
  // A full buffer is fine.
  memset(NETMAP_BUF(tx, sl.buf_idx), 0x5a, bsz);
  sl.len = uint16_t(bsz);
  tx->head = tx->cur = nm_ring_next(tx, st.head);
  ASSERT_EQ(m.txsync(), 0) << strerror(errno);
  ASSERT_EQ(s.rxsync(), 0);
  ASSERT_EQ(nm_ring_space(rx), 1u);
  const netmap_slot& r = rx->slot[rx->cur];
  EXPECT_EQ(r.len, bsz);
  EXPECT_EQ(uint8_t(NETMAP_BUF(rx, r.buf_idx)[bsz - 1]), 0x5a);
}

TEST_F(Ring, RxHeadBeyondTail) {
  send(0, 10);
  ASSERT_EQ(s.rxsync(), 0);
  RingState st = state(rx);
  ASSERT_EQ(st.tail, 10u);
  rx->head = rx->cur = 20;
  expect_bad_rxsync(st);
  rx->head = rx->cur = 64;
  expect_bad_rxsync(st);
  rx->head = 5;
  rx->cur = 3;  // cur before head
  expect_bad_rxsync(st);
  rx->head = 0;
  rx->cur = 0xffffffffu;
  expect_bad_rxsync(st);
  // The ten packets are still there, intact.
  expect_received(0, 10);
}

TEST_F(Ring, RxBadBufferIndexInReleasedSlot) {
  send(0, 3);
  ASSERT_EQ(s.rxsync(), 0);
  RingState st = state(rx);
  uint32_t saved = rx->slot[st.head].buf_idx;
  rx->slot[st.head].buf_idx = 1;  // handed back with a reserved buffer
  rx->head = rx->cur = nm_ring_next(rx, st.head);
  expect_bad_rxsync(st);
  rx->slot[st.head].buf_idx = saved;
  expect_received(0, 3);
}

TEST_F(Ring, TailWrittenByTheApplicationIsIgnored) {
  send(0, 3);
  RingState st = state(tx);
  ASSERT_EQ(st.tail, 63u);
  tx->tail = st.head;  // as if the ring were full: the kernel's copy rules
  send(3, 5);
  EXPECT_EQ(tx->tail, 63u);
  expect_received(0, 5);
}

TEST_F(Ring, PollReportsPollerrOnABadRing) {
  RingState st = state(tx);
  tx->head = 100;
  short rev = 0;
  EXPECT_EQ(m.poll(POLLOUT, 0, &rev), 1);
  EXPECT_TRUE(rev & POLLERR) << "revents 0x" << std::hex << rev;
  EXPECT_RESET_TO(tx, st);
  // Once reset, the ring is usable and poll is normal again.
  EXPECT_EQ(m.poll(POLLOUT, 0, &rev), 1);
  EXPECT_EQ(rev & POLLERR, 0);
  EXPECT_TRUE(rev & POLLOUT);
}

TEST_F(Ring, PeerRingsUntouchedByBadSyncs) {
  send(0, 20);
  ASSERT_EQ(s.rxsync(), 0);
  RingState peer_rx = state(rx), peer_tx = state(s.tx());
  std::vector<netmap_slot> peer_slots(rx->slot, rx->slot + 64);
  for (uint32_t bad : {100u, 64u, 0u}) {
    tx->head = tx->cur = bad == 0 ? 19 : bad;  // 19: behind head 20
    EXPECT_EQ(m.txsync(), -1);
  }
  EXPECT_EQ(state(rx).head, peer_rx.head);
  EXPECT_EQ(state(rx).tail, peer_rx.tail);
  EXPECT_EQ(state(s.tx()).tail, peer_tx.tail);
  for (int i = 0; i < 64; i++) {
    EXPECT_EQ(rx->slot[i].buf_idx, peer_slots[i].buf_idx) << i;
    EXPECT_EQ(rx->slot[i].len, peer_slots[i].len) << i;
  }
  expect_received(0, 20);
}

TEST_F(Ring, TimestampOnRequest) {
  for (netmap_ring* r : {tx, rx}) {
    r->flags |= NR_TIMESTAMP;
    r->ts.tv_sec = r->ts.tv_usec = 0;
  }
  timeval before, after;
  gettimeofday(&before, nullptr);
  send(0, 1);
  ASSERT_EQ(s.rxsync(), 0);
  gettimeofday(&after, nullptr);
  for (netmap_ring* r : {tx, rx}) {
    double t = r->ts.tv_sec + r->ts.tv_usec / 1e6;
    EXPECT_GE(t, before.tv_sec + before.tv_usec / 1e6 - 1e-6);
    EXPECT_LE(t, after.tv_sec + after.tv_usec / 1e6 + 1e-6);
  }
  // Without the flag, ts stays as it is.
  tx->flags &= ~NR_TIMESTAMP;
  tx->ts.tv_sec = 7;
  tx->ts.tv_usec = 0;
  send(1, 2);
  EXPECT_EQ(tx->ts.tv_sec, 7);
}

// Random garbage in every field an application can write, in a child
// process: every sync either works or fails with EINVAL, never crashes, and
// leaves head/cur/tail in range. The peer end (this process) stays sane.
TEST(Fuzz, GarbageRingsNeverCrash) {
  RawPort s("fz}0", NR_REG_ALL_NIC, 0, 0, 128);
  ASSERT_TRUE(s.ok());
  const uint32_t total = [&] {
    nmreq_pools_info pi{};
    nmtest::ctrl(s.fd, NETMAP_REQ_POOLS_INFO_GET, "fz}0", &pi);
    return pi.nr_buf_pool_objtotal;
  }();
  Child c([total] {
    RawPort m("fz{0");
    if (!m.ok()) return 2;
    std::mt19937 rng(12345);
    auto pick = [&](uint32_t n) { return uint32_t(rng() % n); };
    for (int it = 0; it < 5000; it++) {
      netmap_ring* r = pick(2) ? m.tx() : m.rx();
      const uint32_t n = r->num_slots;
      switch (pick(6)) {
        case 0: r->head = pick(3) ? pick(n + 2) : rng(); break;
        case 1: r->cur = pick(3) ? pick(n + 2) : rng(); break;
        case 2: r->tail = rng(); break;
        case 3: r->slot[pick(n)].buf_idx = pick(2) ? 2 + pick(total - 2) : rng(); break;
        case 4: r->slot[pick(n)].len = uint16_t(rng()); break;
        case 5: r->slot[pick(n)].flags = uint16_t(rng()); break;
      }
      int rc;
      std::vector<netmap_ring*> synced;
      switch (pick(3)) {
        case 0: rc = m.txsync(), synced = {m.tx()}; break;
        case 1: rc = m.rxsync(), synced = {m.rx()}; break;
        default: rc = m.poll(POLLIN | POLLOUT, 0) < 0 ? -1 : 0, synced = {m.tx(), m.rx()}; break;
      }
      if (rc < 0 && errno != EINVAL) {
        fprintf(stderr, "sync failed with %s\n", strerror(errno));
        return 3;
      }
      // Whatever the outcome, a synced ring is left consistent.
      for (netmap_ring* q : synced)
        if (q->head >= n || q->cur >= n || q->tail >= n) {
          fprintf(stderr, "ring left with head %u cur %u tail %u\n", q->head, q->cur, q->tail);
          return 4;
        }
    }
    return 0;
  });
  EXPECT_EQ(c.wait(30000), 0) << "the garbage writer crashed or saw a wrong error";
  // This end: syncs still work and the rings are in range.
  EXPECT_EQ(s.rxsync(), 0);
  EXPECT_EQ(s.txsync(), 0);
  for (netmap_ring* r : {s.tx(), s.rx()}) {
    EXPECT_LT(r->head, 128u);
    EXPECT_LT(r->cur, 128u);
    EXPECT_LT(r->tail, 128u);
  }
  netmap_ring* rx = s.rx();
  for (uint32_t i = rx->head; i != rx->tail; i = nm_ring_next(rx, i)) {
    EXPECT_GE(rx->slot[i].buf_idx, 2u);
    EXPECT_LT(rx->slot[i].buf_idx, total);
    EXPECT_LE(rx->slot[i].len, rx->nr_buf_size) << "oversized slot reached the receiver";
  }
}

// ---------------------------------------------------------------------------
// Requests (NIOCCTRL): headers, bodies, options, request types, names.

class Ctrl : public testing::Test {
 protected:
  void SetUp() override {
    fd = open("/dev/netmap", O_RDWR);
    ASSERT_GE(fd, 0) << strerror(errno);
  }
  void TearDown() override { close(fd); }
  int reg(const char* name, uint32_t mode = NR_REG_ALL_NIC, uint16_t ringid = 0,
          uint64_t flags = 0) {
    nmreq_register r{};
    r.nr_mode = mode;
    r.nr_ringid = ringid;
    r.nr_flags = flags;
    return nmtest::ctrl(fd, NETMAP_REQ_REGISTER, name, &r);
  }
  int fd = -1;
};

TEST_F(Ctrl, WrongVersion) {
  nmreq_register r{};
  r.nr_mode = NR_REG_ALL_NIC;
  for (uint16_t v : {0, 11, 13, 16, 0xffff})
    EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_REGISTER, "wv{0", &r, 0, v), EINVAL) << "version " << v;
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_REGISTER, "wv{0", &r, 0, NETMAP_API), 0);
}

TEST_F(Ctrl, ReservedFieldMustBeZero) {
  // netmap uses nr_reserved internally and refuses a request that sets it.
  nmreq_register r{};
  r.nr_mode = NR_REG_ALL_NIC;
  nmreq_header h{};
  h.nr_version = NETMAP_API;
  h.nr_reqtype = NETMAP_REQ_REGISTER;
  h.nr_reserved = 1;
  strcpy(h.nr_name, "rz{0");
  h.nr_body = uintptr_t(&r);
  errno = 0;
  EXPECT_EQ(ioctl(fd, NIOCCTRL, &h), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST_F(Ctrl, UnknownRequestType) {
  nmreq_register r{};
  for (uint16_t t : {0, 16, 99, 0x7fff, 0xffff})
    EXPECT_EQ(nmtest::ctrl(fd, t, "ut{0", &r), EOPNOTSUPP) << "reqtype " << t;
  // Known since CSB mode (kloop_test.cc): on an fd not registered.
  nmreq_sync_kloop_start ks{};
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_SYNC_KLOOP_START, "ut{0", &ks), ENXIO);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_SYNC_KLOOP_STOP, "ut{0", nullptr), ENXIO);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_CSB_ENABLE, "ut{0", nullptr), EINVAL) << "no CSB option";
}

TEST_F(Ctrl, BadPointersGiveEfault) {
  void* page = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(page, MAP_FAILED);
  for (uint16_t t : {NETMAP_REQ_REGISTER, NETMAP_REQ_PORT_INFO_GET, NETMAP_REQ_POOLS_INFO_GET}) {
    EXPECT_EQ(nmtest::ctrl(fd, t, "bp{0", nullptr), EFAULT) << "NULL body, reqtype " << t;
    EXPECT_EQ(nmtest::ctrl(fd, t, "bp{0", page), EFAULT) << "unmapped body, reqtype " << t;
    EXPECT_EQ(nmtest::ctrl(fd, t, "bp{0", reinterpret_cast<void*>(8)), EFAULT) << t;
  }
  // The header itself.
  errno = 0;
  EXPECT_EQ(ioctl(fd, NIOCCTRL, page), -1);
  EXPECT_EQ(errno, EFAULT);
  errno = 0;
  EXPECT_EQ(ioctl(fd, NIOCCTRL, nullptr), -1);
  EXPECT_EQ(errno, EFAULT);
  // A body that starts mapped and ends unmapped.
  char* two = static_cast<char*>(
      mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(two, MAP_FAILED);
  ASSERT_EQ(mprotect(two + 4096, 4096, PROT_NONE), 0);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_REGISTER, "bp{0", two + 4096 - 8), EFAULT);
  // A read-only body: the reply cannot be written back.
  nmreq_register* ro = reinterpret_cast<nmreq_register*>(two);
  memset(ro, 0, sizeof *ro);
  ro->nr_mode = NR_REG_ALL_NIC;
  ASSERT_EQ(mprotect(two, 4096, PROT_READ), 0);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_POOLS_INFO_GET, "bp{0", ro), EFAULT);
  munmap(two, 8192);
  munmap(page, 4096);
  // The fd is still usable after all this.
  EXPECT_EQ(reg("bp{0"), 0);
}

TEST_F(Ctrl, RegisterTwiceOnOneFd) {
  ASSERT_EQ(reg("rt{0"), 0);
  EXPECT_EQ(reg("rt{0"), EBUSY);
  EXPECT_EQ(reg("rt}0"), EBUSY);
  EXPECT_EQ(ioctl(fd, NIOCTXSYNC, nullptr), 0);
}

TEST_F(Ctrl, UnregisteredFd) {
  errno = 0;
  EXPECT_EQ(ioctl(fd, NIOCTXSYNC, nullptr), -1);
  EXPECT_NE(errno, 0);
  errno = 0;
  EXPECT_EQ(ioctl(fd, NIOCRXSYNC, nullptr), -1);
  EXPECT_NE(errno, 0);
  errno = 0;
  EXPECT_EQ(mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0), MAP_FAILED);
  EXPECT_EQ(errno, EINVAL);
  pollfd p{fd, POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 0), 1);
  EXPECT_TRUE(p.revents & POLLERR);
}

TEST_F(Ctrl, UnknownIoctlOnNetmapFd) {
  int n = 0;
  errno = 0;
  EXPECT_EQ(ioctl(fd, FIONREAD, &n), -1);
  EXPECT_TRUE(errno == ENOTTY || errno == EOPNOTSUPP) << strerror(errno);
}

TEST_F(Ctrl, OptionsAreRefusedWithStatus) {
  nmreq_opt_extmem e{};
  e.nro_opt.nro_reqtype = NETMAP_REQ_OPT_EXTMEM;
  nmreq_opt_sync_kloop_mode c{};  // an option of SYNC_KLOOP_START, not of REGISTER
  c.nro_opt.nro_reqtype = NETMAP_REQ_OPT_SYNC_KLOOP_MODE;
  c.nro_opt.nro_next = uintptr_t(&e);
  nmreq_register r{};
  r.nr_mode = NR_REG_ALL_NIC;
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_REGISTER, "op{0", &r, uintptr_t(&c)), EOPNOTSUPP);
  EXPECT_EQ(c.nro_opt.nro_status, uint32_t(EOPNOTSUPP));
  EXPECT_EQ(e.nro_opt.nro_status, uint32_t(EOPNOTSUPP))
      << "as netmap: an option the failed request never took says EOPNOTSUPP";
  EXPECT_EQ(c.nro_opt.nro_next, uintptr_t(&e)) << "the chain must be left as it was";
  // The request did nothing: the fd can still register, and no port was
  // left behind by the refused one.
  EXPECT_EQ(reg("op{0"), 0);

  nmreq_opt_offsets off{};
  off.nro_opt.nro_reqtype = NETMAP_REQ_OPT_OFFSETS;
  nmreq_pools_info pi{};
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_POOLS_INFO_GET, "", &pi, uintptr_t(&off)), EOPNOTSUPP);
  EXPECT_EQ(off.nro_opt.nro_status, uint32_t(EOPNOTSUPP));
}

TEST_F(Ctrl, BadOptionPointers) {
  nmreq_register r{};
  r.nr_mode = NR_REG_ALL_NIC;
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_REGISTER, "ob{0", &r, 16), EFAULT);
  nmreq_option o{};
  o.nro_reqtype = NETMAP_REQ_OPT_CSB;
  o.nro_next = 24;  // garbage second link
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_REGISTER, "ob{0", &r, uintptr_t(&o)), EFAULT);
  nmreq_option loop{};
  loop.nro_next = uintptr_t(&loop);  // a cycle must not hang
  int e = nmtest::ctrl(fd, NETMAP_REQ_REGISTER, "ob{0", &r, uintptr_t(&loop));
  EXPECT_TRUE(e == EINVAL || e == EOPNOTSUPP) << strerror(e);
  EXPECT_EQ(reg("ob{0"), 0);
}

// Polling mode is for attached NICs (nic_test has them): netmap's ENXIO
// for no such port, EOPNOTSUPP for a VALE port, EINVAL without a switch.
TEST_F(Ctrl, ValePollingModeIsForAttachedNics) {
  nmreq_vale_polling vp{};
  vp.nr_mode = NETMAP_POLLING_MODE_SINGLE_CPU;
  vp.nr_num_polling_cpus = 1;
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_POLLING_ENABLE, "vale0:a", &vp), ENXIO);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_POLLING_ENABLE, "a", &vp), EINVAL);
  nmport_d* d = nmport_open("vale0:a");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_POLLING_ENABLE, "vale0:a", &vp), EOPNOTSUPP);
  EXPECT_NE(std::string(unetmap_last_error()).find("NIC"), std::string::npos)
      << unetmap_last_error();
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_POLLING_DISABLE, "vale0:a", &vp), EOPNOTSUPP);
  nmport_close(d);
}

TEST_F(Ctrl, UnknownPortIsEnxio) {
  EXPECT_EQ(reg("nosuchif9"), ENXIO);
  EXPECT_NE(std::string(unetmap_last_error()).find("nosuchif9"), std::string::npos)
      << unetmap_last_error();
  nmport_d* d = nmport_open("netmap:nosuchif9");
  EXPECT_EQ(d, nullptr);
  EXPECT_EQ(errno, ENXIO);
}

TEST_F(Ctrl, BadPortNames) {
  EXPECT_EQ(reg(""), EINVAL);
  EXPECT_EQ(reg("a b{0"), EINVAL);
  EXPECT_EQ(reg("{0"), EINVAL) << "a pipe needs a parent name";
  EXPECT_EQ(reg("p{"), EINVAL) << "a pipe needs an id";
  // 64 bytes without a terminating NUL.
  nmreq_register r{};
  r.nr_mode = NR_REG_ALL_NIC;
  nmreq_header h{};
  h.nr_version = NETMAP_API;
  h.nr_reqtype = NETMAP_REQ_REGISTER;
  memset(h.nr_name, 'n', sizeof h.nr_name);
  h.nr_body = uintptr_t(&r);
  errno = 0;
  EXPECT_EQ(ioctl(fd, NIOCCTRL, &h), -1);
  EXPECT_EQ(errno, EINVAL);
}

TEST_F(Ctrl, RingSelectionOutOfRange) {
  RawPort owner("rs{0", NR_REG_ALL_NIC, 0, 0, 0, 2);  // 2 ring pairs
  ASSERT_TRUE(owner.ok());
  EXPECT_EQ(reg("rs}0", NR_REG_ONE_NIC, 2), EINVAL);
  EXPECT_EQ(reg("rs}0", NR_REG_ONE_NIC, 4094), EINVAL);
  EXPECT_EQ(reg("rs}0", NR_REG_SW), EINVAL) << "pipes have no host rings";
  EXPECT_EQ(reg("rs}0", NR_REG_ONE_SW, 0), EINVAL);
  EXPECT_EQ(reg("rs}0", 99), EINVAL) << "unknown mode";
  EXPECT_EQ(reg("rs}0", NR_REG_ONE_NIC, 1), 0);
}

// Register modes and flags decide which rings a sync or a poll touches.
TEST(Modes, DefaultModeIsAllRings) {
  RawPort owner("md{0", NR_REG_ALL_NIC, 0, 0, 0, 2);
  RawPort s("md}0", NR_REG_DEFAULT);
  ASSERT_TRUE(owner.ok() && s.ok()) << strerror(s.err);
  PktSpec spec;
  nmtest::put_pkt(s.tx(0), spec, 0, 0);
  nmtest::put_pkt(s.tx(1), spec, 0, 1);
  ASSERT_EQ(s.txsync(), 0);
  ASSERT_EQ(owner.rxsync(), 0);
  EXPECT_EQ(nm_ring_space(owner.rx(0)), 1u);
  EXPECT_EQ(nm_ring_space(owner.rx(1)), 1u);
}

// NR_REG_NULL, as netmap: a null port of its own named after the request,
// not the port named; the pipe end is not touched.
TEST(Modes, NullModeIsANullPortOfItsOwn) {
  RawPort owner("mn{0");
  RawPort s("mn}0", NR_REG_NULL, 0, 0, 0, 2);
  ASSERT_TRUE(owner.ok() && s.ok()) << strerror(s.err);
  EXPECT_STREQ(s.nifp->ni_name, "null:mn}0");
  EXPECT_EQ(s.nifp->ni_tx_rings, 2u);
  PktSpec spec;
  nmtest::put_pkt(s.tx(1), spec, 0, 1);
  EXPECT_EQ(s.txsync(), 0);
  EXPECT_EQ(nm_ring_space(s.tx(1)), s.tx(1)->num_slots - 1) << "a null port consumes at once";
  ASSERT_EQ(owner.rxsync(), 0);
  EXPECT_EQ(nm_ring_space(owner.rx()), 0u) << "the pipe got what the null port was given";
}

TEST(Modes, TxOnlyAndRxOnly) {
  RawPort owner("mo{0");
  RawPort txo("mo}0", NR_REG_ALL_NIC, 0, NR_TX_RINGS_ONLY);
  ASSERT_TRUE(owner.ok() && txo.ok()) << strerror(txo.err);
  PktSpec spec;
  nmtest::put_pkt(owner.tx(), spec, 0, 0);
  ASSERT_EQ(owner.txsync(), 0);
  ASSERT_EQ(txo.rxsync(), 0);
  EXPECT_EQ(txo.nifp->ring_ofs[1], 0) << "a tx-only fd shows its rx ring";
  EXPECT_EQ(txo.poll(POLLIN, 0), 0) << "a tx-only fd reported POLLIN";
  nmtest::put_pkt(txo.tx(), spec, 0, 0);
  ASSERT_EQ(txo.txsync(), 0);
  ASSERT_EQ(owner.rxsync(), 0);
  EXPECT_EQ(nm_ring_space(owner.rx()), 1u);
  txo.close();
  RawPort rxo("mo}0", NR_REG_ALL_NIC, 0, NR_RX_RINGS_ONLY);
  ASSERT_TRUE(rxo.ok()) << strerror(rxo.err);
  ASSERT_EQ(rxo.rxsync(), 0);
  EXPECT_EQ(nm_ring_space(rxo.rx()), 1u);
  EXPECT_EQ(rxo.nifp->ring_ofs[0], 0) << "an rx-only fd shows its tx ring";
  ASSERT_EQ(rxo.txsync(), 0);
}

// As in netmap, poll(POLLIN) also pushes out what the tx rings hold,
// unless the fd was registered with NR_NO_TX_POLL.
TEST(Modes, PollInSyncsTxUnlessNoTxPoll) {
  RawPort owner("mp{0");
  RawPort s("mp}0");
  ASSERT_TRUE(owner.ok() && s.ok());
  PktSpec spec;
  nmtest::put_pkt(s.tx(), spec, 0, 0);
  EXPECT_EQ(s.poll(POLLIN, 0), 0);
  ASSERT_EQ(owner.rxsync(), 0);
  EXPECT_EQ(nm_ring_space(owner.rx()), 1u) << "poll(POLLIN) did not run txsync";
  s.close();
  RawPort q("mp}0", NR_REG_ALL_NIC, 0, NR_NO_TX_POLL);
  ASSERT_TRUE(q.ok());
  nmtest::put_pkt(q.tx(), spec, 1, 0);
  EXPECT_EQ(q.poll(POLLIN, 0), 0);
  ASSERT_EQ(owner.rxsync(), 0);
  EXPECT_EQ(nm_ring_space(owner.rx()), 1u) << "NR_NO_TX_POLL: poll(POLLIN) ran txsync";
  short rev = 0;
  EXPECT_EQ(q.poll(POLLIN | POLLOUT, 0, &rev), 1);
  EXPECT_EQ(rev, POLLOUT);
  ASSERT_EQ(owner.rxsync(), 0);
  EXPECT_EQ(nm_ring_space(owner.rx()), 2u) << "poll(POLLOUT) must run txsync";
}

TEST_F(Ctrl, ExclusiveOpen) {
  RawPort x("ex{0", NR_REG_ALL_NIC, 0, NR_EXCLUSIVE);
  ASSERT_TRUE(x.ok()) << strerror(x.err);
  EXPECT_EQ(reg("ex{0"), EBUSY);
  EXPECT_EQ(nmport_open("netmap:ex{0/x"), nullptr);
  EXPECT_EQ(errno, EBUSY);
  {
    RawPort other("ex}0");  // the other end is another port
    EXPECT_TRUE(other.ok()) << strerror(other.err);
  }
  x.close();
  EXPECT_EQ(reg("ex{0"), 0);
  // Exclusive while someone else has it open: refused too.
  RawPort y;
  EXPECT_FALSE(y.open("ex{0", NR_REG_ALL_NIC, 0, NR_EXCLUSIVE));
  EXPECT_EQ(y.err, EBUSY);
}

// /x is per ring, as in netmap: other rings of the port stay available; the
// rings held exclusively come back when the holder closes or dies.
TEST_F(Ctrl, ExclusiveIsPerRing) {
  RawPort x0("er{0", NR_REG_ONE_NIC, 0, NR_EXCLUSIVE, 0, 2);
  ASSERT_TRUE(x0.ok()) << strerror(x0.err);
  RawPort r1("er{0", NR_REG_ONE_NIC, 1);
  EXPECT_TRUE(r1.ok()) << "ring 1 is not held exclusively: " << strerror(r1.err);
  RawPort r0;
  EXPECT_FALSE(r0.open("er{0", NR_REG_ONE_NIC, 0));
  EXPECT_EQ(r0.err, EBUSY);
  RawPort all;
  EXPECT_FALSE(all.open("er{0", NR_REG_ALL_NIC, 0));
  EXPECT_EQ(all.err, EBUSY) << "all rings include ring 0";
  RawPort x1;
  EXPECT_FALSE(x1.open("er{0", NR_REG_ONE_NIC, 1, NR_EXCLUSIVE));
  EXPECT_EQ(x1.err, EBUSY) << "ring 1 is in use: /x refused";
  x0.close();
  RawPort again("er{0", NR_REG_ONE_NIC, 0);
  EXPECT_TRUE(again.ok()) << strerror(again.err);
  // A holder that dies gives its exclusive rings back (at the next reap).
  again.close();
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  nmtest::Child holder([&] {
    RawPort h("er{0", NR_REG_ONE_NIC, 0, NR_EXCLUSIVE);
    if (!h.ok()) return 2;
    if (write(ready[1], "x", 1) != 1) return 3;
    pause();
    return 0;
  });
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  RawPort busy;
  EXPECT_FALSE(busy.open("er{0", NR_REG_ONE_NIC, 0));
  EXPECT_EQ(busy.err, EBUSY);
  holder.kill_now();
  RawPort after("er{0", NR_REG_ONE_NIC, 0);
  EXPECT_TRUE(after.ok()) << strerror(after.err);
  close(ready[0]);
  close(ready[1]);
}

TEST_F(Ctrl, PortInfoReportsGeometryAndLeavesNothingBehind) {
  {
    RawPort owner("pi{0", NR_REG_ALL_NIC, 0, 0, 256, 3);
    ASSERT_TRUE(owner.ok());
    nmreq_port_info_get pi{};
    ASSERT_EQ(nmtest::ctrl(fd, NETMAP_REQ_PORT_INFO_GET, "pi}0", &pi), 0);
    EXPECT_EQ(pi.nr_tx_rings, 3);
    EXPECT_EQ(pi.nr_rx_rings, 3);
    EXPECT_EQ(pi.nr_tx_slots, 256u);
    EXPECT_EQ(pi.nr_rx_slots, 256u);
    EXPECT_EQ(pi.nr_mem_id, 1);
    EXPECT_EQ(pi.nr_memsize, owner.reg.nr_memsize);
  }
  // A port nobody has open: the query works and creates nothing that stays.
  nmreq_port_info_get pi{};
  ASSERT_EQ(nmtest::ctrl(fd, NETMAP_REQ_PORT_INFO_GET, "ghost{0", &pi), 0);
  EXPECT_EQ(pi.nr_tx_rings, 1);
  int err = 0;
  unetmap::Registry* r = unetmap::Registry::get(&err);
  ASSERT_NE(r, nullptr);
  unetmap::LockGuard g(r->lock());
  EXPECT_LT(r->find_port("ghost{0"), 0);
  EXPECT_LT(r->find_port("ghost}0"), 0);
  EXPECT_LT(r->find_port("pi{0"), 0);
}

TEST_F(Ctrl, PoolsInfo) {
  ASSERT_EQ(reg("po{0"), 0);
  nmreq_pools_info pi{};
  ASSERT_EQ(nmtest::ctrl(fd, NETMAP_REQ_POOLS_INFO_GET, "po{0", &pi), 0);
  EXPECT_EQ(pi.nr_mem_id, 1);
  EXPECT_EQ(pi.nr_buf_pool_objsize, 2048u);
  EXPECT_GT(pi.nr_buf_pool_objtotal, 2u);
  EXPECT_GT(pi.nr_ring_pool_objtotal, 0u);
  EXPECT_GE(pi.nr_ring_pool_objsize, sizeof(netmap_ring) + 1024 * sizeof(netmap_slot));
  EXPECT_GE(pi.nr_if_pool_objsize, sizeof(netmap_if));
  EXPECT_LE(pi.nr_buf_pool_offset + uint64_t(pi.nr_buf_pool_objtotal) * pi.nr_buf_pool_objsize,
            pi.nr_memsize);
  EXPECT_LE(pi.nr_ring_pool_offset + uint64_t(pi.nr_ring_pool_objtotal) * pi.nr_ring_pool_objsize,
            pi.nr_buf_pool_offset);
  // nr_memsize of a register matches the pool's.
  RawPort p("po}0");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.reg.nr_memsize, pi.nr_memsize);
  // Buffers of the rings lie in the buffer pool.
  netmap_ring* ring = p.tx();
  char* b = NETMAP_BUF(ring, ring->slot[0].buf_idx);
  char* base = static_cast<char*>(p.mem);
  EXPECT_GE(b, base + pi.nr_buf_pool_offset);
  EXPECT_LT(b, base + pi.nr_memsize);
  // An unknown region id.
  nmreq_pools_info bad{};
  bad.nr_mem_id = 999;
  EXPECT_NE(nmtest::ctrl(fd, NETMAP_REQ_POOLS_INFO_GET, "", &bad), 0);
}

TEST_F(Ctrl, MmapBeyondTheRegionFails) {
  ASSERT_EQ(reg("mb{0"), 0);
  nmreq_pools_info pi{};
  ASSERT_EQ(nmtest::ctrl(fd, NETMAP_REQ_POOLS_INFO_GET, "mb{0", &pi), 0);
  errno = 0;
  EXPECT_EQ(mmap(nullptr, pi.nr_memsize + 4096, PROT_READ, MAP_SHARED, fd, 0), MAP_FAILED);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, off_t(pi.nr_memsize)), MAP_FAILED);
  void* p = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
  EXPECT_NE(p, MAP_FAILED);
  if (p != MAP_FAILED) munmap(p, 4096);
}

}  // namespace

namespace {

// The kernel-side state of a ring of port p, found from its offset in the
// region (white box: the test looks at what another sync would see).
unetmap::KringState* kring_of(const nmtest::RawPort& p, netmap_ring* ring) {
  int err = 0;
  auto r = unetmap::Region::get(p.reg.nr_mem_id, unetmap::RegionConfig::from_env(), &err);
  const unetmap::RegionHeader* h = r->hdr();
  uint64_t ofs = uint64_t(reinterpret_cast<char*>(ring) - static_cast<char*>(p.mem));
  return r->kring(uint32_t((ofs - h->ring_pool) / h->cfg.ring_size));
}

}  // namespace

// One sync at a time per ring: a ring another live process is syncing is
// skipped; one left busy by a process that died is taken over.
TEST(Busy, RingBusyElsewhereIsSkippedAndDeadHolderTakenOver) {
  nmtest::RawPort tx("bz{0"), rx("bz}0");
  ASSERT_TRUE(tx.ok() && rx.ok());
  unetmap::KringState* ks = kring_of(tx, tx.tx());
  // A live holder: a child blocked until we let it go.
  int gate[2];
  ASSERT_EQ(pipe(gate), 0);
  pid_t live = fork();
  if (live == 0) {
    char c;
    _exit(read(gate[0], &c, 1) == 1 ? 0 : 1);
  }
  ks->busy.store(live);
  nmtest::PktSpec spec;
  nmtest::put_pkt(tx.tx(), spec, 0, 0);
  EXPECT_EQ(tx.txsync(), 0);
  EXPECT_EQ(rx.rxsync(), 0);
  EXPECT_TRUE(nm_ring_empty(rx.rx())) << "a ring busy in another process's sync is skipped";
  // The holder dies: the next sync takes the ring over.
  ASSERT_EQ(write(gate[1], "x", 1), 1);
  int st;
  ASSERT_EQ(waitpid(live, &st, 0), live);
  EXPECT_EQ(tx.txsync(), 0);
  EXPECT_EQ(ks->busy.load(), 0) << "released after the sync";
  EXPECT_EQ(rx.rxsync(), 0);
  EXPECT_EQ(nm_ring_space(rx.rx()), 1u) << "the packet went through once the holder died";
  close(gate[0]);
  close(gate[1]);
}
