#include "core/lease.h"

#include <utility>

namespace unetmap {

// If a producer died inside the critical section, the reservation it was
// making may be half done: recompute lease_tail from the leases that were
// counted (the count is written last). A hole it was closing is closed.
LeaseGuard::LeaseGuard(KringState* ks, netmap_ring* ring) : g_(ks->lease_lock) {
  if (!g_.ok() || !g_.owner_died()) return;
  if (ks->hole.active) {
    if (ring) finish_hole(ks, ring, nullptr);
    return;
  }
  ks->lease_tail = ks->lease_count
                       ? ks->leases[(ks->lease_first + ks->lease_count - 1) % kMaxLeases].end
                       : ks->hwtail.load();
}

// Run the journalled move of ks->hole from where it stands (each step can
// run again until the next is recorded), then publish everything: every
// lease left was done. budget (tests): stop after that many steps, as a
// closer killed there would. False if stopped.
bool finish_hole(KringState* ks, netmap_ring* ring, uint32_t* budget) {
  HoleMove& h = ks->hole;
  const uint32_t n = ks->nslots;
  for (;;) {
    const uint32_t st = h.step.load(std::memory_order_relaxed), moved = st >> 2;
    if (moved >= h.moves || moved >= n) break;
    if (budget && (*budget)-- == 0) return false;
    netmap_slot* a = &ring->slot[ring_add(h.from, moved, n)];
    netmap_slot* b = &ring->slot[ring_add(h.to, moved, n)];
    switch (st & 3) {
      case 0: h.tmp = *b; break;
      case 1: *b = *a; break;
      default: *a = h.tmp; break;
    }
    std::atomic_signal_fence(std::memory_order_seq_cst);
    h.step.store((st & 3) >= 2 ? (moved + 1) << 2 : st + 1, std::memory_order_relaxed);
  }
  if (budget && (*budget)-- == 0) return false;
  ks->lease_tail = h.new_tail;
  ks->lease_count = 0;
  ks->hwtail.store(h.new_tail, std::memory_order_release);
  h.active = 0;
  return true;
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
  LeaseGuard g(ks, ring);
  if (!g.ok()) return;
  if (ks->gen.load(std::memory_order_relaxed) != gen) return;  // the ring went meanwhile
  ks->leases[slot].done = 1;
  advance_leases(ks, ring);
}

void lease_ring_release(KringState* ks, netmap_ring* ring, uint32_t head) {
  const uint32_t old = ks->hwcur.load(std::memory_order_relaxed);
  if (head != old) {
    ks->packets += ring_dist(old, head, ks->nslots);
    ks->hwcur.store(head, std::memory_order_release);
  }
  reclaim_stalled(ks, ring, head);
}

void reclaim_stalled(KringState* ks, netmap_ring* ring, uint32_t head) {
  // Racy peek first: no lock while all is well.
  if (ks->hwtail.load(std::memory_order_acquire) != head ||
      !*reinterpret_cast<volatile uint32_t*>(&ks->lease_count) ||
      mono_ns() - ks->leases[ks->lease_first % kMaxLeases].since_ns <= 1000000)
    return;
  LeaseGuard g(ks, ring);
  if (g.ok()) advance_leases(ks, ring);
}

// Publish done leases in order; close the hole of a dead owner's lease once
// everything after it is done. Called with lease_lock held.
void advance_leases(KringState* ks, netmap_ring* ring, uint32_t* budget) {
  const uint32_t n = ks->nslots;
  if (ks->hole.active && !finish_hole(ks, ring, budget)) return;  // a dead closer's
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
    // l.start, swapping descriptors so the hole's buffers stay in the ring,
    // and publish it all. Journalled (KringState::hole): a closer killed
    // half-way leaves it to the next holder of the lock (LeaseGuard).
    HoleMove& h = ks->hole;
    h.from = l.end;
    h.to = l.start;
    h.moves = ring_dist(l.end, ks->lease_tail, n);
    h.new_tail = ring_sub(ks->lease_tail, ring_dist(l.start, l.end, n), n);
    h.step.store(0, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    h.active = 1;
    finish_hole(ks, ring, budget);
    return;
  }
}


}  // namespace unetmap
