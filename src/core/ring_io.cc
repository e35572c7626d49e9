#include "core/ring_io.h"

namespace unetmap {

bool rx_put(Kring& k, uint32_t* tail, uint32_t* room, const void* data, uint32_t len) {
  CopyRule rule;
  rule.dst_buf = k.region->cfg().buf_size;
  rule.max_frame = ~0u;  // what the outside gave, however long, if the ring has room
  const Frag f{static_cast<const uint8_t*>(data), len};
  const auto src = [&](uint32_t) { return f; };
  // The application may have written the index since its rxsync checked
  // it: only a buffer of this ring takes the copy; any other slot comes up
  // empty.
  return put_frame(src, 1, len, rule, k.ring->slot, k.nslots, tail, room,
                   [&](uint32_t b) { return ring_buf(k, b); });
}

uint32_t tx_gather(const Kring& k, uint32_t i, uint32_t nslots, void* dst, uint32_t cap) {
  const Region& r = *k.region;
  const uint32_t bsize = r.cfg().buf_size, tag = k.ks->buf_tag;
  return gather_frame(
      [&](uint32_t c) {
        const SlotCopy sl = read_slot(k.ring->slot, ring_add(i, c, k.nslots));
        if (sl.len > bsize || sl.buf_idx < 2 || r.buf_tag(sl.buf_idx) != tag) return Frag{nullptr, kBadFrag};
        return Frag{reinterpret_cast<const uint8_t*>(r.buf(sl.buf_idx)), sl.len};
      },
      nslots, static_cast<uint8_t*>(dst), cap);
}

}  // namespace unetmap
