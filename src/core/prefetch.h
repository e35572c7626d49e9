// Cache lines fetched ahead of use, on hot paths that read or write
// memory another core wrote last (a peer's buffers, a guest's).
#pragma once

#include <cstdint>

namespace unetmap {

// A hint: never faults, wherever p points. GCC 12 drops __builtin_prefetch
// where the address is chosen by a condition, so on x86 the instruction is
// written out.
inline void prefetch(const void* p) {
#if defined(__x86_64__)
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p);
#endif
}

// The same, for a line about to be written.
inline void prefetch_w(const void* p) {
#if defined(__x86_64__)
  asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 1);
#endif
}

}  // namespace unetmap
