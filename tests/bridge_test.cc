// bridge, run as a real process (the binary the build made) between two
// pipe ends or two VALE ports, with senders and receivers on the other
// ends: every packet arrives intact, in order, and as many as the bridge's
// summary counts per direction. Zero copy within a region (the receiver
// gets the very buffer the sender filled), copy across regions (also
// between regions of different buffer sizes, where packets are cut into
// other slot chains), -c, -v, both signals, and bad command lines.
//
// Synchronisation is on events only: the bridge's "ready" line on stderr,
// the peers' exits, the receivers' poll(); all with deadlines.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "util/pipe_io.h"
#include "util/proc.h"

#ifndef BRIDGE_BIN
#error "BRIDGE_BIN (path of the bridge binary) must be defined by the build"
#endif

using nmtest::Child;
using nmtest::Proc;
using nmtest::Event;
using nmtest::now_ms;

namespace {

std::vector<std::string> bridge_args(const std::vector<std::string>& args) {
  std::vector<std::string> a = {BRIDGE_BIN};
  a.insert(a.end(), args.begin(), args.end());
  return a;
}

// A bridge started and ready (its ports open), or a failed test.
struct Bridge : Proc {
  explicit Bridge(const std::vector<std::string>& args) : Proc(bridge_args(args)) {
    ready = wait_for("bridge: ready:", true, 10000);
  }
  bool ready = false;
};

// The key=value fields of the summary line; empty if there is none.
std::map<std::string, std::string> summary(const std::string& out) {
  std::map<std::string, std::string> m;
  std::istringstream in(out);
  for (std::string l; std::getline(in, l);) {
    if (l.rfind("bridge: summary: ", 0) != 0) continue;
    std::istringstream ws(l.substr(17));
    for (std::string w; ws >> w;) {
      size_t eq = w.find('=');
      if (eq != std::string::npos) m[w.substr(0, eq)] = w.substr(eq + 1);
    }
  }
  return m;
}

size_t lines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

std::string kv(const char* k, long v) { return std::string(k) + "=" + std::to_string(v); }

// An nm_peer process (tests/helpers): send or receive `count` checked
// packets. hold: the peer keeps its port open until the event fires.
Child peer(const std::string& mode, const std::string& port, uint32_t count, uint32_t seed,
           bool zero_copy, const Event* hold = nullptr) {
  std::vector<std::string> a = {NM_PEER_PATH,    "mode=" + mode,  "port=" + port,
                                kv("count", count), kv("seed", seed), kv("zc", zero_copy),
                                "min=60",        "max=2048",      "big_every=5",
                                "big_min=2049",  "big_max=6000"};
  if (hold) a.push_back(kv("hold_fd", hold->read_fd()));
  return Child::exec(a);
}

// One side of a two-way exchange, in a child process: open `port`, send
// `count` packets of seed `send_seed`, then receive `count` of seed
// `recv_seed`. Few enough packets that they fit the rings on the way, so
// sending first cannot block on the other side's receiving.
Child exchanger(const std::string& port, uint32_t count, uint32_t send_seed, uint32_t recv_seed) {
  return Child([=] {
    nmport_d* d = nmport_open(port.c_str());
    if (!d) {
      fprintf(stderr, "exchanger: cannot open %s: %s\n", port.c_str(), strerror(errno));
      return 2;
    }
    nmtest::IoOpts o;
    o.count = count;
    o.zero_copy = false;
    o.spec = {send_seed, 60, 2048, 5, 2049, 6000};
    std::string e = nmtest::send_pkts({d->fd, d->nifp, d->first_tx_ring, d->last_tx_ring}, o);
    if (e.empty()) {
      o.spec.seed = recv_seed;
      e = nmtest::recv_pkts({d->fd, d->nifp, d->first_rx_ring, d->last_rx_ring}, o);
    }
    if (!e.empty()) fprintf(stderr, "exchanger %s: %s\n", port.c_str(), e.c_str());
    nmport_close(d);
    return e.empty() ? 0 : 3;
  });
}

// Packets both ways at once between the far ends `a` and `b` of a bridge.
void exchange(const std::string& a, const std::string& b, uint32_t count) {
  Child ca = exchanger(a, count, 11, 22), cb = exchanger(b, count, 22, 11);
  EXPECT_EQ(ca.wait(20000), 0) << "exchange on " << a << " failed (see stderr)";
  EXPECT_EQ(cb.wait(20000), 0) << "exchange on " << b << " failed (see stderr)";
}

}  // namespace

