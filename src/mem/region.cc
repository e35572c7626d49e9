#include "mem/region.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <map>
#include <mutex>
#include <vector>

namespace unetmap {

namespace {

constexpr uint64_t kPage = 4096;
uint64_t page_up(uint64_t x) { return (x + kPage - 1) & ~(kPage - 1); }

uint32_t env_u32(const char* name, uint32_t dflt) {
  const char* v = getenv(name);
  if (!v || !*v) return dflt;
  char* end;
  unsigned long x = strtoul(v, &end, 0);
  return (*end || x > UINT32_MAX) ? dflt : static_cast<uint32_t>(x);
}

struct Layout {
  uint64_t kring_off, buf_stack_off, buf_owner_off, ring_stack_off, if_stack_off, pub_off;
  uint64_t ring_owner_off, if_owner_off;
  uint64_t if_pool, ring_pool, buf_pool, memsize;
};

Layout layout_of(const RegionConfig& c) {
  Layout l{};
  uint64_t off = page_up(sizeof(RegionHeader));
  l.kring_off = off;
  off = page_up(off + sizeof(KringState) * uint64_t(c.ring_num));
  l.buf_stack_off = off;
  off = page_up(off + 4ull * c.buf_num);
  l.buf_owner_off = off;
  off = page_up(off + 4ull * c.buf_num);
  l.ring_stack_off = off;
  off = page_up(off + 4ull * c.ring_num);
  l.if_stack_off = off;
  off = page_up(off + 4ull * c.if_num);
  l.ring_owner_off = off;
  off = page_up(off + 4ull * c.ring_num);
  l.if_owner_off = off;
  off = page_up(off + 4ull * c.if_num);
  l.pub_off = off;
  l.if_pool = 0;
  l.ring_pool = page_up(uint64_t(c.if_size) * c.if_num);
  l.buf_pool = page_up(l.ring_pool + uint64_t(c.ring_size) * c.ring_num);
  l.memsize = page_up(l.buf_pool + uint64_t(c.buf_size) * c.buf_num);
  return l;
}

struct InitArg {
  uint16_t id;
  RegionConfig cfg;
  const char* ext_path;  // extmem, or nullptr
  uint64_t ext_off;
};

void init_region(void* base, size_t, const void* argp) {
  auto* arg = static_cast<const InitArg*>(argp);
  auto* h = static_cast<RegionHeader*>(base);
  Layout l = layout_of(arg->cfg);
  h->magic = Region::kMagic;
  h->layout_version = Region::kLayout;
  h->mem_id = arg->id;
  h->cfg = arg->cfg;
  h->pub_off = l.pub_off;
  h->memsize = l.memsize;
  h->if_pool = l.if_pool;
  h->ring_pool = l.ring_pool;
  h->buf_pool = l.buf_pool;
  h->kring_off = l.kring_off;
  h->buf_stack_off = l.buf_stack_off;
  h->buf_owner_off = l.buf_owner_off;
  h->ring_stack_off = l.ring_stack_off;
  h->if_stack_off = l.if_stack_off;
  h->ring_owner_off = l.ring_owner_off;
  h->if_owner_off = l.if_owner_off;
  if (arg->ext_path) {
    snprintf(h->ext_path, sizeof h->ext_path, "%s", arg->ext_path);
    h->ext_off = arg->ext_off;
  }
  h->lock.init();
  char* b = static_cast<char*>(base);
  auto* ks = reinterpret_cast<KringState*>(b + l.kring_off);
  for (uint32_t i = 0; i < arg->cfg.ring_num; i++) ks[i].lease_lock.init();
  // Stacks pop from the end: fill them in descending order so that
  // allocation hands out ascending indexes (better locality).
  auto* bs = reinterpret_cast<uint32_t*>(b + l.buf_stack_off);
  uint32_t n = 0;
  for (uint32_t i = arg->cfg.buf_num; i-- > 2;) bs[n++] = i;
  h->buf_free = n;
  auto* rs = reinterpret_cast<uint32_t*>(b + l.ring_stack_off);
  for (uint32_t i = 0; i < arg->cfg.ring_num; i++) rs[i] = arg->cfg.ring_num - 1 - i;
  h->ring_free = arg->cfg.ring_num;
  auto* is = reinterpret_cast<uint32_t*>(b + l.if_stack_off);
  for (uint32_t i = 0; i < arg->cfg.if_num; i++) is[i] = arg->cfg.if_num - 1 - i;
  h->if_free = arg->cfg.if_num;
}

// Is this header one that init_region wrote for region `id`, in a file of
// `file_size` bytes? Every offset the library will use is recomputed from
// the sizes, so a damaged or planted header cannot point outside the file.
std::string check_header(const RegionHeader& h, uint16_t id, uint64_t file_size) {
  if (h.magic != Region::kMagic || h.layout_version != Region::kLayout)
    return "has another layout (left by another unetmap version?)";
  if (h.mem_id != id) return "says it is region " + std::to_string(h.mem_id) + ": refused";
  std::string bad = h.cfg.check();
  if (!bad.empty()) return "has bad sizes (" + bad + "): refused";
  const Layout l = layout_of(h.cfg);
  if (h.pub_off != l.pub_off || h.memsize != l.memsize || h.if_pool != l.if_pool ||
      h.ring_pool != l.ring_pool || h.buf_pool != l.buf_pool || h.kring_off != l.kring_off ||
      h.buf_stack_off != l.buf_stack_off || h.buf_owner_off != l.buf_owner_off ||
      h.ring_stack_off != l.ring_stack_off || h.if_stack_off != l.if_stack_off ||
      h.ring_owner_off != l.ring_owner_off || h.if_owner_off != l.if_owner_off)
    return "has offsets that do not match its sizes: refused";
  const bool ext = h.ext_path[0] != 0;
  if (ext && strnlen(h.ext_path, sizeof h.ext_path) == sizeof h.ext_path)
    return "has an extmem path without an end: refused";
  if (file_size < l.pub_off + (ext ? 0 : l.memsize)) return "is shorter than its sizes: refused";
  if (h.buf_free > h.cfg.buf_num || h.ring_free > h.cfg.ring_num || h.if_free > h.cfg.if_num)
    return "has free counts beyond its pools: refused";
  return {};
}


std::string exhausted(uint16_t id, const char* what, uint32_t want, uint32_t in_use,
                      uint32_t total, const char* knob, const char* env) {
  std::string k(knob);
  for (char& ch : k)
    if (ch == '_') ch = '-';
  const char* key = k.c_str();
  char b[480];
  snprintf(b, sizeof b,
           "region %u: no free %s for %u more (%u in use of %u); raise %s (%s=N, read when the "
           "region is created: close every port of region %u first; or make the region before "
           "its first port with nm-regions -c %u %s=N)",
           id, what, want, in_use, total, knob, env, id, id, key);
  return b;
}

}  // namespace

RegionConfig RegionConfig::from_env() {
  RegionConfig c;
  c.buf_size = env_u32("UNETMAP_BUF_SIZE", c.buf_size);
  c.buf_num = env_u32("UNETMAP_BUF_NUM", c.buf_num);
  c.ring_size = env_u32("UNETMAP_RING_SIZE", c.ring_size);
  c.ring_num = env_u32("UNETMAP_RING_NUM", c.ring_num);
  c.if_size = env_u32("UNETMAP_IF_SIZE", c.if_size);
  c.if_num = env_u32("UNETMAP_IF_NUM", c.if_num);
  return c;
}

std::string RegionConfig::set(std::string_view spec) {
  while (!spec.empty()) {
    size_t comma = spec.find(',');
    std::string_view kv = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    size_t eq = kv.find('=');
    std::string key(kv.substr(0, eq)), val(eq == std::string_view::npos ? "" : kv.substr(eq + 1));
    char* end = nullptr;
    unsigned long x = val.empty() ? 0 : strtoul(val.c_str(), &end, 0);
    if (val.empty() || *end || x > UINT32_MAX) return "'" + std::string(kv) + "': KEY=NUMBER expected";
    uint32_t* field = key == "buf-num"     ? &buf_num
                      : key == "buf-size"  ? &buf_size
                      : key == "ring-num"  ? &ring_num
                      : key == "ring-size" ? &ring_size
                      : key == "if-num"    ? &if_num
                      : key == "if-size"   ? &if_size
                                           : nullptr;
    if (!field)
      return "unknown size '" + key + "' (buf-num, buf-size, ring-num, ring-size, if-num, if-size)";
    *field = uint32_t(x);
  }
  return check();
}

uint32_t RegionConfig::max_slots() const {
  return ring_size > sizeof(netmap_ring) ? (ring_size - sizeof(netmap_ring)) / sizeof(netmap_slot)
                                         : 0;
}

std::string RegionConfig::check() const {
  if (buf_size < 64 || buf_size > 65536 || buf_size % 64)
    return "buf_size must be a multiple of 64 between 64 and 65536";
  if (buf_num < 64 || buf_num > (1u << 26)) return "buf_num must be between 64 and 67108864";
  if (max_slots() < 4 || ring_size > (1u << 24))
    return "ring_size must hold at least 4 slots and be at most 16 MiB";
  if (ring_num < 2 || ring_num > 65536) return "ring_num must be between 2 and 65536";
  if (if_size < 256 || if_size > 65536) return "if_size must be between 256 and 65536";
  if (if_num < 1 || if_num > 65536) return "if_num must be between 1 and 65536";
  return {};
}

std::string Region::file_name(uint16_t id) { return "mem." + std::to_string(id); }

namespace {
// This process's mappings of the regions, by id. Region::remove drops the
// entry of the region it unlinks: a cached mapping would keep the file's
// memory (and an fd) for as long as the process lives.
struct RegionCache {
  std::mutex mu;
  std::map<uint16_t, std::shared_ptr<Region>> map;
};
RegionCache& region_cache() {
  static RegionCache c;
  return c;
}
}  // namespace

std::shared_ptr<Region> Region::get(uint16_t id, const RegionConfig& cfg, int* err,
                                    std::string* why, bool create) {
  auto fail = [&](int e, const std::string& text) {
    *err = e;
    if (why) *why = "region " + std::to_string(id) + ": " + text;
    return nullptr;
  };
  std::lock_guard<std::mutex> g(region_cache().mu);
  auto& cache = region_cache().map;
  auto it = cache.find(id);
  if (it != cache.end()) {
    // A region whose last port went away is unlinked (Region::remove); a
    // mapping of the old file must not be used for a new one.
    struct stat a, b;
    std::string path = runtime_dir() + "/" + file_name(id);
    if (::stat(path.c_str(), &a) == 0 && fstat(it->second->fd(), &b) == 0 && a.st_ino == b.st_ino &&
        a.st_dev == b.st_dev)
      return it->second;
    cache.erase(it);
  }
  if (id == 0 || id > kMaxId)
    return fail(EINVAL, "region ids go from 1 to " + std::to_string(kMaxId));
  InitArg arg{id, cfg, nullptr, 0};
  Layout l = layout_of(cfg);
  std::string ow;
  int fd = open_shared_file(file_name(id), l.pub_off + l.memsize, 0600, init_region, &arg, false, &ow);
  if (fd == -ENOENT && !create) return fail(ENOENT, "no such region");
  if (fd == -ENOENT) {
    // Only a region about to be created needs a valid configuration.
    std::string bad = cfg.check();
    if (!bad.empty()) return fail(EINVAL, bad + " (from UNETMAP_* settings)");
    fd = open_shared_file(file_name(id), l.pub_off + l.memsize, 0600, init_region, &arg, true, &ow);
  }
  if (fd < 0) return fail(-fd, ow);
  struct stat st;
  if (fstat(fd, &st) != 0 || uint64_t(st.st_size) < sizeof(RegionHeader)) {
    sys::close(fd);
    return fail(EPROTO, file_name(id) + " is shorter than a region header: refused");
  }
  void* base = sys::mmap(nullptr, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    int e = errno;
    sys::close(fd);
    return fail(e, std::string("cannot map: ") + strerror(e));
  }
  // Checked and kept as one copy: the file may change under us.
  alignas(RegionHeader) unsigned char snap[sizeof(RegionHeader)];
  memcpy(snap, base, sizeof snap);
  const RegionHeader& h = *reinterpret_cast<const RegionHeader*>(snap);
  const std::string bad = check_header(h, id, uint64_t(st.st_size));
  if (!bad.empty()) {
    sys::munmap(base, st.st_size);
    sys::close(fd);
    return fail(EPROTO, file_name(id) + " " + bad);
  }
  std::shared_ptr<Region> r(new Region(fd, Mapping(base, st.st_size), h));
  if (int e = r->map_ext(why)) {
    *err = e;
    return nullptr;
  }
  cache[id] = r;
  return r;
}

// The public part: after the private part, or (extmem) in the
// application's file, mapped at an offset aligned to its page size
// (hugetlbfs needs huge pages).
//
// The header names the extmem file, and anyone who could write the header
// could name any file: the file is followed only if it is a regular file of
// the region file's owner (opened O_PATH|O_NOFOLLOW and checked before it
// is opened for writing, through /proc/self/fd), so a planted header never
// makes another user's process (root's) map a file that is not the
// region maker's own.
Region::Region(int fd, Mapping m, const RegionHeader& h)
    : fd_(fd),
      map_(std::move(m)),
      fixed_{h.mem_id,        h.cfg,           h.pub_off,        h.memsize,
             h.if_pool,       h.ring_pool,     h.buf_pool,       h.kring_off,
             h.buf_stack_off, h.buf_owner_off, h.ring_stack_off, h.if_stack_off,
             h.ring_owner_off, h.if_owner_off, h.ext_off,
             std::string(h.ext_path, strnlen(h.ext_path, sizeof h.ext_path))} {}

int Region::map_ext(std::string* why) {
  const Fixed* h = &fixed_;
  if (h->ext_path.empty()) {
    pub_ = map_.base() + h->pub_off;
    return 0;
  }
  const std::string& path = h->ext_path;
  auto fail = [&](int e, const std::string& text) {
    if (why) *why = "region " + std::to_string(h->mem_id) + " (extmem " + path + "): " + text;
    return e;
  };
  struct stat own, st;
  if (fstat(fd_, &own) != 0) return fail(errno, strerror(errno));
  int pfd = sys::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (pfd < 0) {
    if (errno == ELOOP) return fail(ELOOP, "a symbolic link: refused");
    return fail(errno, strerror(errno));
  }
  if (fstat(pfd, &st) != 0) {
    int e = errno;
    sys::close(pfd);
    return fail(e, strerror(e));
  }
  if (!S_ISREG(st.st_mode) || st.st_uid != own.st_uid) {
    sys::close(pfd);
    return fail(EACCES, std::string(S_ISREG(st.st_mode) ? "belongs to uid " + std::to_string(st.st_uid)
                                                        : "not a regular file") +
                            ", the region file to uid " + std::to_string(own.st_uid) +
                            ": an extmem file is followed only if the region's owner owns it; refused");
  }
  const int fd = sys::open(("/proc/self/fd/" + std::to_string(pfd)).c_str(), O_RDWR | O_CLOEXEC);
  const int open_err = errno;
  sys::close(pfd);
  if (fd < 0) return fail(open_err, strerror(open_err));
  if (fstat(fd, &st) != 0 || st.st_uid != own.st_uid) {
    sys::close(fd);
    return fail(EACCES, "changed while opened: refused");
  }
  const uint64_t align = st.st_blksize > 4096 ? uint64_t(st.st_blksize) : 4096;
  const uint64_t start = h->ext_off & ~(align - 1), end = h->ext_off + h->memsize;
  if (end < h->ext_off || uint64_t(st.st_size) < end) {
    sys::close(fd);
    return fail(EINVAL, "the file is smaller than the region (" + std::to_string(end) + " bytes)");
  }
  const uint64_t len = (end - start + align - 1) & ~(align - 1);
  void* base = sys::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off_t(start));
  if (base == MAP_FAILED) {
    int e = errno;
    sys::close(fd);
    return fail(e, std::string("cannot map: ") + strerror(e));
  }
  ext_fd_ = fd;
  ext_map_ = Mapping(base, len);
  pub_ = static_cast<char*>(base) + (h->ext_off - start);
  return 0;
}

