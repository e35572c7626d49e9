#include "ports/vhost/backend.h"

#include <errno.h>
#include <fcntl.h>
#include <libnetmap.h>
#include <net/netmap_user.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "core/engine.h"
#include "core/prefetch.h"
#include "core/shm.h"  // mono_ns
#include "core/spin.h"
#include "core/worker.h"
#include "ports/vale/vale.h"
#include "ports/vhost/device.h"
#include "ports/vhost/transport.h"
#include "unetmap/unetmap.h"

namespace unetmap::vhost {

namespace {

volatile sig_atomic_t g_stop = 0;
void on_term(int) { g_stop = 1; }

void log_line(const std::string& s) { fprintf(stderr, "unetmap-vhost: %s\n", s.c_str()); }

uint64_t env_u64(const char* name, uint64_t dflt) {
  const char* v = getenv(name);
  return v && *v ? strtoull(v, nullptr, 10) : dflt;
}

// Chains popped from a receive queue and not filled yet: a frame that
// needs more buffers than the guest has made available waits with them.
struct RxStash {
  static constexpr uint32_t kMax = 128;
  std::unique_ptr<Chain[]> c{new Chain[kMax]};
  uint32_t first = 0, n = 0;
  uint64_t room = 0;  // bytes of the chains held
  Chain& at(uint32_t k) { return c[(first + k) % kMax]; }
};

// Copies bytes into the segments of consecutive chains.
struct SegWriter {
  RxStash& s;
  uint32_t chain = 0, seg = 0, off = 0;
  uint32_t written = 0;  // into the current chain
  std::vector<uint32_t>* lens;  // bytes written per chain
  void put(const uint8_t* p, uint32_t len) {
    while (len) {
      Chain& c = s.at(chain);
      if (seg == c.nsegs) {
        (*lens)[chain] = written;
        chain++;
        seg = off = written = 0;
        continue;
      }
      const Seg& g = c.seg[seg];
      const uint32_t take = g.len - off < len ? g.len - off : len;
      memcpy(g.p + off, p, take);
      p += take;
      len -= take;
      off += take;
      written += take;
      if (off == g.len) {
        seg++;
        off = 0;
      }
    }
  }
};

// Bytes of chain c's frame (after `hdr` header bytes) in the segment that
// holds its first byte.
uint32_t first_data(const Chain& c, uint32_t hdr) {
  for (uint32_t s = 0; s < c.nsegs; s++) {
    if (hdr < c.seg[s].len) return c.seg[s].len - hdr;
    hdr -= c.seg[s].len;
  }
  return 0;
}

// Copy n bytes of chain c's frame (after hdr bytes) to out.
void gather(const Chain& c, uint32_t hdr, uint8_t* out, uint32_t n) {
  for (uint32_t s = 0; s < c.nsegs && n; s++) {
    uint32_t len = c.seg[s].len;
    const uint8_t* p = c.seg[s].p;
    const uint32_t k = hdr < len ? hdr : len;
    p += k, len -= k, hdr -= k;
    const uint32_t t = len < n ? len : n;
    memcpy(out, p, t);
    out += t, n -= t;
  }
}

// The bytes of a frame a switch wants in its first slot (its lookup reads
// the Ethernet header there, as netmap's does).
constexpr uint32_t kHead = 128;

// Starts fetching the lines a transmit chain is first read from: its
// virtio-net header and the first 128 bytes of its frame (what the
// switch's lookup reads).
void prefetch_head(const Chain& c, uint32_t hdr) {
  if (c.nsegs == 0) return;
  // Where the frame starts, and its bytes in that segment.
  const Seg& s0 = c.seg[0];
  const uint8_t* f = s0.p;
  uint32_t in_seg = 0;
  if (hdr < s0.len) f = s0.p + hdr, in_seg = s0.len - hdr;
  else if (c.nsegs > 1) f = c.seg[1].p, in_seg = c.seg[1].len;
  prefetch(s0.p);
  prefetch(f);
  // The frame's second line, if the lookup or a short frame's copy reads it
  // (a hint: it never faults, wherever it points).
  if ((reinterpret_cast<uintptr_t>(f) & 63) + (in_seg < kHead ? in_seg : kHead) > 64) prefetch(f + 64);
}

// Starts taking for writing the lines a receive chain is first written
// to: the header and a short frame (the guest last touched them on its
// core).
void prefetch_rx(const Chain& c, uint32_t hdr) {
  if (c.nsegs == 0) return;
  uint8_t* p = c.seg[0].p;
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + (c.seg[0].len < hdr + 64 ? c.seg[0].len : hdr + 64);
  for (uintptr_t a = reinterpret_cast<uintptr_t>(p) & ~uintptr_t(63); a < end; a += 64)
    prefetch_w(reinterpret_cast<const void*>(a));
}

// The tx slots chain c's frame takes (Backend::tx): a bounce slot if its
// first buffer is short, then each segment's rest cut into buffers of
// bsize bytes.
uint32_t tx_slots_of(const Chain& c, uint32_t hdr, uint32_t bsize) {
  const uint32_t flen = uint32_t(c.len) - hdr;
  uint32_t skip = hdr, n = 0;
  if (first_data(c, hdr) < kHead && first_data(c, hdr) < flen) {
    n = 1;
    skip += flen < kHead ? flen : kHead;
  }
  for (uint32_t s = 0; s < c.nsegs; s++) {
    uint32_t len = c.seg[s].len;
    const uint32_t k = skip < len ? skip : len;
    len -= k, skip -= k;
    n += (len + bsize - 1) / bsize;
  }
  return n;
}

class Backend {
 public:
  struct Options {
    std::string sw, name, path;
    bool client = false;
    uint32_t pairs = 1;
    uint32_t slots = 0;  // 0: the switch's default
  };
  explicit Backend(const Options& o)
      : o_(o), dev_(Device::Options{o.pairs, env_u64("UNETMAP_VHOST_OFFLOADS", 1) != 0}), stash_(o.pairs) {}
  ~Backend() {
    disconnect("exiting");
    if (listen_ >= 0) {
      // The socket file goes with the server, if it is still ours.
      struct stat st;
      if (lstat(o_.path.c_str(), &st) == 0 && st.st_ino == sock_ino_ && st.st_dev == sock_dev_)
        unlink(o_.path.c_str());
      close(listen_);
    }
    if (port_) nmport_close(port_);
  }

