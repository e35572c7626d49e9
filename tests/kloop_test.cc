// CSB mode and the sync-kloop (netmap's NETMAP_REQ_OPT_CSB, CSB_ENABLE,
// SYNC_KLOOP_START/STOP and the kloop options; src/core/kloop.cc): the CSB
// a register initialises, packets moved by kloops over pipes in each of
// the loop's ways to wait, eventfd kicks and notifications, and every
// thing an application can get wrong refused with netmap's error.
#include <gtest/gtest.h>
#include <net/netmap_user.h>
#include <sys/eventfd.h>

#include <atomic>
#include <cstdlib>
#include <thread>
#include <vector>

#include "util/test_util.h"

namespace {

using nmtest::Child;
using nmtest::Event;
using nmtest::RawPort;

uint32_t ld(const uint32_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }

// A port registered in CSB mode: its CSB arrays (one entry per bound ring,
// tx first) in this process's memory.
struct CsbPort {
  int fd = -1;
  void* mem = nullptr;
  nmreq_register reg{};
  netmap_if* nifp = nullptr;
  nm_csb_atok* atok = nullptr;
  nm_csb_ktoa* ktoa = nullptr;
  nmreq_opt_csb opt{};
  unsigned ntx = 0, nrx = 0;

  // nrings: the rings the CSB has room for.
  explicit CsbPort(unsigned nrings = 2)
      : atok(static_cast<nm_csb_atok*>(aligned_alloc(64, nrings * 64))),
        ktoa(static_cast<nm_csb_ktoa*>(aligned_alloc(64, nrings * 64))) {}
  // 0 or the errno of the register.
  int open(const char* name, uint64_t flags = NR_EXCLUSIVE) {
    fd = ::open("/dev/netmap", O_RDWR);
    if (fd < 0) return errno;
    return reg_with(name, flags, uintptr_t(atok), uintptr_t(ktoa));
  }
  int reg_with(const char* name, uint64_t flags, uint64_t a, uint64_t k) {
    opt = nmreq_opt_csb{};
    opt.nro_opt.nro_reqtype = NETMAP_REQ_OPT_CSB;
    opt.csb_atok = a, opt.csb_ktoa = k;
    reg = nmreq_register{};
    reg.nr_mode = NR_REG_ALL_NIC;
    reg.nr_flags = flags;
    if (int e = nmtest::ctrl(fd, NETMAP_REQ_REGISTER, name, &reg, uintptr_t(&opt))) return e;
    mem = mmap(nullptr, reg.nr_memsize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED) return mem = nullptr, errno;
    nifp = NETMAP_IF(mem, reg.nr_offset);
    ntx = reg.nr_tx_rings, nrx = reg.nr_rx_rings;
    return 0;
  }
  ~CsbPort() {
    if (mem) munmap(mem, reg.nr_memsize);
    if (fd >= 0) ::close(fd);
    free(atok);
    free(ktoa);
  }
};

// The application's side of one CSB ring: its own head, and tail as the
// kloop published it.
struct AppRing {
  netmap_ring* ring;
  nm_csb_atok* atok;
  nm_csb_ktoa* ktoa;
  uint32_t head;
  AppRing(netmap_ring* r, nm_csb_atok* a, nm_csb_ktoa* k) : ring(r), atok(a), ktoa(k), head(ld(&a->head)) {}
  uint32_t tail() const {
    uint32_t t, c;
    nm_sync_kloop_appl_read(ktoa, &t, &c);
    return t;
  }
  uint32_t avail() const { return (tail() + ring->num_slots - head) % ring->num_slots; }
  void publish() { nm_sync_kloop_appl_write(atok, head, head); }
  // Put packets seq, seq+1, ... while there is room; how many.
  uint32_t send(uint32_t seq, uint32_t max) {
    uint32_t n = 0;
    for (uint32_t room = avail(); n < room && n < max; n++) {
      netmap_slot* s = &ring->slot[head];
      memcpy(NETMAP_BUF(ring, s->buf_idx), &seq, sizeof seq);
      seq++;
      s->len = 60;
      s->flags = 0;
      head = nm_ring_next(ring, head);
    }
    publish();
    return n;
  }
  // Take what arrived; checks the sequence. How many.
  uint32_t recv(uint32_t* next_seq) {
    uint32_t n = 0;
    for (uint32_t got = avail(); n < got; n++) {
      uint32_t seq;
      memcpy(&seq, NETMAP_BUF(ring, ring->slot[head].buf_idx), sizeof seq);
      EXPECT_EQ(seq, *next_seq);
      ++*next_seq;
      head = nm_ring_next(ring, head);
    }
    publish();
    return n;
  }
};

// SYNC_KLOOP_START in a thread of its own; stopped (and joined) by the
// destructor if the test did not.
class KloopThread {
 public:
  explicit KloopThread(int fd, uint32_t sleep_us = 100, uint64_t opts = 0) : fd_(fd) {
    th_ = std::thread([this, sleep_us, opts] {
      nmreq_sync_kloop_start req{};
      req.sleep_us = sleep_us;
      rc_ = nmtest::ctrl(fd_, NETMAP_REQ_SYNC_KLOOP_START, "", &req, opts);
      done_.signal();
    });
  }
  ~KloopThread() {
    if (!th_.joinable()) return;
    if (done_.wait(0) < 0) stop();
    th_.join();
  }
  // START's result if it returned within ms, else -1.
  int result(int ms) {
    if (done_.wait(ms) < 0) return -1;
    th_.join();
    return rc_;
  }
  int stop() { return nmtest::ctrl(fd_, NETMAP_REQ_SYNC_KLOOP_STOP, "", nullptr); }

