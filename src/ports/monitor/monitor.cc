// Monitors: "PORT/t" (what PORT transmits), "PORT/r" (what it receives),
// "PORT/rt" (both), like a mirroring port on a switch; "PORT/z" the
// zero-copy monitor.
//
// A monitor is a port of its own (MonitorPortExt::watched: the port
// watched, in the watched port's region) with one rx ring per ring index of the
// watched port, and one tx ring that transmits nothing (as netmap's). Each
// watched ring lists its monitors' rx rings in its KringState (mon[],
// changed under the registry lock). The shared sync code (core/sync.cc)
// calls monitor_copy() after a sync moved packets: a txsync copies what it
// sent, marked NS_TXMON. Received packets are copied when they arrive, as
// netmap's monitor hooks the port's notify, so a monitor sees what nobody
// reads: a pipe's sender copies to the receiving ring's monitors in its
// txsync, a VALE sender in its delivery, and port types whose packets
// arrive in the rxsync (NICs) copy there.
// Copies go through leases (core/lease.h), because a /rt monitor ring is
// filled by the watched port's sender and receiver, in different
// processes. A full monitor ring drops the copies (counted); the watched
// port is never slowed beyond the copy, nor blocked. A monitor that dies is
// unhooked when its registration is reaped.
//
// Zero-copy monitors (/z, netmap's NR_ZCOPY_MON, always tx and rx) see
// packets once the monitored port is done with them, as in netmap: tx slots
// when the txsync gives them back to the application (the pipe's receiver
// or the switch consumed them), rx slots when the application releases them
// (before the port's rxsync). Each such slot swaps its buffer with a free
// slot of the monitor's rx ring (same region: no copy) and gets
// NS_BUF_CHANGED, so the port goes on with the monitor's old buffer. When
// the monitor ring is full the oldest released slots are not swapped (they
// simply stay with the port; counted in the monitor's fwd_drops). The swap
// runs under the monitor ring's lease_lock (the tx and rx sides of the
// watched port are two producers), which is also where a dying monitor is
// marked dead: the port never waits for the monitor, and every buffer is
// always in exactly one ring, so a monitor that dies loses none (its ring's
// buffers go back to the pool with it); a monitor slot whose buffer index
// the application broke is never handed to the port. One zero-copy monitor
// per ring (netmap chains several; a second one here gets EBUSY). On a
// pipe, the two ends' facing rings (A's tx, B's rx) carry the same packets
// through the same buffers, so they count as one ring for this rule.
#include <errno.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "core/adapter.h"
#include "core/lease.h"
#include "core/tap.h"
#include "ports/monitor/monitor.h"

namespace unetmap {

namespace {

// A monitor's part of its port entry.
struct MonitorPortExt {
  int32_t watched;  // the port watched, -1 once unhooked
};
MonitorPortExt& monitor_port(PortEntry& pe) { return port_ext<MonitorPortExt>(pe); }

// In a mon[] entry's low word: the monitor is a zero-copy one.
constexpr uint32_t kZmon = 1u << 31;

bool hook(Region& r, uint32_t watched_ring, uint32_t mon_ring, bool zcopy) {
  KringState* ks = r.kring(watched_ring);
  uint64_t e = uint64_t(r.kring(mon_ring)->gen.load()) << 32 | (mon_ring + 1) | (zcopy ? kZmon : 0);
  for (auto& m : ks->mon)
    if (m.load() == 0) {
      m.store(e);
      ks->nmon.fetch_add(1);
      return true;
    }
  return false;
}

void unhook(Region& r, uint32_t watched_ring, uint32_t mon_ring) {
  KringState* ks = r.kring(watched_ring);
  for (auto& m : ks->mon) {
    uint64_t e = m.load();
    if (e && (uint32_t(e) & ~kZmon) == mon_ring + 1) {
      m.store(0);
      ks->nmon.fetch_sub(1);
    }
  }
}

bool has_zmon(Region& r, uint32_t ring) {
  for (const auto& m : r.kring(ring)->mon)
    if (uint32_t(m.load()) & kZmon) return true;
  return false;
}

// Is some ring a zero-copy monitor of port `watched` would take already
// zero-copy monitored? The facing rings of a partner (a pipe's other end:
// the same buffers) count too.
bool zmon_taken(Registry& reg, int watched, Region& r) {
  const PortEntry& w = reg.port(watched);
  const int q = port_partner(reg, watched);
  for (int d : {kTx, kRx})
    for (uint32_t i = 0; i < w.nrings[d]; i++) {
      if (has_zmon(r, w.ring[d][i])) return true;
      if (q >= 0 && i < reg.port(q).nrings[1 - d] && has_zmon(r, reg.port(q).ring[1 - d][i]))
        return true;
    }
  return false;
}

class MonitorAdapter final : public Adapter {
 public:
  bool owns(std::string_view) const override { return false; }  // made by create_on()
  uint64_t register_flags() const override { return NR_MONITOR_TX | NR_MONITOR_RX | NR_ZCOPY_MON; }
  const char* flags_name() const override { return "monitor"; }
  int create_on(Registry& reg, int watched, uint64_t flags, uint16_t mem_id, int* out,
                std::string* why) const override {
    return monitor_create(reg, watched, flags, mem_id, out, why);
  }
  void init_entry(PortEntry& pe) const override { monitor_port(pe).watched = -1; }

