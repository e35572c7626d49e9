// CSB mode and the sync-kloop (netmap's netmap_kloop.c, in user space).
//
// CSB mode: at REGISTER (NETMAP_REQ_OPT_CSB) or later (CSB_ENABLE) the
// application names two arrays in its own memory, one entry per bound ring,
// tx rings first: nm_csb_atok (application to kernel: head, cur,
// appl_need_kick) and nm_csb_ktoa (kernel to application: hwcur, hwtail,
// kern_need_kick). From then on the application publishes head/cur there
// instead of in the ring and reads hwtail there; its NIOC*SYNC and poll are
// refused (EBUSY, POLLERR), as netmap refuses them: the rings are synced by
// a sync-kloop.
//
// The sync-kloop is SYNC_KLOOP_START: an ioctl that does not return until
// another thread issues SYNC_KLOOP_STOP on the same fd. In netmap it is a
// kernel loop in the caller's context; here it is the same loop in the
// calling thread. Each pass syncs every bound ring whose direction is not
// "direct": the head/cur the application wrote in its atok entry go through
// the shared sync prologue (core/sync.cc: the same checks as NIOC*SYNC, the
// ring reset on a bad value), the port type moves the slots, and hwcur and
// hwtail are written to the ktoa entry (hwcur first, then hwtail; the
// application writes cur first, then head). While a ring has work the loop
// clears kern_need_kick (the application need not kick it); before it
// sleeps it sets it again and looks once more, so a head published in
// between is never missed.
//
// How the loop sleeps:
//  - without eventfds (or with any ioeventfd < 0): it sleeps sleep_us
//    between passes and leaves kern_need_kick at 0;
//  - with an ioeventfd per ring (NETMAP_REQ_OPT_SYNC_KLOOP_EVENTFDS) it
//    blocks in ppoll() on them, on the fd's wake-up channel (the rings'
//    waiters are armed with the fd's token, so a pipe peer or a VALE sender
//    wakes it as it wakes a poll()) and on the NIC sockets under rx rings
//    with room. A ring's irqfd is signalled when its sync gave the
//    application something (tx room, rx packets) and appl_need_kick is set.
//  - direct mode (NETMAP_REQ_OPT_SYNC_KLOOP_MODE, needs the ioeventfds):
//    netmap syncs such a ring in the context of the kick; here the loop
//    syncs it as soon as its ioeventfd fires, and not on the other passes,
//    and a notification from the port is passed to the application by
//    signalling the irqfds of that direction.
//
// Everything the loop holds is in this process: the CSB, duplicates of the
// eventfds (closing them in the application does not disturb the loop), a
// duplicate of the wake-up channel. A kill -9 leaves at most a ring busy
// word, which the next sync takes over (sync.cc). The CSB is read and
// written in place, as the kernel does with get_user/put_user: it was found
// mapped and writable at CSB_ENABLE; an application that unmaps it while
// its kloop runs faults in its own process.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <string>

#include "core/port.h"

namespace unetmap {

namespace {

inline uint32_t csb_load(const uint32_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
inline void csb_store(uint32_t* p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

// head first, then cur: the application writes cur first, then head, so
// cur is never older than head.
inline void csb_read(const nm_csb_atok* a, uint32_t* head, uint32_t* cur) {
  *head = csb_load(&a->head);
  std::atomic_thread_fence(std::memory_order_acquire);
  *cur = csb_load(&a->cur);
  std::atomic_thread_fence(std::memory_order_acquire);
}

// hwcur first, then hwtail (the application reads them the other way).
inline void csb_write(nm_csb_ktoa* k, uint32_t hwcur, uint32_t hwtail) {
  std::atomic_thread_fence(std::memory_order_release);
  csb_store(&k->hwcur, hwcur);
  std::atomic_thread_fence(std::memory_order_release);
  csb_store(&k->hwtail, hwtail);
}

void efd_signal(int fd) {
  const uint64_t one = 1;
  ssize_t r = ::write(fd, &one, sizeof one);
  (void)r;
}

// Consume an eventfd's count without ever blocking (the application's
// eventfds may be blocking ones, and it may read them too).
void efd_drain(int fd) {
  uint64_t v;
  iovec io{&v, sizeof v};
  if (preadv2(fd, &io, 1, -1, RWF_NOWAIT) < 0 && errno != EAGAIN) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) == 1) {
      ssize_t r = ::read(fd, &v, sizeof v);
      (void)r;
    }
  }
}

void fifo_drain(int fd) {
  char buf[64];
  while (::read(fd, buf, sizeof buf) > 0) {
  }
}

int dup_fd(int fd) { return int(::syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 0)); }

