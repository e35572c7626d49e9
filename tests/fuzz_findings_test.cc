// What the fuzzers (tests/fuzz) found, each as a test that fails without
// the fix. The fuzzers' corpora (tests/fuzz/corpus) hold the inputs too.
#include <dirent.h>
#include <errno.h>
#include <gtest/gtest.h>
#include <libnetmap.h>
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

}  // namespace