  int create(Registry&, int, const PortRequest& req, std::string* why) const override {
    *why = "a monitor is opened as PORT/t, PORT/r or PORT/rt, not as '" + req.name + "'";
    return EINVAL;
  }

  void destroy(Registry& reg, int p) const override {
    PortEntry& pe = reg.port(p);
    int err = 0;
    auto region = Region::get(pe.mem_id, RegionConfig::from_env(), &err);
    const int watched = monitor_port(pe).watched;
    if (region && uint32_t(watched) < kMaxPorts && reg.port(watched).kind != kNoPort) {
      const PortEntry& w = reg.port(watched);
      for (int d : {kTx, kRx})
        for (uint32_t i = 0; i < w.nrings[d]; i++)
          for (uint32_t j = 0; j < pe.nrings[kRx]; j++)
            if (region->ring_port(pe.ring[kRx][j]) == p) unhook(*region, w.ring[d][i], pe.ring[kRx][j]);
    }
    if (region)
      for (uint32_t j = 0; j < pe.nrings[kRx]; j++) {
        if (region->ring_port(pe.ring[kRx][j]) != p) continue;  // not made
        KringState* ks = region->kring(pe.ring[kRx][j]);
        LeaseGuard g(ks);
        if (g.ok()) ks->dead = 1;  // producers back off; a copy in flight only touches our own ring
      }
    monitor_port(pe).watched = -1;
    Adapter::destroy(reg, p);
  }

  void txsync(Kring& k, uint32_t head) const override {
    // The dummy tx ring transmits nothing: what is put there is dropped.
    k.ks->hwcur.store(head, std::memory_order_relaxed);
    k.ks->hwtail.store(prev_slot(head, k.nslots), std::memory_order_relaxed);
  }