TEST(Bridge, HelpAndUsage) {
  for (const char* h : {"--help", "-h"}) {
    Proc p(bridge_args({h}));
    EXPECT_EQ(p.finish(), 0) << p.show();
    EXPECT_EQ(p.err(), "");
    for (const char* o : {"usage: bridge", "-i PORT1 [-i PORT2]", "-b BATCH", "-w SECONDS", "-c",
                          "-L", "-a CPU", "-v", "--help", "PORT1^", "bridge: summary: a->b="})
      EXPECT_NE(p.out().find(o), std::string::npos) << h << " does not mention " << o << "\n"
                                                    << p.out();
  }
}

TEST(Bridge, BadArgumentsAreRefusedWithOneLine) {
  struct Case {
    std::vector<std::string> args;
    int code;
    std::vector<std::string> words;  // the line names the culprit and the right form
  };
  const std::vector<Case> cases = {
      {{}, 2, {"no port", "-i PORT1"}},
      {{"-v"}, 2, {"no port"}},
      {{"-x"}, 2, {"unknown option '-x'"}},
      {{"--frobnicate"}, 2, {"unknown option '--frobnicate'"}},
      {{"-i"}, 2, {"-i needs an argument"}},
      {{"-i", ""}, 2, {"-i", "empty port name"}},
      {{"-i", "netmap:a}0", "-i", "netmap:b}0", "-i", "netmap:c}0"}, 2, {"-i netmap:c}0", "two ports"}},
      {{"-b", "0", "-i", "netmap:a}0"}, 2, {"-b", "'0'", "1..8192"}},
      {{"-b", "8193", "-i", "netmap:a}0"}, 2, {"-b", "1..8192"}},
      {{"-b", "12x", "-i", "netmap:a}0"}, 2, {"-b", "'12x'"}},
      {{"-w", "101", "-i", "netmap:a}0"}, 2, {"-w", "0..100"}},
      {{"-w", "-1", "-i", "netmap:a}0"}, 2, {"-w", "'-1'"}},
      {{"-a", "cpu", "-i", "netmap:a}0"}, 2, {"-a", "'cpu'"}},
      {{"netmap:a}0", "netmap:b}0", "0"}, 2, {"BATCH", "'0'", "1..8192"}},
      {{"netmap:a}0", "netmap:b}0", "64", "extra"}, 2, {"unexpected argument 'extra'"}},
      // Well formed, but a port does not open: exit 1, the library's reason.
      {{"-i", "netmap:a}0", "-i", "netmap:b}0@frob:1"}, 1, {"cannot open netmap:b}0@frob:1", "frob"}},
      {{"-i", "netmap:a}0", "-i", "bogus"}, 1, {"cannot open bogus"}},
      // One port: its host rings and itself; pipes have no host rings.
      {{"-i", "netmap:a}0"}, 1, {"cannot open netmap:a}0^"}},
  };
  for (const Case& c : cases) {
    Proc p(bridge_args(c.args));
    std::string what = "bridge";
    for (auto& a : c.args) what += " '" + a + "'";
    EXPECT_EQ(p.finish(), c.code) << what << "\n" << p.show();
    EXPECT_EQ(lines(p.err()), 1u) << "want one line of explanation: " << what << "\n" << p.show();
    EXPECT_EQ(p.out(), "") << what;
    for (auto& w : c.words)
      EXPECT_NE(p.err().find(w), std::string::npos) << "want '" << w << "': " << what << "\n"
                                                    << p.show();
  }
}

// Two pipes in the default region: the bridge swaps buffers, so the
// receiver on the far end holds the buffer that the sender filled.
TEST(Bridge, ZeroCopyBetweenPipesOfOneRegion) {
  Bridge br({"-v", "-i", "netmap:ba}0", "-i", "netmap:bb}0"});
  ASSERT_TRUE(br.ready) << br.show();
  EXPECT_NE(br.err().find("zero copy in region 1"), std::string::npos) << br.err();

  const uint32_t n = 20000;
  Event hold;
  Child rx = peer("recv", "netmap:bb{0", n, 5, true);
  Child tx = peer("send", "netmap:ba{0", n, 5, true, &hold);
  EXPECT_EQ(rx.wait(30000), 0) << "receiver failed (see its stderr)";
  hold.signal();
  EXPECT_EQ(tx.wait(10000), 0) << "sender failed (see its stderr)";
  // -v: a rate line once a second, with the packets of that second.
  EXPECT_TRUE(br.wait_for("bridge: a->b ", false, 5000)) << br.show();

  exchange("netmap:ba{0", "netmap:bb{0", 300);

  EXPECT_EQ(br.stop(SIGINT), 0) << br.show();
  auto s = summary(br.out());
  EXPECT_EQ(s["a->b"], std::to_string(n + 300)) << br.show();
  EXPECT_EQ(s["b->a"], "300") << br.show();
  EXPECT_EQ(s["drops"], "0");
  EXPECT_EQ(s["mode"], "zero-copy");
}

