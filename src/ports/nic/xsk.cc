// AF_XDP backend: one XDP socket per hardware queue, with a UMEM of its
// own (half of its frames lent to the kernel on the fill ring for rx, half
// kept for tx), set up with libxdp. The interface's XDP program (bpf.cc,
// attached by nic.cc) steers each rx queue to its socket while an rx ring
// drains it, and passes the other queues' frames to the host stack.
//
// rxsync copies received frames into free slots and gives their frames back
// on the fill ring; txsync copies slots into free tx frames, queues them
// and kicks the socket; frames come back on the completion ring. Zero copy
// is asked of the driver and copy mode used where it has none.
#include <bpf/bpf.h>
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/if_xdp.h>
#include <sys/socket.h>
#include <xdp/xsk.h>

#include <cstring>

#include "ports/nic/nic.h"

namespace unetmap::nic {

namespace {

constexpr uint32_t kFrame = 2048;  // XSK_UMEM__DEFAULT_FRAME_SIZE
constexpr uint32_t kRing = 4096;   // entries of each of the four rings
// Socket options newer than Debian 12's headers (linux/if_xdp.h).
constexpr int kMaxTxSkbBudget = 9;     // XDP_MAX_TX_SKB_BUDGET
constexpr int kGenericXmitBatch = 10;  // XDP_GENERIC_XMIT_BATCH

class XskQueue final : public Queue {
 public:
  XskQueue(Iface& ifc, uint32_t q) : ifc_(ifc), q_(q) {}
  ~XskQueue() override;
  int open(std::string* why);

  void txsync(Kring& k, uint32_t head) override;
  void rxsync(Kring& k, uint32_t head) override;
  int fd() const override { return xsk_ ? xsk_socket__fd(xsk_) : -1; }
  int start_rx(std::string* why) override;
  void stop_rx() override;

 private:
  int make_socket(uint16_t bind_flags, std::string* why);
  void reclaim();
  void kick();

