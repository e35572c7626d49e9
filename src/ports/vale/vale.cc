// VALE: netmap's software Ethernet switch, "valeX:Y" (switch valeX, port Y).
//
// The switch and an ephemeral port are created by the first register of a
// name; the port goes with its last registration, the switch with its last
// port. Each port has tx and rx rings with buffers of their own, in a
// private region unless the name asks for one (@N), as netmap's VALE ports
// have private allocators; forwarding therefore always copies.
//
// Forwarding runs in the sender's txsync (sender's context, no daemon):
//  1. the complete packets in [hwcur, head) (NS_MOREFRAG chains, up to 64
//     KiB) are looked up: learning bridge by default, learning the source
//     MAC unless the slot has NS_NO_LEARN. The slots are read from the sync
//     prologue's checked copy (Kring::copy, core/sync.cc), never from the
//     ring: an incomplete chain stays in [hwcur, rhead) until its last
//     fragment comes, and rewriting its slots meanwhile changes nothing
//     (if another process synced the ring meanwhile, they are read and
//     checked again, and a packet with a bad one is dropped, counted in
//     the tx ring's drops). The lookup is given the first fragment's
//     length, which lies within its buffer;
//  2. for each destination port, a lease of slots on one of its rx rings is
//     taken under that ring's lease_lock (a short critical section), the
//     packets are copied outside the lock, and the lease is marked done; the
//     ring's hwtail advances over done leases in reservation order, so
//     several senders fill one ring concurrently and publish in order;
//  3. the copy is the packet engine's (core/engine.h): each fragment goes
//     to slots of its own, split over a NS_MOREFRAG chain where the
//     destination's buffers are shorter, so a receiver never sees a
//     length beyond its buffer; a destination without room for all of a
//     packet drops it (counted in its rx ring's fwd_drops). The sender
//     never blocks.
//
// NS_INDIRECT (netmap: VALE tx rings only): a fragment's bytes are at the
// user address slot->ptr in the sender's memory, not in its buffer. The
// sender is the process running this txsync, so they are read with
// process_vm_readv on itself (one call for a batch of good addresses) into
// a per-kring staging area (a buffer per slot, allocated at the first
// indirect packet): a bad address is an error (EFAULT) there, never a
// fault, and drops its packet (counted in the tx ring's drops; netmap
// delivers it with length 0). ptr is read from the ring once, when the
// batch is forwarded; len is the prologue's checked copy, so it fits a
// buffer as for a direct slot. The lookup and every copy then read the
// staged bytes: one snapshot of the frame, whatever the application
// writes meanwhile. Normal slots pay one test of a flag already loaded.
//
// A sender killed while holding a lease leaves it undone: whoever next
// publishes on that ring (or the receiver's rxsync, when the ring stalls)
// sees the owner is dead and, once every later lease is done, closes the
// hole by moving the later slots down (swapping descriptors, so no buffer
// is lost) and frees the dead lease's slots.
//
// The sender keeps a process-local view of the switch (destination rings,
// their regions) per tx kring, rebuilt when the switch's gen changes. A
// destination ring being destroyed is marked dead and drained under its
// lease_lock, and its gen changes: a sender with a stale view finds out
// under the lock and backs off, so it never writes a ring it no longer owns.
#include "ports/vale/vale.h"

#include <errno.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string_view>
#include <vector>

#include "core/adapter.h"
#include "core/lease.h"
#include "core/tap.h"
#include "ports/monitor/monitor.h"  // kMonitorTxSlots: a private region has room for monitors