uint64_t Region::public_size(const RegionConfig& cfg) { return layout_of(cfg).memsize; }

RegionHeader Region::planned(uint16_t id, const RegionConfig& cfg) {
  const Layout l = layout_of(cfg);
  RegionHeader h{};
  h.magic = kMagic;
  h.layout_version = kLayout;
  h.mem_id = id;
  h.cfg = cfg;
  h.pub_off = l.pub_off;
  h.memsize = l.memsize;
  h.if_pool = l.if_pool;
  h.ring_pool = l.ring_pool;
  h.buf_pool = l.buf_pool;
  return h;
}

std::shared_ptr<Region> Region::make_ext(uint16_t id, const RegionConfig& cfg,
                                         const std::string& path, uint64_t off, int* err,
                                         std::string* why) {
  std::string bad = cfg.check();
  if (!bad.empty()) {
    *err = EINVAL;
    if (why) *why = "extmem sizes: " + bad;
    return nullptr;
  }
  if (path.empty() || path.size() >= sizeof(RegionHeader::ext_path)) {
    *err = ENAMETOOLONG;
    if (why) *why = "extmem file name '" + path + "' too long";
    return nullptr;
  }
  InitArg arg{id, cfg, path.c_str(), off};
  Layout l = layout_of(cfg);
  std::string ow;
  int fd = open_shared_file(file_name(id), l.pub_off, 0600, init_region, &arg, true, &ow);
  if (fd < 0) {
    *err = -fd;
    if (why) *why = "cannot make " + file_name(id) + ": " + ow;
    return nullptr;
  }
  sys::close(fd);
  auto r = get(id, cfg, err, why, false);
  if (r && path != r->fixed_.ext_path) {  // someone else's region by that id
    *err = EEXIST;
    if (why) *why = "region " + std::to_string(id) + " exists already";
    return nullptr;
  }
  return r;
}

