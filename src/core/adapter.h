// The adapter interface: one implementation per port type (src/ports/*),
// found through one table (src/ports/ports.cc). Like netmap's
// netmap_adapter, an adapter creates and destroys the shared state of its
// ports and does the port-specific half of txsync/rxsync. The shared half
// (validating what the application wrote, publishing tail, timestamps) is
// in core/sync.cc and runs before and after it; adapters never re-validate.
#pragma once

#include <net/netmap.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/engine.h"
#include "core/registry.h"
#include "mem/region.h"

namespace unetmap {

class Adapter;

// What the library read of one slot (netmap's kernel-side copy): read once,
// checked, then used instead of the slot. buf_idx 0 marks a slot that
// failed a check where failing cannot be an EINVAL (see sync.cc).
struct SlotCopy {
  uint32_t buf_idx;
  uint16_t len;
  uint16_t flags;
};

// Read buf_idx, len and flags of slot i in one load: the compiler cannot
// read the slot a second time.
inline SlotCopy read_slot(const netmap_slot* slot, uint32_t i) {
  const uint64_t w =
      __atomic_load_n(reinterpret_cast<const uint64_t*>(&slot[i]), __ATOMIC_RELAXED);
  SlotCopy c;
  __builtin_memcpy(&c, &w, sizeof c);
  return c;
}

struct Kring;

// The sync prologue's check of one slot handed over (core/sync.cc): it
// names a buffer of the region, its length fits a buffer (tx rings), and
// the buffer is the ring's own or is taken over from a port this process
// bound (Region::claim). Made once per sync, applied per slot; a port type
// that checks its own slots (Adapter::checks_slots) uses the same one.
struct SlotCheck {
  inline SlotCheck(const Kring& k, bool tx);
  bool operator()(const SlotCopy& s) const {
    if (s.buf_idx - 2u >= nbufs - 2u || s.len > bsize) return false;
    return tags[s.buf_idx] == tag || region->claim(s.buf_idx, tag);
  }
  const Region* region;
  const uint32_t* tags;
  uint32_t nbufs, bsize, tag;
};

// A process-local view of one ring of a bound port.
struct Kring {
  netmap_ring* ring = nullptr;  // the library's mapping of the ring
  KringState* ks = nullptr;
  Kring* peer = nullptr;  // pipes: the ring at the other end
  Region* region = nullptr;
  const Adapter* na = nullptr;
  void* priv = nullptr;  // port type's per-kring process-local state
  int port = -1;         // registry port index
  uint32_t nslots = 0;
  uint16_t id = 0;
  uint8_t dir = kTx;
  uint8_t host = 0;  // a host ring
  // Sized (nslots) by a port type that wants it (kring_init): the sync
  // prologue's copies of the slots handed over, by slot index, valid for
  // [hwcur, head) of the sync running (core/sync.cc). copy_lo/copy_hi is
  // the range this view left valid at its last sync (a pending
  // NS_MOREFRAG chain), so the next sync can tell whether another view
  // synced the ring meanwhile.
  std::vector<SlotCopy> copy;
  uint32_t copy_lo = ~0u, copy_hi = ~0u;
};

inline SlotCheck::SlotCheck(const Kring& k, bool tx)
    : region(k.region),
      tags(k.region->buf_tags()),
      nbufs(k.region->cfg().buf_num),
      bsize(tx ? k.region->cfg().buf_size : 0xffff),
      tag(k.ks->buf_tag) {}

// What a register asks of a port that may have to be created.
struct PortRequest {
  std::string name;  // without "netmap:" and without ring suffixes
  uint16_t mem_id = 0;          // 0: the port type's choice
  uint16_t nrings[2] = {0, 0};  // 0: the port type's default
  uint32_t nslots[2] = {0, 0};
  uint16_t nhost[2] = {0, 0};
};

class Adapter {
 public:
  virtual ~Adapter() = default;
  virtual PortKind kind() const = 0;
  virtual const char* type_name() const = 0;
  // Does this kernel-level port name belong to this type?
  virtual bool owns(std::string_view name) const = 0;
  // An existing port known to this type under another name (registry
  // locked); -1 if none. VALE: "valeX:Y" for persistent port Y on valeX.
  virtual int resolve(Registry&, std::string_view) const { return -1; }
  // Create port `p` (registry locked, name already set). 0 or errno; *why
  // explains a failure.
  virtual int create(Registry& reg, int p, const PortRequest& req, std::string* why) const = 0;
  // Free what create() made (registry locked). Default: every ring.
  virtual void destroy(Registry& reg, int p) const;
  // Per-kring process-local state of a bound ring (registry locked for
  // init); the default has none. 0 or errno, with *why.
  virtual int kring_init(Registry&, Kring&, std::string* why) const { return 0; }
  virtual void kring_fini(Kring&) const {}
  // A kernel fd that becomes readable when the ring may have work (NIC
  // ports: the socket under it), polled beside the wake-up channel; -1 if
  // none.
  virtual int kring_wait_fd(const Kring&) const { return -1; }
  // Move [ks->hwcur, head) out and refresh ks->hwtail.
  virtual void txsync(Kring& k, uint32_t head) const = 0;
  // Release [ks->hwcur, head) and refresh ks->hwtail.
  virtual void rxsync(Kring& k, uint32_t head) const = 0;
  // A port type whose syncs read every slot handed over anyway (pipes) may
  // check them in that same pass instead of the prologue's separate one:
  // then, for rings that no monitor watches, the prologue calls
  // txsync_checked/rxsync_checked instead of txsync/rxsync. They check each
  // slot of [ks->hwcur, head) (which is the prologue's range [rhead, head):
  // such a type keeps no pending slots) with SlotCheck, and return false
  // to refuse the sync, having published nothing and changed nothing the
  // application can see.
  virtual bool checks_slots() const { return false; }
  virtual bool txsync_checked(Kring&, uint32_t) const { return false; }
  virtual bool rxsync_checked(Kring&, uint32_t) const { return false; }
};

// The table of port types (src/ports/ports.cc).
const Adapter* adapter_for_name(std::string_view name);
const Adapter* adapter_for_kind(PortKind kind);
// The existing port called `name`, directly or through a port type's
// resolve(); -1 if none (registry locked).
int find_port_any(Registry& reg, std::string_view name);

// Helper for create(): make the rings of port p in region r (rx rings
// without buffers of their own if !rx_buffers).
int make_port_rings(Registry& reg, int p, Region& r, std::string* why, bool rx_buffers = true);

// Wake whoever armed a wait on ks (cheap when nobody did).
void notify(KringState* ks);

}  // namespace unetmap
