// extmem: a region on memory the application provides.
//
// netmap pins the application's pages in the kernel. unetmap's "kernel" is
// every process that uses the region, so they must all map the same pages:
// the memory must be a MAP_SHARED mapping of a file (on hugetlbfs, in
// /dev/shm, anywhere). The library finds that file in /proc/self/maps (the
// mapping that holds the pointer: path, file offset), checks that the
// region fits in it, and writes path and offset into the region header;
// Region::get maps that range in every process, and the application's own
// pointer is the region's public part. Anonymous or private memory cannot
// be shared with another process and is refused, as is a file that was
// unlinked (nobody else could open it). The private part (kring states,
// free stacks) is in mem.<id> as for any region; the region gets a fresh
// id (1000 up, as VALE private regions) and goes with its last port,
// leaving the application's file as it is.
#include "mem/extmem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/registry.h"
#include "mem/region.h"

namespace unetmap {

namespace {

struct MapEntry {
  uint64_t start, end, off, inode;
  bool shared;
  std::string path;
};

std::vector<MapEntry> read_maps() {
  std::vector<MapEntry> v;
  FILE* f = fopen("/proc/self/maps", "re");
  if (!f) return v;
  char line[4352];
  while (fgets(line, sizeof line, f)) {
    MapEntry e{};
    char perms[8];
    int pos = 0;
    if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %*s %" SCNu64 " %n", &e.start, &e.end,
               perms, &e.off, &e.inode, &pos) < 5)
      continue;
    e.shared = perms[3] == 's';
    e.path = line + pos;
    while (!e.path.empty() && (e.path.back() == '\n' || e.path.back() == ' ')) e.path.pop_back();
    v.push_back(e);
  }
  fclose(f);
  return v;
}

// Is `path` (by inode: links count) one of the runtime directory's files?
bool is_region_file(const std::string& path) {
  struct stat a, b;
  if (stat(path.c_str(), &a) != 0) return false;
  DIR* d = opendir(runtime_dir().c_str());
  if (!d) return false;
  bool found = false;
  while (dirent* e = readdir(d))
    if (!found && fstatat(dirfd(d), e->d_name, &b, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(b.st_mode))
      found = a.st_dev == b.st_dev && a.st_ino == b.st_ino;
  closedir(d);
  return found;
}

// The file behind [usr, ...): path, offset, and how many bytes of it are
// mapped contiguously from usr. 0 or errno.
int resolve(uint64_t usr, std::string* path, uint64_t* off, uint64_t* avail, std::string* why) {
  char at[32];
  snprintf(at, sizeof at, "%#" PRIx64, usr);
  if (usr == 0 || usr % 4096) {
    *why = std::string("extmem: memory at ") + at + " is not page-aligned";
    return EINVAL;
  }
  std::vector<MapEntry> maps = read_maps();
  size_t i = 0;
  while (i < maps.size() && !(maps[i].start <= usr && usr < maps[i].end)) i++;
  if (i == maps.size()) {
    *why = std::string("extmem: nothing is mapped at ") + at;
    return EFAULT;
  }
  const MapEntry& m = maps[i];
  if (m.path.compare(0, runtime_dir().size() + 1, runtime_dir() + "/") == 0 || is_region_file(m.path)) {
    // A region's own mapping: a second allocator on it would hand out its
    // buffers twice.
    *why = std::string("extmem: memory at ") + at + " is a netmap region (" + m.path + ")";
    return EINVAL;
  }
  // Anonymous shared memory shows as "/dev/zero (deleted)" or "/SYSV...".
  const bool gone = m.path.size() > 10 && m.path.compare(m.path.size() - 10, 10, " (deleted)") == 0;
  if (!m.shared || m.path.empty() || m.path[0] != '/' || m.inode == 0 || gone ||
      m.path.compare(0, 5, "/SYSV") == 0) {
    *why = std::string("extmem: memory at ") + at + " (" + (m.path.empty() ? "anonymous" : m.path) +
           (m.shared ? "" : ", private") +
           ") is not a MAP_SHARED mapping of a file that other processes can open (use a file on "
           "hugetlbfs or /dev/shm, mapped MAP_SHARED)";
    return EINVAL;
  }
  *path = m.path;
  *off = m.off + (usr - m.start);
  uint64_t end = m.end;
  for (size_t j = i + 1; j < maps.size(); j++) {  // a mapping split in several entries
    const MapEntry& n = maps[j];
    if (n.start != end || n.inode != m.inode || n.path != m.path || !n.shared ||
        n.off != m.off + (n.start - m.start))
      break;
    end = n.end;
  }
  *avail = end - usr;
  return 0;
}

RegionConfig config_for(const nmreq_pools_info& in, uint64_t avail, bool* fit_bufs) {
  RegionConfig c = RegionConfig::from_env();
  if (in.nr_if_pool_objtotal) c.if_num = in.nr_if_pool_objtotal;
  if (in.nr_if_pool_objsize) c.if_size = in.nr_if_pool_objsize;
  if (in.nr_ring_pool_objtotal) c.ring_num = in.nr_ring_pool_objtotal;
  if (in.nr_ring_pool_objsize) c.ring_size = in.nr_ring_pool_objsize;
  if (in.nr_buf_pool_objsize) c.buf_size = in.nr_buf_pool_objsize;
  *fit_bufs = in.nr_buf_pool_objtotal == 0;
  if (!*fit_bufs) {
    c.buf_num = in.nr_buf_pool_objtotal;
  } else if (c.buf_size) {
    RegionConfig none = c;
    none.buf_num = 0;
    uint64_t fixed = Region::public_size(none);
    uint64_t n = avail > fixed ? (avail - fixed) / c.buf_size : 0;
    c.buf_num = uint32_t(n > (1u << 26) ? (1u << 26) : n);
  }
  return c;
}

}  // namespace

