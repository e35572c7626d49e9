// Copy monitors: PORT/t, PORT/r, PORT/rt see exactly what the port sends or
// receives, in order (tx copies marked NS_TXMON); a full monitor drops and
// never disturbs the port; a monitor that dies is unhooked. Zero-copy
// monitors (/z) get the very buffers the port was done with, in order.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>

#include <cstring>
#include <memory>
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
  EXPECT_FALSE(z.open("mz{0", NR_REG_ALL_NIC, 0, NR_ZCOPY_MON)) << "no port to watch";
  EXPECT_EQ(z.err, ENXIO);
  RawPort none;
  EXPECT_FALSE(none.open("nosuch{0", NR_REG_ALL_NIC, 0, NR_MONITOR_RX));
  EXPECT_EQ(none.err, ENXIO);
  RawPort a("mz{0");
  ASSERT_TRUE(a.ok());
  RawPort m[5];
  for (int i = 0; i < 4; i++) EXPECT_TRUE(m[i].open("mz{0", NR_REG_ALL_NIC, 0, NR_MONITOR_TX));
  EXPECT_FALSE(m[4].open("mz{0", NR_REG_ALL_NIC, 0, NR_MONITOR_TX)) << "4 per ring, said so";
  EXPECT_EQ(m[4].err, EBUSY);
  EXPECT_NE(std::string(unetmap_last_error()).find("4 monitors"), std::string::npos);
  m[0].close();
  EXPECT_TRUE(m[4].open("mz{0", NR_REG_ALL_NIC, 0, NR_MONITOR_TX));
}

// ---- zero-copy monitors ----

unetmap::KringState* kstate_of(const RawPort& p, netmap_ring* ring,
                               std::shared_ptr<unetmap::Region>* keep) {
  int err = 0;
  *keep = unetmap::Region::get(p.reg.nr_mem_id, unetmap::RegionConfig::from_env(), &err);
  uint64_t ofs = uint64_t(reinterpret_cast<char*>(ring) - static_cast<char*>(p.mem));
  return (*keep)->kring(uint32_t((ofs - (*keep)->hdr()->ring_pool) / (*keep)->cfg().ring_size));
}

uint32_t bufs_in_use(const RawPort& p) {
  int err = 0;
  auto r = unetmap::Region::get(p.reg.nr_mem_id, unetmap::RegionConfig::from_env(), &err);
  return r->bufs_in_use();
}

struct ZSeen {
  uint32_t seq, buf;
  uint16_t flags;
};

// Everything on the monitor's ring now, released.
std::vector<ZSeen> zdrain(RawPort& m) {
  std::vector<ZSeen> v;
  EXPECT_EQ(m.rxsync(), 0);
  netmap_ring* r = m.rx();
  while (!nm_ring_empty(r)) {
    netmap_slot& s = r->slot[r->cur];
    uint32_t seq;
    memcpy(&seq, NETMAP_BUF(r, s.buf_idx) + 14, 4);
    v.push_back({seq, s.buf_idx, s.flags});
    r->head = r->cur = nm_ring_next(r, r->cur);
  }
  EXPECT_EQ(m.rxsync(), 0);
  return v;
}

// The buffers of the next `count` tx slots of p.
std::vector<uint32_t> next_tx_bufs(RawPort& p, uint32_t count) {
  std::vector<uint32_t> v;
  netmap_ring* r = p.tx();
  for (uint32_t i = 0, j = r->cur; i < count; i++, j = nm_ring_next(r, j)) v.push_back(r->slot[j].buf_idx);
  return v;
}

