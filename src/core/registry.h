// The registry: one shared file (<runtime>/registry) naming every port,
// registration (an fd bound to a port) and wake-up channel of every process
// using unetmap. It is the "kernel's" global state; everything in it is
// changed under its robust mutex on cold paths only. Per-ring state lives
// in the port's region (KringState), next to the rings.
//
// A registration has holders: the processes that have it open (a fork adds
// the child). When the last holder closes it, or dies (checked by reap()
// whenever the registry is locked), the registration goes, and a port with
// no registrations left is destroyed (partners, a pipe's two ends: when
// both have none).
//
// Every change that takes several steps is safe at any instruction: the
// entry it changes is marked first (kMaking or kGoing, with the maker's
// ProcId), filled, and published last (kLive, or freed). A process killed
// half-way leaves a marked entry behind, and the robust lock reports that
// its holder died: the next locker (RegistryLock) repairs. It finishes
// taking down what was going, rolls back what was being made (whatever a
// port or registration owns is found by the owner tags of its region, not
// by fields the maker may not have written yet), and recounts what is
// derived (a port's registrations, a ring's users, a switch's port table)
// from the entries that are live.
#pragma once

#include <net/netmap.h>

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/shm.h"

namespace unetmap {

constexpr uint32_t kMaxPorts = 512;
constexpr uint32_t kMaxRegs = 1024;
constexpr uint32_t kMaxChans = 1024;
constexpr uint32_t kMaxRings = 64;  // hardware rings per direction
constexpr uint32_t kMaxHolders = 8;
constexpr uint32_t kPortExtBytes = 16;          // a port type's own part of a port entry
constexpr uint32_t kTypeAreaBytes = 1u << 20;   // the port types' shared tables

// A port's type: its index in the table of port types (src/ports/ports.cc),
// 0 for a free entry.
using PortKind = uint8_t;
constexpr PortKind kNoPort = 0;

enum Dir : uint8_t { kTx = 0, kRx = 1 };

// Life of a port or registration entry.
enum class EntryState : uint8_t { kFree = 0, kMaking = 1, kLive = 2, kGoing = 3 };

struct PortEntry {
  char name[NETMAP_REQ_IFNAMSIZ];  // "p{0", "null:x", ...
  PortKind kind;  // kNoPort: the entry is free
  EntryState state;
  ProcId maker;   // who is making or taking it down (state kMaking, kGoing)
  uint8_t persistent;  // outlives its users (VALE ports made by vale-ctl -n)
  uint8_t pad;
  uint16_t mem_id;
  uint16_t nrings[2];  // hardware rings [kTx], [kRx]
  uint16_t nhost[2];   // host rings
  uint32_t nslots[2];
  uint32_t nregs;  // live registrations
  uint32_t ring[2][kMaxRings + 1];  // region ring index of each ring
  // The port type's own state (port_ext<T>), set up by its init_entry()
  // when the entry is taken.
  alignas(8) uint8_t ext[kPortExtBytes];
};

// A port type's view of the ext bytes of its ports' entries.
template <typename T>
T& port_ext(PortEntry& pe) {
  static_assert(sizeof(T) <= kPortExtBytes && alignof(T) <= 8 && std::is_trivially_copyable_v<T>,
                "a port type's entry state fits PortEntry::ext");
  return *reinterpret_cast<T*>(pe.ext);
}
template <typename T>
const T& port_ext(const PortEntry& pe) {
  return port_ext<T>(const_cast<PortEntry&>(pe));
}

// The processes holding a registration or channel open (a fork adds one).
using Holders = ProcId[kMaxHolders];
// Whether processes are alive, each looked up once.
class AliveCache {
 public:
  bool alive(const ProcId& p);

 private:
  std::vector<std::pair<ProcId, bool>> seen_;
};
// Forget the dead ones; true if any is left.
bool holders_prune_dead(Holders& h, AliveCache* cache = nullptr);
// Forget p; true if any is left.
bool holders_remove(Holders& h, const ProcId& p);
// Add p in a free place (kept silently as is when all are taken).
void holders_add(Holders& h, const ProcId& p);

struct RegEntry {
  uint32_t in_use;
  EntryState state;
  uint8_t pad0[3];
  ProcId maker;  // state kMaking, kGoing
  int32_t port;
  uint16_t mem_id;
  uint16_t pad;
  uint32_t nifp;  // netmap_if object in the region
  uint16_t first[2], last[2];  // rings bound, [first, last) per direction
  uint32_t excl;               // bound exclusively (/x)
  Holders holders;
};

struct ChanEntry {
  uint32_t in_use;
  uint32_t gen;
  Holders holders;  // processes with the fd open (fork adds)
  // The registration of the open file (src/abi): index + 1 (0: none), its
  // netmap_if and register flags, so that a process that gets the fd some
  // other way than fork (SCM_RIGHTS, execve) can adopt it.
  uint32_t reg1;
  uint32_t reg_nifp;
  uint64_t reg_flags;
};

struct RegistryFile {
  uint64_t magic;
  uint32_t layout_version;
  uint32_t pad;
  RobustMutex lock;
  PortEntry ports[kMaxPorts];
  RegEntry regs[kMaxRegs];
  ChanEntry chans[kMaxChans];
  // Tables of the port types (VALE's switches), each at the offset the
  // table of port types gives it (Registry::type_area).
  alignas(64) uint8_t type_area[kTypeAreaBytes];
};

class Registry;

// The registry's lock, with repair() run first when its last holder died
// while holding it.
// As LockGuard: check ok() where the locked work can fail (return error()
// and lock_error()); on cleanup paths skip the work when !ok().
class RegistryLock {
 public:
  explicit RegistryLock(Registry& reg);
  ~RegistryLock();
  RegistryLock(const RegistryLock&) = delete;
  RegistryLock& operator=(const RegistryLock&) = delete;
  bool ok() const { return err_ == 0; }
  int error() const { return err_; }

