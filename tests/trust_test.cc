// The trust model (docs/architecture.md, "Trust model"), tried as an attacker
// would: another local user outside root's runtime directory, the same user
// inside a directory shared with a group (UNETMAP_GROUP), a buggy process
// that scribbles on a shared lock, and a file system that runs full.
//
// Runs as root (skipped otherwise). The other user is "nobody" (65534),
// entered with setresuid in a child forked before root's process uses the
// library, so that it inherits no mapping and must open every file itself.
// Each test points UNETMAP_DIR at a directory the library makes, inside a
// parent that everyone may write (sticky, as /dev/shm is), so that the
// other user could also prepare that directory first. Root's traffic (a
// pipe pair in two processes, every byte checked) runs during the attacks
// and must be unharmed. Every wait is on an event with a deadline.
#include <dirent.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <cstdlib>
#include <set>
#include <string>

#include "abi/devnetmap.h"
#include "core/registry.h"
#include "core/shm.h"
#include "mem/region.h"
#include "util/pipe_io.h"
#include "util/test_util.h"

namespace {

using nmtest::Child;
using nmtest::Event;
using nmtest::RawPort;

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;

#define NEED_ROOT() \
  if (geteuid() != 0) GTEST_SKIP() << "needs root to become another user"

// Become nobody, in nobody's group (a member of a UNETMAP_GROUP=65534
// domain) or in no group that root's directory has.
bool become_nobody() {
  gid_t g = kNogroup;
  return setgroups(1, &g) == 0 && setresgid(g, g, g) == 0 &&
         setresuid(kNobody, kNobody, kNobody) == 0;
}

// test_main's directory for this test, made a /dev/shm-like parent.
std::string base_dir() {
  static const std::string b = getenv("UNETMAP_DIR");
  return b;
}

// UNETMAP_DIR for this process: a directory the library makes itself.
// Call before the first use of the library.
std::string fresh_runtime_dir() {
  const std::string base = base_dir();
  chmod(base.c_str(), 01777);
  std::string d = base + "/unetmap";
  setenv("UNETMAP_DIR", d.c_str(), 1);
  return d;
}

std::string read_file(const std::string& path) {
  std::string s;
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return "<" + std::string(strerror(errno)) + ">";
  char b[4096];
  ssize_t n;
  while ((n = read(fd, b, sizeof b)) > 0) s.append(b, size_t(n));
  close(fd);
  return s;
}

// A root-only file with known bytes: what an attacker wants root to write.
std::string make_secret(size_t size) {
  std::string path = base_dir() + "/secret";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  std::string bytes(size, 'S');
  if (fd < 0 || write(fd, bytes.data(), size) != ssize_t(size)) abort();
  close(fd);
  return path;
}

std::set<std::string> list_dir(const std::string& d) {
  std::set<std::string> names;
  if (DIR* dir = opendir(d.c_str())) {
    while (dirent* e = readdir(dir))
      if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names.insert(e->d_name);
    closedir(dir);
  }
  return names;
}

std::string show(const std::set<std::string>& names) {
  std::string s;
  for (auto& n : names) s += n + " ";
  return s;
}

// root's traffic: a pipe pair in two processes, every packet checked.
struct Traffic {
  Event tx_ready, rx_ready, go;
  Child tx, rx;
  enum Drop { kNone, kRx, kTx };  // which end becomes nobody once open
  void start(const std::string& pipe, uint32_t count, uint32_t slots = 0, Drop drop = kNone) {
    rx = Child([&, pipe, count, slots, drop] {
      RawPort p((pipe + "}0").c_str(), NR_REG_ALL_NIC, 0, 0, slots);
      if (!p.ok()) {
        fprintf(stderr, "traffic rx: %s: %s\n", strerror(p.err), unetmap_last_error());
        return 2;
      }
      if (drop == kRx && !become_nobody()) return 5;
      rx_ready.signal();
      if (go.wait(20000) < 0) return 3;
      nmtest::IoOpts o;
      o.count = count;
      o.timeout_ms = 20000;
      std::string e = nmtest::recv_pkts(nmtest::Rings{p.fd, p.nifp, 0, 0}, o);
      if (!e.empty()) fprintf(stderr, "traffic rx: %s\n", e.c_str());
      return e.empty() ? 0 : 4;
    });
    tx = Child([&, pipe, count, slots, drop] {
      RawPort p((pipe + "{0").c_str(), NR_REG_ALL_NIC, 0, 0, slots);
      if (!p.ok()) {
        fprintf(stderr, "traffic tx: %s: %s\n", strerror(p.err), unetmap_last_error());
        return 2;
      }
      if (drop == kTx && !become_nobody()) return 5;
      tx_ready.signal();
      if (go.wait(20000) < 0) return 3;
      nmtest::IoOpts o;
      o.count = count;
      o.timeout_ms = 20000;
      std::string e = nmtest::send_pkts(nmtest::Rings{p.fd, p.nifp, 0, 0}, o);
      if (!e.empty()) fprintf(stderr, "traffic tx: %s\n", e.c_str());
      return e.empty() ? 0 : 4;
    });
  }
  bool ready() { return tx_ready.wait(10000) == 'x' && rx_ready.wait(10000) == 'x'; }
  void run() {
    go.signal();
    go.signal();
  }
  // Both ends done and every packet right.
  bool flowed() { return rx.wait(30000) == 0 && tx.wait(5000) == 0; }
};

// ---------------------------------------------------------------------------
// The default: a runtime directory is its first user's alone.

TEST(Trust, RuntimeDirectoryIsPrivateByDefault) {
  const std::string dir = fresh_runtime_dir();
  RawPort p("priv{0");
  ASSERT_TRUE(p.ok()) << unetmap_last_error();
  struct stat st;
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u) << "the runtime directory";
  ASSERT_EQ(stat((dir + "/registry").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u) << "the registry";
  ASSERT_EQ(stat((dir + "/mem.1").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u) << "a region";
  // Wake-up FIFOs: in chan/, which only members reach through the
  // directory (a member that drops root keeps its fd of chan/).
  ASSERT_EQ(stat((dir + "/chan").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0711u) << "chan/";
  int fifos = 0;
  for (const std::string& n : list_dir(dir + "/chan"))
    if (stat((dir + "/chan/" + n).c_str(), &st) == 0) {
      fifos++;
      EXPECT_TRUE(S_ISFIFO(st.st_mode)) << n;
      EXPECT_EQ(st.st_mode & 07777, 0622u) << n << ": who reaches chan/ may wake, only the owner reads";
    }
  EXPECT_EQ(fifos, 1);
}

TEST(Trust, GroupDirectoryIsSetgidAndGroupShared) {
  NEED_ROOT();
  setenv("UNETMAP_GROUP", "65534", 1);
  const std::string dir = fresh_runtime_dir();
  RawPort p("grp{0");
  ASSERT_TRUE(p.ok()) << unetmap_last_error();
  struct stat st;
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 02770u);
  EXPECT_EQ(st.st_gid, kNogroup);
  ASSERT_EQ(stat((dir + "/registry").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_gid, kNogroup);
  ASSERT_EQ(stat((dir + "/mem.1").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u) << "regions stay private to their owner";
  ASSERT_EQ(stat((dir + "/chan").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 02771u) << "chan/";
  EXPECT_EQ(st.st_gid, kNogroup);
  EXPECT_EQ(list_dir(dir + "/chan").size(), 1u);
  for (const std::string& n : list_dir(dir + "/chan")) {
    if (stat((dir + "/chan/" + n).c_str(), &st) == 0) {
      EXPECT_EQ(st.st_mode & 07777, 0622u) << n << ": a member may wake, not read (steal) a wake-up";
    }
  }
}

// chan/'s FIFOs are reachable by whoever can enter the runtime directory:
// one that others may enter (an old or hand-made 0755) is refused, with
// the reason, before any FIFO is made in it.
TEST(Trust, RuntimeDirectoryOthersMayEnterIsRefused) {
  const std::string dir = fresh_runtime_dir();
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(chmod(dir.c_str(), 0711), 0);
  RawPort p("oe{0");
  EXPECT_FALSE(p.ok());
  EXPECT_EQ(p.err, EACCES);
  EXPECT_NE(std::string(unetmap_last_error()).find("can be entered by every user"), std::string::npos)
      << unetmap_last_error();
  EXPECT_FALSE(list_dir(dir).count("chan")) << "a FIFO directory was made in it";
}

// tcpdump opens its port as root, then becomes user tcpdump: its wake-ups
// must still reach root's processes, and theirs reach it, or a pipe
// crawls at one batch per poll timeout. Each end in turn drops root after
// opening; the pipe has 64 slots, so 20000 packets need hundreds of
// wake-ups each way within the deadline.
TEST(Trust, AnEndThatDropsRootStillWakesAndIsWoken) {
  NEED_ROOT();
  const std::string dir = fresh_runtime_dir();
  for (Traffic::Drop drop : {Traffic::kRx, Traffic::kTx}) {
    SCOPED_TRACE(drop == Traffic::kRx ? "the receiver drops root" : "the sender drops root");
    Traffic t;
    t.start(drop == Traffic::kRx ? "dr" : "dt", 20000, 64, drop);
    ASSERT_TRUE(t.ready());
    t.run();
    EXPECT_TRUE(t.flowed());
  }
  // Nobody else reaches the FIFOs: chan/ is reached only through root's
  // 0700 directory.
  Child outsider([&] {
    if (!become_nobody()) return 10;
    int fd = open((dir + "/chan/0").c_str(), O_RDWR | O_NONBLOCK);
    return fd < 0 && errno == EACCES ? 0 : 11;
  });
  EXPECT_EQ(outsider.wait(10000), 0) << "an outsider opened a wake-up FIFO";
}

// A user outside root's domain can do nothing to it: not take the lock,
// read a region, plant or delete a file, open /dev/netmap (so no fd of the
// domain to exhaust, no port on root's switch), while root's pipe flows.
TEST(Trust, OutsiderCannotTouchRootsDomain) {
  NEED_ROOT();
  const std::string dir = fresh_runtime_dir();
  Event go, done;
  Child spy([&] {
    if (go.wait(20000) < 0 || !become_nobody()) return 10;
    int fd = open((dir + "/registry").c_str(), O_RDWR);  // the lock word
    if (fd >= 0 || errno != EACCES) return 11;
    fd = open((dir + "/mem.1").c_str(), O_RDONLY);  // root's packets
    if (fd >= 0 || errno != EACCES) return 12;
    fd = open((dir + "/mem.9").c_str(), O_CREAT | O_RDWR, 0600);  // a planted file
    if (fd >= 0 || errno != EACCES) return 13;
    if (symlink("/etc/passwd", (dir + "/mem.8").c_str()) == 0 || errno != EACCES) return 14;
    if (unlink((dir + "/registry").c_str()) == 0 || errno != EACCES) return 15;  // root's ports
    fd = open("/dev/netmap", O_RDWR);
    if (fd >= 0 || errno != EACCES) return 16;
    if (!strstr(unetmap_last_error(), "Permission denied")) return 17;
    if (nmport_d* d = nmport_open("netmap:vale0:spy")) {  // a port on root's switch
      nmport_close(d);
      return 18;
    }
    done.signal();
    return 0;
  });
  Traffic t;
  t.start("tr", 20000);
  ASSERT_TRUE(t.ready());
  RawPort va("vale0:a");
  ASSERT_TRUE(va.ok()) << unetmap_last_error();
  t.run();
  go.signal();
  EXPECT_EQ(spy.wait(10000), 0) << "exit code = the attack that was not refused";
  EXPECT_TRUE(t.flowed());
  RawPort after("tr2{0");
  EXPECT_TRUE(after.ok()) << unetmap_last_error();
}

// Another user made the directory before root (in /dev/shm anyone can):
// root refuses it, whatever is in it, and says why.
TEST(Trust, RootRefusesADirectoryAnotherUserPrepared) {
  NEED_ROOT();
  const std::string dir = fresh_runtime_dir();
  const std::string secret = make_secret(4096);
  Child prep([&] {
    if (!become_nobody()) return 10;
    if (mkdir(dir.c_str(), 0755) != 0) return 11;
    // A registry made to crash its user: right magic, garbage lock and tables.
    int fd = open((dir + "/registry").c_str(), O_RDWR | O_CREAT, 0644);
    if (fd < 0 || ftruncate(fd, sizeof(unetmap::RegistryFile)) != 0) return 12;
    void* m = mmap(nullptr, sizeof(unetmap::RegistryFile), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) return 13;
    memset(m, 0xff, sizeof(unetmap::RegistryFile));
    auto* f = static_cast<unetmap::RegistryFile*>(m);
    f->magic = unetmap::Registry::kMagic;
    f->layout_version = unetmap::Registry::kLayout;
    munmap(m, sizeof(unetmap::RegistryFile));
    close(fd);
    if (symlink(secret.c_str(), (dir + "/mem.1").c_str()) != 0) return 14;
    return 0;
  });
  ASSERT_EQ(prep.wait(5000), 0);
  Child user([] {
    int fd = open("/dev/netmap", O_RDWR);
    if (fd >= 0) return 1;
    if (errno != EACCES) return 2;
    const std::string msg = unetmap_last_error();
    if (msg.find("belongs to nobody") == std::string::npos ||
        msg.find("root uses only a runtime directory root made") == std::string::npos) {
      fprintf(stderr, "message: %s\n", msg.c_str());
      return 3;
    }
    return 0;
  });
  EXPECT_EQ(user.wait(10000), 0) << "root used a directory another user prepared";
  EXPECT_TRUE(read_file(secret) == std::string(4096, 'S')) << "root's file was written";

  // The directory itself a link to another user's directory: refused too.
  ASSERT_EQ(system(("rm -rf " + dir).c_str()), 0);
  Child link([&] {
    if (!become_nobody()) return 10;
    const std::string theirs = base_dir() + "/theirs";
    if (mkdir(theirs.c_str(), 0700) != 0 || symlink(theirs.c_str(), dir.c_str()) != 0) return 11;
    return 0;
  });
  ASSERT_EQ(link.wait(5000), 0);
  Child user2([] {
    int fd = open("/dev/netmap", O_RDWR);
    if (fd >= 0) return 1;
    if (!strstr(unetmap_last_error(), "symbolic link")) {
      fprintf(stderr, "message: %s\n", unetmap_last_error());
      return 2;
    }
    return 0;
  });
  EXPECT_EQ(user2.wait(10000), 0) << "root followed a link another user planted";
}

// ---------------------------------------------------------------------------
// A group domain: members share the registry; regions stay their owners',
// and nothing a member plants makes root follow a link or another user's
// file.

// What UNETMAP_GROUP=65534 makes of the directory (the library did it
// already; done again so that the test means the same on a build without
// group sharing).
void expect_group_dir(const std::string& dir) {
  EXPECT_EQ(chown(dir.c_str(), uid_t(-1), kNogroup), 0);
  EXPECT_EQ(chmod(dir.c_str(), 02770), 0);
}

// Small regions for the planted ones (the default is 342 MB).
unetmap::RegionConfig small_config() {
  unetmap::RegionConfig c;
  c.buf_num = 256;
  c.ring_num = 4;
  c.if_num = 4;
  return c;
}

TEST(Trust, GroupMemberCannotMakeRootUseItsFiles) {
  NEED_ROOT();
  setenv("UNETMAP_GROUP", "65534", 1);
  const std::string dir = fresh_runtime_dir();
  const uint64_t ext_size = unetmap::Region::public_size(small_config());
  const std::string secret = make_secret(ext_size);
  const std::string own_ext = base_dir() + "/nobody-ext";
  Event go;
  Child member([&] {
    if (go.wait(20000) < 0 || !become_nobody()) return 10;
    // 1. a link named as a region root will open
    if (symlink(secret.c_str(), (dir + "/mem.5").c_str()) != 0) return 11;
    // 2. a world-writable region file
    int fd = open((dir + "/mem.6").c_str(), O_RDWR | O_CREAT, 0666);
    if (fd < 0 || fchmod(fd, 0666) != 0 || ftruncate(fd, 1 << 20) != 0) return 12;
    close(fd);
    // 3. a real region of this user's, on its own extmem file, whose header
    //    then names root's file
    fd = open(own_ext.c_str(), O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ftruncate(fd, off_t(ext_size)) != 0) return 13;
    close(fd);
    int err = 0;
    std::string why;
    if (!unetmap::Region::make_ext(7, small_config(), own_ext, 0, &err, &why)) {
      fprintf(stderr, "make_ext: %s\n", why.c_str());
      return 14;
    }
    fd = open((dir + "/mem.7").c_str(), O_RDWR);
    if (fd < 0) return 15;
    auto* h = static_cast<unetmap::RegionHeader*>(
        mmap(nullptr, sizeof(unetmap::RegionHeader), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    if (h == MAP_FAILED) return 16;
    snprintf(h->ext_path, sizeof h->ext_path, "%s", secret.c_str());
    munmap(h, sizeof *h);
    close(fd);
    return 0;
  });
  Traffic t;
  t.start("tg", 20000);
  ASSERT_TRUE(t.ready());
  expect_group_dir(dir);
  t.run();
  go.signal();
  ASSERT_EQ(member.wait(10000), 0) << "the member could not plant its files";
  int err = 0;
  std::string why;
  EXPECT_FALSE(unetmap::Region::get(5, small_config(), &err, &why, false));
  EXPECT_EQ(err, ELOOP);
  EXPECT_NE(why.find("symbolic link"), std::string::npos) << why;
  why.clear();
  EXPECT_FALSE(unetmap::Region::get(6, small_config(), &err, &why, false));
  EXPECT_EQ(err, EACCES);
  EXPECT_NE(why.find("writable by every user"), std::string::npos) << why;
  why.clear();
  EXPECT_FALSE(unetmap::Region::get(7, small_config(), &err, &why, false))
      << "root mapped a root-only file that a planted header named";
  EXPECT_EQ(err, EACCES);
  EXPECT_NE(why.find("followed only if the region's owner owns it"), std::string::npos) << why;
  // Through the API: a port in region 7 is refused the same way.
  EXPECT_EQ(nmport_open("netmap:ext{0@7"), nullptr);
  EXPECT_TRUE(read_file(secret) == std::string(ext_size, 'S')) << "root's file was written";
  EXPECT_TRUE(t.flowed());
}

// A member replaces the wake-up FIFO of root's blocked receiver with a link
// to a root-only file: root's sender, waking it, must not write the file.
TEST(Trust, GroupMemberCannotRedirectRootsWakeUp) {
  NEED_ROOT();
  setenv("UNETMAP_GROUP", "65534", 1);
  const std::string dir = fresh_runtime_dir();
  const std::string secret = make_secret(4096);
  Event go;
  Child member([&] {
    char chan[64] = {};
    if (!go.recv(&chan, 20000) || !become_nobody()) return 10;
    const std::string path = dir + "/chan/" + chan;
    if (unlink(path.c_str()) != 0 || symlink(secret.c_str(), path.c_str()) != 0) return 11;
    return 0;
  });
  Event armed;
  Child waiter([&] {
    RawPort rx("cw}0");
    if (!rx.ok()) return 2;
    armed.signal();
    rx.poll(POLLIN, 20000);  // woken or killed
    return 0;
  });
  ASSERT_EQ(armed.wait(10000), 'x');
  expect_group_dir(dir);
  RawPort tx("cw{0");
  ASSERT_TRUE(tx.ok()) << unetmap_last_error();
  // The receiver's armed token names its FIFO (a real event in shared
  // memory, awaited with a deadline).
  int err = 0;
  unetmap::Registry* reg = unetmap::Registry::get(&err);
  ASSERT_NE(reg, nullptr);
  auto region = unetmap::Region::get(tx.reg.nr_mem_id, unetmap::RegionConfig::from_env(), &err);
  ASSERT_TRUE(region);
  const int port = reg->find_port("cw}0");
  ASSERT_GE(port, 0);
  unetmap::KringState* ks = region->kring(reg->port(port).ring[unetmap::kRx][0]);
  uint32_t token = 0;
  for (const double end = nmtest::now_ms() + 10000; !token && nmtest::now_ms() < end; sched_yield())
    token = ks->waiter.load();
  ASSERT_NE(token, 0u) << "the receiver never armed its wait";
  char chan[64] = {};
  snprintf(chan, sizeof chan, "%u", unetmap::Registry::chan_id(token));
  go.send(chan);
  ASSERT_EQ(member.wait(10000), 0) << "the member could not replace the FIFO";
  nmtest::PktSpec spec;
  nmtest::put_pkt(tx.tx(), spec, 0, 0);
  ASSERT_EQ(tx.txsync(), 0);  // wakes the receiver: opens its FIFO by name
  EXPECT_TRUE(read_file(secret) == std::string(4096, 'S')) << "root wrote a file a link named";
}

// A member writes the registry's lock word (a lock "held" by its own live
// process): root's open is an error within the bound, naming the holder,
// and root's running pipe is not disturbed.
TEST(Trust, GroupMemberHoldingTheRegistryLockIsABoundedError) {
  NEED_ROOT();
  setenv("UNETMAP_GROUP", "65534", 1);
  const std::string dir = fresh_runtime_dir();
  Event go, holding, release;
  Child member([&] {
    if (go.wait(20000) < 0 || !become_nobody()) return 10;
    int fd = open((dir + "/registry").c_str(), O_RDWR);
    if (fd < 0) return 11;
    auto* f = static_cast<unetmap::RegistryFile*>(mmap(
        nullptr, sizeof(unetmap::RegistryFile), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    if (f == MAP_FAILED) return 12;
    __atomic_store_n(&f->lock.m.__data.__lock, int(getpid()), __ATOMIC_SEQ_CST);
    holding.signal();
    if (release.wait(20000) < 0) return 13;
    __atomic_store_n(&f->lock.m.__data.__lock, 0, __ATOMIC_SEQ_CST);
    return 0;
  });
  Traffic t;
  t.start("th", 20000);
  ASSERT_TRUE(t.ready());
  expect_group_dir(dir);
  t.run();
  go.signal();
  ASSERT_EQ(holding.wait(10000), 'x');
  const std::string holder = "pid " + std::to_string(member.pid());
  Child opener([&] {
    setenv("UNETMAP_LOCK_TIMEOUT_MS", "300", 1);  // before this process's first lock
    const double t0 = nmtest::now_ms();
    RawPort p("hang{0");
    if (p.ok()) return 1;
    if (p.err != ETIMEDOUT) return 2;
    if (nmtest::now_ms() - t0 > 3000) return 3;
    if (!strstr(unetmap_last_error(), holder.c_str())) {
      fprintf(stderr, "message: %s\n", unetmap_last_error());
      return 4;
    }
    return 0;
  });
  EXPECT_EQ(opener.wait(10000), 0) << "-1: root hung on a lock word another user wrote";
  release.signal();
  EXPECT_EQ(member.wait(5000), 0);
  EXPECT_TRUE(t.flowed());
  RawPort after("after{0");
  EXPECT_TRUE(after.ok()) << unetmap_last_error();
}

// ---------------------------------------------------------------------------
// A lock word written by root's own buggy process: a bounded error that
// names the holder (or says the word names nobody), never a hang.

TEST(Trust, GarbageLockWordIsABoundedErrorNamingTheHolder) {
  setenv("UNETMAP_LOCK_TIMEOUT_MS", "300", 1);
  RawPort keep("keep{0");
  ASSERT_TRUE(keep.ok()) << unetmap_last_error();
  int err = 0;
  unetmap::Registry* reg = unetmap::Registry::get(&err);
  ASSERT_NE(reg, nullptr);
  pthread_mutex_t& m = reg->lock().m;
  auto open_fails = [](int want_err, const std::string& want_text) {
    return Child([want_err, want_text] {
      const double t0 = nmtest::now_ms();
      RawPort p("g{0");
      if (p.ok()) return 1;
      if (p.err != want_err) {
        fprintf(stderr, "errno %d (%s), message: %s\n", p.err, strerror(p.err), unetmap_last_error());
        return 2;
      }
      if (nmtest::now_ms() - t0 > 3000) return 3;
      if (!strstr(unetmap_last_error(), want_text.c_str())) {
        fprintf(stderr, "message: %s\n", unetmap_last_error());
        return 4;
      }
      return 0;
    });
  };
  // 1. The word names a thread that does not exist.
  Child gone([] { return 0; });
  const int dead = gone.pid();
  ASSERT_EQ(gone.wait(5000), 0);
  __atomic_store_n(&m.__data.__lock, dead, __ATOMIC_SEQ_CST);
  Child c1 = open_fails(ETIMEDOUT, "thread id " + std::to_string(dead) + ", which no live process has");
  EXPECT_EQ(c1.wait(10000), 0) << "-1: hung on a lock word naming a dead thread";
  __atomic_store_n(&m.__data.__lock, 0, __ATOMIC_SEQ_CST);
  // 2. A live process holds it (stuck in its critical section).
  Event locked;
  Child holder([&] {
    unetmap::LockGuard g(reg->lock());
    locked.signal();
    for (;;) pause();
    return 0;
  });
  ASSERT_EQ(locked.wait(5000), 'x');
  Child c2 = open_fails(ETIMEDOUT, "pid " + std::to_string(holder.pid()) + " (trust_test)");
  EXPECT_EQ(c2.wait(10000), 0) << "-1: hung behind a live holder";
  holder.kill_now();  // the robust mutex passes to the next locker
  // 3. The type word overwritten: refused before glibc acts on it.
  const int kind = m.__data.__kind;
  m.__data.__kind = 0x7fffff03;
  Child c3 = open_fails(EPROTO, "overwritten");
  EXPECT_EQ(c3.wait(10000), 0);
  m.__data.__kind = kind;
  RawPort after("after{0");
  EXPECT_TRUE(after.ok()) << unetmap_last_error();
}

// The same for a region's lock (a register that needs a ring fails, naming
// the region) and a ring's lease lock (VALE forwarding to it drops, the
// sender goes on), and both work again once the word is sane.
TEST(Trust, GarbageRegionAndLeaseLocksAreBoundedErrors) {
  setenv("UNETMAP_LOCK_TIMEOUT_MS", "300", 1);
  RawPort a("vale0:a"), b("vale0:b");
  RawPort keep("keep{0");  // region 1
  ASSERT_TRUE(a.ok() && b.ok() && keep.ok()) << unetmap_last_error();
  Child gone([] { return 0; });
  const int dead = gone.pid();
  ASSERT_EQ(gone.wait(5000), 0);
  int err = 0;
  auto region1 = unetmap::Region::get(keep.reg.nr_mem_id, unetmap::RegionConfig::from_env(), &err);
  ASSERT_TRUE(region1);
  pthread_mutex_t& rm = region1->hdr()->lock.m;
  __atomic_store_n(&rm.__data.__lock, dead, __ATOMIC_SEQ_CST);
  Child opener([] {
    const double t0 = nmtest::now_ms();
    RawPort p("more{0");
    if (p.ok()) return 1;
    if (p.err != ETIMEDOUT || nmtest::now_ms() - t0 > 3000) return 2;
    if (!strstr(unetmap_last_error(), "region 1: lock held")) {
      fprintf(stderr, "message: %s\n", unetmap_last_error());
      return 3;
    }
    return 0;
  });
  EXPECT_EQ(opener.wait(10000), 0) << "-1: hung on a region lock naming a dead thread";
  __atomic_store_n(&rm.__data.__lock, 0, __ATOMIC_SEQ_CST);

  // b's rx ring: its lease lock names a dead thread.
  unetmap::Registry* reg = unetmap::Registry::get(&err);
  ASSERT_NE(reg, nullptr);
  const int pb = reg->find_port("vale0:b");
  ASSERT_GE(pb, 0);
  auto rb = unetmap::Region::get(b.reg.nr_mem_id, unetmap::RegionConfig::from_env(), &err);
  ASSERT_TRUE(rb);
  unetmap::KringState* ks = rb->kring(reg->port(pb).ring[unetmap::kRx][0]);
  __atomic_store_n(&ks->lease_lock.m.__data.__lock, dead, __ATOMIC_SEQ_CST);
  nmtest::PktSpec spec;
  Child sender([&] {
    const double t0 = nmtest::now_ms();
    nmtest::put_pkt(a.tx(), spec, 0, 0);  // broadcast: to b
    if (a.txsync() != 0) return 1;
    return nmtest::now_ms() - t0 < 3000 ? 0 : 2;
  });
  EXPECT_EQ(sender.wait(10000), 0) << "-1: the sender hung on a damaged lease lock";
  ASSERT_EQ(b.rxsync(), 0);
  EXPECT_TRUE(nm_ring_empty(b.rx())) << "dropped, not delivered through a broken lock";
  __atomic_store_n(&ks->lease_lock.m.__data.__lock, 0, __ATOMIC_SEQ_CST);
  nmtest::put_pkt(a.tx(), spec, 1, 0);
  ASSERT_EQ(a.txsync(), 0);
  ASSERT_EQ(b.rxsync(), 0);
  EXPECT_FALSE(nm_ring_empty(b.rx())) << "forwarding resumes once the lock is sane";
  RawPort more("more{0");
  EXPECT_TRUE(more.ok()) << unetmap_last_error();
}

// ---------------------------------------------------------------------------
// A full file system: an error at open, never a SIGBUS later.

// Temporary files whose maker died are removed by the next creator: one
// planted with a dead maker's name, one left by a creator killed while it
// reserved a region's pages (found by inotify as it is made).
TEST(Trust, TmpFilesOfDeadCreatorsAreRemoved) {
  const std::string dir = fresh_runtime_dir();
  RawPort first("t{0");
  ASSERT_TRUE(first.ok()) << unetmap_last_error();
  Child gone([] { return 0; });
  const unetmap::ProcId dead = unetmap::ProcId::of(gone.pid());
  ASSERT_EQ(gone.wait(5000), 0);
  const std::string planted = ".tmp." + std::to_string(dead.pid) + "." + std::to_string(dead.start) + ".0";
  const unetmap::ProcId me = unetmap::ProcId::self();
  const std::string live = ".tmp." + std::to_string(me.pid) + "." + std::to_string(me.start) + ".999";
  for (const std::string& n : {planted, live}) {
    int fd = open((dir + "/" + n).c_str(), O_CREAT | O_RDWR, 0600);
    ASSERT_GE(fd, 0);
    close(fd);
  }
  std::string left;
  for (int attempt = 0; attempt < 5 && left.empty(); attempt++) {
    int in = inotify_init1(IN_CLOEXEC);
    ASSERT_GE(in, 0);
    ASSERT_GE(inotify_add_watch(in, dir.c_str(), IN_CREATE), 0);
    Child maker([attempt] {
      // A default-size region (342 MB): its pages take a while to reserve.
      nmport_d* d = nmport_open(("netmap:k{0@" + std::to_string(20 + attempt)).c_str());
      return d ? 0 : 1;
    });
    const double end = nmtest::now_ms() + 10000;
    while (left.empty() && nmtest::now_ms() < end) {
      pollfd p{in, POLLIN, 0};
      if (poll(&p, 1, 1000) != 1) continue;
      alignas(inotify_event) char buf[4096];
      ssize_t n = read(in, buf, sizeof buf);
      for (ssize_t off = 0; off < n;) {
        auto* ev = reinterpret_cast<inotify_event*>(buf + off);
        const std::string prefix = ".tmp." + std::to_string(maker.pid()) + ".";
        if (ev->len && std::string(ev->name).rfind(prefix, 0) == 0) {
          maker.kill_now();
          if (access((dir + "/" + ev->name).c_str(), F_OK) == 0) left = ev->name;
          break;
        }
        off += ssize_t(sizeof(inotify_event) + ev->len);
      }
      if (maker.pid() < 0) break;  // killed too late: try again
    }
    close(in);
  }
  ASSERT_FALSE(left.empty()) << "no creator was caught inside its creation";
  // The next creation of a file removes the dead makers' temporary files.
  nmport_d* next = nmport_open("netmap:n{0@30");
  ASSERT_NE(next, nullptr) << unetmap_last_error();
  const auto names = list_dir(dir);
  EXPECT_FALSE(names.count(planted)) << show(names);
  EXPECT_FALSE(names.count(left)) << show(names);
  EXPECT_TRUE(names.count(live)) << "a live maker's file stays: " << show(names);
  nmport_close(next);
}

// An 8 MB tmpfs (a private mount namespace): regions are opened until it is
// full. The open that does not fit fails with ENOSPC and says so; nothing it
// made is left; and a pipe opened before, whose buffers were never touched,
// then sends through every buffer without a SIGBUS.
TEST(Trust, FullFileSystemIsAnErrorAtOpen) {
  NEED_ROOT();
  const std::string mnt = base_dir() + "/small";
  ASSERT_EQ(mkdir(mnt.c_str(), 0700), 0);
  Child test([&] {
    if (unshare(CLONE_NEWNS) != 0) return 10;
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 11;
    if (mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=8m,mode=0700") != 0) return 12;
    const std::string dir = mnt + "/run";
    setenv("UNETMAP_DIR", dir.c_str(), 1);
    // About 1.3 MB per region: a registry (1.2 MB) and five fit, not six.
    setenv("UNETMAP_BUF_NUM", "512", 1);
    setenv("UNETMAP_RING_NUM", "8", 1);
    setenv("UNETMAP_IF_NUM", "8", 1);
    Traffic t;
    t.start("full", 5000, 128);  // region 1; 256 buffers never written yet
    if (!t.ready()) return 13;
    std::vector<nmport_d*> open_ports;
    int failed_id = 0, fail_errno = 0;
    std::string msg;
    for (int id = 2; id < 40 && !failed_id; id++) {
      nmport_d* d = nmport_open(("netmap:f" + std::to_string(id) + "{0@" + std::to_string(id) +
                                 "@conf:slots=64").c_str());
      if (d) {
        open_ports.push_back(d);
      } else {
        failed_id = id;
        fail_errno = errno;
        msg = unetmap_last_error();
      }
    }
    if (!failed_id) return 14;
    if (fail_errno != ENOSPC) {
      fprintf(stderr, "errno %d (%s): %s\n", fail_errno, strerror(fail_errno), msg.c_str());
      return 15;
    }
    if (msg.find("cannot reserve") == std::string::npos ||
        msg.find("the file system is full") == std::string::npos) {
      fprintf(stderr, "message: %s\n", msg.c_str());
      return 16;
    }
    // Nothing of the failed creation is left.
    for (const std::string& n : list_dir(dir)) {
      if (n.rfind(".tmp.", 0) == 0 || n == "mem." + std::to_string(failed_id)) {
        fprintf(stderr, "left behind: %s\n", n.c_str());
        return 17;
      }
    }
    // The pipe opened before the disk was full sends through all its
    // buffers now.
    t.run();
    if (!t.flowed()) return 18;
    for (nmport_d* d : open_ports) nmport_close(d);
    return 0;
  });
  EXPECT_EQ(test.wait(25000), 0) << "135 is a SIGBUS";
  rmdir(mnt.c_str());
}

}  // namespace