 private:
  int fd_;
  std::atomic<int> rc_{-1};
  Event done_;
  std::thread th_;
};

// The eventfds option for n rings (ioeventfd, irqfd each), and the fds.
struct Eventfds {
  std::vector<char> buf;
  std::vector<int> io, irq;
  explicit Eventfds(unsigned n) : buf(sizeof(nmreq_opt_sync_kloop_eventfds) + 8 * n) {
    auto* o = opt();
    o->nro_opt.nro_reqtype = NETMAP_REQ_OPT_SYNC_KLOOP_EVENTFDS;
    o->nro_opt.nro_size = buf.size();
    for (unsigned i = 0; i < n; i++) {
      io.push_back(eventfd(0, 0));
      irq.push_back(eventfd(0, 0));
      o->eventfds[i].ioeventfd = io[i];
      o->eventfds[i].irqfd = irq[i];
    }
  }
  ~Eventfds() {
    for (int fd : io) close(fd);
    for (int fd : irq) close(fd);
  }
  nmreq_opt_sync_kloop_eventfds* opt() { return reinterpret_cast<nmreq_opt_sync_kloop_eventfds*>(buf.data()); }
  uint64_t addr() { return uintptr_t(buf.data()); }
  static void kick(int fd) {
    uint64_t one = 1;
    ASSERT_EQ(write(fd, &one, sizeof one), 8);
  }
  // Wait (bounded) for an eventfd to be signalled, and consume it.
  static bool wait(int fd, int ms) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, ms) != 1) return false;
    uint64_t v;
    return read(fd, &v, sizeof v) == 8;
  }
};

// Wait (bounded) until f() holds; the values it watches are written by the
// kloop thread.
template <class F>
bool until(F f, int ms = 5000) {
  const double end = nmtest::now_ms() + ms;
  while (!f())
    if (nmtest::now_ms() > end) return false;
  return true;
}

// ---------------------------------------------------------------------------
// CSB mode