 private:
  Registry& reg_;
  int err_ = 0;
};

class Registry;
// The registry, locked (the lock kept in *g) and reaped of dead processes:
// how control paths get it. nullptr, with *err and one sentence in *why,
// if it cannot be opened or locked.
Registry* lock_registry(std::optional<RegistryLock>* g, int* err, std::string* why);

class Registry {
 public:
  static constexpr uint64_t kMagic = 0x554e4d5245475931ull;
  static constexpr uint32_t kLayout = 9;  // 5 was used by two layouts (marked entries; channel registrations)

  // The process-wide mapping; nullptr (with *err, and *why if given: the
  // sentence "cannot open the registry ...: reason", every caller's
  // message) if it cannot be opened.
  static Registry* get(int* err, std::string* why = nullptr);

  RegistryFile* file() const { return f_; }
  RobustMutex& lock() { return f_->lock; }
  // Entries by index. An index read from shared memory may be garbage: out
  // of range, these give a process-local empty entry (kind kNone, not in
  // use), never memory past the tables.
  PortEntry& port(int i) { return uint32_t(i) < kMaxPorts ? f_->ports[i] : (nowhere_.p = {}); }
  RegEntry& reg(int i) { return uint32_t(i) < kMaxRegs ? f_->regs[i] : (nowhere_.r = {}); }
  // A port type's shared table: `bytes` at `offset` of the type area (the
  // table of port types lays them out, src/ports/ports.cc).
  void* type_area(uint32_t offset) { return f_->type_area + offset; }

  // All below: call with the lock held.
  // A live port by its registry name; -1 if none.
  int find_port(const char* name) const;
  // A port entry marked kMaking by this process; -1 if the table is full.
  int alloc_port(const char* name, PortKind kind);
  // The port made: kLive.
  void publish_port(int i);
  // Give back a port entry whose making failed (and what it owns).
  void unmake_port(int i);
  // A registration entry marked kMaking; -1 if the table is full.
  int alloc_reg();
  // Roll back or finish what processes that died half-way left, and
  // recount what is derived from live entries (RegistryLock calls it when
  // the lock's previous holder died).
  void repair();
  // Forget registrations of dead processes and what only they kept alive.
  void reap();
  // Drop one registration (holder bookkeeping done by the caller).
  void drop_reg(int r);
  // Destroy port i (and its partner, Adapter::partner) if nothing holds it.
  void maybe_destroy_port(int i);
  // Free port entry i and what it owns (safe on a half-made entry).
  void take_down(int i);
  void remove_region_if_unused(uint16_t mem_id);

  // Wake-up channels: a FIFO per open /dev/netmap fd, <runtime>/chan/ID.
  // chan/ is 0711 (02771 shared) and its FIFOs 0622: only members reach it
  // through the runtime directory (which may not be entered by others:
  // setup_dir), only a FIFO's owner reads it, and a member that drops
  // privileges (tcpdump switching to user tcpdump) keeps reaching chan/
  // through the fd it opened before, so its wake-ups still arrive.
  int alloc_chan(uint32_t* token);  // with lock held
  void free_chan(uint32_t token);   // with lock held
  // A holder lets go of the channel; it goes with its last holder.
  void release_chan(uint32_t token, const ProcId& p);
  void add_chan_holder(uint32_t token, const ProcId& p);
  static std::string chan_path(uint32_t id);  // for messages
  static std::string chan_name(uint32_t id) { return std::to_string(id); }
  // This process's fd of chan/, or -errno with *why: opened once and
  // checked (device and inode) at every use, since the application may
  // close or reuse any fd number (then it is opened again).
  static int chan_dir(std::string* why = nullptr);
  // Open channel id's FIFO to wake its reader (O_WRONLY | O_NONBLOCK: no
  // reader is ENXIO); checked to be a channel of this domain. fd or -1.
  static int open_chan_for_wake(uint32_t id);
  static uint32_t chan_id(uint32_t token) { return token & 0x3ff; }

 private:
  explicit Registry(RegistryFile* f) : f_(f) {}
  struct Nowhere {
    PortEntry p;
    RegEntry r;
  };
  static thread_local Nowhere nowhere_;
  void recount();
  void sweep_region(uint16_t mem_id);
  RegistryFile* f_;
};

}  // namespace unetmap
