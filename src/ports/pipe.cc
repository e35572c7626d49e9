// netmap pipes: "X{N" (master end) and "X}N" (slave end).
//
// Opening either end creates both. Tx ring i of one end feeds rx ring i of
// the other; both rings have the same number of slots. A txsync swaps buffer
// indexes between the new tx slots and the free slots of the peer rx ring
// (zero copy, NS_BUF_CHANGED on both), then publishes the rx ring's hwtail.
// The rx side's syncs publish hwcur (slots released); the sender derives
// its tx tail from it. So each KringState field has a single writer:
//   rx.hwtail  - the sender's txsync     rx.hwcur - the receiver's rxsync
//   tx.hwcur/hwtail - the sender's txsync
// Packets wait in the rx ring while the other end is closed.
#include <cstring>

#include "core/adapter.h"

namespace unetmap {

namespace {

inline uint32_t ring_dist(uint32_t from, uint32_t to, uint32_t n) {
  return to >= from ? to - from : to + n - from;
}

class PipeAdapter final : public Adapter {
 public:
  PortKind kind() const override { return PortKind::kPipe; }
  const char* type_name() const override { return "pipe"; }

  bool owns(std::string_view name) const override {
    return name.find_first_of("{}") != std::string_view::npos;
  }

  int create(Registry& reg, int p, const PortRequest& req, std::string* why) const override {
    std::string peer_name = req.name;
    size_t brace = peer_name.find_first_of("{}");
    if (brace == 0 || brace + 1 >= peer_name.size()) {
      *why = "pipe name '" + req.name + "' needs a parent and an id, as in p{0";
      return EINVAL;
    }
    peer_name[brace] = peer_name[brace] == '{' ? '}' : '{';
    int q = reg.alloc_port(peer_name.c_str(), PortKind::kPipe);
    if (q < 0) {
      *why = "too many ports (" + std::to_string(kMaxPorts) + ")";
      return ENOMEM;
    }
    uint16_t nrings = req.nrings[kTx] ? req.nrings[kTx] : (req.nrings[kRx] ? req.nrings[kRx] : 1);
    uint32_t nslots = req.nslots[kTx] ? req.nslots[kTx] : (req.nslots[kRx] ? req.nslots[kRx] : 1024);
    if (nrings > kMaxRings) {
      *why = "pipes have at most " + std::to_string(kMaxRings) + " rings";
      reg.port(q).kind = PortKind::kNone;
      return EINVAL;
    }
    for (int e : {p, q}) {
      PortEntry& pe = reg.port(e);
      pe.kind = PortKind::kPipe;
      pe.mem_id = req.mem_id;
      pe.nrings[kTx] = pe.nrings[kRx] = nrings;
      pe.nslots[kTx] = pe.nslots[kRx] = nslots;
      pe.pipe_slave = strchr(pe.name, '}') != nullptr;
    }
    reg.port(p).peer = q;
    reg.port(q).peer = p;
    int err = 0;
    auto region = Region::get(req.mem_id, RegionConfig::from_env(), &err);
    if (!region) return err;
    for (int e : {p, q}) {
      if (int r = make_port_rings(reg, e, *region, why)) {
        destroy(reg, p);
        destroy(reg, q);
        reg.port(q).kind = PortKind::kNone;
        return r;
      }
    }
    return 0;
  }

  void txsync(Kring& k, uint32_t head) const override {
    Kring& rx = *k.peer;
    KringState* ts = k.ks;
    KringState* rs = rx.ks;
    const uint32_t n = k.nslots;
    uint32_t j = ts->hwcur.load(std::memory_order_relaxed);
    uint32_t t = rs->hwtail.load(std::memory_order_relaxed);  // we are its only writer
    const uint32_t rcur = rs->hwcur.load(std::memory_order_acquire);
    netmap_slot* tslot = k.ring->slot;
    netmap_slot* rslot = rx.ring->slot;
    uint32_t m = ring_dist(j, head, n);
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < m; i++) {
      netmap_slot& a = tslot[j];
      netmap_slot& b = rslot[t];
      uint32_t spare = b.buf_idx;
      b.buf_idx = a.buf_idx;
      b.len = a.len;
      b.ptr = a.ptr;
      b.flags = (a.flags & NS_MOREFRAG) | NS_BUF_CHANGED;
      bytes += a.len;
      a.buf_idx = spare;
      a.flags |= NS_BUF_CHANGED;
      j = j + 1 == n ? 0 : j + 1;
      t = t + 1 == n ? 0 : t + 1;
    }
    if (m) {
      rs->hwtail.store(t, std::memory_order_release);
      ts->packets += m;
      ts->bytes += bytes;
      notify(rs);
    }
    ts->hwcur.store(head, std::memory_order_relaxed);
    // Free room in the peer rx ring is [t, rcur - 1).
    uint32_t room = ring_dist(t, rcur == 0 ? n - 1 : rcur - 1, n);
    uint32_t tail = head + room;
    ts->hwtail.store(tail >= n ? tail - n : tail, std::memory_order_relaxed);
  }

  void rxsync(Kring& k, uint32_t head) const override {
    KringState* s = k.ks;
    uint32_t old = s->hwcur.load(std::memory_order_relaxed);
    if (head != old) {
      s->packets += ring_dist(old, head, k.nslots);
      s->hwcur.store(head, std::memory_order_release);
      notify(k.peer->ks);  // the sender may be waiting for room
    }
  }
};

}  // namespace

const Adapter& pipe_adapter() {
  static PipeAdapter a;
  return a;
}

}  // namespace unetmap
