// Which rings of a port a registration uses, from its nmreq_register, as
// libnetmap reports them (first/last tx and rx ring, inclusive).
#pragma once

#include <net/netmap.h>

#include <cstdint>

namespace unetmap {

struct RingSpan {
  uint16_t first_tx, last_tx, first_rx, last_rx;
};

RingSpan ring_span(const nmreq_register& r);

}  // namespace unetmap
