// Helpers for the port types whose rings meet the outside world by copy
// (NIC ports, pcap-file ports): their rxsync copies frames into the rx
// ring's own buffers, their txsync copies frames out of the tx ring. Each
// slot is read once where it is used and checked there (the application
// may rewrite it at any time, also after the sync prologue's check).
#pragma once

#include "core/adapter.h"

namespace unetmap {

// Free rx slots: from hwtail up to (not including) the one before hwcur.
inline uint32_t rx_room(const KringState* s, uint32_t n) {
  return ring_space(s->hwtail.load(std::memory_order_relaxed), s->hwcur.load(std::memory_order_relaxed), n);
}
// A tx ring whose slots up to `sent` are gone: they are free again.
inline void tx_done(KringState* s, uint32_t sent, uint32_t n) {
  s->hwcur.store(sent, std::memory_order_relaxed);
  s->hwtail.store(prev_slot(sent, n), std::memory_order_release);
}
// The slots of the packet starting at i (NS_MOREFRAG chains), 0 if the
// chain does not end before `head`.
inline uint32_t packet_slots(const netmap_ring* r, uint32_t i, uint32_t head, uint32_t n) {
  return frame_at(r->slot, i, ring_dist(i, head, n), n).nslots;
}
// The buffer b names if ring k owns it, else nullptr: b is read once from
// a slot the application may rewrite at any time, and checked here, where
// it is used (the owner tag, as SlotCheck; Region::buf_tag checks the range).
inline uint8_t* ring_buf(const Kring& k, uint32_t b) {
  const Region& r = *k.region;
  return b >= 2 && r.buf_tag(b) == k.ks->buf_tag ? reinterpret_cast<uint8_t*>(r.buf(b)) : nullptr;
}
// Copy a frame into the rx ring at *tail (the packet engine's copy: over
// several slots if it is longer than a buffer); false (nothing written) if
// it does not fit in room.
bool rx_put(Kring& k, uint32_t* tail, uint32_t* room, const void* data, uint32_t len);
// Gather the packet of `nslots` slots at i into dst (at most cap bytes);
// its length, or 0 if it does not fit or a slot names no buffer of the ring.
uint32_t tx_gather(const Kring& k, uint32_t i, uint32_t nslots, void* dst, uint32_t cap);

}  // namespace unetmap
