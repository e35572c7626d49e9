// nm-regions: the memory regions (netmap's allocators) in the runtime
// directory: their sizes as POOLS_INFO_GET reports them, how many buffers
// are in use, and who may attach (owner and mode of the region file).
//
//   nm-regions           every region, one line each
//   nm-regions -m N      region N only
//   nm-regions -j        JSON
//   nm-regions -c N [buf-num=..,buf-size=..,ring-num=..,ring-size=..,if-num=..,if-size=..]
//                        make region N with these sizes (the rest from the
//                        UNETMAP_* knobs or the defaults) before its first
//                        port names it (@N, vale-ctl -m N). Sizes are a
//                        region's for its life, as a netmap allocator's are
//                        once in use. Such a region is persistent: it stays
//                        when its last port goes, until
//   nm-regions -d N      deletes it (refused while a port uses it).
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <net/netmap.h>
#include <pwd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/registry.h"
#include "core/shm.h"
#include "mem/region.h"

namespace {

[[noreturn]] void usage(int code) {
  fprintf(code ? stderr : stdout,
          "usage: nm-regions [-m MEMID] [-j]\n"
          "       nm-regions -c MEMID [SIZES]\n"
          "  -m MEMID   only region MEMID (1..65535)\n"
          "  -j         JSON output\n"
          "  -c MEMID   make region MEMID (for ports that name it: @MEMID, vale-ctl -m)\n"
          "             SIZES: buf-num=N,buf-size=N,ring-num=N,ring-size=N,if-num=N,if-size=N\n"
          "             (any of them; the others from UNETMAP_* or the defaults);\n"
          "             it stays when its last port goes, until -d\n"
          "  -d MEMID   delete region MEMID made with -c (not while a port uses it)\n"
          "Regions live in $UNETMAP_DIR (default /dev/shm/unetmap).\n");
  exit(code);
}

struct Row {
  uint16_t id;
  nmreq_pools_info pi;
  uint32_t bufs_in_use;
  std::string owner;
  unsigned mode;
};

// POOLS_INFO_GET through /dev/netmap, as any netmap application would ask.
bool pools_info(uint16_t id, nmreq_pools_info* pi, std::string* err, int* e) {
  int fd = open("/dev/netmap", O_RDWR);
  if (fd < 0) {
    *e = errno;
    *err = strerror(errno);
    return false;
  }
  nmreq_header h{};
  h.nr_version = NETMAP_API;
  h.nr_reqtype = NETMAP_REQ_POOLS_INFO_GET;
  *pi = nmreq_pools_info{};
  pi->nr_mem_id = id;
  h.nr_body = uintptr_t(pi);
  bool ok = ioctl(fd, NIOCCTRL, &h) == 0;
  if (!ok) *e = errno, *err = strerror(errno);
  close(fd);
  return ok;
}

std::vector<uint16_t> region_ids() {
  std::vector<uint16_t> ids;
  DIR* d = opendir(unetmap::runtime_dir().c_str());
  if (!d) return ids;
  while (dirent* e = readdir(d)) {
    unsigned long id;
    char tail;
    if (sscanf(e->d_name, "mem.%lu%c", &id, &tail) == 1 && id >= 1 && id <= 65535)
      ids.push_back(uint16_t(id));
  }
  closedir(d);
  std::sort(ids.begin(), ids.end());
  return ids;
}

// -c: make region `id` with the sizes of `spec`; an existing region is
// fine if it has them already.
int create(long id, const char* spec) {
  unetmap::RegionConfig cfg = unetmap::RegionConfig::from_env();
  std::string bad = cfg.set(spec ? spec : "");
  if (!bad.empty()) {
    fprintf(stderr, "nm-regions: -c %ld: %s\n", id, bad.c_str());
    return 2;
  }
  int err = 0;
  std::string why;
  auto r = unetmap::Region::get(uint16_t(id), cfg, &err, &why, false);
  if (r) {
    const unetmap::RegionConfig& h = r->cfg();
    if (h.buf_num != cfg.buf_num || h.buf_size != cfg.buf_size || h.ring_num != cfg.ring_num ||
        h.ring_size != cfg.ring_size || h.if_num != cfg.if_num || h.if_size != cfg.if_size) {
      fprintf(stderr,
              "nm-regions: region %ld exists with other sizes (buf-num=%u,buf-size=%u,ring-num=%u,"
              "ring-size=%u,if-num=%u,if-size=%u); sizes change only with a new region\n",
              id, h.buf_num, h.buf_size, h.ring_num, h.ring_size, h.if_num, h.if_size);
      return 1;
    }
  } else if (err != ENOENT || !(r = unetmap::Region::get(uint16_t(id), cfg, &err, &why, true))) {
    fprintf(stderr, "nm-regions: %s\n", why.c_str());
    return 1;
  }
  r->hdr()->persistent = 1;
  return 0;
}

// -d: delete region `id` if no port uses it.
int remove_region(long id) {
  int err = 0;
  std::string why;
  std::optional<unetmap::RegistryLock> g;
  unetmap::Registry* reg = unetmap::lock_registry(&g, &err, &why);
  if (!reg) {
    fprintf(stderr, "nm-regions: %s\n", why.c_str());
    return 1;
  }
  for (uint32_t i = 0; i < unetmap::kMaxPorts; i++) {
    const unetmap::PortEntry& p = reg->port(int(i));
    if (p.kind != unetmap::kNoPort && p.mem_id == id) {
      fprintf(stderr, "nm-regions: region %ld is in use by port '%s'\n", id, p.name);
      return 1;
    }
  }
  auto r = unetmap::Region::get(uint16_t(id), unetmap::RegionConfig{}, &err, &why, false);
  if (!r) {
    fprintf(stderr, "nm-regions: %s\n", why.c_str());
    return 1;
  }
  r->hdr()->persistent = 0;
  unetmap::Region::remove(uint16_t(id));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  long only = 0, make = 0, drop = 0;
  bool json = false;
  int c;
  static option longopts[] = {{"help", no_argument, nullptr, 'h'}, {nullptr, 0, nullptr, 0}};
  while ((c = getopt_long(argc, argv, "m:c:d:jh", longopts, nullptr)) != -1) {
    switch (c) {
      case 'm':
      case 'c':
      case 'd': {
        char* end;
        long id = strtol(optarg, &end, 10);
        if (*end || id < 1 || id > 65535) {
          fprintf(stderr, "nm-regions: -%c: '%s' is not a region id in 1..65535\n", c, optarg);
          return 2;
        }
        (c == 'm' ? only : c == 'c' ? make : drop) = id;
        break;
      }
      case 'j': json = true; break;
      case 'h': usage(0);
      default: usage(2);
    }
  }
  if (drop) return optind < argc ? (usage(2), 2) : remove_region(drop);
  if (make) {
    if (argc - optind > 1) usage(2);
    if (int rc = create(make, optind < argc ? argv[optind] : nullptr)) return rc;
    only = make;  // and show it
  } else if (optind < argc) {
    fprintf(stderr, "nm-regions: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  std::vector<Row> rows;
  int failed = 0;
  for (uint16_t id : region_ids()) {
    if (only && id != only) continue;
    Row r{id, {}, 0, "?", 0};
    std::string err;
    int e = 0;
    if (!pools_info(id, &r.pi, &err, &e)) {
      if (e == ENOENT) continue;  // removed since the listing (its last port went)
      fprintf(stderr, "nm-regions: region %u: %s\n", id, err.c_str());
      failed = 1;
      continue;
    }
    if (auto reg = unetmap::Region::get(id, unetmap::RegionConfig::from_env(), &e, nullptr, false))
      r.bufs_in_use = reg->bufs_in_use();
    struct stat st;
    if (stat((unetmap::runtime_dir() + "/" + unetmap::Region::file_name(id)).c_str(), &st) == 0) {
      passwd* pw = getpwuid(st.st_uid);
      r.owner = pw ? pw->pw_name : std::to_string(st.st_uid);
      r.mode = st.st_mode & 07777;
    }
    rows.push_back(r);
  }
  if (only && rows.empty() && !failed) {
    fprintf(stderr, "nm-regions: no region %ld in %s\n", only, unetmap::runtime_dir().c_str());
    return 1;
  }
  if (json) printf("[");
  for (size_t i = 0; i < rows.size(); i++) {
    const Row& r = rows[i];
    const nmreq_pools_info& p = r.pi;
    if (json)
      printf("%s{\"mem_id\":%u,\"memsize\":%llu,\"if_num\":%u,\"if_size\":%u,\"ring_num\":%u,"
             "\"ring_size\":%u,\"buf_num\":%u,\"buf_size\":%u,\"bufs_in_use\":%u,\"owner\":\"%s\","
             "\"mode\":\"%04o\"}",
             i ? "," : "", r.id, (unsigned long long)p.nr_memsize, p.nr_if_pool_objtotal,
             p.nr_if_pool_objsize, p.nr_ring_pool_objtotal, p.nr_ring_pool_objsize,
             p.nr_buf_pool_objtotal, p.nr_buf_pool_objsize, r.bufs_in_use, r.owner.c_str(), r.mode);
    else
      printf("region %u: %llu bytes; %u netmap_if of %u; %u rings of %u; %u buffers of %u, %u in use;"
             " owner %s mode %04o\n",
             r.id, (unsigned long long)p.nr_memsize, p.nr_if_pool_objtotal, p.nr_if_pool_objsize,
             p.nr_ring_pool_objtotal, p.nr_ring_pool_objsize, p.nr_buf_pool_objtotal,
             p.nr_buf_pool_objsize, r.bufs_in_use, r.owner.c_str(), r.mode);
  }
  if (json) printf("]\n");
  return failed;
}