// A register with the CSB option initialises one entry per bound ring (tx
// first) from the kernel's ring state, kicks enabled both ways; the
// application's own syncs and poll are then refused, as netmap refuses them.
TEST(Csb, RegisterInitialisesTheEntries) {
  CsbPort p;
  memset(static_cast<void*>(p.atok), 0xff, 2 * 64);
  memset(static_cast<void*>(p.ktoa), 0xff, 2 * 64);
  ASSERT_EQ(p.open("ka{0"), 0);
  EXPECT_EQ(p.opt.nro_opt.nro_status, 0u);
  ASSERT_EQ(p.ntx, 1u);
  ASSERT_EQ(p.nrx, 1u);
  netmap_ring* tx = NETMAP_TXRING(p.nifp, 0);
  netmap_ring* rx = NETMAP_RXRING(p.nifp, 0);
  EXPECT_EQ(p.atok[0].head, tx->head);
  EXPECT_EQ(p.atok[0].cur, tx->cur);
  EXPECT_EQ(p.ktoa[0].hwcur, tx->head);
  EXPECT_EQ(p.ktoa[0].hwtail, tx->tail);
  EXPECT_EQ(p.atok[1].head, rx->head);
  EXPECT_EQ(p.ktoa[1].hwtail, rx->tail);
  for (int i = 0; i < 2; i++) {
    EXPECT_EQ(p.atok[i].appl_need_kick, 1u);
    EXPECT_EQ(p.ktoa[i].kern_need_kick, 1u);
  }
  errno = 0;
  EXPECT_EQ(ioctl(p.fd, NIOCTXSYNC, nullptr), -1);
  EXPECT_EQ(errno, EBUSY);
  EXPECT_EQ(ioctl(p.fd, NIOCRXSYNC, nullptr), -1);
  EXPECT_EQ(errno, EBUSY);
  pollfd pf{p.fd, POLLIN, 0};
  EXPECT_EQ(::poll(&pf, 1, 1000), 1);
  EXPECT_TRUE(pf.revents & POLLERR);
}

// Only the bound rings have entries: tx only, then rx only.
TEST(Csb, EntriesFollowTheBoundRings) {
  CsbPort t(1);
  ASSERT_EQ(t.open("kb{0", NR_EXCLUSIVE | NR_TX_RINGS_ONLY), 0);
  CsbPort r(1);
  ASSERT_EQ(r.open("kb{0", NR_EXCLUSIVE | NR_RX_RINGS_ONLY), 0);
  EXPECT_EQ(r.ktoa[0].hwtail, NETMAP_RXRING(r.nifp, 0)->tail);
}

// CSB_ENABLE turns CSB mode on for an fd registered without it.
TEST(Csb, EnableAfterRegister) {
  RawPort p("kc{0", NR_REG_ALL_NIC, 0, NR_EXCLUSIVE);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(nmtest::ctrl(p.fd, NETMAP_REQ_CSB_ENABLE, "kc{0", nullptr), EINVAL) << "no CSB option";
  alignas(64) nm_csb_atok a[2];
  alignas(64) nm_csb_ktoa k[2];
  nmreq_opt_csb o{};
  o.nro_opt.nro_reqtype = NETMAP_REQ_OPT_CSB;
  o.csb_atok = uintptr_t(a), o.csb_ktoa = uintptr_t(k);
  ASSERT_EQ(p.txsync(), 0);
  ASSERT_EQ(nmtest::ctrl(p.fd, NETMAP_REQ_CSB_ENABLE, "kc{0", nullptr, uintptr_t(&o)), 0);
  EXPECT_EQ(o.nro_opt.nro_status, 0u);
  EXPECT_EQ(k[0].hwtail, p.tx()->tail);
  EXPECT_EQ(p.txsync(), -1);
  EXPECT_EQ(errno, EBUSY);
}

