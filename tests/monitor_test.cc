// Copy monitors: PORT/t, PORT/r, PORT/rt see exactly what the port sends or
// receives, in order (tx copies marked NS_TXMON); a full monitor drops and
// never disturbs the port; a monitor that dies is unhooked; /z is refused.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstring>
#include <vector>

#include "abi/devnetmap.h"
#include "mem/region.h"
#include "util/test_util.h"

namespace {

using nmtest::Child;
using nmtest::RawPort;

// Send `count` 60-byte frames whose first 4 bytes are base+i.
void send_seq(RawPort& p, uint32_t base, uint32_t count) {
  ASSERT_EQ(p.txsync(), 0);  // learn the room the receiver gave back
  netmap_ring* r = p.tx();
  for (uint32_t i = 0; i < count; i++) {
    ASSERT_GT(nm_ring_space(r), 0u);
    netmap_slot& s = r->slot[r->cur];
    uint32_t v = base + i;
    char* f = NETMAP_BUF(r, s.buf_idx);
    memset(f, 0, 60);
    memset(f, 0xff, 6);  // broadcast: VALE floods it to every other port
    f[6] = 0x02;         // a unicast source MAC
    memcpy(f + 14, &v, 4);
    s.len = 60;
    s.flags = 0;
    r->head = r->cur = nm_ring_next(r, r->cur);
  }
  ASSERT_EQ(p.txsync(), 0);
}

struct Seen {
  uint32_t seq;
  uint16_t flags;
};

// Everything now on the rx rings of p (after an rxsync), released.
std::vector<Seen> drain(RawPort& p) {
  std::vector<Seen> v;
  EXPECT_EQ(p.rxsync(), 0);
  netmap_ring* r = p.rx();
  while (!nm_ring_empty(r)) {
    netmap_slot& s = r->slot[r->cur];
    uint32_t seq;
    memcpy(&seq, NETMAP_BUF(r, s.buf_idx) + 14, 4);
    v.push_back({seq, s.flags});
    r->head = r->cur = nm_ring_next(r, r->cur);
  }
  EXPECT_EQ(p.rxsync(), 0);
  return v;
}

TEST(Monitor, TxMonitorSeesWhatThePortSendsInOrder) {
  RawPort a("mt{0"), b("mt}0");
  ASSERT_TRUE(a.ok() && b.ok());
  RawPort mon("mt{0", NR_REG_ALL_NIC, 0, NR_MONITOR_TX);
  ASSERT_TRUE(mon.ok()) << strerror(mon.err);
  send_seq(a, 100, 200);
  std::vector<Seen> got = drain(b), seen = drain(mon);
  ASSERT_EQ(got.size(), 200u) << "the monitored traffic still arrives";
  ASSERT_EQ(seen.size(), 200u);
  for (uint32_t i = 0; i < 200; i++) {
    EXPECT_EQ(seen[i].seq, 100 + i);
    EXPECT_TRUE(seen[i].flags & NS_TXMON) << "tx copies are marked";
  }
}

TEST(Monitor, RxAndBothDirections) {
  RawPort a("mb{0"), b("mb}0");
  ASSERT_TRUE(a.ok() && b.ok());
  RawPort rxmon("mb}0", NR_REG_ALL_NIC, 0, NR_MONITOR_RX);
  RawPort both("mb{0", NR_REG_ALL_NIC, 0, NR_MONITOR_TX | NR_MONITOR_RX);
  ASSERT_TRUE(rxmon.ok() && both.ok());
  send_seq(a, 0, 10);  // a sends: b receives
  drain(b);            // b's rxsync copies to its rx monitor
  send_seq(b, 1000, 5);  // b sends: a receives
  drain(a);
  std::vector<Seen> r = drain(rxmon), w = drain(both);
  ASSERT_EQ(r.size(), 10u) << "b received 10";
  for (uint32_t i = 0; i < 10; i++) {
    EXPECT_EQ(r[i].seq, i);
    EXPECT_FALSE(r[i].flags & NS_TXMON);
  }
  ASSERT_EQ(w.size(), 15u) << "a sent 10 and received 5";
  uint32_t tx = 0, rx = 0;
  for (const Seen& s : w) {
    if (s.flags & NS_TXMON)
      EXPECT_EQ(s.seq, tx++);
    else
      EXPECT_EQ(s.seq, 1000 + rx++);
  }
  EXPECT_EQ(tx, 10u);
  EXPECT_EQ(rx, 5u);
}

// A monitor that does not read fills up: its copies are dropped (counted),
// the monitored port delivers everything.
TEST(Monitor, FullMonitorDropsAndNeverDisturbsThePort) {
  RawPort a("mf{0", NR_REG_ALL_NIC, 0, 0, 64), b("mf}0");
  ASSERT_TRUE(a.ok() && b.ok());
  RawPort mon("mf{0", NR_REG_ALL_NIC, 0, NR_MONITOR_TX);
  ASSERT_TRUE(mon.ok());
  uint32_t delivered = 0;
  for (int round = 0; round < 20; round++) {
    send_seq(a, uint32_t(round * 50), 50);
    delivered += uint32_t(drain(b).size());
  }
  EXPECT_EQ(delivered, 1000u);
  std::vector<Seen> seen = drain(mon);
  EXPECT_LE(seen.size(), 63u);
  EXPECT_GT(seen.size(), 0u);
  for (uint32_t i = 0; i < seen.size(); i++) EXPECT_EQ(seen[i].seq, i) << "the first ones, in order";
  int err = 0;
  auto region = unetmap::Region::get(a.reg.nr_mem_id, unetmap::RegionConfig::from_env(), &err);
  netmap_ring* mr = mon.rx();
  uint64_t ofs = uint64_t(reinterpret_cast<char*>(mr) - static_cast<char*>(mon.mem));
  unetmap::KringState* ks =
      region->kring(uint32_t((ofs - region->hdr()->ring_pool) / region->cfg().ring_size));
  EXPECT_EQ(ks->fwd_drops + seen.size(), 1000u) << "every copy is delivered or counted";
}

// A monitor killed with SIGKILL is unhooked at the next reap; the port goes on.
TEST(Monitor, DeadMonitorIsUnhooked) {
  RawPort a("md{0"), b("md}0");
  ASSERT_TRUE(a.ok() && b.ok());
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  Child mon([&] {
    RawPort m("md{0", NR_REG_ALL_NIC, 0, NR_MONITOR_TX);
    if (!m.ok()) return 2;
    if (write(ready[1], "x", 1) != 1) return 3;
    pause();
    return 0;
  });
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  int err = 0;
  auto region = unetmap::Region::get(a.reg.nr_mem_id, unetmap::RegionConfig::from_env(), &err);
  uint64_t ofs = uint64_t(reinterpret_cast<char*>(a.tx()) - static_cast<char*>(a.mem));
  unetmap::KringState* ks =
      region->kring(uint32_t((ofs - region->hdr()->ring_pool) / region->cfg().ring_size));
  EXPECT_EQ(ks->nmon.load(), 1u);
  mon.kill_now();
  // Any open of /dev/netmap reaps the dead.
  int fd = ::open("/dev/netmap", O_RDWR);
  ASSERT_GE(fd, 0);
  ::close(fd);
  EXPECT_EQ(ks->nmon.load(), 0u) << "the dead monitor's hook is gone";
  send_seq(a, 0, 100);
  EXPECT_EQ(drain(b).size(), 100u);
  close(ready[0]);
  close(ready[1]);
}

TEST(Monitor, ValePortMonitor) {
  RawPort a("vale0:ma"), b("vale0:mb");
  ASSERT_TRUE(a.ok() && b.ok());
  RawPort mon("vale0:ma", NR_REG_ALL_NIC, 0, NR_MONITOR_TX);
  ASSERT_TRUE(mon.ok()) << strerror(mon.err);
  send_seq(a, 7, 20);  // broadcast frames: flooded to b
  EXPECT_EQ(drain(b).size(), 20u);
  std::vector<Seen> seen = drain(mon);
  ASSERT_EQ(seen.size(), 20u);
  EXPECT_EQ(seen.front().seq, 7u);
  EXPECT_EQ(seen.back().seq, 26u);
}

TEST(Monitor, BadMonitors) {
  RawPort z;
  EXPECT_FALSE(z.open("mz{0", NR_REG_ALL_NIC, 0, NR_MONITOR_TX | NR_ZCOPY_MON));
  RawPort a("mz{0");
  ASSERT_TRUE(a.ok());
  RawPort z2;
  EXPECT_FALSE(z2.open("mz{0", NR_REG_ALL_NIC, 0, NR_MONITOR_TX | NR_ZCOPY_MON));
  EXPECT_EQ(z2.err, EOPNOTSUPP);
  EXPECT_NE(std::string(unetmap_last_error()).find("/z"), std::string::npos);
  RawPort none;
  EXPECT_FALSE(none.open("nosuch{0", NR_REG_ALL_NIC, 0, NR_MONITOR_RX));
  EXPECT_EQ(none.err, ENXIO);
}

}  // namespace
