// netmap pipes: data integrity across processes, zero copy, several pipes
// and ring pairs, opening order, packets waiting for a receiver, and the
// one-slot-empty rule.
//
// The transfers run the sender and the receiver as separate programs
// (tests/helpers/nm_peer.cc, fork + exec), so they share nothing but what
// unetmap itself shares. Every packet is checked byte by byte.
#include <gtest/gtest.h>
#include <sys/time.h>

#include <algorithm>
#include <string>
#include <vector>

#include <unetmap/netmap.hpp>

#include "core/registry.h"
#include "util/pipe_io.h"

namespace {

using nmtest::Child;
using nmtest::Event;
using nmtest::RawPort;

std::string arg(const char* k, long v) { return std::string(k) + "=" + std::to_string(v); }
std::string arg(const char* k, const std::string& v) { return std::string(k) + "=" + v; }

// An nm_peer process. ready_fd/hold_fd are inherited pipe ends (-1: none).
Child peer(const std::string& mode, const std::string& port, uint32_t count, uint32_t seed,
           const std::vector<std::string>& extra = {}) {
  std::vector<std::string> a = {NM_PEER_PATH, arg("mode", mode), arg("port", port),
                                arg("count", count), arg("seed", seed)};
  a.insert(a.end(), extra.begin(), extra.end());
  return Child::exec(a);
}

// 60..2048 bytes, every 5th packet 2049..6000 (two or three slots).
const std::vector<std::string> kMixedLengths = {"min=60", "max=2048", "big_every=5",
                                                "big_min=2049", "big_max=6000"};

TEST(Pipe, ThousandsOfPacketsAcrossProcesses) {
  Child rx = peer("recv", "netmap:pa}0", 20000, 42, kMixedLengths);
  Child tx = peer("send", "netmap:pa{0", 20000, 42, kMixedLengths);
  EXPECT_EQ(tx.wait(30000), 0) << "sender failed (see its stderr)";
  EXPECT_EQ(rx.wait(30000), 0) << "receiver failed (see its stderr)";
}

TEST(Pipe, MultiSlotPacketsOfThreeThousandBytes) {
  // Every packet is 3000 bytes: two 2048-byte buffers, NS_MOREFRAG on the
  // first. The receiver reassembles and checks each byte.
  std::vector<std::string> x = {"min=3000", "max=3000"};
  Child rx = peer("recv", "netmap:mf}0", 5000, 3, x);
  Child tx = peer("send", "netmap:mf{0", 5000, 3, x);
  EXPECT_EQ(tx.wait(30000), 0);
  EXPECT_EQ(rx.wait(30000), 0);
}

TEST(Pipe, ZeroCopyReceiverGetsTheSendersBuffers) {
  RawPort m("zc{0"), s("zc}0");
  ASSERT_TRUE(m.ok() && s.ok()) << strerror(m.err ? m.err : s.err);
  netmap_ring* tx = m.tx();
  netmap_ring* rx = s.rx();
  std::vector<uint32_t> sent_idx;
  for (int i = 0; i < 8; i++) {
    netmap_slot& sl = tx->slot[tx->cur];
    sent_idx.push_back(sl.buf_idx);
    memset(NETMAP_BUF(tx, sl.buf_idx), 'a' + i, 100);
    sl.len = 100;
    sl.flags = 0;
    tx->head = tx->cur = nm_ring_next(tx, tx->cur);
  }
  ASSERT_EQ(m.txsync(), 0) << strerror(errno);
  // The in-flight buffers are not the sender's to write until released.
  EXPECT_EQ(nm_ring_space(tx), 1023u - 8);
  ASSERT_EQ(s.rxsync(), 0);
  ASSERT_EQ(nm_ring_space(rx), 8u);
  for (int i = 0; i < 8; i++) {
    const netmap_slot& sl = rx->slot[(rx->cur + i) % rx->num_slots];
    EXPECT_EQ(sl.buf_idx, sent_idx[i]) << "rx slot " << i << " is not the sender's buffer";
    EXPECT_FALSE(sl.flags & NS_MOREFRAG);
    EXPECT_EQ(sl.len, 100);
    EXPECT_EQ(NETMAP_BUF(rx, sl.buf_idx)[99], 'a' + i);
  }
  // Both ends map the same region: one buffer, one address in each.
  EXPECT_EQ(m.reg.nr_mem_id, s.reg.nr_mem_id);
  rx->head = rx->cur = (rx->cur + 8) % rx->num_slots;
  ASSERT_EQ(s.rxsync(), 0);
  ASSERT_EQ(m.txsync(), 0);
  EXPECT_EQ(nm_ring_space(tx), 1023u) << "released buffers must come back to the sender";
}

// A pipe's tx ring and the other end's rx ring describe one set of buffers
// (as in netmap): after any amount of traffic, each rx ring holds exactly
// the buffers of the peer's tx ring, and the two tx rings share none.
TEST(Pipe, PairedRingsShareOneSetOfBuffers) {
  RawPort m("uq{0", NR_REG_ALL_NIC, 0, 0, 64), s("uq}0");
  ASSERT_TRUE(m.ok() && s.ok());
  nmtest::PktSpec spec;
  for (uint32_t seq = 0; seq < 500; seq++) {
    RawPort& a = seq % 2 ? m : s;
    RawPort& b = seq % 2 ? s : m;
    ASSERT_EQ(a.txsync(), 0);
    while (nm_ring_space(a.tx()) > 0) nmtest::put_pkt(a.tx(), spec, seq, 0);
    ASSERT_EQ(a.txsync(), 0);
    ASSERT_EQ(b.rxsync(), 0);
    netmap_ring* r = b.rx();
    r->head = r->cur = r->tail;  // consume all
    ASSERT_EQ(b.rxsync(), 0);
  }
  auto bufs = [](netmap_ring* r) {
    std::vector<uint32_t> v;
    for (uint32_t i = 0; i < r->num_slots; i++) v.push_back(r->slot[i].buf_idx);
    std::sort(v.begin(), v.end());
    return v;
  };
  std::vector<uint32_t> mt = bufs(m.tx()), st = bufs(s.tx());
  EXPECT_EQ(std::adjacent_find(mt.begin(), mt.end()), mt.end()) << "a buffer is in two slots";
  EXPECT_EQ(std::adjacent_find(st.begin(), st.end()), st.end()) << "a buffer is in two slots";
  std::vector<uint32_t> both;
  std::set_intersection(mt.begin(), mt.end(), st.begin(), st.end(), std::back_inserter(both));
  EXPECT_TRUE(both.empty()) << both.size() << " buffers belong to both tx rings";
  EXPECT_EQ(bufs(s.rx()), mt) << "slave rx ring and master tx ring disagree";
  EXPECT_EQ(bufs(m.rx()), st) << "master rx ring and slave tx ring disagree";
}

// netmap stamps ring->ts at every rxsync (tcpdump and libpcap print it),
// not only with NR_TIMESTAMP; UNETMAP_NO_TIMESTAMP=1 is netmap's
// no_timestamp knob (read once per process: tried in a child).
TEST(Pipe, EveryRxsyncStampsTheRing) {
  RawPort tx("ts{0"), rx("ts}0");
  ASSERT_TRUE(tx.ok() && rx.ok());
  nmtest::PktSpec spec;
  timeval last{};
  for (uint32_t seq = 0; seq < 3; seq++) {
    nmtest::put_pkt(tx.tx(), spec, seq, 0);
    ASSERT_EQ(tx.txsync(), 0);
    timeval before;
    gettimeofday(&before, nullptr);
    ASSERT_EQ(rx.rxsync(), 0);
    timeval after, ts = rx.rx()->ts;
    gettimeofday(&after, nullptr);
    EXPECT_FALSE(timercmp(&ts, &before, <)) << "seq " << seq << ": ts " << ts.tv_sec << "." << ts.tv_usec;
    EXPECT_FALSE(timercmp(&ts, &after, >)) << "seq " << seq;
    EXPECT_FALSE(timercmp(&ts, &last, <)) << "seq " << seq << ": time went back";
    last = ts;
    rx.rx()->head = rx.rx()->cur = rx.rx()->tail;
  }
  Child off([] {
    setenv("UNETMAP_NO_TIMESTAMP", "1", 1);
    RawPort t("ts2{0"), r("ts2}0");
    if (!t.ok() || !r.ok()) return 2;
    nmtest::PktSpec spec;
    nmtest::put_pkt(t.tx(), spec, 0, 0);
    if (t.txsync() != 0 || r.rxsync() != 0 || nm_ring_space(r.rx()) != 1) return 3;
    if (r.rx()->ts.tv_sec != 0 || r.rx()->ts.tv_usec != 0) return 4;
    r.rx()->flags |= NR_TIMESTAMP;  // forces it
    if (r.rxsync() != 0 || r.rx()->ts.tv_sec == 0) return 5;
    return 0;
  });
  EXPECT_EQ(off.wait(10000), 0);
}

// The classic zero-copy forwarder: take a packet from one pipe's rx ring,
// swap its buffer with a free tx slot of another pipe (NS_BUF_CHANGED on
// both slots), sync. The final receiver reads the first sender's buffer,
// and every ring still describes distinct buffers afterwards.
TEST(Pipe, ZeroCopyForwardingBySwappingBuffers) {
  RawPort a("fa{0", NR_REG_ALL_NIC, 0, 0, 128), fa("fa}0");
  RawPort fb("fb{0", NR_REG_ALL_NIC, 0, 0, 128), b("fb}0");
  ASSERT_TRUE(a.ok() && fa.ok() && fb.ok() && b.ok());
  nmtest::PktSpec spec;
  uint32_t sent = 0, got = 0;
  std::vector<uint8_t> pkt;
  for (int round = 0; round < 40; round++) {
    std::vector<uint32_t> idx;  // buffers as filled by the first sender
    while (nm_ring_space(a.tx()) > 0 && idx.size() < 50) {
      idx.push_back(a.tx()->slot[a.tx()->cur].buf_idx);
      nmtest::put_pkt(a.tx(), spec, sent++, 0);
    }
    ASSERT_EQ(a.txsync(), 0);
    // Forward: swap rx slot of fa}0 with tx slot of fb{0.
    ASSERT_EQ(fa.rxsync(), 0);
    ASSERT_EQ(fb.txsync(), 0);
    netmap_ring* in = fa.rx();
    netmap_ring* out = fb.tx();
    ASSERT_EQ(nm_ring_space(in), idx.size());
    ASSERT_GE(nm_ring_space(out), idx.size());
    while (!nm_ring_empty(in)) {
      netmap_slot& rs = in->slot[in->cur];
      netmap_slot& ts = out->slot[out->cur];
      std::swap(rs.buf_idx, ts.buf_idx);
      ts.len = rs.len;
      ts.flags = NS_BUF_CHANGED | (rs.flags & NS_MOREFRAG);
      rs.flags = NS_BUF_CHANGED;
      in->head = in->cur = nm_ring_next(in, in->cur);
      out->head = out->cur = nm_ring_next(out, out->cur);
    }
    ASSERT_EQ(fb.txsync(), 0);
    ASSERT_EQ(fa.rxsync(), 0);
    // The final receiver.
    ASSERT_EQ(b.rxsync(), 0);
    netmap_ring* rx = b.rx();
    ASSERT_EQ(nm_ring_space(rx), idx.size());
    for (uint32_t k = 0; k < idx.size(); k++) {
      uint32_t n, first;
      bool ch;
      ASSERT_TRUE(nmtest::peek_pkt(rx, &pkt, &n, &ch, &first));
      ASSERT_EQ(nmtest::check_pkt(spec, pkt, got, 0), "");
      EXPECT_EQ(first, idx[k]) << "the forwarded packet was copied, not passed on";
      EXPECT_TRUE(rx->slot[rx->cur].flags & NS_BUF_CHANGED)
          << "a buffer swapped in by the sender must reach the receiver with NS_BUF_CHANGED";
      rx->head = rx->cur = nm_ring_next(rx, rx->cur);
      got++;
    }
    ASSERT_EQ(b.rxsync(), 0);
  }
  EXPECT_EQ(got, sent);
  // No buffer is described by two slots that are not a tx/rx pair.
  std::vector<uint32_t> all;
  for (RawPort* p : {&a, &fa, &fb, &b})
    for (uint32_t i = 0; i < 128; i++) all.push_back(p->tx()->slot[i].buf_idx);
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end())
      << "after forwarding, two tx slots share a buffer";
}

