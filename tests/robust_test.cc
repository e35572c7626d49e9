// The user-space kernel holds against what a process does to it: a failed
// open never touches another port, nothing an application writes decides
// what goes back to a pool, a zombie holds nothing, and processes killed
// at random instants of open, register, sync and close leave nothing
// behind while a well-behaved pair keeps forwarding.
#include <gtest/gtest.h>
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/registry.h"
#include "ports/vale/vale.h"
#include "mem/region.h"
#include "util/test_util.h"

namespace {

using nmtest::Child;
using nmtest::Event;
using nmtest::RawPort;
using unetmap::Region;

std::shared_ptr<Region> region(uint16_t id) {
  int err = 0;
  return Region::get(id, unetmap::RegionConfig::from_env(), &err, nullptr, false);
}

// Frames of 60 bytes: broadcast destination (a VALE switch floods it),
// then a sequence number. `src` (the source MAC's bytes) tells senders apart.
void put_frame(netmap_ring* r, uint32_t seq, uint8_t src = 0x02) {
  netmap_slot& s = r->slot[r->cur];
  uint8_t* b = reinterpret_cast<uint8_t*>(NETMAP_BUF(r, s.buf_idx));
  memset(b, 0xff, 6);
  memset(b + 6, src, 6);
  b[12] = 0x88, b[13] = 0xb5;
  memcpy(b + 14, &seq, 4);
  for (int i = 18; i < 60; i++) b[i] = uint8_t(seq + i);
  s.len = 60;
  s.flags = 0;
  r->head = r->cur = nm_ring_next(r, r->cur);
}

bool frame_ok(const netmap_ring* r, const netmap_slot& s, uint32_t* seq) {
  const uint8_t* b = reinterpret_cast<const uint8_t*>(NETMAP_BUF(r, s.buf_idx));
  if (s.len != 60) return false;
  memcpy(seq, b + 14, 4);
  for (int i = 18; i < 60; i++)
    if (b[i] != uint8_t(*seq + i)) return false;
  return true;
}

// Send n frames from tx to rx and check that each arrives, in order and
// intact. Empty on success, else what went wrong.
std::string transfer(RawPort& tx, RawPort& rx, uint32_t n, uint32_t first_seq = 0) {
  uint32_t sent = 0, got = 0;
  const double end = nmtest::now_ms() + 10000;
  while (got < n) {
    if (nmtest::now_ms() > end)
      return "timed out: sent " + std::to_string(sent) + ", received " + std::to_string(got);
    netmap_ring* t = tx.tx();
    const uint32_t window = std::min(64u, rx.rx()->num_slots / 2);  // never more than rx holds
    while (sent < n && !nm_ring_empty(t) && sent - got < window) put_frame(t, first_seq + sent++);
    if (tx.txsync() != 0) return std::string("txsync: ") + strerror(errno);
    if (rx.poll(POLLIN, 100) < 0) return std::string("poll: ") + strerror(errno);
    netmap_ring* r = rx.rx();
    while (!nm_ring_empty(r)) {
      uint32_t seq;
      const netmap_slot& sl = r->slot[r->cur];
      if (sl.len >= 12 && reinterpret_cast<const uint8_t*>(NETMAP_BUF(r, sl.buf_idx))[6] != 0x02) {
        r->head = r->cur = nm_ring_next(r, r->cur);  // another sender's
        continue;
      }
      if (!frame_ok(r, r->slot[r->cur], &seq)) return "corrupted frame " + std::to_string(got);
      if (seq != first_seq + got)
        return "frame " + std::to_string(seq) + " where " + std::to_string(first_seq + got) +
               " was due";
      got++;
      r->head = r->cur = nm_ring_next(r, r->cur);
    }
    if (rx.rxsync() != 0) return std::string("rxsync: ") + strerror(errno);  // released: room again
  }
  return "";
}

struct Counts {
  uint32_t bufs, rings, ifs;
  bool operator==(const Counts& o) const {
    return bufs == o.bufs && rings == o.rings && ifs == o.ifs;
  }
};
std::string show(const Counts& c) {
  return std::to_string(c.bufs) + " buffers, " + std::to_string(c.rings) + " rings, " +
         std::to_string(c.ifs) + " netmap_ifs in use";
}
Counts counts(uint16_t id) {
  auto r = region(id);
  if (!r) return {0, 0, 0};
  const auto* h = r->hdr();
  return {r->bufs_in_use(), r->cfg().ring_num - h->ring_free, r->cfg().if_num - h->if_free};
}

// Finding 1: ring creation that runs out of rings gave back ring 0 of the
// region, another port's, with its buffers.
TEST(Robust, FailedOpenLeavesOtherPortsAlone) {
  Child c([] {
    setenv("UNETMAP_RING_NUM", "6", 1);
    RawPort a("ra{0"), b("ra}0");  // 4 rings of region 1, made here with 6
    if (!a.ok() || !b.ok()) return 2;
    const Counts before = counts(1);
    RawPort x("rx{0");
    if (x.ok() || x.err != ENOMEM) {
      fprintf(stderr, "second pipe: %s, want ENOMEM\n", strerror(x.err));
      return 3;
    }
    if (!(counts(1) == before)) {
      fprintf(stderr, "after the failed open: %s, before: %s\n", show(counts(1)).c_str(),
              show(before).c_str());
      return 4;
    }
    // A new port must not get the first pipe's buffers.
    std::set<uint32_t> mine;
    for (netmap_ring* r : {a.tx(), b.tx()})
      for (uint32_t i = 0; i < r->num_slots; i++) mine.insert(r->slot[i].buf_idx);
    std::string e = transfer(a, b, 500);
    if (!e.empty()) {
      fprintf(stderr, "the first pipe after the failed open: %s\n", e.c_str());
      return 5;
    }
    return 0;
  });
  EXPECT_EQ(c.wait(20000), 0);
}

// Finding 4: ring teardown used ring->num_slots, which the application can
// overwrite.
TEST(Robust, NumSlotsWrittenByTheApplicationLeaksNothing) {
  RawPort keep("null:rk");
  ASSERT_TRUE(keep.ok());
  const Counts base = counts(1);
  {
    RawPort a("ns{0"), b("ns}0");
    ASSERT_TRUE(a.ok() && b.ok());
    for (netmap_ring* r : {a.tx(), a.rx(), b.tx(), b.rx()}) *const_cast<uint32_t*>(&r->num_slots) = 1;
  }
  EXPECT_EQ(show(counts(1)), show(base)) << "every buffer came back";
}

// Finding 4: a buffer index of another port's ring left in a slot was freed
// at close (and handed out again while still in use).
TEST(Robust, AnotherPortsBufferInASlotIsNeitherTakenNorFreed) {
  RawPort keep("null:fk");
  ASSERT_TRUE(keep.ok());
  const Counts alone = counts(1);
  constexpr uint32_t kVictims = 64;
  Event go, ready;
  int pfd[2];
  ASSERT_EQ(pipe(pfd), 0);
  // The hostile process is forked before the victim port exists: it
  // inherits no binding of it.
  Child h([&] {
    RawPort p("null:hostile");
    ready.signal(p.ok() ? 'y' : 'n');
    uint32_t victim[kVictims];
    if (!p.ok() || read(pfd[0], victim, sizeof victim) != ssize_t(sizeof victim)) return 2;
    netmap_ring* t = p.tx();
    // Every slot names one of a{0's buffers; send one, then close.
    for (uint32_t i = 0; i < t->num_slots; i++) t->slot[i].buf_idx = victim[i % kVictims];
    t->slot[0].len = 60;
    t->head = t->cur = 1;
    int rc = ioctl(p.fd, NIOCTXSYNC, nullptr);
    if (rc == 0 || errno != EINVAL) {
      fprintf(stderr, "txsync with another port's buffer: %d (%s), want EINVAL\n", rc,
              strerror(errno));
      return 3;
    }
    return 0;
  });
  ASSERT_EQ(ready.wait(5000), 'y');
  const Counts base = counts(1);
  RawPort a("fa{0"), b("fa}0");
  ASSERT_TRUE(a.ok() && b.ok());
  const Counts with_pipe = counts(1);
  uint32_t victim[kVictims];
  for (uint32_t i = 0; i < kVictims; i++) victim[i] = a.tx()->slot[i].buf_idx;
  ASSERT_EQ(write(pfd[1], victim, sizeof victim), ssize_t(sizeof victim));
  ASSERT_EQ(h.wait(10000), 0);
  close(pfd[0]);
  close(pfd[1]);
  EXPECT_EQ(counts(1).bufs, with_pipe.bufs - base.bufs + alone.bufs)
      << "the hostile port's own buffers all came back, and only those";
  // The pool hands out none of a{0's buffers: a new port gets others.
  RawPort n("null:fresh");
  ASSERT_TRUE(n.ok());
  std::set<uint32_t> v(victim, victim + kVictims);
  for (uint32_t i = 0; i < n.tx()->num_slots; i++)
    ASSERT_EQ(v.count(n.tx()->slot[i].buf_idx), 0u) << "buffer handed out twice";
  EXPECT_EQ(transfer(a, b, 2000), "");
}

// Zero-copy forwarding between two ports that one process has bound stays
// allowed: the buffer changes owner.
TEST(Robust, BuffersMoveBetweenPortsTheProcessBound) {
  RawPort keep("null:mk");
  ASSERT_TRUE(keep.ok());
  const Counts base = counts(1);
  {
    RawPort a("ma{0"), b("ma}0"), c("mc{0"), d("mc}0");
    ASSERT_TRUE(a.ok() && b.ok() && c.ok() && d.ok());
    // a -> b, then b's rx buffer is swapped into c's tx slot: c -> d.
    for (uint32_t seq = 0; seq < 3000; seq++) {
      put_frame(a.tx(), seq);
      ASSERT_EQ(a.txsync(), 0);
      ASSERT_EQ(b.rxsync(), 0);
      netmap_ring* r = b.rx();
      ASSERT_FALSE(nm_ring_empty(r));
      netmap_ring* t = c.tx();
      ASSERT_FALSE(nm_ring_empty(t));
      std::swap(r->slot[r->cur].buf_idx, t->slot[t->cur].buf_idx);
      t->slot[t->cur].len = r->slot[r->cur].len;
      t->slot[t->cur].flags = NS_BUF_CHANGED;
      r->slot[r->cur].flags = NS_BUF_CHANGED;
      r->head = r->cur = nm_ring_next(r, r->cur);
      t->head = t->cur = nm_ring_next(t, t->cur);
      ASSERT_EQ(c.txsync(), 0) << "a buffer of a port this process bound is taken";
      ASSERT_EQ(b.rxsync(), 0);
      ASSERT_EQ(d.rxsync(), 0);
      netmap_ring* o = d.rx();
      ASSERT_FALSE(nm_ring_empty(o));
      uint32_t got;
      ASSERT_TRUE(frame_ok(o, o->slot[o->cur], &got));
      ASSERT_EQ(got, seq);
      o->head = o->cur = nm_ring_next(o, o->cur);
    }
  }
  EXPECT_EQ(show(counts(1)), show(base)) << "every buffer came back, once";
}

// A fork child holds the registrations of its parent (as with netmap, it
// shares the fds), so it may take over their buffers: a buffer of the
// parent's port named in a slot of the child's own port becomes the
// child's, and goes back to the pool when the child's ring goes, while the
// parent's slot still names it (a slot its ring no longer owns: refused).
// The pool then has one more free buffer than before the child ran. This is
// why the hostile storm holds the regions it counts in a process of its
// own: ports opened by the test itself are inherited by the hostile child,
// whose random indexes took some of their buffers.
TEST(Robust, AForkChildTakesBuffersOfThePortsItInherited) {
  RawPort keep("null:ik");
  ASSERT_TRUE(keep.ok());
  RawPort a("ia{0"), b("ia}0");  // before the fork: the child holds them too
  ASSERT_TRUE(a.ok() && b.ok());
  const Counts before = counts(1);
  const uint32_t victim = a.tx()->slot[5].buf_idx;
  Child c([&] {
    RawPort p("null:heir");
    if (!p.ok()) return 2;
    netmap_ring* t = p.tx();
    t->slot[0].buf_idx = victim;
    t->slot[0].len = 60;
    t->head = t->cur = 1;
    if (p.txsync() != 0) return 3;  // taken over: a port this process holds
    auto r = region(1);
    return r && r->buf_tag(victim) == Region::ring_tag(uint32_t(
                                          (reinterpret_cast<char*>(t) - static_cast<char*>(p.mem) -
                                           r->hdr()->ring_pool) / r->cfg().ring_size))
               ? 0 : 4;
  });
  ASSERT_EQ(c.wait(10000), 0) << "3: not taken over, 4: not re-tagged";
  EXPECT_EQ(region(1)->buf_tag(victim), 0u) << "freed with the child's ring";
  EXPECT_EQ(counts(1).bufs, before.bufs - 1) << "ia{0's ring owns one buffer less";
  // ia{0's slot 5 names a free buffer now: handing it over is refused.
  netmap_ring* t = a.tx();
  for (uint32_t i = 0; i <= 5; i++) t->slot[i].len = 60;
  t->head = t->cur = 6;
  EXPECT_EQ(a.txsync(), -1);
  EXPECT_EQ(errno, EINVAL);
}

// A zombie (exited, not reaped by its parent) holds nothing: netmap
// releases a process's fds at exit.
TEST(Robust, AZombieHoldsNothing) {
  Event opened;
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    RawPort p("zb{0", NR_REG_ALL_NIC, 0, NR_EXCLUSIVE);
    opened.signal(p.ok() ? 'y' : 'n');
    _exit(0);  // exits without closing; the parent does not reap it yet
  }
  ASSERT_EQ(opened.wait(5000), 'y');
  int pfd = int(syscall(SYS_pidfd_open, pid, 0));
  ASSERT_GE(pfd, 0);
  pollfd p{pfd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1) << "the child did not exit";
  close(pfd);
  siginfo_t si{};
  ASSERT_EQ(waitid(P_PID, id_t(pid), &si, WEXITED | WNOWAIT), 0);  // still a zombie
  RawPort again("zb{0", NR_REG_ALL_NIC, 0, NR_EXCLUSIVE);
  EXPECT_TRUE(again.ok()) << "the zombie's exclusive registration is gone: " << strerror(again.err);
  waitpid(pid, nullptr, 0);
}

