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
    // Mapped (and so adopted, for a raw receive) before the sender closes
    // its copy: an fd still in flight when its last known holder closes it
    // is a documented limit (docs/architecture.md).
    void* mem = mmap(nullptr, reg.nr_memsize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    got.signal();
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

namespace {

// ---------------------------------------------------------------------------
// Control requests: netmap's answers to the corner cases.

class Ctl : public ::testing::Test {
 protected:
  void SetUp() override { fd = open("/dev/netmap", O_RDWR); ASSERT_GE(fd, 0); }
  void TearDown() override { close(fd); }
  int fd = -1;
};

// NR_REG_NULL makes a null port with the rings and slots asked for, in the
// region asked for, and binds all of it; the mode is given back as asked.
TEST_F(Ctl, NullModeMakesTheRingsAskedFor) {
  nmreq_register r{};
  r.nr_mode = NR_REG_NULL;
  r.nr_mem_id = 1;
  r.nr_tx_rings = 10, r.nr_rx_rings = 5;
  r.nr_tx_slots = 256, r.nr_rx_slots = 100;
  ASSERT_EQ(nmtest::ctrl(fd, NETMAP_REQ_REGISTER, "nm0", &r), 0);
  EXPECT_EQ(r.nr_mode, uint32_t(NR_REG_NULL));
  EXPECT_EQ(r.nr_tx_rings, 10u);
  EXPECT_EQ(r.nr_rx_rings, 5u);
  EXPECT_EQ(r.nr_tx_slots, 256u);
  EXPECT_EQ(r.nr_rx_slots, 100u);
  EXPECT_EQ(r.nr_mem_id, 1u);
  void* mem = mmap(nullptr, r.nr_memsize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(mem, MAP_FAILED);
  netmap_if* ni = NETMAP_IF(mem, r.nr_offset);
  EXPECT_EQ(range_from_ofs(ni, false), std::make_pair(0u, 9u));
  EXPECT_EQ(range_from_ofs(ni, true), std::make_pair(0u, 4u));
  EXPECT_EQ(ioctl(fd, NIOCTXSYNC, nullptr), 0);
  EXPECT_EQ(ioctl(fd, NIOCRXSYNC, nullptr), 0);
  munmap(mem, r.nr_memsize);
}

// The legacy NIOCREGIF keeps working for applications built with a newer
// API version than the library's.
TEST_F(Ctl, LegacyRegisterTakesNewerVersions) {
  for (uint16_t v : {uint16_t(11), uint16_t(NETMAP_API), uint16_t(NETMAP_API + 2)}) {
    int f = open("/dev/netmap", O_RDWR);
    ASSERT_GE(f, 0);
    nmreq req;
    memset(&req, 0, sizeof req);
    snprintf(req.nr_name, sizeof req.nr_name, "lv{%u", unsigned(v));
    req.nr_version = v;
    req.nr_flags = NR_REG_ALL_NIC;
    EXPECT_EQ(ioctl(f, NIOCREGIF, &req), 0) << "nr_version " << v << ": " << strerror(errno);
    EXPECT_GT(req.nr_memsize, 0u);
    close(f);
  }
  nmreq old;
  memset(&old, 0, sizeof old);
  snprintf(old.nr_name, sizeof old.nr_name, "lv{0");
  old.nr_version = 10;
  EXPECT_EQ(ioctl(fd, NIOCREGIF, &old), -1);
  EXPECT_EQ(errno, EINVAL);
}

// POOLS_INFO_GET is about the region of the port named: no name, no answer.
TEST_F(Ctl, PoolsInfoNeedsAPort) {
  nmreq_pools_info pi{};
  EXPECT_NE(nmtest::ctrl(fd, NETMAP_REQ_POOLS_INFO_GET, "", &pi), 0);
  memset(&pi, 0, sizeof pi);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_POOLS_INFO_GET, "pq{0", &pi), 0);
  EXPECT_EQ(pi.nr_mem_id, 1u);
  EXPECT_GT(pi.nr_buf_pool_objtotal, 0u);
}

// A port without host rings refuses every mode that binds host rings.
TEST_F(Ctl, PipeRefusesHostModes) {
  for (uint32_t mode : {uint32_t(NR_REG_NIC_SW), uint32_t(NR_REG_SW), uint32_t(NR_REG_ONE_SW)}) {
    nmreq_register r{};
    r.nr_mode = mode;
    EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_REGISTER, "ph{0", &r), EINVAL) << "mode " << mode;
  }
  nmreq_register r{};
  r.nr_mode = NR_REG_ALL_NIC;
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_REGISTER, "ph{0", &r), 0);
}

nmreq_register all_nic() {
  nmreq_register r{};
  r.nr_mode = NR_REG_ALL_NIC;
  return r;
}