TEST(Pipe, SeveralPipesAtOnce) {
  // Three senders, each on its own pipe; this process receives from the
  // three slave ends in one poll loop.
  constexpr int kPipes = 3;
  constexpr uint32_t kCount = 3000;
  std::vector<RawPort> slaves(kPipes);
  for (int i = 0; i < kPipes; i++)
    ASSERT_TRUE(slaves[i].open(("mp" + std::to_string(i) + "}0").c_str())) << strerror(errno);
  std::vector<Child> tx;
  for (int i = 0; i < kPipes; i++)
    tx.push_back(peer("send", "netmap:mp" + std::to_string(i) + "{0", kCount, 100 + i,
                      kMixedLengths));
  nmtest::PktSpec spec;
  spec.big_every = 5;
  std::vector<uint32_t> got(kPipes, 0);
  std::vector<uint8_t> pkt;
  const double end = nmtest::now_ms() + 30000;
  uint32_t total = 0;
  while (total < kPipes * kCount && nmtest::now_ms() < end) {
    pollfd p[kPipes];
    for (int i = 0; i < kPipes; i++) p[i] = {slaves[i].fd, POLLIN, 0};
    int rc = poll(p, kPipes, 5000);
    ASSERT_GT(rc, 0) << "poll timed out with " << total << " packets";
    for (int i = 0; i < kPipes; i++) {
      if (!(p[i].revents & POLLIN)) continue;
      spec.seed = 100 + i;
      netmap_ring* r = slaves[i].rx();
      uint32_t nslots, first;
      bool changed;
      while (!nm_ring_empty(r) && nmtest::peek_pkt(r, &pkt, &nslots, &changed, &first)) {
        std::string e = nmtest::check_pkt(spec, pkt, got[i], 0);
        ASSERT_TRUE(e.empty()) << "pipe " << i << ": " << e;
        uint32_t c = r->cur;
        for (uint32_t k = 0; k < nslots; k++) c = nm_ring_next(r, c);
        r->head = r->cur = c;
        got[i]++;
        total++;
      }
    }
  }
  for (int i = 0; i < kPipes; i++) {
    EXPECT_EQ(got[i], kCount) << "pipe " << i;
    EXPECT_EQ(tx[i].wait(10000), 0) << "sender " << i;
  }
}

