// The fd model: a netmap fd behaves like a kernel one under dup/dup2/dup3/
// fcntl(F_DUPFD), close and fork; every other fd goes to libc untouched.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>

#include <string>

#include "abi/devnetmap.h"
#include "core/registry.h"
#include "util/test_util.h"

namespace {

using nmtest::Child;
using nmtest::Event;
using nmtest::PktSpec;
using nmtest::RawPort;

// Registrations of port `name` (-1 if the port does not exist), after
// reaping those of dead processes (as any register or open does).
int nregs(const char* name) {
  int err = 0;
  unetmap::Registry* r = unetmap::Registry::get(&err);
  if (!r) return -2;
  unetmap::LockGuard g(r->lock());
  r->reap();
  int p = r->find_port(name);
  return p < 0 ? -1 : int(r->port(p).nregs);
}

// Send packet seq on ring 0 of `port` through fd.
int send_via(int fd, RawPort& port, uint32_t seq) {
  PktSpec spec;
  nmtest::put_pkt(port.tx(), spec, seq, 0);
  return ioctl(fd, NIOCTXSYNC, nullptr);
}

// Expect exactly the packets [from, to) on the rx ring of s.
void expect_packets(RawPort& s, uint32_t from, uint32_t to) {
  ASSERT_EQ(s.rxsync(), 0) << strerror(errno);
  netmap_ring* rx = s.rx();
  ASSERT_EQ(nm_ring_space(rx), to - from);
  PktSpec spec;
  std::vector<uint8_t> pkt;
  for (uint32_t seq = from; seq < to; seq++) {
    uint32_t n, first;
    bool ch;
    ASSERT_TRUE(nmtest::peek_pkt(rx, &pkt, &n, &ch, &first));
    ASSERT_EQ(nmtest::check_pkt(spec, pkt, seq, 0), "");
    rx->head = rx->cur = nm_ring_next(rx, rx->cur);
  }
  ASSERT_EQ(s.rxsync(), 0);
}

TEST(Dup, SyncThroughTheDupAndCloseTheOriginal) {
  RawPort m("d{0"), s("d}0");
  ASSERT_TRUE(m.ok() && s.ok());
  int fd2 = dup(m.fd);
  ASSERT_GE(fd2, 0);
  EXPECT_TRUE(unetmap::is_netmap_fd(fd2));
  EXPECT_EQ(send_via(fd2, m, 0), 0) << strerror(errno);
  expect_packets(s, 0, 1);
  EXPECT_EQ(nregs("d{0"), 1) << "dup must not add a registration";

  ASSERT_EQ(close(m.fd), 0);
  m.fd = -1;
  EXPECT_FALSE(unetmap::is_netmap_fd(-1));
  EXPECT_EQ(nregs("d{0"), 1) << "closing the original dropped the port";
  EXPECT_EQ(send_via(fd2, m, 1), 0) << strerror(errno);
  expect_packets(s, 1, 2);
  short rev = 0;
  pollfd p{fd2, POLLOUT, 0};
  EXPECT_EQ(poll(&p, 1, 1000), 1);
  rev = p.revents;
  EXPECT_TRUE(rev & POLLOUT);

  ASSERT_EQ(close(fd2), 0);
  EXPECT_FALSE(unetmap::is_netmap_fd(fd2));
  EXPECT_EQ(nregs("d{0"), 0) << "last close must drop the registration";
}

TEST(Dup, Dup2Dup3AndFcntlDupfd) {
  RawPort m("d2{0"), s("d2}0");
  ASSERT_TRUE(m.ok() && s.ok());
  ASSERT_EQ(dup2(m.fd, 200), 200);
  ASSERT_EQ(dup3(m.fd, 201, O_CLOEXEC), 201);
  int f3 = fcntl(m.fd, F_DUPFD_CLOEXEC, 300);
  ASSERT_GE(f3, 300);
  int f4 = fcntl(m.fd, F_DUPFD, 400);
  ASSERT_GE(f4, 400);
  EXPECT_EQ(fcntl(201, F_GETFD), FD_CLOEXEC);
  uint32_t seq = 0;
  for (int fd : {200, 201, f3, f4}) {
    EXPECT_TRUE(unetmap::is_netmap_fd(fd)) << fd;
    EXPECT_EQ(send_via(fd, m, seq++), 0) << "fd " << fd << ": " << strerror(errno);
  }
  expect_packets(s, 0, seq);
  // dup2 onto itself is a no-op that keeps the fd working.
  EXPECT_EQ(dup2(200, 200), 200);
  EXPECT_TRUE(unetmap::is_netmap_fd(200));
  for (int fd : {m.fd, 200, 201, f3}) close(fd);
  m.fd = -1;
  EXPECT_EQ(nregs("d2{0"), 1) << "one fd is still open";
  EXPECT_EQ(send_via(f4, m, seq), 0);
  expect_packets(s, seq, seq + 1);
  close(f4);
  EXPECT_EQ(nregs("d2{0"), 0);
}

TEST(Dup, Dup2OverAnotherNetmapFdReleasesIt) {
  RawPort a("da{0"), sa("da}0"), b("db{0");
  ASSERT_TRUE(a.ok() && sa.ok() && b.ok());
  ASSERT_EQ(nregs("db{0"), 1);
  ASSERT_EQ(dup2(a.fd, b.fd), b.fd);
  EXPECT_LT(nregs("db{0"), 1) << "the replaced fd's registration must go";
  EXPECT_EQ(send_via(b.fd, a, 0), 0) << "the fd must now be a's";
  expect_packets(sa, 0, 1);
}

TEST(Dup, DupBeforeRegisterSharesTheRegistration) {
  int fd = open("/dev/netmap", O_RDWR);
  ASSERT_GE(fd, 0);
  int fd2 = dup(fd);
  nmreq_register r{};
  r.nr_mode = NR_REG_ALL_NIC;
  ASSERT_EQ(nmtest::ctrl(fd, NETMAP_REQ_REGISTER, "db4{0", &r), 0);
  EXPECT_EQ(ioctl(fd2, NIOCTXSYNC, nullptr), 0) << "the dup shares the open file";
  nmreq_register r2{};
  r2.nr_mode = NR_REG_ALL_NIC;
  EXPECT_EQ(nmtest::ctrl(fd2, NETMAP_REQ_REGISTER, "db4{0", &r2), EBUSY);
  close(fd);
  close(fd2);
  EXPECT_EQ(nregs("db4{0"), -1);
}

// ---------------------------------------------------------------------------
// fork

TEST(Fork, ChildUsesTheParentsPort) {
  RawPort m("fk{0"), s("fk}0");
  ASSERT_TRUE(m.ok() && s.ok());
  Child c([&] {
    for (uint32_t i = 0; i < 10; i++)
      if (send_via(m.fd, m, i) != 0) return 3;
    m.close();  // the child's copy only
    return 0;
  });
  ASSERT_EQ(c.wait(10000), 0);
  expect_packets(s, 0, 10);
  EXPECT_EQ(nregs("fk{0"), 1) << "the child's close must not drop the parent's registration";
  // The parent goes on where the child left off (the ring is shared).
  EXPECT_EQ(m.tx()->head, 10u);
  EXPECT_EQ(send_via(m.fd, m, 10), 0);
  expect_packets(s, 10, 11);
  m.close();
  s.close();
  EXPECT_EQ(nregs("fk{0"), -1) << "closed in both processes: the pipe must be gone";
  RawPort again("fk}0");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(nm_ring_space(again.rx()), 0u) << "a recreated pipe must be empty";
}

TEST(Fork, LiveChildKeepsThePortAfterTheParentCloses) {
  RawPort m("fl{0"), s("fl}0");
  ASSERT_TRUE(m.ok() && s.ok());
  for (uint32_t i = 0; i < 3; i++) ASSERT_EQ(send_via(m.fd, m, i), 0);
  Event started, done;
  Child c([&] {
    started.signal();
    done.wait(10000);
    return 0;  // exits without closing anything
  });
  ASSERT_EQ(started.wait(10000), 'x');
  m.close();
  s.close();
  EXPECT_EQ(nregs("fl{0"), 1) << "the child still holds the master end";
  EXPECT_EQ(nregs("fl}0"), 1) << "the child still holds the slave end";
  {
    RawPort s2("fl}0");
    ASSERT_TRUE(s2.ok());
    EXPECT_EQ(nm_ring_space(s2.rx()), 3u) << "packets of a live pipe were lost";
  }
  done.signal();
  ASSERT_EQ(c.wait(10000), 0);
  // The child is gone without closing: the next registry user reaps it.
  RawPort s3("fl}0");
  ASSERT_TRUE(s3.ok());
  EXPECT_EQ(nm_ring_space(s3.rx()), 0u) << "the dead child's pipe was not reaped";
  EXPECT_EQ(nregs("fl{0"), 0);
}

// fork() duplicates the fds at once, as the kernel does: a parent that
// closes its port right after fork() returns leaves the child's copy
// registered. (Pinned to one CPU, the parent closes before the child has
// run any code of its own.)
TEST(Fork, ParentClosingRightAfterForkKeepsTheChildsPort) {
  RawPort s("fi}0"), m("fi{0");
  ASSERT_TRUE(m.ok() && s.ok());
  cpu_set_t old, one;
  ASSERT_EQ(sched_getaffinity(0, sizeof old, &old), 0);
  CPU_ZERO(&one);
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &old)) {
      CPU_SET(c, &one);
      break;
    }
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  Event go;
  Child c([&] {
    if (go.wait(10000) < 0) return 2;
    return send_via(m.fd, m, 0) == 0 ? 0 : 3;
  });
  m.close();
  sched_setaffinity(0, sizeof old, &old);
  EXPECT_EQ(nregs("fi{0"), 1) << "the child's inherited fd lost its registration";
  go.signal();
  EXPECT_EQ(c.wait(10000), 0) << "the child could not use its inherited port";
  expect_packets(s, 0, 1);
}

