// unetmap's own C API (include/unetmap/unetmap.h): the registry's ports,
// their rings' counters, regions and workers, for programs and tools. The entry points
// of a port type live in its folder (vhost-user: src/ports/vhost/capi.cc).
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unetmap/unetmap.h>

#include <dirent.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "abi/file.h"
#include "core/adapter.h"
#include "core/registry.h"
#include "core/shm.h"
#include "core/worker.h"
#include "mem/region.h"

using namespace unetmap;

int unetmap::existing_registry(std::optional<RegistryLock>* g, Registry** reg) {
  *reg = nullptr;
  struct stat st;
  const std::string registry = runtime_dir_path() + "/registry";
  if (stat(registry.c_str(), &st) != 0)
    return errno == ENOENT ? 0 : fail(errno, registry + ": " + strerror(errno));
  int err = 0;
  std::string why;
  *reg = lock_registry(g, &err, &why);
  return *reg ? 1 : fail(err, why);
}

namespace {

int check_array(const void* out, int max, const char* fn) {
  if (max < 0 || (max > 0 && !out)) return fail(EINVAL, std::string(fn) + ": no array for max entries");
  return 0;
}

// Port `name` ("netmap:" optional), live, in the locked registry: its
// index, or -1 with errno (ENOENT).
int live_port(Registry& reg, const char* name, const char* fn) {
  if (!name) return fail(EFAULT, std::string(fn) + ": port name is NULL");
  std::string_view n(name);
  if (n.rfind("netmap:", 0) == 0) n.remove_prefix(7);
  const std::string s(n);
  int p = reg.find_port(s.c_str());
  // A persistent VALE port by the name its switch gives it: valeX:NAME.
  const size_t colon = s.find(':');
  if (p < 0 && s.rfind("vale", 0) == 0 && colon != std::string::npos) {
    p = reg.find_port(s.c_str() + colon + 1);
    if (p >= 0 && !reg.port(p).persistent) p = -1;
  }
  if (p < 0 || reg.port(p).state != EntryState::kLive) return fail(ENOENT, "no port '" + s + "'");
  return p;
}

// No registry, so no port.
int live_port_none(const char* name) {
  return fail(name ? ENOENT : EFAULT, name ? std::string("no port '") + name + "'" : "port name is NULL");
}

}  // namespace

extern "C" int unetmap_ports(struct unetmap_port_info* out, int max) {
  if (check_array(out, max, "unetmap_ports")) return -1;
  std::optional<RegistryLock> g;
  Registry* reg = nullptr;
  if (int r = existing_registry(&g, &reg); r <= 0) return r;
  int n = 0;
  for (uint32_t i = 0; i < kMaxPorts; i++) {
    const PortEntry& pe = reg->port(int(i));
    if (pe.kind == kNoPort || pe.state != EntryState::kLive) continue;
    if (n < max) {
      unetmap_port_info& o = out[n];
      memset(&o, 0, sizeof o);
      put_field(o.name, std::string_view(pe.name, strnlen(pe.name, sizeof pe.name)));
      put_field(o.type, kind_name(pe.kind));
      o.mem_id = pe.mem_id;
      o.tx_rings = pe.nrings[kTx];
      o.rx_rings = pe.nrings[kRx];
      o.persistent = pe.persistent;
      o.users = pe.nregs;
    }
    n++;
  }
  return n;
}

extern "C" int unetmap_port_rings(const char* port, struct unetmap_ring_info* out, int max) {
  if (check_array(out, max, "unetmap_port_rings")) return -1;
  std::optional<RegistryLock> g;
  Registry* reg = nullptr;
  if (existing_registry(&g, &reg) < 0) return -1;
  const int p = reg ? live_port(*reg, port, "unetmap_port_rings") : live_port_none(port);
  if (p < 0) return -1;
  const PortEntry& pe = reg->port(p);
  int err = 0;
  std::string why;
  auto region = Region::get(pe.mem_id, RegionConfig::from_env(), &err, &why, false);
  Region::forget_removed();
  if (!region) return fail(err, why);
  int n = 0;
  for (int d : {kTx, kRx}) {
    const uint32_t rings = std::min<uint32_t>(pe.nrings[d] + pe.nhost[d], kMaxRings + 1);
    for (uint32_t i = 0; i < rings; i++) {
      // Shared memory: a ring index is used only if the region says it is this port's.
      if (region->ring_port(pe.ring[d][i]) != p) continue;
      if (n < max) {
        const KringState* ks = region->kring(pe.ring[d][i]);
        unetmap_ring_info& o = out[n];
        memset(&o, 0, sizeof o);
        o.ring = uint16_t(i);
        o.tx = d == kTx;
        o.host = i >= pe.nrings[d];
        o.slots = ks->nslots;
        o.users = ks->users;
        o.monitors = ks->nmon.load(std::memory_order_relaxed);
        o.hwcur = ks->hwcur.load(std::memory_order_relaxed);
        o.hwtail = ks->hwtail.load(std::memory_order_relaxed);
        o.packets = ks->packets;
        o.bytes = ks->bytes;
        o.drops = ks->drops;
        o.fwd_drops = ks->fwd_drops;
      }
      n++;
    }
  }
  return n;
}