// Everything wrong with a CSB is refused with netmap's error, the option
// says which, and the register is undone: the fd can register again.
TEST(Csb, BadArraysAreRefused) {
  const long page = sysconf(_SC_PAGESIZE);
  char* area = static_cast<char*>(mmap(nullptr, 4 * page, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(area, MAP_FAILED);
  char* ro = area + page;        // read-only page
  char* hole = area + 3 * page;  // no access (an unmapped page could be reused at once)
  ASSERT_EQ(mprotect(ro, page, PROT_READ), 0);
  ASSERT_EQ(mprotect(hole, page, PROT_NONE), 0);
  CsbPort p(0);
  p.fd = ::open("/dev/netmap", O_RDWR);
  ASSERT_GE(p.fd, 0);
  const uint64_t good = uintptr_t(area), other = uintptr_t(area + 2 * page);
  struct Case {
    const char* what;
    uint64_t flags, atok, ktoa;
    int err;
  } cases[] = {
      {"not exclusive", 0, good, other, EINVAL},
      {"unaligned", NR_EXCLUSIVE, good + 8, other, EINVAL},
      {"overlapping", NR_EXCLUSIVE, good, good + 64, EINVAL},
      {"NULL", NR_EXCLUSIVE, 0, other, EFAULT},
      {"read-only", NR_EXCLUSIVE, good, uintptr_t(ro), EFAULT},
      {"no access", NR_EXCLUSIVE, uintptr_t(hole), other, EFAULT},
      {"not user memory", NR_EXCLUSIVE, 0xffff800000000000ull, other, EFAULT},
      {"past the end", NR_EXCLUSIVE, good, uintptr_t(area + 3 * page - 64), EFAULT},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(p.reg_with("kd{0", c.flags, c.atok, c.ktoa), c.err) << c.what;
    EXPECT_EQ(p.opt.nro_opt.nro_status, uint32_t(c.err)) << c.what;
    EXPECT_EQ(ioctl(p.fd, NIOCTXSYNC, nullptr), -1) << c.what << ": the register stayed";
    EXPECT_EQ(errno, ENXIO) << c.what;
  }
  EXPECT_EQ(p.reg_with("kd{0", NR_EXCLUSIVE, good, other), 0);
  munmap(area, 4 * page);
}

// ---------------------------------------------------------------------------
// SYNC_KLOOP_START / STOP

// The requests' corner cases, with netmap's answers: STOP and START need a
// registration, START needs CSB mode and at most one second of sleep; a
// STOP that comes before START ends the next START at once (netmap's
// order independence, which its own test relies on).
TEST(Kloop, StartAndStopCorners) {
  int fd = ::open("/dev/netmap", O_RDWR);
  ASSERT_GE(fd, 0);
  nmreq_sync_kloop_start req{};
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_SYNC_KLOOP_STOP, "", nullptr), ENXIO);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_SYNC_KLOOP_START, "", &req), ENXIO);
  close(fd);
  RawPort plain("ke{0", NR_REG_ALL_NIC, 0, NR_EXCLUSIVE);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(nmtest::ctrl(plain.fd, NETMAP_REQ_SYNC_KLOOP_START, "", &req), EINVAL) << "not in CSB mode";
  CsbPort p;
  ASSERT_EQ(p.open("ke}0"), 0);
  req.sleep_us = 1000001;
  EXPECT_EQ(nmtest::ctrl(p.fd, NETMAP_REQ_SYNC_KLOOP_START, "", &req), EINVAL);
  EXPECT_EQ(nmtest::ctrl(p.fd, NETMAP_REQ_SYNC_KLOOP_STOP, "", nullptr), 0);
  KloopThread k(p.fd);
  EXPECT_EQ(k.result(5000), 0) << "a STOP before START ends it at once";
  KloopThread k2(p.fd);  // and only that one
  EXPECT_EQ(k2.result(50), -1);
  EXPECT_EQ(k2.stop(), 0);
  EXPECT_EQ(k2.result(5000), 0);
}

// Two STARTs on one fd: one runs, the other is EBUSY at once.
TEST(Kloop, StartTwiceIsBusy) {
  CsbPort p;
  ASSERT_EQ(p.open("kf{0"), 0);
  KloopThread a(p.fd), b(p.fd);
  int first = -1;
  ASSERT_TRUE(until([&] {
    int ra = a.result(1);
    if (ra >= 0) return first = 0, ra == EBUSY;
    int rb = b.result(1);
    if (rb >= 0) return first = 1, rb == EBUSY;
    return false;
  }));
  EXPECT_EQ((first == 0 ? b : a).stop(), 0);
  EXPECT_EQ((first == 0 ? b : a).result(5000), 0);
}

