// The legacy control API (struct nmreq with NIOCREGIF / NIOCGINFO, API 11
// to 14) and the classic descriptor API of netmap_user.h (nm_open,
// nm_inject, nm_nextpkt, nm_dispatch, nm_close; built with NETMAP_WITH_LIBS).
// tests/c/nm_open_pipe.c exercises the same API from a C program.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "util/test_util.h"

#ifndef NETMAP_WITH_LIBS
#error "legacy_test needs NETMAP_WITH_LIBS"
#endif

namespace {

using nmtest::PktSpec;
using nmtest::RawPort;

// A port registered with NIOCREGIF.
struct LegacyPort {
  int fd = -1;
  int err = 0;
  nmreq req{};
  void* mem = nullptr;
  netmap_if* nifp = nullptr;

  LegacyPort(const char* name, uint32_t version, uint32_t flags, uint16_t ringid = 0,
             uint16_t arg2 = 0) {
    fd = open("/dev/netmap", O_RDWR);
    if (fd < 0) {
      err = errno;
      return;
    }
    snprintf(req.nr_name, sizeof req.nr_name, "%s", name);
    req.nr_version = version;
    req.nr_flags = flags;
    req.nr_ringid = ringid;
    req.nr_arg2 = arg2;
    if (ioctl(fd, NIOCREGIF, &req) < 0) {
      err = errno;
      return;
    }
    mem = mmap(nullptr, req.nr_memsize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED) {
      err = errno;
      mem = nullptr;
      return;
    }
    nifp = NETMAP_IF(mem, req.nr_offset);
  }
  ~LegacyPort() {
    if (mem) munmap(mem, req.nr_memsize);
    if (fd >= 0) close(fd);
  }
  bool ok() const { return nifp != nullptr; }
};

TEST(Legacy, RegifVersion14And11TalkToEachOther) {
  LegacyPort m("lg{0", 14, NR_REG_ALL_NIC);
  ASSERT_TRUE(m.ok()) << strerror(m.err);
  EXPECT_GT(m.req.nr_memsize, 0u);
  EXPECT_EQ(m.req.nr_tx_rings, 1);
  EXPECT_EQ(m.req.nr_rx_rings, 1);
  EXPECT_EQ(m.req.nr_tx_slots, 1024u);
  EXPECT_EQ(m.req.nr_rx_slots, 1024u);
  EXPECT_EQ(m.req.nr_arg2, 1) << "nr_arg2 reports the region";
  EXPECT_EQ(m.nifp->ni_tx_rings, 1u);
  EXPECT_STREQ(m.nifp->ni_name, "lg{0");

  // API 11: no mode in nr_flags, ring selection in nr_ringid (0: all).
  LegacyPort s("lg}0", 11, 0, 0);
  ASSERT_TRUE(s.ok()) << strerror(s.err);
  EXPECT_EQ(s.req.nr_offset != m.req.nr_offset, true) << "two registrations, two netmap_ifs";
  EXPECT_EQ(s.req.nr_memsize, m.req.nr_memsize);

  PktSpec spec;
  netmap_ring* tx = NETMAP_TXRING(m.nifp, 0);
  for (uint32_t i = 0; i < 50; i++) nmtest::put_pkt(tx, spec, i, 0);
  ASSERT_EQ(ioctl(m.fd, NIOCTXSYNC, nullptr), 0);
  pollfd p{s.fd, POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 2000), 1);
  netmap_ring* rx = NETMAP_RXRING(s.nifp, 0);
  ASSERT_EQ(nm_ring_space(rx), 50u);
  std::vector<uint8_t> pkt;
  for (uint32_t i = 0; i < 50; i++) {
    uint32_t n, first;
    bool ch;
    ASSERT_TRUE(nmtest::peek_pkt(rx, &pkt, &n, &ch, &first));
    ASSERT_EQ(nmtest::check_pkt(spec, pkt, i, 0), "");
    rx->head = rx->cur = nm_ring_next(rx, rx->cur);
  }
}