// An option list that loops on an unknown type runs out of room: EMSGSIZE.
TEST_F(Ctl, LoopingUnknownOptionIsTooLong) {
  nmreq_option o{};
  o.nro_reqtype = NETMAP_REQ_OPT_MAX + 1;
  o.nro_next = uintptr_t(&o);
  nmreq_register r = all_nic();
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_REGISTER, "oa{0", &r, uintptr_t(&o)), EMSGSIZE);
}

// A known type seen twice is refused, with both options marked.
TEST_F(Ctl, DuplicateOptionIsInvalid) {
  nmreq_option o{};
  o.nro_reqtype = NETMAP_REQ_OPT_OFFSETS;
  o.nro_next = uintptr_t(&o);  // loops on itself: the second sight is the duplicate
  nmreq_register r = all_nic();
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_REGISTER, "ob{0", &r, uintptr_t(&o)), EINVAL);
  nmreq_opt_extmem e1{}, e2{};
  e1.nro_opt.nro_reqtype = e2.nro_opt.nro_reqtype = NETMAP_REQ_OPT_EXTMEM;
  e1.nro_opt.nro_next = uintptr_t(&e2);
  r = all_nic();
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_REGISTER, "ob{0", &r, uintptr_t(&e1)), EINVAL);
  EXPECT_EQ(e1.nro_opt.nro_status, uint32_t(EINVAL));
  EXPECT_EQ(e2.nro_opt.nro_status, uint32_t(EINVAL));
  nmreq_option z{};  // type 0 is no option at all
  r = all_nic();
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_REGISTER, "ob{0", &r, uintptr_t(&z)), EINVAL);
  EXPECT_EQ(z.nro_status, uint32_t(EINVAL));
}

// Options whose bodies do not fit in the request size netmap copies.
TEST_F(Ctl, OversizedOptionsAreTooLong) {
  std::vector<nmreq_option> v(100);
  for (size_t i = 0; i + 1 < v.size(); i++) {
    v[i].nro_reqtype = NETMAP_REQ_OPT_MAX;
    v[i].nro_next = uintptr_t(&v[i + 1]);
  }
  v.back().nro_reqtype = NETMAP_REQ_OPT_SYNC_KLOOP_EVENTFDS;
  v.back().nro_size = 1000;
  nmreq_register r = all_nic();
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_REGISTER, "oc{0", &r, uintptr_t(v.data())), EMSGSIZE);
  nmreq_option big{};
  big.nro_reqtype = NETMAP_REQ_OPT_SYNC_KLOOP_EVENTFDS;
  big.nro_size = NETMAP_REQ_MAXSIZE + 1;
  r = all_nic();
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_REGISTER, "oc{0", &r, uintptr_t(&big)), EMSGSIZE);
  // An unknown type alone is not supported, and says so in its status.
  nmreq_option u{};
  u.nro_reqtype = 1234;
  r = all_nic();
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_REGISTER, "oc{0", &r, uintptr_t(&u)), EOPNOTSUPP);
  EXPECT_EQ(u.nro_status, uint32_t(EOPNOTSUPP));
}

// PORT_HDR_GET answers for any port (no virtio-net header: 0); SET is for
// VALE ports, where 0 is taken.
TEST_F(Ctl, PortHeaderLength) {
  nmreq_port_hdr ph{};
  ph.nr_hdr_len = 99;
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_PORT_HDR_GET, "hd{0", &ph), 0);
  EXPECT_EQ(ph.nr_hdr_len, 0u);
  RawPort v("valeh:p0");
  ASSERT_TRUE(v.ok()) << strerror(v.err);
  ph.nr_hdr_len = 99;
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_PORT_HDR_GET, "valeh:p0", &ph), 0);
  EXPECT_EQ(ph.nr_hdr_len, 0u);
  ph.nr_hdr_len = 0;
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_PORT_HDR_SET, "valeh:p0", &ph), 0);
  ph.nr_hdr_len = 7;
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_PORT_HDR_SET, "valeh:p0", &ph), EINVAL);
  ph.nr_hdr_len = 0;
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_PORT_HDR_SET, "hd{0", &ph), EINVAL) << "not a VALE port";
}

}  // namespace