// What the runtime directory holds, less wake-up channels of open fds.
std::vector<std::string> leftovers() {
  std::vector<std::string> v;
  DIR* d = opendir(getenv("UNETMAP_DIR"));
  if (!d) return v;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != ".." && n != "registry" && n != "chan") v.push_back(n);
  }
  closedir(d);
  std::sort(v.begin(), v.end());
  return v;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += x + " ";
  return s;
}

// Live entries of the registry (ports, registrations, switches).
std::string registry_use() {
  int err = 0;
  unetmap::Registry* reg = unetmap::Registry::get(&err);
  if (!reg) return "no registry";
  unetmap::RegistryLock g(*reg);
  reg->reap();
  std::string s;
  for (uint32_t i = 0; i < unetmap::kMaxPorts; i++)
    if (reg->port(int(i)).kind != unetmap::kNoPort)
      s += std::string("port ") + reg->port(int(i)).name + " ";
  for (uint32_t i = 0; i < unetmap::kMaxRegs; i++)
    if (reg->reg(int(i)).in_use) s += "reg " + std::to_string(i) + " ";
  for (uint32_t i = 0; i < unetmap::kMaxSwitches; i++)
    if (unetmap::vale_switch(*reg, int(i)).in_use) s += std::string("switch ") + unetmap::vale_switch(*reg, int(i)).name + " ";
  return s;
}

