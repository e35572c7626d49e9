// unetmap's own C API (include/unetmap/unetmap.h): the registry's ports
// and a netmap fd's ring counters, for programs and tools. The entry points
// of a port type live in its folder (vhost-user: src/ports/vhost/capi.cc).
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unetmap/unetmap.h>

#include <optional>
#include <string>

#include "abi/file.h"
#include "core/adapter.h"
#include "core/registry.h"
#include "core/shm.h"

using namespace unetmap;

extern "C" int unetmap_ports(struct unetmap_port_info* out, int max) {
  if (max < 0 || (max > 0 && !out)) return fail(EINVAL, "unetmap_ports: no array for max entries");
  // A listing makes nothing: no runtime directory or registry yet, no ports
  // (so `tcpdump -D` of another user does not claim the directory).
  struct stat st;
  const std::string registry = runtime_dir_path() + "/registry";
  if (stat(registry.c_str(), &st) != 0)
    return errno == ENOENT ? 0 : fail(errno, registry + ": " + strerror(errno));
  int err = 0;
  std::string why;
  std::optional<RegistryLock> g;
  Registry* reg = lock_registry(&g, &err, &why);
  if (!reg) return fail(err, why);
  int n = 0;
  for (uint32_t i = 0; i < kMaxPorts; i++) {
    const PortEntry& pe = reg->port(int(i));
    if (pe.kind == kNoPort || pe.state != EntryState::kLive) continue;
    if (n < max) {
      unetmap_port_info& o = out[n];
      memset(&o, 0, sizeof o);
      memcpy(o.name, pe.name, std::min(sizeof o.name - 1, strnlen(pe.name, sizeof pe.name)));
      strncpy(o.type, kind_name(pe.kind), sizeof o.type - 1);
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
