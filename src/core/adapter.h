// The adapter interface: one implementation per port type (src/ports/*),
// found through one table (src/ports/ports.cc). Like netmap's
// netmap_adapter, an adapter creates and destroys the shared state of its
// ports and does the port-specific half of txsync/rxsync. The shared half
// (validating what the application wrote, publishing tail, timestamps) is
// in core/sync.cc and runs before and after it; adapters never re-validate.
#pragma once

#include <errno.h>
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

// Ranges of this process's memory where the application vouches that its
// NS_INDIRECT fragments may be read directly (unetmap_indirect_ranges);
// fragments elsewhere are read with a checked copy.
struct DirectRanges {
  struct Range {
    uintptr_t lo, hi;  // [lo, hi)
  };
  std::vector<Range> r;
  bool contains(uint64_t p, uint32_t len) const {
    for (const Range& x : r)
      if (p >= x.lo && p < x.hi && len <= x.hi - p) return true;
    return false;
  }
};

// A process-local view of one ring of a bound port.
struct Kring {
  netmap_ring* ring = nullptr;  // the library's mapping of the ring
  KringState* ks = nullptr;
  Kring* peer = nullptr;  // the partner's ring facing this one (a pipe's other end)
  Region* region = nullptr;
  const Adapter* na = nullptr;
  void* priv = nullptr;  // port type's per-kring process-local state
  int port = -1;         // registry port index
  uint32_t nslots = 0;
  uint16_t id = 0;
  uint8_t dir = kTx;
  uint8_t host = 0;  // a host ring
  bool stamp = false;  // an rx ring stamped at every rxsync (core/port.cc)
  const DirectRanges* direct = nullptr;  // tx rings: the binding's, if it set any
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

// A port type. Everything about the type lives in its folder of
// src/ports: this adapter (its name grammar, how its ports are made, kept
// and destroyed, its half of every sync), its shared state (PortEntry::ext
// through port_ext<T>, a table in the registry's type area, its kring
// state), and its line in the table of port types (src/ports/ports.cc).
// The core names no port type.
class Adapter {
 public:
  virtual ~Adapter() = default;
  // Its index in the table of port types: the kind stored in its ports'
  // registry entries.
  PortKind kind() const;

  // --- Names. A kernel-level name ("p{0", "valeX:Y", "null:x", "eth0")
  // belongs to the first type in the table that owns() it, types with
  // name_fallback() (they may claim any name no other type knows: the
  // interfaces of NIC ports) after the others.
  virtual bool owns(std::string_view name) const = 0;
  virtual bool name_fallback() const { return false; }
  // Names of this type, for the "no such port" message ("pipes (NAME{ID,
  // NAME}ID)"); nullptr if its ports are not opened by name (monitors).
  virtual const char* grammar() const { return nullptr; }
  // libnetmap's port specs: the length of a prefix of `spec` that this
  // type keeps in its kernel-level names ("valeX:" of "valeX:Y", "null:"),
  // 0 if none; and that prefix's form for messages ("valeX:NAME").
  virtual size_t spec_prefix(std::string_view spec) const { return 0; }
  virtual const char* spec_prefix_form() const { return nullptr; }
  // An existing port known to this type under another name (registry
  // locked); -1 if none. VALE: "valeX:Y" for persistent port Y on valeX.
  virtual int resolve(Registry&, std::string_view) const { return -1; }

  // A port of this type is made by a register of an existing port with
  // one of these NR_* flags (monitors: NR_MONITOR_TX/RX, NR_ZCOPY_MON), by
  // create_on() rather than create().
  virtual uint64_t register_flags() const { return 0; }
  virtual const char* flags_name() const { return ""; }  // "monitor"
  virtual int create_on(Registry& reg, int port, uint64_t flags, uint16_t mem_id, int* out,
                        std::string* why) const {
    return EINVAL;
  }

  // --- Life of a port (registry locked).
  // A fresh entry taken for this type (all zero but name, kind, state):
  // set up ext, before anything can read it.
  virtual void init_entry(PortEntry&) const {}
  // Create port `p` (name already set). 0 or errno; *why explains a
  // failure.
  virtual int create(Registry& reg, int p, const PortRequest& req, std::string* why) const = 0;
  // Free what create() made. Default: every ring.
  virtual void destroy(Registry& reg, int p) const;
  // A port made and destroyed together with p, whose rings p's rings
  // exchange buffers with (a pipe's other end); -1 if none.
  virtual int partner(const PortEntry&) const { return -1; }
  // The virtio-net header length of port `name` (netmap's virt_hdr_len,
  // NETMAP_REQ_PORT_HDR_GET/SET: 0, 10 or 12). Ports without one read 0
  // and refuse a change (EINVAL with *why).
  virtual int hdr_len(const std::string& name, uint32_t* len, std::string* why) const {
    *len = 0;
    return 0;
  }
  virtual int set_hdr_len(const std::string& name, uint32_t len, std::string* why) const {
    *why = "port '" + name + "': a virtio-net header length is set on VALE ports";
    return EINVAL;
  }
  // After a holder of the registry died: rebuild what this type derives
  // from the live port entries (VALE's switch port tables).
  virtual void recount(Registry&) const {}
  // Bytes of the registry's type area this type keeps its tables in.
  virtual uint32_t shared_size() const { return 0; }

  // --- Rings of a bound port.
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
  // Whether what arrives on this type's rx rings is put there by a
  // producer's txsync (pipes, VALE), which then runs the rx ring's taps,
  // rather than by the ring's own rxsync.
  virtual bool producer_fills_rx() const { return false; }
  // A port type whose syncs read every slot handed over anyway (pipes) may
  // check them in that same pass instead of the prologue's separate one:
  // then, for rings that no tap watches, the prologue calls
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
// The type a register with these flags makes on an existing port
// (Adapter::register_flags), nullptr if none.
const Adapter* adapter_for_flags(uint64_t flags);
const Adapter* adapter_for_kind(PortKind kind);
// The port type's name in the table ("pipe", "vale", ...); "" for none.
const char* kind_name(PortKind kind);
// The existing port called `name`, directly or through a port type's
// resolve(); -1 if none (registry locked).
int find_port_any(Registry& reg, std::string_view name);
// The partner of port p (Adapter::partner) if it names p back; else -1.
int port_partner(Registry& reg, int p);
// Every port type's Adapter::recount.
void recount_port_types(Registry& reg);
// The start of port type `na`'s table in the registry's type area.
void* type_area(Registry& reg, const Adapter& na);
// The grammar of every port type, for a "no such port" message.
std::string port_grammars();
// libnetmap: the length of the prefix a port type keeps in its names at
// the start of `spec` (0 if none), and the list of prefixes for messages
// ("valeX:NAME or null:NAME").
size_t kept_spec_prefix(std::string_view spec);
std::string kept_spec_prefixes();

// Helper for create(): make the rings of port p in region r (rx rings
// without buffers of their own if !rx_buffers).
int make_port_rings(Registry& reg, int p, Region& r, std::string* why, bool rx_buffers = true);

// Wake whoever armed a wait on ks (cheap when nobody did).
void notify(KringState* ks);

}  // namespace unetmap