// Open `spec` through libnetmap, with its error message.
nmport_d* open_spec(const std::string& spec, std::string* msg, int* err) {
  static nmtest::CaptureCtx* cc = new nmtest::CaptureCtx;
  nmctx* old = nmctx_set_default(&cc->ctx);
  errno = 0;
  cc->last.clear();
  nmport_d* d = nmport_open(spec.c_str());
  *err = errno;
  nmctx_set_default(old);
  *msg = cc->last;
  return d;
}

// Each limit, reached: a clear error for the open that does not fit, and
// the ports already open keep working.
TEST(Robust, AFullSwitchRefusesTheNextPortOnly) {
  Child c([] {
    setenv("UNETMAP_BUF_NUM", "40000", 1);  // region 2 holds every port
    setenv("UNETMAP_RING_NUM", "600", 1);
    setenv("UNETMAP_IF_NUM", "300", 1);
    std::vector<nmport_d*> ports;
    std::string msg;
    int err = 0;
    for (uint32_t i = 0; i < unetmap::kSwitchPorts; i++) {
      nmport_d* d = open_spec("vale0:p" + std::to_string(i) + "@2@conf:slots=64", &msg, &err);
      if (!d) {
        fprintf(stderr, "port %u: %s\n", i, msg.c_str());
        return 2;
      }
      ports.push_back(d);
    }
    nmport_d* extra = open_spec("vale0:one_too_many@2@conf:slots=64", &msg, &err);
    if (extra || err != ENOSPC || msg.find("full") == std::string::npos) {
      fprintf(stderr, "port %u: errno %s, message '%s'\n", unetmap::kSwitchPorts, strerror(err),
              msg.c_str());
      return 3;
    }
    if (registry_use().find("one_too_many") != std::string::npos) return 4;
    RawPort a, b;  // two of the ports, seen as raw ports
    for (int i = 0; i < 2; i++) {
      RawPort& r = i ? b : a;
      r.fd = ports[i]->fd;
      r.nifp = ports[i]->nifp;
    }
    std::string e = transfer(a, b, 100);  // each frame floods to 253 ports
    a.fd = b.fd = -1, a.nifp = b.nifp = nullptr;
    if (!e.empty()) {
      fprintf(stderr, "on the full switch: %s\n", e.c_str());
      return 5;
    }
    for (nmport_d* d : ports) nmport_close(d);
    if (!registry_use().empty()) {
      fprintf(stderr, "left: %s\n", registry_use().c_str());
      return 6;
    }
    return 0;
  });
  EXPECT_EQ(c.wait(60000), 0);
}

