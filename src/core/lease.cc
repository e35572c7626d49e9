#include "core/lease.h"

#include <utility>

namespace unetmap {

// If a producer died inside the critical section, the reservation it was
// making may be half done: recompute lease_tail from the leases that were
// counted (the count is written last).
LeaseGuard::LeaseGuard(KringState* ks) : g_(ks->lease_lock) {
  if (!g_.ok() || !g_.owner_died()) return;
  ks->lease_tail = ks->lease_count
                       ? ks->leases[(ks->lease_first + ks->lease_count - 1) % kMaxLeases].end
                       : ks->hwtail.load();
}

uint32_t lease_room(const KringState* ks) {
  return ring_space(ks->lease_tail, ks->hwcur.load(std::memory_order_acquire), ks->nslots);
}

void lease_open(KringState* ks, uint32_t n, uint32_t* start, uint32_t* slot) {
  *start = ks->lease_tail;
  *slot = (ks->lease_first + ks->lease_count) % kMaxLeases;
  Lease& l = ks->leases[*slot];
  l.start = *start;
  l.end = ring_add(*start, n, ks->nslots);
  l.done = 0;
  l.owner = ProcId::self();
  l.since_ns = mono_ns();
  ks->lease_count++;  // counted last: a half-made lease is not counted
  ks->lease_tail = l.end;
}

void lease_close(KringState* ks, netmap_ring* ring, uint32_t slot, uint32_t gen) {
  LeaseGuard g(ks);
  if (!g.ok()) return;
  if (ks->gen.load(std::memory_order_relaxed) != gen) return;  // the ring went meanwhile
  ks->leases[slot].done = 1;
  advance_leases(ks, ring);
}

void reclaim_stalled(KringState* ks, netmap_ring* ring, uint32_t head) {
  // Racy peek first: no lock while all is well.
  if (ks->hwtail.load(std::memory_order_acquire) != head ||
      !*reinterpret_cast<volatile uint32_t*>(&ks->lease_count) ||
      mono_ns() - ks->leases[ks->lease_first % kMaxLeases].since_ns <= 1000000)
    return;
  LeaseGuard g(ks);
  if (g.ok()) advance_leases(ks, ring);
}

// Publish done leases in order; close the hole of a dead owner's lease once
// everything after it is done. Called with lease_lock held.
void advance_leases(KringState* ks, netmap_ring* ring) {
  const uint32_t n = ks->nslots;
  while (ks->lease_count) {
    Lease& l = ks->leases[ks->lease_first];
    if (l.done) {
      ks->hwtail.store(l.end, std::memory_order_release);
      ks->lease_first = (ks->lease_first + 1) % kMaxLeases;
      ks->lease_count--;
      continue;
    }
    if (mono_ns() - l.since_ns < 1000000 || l.owner.alive()) return;
    for (uint32_t k = 1; k < ks->lease_count; k++)
      if (!ks->leases[(ks->lease_first + k) % kMaxLeases].done) return;
    // Dead owner, all later leases done: move [l.end, lease_tail) down to
    // l.start, swapping descriptors so the hole's buffers stay in the ring.
    const uint32_t hole = ring_dist(l.start, l.end, n);
    for (uint32_t from = l.end, to = l.start; from != ks->lease_tail;
         from = next_slot(from, n), to = next_slot(to, n))
      std::swap(ring->slot[from], ring->slot[to]);
    ks->lease_tail = ring_sub(ks->lease_tail, hole, n);
    for (uint32_t k = 1; k < ks->lease_count; k++) {
      Lease& m = ks->leases[(ks->lease_first + k) % kMaxLeases];
      m.start = ring_sub(m.start, hole, n);
      m.end = ring_sub(m.end, hole, n);
    }
    ks->lease_first = (ks->lease_first + 1) % kMaxLeases;
    ks->lease_count--;
    if (ks->lease_count == 0) ks->hwtail.store(ks->lease_tail, std::memory_order_release);
  }
}


}  // namespace unetmap
