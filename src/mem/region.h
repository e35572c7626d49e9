// A memory region: netmap's "allocator", as a shared-memory file.
//
// File layout (one file per region, <runtime>/mem.<id>):
//
//   [ private part: header | kring states | free stacks, buffer bitmap ]
//   [ public part (at pub_off, memsize bytes): netmap_if | rings | buffers ]
//
// An extmem region (NETMAP_REQ_OPT_EXTMEM) has only the private part in
// mem.<id>: its public part is the application's memory, a MAP_SHARED
// mapping of a file, which the header names (path, offset) so that every
// process maps the same pages.
//
// Applications mmap only the public part (the /dev/netmap mmap is
// redirected to pub_off); the library maps the whole file. Buffer, ring
// and netmap_if indexes are region-wide. Buffers 0 and 1 are reserved and
// never handed out, as in netmap. Ring object i and kring state i go
// together: allocating ring i gives its kring state too.
//
// The free stacks are changed only under the region's robust mutex, on cold
// paths (register, unregister, cleanup of dead processes).
//
// Ownership. Every buffer, ring and netmap_if object has an owner tag in
// the private part (0: free). The tags, not the free stacks, are the truth:
// the stacks are rebuilt from them when a process died holding the region
// lock half-way through a change. A ring's owner is its registry port
// (index + 1); a netmap_if's is its registration and port. A buffer is
// owned by a ring (kRingTag | ring) or by a registration's extra buffers
// (kExtraTag | netmap_if): nothing an application writes (slot indexes,
// num_slots, the extra buffer list) decides what is freed. Tearing a ring
// down frees every buffer the ring owns, wherever the application left it;
// closing a registration frees every extra buffer it owns.
//
// An application may move a buffer from one of its rings to another
// (zero-copy forwarding, extra buffers swapped in). The sync prologue sees
// a buffer it does not own in a slot handed back and takes it over
// (Region::claim) if the current owner is a port this process has bound
// (or the other end of a pipe it has bound); a buffer of any other port,
// or a free one, is refused as netmap refuses a bad index. So a buffer is
// never handed to two rings by the pool: one of another port can be neither
// freed nor taken by a process that has not bound that port.
#pragma once

#include <net/netmap.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/shm.h"