namespace unetmap {

namespace {



// ---- lookups ----

inline uint64_t mac_of(const uint8_t* p) {
  return uint64_t(p[0]) << 40 | uint64_t(p[1]) << 32 | uint64_t(p[2]) << 24 |
         uint64_t(p[3]) << 16 | uint64_t(p[4]) << 8 | uint64_t(p[5]);
}
inline uint32_t mac_hash(uint64_t mac) {
  uint64_t h = mac * 0x9e3779b97f4a7c15ull;
  return uint32_t(h >> 54) & (kMacTable - 1);
}
constexpr uint64_t kMacValid = 1ull << 63;

uint32_t learning_lookup(const uint8_t* pkt, uint32_t len, const ValeLookupCtx& c) {
  if (len < 14) return kValeDrop;
  const uint64_t src = mac_of(pkt + 6), dst = mac_of(pkt);
  if (!(c.slot_flags & NS_NO_LEARN) && !(pkt[6] & 1)) {
    uint64_t e = kMacValid | uint64_t(c.src_port) << 48 | src;
    std::atomic<uint64_t>& slot = c.sw->mac[mac_hash(src)];
    if (slot.load(std::memory_order_relaxed) != e) slot.store(e, std::memory_order_relaxed);
  }
  if (pkt[0] & 1) return kValeBroadcast;  // broadcast and multicast
  uint64_t e = c.sw->mac[mac_hash(dst)].load(std::memory_order_relaxed);
  if ((e & kMacValid) && (e & 0xffffffffffffull) == dst) {
    uint32_t port = uint32_t(e >> 48) & 0x7fff;
    return port == c.src_port ? kValeDrop : port;
  }
  return kValeBroadcast;  // unknown destination: flood
}

uint32_t hub_lookup(const uint8_t*, uint32_t, const ValeLookupCtx&) { return kValeBroadcast; }

// For a switch whose lookup this process does not know: it cannot forward.
uint32_t unknown_lookup(const uint8_t*, uint32_t, const ValeLookupCtx&) { return kValeDrop; }

struct LookupEntry {
  std::string name;
  ValeLookupFn fn;
};
std::mutex g_lookup_mu;
std::vector<LookupEntry>& lookups() {
  static std::vector<LookupEntry> v = {{"learning", learning_lookup}, {"hub", hub_lookup}};
  return v;
}
ValeLookupFn find_lookup(const char* name) {
  std::lock_guard<std::mutex> g(g_lookup_mu);
  std::string_view n = name[0] ? name : "learning";
  for (auto& e : lookups())
    if (e.name == n) return e.fn;
  return nullptr;
}

// ---- names, switches, regions ----

// "valeX:Y" -> "valeX", "Y"
bool split_name(std::string_view name, std::string* sw, std::string* port) {
  if (name.substr(0, 4) != "vale") return false;
  size_t colon = name.find(':');
  if (colon == std::string_view::npos || colon + 1 >= name.size()) return false;
  *sw = std::string(name.substr(0, colon));
  *port = std::string(name.substr(colon + 1));
  return true;
}

int find_switch(Registry& reg, const std::string& name) {
  for (uint32_t i = 0; i < kMaxSwitches; i++)
    if (vale_switch(reg, int(i)).in_use && name == vale_switch(reg, int(i)).name) return int(i);
  return -1;
}

int alloc_switch(Registry& reg, const std::string& name) {
  for (uint32_t i = 0; i < kMaxSwitches; i++) {
    SwitchEntry& s = vale_switch(reg, int(i));
    if (s.in_use) continue;
    snprintf(s.name, sizeof s.name, "%s", name.c_str());
    s.lookup[0] = 0;
    s.nports = 0;
    for (auto& p : s.ports) p = -1;
    for (auto& m : s.mac) m.store(0, std::memory_order_relaxed);
    s.gen.fetch_add(1);
    s.in_use = 1;
    return int(i);
  }
  return -1;
}

// A private region for one port, sized for its rings (netmap's private
// allocator of a VALE port): ids from 1000 up, the first one free.
uint16_t pick_private_region(Registry& reg) {
  for (uint32_t id = 1000; id <= Region::kMaxId; id++) {
    bool used = false;
    for (const PortEntry& o : reg.file()->ports)
      if (o.kind != kNoPort && o.mem_id == id) used = true;
    struct stat st;
    if (!used && stat((runtime_dir() + "/" + Region::file_name(uint16_t(id))).c_str(), &st) != 0)
      return uint16_t(id);
  }
  return 0;
}

// As vale-ctl documents (netmap itself bounds VALE rings at 4096 slots).
constexpr uint32_t kMaxValeSlots = 65536;
// The pipes a VALE port's private region has room for: netmap's default
// for the private allocator of a VALE port (2), with rings of up to
// kPrivatePipeSlots (pipes' default): sizing them from the port's own rings
// made a 65536-slot port's region 1.7 GB (found by tests/fuzz/nmreq_fuzz).
constexpr uint32_t kPrivatePipes = 2;
constexpr uint32_t kPrivatePipeSlots = 1024;
// The largest private region a VALE port may ask for (its rings and the
// room for monitors scale with rings x slots: 64 rings of 65536 slots made
// a 15 GB region, reserved up front, found by tests/fuzz/nmreq_fuzz).
constexpr uint64_t kMaxPrivateBytes = 1ull << 30;

RegionConfig private_config(const PortEntry& pe) {
  RegionConfig c = RegionConfig::from_env();
  uint32_t rings = 0, bufs = 0, max_slots = 0;
  for (int d : {kTx, kRx}) {
    rings += pe.nrings[d] + pe.nhost[d];
    bufs += (pe.nrings[d] + pe.nhost[d]) * pe.nslots[d];
    if (pe.nslots[d] > max_slots) max_slots = pe.nslots[d];
  }
  // Room for kMaxMonitors copy monitors too: their rings live in the
  // region of the port they watch (the file is sparse: unused room is free).
  const uint32_t mon_rings = kMaxMonitors * std::max(pe.nrings[kTx], pe.nrings[kRx]);
  // And the pipes netmap's private allocator has room for (lb opens its
  // output pipes in its input port's region): netmap adds 8 ring objects
  // per pipe of kPrivatePipes; a pipe here takes 4 (its rx rings are the
  // other end's tx rings, without buffers of their own), so that is room
  // for 2 * kPrivatePipes pipes of kPrivatePipeSlots, buffers included.
  const uint32_t pipe_rings = 8 * kPrivatePipes;
  const uint32_t pipe_bufs = 2 * kPrivatePipes * 2 * std::min(max_slots, kPrivatePipeSlots);
  c.ring_num = rings + mon_rings + kMaxMonitors + pipe_rings;  // each monitor has a tx ring too
  c.ring_size = uint32_t((sizeof(netmap_ring) + sizeof(netmap_slot) * max_slots + 4095) & ~4095ull);
  c.buf_num = bufs + mon_rings * max_slots + kMaxMonitors * kMonitorTxSlots + pipe_bufs + 2 +
              256;  // reserved, plus extra buffers
  c.if_num = 64;
  c.if_size = 1024;
  return c;
}

// ---- the sender's view of the switch ----

// The longest packet a VALE port takes (64 KiB, as netmap's switch).
constexpr uint32_t kMaxFrame = 65535;

struct RxView {
  KringState* ks;
  netmap_ring* ring;
  uint32_t gen;
  uint32_t tag;  // ks->buf_tag, read once: that line is the receiver's hot one
};

struct DstPort {
  std::shared_ptr<Region> region;
  std::vector<RxView> rx;
};

struct FwdPkt {
  uint32_t first;  // first tx slot
  uint32_t nslots;
  uint32_t dst;  // switch port, kValeBroadcast or kValeDrop
  uint32_t next;  // next packet to the same destination (unicast lists)
  uint32_t len;
};

struct ValeKring {
  Registry* reg = nullptr;  // the process's registry mapping
  int sw = -1;
  uint16_t me = 0;
  uint32_t sw_gen = ~0u;
  ValeLookupFn lookup = learning_lookup;
  std::vector<DstPort> dst;        // by switch port index
  std::vector<uint16_t> active;    // switch ports other than me
  std::vector<FwdPkt> ft;          // this batch
  std::vector<uint32_t> list_head;  // by switch port: first packet, ~0u none
  std::vector<uint32_t> list_tail;  // by switch port: last packet
  std::vector<uint32_t> order;      // packets for one destination, in order
  std::vector<uint32_t> need;       // their slots there, where not one per fragment
  uint32_t maxlen = 0;              // the batch's longest fragment
  std::unique_ptr<char[]> stage;    // NS_INDIRECT fragments, one buffer per slot
  std::vector<uint8_t> staged;      // by slot: its fragment is in stage
};

// Read the NS_INDIRECT fragments of tx slots [from, to) from the sender's
// memory into v.stage, each at its slot's place, with as few system calls
// as the addresses allow (one for a batch of good ones); v.staged[j] says
// whether slot j's bytes are there. A fragment whose address cannot be read
// is left unstaged and the reads go on after it.
void stage_indirect(const Kring& k, ValeKring& v, uint32_t from, uint32_t to) {
  const size_t ssize = k.region->cfg().buf_size;
  if (!v.stage) {
    v.stage.reset(new (std::nothrow) char[size_t(k.nslots) * ssize]);
    v.staged.assign(k.nslots, 0);
  }
  constexpr size_t kIov = 128;
  iovec local[kIov], remote[kIov];
  uint32_t slot_of[kIov];
  size_t n = 0;
  auto flush = [&] {
    for (size_t i = 0; i < n;) {
      const ssize_t got = process_vm_readv(my_pid(), local + i, n - i, remote + i, n - i, 0);
      if (got < 0 && errno != EFAULT) {
        if (errno == ENOSYS || errno == EPERM) {
          static std::once_flag once;
          std::call_once(once, [] {
            fprintf(stderr,
                    "unetmap: process_vm_readv is not allowed here (seccomp?): NS_INDIRECT "
                    "packets on VALE ports are dropped\n");
          });
        }
        break;  // the rest stay unstaged
      }
      // Whole elements up to the first one that failed (or was cut short).
      size_t acc = 0;
      for (; i < n && acc + local[i].iov_len <= size_t(got < 0 ? 0 : got); i++) {
        acc += local[i].iov_len;
        v.staged[slot_of[i]] = 1;
      }
      i++;  // element i could not be read: skip it
    }
    n = 0;
  };
  if (!v.stage) return;
  const SlotCopy* c = k.copy.data();
  const volatile netmap_slot* slot = k.ring->slot;
  for (uint32_t j = from; j != to; j = next_slot(j, k.nslots)) {
    if (!(c[j].flags & NS_INDIRECT)) continue;
    v.staged[j] = c[j].len == 0;
    if (c[j].len == 0) continue;
    const uint64_t ptr = slot[j].ptr;  // read once, here
    if (ptr == 0) continue;
    local[n] = iovec{v.stage.get() + size_t(j) * ssize, c[j].len};
    remote[n] = iovec{reinterpret_cast<void*>(uintptr_t(ptr)), c[j].len};
    slot_of[n++] = j;
    if (n == kIov) flush();
  }
  flush();
}

// Whether every NS_INDIRECT fragment of the packet at tx slots
// first..first+ns was staged; the first indirect packet of a forward()
// stages the rest of its batch.
bool indirect_ready(const Kring& k, ValeKring& v, uint32_t first, uint32_t ns, uint32_t head,
                    bool* staged) {
  if (!*staged) {
    stage_indirect(k, v, first, head);
    *staged = true;
  }
  if (!v.stage) return false;
  const SlotCopy* c = k.copy.data();
  for (uint32_t s = 0, j = first; s < ns; s++, j = next_slot(j, k.nslots))
    if ((c[j].flags & NS_INDIRECT) && !v.staged[j]) return false;
  return true;
}

void refresh(Registry& reg, ValeKring& v) {
  SwitchEntry& s = vale_switch(reg, v.sw);
  v.sw_gen = s.gen.load();
  v.lookup = find_lookup(s.lookup);
  if (!v.lookup) {
    fprintf(stderr,
            "unetmap: switch %s uses lookup '%s', which this process has not registered "
            "(vale_register_lookup): its packets are dropped\n",
            s.name, s.lookup);
    v.lookup = unknown_lookup;
  }
  v.active.clear();
  v.dst.assign(kSwitchPorts, DstPort{});
  for (uint32_t i = 0; i < kSwitchPorts; i++) {
    int p = s.ports[i];
    if (p < 0 || i == v.me) continue;
    const PortEntry& pe = reg.port(p);
    // The table and the port must agree (both are shared memory).
    if (!is_vale_port(pe) || vale_port(pe).sw != v.sw || vale_port(pe).sw_port != i) continue;
    int err = 0;
    DstPort d;
    d.region = Region::get(pe.mem_id, RegionConfig::from_env(), &err);
    if (!d.region) continue;
    for (uint32_t r = 0; r < pe.nrings[kRx] && r <= kMaxRings; r++) {
      if (d.region->ring_port(pe.ring[kRx][r]) != p) continue;  // not its ring: never written
      KringState* ks = d.region->kring(pe.ring[kRx][r]);
      d.rx.push_back(RxView{ks, d.region->ring(pe.ring[kRx][r]), ks->gen.load(), ks->buf_tag});
    }
    v.dst[i] = std::move(d);
    v.active.push_back(uint16_t(i));
  }
}

// The fragments of packet f: the prologue's checked copy of its tx slots,
// read from the sender's buffers (or, NS_INDIRECT, from the staging area).
struct PktFrags {
  const Kring& k;
  const FwdPkt& f;
  const char* stage;
  uint32_t ssize;
  Frag operator()(uint32_t i) const {
    const uint32_t j = ring_add(f.first, i, k.nslots);
    const SlotCopy& s = k.copy[j];
    const char* b = __builtin_expect(s.flags & NS_INDIRECT, 0) ? stage + size_t(j) * ssize  // staged by forward()
                                                                : k.region->buf(s.buf_idx);
    return Frag{reinterpret_cast<const uint8_t*>(b), s.len};
  }
};

// The buffer of a destination rx slot, which its receiver may have written:
// only a buffer of that ring takes a copy.
struct RxBufs {
  const Region& r;
  uint32_t nbufs, tag;
  uint8_t* operator()(uint32_t b) const {
    if (b < 2 || b >= nbufs || r.buf_tag(b) != tag) return nullptr;
    return reinterpret_cast<uint8_t*>(r.buf(b));
  }
};

class ValeAdapter final : public Adapter {
 public:
  bool owns(std::string_view name) const override {
    std::string sw, port;
    return split_name(name, &sw, &port) && name.find_first_of("{}") == std::string_view::npos;
  }
  const char* grammar() const override {
    return "VALE ports (valeX:Y) and persistent VALE ports made with vale-ctl -n";
  }
  // "valeX:" stays in the name, as in libnetmap.
  size_t spec_prefix(std::string_view spec) const override {
    if (spec.substr(0, 4) != "vale") return 0;
    size_t i = 4;
    while (i < spec.size() && (isalnum(static_cast<unsigned char>(spec[i])) || spec[i] == '_')) i++;
    return i < spec.size() && spec[i] == ':' ? i + 1 : 0;
  }
  const char* spec_prefix_form() const override { return "valeX:NAME"; }