// The kloop options refused, each with its status; the fd's kloop state
// is left clean (a START after them runs and stops).
TEST(Kloop, BadOptionsAreRefused) {
  CsbPort p;
  ASSERT_EQ(p.open("kg{0"), 0);
  nmreq_sync_kloop_start req{};
  nmreq_opt_sync_kloop_mode mode{};
  mode.nro_opt.nro_reqtype = NETMAP_REQ_OPT_SYNC_KLOOP_MODE;
  mode.mode = 4;
  EXPECT_EQ(nmtest::ctrl(p.fd, NETMAP_REQ_SYNC_KLOOP_START, "", &req, uintptr_t(&mode)), EINVAL);
  EXPECT_EQ(mode.nro_opt.nro_status, uint32_t(EINVAL));
  mode.mode = NM_OPT_SYNC_KLOOP_DIRECT_TX;  // direct without ioeventfds
  EXPECT_EQ(nmtest::ctrl(p.fd, NETMAP_REQ_SYNC_KLOOP_START, "", &req, uintptr_t(&mode)), EINVAL);
  Eventfds three(3);  // the fd binds 2 rings
  EXPECT_EQ(nmtest::ctrl(p.fd, NETMAP_REQ_SYNC_KLOOP_START, "", &req, three.addr()), EINVAL);
  EXPECT_EQ(three.opt()->nro_opt.nro_status, uint32_t(EINVAL));
  Eventfds two(2);
  int pp[2];
  ASSERT_EQ(pipe(pp), 0);
  two.opt()->eventfds[1].irqfd = pp[0];
  EXPECT_EQ(nmtest::ctrl(p.fd, NETMAP_REQ_SYNC_KLOOP_START, "", &req, two.addr()), EINVAL) << "a pipe";
  two.opt()->eventfds[1].irqfd = 1000;
  EXPECT_EQ(nmtest::ctrl(p.fd, NETMAP_REQ_SYNC_KLOOP_START, "", &req, two.addr()), EBADF) << "not open";
  two.opt()->eventfds[1].irqfd = two.irq[1];
  two.opt()->eventfds[0].ioeventfd = -1;  // busy-wait mode: fine, but not with direct
  mode.mode = NM_OPT_SYNC_KLOOP_DIRECT_RX;
  mode.nro_opt.nro_next = two.addr();
  EXPECT_EQ(nmtest::ctrl(p.fd, NETMAP_REQ_SYNC_KLOOP_START, "", &req, uintptr_t(&mode)), EINVAL);
  EXPECT_EQ(two.opt()->nro_opt.nro_status, uint32_t(EINVAL));
  close(pp[0]);
  close(pp[1]);
  KloopThread k(p.fd, 100, two.addr());
  EXPECT_EQ(k.result(50), -1);
  EXPECT_EQ(k.stop(), 0);
  EXPECT_EQ(k.result(5000), 0);
  EXPECT_EQ(two.opt()->nro_opt.nro_status, 0u);
}

// Two pipe ends in CSB mode, each synced by its kloop (sleeping between
// passes): packets go through both CSBs in order, more than a ring's worth.
TEST(Kloop, MovesPacketsOverAPipeSleeping) {
  CsbPort a, b;
  ASSERT_EQ(a.open("kh{0"), 0);
  ASSERT_EQ(b.open("kh}0"), 0);
  KloopThread ka(a.fd, 50), kb(b.fd, 50);
  AppRing tx(NETMAP_TXRING(a.nifp, 0), &a.atok[0], &a.ktoa[0]);
  AppRing rx(NETMAP_RXRING(b.nifp, 0), &b.atok[1], &b.ktoa[1]);
  const uint32_t n = 5000;
  uint32_t sent = 0, next = 0;
  const double end = nmtest::now_ms() + 10000;
  while (next < n && nmtest::now_ms() < end) {
    sent += tx.send(sent, n - sent);
    rx.recv(&next);
  }
  EXPECT_EQ(next, n);
  EXPECT_EQ(ka.stop(), 0);
  EXPECT_EQ(ka.result(5000), 0);
  EXPECT_EQ(kb.stop(), 0);
  EXPECT_EQ(kb.result(5000), 0);
}