namespace unetmap {

// netmap's dev.netmap.* knobs for one region.
struct RegionConfig {
  uint32_t buf_size = 2048;
  uint32_t buf_num = 163840;
  uint32_t ring_size = 33280;  // bytes per ring object: 2064 slots at most
  uint32_t ring_num = 200;
  uint32_t if_size = 1024;
  uint32_t if_num = 100;
  // Defaults, overridden by UNETMAP_BUF_SIZE, UNETMAP_BUF_NUM, ... .
  static RegionConfig from_env();
  // Sizes by libnetmap's extmem keys: "buf-num=N,buf-size=N,ring-num=N,
  // ring-size=N,if-num=N,if-size=N" (any subset). Empty if fine, else what
  // is wrong.
  std::string set(std::string_view spec);
  uint32_t max_slots() const;
  // Empty if sane, else what is wrong.
  std::string check() const;
};

// A reservation of rx slots [start, end) by one producer (netmap's lease).
struct Lease {
  uint32_t start, end;
  uint32_t done;  // filled, may be published
  uint32_t pad;
  ProcId owner;
  uint64_t since_ns;  // CLOCK_MONOTONIC when reserved
};
constexpr uint32_t kMaxLeases = 16;

// The move that closes a dead producer's hole: `moves` slots from `from`
// down to `to`, each swapped in three steps through `tmp`. step is
// (slots moved << 2) | phase, written in one store after each step's
// write, so every step can be run again until the next one is recorded.
struct HoleMove {
  uint32_t active;
  uint32_t from, to, moves;
  uint32_t new_tail;  // lease_tail and hwtail once the move is done
  std::atomic<uint32_t> step;
  netmap_slot tmp;
};

// Per-ring state shared by the ring's owner and its peer. hwcur is written
// by the ring's own syncs, hwtail by whoever produces into the ring (rx) or
// returns space to it (tx); waiter is armed by a blocked owner.
//
// Rings with several concurrent producers (VALE rx rings) reserve slots
// under lease_lock: [hwtail, lease_tail) is reserved, being filled by the
// leases in order; hwtail advances over leases that are done, in order.
// gen changes whenever the ring object is made or destroyed, so a producer
// holding a stale view can tell (under lease_lock) and back off.
struct KringState {
  alignas(64) std::atomic<uint32_t> hwcur;
  std::atomic<int32_t> busy;    // pid of the process inside a sync of this ring, 0 if none
  uint32_t rhead, rcur, rtail;  // last values validated at a sync
  uint32_t nslots;          // the library's own copy: ring->num_slots is the application's
  uint32_t buf_tag;         // owner tag of the buffers its slots should name
  uint64_t packets, bytes;  // counted by the owner, per batch
  alignas(64) std::atomic<uint32_t> hwtail;
  uint64_t drops;
  alignas(64) std::atomic<uint32_t> waiter;  // channel token, 0 = nobody waits
  alignas(64) RobustMutex lease_lock;        // initialised once, with the region
  uint32_t lease_tail;
  uint32_t lease_first, lease_count;  // circular list of pending leases
  std::atomic<uint32_t> gen;
  uint32_t dead;       // being destroyed: no new leases
  uint64_t fwd_drops;  // packets producers dropped for lack of room
  Lease leases[kMaxLeases];
  // Closing a dead producer's hole (core/lease.cc): a journal, so that a
  // closer killed half-way is finished by the next holder of lease_lock.
  HoleMove hole;
  // Copy monitors of this ring: (ring gen << 32) | (monitor rx ring + 1),
  // set and cleared under the registry lock, read at every sync.
  std::atomic<uint32_t> nmon;
  std::atomic<uint64_t> mon[4];
  // Registrations binding this ring, and whether one of them has it
  // exclusively (/x); changed under the registry lock.
  uint32_t users;
  uint32_t excl;
};
constexpr uint32_t kMaxMonitors = 4;

struct RegionHeader {
  uint64_t magic;
  uint32_t layout_version;
  uint16_t mem_id;
  uint16_t persistent;  // made by nm-regions -c: stays when its last port goes
  RegionConfig cfg;
  uint64_t pub_off;   // file offset of the public part
  uint64_t memsize;   // size of the public part
  uint64_t if_pool;   // pool offsets, relative to the public part
  uint64_t ring_pool;
  uint64_t buf_pool;
  uint64_t kring_off;  // private offsets
  uint64_t buf_stack_off;
  uint64_t buf_owner_off;  // uint32_t per buffer: its owner tag, 0 = free
  uint64_t ring_stack_off;
  uint64_t if_stack_off;
  uint64_t ring_owner_off;  // uint32_t per ring object: port + 1, 0 = free
  uint64_t if_owner_off;    // uint32_t per netmap_if: (port + 1) << 16 | (registration + 1)
  RobustMutex lock;
  uint32_t buf_free;  // entries on each free stack
  uint32_t ring_free;
  uint32_t if_free;
  // extmem: the file holding the public part, and where in it ("" if the
  // public part follows the private one in this file).
  char ext_path[256];
  uint64_t ext_off;
};

class Region {
 public:
  static constexpr uint64_t kMagic = 0x554e4d5245474e31ull;  // "UNMREGN1"
  static constexpr uint32_t kLayout = 8;  // 8: KringState::hole
  static constexpr uint16_t kMaxId = 65535;