// A child that closes its inherited copy of a netmap fd must not break the
// parent's fd: the parent still sleeps in poll and is woken by a sender.
TEST(Fork, ChildCloseKeepsTheParentsWakeups) {
  RawPort s("fw}0");
  ASSERT_TRUE(s.ok());
  Child c([&] {
    s.close();
    return 0;
  });
  ASSERT_EQ(c.wait(10000), 0);
  Event blocked;
  Child tx([&] {
    RawPort m("fw{0");
    if (!m.ok()) return 2;
    if (blocked.wait(10000) < 0) return 3;
    pollfd none{-1, 0, 0};
    poll(&none, 1, 300);  // let the parent block
    return send_via(m.fd, m, 0) == 0 ? 0 : 4;
  });
  blocked.signal();
  double t0 = nmtest::now_ms();
  short rev = 0;
  int rc = s.poll(POLLIN, 3000, &rev);
  double wall = nmtest::now_ms() - t0;
  EXPECT_EQ(rc, 1) << "parent not woken after the child closed its copy of the fd";
  EXPECT_LT(wall, 2000);
  EXPECT_EQ(tx.wait(10000), 0);
  EXPECT_EQ(nregs("fw}0"), 1);
}

// O_NONBLOCK of a netmap fd is the application's (libpcap's
// pcap_setnonblock, FIONBIO): fcntl shows what it set, and clearing it
// never makes the library's own reads of the wake-up FIFO block (a
// blocking read there hung the first poll after a wake-up).
TEST(Fcntl, NonblockIsTheApplicationsAndNeverBlocksTheLibrary) {
  RawPort s("fn}0");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(fcntl(s.fd, F_GETFL) & O_NONBLOCK, 0) << "a new /dev/netmap fd is blocking";
  ASSERT_EQ(fcntl(s.fd, F_SETFL, fcntl(s.fd, F_GETFL) | O_NONBLOCK), 0);
  EXPECT_NE(fcntl(s.fd, F_GETFL) & O_NONBLOCK, 0);
  int off = 0;
  ASSERT_EQ(ioctl(s.fd, FIONBIO, &off), 0);
  EXPECT_EQ(fcntl(s.fd, F_GETFL) & O_NONBLOCK, 0);
  ASSERT_EQ(fcntl(s.fd, F_SETFL, fcntl(s.fd, F_GETFL) & ~O_NONBLOCK), 0);
  Event blocked;
  Child tx([&] {
    RawPort m("fn{0");
    if (!m.ok()) return 2;
    if (blocked.wait(10000) < 0) return 3;
    for (int i = 0; i < 2; i++) {
      pollfd none{-1, 0, 0};
      poll(&none, 1, 200);  // let the receiver block
      if (send_via(m.fd, m, uint32_t(i)) != 0) return 4;
    }
    return 0;
  });
  blocked.signal();
  for (int i = 0; i < 2; i++) {
    short rev = 0;
    ASSERT_EQ(s.poll(POLLIN, 5000, &rev), 1) << "wake-up " << i;
    netmap_ring* r = s.rx();
    r->head = r->cur = r->tail;
    ASSERT_EQ(s.rxsync(), 0);
  }
  EXPECT_EQ(tx.wait(10000), 0);
}