// netmap's zero-copy monitor sees tx packets once the port got their slots
// back (here: the pipe's receiver released them), as the very buffers the
// sender filled, in order; the port goes on with the monitor's buffers.
TEST(Monitor, ZeroCopyTxSeesTheSendersBuffersOnceReleased) {
  RawPort a("zt{0"), b("zt}0");
  ASSERT_TRUE(a.ok() && b.ok());
  const uint32_t base = bufs_in_use(a);
  RawPort z("zt{0", NR_REG_ALL_NIC, 0, NR_ZCOPY_MON);
  ASSERT_TRUE(z.ok()) << strerror(z.err);
  EXPECT_NE(std::string(z.nifp->ni_name).find("/z"), std::string::npos);
  std::vector<uint32_t> bufs = next_tx_bufs(a, 100);
  send_seq(a, 500, 100);
  EXPECT_TRUE(zdrain(z).empty()) << "nothing yet: the receiver still holds them";
  std::vector<Seen> got = drain(b);
  ASSERT_EQ(got.size(), 100u);
  ASSERT_EQ(a.txsync(), 0);  // the slots come back to a: the monitor gets them
  std::vector<ZSeen> seen = zdrain(z);
  ASSERT_EQ(seen.size(), 100u);
  for (uint32_t i = 0; i < 100; i++) {
    EXPECT_EQ(seen[i].seq, 500 + i);
    EXPECT_EQ(seen[i].buf, bufs[i]) << "zero copy: the sender's own buffer";
    EXPECT_TRUE(seen[i].flags & NS_TXMON);
  }
  // a's slots now hold other buffers (NS_BUF_CHANGED); traffic goes on.
  netmap_ring* t = a.tx();
  EXPECT_NE(t->slot[0].buf_idx, bufs[0]);
  EXPECT_TRUE(t->slot[0].flags & NS_BUF_CHANGED);
  send_seq(a, 0, 50);
  std::vector<Seen> more = drain(b);
  ASSERT_EQ(more.size(), 50u);
  for (uint32_t i = 0; i < 50; i++) EXPECT_EQ(more[i].seq, i);
  z.close();
  int fd = ::open("/dev/netmap", O_RDWR);  // reaps nothing: z closed cleanly
  ::close(fd);
  EXPECT_EQ(bufs_in_use(a), base) << "no buffer lost in the swaps";
}

// Rx side: what the port's application released goes to the monitor; a full
// monitor ring leaves the oldest with the port and counts them.
TEST(Monitor, ZeroCopyRxAndFullMonitor) {
  RawPort a("zr{0", NR_REG_ALL_NIC, 0, 0, 64), b("zr}0");
  ASSERT_TRUE(a.ok() && b.ok());
  RawPort z("zr}0", NR_REG_ALL_NIC, 0, NR_ZCOPY_MON);
  ASSERT_TRUE(z.ok()) << strerror(z.err);
  std::shared_ptr<unetmap::Region> keep;
  unetmap::KringState* zs = kstate_of(z, z.rx(), &keep);
  send_seq(a, 0, 40);
  EXPECT_EQ(drain(b).size(), 40u);  // b releases them: the monitor takes them
  std::vector<ZSeen> seen = zdrain(z);
  ASSERT_EQ(seen.size(), 40u);
  for (uint32_t i = 0; i < 40; i++) {
    EXPECT_EQ(seen[i].seq, i);
    EXPECT_FALSE(seen[i].flags & NS_TXMON);
  }
  // The monitor stops reading: 63 slots of room, then the oldest are dropped.
  uint32_t delivered = 0;
  for (int round = 0; round < 4; round++) {
    send_seq(a, 1000 + uint32_t(round * 40), 40);
    delivered += uint32_t(drain(b).size());
  }
  EXPECT_EQ(delivered, 160u) << "the port never waits for its monitor";
  seen = zdrain(z);
  ASSERT_EQ(seen.size(), 63u);
  EXPECT_EQ(zs->fwd_drops, 160u - 63u);
  // Batch 1 fits (40); of batch 2 the newest 23 fit; batches 3 and 4 find
  // the ring full.
  for (uint32_t i = 0; i < 40; i++) EXPECT_EQ(seen[i].seq, 1000 + i);
  for (uint32_t i = 40; i < 63; i++) EXPECT_EQ(seen[i].seq, 1040 + 17 + (i - 40));
}

