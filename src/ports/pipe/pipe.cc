// netmap pipes: "X{N" (master end) and "X}N" (slave end).
//
// Opening either end creates both. Tx ring i of one end feeds rx ring i of
// the other, with the same number of slots, and, as in netmap, the two
// rings share their buffers: the rx ring has none of its own (a "fake
// ring"), and slot k of the rx ring always describes the buffer of slot k
// of the tx ring. So the transfer is zero copy and costs one slot copy:
//   txsync: rx.slot[k] = tx.slot[k] for the new slots, publish rx.hwtail;
//           tx may reuse slot k once the receiver released rx slot k, so
//           the tx tail is rx.hwcur - 1.
//   rxsync: for each released slot the application changed (NS_BUF_CHANGED:
//           it swapped in another buffer) copy it back, tx.slot[k] =
//           rx.slot[k], so the pair keeps describing one buffer; publish
//           rx.hwcur.
// A buffer a sender swaps into a tx slot (NS_BUF_CHANGED) reaches the
// receiver with NS_BUF_CHANGED set. Each KringState field has one writer:
//   rx.hwtail - the sender's txsync     rx.hwcur - the receiver's rxsync
//   tx.hwcur/hwtail - the sender's txsync
// Slot k of the tx ring is written by the receiver's rxsync only while k
// is in flight (past the tx tail), so never concurrently with the sender.
// Packets wait in the rx ring while the other end is closed.
//
// Both syncs read each slot once where they use it and check it there
// (the prologue's check is no guarantee: the application can rewrite a
// slot at any time). As they read every slot anyway, they also do the
// prologue's check in that pass (Adapter::checks_slots): one pass over the
// slots per sync, not two. With a monitor on the ring the prologue checks
// first (its swaps need checked slots); then a tx slot rewritten since
// reaches the receiver as an empty slot that keeps its previous buffer
// (counted in the tx ring's drops), and a released rx slot that no longer
// names a buffer of the pair's is not copied back to the sender.
#include <cstring>

#include "core/adapter.h"

namespace unetmap {

namespace {

// A pipe end's part of its port entry: the other end.
struct PipePortExt {
  int32_t peer;  // -1 until both ends are made
};
PipePortExt& pipe_port(PortEntry& pe) { return port_ext<PipePortExt>(pe); }

// Write a slot from a checked copy: buf_idx, len and flags in one store.
inline void put_slot(netmap_slot* d, const SlotCopy& s, uint64_t ptr) {
  uint64_t w;
  memcpy(&w, &s, sizeof w);
  memcpy(static_cast<void*>(d), &w, sizeof w);
  d->ptr = ptr;
}

class PipeAdapter final : public Adapter {
 public:
  bool owns(std::string_view name) const override {
    return name.find_first_of("{}") != std::string_view::npos;
  }
  const char* grammar() const override { return "pipes (NAME{ID, NAME}ID)"; }

  void init_entry(PortEntry& pe) const override { pipe_port(pe).peer = -1; }
  // The two ends are made and go together, and exchange buffers.
  int partner(const PortEntry& pe) const override { return port_ext<PipePortExt>(pe).peer; }
  // The sender's txsync fills the other end's rx ring.
  bool producer_fills_rx() const override { return true; }

  int create(Registry& reg, int p, const PortRequest& req, std::string* why) const override {
    std::string peer_name = req.name;
    size_t brace = peer_name.find_first_of("{}");
    if (brace == 0 || brace + 1 >= peer_name.size()) {
      *why = "pipe name '" + req.name + "' needs a parent and an id, as in p{0";
      return EINVAL;
    }
    peer_name[brace] = peer_name[brace] == '{' ? '}' : '{';
    int q = reg.alloc_port(peer_name.c_str(), kind());
    if (q < 0) {
      *why = "too many ports (" + std::to_string(kMaxPorts) + ")";
      return ENOMEM;
    }
    uint16_t nrings = req.nrings[kTx] ? req.nrings[kTx] : (req.nrings[kRx] ? req.nrings[kRx] : 1);
    uint32_t nslots = req.nslots[kTx] ? req.nslots[kTx] : (req.nslots[kRx] ? req.nslots[kRx] : 1024);
    if (nrings > kMaxRings) {
      *why = "pipes have at most " + std::to_string(kMaxRings) + " rings";
      reg.port(q).kind = kNoPort;
      return EINVAL;
    }
    for (int e : {p, q}) {
      PortEntry& pe = reg.port(e);
      pe.mem_id = req.mem_id ? req.mem_id : 1;  // the global region by default
      pe.nrings[kTx] = pe.nrings[kRx] = nrings;
      pe.nslots[kTx] = pe.nslots[kRx] = nslots;
    }
    pipe_port(reg.port(p)).peer = q;
    pipe_port(reg.port(q)).peer = p;
    int err = 0;
    auto region = Region::get(reg.port(p).mem_id, RegionConfig::from_env(), &err, why);
    if (!region) {
      reg.port(q).kind = kNoPort;  // the caller releases p
      return err;
    }
    for (int e : {p, q}) {
      if (int r = make_port_rings(reg, e, *region, why, false)) {
        destroy(reg, p);
        destroy(reg, q);
        reg.port(q).kind = kNoPort;
        return r;
      }
    }
    // Rx ring i of each end starts out describing the buffers of tx ring i
    // of the other end.
    for (int e : {p, q}) {
      const PortEntry& tx_end = reg.port(e);
      const PortEntry& rx_end = reg.port(e == p ? q : p);
      for (uint32_t i = 0; i < nrings; i++) {
        netmap_ring* t = region->ring(tx_end.ring[kTx][i]);
        netmap_ring* r = region->ring(rx_end.ring[kRx][i]);
        memcpy(static_cast<void*>(r->slot), t->slot, sizeof(netmap_slot) * nslots);
        region->set_fake(rx_end.ring[kRx][i], tx_end.ring[kTx][i]);
      }
    }
    return 0;
  }