Region::~Region() {
  sys::close(fd_);
  if (ext_fd_ >= 0) sys::close(ext_fd_);
}

void Region::remove(uint16_t id) {
  int err = 0;
  auto r = get(id, RegionConfig{}, &err, nullptr, false);
  if (r && r->hdr()->persistent) return;
  unlink((runtime_dir() + "/" + file_name(id)).c_str());
  std::lock_guard<std::mutex> g(region_cache().mu);
  region_cache().map.erase(id);
}

void Region::forget_removed() {
  std::lock_guard<std::mutex> g(region_cache().mu);
  auto& cache = region_cache().map;
  for (auto it = cache.begin(); it != cache.end();) {
    struct stat a, b;
    const std::string path = runtime_dir_path() + "/" + file_name(it->first);
    const bool same = ::stat(path.c_str(), &a) == 0 && fstat(it->second->fd(), &b) == 0 &&
                      a.st_ino == b.st_ino && a.st_dev == b.st_dev;
    it = !same && it->second.use_count() == 1 ? cache.erase(it) : std::next(it);
  }
}

int Region::lock_region(std::string* why) {
  bool died = false;
  if (int e = hdr()->lock.lock(&died)) {
    if (why) *why = "region " + std::to_string(id()) + ": " + lock_error();
    return e;
  }
  if (died) rebuild_free_stacks();
  return 0;
}