TEST(Legacy, RingidSelectsOneHardwareRing) {
  RawPort owner("lr{0", NR_REG_ALL_NIC, 0, 0, 0, 2);
  ASSERT_TRUE(owner.ok());
  LegacyPort one("lr}0", 11, 0, NETMAP_HW_RING | 1);
  ASSERT_TRUE(one.ok()) << strerror(one.err);
  EXPECT_EQ(one.nifp->ring_ofs[0], 0) << "ring 0 is not bound: no offset, as netmap";
  PktSpec spec;
  nmtest::put_pkt(NETMAP_TXRING(one.nifp, 1), spec, 0, 1);
  ASSERT_EQ(ioctl(one.fd, NIOCTXSYNC, nullptr), 0);
  ASSERT_EQ(owner.rxsync(), 0);
  EXPECT_EQ(nm_ring_space(owner.rx(0)), 0u) << "ring 0 is not bound";
  EXPECT_EQ(nm_ring_space(owner.rx(1)), 1u);
  // The same with the API 14 form: NR_REG_ONE_NIC in nr_flags.
  LegacyPort one14("lr}0", 14, NR_REG_ONE_NIC, 0);
  ASSERT_TRUE(one14.ok()) << strerror(one14.err);
  nmtest::put_pkt(NETMAP_TXRING(one14.nifp, 0), spec, 1, 0);
  ASSERT_EQ(ioctl(one14.fd, NIOCTXSYNC, nullptr), 0);
  ASSERT_EQ(owner.rxsync(), 0);
  EXPECT_EQ(nm_ring_space(owner.rx(0)), 1u);
}

// netmap turns a legacy NR_REG_PIPE_MASTER/SLAVE request on NAME with ring
// id N into a register of "NAME{N" / "NAME}N" (nmreq_register_from_legacy).
TEST(Legacy, PipeModesNameThePipeEnd) {
  LegacyPort m("lp", 14, NR_REG_PIPE_MASTER, 3);
  ASSERT_TRUE(m.ok()) << "NR_REG_PIPE_MASTER on 'lp' ring 3: " << strerror(m.err);
  LegacyPort s("lp", 14, NR_REG_PIPE_SLAVE, 3);
  ASSERT_TRUE(s.ok()) << "NR_REG_PIPE_SLAVE on 'lp' ring 3: " << strerror(s.err);
  PktSpec spec;
  nmtest::put_pkt(NETMAP_TXRING(m.nifp, 0), spec, 0, 0);
  ASSERT_EQ(ioctl(m.fd, NIOCTXSYNC, nullptr), 0);
  ASSERT_EQ(ioctl(s.fd, NIOCRXSYNC, nullptr), 0);
  EXPECT_EQ(nm_ring_space(NETMAP_RXRING(s.nifp, 0)), 1u);
  // They are the ends of pipe "lp{3": the API 14 name reaches the same port.
  nmport_d* d = nmport_open("netmap:lp}3");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(nm_ring_space(NETMAP_RXRING(d->nifp, 0)), 1u);
  nmport_close(d);
}

TEST(Legacy, GetInfoDoesNotRegister) {
  int fd = open("/dev/netmap", O_RDWR);
  ASSERT_GE(fd, 0);
  nmreq r{};
  strcpy(r.nr_name, "gi{0");
  r.nr_version = 14;
  ASSERT_EQ(ioctl(fd, NIOCGINFO, &r), 0) << strerror(errno);
  EXPECT_EQ(r.nr_tx_rings, 1);
  EXPECT_EQ(r.nr_tx_slots, 1024u);
  EXPECT_GT(r.nr_memsize, 0u);
  EXPECT_EQ(r.nr_arg2, 1);
  errno = 0;
  EXPECT_EQ(ioctl(fd, NIOCTXSYNC, nullptr), -1) << "NIOCGINFO must not register the fd";
  // Without a name: the region's size.
  nmreq r2{};
  r2.nr_version = 14;
  ASSERT_EQ(ioctl(fd, NIOCGINFO, &r2), 0) << strerror(errno);
  EXPECT_EQ(r2.nr_memsize, r.nr_memsize);
  EXPECT_EQ(r2.nr_arg2, 1);
  // The fd can still register afterwards.
  nmreq r3{};
  strcpy(r3.nr_name, "gi{0");
  r3.nr_version = 14;
  r3.nr_flags = NR_REG_ALL_NIC;
  EXPECT_EQ(ioctl(fd, NIOCREGIF, &r3), 0) << strerror(errno);
  EXPECT_EQ(ioctl(fd, NIOCTXSYNC, nullptr), 0);
  close(fd);
}

