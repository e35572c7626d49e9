// Copy monitors: "PORT/t" (what PORT transmits), "PORT/r" (what it
// receives), "PORT/rt" (both), like a mirroring port on a switch.
//
// A monitor is a port of its own (kind kMonitor, peer = the port watched,
// in the watched port's region) with one rx ring per ring index of the
// watched port. Each watched ring lists its monitors' rx rings in its
// KringState (mon[], changed under the registry lock). The shared sync
// code (core/sync.cc) calls monitor_copy() after a sync moved packets: a
// txsync copies what it sent, marked NS_TXMON; an rxsync what it received.
// Copies go through leases (core/lease.h), because a /rt monitor ring is
// filled by the watched port's sender and receiver, in different
// processes. A full monitor ring drops the copies (counted); the watched
// port is never slowed beyond the copy, nor blocked. A monitor that dies is
// unhooked when its registration is reaped.
#include <errno.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "core/adapter.h"
#include "core/lease.h"
#include "ports/monitor.h"

namespace unetmap {

namespace {

void hook(Region& r, uint32_t watched_ring, uint32_t mon_ring) {
  KringState* ks = r.kring(watched_ring);
  uint64_t e = uint64_t(r.kring(mon_ring)->gen.load()) << 32 | (mon_ring + 1);
  for (auto& m : ks->mon)
    if (m.load() == 0) {
      m.store(e);
      ks->nmon.fetch_add(1);
      return;
    }
}

void unhook(Region& r, uint32_t watched_ring, uint32_t mon_ring) {
  KringState* ks = r.kring(watched_ring);
  for (auto& m : ks->mon) {
    uint64_t e = m.load();
    if (e && uint32_t(e) == mon_ring + 1) {
      m.store(0);
      ks->nmon.fetch_sub(1);
    }
  }
}

class MonitorAdapter final : public Adapter {
 public:
  PortKind kind() const override { return PortKind::kMonitor; }
  const char* type_name() const override { return "monitor"; }
  bool owns(std::string_view) const override { return false; }  // made by monitor_create()

  int create(Registry&, int, const PortRequest& req, std::string* why) const override {
    *why = "a monitor is opened as PORT/t, PORT/r or PORT/rt, not as '" + req.name + "'";
    return EINVAL;
  }

  void destroy(Registry& reg, int p) const override {
    PortEntry& pe = reg.port(p);
    int err = 0;
    auto region = Region::get(pe.mem_id, RegionConfig::from_env(), &err);
    if (region && pe.peer >= 0 && reg.port(pe.peer).kind != PortKind::kNone) {
      const PortEntry& w = reg.port(pe.peer);
      for (int d : {kTx, kRx})
        for (uint32_t i = 0; i < w.nrings[d]; i++)
          for (uint32_t j = 0; j < pe.nrings[kRx]; j++) unhook(*region, w.ring[d][i], pe.ring[kRx][j]);
    }
    if (region)
      for (uint32_t j = 0; j < pe.nrings[kRx]; j++) {
        KringState* ks = region->kring(pe.ring[kRx][j]);
        LeaseGuard g(ks);
        ks->dead = 1;  // producers back off; a copy in flight only touches our own ring
      }
    pe.peer = -1;
    Adapter::destroy(reg, p);
  }

  void txsync(Kring& k, uint32_t head) const override {
    k.ks->hwcur.store(head, std::memory_order_relaxed);  // a monitor has no tx rings
  }