// After a holder of the region lock died: every object whose tag is 0 is
// free, whatever the stacks said. Stacks are refilled in descending order,
// so allocation hands out ascending indexes (better locality).
void Region::rebuild_free_stacks() {
  RegionHeader* h = hdr();
  auto* bs = reinterpret_cast<uint32_t*>(map_.base() + fixed_.buf_stack_off);
  uint32_t n = 0;
  for (uint32_t i = cfg().buf_num; i-- > 2;)
    if (buf_owner()[i] == 0) bs[n++] = i;
  h->buf_free = n;
  auto* rs = reinterpret_cast<uint32_t*>(map_.base() + fixed_.ring_stack_off);
  n = 0;
  for (uint32_t i = cfg().ring_num; i-- > 0;)
    if (ring_owner()[i] == 0) rs[n++] = i;
  h->ring_free = n;
  auto* is = reinterpret_cast<uint32_t*>(map_.base() + fixed_.if_stack_off);
  n = 0;
  for (uint32_t i = cfg().if_num; i-- > 0;)
    if (if_owner()[i] == 0) is[n++] = i;
  h->if_free = n;
}

int Region::alloc_bufs(uint32_t* out, uint32_t n, uint32_t tag, std::string* why) {
  RegionHeader* h = hdr();
  if (int e = lock_region(why)) return e;
  if (h->buf_free > cfg().buf_num - 2) rebuild_free_stacks();  // a count nobody could have made
  if (h->buf_free < n) {
    if (why) *why = exhausted(id(), "buffers", n, bufs_in_use(), cfg().buf_num - 2, "buf_num",
                                "UNETMAP_BUF_NUM");
    h->lock.unlock();
    return ENOMEM;
  }
  auto* st = reinterpret_cast<uint32_t*>(map_.base() + fixed_.buf_stack_off);
  uint32_t* owner = buf_owner();
  // Tag first, pop after: a death in between leaves a tagged buffer on the
  // stack, which the rebuild drops.
  for (uint32_t i = 0; i < n;) {
    if (h->buf_free == 0) {  // only after a rebuild found fewer free than counted
      for (uint32_t k = 0; k < i; k++) owner[out[k]] = 0;
      rebuild_free_stacks();
      h->lock.unlock();
      if (why) *why = "region " + std::to_string(id()) + ": its free list was damaged; try again";
      return ENOMEM;
    }
    const uint32_t b = st[h->buf_free - 1];
    if (b < 2 || b >= cfg().buf_num || owner[b]) {  // a stack entry nobody could have pushed
      rebuild_free_stacks();
      continue;
    }
    owner[b] = tag;
    out[i++] = b;
    h->buf_free--;
  }
  h->lock.unlock();
  return 0;
}