TEST(Pipe, FourRingPairsKeepPerRingOrder) {
  // Packet seq goes on ring seq % 4; the receiver checks that each rx ring
  // gets exactly its share, in order, and that the ring field matches.
  Child rx = peer("recv", "netmap:mr}0@conf:rings=4", 8000, 9, kMixedLengths);
  Child tx = peer("send", "netmap:mr{0@conf:rings=4", 8000, 9, kMixedLengths);
  EXPECT_EQ(tx.wait(30000), 0);
  EXPECT_EQ(rx.wait(30000), 0);
}

TEST(Pipe, RingPairsAreIndependent) {
  // Tx ring i feeds rx ring i of the other end and nothing else.
  RawPort m("ri{0", NR_REG_ALL_NIC, 0, 0, 0, 4), s("ri}0");
  ASSERT_TRUE(m.ok() && s.ok()) << strerror(errno);
  ASSERT_EQ(m.nifp->ni_tx_rings, 4u);
  ASSERT_EQ(s.nifp->ni_rx_rings, 4u);  // the geometry is the pipe's
  nmtest::PktSpec spec;
  for (unsigned r = 0; r < 4; r++)
    for (unsigned k = 0; k <= r; k++) nmtest::put_pkt(m.tx(r), spec, k, r);
  ASSERT_EQ(m.txsync(), 0);
  ASSERT_EQ(s.rxsync(), 0);
  for (unsigned r = 0; r < 4; r++) {
    EXPECT_EQ(nm_ring_space(s.rx(r)), r + 1) << "rx ring " << r;
    std::vector<uint8_t> pkt;
    uint32_t n, first;
    bool ch;
    ASSERT_TRUE(nmtest::peek_pkt(s.rx(r), &pkt, &n, &ch, &first));
    EXPECT_EQ(nmtest::check_pkt(spec, pkt, 0, r), "");
  }
}

