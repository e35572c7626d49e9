// Memory regions (netmap's allocators): sizes from the environment and
// @conf, exhaustion with an error that names the knob to raise, buffers
// handed out and returned, several regions side by side, regions made with
// their own sizes by nm-regions -c.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "mem/region.h"
#include "util/test_util.h"

namespace {

using nmtest::CaptureCtx;
using nmtest::Child;
using nmtest::RawPort;

std::shared_ptr<unetmap::Region> region(uint16_t id) {
  int err = 0;
  return unetmap::Region::get(id, unetmap::RegionConfig::from_env(), &err);
}

// Open spec with a capturing context; returns the descriptor (or null) and
// the error message and errno.
nmport_d* open_capture(const char* spec, std::string* msg, int* err) {
  CaptureCtx* cc = new CaptureCtx;  // lives as long as the descriptor may
  nmctx* old = nmctx_set_default(&cc->ctx);
  errno = 0;
  nmport_d* d = nmport_open(spec);
  *err = errno;
  nmctx_set_default(old);
  *msg = cc->last;
  return d;
}

// In a child, so that the small buffer pool applies to a region made there.
TEST(Region, BufferExhaustionNamesTheKnob) {
  Child c([] {
    setenv("UNETMAP_BUF_NUM", "1000", 1);
    std::string msg;
    int err;
    // A pipe of 1024-slot rings needs 4 x 1024 buffers; region 7 has 998.
    nmport_d* d = open_capture("netmap:e{0@7", &msg, &err);
    if (d) {
      fprintf(stderr, "open succeeded with 1000 buffers\n");
      return 2;
    }
    if (err != ENOMEM) {
      fprintf(stderr, "errno %s, want ENOMEM (%s)\n", strerror(err), msg.c_str());
      return 3;
    }
    if (msg.find("no free buffers") == std::string::npos ||
        msg.find("buf_num") == std::string::npos) {
      fprintf(stderr, "message does not name the problem: %s\n", msg.c_str());
      return 4;
    }
    auto r = region(7);
    if (!r || r->cfg().buf_num != 1000) return 5;
    if (r->bufs_in_use() != 0) {
      fprintf(stderr, "%u buffers leaked by the failed open\n", r->bufs_in_use());
      return 6;
    }
    // Smaller rings fit: 2 tx rings of 64 slots (plus, if the rx rings
    // have buffers of their own, 2 x 64 more).
    d = open_capture("netmap:e{0@7@conf:slots=64", &msg, &err);
    if (!d) {
      fprintf(stderr, "64-slot pipe: %s\n", msg.c_str());
      return 7;
    }
    r = region(7);
    if (r->bufs_in_use() < 128 || r->bufs_in_use() > 256) {
      fprintf(stderr, "%u buffers in use for a 64-slot pipe\n", r->bufs_in_use());
      return 8;
    }
    nmport_close(d);
    if (region(7)->bufs_in_use() != 0) return 9;
    return 0;
  });
  EXPECT_EQ(c.wait(20000), 0);
}

// The exhaustion message says how to get more buffers (UNETMAP_BUF_NUM,
// read when the region is created, once no port uses it). Doing what it
// says must work, also right after the failed open that printed it.
TEST(Region, ExhaustionAdviceCanBeFollowed) {
  Child c([] {
    setenv("UNETMAP_BUF_NUM", "1000", 1);
    std::string msg;
    int err;
    nmport_d* d = open_capture("netmap:ea{0@12", &msg, &err);
    if (d || err != ENOMEM) return 2;
    if (msg.find("UNETMAP_BUF_NUM") == std::string::npos) {
      fprintf(stderr, "no advice in: %s\n", msg.c_str());
      return 3;
    }
    // No port uses region 12 now: a larger UNETMAP_BUF_NUM applies.
    setenv("UNETMAP_BUF_NUM", "8192", 1);
    d = open_capture("netmap:ea{0@12", &msg, &err);
    if (!d) {
      fprintf(stderr, "after raising UNETMAP_BUF_NUM with no port open: %s\n", msg.c_str());
      return 4;
    }
    nmport_close(d);
    // The same after a port of the region was open and closed.
    setenv("UNETMAP_BUF_NUM", "1000", 1);
    d = open_capture("netmap:eb{0@12@conf:slots=64", &msg, &err);
    if (!d) return 5;
    nmport_close(d);
    setenv("UNETMAP_BUF_NUM", "8192", 1);
    d = open_capture("netmap:eb{0@12", &msg, &err);
    if (!d) {
      fprintf(stderr, "after closing the region's ports: %s\n", msg.c_str());
      return 6;
    }
    nmport_close(d);
    return 0;
  });
  EXPECT_EQ(c.wait(20000), 0);
}

TEST(Region, TooManySlotsForTheRingSize) {
  // ring_size 33280 bytes holds (33280 - 256) / 16 = 2064 slots.
  auto r = region(1);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->cfg().max_slots(), 2064u);
  std::string msg;
  int err;
  nmport_d* d = open_capture("netmap:big{0@conf:slots=2065", &msg, &err);
  EXPECT_EQ(d, nullptr);
  EXPECT_EQ(err, EINVAL);
  EXPECT_NE(msg.find("2065 slots"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ring_size"), std::string::npos) << msg;
  d = open_capture("netmap:big{0@conf:slots=2064", &msg, &err);
  ASSERT_NE(d, nullptr) << msg;
  EXPECT_EQ(NETMAP_TXRING(d->nifp, 0)->num_slots, 2064u);
  nmport_close(d);
  EXPECT_EQ(region(1)->bufs_in_use(), 0u);
}

TEST(Region, RingExhaustionNamesTheKnob) {
  Child c([] {
    setenv("UNETMAP_RING_NUM", "6", 1);
    std::string msg;
    int err;
    // Each pipe takes 4 rings: the second one does not fit in 6.
    nmport_d* a = open_capture("netmap:rx{0@9@conf:slots=64", &msg, &err);
    if (!a) return 2;
    nmport_d* b = open_capture("netmap:ry{0@9@conf:slots=64", &msg, &err);
    if (b || err != ENOMEM) return 3;
    if (msg.find("ring_num") == std::string::npos) {
      fprintf(stderr, "message: %s\n", msg.c_str());
      return 4;
    }
    // The failed pipe gave back what it had taken: after closing the first
    // one, the second fits.
    nmport_close(a);
    b = open_capture("netmap:ry{0@9@conf:slots=64", &msg, &err);
    if (!b) {
      fprintf(stderr, "after release: %s\n", msg.c_str());
      return 5;
    }
    nmport_close(b);
    return 0;
  });
  EXPECT_EQ(c.wait(20000), 0);
}

TEST(Region, BadEnvironmentIsRefused) {
  Child c([] {
    setenv("UNETMAP_BUF_SIZE", "100", 1);  // not a multiple of 64
    std::string msg;
    int err;
    nmport_d* d = open_capture("netmap:be{0@11", &msg, &err);
    if (d) return 2;
    if (err != EINVAL) return 3;
    if (msg.find("buf_size") == std::string::npos) {
      fprintf(stderr, "the message does not name the bad knob: %s\n", msg.c_str());
      return 4;
    }
    return 0;
  });
  EXPECT_EQ(c.wait(20000), 0);
}

TEST(Region, BuffersComeBackWhenPortsClose) {
  RawPort keep("null:keep");  // keeps region 1 alive through the test
  ASSERT_TRUE(keep.ok());
  const uint32_t base = region(1)->bufs_in_use();
  EXPECT_GE(base, 1024u) << "a null port's tx ring has buffers";
  {
    RawPort m("bk{0", NR_REG_ALL_NIC, 0, 0, 256, 2), s("bk}0");
    ASSERT_TRUE(m.ok() && s.ok());
    const uint32_t pipe = region(1)->bufs_in_use() - base;
    EXPECT_GE(pipe, 2u * 2 * 256) << "2 ends x 2 tx rings x 256 slots";
    EXPECT_LE(pipe, 2u * 2 * 2 * 256) << "2 ends x 2 directions x 2 rings x 256 slots";
    RawPort n("null:bk");
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(region(1)->bufs_in_use(), base + pipe + base) << "a second null port as the first";
  }
  EXPECT_EQ(region(1)->bufs_in_use(), base);
}

TEST(Region, RingBuffersAreDistinctAndInRange) {
  RawPort m("dr{0", NR_REG_ALL_NIC, 0, 0, 512, 2), s("dr}0");
  ASSERT_TRUE(m.ok() && s.ok());
  nmreq_pools_info pi{};
  ASSERT_EQ(nmtest::ctrl(m.fd, NETMAP_REQ_POOLS_INFO_GET, "", &pi), 0);
  // Every slot names a real buffer; the tx rings never share one (the rx
  // ring of a pipe end describes the buffers of the peer's tx ring).
  std::vector<uint32_t> tx;
  for (RawPort* p : {&m, &s})
    for (unsigned i = 0; i < 2; i++)
      for (netmap_ring* r : {p->tx(i), p->rx(i)})
        for (uint32_t k = 0; k < r->num_slots; k++) {
          uint32_t b = r->slot[k].buf_idx;
          EXPECT_GE(b, 2u) << "buffers 0 and 1 are reserved";
          EXPECT_LT(b, pi.nr_buf_pool_objtotal);
          if (r->dir == 0) tx.push_back(b);
        }
  std::sort(tx.begin(), tx.end());
  EXPECT_EQ(std::adjacent_find(tx.begin(), tx.end()), tx.end()) << "buffer given twice";
  EXPECT_EQ(tx.size(), 4u * 512);
  // Rings live in the ring pool, one per object.
  for (unsigned i = 0; i < 2; i++) {
    char* t = reinterpret_cast<char*>(m.tx(i));
    char* base = static_cast<char*>(m.mem);
    EXPECT_GE(t, base + pi.nr_ring_pool_offset);
    EXPECT_LT(t, base + pi.nr_buf_pool_offset);
    EXPECT_EQ((t - base - pi.nr_ring_pool_offset) % pi.nr_ring_pool_objsize, 0u);
  }
}

TEST(Region, SeveralRegionsSideBySide) {
  RawPort a("ra{0");
  ASSERT_TRUE(a.ok());
  nmport_d* b = nmport_open("netmap:rb{0@2");
  ASSERT_NE(b, nullptr) << strerror(errno);
  EXPECT_EQ(a.reg.nr_mem_id, 1);
  EXPECT_EQ(b->reg.nr_mem_id, 2);
  nmreq_pools_info p1{}, p2{};
  p2.nr_mem_id = 2;
  ASSERT_EQ(nmtest::ctrl(a.fd, NETMAP_REQ_POOLS_INFO_GET, "", &p1), 0);
  ASSERT_EQ(nmtest::ctrl(a.fd, NETMAP_REQ_POOLS_INFO_GET, "", &p2), 0);
  EXPECT_EQ(p1.nr_mem_id, 1);
  EXPECT_EQ(p2.nr_mem_id, 2);
  // The other end of a pipe is in the pipe's region, whatever it asks.
  RawPort bs("rb}0");
  ASSERT_TRUE(bs.ok());
  EXPECT_EQ(bs.reg.nr_mem_id, 2);
  // Data flows within region 2.
  nmtest::PktSpec spec;
  nmtest::put_pkt(NETMAP_TXRING(b->nifp, 0), spec, 0, 0);
  ASSERT_EQ(ioctl(b->fd, NIOCTXSYNC, nullptr), 0);
  ASSERT_EQ(bs.rxsync(), 0);
  EXPECT_EQ(nm_ring_space(bs.rx()), 1u);
  // @share takes the region of another port.
  nmport_d* c = nmport_open("netmap:rc{0@share=netmap:rb{0");
  ASSERT_NE(c, nullptr) << strerror(errno);
  EXPECT_EQ(c->reg.nr_mem_id, 2);
  EXPECT_EQ(c->mem, b->mem) << "same region, same mapping";
  nmport_close(c);
  nmport_close(b);
}

TEST(Region, NullPortConsumesEverything) {
  RawPort n("null:np", NR_REG_ALL_NIC, 0, 0, 128);
  ASSERT_TRUE(n.ok()) << strerror(n.err);
  EXPECT_EQ(n.tx()->num_slots, 128u);
  nmtest::PktSpec spec;
  for (int round = 0; round < 10; round++) {
    while (nm_ring_space(n.tx()) > 0) nmtest::put_pkt(n.tx(), spec, 0, 0);
    ASSERT_EQ(n.txsync(), 0);
    EXPECT_EQ(nm_ring_space(n.tx()), 127u) << "a null port frees its tx ring at once";
  }
  ASSERT_EQ(n.rxsync(), 0);
  EXPECT_EQ(nm_ring_space(n.rx()), 0u);
  EXPECT_EQ(n.poll(POLLIN, 0), 0);
  EXPECT_EQ(n.poll(POLLOUT, 0), 1);
}

// The region tool reports what POOLS_INFO_GET and the pool say, for every
// region, with owner and mode.
TEST(Region, ToolReportsEveryRegion) {
  RawPort a("rt{0"), v("vale0:rt");
  ASSERT_TRUE(a.ok() && v.ok());
  std::string out;
  {
    FILE* f = popen(NM_REGIONS " -j", "r");
    ASSERT_NE(f, nullptr);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    ASSERT_EQ(pclose(f), 0) << out;
  }
  ASSERT_EQ(out.front(), '[') << out;
  const std::string one = "\"mem_id\":1,";
  ASSERT_NE(out.find(one), std::string::npos) << out;
  const std::string in_use = "\"bufs_in_use\":" + std::to_string(region(1)->bufs_in_use());
  EXPECT_NE(out.find(in_use, out.find(one)), std::string::npos) << out;
  const std::string priv = "\"mem_id\":" + std::to_string(v.reg.nr_mem_id) + ",";
  EXPECT_NE(out.find(priv), std::string::npos) << "the VALE port's private region: " << out;
  EXPECT_NE(out.find("\"mode\":\"0600\""), std::string::npos) << out;
  EXPECT_NE(system(NM_REGIONS " -m 0 2>/dev/null"), 0) << "a bad id is refused";
}

// A region whose last user was killed is listed by nm-regions, then
// removed by the reap its own request runs: it is skipped, not an error.
TEST(Region, ToolSkipsARegionItsOwnReapRemoved) {
  nmtest::Event opened;
  Child c([&] {
    RawPort v("vale0:gone");  // a private region of its own
    opened.signal(v.ok() ? 'y' : 'n');
    pause();
    return 0;
  });
  ASSERT_EQ(opened.wait(5000), 'y');
  c.kill_now();
  struct stat st;
  ASSERT_EQ(stat((std::string(getenv("UNETMAP_DIR")) + "/mem.1000").c_str(), &st), 0)
      << "the dead process's region is still there before the tool runs";
  EXPECT_EQ(system(NM_REGIONS " >/dev/null"), 0);
}

// Sizes per region: nm-regions -c makes region 21 with its own sizes (the
// environment's knobs are not involved), ports that name @21 get them, the
// exhaustion message suggests it, and the region stays between its users
// until nm-regions -d.
TEST(Region, ToolMakesARegionWithItsOwnSizes) {
  const std::string file = unetmap::runtime_dir() + "/" + unetmap::Region::file_name(21);
  ASSERT_EQ(system(NM_REGIONS " -c 21 buf-num=300,buf-size=4096,ring-num=8 >/dev/null"), 0);
  EXPECT_EQ(system(NM_REGIONS " -c 21 buf-num=300,buf-size=4096,ring-num=8 >/dev/null"), 0)
      << "the same sizes again: fine";
  EXPECT_NE(system(NM_REGIONS " -c 21 buf-num=500 2>/dev/null"), 0) << "other sizes: refused";
  EXPECT_NE(system(NM_REGIONS " -c 22 buf-nmu=5 2>/dev/null"), 0) << "a bad key: refused";
  std::string msg;
  int err;
  nmport_d* d = open_capture("netmap:rs{0@21", &msg, &err);  // 2 x 1024 slots: too many
  ASSERT_EQ(d, nullptr);
  EXPECT_EQ(err, ENOMEM);
  EXPECT_NE(msg.find("nm-regions -c 21 buf-num=N"), std::string::npos) << msg;
  for (int round = 0; round < 2; round++) {
    d = open_capture("netmap:rs{0@21@conf:slots=64", &msg, &err);
    ASSERT_NE(d, nullptr) << msg;
    nmreq_pools_info pi{};
    pi.nr_mem_id = 21;
    ASSERT_EQ(nmtest::ctrl(d->fd, NETMAP_REQ_POOLS_INFO_GET, "", &pi), 0);
    EXPECT_EQ(pi.nr_buf_pool_objtotal, 300u);
    EXPECT_EQ(pi.nr_buf_pool_objsize, 4096u);
    EXPECT_EQ(pi.nr_ring_pool_objtotal, 8u);
    EXPECT_EQ(d->reg.nr_mem_id, 21);
    EXPECT_EQ(NETMAP_TXRING(d->nifp, 0)->nr_buf_size, 4096u);
    if (round == 0) {
      EXPECT_NE(system(NM_REGIONS " -d 21 2>/dev/null"), 0) << "in use: not deleted";
    }
    nmport_close(d);
    struct stat st;
    EXPECT_EQ(stat(file.c_str(), &st), 0) << "the region outlives its last port";
  }
  EXPECT_EQ(system(NM_REGIONS " -d 21"), 0);
  struct stat st;
  EXPECT_NE(stat(file.c_str(), &st), 0) << "deleted";
}

}  // namespace