// The library keeps an fd of chan/ (wake-up FIFOs). A program that closes
// every fd (a daemon) or reuses that number for another directory must
// not make the library unlink or create files there, and wake-ups go on.
TEST(ChanDir, ClosedOrReusedFdIsNeverUsedForAnotherDirectory) {
  RawPort first("cd}0");
  ASSERT_TRUE(first.ok());
  const std::string chan = std::string(getenv("UNETMAP_DIR")) + "/chan";
  int held = -1;
  for (int fd = 0; fd < 4096 && held < 0; fd++) {
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    const ssize_t n = readlink(link, path, sizeof path - 1);
    if (n > 0 && std::string(path, size_t(n)) == chan) held = fd;
  }
  ASSERT_GE(held, 0) << "no fd of " << chan;
  // The number now names a victim directory holding files named as the
  // next channels would be.
  const std::string victim = std::string(getenv("UNETMAP_DIR")) + ".victim";
  ASSERT_EQ(mkdir(victim.c_str(), 0700), 0);
  for (int i = 0; i < 8; i++) close(open((victim + "/" + std::to_string(i)).c_str(), O_CREAT | O_WRONLY, 0600));
  const int vfd = open(victim.c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(vfd, 0);
  ASSERT_EQ(dup2(vfd, held), held);
  close(vfd);
  {
    RawPort tx("cd{0");
    ASSERT_TRUE(tx.ok()) << unetmap_last_error();
    Child rx([&] {
      short rev = 0;
      return first.poll(POLLIN, 5000, &rev) == 1 ? 0 : 2;  // woken through the FIFO
    });
    pollfd none{-1, 0, 0};
    poll(&none, 1, 200);  // let it block
    ASSERT_EQ(send_via(tx.fd, tx, 0), 0);
    EXPECT_EQ(rx.wait(10000), 0) << "the wake-up was lost";
  }
  for (int i = 0; i < 8; i++) {
    struct stat st;
    EXPECT_EQ(stat((victim + "/" + std::to_string(i)).c_str(), &st), 0) << i << " was removed";
    EXPECT_TRUE(S_ISREG(st.st_mode)) << i << " was replaced";
  }
  close(held);
}

// ---------------------------------------------------------------------------
// Everything that is not a netmap fd goes to libc unchanged.

TEST(PassThrough, RegularFile) {
  std::string path = std::string(getenv("UNETMAP_DIR")) + "/plain.txt";
  int fd = open(path.c_str(), O_CREAT | O_RDWR | O_EXCL, 0640);
  ASSERT_GE(fd, 0) << strerror(errno);
  EXPECT_FALSE(unetmap::is_netmap_fd(fd));
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_mode & 0777 & ~0640, 0u) << "the mode argument was lost";
  EXPECT_EQ(st.st_mode & 0600, 0600u);
  ASSERT_EQ(write(fd, "hello netmap", 12), 12);
  int avail = -1;
  ASSERT_EQ(lseek(fd, 0, SEEK_SET), 0);
  EXPECT_EQ(ioctl(fd, FIONREAD, &avail), 0);
  EXPECT_EQ(avail, 12);
  void* p = mmap(nullptr, 12, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(p, MAP_FAILED) << strerror(errno);
  EXPECT_EQ(memcmp(p, "hello netmap", 12), 0);
  munmap(p, 12);
  pollfd pf{fd, POLLIN | POLLOUT, 0};
  EXPECT_EQ(poll(&pf, 1, 0), 1);
  EXPECT_EQ(pf.revents & (POLLIN | POLLOUT), POLLIN | POLLOUT);
  int fd2 = dup(fd);
  EXPECT_FALSE(unetmap::is_netmap_fd(fd2));
  char buf[16] = {};
  EXPECT_EQ(pread(fd2, buf, 5, 6), 5);
  EXPECT_STREQ(buf, "netma");
  EXPECT_EQ(close(fd2), 0);
  EXPECT_EQ(close(fd), 0);
  errno = 0;
  EXPECT_EQ(close(fd), -1);
  EXPECT_EQ(errno, EBADF);
  // openat and O_EXCL semantics reach the kernel.
  errno = 0;
  EXPECT_EQ(openat(AT_FDCWD, path.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600), -1);
  EXPECT_EQ(errno, EEXIST);
  FILE* f = fopen(path.c_str(), "r");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(fread(buf, 1, 5, f), 5u);
  fclose(f);
}

TEST(PassThrough, DevNull) {
  int fd = open("/dev/null", O_RDWR);
  ASSERT_GE(fd, 0);
  EXPECT_FALSE(unetmap::is_netmap_fd(fd));
  termios t;
  errno = 0;
  EXPECT_EQ(ioctl(fd, TCGETS, &t), -1);
  EXPECT_EQ(errno, ENOTTY);
  // A netmap request on a non-netmap fd is the kernel's business: ENOTTY.
  errno = 0;
  EXPECT_EQ(ioctl(fd, NIOCTXSYNC, nullptr), -1);
  EXPECT_EQ(errno, ENOTTY);
  nmreq_header h{};
  errno = 0;
  EXPECT_EQ(ioctl(fd, NIOCCTRL, &h), -1);
  EXPECT_EQ(errno, ENOTTY);
  pollfd p{fd, POLLIN | POLLOUT, 0};
  EXPECT_EQ(poll(&p, 1, 0), 1);
  EXPECT_EQ(p.revents, POLLIN | POLLOUT);
  char c;
  EXPECT_EQ(read(fd, &c, 1), 0);
  EXPECT_EQ(close(fd), 0);
}

TEST(PassThrough, ErrorsAreLibcs) {
  errno = 0;
  EXPECT_EQ(open("/nonexistent/x", O_RDONLY), -1);
  EXPECT_EQ(errno, ENOENT);
  errno = 0;
  EXPECT_EQ(close(-1), -1);
  EXPECT_EQ(errno, EBADF);
  errno = 0;
  EXPECT_EQ(ioctl(-1, FIONREAD, nullptr), -1);
  EXPECT_EQ(errno, EBADF);
  errno = 0;
  EXPECT_EQ(dup(-1), -1);
  EXPECT_EQ(errno, EBADF);
  errno = 0;
  EXPECT_EQ(mmap(nullptr, 4096, PROT_READ, MAP_SHARED, 987, 0), MAP_FAILED);
  EXPECT_EQ(errno, EBADF);
  pollfd p{-1, POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 0), 0);
  EXPECT_EQ(p.revents, 0);
}