// Every buffer whose tag is one of tags[] goes back: one pass over the
// owner tags, wherever the buffers are (a slot, an extra list, nowhere).
void Region::free_tagged(const std::vector<uint32_t>& tags) {
  if (tags.empty()) return;
  RegionHeader* h = hdr();
  if (lock_region(nullptr)) return;  // the buffers stay out of the pool (lost, never handed out twice)
  auto* st = reinterpret_cast<uint32_t*>(map_.base() + fixed_.buf_stack_off);
  uint32_t* owner = buf_owner();
  const uint32_t lo = *std::min_element(tags.begin(), tags.end());
  const uint32_t hi = *std::max_element(tags.begin(), tags.end());
  for (uint32_t b = 2; b < cfg().buf_num; b++) {
    const uint32_t o = owner[b];
    if (o < lo || o > hi || std::find(tags.begin(), tags.end(), o) == tags.end()) continue;
    owner[b] = 0;
    if (h->buf_free < cfg().buf_num - 2) st[h->buf_free++] = b;
  }
  h->lock.unlock();
}

int Region::alloc_ring(uint32_t* out, uint16_t port, std::string* why) {
  RegionHeader* h = hdr();
  if (int e = lock_region(why)) return e;
  if (h->ring_free > cfg().ring_num) rebuild_free_stacks();
  if (h->ring_free == 0) {
    if (why) *why = exhausted(id(), "rings", 1, cfg().ring_num, cfg().ring_num, "ring_num",
                                "UNETMAP_RING_NUM");
    h->lock.unlock();
    return ENOMEM;
  }
  uint32_t ri = reinterpret_cast<uint32_t*>(map_.base() + fixed_.ring_stack_off)[h->ring_free - 1];
  if (ri >= cfg().ring_num || ring_owner()[ri]) {  // a stack entry nobody could have pushed
    rebuild_free_stacks();
    h->lock.unlock();
    return alloc_ring(out, port, why);
  }
  ring_owner()[ri] = uint32_t(port) + 1;
  h->ring_free--;
  *out = ri;
  h->lock.unlock();
  return 0;
}