int extmem_region(uint64_t usr, const nmreq_pools_info& info, uint16_t* id, std::string* why) {
  std::string path;
  uint64_t off = 0, avail = 0;
  if (int e = resolve(usr, &path, &off, &avail, why)) return e;
  if (info.nr_memsize) {
    if (info.nr_memsize > avail) {
      *why = "extmem: " + std::to_string(info.nr_memsize) + " bytes given, but only " +
             std::to_string(avail) + " are mapped there";
      return EINVAL;
    }
    avail = info.nr_memsize;
  }
  bool fit = false;
  RegionConfig cfg = config_for(info, avail, &fit);
  std::string bad = cfg.check();
  if (!bad.empty()) {
    *why = "extmem: " + bad + (fit ? " (buffers that fit in " + std::to_string(avail) + " bytes)" : "");
    return EINVAL;
  }
  const uint64_t need = Region::public_size(cfg);
  if (need > avail) {
    *why = "extmem: these sizes need " + std::to_string(need) + " bytes, the memory has " +
           std::to_string(avail) + " (fewer buffers, rings or netmap_ifs, or more memory)";
    return ENOMEM;
  }
  int err = 0;
  std::optional<RegistryLock> g;
  Registry* reg = lock_registry(&g, &err, why);
  if (!reg) return err;
  *id = 0;
  for (uint32_t i = 1000; i <= Region::kMaxId && !*id; i++) {
    struct stat st;
    if (stat((runtime_dir() + "/" + Region::file_name(uint16_t(i))).c_str(), &st) != 0) *id = uint16_t(i);
  }
  if (!*id) {
    *why = "extmem: no free region id";
    return ENOMEM;
  }
  if (Region::make_ext(*id, cfg, path, off, &err, why)) return 0;
  reg->remove_region_if_unused(*id);  // the id was free: what is there is what failed
  return err;
}

void extmem_drop(uint16_t id) {
  int err = 0;
  Registry* reg = Registry::get(&err);
  if (!reg) return;
  RegistryLock g(*reg);
  if (g.ok()) reg->remove_region_if_unused(id);
}

}  // namespace unetmap