// With eventfds the kloop sleeps until kicked: a packet from the peer
// wakes it and it signals the rx irqfd; a kick of the tx ioeventfd sends;
// the peer's release of the slots gives tx room back, signalled too.
TEST(Kloop, EventfdKicksAndNotifications) {
  CsbPort a;
  ASSERT_EQ(a.open("ki{0"), 0);
  RawPort b("ki}0");
  ASSERT_TRUE(b.ok());
  Eventfds ev(2);
  KloopThread k(a.fd, 0, ev.addr());
  AppRing tx(NETMAP_TXRING(a.nifp, 0), &a.atok[0], &a.ktoa[0]);
  AppRing rx(NETMAP_RXRING(a.nifp, 0), &a.atok[1], &a.ktoa[1]);
  nmtest::PktSpec spec;
  for (uint32_t i = 0; i < 10; i++) {
    netmap_slot* s = &b.tx()->slot[b.tx()->head];
    memcpy(NETMAP_BUF(b.tx(), s->buf_idx), &i, sizeof i);
    s->len = 60;
    b.tx()->head = b.tx()->cur = nm_ring_next(b.tx(), b.tx()->head);
  }
  ASSERT_EQ(b.txsync(), 0);
  ASSERT_TRUE(Eventfds::wait(ev.irq[1], 5000)) << "rx irqfd";
  ASSERT_TRUE(until([&] { return rx.avail() == 10; }));
  uint32_t next = 0;
  EXPECT_EQ(rx.recv(&next), 10u);

  ASSERT_TRUE(until([&] { return ld(&a.ktoa[0].kern_need_kick) == 1; })) << "an idle kloop wants kicks";
  EXPECT_EQ(tx.send(100, 5), 5u);
  Eventfds::kick(ev.io[0]);
  ASSERT_EQ(b.poll(POLLIN, 5000), 1);
  ASSERT_EQ(nm_ring_space(b.rx()), 5u);
  uint32_t seq;
  memcpy(&seq, NETMAP_BUF(b.rx(), b.rx()->slot[b.rx()->head].buf_idx), sizeof seq);
  EXPECT_EQ(seq, 100u);
  const uint32_t room = tx.avail();
  b.rx()->head = b.rx()->cur = b.rx()->tail;  // release: the sender gets its slots back
  ASSERT_EQ(b.rxsync(), 0);
  ASSERT_TRUE(Eventfds::wait(ev.irq[0], 5000)) << "tx irqfd";
  EXPECT_EQ(tx.avail(), room + 5);
  EXPECT_EQ(k.stop(), 0);
  EXPECT_EQ(k.result(5000), 0);
}

// Direct mode: a ring is synced when its ioeventfd is kicked; the port's
// notification is passed to the application on the irqfds.
TEST(Kloop, DirectMode) {
  CsbPort a;
  ASSERT_EQ(a.open("kj{0"), 0);
  RawPort b("kj}0");
  ASSERT_TRUE(b.ok());
  Eventfds ev(2);
  nmreq_opt_sync_kloop_mode mode{};
  mode.nro_opt.nro_reqtype = NETMAP_REQ_OPT_SYNC_KLOOP_MODE;
  mode.nro_opt.nro_next = ev.addr();
  mode.mode = NM_OPT_SYNC_KLOOP_DIRECT_TX | NM_OPT_SYNC_KLOOP_DIRECT_RX;
  KloopThread k(a.fd, 0, uintptr_t(&mode));
  AppRing tx(NETMAP_TXRING(a.nifp, 0), &a.atok[0], &a.ktoa[0]);
  AppRing rx(NETMAP_RXRING(a.nifp, 0), &a.atok[1], &a.ktoa[1]);
  EXPECT_EQ(tx.send(7, 3), 3u);
  Eventfds::kick(ev.io[0]);
  ASSERT_EQ(b.poll(POLLIN, 5000), 1);
  EXPECT_EQ(nm_ring_space(b.rx()), 3u);

  uint32_t v = 42;
  netmap_slot* s = &b.tx()->slot[b.tx()->head];
  memcpy(NETMAP_BUF(b.tx(), s->buf_idx), &v, sizeof v);
  s->len = 60;
  b.tx()->head = b.tx()->cur = nm_ring_next(b.tx(), b.tx()->head);
  ASSERT_EQ(b.txsync(), 0);
  ASSERT_TRUE(Eventfds::wait(ev.irq[1], 5000)) << "the port's rx notification";
  Eventfds::kick(ev.io[1]);
  ASSERT_TRUE(until([&] { return rx.avail() == 1; }));
  uint32_t next = 42;
  EXPECT_EQ(rx.recv(&next), 1u);
  EXPECT_EQ(k.stop(), 0);
  EXPECT_EQ(k.result(5000), 0);
  EXPECT_EQ(mode.nro_opt.nro_status, 0u);  // written back when START returns
}