TEST(Robust, TooManySwitchesRefusesTheNextOnly) {
  Child c([] {
    std::vector<std::unique_ptr<RawPort>> ports;
    for (uint32_t i = 0; i < unetmap::kMaxSwitches; i++) {
      ports.emplace_back(new RawPort(("vale" + std::to_string(i) + ":x").c_str(), NR_REG_ALL_NIC,
                                     0, 0, 64, 1));
      if (!ports.back()->ok()) return 2;
    }
    RawPort more("valemore:x", NR_REG_ALL_NIC, 0, 0, 64, 1);
    if (more.ok() || more.err != ENOMEM) {
      fprintf(stderr, "switch %u: %s\n", unetmap::kMaxSwitches, strerror(more.err));
      return 3;
    }
    if (registry_use().find("valemore") != std::string::npos) return 4;
    RawPort y("vale0:y", NR_REG_ALL_NIC, 0, 0, 64, 1);
    if (!y.ok()) return 5;
    std::string e = transfer(*ports[0], y, 300);
    if (!e.empty()) {
      fprintf(stderr, "vale0 after the refusal: %s\n", e.c_str());
      return 6;
    }
    return 0;
  });
  EXPECT_EQ(c.wait(60000), 0);
}

// Out of file descriptors: the open that does not fit fails with EMFILE
// and takes nothing; the others keep working.
TEST(Robust, OutOfFdsRefusesTheNextOpenOnly) {
  Child c([] {
    rlimit rl{48, 48};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 2;
    std::vector<std::unique_ptr<RawPort>> ports;
    int err = 0;
    for (int i = 0; i < 64 && !err; i++) {
      ports.emplace_back(new RawPort(("null:f" + std::to_string(i)).c_str(), NR_REG_ALL_NIC, 0, 0,
                                     64));
      if (!ports.back()->ok()) err = ports.back()->err, ports.pop_back();
    }
    if (err != EMFILE && err != ENFILE) {
      fprintf(stderr, "after %zu ports: %s, want EMFILE\n", ports.size(), strerror(err));
      return 3;
    }
    ports.pop_back();  // room for one
    RawPort a("fd{0", NR_REG_ALL_NIC, 0, 0, 64);
    ports.pop_back();
    RawPort b("fd}0", NR_REG_ALL_NIC, 0, 0, 64);
    if (!a.ok() || !b.ok()) {
      fprintf(stderr, "after closing two: %s %s\n", strerror(a.err), strerror(b.err));
      return 4;
    }
    std::string e = transfer(a, b, 300);
    if (!e.empty()) return 5;
    return 0;
  });
  EXPECT_EQ(c.wait(30000), 0);
}

