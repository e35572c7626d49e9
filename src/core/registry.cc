#include "core/registry.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <mutex>

#include "core/adapter.h"
#include "mem/region.h"

namespace unetmap {

namespace {

void init_registry(void* base, size_t, const void*) {
  auto* f = static_cast<RegistryFile*>(base);
  f->magic = Registry::kMagic;
  f->layout_version = Registry::kLayout;
  f->lock.init();
  for (auto& p : f->ports) p.peer = -1, p.sw = -1;
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
      open_why = text;
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
    if (base == MAP_FAILED) return fail(errno, std::string("cannot map the registry: ") + strerror(errno));
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

int Registry::find_port(const char* name) const {
  for (uint32_t i = 0; i < kMaxPorts; i++)
    if (f_->ports[i].kind != PortKind::kNone &&
        strncmp(f_->ports[i].name, name, sizeof f_->ports[i].name) == 0)
      return int(i);
  return -1;
}

int Registry::alloc_port(const char* name, PortKind kind) {
  for (uint32_t i = 0; i < kMaxPorts; i++) {
    PortEntry& p = f_->ports[i];
    if (p.kind != PortKind::kNone) continue;
    memset(&p, 0, sizeof p);
    strncpy(p.name, name, sizeof p.name - 1);
    p.kind = kind;  // taken from now on, even before the port type fills it
    p.peer = -1;
    p.sw = -1;
    return int(i);
  }
  return -1;
}

int Registry::alloc_reg() {
  for (uint32_t i = 0; i < kMaxRegs; i++) {
    RegEntry& r = f_->regs[i];
    if (r.in_use) continue;
    r = RegEntry{};
    r.in_use = 1;
    return int(i);
  }
  return -1;
}

bool holders_prune_dead(Holders& hs) {
  bool any = false;
  for (auto& h : hs) {
    if (h.empty()) continue;
    if (h.alive())
      any = true;
    else
      h = ProcId{};
  }
  return any;
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
  for (uint32_t i = 0; i < kMaxRegs; i++) {
    RegEntry& r = f_->regs[i];
    if (r.in_use && !holders_prune_dead(r.holders)) drop_reg(int(i));
  }
  for (uint32_t i = 0; i < kMaxChans; i++) {
    ChanEntry& c = f_->chans[i];
    if (c.in_use && !holders_prune_dead(c.holders)) free_chan((c.gen << 10) | i);
  }
}

void Registry::drop_reg(int ri) {
  RegEntry& r = f_->regs[ri];
  if (!r.in_use) return;
  r.in_use = 0;
  int err = 0;
  if (r.port < 0 || uint32_t(r.port) >= kMaxPorts) return;
  PortEntry& p = f_->ports[r.port];
  if (auto region = Region::get(r.mem_id, RegionConfig::from_env(), &err)) {
    region->free_extra(region->nifp(r.nifp)->ni_bufs_head);  // what is on the list now
    region->free_if(r.nifp);
    for (int d : {kTx, kRx})
      for (uint32_t i = r.first[d]; i < r.last[d] && i <= kMaxRings; i++) {
        KringState* ks = region->kring(p.ring[d][i]);
        if (ks->users) ks->users--;
        if (r.excl) ks->excl = 0;
      }
  }
  if (p.nregs > 0) p.nregs--;
  maybe_destroy_port(r.port);
}

void Registry::maybe_destroy_port(int i) {
  PortEntry& p = f_->ports[i];
  if (p.kind == PortKind::kNone || p.nregs > 0 || p.persistent) return;
  // The two ends of a pipe go together (a monitor's peer is only watched).
  const int peer = p.kind == PortKind::kPipe ? p.peer : -1;
  if (peer >= 0 && f_->ports[peer].nregs > 0) return;
  const Adapter* na = adapter_for_kind(p.kind);
  if (na) na->destroy(*this, i);
  p.kind = PortKind::kNone;
  p.name[0] = 0;
  if (peer >= 0 && uint32_t(peer) < kMaxPorts) {
    PortEntry& q = f_->ports[peer];
    if (na) na->destroy(*this, peer);
    q.kind = PortKind::kNone;
    q.name[0] = 0;
  }
  remove_region_if_unused(p.mem_id);
}

// A region no port uses any more goes too: stale regions do not pile up,
// and new size knobs apply to the next one.
void Registry::remove_region_if_unused(uint16_t mem_id) {
  for (const PortEntry& o : f_->ports)
    if (o.kind != PortKind::kNone && o.mem_id == mem_id) return;
  Region::remove(mem_id);
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
  unlink(chan_path(chan_id(token)).c_str());
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

std::string Registry::chan_path(uint32_t id) {
  return runtime_dir() + "/chan." + std::to_string(id);
}

}  // namespace unetmap