TEST(Legacy, BadRequests) {
  int fd = open("/dev/netmap", O_RDWR);
  ASSERT_GE(fd, 0);
  for (uint32_t v : {0u, 10u}) {
    nmreq r{};
    strcpy(r.nr_name, "lb{0");
    r.nr_version = v;
    r.nr_flags = NR_REG_ALL_NIC;
    errno = 0;
    EXPECT_EQ(ioctl(fd, NIOCREGIF, &r), -1) << "version " << v;
    EXPECT_EQ(errno, EINVAL) << "version " << v;
  }
  // Newer versions are taken, as netmap takes any from 14 on (its legacy
  // ABI does not change); unetmap takes 11 to 13 too.
  for (uint32_t v : {16u, 0xffffffffu}) {
    int f = open("/dev/netmap", O_RDWR);
    ASSERT_GE(f, 0);
    nmreq r{};
    strcpy(r.nr_name, "lb{0");
    r.nr_version = v;
    r.nr_flags = NR_REG_ALL_NIC;
    EXPECT_EQ(ioctl(f, NIOCREGIF, &r), 0) << "version " << v << ": " << strerror(errno);
    close(f);
  }
  // VALE control on ports that do not exist, a bad name, an unknown command
  // (attaching a name that is no interface nor persistent port: EINVAL, as netmap).
  const struct {
    uint16_t cmd;
    int err;
  } bad_cmds[] = {{NETMAP_BDG_ATTACH, EINVAL}, {NETMAP_BDG_DETACH, ENXIO},
                  {NETMAP_BDG_NEWIF, EINVAL}, {NETMAP_BDG_DELIF, ENXIO}, {99, EOPNOTSUPP}};
  for (auto [cmd, err] : bad_cmds) {
    nmreq r{};
    strcpy(r.nr_name, "vale0:x");
    r.nr_version = 14;
    r.nr_cmd = cmd;
    errno = 0;
    EXPECT_EQ(ioctl(fd, NIOCREGIF, &r), -1) << "nr_cmd " << cmd;
    EXPECT_EQ(errno, err) << "nr_cmd " << cmd;
  }
  nmreq l{};
  l.nr_version = 14;
  l.nr_cmd = NETMAP_BDG_LIST;
  errno = 0;
  EXPECT_EQ(ioctl(fd, NIOCGINFO, &l), -1);
  EXPECT_EQ(errno, ENOENT) << "no switch, nothing to list";
  errno = 0;
  EXPECT_EQ(ioctl(fd, NIOCREGIF, nullptr), -1);
  EXPECT_EQ(errno, EFAULT);
  // Unknown port.
  nmreq u{};
  strcpy(u.nr_name, "nosuchif9");
  u.nr_version = 14;
  u.nr_flags = NR_REG_ALL_NIC;
  errno = 0;
  EXPECT_EQ(ioctl(fd, NIOCREGIF, &u), -1);
  EXPECT_EQ(errno, ENXIO);
  close(fd);
}

// ---------------------------------------------------------------------------
// nm_open & co.

