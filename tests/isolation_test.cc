// Regions are the isolation boundary within a runtime directory shared by a
// group (UNETMAP_GROUP): a region file belongs to the user who made it
// (mode 0600), and another member's register in it fails with EACCES,
// while that member can still make and use a region of their own. Runs as
// root in CI; the other user is "nobody", entered with setuid in a child,
// and the group is nobody's own.
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>

#include <cstdlib>

#include "abi/devnetmap.h"
#include "core/shm.h"
#include "util/test_util.h"

namespace {

using nmtest::Child;
using nmtest::RawPort;

TEST(Isolation, AnotherUsersRegionIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to become another user";
  passwd* nobody = getpwnam("nobody");
  ASSERT_NE(nobody, nullptr);
  // The runtime directory is shared with nobody's group, explicitly.
  ASSERT_EQ(setenv("UNETMAP_GROUP", std::to_string(nobody->pw_gid).c_str(), 1), 0);
  std::string why;
  ASSERT_EQ(unetmap::runtime_dir_check(&why), 0) << why;
  // The other user's process starts before root maps anything, so that it
  // inherits no mapping: it must open the region files itself.
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  const uid_t uid = nobody->pw_uid;
  const gid_t gid = nobody->pw_gid;
  Child other([uid, gid, &go] {
    char c;
    if (read(go[0], &c, 1) != 1) return 9;
    if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) return 10;
    // root's port and root's region: refused, and the reason says so.
    RawPort theirs("iso}0");
    if (theirs.ok()) return 11;
    if (theirs.err != EACCES) return 12;
    if (std::string(unetmap_last_error()).find("Permission denied") == std::string::npos) return 13;
    // A new port in the default region (root's) is refused too...
    RawPort in_root_region("own{0");
    if (in_root_region.ok() || in_root_region.err != EACCES) return 14;
    // ...but a region of this user's own works, end to end.
    nmport_d* a = nmport_open("netmap:own{0@7");
    nmport_d* b = nmport_open("netmap:own}0@7");
    if (!a || !b) {
      fprintf(stderr, "own region: %s\n", unetmap_last_error());
      return 15;
    }
    uint8_t frame[60] = {1, 2, 3};
    if (nmport_inject(a, frame, sizeof frame) != 60) return 16;
    if (ioctl(a->fd, NIOCTXSYNC, nullptr) != 0 || ioctl(b->fd, NIOCRXSYNC, nullptr) != 0) return 17;
    if (nm_ring_space(NETMAP_RXRING(b->nifp, 0)) != 1) return 18;
    nmport_close(a);
    nmport_close(b);
    return 0;
  });
  RawPort mine("iso{0");  // region 1, made by root
  ASSERT_TRUE(mine.ok()) << strerror(mine.err);
  struct stat st;
  ASSERT_EQ(stat((unetmap::runtime_dir() + "/mem.1").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "a region is private to its owner";
  ASSERT_EQ(write(go[1], "x", 1), 1);
  EXPECT_EQ(other.wait(10000), 0);
  close(go[0]);
  close(go[1]);
  // And root's port is untouched.
  EXPECT_TRUE(nm_ring_empty(mine.rx()));
}

}  // namespace