// A head the application publishes outside [hwcur, tail] is refused by the
// sync prologue as NIOCTXSYNC refuses it: nothing is sent, the kloop goes
// on, and a good head afterwards is sent.
TEST(Kloop, BadHeadInTheCsbSendsNothing) {
  CsbPort a;
  ASSERT_EQ(a.open("kk{0"), 0);
  RawPort b("kk}0");
  ASSERT_TRUE(b.ok());
  KloopThread k(a.fd, 50);
  AppRing tx(NETMAP_TXRING(a.nifp, 0), &a.atok[0], &a.ktoa[0]);
  nm_sync_kloop_appl_write(tx.atok, 5000, 5000);  // past the ring
  EXPECT_EQ(b.poll(POLLIN, 200), 0);
  tx.head = ld(&a.ktoa[0].hwcur);
  EXPECT_EQ(tx.send(1, 2), 2u);
  ASSERT_EQ(b.poll(POLLIN, 5000), 1);
  EXPECT_EQ(nm_ring_space(b.rx()), 2u);
  EXPECT_EQ(k.stop(), 0);
  EXPECT_EQ(k.result(5000), 0);
}

// A process killed (SIGKILL) while its kloop sends leaves nothing behind:
// the pipe end can be bound again at once and carries packets.
TEST(Kloop, KilledKloopLeavesThePortUsable) {
  RawPort b("kl}0");
  ASSERT_TRUE(b.ok());
  Event started;
  Child c([&] {
    CsbPort a;
    if (a.open("kl{0")) return 1;
    KloopThread k(a.fd, 0);
    AppRing tx(NETMAP_TXRING(a.nifp, 0), &a.atok[0], &a.ktoa[0]);
    started.signal();
    for (uint32_t seq = 0;; seq += tx.send(seq, 64)) {
    }
  });
  ASSERT_EQ(started.wait(10000), 'x');
  ASSERT_EQ(b.poll(POLLIN, 5000), 1);
  kill(c.pid(), SIGKILL);
  EXPECT_EQ(c.wait(5000), 128 + SIGKILL);
  b.rx()->head = b.rx()->cur = b.rx()->tail;
  ASSERT_EQ(b.rxsync(), 0);
  b.rx()->head = b.rx()->cur = b.rx()->tail;
  RawPort a2("kl{0", NR_REG_ALL_NIC, 0, NR_EXCLUSIVE);
  ASSERT_TRUE(a2.ok()) << strerror(a2.err);
  const uint32_t before = nm_ring_space(b.rx());
  ASSERT_EQ(a2.txsync(), 0);
  netmap_ring* t = a2.tx();
  ASSERT_GT(nm_ring_space(t), 0u);
  t->slot[t->head].len = 60;
  t->head = t->cur = nm_ring_next(t, t->head);
  ASSERT_EQ(a2.txsync(), 0);
  ASSERT_TRUE(until([&] { return b.rxsync() == 0 && nm_ring_space(b.rx()) > before; }));
}

}  // namespace

namespace {

// A fork child has the fd but not the parent's kloop thread: its STOP does
// not wait for a loop it does not run, and the parent's loop runs on.
TEST(Kloop, ForkChildDoesNotInheritTheRunningKloop) {
  CsbPort a;
  ASSERT_EQ(a.open("km{0"), 0);
  KloopThread k(a.fd, 100);
  ASSERT_EQ(k.result(50), -1);
  Child c([&] { return nmtest::ctrl(a.fd, NETMAP_REQ_SYNC_KLOOP_STOP, "", nullptr); });
  EXPECT_EQ(c.wait(5000), 0);
  EXPECT_EQ(k.result(50), -1) << "the parent's kloop still runs";
  EXPECT_EQ(k.stop(), 0);
  EXPECT_EQ(k.result(5000), 0);
}

}  // namespace

#include <net/if.h>
#include <netpacket/packet.h>
#include <arpa/inet.h>
#include <sched.h>
#include <sys/socket.h>

