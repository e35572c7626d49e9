// Leases: how several producers (VALE senders, monitored rings) fill one rx
// ring concurrently, as netmap's lease scheme does. Under the ring's
// lease_lock a producer reserves [lease_tail, lease_tail + n) (lease_open),
// fills it without the lock, then marks it done (lease_close); hwtail
// advances over done leases in reservation order. A lease whose owner died
// is reclaimed once everything after it is done: the later slot descriptors
// move down over the hole (swapped, so no buffer is lost). A producer that
// died inside the lock is repaired by the next locker.
#pragma once

#include <net/netmap.h>

#include <cstdint>

#include "core/engine.h"
#include "mem/region.h"

namespace unetmap {

class LeaseGuard {
 public:
  // ring: the ring of ks, for closing a hole a dead closer left half done
  // (nullptr where the caller has none: it is closed by the next one).
  explicit LeaseGuard(KringState* ks, netmap_ring* ring = nullptr);
  // False if the lock could not be taken (held too long, damaged): the
  // caller skips its work, as for a ring with no room.
  bool ok() const { return g_.ok(); }

 private:
  LockGuard g_;
};

// With the lock held: can the ring take a lease (same generation as the
// producer's view, not being destroyed, a free lease entry)?
inline bool lease_usable(const KringState* ks, uint32_t gen) {
  return ks->gen.load(std::memory_order_relaxed) == gen && !ks->dead && !ks->hole.active &&
         ks->lease_count < kMaxLeases;
}
// With the lock held: free slots after the reservations.
uint32_t lease_room(const KringState* ks);
// With the lock held: reserve n (<= lease_room) slots from *start; *slot
// names the lease for lease_close.
void lease_open(KringState* ks, uint32_t n, uint32_t* start, uint32_t* slot);
// Takes the lock: the lease is filled; publish what can be published.
void lease_close(KringState* ks, netmap_ring* ring, uint32_t slot, uint32_t gen);
// With the lock held: publish done leases, reclaim dead owners' leases.
// budget (tests only): stop after that many steps of closing a hole, as a
// process killed there would.
void advance_leases(KringState* ks, netmap_ring* ring, uint32_t* budget = nullptr);
// With the lock held: finish closing the hole ks->hole records (budget as
// above; false if stopped).
bool finish_hole(KringState* ks, netmap_ring* ring, uint32_t* budget = nullptr);
// The rxsync of a ring producers fill through leases (VALE ports,
// monitors): release [hwcur, head), counted, and reclaim a dead producer's
// lease if the ring stalls behind it.
void lease_ring_release(KringState* ks, netmap_ring* ring, uint32_t head);
// A consumer whose ring looks empty while leases are pending: reclaim a
// dead producer's lease if one is old enough (cheap when none is).
void reclaim_stalled(KringState* ks, netmap_ring* ring, uint32_t head);

}  // namespace unetmap