// Indexes read from the registry (a switch's port table, a port's ring
// list) are checked at use: garbage there is an error, never a crash or a
// write into another port's ring.
TEST(Robust, GarbageIndexesInTheRegistryAreCheckedAtUse) {
  RawPort a("vale0:ga", NR_REG_ALL_NIC, 0, 0, 64, 1), b("vale0:gb", NR_REG_ALL_NIC, 0, 0, 64, 1);
  RawPort v("gv{0", NR_REG_ALL_NIC, 0, 0, 64, 1), w("gv}0", NR_REG_ALL_NIC, 0, 0, 64, 1);
  ASSERT_TRUE(a.ok() && b.ok() && v.ok() && w.ok());
  int err = 0;
  unetmap::Registry* reg = unetmap::Registry::get(&err);
  ASSERT_NE(reg, nullptr);
  {
    unetmap::RegistryLock g(*reg);
    int pb = reg->find_port("vale0:gb"), pv = reg->find_port("gv{0");
    ASSERT_GE(pb, 0);
    ASSERT_GE(pv, 0);
    unetmap::SwitchEntry& sw = unetmap::vale_switch(*reg, unetmap::vale_port(reg->port(pb)).sw);
    sw.ports[200] = 31000;  // past the port table
    sw.ports[201] = int16_t(pv);  // a pipe end, in another region
    reg->port(pb).ring[unetmap::kRx][0] = 60000;  // not a ring of b's region
    sw.gen.fetch_add(1);
  }
  const Counts before = counts(1);
  for (uint32_t i = 0; i < 200; i++) {
    netmap_ring* t = a.tx();
    if (!nm_ring_empty(t)) put_frame(t, i);
    a.txsync();  // floods: every destination the table names
  }
  EXPECT_EQ(show(counts(1)), show(before));
  ASSERT_EQ(w.rxsync(), 0);
  EXPECT_TRUE(nm_ring_empty(w.rx())) << "the switch forwarded into a pipe its table named";
  EXPECT_EQ(transfer(v, w, 300), "") << "the pipe is untouched";
  RawPort again("vale0:gb");
  EXPECT_FALSE(again.ok());
  EXPECT_EQ(again.err, EIO) << "binding a port whose ring list is not its own";
}