// Only NIC ports have a link to wait for: a pcap-file port and a pipe start
// at once (the bridge waited its 4 s for pcap: ports, whose name it did not
// know).
TEST(Bridge, PortsWithoutALinkDoNotWait) {
  const std::string dir = std::string(getenv("UNETMAP_DIR")) + ".pcap";
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  setenv("UNETMAP_PCAP_DIR", dir.c_str(), 1);
  Bridge br({"-i", "pcap:nolink", "-i", "netmap:bw}0"});
  unsetenv("UNETMAP_PCAP_DIR");
  ASSERT_TRUE(br.ready) << br.show();
  EXPECT_EQ(br.err().find("waiting"), std::string::npos) << br.err();
  EXPECT_EQ(br.stop(SIGINT), 0) << br.show();
}

// -c: the same pipes, but every packet copied.
TEST(Bridge, CopyOnRequest) {
  Bridge br({"-c", "-i", "netmap:ca}0", "-i", "netmap:cb}0"});
  ASSERT_TRUE(br.ready) << br.show();
  EXPECT_NE(br.err().find("copy (-c)"), std::string::npos) << br.err();
  const uint32_t n = 5000;
  Event hold;
  Child rx = peer("recv", "netmap:cb{0", n, 7, false);
  Child tx = peer("send", "netmap:ca{0", n, 7, false, &hold);
  EXPECT_EQ(rx.wait(30000), 0) << "receiver failed (see its stderr)";
  hold.signal();
  EXPECT_EQ(tx.wait(10000), 0);
  EXPECT_EQ(br.stop(), 0) << br.show();
  auto s = summary(br.out());
  EXPECT_EQ(s["a->b"], std::to_string(n)) << br.show();
  EXPECT_EQ(s["b->a"], "0");
  EXPECT_EQ(s["mode"], "copy");
}

// Pipes in two regions whose buffers differ in size (2048 and 1024
// bytes): the bridge copies, cutting packets into chains of the other
// ring's buffers, in both directions.
TEST(Bridge, CopyAcrossRegionsOfDifferentBufferSizes) {
  // Region 2 is made here, with small buffers; the bridge makes region 1
  // with the default size. `keep` holds region 2 for the whole test.
  setenv("UNETMAP_BUF_SIZE", "1024", 1);
  nmport_d* keep = nmport_open("netmap:keep{0@2");
  unsetenv("UNETMAP_BUF_SIZE");
  ASSERT_NE(keep, nullptr) << strerror(errno);
  ASSERT_EQ(NETMAP_TXRING(keep->nifp, 0)->nr_buf_size, 1024u);

  Bridge br({"-i", "netmap:xa}0", "-i", "netmap:xb}0@2"});
  ASSERT_TRUE(br.ready) << br.show();
  EXPECT_NE(br.err().find("copy between regions 1 and 2"), std::string::npos) << br.err();

  const uint32_t n = 10000;
  Event hold;
  Child rx = peer("recv", "netmap:xb{0@2", n, 9, false);
  Child tx = peer("send", "netmap:xa{0", n, 9, false, &hold);
  EXPECT_EQ(rx.wait(30000), 0) << "receiver failed (see its stderr)";
  hold.signal();
  EXPECT_EQ(tx.wait(10000), 0);

  exchange("netmap:xa{0", "netmap:xb{0@2", 200);

  EXPECT_EQ(br.stop(), 0) << br.show();
  auto s = summary(br.out());
  EXPECT_EQ(s["a->b"], std::to_string(n + 200)) << br.show();
  EXPECT_EQ(s["b->a"], "200") << br.show();
  EXPECT_EQ(s["mode"], "copy");
  nmport_close(keep);
}

