// Monitors (src/ports/monitor.cc): made by a register with
// NR_MONITOR_TX/RX or NR_ZCOPY_MON, fed by the shared sync code of the port they watch.
#pragma once

#include <cstdint>
#include <string>

#include "core/adapter.h"

namespace unetmap {

// Make a monitor port of port `watched` (registry locked). 0 or errno.
// mem_id: the region the register asked for (0: any).
int monitor_create(Registry& reg, int watched, uint64_t flags, uint16_t mem_id, int* out,
                   std::string* why);
// Slots of a monitor's tx ring (it transmits nothing: netmap gives a
// monitor one tx ring all the same).
constexpr uint32_t kMonitorTxSlots = 64;
// After a sync of k moved slots [from, to): copy them to k's monitors,
// from the prologue's copy of the slots where k keeps one, else from the
// ring, each slot checked where it is read (a bad one is copied empty).
void monitor_copy(const Kring& k, uint32_t from, uint32_t to, bool tx);
// The same for packets that arrived on ring `watched` (region r), read
// from `copy` if not null, else from `slot` (n slots): the producer calls
// it before they are published.
void monitor_copy_slots(Region& r, const KringState* watched, const netmap_slot* slot,
                        const SlotCopy* copy, uint32_t n, uint32_t from, uint32_t to, bool tx);
// Slots [from, to) of k were released (tx: given back by the txsync; rx:
// released by the application, before the rxsync): hand them to k's
// zero-copy monitor, swapping buffers.
void monitor_zswap(const Kring& k, uint32_t from, uint32_t to, bool tx);

}  // namespace unetmap
