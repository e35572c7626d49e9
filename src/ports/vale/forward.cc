// Forwarding runs in the sender's txsync (sender's context, no daemon):
//  1. the complete packets in [hwcur, head) (NS_MOREFRAG chains, up to 64
//     KiB) are looked up: learning bridge by default, learning the source
//     MAC unless the slot has NS_NO_LEARN. The slots are read from the sync
//     prologue's checked copy (Kring::copy, core/sync.cc), never from the
//     ring: an incomplete chain stays in [hwcur, rhead) until its last
//     fragment comes, and rewriting its slots meanwhile changes nothing
//     (if another process synced the ring meanwhile, they are read and
//     checked again, and a packet with a bad one is dropped, counted in
//     the tx ring's drops). The lookup is given the first fragment's
//     length, which lies within its buffer;
//  2. for each destination port, a lease of slots on one of its rx rings is
//     taken under that ring's lease_lock (a short critical section), the
//     packets are copied outside the lock, and the lease is marked done; the
//     ring's hwtail advances over done leases in reservation order, so
//     several senders fill one ring concurrently and publish in order;
//  3. the copy is the packet engine's (core/engine.h): each fragment goes
//     to slots of its own, split over a NS_MOREFRAG chain where the
//     destination's buffers are shorter, so a receiver never sees a
//     length beyond its buffer; a destination without room for all of a
//     packet drops it (counted in its rx ring's fwd_drops). The sender
//     never blocks.
//
// NS_INDIRECT (netmap: VALE tx rings only): a fragment's bytes are at the
// user address slot->ptr in the sender's memory, not in its buffer. The
// sender is the process running this txsync, so they are read with
// process_vm_readv on itself (one call for a batch of good addresses) into
// a per-kring staging area (a buffer per slot, allocated at the first
// indirect packet): a bad address is an error (EFAULT) there, never a
// fault, and drops its packet (counted in the tx ring's drops; netmap
// delivers it with length 0). ptr is read from the ring once, when the
// batch is forwarded; len is the prologue's checked copy, so it fits a
// buffer as for a direct slot. The lookup and every copy then read the
// staged bytes: one snapshot of the frame, whatever the application
// writes meanwhile. Normal slots pay one test of a flag already loaded.
// A fragment within the ranges the sender vouches for
// (unetmap_indirect_ranges: a vhost-user backend's guest memory) is read
// in place instead, with no staging copy; there the lookup and each copy
// may see bytes the guest changed meanwhile (in its own frame only).
//
// A sender killed while holding a lease leaves it undone: whoever next
// publishes on that ring (or the receiver's rxsync, when the ring stalls)
// sees the owner is dead and, once every later lease is done, closes the
// hole by moving the later slots down (swapping descriptors, so no buffer
// is lost) and frees the dead lease's slots.
//
// The sender keeps a process-local view of the switch (destination rings,
// their regions) per tx kring, rebuilt when the switch's gen changes. A
// destination ring being destroyed is marked dead and drained under its
// lease_lock, and its gen changes: a sender with a stale view finds out
// under the lock and backs off, so it never writes a ring it no longer owns.
#include <errno.h>
#include <sched.h>
#include <sys/uio.h>

#include <cstdio>
#include <mutex>
#include <new>
#include <set>
#include <string>

#include "core/lease.h"
#include "core/tap.h"
#include "ports/vale/vale_impl.h"