extern "C" int unetmap_port_counters(const char* port, struct unetmap_port_stats* out) {
  if (!out) return fail(EFAULT, "unetmap_port_counters: out is NULL");
  std::vector<unetmap_ring_info> rings(2 * (kMaxRings + 1));
  const int n = unetmap_port_rings(port, rings.data(), int(rings.size()));
  if (n < 0) return -1;
  memset(out, 0, sizeof *out);
  for (int i = 0; i < n && i < int(rings.size()); i++) {
    const unetmap_ring_info& r = rings[i];
    if (r.tx) {
      out->tx_packets += r.packets, out->tx_bytes += r.bytes, out->tx_drops += r.drops;
    } else {
      out->rx_packets += r.packets, out->rx_bytes += r.bytes, out->rx_drops += r.drops + r.fwd_drops;
    }
  }
  return 0;
}

extern "C" int unetmap_regions(struct unetmap_region_info* out, int max) {
  if (check_array(out, max, "unetmap_regions")) return -1;
  std::vector<uint16_t> ids;
  if (DIR* d = opendir(runtime_dir_path().c_str())) {
    while (dirent* e = readdir(d)) {
      unsigned long id;
      char tail;
      if (sscanf(e->d_name, "mem.%lu%c", &id, &tail) == 1 && id >= 1 && id <= Region::kMaxId &&
          Region::file_name(uint16_t(id)) == e->d_name)
        ids.push_back(uint16_t(id));
    }
    closedir(d);
  } else if (errno != ENOENT) {
    return fail(errno, runtime_dir_path() + ": " + strerror(errno));
  }
  std::sort(ids.begin(), ids.end());
  // Ports per region, from the registry (none if there is no registry).
  std::vector<uint32_t> users(ids.size(), 0);
  {
    std::optional<RegistryLock> g;
    Registry* reg = nullptr;
    if (existing_registry(&g, &reg) < 0) return -1;
    for (uint32_t i = 0; reg && i < kMaxPorts; i++) {
      const PortEntry& pe = reg->port(int(i));
      if (pe.kind == kNoPort) continue;
      auto at = std::lower_bound(ids.begin(), ids.end(), pe.mem_id);
      if (at != ids.end() && *at == pe.mem_id) users[at - ids.begin()]++;
    }
  }
  int n = 0;
  for (size_t k = 0; k < ids.size(); k++) {
    int err = 0;
    std::string why;
    auto r = Region::get(ids[k], RegionConfig::from_env(), &err, &why, false);
    if (!r && err == ENOENT) continue;  // gone since the listing (its last port went)
    if (n < max) {
      unetmap_region_info& o = out[n];
      memset(&o, 0, sizeof o);
      o.mem_id = ids[k];
      o.ports = users[k];
      struct stat st;  // the file's owner and mode, readable or not
      const std::string path = runtime_dir_path() + "/" + Region::file_name(ids[k]);
      if (r ? fstat(r->fd(), &st) == 0 : stat(path.c_str(), &st) == 0)
        o.uid = st.st_uid, o.gid = st.st_gid, o.mode = st.st_mode & 07777;
      if (r) {
        const RegionConfig& c = r->cfg();
        o.persistent = r->hdr()->persistent != 0;
        o.sizes = {c.if_num, c.if_size, c.ring_num, c.ring_size, c.buf_num, c.buf_size};
        o.memsize = r->memsize();
        o.bufs_in_use = r->bufs_in_use();
      } else {
        o.error = err;
      }
    }
    n++;
  }
  Region::forget_removed();
  return n;
}

extern "C" int unetmap_region_create(uint16_t mem_id, const struct unetmap_region_sizes* sizes) {
  if (mem_id < 1) return fail(EINVAL, "unetmap_region_create: mem_id is 1 to 65535");
  RegionConfig cfg = RegionConfig::from_env();
  if (sizes) {
    const std::pair<uint32_t, uint32_t*> set[] = {
        {sizes->if_num, &cfg.if_num},     {sizes->if_size, &cfg.if_size},
        {sizes->ring_num, &cfg.ring_num}, {sizes->ring_size, &cfg.ring_size},
        {sizes->buf_num, &cfg.buf_num},   {sizes->buf_size, &cfg.buf_size}};
    for (const auto& [v, field] : set)
      if (v) *field = v;
  }
  if (std::string bad = cfg.check(); !bad.empty()) return fail(EINVAL, "region " + std::to_string(mem_id) + ": " + bad);
  int err = 0;
  std::string why;
  auto r = Region::get(mem_id, cfg, &err, &why, false);
  if (r) {
    const RegionConfig& h = r->cfg();
    if (h.buf_num != cfg.buf_num || h.buf_size != cfg.buf_size || h.ring_num != cfg.ring_num ||
        h.ring_size != cfg.ring_size || h.if_num != cfg.if_num || h.if_size != cfg.if_size)
      return fail(EEXIST, "region " + std::to_string(mem_id) + " exists with other sizes (buf-num=" +
                              std::to_string(h.buf_num) + ",buf-size=" + std::to_string(h.buf_size) +
                              ",ring-num=" + std::to_string(h.ring_num) + ",ring-size=" +
                              std::to_string(h.ring_size) + ",if-num=" + std::to_string(h.if_num) +
                              ",if-size=" + std::to_string(h.if_size) + "); sizes change only with a new region");
  } else if (err != ENOENT || !(r = Region::get(mem_id, cfg, &err, &why, true))) {
    return fail(err, why);
  }
  r->hdr()->persistent = 1;
  return 0;
}

