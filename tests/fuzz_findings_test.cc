// What the fuzzers (tests/fuzz) found, each as a test that fails without
// the fix. The fuzzers' corpora (tests/fuzz/corpus) hold the inputs too.
#include <dirent.h>
#include <errno.h>
#include <gtest/gtest.h>
#include <libnetmap.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

namespace {

int open_fds() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(d)) n += e->d_name[0] != '.';
    closedir(d);
  }
  return n;
}

// name_fuzz: a port closed in region N left this process mapping mem.N
// (unlinked with its last port) and holding an fd on it until exit: a
// program opening ports in many regions ran out of fds and kept the
// regions' memory.
TEST(FuzzFindings, ClosedRegionIsNotKeptMapped) {
  // Small regions: 33 of the default size (335 MB each, every page
  // reserved when made) took minutes on a loaded machine.
  setenv("UNETMAP_BUF_NUM", "4096", 1);
  nmport_d* d = nmport_open("netmap:w{0@8");
  ASSERT_NE(d, nullptr);
  nmport_close(d);
  const int base = open_fds();
  for (int id = 9; id < 41; id++) {
    std::string spec = "netmap:w{0@" + std::to_string(id);
    d = nmport_open(spec.c_str());
    ASSERT_NE(d, nullptr) << spec;
    nmport_close(d);
  }
  EXPECT_EQ(open_fds(), base);
  unsetenv("UNETMAP_BUF_NUM");
}

// nmreq_fuzz: a VALE port's private region is sized from the request; a
// register asking for 655360 slots a ring (with 4M extra buffers) made a
// region of gigabytes in /dev/shm and took seconds to fill it.
TEST(FuzzFindings, ValeSlotsAreBounded) {
  nmport_d* d = nmport_prepare("vale0:h");
  ASSERT_NE(d, nullptr);
  d->reg.nr_tx_slots = d->reg.nr_rx_slots = 655360;
  errno = 0;
  EXPECT_NE(nmport_open_desc(d), 0);
  EXPECT_EQ(errno, EINVAL);
  nmport_undo_prepare(d);
  // Large rings within the bound still work.
  d = nmport_open("vale0:h@conf:slots=4096");
  EXPECT_NE(d, nullptr);
  nmport_close(d);
}

// A VALE port with the largest rings gets a private region sized for its
// rings and monitors, not for pipes of its ring size too: that made the
// region 1.7 GB, and a register asking for every extra buffer of it ran
// out of the fuzzer's memory and time.
TEST(FuzzFindings, LargeValeRingsDoNotInflateThePipeRoom) {
  nmport_d* d = nmport_open("vale0:big@conf:slots=65536");
  ASSERT_NE(d, nullptr) << strerror(errno);
  const uint64_t memsize = d->reg.nr_memsize;
  nmport_close(d);
  // Rings (2 x 65536 slots) and 4 monitors' rings of 65536 buffers of 2 KB
  // each: about 800 MB. Pipes of 65536 slots on top would be 1.7 GB.
  EXPECT_LT(memsize, 1000ull << 20) << "region of " << (memsize >> 20) << " MB";
  EXPECT_GT(memsize, 600ull << 20);
  // Many rings of that size: refused with a message, not a region of 15 GB.
  errno = 0;
  d = nmport_open("vale0:huge@conf:rings=64,slots=65536");
  EXPECT_EQ(d, nullptr);
  EXPECT_EQ(errno, ENOMEM);
  if (d) nmport_close(d);
}

}  // namespace