  int open(std::string* why);
  void run();

 private:
  uint32_t tx(uint32_t i);
  bool tx_one(netmap_ring* r, const Chain& c, uint32_t* cur, uint32_t* space, uint32_t* nd);
  uint32_t tx_publish(Queue& q, netmap_ring* r, uint32_t cur, uint32_t* nd);
  static constexpr int kNoRoom = -2;  // tx_finished: the frames made do not fit
  int tx_finished(netmap_ring* r, const Chain& c, uint32_t* cur, uint32_t* space);
  uint32_t rx(uint32_t i, bool* stalled);
  bool rx_header(uint32_t ns, uint8_t* hdr);
  void update_port_hdr();
  void drop_rx(uint32_t i);
  void drop_stale();
  void release_stash();
  uint32_t tx_slots(const Chain& c, uint32_t hdr) const { return tx_slots_of(c, hdr, bsize_); }
  void call(Queue& q) {
    if (q.call < 0) return;
    const uint64_t one = 1;
    ssize_t r = write(q.call, &one, sizeof one);
    (void)r;
  }
  void on_message();
  void disconnect(const std::string& why);
  void try_connect();
  void accept_one();
  void set_direct_ranges();
  void report();
  void sleep_until_work(bool rx_stalled);
  void check_sockets();
  void tell_broken();