void Region::free_ring(uint32_t i) {
  RegionHeader* h = hdr();
  if (lock_region(nullptr)) return;  // stays taken (a repair after the holder's death frees it)
  if (i < cfg().ring_num && ring_owner()[i] && h->ring_free < cfg().ring_num) {
    kring(i)->nslots = 0;
    reinterpret_cast<uint32_t*>(map_.base() + fixed_.ring_stack_off)[h->ring_free] = i;
    ring_owner()[i] = 0;
    h->ring_free++;
  }
  h->lock.unlock();
}

int Region::alloc_if(uint32_t* out, int port, int reg, std::string* why) {
  RegionHeader* h = hdr();
  if (int e = lock_region(why)) return e;
  if (h->if_free > cfg().if_num) rebuild_free_stacks();
  if (h->if_free == 0) {
    if (why) *why = exhausted(id(), "netmap_if objects", 1, cfg().if_num, cfg().if_num, "if_num",
                                "UNETMAP_IF_NUM");
    h->lock.unlock();
    return ENOMEM;
  }
  uint32_t ii = reinterpret_cast<uint32_t*>(map_.base() + fixed_.if_stack_off)[h->if_free - 1];
  if (ii >= cfg().if_num || if_owner()[ii]) {  // a stack entry nobody could have pushed
    rebuild_free_stacks();
    h->lock.unlock();
    return alloc_if(out, port, reg, why);
  }
  if_owner()[ii] = (uint32_t(port) + 1) << 16 | (uint32_t(reg) + 1);
  h->if_free--;
  *out = ii;
  h->lock.unlock();
  return 0;
}