  void init_entry(PortEntry& pe) const override { vale_port(pe).sw = -1; }
  // Senders fill the rx rings, in their txsync.
  bool producer_fills_rx() const override { return true; }
  uint32_t shared_size() const override { return sizeof(SwitchEntry) * kMaxSwitches; }

  // A switch's port table from the ports (a port's sw and sw_port are
  // written last when it is attached).
  void recount(Registry& reg) const override {
    for (uint32_t s = 0; s < kMaxSwitches; s++) {
      SwitchEntry& sw = vale_switch(reg, int(s));
      for (auto& q : sw.ports) q = -1;
      sw.nports = 0;
    }
    for (uint32_t i = 0; i < kMaxPorts; i++) {
      PortEntry& pe = reg.port(int(i));
      ValePortExt& vp = vale_port(pe);
      if (!is_vale_port(pe) || vp.sw < 0) continue;
      SwitchEntry& sw = vale_switch(reg, vp.sw);
      if (uint32_t(vp.sw) >= kMaxSwitches || !sw.in_use || vp.sw_port >= kSwitchPorts ||
          sw.ports[vp.sw_port] >= 0) {
        vp.sw = -1;
        continue;
      }
      sw.ports[vp.sw_port] = int16_t(i);
      sw.nports++;
    }
    for (uint32_t s = 0; s < kMaxSwitches; s++) {
      SwitchEntry& sw = vale_switch(reg, int(s));
      if (sw.in_use && sw.nports == 0) sw.in_use = 0;
      sw.gen.fetch_add(1);
    }
  }