  Options o_;
  Device dev_;
  nmport_d* port_ = nullptr;
  uint32_t bsize_ = 2048;
  int listen_ = -1, conn_ = -1;
  ino_t sock_ino_ = 0;
  dev_t sock_dev_ = 0;
  uint64_t next_connect_ = 0, backoff_ = 100000000ull;
  std::vector<RxStash> stash_;
  Chain scratch_;
  static constexpr uint32_t kTxBatch = 32;  // chains popped together
  // Chains of at most kTxShort bytes are prefetched kTxAhead ahead of the
  // one at hand, longer ones as they are popped (bench/README.md, fourth
  // session: 64-byte frames 8% faster so, 1514-byte ones slower).
  static constexpr uint32_t kTxAhead = 2, kTxShort = 256;
  static constexpr uint32_t kRxAhead = 32;  // receive chains popped ahead of their frames
  std::unique_ptr<Chain[]> batch_{new Chain[kTxBatch]};
  std::vector<uint32_t> lens_ = std::vector<uint32_t>(RxStash::kMax + 1);
  struct Done {
    uint16_t id, ndesc;
  };
  std::vector<Done> done_ = std::vector<Done>(1024);
  uint64_t tx_frames_ = 0, tx_dropped_ = 0, rx_frames_ = 0, rx_dropped_ = 0;
  std::unique_ptr<Message> msg_{new Message};
  std::vector<uint8_t> bounce_;  // kHead bytes per tx slot (ring 0's size)
  // The port's virtio-net header length: the guest's (frames pass with
  // their headers) when the guest takes offloaded frames, else 0 (the
  // switch finishes them for it; this backend finishes the guest's).
  uint32_t port_hdr_ = 0;
  uint64_t port_hdr_for_ = ~0ull;  // the features it was chosen for
  std::vector<uint8_t> whole_;     // a guest frame gathered, to be finished here
  std::vector<uint8_t> made_;      // the frames finished from it
  std::vector<uint32_t> made_len_;
  // One slot of the port's rx ring, read once: its buffer checked to lie
  // in the port's memory (nullptr and length 0 if not).
  struct RxSlot {
    const uint8_t* buf;
    uint32_t len;
    uint16_t flags;
  };
  static constexpr uint32_t kMaxFrameSlots = 256;
  RxSlot rxs_[kMaxFrameSlots];
  RxSlot rx_slot(const netmap_ring* r, uint32_t i) const {
    const netmap_slot s = r->slot[i];
    const uint8_t* b = reinterpret_cast<const uint8_t*>(NETMAP_BUF(r, s.buf_idx));
    const uint8_t* lo = static_cast<const uint8_t*>(port_->mem->mem);
    uint32_t len = s.len < bsize_ ? s.len : bsize_;
    if (b < lo || b + bsize_ > lo + port_->mem->size) b = nullptr, len = 0;
    return RxSlot{b, len, s.flags};
  }
  bool debug_ = getenv("UNETMAP_VHOST_DEBUG") != nullptr;  // every message in the log
  // How long an idle backend keeps polling before it sleeps: at most
  // UNETMAP_VHOST_SPIN_US (default 200, as UNETMAP_SPIN_US at most 100000),
  // less while spins find nothing.
  SpinBudget spin_{spin_max_ns("UNETMAP_VHOST_SPIN_US", 200)};
  uint64_t broken_told_ = 0;  // queues whose stop was logged, by bit
  uint64_t next_report_ = 0;  // when the status is written again
  uint64_t reported_ = 0;     // counted() when it was
  uint64_t counted() const { return tx_frames_ + tx_dropped_ + rx_frames_ + rx_dropped_; }
};

int Backend::open(std::string* why) {
  std::string spec = o_.sw + ":" + o_.name + "/x@conf:rings=" + std::to_string(o_.pairs);
  if (o_.slots) spec += ",slots=" + std::to_string(o_.slots);
  port_ = nmport_open(spec.c_str());
  if (!port_) {
    *why = "cannot open " + o_.sw + ":" + o_.name + ": " + unetmap_last_error();
    return errno ? errno : EIO;
  }
  if (port_->reg.nr_tx_rings < o_.pairs || port_->reg.nr_rx_rings < o_.pairs) {
    *why = o_.sw + ":" + o_.name + " has fewer rings than queue pairs";
    return EINVAL;
  }
  // This backend puts frames on the switch without a virtio-net header.
  if (int err = vale_set_hdr_len(o_.sw + ":" + o_.name, 0, why)) return err;
  bsize_ = NETMAP_TXRING(port_->nifp, 0)->nr_buf_size;
  bounce_.assign(size_t(NETMAP_TXRING(port_->nifp, 0)->num_slots) * kHead, 0);
  if (!o_.client) {
    listen_ = listen_at(o_.path, why);
    if (listen_ < 0) return -listen_;
    struct stat st;
    if (lstat(o_.path.c_str(), &st) == 0) sock_ino_ = st.st_ino, sock_dev_ = st.st_dev;
  }
  return 0;
}

// Guest memory is where this port's NS_INDIRECT slots point: tell the
// library it may read them there directly.
void Backend::set_direct_ranges() {
  std::vector<unetmap_mem_range> r;
  if (!dev_.memory().empty()) r.push_back({bounce_.data(), bounce_.size()});
  const GuestMemory& m = dev_.memory();
  for (uint32_t i = 0; i < m.regions(); i++) r.push_back({m.range(i).host, m.range(i).size});
  if (unetmap_indirect_ranges(port_->fd, r.data(), unsigned(r.size())) != 0)
    log_line(std::string("indirect ranges: ") + unetmap_last_error());
}

// The worker's status (vale-ctl -W): the connection, the device and what
// the backend moved and dropped. Written on every change of state, and
// every second while the guest is connected.
void Backend::report() {
  std::string s = conn_ < 0 ? (o_.client ? "connecting to " : "listening on ") + o_.path
                            : "connected: " + dev_.describe();
  s += "; from guest " + std::to_string(tx_frames_) + " frames, " + std::to_string(tx_dropped_) +
       " dropped; to guest " + std::to_string(rx_frames_) + ", " + std::to_string(rx_dropped_) + " dropped";
  worker::self::report(s);
  next_report_ = mono_ns() + 1000000000ull;
  reported_ = counted();
}

void Backend::disconnect(const std::string& why) {
  if (conn_ < 0) return;
  close(conn_);
  conn_ = -1;
  for (RxStash& s : stash_) s.first = s.n = 0, s.room = 0;
  dev_.reset();
  set_direct_ranges();  // none
  log_line("front end gone (" + why + ")");
  next_connect_ = mono_ns();
  report();
}

void Backend::try_connect() {
  if (!o_.client || conn_ >= 0 || mono_ns() < next_connect_) return;
  const int s = connect_to(o_.path);
  if (s < 0) {
    next_connect_ = mono_ns() + backoff_;
    if (backoff_ < 1000000000ull) backoff_ *= 2;
    return;
  }
  backoff_ = 100000000ull;
  conn_ = s;
  log_line("connected to " + o_.path);
  drop_stale();
  report();
}

void Backend::accept_one() {
  const int s = accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
  if (s < 0) return;
  if (conn_ >= 0) {  // one front end at a time
    log_line("a second front end was refused: one is connected");
    close(s);
    return;
  }
  conn_ = s;
  log_line("front end connected");
  drop_stale();
  report();
}

void Backend::on_message() {
  std::string why, reply;
  int err = read_message(conn_, msg_.get(), &why);
  if (err) {
    disconnect(err == ECONNRESET ? "closed" : why);
    return;
  }
  // Receive buffers held for a frame still to come go back to the guest
  // (used, empty) before any request can stop a queue or unmap the memory
  // they are in.
  release_stash();
  const uint64_t gen = dev_.generation();
  if (debug_) log_line(describe_message(msg_->h, msg_->payload, msg_->fds.size()));
  err = dev_.handle(msg_->h, msg_->payload, msg_->fds, &reply, &why);
  if (err) {
    disconnect(why);
    return;
  }
  if (!why.empty()) log_line(why);
  if (!reply.empty() && send_reply(conn_, reply) != 0) {
    disconnect("the reply could not be sent");
    return;
  }
  update_port_hdr();
  if (dev_.generation() != gen) {
    set_direct_ranges();
    report();
  }
}

// Once the guest's features are known: the port's header length follows
// them (the switch's senders see it at their next batch). Frames that
// came in the old form are dropped.
void Backend::update_port_hdr() {
  if (!dev_.features_set() || dev_.features() == port_hdr_for_) return;
  port_hdr_for_ = dev_.features();
  const uint32_t want = dev_.guest_offloads() ? dev_.hdr_len() : 0;
  if (want == port_hdr_) return;
  std::string why;
  if (vale_set_hdr_len(o_.sw + ":" + o_.name, want, &why) != 0) {
    log_line("header length " + std::to_string(want) + ": " + why);
    return;
  }
  port_hdr_ = want;
  log_line("the port's virtio-net header is " + std::to_string(want) + " bytes now");
  drop_stale();
}

// Guest queue 2i+1 (it transmits) -> the port's tx ring i.
uint32_t Backend::tx(uint32_t i) {
  const uint32_t qi = 2 * i + 1;
  if (!dev_.live(qi)) return 0;
  Queue& q = dev_.queue(qi);
  netmap_ring* r = NETMAP_TXRING(port_->nifp, i);
  const uint32_t n = r->num_slots, hdr = dev_.hdr_len();
  // The most slots one chain can take: every segment, a bounce slot and a 64 KiB frame
  // cut into buffers.
  uint32_t worst = Chain::kMaxSegs + 1 + (65535 + bsize_ - 1) / bsize_;
  if (worst > n - 1) worst = n > 1 ? n - 1 : 1;
  uint32_t total = 0;
  // A few batches at most: receive, messages and signals get their turn.
  for (int round = 0; round < 4; round++) {
    uint32_t cur = r->cur, space = nm_ring_space(r), nd = 0;
    bool more = true;
    while (more && space >= worst && nd < done_.size()) {
      // Chains are popped a few at a time, as many as surely fit, and
      // their first bytes fetched ahead of use: the guest wrote them on
      // another core, and the misses overlap instead of coming one per
      // frame. A short chain's are fetched a little ahead (a whole batch
      // of them at once left the lookup waiting on its frame's first line).
      uint32_t nb = 0, fit = space / worst;
      if (fit > kTxBatch) fit = kTxBatch;
      if (fit > done_.size() - nd) fit = uint32_t(done_.size() - nd);
      for (; nb < fit; nb++) {
        if (!q.vq.pop(&batch_[nb], false)) break;
        if (nb < kTxAhead || batch_[nb].len > kTxShort) prefetch_head(batch_[nb], hdr);
      }
      more = nb == fit;
      for (uint32_t b = 0; b < nb; b++) {
        if (b + kTxAhead < nb && batch_[b + kTxAhead].len <= kTxShort) prefetch_head(batch_[b + kTxAhead], hdr);
        if (tx_one(r, batch_[b], &cur, &space, &nd)) continue;
        // What the chain became (a TSO frame cut at a small MSS: up to
        // 256 frames) needs more room than is left: the ring goes to the
        // switch first, then the chain gets an empty ring, or is dropped.
        total += tx_publish(q, r, cur, &nd);
        cur = r->cur, space = nm_ring_space(r);
        if (tx_one(r, batch_[b], &cur, &space, &nd)) continue;
        done_[nd++] = Done{batch_[b].id, batch_[b].ndesc};
        tx_dropped_++;
      }
    }
    total += tx_publish(q, r, cur, &nd);
    if (!more) break;  // the guest has no more
  }
  return total;
}

// The tx ring's slots up to cur to the switch (which copies the frames out
// of guest memory), then the chains done_[0, *nd) back to the guest. The
// chains given back.
uint32_t Backend::tx_publish(Queue& q, netmap_ring* r, uint32_t cur, uint32_t* nd) {
  if (*nd == 0) return 0;
  r->head = r->cur = cur;
  ioctl(port_->fd, NIOCTXSYNC, nullptr);
  for (uint32_t k = 0; k < *nd; k++) {
    scratch_.id = done_[k].id;
    scratch_.ndesc = done_[k].ndesc;
    q.vq.push(scratch_, 0);
  }
  if (q.vq.flush()) call(q);
  const uint32_t given = *nd;
  *nd = 0;
  return given;
}

// One chain popped from guest queue 2i+1 into the tx ring's slots from
// *cur (*space left), its id into done_[*nd]. False if what it needs does
// not fit in *space: nothing written, nothing recorded.
bool Backend::tx_one(netmap_ring* r, const Chain& c, uint32_t* cur, uint32_t* space, uint32_t* nd) {
  const uint32_t hdr = dev_.hdr_len();
  // The header goes with the frame when the port has one; else the
  // frame goes without it, and what the header asks is done here.
  const uint32_t skip0 = port_hdr_ ? 0 : hdr;
  if (c.too_long || c.len <= hdr || c.len - hdr > 65535) {
    done_[(*nd)++] = Done{c.id, c.ndesc};
    tx_dropped_++;  // malformed or too long
    return true;
  }
  if (!port_hdr_) {
    uint8_t h[kVnetHdrCommon] = {};
    gather(c, 0, h, hdr < kVnetHdrCommon ? hdr : kVnetHdrCommon);
    if (vnet_wants_work(h)) {
      const int made = tx_finished(r, c, cur, space);
      if (made == kNoRoom) return false;
      done_[(*nd)++] = Done{c.id, c.ndesc};
      if (made < 0) tx_dropped_++;
      else tx_frames_ += uint32_t(made);
      return true;
    }
  }
  if (tx_slots(c, skip0) > *space) return false;
  done_[(*nd)++] = Done{c.id, c.ndesc};
  // The frame, one slot per buffer-sized piece. A switch looks a
  // frame up in its first slot: when the guest put fewer than kHead
  // bytes in its first buffer, the first bytes are gathered into this
  // slot's bounce buffer.
  uint32_t skip = skip0;
  const uint32_t flen = uint32_t(c.len) - skip0;
  if (first_data(c, skip0) < kHead && first_data(c, skip0) < flen) {
    const uint32_t take = flen < kHead ? flen : kHead;
    uint8_t* b = &bounce_[size_t(*cur) * kHead];
    gather(c, skip0, b, take);
    netmap_slot& sl = r->slot[*cur];
    sl.ptr = reinterpret_cast<uintptr_t>(b);
    sl.len = uint16_t(take);
    sl.flags = NS_INDIRECT | NS_MOREFRAG;
    *cur = nm_ring_next(r, *cur);
    (*space)--;
    skip += take;
  }
  for (uint32_t s = 0; s < c.nsegs; s++) {
    uint8_t* p = c.seg[s].p;
    uint32_t len = c.seg[s].len;
    const uint32_t k = skip < len ? skip : len;
    p += k;
    len -= k;
    skip -= k;
    while (len) {
      const uint32_t piece = len < bsize_ ? len : bsize_;
      netmap_slot& sl = r->slot[*cur];
      sl.ptr = reinterpret_cast<uintptr_t>(p);
      sl.len = uint16_t(piece);
      sl.flags = NS_INDIRECT | NS_MOREFRAG;
      p += piece;
      len -= piece;
      *cur = nm_ring_next(r, *cur);
      (*space)--;
    }
  }
  r->slot[ring_sub(*cur, 1, r->num_slots)].flags = NS_INDIRECT;  // the frame's last slot
  tx_frames_++;
  return true;
}

// A guest frame whose header asks for a checksum or segmentation, for a
// port without a header: gathered, finished (engine's vnet_finish: TSO
// at the guest's gso_size, UFO as IP fragments) and copied into the tx
// ring's own buffers from *cur (at most *space slots). The frames made,
// -1 if the header is bad, kNoRoom if they do not fit (nothing written).
int Backend::tx_finished(netmap_ring* r, const Chain& c, uint32_t* cur, uint32_t* space) {
  const uint32_t hdr = dev_.hdr_len();
  whole_.resize(c.len);
  gather(c, 0, whole_.data(), uint32_t(c.len));  // one snapshot of the guest's bytes
  const VnetHdr h = read_vnet_hdr(whole_.data());
  uint8_t* frame = whole_.data() + hdr;
  const uint32_t flen = uint32_t(c.len) - hdr;
  const uint32_t n = vnet_frames(h, frame, flen, 65535);
  if (n == 0) return -1;
  made_.clear();
  made_len_.clear();
  CopyRule rule;  // flat frames into this ring's own buffers, chained where longer
  rule.dst_buf = bsize_;
  uint32_t slots = 0;
  vnet_finish(h, frame, flen, 65535, [&](uint8_t* p, uint32_t l) {
    made_.insert(made_.end(), p, p + l);
    made_len_.push_back(l);
    slots += frame_slots(FlatFrag{p, l}, 1, l, rule);
  });
  if (slots > *space) return kNoRoom;
  const auto bufs = [r](uint32_t b) { return reinterpret_cast<uint8_t*>(NETMAP_BUF(r, b)); };
  const uint8_t* p = made_.data();
  for (uint32_t l : made_len_) {
    *cur = copy_frame(FlatFrag{p, l}, 1, rule, r->slot, r->num_slots, *cur, bufs);
    p += l;
  }
  *space -= slots;
  return int(n);
}

// The port's rx ring i -> guest queue 2i (it receives). *stalled: frames
// wait for buffers the guest has not given.
uint32_t Backend::rx(uint32_t i, bool* stalled) {
  const uint32_t qi = 2 * i;
  if (!dev_.live(qi)) return 0;
  Queue& q = dev_.queue(qi);
  RxStash& st = stash_[i];
  netmap_ring* r = NETMAP_RXRING(port_->nifp, i);
  const uint32_t n = r->num_slots, hdr = dev_.hdr_len(), tail = r->tail;
  const bool mrg = dev_.has(kNetMrgRxbuf);
  uint32_t cur = r->cur, frames = 0;
  while (cur != tail) {
    // The frame: slots up to one without NS_MOREFRAG.
    uint32_t end = cur, flen = 0, ns = 0;
    bool whole = false;
    while (end != tail && ns < kMaxFrameSlots) {
      const RxSlot s = rx_slot(r, end);
      rxs_[ns++] = s;
      flen += s.len;
      end = nm_ring_next(r, end);
      if (!(s.flags & NS_MOREFRAG)) {
        whole = true;
        break;
      }
    }
    if (!whole && ns == kMaxFrameSlots) {  // no frame is that long: dropped
      rx_dropped_++;
      cur = end;
      continue;
    }
    if (!whole) break;
    // Chains for the frames waiting (as many as there are if they are the
    // size of this one), up to kRxAhead popped ahead of use and fetched for
    // writing, so their misses overlap. Chains held ahead go back used and
    // empty before a message is handled.
    const uint32_t waiting = ring_dist(cur, tail, n) / ns;
    const uint32_t ahead = waiting < kRxAhead ? waiting : kRxAhead;
    while (st.n < ahead) {
      Chain& c = st.at(st.n);
      if (!q.vq.pop(&c, true)) break;
      prefetch_rx(c, hdr);
      st.n++;
      st.room += c.len;
    }
    // With a port header, the frame brings the guest's header (num_buffers
    // aside); it must not ask for what the guest did not negotiate.
    uint8_t fh[kVnetHdrCommon] = {};
    const uint32_t ph = port_hdr_;
    if (ph && (flen < ph || !rx_header(ns, fh))) {
      rx_dropped_++;
      cur = end;
      continue;
    }
    const uint64_t need = uint64_t(hdr) + flen - ph;
    // Buffers for it: one chain, or as many as it takes (mergeable).
    while ((mrg ? st.room < need : st.n == 0) && st.n < RxStash::kMax) {
      Chain& c = st.at(st.n);
      if (!q.vq.pop(&c, true)) break;
      st.n++;
      st.room += c.len;
    }
    uint32_t take;  // chains for this frame
    if (!mrg) {
      if (st.n == 0) break;
      take = 1;
      if (st.at(0).len < need) {  // the guest's buffer is too short: the frame is dropped,
        rx_dropped_++;            // the buffer given back unused
        q.vq.push(st.at(0), 0);
        st.room -= st.at(0).len;
        st.first = (st.first + 1) % RxStash::kMax;
        st.n--;
        cur = end;
        continue;
      }
    } else {
      if (st.room < need) {
        if (st.n == RxStash::kMax) {  // it can never fit: dropped
          rx_dropped_++;
          cur = end;
          continue;
        }
        break;
      }
      uint64_t room = 0;
      for (take = 0; room < need; take++) room += st.at(take).len;
    }
    // Header, then the frame's bytes.
    NetHdr h{};
    memcpy(&h, fh, kVnetHdrCommon);
    h.num_buffers = uint16_t(take);
    SegWriter w{st, 0, 0, 0, 0, &lens_};
    w.put(reinterpret_cast<const uint8_t*>(&h), hdr);
    uint32_t skip = ph;
    for (uint32_t k = 0; k < ns; k++) {
      const uint32_t t = skip < rxs_[k].len ? skip : rxs_[k].len;
      skip -= t;
      w.put(rxs_[k].buf + t, rxs_[k].len - t);
    }
    lens_[w.chain] = w.written;
    for (uint32_t k = 0; k < take; k++) {
      Chain& c = st.at(k);
      q.vq.push(c, lens_[k]);
      st.room -= c.len;
    }
    st.first = (st.first + take) % RxStash::kMax;
    st.n -= take;
    cur = end;
    frames++;
  }
  r->head = r->cur = cur;
  if (frames && q.vq.flush()) call(q);
  rx_frames_ += frames;
  *stalled = cur != r->tail;
  return frames;
}

// The header before the frame in rxs_[0, ns): its first 10 bytes into h.
// False if it asks for what the guest cannot take (a GSO type or ECN it
// did not negotiate): such a frame is dropped, as a device without the
// offload would have to.
bool Backend::rx_header(uint32_t ns, uint8_t* h) {
  const auto frags = [this](uint32_t k) { return Frag{rxs_[k].buf, rxs_[k].len}; };
  if (gather_head(frags, ns, h, kVnetHdrCommon) < kVnetHdrCommon) return false;
  const uint8_t type = h[1] & uint8_t(~kGsoEcn);
  if ((h[1] & kGsoEcn) && !dev_.has(kNetGuestEcn)) return false;
  switch (type) {
    case kGsoNone: return true;
    case kGsoTcp4: return dev_.has(kNetGuestTso4);
    case kGsoTcp6: return dev_.has(kNetGuestTso6);
    case kGsoUdp: return dev_.has(kNetGuestUfo);
    default: return false;
  }
}

void Backend::release_stash() {
  for (uint32_t i = 0; i < stash_.size(); i++) {
    RxStash& st = stash_[i];
    if (st.n == 0) continue;
    Queue& q = dev_.queue(2 * i);
    for (uint32_t k = 0; k < st.n; k++) q.vq.push(st.at(k), 0);
    if (q.vq.flush()) call(q);
    st.first = st.n = 0;
    st.room = 0;
  }
}

// Frames for a receive queue that is not live are dropped, as a link that
// is down drops them: a guest never gets stale frames when it comes.
void Backend::drop_rx(uint32_t i) {
  netmap_ring* r = NETMAP_RXRING(port_->nifp, i);
  for (uint32_t j = r->cur; j != r->tail; j = nm_ring_next(r, j))
    if (!(r->slot[j].flags & NS_MOREFRAG)) rx_dropped_++;
  r->head = r->cur = r->tail;
}

// What came while no front end was there.
void Backend::drop_stale() {
  ioctl(port_->fd, NIOCRXSYNC, nullptr);
  for (uint32_t i = 0; i < o_.pairs; i++) drop_rx(i);
  ioctl(port_->fd, NIOCRXSYNC, nullptr);
}

// Nothing to do: let the guest kick, then sleep until the front end
// speaks, the guest kicks, or the switch brings frames.
void Backend::sleep_until_work(bool rx_stalled) {
  // The figures as they are when it goes idle: now, or (at most one report
  // a second: each is a file written and renamed) when the second is over.
  int report_in = -1;
  if (counted() != reported_) {
    const uint64_t now = mono_ns();
    if (now >= next_report_) report();
    else report_in = int((next_report_ - now) / 1000000) + 1;
  }
  std::vector<pollfd> fds;
  // The connection (none: fd -1), then the listening socket (none in
  // client mode), then kick eventfds, then the netmap fd.
  fds.push_back({conn_, POLLIN, 0});
  fds.push_back({listen_, POLLIN, 0});
  const bool have_conn = conn_ >= 0;
  bool work = false;
  for (uint32_t qi = 0; have_conn && qi < 2 * dev_.queue_pairs(); qi++) {
    if (!dev_.live(qi)) continue;
    Queue& q = dev_.queue(qi);
    const bool rxq = qi % 2 == 0;
    if (rxq && !rx_stalled) continue;  // the netmap fd wakes us for receive
    q.vq.kicks(true);
    if (q.vq.pending()) work = true;
    if (q.kick >= 0) fds.push_back({q.kick, POLLIN, 0});
  }
  const size_t nm_at = fds.size();
  if (have_conn && !rx_stalled) fds.push_back({port_->fd, POLLIN, 0});
  int timeout = o_.client && conn_ < 0 ? 100 : report_in;
  if (report_in >= 0 && timeout > report_in) timeout = report_in;
  for (uint32_t qi = 0; have_conn && qi < 2 * dev_.queue_pairs(); qi++)
    if (dev_.live(qi) && dev_.queue(qi).kick < 0) timeout = 1;  // a queue without kicks: looked at
  if (debug_ && have_conn)
    for (uint32_t qi = 0; qi < 2 * dev_.queue_pairs(); qi++)
      log_line("sleeping: queue " + std::to_string(qi) + " " + dev_.queue(qi).vq.state());
  if (!work) poll(fds.data(), fds.size(), timeout);
  for (uint32_t qi = 0; have_conn && qi < 2 * dev_.queue_pairs(); qi++)
    if (dev_.live(qi)) dev_.queue(qi).vq.kicks(false);
  for (size_t k = 2; k < nm_at; k++) {
    if (!(fds[k].revents & POLLIN)) continue;
    uint64_t v;
    ssize_t r = read(fds[k].fd, &v, sizeof v);  // an eventfd: clears it
    (void)r;
    if (debug_) log_line("kick on fd " + std::to_string(fds[k].fd));
  }
  if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) on_message();
  if (fds[1].revents & POLLIN) accept_one();
}

// A queue the guest broke is logged once (it stays stopped until the
// front end sets it up again).
void Backend::tell_broken() {
  for (uint32_t qi = 0; qi < 2 * dev_.queue_pairs(); qi++) {
    const Virtq& vq = dev_.queue(qi).vq;
    const uint64_t b = 1ull << qi;
    if (vq.broken() && !(broken_told_ & b)) {
      broken_told_ |= b;
      log_line("queue " + std::to_string(qi) + " stopped: " + vq.why_broken());
      report();
    } else if (!vq.broken()) {
      broken_told_ &= ~b;
    }
  }
}

// While busy: a message or a connection now and then.
void Backend::check_sockets() {
  pollfd p[2] = {{conn_, POLLIN, 0}, {listen_, POLLIN, 0}};
  if (poll(p, 2, 0) <= 0) return;
  if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) on_message();
  if (p[1].revents & POLLIN) accept_one();
}

