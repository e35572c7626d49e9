// Copy monitors (src/ports/monitor.cc): made by a register with
// NR_MONITOR_TX/RX, fed by the shared sync code of the port they watch.
#pragma once

#include <cstdint>
#include <string>

#include "core/adapter.h"

namespace unetmap {

// Make a monitor port of port `watched` (registry locked). 0 or errno.
int monitor_create(Registry& reg, int watched, uint64_t flags, int* out, std::string* why);
// After a sync of k moved slots [from, to): copy them to k's monitors.
void monitor_copy(const Kring& k, uint32_t from, uint32_t to, bool tx);

}  // namespace unetmap
