// A frame in one flat buffer onto a tx ring the tool holds, through the
// packet engine's copy rule (core/engine.h): split over a NS_MOREFRAG
// chain where it is longer than a buffer (or than a slot's len can say).
// nmreplay and tlem send their frames so.
#pragma once

#include <net/netmap_user.h>

#include "core/engine.h"

namespace unetmap {

inline CopyRule flat_to(const netmap_ring* r) {
  CopyRule c;
  c.dst_buf = r->nr_buf_size;
  c.max_frame = ~0u;
  return c;
}

// Slots the frame takes on r; 0 if it is longer than r can ever hold.
inline uint32_t tx_slots(const netmap_ring* r, const uint8_t* f, uint32_t len) {
  const uint32_t n = frame_slots(FlatFrag{f, len}, 1, len, flat_to(r));
  return n < r->num_slots ? n : 0;
}

// Copy the frame at r's head (the caller made room: tx_slots of them);
// head and cur move past it.
inline void tx_put(netmap_ring* r, const uint8_t* f, uint32_t len) {
  r->head = r->cur = copy_frame(FlatFrag{f, len}, 1, flat_to(r), r->slot, r->num_slots, r->head,
                                [r](uint32_t b) { return reinterpret_cast<uint8_t*>(NETMAP_BUF(r, b)); });
}

}  // namespace unetmap
