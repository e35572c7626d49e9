#include "core/registry.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

#include "core/adapter.h"
#include "mem/region.h"

namespace unetmap {

namespace {

void init_registry(void* base, size_t, const void*) {
  auto* f = static_cast<RegistryFile*>(base);
  f->magic = Registry::kMagic;
  f->layout_version = Registry::kLayout;
  f->lock.init();
}

}  // namespace

// The registry is shared by every user of the runtime directory: mode 0600,
// or 0660 with UNETMAP_GROUP. open_shared_file refuses a registry that is
// a link, world-writable or someone else's; its size and header are
// checked before the mapping is used (a short file would be a SIGBUS).
Registry* Registry::get(int* err, std::string* why) {
  static std::once_flag once;
  static Registry* self;
  static int open_err;
  static std::string open_why;
  std::call_once(once, [] {
    auto fail = [](int e, const std::string& text) {
      open_err = e;
      open_why = "cannot open the registry in " + runtime_dir() + ": " + text;
    };
    std::string w;
    int fd = open_shared_file("registry", sizeof(RegistryFile), shared_file_mode(), init_registry,
                              nullptr, true, &w);
    if (fd < 0) return fail(-fd, w);
    struct stat st;
    if (fstat(fd, &st) != 0 || uint64_t(st.st_size) < sizeof(RegistryFile)) {
      sys::close(fd);
      return fail(EPROTO, runtime_dir() + "/registry is shorter than a registry (" +
                              std::to_string(sizeof(RegistryFile)) +
                              " bytes): left by another unetmap version? remove it");
    }
    void* base =
        sys::mmap(nullptr, sizeof(RegistryFile), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    sys::close(fd);
    if (base == MAP_FAILED) return fail(errno, std::string("mmap: ") + strerror(errno));
    auto* f = static_cast<RegistryFile*>(base);
    if (f->magic != kMagic || f->layout_version != kLayout) {
      sys::munmap(base, sizeof(RegistryFile));
      return fail(EPROTO, runtime_dir() +
                              "/registry has another layout (left by another unetmap version?)");
    }
    self = new Registry(f);
  });
  if (!self && err) *err = open_err;
  if (!self && why) *why = open_why;
  return self;
}

thread_local Registry::Nowhere Registry::nowhere_;

int Registry::find_port(const char* name) const {
  for (uint32_t i = 0; i < kMaxPorts; i++)
    if (f_->ports[i].kind != kNoPort && f_->ports[i].state == EntryState::kLive &&
        strncmp(f_->ports[i].name, name, sizeof f_->ports[i].name) == 0)
      return int(i);
  return -1;
}

int Registry::alloc_port(const char* name, PortKind kind) {
  for (uint32_t i = 0; i < kMaxPorts; i++) {
    PortEntry& p = f_->ports[i];
    if (p.kind != kNoPort) continue;
    p = PortEntry{};
    strncpy(p.name, name, sizeof p.name - 1);
    p.state = EntryState::kMaking;
    p.maker = ProcId::self();
    if (const Adapter* na = adapter_for_kind(kind)) na->init_entry(p);
    p.kind = kind;  // taken from now on, even before the port type fills it
    return int(i);
  }
  return -1;
}

void Registry::publish_port(int i) {
  PortEntry& p = f_->ports[i];
  p.state = EntryState::kLive;
  const int q = port_partner(*this, i);
  if (q >= 0 && f_->ports[q].state == EntryState::kMaking) f_->ports[q].state = EntryState::kLive;
}

void Registry::unmake_port(int i) {
  PortEntry& p = f_->ports[i];
  const int peer = port_partner(*this, i);
  const uint16_t mem_id = p.mem_id;
  take_down(i);
  if (peer >= 0 && f_->ports[peer].state == EntryState::kMaking) take_down(peer);
  if (mem_id) remove_region_if_unused(mem_id);
}

// Free port entry i and whatever it owns in its region: its port type's
// state (switch, sockets), every ring the region says is its, and their
// buffers. Safe on an entry made half-way.
void Registry::take_down(int i) {
  PortEntry& p = f_->ports[i];
  if (p.kind == kNoPort) {
    p.state = EntryState::kFree;
    return;
  }
  p.state = EntryState::kGoing;
  p.maker = ProcId::self();
  const Adapter* na = adapter_for_kind(p.kind);
  if (na) na->destroy(*this, i);
  int err = 0;
  if (p.mem_id)
    if (auto region = Region::get(p.mem_id, RegionConfig::from_env(), &err, nullptr, false))
      region->destroy_rings_of(uint16_t(i));
  p.name[0] = 0;
  p.kind = kNoPort;
  p.state = EntryState::kFree;
}

int Registry::alloc_reg() {
  for (uint32_t i = 0; i < kMaxRegs; i++) {
    RegEntry& r = f_->regs[i];
    if (r.in_use) continue;
    r = RegEntry{};
    r.port = -1;
    r.state = EntryState::kMaking;
    r.maker = ProcId::self();
    r.in_use = 1;
    return int(i);
  }
  return -1;
}

bool holders_prune_dead(Holders& hs, AliveCache* cache) {
  bool any = false;
  for (auto& h : hs) {
    if (h.empty()) continue;
    if (cache ? cache->alive(h) : h.alive())
      any = true;
    else
      h = ProcId{};
  }
  return any;
}

// One look at /proc per process and reap: a process holds many entries.
bool AliveCache::alive(const ProcId& p) {
  for (const auto& [q, live] : seen_)
    if (q == p) return live;
  const bool live = p.alive();
  seen_.emplace_back(p, live);
  return live;
}

bool holders_remove(Holders& hs, const ProcId& p) {
  bool any = false;
  for (auto& h : hs) {
    if (h == p) h = ProcId{};
    if (!h.empty()) any = true;
  }
  return any;
}

void holders_add(Holders& hs, const ProcId& p) {
  for (auto& h : hs)
    if (h.empty()) {
      h = p;
      return;
    }
}

void Registry::reap() {
  // An entry left marked by a maker that died: the lock said so to whoever
  // took it next, but that one may have died too before repairing.
  for (const PortEntry& p : f_->ports)
    if ((p.state == EntryState::kMaking || p.state == EntryState::kGoing) && !p.maker.alive())
      return repair();
  for (const RegEntry& r : f_->regs)
    if (r.in_use && r.state != EntryState::kLive && !r.maker.alive()) return repair();
  AliveCache cache;
  for (uint32_t i = 0; i < kMaxRegs; i++) {
    RegEntry& r = f_->regs[i];
    if (r.in_use && !holders_prune_dead(r.holders, &cache)) drop_reg(int(i));
  }
  for (uint32_t i = 0; i < kMaxChans; i++) {
    ChanEntry& c = f_->chans[i];
    if (c.in_use && !holders_prune_dead(c.holders, &cache)) free_chan((c.gen << 10) | i);
  }
}

void Registry::drop_reg(int ri) {
  RegEntry& r = f_->regs[ri];
  if (!r.in_use) return;
  r.state = EntryState::kGoing;
  r.maker = ProcId::self();
  const int port = r.port;
  if (port < 0 || uint32_t(port) >= kMaxPorts) {
    r.in_use = 0;
    return;
  }
  PortEntry& p = f_->ports[port];
  int err = 0;
  if (auto region = Region::get(r.mem_id, RegionConfig::from_env(), &err, nullptr, false)) {
    region->free_if(r.nifp, ri);  // with the extra buffers it owns
    for (int d : {kTx, kRx})
      for (uint32_t i = r.first[d]; i < r.last[d] && i <= kMaxRings; i++) {
        if (region->ring_port(p.ring[d][i]) != port) continue;
        KringState* ks = region->kring(p.ring[d][i]);
        if (ks->users) ks->users--;
        if (r.excl) ks->excl = 0;
      }
  }
  if (p.nregs > 0) p.nregs--;
  r.in_use = 0;
  r.state = EntryState::kFree;
  maybe_destroy_port(port);
}

void Registry::maybe_destroy_port(int i) {
  PortEntry& p = f_->ports[i];
  if (p.kind == kNoPort || p.nregs > 0 || p.persistent) return;
  // Partners (the two ends of a pipe) go together.
  const int peer = port_partner(*this, i);
  if (peer >= 0 && f_->ports[peer].nregs > 0) return;
  const uint16_t mem_id = p.mem_id;
  take_down(i);
  if (peer >= 0) take_down(peer);
  remove_region_if_unused(mem_id);
}

// A region no port uses any more goes too: stale regions do not pile up,
// and new size knobs apply to the next one.
void Registry::remove_region_if_unused(uint16_t mem_id) {
  for (const PortEntry& o : f_->ports)
    if (o.kind != kNoPort && o.mem_id == mem_id) return;
  Region::remove(mem_id);
}

// See the top of registry.h. Runs with the lock held; itself safe to be
// killed in (the next locker runs it again).
void Registry::repair() {
  // 1. Finish what was going, roll back what was being made.
  for (uint32_t i = 0; i < kMaxRegs; i++) {
    RegEntry& r = f_->regs[i];
    if (r.in_use && r.state != EntryState::kLive) r.in_use = 0, r.state = EntryState::kFree;
    if (!r.in_use) r.state = EntryState::kFree;
  }
  std::vector<uint16_t> regions;
  for (uint32_t i = 0; i < kMaxPorts; i++) {
    PortEntry& p = f_->ports[i];
    if (p.kind != kNoPort && p.mem_id) regions.push_back(p.mem_id);
    if (p.state == EntryState::kMaking || p.state == EntryState::kGoing ||
        (p.kind == kNoPort && p.state != EntryState::kFree))
      take_down(int(i));
  }
  // 2. Recount from the live entries; a registration of a port that is
  // gone goes too.
  for (RegEntry& r : f_->regs)
    if (r.in_use && (r.port < 0 || uint32_t(r.port) >= kMaxPorts ||
                     f_->ports[r.port].kind == kNoPort))
      r.in_use = 0, r.state = EntryState::kFree;
  recount();
  // 3. Objects of the regions owned by nothing live.
  std::sort(regions.begin(), regions.end());
  regions.erase(std::unique(regions.begin(), regions.end()), regions.end());
  for (uint16_t m : regions) sweep_region(m);
  // 4. What nothing holds any more, regions no port uses (one whose last
  // port's taker died before removing it), and files half made by the dead.
  remove_dead_tmp_files();
  for (uint32_t i = 0; i < kMaxPorts; i++) maybe_destroy_port(int(i));
  if (DIR* d = opendir(runtime_dir().c_str())) {
    while (dirent* e = readdir(d)) {
      unsigned long id;
      char tail;
      if (sscanf(e->d_name, "mem.%lu%c", &id, &tail) == 1 && id >= 1 && id <= Region::kMaxId)
        regions.push_back(uint16_t(id));
    }
    closedir(d);
  }
  for (uint16_t m : regions) remove_region_if_unused(m);
}

void Registry::recount() {
  for (PortEntry& p : f_->ports) p.nregs = 0;
  for (const RegEntry& r : f_->regs)
    if (r.in_use) f_->ports[r.port].nregs++;
  int err = 0;
  for (uint32_t i = 0; i < kMaxPorts; i++) {
    PortEntry& p = f_->ports[i];
    if (p.kind == kNoPort || !p.mem_id) continue;
    auto region = Region::get(p.mem_id, RegionConfig::from_env(), &err, nullptr, false);
    if (!region) continue;
    for (int d : {kTx, kRx})
      for (uint32_t k = 0; k < uint32_t(p.nrings[d] + p.nhost[d]) && k <= kMaxRings; k++) {
        if (region->ring_port(p.ring[d][k]) != int(i)) continue;
        KringState* ks = region->kring(p.ring[d][k]);
        ks->users = ks->excl = 0;
        for (const RegEntry& r : f_->regs)
          if (r.in_use && r.port == int(i) && k >= r.first[d] && k < r.last[d]) {
            ks->users++;
            if (r.excl) ks->excl = 1;
          }
      }
  }
  recount_port_types(*this);
}

// Rings and netmap_if objects of region m whose owner is not live.
void Registry::sweep_region(uint16_t m) {
  int err = 0;
  auto region = Region::get(m, RegionConfig::from_env(), &err, nullptr, false);
  if (!region) return;
  for (uint32_t i = 0; i < region->cfg().ring_num; i++) {
    int o = region->ring_port(i);
    if (o >= 0 && (uint32_t(o) >= kMaxPorts || f_->ports[o].kind == kNoPort))
      region->destroy_rings_of(uint16_t(o));
  }
  for (uint32_t i = 0; i < region->cfg().if_num; i++) {
    int r = region->if_reg(i);
    if (r >= 0 && (uint32_t(r) >= kMaxRegs || !f_->regs[r].in_use || f_->regs[r].nifp != i ||
                   f_->regs[r].mem_id != m))
      region->free_if(i, r);
  }
}

Registry* lock_registry(std::optional<RegistryLock>* g, int* err, std::string* why) {
  Registry* reg = Registry::get(err, why);
  if (!reg) return nullptr;
  g->emplace(*reg);
  if (!(*g)->ok()) {
    *why = "the registry: " + lock_error();
    *err = (*g)->error();
    return nullptr;
  }
  reg->reap();
  return reg;
}

RegistryLock::RegistryLock(Registry& reg) : reg_(reg) {
  bool died = false;
  err_ = reg_.lock().lock(&died);
  if (err_ == 0 && died) reg_.repair();
}

RegistryLock::~RegistryLock() {
  if (err_ == 0) reg_.lock().unlock();
}

int Registry::alloc_chan(uint32_t* token) {
  for (uint32_t i = 0; i < kMaxChans; i++) {
    ChanEntry& c = f_->chans[i];
    if (c.in_use) continue;
    c.in_use = 1;
    c.gen = (c.gen + 1) & 0x3fffff;
    if (c.gen == 0) c.gen = 1;
    for (auto& h : c.holders) h = ProcId{};
    c.holders[0] = ProcId::self();
    *token = (c.gen << 10) | i;
    return 0;
  }
  return EMFILE;
}

void Registry::free_chan(uint32_t token) {
  ChanEntry& c = f_->chans[chan_id(token)];
  if (!c.in_use || c.gen != (token >> 10)) return;
  const int dfd = chan_dir();
  if (dfd >= 0) unlinkat(dfd, chan_name(chan_id(token)).c_str(), 0);
  c.in_use = 0;
  for (auto& h : c.holders) h = ProcId{};
}

void Registry::release_chan(uint32_t token, const ProcId& p) {
  ChanEntry& c = f_->chans[chan_id(token)];
  if (!c.in_use || c.gen != (token >> 10)) return;
  if (!holders_remove(c.holders, p)) free_chan(token);
}

void Registry::add_chan_holder(uint32_t token, const ProcId& p) {
  ChanEntry& c = f_->chans[chan_id(token)];
  if (c.in_use && c.gen == (token >> 10)) holders_add(c.holders, p);
}

std::string Registry::chan_path(uint32_t id) { return runtime_dir() + "/chan/" + chan_name(id); }

int Registry::chan_dir(std::string* why) {
  static std::mutex mu;
  static int fd = -1;
  static dev_t dev;
  static ino_t ino;
  std::lock_guard<std::mutex> g(mu);
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && st.st_dev == dev && st.st_ino == ino)
    return fd;
  // Never opened, or the application closed its number (a daemon closing
  // every fd) or reused it: not ours any more, never closed here. Opened
  // again by path, which works while this process may enter the directory.
  fd = -1;
  std::string path;
  const int nfd = runtime_subdir_fd("chan", true, &path, why);
  if (nfd < 0) return nfd;
  if (fstat(nfd, &st) != 0) {
    const int e = errno;
    sys::close(nfd);
    return -e;
  }
  dev = st.st_dev, ino = st.st_ino;
  return fd = nfd;
}

int Registry::open_chan_for_wake(uint32_t id) {
  const int dfd = chan_dir();
  if (dfd < 0) return -1;
  const int fd = sys::openat(dfd, chan_name(id).c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return -1;
  if (check_chan_fd(fd) != 0) {
    sys::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace unetmap
