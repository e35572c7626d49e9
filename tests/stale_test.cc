// Processes killed at any point: their registrations, exclusive claims,
// wake-up channels and locks are reclaimed, the ports they shared keep
// working, and no buffer is lost or handed out twice.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <memory>
#include <string>
#include <vector>

#include "core/registry.h"
#include "mem/region.h"
#include "util/pipe_io.h"

namespace {

using nmtest::Child;
using nmtest::Event;
using nmtest::PktSpec;
using nmtest::RawPort;

unetmap::Registry* registry() {
  int err = 0;
  return unetmap::Registry::get(&err);
}

// Region 1 as it is now (a region goes away with its last port, so do not
// keep an old mapping).
std::shared_ptr<unetmap::Region> region1() {
  int err = 0;
  return unetmap::Region::get(1, unetmap::RegionConfig::from_env(), &err);
}
uint32_t bufs_in_use() { return region1()->bufs_in_use(); }

// Live registration entries of port `name` (-1: no such port).
int regs_of(const char* name) {
  unetmap::Registry* r = registry();
  unetmap::LockGuard g(r->lock());
  int p = r->find_port(name);
  if (p < 0) return -1;
  int n = 0;
  for (uint32_t i = 0; i < unetmap::kMaxRegs; i++)
    if (r->reg(int(i)).in_use && r->reg(int(i)).port == p) n++;
  return n;
}

int chans_in_use() {
  unetmap::Registry* r = registry();
  unetmap::LockGuard g(r->lock());
  int n = 0;
  for (auto& c : r->file()->chans) n += c.in_use ? 1 : 0;
  return n;
}

std::string arg(const char* k, long v) { return std::string(k) + "=" + std::to_string(v); }

// nm_peer on `port`, which opens it, runs `mode` on `count` packets, says
// 'o' and 'd' on ready, then waits on hold forever (until killed).
Child peer_holding(const char* mode, const char* port, uint32_t count, const Event& ready,
                   const Event& hold, uint32_t seed = 1) {
  return Child::exec({NM_PEER_PATH, std::string("mode=") + mode, std::string("port=") + port,
                      arg("count", count), arg("seed", seed), "max=1500",
                      arg("ready_fd", ready.write_fd()), arg("hold_fd", hold.read_fd()),
                      "timeout_ms=60000"});
}

TEST(Stale, KilledSenderIsReaped) {
  RawPort keep("null:keep");  // region 1 stays while this is open
  ASSERT_TRUE(keep.ok());
  const uint32_t base = bufs_in_use();
  RawPort s("k}0");
  ASSERT_TRUE(s.ok());
  const uint32_t with_pipe = bufs_in_use();
  EXPECT_GT(with_pipe, base);
  const int chans_before = chans_in_use();

  Event ready, hold;
  Child tx = peer_holding("send", "netmap:k{0", 5, ready, hold, 21);
  ASSERT_EQ(ready.wait(10000), 'o');
  ASSERT_EQ(ready.wait(10000), 'd');
  EXPECT_EQ(regs_of("k{0"), 1);
  EXPECT_EQ(chans_in_use(), chans_before + 1);
  tx.kill_now(SIGKILL);

  // What it sent before dying arrives, intact.
  ASSERT_EQ(s.rxsync(), 0);
  netmap_ring* rx = s.rx();
  ASSERT_EQ(nm_ring_space(rx), 5u);
  PktSpec spec;
  spec.seed = 21;
  spec.max = 1500;
  std::vector<uint8_t> pkt;
  for (uint32_t i = 0; i < 5; i++) {
    uint32_t n, first;
    bool ch;
    ASSERT_TRUE(nmtest::peek_pkt(rx, &pkt, &n, &ch, &first));
    ASSERT_EQ(nmtest::check_pkt(spec, pkt, i, 0), "");
    rx->head = rx->cur = nm_ring_next(rx, rx->cur);
  }
  ASSERT_EQ(s.rxsync(), 0);

  // A new master: the dead registration is gone, the new one works.
  RawPort m("k{0");
  ASSERT_TRUE(m.ok()) << strerror(m.err);
  EXPECT_EQ(regs_of("k{0"), 1) << "the killed process's registration was not reaped";
  EXPECT_EQ(chans_in_use(), chans_before + 1) << "its wake-up channel was not reclaimed";
  EXPECT_EQ(bufs_in_use(), with_pipe) << "buffers leaked or doubled";
  for (uint32_t i = 5; i < 8; i++) nmtest::put_pkt(m.tx(), spec, i, 0);
  ASSERT_EQ(m.txsync(), 0);
  ASSERT_EQ(s.rxsync(), 0);
  ASSERT_EQ(nm_ring_space(rx), 3u);
  uint32_t n, first;
  bool ch;
  ASSERT_TRUE(nmtest::peek_pkt(rx, &pkt, &n, &ch, &first));
  EXPECT_EQ(nmtest::check_pkt(spec, pkt, 5, 0), "");

  m.close();
  s.close();
  EXPECT_EQ(regs_of("k{0"), -1);
  EXPECT_EQ(bufs_in_use(), base) << "buffers not returned after the last close";
}

TEST(Stale, KilledExclusiveOwnerReleasesThePort) {
  Event ready, hold;
  Child x = peer_holding("send", "netmap:kx{0/x", 0, ready, hold);
  ASSERT_EQ(ready.wait(10000), 'o');
  RawPort busy("kx{0");
  EXPECT_FALSE(busy.ok());
  EXPECT_EQ(busy.err, EBUSY);
  x.kill_now(SIGKILL);
  RawPort now("kx{0");
  EXPECT_TRUE(now.ok()) << "still busy after its exclusive owner died: " << strerror(now.err);
}

TEST(Stale, KilledWhileBlockedInPoll) {
  Event ready, hold;
  Child rx = peer_holding("recv", "netmap:kp}0", 10, ready, hold);
  ASSERT_EQ(ready.wait(10000), 'o');
  RawPort m("kp{0");
  ASSERT_TRUE(m.ok());
  // Make sure it is asleep in poll (it has armed a wait): the ring stays
  // empty and the process has not exited.
  ASSERT_EQ(ready.wait(200), -1);
  rx.kill_now(SIGKILL);
  const int chans = chans_in_use();
  RawPort s("kp}0");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(regs_of("kp}0"), 1);
  EXPECT_EQ(chans_in_use(), chans) << "dead channel not freed (new one taken, old one gone)";
  // A sender notifying the dead waiter must not fail, and the new
  // receiver gets the packets (and is woken for them).
  Event res;
  Child w([&] {
    pollfd p{s.fd, POLLIN, 0};
    int rc = poll(&p, 1, 5000);
    res.signal(rc == 1 && (p.revents & POLLIN) ? 'y' : 'n');
    return 0;
  });
  ASSERT_EQ(res.wait(300), -1) << "the new receiver did not block";
  PktSpec spec;
  nmtest::put_pkt(m.tx(), spec, 0, 0);
  ASSERT_EQ(m.txsync(), 0) << strerror(errno);
  EXPECT_EQ(res.wait(5000), 'y');
  EXPECT_EQ(w.wait(5000), 0);
}

// A process killed while it holds the registry's or a region's lock: the
// next locker recovers the lock (robust mutex) instead of hanging.
TEST(Stale, KilledWhileHoldingTheRegistryLock) {
  ASSERT_NE(registry(), nullptr);
  Event locked;
  Child holder([&] {
    registry()->lock().lock();
    locked.signal();
    for (;;) pause();
    return 0;
  });
  ASSERT_EQ(locked.wait(10000), 'x');
  holder.kill_now(SIGKILL);
  Child opener([] {
    RawPort p("kl{0");
    return p.ok() ? 0 : 2;
  });
  EXPECT_EQ(opener.wait(5000), 0) << "registry lock not recovered";
}

TEST(Stale, KilledWhileHoldingARegionLock) {
  RawPort keep("null:keep");  // region 1 stays while this is open
  ASSERT_TRUE(keep.ok());
  auto region = region1();
  ASSERT_TRUE(region);
  const uint32_t base = region->bufs_in_use();
  Event locked;
  Child holder([&] {
    region->hdr()->lock.lock();
    locked.signal();
    for (;;) pause();
    return 0;
  });
  ASSERT_EQ(locked.wait(10000), 'x');
  holder.kill_now(SIGKILL);
  Child opener([] {
    RawPort p("kr{0");
    return p.ok() ? 0 : 2;
  });
  EXPECT_EQ(opener.wait(5000), 0) << "region lock not recovered";
  RawPort p("kr2{0");
  ASSERT_TRUE(p.ok()) << "the region lock is not usable in this process either";
  EXPECT_GT(bufs_in_use(), base);
}

// A sender killed in the middle of a long transfer: every packet the
// receiver got is intact and in order, and a new sender on the same pipe
// is received after them.
TEST(Stale, SenderKilledMidTransfer) {
  RawPort s("km}0");
  ASSERT_TRUE(s.ok());
  Event ready, hold;
  Child tx = peer_holding("send", "netmap:km{0", 10000000, ready, hold, 31);
  ASSERT_EQ(ready.wait(10000), 'o');
  PktSpec a, b;
  a.seed = 31;
  a.max = 1500;
  b.seed = 32;
  b.max = 1500;
  uint32_t next_a = 0, next_b = 0;
  bool killed = false;
  std::vector<uint8_t> pkt;
  netmap_ring* rx = s.rx();
  RawPort m;
  const double end = nmtest::now_ms() + 20000;
  while (next_b < 100 && nmtest::now_ms() < end) {
    int rc = s.poll(POLLIN, killed ? 300 : 5000);
    ASSERT_GE(rc, 0);
    if (rc == 0) {
      ASSERT_TRUE(killed) << "sender stalled";
      if (!m.ok()) {  // the dead sender's packets are all in: start the new one
        ASSERT_TRUE(m.open("km{0")) << strerror(m.err);
        for (uint32_t i = 0; i < 100; i++) {
          while (nm_ring_space(m.tx()) == 0) ASSERT_EQ(m.poll(POLLOUT, 5000), 1);
          nmtest::put_pkt(m.tx(), b, i, 1);
        }
        ASSERT_EQ(m.txsync(), 0);
      }
      continue;
    }
    while (!nm_ring_empty(rx)) {
      uint32_t n, first;
      bool ch;
      ASSERT_TRUE(nmtest::peek_pkt(rx, &pkt, &n, &ch, &first));
      nmtest::PktHdr h;
      memcpy(&h, pkt.data(), sizeof h);
      if (h.ring == 0) {
        ASSERT_FALSE(m.ok()) << "old sender's packet after the new sender started";
        ASSERT_EQ(nmtest::check_pkt(a, pkt, next_a, 0), "");
        next_a++;
      } else {
        ASSERT_EQ(nmtest::check_pkt(b, pkt, next_b, 1), "");
        next_b++;
      }
      rx->head = rx->cur = nm_ring_next(rx, rx->cur);
    }
    if (!killed && next_a >= 20000) {
      tx.kill_now(SIGKILL);
      killed = true;
    }
  }
  EXPECT_TRUE(killed);
  EXPECT_GE(next_a, 20000u);
  EXPECT_EQ(next_b, 100u) << "the new sender's packets did not all arrive";
}

}  // namespace
