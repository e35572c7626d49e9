// Taps: code that sees a ring's traffic while the port type goes on as if
// nothing watched it, as netmap's monitors replace a kring's nm_sync and
// nm_notify. A ring is tapped while its KringState counts taps (nmon,
// changed under the registry lock by whoever sets the tap); the sync core
// and the producers of a ring then call the tap's hooks. Monitors
// (src/ports/monitor) are the tap: they set these hooks when the library
// starts. The sync core names no port type.
#pragma once

#include <cstdint>

#include "core/adapter.h"

namespace unetmap {

struct RingTap {
  // A sync of k moved slots [from, to) out (tx) or in (rx): copy them.
  void (*moved)(const Kring& k, uint32_t from, uint32_t to, bool tx);
  // Packets arrived on ring `watched` (region r), read from `copy` if not
  // null, else from `slot` (n slots): the producer calls it before it
  // publishes them.
  void (*arrived)(Region& r, const KringState* watched, const netmap_slot* slot,
                  const SlotCopy* copy, uint32_t n, uint32_t from, uint32_t to);
  // Slots [from, to) of k were released (tx: given back by the txsync; rx:
  // released by the application, before the rxsync).
  void (*released)(const Kring& k, uint32_t from, uint32_t to, bool tx);
};

// The tap, or nullptr if none is linked in.
const RingTap* ring_tap();
void set_ring_tap(const RingTap* t);

// Whether ring state ks has taps.
inline bool tapped(const KringState* ks) { return ks->nmon.load(std::memory_order_relaxed) != 0; }

}  // namespace unetmap