TEST(Pipe, OneRingRegistrationSyncsOnlyThatRing) {
  RawPort all("or{0", NR_REG_ALL_NIC, 0, 0, 0, 4);
  ASSERT_TRUE(all.ok());
  RawPort one("or}0", NR_REG_ONE_NIC, 2);
  ASSERT_TRUE(one.ok()) << strerror(one.err);
  EXPECT_EQ(one.nifp->ni_tx_rings, 4u);  // all rings counted, one bound
  for (unsigned r = 0; r < 4; r++) {       // as netmap: no offset to an unbound ring
    EXPECT_EQ(one.nifp->ring_ofs[r] != 0, r == 2) << "tx ring " << r;
    EXPECT_EQ(one.nifp->ring_ofs[4 + r] != 0, r == 2) << "rx ring " << r;
  }
  nmtest::PktSpec spec;
  nmtest::put_pkt(one.tx(2), spec, 0, 2);
  ASSERT_EQ(one.txsync(), 0);
  ASSERT_EQ(all.rxsync(), 0);
  EXPECT_EQ(nm_ring_space(all.rx(0)), 0u) << "ring 0 is not bound but was synced";
  EXPECT_EQ(nm_ring_space(all.rx(2)), 1u);
  // And poll on the one-ring fd looks at ring 2 only.
  nmtest::put_pkt(all.tx(1), spec, 0, 1);
  ASSERT_EQ(all.txsync(), 0);
  EXPECT_EQ(one.poll(POLLIN, 0), 0) << "ring 1 is not bound but made poll ready";
  nmtest::put_pkt(all.tx(2), spec, 0, 2);
  ASSERT_EQ(all.txsync(), 0);
  short rev = 0;
  EXPECT_EQ(one.poll(POLLIN, 1000, &rev), 1);
  EXPECT_TRUE(rev & POLLIN);
}