// Partners (a pipe's two ends) name each other in their registry entries.
// An end whose partner field names some other port (garbage, or an entry
// freed and reused) has no partner: closing it took that port down too,
// even a persistent VALE port nobody had open.
TEST(Robust, APartnerMustNameItBack) {
  std::string why;
  ASSERT_EQ(unetmap::vale_newif("pvictim", unetmap::ValeNewif{}, &why), 0) << why;
  int err = 0;
  unetmap::Registry* reg = unetmap::Registry::get(&err);
  ASSERT_NE(reg, nullptr);
  {
    RawPort v("pk{0"), w("pk}0");
    ASSERT_TRUE(v.ok() && w.ok());
    unetmap::RegistryLock g(*reg);
    const int pv = reg->find_port("pk{0"), victim = reg->find_port("pvictim");
    ASSERT_GE(pv, 0);
    ASSERT_GE(victim, 0);
    const int32_t garbage = victim;  // the pipe's part of the entry starts with its peer
    memcpy(reg->port(pv).ext, &garbage, sizeof garbage);
  }
  {
    unetmap::RegistryLock g(*reg);
    EXPECT_GE(reg->find_port("pvictim"), 0) << "a port the pipe named went with it";
    EXPECT_LT(reg->find_port("pk{0"), 0);
    EXPECT_LT(reg->find_port("pk}0"), 0);
  }
  EXPECT_EQ(unetmap::vale_delif("pvictim", &why), 0) << why;
}