// A monitor that writes garbage in slots it does not own never hands a bad
// buffer to the port it watches.
TEST(Monitor, ZeroCopyMonitorThatScribblesCannotHurtThePort) {
  RawPort a("zs{0", NR_REG_ALL_NIC, 0, 0, 64), b("zs}0");
  ASSERT_TRUE(a.ok() && b.ok());
  RawPort z("zs}0", NR_REG_ALL_NIC, 0, NR_ZCOPY_MON);
  ASSERT_TRUE(z.ok()) << strerror(z.err);
  netmap_ring* zr = z.rx();
  for (uint32_t i = 0; i < zr->num_slots; i++) zr->slot[i].buf_idx = 0;  // all the kernel's
  for (int round = 0; round < 3; round++) {
    send_seq(a, uint32_t(round * 10), 10);
    std::vector<Seen> got = drain(b);
    ASSERT_EQ(got.size(), 10u);
    for (uint32_t i = 0; i < 10; i++) EXPECT_EQ(got[i].seq, uint32_t(round * 10) + i);
  }
  netmap_ring* br = b.rx();
  for (uint32_t i = 0; i < br->num_slots; i++) EXPECT_GE(br->slot[i].buf_idx, 2u);
  ASSERT_EQ(z.rxsync(), 0);
  EXPECT_TRUE(nm_ring_empty(zr)) << "nothing swapped in";
  std::shared_ptr<unetmap::Region> keep;
  EXPECT_EQ(kstate_of(z, zr, &keep)->fwd_drops, 30u);
}

TEST(Monitor, OneZeroCopyMonitorPerRing) {
  RawPort a("zb{0"), b("zb}0");
  ASSERT_TRUE(a.ok() && b.ok());
  RawPort z("zb{0", NR_REG_ALL_NIC, 0, NR_ZCOPY_MON);
  ASSERT_TRUE(z.ok()) << strerror(z.err);
  errno = 0;
  EXPECT_EQ(nmport_open("netmap:zb{0/z"), nullptr) << "the same through libnetmap's /z";
  EXPECT_EQ(errno, EBUSY);
  RawPort z2, z3;
  EXPECT_FALSE(z2.open("zb{0", NR_REG_ALL_NIC, 0, NR_ZCOPY_MON));
  EXPECT_EQ(z2.err, EBUSY);
  EXPECT_NE(std::string(unetmap_last_error()).find("zero-copy"), std::string::npos);
  EXPECT_FALSE(z3.open("zb}0", NR_REG_ALL_NIC, 0, NR_ZCOPY_MON)) << "the facing rings are taken";
  EXPECT_EQ(z3.err, EBUSY);
  RawPort copy("zb{0", NR_REG_ALL_NIC, 0, NR_MONITOR_TX);
  EXPECT_TRUE(copy.ok()) << "copy monitors coexist";
  RawPort other;
  nmreq_header h;
  memset(&h, 0, sizeof h);
  other.fd = ::open("/dev/netmap", O_RDWR);
  ASSERT_GE(other.fd, 0);
  nmreq_register rq{};
  rq.nr_mode = NR_REG_ALL_NIC;
  rq.nr_flags = NR_ZCOPY_MON;
  rq.nr_mem_id = uint16_t(a.reg.nr_mem_id + 7);
  EXPECT_EQ(nmtest::ctrl(other.fd, NETMAP_REQ_REGISTER, "zb{0", &rq), EINVAL);
  EXPECT_NE(std::string(unetmap_last_error()).find("region"), std::string::npos);
  z.close();
  EXPECT_TRUE(z2.open("zb{0", NR_REG_ALL_NIC, 0, NR_ZCOPY_MON)) << "free again once closed";
}

