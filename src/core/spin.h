// How long a poller spins before it sleeps, adapted to what its spins find.
//
// A spin pays when the producer runs on another core: the ring fills or
// the queue gets work while it looks, and a sleep and wake-up pair (tens
// of microseconds) is saved. When the producer shares the poller's core it
// cannot run while the poller spins, so every spin ends empty-handed and
// is the producer's CPU time lost. So a spin that finds nothing halves the
// next one, down to kMinNs (which still probes: a producer that moves to
// another core is found again), and one that finds work doubles it, up to
// the configured maximum (0: never spin).
#pragma once

#include <stdlib.h>

#include <algorithm>
#include <cstdint>

namespace unetmap {

class SpinBudget {
 public:
  static constexpr uint64_t kMinNs = 1000;
  explicit SpinBudget(uint64_t max_ns = 0) : max_(max_ns), next_(max_ns) {}
  // The next spin's length.
  uint64_t next() const { return next_; }
  // What the last spin found.
  void spun(bool found) {
    next_ = found ? std::max(kMinNs, next_) * 2 : next_ / 2;
    next_ = std::min(max_, std::max(kMinNs, next_));
  }

 private:
  uint64_t max_, next_;
};

// A poller's longest spin in ns, from environment variable `name` in µs
// (UNETMAP_SPIN_US, UNETMAP_VHOST_SPIN_US): dflt_us if unset, within 0 to
// 100000 (a negative value is 0).
inline uint64_t spin_max_ns(const char* name, long long dflt_us) {
  const char* v = getenv(name);
  const long long us = v && *v ? strtoll(v, nullptr, 10) : dflt_us;
  return uint64_t(std::clamp<long long>(us, 0, 100000)) * 1000;
}

}  // namespace unetmap