namespace {

// Ethernet frames for the VALE test: broadcast, so that each switch
// floods them to its only other port; the sequence number and a pattern
// after the header.
std::vector<uint8_t> vframe(uint8_t src_id, uint32_t seq) {
  size_t len = 60 + (seq * 37) % 1455;  // 60..1514
  std::vector<uint8_t> f(len);
  memset(f.data(), 0xff, 6);
  const uint8_t src[6] = {0x02, 0, 0, 0, 0, src_id};
  memcpy(f.data() + 6, src, 6);
  f[12] = 0x88, f[13] = 0xb5;
  memcpy(f.data() + 14, &seq, sizeof seq);
  for (size_t i = 18; i < len; i++) f[i] = uint8_t(seq * 13 + i * src_id);
  return f;
}

// Send frames [first, first+count) on d and receive them on e, checked.
std::string vale_round(nmport_d* d, nmport_d* e, uint8_t src_id, uint32_t first, uint32_t count) {
  for (uint32_t s = first; s < first + count; s++) {
    std::vector<uint8_t> f = vframe(src_id, s);
    if (nmport_inject(d, f.data(), f.size()) != int(f.size()))
      return "no room for frame " + std::to_string(s);
  }
  if (ioctl(d->fd, NIOCTXSYNC, nullptr) != 0) return std::string("NIOCTXSYNC: ") + strerror(errno);
  const double end = now_ms() + 10000;
  uint32_t got = 0;
  while (got < count) {
    int left = int(end - now_ms());
    pollfd p{e->fd, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, left) <= 0)
      return "timed out after " + std::to_string(got) + " of " + std::to_string(count) +
             " frames of round " + std::to_string(first);
    netmap_ring* ring = NETMAP_RXRING(e->nifp, e->first_rx_ring);
    while (!nm_ring_empty(ring)) {
      const netmap_slot& sl = ring->slot[ring->cur];
      std::vector<uint8_t> want = vframe(src_id, first + got);
      if (sl.len != want.size() || memcmp(NETMAP_BUF(ring, sl.buf_idx), want.data(), want.size()))
        return "frame " + std::to_string(first + got) + " arrived damaged or out of order";
      ring->head = ring->cur = nm_ring_next(ring, ring->cur);
      if (++got > count) return "more frames than were sent";
    }
  }
  ioctl(e->fd, NIOCRXSYNC, nullptr);
  return {};
}

}  // namespace

// Two VALE switches joined by the bridge: each switch floods what one of
// our ports sends to the bridge's port, which carries it to the other
// switch. VALE ports have regions of their own: copy.
TEST(Bridge, JoinsTwoValeSwitches) {
  Bridge br({"-i", "vale0:a", "-i", "vale1:b", "-b", "64"});
  ASSERT_TRUE(br.ready) << br.show();
  EXPECT_NE(br.err().find("copy between regions"), std::string::npos) << br.err();
  nmport_d* x = nmport_open("vale0:x");
  nmport_d* y = nmport_open("vale1:y");
  ASSERT_NE(x, nullptr);
  ASSERT_NE(y, nullptr);
  // Rounds smaller than a ring: a VALE switch drops what finds its
  // destination ring full, and a round waits for its last frame.
  const uint32_t rounds = 20, per_round = 250;
  for (uint32_t r = 0; r < rounds; r++) {
    ASSERT_EQ(vale_round(x, y, 1, r * per_round, per_round), "") << "x -> y";
    ASSERT_EQ(vale_round(y, x, 2, r * per_round, per_round / 5), "") << "y -> x";
  }
  EXPECT_EQ(br.stop(), 0) << br.show();
  auto s = summary(br.out());
  EXPECT_EQ(s["a->b"], std::to_string(rounds * per_round)) << br.show();
  EXPECT_EQ(s["b->a"], std::to_string(rounds * per_round / 5)) << br.show();
  EXPECT_EQ(s["mode"], "copy");
  nmport_close(x);
  nmport_close(y);
}

// Stopped before any traffic, by either signal: a zero summary, exit 0.
TEST(Bridge, SignalsStopItWithASummary) {
  for (int sig : {SIGINT, SIGTERM}) {
    Bridge br({"-i", "netmap:sa}0", "-i", "netmap:sb}0"});
    ASSERT_TRUE(br.ready) << br.show();
    EXPECT_EQ(br.stop(sig), 0) << br.show();
    auto s = summary(br.out());
    EXPECT_EQ(s["a->b"], "0") << br.show();
    EXPECT_EQ(s["b->a"], "0") << br.show();
    EXPECT_EQ(lines(br.out()), 1u) << br.out();
  }
}
