#include "ports/vhost/virtq.h"

#include <errno.h>

#include <atomic>
#include <cstring>

namespace unetmap::vhost {

namespace {

// Guest memory is written by the guest at any time: every field is loaded
// once, with the ordering the protocol asks for.
inline uint16_t load16(const uint16_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
inline uint16_t acquire16(const uint16_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
inline void store16(uint16_t* p, uint16_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
inline void release16(uint16_t* p, uint16_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
// One descriptor, copied out whole.
inline Desc load_desc(const Desc* d) {
  Desc c;
  const uint64_t* w = reinterpret_cast<const uint64_t*>(d);
  const uint64_t w0 = __atomic_load_n(&w[0], __ATOMIC_RELAXED), w1 = __atomic_load_n(&w[1], __ATOMIC_RELAXED);
  memcpy(reinterpret_cast<char*>(&c), &w0, 8);
  memcpy(reinterpret_cast<char*>(&c) + 8, &w1, 8);
  return c;
}

}  // namespace

int Virtq::setup(const GuestMemory& m, const VringConfig& c, std::string* why) {
  reset();
  if (c.num == 0 || c.num > kMaxQueueSize || (!c.packed && (c.num & (c.num - 1)))) {
    *why = "queue size " + std::to_string(c.num) + " (1 to 32768, a power of 2 for split rings)";
    return EINVAL;
  }
  const uint64_t n = c.num;
  desc_ = reinterpret_cast<Desc*>(m.uva(c.desc, 16 * n));
  if (c.packed) {
    driver_ev_ = reinterpret_cast<EventSuppress*>(m.uva(c.avail, sizeof(EventSuppress)));
    device_ev_ = reinterpret_cast<EventSuppress*>(m.uva(c.used, sizeof(EventSuppress)));
  } else {
    avail_ = reinterpret_cast<uint16_t*>(m.uva(c.avail, 6 + 2 * n));
    used_ = reinterpret_cast<uint16_t*>(m.uva(c.used, 6 + 8 * n));
  }
  // Aligned as virtio asks, both as the front end gave them and here (the
  // region's offsets are the front end's to choose too).
  auto misaligned = [](uint64_t a, const void* p, uint64_t m) {
    return (a & m) || (reinterpret_cast<uintptr_t>(p) & m);
  };
  const void* drv = c.packed ? static_cast<const void*>(driver_ev_) : avail_;
  const void* dev = c.packed ? static_cast<const void*>(device_ev_) : used_;
  if (!desc_ || !drv || !dev || misaligned(c.desc, desc_, 15) ||
      misaligned(c.avail, drv, c.packed ? 3 : 1) || misaligned(c.used, dev, 3)) {
    *why = "ring addresses outside the guest's memory or misaligned";
    reset();
    return EINVAL;
  }
  mem_ = &m;
  num_ = c.num;
  packed_ = c.packed;
  event_idx_ = c.event_idx;
  indirect_ = c.indirect;
  if (packed_) {
    last_avail_ = uint16_t(c.base & 0x7fff);
    avail_wrap_ = (c.base >> 15) & 1;  // a fresh ring: 0x8000 (index 0, wrap counter 1)
    if (last_avail_ >= num_) {
      *why = "ring base " + std::to_string(c.base) + " beyond the ring";
      reset();
      return EINVAL;
    }
    used_slot_ = last_avail_;
    used_wrap_ = avail_wrap_;
    signalled_off_ = used_slot_;
    signalled_wrap_ = used_wrap_;
    unsignalled_ = 0;
  } else {
    last_avail_ = uint16_t(c.base);
    avail_idx_ = last_avail_;
    // What the guest sees as used: everything before base was used (a
    // queue resumed after GET_VRING_BASE), whatever the ring says.
    used_idx_ = signalled_ = last_avail_;
  }
  return 0;
}

bool Virtq::fail(const char* why) {
  if (!broken_) why_ = why;
  broken_ = true;
  return false;
}

std::string Virtq::state() {
  if (!num_) return "not set up";
  char b[160];
  if (packed_)
    snprintf(b, sizeof b, "packed at %u wrap %d, desc flags 0x%x, device event flags %u", last_avail_,
             avail_wrap_, load16(&desc_[last_avail_].b), load16(&device_ev_->flags));
  else
    snprintf(b, sizeof b, "split at %u, avail idx %u, used idx %u", last_avail_, load16(&avail_[1]),
             load16(&used_[1]));
  return b;
}

uint32_t Virtq::base() const {
  return packed_ ? uint32_t(last_avail_) | uint32_t(avail_wrap_) << 15 : last_avail_;
}

// The buffer of one descriptor into segments of c (one per guest memory
// region it crosses).
bool Virtq::walk(uint64_t addr, uint32_t len, bool write, Chain* c) {
  (void)write;
  while (len) {
    uint64_t avail;
    uint8_t* p = mem_->gpa_span(addr, &avail);
    if (!p) return fail("a descriptor points outside the guest's memory");
    const uint32_t take = avail < len ? uint32_t(avail) : len;
    if (c->nsegs == Chain::kMaxSegs) {
      c->too_long = true;  // dropped (transmit) or not filled past here (receive); given back
    } else {
      c->seg[c->nsegs++] = Seg{p, take};
      c->len += take;  // only bytes a segment records: what the backend may write
    }
    addr += take;
    len -= take;
  }
  return true;
}

bool Virtq::pop(Chain* c, bool write) {
  if (!ready()) return false;
  c->nsegs = 0;
  c->len = 0;
  c->too_long = false;
  c->ndesc = 1;
  return packed_ ? pop_packed(c, write) : pop_split(c, write);
}

bool Virtq::pop_split(Chain* c, bool write) {
  if (last_avail_ == avail_idx_) {
    avail_idx_ = acquire16(&avail_[1]);
    if (uint16_t(avail_idx_ - last_avail_) > num_) return fail("avail index moved by more than the ring");
    if (last_avail_ == avail_idx_) return false;
  }
  const uint16_t head = load16(&avail_[2 + (last_avail_ & (num_ - 1))]);
  if (head >= num_) return fail("an avail entry names no descriptor");
  const Desc* table = desc_;
  uint32_t tnum = num_, i = head, seen = 0;
  bool nested = false;
  for (;;) {
    const Desc d = load_desc(&table[i]);
    const uint16_t flags = d.a;
    if (flags & kDescIndirect) {
      if (!indirect_ || nested || (flags & kDescNext)) return fail("a bad indirect descriptor");
      if (d.len == 0 || d.len % 16 || d.len / 16 > kMaxQueueSize)
        return fail("an indirect table of a bad length");
      table = reinterpret_cast<const Desc*>(mem_->gpa(d.addr, d.len));
      if (!table || (d.addr & 15)) return fail("an indirect table outside the guest's memory");
      tnum = d.len / 16;
      i = 0;
      seen = 0;
      nested = true;
      continue;
    }
    if (bool(flags & kDescWrite) != write)
      return fail(write ? "a receive buffer the device may not write" : "a transmit buffer marked writable");
    if (!walk(d.addr, d.len, write, c)) return false;
    if (!(flags & kDescNext)) break;
    i = d.b;
    if (i >= tnum || ++seen >= tnum) return fail("a descriptor chain that loops or leaves its table");
  }
  c->id = head;
  last_avail_++;
  return true;
}

bool Virtq::pop_packed(Chain* c, bool write) {
  uint16_t at = last_avail_;
  bool wrap = avail_wrap_;
  const uint16_t f0 = acquire16(&desc_[at].b);
  if (bool(f0 & kDescAvail) != wrap || bool(f0 & kDescUsed) == wrap) return false;
  uint16_t n = 0;
  for (;;) {
    const Desc d = load_desc(&desc_[at]);
    const uint16_t flags = d.b;
    n++;
    if (flags & kDescIndirect) {
      if (!indirect_ || n != 1 || (flags & kDescNext)) return fail("a bad indirect descriptor");
      if (d.len == 0 || d.len % 16 || d.len / 16 > kMaxQueueSize)
        return fail("an indirect table of a bad length");
      const Desc* table = reinterpret_cast<const Desc*>(mem_->gpa(d.addr, d.len));
      if (!table || (d.addr & 15)) return fail("an indirect table outside the guest's memory");
      for (uint32_t k = 0; k < d.len / 16; k++) {
        const Desc e = load_desc(&table[k]);
        if (e.b & kDescIndirect) return fail("a bad indirect descriptor");
        if (bool(e.b & kDescWrite) != write)
          return fail(write ? "a receive buffer the device may not write" : "a transmit buffer marked writable");
        if (!walk(e.addr, e.len, write, c)) return false;
      }
      c->id = d.a;
    } else {
      if (bool(flags & kDescWrite) != write)
        return fail(write ? "a receive buffer the device may not write" : "a transmit buffer marked writable");
      if (!walk(d.addr, d.len, write, c)) return false;
      c->id = d.a;  // the last descriptor's id names the buffer
    }
    if (++at == num_) {
      at = 0;
      wrap = !wrap;
    }
    if (!(flags & kDescNext) || (flags & kDescIndirect)) break;
    if (n >= num_) return fail("a descriptor chain longer than the ring");
    // The rest of a chain is made available before its first descriptor,
    // so its flags need no check of their own (as virtio says).
  }
  c->ndesc = n;
  last_avail_ = at;
  avail_wrap_ = wrap;
  return true;
}

uint32_t Virtq::pending() {
  if (!ready()) return 0;
  if (packed_) {
    const uint16_t f = acquire16(&desc_[last_avail_].b);
    return bool(f & kDescAvail) == avail_wrap_ && bool(f & kDescUsed) != avail_wrap_;
  }
  avail_idx_ = acquire16(&avail_[1]);
  const uint16_t n = uint16_t(avail_idx_ - last_avail_);
  if (n > num_) {
    fail("avail index moved by more than the ring");
    return 0;
  }
  return n;
}

void Virtq::push(const Chain& c, uint32_t len) {
  if (!num_) return;  // reset meanwhile: nothing to give back to
  if (packed_) {
    // id and len first, then the flags that hand the descriptor over.
    Desc* d = &desc_[used_slot_];
    __atomic_store_n(&d->a, c.id, __ATOMIC_RELAXED);
    __atomic_store_n(&d->len, len, __ATOMIC_RELAXED);
    const uint16_t f = used_wrap_ ? uint16_t(kDescAvail | kDescUsed) : 0;
    release16(&d->b, uint16_t(f | (len ? kDescWrite : 0)));
    used_slot_ = uint16_t(used_slot_ + c.ndesc);
    unsignalled_ += c.ndesc;
    if (used_slot_ >= num_) {
      used_slot_ = uint16_t(used_slot_ - num_);
      used_wrap_ = !used_wrap_;
    }
    return;
  }
  UsedElem* ring = reinterpret_cast<UsedElem*>(used_ + 2);
  UsedElem& e = ring[used_idx_ & (num_ - 1)];
  __atomic_store_n(&e.id, uint32_t(c.id), __ATOMIC_RELAXED);
  __atomic_store_n(&e.len, len, __ATOMIC_RELAXED);
  used_idx_++;
}

bool Virtq::flush() {
  if (!ready()) return false;
  if (packed_) {
    if (unsignalled_ == 0) return false;
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const uint16_t flags = load16(&driver_ev_->flags);
    bool need;
    if (flags == kEventEnable) {
      need = true;
    } else if (flags == kEventDisable) {
      need = false;
    } else {  // kEventDesc, with EVENT_IDX: the descriptor the guest waits for
      const uint16_t ow = load16(&driver_ev_->off_wrap);
      int32_t off = ow & 0x7fff;
      if (bool(ow >> 15) != used_wrap_) off -= num_;
      // Positions in a space where this lap starts at 0.
      const int32_t old_pos = signalled_off_ - (signalled_wrap_ != used_wrap_ ? num_ : 0);
      // A lap or more used since: the guest's descriptor was passed, whatever
      // the positions say (they repeat every lap).
      need = unsignalled_ >= num_ || uint16_t(used_slot_ - off - 1) < uint16_t(used_slot_ - old_pos);
    }
    signalled_off_ = used_slot_;
    signalled_wrap_ = used_wrap_;
    unsignalled_ = 0;
    return need;
  }
  const uint16_t old = signalled_;
  if (old == used_idx_) return false;
  release16(&used_[1], used_idx_);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  signalled_ = used_idx_;
  if (event_idx_) return need_event(load16(&avail_[2 + num_]), used_idx_, old);
  return !(load16(&avail_[0]) & kAvailNoInterrupt);
}

void Virtq::kicks(bool on) {
  if (!ready()) return;
  if (packed_) {
    if (on && event_idx_) {
      store16(&device_ev_->off_wrap, uint16_t(last_avail_ | uint16_t(avail_wrap_) << 15));
      release16(&device_ev_->flags, kEventDesc);
    } else {
      release16(&device_ev_->flags, on ? kEventEnable : kEventDisable);
    }
  } else if (event_idx_) {
    if (on) release16(&used_[2 + 4 * num_], last_avail_);  // avail_event: after used->ring[num]
  } else {
    release16(&used_[0], on ? 0 : kUsedNoNotify);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

}  // namespace unetmap::vhost