namespace unetmap::vale {

namespace {

// Read the NS_INDIRECT fragments of tx slots [from, to) from the sender's
// memory into v.stage, each at its slot's place, with as few system calls
// as the addresses allow (one for a batch of good ones); v.staged[j] says
// whether slot j's bytes are there. A fragment whose address cannot be read
// is left unstaged and the reads go on after it.
void stage_indirect(const Kring& k, ValeKring& v, uint32_t from, uint32_t to) {
  const size_t ssize = k.region->cfg().buf_size;
  if (v.ind.empty()) v.ind.assign(k.nslots, nullptr);
  constexpr size_t kIov = 128;
  iovec local[kIov], remote[kIov];
  uint32_t slot_of[kIov];
  size_t n = 0;
  auto flush = [&] {
    for (size_t i = 0; i < n;) {
      const ssize_t got = process_vm_readv(my_pid(), local + i, n - i, remote + i, n - i, 0);
      if (got < 0 && errno != EFAULT) {
        if (errno == ENOSYS || errno == EPERM) {
          static std::once_flag once;
          std::call_once(once, [] {
            fprintf(stderr,
                    "unetmap: process_vm_readv is not allowed here (seccomp?): NS_INDIRECT "
                    "packets on VALE ports are dropped\n");
          });
        }
        break;  // the rest stay unstaged
      }
      // Whole elements up to the first one that failed (or was cut short).
      size_t acc = 0;
      for (; i < n && acc + local[i].iov_len <= size_t(got < 0 ? 0 : got); i++) {
        acc += local[i].iov_len;
        v.ind[slot_of[i]] = static_cast<const char*>(local[i].iov_base);
      }
      i++;  // element i could not be read: skip it
    }
    n = 0;
  };
  if (v.ind.empty()) return;
  static const char kEmpty = 0;
  const SlotCopy* c = k.copy.data();
  const volatile netmap_slot* slot = k.ring->slot;
  for (uint32_t j = from; j != to; j = next_slot(j, k.nslots)) {
    if (!(c[j].flags & NS_INDIRECT)) continue;
    v.ind[j] = c[j].len == 0 ? &kEmpty : nullptr;
    if (c[j].len == 0) continue;
    const uint64_t ptr = slot[j].ptr;  // read once, here
    if (ptr == 0) continue;
    if (k.direct && k.direct->contains(ptr, c[j].len)) {
      v.ind[j] = reinterpret_cast<const char*>(uintptr_t(ptr));
      continue;
    }
    if (!v.stage) v.stage.reset(new (std::nothrow) char[size_t(k.nslots) * ssize]);
    if (!v.stage) continue;
    local[n] = iovec{v.stage.get() + size_t(j) * ssize, c[j].len};
    remote[n] = iovec{reinterpret_cast<void*>(uintptr_t(ptr)), c[j].len};
    slot_of[n++] = j;
    if (n == kIov) flush();
  }
  flush();
}

// Whether every NS_INDIRECT fragment of the packet at tx slots
// first..first+ns was staged; the first indirect packet of a forward()
// stages the rest of its batch.
bool indirect_ready(const Kring& k, ValeKring& v, uint32_t first, uint32_t ns, uint32_t head,
                    bool* staged) {
  if (!*staged) {
    stage_indirect(k, v, first, head);
    *staged = true;
  }
  if (v.ind.empty()) return false;
  const SlotCopy* c = k.copy.data();
  for (uint32_t s = 0, j = first; s < ns; s++, j = next_slot(j, k.nslots))
    if ((c[j].flags & NS_INDIRECT) && !v.ind[j]) return false;
  return true;
}

// Once per switch and lookup name in a process.
void warn_missing_lookup(const SwitchEntry& s) {
  static std::mutex mu;
  static std::set<std::string> told;
  std::lock_guard<std::mutex> g(mu);
  if (!told.insert(std::string(s.name) + ":" + s.lookup).second) return;
  fprintf(stderr,
          "unetmap: switch %s uses lookup '%s', which this process has not registered "
          "(vale_register_lookup): its packets are dropped\n",
          s.name, s.lookup);
}

}  // namespace

void refresh(Registry& reg, ValeKring& v) {
  SwitchEntry& s = vale_switch(reg, v.sw);
  v.sw_gen = s.gen.load();
  ValeLookupOps ops;
  v.lookup_missing = !find_lookup(s.lookup, &ops);
  v.lookup = v.lookup_missing ? unknown_lookup : ops.lookup;
  if (v.lookup_missing) warn_missing_lookup(s);
  v.active.clear();
  v.dst.assign(kSwitchPorts, DstPort{});
  const int self = v.me < kSwitchPorts ? s.ports[v.me] : -1;
  v.hdr = uint32_t(self) < kMaxPorts && is_vale_port(reg.port(self)) ? vale_port(reg.port(self)).hdr_len : 0;
  if (v.hdr != 10 && v.hdr != 12) v.hdr = 0;  // shared memory may say anything
  for (uint32_t i = 0; i < kSwitchPorts; i++) {
    int p = s.ports[i];
    if (p < 0 || i == v.me) continue;
    const PortEntry& pe = reg.port(p);
    // The table and the port must agree (both are shared memory).
    if (!is_vale_port(pe) || vale_port(pe).sw != v.sw || vale_port(pe).sw_port != i) continue;
    int err = 0;
    DstPort d;
    d.hdr = vale_port(pe).hdr_len == 10 || vale_port(pe).hdr_len == 12 ? vale_port(pe).hdr_len : 0;
    d.region = Region::get(pe.mem_id, RegionConfig::from_env(), &err);
    if (!d.region) continue;
    for (uint32_t r = 0; r < pe.nrings[kRx] && r <= kMaxRings; r++) {
      if (d.region->ring_port(pe.ring[kRx][r]) != p) continue;  // not its ring: never written
      KringState* ks = d.region->kring(pe.ring[kRx][r]);
      d.rx.push_back(RxView{ks, d.region->ring(pe.ring[kRx][r]), ks->gen.load(), ks->buf_tag});
    }
    v.dst[i] = std::move(d);
    v.active.push_back(uint16_t(i));
  }
}

namespace {

// The fragments of packet f: the prologue's checked copy of its tx slots,
// read from the sender's buffers (or, NS_INDIRECT, from the staging area).
struct PktFrags {
  const Kring& k;
  const FwdPkt& f;
  const char* const* ind;
  Frag operator()(uint32_t i) const {
    const uint32_t j = ring_add(f.first, i, k.nslots);
    const SlotCopy& s = k.copy[j];
    const char* b = __builtin_expect(s.flags & NS_INDIRECT, 0) ? ind[j]  // found by forward()
                                                                : k.region->buf(s.buf_idx);
    return Frag{reinterpret_cast<const uint8_t*>(b), s.len};
  }
};

// The buffer of a destination rx slot, which its receiver may have written:
// only a buffer of that ring takes a copy.
struct RxBufs {
  const Region& r;
  uint32_t nbufs, tag;
  uint8_t* operator()(uint32_t b) const {
    if (b < 2 || b >= nbufs || r.buf_tag(b) != tag) return nullptr;
    return reinterpret_cast<uint8_t*>(r.buf(b));
  }
};

// The mismatch path, to a port without a header: do what packet f's
// header asks (engine's vnet_finish: a checksum finished, a GSO frame cut
// to kValeMtu) and queue the frames made for the destination, in order,
// with the slots each takes under rule r. False if the header is bad or
// the frames do not fit the batch's room (the packet is dropped).
bool finish_for(const Kring& k, ValeKring& v, const FwdPkt& f, const CopyRule& r) {
  if (v.whole.size() < kMaxFrame + 12) v.whole.resize(kMaxFrame + 12);
  const uint32_t len = gather_frame(PktFrags{k, f, v.ind.data()}, f.nslots, v.whole.data(),
                                    uint32_t(v.whole.size()));
  if (len < v.hdr + 14u) return false;
  const VnetHdr h = read_vnet_hdr(v.whole.data());
  uint8_t* frame = v.whole.data() + v.hdr;
  const uint32_t flen = len - v.hdr;
  const uint32_t n = vnet_frames(h, frame, flen, kValeMtu);
  // Each frame made holds at most its headers again (up to 140 bytes with
  // a tag) besides its share of the data.
  if (n == 0 || v.made.size() + flen + n * 160ull > kMadeMax) return false;
  const size_t frames0 = v.made_frames.size();
  bool fits = true;
  vnet_finish(h, frame, flen, kValeMtu, [&](uint8_t* p, uint32_t l) {
    const uint32_t s = frame_slots(FlatFrag{p, l}, 1, l, r);
    if (s == 0) fits = false;
    if (!fits) return;
    v.made_frames.push_back({uint32_t(v.made.size()), l});
    v.made.insert(v.made.end(), p, p + l);
    v.order.push_back(kMadeBit | uint32_t(v.made_frames.size() - 1));
    v.need.push_back(s);
  });
  if (fits) return true;
  const size_t added = v.made_frames.size() - frames0;  // take back what was queued
  v.order.resize(v.order.size() - added);
  v.need.resize(v.need.size() - added);
  if (added) v.made.resize(v.made_frames[frames0].off);
  v.made_frames.resize(frames0);
  return false;
}

// The mismatch path, between two lengths that both have a header: the
// fields of the sender's (its first 10 bytes, which both lengths share)
// go over the zeroed header the copy put in the destination slot.
void copy_vnet_fields(const Kring& k, const ValeKring& v, const FwdPkt& f, uint8_t* dst) {
  uint8_t h[kVnetHdrCommon];
  if (gather_head(PktFrags{k, f, v.ind.data()}, f.nslots, h, kVnetHdrCommon) == kVnetHdrCommon && dst)
    memcpy(dst, h, kVnetHdrCommon);
}

// Packets of two ordered lists (unicast to p, broadcast) into one rx ring of p.
void deliver(Kring& k, ValeKring& v, uint16_t p, uint32_t uni, uint32_t bc) {
  DstPort& d = v.dst[p];
  RxView& rv = d.rx[k.id % d.rx.size()];
  KringState* ks = rv.ks;
  const uint32_t n = ks->nslots;  // never the ring's own field: the application can write that
  const uint32_t ssize = k.region->cfg().buf_size;
  CopyRule rule;
  // Fragments read in place (Kring::direct) end where their length says:
  // nothing past them is read.
  rule.src_buf = k.direct ? 0 : ssize;
  rule.dst_buf = d.region->cfg().buf_size;
  rule.src_hdr = v.hdr;
  rule.dst_hdr = d.hdr;
  rule.max_frame = kMaxFrame + d.hdr;
  // Between ports whose headers differ, a frame whose header asks for
  // segmentation or a checksum takes the mismatch path: finished here for
  // a port without a header, its header's fields kept for one with.
  const bool convert = rule.src_hdr != rule.dst_hdr;
  CopyRule made_rule = rule;  // frames the mismatch path made: flat, no header
  made_rule.src_hdr = made_rule.src_buf = 0;
  v.made.clear();
  v.made_frames.clear();
  // Pick the packets in order. Where every fragment of the batch fits
  // p's buffers, a packet takes a slot per fragment; else the engine
  // counts the slots (more than the sender's where p's are shorter).
  const bool simple = rule.src_hdr == rule.dst_hdr && v.maxlen <= rule.dst_buf;
  uint32_t pk[2] = {uni, bc};
  std::vector<uint32_t>& order = v.order;
  order.clear();
  v.need.clear();
  uint32_t too_long = 0;
  while (pk[0] != ~0u || pk[1] != ~0u) {
    int w = pk[1] == ~0u || (pk[0] != ~0u && pk[0] < pk[1]) ? 0 : 1;
    const FwdPkt& f = v.ft[pk[w]];
    if (convert && f.offload && d.hdr == 0) {
      if (!finish_for(k, v, f, made_rule)) too_long++;
    } else if (simple) {
      order.push_back(pk[w]);
    } else if (uint32_t s = frame_slots(PktFrags{k, f, v.ind.data()}, f.nslots, f.len, rule)) {
      order.push_back(pk[w]);
      v.need.push_back(s);
    } else {
      too_long++;
    }
    pk[w] = f.next;
  }
  uint32_t start = 0, take = 0, npk = 0, slot = 0;
  {
    LeaseGuard g(ks, rv.ring);
    if (!g.ok() || !lease_usable(ks, rv.gen)) {
      ks->fwd_drops += order.size() + too_long;
      return;
    }
    const uint32_t room = lease_room(ks);
    for (; npk < order.size(); npk++) {
      const uint32_t s = simple ? v.ft[order[npk]].nslots : v.need[npk];
      if (take + s > room) break;
      take += s;
    }
    ks->fwd_drops += order.size() - npk + too_long;
    if (take == 0) return;
    lease_open(ks, take, &start, &slot);
  }
  uint32_t at = start;
  const RxBufs bufs{*d.region, d.region->cfg().buf_num, rv.tag};
  for (uint32_t i = 0; i < npk; i++) {
    if (__builtin_expect(order[i] & kMadeBit, 0)) {
      const ValeKring::Made& m = v.made_frames[order[i] & ~kMadeBit];
      at = copy_frame(FlatFrag{v.made.data() + m.off, m.len}, 1, made_rule, rv.ring->slot, n, at, bufs);
      continue;
    }
    const FwdPkt& f = v.ft[order[i]];
    const uint32_t first = at;
    at = copy_frame(PktFrags{k, f, v.ind.data()}, f.nslots, rule, rv.ring->slot, n, at, bufs);
    if (__builtin_expect(convert && f.offload, 0))  // to a port with a header of another length
      copy_vnet_fields(k, v, f, bufs(rv.ring->slot[first].buf_idx));
  }
  // The receiving ring's taps (copy monitors) see the packets as they arrive.
  if (tapped(ks)) ring_tap()->arrived(*d.region, ks, rv.ring->slot, nullptr, n, start, at);
  lease_close(ks, rv.ring, slot, rv.gen);
  notify(ks);
}

}  // namespace

// No new leases; wait (bounded) for the pending ones to finish or their
// owners to be found dead.
void drain(KringState* ks) {
  const uint64_t deadline = mono_ns() + 1000000000ull;
  for (;;) {
    {
      LeaseGuard g(ks);
      if (!g.ok()) return;
      ks->dead = 1;
      bool live = false;
      for (uint32_t k = 0; k < ks->lease_count; k++) {
        const Lease& l = ks->leases[(ks->lease_first + k) % kMaxLeases];
        if (!l.done && l.owner.alive()) live = true;
      }
      if (!live || mono_ns() > deadline) return;
    }
    sched_yield();
  }
}

// Forward the complete packets of [hwcur, head); return the new hwcur.
// The slots are the prologue's checked copies (k.copy), never the ring.
uint32_t forward(Kring& k, ValeKring& v, uint32_t head) {
  SwitchEntry& sw = vale_switch(*v.reg, v.sw);
  if (sw.gen.load(std::memory_order_acquire) != v.sw_gen) {
    RegistryLock g(*v.reg);
    if (!g.ok()) return head;  // no view of the switch: the batch is dropped
    refresh(*v.reg, v);
  }
  const uint32_t n = k.nslots;
  const SlotCopy* c = k.copy.data();
  uint32_t j = k.ks->hwcur.load(std::memory_order_relaxed);
  uint32_t npkts = 0, nbcast = 0, nbad = 0, bcast_head = ~0u, bcast_tail = ~0u, maxlen = 0;
  uint64_t bytes = 0;
  bool staged = false;  // NS_INDIRECT fragments of this batch read yet
  for (uint16_t p : v.active) v.list_head[p] = ~0u;
  ValeLookupCtx ctx{&sw, v.me, k.id, 0};
  // 1. cut the batch into packets and look each one up
  while (j != head) {
    const uint32_t first = j;
    const FrameSpan fs = frame_at(c, j, ring_dist(j, head, n), n);
    if (fs.nslots == 0) break;  // wait for the rest of the packet
    const uint32_t ns = fs.nslots, len = fs.len;
    j = ring_add(j, ns, n);
    const SlotCopy& s0 = c[first];
    ctx.slot_flags = s0.flags;
    uint32_t dst;
    bool offload = false;
    if (fs.buf0 || len > kMaxFrame + v.hdr || ns > NETMAP_MAX_FRAGS ||
        (__builtin_expect(fs.flags & NS_INDIRECT, 0) &&
         !indirect_ready(k, v, first, ns, head, &staged))) {
      dst = kValeDrop;  // a slot rewritten after it was accepted, too long a packet,
      nbad++;           // or an NS_INDIRECT address that cannot be read
    } else {
      // s0.len fits the buffer (checked by the prologue): the lookup reads no further.
      const char* b0 = __builtin_expect(s0.flags & NS_INDIRECT, 0) ? v.ind[first] : k.region->buf(s0.buf_idx);
      uint32_t l0 = s0.len;
      if (__builtin_expect(v.hdr != 0, 0)) {
        // The virtio-net header first: flags (1: needs a checksum) and
        // gso_type; the lookup reads the Ethernet header after it, in the
        // next slot if the header has a slot of its own (as netmap does).
        offload = l0 >= 2 && ((b0[0] & 1) || b0[1] != 0);
        if (l0 > v.hdr) {
          b0 += v.hdr, l0 -= v.hdr;
        } else if (l0 == v.hdr && ns > 1) {
          const uint32_t j1 = next_slot(first, n);
          b0 = __builtin_expect(c[j1].flags & NS_INDIRECT, 0) ? v.ind[j1] : k.region->buf(c[j1].buf_idx);
          l0 = c[j1].len;
        } else {
          l0 = 0;  // no Ethernet header in sight: the lookup drops it
        }
      }
      dst = v.lookup(reinterpret_cast<const uint8_t*>(b0), l0, ctx);
    }
    if (dst != kValeBroadcast && dst != kValeDrop &&
        (dst >= kSwitchPorts || dst == v.me || v.dst[dst].rx.empty()))
      dst = kValeDrop;  // back to the sender, or to no port: dropped, as netmap does
    v.ft[npkts] = FwdPkt{first, ns, dst, ~0u, len, offload};
    if (fs.maxlen > maxlen) maxlen = fs.maxlen;
    bytes += len;
    if (dst == kValeBroadcast) {
      if (bcast_tail == ~0u) bcast_head = npkts;
      else v.ft[bcast_tail].next = npkts;
      bcast_tail = npkts;
      nbcast++;
    } else if (dst != kValeDrop) {
      if (v.list_head[dst] == ~0u) v.list_head[dst] = npkts;
      else v.ft[v.list_tail[dst]].next = npkts;
      v.list_tail[dst] = npkts;
    }
    npkts++;
  }
  // 2. deliver, destination by destination (broadcasts go to every port)
  v.maxlen = maxlen;
  for (uint16_t p : v.active)
    if ((v.list_head[p] != ~0u || nbcast) && !v.dst[p].rx.empty())
      deliver(k, v, p, v.list_head[p], bcast_head);
  k.ks->packets += npkts;
  k.ks->bytes += bytes;
  if (__builtin_expect(v.lookup_missing, 0)) nbad = npkts;  // none went anywhere
  if (nbad) k.ks->drops += nbad;
  return j;
}

}  // namespace unetmap::vale