// A duplicate of the application's eventfd fd (-1 and errno: EBADF for a
// closed fd, EINVAL for anything but an eventfd).
int dup_eventfd(int fd) {
  char link[64], target[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, target, sizeof target - 1);
  if (n < 0) return errno = EBADF, -1;
  target[n] = 0;
  if (std::string(target) != "anon_inode:[eventfd]") return errno = EINVAL, -1;
  return dup_fd(fd);
}

struct KloopRing {
  Kring* k = nullptr;
  nm_csb_atok* atok = nullptr;
  nm_csb_ktoa* ktoa = nullptr;
  int ioeventfd = -1, irqfd = -1;  // duplicates, owned
  int irq = -1;                    // the irqfd this ring's sync signals (none in direct mode)
  bool direct = false;
};

// One running sync-kloop.
class Kloop {
 public:
  Kloop(Binding& b, CsbState& csb, const KloopRequest& rq) : b_(b), csb_(csb), rq_(rq) {}
  ~Kloop();
  // The options (netmap's order and errors); then run() until STOP.
  int setup(std::vector<Kring*>& krings, uint32_t ntx, std::string* why);
  void run();
  int mode_status = -1, eventfds_status = -1;

 private:
  int setup_eventfds(std::string* why);
  void txsync_ring(KloopRing& a);
  void rxsync_ring(KloopRing& a);
  void wait();
  void port_irq(int dir);
  bool no_rx_slots(const Kring& k, uint32_t head) const {
    return k.ks->hwtail.load(std::memory_order_acquire) == prev_slot(head, k.nslots);
  }
  Binding& b_;
  CsbState& csb_;
  const KloopRequest& rq_;
  std::vector<KloopRing> rings_;
  uint32_t ntx_ = 0;
  bool busy_wait_ = true;
  bool direct_[2] = {false, false};
  bool rx_irq_pending_ = false;  // direct rx: signalled, no rx kick since
  std::vector<pollfd> pfd_;
  std::vector<int> pfd_ring_;  // ring index of pfd_[i], -1 channel, -2 NIC socket
};

Kloop::~Kloop() {
  for (KloopRing& a : rings_) {
    if (a.ioeventfd >= 0) ::close(a.ioeventfd);
    if (a.irqfd >= 0) ::close(a.irqfd);
  }
}

int Kloop::setup(std::vector<Kring*>& krings, uint32_t ntx, std::string* why) {
  ntx_ = ntx;
  rings_.resize(krings.size());
  for (size_t i = 0; i < krings.size(); i++) {
    rings_[i].k = krings[i];
    rings_[i].atok = csb_.atok.load() + i;
    rings_[i].ktoa = csb_.ktoa + i;
  }
  if (rq_.has_mode) {
    if (rq_.mode & ~uint32_t(NM_OPT_SYNC_KLOOP_DIRECT_TX | NM_OPT_SYNC_KLOOP_DIRECT_RX)) {
      mode_status = EINVAL;
      *why = "sync-kloop mode " + std::to_string(rq_.mode) + ": netmap knows DIRECT_TX and DIRECT_RX only";
      return EINVAL;
    }
    direct_[kTx] = rq_.mode & NM_OPT_SYNC_KLOOP_DIRECT_TX;
    direct_[kRx] = rq_.mode & NM_OPT_SYNC_KLOOP_DIRECT_RX;
    mode_status = 0;
  }
  if (!rq_.has_eventfds) {
    if (!direct_[kTx] && !direct_[kRx]) return 0;
    mode_status = EINVAL;
    *why = "sync-kloop direct mode needs an ioeventfd per ring (NETMAP_REQ_OPT_SYNC_KLOOP_EVENTFDS)";
    return EINVAL;
  }
  return setup_eventfds(why);
}