TEST(PassThrough, SocketpairWithPollSelectEpoll) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  EXPECT_FALSE(unetmap::is_netmap_fd(sv[0]));
  pollfd p{sv[1], POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 50), 0);
  ASSERT_EQ(write(sv[0], "abc", 3), 3);
  EXPECT_EQ(poll(&p, 1, 1000), 1);
  EXPECT_TRUE(p.revents & POLLIN);
  int n = 0;
  EXPECT_EQ(ioctl(sv[1], FIONREAD, &n), 0);
  EXPECT_EQ(n, 3);
  fd_set rs;
  FD_ZERO(&rs);
  FD_SET(sv[1], &rs);
  timeval tv{1, 0};
  EXPECT_EQ(select(sv[1] + 1, &rs, nullptr, nullptr, &tv), 1);
  EXPECT_TRUE(FD_ISSET(sv[1], &rs));
  int ep = epoll_create1(0);
  ASSERT_GE(ep, 0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u32 = 77;
  ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev), 0);
  epoll_event out[2];
  EXPECT_EQ(epoll_wait(ep, out, 2, 1000), 1);
  EXPECT_EQ(out[0].data.u32, 77u);
  char buf[4];
  EXPECT_EQ(read(sv[1], buf, 3), 3);
  EXPECT_EQ(epoll_wait(ep, out, 2, 0), 0);
  close(ep);
  close(sv[0]);
  close(sv[1]);
}