  int create(Registry& reg, int p, const PortRequest& req, std::string* why) const override {
    std::string swname, portname;
    if (!split_name(req.name, &swname, &portname)) {
      *why = "VALE port name '" + req.name + "' is not valeX:Y";
      return EINVAL;
    }
    if (int err = make_port(reg, p, req, why)) return err;
    int err = attach(reg, p, swname, why);
    if (err) Adapter::destroy(reg, p);  // give the rings back
    return err;
  }

  // A VALE port's rings, in its own private region unless req.mem_id.
  static int make_port(Registry& reg, int p, const PortRequest& req, std::string* why) {
    PortEntry& pe = reg.port(p);
    for (int d : {kTx, kRx}) {
      pe.nrings[d] = req.nrings[d] ? req.nrings[d] : 1;
      pe.nslots[d] = req.nslots[d] ? req.nslots[d] : 1024;
      if (pe.nrings[d] > kMaxRings) {
        *why = "VALE ports have at most " + std::to_string(kMaxRings) + " rings";
        return EINVAL;
      }
      // The private region is sized from these: an unbounded count made a
      // region of gigabytes (found by tests/fuzz/nmreq_fuzz).
      if (pe.nslots[d] > kMaxValeSlots) {
        *why = "VALE rings have at most " + std::to_string(kMaxValeSlots) + " slots";
        return EINVAL;
      }
    }
    RegionConfig cfg = RegionConfig::from_env();
    pe.mem_id = req.mem_id;
    if (!pe.mem_id) {
      pe.mem_id = pick_private_region(reg);
      cfg = private_config(pe);
      if (!pe.mem_id) {
        *why = "no free region id for a private VALE region";
        return ENOMEM;
      }
      const uint64_t bytes = uint64_t(cfg.buf_num) * cfg.buf_size + uint64_t(cfg.ring_num) * cfg.ring_size;
      if (bytes > kMaxPrivateBytes) {
        *why = "a VALE port of " + std::to_string(pe.nrings[kTx]) + "/" + std::to_string(pe.nrings[kRx]) +
               " rings of " + std::to_string(pe.nslots[kTx]) + "/" + std::to_string(pe.nslots[kRx]) +
               " slots needs a private region of " + std::to_string(bytes >> 20) + " MB (with room for " +
               "monitors and pipes): at most " + std::to_string(kMaxPrivateBytes >> 20) +
               " MB; use fewer rings or slots, or a shared region (@N)";
        return ENOMEM;
      }
    }
    int err = 0;
    auto region = Region::get(pe.mem_id, cfg, &err, why);
    if (!region) return err;
    return make_port_rings(reg, p, *region, why);
  }