// NETMAP_REQ_OPT_SYNC_KLOOP_EVENTFDS: one entry per bound ring; any
// ioeventfd < 0 means the sleeping loop; irqfds < 0 are not signalled.
int Kloop::setup_eventfds(std::string* why) {
  const uint64_t want = sizeof(nmreq_opt_sync_kloop_eventfds) + 2 * sizeof(int32_t) * rings_.size();
  if (rq_.eventfds_size != want || rq_.ioeventfd.size() != rings_.size()) {
    eventfds_status = EINVAL;
    *why = "sync-kloop eventfds option of " + std::to_string(rq_.eventfds_size) + " bytes: the fd binds " +
           std::to_string(rings_.size()) + " rings, so " + std::to_string(want) + " bytes";
    return EINVAL;
  }
  eventfds_status = 0;
  busy_wait_ = false;
  for (int32_t fd : rq_.ioeventfd) busy_wait_ |= fd < 0;
  if (busy_wait_ && (direct_[kTx] || direct_[kRx])) {
    eventfds_status = EINVAL;
    *why = "sync-kloop direct mode needs every ioeventfd (one is < 0)";
    return EINVAL;
  }
  for (size_t i = 0; i < rings_.size(); i++) {
    KloopRing& a = rings_[i];
    const int dir = i < ntx_ ? kTx : kRx;
    a.direct = direct_[dir];
    const int32_t in = rq_.ioeventfd[i], irq = rq_.irqfd[i];
    if ((irq >= 0 && (a.irqfd = dup_eventfd(irq)) < 0) ||
        (!busy_wait_ && (a.ioeventfd = dup_eventfd(in)) < 0)) {
      const int e = errno;
      eventfds_status = e;
      *why = "sync-kloop ring " + std::to_string(i) + ": fd " + std::to_string(a.irqfd < 0 && irq >= 0 ? irq : in) +
             (e == EBADF ? " is not open" : " is not an eventfd");
      return e;
    }
    a.irq = a.direct ? -1 : a.irqfd;
  }
  return 0;
}

void Kloop::txsync_ring(KloopRing& a) {
  Kring& k = *a.k;
  KringState* s = k.ks;
  if (!a.direct) csb_store(&a.ktoa->kern_need_kick, 0);
  uint32_t head, cur;
  csb_read(a.atok, &head, &cur);
  bool more_room = false;
  for (;;) {
    const uint32_t old_tail = s->rtail;
    if (txsync_kring_csb(k, head, cur) != 0) {
      if (!busy_wait_) csb_store(&a.ktoa->kern_need_kick, 1);
      break;
    }
    csb_write(a.ktoa, s->hwcur.load(std::memory_order_relaxed), s->rtail);
    more_room |= s->rtail != old_tail;
    if (more_room && a.irq >= 0 && csb_load(&a.atok->appl_need_kick)) {
      efd_signal(a.irq);
      more_room = false;
    }
    csb_read(a.atok, &head, &cur);
    if (head == s->rhead) {  // nothing new: sleep, unless a head came meanwhile
      if (busy_wait_) break;
      csb_store(&a.ktoa->kern_need_kick, 1);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      csb_read(a.atok, &head, &cur);
      if (head == s->rhead) break;
      csb_store(&a.ktoa->kern_need_kick, 0);
      continue;
    }
    if (s->rhead == s->rtail) break;  // no room: the port's notification wakes us
  }
  if (more_room && a.irq >= 0 && csb_load(&a.atok->appl_need_kick)) efd_signal(a.irq);
}

void Kloop::rxsync_ring(KloopRing& a) {
  Kring& k = *a.k;
  KringState* s = k.ks;
  if (!a.direct) csb_store(&a.ktoa->kern_need_kick, 0);
  uint32_t head, cur;
  csb_read(a.atok, &head, &cur);
  bool got = false;
  int dry = 0;
  for (;;) {
    const uint32_t old_tail = s->rtail;
    if (rxsync_kring_csb(k, head, cur) != 0) {
      if (!busy_wait_) csb_store(&a.ktoa->kern_need_kick, 1);
      break;
    }
    const uint32_t tail = s->rtail;
    csb_write(a.ktoa, s->hwcur.load(std::memory_order_relaxed), tail);
    if (tail != old_tail) {
      got = true;
      dry = 0;
    } else {
      dry++;
    }
    if (got && a.irq >= 0 && csb_load(&a.atok->appl_need_kick)) {
      efd_signal(a.irq);
      got = false;
    }
    csb_read(a.atok, &head, &cur);
    if (no_rx_slots(k, head)) {  // the application holds every slot
      if (busy_wait_) break;
      csb_store(&a.ktoa->kern_need_kick, 1);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      csb_read(a.atok, &head, &cur);
      if (no_rx_slots(k, head)) break;
      csb_store(&a.ktoa->kern_need_kick, 0);
      continue;
    }
    if (s->hwtail.load(std::memory_order_acquire) == s->rhead || dry >= 2) break;
  }
  if (got && a.irq >= 0 && csb_load(&a.atok->appl_need_kick)) efd_signal(a.irq);
}