  // Map region `id`, creating it with `cfg` if it does not exist yet.
  // Returns nullptr and sets *err (errno value) on failure, and *why (if
  // given) to an explanation.
  static std::shared_ptr<Region> get(uint16_t id, const RegionConfig& cfg, int* err,
                                     std::string* why = nullptr, bool create = true);
  // Make region `id` (which must not exist) on application memory: its
  // public part is `path` from offset `off` (extmem).
  static std::shared_ptr<Region> make_ext(uint16_t id, const RegionConfig& cfg,
                                          const std::string& path, uint64_t off, int* err,
                                          std::string* why);
  // Bytes of the public part of a region with these sizes.
  static uint64_t public_size(const RegionConfig& cfg);
  // The header a region with these sizes would have (no file is made):
  // what POOLS_INFO_GET reports of region 1 before anyone uses it.
  static RegionHeader planned(uint16_t id, const RegionConfig& cfg);
  static std::string file_name(uint16_t id);
  // Unlink region `id` (its last port is gone; call with the registry
  // locked) unless it is persistent. Mappings stay valid; the next get()
  // makes a fresh region.
  static void remove(uint16_t id);
  // Drop this process's mappings of regions whose file is gone (removed by
  // another process) and that nothing here uses: a listing must not keep a
  // deleted region's memory.
  static void forget_removed();

  RegionHeader* hdr() const { return reinterpret_cast<RegionHeader*>(map_.base()); }
  const RegionConfig& cfg() const { return fixed_.cfg; }
  uint16_t id() const { return fixed_.mem_id; }
  int fd() const { return fd_; }
  char* pub() const { return pub_; }
  // Where the public part is, for an application's mmap.
  int pub_fd() const { return ext_fd_ >= 0 ? ext_fd_ : fd_; }
  uint64_t pub_file_off() const { return ext_fd_ >= 0 ? fixed_.ext_off : fixed_.pub_off; }
  uint64_t memsize() const { return fixed_.memsize; }

  netmap_ring* ring(uint32_t i) const {
    return reinterpret_cast<netmap_ring*>(pub() + fixed_.ring_pool + uint64_t(i) * cfg().ring_size);
  }
  KringState* kring(uint32_t i) const {
    return reinterpret_cast<KringState*>(map_.base() + fixed_.kring_off) + i;
  }
  netmap_if* nifp(uint32_t i) const {
    return reinterpret_cast<netmap_if*>(pub() + fixed_.if_pool + uint64_t(i) * cfg().if_size);
  }
  uint64_t nifp_offset(uint32_t i) const { return fixed_.if_pool + uint64_t(i) * cfg().if_size; }
  char* buf(uint32_t idx) const { return pub() + fixed_.buf_pool + uint64_t(idx) * cfg().buf_size; }
  bool valid_buf(uint32_t idx) const { return idx >= 2 && idx < cfg().buf_num; }

  // Owner tags of buffers.
  static constexpr uint32_t kRingTag = 1u << 30, kExtraTag = 2u << 30, kTagIndex = kRingTag - 1;
  static uint32_t ring_tag(uint32_t ring) { return kRingTag | ring; }
  static uint32_t extra_tag(uint32_t nifp) { return kExtraTag | nifp; }

  // Allocation (take the region lock inside), each object tagged with its
  // owner (see the top of this file). Return 0 or an errno value; on
  // failure *why says which knob to raise.
  int alloc_bufs(uint32_t* out, uint32_t n, uint32_t tag, std::string* why);
  int alloc_ring(uint32_t* out, uint16_t port, std::string* why);
  // A netmap_if for registration `reg` of port `port`.
  int alloc_if(uint32_t* out, int port, int reg, std::string* why);
  // Give back netmap_if i and the extra buffers it owns, if it is still
  // registration reg's.
  void free_if(uint32_t i, int reg);
  // The registration owning netmap_if i (-1 if free).
  int if_reg(uint32_t i) const {
    const uint32_t o = if_owner()[i];
    return o ? int(o & 0xffff) - 1 : -1;
  }