  // Put port p on switch swname (made if needed).
  static int attach(Registry& reg, int p, const std::string& swname, std::string* why) {
    ValePortExt& vp = vale_port(reg.port(p));
    int s = find_switch(reg, swname);
    if (s < 0 && (s = alloc_switch(reg, swname)) < 0) {
      *why = "too many VALE switches (" + std::to_string(kMaxSwitches) + ")";
      return ENOMEM;
    }
    SwitchEntry& sw = vale_switch(reg, s);
    uint32_t slot = 0;
    while (slot < kSwitchPorts && sw.ports[slot] >= 0) slot++;
    if (slot == kSwitchPorts) {
      *why = "switch " + swname + " is full (" + std::to_string(kSwitchPorts) + " ports)";
      release_switch_if_empty(reg, s);
      return ENOSPC;
    }
    // The port's sw is written last: it is what a repair trusts.
    sw.ports[slot] = int16_t(p);
    sw.nports++;
    vp.sw_port = uint16_t(slot);
    vp.sw = int16_t(s);
    sw.gen.fetch_add(1);
    return 0;
  }

  // "valeX:Y" where Y is a persistent port attached to valeX.
  int resolve(Registry& reg, std::string_view name) const override {
    std::string swname, portname;
    if (!split_name(name, &swname, &portname)) return -1;
    int p = reg.find_port(portname.c_str());
    if (p < 0 || !is_vale_port(reg.port(p)) || vale_port(reg.port(p)).sw < 0) return -1;
    return swname == vale_switch(reg, vale_port(reg.port(p)).sw).name ? p : -1;
  }

  void destroy(Registry& reg, int p) const override {
    PortEntry& pe = reg.port(p);
    int err = 0;
    auto region = Region::get(pe.mem_id, RegionConfig::from_env(), &err);
    if (vale_port(pe).sw >= 0) detach(reg, p);
    if (region)
      for (uint32_t r = 0; r < pe.nrings[kRx] && r <= kMaxRings; r++)
        if (region->ring_port(pe.ring[kRx][r]) == p) drain(region->kring(pe.ring[kRx][r]));
    Adapter::destroy(reg, p);
  }

  int kring_init(Registry& reg, Kring& k, std::string*) const override {
    if (k.dir != kTx || k.host) return 0;
    k.copy.assign(k.nslots, SlotCopy{0, 0, 0});  // the prologue's copy of what is handed over
    auto* v = new ValeKring;
    v->reg = &reg;
    v->ft.resize(k.nslots);
    v->order.reserve(k.nslots);
    v->need.reserve(k.nslots);
    v->list_head.assign(kSwitchPorts, ~0u);
    v->list_tail.assign(kSwitchPorts, ~0u);
    rebind(reg, k, *v);
    k.priv = v;
    return 0;
  }

  // The port may be attached or detached while open (persistent ports).
  static void rebind(Registry& reg, const Kring& k, ValeKring& v) {
    const PortEntry& pe = reg.port(k.port);
    v.sw = vale_port(pe).sw;
    v.me = vale_port(pe).sw_port;
    if (v.sw >= 0) refresh(reg, v);
  }

  void kring_fini(Kring& k) const override {
    delete static_cast<ValeKring*>(k.priv);
    k.priv = nullptr;
  }

  void txsync(Kring& k, uint32_t head) const override {
    KringState* ts = k.ks;
    auto* v = static_cast<ValeKring*>(k.priv);
    const uint32_t n = k.nslots;
    uint32_t done = ts->hwcur.load(std::memory_order_relaxed);
    if (v && vale_port(v->reg->port(k.port)).sw != v->sw) {
      RegistryLock g(*v->reg);
      if (g.ok()) rebind(*v->reg, k, *v);
    }
    if (v && v->sw >= 0 && done != head) done = forward(k, *v, head);
    else done = head;  // a port on no switch: packets go nowhere
    ts->hwcur.store(done, std::memory_order_relaxed);
    ts->hwtail.store(prev_slot(done, n), std::memory_order_relaxed);
  }

  void rxsync(Kring& k, uint32_t head) const override {
    KringState* s = k.ks;
    uint32_t old = s->hwcur.load(std::memory_order_relaxed);
    if (head != old) {
      s->packets += ring_dist(old, head, k.nslots);
      s->hwcur.store(head, std::memory_order_release);
    }
    // A ring that stalls behind an old lease may be waiting for a dead sender.
    reclaim_stalled(s, k.ring, head);
  }

 private:
  static void release_switch_if_empty(Registry& reg, int s) {
    SwitchEntry& sw = vale_switch(reg, s);
    if (sw.nports == 0) sw.in_use = 0;
  }

 public:
  static void detach(Registry& reg, int p) {
    ValePortExt& vp = vale_port(reg.port(p));
    if (uint32_t(vp.sw) >= kMaxSwitches || vp.sw_port >= kSwitchPorts ||
        vale_switch(reg, vp.sw).ports[vp.sw_port] != p) {
      vp.sw = -1;  // not (or not yet) in the switch's table
      return;
    }
    SwitchEntry& sw = vale_switch(reg, vp.sw);
    sw.ports[vp.sw_port] = -1;
    sw.nports--;
    sw.gen.fetch_add(1);
    for (auto& m : sw.mac) {
      uint64_t e = m.load(std::memory_order_relaxed);
      if ((e & kMacValid) && ((e >> 48) & 0x7fff) == vp.sw_port) m.store(0, std::memory_order_relaxed);
    }
    release_switch_if_empty(reg, vp.sw);
    vp.sw = -1;
  }

 private:

  // No new leases; wait (bounded) for the pending ones to finish or their
  // owners to be found dead.
  static void drain(KringState* ks) {
    const uint64_t deadline = mono_ns() + 1000000000ull;
    for (;;) {
      {
        LeaseGuard g(ks);
        if (!g.ok()) return;
        ks->dead = 1;
        bool live = false;
        for (uint32_t k = 0; k < ks->lease_count; k++) {
          const Lease& l = ks->leases[(ks->lease_first + k) % kMaxLeases];
          if (!l.done && l.owner.alive()) live = true;
        }
        if (!live || mono_ns() > deadline) return;
      }
      sched_yield();
    }
  }

  // Forward the complete packets of [hwcur, head); return the new hwcur.
  // The slots are the prologue's checked copies (k.copy), never the ring.
  static uint32_t forward(Kring& k, ValeKring& v, uint32_t head) {
    SwitchEntry& sw = vale_switch(*v.reg, v.sw);
    if (sw.gen.load(std::memory_order_acquire) != v.sw_gen) {
      RegistryLock g(*v.reg);
      if (!g.ok()) return head;  // no view of the switch: the batch is dropped
      refresh(*v.reg, v);
    }
    const uint32_t n = k.nslots;
    const SlotCopy* c = k.copy.data();
    uint32_t j = k.ks->hwcur.load(std::memory_order_relaxed);
    uint32_t npkts = 0, nbcast = 0, nbad = 0, bcast_head = ~0u, bcast_tail = ~0u, maxlen = 0;
    uint64_t bytes = 0;
    bool staged = false;  // NS_INDIRECT fragments of this batch read yet
    for (uint16_t p : v.active) v.list_head[p] = ~0u;
    ValeLookupCtx ctx{&sw, v.me, k.id, 0};
    // 1. cut the batch into packets and look each one up
    while (j != head) {
      const uint32_t first = j;
      const FrameSpan fs = frame_at(c, j, ring_dist(j, head, n), n);
      if (fs.nslots == 0) break;  // wait for the rest of the packet
      const uint32_t ns = fs.nslots, len = fs.len;
      j = ring_add(j, ns, n);
      const SlotCopy& s0 = c[first];
      ctx.slot_flags = s0.flags;
      uint32_t dst;
      if (fs.buf0 || len > kMaxFrame || ns > NETMAP_MAX_FRAGS ||
          (__builtin_expect(fs.flags & NS_INDIRECT, 0) &&
           !indirect_ready(k, v, first, ns, head, &staged))) {
        dst = kValeDrop;  // a slot rewritten after it was accepted, too long a packet,
        nbad++;           // or an NS_INDIRECT address that cannot be read
      } else {
        // s0.len fits the buffer (checked by the prologue): the lookup reads no further.
        const char* b0 = __builtin_expect(s0.flags & NS_INDIRECT, 0)
                             ? v.stage.get() + size_t(first) * k.region->cfg().buf_size
                             : k.region->buf(s0.buf_idx);
        dst = v.lookup(reinterpret_cast<const uint8_t*>(b0), s0.len, ctx);
      }
      if (dst != kValeBroadcast && dst != kValeDrop &&
          (dst >= kSwitchPorts || dst == v.me || v.dst[dst].rx.empty()))
        dst = kValeDrop;  // back to the sender, or to no port: dropped, as netmap does
      v.ft[npkts] = FwdPkt{first, ns, dst, ~0u, len};
      if (fs.maxlen > maxlen) maxlen = fs.maxlen;
      bytes += len;
      if (dst == kValeBroadcast) {
        if (bcast_tail == ~0u) bcast_head = npkts;
        else v.ft[bcast_tail].next = npkts;
        bcast_tail = npkts;
        nbcast++;
      } else if (dst != kValeDrop) {
        if (v.list_head[dst] == ~0u) v.list_head[dst] = npkts;
        else v.ft[v.list_tail[dst]].next = npkts;
        v.list_tail[dst] = npkts;
      }
      npkts++;
    }
    // 2. deliver, destination by destination (broadcasts go to every port)
    v.maxlen = maxlen;
    for (uint16_t p : v.active)
      if ((v.list_head[p] != ~0u || nbcast) && !v.dst[p].rx.empty())
        deliver(k, v, p, v.list_head[p], bcast_head);
    k.ks->packets += npkts;
    k.ks->bytes += bytes;
    if (nbad) k.ks->drops += nbad;
    return j;
  }

