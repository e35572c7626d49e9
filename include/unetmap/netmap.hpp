// unetmap's C++ API: RAII ports and views of rings and slots, over the same
// libnetmap/ioctl path every netmap application uses.
//
//   auto port = unetmap::Port::open("netmap:p{0", &err);
//   unetmap::Ring tx = port.tx_ring(0);
//   while (tx.space()) { auto& s = tx.slot(tx.cur()); ...; tx.advance(); }
//   port.txsync();
#pragma once

#include <libnetmap.h>
#include <net/netmap_user.h>
#include <poll.h>
#include <sys/ioctl.h>

#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace unetmap {

// A view of one netmap ring (no ownership: the port owns the mapping).
class Ring {
 public:
  Ring() = default;
  explicit Ring(netmap_ring* r) : r_(r) {}
  netmap_ring* raw() const { return r_; }
  uint32_t num_slots() const { return r_->num_slots; }
  uint32_t head() const { return r_->head; }
  uint32_t cur() const { return r_->cur; }
  uint32_t tail() const { return r_->tail; }
  uint32_t buf_size() const { return r_->nr_buf_size; }
  // Slots between cur and tail: free slots on tx, packets on rx.
  uint32_t space() const { return nm_ring_space(r_); }
  bool empty() const { return r_->cur == r_->tail; }
  uint32_t next(uint32_t i) const { return i + 1 == r_->num_slots ? 0 : i + 1; }
  netmap_slot& slot(uint32_t i) const { return r_->slot[i]; }
  uint8_t* buf(uint32_t buf_idx) const {
    return reinterpret_cast<uint8_t*>(NETMAP_BUF(r_, buf_idx));
  }
  // The packet data of a slot (len bytes), or the whole buffer for writing.
  std::span<uint8_t> data(const netmap_slot& s) const { return {buf(s.buf_idx), s.len}; }
  std::span<uint8_t> room(const netmap_slot& s) const { return {buf(s.buf_idx), buf_size()}; }
  // Hand slots up to (not including) i to the kernel at the next sync.
  void release_to(uint32_t i) { r_->head = r_->cur = i; }
  void advance() { release_to(next(r_->cur)); }

 private:
  netmap_ring* r_ = nullptr;
};

namespace detail {
inline std::string& last_error() {
  static thread_local std::string e;
  return e;
}
inline nmctx* cxx_ctx() {
  static nmctx ctx = {
      0, [](nmctx*, const char* m) { last_error() = m; },
      [](nmctx*, size_t n) { return calloc(1, n); }, [](nmctx*, void* p) { free(p); },
      [](nmctx*, int) {}, nullptr};
  return &ctx;
}
}  // namespace detail

// An open port; closed (unregistered, unmapped) on destruction.
class Port {
 public:
  Port() = default;
  // Open a port by netmap name ("netmap:p{0", "null:x@conf:rings=2").
  // With ring >= 0, bind only that hardware ring pair (as NAME-ring).
  // On failure the Port is empty and *error says why.
  static Port open(std::string_view spec, std::string* error = nullptr, int ring = -1) {
    Port p;
    nmport_d* d = nmport_new();
    if (!d) {
      if (error) *error = "out of memory";
      return p;
    }
    d->ctx = detail::cxx_ctx();
    detail::last_error().clear();
    std::string s(spec);
    bool ok = nmport_parse(d, s.c_str()) == 0;
    if (ok && ring >= 0) {
      d->reg.nr_mode = NR_REG_ONE_NIC;
      d->reg.nr_ringid = uint16_t(ring);
    }
    if (!ok || nmport_open_desc(d) < 0) {
      if (error) *error = detail::last_error().empty() ? strerror(errno) : detail::last_error();
      nmport_undo_prepare(d);
      return p;
    }
    p.d_ = d;
    return p;
  }
  ~Port() { close(); }
  Port(Port&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
  Port& operator=(Port&& o) noexcept {
    if (this != &o) {
      close();
      d_ = std::exchange(o.d_, nullptr);
    }
    return *this;
  }
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;

  explicit operator bool() const { return d_ != nullptr; }
  void close() {
    if (d_) nmport_close(std::exchange(d_, nullptr));
  }

  nmport_d* desc() const { return d_; }
  int fd() const { return d_->fd; }
  const nmreq_register& reg() const { return d_->reg; }
  const char* name() const { return d_->hdr.nr_name; }
  unsigned first_tx_ring() const { return d_->first_tx_ring; }
  unsigned last_tx_ring() const { return d_->last_tx_ring; }
  unsigned first_rx_ring() const { return d_->first_rx_ring; }
  unsigned last_rx_ring() const { return d_->last_rx_ring; }
  Ring tx_ring(unsigned i) const { return Ring(NETMAP_TXRING(d_->nifp, i)); }
  Ring rx_ring(unsigned i) const { return Ring(NETMAP_RXRING(d_->nifp, i)); }

  // One sync for all bound rings of a direction: 0 or -1 with errno.
  int txsync() const { return ioctl(d_->fd, NIOCTXSYNC, nullptr); }
  int rxsync() const { return ioctl(d_->fd, NIOCRXSYNC, nullptr); }
  // poll() on this port alone: >0 ready, 0 timeout, -1 error.
  int poll(short events, int timeout_ms, short* revents = nullptr) const {
    pollfd p{d_->fd, events, 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (revents) *revents = p.revents;
    return r;
  }
  // Send one packet (copied) on the first tx ring with room: false if full.
  bool inject(std::span<const uint8_t> pkt) const {
    return nmport_inject(d_, pkt.data(), pkt.size()) > 0;
  }

 private:
  nmport_d* d_ = nullptr;
};

}  // namespace unetmap