  // A ring object owned by port `port`, initialised with `nslots` slots,
  // each with a buffer of its own unless !buffers (a ring whose slots
  // another ring fills in, as the rx rings of pipes: netmap's "fake
  // rings"; their buffers stay the filling ring's, buf_tag).
  int make_ring(uint32_t* out, uint32_t nslots, uint16_t ringid, uint16_t dir, uint16_t port,
                std::string* why, bool buffers = true);
  // A fake ring's slots name the buffers of ring `filler`.
  void set_fake(uint32_t ring, uint32_t filler) { kring(ring)->buf_tag = ring_tag(filler); }
  // Tear down the rings of `port` among rings[] (others are skipped): each
  // ring object and every buffer it owns goes back, in one pass.
  void destroy_rings(const uint32_t* rings, uint32_t n, uint16_t port);
  // Every ring `port` still owns (a port whose maker died half-way).
  void destroy_rings_of(uint16_t port);
  // The port owning ring i (-1 if free).
  int ring_port(uint32_t i) const { return i < cfg().ring_num ? int(ring_owner()[i]) - 1 : -1; }

  // The sync prologue's check of a buffer an application handed back in a
  // slot that should name a buffer tagged `tag`: true if it is, or if its
  // owner is a port this process has bound (then it is re-tagged).
  inline bool claim(uint32_t b, uint32_t tag) const {
    if (b < 2 || b >= cfg().buf_num) return false;
    volatile uint32_t& t = buf_owner()[b];
    const uint32_t o = t;
    if (o == tag) return true;
    if (!may_take(o)) return false;
    t = tag;
    return true;
  }
  // The owner tag of each buffer (buf_num of them), for the sync prologue.
  const uint32_t* buf_tags() const { return buf_owner(); }
  // Give buffer b (known to be in range) to `tag` (the library moved it).
  void retag(uint32_t b, uint32_t tag) const { buf_owner()[b] = tag; }
  uint32_t buf_tag(uint32_t b) const { return b < cfg().buf_num ? buf_owner()[b] : 0; }

  // Extra buffers (nr_extra_bufs) of netmap_if nifp: up to n buffers
  // chained through their first 4 bytes (0 ends the chain). Returns how
  // many were given and the first in *head; never fails (0 buffers when
  // the pool is short). They go back with free_if().
  uint32_t alloc_extra(uint32_t n, uint32_t nifp, uint32_t* head);

  uint32_t bufs_in_use() const { return cfg().buf_num - 2 - hdr()->buf_free; }

  ~Region();

  // Ports bound by this process (a count per registry port, kept by
  // bindings): buffers they own may be moved into this process's rings.
  static void bind_port(int port, int delta);
  static bool port_bound(int port);

 private:
  Region(int fd, Mapping m, const RegionHeader& checked);
  uint32_t* buf_owner() const { return reinterpret_cast<uint32_t*>(map_.base() + fixed_.buf_owner_off); }
  uint32_t* ring_owner() const { return reinterpret_cast<uint32_t*>(map_.base() + fixed_.ring_owner_off); }
  uint32_t* if_owner() const { return reinterpret_cast<uint32_t*>(map_.base() + fixed_.if_owner_off); }
  // May this process take a buffer tagged o into one of its rings?
  bool may_take(uint32_t o) const;
  void free_tagged(const std::vector<uint32_t>& tags);
  // Take the region lock (0, or an errno value with *why); rebuild the
  // free stacks from the owner tags if its last holder died inside a change.
  int lock_region(std::string* why);
  void rebuild_free_stacks();
  void free_ring(uint32_t i);
  int map_ext(std::string* why);
  int fd_;
  Mapping map_;
  // The header's sizes and offsets as they were checked when the region was
  // mapped: what every bound and address here comes from. The shared header
  // may be rewritten by anyone who can write the file (another process of
  // its owner); the copy cannot.
  struct Fixed {
    uint16_t mem_id;
    RegionConfig cfg;
    uint64_t pub_off, memsize, if_pool, ring_pool, buf_pool, kring_off;
    uint64_t buf_stack_off, buf_owner_off, ring_stack_off, if_stack_off, ring_owner_off, if_owner_off;
    uint64_t ext_off;
    std::string ext_path;
  } fixed_;
  char* pub_ = nullptr;
  int ext_fd_ = -1;  // extmem: the application's file
  Mapping ext_map_;
};

}  // namespace unetmap