  void rxsync(Kring& k, uint32_t head) const override {
    KringState* s = k.ks;
    uint32_t old = s->hwcur.load(std::memory_order_relaxed);
    if (head != old) {
      s->packets += head >= old ? head - old : head + k.nslots - old;
      s->hwcur.store(head, std::memory_order_release);
    }
    reclaim_stalled(s, k.ring, head);
  }
};

}  // namespace

const Adapter& monitor_adapter() {
  static MonitorAdapter a;
  return a;
}

int monitor_create(Registry& reg, int watched, uint64_t flags, int* out, std::string* why) {
  const PortEntry& w = reg.port(watched);
  if (w.kind == PortKind::kMonitor) {
    *why = "a monitor cannot be monitored";
    return EINVAL;
  }
  if (flags & NR_ZCOPY_MON) {
    *why = "zero-copy monitors (/z) are not supported yet; use /t, /r or /rt";
    return EOPNOTSUPP;
  }
  int m = reg.alloc_port("", PortKind::kMonitor);
  if (m < 0) {
    *why = "too many ports";
    return ENOMEM;
  }
  PortEntry& pe = reg.port(m);
  snprintf(pe.name, sizeof pe.name, "%.40s/%s%s#%d", w.name, flags & NR_MONITOR_RX ? "r" : "",
           flags & NR_MONITOR_TX ? "t" : "", m);
  pe.mem_id = w.mem_id;
  pe.peer = watched;
  pe.monitor = uint8_t(flags >> 8);
  pe.nrings[kRx] = std::max(w.nrings[kTx], w.nrings[kRx]);
  pe.nslots[kRx] = std::max(w.nslots[kTx], w.nslots[kRx]);
  int err = 0;
  auto region = Region::get(pe.mem_id, RegionConfig::from_env(), &err, why);
  if (!region) {
    pe.kind = PortKind::kNone;
    return err;
  }
  if ((err = make_port_rings(reg, m, *region, why)) != 0) {
    pe.kind = PortKind::kNone;
    return err;
  }
  for (int d : {kTx, kRx}) {
    if (!(flags & (d == kTx ? NR_MONITOR_TX : NR_MONITOR_RX))) continue;
    for (uint32_t i = 0; i < w.nrings[d]; i++) hook(*region, w.ring[d][i], pe.ring[kRx][i]);
  }
  *out = m;
  return 0;
}

// Copy the packets of slots [from, to) of k's ring to every monitor of it.
void monitor_copy(const Kring& k, uint32_t from, uint32_t to, bool tx) {
  if (from == to) return;
  Region& r = *k.region;
  const uint32_t n = k.nslots, nbufs = r.cfg().buf_num, bsize = r.cfg().buf_size;
  uint32_t total = to >= from ? to - from : to + n - from;
  for (const auto& me : k.ks->mon) {
    uint64_t e = me.load(std::memory_order_acquire);
    if (!e) continue;
    const uint32_t mi = uint32_t(e) - 1, gen = uint32_t(e >> 32);
    if (mi >= r.cfg().ring_num) continue;
    KringState* ms = r.kring(mi);
    netmap_ring* mr = r.ring(mi);
    const uint32_t mn = ms->nslots;
    uint32_t take = 0, start = 0, slot = 0;
    {
      LeaseGuard g(ms);
      if (!lease_usable(ms, gen)) continue;
      const uint32_t room = lease_room(ms);
      // Whole packets only.
      for (uint32_t j = from, pkt = 0; j != to; j = next_slot(j, n)) {
        pkt++;
        if (k.ring->slot[j].flags & NS_MOREFRAG) continue;
        if (take + pkt > room) break;
        take += pkt;
        pkt = 0;
      }
      ms->fwd_drops += total - take;  // slots, close enough to packets for small frames
      if (take == 0) continue;
      lease_open(ms, take, &start, &slot);
    }
    for (uint32_t i = 0, j = from, at = start; i < take; i++, j = next_slot(j, n), at = next_slot(at, mn)) {
      const netmap_slot& s = k.ring->slot[j];
      netmap_slot& d = mr->slot[at];
      uint32_t len = s.len > bsize ? bsize : s.len;
      if (s.buf_idx >= 2 && s.buf_idx < nbufs && d.buf_idx >= 2 && d.buf_idx < nbufs)
        memcpy(r.buf(d.buf_idx), r.buf(s.buf_idx), len);
      else
        len = 0;
      d.len = uint16_t(len);
      d.flags = uint16_t((s.flags & NS_MOREFRAG) | (tx ? NS_TXMON : 0));
    }
    lease_close(ms, mr, slot, gen);
    notify(ms);
  }
}

}  // namespace unetmap