namespace {

// ---------------------------------------------------------------------------
// Monitors, as netmap's: one tx ring (that sends nothing), and rx copies
// made when packets arrive, whether the watched port reads them or not.

TEST(Monitor, HasOneTxRing) {
  RawPort w("mq{0", NR_REG_ALL_NIC, 0, 0, 0, 2);
  ASSERT_TRUE(w.ok());
  RawPort m("mq{0", NR_REG_ALL_NIC, 0, NR_MONITOR_RX);
  ASSERT_TRUE(m.ok()) << strerror(m.err);
  EXPECT_EQ(m.nifp->ni_tx_rings, 1u);
  EXPECT_EQ(m.nifp->ni_rx_rings, 2u);
  EXPECT_EQ(range_from_ofs(m.nifp, false), std::make_pair(0u, 0u));
  nmport_d* d = nmport_open("netmap:mq{0/t");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->first_tx_ring, 0u);
  EXPECT_EQ(d->last_tx_ring, 0u) << "libnetmap must find one tx ring, not 65536";
  // What is put on it goes nowhere, and the ring does not fill up.
  netmap_ring* tx = NETMAP_TXRING(d->nifp, 0);
  for (int round = 0; round < 3; round++) {
    const uint32_t room = nm_ring_space(tx);
    ASSERT_GT(room, 0u);
    tx->head = tx->cur = (tx->head + room) % tx->num_slots;
    EXPECT_EQ(ioctl(d->fd, NIOCTXSYNC, nullptr), 0);
    EXPECT_EQ(nm_ring_space(tx), room);
  }
  ASSERT_EQ(w.rxsync(), 0);
  EXPECT_EQ(nm_ring_space(w.rx(0)) + nm_ring_space(w.rx(1)), 0u);
  nmport_close(d);
}

// A sender in another process; the watched port is open and never read.
void rx_monitor_sees_unread(const char* watched, const char* sender, const char* monitor) {
  RawPort w(watched);
  ASSERT_TRUE(w.ok()) << watched << ": " << strerror(w.err);
  RawPort m(monitor, NR_REG_ALL_NIC, 0, NR_MONITOR_RX);
  ASSERT_TRUE(m.ok()) << strerror(m.err);
  const uint32_t kCount = 200;  // fits in the rings: nobody reads the port
  nmtest::IoOpts o;
  o.count = kCount;
  o.zero_copy = false;
  o.timeout_ms = 5000;
  o.spec.max = 1500;
  Child c([&] {
    RawPort s(sender);
    if (!s.ok()) return 10;
    return nmtest::send_pkts(nmtest::Rings{s.fd, s.nifp, 0, 0}, o).empty() ? 0 : 11;
  });
  EXPECT_EQ(nmtest::recv_pkts(nmtest::Rings{m.fd, m.nifp, 0, 0}, o), "");
  EXPECT_EQ(c.wait(10000), 0);
  // The watched port has them all still, untouched.
  ASSERT_EQ(w.rxsync(), 0);
  EXPECT_EQ(nmtest::recv_pkts(nmtest::Rings{w.fd, w.nifp, 0, 0}, o), "");
}

TEST(Monitor, RxCopiesOnArrivalPipe) { rx_monitor_sees_unread("mr{0", "mr}0", "mr{0"); }
TEST(Monitor, RxCopiesOnArrivalVale) {
  rx_monitor_sees_unread("valemr:a", "valemr:b", "valemr:a");
}

}  // namespace