// A question about region 1 before anyone uses it answers with its sizes
// and makes nothing: it left a 342 MB region file behind.
TEST(Robust, PoolsInfoOfAnUnusedRegionMakesNothing) {
  int fd = open("/dev/netmap", O_RDWR);
  ASSERT_GE(fd, 0);
  nmreq_pools_info pi{};
  pi.nr_mem_id = 1;
  ASSERT_EQ(nmtest::ctrl(fd, NETMAP_REQ_POOLS_INFO_GET, "", &pi), 0);
  EXPECT_EQ(pi.nr_buf_pool_objsize, unetmap::RegionConfig::from_env().buf_size);
  EXPECT_EQ(pi.nr_buf_pool_objtotal, unetmap::RegionConfig::from_env().buf_num);
  EXPECT_EQ(pi.nr_memsize, Region::public_size(unetmap::RegionConfig::from_env()));
  close(fd);
  EXPECT_EQ(join(leftovers()), "") << "files left by the question";
  RawPort p("pi{0");  // the region made for a port has what the answer said
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.reg.nr_memsize, pi.nr_memsize);
}

// Garbage in a region's free stacks and counts (shared memory too) is
// found at use: the stacks are rebuilt from the owner tags, and no buffer,
// ring or netmap_if in use is handed out again.
TEST(Robust, GarbageInTheFreeStacksIsRebuiltFromTheTags) {
  RawPort a("gs{0"), b("gs}0");
  ASSERT_TRUE(a.ok() && b.ok());
  auto r = region(1);
  ASSERT_TRUE(r);
  const Counts before = counts(1);
  {
    unetmap::RegionHeader* h = r->hdr();
    unetmap::LockGuard g(h->lock);
    ASSERT_TRUE(g.ok());
    auto* bs = reinterpret_cast<uint32_t*>(reinterpret_cast<char*>(h) + h->buf_stack_off);
    auto* rs = reinterpret_cast<uint32_t*>(reinterpret_cast<char*>(h) + h->ring_stack_off);
    bs[h->buf_free - 1] = 0xfffffff0u;       // past the pool
    bs[h->buf_free - 2] = a.tx()->slot[0].buf_idx;  // a buffer in use
    rs[h->ring_free - 1] = 0xfffffff0u;
    h->if_free = 0xffffffffu;  // a count nobody could have made
  }
  RawPort c("gt{0"), d("gt}0");
  ASSERT_TRUE(c.ok() && d.ok()) << strerror(c.err) << " " << strerror(d.err);
  std::set<uint32_t> ab;
  for (netmap_ring* t : {a.tx(), b.tx()})
    for (uint32_t i = 0; i < t->num_slots; i++) ab.insert(t->slot[i].buf_idx);
  for (netmap_ring* t : {c.tx(), d.tx()})
    for (uint32_t i = 0; i < t->num_slots; i++)
      ASSERT_EQ(ab.count(t->slot[i].buf_idx), 0u) << "a buffer in use handed out again";
  EXPECT_EQ(transfer(a, b, 500), "");
  EXPECT_EQ(transfer(c, d, 500), "");
  c.close();
  d.close();
  RawPort probe("null:gprobe");  // the region is still consistent
  ASSERT_TRUE(probe.ok());
  probe.close();
  EXPECT_EQ(show(counts(1)), show(before));
}

// vale-ctl documents up to 65536 slots; the name parser took 65535 at most.
TEST(Robust, ConfTakesAsManySlotsAsValeCtl) {
  nmport_d* d = nmport_new();
  ASSERT_NE(d, nullptr);
  ASSERT_EQ(nmport_parse(d, "netmap:sl{0@conf:slots=65536"), 0);
  EXPECT_EQ(d->reg.nr_tx_slots, 65536u);
  nmport_delete(d);
  d = nmport_new();
  EXPECT_NE(nmport_parse(d, "netmap:sl{0@conf:slots=65537"), 0);
  EXPECT_NE(nmport_parse(d, "netmap:sl{0@conf:rings=65536"), 0);
  nmport_delete(d);
}