// Opening order: the first opener creates both ends; the transfer works
// whichever end comes first, each end in its own process.
void transfer_with_first(const char* first_mode) {
  Event ready;
  const bool send_first = std::string(first_mode) == "send";
  std::vector<std::string> x = kMixedLengths;
  x.push_back(arg("ready_fd", ready.write_fd()));
  Child first = peer(first_mode, send_first ? "netmap:ord{0" : "netmap:ord}0", 3000, 5, x);
  ASSERT_EQ(ready.wait(10000), 'o') << "first end did not open";
  Child second = peer(send_first ? "recv" : "send", send_first ? "netmap:ord}0" : "netmap:ord{0",
                      3000, 5, kMixedLengths);
  EXPECT_EQ(first.wait(30000), 0);
  EXPECT_EQ(second.wait(30000), 0);
}

TEST(Pipe, SlaveOpenedBeforeMaster) { transfer_with_first("recv"); }
TEST(Pipe, MasterOpenedBeforeSlave) { transfer_with_first("send"); }

TEST(Pipe, PacketsWaitInRxRingUntilReceiverOpens) {
  // The sender sends 100 packets before any receiver exists and keeps the
  // pipe open; the receiver then opens and finds all of them at once.
  Event ready, hold;
  Child tx = peer("send", "netmap:wt{0", 100, 77,
                  {arg("ready_fd", ready.write_fd()), arg("hold_fd", hold.read_fd())});
  ASSERT_EQ(ready.wait(10000), 'o');
  ASSERT_EQ(ready.wait(10000), 'd') << "sender did not finish";
  RawPort s("wt}0");
  ASSERT_TRUE(s.ok()) << strerror(s.err);
  netmap_ring* rx = s.rx();
  EXPECT_EQ(nm_ring_space(rx), 100u) << "packets sent before the open are not there";
  ASSERT_EQ(s.rxsync(), 0);
  ASSERT_EQ(nm_ring_space(rx), 100u);
  nmtest::PktSpec spec;
  spec.seed = 77;
  std::vector<uint8_t> pkt;
  for (uint32_t seq = 0; seq < 100; seq++) {
    uint32_t n, first;
    bool ch;
    ASSERT_TRUE(nmtest::peek_pkt(rx, &pkt, &n, &ch, &first));
    ASSERT_EQ(nmtest::check_pkt(spec, pkt, seq, 0), "");
    rx->head = rx->cur = nm_ring_next(rx, rx->cur);
  }
  EXPECT_TRUE(nm_ring_empty(rx));
  hold.signal();
  EXPECT_EQ(tx.wait(10000), 0);
}