void Backend::run() {
  report();
  uint32_t idle = 0, rounds = 0;
  uint64_t idle_since = 0;
  while (!g_stop) {
    try_connect();
    uint32_t work = 0;
    bool stalled = false;
    if (conn_ >= 0) {
      ioctl(port_->fd, NIOCRXSYNC, nullptr);
      for (uint32_t i = 0; i < dev_.queue_pairs(); i++) {
        bool s = false;
        work += tx(i);
        if (dev_.live(2 * i)) work += rx(i, &s);
        else drop_rx(i);  // a guest that cannot receive: the link is down
        stalled |= s;
      }
      // The clock is read once every 256 rounds (it costs as much as a
      // round of small batches). Messages are rare: looked for every 64
      // rounds, busy or spinning idle (a spin may last 100 ms).
      if ((++rounds & 255) == 0 && counted() != reported_ && mono_ns() > next_report_) report();
      if ((rounds & 63) == 0) check_sockets();
    }
    if (conn_ >= 0) tell_broken();
    if (work) {
      if (idle) spin_.spun(true);
      idle = 0;
      continue;
    }
    // Idle: keep polling a while (a guest that sends in bursts finds the
    // backend awake, with no kick or wake-up to pay), then sleep. A spin
    // that ends with nothing halves the next one: a guest or receiver on
    // this core cannot run while it lasts (as the library's poll does).
    if (conn_ >= 0) {
      if (idle++ == 0) idle_since = mono_ns();
      if ((idle & 7) || mono_ns() - idle_since < spin_.next()) continue;
      spin_.spun(false);
    }
    idle = 0;
    sleep_until_work(stalled);
  }
}

}  // namespace

