// The device side of a virtqueue, split or packed (virtio 1.1 §2.6, §2.7),
// in guest memory that the guest writes whenever it likes. Every field the
// guest writes is read once into a local copy and checked before use: an
// index out of the ring, a descriptor chain that loops, is longer than the
// ring, nests indirect tables, mixes directions or points outside the
// guest's memory stops the queue ("broken": virtio's DEVICE_NEEDS_RESET,
// until the front end sets the ring up again); it never makes this
// process read or write anything but the guest's own memory.
//
// A chain popped is a list of segments (pointers here, lengths), readable
// for a transmit queue, writable for a receive queue. Buffers are used in
// the order they were made available (so IN_ORDER is honoured), written to
// the used ring at once and published by flush(), once per batch; notify()
// then interrupts the guest if it asked for it (EVENT_IDX or its flag).
#pragma once

#include <cstdint>
#include <string>

#include "ports/vhost/guest_mem.h"

namespace unetmap::vhost {

struct Seg {
  uint8_t* p;
  uint32_t len;
};

// One descriptor chain.
struct Chain {
  static constexpr uint32_t kMaxSegs = 64;
  uint16_t id = 0;      // the head (split) or buffer id (packed) to give back
  uint16_t ndesc = 0;   // descriptors it took in the ring (packed)
  uint32_t nsegs = 0;
  uint64_t len = 0;     // bytes of the segments recorded
  bool too_long = false;  // more than kMaxSegs segments: the rest is not recorded
  Seg seg[kMaxSegs];
};

// Where the front end put a queue (SET_VRING_ADDR, NUM, BASE).
struct VringConfig {
  uint16_t num = 0;
  uint64_t desc = 0, avail = 0, used = 0;  // front-end virtual addresses
  uint32_t base = 0;  // split: next avail index; packed: avail idx | wrap counter << 15
  bool packed = false, event_idx = false, indirect = false;
};

class Virtq {
 public:
  // Map the rings of c in guest memory m (which must outlive the queue's
  // use). 0 or EINVAL with *why.
  int setup(const GuestMemory& m, const VringConfig& c, std::string* why);
  void reset() { *this = Virtq(); }
  bool ready() const { return num_ != 0 && !broken_; }
  bool broken() const { return broken_; }
  const std::string& why_broken() const { return why_; }

  // The next available chain into *c (segments writable if `write`). False
  // if there is none, or the queue broke (ready() says which).
  bool pop(Chain* c, bool write);
  // Chains the guest has made available and pop() has not taken (split:
  // exact; packed: 0 or 1, "some").
  uint32_t pending();
  // Give chain c back with `len` bytes written into it.
  void push(const Chain& c, uint32_t len);
  // Publish what push() wrote; true if the guest is to be interrupted.
  bool flush();
  // Ask for kicks (on) or not while the device polls. After turning them
  // on, call pending() again: the guest may have added chains meanwhile.
  void kicks(bool on);
  // The state to hand back on GET_VRING_BASE.
  uint32_t base() const;
  // For a debug log: where the device is and what the ring says there.
  std::string state();

 private:
  bool fail(const char* why);
  bool walk(uint64_t addr, uint32_t len, bool write, Chain* c);
  bool pop_split(Chain* c, bool write);
  bool pop_packed(Chain* c, bool write);

  const GuestMemory* mem_ = nullptr;
  uint16_t num_ = 0;
  bool packed_ = false, event_idx_ = false, indirect_ = false;
  bool broken_ = false;
  std::string why_;
  Desc* desc_ = nullptr;
  // split
  uint16_t* avail_ = nullptr;  // flags, idx, ring[num], used_event
  uint16_t* used_ = nullptr;   // flags, idx, then UsedElem ring[num], avail_event
  uint16_t last_avail_ = 0, avail_idx_ = 0;  // next to pop; the guest's idx as last read
  uint16_t used_idx_ = 0, signalled_ = 0;    // next to write; at the last notify decision
  // packed
  EventSuppress* driver_ev_ = nullptr;  // the guest's (interrupts)
  EventSuppress* device_ev_ = nullptr;  // ours (kicks)
  bool avail_wrap_ = true, used_wrap_ = true;
  uint16_t used_slot_ = 0;  // where the next used descriptor goes
  uint16_t batch_first_ = 0, batch_flags_ = 0;  // packed: the first used desc of the batch
  uint16_t batch_n_ = 0;
  bool batch_first_wrap_ = true;
  uint16_t signalled_off_ = 0;
  bool signalled_wrap_ = true;
  uint32_t unsignalled_ = 0;  // packed: descriptors used since the last flush
};

}  // namespace unetmap::vhost