TEST(NmOpen, DescriptorFields) {
  nm_desc* d = nm_open("netmap:no{0", nullptr, 0, nullptr);
  ASSERT_NE(d, nullptr) << strerror(errno);
  EXPECT_TRUE(IS_NETMAP_DESC(d));
  EXPECT_EQ(d->self, d);
  EXPECT_GE(NETMAP_FD(d), 0);
  EXPECT_STREQ(d->req.nr_name, "no{0");
  EXPECT_EQ(d->req.nr_tx_slots, 1024u);
  EXPECT_EQ(d->memsize, d->req.nr_memsize);
  EXPECT_EQ(d->done_mmap, 1);
  ASSERT_NE(d->nifp, nullptr);
  EXPECT_EQ(reinterpret_cast<char*>(d->nifp),
            static_cast<char*>(d->mem) + d->req.nr_offset);
  EXPECT_EQ(d->first_tx_ring, 0);
  EXPECT_EQ(d->last_tx_ring, 0);
  EXPECT_EQ(d->first_rx_ring, 0);
  EXPECT_EQ(d->last_rx_ring, 0);
  EXPECT_EQ(d->some_ring, NETMAP_TXRING(d->nifp, 0));
  EXPECT_LT(d->buf_start, d->buf_end);
  EXPECT_EQ(d->buf_start, NETMAP_BUF(d->some_ring, 0));
  char* b = NETMAP_BUF(d->some_ring, d->some_ring->slot[0].buf_idx);
  EXPECT_GE(b, static_cast<char*>(d->buf_start));
  EXPECT_LT(b, static_cast<char*>(d->buf_end));
  EXPECT_EQ(nm_close(d), 0);
  nm_desc fake{};
  EXPECT_EQ(nm_close(&fake), EINVAL);
}

TEST(NmOpen, InjectNextpktDispatch) {
  nm_desc* tx = nm_open("netmap:ni{0", nullptr, 0, nullptr);
  nm_desc* rx = nm_open("netmap:ni}0", nullptr, 0, nullptr);
  ASSERT_TRUE(tx && rx);
  std::vector<uint8_t> pkt(3000);
  for (uint32_t i = 0; i < 20; i++) {
    uint32_t len = i == 19 ? 3000 : 60 + i * 10;
    for (uint32_t k = 0; k < len; k++) pkt[k] = uint8_t(i + k);
    ASSERT_EQ(nm_inject(tx, pkt.data(), len), int(len)) << i;
  }
  ASSERT_EQ(ioctl(NETMAP_FD(tx), NIOCTXSYNC, nullptr), 0);
  pollfd p{NETMAP_FD(rx), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 2000), 1);

  // The first ten with nm_nextpkt.
  nm_pkthdr h;
  for (uint32_t i = 0; i < 10; i++) {
    unsigned char* b = nm_nextpkt(rx, &h);
    ASSERT_NE(b, nullptr) << i;
    ASSERT_EQ(h.len, 60 + i * 10);
    EXPECT_EQ(h.caplen, h.len);
    EXPECT_EQ(h.d, rx);
    for (uint32_t k = 0; k < h.len; k++) ASSERT_EQ(b[k], uint8_t(i + k)) << i << " " << k;
  }
  // Then three with a limited nm_dispatch, then the rest.
  struct St {
    uint32_t next;
    int bad;
  } st{10, 0};
  auto cb = [](unsigned char* arg, const nm_pkthdr* hd, const unsigned char* b) {
    auto* s = reinterpret_cast<St*>(arg);
    uint32_t len = s->next == 19 ? 3000 : 60 + s->next * 10;
    if (hd->len != len || hd->caplen == 0 || hd->caplen > len) s->bad = 1;
    for (uint32_t k = 0; k < hd->caplen && !s->bad; k++)
      if (b[k] != uint8_t(s->next + k)) s->bad = 2;
    s->next++;
  };
  EXPECT_EQ(nm_dispatch(rx, 3, cb, reinterpret_cast<unsigned char*>(&st)), 3);
  EXPECT_EQ(st.next, 13u);
  EXPECT_EQ(nm_dispatch(rx, 0, cb, reinterpret_cast<unsigned char*>(&st)), 7);
  EXPECT_EQ(st.next, 20u);
  EXPECT_EQ(st.bad, 0) << "nm_dispatch delivered a wrong packet";
  EXPECT_GE(rx->cur_rx_ring, rx->first_rx_ring);
  EXPECT_LE(rx->cur_rx_ring, rx->last_rx_ring) << "nm_dispatch left cur_rx_ring out of range";
  // With nothing left, both return at once (in a child: a hang must not
  // hang the test).
  nmtest::Child c([&] {
    nm_pkthdr hh;
    if (nm_nextpkt(rx, &hh) != nullptr) return 2;
    if (nm_dispatch(rx, 0, cb, reinterpret_cast<unsigned char*>(&st)) != 0) return 3;
    return 0;
  });
  EXPECT_EQ(c.wait(5000), 0) << "nm_nextpkt/nm_dispatch on empty rings (-1: hung)";
  // The slots go back to the sender at the next sync.
  ASSERT_EQ(ioctl(NETMAP_FD(rx), NIOCRXSYNC, nullptr), 0);
  ASSERT_EQ(ioctl(NETMAP_FD(tx), NIOCTXSYNC, nullptr), 0);
  EXPECT_EQ(nm_ring_space(NETMAP_TXRING(tx->nifp, 0)), 1023u);
  nm_close(rx);
  nm_close(tx);
}

