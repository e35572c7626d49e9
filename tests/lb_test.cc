// lb, run as a real process (the binary the build made) on an input pipe
// (the test sends on netmap:lbin{0, lb reads lbin}0), its output pipes
// read by the test: flows and their replies land on one pipe, every group
// gets every packet byte for byte, a stalled or killed consumer costs only
// its own share and resumes, many pipes work, bad command lines get one
// clear line. And the flow hash alone: symmetric, fragments together.
//
// Synchronisation is on events only: lb's "lb: ... pipes" line on stderr,
// its final JSON line at SIGTERM, the receivers' poll(); all with deadlines.
#include <gtest/gtest.h>
#include <unetmap/unetmap.h>
#include <libnetmap.h>
#include <poll.h>
#include <sys/ioctl.h>

#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "flow_hash.h"
#include "util/ip_frames.h"
#include "util/proc.h"
#include "util/test_util.h"

using nmtest::FrameSpec;
using nmtest::frame;
using nmtest::now_ms;
using nmtest::Proc;

namespace {

// lb started with args, ready (its pipes open), or a failed test.
struct Lb : Proc {
  explicit Lb(std::vector<std::string> args) : Proc(with_bin(std::move(args))) {
    ready = wait_for(" pipes in ", true, 10000);
  }
  static std::vector<std::string> with_bin(std::vector<std::string> a) {
    a.insert(a.begin(), LB_BIN);
    return a;
  }
  bool ready = false;
};

// A number after "\"key\":" in the JSON object of pipe `pipe` (or the top level).
long long json_field(const std::string& out, const std::string& pipe, const std::string& key) {
  size_t at = 0;
  if (!pipe.empty()) {
    at = out.rfind("{\"pipe\":\"" + pipe + "\"");
    if (at == std::string::npos) return -1;
  } else {
    at = out.rfind("{\"input\"");
    if (at == std::string::npos) return -1;
  }
  const size_t k = out.find("\"" + key + "\":", at);
  const size_t end = out.find('}', at + pipe.size() + 10);  // past the name's own brace
  if (k == std::string::npos || (!pipe.empty() && k > end)) return -1;
  return atoll(out.c_str() + k + key.size() + 3);
}

// A frame tagged with its number (the payload's first 4 bytes).
std::vector<uint8_t> tagged(FrameSpec s, uint32_t id) {
  s.payload = 40;
  std::vector<uint8_t> f = frame(s);
  const size_t at = f.size() - 40;
  memcpy(&f[at], &id, 4);
  for (size_t k = at + 4; k < f.size(); k++) f[k] = uint8_t(id * 13 + k);
  return f;
}

uint32_t id_of(const uint8_t* f, uint32_t len) {
  uint32_t id;
  memcpy(&id, f + len - 40, 4);
  return id;
}

// Send frames on the open port d (blocking in poll for room, 10 s).
void send_all(nmport_d* d, const std::vector<std::vector<uint8_t>>& frames) {
  netmap_ring* t = NETMAP_TXRING(d->nifp, d->first_tx_ring);
  const double end = now_ms() + 10000;
  for (const auto& f : frames) {
    while (nm_ring_space(t) == 0) {
      pollfd p{d->fd, POLLOUT, 0};
      ASSERT_GT(poll(&p, 1, int(end - now_ms())), 0) << "no room to send";
    }
    netmap_slot& s = t->slot[t->cur];
    memcpy(NETMAP_BUF(t, s.buf_idx), f.data(), f.size());
    s.len = uint16_t(f.size());
    s.flags = 0;
    t->head = t->cur = nm_ring_next(t, t->cur);
  }
  ioctl(d->fd, NIOCTXSYNC, nullptr);
}

// Moves the frames waiting in d's rx rings into got (their bytes, by
// arrival), their slots released at the next sync: how many.
size_t take_frames(nmport_d* d, std::vector<std::vector<uint8_t>>* got) {
  size_t n = 0;
  for (unsigned i = d->first_rx_ring; i <= d->last_rx_ring; i++) {
    netmap_ring* r = NETMAP_RXRING(d->nifp, i);
    for (; !nm_ring_empty(r); r->head = r->cur = nm_ring_next(r, r->cur), n++) {
      const netmap_slot& s = r->slot[r->cur];
      const uint8_t* b = reinterpret_cast<const uint8_t*>(NETMAP_BUF(r, s.buf_idx));
      got->emplace_back(b, b + s.len);
    }
  }
  return n;
}

// Read what is there on d within ms (until `want` frames or quiet for
// quiet_ms): the frames' bytes, by arrival.
std::vector<std::vector<uint8_t>> drain(nmport_d* d, size_t want, int ms, int quiet_ms = 300) {
  std::vector<std::vector<uint8_t>> got;
  const double end = now_ms() + ms;
  double last = now_ms();
  while (got.size() < want && now_ms() < end && now_ms() - last < quiet_ms) {
    pollfd p{d->fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    if (take_frames(d, &got)) last = now_ms();
  }
  ioctl(d->fd, NIOCRXSYNC, nullptr);  // release them: on to the next group
  return got;
}

// What the ports of a group get until `total` frames came (or 10 s): one
// poll over them all, so a stall of lb does not end one port's reading
// early (a known total needs no quiet). By port, by arrival.
std::vector<std::vector<std::vector<uint8_t>>> drain_group(const std::vector<nmport_d*>& group, size_t total) {
  std::vector<std::vector<std::vector<uint8_t>>> got(group.size());
  std::vector<pollfd> fds;
  for (nmport_d* d : group) fds.push_back({d->fd, POLLIN, 0});
  const double end = now_ms() + 10000;
  size_t n = 0;
  while (n < total && now_ms() < end) {
    if (poll(fds.data(), fds.size(), 50) <= 0) continue;
    for (size_t k = 0; k < group.size(); k++) n += take_frames(group[k], &got[k]);
  }
  for (nmport_d* d : group) ioctl(d->fd, NIOCRXSYNC, nullptr);  // released: on to the next group
  return got;
}

// Frames of `flows` flows, each one way and back, of every kind lb hashes:
// TCP/IPv4, UDP/IPv6, VLAN-tagged, IPv4 fragments, not IP.
std::vector<std::vector<uint8_t>> mixed_frames(uint32_t flows, std::vector<uint32_t>* flow_of) {
  std::vector<std::vector<uint8_t>> out;
  static char a[64], b[64];
  for (uint32_t k = 0; k < flows; k++) {
    FrameSpec s;
    const uint32_t kind = k % 5;
    s.v6 = kind == 1;
    s.proto = kind == 1 ? 17 : 6;
    s.vlan = kind == 2;
    if (s.v6) {
      snprintf(a, sizeof a, "2001:db8::%x", k + 1);
      snprintf(b, sizeof b, "2001:db8:1::%x", k * 7 + 3);
    } else {
      snprintf(a, sizeof a, "10.%u.%u.1", k / 200, k % 200);
      snprintf(b, sizeof b, "172.16.%u.%u", k % 250, k / 250 + 2);
    }
    s.src = a, s.dst = b;
    s.sport = uint16_t(1024 + k), s.dport = uint16_t(kind == 1 ? 53 : 443);
    if (kind == 4) {  // not IP: a MAC pair
      s.smac[5] = uint8_t(k), s.dmac[4] = uint8_t(k >> 8), s.dmac[5] = uint8_t(k + 1);
    }
    for (int dir = 0; dir < 2; dir++) {
      FrameSpec t = s;
      if (dir) {
        std::swap(t.sport, t.dport);
        std::swap(t.src, t.dst);
        std::swap(t.smac, t.dmac);
      }
      for (int frag = 0; frag < (kind == 3 ? 2 : 1); frag++) {
        t.frag_off = kind == 3 ? uint16_t(frag ? 185 : 0x2000) : 0;  // MF, then an offset
        std::vector<uint8_t> f = tagged(t, uint32_t(out.size()));
        if (kind == 4) f[12] = 0x88, f[13] = 0xb5;
        out.push_back(f);
        flow_of->push_back(k);
      }
    }
  }
  return out;
}

TEST(FlowHash, BothDirectionsAndAllFragmentsHashAlike) {
  std::vector<uint32_t> flow;
  const auto frames = mixed_frames(500, &flow);
  std::map<uint32_t, uint32_t> hash_of;  // flow -> hash
  std::set<uint32_t> spread;
  for (size_t k = 0; k < frames.size(); k++) {
    const unetmap::lb::FlowKey h = unetmap::lb::flow_hash(frames[k].data(), uint32_t(frames[k].size()));
    EXPECT_EQ(h.ip, flow[k] % 5 != 4) << k;
    auto [it, fresh] = hash_of.insert({flow[k], h.hash});
    if (!fresh) {
      EXPECT_EQ(it->second, h.hash) << "flow " << flow[k] << " frame " << k;
    }
    spread.insert(h.hash % 16);
  }
  EXPECT_EQ(spread.size(), 16u);  // 500 flows reach every one of 16 pipes
  // A truncated IP header is hashed as not IP, without reading past len.
  const std::vector<uint8_t> f = frames[0];
  EXPECT_FALSE(unetmap::lb::flow_hash(f.data(), 20).ip);
  EXPECT_EQ(unetmap::lb::flow_hash(f.data(), 4).hash, 0u);
}

TEST(Lb, FlowsLandOnOnePipeBothWaysAndEveryGroupGetsEveryPacket) {
  Lb lb({"-i", "netmap:lbin}0", "-p", "a:4", "-p", "b:3"});
  ASSERT_TRUE(lb.ready) << lb.err();
  std::vector<nmport_d*> a, b;
  for (int k = 0; k < 4; k++) a.push_back(nmport_open(("netmap:a}" + std::to_string(k)).c_str()));
  for (int k = 0; k < 3; k++) b.push_back(nmport_open(("netmap:b}" + std::to_string(k)).c_str()));
  nmport_d* in = nmport_open("netmap:lbin{0");
  for (nmport_d* d : a) ASSERT_NE(d, nullptr);
  for (nmport_d* d : b) ASSERT_NE(d, nullptr);
  ASSERT_NE(in, nullptr);
  std::vector<uint32_t> flow;
  const auto frames = mixed_frames(200, &flow);  // 960 frames: they fit the pipes' rings
  send_all(in, frames);
  // Each group: every frame once, intact; a flow's frames on one pipe.
  for (auto* group : {&a, &b}) {
    std::vector<int> seen(frames.size(), 0);
    std::map<uint32_t, size_t> pipe_of_flow;
    size_t total = 0;
    // Group a is read first: only its released frames reach group b.
    const auto by_pipe = drain_group(*group, frames.size());
    for (size_t p = 0; p < group->size(); p++) {
      const auto& got = by_pipe[p];
      EXPECT_FALSE(got.empty()) << "pipe " << p << " got nothing";
      for (const auto& f : got) {
        const uint32_t id = id_of(f.data(), uint32_t(f.size()));
        ASSERT_LT(id, frames.size());
        EXPECT_EQ(f, frames[id]) << "frame " << id << " changed";
        seen[id]++;
        auto [it, fresh] = pipe_of_flow.insert({flow[id], p});
        EXPECT_EQ(it->second, p) << "flow " << flow[id] << " on two pipes";
      }
      total += got.size();
    }
    EXPECT_EQ(total, frames.size());
    for (size_t k = 0; k < frames.size(); k++) EXPECT_EQ(seen[k], 1) << "frame " << k;
    if (total != frames.size()) break;
  }
  ASSERT_EQ(lb.stop(SIGTERM), 0) << lb.err();
  if (HasFailure()) printf("%s\n%s\n", lb.out().c_str(), lb.err().c_str());
  EXPECT_EQ(json_field(lb.out(), "", "received"), (long long)frames.size());
  EXPECT_EQ(json_field(lb.out(), "", "non_ip"), 80);  // flows 4, 9, ...: 40 flows, both ways
  for (nmport_d* d : a) nmport_close(d);
  for (nmport_d* d : b) nmport_close(d);
  nmport_close(in);
}

// Consumer s}1 stops reading (then is killed, then comes back): s}0 loses
// nothing, t}0 gets every frame but those revoked from s}1's overflow
// queue (with extra buffers) and, once s}1 reads again, those it held.
// Without extra buffers the frames s}1 has no room for are its drops and
// still reach t}0 (netmap's lb drops them for every group).
class LbStall : public ::testing::TestWithParam<int> {};

TEST_P(LbStall, AStalledConsumerCostsOnlyItsOwnShare) {
  const int bufs = GetParam();
  Lb lb({"-i", "netmap:lbin}0", "-p", "s:2", "-p", "t:1", "-B", std::to_string(bufs)});
  ASSERT_TRUE(lb.ready) << lb.err();
  nmport_d* s0 = nmport_open("netmap:s}0");
  nmport_d* t0 = nmport_open("netmap:t}0");
  nmport_d* in = nmport_open("netmap:lbin{0");
  ASSERT_TRUE(s0 && t0 && in);
  // A consumer of s}1 in another process that reads nothing and is killed.
  Proc stalled({PKTGEN_BIN, "-i", "netmap:s}1", "-f", "rx", "-w", "0"});
  ASSERT_TRUE(stalled.wait_for("rings of", true, 10000)) << stalled.err();
  kill(stalled.pid(), SIGSTOP);
  std::vector<uint32_t> flow;
  // 360 frames a round: they fit the rings of s}0 and t}0, which are read
  // after each; s}1 gets about half, and its ring (1024) and queue (256)
  // are full by the eighth round.
  const auto frames = mixed_frames(150, &flow);
  size_t got_s0 = 0, got_t0 = 0;
  const int rounds = 10;
  for (int round = 0; round < rounds; round++) {
    send_all(in, frames);
    got_s0 += drain(s0, ~size_t(0), 3000, 200).size();
    got_t0 += drain(t0, ~size_t(0), 3000, 200).size();
  }
  const size_t sent = rounds * frames.size();
  kill(stalled.pid(), SIGKILL);
  stalled.finish();
  // s}1 comes back: what its ring holds, then new traffic.
  nmport_d* s1 = nmport_open("netmap:s}1");
  ASSERT_NE(s1, nullptr);
  const size_t held = drain(s1, ~size_t(0), 3000).size();
  got_t0 += drain(t0, ~size_t(0), 3000).size();
  send_all(in, frames);
  // What a drain leaves (it ends on 200-300 ms of quiet: a stall of lb)
  // the next one of that pipe reads; these last ones wait a second.
  const size_t again = drain(s1, ~size_t(0), 5000).size();
  got_s0 += drain(s0, ~size_t(0), 5000, 1000).size();
  got_t0 += drain(t0, ~size_t(0), 5000, 1000).size();
  ASSERT_EQ(lb.stop(SIGTERM), 0) << lb.err();
  const std::string& out = lb.out();
  EXPECT_EQ(json_field(out, "", "received"), (long long)(sent + frames.size()));
  EXPECT_EQ(json_field(out, "s}0", "drops"), 0);
  EXPECT_EQ(json_field(out, "s}0", "revoked"), 0);
  EXPECT_EQ((long long)got_s0, json_field(out, "s}0", "packets"));
  if (bufs) {
    EXPECT_GT(json_field(out, "s}1", "revoked"), 0);  // it stalled: its oldest gave way
  } else {
    EXPECT_GT(json_field(out, "s}1", "drops"), 0);  // it stalled: no room
    EXPECT_EQ(json_field(out, "s}1", "revoked"), 0);
  }
  EXPECT_GT(held, 0u);
  EXPECT_GT(again, 0u);  // it resumed
  // t}0 lost only what was revoked from s}1's queue.
  EXPECT_EQ((long long)got_t0, (long long)(sent + frames.size()) - json_field(out, "s}1", "revoked"));
  EXPECT_EQ(json_field(out, "t}0", "drops"), 0);
  nmport_close(s0);
  nmport_close(s1);
  nmport_close(t0);
  nmport_close(in);
}
INSTANTIATE_TEST_SUITE_P(ExtraBuffers, LbStall, ::testing::Values(0, 256),
                         [](const ::testing::TestParamInfo<int>& i) { return "B" + std::to_string(i.param); });

// Send one packet as a chain: frags[k] in slot k, NS_MOREFRAG but on the
// last (and on the last too unless ends: a chain still to be continued).
void send_chain(nmport_d* d, const std::vector<std::vector<uint8_t>>& frags, bool ends = true) {
  netmap_ring* t = NETMAP_TXRING(d->nifp, d->first_tx_ring);
  ASSERT_GE(nm_ring_space(t), frags.size());
  for (size_t k = 0; k < frags.size(); k++) {
    netmap_slot& s = t->slot[t->cur];
    memcpy(NETMAP_BUF(t, s.buf_idx), frags[k].data(), frags[k].size());
    s.len = uint16_t(frags[k].size());
    s.flags = k + 1 < frags.size() || !ends ? NS_MOREFRAG : 0;
    t->head = t->cur = nm_ring_next(t, t->cur);
  }
  ioctl(d->fd, NIOCTXSYNC, nullptr);
}

// Packets (chains joined) that arrive on d within ms, until quiet.
std::vector<std::vector<uint8_t>> drain_packets(nmport_d* d, int ms, size_t* chains = nullptr, int quiet_ms = 300) {
  std::vector<std::vector<uint8_t>> got;
  std::vector<uint8_t> cur;
  bool in_chain = false;
  const double end = now_ms() + ms;
  double last = now_ms();
  while (now_ms() < end && now_ms() - last < quiet_ms) {
    pollfd p{d->fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    netmap_ring* r = NETMAP_RXRING(d->nifp, d->first_rx_ring);
    for (; !nm_ring_empty(r); r->head = r->cur = nm_ring_next(r, r->cur)) {
      const netmap_slot& s = r->slot[r->cur];
      const uint8_t* b = reinterpret_cast<const uint8_t*>(NETMAP_BUF(r, s.buf_idx));
      cur.insert(cur.end(), b, b + s.len);
      if (s.flags & NS_MOREFRAG) {
        in_chain = true;
        continue;
      }
      if (in_chain && chains) (*chains)++;
      in_chain = false;
      got.push_back(cur);
      cur.clear();
      last = now_ms();
    }
  }
  ioctl(d->fd, NIOCRXSYNC, nullptr);
  return got;
}

// A consumer that releases part of a chain: the chain moves on to the next
// group whole, once the rest is released, and no slot of it is reused
// meanwhile; 1022 packets behind it (more than the ring has room for)
// reach the next group each once.
TEST(Lb, AChainReleasedInPartMovesOnWhole) {
  Lb lb({"-i", "netmap:lbin}0", "-p", "a:1", "-p", "b:1"});
  ASSERT_TRUE(lb.ready) << lb.err();
  nmport_d* a = nmport_open("netmap:a}0");
  nmport_d* b = nmport_open("netmap:b}0");
  nmport_d* in = nmport_open("netmap:lbin{0");
  ASSERT_TRUE(a && b && in);
  FrameSpec spec;
  spec.proto = 17;
  const std::vector<uint8_t> whole = tagged(spec, 7777);  // 102 bytes
  const std::vector<std::vector<uint8_t>> frags = {{whole.begin(), whole.begin() + 60},
                                                   {whole.begin() + 60, whole.begin() + 80},
                                                   {whole.begin() + 80, whole.end()}};
  send_chain(in, frags);
  // a}0 takes the chain's first two slots only.
  netmap_ring* ar = NETMAP_RXRING(a->nifp, a->first_rx_ring);
  const double end = now_ms() + 5000;
  while (nm_ring_space(ar) < 3 && now_ms() < end) {
    pollfd p{a->fd, POLLIN, 0};
    poll(&p, 1, 50);
  }
  ASSERT_GE(nm_ring_space(ar), 3u);
  ar->head = ar->cur = nm_ring_next(ar, nm_ring_next(ar, ar->cur));
  ioctl(a->fd, NIOCRXSYNC, nullptr);
  std::vector<std::vector<uint8_t>> singles;
  for (uint32_t k = 0; k < 1022; k++) singles.push_back(tagged(spec, k));
  send_all(in, singles);
  // Nothing of a}0's ring moves on while the chain's end is held; singles
  // a}0 had no room for go to b}0 (dropped for a}0 only).
  size_t chains = 0;
  std::vector<std::vector<uint8_t>> at_b = drain_packets(b, 2000, &chains);
  EXPECT_EQ(chains, 0u);
  for (const auto& f : at_b) EXPECT_NE(id_of(f.data(), uint32_t(f.size())), 7777u);
  // a}0 releases the rest and reads everything; all moves on to b}0 (its
  // every frame due: a second of quiet ends the wait).
  const auto at_a = drain_packets(a, 3000);
  const auto later = drain_packets(b, 5000, &chains, 1000);
  at_b.insert(at_b.end(), later.begin(), later.end());
  EXPECT_EQ(chains, 1u);
  std::map<uint32_t, int> seen;
  for (const auto& f : at_b) {
    const uint32_t id = id_of(f.data(), uint32_t(f.size()));
    seen[id]++;
    if (id == 7777) {
      EXPECT_EQ(f, whole) << "the chain changed";
    } else if (id < singles.size()) {
      EXPECT_EQ(f, singles[id]) << "frame " << id << " changed";
    }
  }
  EXPECT_EQ(seen.size(), singles.size() + 1);
  for (const auto& [id, n] : seen) EXPECT_EQ(n, 1) << "frame " << id;
  ASSERT_EQ(lb.stop(SIGTERM), 0) << lb.err();
  // a}0 dropped every single it did not get (counted from what it read,
  // not from what b}0 had by the first drain's end: a stall moves that).
  // Its first packet is the chain's held end, 22 bytes.
  size_t singles_at_a = 0;
  for (const auto& f : at_a) singles_at_a += f.size() == whole.size() && id_of(f.data(), uint32_t(f.size())) != 7777u;
  EXPECT_EQ(json_field(lb.out(), "a}0", "drops"), (long long)(singles.size() - singles_at_a));
  nmport_close(a);
  nmport_close(b);
  nmport_close(in);
}

// A chain whose end never comes does not spin lb; a pipe of the input's
// own name as a group is refused (it would feed lb its own output).
TEST(Lb, AnUnfinishedChainDoesNotSpinAndTheInputIsNoOutput) {
  Lb lb({"-i", "netmap:lbin}0", "-p", "c:1"});
  ASSERT_TRUE(lb.ready) << lb.err();
  nmport_d* in = nmport_open("netmap:lbin{0");
  ASSERT_NE(in, nullptr);
  FrameSpec spec;
  const std::vector<uint8_t> head = tagged(spec, 1);
  send_chain(in, {head}, false);
  usleep(200000);  // lb sees the chain's start
  const auto ticks = [&] {
    std::ifstream f("/proc/" + std::to_string(lb.pid()) + "/stat");
    std::string w;
    long long v = 0;
    for (int k = 1; k <= 15 && f >> w; k++)
      if (k == 14 || k == 15) v += atoll(w.c_str());
    return v;
  };
  const long long t0 = ticks();
  usleep(1000000);
  EXPECT_LT(ticks() - t0, 30) << "lb spun while a chain was unfinished";
  ASSERT_EQ(lb.stop(SIGTERM), 0) << lb.err();
  nmport_close(in);
  for (const char* g : {"2", "lbin:2"}) {
    Proc p({LB_BIN, "-i", "netmap:lbin}0", "-p", g});
    EXPECT_NE(p.finish(), 0) << g;
    EXPECT_NE(p.err().find("the input is a pipe of lbin"), std::string::npos) << p.err();
  }
}

// kill -9 of lb mid-traffic: its consumers keep their pipes, and a new lb
// (busy-polling, small batches) on the same names serves them again.
TEST(Lb, KilledLbIsReplacedAndConsumersKeepTheirPipes) {
  std::vector<uint32_t> flow;
  const auto frames = mixed_frames(100, &flow);
  auto lb = std::make_unique<Lb>(std::vector<std::string>{"-i", "netmap:lbin}0", "-p", "k:2"});
  ASSERT_TRUE(lb->ready) << lb->err();
  nmport_d* k0 = nmport_open("netmap:k}0");
  nmport_d* k1 = nmport_open("netmap:k}1");
  nmport_d* in = nmport_open("netmap:lbin{0");
  ASSERT_TRUE(k0 && k1 && in);
  send_all(in, frames);
  size_t got = drain(k0, frames.size(), 3000).size() + drain(k1, frames.size(), 3000).size();
  EXPECT_EQ(got, frames.size());
  send_all(in, frames);  // in flight when lb dies
  kill(lb->pid(), SIGKILL);
  lb->finish();
  lb = std::make_unique<Lb>(std::vector<std::string>{"-i", "netmap:lbin}0", "-p", "k:2", "-W", "-b", "16"});
  ASSERT_TRUE(lb->ready) << lb->err();
  drain(k0, ~size_t(0), 1000);  // what the first lb had put there
  drain(k1, ~size_t(0), 1000);
  send_all(in, frames);
  got = drain(k0, frames.size(), 3000).size() + drain(k1, frames.size(), 3000).size();
  EXPECT_GE(got, frames.size());  // and the ones the first lb left in the input ring
  ASSERT_EQ(lb->stop(SIGTERM), 0) << lb->err();
  EXPECT_EQ(json_field(lb->out(), "k}0", "drops") + json_field(lb->out(), "k}1", "drops"), 0);
  nmport_close(k0);
  nmport_close(k1);
  nmport_close(in);
}

// A VALE port as the input and no group name: the groups are named after
// the port, its colon made _ (a pipe name has none): vale3_in{0, vale3_in{1.
TEST(Lb, AValeInputNamesItsDefaultGroup) {
  Lb lb({"-i", "vale3:in"});
  ASSERT_TRUE(lb.ready) << lb.err();
  nmport_d* p0 = nmport_open("netmap:vale3_in}0");
  nmport_d* p1 = nmport_open("netmap:vale3_in}1");
  nmport_d* in = nmport_open("vale3:src");
  ASSERT_TRUE(p0 && p1 && in);
  // A hub: frames of both directions come from one port, which a learning
  // switch would not send back the way they came.
  ASSERT_EQ(unetmap_switch_set_lookup("vale3", "hub"), 0) << unetmap_last_error();
  std::vector<uint32_t> flow;
  const auto frames = mixed_frames(20, &flow);
  send_all(in, frames);
  const size_t got = drain(p0, frames.size(), 3000, 300).size() + drain(p1, frames.size(), 3000, 300).size();
  EXPECT_EQ(got, frames.size());
  ASSERT_EQ(lb.stop(SIGTERM), 0) << lb.err();
  nmport_close(p0);
  nmport_close(p1);
  nmport_close(in);
}

TEST(Lb, FortyPipesAllCarryFlows) {
  Lb lb({"-i", "netmap:lbin}0", "-p", "m:40"});
  ASSERT_TRUE(lb.ready) << lb.err();
  std::vector<nmport_d*> m;
  for (int k = 0; k < 40; k++) {
    m.push_back(nmport_open(("netmap:m}" + std::to_string(k)).c_str()));
    ASSERT_NE(m.back(), nullptr) << k;
  }
  nmport_d* in = nmport_open("netmap:lbin{0");
  ASSERT_NE(in, nullptr);
  std::vector<uint32_t> flow;
  const auto frames = mixed_frames(200, &flow);
  send_all(in, frames);
  size_t total = 0, used = 0;
  for (const auto& got : drain_group(m, frames.size())) {
    total += got.size();
    used += !got.empty();
  }
  EXPECT_EQ(total, frames.size());
  EXPECT_GE(used, 35u);
  ASSERT_EQ(lb.stop(SIGTERM), 0) << lb.err();
  for (nmport_d* d : m) nmport_close(d);
  nmport_close(in);
}

TEST(Lb, BadCommandLinesGetOneClearLine) {
  const struct {
    std::vector<std::string> args;
    const char* says;
  } cases[] = {
      {{}, "no input port (-i PORT)"},
      {{"-i", "netmap:x}0", "-p", "0"}, "-p 0: a number in 1..4096"},
      {{"-i", "netmap:x}0", "-p", "bad/name:2"}, "a group's name is 1..48 letters"},
      {{"-i", "netmap:x}0", "-p", "a:3000", "-p", "b:3000"}, "6000 pipes: at most 4096"},
      {{"-i", "netmap:x}0", "-B", "-1"}, "-B -1: a number in"},
      {{"-i", "netmap:x}0", "-b", "lots"}, "-b lots: a number in"},
      {{"-i", "netmap:x}0", "extra"}, "unexpected argument 'extra'"},
      {{"-i", "netmap:x}0", "-p", "a:"}, "-p : a number in"},
      {{"-i", "nosuchport:zz"}, "lb: cannot open nosuchport:zz"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> a = c.args;
    a.insert(a.begin(), LB_BIN);
    Proc p(a);
    const int rc = p.finish();
    EXPECT_NE(rc, 0) << c.says;
    EXPECT_NE(p.err().find(c.says), std::string::npos) << p.err();
    EXPECT_EQ(std::count(p.err().begin(), p.err().end(), '\n'), 1) << p.err();
  }
  Proc h({LB_BIN, "--help"});
  EXPECT_EQ(h.finish(), 0);
  EXPECT_NE(h.out().find("usage: lb -i PORT"), std::string::npos);
}

}  // namespace