  // Packets of two ordered lists (unicast to p, broadcast) into one rx ring of p.
  static void deliver(Kring& k, ValeKring& v, uint16_t p, uint32_t uni, uint32_t bc) {
    DstPort& d = v.dst[p];
    RxView& rv = d.rx[k.id % d.rx.size()];
    KringState* ks = rv.ks;
    const uint32_t n = ks->nslots;  // never the ring's own field: the application can write that
    const uint32_t ssize = k.region->cfg().buf_size;
    CopyRule rule;
    rule.src_buf = ssize;
    rule.dst_buf = d.region->cfg().buf_size;
    rule.max_frame = kMaxFrame;
    // Pick the packets in order. Where every fragment of the batch fits
    // p's buffers, a packet takes a slot per fragment; else the engine
    // counts the slots (more than the sender's where p's are shorter).
    const bool simple = rule.src_hdr == rule.dst_hdr && v.maxlen <= rule.dst_buf;
    uint32_t pk[2] = {uni, bc};
    std::vector<uint32_t>& order = v.order;
    order.clear();
    v.need.clear();
    uint32_t too_long = 0;
    while (pk[0] != ~0u || pk[1] != ~0u) {
      int w = pk[1] == ~0u || (pk[0] != ~0u && pk[0] < pk[1]) ? 0 : 1;
      const FwdPkt& f = v.ft[pk[w]];
      if (simple) {
        order.push_back(pk[w]);
      } else if (uint32_t s = frame_slots(PktFrags{k, f, v.stage.get(), ssize}, f.nslots, f.len, rule)) {
        order.push_back(pk[w]);
        v.need.push_back(s);
      } else {
        too_long++;
      }
      pk[w] = f.next;
    }
    uint32_t start = 0, take = 0, npk = 0, slot = 0;
    {
      LeaseGuard g(ks, rv.ring);
      if (!g.ok() || !lease_usable(ks, rv.gen)) {
        ks->fwd_drops += order.size() + too_long;
        return;
      }
      const uint32_t room = lease_room(ks);
      for (; npk < order.size(); npk++) {
        const uint32_t s = simple ? v.ft[order[npk]].nslots : v.need[npk];
        if (take + s > room) break;
        take += s;
      }
      ks->fwd_drops += order.size() - npk + too_long;
      if (take == 0) return;
      lease_open(ks, take, &start, &slot);
    }
    uint32_t at = start;
    const RxBufs bufs{*d.region, d.region->cfg().buf_num, rv.tag};
    for (uint32_t i = 0; i < npk; i++) {
      const FwdPkt& f = v.ft[order[i]];
      at = copy_frame(PktFrags{k, f, v.stage.get(), ssize}, f.nslots, rule, rv.ring->slot, n, at, bufs);
    }
    // The receiving ring's taps (copy monitors) see the packets as they arrive.
    if (tapped(ks)) ring_tap()->arrived(*d.region, ks, rv.ring->slot, nullptr, n, start, at);
    lease_close(ks, rv.ring, slot, rv.gen);
    notify(ks);
  }
};

}  // namespace

SwitchEntry& vale_switch(Registry& reg, int i) {
  if (uint32_t(i) < kMaxSwitches) return static_cast<SwitchEntry*>(type_area(reg, vale_adapter()))[i];
  static thread_local SwitchEntry nowhere;
  nowhere.in_use = 0;
  return nowhere;
}

bool is_vale_port(const PortEntry& pe) { return pe.kind != kNoPort && pe.kind == vale_adapter().kind(); }

const Adapter& vale_adapter() {
  static ValeAdapter a;
  return a;
}

namespace {

// Run f with the registry locked (and dead processes reaped).
template <typename F>
int with_registry(std::string* why, F f) {
  int err = 0;
  std::optional<RegistryLock> g;
  Registry* reg = lock_registry(&g, &err, why);
  return reg ? f(*reg) : err;
}

bool split_or_explain(const std::string& name, std::string* sw, std::string* port,
                      std::string* why) {
  if (split_name(name, sw, port)) return true;
  *why = "'" + name + "' is not valeX:PORT";
  return false;
}

bool plain_name(const std::string& n) {
  if (n.empty() || n.size() >= NETMAP_REQ_IFNAMSIZ) return false;
  for (char c : n)
    if (!isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

}  // namespace

int vale_newif(const std::string& name, const ValeNewif& conf, std::string* why,
               ValeNewif* made) {
  if (!plain_name(name)) {
    *why = "persistent port name '" + name + "' must be letters, digits and _";
    return EINVAL;
  }
  return with_registry(why, [&](Registry& reg) {
    if (find_port_any(reg, name) >= 0) {
      *why = "port " + name + " already exists";
      return EEXIST;
    }
    int p = reg.alloc_port(name.c_str(), vale_adapter().kind());
    if (p < 0) {
      *why = "too many ports";
      return ENOMEM;
    }
    PortRequest req;
    req.name = name;
    req.mem_id = conf.mem_id;
    for (int d : {kTx, kRx}) req.nrings[d] = conf.rings[d], req.nslots[d] = conf.slots[d];
    if (int err = ValeAdapter::make_port(reg, p, req, why)) {
      reg.unmake_port(p);
      return err;
    }
    reg.port(p).persistent = 1;
    reg.publish_port(p);
    if (made) {
      const PortEntry& pe = reg.port(p);
      for (int d : {kTx, kRx}) made->rings[d] = pe.nrings[d], made->slots[d] = pe.nslots[d];
      made->mem_id = pe.mem_id;
    }
    return 0;
  });
}

int vale_delif(const std::string& name, std::string* why) {
  return with_registry(why, [&](Registry& reg) {
    int p = reg.find_port(name.c_str());
    if (p < 0 || !is_vale_port(reg.port(p)) || !reg.port(p).persistent) {
      *why = "no persistent VALE port " + name;
      return ENXIO;
    }
    PortEntry& pe = reg.port(p);
    if (vale_port(pe).sw >= 0) {
      *why = name + " is attached to " + vale_switch(reg, vale_port(pe).sw).name + ": detach it first (vale-ctl -d)";
      return EBUSY;
    }
    if (pe.nregs > 0) {
      *why = name + " is open by " + std::to_string(pe.nregs) + " registration(s)";
      return EBUSY;
    }
    pe.persistent = 0;
    reg.maybe_destroy_port(p);
    return 0;
  });
}

int vale_attach(const std::string& name, uint32_t* port_index, std::string* why) {
  std::string swname, portname;
  if (!split_or_explain(name, &swname, &portname, why)) return EINVAL;
  return with_registry(why, [&](Registry& reg) {
    int p = reg.find_port(portname.c_str());
    if (p < 0) {
      *why = "no port " + portname + " to attach (make one with vale-ctl -n " + portname + ")";
      return ENXIO;
    }
    PortEntry& pe = reg.port(p);
    if (!is_vale_port(pe) || !pe.persistent) {
      *why = portname + " cannot be attached to a switch (not a persistent VALE port)";
      return EINVAL;
    }
    if (vale_port(pe).sw >= 0) {
      *why = portname + " is already attached to " + vale_switch(reg, vale_port(pe).sw).name;
      return EBUSY;
    }
    if (int err = ValeAdapter::attach(reg, p, swname, why)) return err;
    *port_index = vale_port(pe).sw_port;
    return 0;
  });
}

int vale_detach(const std::string& name, uint32_t* port_index, std::string* why) {
  std::string swname, portname;
  if (!split_or_explain(name, &swname, &portname, why)) return EINVAL;
  return with_registry(why, [&](Registry& reg) {
    int p = reg.find_port(portname.c_str());
    if (p < 0 || !is_vale_port(reg.port(p)) || vale_port(reg.port(p)).sw < 0 ||
        swname != vale_switch(reg, vale_port(reg.port(p)).sw).name) {
      *why = portname + " is not attached to " + swname;
      return ENXIO;
    }
    if (!reg.port(p).persistent) {
      *why = name + " is an ephemeral port: it goes when its last user closes it";
      return EINVAL;
    }
    *port_index = vale_port(reg.port(p)).sw_port;
    ValeAdapter::detach(reg, p);
    return 0;
  });
}

bool vale_persistent(const std::string& port, std::string* sw) {
  std::string why;
  bool yes = false;
  sw->clear();
  with_registry(&why, [&](Registry& reg) {
    int p = reg.find_port(port.c_str());
    if (p < 0 || !is_vale_port(reg.port(p)) || !reg.port(p).persistent) return 0;
    yes = true;
    if (vale_port(reg.port(p)).sw >= 0) *sw = vale_switch(reg, vale_port(reg.port(p)).sw).name;
    return 0;
  });
  return yes;
}

int vale_list_port(std::string* name, uint32_t* bridge, uint32_t* port, std::string* why) {
  return with_registry(why, [&](Registry& reg) {
    if (!name->empty()) {
      int p = find_port_any(reg, *name);
      if (p < 0 || !is_vale_port(reg.port(p)) || vale_port(reg.port(p)).sw < 0) {
        *why = "no VALE port " + *name;
        return ENXIO;
      }
      *bridge = uint32_t(vale_port(reg.port(p)).sw);
      *port = vale_port(reg.port(p)).sw_port;
      return 0;
    }
    for (uint32_t b = *bridge; b < kMaxSwitches; b++, *port = 0) {
      SwitchEntry& sw = vale_switch(reg, int(b));
      if (!sw.in_use) continue;
      for (uint32_t i = *port; i < kSwitchPorts; i++) {
        if (sw.ports[i] < 0) continue;
        const PortEntry& pe = reg.port(sw.ports[i]);
        *name = pe.persistent ? std::string(sw.name) + ":" + pe.name : std::string(pe.name);
        *bridge = b;
        *port = i;
        return 0;
      }
    }
    return ENOENT;
  });
}

int vale_register_lookup(const std::string& name, ValeLookupFn fn) {
  if (name.empty() || name.size() >= sizeof(SwitchEntry::lookup) || !fn) return EINVAL;
  std::lock_guard<std::mutex> g(g_lookup_mu);
  for (auto& e : lookups())
    if (e.name == name) return EEXIST;
  lookups().push_back({name, fn});
  return 0;
}

int vale_set_lookup(const std::string& swname, const std::string& lookup, std::string* why) {
  if (!lookup.empty() && !find_lookup(lookup.c_str())) {
    *why = "no lookup named '" + lookup + "' in this process";
    return EINVAL;
  }
  int err = 0;
  std::optional<RegistryLock> g;
  Registry* reg = lock_registry(&g, &err, why);
  if (!reg) return err;
  int s = find_switch(*reg, swname);
  if (s < 0) {
    *why = "no switch " + swname;
    return ENOENT;
  }
  SwitchEntry& sw = vale_switch(*reg, s);
  snprintf(sw.lookup, sizeof sw.lookup, "%s", lookup.c_str());
  sw.gen.fetch_add(1);
  return 0;
}

int vale_list(const std::string& only, std::vector<ValeSwitchInfo>* out, std::string* why) {
  int err = 0;
  std::optional<RegistryLock> g;
  Registry* reg = lock_registry(&g, &err, why);
  if (!reg) return err;
  for (uint32_t i = 0; i < kMaxSwitches; i++) {
    SwitchEntry& sw = vale_switch(*reg, int(i));
    if (!sw.in_use || (!only.empty() && only != sw.name)) continue;
    ValeSwitchInfo si;
    si.name = sw.name;
    si.lookup = sw.lookup[0] ? sw.lookup : "learning";
    for (uint32_t j = 0; j < kSwitchPorts; j++) {
      if (sw.ports[j] < 0) continue;
      const PortEntry& pe = reg->port(sw.ports[j]);
      ValePortInfo pi;
      pi.name = pe.persistent ? std::string(sw.name) + ":" + pe.name : std::string(pe.name);
      pi.index = j;
      pi.persistent = pe.persistent;
      pi.mem_id = pe.mem_id;
      for (int d : {kTx, kRx}) pi.rings[d] = pe.nrings[d], pi.slots[d] = pe.nslots[d];
      auto region = Region::get(pe.mem_id, RegionConfig::from_env(), &err);
      if (region) {
        for (uint32_t r = 0; r < pe.nrings[kTx] && r <= kMaxRings; r++) {
          if (region->ring_port(pe.ring[kTx][r]) != sw.ports[j]) continue;
          KringState* ks = region->kring(pe.ring[kTx][r]);
          pi.tx_packets += ks->packets, pi.tx_bytes += ks->bytes, pi.tx_drops += ks->drops;
        }
        for (uint32_t r = 0; r < pe.nrings[kRx] && r <= kMaxRings; r++) {
          if (region->ring_port(pe.ring[kRx][r]) != sw.ports[j]) continue;
          KringState* ks = region->kring(pe.ring[kRx][r]);
          pi.rx_packets += ks->packets, pi.drops += ks->fwd_drops;
        }
      }
      si.ports.push_back(pi);
    }
    out->push_back(std::move(si));
  }
  if (!only.empty() && out->empty()) {
    *why = "no switch " + only;
    return ENOENT;
  }
  return 0;
}

}  // namespace unetmap