TEST(Monitor, ZeroCopyOnValePort) {
  RawPort a("vale0:za"), b("vale0:zb");
  ASSERT_TRUE(a.ok() && b.ok());
  const uint32_t base = bufs_in_use(a);
  {
    RawPort z("vale0:za", NR_REG_ALL_NIC, 0, NR_ZCOPY_MON);
    ASSERT_TRUE(z.ok()) << strerror(z.err);
    EXPECT_EQ(z.reg.nr_mem_id, a.reg.nr_mem_id) << "same region: zero copy";
    std::vector<uint32_t> bufs = next_tx_bufs(a, 20);
    send_seq(a, 7, 20);  // VALE consumes at once: the slots come back now
    ASSERT_EQ(a.txsync(), 0);
    EXPECT_EQ(drain(b).size(), 20u);
    std::vector<ZSeen> seen = zdrain(z);
    ASSERT_EQ(seen.size(), 20u);
    for (uint32_t i = 0; i < 20; i++) {
      EXPECT_EQ(seen[i].seq, 7 + i);
      EXPECT_EQ(seen[i].buf, bufs[i]);
    }
    send_seq(b, 100, 5);  // a receives, releases: the monitor takes them
    EXPECT_EQ(drain(a).size(), 5u);
    seen = zdrain(z);
    ASSERT_EQ(seen.size(), 5u);
    EXPECT_EQ(seen[0].seq, 100u);
    EXPECT_FALSE(seen[0].flags & NS_TXMON);
  }
  EXPECT_EQ(bufs_in_use(a), base);
}

// Multi-process: the monitor in its own process, blocked in poll, sees every
// packet in order (the sender paces itself on the monitor's acks: a
// zero-copy monitor never slows the port, so an unpaced one would drop);
// killed while holding buffers, the port goes on and no buffer is lost.
TEST(Monitor, ZeroCopyMonitorProcessSeesAllAndItsDeathLosesNothing) {
  RawPort a("zp{0", NR_REG_ALL_NIC, 0, 0, 256), b("zp}0");
  ASSERT_TRUE(a.ok() && b.ok());
  const uint32_t base = bufs_in_use(a);
  constexpr uint32_t kTotal = 2000, kBatch = 50;
  nmtest::Event ready, ack;
  Child mon([&] {
    RawPort z("zp{0", NR_REG_ALL_NIC, 0, NR_ZCOPY_MON);
    if (!z.ok()) return 2;
    ready.signal();
    uint32_t next = 0;
    const double end = nmtest::now_ms() + 20000;
    while (next < kTotal && nmtest::now_ms() < end) {
      if (z.poll(POLLIN, 200) < 0) return 3;
      netmap_ring* r = z.rx();
      while (!nm_ring_empty(r)) {
        uint32_t seq;
        memcpy(&seq, NETMAP_BUF(r, r->slot[r->cur].buf_idx) + 14, 4);
        if (seq != next++) return 4;  // exactly the packets, in order
        r->head = r->cur = nm_ring_next(r, r->cur);
        if (next % kBatch == 0) ack.signal();
      }
    }
    // Keep what arrives from now on: the ring fills and holds buffers.
    pause();
    return 0;
  });
  ASSERT_EQ(ready.wait(5000), 'x');
  uint32_t received = 0;
  for (uint32_t sent = 0; sent < kTotal; sent += kBatch) {
    send_seq(a, sent, kBatch);
    received += uint32_t(drain(b).size());
    ASSERT_EQ(a.txsync(), 0);  // b released them: the slots come back
    ASSERT_EQ(ack.wait(5000), 'x') << "monitor stopped after " << sent << " (exit " << mon.wait(0) << ")";
  }
  EXPECT_EQ(received, kTotal);
  for (uint32_t i = 0; i < 10; i++) {  // the monitor keeps 255 slots full
    send_seq(a, i * 50, 50);
    drain(b);
  }
  ASSERT_EQ(a.txsync(), 0);
  mon.kill_now();
  int fd = ::open("/dev/netmap", O_RDWR);  // reaps the dead monitor
  ASSERT_GE(fd, 0);
  ::close(fd);
  std::shared_ptr<unetmap::Region> keep;
  EXPECT_EQ(kstate_of(a, a.tx(), &keep)->nmon.load(), 0u);
  EXPECT_EQ(bufs_in_use(a), base) << "the dead monitor's buffers went back to the pool";
  send_seq(a, 0, 100);
  std::vector<Seen> after = drain(b);
  ASSERT_EQ(after.size(), 100u);
  for (uint32_t i = 0; i < 100; i++) EXPECT_EQ(after[i].seq, i);
  RawPort again("zp{0", NR_REG_ALL_NIC, 0, NR_ZCOPY_MON);
  EXPECT_TRUE(again.ok()) << "the dead monitor's place is free";
}

}  // namespace