// One epoll set with a netmap fd and a socket: each is reported with its
// own event data, and only when it is ready.
TEST(PassThrough, EpollSetMixingNetmapAndSocket) {
  RawPort s("ep}0"), m("ep{0");
  ASSERT_TRUE(s.ok() && m.ok());
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  int ep = epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u32 = 1;
  ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &ev), 0);
  ev.data.u32 = 2;
  ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev), 0);
  epoll_event out[4];
  EXPECT_EQ(epoll_wait(ep, out, 4, 50), 0);
  ASSERT_EQ(write(sv[0], "z", 1), 1);
  ASSERT_EQ(epoll_wait(ep, out, 4, 1000), 1);
  EXPECT_EQ(out[0].data.u32, 2u);
  char c;
  ASSERT_EQ(read(sv[1], &c, 1), 1);
  ASSERT_EQ(send_via(m.fd, m, 0), 0);
  ASSERT_EQ(epoll_wait(ep, out, 4, 1000), 1);
  EXPECT_EQ(out[0].data.u32, 1u);
  EXPECT_TRUE(out[0].events & EPOLLIN);
  // Removing the netmap fd: no more reports for it.
  ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_DEL, s.fd, nullptr), 0);
  EXPECT_EQ(epoll_wait(ep, out, 4, 50), 0);
  errno = 0;
  EXPECT_EQ(epoll_ctl(ep, EPOLL_CTL_DEL, s.fd, nullptr), -1);
  EXPECT_EQ(errno, ENOENT);
  close(ep);
  close(sv[0]);
  close(sv[1]);
}