// The port notified (a peer's sync, a NIC socket): in direct mode the
// application syncs, so pass it on (netmap's tx/rx irq wake functions).
void Kloop::port_irq(int dir) {
  if (!direct_[dir]) return;
  const size_t lo = dir == kTx ? 0 : ntx_, hi = dir == kTx ? ntx_ : rings_.size();
  for (size_t i = lo; i < hi; i++)
    if (rings_[i].irqfd >= 0) efd_signal(rings_[i].irqfd);
  if (dir == kRx) rx_irq_pending_ = true;
}

void Kloop::wait() {
  pfd_.clear();
  pfd_ring_.clear();
  pfd_.push_back(pollfd{csb_.wake_fd, POLLIN, 0});
  pfd_ring_.push_back(-3);
  if (busy_wait_) {
    const timespec ts{time_t(rq_.sleep_us / 1000000), long(rq_.sleep_us % 1000000) * 1000};
    ::ppoll(pfd_.data(), 1, &ts, nullptr);
    return;
  }
  pfd_.push_back(pollfd{rq_.chan_fd, POLLIN, 0});
  pfd_ring_.push_back(-1);
  int timeout_ms = 1000;
  for (size_t i = 0; i < rings_.size(); i++) {
    const KloopRing& a = rings_[i];
    pfd_.push_back(pollfd{a.ioeventfd, POLLIN, 0});
    pfd_ring_.push_back(int(i));
    const Kring& k = *a.k;
    const int sock = k.na->kring_wait_fd(k);
    if (sock < 0) continue;
    const uint32_t hwcur = k.ks->hwcur.load(std::memory_order_relaxed);
    const uint32_t hwtail = k.ks->hwtail.load(std::memory_order_acquire);
    // tx: slots in flight (a NIC reclaims them only at a sync), [hwtail + 1, hwcur);
    // rx: room, [hwtail, hwcur - 1).
    const uint32_t d = ring_dist(hwtail, hwcur, k.nslots);
    if (i < ntx_) {
      if (d > 1) timeout_ms = 1;
    } else if (d != 1 && !(a.direct && rx_irq_pending_)) {
      pfd_.push_back(pollfd{sock, POLLIN, 0});
      pfd_ring_.push_back(-2);
    }
  }
  if (timeout_ms > 2 && b_.rx_leases_pending()) timeout_ms = 2;  // a dead producer's lease
  if (::poll(pfd_.data(), pfd_.size(), timeout_ms) <= 0) return;
  bool irq = false;
  for (size_t j = 1; j < pfd_.size(); j++) {
    if (!pfd_[j].revents) continue;
    const int r = pfd_ring_[j];
    if (r == -1) fifo_drain(rq_.chan_fd);
    if (r < 0) {
      irq = true;
      continue;
    }
    efd_drain(rings_[r].ioeventfd);
    if (!rings_[r].direct) continue;
    if (size_t(r) < ntx_) {
      txsync_ring(rings_[r]);
    } else {
      rx_irq_pending_ = false;
      rxsync_ring(rings_[r]);
    }
  }
  if (irq) {
    port_irq(kTx);
    port_irq(kRx);
  }
}

void Kloop::run() {
  while (!csb_.stopping.load(std::memory_order_acquire)) {
    if (!busy_wait_) b_.arm(POLLIN | POLLOUT, rq_.token);  // before the syncs: no wake-up is lost
    for (uint32_t i = 0; i < ntx_ && !direct_[kTx]; i++) txsync_ring(rings_[i]);
    for (size_t i = ntx_; i < rings_.size() && !direct_[kRx]; i++) rxsync_ring(rings_[i]);
    wait();
  }
  if (!busy_wait_) b_.arm(POLLIN | POLLOUT, 0);
}

}  // namespace