int backend_main(int argc, char** argv) {
  if (argc != 7 || (strcmp(argv[4], "server") != 0 && strcmp(argv[4], "client") != 0)) {
    fprintf(stderr,
            "usage: unetmap-vhost SWITCH NAME PATH server|client QUEUES SLOTS (a worker of kind vhost, "
            "run by the worker service; fd 3 is its ready pipe)\n");
    return 2;
  }
  const int ready = fcntl(3, F_GETFD) >= 0 ? 3 : -1;
  auto say = [&](const std::string& m) {
    if (ready < 0) return;
    std::string line = m + "\n";
    ssize_t r = write(ready, line.data(), line.size());
    (void)r;
    close(ready);
  };
  setenv("UNETMAP_QUIET", "1", 1);
  setenv("UNETMAP_NO_TIMESTAMP", "1", 1);  // nobody reads this port's ring->ts
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa{};
  sa.sa_handler = on_term;
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaction(s, &sa, nullptr);
  Backend::Options o;
  o.sw = argv[1];
  o.name = argv[2];
  o.path = argv[3];
  o.client = strcmp(argv[4], "client") == 0;
  o.pairs = uint32_t(atoi(argv[5]));
  o.slots = uint32_t(atoi(argv[6]));
  if (o.pairs < 1 || o.pairs > kMaxQueuePairs) {
    say("22 queues: 1 to " + std::to_string(kMaxQueuePairs));
    return 2;
  }
  Backend b(o);
  std::string why;
  if (int err = b.open(&why)) {
    log_line(why);
    say(std::to_string(err) + " " + why);
    return 1;
  }
  log_line("serving " + o.sw + ":" + o.name + " on " + o.path + (o.client ? " (client)" : " (server)"));
  say("ok");
  b.run();
  return 0;
}

}  // namespace unetmap::vhost