  Iface& ifc_;
  uint32_t q_;
  void* area_ = MAP_FAILED;
  size_t area_size_ = size_t(kRing) * 2 * kFrame;
  xsk_umem* umem_ = nullptr;
  xsk_socket* xsk_ = nullptr;
  xsk_ring_prod fill_{}, tx_{};
  xsk_ring_cons comp_{}, rx_{};
  std::vector<uint64_t> free_tx_;  // tx frames not in the kernel
  bool zero_copy_ = false;
};

XskQueue::~XskQueue() {
  if (xsk_) xsk_socket__delete(xsk_);
  if (umem_) xsk_umem__delete(umem_);
  if (area_ != MAP_FAILED) munmap(area_, area_size_);
}

int XskQueue::make_socket(uint16_t bind_flags, std::string* why) {
  xsk_umem_config uc{};
  uc.fill_size = kRing;
  uc.comp_size = kRing;
  uc.frame_size = kFrame;
  uc.frame_headroom = 0;
  int r = xsk_umem__create(&umem_, area_, area_size_, &fill_, &comp_, &uc);
  if (r) {
    umem_ = nullptr;
    *why = std::string("AF_XDP: cannot register the UMEM: ") + strerror(-r);
    return -r;
  }
  xsk_socket_config sc{};
  sc.rx_size = kRing;
  sc.tx_size = kRing;
  sc.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
  sc.bind_flags = bind_flags;
  r = xsk_socket__create(&xsk_, ifc_.name.c_str(), q_, umem_, &rx_, &tx_, &sc);
  if (r) {
    xsk_ = nullptr;
    xsk_umem__delete(umem_);
    umem_ = nullptr;
    *why = std::string("AF_XDP: cannot bind a socket to queue ") + std::to_string(q_) + ": " +
           strerror(-r);
    return -r;
  }
  return 0;
}

int XskQueue::open(std::string* why) {
  area_ = mmap(nullptr, area_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (area_ == MAP_FAILED) {
    *why = std::string("AF_XDP: cannot allocate the UMEM: ") + strerror(errno);
    return errno;
  }
  std::string zc_why;
  if (make_socket(XDP_ZEROCOPY | XDP_USE_NEED_WAKEUP, &zc_why) == 0) {
    zero_copy_ = true;
  } else {
    // The kernel gives a closed socket's queue back later, from a work
    // item (xp_release_deferred): a bind right after another process
    // closed its socket on the queue finds it busy. Tried again for up
    // to a second; a queue that a live socket holds stays refused.
    int err = 0;
    for (int tries = 0; (err = make_socket(XDP_COPY | XDP_USE_NEED_WAKEUP, why)) == EBUSY && tries < 100; tries++)
      usleep(10000);
    if (err) return err;
  }
  // Copy mode sends 32 frames per system call unless told otherwise
  // (Linux 6.16+: XDP_MAX_TX_SKB_BUDGET; 6.18+: skbs allocated in batches).
  // Older kernels refuse the options; the loop in kick() covers them.
  int budget = int(kRing), batch = 64;
  setsockopt(fd(), SOL_XDP, kMaxTxSkbBudget, &budget, sizeof budget);
  setsockopt(fd(), SOL_XDP, kGenericXmitBatch, &batch, sizeof batch);
  // Frames [0, kRing) go to the fill ring, [kRing, 2 kRing) are for tx.
  uint32_t idx = 0;
  if (xsk_ring_prod__reserve(&fill_, kRing, &idx) != kRing) {
    *why = "AF_XDP: fill ring too small";
    return ENOMEM;
  }
  for (uint32_t i = 0; i < kRing; i++) *xsk_ring_prod__fill_addr(&fill_, idx + i) = uint64_t(i) * kFrame;
  xsk_ring_prod__submit(&fill_, kRing);
  if (q_ == 0 && !ifc_.why_backend.empty())
    ifc_.why_backend += zero_copy_ ? ", zero copy" : ", copy mode (zero copy: " + zc_why + ")";
  free_tx_.reserve(kRing);
  for (uint32_t i = kRing; i < 2 * kRing; i++) free_tx_.push_back(uint64_t(i) * kFrame);
  return 0;
}

int XskQueue::start_rx(std::string* why) {
  int fd = xsk_socket__fd(xsk_);
  if (bpf_map_update_elem(ifc_.xsk.map.get(), &q_, &fd, 0)) {
    int err = errno;
    *why = std::string("AF_XDP: cannot steer queue ") + std::to_string(q_) + ": " + strerror(err);
    return err;
  }
  return 0;
}

void XskQueue::stop_rx() { bpf_map_delete_elem(ifc_.xsk.map.get(), &q_); }

void XskQueue::rxsync(Kring& k, uint32_t head) {
  KringState* s = k.ks;
  s->hwcur.store(head, std::memory_order_relaxed);
  uint32_t room = rx_room(s, k.nslots);
  if (room == 0) return;
  uint32_t idx = 0;
  uint32_t got = xsk_ring_cons__peek(&rx_, room, &idx);
  // Each frame taken goes back on the fill ring at once, so no more are
  // taken than it has room for. It may have less room than frames came:
  // the kernel publishes the rx ring's producer before the fill ring's
  // consumer, and a sync can fall in between. Frames left in the rx ring
  // wait for the next sync (a reservation that failed would hand the
  // kernel stale fill entries: one frame to fill twice).
  const uint32_t fits = xsk_prod_nb_free(&fill_, got);
  if (fits < got) {
    xsk_ring_cons__cancel(&rx_, got - fits);
    got = fits;
  }
  if (got == 0) {
    if (xsk_ring_prod__needs_wakeup(&fill_)) recvfrom(fd(), nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
    return;
  }
  uint32_t fidx = 0;
  if (xsk_ring_prod__reserve(&fill_, got, &fidx) != got) {  // cannot fail now: checked above
    xsk_ring_cons__cancel(&rx_, got);
    return;
  }
  uint32_t tail = s->hwtail.load(std::memory_order_relaxed);
  uint64_t bytes = 0, taken = 0;
  for (uint32_t i = 0; i < got; i++) {
    const xdp_desc* d = xsk_ring_cons__rx_desc(&rx_, idx + i);
    if (rx_put(k, &tail, &room, xsk_umem__get_data(area_, d->addr), d->len)) {
      bytes += d->len;
      taken++;
    } else {
      s->drops++;
    }
    *xsk_ring_prod__fill_addr(&fill_, fidx + i) = d->addr & ~uint64_t(kFrame - 1);
  }
  xsk_ring_cons__release(&rx_, got);
  xsk_ring_prod__submit(&fill_, got);
  s->packets += taken;
  s->bytes += bytes;
  s->hwtail.store(tail, std::memory_order_release);
}

void XskQueue::reclaim() {
  uint32_t idx = 0;
  uint32_t n = xsk_ring_cons__peek(&comp_, kRing, &idx);
  for (uint32_t i = 0; i < n; i++) free_tx_.push_back(*xsk_ring_cons__comp_addr(&comp_, idx + i));
  xsk_ring_cons__release(&comp_, n);
}

// Copy mode sends a bounded batch per system call and says EAGAIN while
// more is queued.
void XskQueue::kick() {
  if (!xsk_ring_prod__needs_wakeup(&tx_)) return;
  for (int i = 0; i < 256; i++) {
    if (sendto(fd(), nullptr, 0, MSG_DONTWAIT, nullptr, 0) >= 0) return;
    if (errno != EAGAIN && errno != EBUSY) return;
    reclaim();
  }
}

void XskQueue::txsync(Kring& k, uint32_t head) {
  KringState* s = k.ks;
  reclaim();
  const uint32_t n = k.nslots;
  uint32_t cur = s->hwcur.load(std::memory_order_relaxed);
  uint32_t sent = 0, idx = 0;
  uint64_t bytes = 0;
  uint32_t want = std::min<uint32_t>(ring_dist(cur, head, n), uint32_t(free_tx_.size()));
  if (want == 0) return;
  want = xsk_ring_prod__reserve(&tx_, want, &idx);
  while (cur != head && sent < want) {
    uint32_t ns = packet_slots(k.ring, cur, head, n);
    if (ns == 0) break;
    uint64_t addr = free_tx_.back();
    uint32_t len = tx_gather(k, cur, ns, xsk_umem__get_data(area_, addr), kFrame);
    cur = ring_add(cur, ns, n);
    if (len == 0) {  // longer than a frame
      s->drops++;
      continue;
    }
    free_tx_.pop_back();
    xdp_desc* d = xsk_ring_prod__tx_desc(&tx_, idx + sent);
    d->addr = addr;
    d->len = len;
    d->options = 0;
    sent++;
    bytes += len;
  }
  tx_.cached_prod -= want - sent;  // give back what was reserved and not used
  xsk_ring_prod__submit(&tx_, sent);
  kick();
  s->packets += sent;
  s->bytes += bytes;
  tx_done(s, cur, n);
}

}  // namespace

std::shared_ptr<Queue> open_xsk(Iface& ifc, uint32_t q, uint32_t nslots, int* err,
                                std::string* why) {
  auto x = std::make_shared<XskQueue>(ifc, q);
  if ((*err = x->open(why)) != 0) return nullptr;
  return x;
}

}  // namespace unetmap::nic