TEST(NmOpen, InjectFailsOnAFullRing) {
  nmreq base{};
  base.nr_tx_slots = base.nr_rx_slots = 64;
  nm_desc* tx = nm_open("netmap:nf{0", &base, NM_OPEN_RING_CFG, nullptr);
  ASSERT_NE(tx, nullptr);
  EXPECT_EQ(tx->req.nr_tx_slots, 64u);
  char pkt[60] = {};
  int n = 0;
  while (nm_inject(tx, pkt, sizeof pkt) > 0) n++;
  EXPECT_EQ(n, 63);
  // A two-slot packet does not fit in what is left of a ring either.
  ASSERT_EQ(ioctl(NETMAP_FD(tx), NIOCTXSYNC, nullptr), 0);
  std::vector<char> big(3000);
  EXPECT_EQ(nm_inject(tx, big.data(), big.size()), 0);
  nm_close(tx);
}

TEST(NmOpen, TemplateOverrides) {
  nmreq base{};
  base.nr_tx_rings = base.nr_rx_rings = 2;
  base.nr_tx_slots = base.nr_rx_slots = 128;
  base.nr_arg2 = 3;
  nm_desc* d = nm_open("netmap:nt{0", &base, NM_OPEN_RING_CFG | NM_OPEN_ARG2, nullptr);
  ASSERT_NE(d, nullptr) << strerror(errno);
  EXPECT_EQ(d->req.nr_tx_rings, 2);
  EXPECT_EQ(d->req.nr_tx_slots, 128u);
  EXPECT_EQ(d->req.nr_arg2, 3) << "NM_OPEN_ARG2 selects the region";
  EXPECT_EQ(d->last_tx_ring, 1);
  // NM_OPEN_NO_MMAP with a parent in the same region shares its mapping.
  nm_desc* c = nm_open("netmap:nt}0", nullptr, NM_OPEN_NO_MMAP, d);
  ASSERT_NE(c, nullptr) << strerror(errno);
  EXPECT_EQ(c->mem, d->mem);
  EXPECT_EQ(c->done_mmap, 0);
  EXPECT_EQ(c->req.nr_arg2, 3);
  nm_close(c);
  // The parent's mapping survives the child descriptor's close.
  EXPECT_EQ(NETMAP_TXRING(d->nifp, 0)->num_slots, 128u);
  nm_close(d);
}

TEST(NmOpen, Errors) {
  errno = 0;
  EXPECT_EQ(nm_open("netmap:nosuchif9", nullptr, 0, nullptr), nullptr);
  EXPECT_EQ(errno, ENXIO);
  errno = 0;
  EXPECT_EQ(nm_open("bogus", nullptr, 0, nullptr), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  EXPECT_EQ(nm_open("netmap:x@extmem:file=/nonexistent", nullptr, 0, nullptr), nullptr);
  EXPECT_EQ(errno, ENOENT);
}

}  // namespace