TEST(Pipe, OneSlotAlwaysEmpty) {
  RawPort m("se{0", NR_REG_ALL_NIC, 0, 0, 64), s("se}0");
  ASSERT_TRUE(m.ok() && s.ok());
  netmap_ring* tx = m.tx();
  ASSERT_EQ(tx->num_slots, 64u);
  EXPECT_EQ(nm_ring_space(tx), 63u) << "a fresh ring of N slots offers N-1";
  nmtest::PktSpec spec;
  spec.max = 200;
  uint32_t sent = 0;
  while (nm_ring_space(tx) > 0) nmtest::put_pkt(tx, spec, sent++, 0);
  EXPECT_EQ(sent, 63u);
  ASSERT_EQ(m.txsync(), 0);
  EXPECT_EQ(nm_ring_space(tx), 0u) << "the receiver has not released anything";
  EXPECT_EQ(tx->tail, tx->head);
  EXPECT_EQ(m.poll(POLLOUT, 0), 0) << "full tx ring reported writable";

  ASSERT_EQ(s.rxsync(), 0);
  netmap_ring* rx = s.rx();
  EXPECT_EQ(nm_ring_space(rx), 63u);
  // Release 10 slots: the sender sees exactly 10 free after its next sync.
  rx->head = rx->cur = (rx->cur + 10) % rx->num_slots;
  ASSERT_EQ(s.rxsync(), 0);
  ASSERT_EQ(m.txsync(), 0);
  EXPECT_EQ(nm_ring_space(tx), 10u);
  EXPECT_EQ(m.poll(POLLOUT, 0), 1);
  for (int i = 0; i < 10; i++) nmtest::put_pkt(tx, spec, sent++, 0);
  ASSERT_EQ(m.txsync(), 0);
  EXPECT_EQ(nm_ring_space(tx), 0u);
  ASSERT_EQ(s.rxsync(), 0);
  EXPECT_EQ(nm_ring_space(rx), 63u);
  // The 63 packets in the rx ring are the ones after the 10 released.
  std::vector<uint8_t> pkt;
  uint32_t n, first;
  bool ch;
  ASSERT_TRUE(nmtest::peek_pkt(rx, &pkt, &n, &ch, &first));
  EXPECT_EQ(nmtest::check_pkt(spec, pkt, 10, 0), "");
}

TEST(Pipe, DefaultRingHas1024SlotsAnd1023Usable) {
  RawPort m("df{0");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m.reg.nr_tx_slots, 1024u);
  EXPECT_EQ(m.reg.nr_rx_slots, 1024u);
  EXPECT_EQ(m.reg.nr_tx_rings, 1);
  EXPECT_EQ(m.tx()->num_slots, 1024u);
  EXPECT_EQ(nm_ring_space(m.tx()), 1023u);
  EXPECT_EQ(nm_ring_space(m.rx()), 0u);
  EXPECT_EQ(m.tx()->dir, 0);
  EXPECT_EQ(m.rx()->dir, 1);
  EXPECT_EQ(m.tx()->nr_buf_size, 2048u);
  EXPECT_STREQ(m.nifp->ni_name, "df{0");
  EXPECT_EQ(m.nifp->ni_version, uint32_t(NETMAP_API));
}

TEST(Pipe, ClosingBothEndsDestroysThePipe) {
  {
    RawPort m("cb{0"), s("cb}0");
    ASSERT_TRUE(m.ok() && s.ok());
    nmtest::PktSpec spec;
    nmtest::put_pkt(m.tx(), spec, 0, 0);
    ASSERT_EQ(m.txsync(), 0);
  }
  int err = 0;
  unetmap::Registry* reg = unetmap::Registry::get(&err);
  ASSERT_NE(reg, nullptr);
  {
    unetmap::LockGuard g(reg->lock());
    EXPECT_LT(reg->find_port("cb{0"), 0);
    EXPECT_LT(reg->find_port("cb}0"), 0);
  }
  RawPort s("cb}0");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(nm_ring_space(s.rx()), 0u) << "a recreated pipe must start empty";
}