int Binding::csb_enable(uint64_t atok, uint64_t ktoa, AppWrite write, std::string* why) {
  {
    std::lock_guard<std::mutex> g(csb_.mu);
    if (kloop_running()) {
      *why = "the CSB cannot change while a sync-kloop runs on this fd";
      return EBUSY;
    }
  }
  const uint32_t n = bound_rings();
  if (n == 0) return 0;  // nothing to sync: netmap leaves CSB mode off
  if (!(flags_ & NR_EXCLUSIVE)) {
    *why = "CSB mode needs the rings bound exclusively (NR_EXCLUSIVE, /x)";
    return EINVAL;
  }
  const uint64_t size = uint64_t(n) * sizeof(nm_csb_atok);
  static_assert(sizeof(nm_csb_atok) == 64 && sizeof(nm_csb_ktoa) == 64, "one cache line each");
  if (atok % 64 || ktoa % 64) {
    *why = "CSB arrays must be 64-byte aligned (csb_atok " + std::to_string(atok) + ", csb_ktoa " +
           std::to_string(ktoa) + ")";
    return EINVAL;
  }
  if (atok > UINT64_MAX - size || ktoa > UINT64_MAX - size || (atok < ktoa + size && ktoa < atok + size)) {
    *why = "CSB arrays of " + std::to_string(n) + " entries each overlap (or wrap around)";
    return EINVAL;
  }
  std::vector<nm_csb_atok> a(n);
  std::vector<nm_csb_ktoa> k(n);
  uint32_t j = 0;
  for (int d : {kTx, kRx})
    for (uint32_t i = first_[d]; i < last_[d]; i++, j++) {
      const KringState* s = kr_[d][i].ks;
      a[j] = nm_csb_atok{s->rhead, s->rcur, 1, 1, {}};
      k[j] = nm_csb_ktoa{s->hwcur.load(), s->hwtail.load(), 1, {}};
    }
  if (!write(reinterpret_cast<void*>(atok), a.data(), size) ||
      !write(reinterpret_cast<void*>(ktoa), k.data(), size)) {
    *why = "CSB arrays (" + std::to_string(n) + " entries of 64 bytes each) are not writable memory of this process";
    return EFAULT;
  }
  csb_.ktoa = reinterpret_cast<nm_csb_ktoa*>(ktoa);
  csb_.atok.store(reinterpret_cast<nm_csb_atok*>(atok));
  return 0;
}

int Binding::kloop_run(KloopRequest& rq, std::string* why) {
  struct Chan {
    int fd;
    ~Chan() { if (fd >= 0) ::close(fd); }
  } chan{rq.chan_fd};
  if (rq.sleep_us > 1000000) {
    *why = "sync-kloop sleep_us " + std::to_string(rq.sleep_us) + ": at most 1000000 (one second)";
    return EINVAL;
  }
  if (!csb_mode()) {
    *why = "sync-kloop needs CSB mode (NETMAP_REQ_OPT_CSB at register, or CSB_ENABLE)";
    return EINVAL;
  }
  {
    std::lock_guard<std::mutex> g(csb_.mu);
    if (kloop_running()) {
      *why = "a sync-kloop already runs on this fd";
      return EBUSY;
    }
    csb_.kloop = (csb_.kloop & kKloopStopping) | kKloopRunning;
    csb_.kloop_pid = my_pid();
  }
  std::vector<Kring*> krings;
  for (int d : {kTx, kRx})
    for (uint32_t i = first_[d]; i < last_[d]; i++) krings.push_back(&kr_[d][i]);
  int err = 0;
  {
    Kloop loop(*this, csb_, rq);
    err = loop.setup(krings, last_[kTx] - first_[kTx], why);
    rq.mode_status = loop.mode_status;
    rq.eventfds_status = loop.eventfds_status;
    int wake = err ? -1 : eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!err && wake < 0) {
      err = errno;
      *why = "sync-kloop: eventfd: " + std::string(strerror(err));
    }
    if (!err) {
      {
        std::lock_guard<std::mutex> g(csb_.mu);
        csb_.wake_fd = wake;
      }
      loop.run();
    }
  }
  std::lock_guard<std::mutex> g(csb_.mu);
  if (csb_.wake_fd >= 0) ::close(csb_.wake_fd);
  csb_.wake_fd = -1;
  csb_.kloop = 0;
  csb_.stopping.store(false);
  csb_.cv.notify_all();
  return err;
}

void Binding::kloop_stop() {
  std::unique_lock<std::mutex> g(csb_.mu);
  csb_.kloop |= kKloopStopping;
  csb_.stopping.store(true, std::memory_order_release);
  if (csb_.wake_fd >= 0) efd_signal(csb_.wake_fd);
  csb_.cv.wait(g, [&] { return !kloop_running(); });
}

// Under csb_.mu.
bool Binding::kloop_running() const {
  return (csb_.kloop & kKloopRunning) && csb_.kloop_pid == my_pid();
}

}  // namespace unetmap