extern "C" int unetmap_region_delete(uint16_t mem_id) {
  struct stat st;  // none: nothing to do, and nothing made
  if (mem_id < 1 || stat((runtime_dir_path() + "/" + Region::file_name(mem_id)).c_str(), &st) != 0)
    return fail(ENOENT, "no region " + std::to_string(mem_id));
  std::optional<RegistryLock> g;
  Registry* reg = nullptr;
  const int have = existing_registry(&g, &reg);
  if (have < 0) return -1;
  for (uint32_t i = 0; reg && i < kMaxPorts; i++) {
    const PortEntry& p = reg->port(int(i));
    if (p.kind != kNoPort && p.mem_id == mem_id)
      return fail(EBUSY, "region " + std::to_string(mem_id) + " is in use by port '" +
                             std::string(p.name, strnlen(p.name, sizeof p.name)) + "'");
  }
  int err = 0;
  std::string why;
  auto r = Region::get(mem_id, RegionConfig{}, &err, &why, false);
  if (!r) return fail(err, err == ENOENT ? "no region " + std::to_string(mem_id) : why);
  r->hdr()->persistent = 0;
  Region::remove(mem_id);
  return 0;
}

namespace {

void worker_info(const worker::Info& w, unetmap_worker_info* o) {
  memset(o, 0, sizeof *o);
  put_field(o->name, w.spec.name);
  put_field(o->kind, w.spec.kind);
  put_field(o->state, worker::state_name(w.state));
  o->supervised = w.supervised;
  o->supervisor = w.supervised ? int32_t(w.supervisor.pid) : 0;
  o->pid = int32_t(w.pid.pid);
  o->restarts = w.restarts;
  o->exit_status = w.exit_status;
  o->exit_signal = w.exit_signal;
  o->since = w.since;
  o->nargs = uint32_t(w.spec.args.size());
  for (uint32_t a = 0; a < o->nargs && a < UNETMAP_WORKER_MAX_ARGS; a++) put_field(o->args[a], w.spec.args[a]);
  put_field(o->reason, w.reason);
  put_field(o->log, w.log);
  put_field(o->status, w.status);
}

}  // namespace

extern "C" int unetmap_workers(struct unetmap_worker_info* out, int max) {
  if (check_array(out, max, "unetmap_workers")) return -1;
  struct stat st;  // no workers directory: none, and none made
  const std::string workers = runtime_dir_path() + "/workers";
  if (stat(workers.c_str(), &st) != 0) return errno == ENOENT ? 0 : fail(errno, workers + ": " + strerror(errno));
  std::vector<worker::Info> all;
  std::string why;
  if (int err = worker::list(&all, &why)) return err == ENOENT ? 0 : fail(err, why);
  for (size_t i = 0; i < all.size() && int(i) < max; i++) worker_info(all[i], &out[i]);
  return int(all.size());
}

extern "C" int unetmap_worker_get(const char* name, struct unetmap_worker_info* out) {
  if (!name || !out) return fail(EFAULT, "unetmap_worker_get: name or out is NULL");
  worker::Info w;
  std::string why;
  if (int err = worker::get(name, &w, &why)) return fail(err, why);
  worker_info(w, out);
  return 0;
}

extern "C" int unetmap_fd_counters(int fd, int rx, struct unetmap_ring_counters* out) {
  if (!out) return fail(EFAULT, "unetmap_fd_counters: out is NULL");
  Binding::Counters c;
  if (dev_counters(fd, rx ? kRx : kTx, &c) != 0) return -1;
  out->packets = c.packets;
  out->bytes = c.bytes;
  out->drops = c.drops;
  return 0;
}

extern "C" int unetmap_indirect_ranges(int fd, const struct unetmap_mem_range* r, unsigned n) {
  if (n && !r) return fail(EFAULT, "unetmap_indirect_ranges: ranges is NULL");
  if (n > 64) return fail(EINVAL, "unetmap_indirect_ranges: at most 64 ranges");
  std::vector<DirectRanges::Range> v;
  for (unsigned i = 0; i < n; i++) {
    const uintptr_t lo = reinterpret_cast<uintptr_t>(r[i].addr);
    if (r[i].len == 0 || lo + r[i].len < lo) return fail(EINVAL, "unetmap_indirect_ranges: an empty or wrapping range");
    v.push_back({lo, uintptr_t(lo + r[i].len)});
  }
  return dev_direct_ranges(fd, std::move(v));
}