TEST(Pipe, OneEndClosedKeepsThePipe) {
  RawPort s("ke}0");
  ASSERT_TRUE(s.ok());
  {
    RawPort m("ke{0");
    ASSERT_TRUE(m.ok());
    nmtest::PktSpec spec;
    for (uint32_t i = 0; i < 5; i++) nmtest::put_pkt(m.tx(), spec, i, 0);
    ASSERT_EQ(m.txsync(), 0);
  }  // the sender is gone; its packets are not
  ASSERT_EQ(s.rxsync(), 0);
  EXPECT_EQ(nm_ring_space(s.rx()), 5u);
  // The master can come back and go on.
  RawPort m2("ke{0");
  ASSERT_TRUE(m2.ok());
  EXPECT_EQ(nm_ring_space(m2.tx()), 1023u - 5u);
}

// The C++ API (include/unetmap/netmap.hpp) over the same path.
TEST(Pipe, CxxApiRoundTrip) {
  std::string err;
  unetmap::Port tx = unetmap::Port::open("netmap:cx{0@conf:slots=128,rings=2", &err);
  ASSERT_TRUE(tx) << err;
  unetmap::Port rx = unetmap::Port::open("netmap:cx}0", &err, 1);  // ring 1 only
  ASSERT_TRUE(rx) << err;
  EXPECT_STREQ(tx.name(), "cx{0");
  EXPECT_EQ(tx.reg().nr_tx_slots, 128u);
  EXPECT_EQ(tx.last_tx_ring(), 1u);
  EXPECT_EQ(rx.first_rx_ring(), 1u);
  EXPECT_EQ(rx.last_rx_ring(), 1u);
  unetmap::Ring t = tx.tx_ring(1);
  EXPECT_EQ(t.space(), 127u);
  for (uint32_t i = 0; i < 10; i++) {
    auto& s = t.slot(t.cur());
    auto room = t.room(s);
    ASSERT_EQ(room.size(), 2048u);
    std::fill(room.begin(), room.begin() + 64 + i, uint8_t(i));
    s.len = uint16_t(64 + i);
    s.flags = 0;
    t.advance();
  }
  ASSERT_EQ(tx.txsync(), 0);
  short rev = 0;
  ASSERT_EQ(rx.poll(POLLIN, 1000, &rev), 1);
  EXPECT_TRUE(rev & POLLIN);
  unetmap::Ring r = rx.rx_ring(1);
  ASSERT_EQ(r.space(), 10u);
  for (uint32_t i = 0; i < 10; i++) {
    auto d = r.data(r.slot(r.cur()));
    ASSERT_EQ(d.size(), 64u + i);
    EXPECT_TRUE(std::all_of(d.begin(), d.end(), [i](uint8_t b) { return b == i; })) << i;
    r.advance();
  }
  EXPECT_TRUE(r.empty());
  ASSERT_EQ(rx.rxsync(), 0);
  // inject() copies into the first tx ring with room.
  std::vector<uint8_t> pkt(100, 0xab);
  unetmap::Port tx0 = unetmap::Port::open("netmap:cy{0@conf:slots=64", &err);
  ASSERT_TRUE(tx0) << err;
  int n = 0;
  while (tx0.inject(pkt)) n++;
  EXPECT_EQ(n, 63);
  // Errors come back as text.
  unetmap::Port bad = unetmap::Port::open("netmap:x/q", &err);
  EXPECT_FALSE(bad);
  EXPECT_NE(err.find("flag"), std::string::npos) << err;
  unetmap::Port none = unetmap::Port::open("netmap:nosuchif9", &err);
  EXPECT_FALSE(none);
  EXPECT_NE(err.find("nosuchif9"), std::string::npos) << err;
  // Moving a port moves the ownership.
  unetmap::Port moved = std::move(tx);
  EXPECT_TRUE(moved);
  EXPECT_FALSE(tx);
  EXPECT_EQ(moved.txsync(), 0);
}

}  // namespace