  void rxsync(Kring& k, uint32_t head) const override { lease_ring_release(k.ks, k.ring, head); }
};

}  // namespace

const Adapter& monitor_adapter() {
  static MonitorAdapter a;
  return a;
}

int monitor_create(Registry& reg, int watched, uint64_t flags, uint16_t mem_id, int* out,
                   std::string* why) {
  const PortEntry& w = reg.port(watched);
  const bool zcopy = flags & NR_ZCOPY_MON;
  if (w.kind == monitor_adapter().kind()) {
    *why = "a monitor cannot be monitored";
    return EINVAL;
  }
  if (mem_id && mem_id != w.mem_id) {
    // A monitor lives in the watched port's region; a zero-copy one must.
    *why = std::string("a monitor shares the region of the port it watches ('") + w.name +
           "' is in region " + std::to_string(w.mem_id) + ", not " + std::to_string(mem_id) + ")";
    return EINVAL;
  }
  if (zcopy) flags |= NR_MONITOR_TX | NR_MONITOR_RX;  // as netmap: /z watches both
  int err = 0;
  auto region = Region::get(w.mem_id, RegionConfig::from_env(), &err, why);
  if (!region) return err;
  if (zcopy && zmon_taken(reg, watched, *region)) {
    *why = std::string("'") + w.name + "' already has a zero-copy monitor (one per ring)";
    return EBUSY;
  }
  int m = reg.alloc_port("", monitor_adapter().kind());
  if (m < 0) {
    *why = "too many ports";
    return ENOMEM;
  }
  PortEntry& pe = reg.port(m);
  snprintf(pe.name, sizeof pe.name, "%.40s/%s%s%s#%d", w.name, zcopy ? "z" : "",
           flags & NR_MONITOR_RX ? "r" : "", flags & NR_MONITOR_TX ? "t" : "", m);
  pe.mem_id = w.mem_id;
  monitor_port(pe).watched = watched;
  pe.nrings[kRx] = std::max(w.nrings[kTx], w.nrings[kRx]);
  pe.nslots[kRx] = std::max(w.nslots[kTx], w.nslots[kRx]);
  // As netmap: one tx ring, which transmits nothing (without it libnetmap
  // finds no tx ring and programs walk 65536 of them).
  pe.nrings[kTx] = 1;
  pe.nslots[kTx] = kMonitorTxSlots;
  if ((err = make_port_rings(reg, m, *region, why)) != 0) {
    reg.unmake_port(m);
    return err;
  }
  for (int d : {kTx, kRx}) {
    if (!(flags & (d == kTx ? NR_MONITOR_TX : NR_MONITOR_RX))) continue;
    for (uint32_t i = 0; i < w.nrings[d] && i <= kMaxRings; i++)
      if (region->ring_port(w.ring[d][i]) != watched) {
        *why = std::string("'") + w.name + "': ring " + std::to_string(i) + " is not its own";
        reg.unmake_port(m);
        return EIO;
      } else if (!hook(*region, w.ring[d][i], pe.ring[kRx][i], zcopy)) {
        *why = std::string("'") + w.name + "' has " + std::to_string(kMaxMonitors) +
               " monitors already (the most a ring has)";
        reg.unmake_port(m);  // unhooks what was hooked
        return EBUSY;
      }
  }
  *out = m;
  return 0;
}

void monitor_copy(const Kring& k, uint32_t from, uint32_t to, bool tx) {
  // The prologue's copy where the view keeps one (a VALE tx ring).
  const SlotCopy* copy = tx && !k.copy.empty() ? k.copy.data() : nullptr;
  monitor_copy_slots(*k.region, k.ks, k.ring->slot, copy, k.nslots, from, to, tx);
}

// Slot j as a monitor may use it: from `copy` where the producer keeps
// one, else read once here and checked (buf_idx 0: unusable).
inline SlotCopy slot_at(const SlotCopy* copy, const netmap_slot* src, uint32_t j, uint32_t nbufs,
                        uint32_t bsize) {
  if (copy) return copy[j];
  SlotCopy s = read_slot(src, j);
  if (s.buf_idx - 2u >= nbufs - 2u || s.len > bsize) s.buf_idx = 0;
  return s;
}

// The slots of the packet at j among the `avail` from j on, from the
// producer's copy or the ring (its flags only: a broken chain is harmless);
// 0 if it does not end there.
inline uint32_t packet_slots(const SlotCopy* copy, const netmap_slot* src, uint32_t j, uint32_t avail,
                             uint32_t n) {
  return copy ? frame_at(copy, j, avail, n).nslots : frame_at(src, j, avail, n).nslots;
}

// Bytes of an empty fragment (a slot that names no buffer).
const uint8_t kNoBytes[1] = {0};

// Copy the packets of slots [from, to) of `src` (a ring of n slots, or the
// producer's checked copy of it) to every copy monitor of the ring
// `watched`. Each pass takes what it reads from slot_at(): the application
// may change a slot between the passes (its monitor then sees a broken
// chain), never a length or an index the copy would trust; and a monitor
// slot is written only into a buffer the monitor's ring owns.
void monitor_copy_slots(Region& r, const KringState* watched, const netmap_slot* src,
                        const SlotCopy* copy, uint32_t n, uint32_t from, uint32_t to, bool tx) {
  if (from == to) return;
  const uint32_t nbufs = r.cfg().buf_num, bsize = r.cfg().buf_size;
  const uint32_t total = ring_dist(from, to, n);
  CopyRule rule;  // within one region: same buffers, no header change
  rule.src_buf = rule.dst_buf = bsize;
  rule.max_frame = ~0u;
  rule.flags = tx ? NS_TXMON : 0;
  for (const auto& me : watched->mon) {
    uint64_t e = me.load(std::memory_order_acquire);
    if (!e || (uint32_t(e) & kZmon)) continue;
    const uint32_t mi = uint32_t(e) - 1, gen = uint32_t(e >> 32);
    if (mi >= r.cfg().ring_num) continue;
    KringState* ms = r.kring(mi);
    netmap_ring* mr = r.ring(mi);
    const uint32_t mn = ms->nslots;
    uint32_t take = 0, start = 0, slot = 0;
    {
      LeaseGuard g(ms, mr);
      if (!g.ok() || !lease_usable(ms, gen)) continue;
      const uint32_t room = lease_room(ms);
      // Whole packets only.
      for (uint32_t j = from, left = total; left;) {
        const uint32_t ns = packet_slots(copy, src, j, left, n);
        if (ns == 0 || take + ns > room) break;
        take += ns;
        left -= ns;
        j = ring_add(j, ns, n);
      }
      ms->fwd_drops += total - take;  // slots, close enough to packets for small frames
      if (take == 0) continue;
      lease_open(ms, take, &start, &slot);
    }
    // The packet engine's copy, frame by frame: each fragment fits a buffer
    // of the region (slot_at), so each takes one monitor slot, and the
    // frames fill exactly the slots leased.
    const uint32_t mine = Region::ring_tag(mi);
    const auto bufs = [&](uint32_t b) -> uint8_t* {
      return r.buf_tag(b) == mine ? reinterpret_cast<uint8_t*>(r.buf(b)) : nullptr;
    };
    for (uint32_t j = from, at = start, left = take; left;) {
      // A chain the application broke since the count: the rest of the lease.
      uint32_t ns = packet_slots(copy, src, j, left, n);
      if (ns == 0) ns = left;
      const auto frag = [&](uint32_t i) {
        const SlotCopy s = slot_at(copy, src, ring_add(j, i, n), nbufs, bsize);
        return s.buf_idx ? Frag{reinterpret_cast<const uint8_t*>(r.buf(s.buf_idx)), s.len} : Frag{kNoBytes, 0};
      };
      at = copy_frame(frag, ns, rule, mr->slot, mn, at, bufs);
      j = ring_add(j, ns, n);
      left -= ns;
    }
    lease_close(ms, mr, slot, gen);
    notify(ms);
  }
}

// Slots [from, to) of k were released: swap them into k's zero-copy monitor.
void monitor_zswap(const Kring& k, uint32_t from, uint32_t to, bool tx) {
  if (from == to) return;
  Region& r = *k.region;
  const uint32_t n = k.nslots;
  const bool pipe_tx = tx && k.peer;  // a partner's rx ring faces this one
  for (const auto& me : k.ks->mon) {
    uint64_t e = me.load(std::memory_order_acquire);
    if (!(uint32_t(e) & kZmon)) continue;
    const uint32_t mi = (uint32_t(e) & ~kZmon) - 1, gen = uint32_t(e >> 32);
    if (mi >= r.cfg().ring_num) continue;
    KringState* ms = r.kring(mi);
    netmap_ring* mr = r.ring(mi);
    const uint32_t mn = ms->nslots;
    {
      LeaseGuard g(ms, mr);
      if (!g.ok() || ms->gen.load(std::memory_order_relaxed) != gen || ms->dead || ms->hole.active) return;
      uint32_t at = ms->hwtail.load(std::memory_order_relaxed);
      const uint32_t room = ring_space(at, ms->hwcur.load(std::memory_order_acquire), mn);
      uint32_t rel = ring_dist(from, to, n), j = from;
      if (rel > room) {  // the oldest stay with the port
        ms->fwd_drops += rel - room;
        j = ring_add(j, rel - room, n);
        rel = room;
      }
      if (rel == 0) return;
      netmap_slot* slot = k.ring->slot;
      netmap_slot* fake = pipe_tx ? k.peer->ring->slot : nullptr;
      // Both sides are read once and each gives only a buffer it owns, of a
      // length that fits (either application may have scribbled on its
      // slot): a bad monitor slot stops the swaps (the monitor broke its
      // own ring), a bad port slot stays with the port. The owner tags move
      // with the buffers.
      const uint32_t bsize = r.cfg().buf_size, mine_tag = Region::ring_tag(mi);
      for (; rel; rel--, j = next_slot(j, n)) {
        const SlotCopy mine = read_slot(mr->slot, at);
        if (r.buf_tag(mine.buf_idx) != mine_tag || mine.len > bsize) {
          ms->fwd_drops += rel;
          break;
        }
        const SlotCopy theirs = read_slot(slot, j);
        if (r.buf_tag(theirs.buf_idx) != k.ks->buf_tag || theirs.len > bsize) {
          ms->fwd_drops++;
          continue;
        }
        r.retag(mine.buf_idx, k.ks->buf_tag);
        r.retag(theirs.buf_idx, mine_tag);
        netmap_slot& d = mr->slot[at];
        d.buf_idx = theirs.buf_idx;
        d.len = theirs.len;
        d.flags = uint16_t((theirs.flags & NS_MOREFRAG) | (tx ? NS_TXMON : 0));
        netmap_slot& s = slot[j];
        const uint32_t b = mine.buf_idx;
        s.buf_idx = b;
        s.len = mine.len;
        s.flags = uint16_t(theirs.flags | NS_BUF_CHANGED);
        // A pipe's rx slot describes the tx slot's buffer: keep it so (the
        // receiver released it; the next txsync rewrites it anyway).
        if (fake) fake[j].buf_idx = b;
        at = next_slot(at, mn);
      }
      ms->hwtail.store(at, std::memory_order_release);
    }
    notify(ms);
    return;  // one zero-copy monitor per ring
  }
}

}  // namespace unetmap

namespace unetmap {
namespace {
// Monitors are the ring tap (core/tap.h).
void arrived(Region& r, const KringState* watched, const netmap_slot* slot, const SlotCopy* copy,
             uint32_t n, uint32_t from, uint32_t to) {
  monitor_copy_slots(r, watched, slot, copy, n, from, to, false);
}
const RingTap kMonitorTap = {monitor_copy, arrived, monitor_zswap};
const struct SetTap {
  SetTap() { set_ring_tap(&kMonitorTap); }
} g_set_tap;
}  // namespace
}  // namespace unetmap
