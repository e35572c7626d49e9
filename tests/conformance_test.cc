// What netmap applications rely on and upstream netmap's own programs
// exercise (docs/conformance.md): the netmap_if a registration shows, netmap
// fds that reach a process other than by open or fork, and the control
// requests' corner cases. Each test states the netmap behaviour it checks.
#define NETMAP_WITH_LIBS
#include <gtest/gtest.h>
#include <libnetmap.h>
#include <net/netmap_user.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <string>
#include <vector>

#include "util/pipe_io.h"
#include "util/test_util.h"

namespace {

using nmtest::Child;
using nmtest::Event;
using nmtest::RawPort;

// The bound range as upstream libnetmap derives it from a netmap_if: the
// first run of rings with a nonzero offset. {first, last} inclusive, or
// {n, n} if none.
std::pair<unsigned, unsigned> range_from_ofs(const netmap_if* ni, bool rx) {
  const unsigned n = rx ? ni->ni_rx_rings + ni->ni_host_rx_rings : ni->ni_tx_rings + ni->ni_host_tx_rings;
  const unsigned base = rx ? ni->ni_tx_rings + ni->ni_host_tx_rings : 0;
  unsigned i = 0;
  while (i < n && !ni->ring_ofs[base + i]) i++;
  unsigned first = i;
  while (i < n && ni->ring_ofs[base + i]) i++;
  return {first, i == first ? first : i - 1};
}

// ---------------------------------------------------------------------------
// The netmap_if: netmap gives an offset only for the rings the fd bound.

TEST(RingOfs, OnlyBoundRingsHaveAnOffset) {
  RawPort all("ro{0", NR_REG_ALL_NIC, 0, 0, 0, 3);
  ASSERT_TRUE(all.ok()) << strerror(all.err);
  EXPECT_EQ(range_from_ofs(all.nifp, false), std::make_pair(0u, 2u));
  EXPECT_EQ(range_from_ofs(all.nifp, true), std::make_pair(0u, 2u));
  RawPort one("ro}0", NR_REG_ONE_NIC, 1);
  ASSERT_TRUE(one.ok()) << strerror(one.err);
  EXPECT_EQ(one.nifp->ni_tx_rings, 3u);
  EXPECT_EQ(range_from_ofs(one.nifp, false), std::make_pair(1u, 1u));
  EXPECT_EQ(range_from_ofs(one.nifp, true), std::make_pair(1u, 1u));
  EXPECT_EQ(one.nifp->ring_ofs[0], 0);
  EXPECT_EQ(one.nifp->ring_ofs[2], 0);
  RawPort txonly("ro}0", NR_REG_ONE_NIC, 2, NR_TX_RINGS_ONLY);
  ASSERT_TRUE(txonly.ok()) << strerror(txonly.err);
  EXPECT_EQ(range_from_ofs(txonly.nifp, false), std::make_pair(2u, 2u));
  for (unsigned i = 0; i < 3; i++) EXPECT_EQ(txonly.nifp->ring_ofs[3 + i], 0) << "rx ring " << i;
}

// Two senders on the two rings of one pipe end (what pkt-gen -p 2 does):
// each fd moves only its own ring, so the receiver gets each ring's packets
// on the matching ring.
TEST(RingOfs, OneSenderPerRing) {
  RawPort rx("rs}0", NR_REG_ALL_NIC, 0, 0, 0, 2);
  ASSERT_TRUE(rx.ok()) << strerror(rx.err);
  RawPort t0("rs{0", NR_REG_ONE_NIC, 0), t1("rs{0", NR_REG_ONE_NIC, 1);
  ASSERT_TRUE(t0.ok() && t1.ok());
  auto r0 = range_from_ofs(t0.nifp, false), r1 = range_from_ofs(t1.nifp, false);
  ASSERT_EQ(r0.first, 0u);
  ASSERT_EQ(r1.first, 1u);
  nmtest::PktSpec spec;
  nmtest::put_pkt(NETMAP_TXRING(t0.nifp, r0.first), spec, 0, 0);
  nmtest::put_pkt(NETMAP_TXRING(t1.nifp, r1.first), spec, 1, 1);
  ASSERT_EQ(t0.txsync(), 0);
  ASSERT_EQ(t1.txsync(), 0);
  ASSERT_EQ(rx.rxsync(), 0);
  EXPECT_EQ(nm_ring_space(rx.rx(0)), 1u);
  EXPECT_EQ(nm_ring_space(rx.rx(1)), 1u);
}

// The library's own nmport_open and nm_open work on the netmap_if as netmap
// fills it: one ring, tx only, rx only.
TEST(RingOfs, LibnetmapAndNmOpenStillWork) {
  RawPort owner("rl{0", NR_REG_ALL_NIC, 0, 0, 0, 2);
  ASSERT_TRUE(owner.ok()) << strerror(owner.err);
  nmport_d* d = nmport_open("netmap:rl}0-1");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->first_tx_ring, 1u);
  EXPECT_EQ(d->last_tx_ring, 1u);
  netmap_ring* tx = NETMAP_TXRING(d->nifp, d->first_tx_ring);
  EXPECT_EQ(tx->ringid, 1u);
  nmport_close(d);
  nm_desc* rxo = nm_open("netmap:rl}0/R", nullptr, 0, nullptr);
  ASSERT_NE(rxo, nullptr);
  ASSERT_NE(rxo->some_ring, nullptr);
  EXPECT_EQ(rxo->some_ring, NETMAP_RXRING(rxo->nifp, 0)) << "some_ring must be a bound ring";
  EXPECT_EQ(static_cast<char*>(rxo->buf_start),
            reinterpret_cast<char*>(rxo->some_ring) + rxo->some_ring->buf_ofs);
  nm_close(rxo);
  nm_desc* txo = nm_open("netmap:rl}0-1/T", nullptr, 0, nullptr);
  ASSERT_NE(txo, nullptr);
  EXPECT_EQ(txo->some_ring, NETMAP_TXRING(txo->nifp, 1));
  nm_close(txo);
}