void Region::free_if(uint32_t i, int reg) {
  if (i >= cfg().if_num || if_reg(i) != reg || reg < 0) return;
  free_tagged({extra_tag(i)});
  RegionHeader* h = hdr();
  if (lock_region(nullptr)) return;
  if (if_reg(i) == reg && h->if_free < cfg().if_num) {
    reinterpret_cast<uint32_t*>(map_.base() + fixed_.if_stack_off)[h->if_free] = i;
    if_owner()[i] = 0;
    h->if_free++;
  }
  h->lock.unlock();
}

void Region::destroy_rings(const uint32_t* rings, uint32_t n, uint16_t port) {
  std::vector<uint32_t> mine;
  for (uint32_t i = 0; i < n; i++)
    if (rings[i] < cfg().ring_num && ring_port(rings[i]) == port) mine.push_back(rings[i]);
  std::sort(mine.begin(), mine.end());
  mine.erase(std::unique(mine.begin(), mine.end()), mine.end());
  std::vector<uint32_t> tags;
  for (uint32_t r : mine) {
    tags.push_back(ring_tag(r));
    kring(r)->gen.fetch_add(1);
  }
  free_tagged(tags);
  for (uint32_t r : mine) free_ring(r);
}

void Region::destroy_rings_of(uint16_t port) {
  std::vector<uint32_t> mine;
  for (uint32_t i = 0; i < cfg().ring_num; i++)
    if (ring_port(i) == port) mine.push_back(i);
  destroy_rings(mine.data(), uint32_t(mine.size()), port);
}

namespace {
constexpr int kPortSlots = 4096;
std::atomic<int32_t> g_bound_ports[kPortSlots];
}  // namespace

void Region::bind_port(int port, int delta) {
  if (port >= 0 && port < kPortSlots) g_bound_ports[port].fetch_add(delta, std::memory_order_relaxed);
}