namespace {

// ---------------------------------------------------------------------------
// Restarting a sender on a pipe whose receiver stays open. A sender killed
// inside a txsync leaves its ring marked busy with its pid; netmap has no
// such state (the kernel finishes the sync). Until its parent reaps it the
// killed process is a zombie, which holds no files: the next sender must
// take the ring over at once, not when (or if) the zombie is reaped.
TEST(Restart, SenderKilledInsideTxsyncDoesNotStallTheNext) {
  RawPort rx("rk}0");
  ASSERT_TRUE(rx.ok()) << strerror(rx.err);
  netmap_ring* rr = rx.rx();
  for (int round = 0; round < 8; round++) {
    SCOPED_TRACE("round " + std::to_string(round));
    Event busy;
    // A sender that fills the ring (nobody reads yet) and then does
    // nothing but txsync: killed, it is almost surely inside one.
    Child old([&] {
      RawPort s("rk{0");
      if (!s.ok()) return 10;
      netmap_ring* t = s.tx();
      uint32_t room = nm_ring_space(t);
      t->head = t->cur = (t->head + room) % t->num_slots;
      for (bool told = false;; told = true) {
        ioctl(s.fd, NIOCTXSYNC, nullptr);
        if (!told) busy.signal();
      }
    });
    ASSERT_EQ(busy.wait(10000), 'x');
    kill(old.pid(), SIGKILL);
    // Dead, and left unreaped (a zombie) until old.wait() below.
    siginfo_t si{};
    ASSERT_EQ(waitid(P_PID, id_t(old.pid()), &si, WEXITED | WNOWAIT), 0);
    // Drain what it sent, then a new sender must get 100 packets through.
    ASSERT_EQ(rx.rxsync(), 0);
    rr->head = rr->cur = rr->tail;
    ASSERT_EQ(rx.rxsync(), 0);
    nmtest::IoOpts o;
    o.count = 100;
    o.timeout_ms = 3000;
    o.spec.seed = uint32_t(round + 1);
    Child next([&] {
      RawPort s("rk{0");
      if (!s.ok()) return 10;
      std::string e = nmtest::send_pkts(nmtest::Rings{s.fd, s.nifp, 0, 0}, o);
      if (!e.empty()) fprintf(stderr, "new sender: %s\n", e.c_str());
      return e.empty() ? 0 : 11;
    });
    EXPECT_EQ(nmtest::recv_pkts(nmtest::Rings{rx.fd, rx.nifp, 0, 0}, o), "");
    EXPECT_EQ(next.wait(10000), 0);
    old.wait(10000);
    ASSERT_EQ(rx.rxsync(), 0);  // what is left (nothing, normally) goes
    rr->head = rr->cur = rr->tail;
    ASSERT_EQ(rx.rxsync(), 0);
    if (HasFailure()) break;
  }
}


// Issue 10 cause 6: senders started one after another on a pipe whose
// receiver stays open and blocks in poll() between bursts (as upstream
// pkt-gen -f rx). Each sender waits for room in poll(POLLOUT), sends its
// share and goes, in one of four ways: close, exit without close, killed
// (SIGKILL or SIGTERM) while blocked in poll afterwards. Every packet
// carries a global sequence number: the receiver must see them all, once
// each and in order, and no sender may stall.
TEST(Restart, ManySendersInTurnOnAPipeWhoseReceiverStaysOpen) {
  constexpr uint32_t kRounds = 40, kPerSender = 700;  // more than half a ring
  constexpr uint32_t kTotal = kRounds * kPerSender;
  Event ready;
  Child rx([&] {
    RawPort r("rsl}0");
    if (!r.ok()) {
      fprintf(stderr, "receiver: rsl}0: %s\n", strerror(r.err));
      return 10;
    }
    ready.signal();
    netmap_ring* rr = r.rx();
    uint32_t want = 0;
    const double end = nmtest::now_ms() + 60000;
    while (want < kTotal) {
      if (nmtest::now_ms() > end) {
        fprintf(stderr, "receiver: %u of %u after 60 s\n", want, kTotal);
        return 11;
      }
      pollfd p{r.fd, POLLIN, 0};
      if (::poll(&p, 1, 1000) < 0 && errno != EINTR) return 12;
      for (; !nm_ring_empty(rr); rr->head = rr->cur = nm_ring_next(rr, rr->cur)) {
        const netmap_slot& sl = rr->slot[rr->cur];
        uint32_t seq;
        memcpy(&seq, NETMAP_BUF(rr, sl.buf_idx) + 14, 4);
        if (sl.len != 60 || seq != want) {
          fprintf(stderr, "receiver: got seq %u len %u, want %u\n", seq, sl.len, want);
          return 13;
        }
        want++;
      }
    }
    return 0;
  });
  ASSERT_EQ(ready.wait(10000), 'x') << "receiver: " << rx.wait(1000);
  for (uint32_t round = 0; round < kRounds; round++) {
    SCOPED_TRACE("round " + std::to_string(round));
    Event sent;
    const int how = int(round % 4);
    Child tx([&] {
      RawPort s("rsl{0");
      if (!s.ok()) return 10;
      netmap_ring* t = s.tx();
      uint32_t seq = round * kPerSender, last = seq + kPerSender;
      while (seq < last) {
        pollfd p{s.fd, POLLOUT, 0};
        if (::poll(&p, 1, 5000) != 1) {
          fprintf(stderr, "sender %u: no room for 5 s (tail %u head %u)\n", round, t->tail, t->head);
          return 11;
        }
        for (; seq < last && !nm_ring_empty(t); seq++) {
          netmap_slot& sl = t->slot[t->cur];
          char* b = NETMAP_BUF(t, sl.buf_idx);
          memset(b, 0xff, 14);
          memcpy(b + 14, &seq, 4);
          sl.len = 60;
          sl.flags = 0;
          t->head = t->cur = nm_ring_next(t, t->cur);
        }
      }
      if (ioctl(s.fd, NIOCTXSYNC, nullptr) != 0) return 12;
      if (how == 0) s.close();
      if (how >= 2) {
        sent.signal();
        pollfd p{s.fd, POLLIN, 0};
        for (;;) ::poll(&p, 1, -1);  // until killed
      }
      return 0;
    });
    if (how >= 2) {
      ASSERT_EQ(sent.wait(10000), 'x');
      kill(tx.pid(), how == 2 ? SIGKILL : SIGTERM);
      const int st = tx.wait(10000);
      EXPECT_EQ(st, 128 + (how == 2 ? SIGKILL : SIGTERM));
    } else {
      ASSERT_EQ(tx.wait(10000), 0) << "sender stalled or failed";
    }
    if (HasFailure()) break;
  }
  EXPECT_EQ(rx.wait(30000), 0) << "the receiver did not get every packet once, in order";
}

}  // namespace
