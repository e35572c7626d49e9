#include "ports/vhost/guest_mem.h"

#include <errno.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <cstring>

namespace unetmap::vhost {

int GuestMemory::set(const MemTable& t, const int* fds, uint32_t nfds, std::string* why) {
  clear();
  if (t.nregions == 0 || t.nregions > kMaxMemRegions || t.nregions != nfds) {
    *why = "memory table of " + std::to_string(t.nregions) + " regions with " + std::to_string(nfds) +
           " fds (1 to 8 regions, one fd each)";
    return EINVAL;
  }
  for (uint32_t i = 0; i < t.nregions; i++) {
    const MemRegionDesc& d = t.regions[i];
    struct stat st;
    const uint64_t end = d.mmap_offset + d.memory_size;
    if (d.memory_size == 0 || end < d.mmap_offset || d.guest_phys_addr + d.memory_size < d.guest_phys_addr ||
        d.userspace_addr + d.memory_size < d.userspace_addr) {
      *why = "memory region " + std::to_string(i) + ": empty or wrapping around";
      clear();
      return EINVAL;
    }
    // Shared memory only (a memfd, /dev/shm, hugetlbfs): a file whose pages
    // another process serves (FUSE, NFS) could stall a copy forever, inside
    // a lease on another port's ring.
    struct statfs fs;
    if (fstat(fds[i], &st) != 0 || !S_ISREG(st.st_mode) || uint64_t(st.st_size) < end ||
        fstatfs(fds[i], &fs) != 0 || (fs.f_type != TMPFS_MAGIC && fs.f_type != HUGETLBFS_MAGIC)) {
      *why = "memory region " + std::to_string(i) + ": its fd is not a shared-memory file (memfd, tmpfs, " +
             "hugetlbfs) of at least " + std::to_string(end) + " bytes";
      clear();
      return EINVAL;
    }
    // Mapped whole pages of the file's own size (hugetlbfs: huge pages).
    const uint64_t page = st.st_blksize > 4096 ? uint64_t(st.st_blksize) : 4096;
    const uint64_t map_len = (end + page - 1) / page * page;
    void* m = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i], 0);
    if (m == MAP_FAILED) {
      const int err = errno;
      *why = "memory region " + std::to_string(i) + ": mmap: " + strerror(err);
      clear();
      return err;
    }
    Region& r = r_[n_++];
    r.gpa = d.guest_phys_addr;
    r.size = d.memory_size;
    r.uva = d.userspace_addr;
    r.map = static_cast<uint8_t*>(m);
    r.map_len = map_len;
    r.host = r.map + d.mmap_offset;
  }
  return 0;
}

void GuestMemory::clear() {
  for (uint32_t i = 0; i < n_; i++) munmap(r_[i].map, r_[i].map_len);
  for (Region& r : r_) r = Region{};
  n_ = 0;
  last_ = 0;
}

}  // namespace unetmap::vhost