  void txsync(Kring& k, uint32_t head) const override { move_out<false>(k, head); }
  void rxsync(Kring& k, uint32_t head) const override { release<false>(k, head); }
  bool checks_slots() const override { return true; }
  bool txsync_checked(Kring& k, uint32_t head) const override { return move_out<true>(k, head); }
  bool rxsync_checked(Kring& k, uint32_t head) const override { return release<true>(k, head); }

 private:
  // txsync: hand [hwcur, head) to the other end. kRefuse (the prologue
  // left the check to this pass): a bad slot refuses the sync before
  // anything is published (rx slots past the other end's hwtail are
  // nobody's yet). Else (checked by the prologue, but rewritable since): a
  // bad slot reaches the receiver as an empty slot that keeps its previous
  // buffer, counted in drops.
  template <bool kRefuse>
  static bool move_out(Kring& k, uint32_t head) {
    Kring& rx = *k.peer;
    KringState* ts = k.ks;
    KringState* rs = rx.ks;
    const uint32_t n = k.nslots;
    const uint32_t from = ts->hwcur.load(std::memory_order_relaxed);
    netmap_slot* tslot = k.ring->slot;
    netmap_slot* rslot = rx.ring->slot;
    if (from != head) {
      const SlotCheck ok(k, true);
      uint64_t bytes = 0;
      uint32_t m = 0, bad = 0;
      uint16_t flags = 0;
      for (uint32_t j = from; j != head; j = next_slot(j, n), m++) {
        const SlotCopy s = read_slot(tslot, j);  // one read, then only this copy
        if (__builtin_expect(ok(s), 1)) {
          put_slot(&rslot[j], s, tslot[j].ptr);
          bytes += s.len;
          flags |= s.flags;
        } else if (kRefuse) {
          return false;
        } else {
          rslot[j].len = 0;
          rslot[j].flags = 0;
          bad++;
        }
      }
      if (flags & NS_BUF_CHANGED)  // the receiver's copy says so; the sender's is done
        for (uint32_t j = from; j != head; j = next_slot(j, n))
          tslot[j].flags &= uint16_t(~NS_BUF_CHANGED);
      rs->hwtail.store(head, std::memory_order_release);
      ts->packets += m;
      ts->bytes += bytes;
      if (bad) ts->drops += bad;
      ts->hwcur.store(head, std::memory_order_relaxed);
      notify(rs);
    }
    const uint32_t rcur = rs->hwcur.load(std::memory_order_acquire);
    ts->hwtail.store(prev_slot(rcur, n), std::memory_order_relaxed);
    return true;
  }

  // rxsync: give [hwcur, head) back to the sender, copying back the slots
  // the application swapped a buffer into. kRefuse: check every slot
  // first, in the pass that looks for NS_BUF_CHANGED (the copy-back pass
  // runs only if one has it). A slot rewritten since its check (out of
  // range, or not a buffer of the pair's) is not handed on.
  template <bool kRefuse>
  static bool release(Kring& k, uint32_t head) {
    KringState* s = k.ks;
    const uint32_t from = s->hwcur.load(std::memory_order_relaxed);
    if (from == head) return true;
    const uint32_t n = k.nslots;
    const SlotCheck ok(k, false);
    netmap_slot* rslot = k.ring->slot;
    netmap_slot* tslot = k.peer->ring->slot;
    uint16_t flags = NS_BUF_CHANGED;
    if (kRefuse) {
      flags = 0;
      for (uint32_t j = from; j != head; j = next_slot(j, n)) {
        const SlotCopy c = read_slot(rslot, j);
        if (!ok(c)) return false;
        flags |= c.flags;
      }
    }
    if (flags & NS_BUF_CHANGED) {
      const uint32_t bsize = k.region->cfg().buf_size;
      for (uint32_t j = from; j != head; j = next_slot(j, n)) {
        if (!(rslot[j].flags & NS_BUF_CHANGED)) continue;
        SlotCopy c = read_slot(rslot, j);  // the slot, read once: what is handed on
        rslot[j].flags = uint16_t(c.flags & ~NS_BUF_CHANGED);
        if (!ok(c)) continue;
        if (c.len > bsize) c.len = uint16_t(bsize);
        put_slot(&tslot[j], c, rslot[j].ptr);  // the sender sees NS_BUF_CHANGED too
      }
    }
    s->packets += ring_dist(from, head, n);
    s->hwcur.store(head, std::memory_order_release);
    notify(k.peer->ks);  // the sender may be waiting for room
    return true;
  }
};

}  // namespace

const Adapter& pipe_adapter() {
  static PipeAdapter a;
  return a;
}

}  // namespace unetmap