TEST(PassThrough, ReusedFdNumberIsNotNetmap) {
  int fd;
  {
    RawPort m("ru{0");
    ASSERT_TRUE(m.ok());
    fd = m.fd;
    EXPECT_TRUE(unetmap::is_netmap_fd(fd));
  }
  EXPECT_FALSE(unetmap::is_netmap_fd(fd));
  int n = open("/dev/null", O_RDONLY);
  ASSERT_GE(n, 0);
  if (n != fd) {  // make sure the old number is the one reused
    ASSERT_EQ(dup2(n, fd), fd);
    close(n);
    n = fd;
  }
  EXPECT_FALSE(unetmap::is_netmap_fd(n));
  errno = 0;
  EXPECT_EQ(ioctl(n, NIOCTXSYNC, nullptr), -1);
  EXPECT_EQ(errno, ENOTTY);
  pollfd p{n, POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 0), 1);
  close(n);
}

TEST(PassThrough, OpenVariantsReachNetmap) {
  int a = openat(AT_FDCWD, "/dev/netmap", O_RDWR);
  ASSERT_GE(a, 0);
  EXPECT_TRUE(unetmap::is_netmap_fd(a));
  int b = open("/dev/netmap", O_RDWR | O_CLOEXEC);
  ASSERT_GE(b, 0);
  EXPECT_TRUE(unetmap::is_netmap_fd(b));
  EXPECT_EQ(fcntl(b, F_GETFD), FD_CLOEXEC);
  nmreq_register r{};
  r.nr_mode = NR_REG_ALL_NIC;
  EXPECT_EQ(nmtest::ctrl(a, NETMAP_REQ_REGISTER, "ov{0", &r), 0);
  EXPECT_EQ(nmtest::ctrl(b, NETMAP_REQ_REGISTER, "ov}0", &r), 0);
  close(a);
  close(b);
  // Another path is not netmap, even if it looks like it.
  errno = 0;
  EXPECT_EQ(open("/dev/netmap2", O_RDWR), -1);
  EXPECT_EQ(errno, ENOENT);
}

}  // namespace