// ---------------------------------------------------------------------------
// A netmap fd that reaches another process by SCM_RIGHTS or across execve is
// the same open file there, as in the kernel: it maps, syncs and polls, and
// keeps the registration while that process has it.

// Send fd over a Unix socket with a small payload.
bool send_fd(int sock, int fd, const nmreq_register& reg) {
  char cbuf[CMSG_SPACE(sizeof(int))] = {};
  iovec iov{const_cast<nmreq_register*>(&reg), sizeof reg};
  msghdr m{};
  m.msg_iov = &iov, m.msg_iovlen = 1;
  m.msg_control = cbuf, m.msg_controllen = sizeof cbuf;
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET, c->cmsg_type = SCM_RIGHTS, c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  return sendmsg(sock, &m, 0) == ssize_t(sizeof reg);
}

// Receive it; raw: by the system call itself, past the library (as a
// program that gets the fd some way the library does not see).
int recv_fd(int sock, nmreq_register* reg, bool raw) {
  char cbuf[CMSG_SPACE(sizeof(int))] = {};
  iovec iov{reg, sizeof *reg};
  msghdr m{};
  m.msg_iov = &iov, m.msg_iovlen = 1;
  m.msg_control = cbuf, m.msg_controllen = sizeof cbuf;
  pollfd p{sock, POLLIN, 0};
  if (::poll(&p, 1, 10000) != 1) return -1;
  ssize_t n = raw ? syscall(SYS_recvmsg, sock, &m, 0) : recvmsg(sock, &m, 0);
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  if (n != ssize_t(sizeof *reg) || !c || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

// The receiver maps the fd it got, sends on it, and keeps the registration
// after the sender of the fd closed its copy; when it exits the
// registration goes (the rings are free for an exclusive open again).
void passed_fd_sends(bool raw) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
  Event got;
  const uint32_t kCount = 3000;
  // Forked before the netmap fd exists: the child is not a holder by fork.
  Child c([&] {
    nmreq_register reg{};
    int fd = recv_fd(sv[1], &reg, raw);
    if (fd < 0) return 10;
    got.signal();
    void* mem = mmap(nullptr, reg.nr_memsize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED) {
      fprintf(stderr, "mmap of the received fd: %s\n", strerror(errno));
      return 11;
    }
    netmap_if* nifp = NETMAP_IF(mem, reg.nr_offset);
    nmtest::IoOpts o;
    o.count = kCount;
    std::string e = nmtest::send_pkts(nmtest::Rings{fd, nifp, 0, 0}, o);
    if (!e.empty()) {
      fprintf(stderr, "child: %s\n", e.c_str());
      return 12;
    }
    return 0;
  });
  RawPort rx("fp}0");
  ASSERT_TRUE(rx.ok()) << strerror(rx.err);
  {
    RawPort tx("fp{0");
    ASSERT_TRUE(tx.ok()) << strerror(tx.err);
    ASSERT_TRUE(send_fd(sv[0], tx.fd, tx.reg));
    ASSERT_EQ(got.wait(10000), 'x');
  }  // our copy of the fd is closed: the child's keeps the registration
  nmtest::IoOpts o;
  o.count = kCount;
  EXPECT_EQ(nmtest::recv_pkts(nmtest::Rings{rx.fd, rx.nifp, 0, 0}, o), "");
  EXPECT_EQ(c.wait(10000), 0);
  RawPort again("fp{0", NR_REG_ALL_NIC, 0, NR_EXCLUSIVE);
  EXPECT_TRUE(again.ok()) << "the receiver exited, its registration must be gone: "
                          << strerror(again.err);
  close(sv[0]);
  close(sv[1]);
}

TEST(FdPass, ScmRightsFdMapsAndSends) { passed_fd_sends(false); }

// Received past the library's recvmsg: recognised at its first mmap.
TEST(FdPass, FdSeenFirstAtMmap) { passed_fd_sends(true); }

// A register on an fd received before it was registered binds that open
// file for both processes: the sender of the fd then maps it too.
TEST(FdPass, RegisterOnReceivedFd) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
  Event done;
  Child c([&] {
    nmreq_register reg{};
    int fd = recv_fd(sv[1], &reg, true);
    if (fd < 0) return 10;
    nmreq_register r{};
    r.nr_mode = NR_REG_ALL_NIC;
    if (nmtest::ctrl(fd, NETMAP_REQ_REGISTER, "fr{0", &r) != 0) return 11;
    done.send(r);
    return 0;
  });
  int fd = open("/dev/netmap", O_RDWR);
  ASSERT_GE(fd, 0);
  nmreq_register none{};
  ASSERT_TRUE(send_fd(sv[0], fd, none));
  nmreq_register r{};
  ASSERT_TRUE(done.recv(&r, 10000));
  EXPECT_EQ(c.wait(10000), 0);
  // The child registered our open file and exited; we still hold it.
  void* mem = mmap(nullptr, r.nr_memsize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(mem, MAP_FAILED) << strerror(errno);
  netmap_if* nifp = NETMAP_IF(mem, r.nr_offset);
  EXPECT_STREQ(nifp->ni_name, "fr{0");
  RawPort peer("fr}0");
  ASSERT_TRUE(peer.ok());
  nmtest::put_pkt(NETMAP_TXRING(nifp, 0), nmtest::PktSpec{}, 0, 0);
  EXPECT_EQ(ioctl(fd, NIOCTXSYNC, nullptr), 0);
  EXPECT_EQ(peer.rxsync(), 0);
  EXPECT_EQ(nm_ring_space(peer.rx()), 1u);
  munmap(mem, r.nr_memsize);
  close(fd);
  close(sv[0]);
  close(sv[1]);
}

// Inherited across execve: a new program polls, maps and sends on it; the
// registration stays after the process that opened it closed its copy.
TEST(FdPass, InheritedAcrossExecve) {
  RawPort rx("fe}0");
  ASSERT_TRUE(rx.ok()) << strerror(rx.err);
  const uint32_t kCount = 3000;
  Child c;
  {
    RawPort tx("fe{0");
    ASSERT_TRUE(tx.ok()) << strerror(tx.err);
    c = Child::exec({NM_FDPEER_PATH, "fd=" + std::to_string(tx.fd),
                     "memsize=" + std::to_string(tx.reg.nr_memsize),
                     "offset=" + std::to_string(tx.reg.nr_offset), "count=" + std::to_string(kCount)});
  }
  nmtest::IoOpts o;
  o.count = kCount;
  EXPECT_EQ(nmtest::recv_pkts(nmtest::Rings{rx.fd, rx.nifp, 0, 0}, o), "");
  EXPECT_EQ(c.wait(10000), 0);
  RawPort again("fe{0", NR_REG_ALL_NIC, 0, NR_EXCLUSIVE);
  EXPECT_TRUE(again.ok()) << "the exec'd program exited, its registration must be gone: "
                          << strerror(again.err);
}

}  // namespace
