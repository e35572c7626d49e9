// extmem (NETMAP_REQ_OPT_EXTMEM, libnetmap's "@extmem:file=..."): a region
// whose public part (netmap_if objects, rings, buffers) is memory the
// application provides. See extmem.cc.
#pragma once

#include <net/netmap.h>

#include <cstdint>
#include <string>

namespace unetmap {

// Make a new region (a fresh id) on the memory at `usr`, sized by *info
// (0 fields: defaults; buf num 0: as many buffers as fit; nr_memsize 0: up
// to the end of the mapping). Takes the registry lock. 0 or errno, *why.
int extmem_region(uint64_t usr, const nmreq_pools_info& info, uint16_t* id, std::string* why);
// A register on that region failed: let the region go (the file stays).
void extmem_drop(uint16_t id);

}  // namespace unetmap