// One victim of the storm: open, sync and close ports of every kind, in a
// loop, until killed.
[[noreturn]] void churn(uint32_t seed) {
  std::mt19937 rng(seed);
  const char* names[] = {"st{1", "st}1", "vale0:k", "vale1:k", "null:k", "sp{0", "vale0:s"};
  const uint64_t flags[] = {0, NR_MONITOR_TX, NR_MONITOR_RX, NR_ZCOPY_MON};
  for (;;) {
    std::string name = names[rng() % 7];
    if (name == "vale0:k" || name == "vale1:k") name += std::to_string(rng() % 8);
    uint64_t f = (name == "sp{0" || name == "vale0:s") ? flags[rng() % 4] : 0;
    RawPort p;
    // Small rings: a new VALE port reserves the pages of its private region.
    if (!p.open(name.c_str(), NR_REG_ALL_NIC, 0, f, f ? 0 : 128, 0)) continue;
    for (int i = 0, n = int(rng() % 4); i < n; i++) {
      netmap_ring* t = p.tx();
      if (!f && !nm_ring_empty(t)) put_frame(t, 7, 0x04);
      p.txsync();
      p.poll(POLLIN, 0);
    }
  }
}

// Finding 2: hundreds of SIGKILLs at random instants of open, register,
// sync, poll and close, with monitors of all kinds, while a pair forwards
// on the same switch and a pipe pair in the same region: afterwards no
// leaked port, region, ring, buffer or file, and the switch forwards.
TEST(Robust, KillStormLeavesNothingBehind) {
  const int kills = getenv("UNETMAP_STORM_KILLS") ? atoi(getenv("UNETMAP_STORM_KILLS")) : 300;
  const uint32_t seed = getenv("UNETMAP_SEED") ? uint32_t(atoi(getenv("UNETMAP_SEED"))) : uint32_t(time(nullptr));
  printf("seed %u (UNETMAP_SEED reproduces the schedule of kills)\n", seed);
  std::mt19937 rng(seed);
  // A small region 1: each victim maps it, and its exit unmaps it.
  setenv("UNETMAP_BUF_NUM", "16384", 1);
  {
    RawPort s("vale0:s"), r("vale0:r"), a("sp{0"), b("sp}0");
    ASSERT_TRUE(s.ok() && r.ok() && a.ok() && b.ok());
    const Counts base1 = counts(1);
    uint32_t seq = 0;
    for (int k = 0; k < kills; k++) {
      Child c([&]() -> int { churn(seed + uint32_t(k)); });
      // Kill at a random instant: the child's work runs meanwhile.
      timespec ts{0, long(rng() % 3000) * 1000};
      nanosleep(&ts, nullptr);
      c.kill_now();
      if (k % 50 == 49) {
        ASSERT_EQ(transfer(s, r, 200, seq), "") << "VALE pair after " << k + 1 << " kills";
        ASSERT_EQ(transfer(a, b, 200, seq), "") << "pipe pair after " << k + 1 << " kills";
        seq += 200;
      }
    }
    ASSERT_EQ(transfer(s, r, 1000, seq), "");
    ASSERT_EQ(transfer(a, b, 1000, seq), "");
    std::string use = registry_use();
    printf("in use after the storm: %s\n", use.c_str());
    for (const char* want : {"port vale0:s ", "port vale0:r ", "port sp{0 ", "port sp}0 "})
      EXPECT_NE(use.find(want), std::string::npos) << use;
    EXPECT_EQ(show(counts(1)), show(base1)) << "region 1 after the storm";
    if (getenv("UNETMAP_DEBUG_TAGS")) {
      auto r1 = region(1);
      std::map<uint32_t, uint32_t> by;
      for (uint32_t b = 2; b < r1->cfg().buf_num; b++) by[r1->buf_tag(b)]++;
      for (auto [t, n] : by)
        printf("tag %x: %u buffers (ring port %d, if reg %d)\n", t, n,
               r1->ring_port(t & Region::kTagIndex), r1->if_reg(t & Region::kTagIndex));
    }
  }
  EXPECT_EQ(registry_use(), "") << "nothing is left once the pair closed";
  EXPECT_EQ(join(leftovers()), "") << "files left in the runtime directory";
}

}  // namespace