namespace {

int sh(const std::string& cmd) {
  int rc = system((cmd + " >/dev/null 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// A raw socket on interface `ifname` for frames of ethertype 0x88b5.
int packet_socket(const char* ifname) {
  int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(0x88b5));
  sockaddr_ll a{};
  a.sll_family = AF_PACKET;
  a.sll_protocol = htons(0x88b5);
  a.sll_ifindex = int(if_nametoindex(ifname));
  if (s < 0 || bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
  return s;
}

void put_frame(uint8_t* p, uint32_t seq) {
  memset(p, 0, 60);
  memset(p, 0xff, 6);
  p[6] = 0x02, p[11] = 0x0b;
  p[12] = 0x88, p[13] = 0xb5;
  memcpy(p + 14, &seq, 4);
}

// A NIC port (one end of a veth pair in a namespace of its own) synced by a
// kloop that waits on eventfds: a frame from the wire wakes it through the
// socket under the rx ring and it signals the rx irqfd; a kick of the tx
// ioeventfd puts the application's frames on the wire.
TEST(Kloop, NicPortWithEventfds) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
  const std::string ns = "unmK" + std::to_string(getpid() % 1000000);
  const std::string x = "kx" + std::to_string(getpid() % 1000000), y = "ky" + std::to_string(getpid() % 1000000);
  ASSERT_EQ(sh("ip netns add " + ns), 0);
  struct Cleanup {
    std::string ns;
    ~Cleanup() { sh("ip netns del " + ns); }
  } cleanup{ns};
  ASSERT_EQ(sh("ip -n " + ns + " link add " + x + " type veth peer name " + y), 0);
  ASSERT_EQ(sh("ip -n " + ns + " link set " + x + " up") + sh("ip -n " + ns + " link set " + y + " up"), 0);
  Child c([&] {
    int nsfd = open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0) return 2;
    CsbPort p;
    if (p.open(x.c_str()) != 0 || p.ntx != 1 || p.nrx != 1) return 3;
    const int wire = packet_socket(y.c_str());
    if (wire < 0) return 4;
    Eventfds ev(2);
    KloopThread k(p.fd, 0, ev.addr());
    AppRing tx(NETMAP_TXRING(p.nifp, 0), &p.atok[0], &p.ktoa[0]);
    AppRing rx(NETMAP_RXRING(p.nifp, 0), &p.atok[1], &p.ktoa[1]);
    uint8_t f[60];
    put_frame(f, 7);
    if (send(wire, f, sizeof f, 0) != 60) return 5;
    if (!Eventfds::wait(ev.irq[1], 5000)) return 6;
    bool seen = false;
    const double end = nmtest::now_ms() + 5000;
    while (!seen && nmtest::now_ms() < end) {
      for (uint32_t n = rx.avail(); n > 0; n--) {
        const netmap_slot& s = rx.ring->slot[rx.head];
        const uint8_t* b = reinterpret_cast<uint8_t*>(NETMAP_BUF(rx.ring, s.buf_idx));
        seen |= s.len >= 18 && b[12] == 0x88 && b[13] == 0xb5 && b[14] == 7;
        rx.head = nm_ring_next(rx.ring, rx.head);
      }
      rx.publish();
    }
    if (!seen) return 7;
    netmap_slot* s = &tx.ring->slot[tx.head];
    put_frame(reinterpret_cast<uint8_t*>(NETMAP_BUF(tx.ring, s->buf_idx)), 9);
    s->len = 60;
    tx.head = nm_ring_next(tx.ring, tx.head);
    tx.publish();
    Eventfds::kick(ev.io[0]);
    for (;;) {
      pollfd pf{wire, POLLIN, 0};
      if (::poll(&pf, 1, 5000) != 1) return 8;
      uint8_t g[2048];
      if (recv(wire, g, sizeof g, 0) >= 18 && g[14] == 9) break;  // (our own frame 7 may come back first)
    }
    return k.stop() == 0 && k.result(5000) == 0 ? 0 : 9;
  });
  EXPECT_EQ(c.wait(20000), 0) << "2 netns, 3 register, 4 socket, 5 send, 6 no rx irq, 7 no frame, "
                                 "8 nothing on the wire, 9 stop";
}

}  // namespace
