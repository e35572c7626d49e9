// The guest's memory as the front end shares it (SET_MEM_TABLE): up to 8
// regions, each a file descriptor mapped here whole. Every address the
// guest gives (descriptor buffers: guest physical; ring addresses: the
// front end's virtual addresses) is translated through this table and
// checked to lie within one region: nothing outside the guest's own memory
// is ever read or written.
//
// A front end that shrinks a region's file after sharing it makes a later
// access fault (SIGBUS). That kills this worker process only; its
// supervisor restarts it and the front end reconnects (DESIGN.md §2).
#pragma once

#include <cstdint>
#include <string>

#include "ports/vhost/protocol.h"

namespace unetmap::vhost {

class GuestMemory {
 public:
  GuestMemory() = default;
  ~GuestMemory() { clear(); }
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  // Map the regions of table t, whose fds are fds[0..nfds) in order (they
  // stay the caller's). 0 or errno with *why; on failure nothing is mapped.
  int set(const MemTable& t, const int* fds, uint32_t nfds, std::string* why);
  void clear();
  bool empty() const { return n_ == 0; }
  uint32_t regions() const { return n_; }

  // A pointer to len bytes at guest physical address gpa, all in one
  // region; nullptr if they are not. For a buffer that may span regions,
  // gpa_span() gives the part in the first one (*avail bytes, >= 1).
  uint8_t* gpa(uint64_t addr, uint64_t len) const {
    uint64_t avail;
    uint8_t* p = gpa_span(addr, &avail);
    return p && avail >= len ? p : nullptr;
  }
  uint8_t* gpa_span(uint64_t addr, uint64_t* avail) const {
    const Region* r = &r_[last_];
    if (addr - r->gpa >= r->size) {
      r = find(addr, &Region::gpa);
      if (!r) return nullptr;
    }
    *avail = r->size - (addr - r->gpa);
    return r->host + (addr - r->gpa);
  }
  // The same for the front end's virtual addresses (vring addresses).
  uint8_t* uva(uint64_t addr, uint64_t len) const {
    const Region* r = find(addr, &Region::uva);
    return r && r->size - (addr - r->uva) >= len ? r->host + (addr - r->uva) : nullptr;
  }

  // Where the regions are mapped here (host, size), for
  // unetmap_indirect_ranges().
  struct Range {
    const uint8_t* host;
    uint64_t size;
  };
  Range range(uint32_t i) const { return Range{r_[i].host, r_[i].size}; }

 private:
  struct Region {
    uint64_t gpa = 0, size = 0, uva = 0;
    uint8_t* host = nullptr;  // the region's first byte here
    uint8_t* map = nullptr;   // the mapping (from offset 0 of the fd)
    uint64_t map_len = 0;
  };
  const Region* find(uint64_t addr, uint64_t Region::*base) const {
    for (uint32_t i = 0; i < n_; i++)
      if (addr - r_[i].*base < r_[i].size) {
        last_ = i;
        return &r_[i];
      }
    return nullptr;
  }
  Region r_[kMaxMemRegions];
  uint32_t n_ = 0;
  mutable uint32_t last_ = 0;  // the region of the last hit (r_[0] is empty when none)
};

}  // namespace unetmap::vhost