bool Region::port_bound(int port) {
  return port >= 0 && port < kPortSlots && g_bound_ports[port].load(std::memory_order_relaxed) > 0;
}

bool Region::may_take(uint32_t o) const {
  const uint32_t i = o & kTagIndex;
  switch (o & ~kTagIndex) {
    case kRingTag:
      return i < cfg().ring_num && port_bound(ring_port(i));
    case kExtraTag:
      return i < cfg().if_num && if_owner()[i] && port_bound(int(if_owner()[i] >> 16) - 1);
    default:
      return false;  // free, or not a tag
  }
}

int Region::make_ring(uint32_t* out, uint32_t nslots, uint16_t ringid, uint16_t dir,
                      uint16_t port, std::string* why, bool buffers) {
  if (nslots < 2 || nslots > cfg().max_slots()) {
    if (why) *why = "ring of " + std::to_string(nslots) + " slots does not fit ring_size " +
                    std::to_string(cfg().ring_size) + " of region " + std::to_string(id());
    return EINVAL;
  }
  uint32_t ri;
  if (int e = alloc_ring(&ri, port, why)) return e;
  netmap_ring* r = ring(ri);
  KringState* k = kring(ri);
  k->buf_tag = ring_tag(ri);
  uint32_t* tmp = new uint32_t[nslots]();
  if (int e = buffers ? alloc_bufs(tmp, nslots, ring_tag(ri), why) : 0) {
    delete[] tmp;
    free_ring(ri);
    return e;
  }
  memset(static_cast<void*>(r), 0, sizeof(netmap_ring));
  *const_cast<int64_t*>(&r->buf_ofs) = int64_t(fixed_.buf_pool) -
                                       int64_t(fixed_.ring_pool + uint64_t(ri) * cfg().ring_size);
  *const_cast<uint32_t*>(&r->num_slots) = nslots;
  *const_cast<uint32_t*>(&r->nr_buf_size) = cfg().buf_size;
  *const_cast<uint16_t*>(&r->ringid) = ringid;
  *const_cast<uint16_t*>(&r->dir) = dir;
  for (uint32_t i = 0; i < nslots; i++) r->slot[i] = netmap_slot{tmp[i], 0, 0, 0};
  delete[] tmp;
  k->hwcur.store(0);
  k->hwtail.store(dir == 0 ? nslots - 1 : 0);
  k->rhead = k->rcur = 0;
  k->rtail = k->hwtail.load();
  k->packets = k->bytes = k->drops = k->fwd_drops = 0;
  k->waiter.store(0);
  k->nmon.store(0);
  for (auto& m : k->mon) m.store(0);
  k->users = k->excl = 0;
  {
    LockGuard g(k->lease_lock);
    if (!g.ok()) {
      if (why) *why = "region " + std::to_string(id()) + ", ring " + std::to_string(ri) + ": " + lock_error();
      const int e = g.error();
      destroy_rings(&ri, 1, port);
      return e;
    }
    k->lease_tail = k->hwtail.load();
    k->lease_first = k->lease_count = 0;
    k->dead = 0;
    k->gen.fetch_add(1);
  }
  r->head = r->cur = 0;
  r->tail = k->rtail;
  k->nslots = nslots;
  *out = ri;
  return 0;
}

uint32_t Region::alloc_extra(uint32_t n, uint32_t nifp, uint32_t* head) {
  *head = 0;
  if (n == 0) return 0;
  if (lock_region(nullptr)) return 0;
  if (n > hdr()->buf_free) n = hdr()->buf_free;
  hdr()->lock.unlock();
  std::vector<uint32_t> idx(n);
  if (n == 0 || alloc_bufs(idx.data(), n, extra_tag(nifp), nullptr) != 0) return 0;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t next = i + 1 < n ? idx[i + 1] : 0;
    memcpy(buf(idx[i]), &next, 4);
  }
  *head = idx[0];
  return n;
}

}  // namespace unetmap
