// The one table of port types. A new port type is one folder beside this
// file and its name appended to UNETMAP_PORT_TYPES below; a type whose
// ports a worker serves (core/worker.h) adds its kind to
// UNETMAP_WORKER_KINDS.
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>

#include "core/adapter.h"
#include "core/tap.h"
#include "core/worker.h"

namespace unetmap {

// The table of port types: X(NAME) for the adapter NAME_adapter() of
// src/ports/NAME/. A port's kind, stored in the registry, is its type's
// index here (from 1): a new type is appended, so the others keep theirs.
// Names are offered to the types in this order, those that claim any name
// they do not know (Adapter::name_fallback: NIC ports, any interface
// name) last.
#define UNETMAP_PORT_TYPES(X) X(null) X(pipe) X(vale) X(monitor) X(nic) X(pcap)

#define UNETMAP_DECLARE_ADAPTER(type) const Adapter& type##_adapter();
UNETMAP_PORT_TYPES(UNETMAP_DECLARE_ADAPTER)

// The worker kinds of port types: X(NAME) for NAME_worker_kind(), defined
// in the type's folder (attach: src/ports/vale, the forwarder of a NIC or
// port attached to a switch; vhost: src/ports/vhost, a vhost-user port's
// backend).
#define UNETMAP_WORKER_KINDS(X) X(attach) X(vhost)

#define UNETMAP_DECLARE_KIND(kind) const worker::Kind& kind##_worker_kind();
UNETMAP_WORKER_KINDS(UNETMAP_DECLARE_KIND)

const worker::Kind* const* worker::port_kinds() {
#define UNETMAP_KIND_ENTRY(kind) &kind##_worker_kind(),
  static const Kind* const kinds[] = {UNETMAP_WORKER_KINDS(UNETMAP_KIND_ENTRY) nullptr};
  return kinds;
}

namespace {
#define UNETMAP_ADAPTER_ENTRY(type) &type##_adapter(),
const Adapter* const kAdapters[] = {nullptr /* kNoPort */, UNETMAP_PORT_TYPES(UNETMAP_ADAPTER_ENTRY)};
constexpr PortKind kNumKinds = sizeof kAdapters / sizeof kAdapters[0];
#define UNETMAP_KIND_NAME(type) #type,
const char* const kKindNames[] = {"", UNETMAP_PORT_TYPES(UNETMAP_KIND_NAME)};

// Offsets in the registry's type area, in table order (computed once).
struct AreaOffsets {
  uint32_t at[kNumKinds + 1] = {};
  AreaOffsets() {
    for (PortKind k = 1; k < kNumKinds; k++) at[k + 1] = at[k] + ((kAdapters[k]->shared_size() + 63) & ~63u);
    if (at[kNumKinds] > kTypeAreaBytes) abort();  // a build error, found by every test
  }
};
uint32_t area_offset(PortKind kind) {
  static const AreaOffsets offsets;
  return offsets.at[kind];
}
}  // namespace

PortKind Adapter::kind() const {
  for (PortKind k = 1; k < kNumKinds; k++)
    if (kAdapters[k] == this) return k;
  return kNoPort;
}

const Adapter* adapter_for_name(std::string_view name) {
  for (bool fallback : {false, true})
    for (PortKind k = 1; k < kNumKinds; k++)
      if (kAdapters[k]->name_fallback() == fallback && kAdapters[k]->owns(name)) return kAdapters[k];
  return nullptr;
}

const Adapter* adapter_for_flags(uint64_t flags) {
  for (PortKind k = 1; k < kNumKinds; k++)
    if (flags & kAdapters[k]->register_flags()) return kAdapters[k];
  return nullptr;
}

const char* kind_name(PortKind kind) { return kind > kNoPort && kind < kNumKinds ? kKindNames[kind] : ""; }

const Adapter* adapter_for_kind(PortKind kind) {
  return kind > kNoPort && kind < kNumKinds ? kAdapters[kind] : nullptr;
}

int find_port_any(Registry& reg, std::string_view name) {
  int p = reg.find_port(std::string(name).c_str());
  for (PortKind k = 1; k < kNumKinds && p < 0; k++) p = kAdapters[k]->resolve(reg, name);
  return p;
}

// Partners name each other: an entry naming one that was freed and reused
// (shared memory may say anything) has none.
int port_partner(Registry& reg, int p) {
  auto partner_of = [&reg](int i) {
    if (uint32_t(i) >= kMaxPorts) return -1;
    const PortEntry& pe = reg.port(i);
    const Adapter* na = adapter_for_kind(pe.kind);
    return na ? na->partner(pe) : -1;
  };
  const int q = partner_of(p);
  return uint32_t(q) < kMaxPorts && q != p && partner_of(q) == p ? q : -1;
}

void recount_port_types(Registry& reg) {
  for (PortKind k = 1; k < kNumKinds; k++) kAdapters[k]->recount(reg);
}

void* type_area(Registry& reg, const Adapter& na) { return reg.type_area(area_offset(na.kind())); }

std::string port_grammars() {
  std::string s;
  for (PortKind k = 1; k < kNumKinds; k++) {
    const char* g = kAdapters[k]->grammar();
    if (!g) continue;
    s += s.empty() ? "" : ", ";
    s += g;
  }
  return s;
}

size_t kept_spec_prefix(std::string_view spec) {
  for (PortKind k = 1; k < kNumKinds; k++)
    if (size_t n = kAdapters[k]->spec_prefix(spec)) return n;
  return 0;
}

std::string kept_spec_prefixes() {
  std::string s;
  for (PortKind k = 1; k < kNumKinds; k++)
    if (const char* f = kAdapters[k]->spec_prefix_form()) s += std::string(s.empty() ? "" : " or ") + f;
  return s;
}

namespace {
const RingTap* g_tap;
}
const RingTap* ring_tap() { return g_tap; }
void set_ring_tap(const RingTap* t) { g_tap = t; }

void Adapter::destroy(Registry& reg, int p) const {
  PortEntry& pe = reg.port(p);
  int err = 0;
  // Whatever rings the region says are p's: a port made half-way has rings
  // that its entry does not list yet.
  if (auto region = Region::get(pe.mem_id, RegionConfig::from_env(), &err, nullptr, false))
    region->destroy_rings_of(uint16_t(p));
  pe.nrings[kTx] = pe.nrings[kRx] = pe.nhost[kTx] = pe.nhost[kRx] = 0;
}

int make_port_rings(Registry& reg, int p, Region& r, std::string* why, bool rx_buffers) {
  PortEntry& pe = reg.port(p);
  int err = 0;
  for (int d : {kTx, kRx}) {
    uint32_t n = pe.nrings[d] + pe.nhost[d];
    for (uint32_t i = 0; i < n && !err; i++)
      err = r.make_ring(&pe.ring[d][i], pe.nslots[d], uint16_t(i), uint16_t(d), uint16_t(p), why,
                        d == kTx || rx_buffers);
  }
  if (err) {
    // Only what p owns goes back: an entry of pe.ring[] that failed names
    // nothing of p's.
    r.destroy_rings_of(uint16_t(p));
    pe.nrings[kTx] = pe.nrings[kRx] = pe.nhost[kTx] = pe.nhost[kRx] = 0;
  }
  return err;
}

// A write to a FIFO whose reader is gone raises SIGPIPE: blocked around the
// write, and taken if it came, so the application never sees it.
static ssize_t write_without_sigpipe(int fd, const void* b, size_t n) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  const ssize_t r = ::write(fd, b, n);
  if (r < 0 && errno == EPIPE) {
    const timespec now{0, 0};
    sigtimedwait(&pipe_set, nullptr, &now);
    errno = EPIPE;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return r;
}

// Wake-up: the waiter token names a FIFO (its registry channel); one byte
// written to it makes the blocked poll() return. Write ends are cached per
// process and reopened when the channel's generation changes; a FIFO whose
// reader died cannot be opened (ENXIO) or written (EPIPE, no signal).
static void wake(uint32_t token) {
  static std::mutex mu;
  static uint32_t cached_token[kMaxChans];
  static int cached_fd[kMaxChans];
  uint32_t id = Registry::chan_id(token);
  std::lock_guard<std::mutex> g(mu);
  if (cached_token[id] != token) {
    if (cached_token[id]) sys::close(cached_fd[id]);
    cached_token[id] = 0;
    const int fd = Registry::open_chan_for_wake(id);
    if (fd < 0) return;
    cached_token[id] = token;
    cached_fd[id] = fd;
  }
  char c = 1;
  if (write_without_sigpipe(cached_fd[id], &c, 1) < 0 && errno != EAGAIN) {
    sys::close(cached_fd[id]);
    cached_token[id] = 0;
  }
}

void notify(KringState* ks) {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (ks->waiter.load(std::memory_order_relaxed) == 0) return;
  if (uint32_t token = ks->waiter.exchange(0)) wake(token);
}

}  // namespace unetmap
