// VALE switches across processes: learning and flooding, NS_NO_LEARN,
// multi-slot frames, drops on a full ring that never block the sender,
// several rings per port, concurrent senders, senders killed while they
// forward, persistent ports through the API and the NIOCCTRL requests,
// pluggable lookups, and bad input from senders and receivers.
//
// Senders and receivers live in different processes. A Remote
// (util/remote_port.h) is a child process that opens one port with
// nmport_open() and runs the commands the test sends it over a pipe (send a
// frame, receive one with a timeout, ...), so forwarding really runs in one
// process's txsync and lands in another process's mapping.
//
// Nothing sleeps to let something happen. A frame that must NOT arrive is
// checked by sending a later "marker" frame that must arrive, from the same
// sender (its txsync forwards synchronously, in order), and seeing that the
// marker is the first thing in the receiver's queue.
#include "ports/vale/vale.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/registry.h"
#include "mem/region.h"
#include "unetmap/netmap.hpp"
#include "util/remote_port.h"
#include "util/test_util.h"

namespace {

using nmtest::Child;
using nmtest::Event;
using nmtest::mix64;
using nmtest::now_ms;
using nmtest::RawPort;
using nmtest::Ep;
using nmtest::FrameInfo;
using nmtest::Mac;
using nmtest::Remote;
using nmtest::Rep;
using nmtest::RxFrame;
using nmtest::check_frame;
using nmtest::describe;
using nmtest::die_with_parent;
using nmtest::ep_of;
using nmtest::fill_frame;
using nmtest::frame;
using nmtest::frame_is;
using nmtest::free_block;
using nmtest::host;
using nmtest::kBcast;
using nmtest::kData;
using nmtest::kMarker;
using nmtest::kMcast;
using nmtest::kOpRxLens;
using nmtest::kOpScribble;
using nmtest::next_is;
using nmtest::put_frame;
using nmtest::recv_frame;
using nmtest::send_frame;
using nmtest::shared_block;
using nmtest::slots_for;
using nmtest::take_frame;

// Frames, rings and Remote ports: util/remote_port.h. What follows is
// VALE's own: the switch table as vale_list shows it.

// The lookup of switch sw as vale_list shows it ("?" if no such switch).
std::string lookup_of(const std::string& sw) {
  std::vector<unetmap::ValeSwitchInfo> v;
  std::string why;
  if (unetmap::vale_list(sw, &v, &why) != 0 || v.size() != 1) return "?";
  return v[0].lookup;
}

// Per-test unique marker numbers.
uint32_t g_marker = 1000;

// Every switch now (vale_list with reap).
std::vector<unetmap::ValeSwitchInfo> switches() {
  std::vector<unetmap::ValeSwitchInfo> v;
  std::string why;
  EXPECT_EQ(unetmap::vale_list("", &v, &why), 0) << why;
  return v;
}

const unetmap::ValePortInfo* find_port(const std::vector<unetmap::ValeSwitchInfo>& v,
                                       const std::string& sw, const std::string& name) {
  for (auto& s : v)
    if (s.name == sw)
      for (auto& p : s.ports)
        if (p.name == name) return &p;
  return nullptr;
}

// Between two looks at a condition another process makes true.
void pause_us(long us) {
  timespec ts{0, us * 1000};
  nanosleep(&ts, nullptr);
}

// ===========================================================================
// 1. Learning bridge.

TEST(Vale, LearningBridgeFloodsThenForwardsLearnedUnicast) {
  const Mac A = host(0xa), B = host(0xb), C = host(0xc), U = host(0x77);
  Remote a("vale0:a"), b("vale0:b"), c("vale0:c");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok()) << strerror(a.open_err());

  // Broadcast from a floods to b and c, never back to a.
  ASSERT_EQ(a.send(frame(kBcast, A, kData, 1)), 0);
  EXPECT_EQ(next_is(b, kData, 1, &A), "");
  EXPECT_EQ(next_is(c, kData, 1, &A), "");
  uint32_t m = g_marker++;
  ASSERT_EQ(b.send(frame(kBcast, B, kMarker, m)), 0);
  EXPECT_EQ(next_is(a, kMarker, m), "") << "a received its own broadcast";
  EXPECT_EQ(next_is(c, kMarker, m), "");

  // a's MAC was learned: unicast from b to A reaches a only.
  ASSERT_EQ(b.send(frame(A, B, kData, 2)), 0);
  m = g_marker++;
  ASSERT_EQ(b.send(frame(kBcast, B, kMarker, m)), 0);
  EXPECT_EQ(next_is(a, kData, 2, &B), "");
  EXPECT_EQ(next_is(a, kMarker, m), "");
  EXPECT_EQ(next_is(c, kMarker, m), "") << "learned unicast was flooded to c";

  // And from c to A too (learned for the whole switch, not per sender).
  ASSERT_EQ(c.send(frame(A, C, kData, 3)), 0);
  m = g_marker++;
  ASSERT_EQ(c.send(frame(kBcast, C, kMarker, m)), 0);
  EXPECT_EQ(next_is(a, kData, 3, &C), "");
  EXPECT_EQ(next_is(a, kMarker, m), "");
  EXPECT_EQ(next_is(b, kMarker, m), "") << "learned unicast was flooded to b";

  // Unknown unicast destination floods to every other port.
  ASSERT_EQ(c.send(frame(U, C, kData, 4)), 0);
  EXPECT_EQ(next_is(a, kData, 4), "");
  EXPECT_EQ(next_is(b, kData, 4), "");

  // Multicast (low bit of the first byte) floods.
  ASSERT_EQ(a.send(frame(kMcast, A, kData, 5)), 0);
  EXPECT_EQ(next_is(b, kData, 5), "");
  EXPECT_EQ(next_is(c, kData, 5), "");

  // A frame to a MAC learned on the sender's own port goes nowhere.
  ASSERT_EQ(b.send(frame(B, B, kData, 6)), 0);
  m = g_marker++;
  ASSERT_EQ(b.send(frame(kBcast, B, kMarker, m)), 0);
  EXPECT_EQ(next_is(a, kMarker, m), "") << "frame for the sender's own port was forwarded";
  EXPECT_EQ(next_is(c, kMarker, m), "") << "frame for the sender's own port was forwarded";

  // A station that moves (A now sends from c) is learned at its new port.
  ASSERT_EQ(c.send(frame(kBcast, A, kData, 7)), 0);
  EXPECT_EQ(next_is(a, kData, 7), "");
  EXPECT_EQ(next_is(b, kData, 7), "");
  ASSERT_EQ(b.send(frame(A, B, kData, 8)), 0);
  m = g_marker++;
  ASSERT_EQ(b.send(frame(kBcast, B, kMarker, m)), 0);
  EXPECT_EQ(next_is(c, kData, 8), "") << "moved station not followed";
  EXPECT_EQ(next_is(c, kMarker, m), "");
  EXPECT_EQ(next_is(a, kMarker, m), "") << "unicast still went to the old port";

  // Nothing else is queued anywhere: a last marker is first everywhere.
  m = g_marker++;
  ASSERT_EQ(a.send(frame(kBcast, host(0xee), kMarker, m)), 0);
  EXPECT_EQ(next_is(b, kMarker, m), "");
  EXPECT_EQ(next_is(c, kMarker, m), "");

  // The counters saw it: a sent 3 frames into the switch (1, 5 and the marker).
  auto v = switches();
  const unetmap::ValePortInfo* pa = find_port(v, "vale0", "vale0:a");
  ASSERT_NE(pa, nullptr);
  EXPECT_EQ(pa->tx_packets, 3u);
  EXPECT_EQ(pa->drops, 0u);
}

// ===========================================================================
// 2. NS_NO_LEARN.

TEST(Vale, NoLearnSlotFlagDoesNotTeachTheSwitch) {
  const Mac A = host(0xa), B = host(0xb);
  Remote a("vale0:a"), b("vale0:b"), c("vale0:c");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());

  // Sent with NS_NO_LEARN: delivered, but A is not learned...
  ASSERT_EQ(a.send(frame(kBcast, A, kData, 1), NS_NO_LEARN), 0);
  EXPECT_EQ(next_is(b, kData, 1), "");
  EXPECT_EQ(next_is(c, kData, 1), "");
  // ...so unicast to A still floods (c gets it).
  ASSERT_EQ(b.send(frame(A, B, kData, 2)), 0);
  EXPECT_EQ(next_is(a, kData, 2), "");
  EXPECT_EQ(next_is(c, kData, 2), "") << "a frame sent with NS_NO_LEARN taught the switch";

  // The same without the flag teaches it (control).
  ASSERT_EQ(a.send(frame(kBcast, A, kData, 3)), 0);
  EXPECT_EQ(next_is(b, kData, 3), "");
  EXPECT_EQ(next_is(c, kData, 3), "");
  ASSERT_EQ(b.send(frame(A, B, kData, 4)), 0);
  uint32_t m = g_marker++;
  ASSERT_EQ(b.send(frame(kBcast, B, kMarker, m)), 0);
  EXPECT_EQ(next_is(a, kData, 4), "");
  EXPECT_EQ(next_is(a, kMarker, m), "");
  EXPECT_EQ(next_is(c, kMarker, m), "");

  // NS_NO_LEARN from another port with source A does not move A there.
  ASSERT_EQ(c.send(frame(kBcast, A, kData, 5), NS_NO_LEARN), 0);
  EXPECT_EQ(next_is(a, kData, 5), "");
  EXPECT_EQ(next_is(b, kData, 5), "");
  ASSERT_EQ(b.send(frame(A, B, kData, 6)), 0);
  m = g_marker++;
  ASSERT_EQ(b.send(frame(kBcast, B, kMarker, m)), 0);
  EXPECT_EQ(next_is(a, kData, 6), "") << "NS_NO_LEARN frame moved the station";
  EXPECT_EQ(next_is(c, kMarker, m), "") << "NS_NO_LEARN frame moved the station";
}

// ===========================================================================
// 3. Multi-slot frames, short frames.

TEST(Vale, MultiSlotFramesArriveWhole) {
  const Mac S = host(0x5), R = host(0x6);
  Remote s("vale0:s"), r("vale0:r");
  ASSERT_TRUE(s.ok() && r.ok());
  ASSERT_EQ(r.send(frame(kBcast, R, kData, 0)), 0);  // teach R
  uint32_t seq = 1;
  for (uint32_t len : {2048u, 2049u, 3000u, 9000u, 65535u, 64u}) {
    SCOPED_TRACE(len);
    std::vector<uint8_t> f = frame(R, S, kData, seq, len);
    ASSERT_EQ(s.send(f), 0);
    RxFrame got;
    ASSERT_TRUE(r.recv(&got)) << "frame of " << len << " bytes did not arrive";
    EXPECT_EQ(got.data.size(), f.size());
    EXPECT_TRUE(got.data == f) << "bytes differ (" << check_frame(got.data.data(), got.data.size())
                               << ")";
    const uint32_t want_slots = slots_for(len, 2048);
    ASSERT_EQ(got.flags.size(), want_slots);
    uint32_t sum = 0;
    for (size_t i = 0; i < got.flags.size(); i++) {
      EXPECT_EQ(bool(got.flags[i] & NS_MOREFRAG), i + 1 < got.flags.size()) << "slot " << i;
      sum += got.lens[i];
    }
    EXPECT_EQ(sum, len);
    seq++;
  }
  // A frame shorter than an Ethernet header is dropped (and so is an
  // empty one); a marker sent after them is the next thing r sees.
  for (uint32_t len : {13u, 1u, 0u}) ASSERT_EQ(s.send(frame(R, S, kData, seq++, len)), 0);
  ASSERT_EQ(s.send(frame(kBcast, S, kData, seq, 13)), 0);
  uint32_t m = g_marker++;
  ASSERT_EQ(s.send(frame(kBcast, S, kMarker, m)), 0);
  EXPECT_EQ(next_is(r, kMarker, m), "") << "a frame shorter than 14 bytes was forwarded";
}

// Ports whose regions have different buffer sizes (4096 and 2048 bytes):
// a frame longer than the receiver's buffers arrives as a NS_MOREFRAG
// chain of slots that each fit a buffer, every byte intact (it was
// dropped; before that, it arrived with a slot length beyond the buffer).
// Both ways: the 2048-byte side's chains keep their fragments.
TEST(Vale, FrameFromLargerBuffersArrivesAsAChainThatFitsTheReceiver) {
  const Mac S = host(0x7), R = host(0x8);
  setenv("UNETMAP_BUF_SIZE", "4096", 1);  // the sender's private region
  nmport_d* sd = nmport_open("valebs:s");
  unsetenv("UNETMAP_BUF_SIZE");
  ASSERT_NE(sd, nullptr) << strerror(errno);
  nmport_d* rd = nmport_open("valebs:r");
  ASSERT_NE(rd, nullptr) << strerror(errno);
  const Ep se = ep_of(sd), re = ep_of(rd);
  ASSERT_EQ(se.tx(se.tx0)->nr_buf_size, 4096u);
  ASSERT_EQ(re.rx(re.rx0)->nr_buf_size, 2048u);
  ASSERT_EQ(send_frame(re, frame(kBcast, R, kData, 0)), 0);  // teach R
  RxFrame got;
  ASSERT_TRUE(recv_frame(se, 2000, &got));
  uint32_t seq = 1;
  struct Case {
    const Ep& from;
    const Ep& to;
    Mac dst, src;
    uint32_t len;
    std::vector<uint16_t> lens;  // the slots it must arrive in
  };
  const Case cases[] = {
      {se, re, R, S, 3000, {2048, 952}},
      {se, re, R, S, 4096, {2048, 2048}},
      {se, re, R, S, 9000, {2048, 2048, 2048, 2048, 808}},  // sent as 4096, 4096, 808
      {se, re, R, S, 1514, {1514}},
      {re, se, S, R, 3000, {2048, 952}},  // 2048 -> 4096: the sender's chain
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << c.len << " bytes from buffers of " << c.from.tx(c.from.tx0)->nr_buf_size);
    const std::vector<uint8_t> f = frame(c.dst, c.src, kData, seq++, c.len);
    ASSERT_EQ(send_frame(c.from, f), 0);
    ASSERT_TRUE(recv_frame(c.to, 2000, &got)) << "the frame did not arrive";
    const uint32_t bsize = c.to.rx(got.ring)->nr_buf_size;
    for (size_t i = 0; i < got.lens.size(); i++) {
      EXPECT_LE(got.lens[i], bsize) << "slot " << i << ": a length beyond the receiver's buffer";
      EXPECT_EQ(bool(got.flags[i] & NS_MOREFRAG), i + 1 < got.lens.size()) << "slot " << i;
    }
    EXPECT_EQ(got.lens, c.lens);
    EXPECT_EQ(got.data.size(), f.size());
    EXPECT_TRUE(got.data == f) << "bytes differ (" << check_frame(got.data.data(), got.data.size()) << ")";
  }
  std::vector<unetmap::ValeSwitchInfo> v;
  std::string why;
  ASSERT_EQ(unetmap::vale_list("valebs", &v, &why), 0) << why;
  ASSERT_EQ(v.size(), 1u);
  for (const auto& p : v[0].ports) EXPECT_EQ(p.drops, 0u) << p.name;
  nmport_close(sd);
  nmport_close(rd);
}

// ===========================================================================
// 4. A full destination ring drops; the sender never blocks.

TEST(Vale, FullDestinationRingDropsWithoutBlockingTheSender) {
  const Mac S = host(0x5), R = host(0x6);
  nmport_d* rd = nmport_open("vale0:r@conf:slots=64");
  ASSERT_NE(rd, nullptr) << strerror(errno);
  Ep re = ep_of(rd);
  netmap_ring* rx = re.rx(re.rx0);
  ASSERT_EQ(rx->num_slots, 64u);
  ASSERT_EQ(send_frame(re, frame(kBcast, R, kData, 0)), 0);  // teach R

  Remote s("vale0:s");
  ASSERT_TRUE(s.ok());
  // 200 frames, 50 per txsync, to a receiver that does not read. Every
  // txsync returns with the whole tx ring free again.
  const double t0 = now_ms();
  Rep rep = s.send_many(R, S, kData, 0, 200, 50);
  ASSERT_EQ(rep.rc, 0) << strerror(rep.rc);
  EXPECT_EQ(rep.a, 4u) << "txsyncs";
  EXPECT_EQ(rep.b, 0u) << "txsyncs after which the tx ring was not wholly free";
  EXPECT_LT(now_ms() - t0, 10000) << "the sender was held up by the full receiver";

  ASSERT_EQ(ioctl(re.fd, NIOCRXSYNC, nullptr), 0);
  const uint32_t got = nm_ring_space(rx);
  EXPECT_GT(got, 0u);
  EXPECT_LE(got, 63u) << "a ring of 64 slots holds at most 63 packets";
  RxFrame f;
  for (uint32_t i = 0; i < got; i++) {
    ASSERT_TRUE(take_frame(re, &f));
    FrameInfo fi;
    ASSERT_EQ(check_frame(f.data.data(), f.data.size(), &fi), "");
    EXPECT_EQ(fi.seq, i) << "the first frames are the ones that fit";
  }
  // Drops are counted on the receiving port: everything that did not fit.
  auto v = switches();
  const unetmap::ValePortInfo* pr = find_port(v, "vale0", "vale0:r");
  const unetmap::ValePortInfo* ps = find_port(v, "vale0", "vale0:s");
  ASSERT_TRUE(pr && ps);
  EXPECT_GT(pr->drops, 0u);
  EXPECT_EQ(pr->drops, 200u - got);
  EXPECT_EQ(ps->tx_packets, 200u);

  // Once drained (released at the next sync), new frames flow again.
  ASSERT_EQ(ioctl(re.fd, NIOCRXSYNC, nullptr), 0);
  rep = s.send_many(R, S, kData, 1000, 10, 10);
  ASSERT_EQ(rep.rc, 0);
  for (uint32_t i = 0; i < 10; i++) {
    ASSERT_TRUE(recv_frame(re, 5000, &f)) << "after draining, frame " << i << " did not arrive";
    FrameInfo fi;
    ASSERT_EQ(check_frame(f.data.data(), f.data.size(), &fi), "");
    EXPECT_EQ(fi.seq, 1000 + i);
  }
  v = switches();
  pr = find_port(v, "vale0", "vale0:r");
  ASSERT_TRUE(pr);
  EXPECT_EQ(pr->drops, 200u - got) << "drops counted with room in the ring";
  nmport_close(rd);
}

// ===========================================================================
// 5. Several rings per port.

TEST(Vale, SeveralRingsPerPort) {
  const Mac S = host(0x5), R = host(0x6), T = host(0x7);
  nmport_d* rd = nmport_open("vale0:r@conf:rings=2");
  ASSERT_NE(rd, nullptr) << strerror(errno);
  Ep re = ep_of(rd);
  ASSERT_EQ(rd->nifp->ni_rx_rings, 2u);
  ASSERT_EQ(rd->nifp->ni_tx_rings, 2u);
  ASSERT_EQ(re.rx1 - re.rx0, 2u);
  // Teach R from its second tx ring.
  ASSERT_EQ(send_frame(re, frame(kBcast, R, kData, 0), 0, 1), 0);

  Remote s("vale0:s@conf:rings=2");
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s.tx_rings(), 2u);
  // Frames on both tx rings of s; tag = the tx ring.
  const uint32_t n = 200;
  for (uint32_t i = 0; i < n; i++)
    ASSERT_EQ(s.send(frame(R, S, i % 2, i, 60 + i), 0, i % 2), 0) << i;
  // Each arrives once, intact, in order per tx ring.
  int64_t last[2] = {-1, -1};
  uint32_t per_rx[2] = {0, 0};
  RxFrame f;
  for (uint32_t i = 0; i < n; i++) {
    ASSERT_TRUE(recv_frame(re, 5000, &f)) << "only " << i << " of " << n << " arrived";
    FrameInfo fi;
    ASSERT_EQ(check_frame(f.data.data(), f.data.size(), &fi), "");
    ASSERT_LT(fi.tag, 2u);
    EXPECT_EQ(fi.seq % 2, fi.tag);
    EXPECT_GT(int64_t(fi.seq), last[fi.tag]) << "reordered or duplicated within a tx ring";
    last[fi.tag] = fi.seq;
    per_rx[f.ring - re.rx0]++;
  }
  EXPECT_EQ(last[0], int64_t(n - 2));
  EXPECT_EQ(last[1], int64_t(n - 1));
  EXPECT_EQ(per_rx[0] + per_rx[1], n);
  uint32_t m = g_marker++;
  ASSERT_EQ(s.send(frame(kBcast, S, kMarker, m)), 0);
  ASSERT_TRUE(recv_frame(re, 5000, &f));
  EXPECT_TRUE(frame_is(f, kMarker, m)) << "extra frame: " << describe(f);

  // Release what was read: the rings are shared by every registration of
  // the port, and a new registration starts from the kernel's state.
  ASSERT_EQ(ioctl(re.fd, NIOCRXSYNC, nullptr), 0);

  // A one-ring sender into the two-ring port, and the two-ring port bound
  // one ring at a time from two other processes.
  Remote t("vale0:t");
  ASSERT_TRUE(t.ok());
  Remote r0("vale0:r-0"), r1("vale0:r-1");
  ASSERT_TRUE(r0.ok() && r1.ok());
  EXPECT_EQ(r0.rx_rings(), 1u);
  EXPECT_EQ(r1.rx_rings(), 1u);
  nmport_close(rd);  // r0 and r1 keep the port
  for (uint32_t i = 0; i < 20; i++) ASSERT_EQ(t.send(frame(R, T, kData, i)), 0);
  // All 20 arrive on one ring or the other, once each, in order per ring.
  // t's txsync returned after forwarding them, so they are all published:
  // a short wait that finds nothing means the ring is drained.
  std::set<uint32_t> seqs;
  uint32_t seen = 0;
  std::vector<uint32_t> got_by(2, 0);
  for (int k = 0; k < 2; k++) {
    Remote& rr = k ? r1 : r0;
    int64_t lastseq = -1;
    RxFrame g;
    while (rr.recv(&g, 200)) {
      FrameInfo fi;
      ASSERT_EQ(check_frame(g.data.data(), g.data.size(), &fi), "");
      ASSERT_EQ(fi.tag, kData);
      EXPECT_GT(int64_t(fi.seq), lastseq) << "reordered on ring " << k;
      lastseq = fi.seq;
      seqs.insert(fi.seq);
      got_by[k]++;
      seen++;
    }
  }
  EXPECT_EQ(seqs.size(), 20u);
  EXPECT_EQ(seen, 20u) << "ring 0: " << got_by[0] << ", ring 1: " << got_by[1];
}

// ===========================================================================
// 6. Concurrent senders into one receiver.

struct ConcShared {
  std::atomic<uint32_t> done{0};
  std::atomic<uint64_t> sent[4];
  std::atomic<uint32_t> fail{0};
};

TEST(Vale, ConcurrentSendersKeepOrderAndEveryFrameIsCounted) {
  constexpr int kSenders = 4;
  const uint32_t N = 200000;
  const Mac R = host(0x50);
  auto* sh = shared_block<ConcShared>();
  for (auto& s : sh->sent) s = 0;

  nmport_d* rd = nmport_open("vale0:r");
  ASSERT_NE(rd, nullptr);
  Ep re = ep_of(rd);
  ASSERT_EQ(send_frame(re, frame(kBcast, R, kData, 0)), 0);  // teach R

  Event ready, go;
  std::vector<std::unique_ptr<Child>> senders;
  for (int i = 0; i < kSenders; i++) {
    senders.push_back(std::make_unique<Child>([&, i] {
      die_with_parent();
      auto run = [&]() -> int {
        std::string name = "vale0:s" + std::to_string(i);
        nmport_d* d = nmport_open(name.c_str());
        if (!d) return 2;
        Ep e = ep_of(d);
        ready.signal();
        if (go.wait(20000) < 0) return 3;
        netmap_ring* t = e.tx(e.tx0);
        const Mac S = host(uint8_t(0x10 + i));
        for (uint32_t seq = 0; seq < N;) {
          if (nm_ring_empty(t) && ioctl(e.fd, NIOCTXSYNC, nullptr) < 0) return 4;
          uint32_t n = std::min<uint32_t>({nm_ring_space(t), 256, N - seq});
          for (uint32_t k = 0; k < n; k++, seq++) {
            netmap_slot& s = t->slot[t->cur];
            uint32_t len = 60 + uint32_t(mix64((uint64_t(i) << 32) | seq) % 200);
            fill_frame(reinterpret_cast<uint8_t*>(NETMAP_BUF(t, s.buf_idx)), len, R, S, uint32_t(i),
                       seq);
            s.len = uint16_t(len);
            s.flags = 0;
            t->head = t->cur = nm_ring_next(t, t->cur);
          }
          if (ioctl(e.fd, NIOCTXSYNC, nullptr) < 0) return 5;
          sh->sent[i].store(seq);  // these frames are delivered or dropped by now
        }
        nmport_close(d);
        return 0;
      };
      int rc = run();
      sh->done.fetch_add(1);  // done, well or not: the receiver stops waiting
      return rc;
    }));
  }
  for (int i = 0; i < kSenders; i++) ASSERT_EQ(ready.wait(20000), 'x') << "sender " << i;
  for (int i = 0; i < kSenders; i++) go.signal();

  // Receive until every sender is done and a sync after that shows nothing
  // more: their txsyncs returned, so every frame is either in the ring or
  // dropped.
  const double t0 = now_ms();
  int64_t last[kSenders] = {-1, -1, -1, -1};
  uint64_t got[kSenders] = {0, 0, 0, 0};
  uint64_t received = 0;
  std::string err;
  RxFrame f;
  for (bool final_sweep = false; err.empty() && !final_sweep;) {
    // Once every sender is done, one more sweep takes all that is left.
    final_sweep = sh->done.load() == kSenders;
    if (now_ms() - t0 > 20000) {
      err = "timed out";
      break;
    }
    pollfd p{re.fd, POLLIN, 0};
    ::poll(&p, 1, final_sweep ? 0 : 20);
    ioctl(re.fd, NIOCRXSYNC, nullptr);
    while (take_frame(re, &f)) {
      FrameInfo fi;
      std::string e = check_frame(f.data.data(), f.data.size(), &fi);
      if (!e.empty()) {
        err = e;
        break;
      }
      if (fi.tag >= uint32_t(kSenders) || fi.src != host(uint8_t(0x10 + fi.tag)) || fi.dst != R) {
        err = "unexpected " + describe(f);
        break;
      }
      if (int64_t(fi.seq) <= last[fi.tag]) {
        err = "sender " + std::to_string(fi.tag) + ": seq " + std::to_string(fi.seq) + " after " +
              std::to_string(last[fi.tag]) + " (reordered or duplicated)";
        break;
      }
      last[fi.tag] = fi.seq;
      got[fi.tag]++;
      received++;
    }
  }
  ASSERT_EQ(err, "");
  for (int i = 0; i < kSenders; i++) EXPECT_EQ(senders[i]->wait(20000), 0) << "sender " << i;
  auto v = switches();
  const unetmap::ValePortInfo* pr = find_port(v, "vale0", "vale0:r");
  ASSERT_NE(pr, nullptr);
  uint64_t sent = 0;
  for (int i = 0; i < kSenders; i++) {
    sent += sh->sent[i].load();
    EXPECT_GT(got[i], 0u) << "nothing from sender " << i;
  }
  EXPECT_EQ(sent, uint64_t(kSenders) * N);
  EXPECT_EQ(received + pr->drops, sent)
      << "received " << received << " dropped " << pr->drops << " sent " << sent;
  printf("  %llu received, %llu dropped in %.0f ms\n", (unsigned long long)received,
         (unsigned long long)pr->drops, now_ms() - t0);
  nmport_close(rd);
  free_block(sh);
}

// ===========================================================================
// 7. Senders killed at random moments while forwarding.

struct FaultShared {
  std::atomic<uint32_t> stop{0};    // G: stop sending
  std::atomic<uint32_t> quit{0};    // R: exit
  std::atomic<uint64_t> g_sent{0};  // G: frames whose txsync returned
  std::atomic<uint64_t> g_final{~0ull};
  std::atomic<uint64_t> r_good{0};  // R: next expected seq from G
  std::atomic<uint64_t> finals{0};  // R: final frames received
  std::atomic<uint64_t> victim_frames{0};
  std::atomic<uint32_t> error{0};
  char why[256] = {};
  std::atomic<uint64_t> v_consumed[512];
};

constexpr uint32_t kTagG = 0x6000, kTagFinal = 0x6001, kTagVictim = 0x7000;

TEST(Vale, SendersKilledWhileForwardingDoNotDisturbTheOthers) {
  const int kLives = 200;
  constexpr uint32_t kW = 128, kB = 192, kBatch = 32;  // windows (see below)
  const Mac R = host(0x60), G = host(0x61), V = host(0x62), F = host(0x63);
  auto* sh = shared_block<FaultShared>();
  for (auto& c : sh->v_consumed) c = 0;

  // No packet may be dropped for G, so both senders keep what is in flight
  // towards R bounded: G at most kW frames, each victim kB, in batches of
  // kBatch. The ring of 1024 slots and the 16 leases of a ring are then
  // never exhausted, and R's drop counter must stay at 0.
  Event r_ready;
  Child rx([&] {
    die_with_parent();
    nmport_d* d = nmport_open("vale0:r");
    if (!d) return 2;
    Ep e = ep_of(d);
    if (send_frame(e, frame(kBcast, R, kData, 0)) != 0) return 3;  // teach R
    r_ready.signal();
    auto fail = [&](const std::string& m) {
      snprintf(sh->why, sizeof sh->why, "%s", m.c_str());
      sh->error.store(1);
      return 1;
    };
    RxFrame f;
    const double end = now_ms() + 60000;
    while (!sh->quit.load()) {
      if (now_ms() > end) return fail("receiver timed out");
      pollfd p{e.fd, POLLIN, 0};
      ::poll(&p, 1, 10);
      while (take_frame(e, &f)) {
        FrameInfo fi;
        std::string err = check_frame(f.data.data(), f.data.size(), &fi);
        if (!err.empty()) return fail("corrupt frame: " + err);
        if (fi.tag == kTagG) {
          uint64_t want = sh->r_good.load();
          if (fi.seq != uint32_t(want))
            return fail("G: seq " + std::to_string(fi.seq) + ", want " + std::to_string(want));
          sh->r_good.store(want + 1);
        } else if (fi.tag >= kTagVictim && fi.tag < kTagVictim + 512) {
          sh->v_consumed[fi.tag - kTagVictim].fetch_add(1);
          sh->victim_frames.fetch_add(1);
        } else if (fi.tag == kTagFinal) {
          sh->finals.fetch_add(1);
        } else {
          return fail("unexpected " + describe(f));
        }
      }
    }
    nmport_close(d);
    return 0;
  });
  ASSERT_EQ(r_ready.wait(20000), 'x');

  Event g_ready;
  Child gx([&] {
    die_with_parent();
    nmport_d* d = nmport_open("vale0:g");
    if (!d) return 2;
    Ep e = ep_of(d);
    netmap_ring* t = e.tx(e.tx0);
    g_ready.signal();
    uint64_t seq = 0;
    while (!sh->stop.load()) {
      if (seq - sh->r_good.load() > kW - kBatch) {
        sched_yield();
        continue;
      }
      for (uint32_t k = 0; k < kBatch; k++, seq++) {
        netmap_slot& s = t->slot[t->cur];
        uint32_t len = 60 + uint32_t(seq % 500);
        fill_frame(reinterpret_cast<uint8_t*>(NETMAP_BUF(t, s.buf_idx)), len, R, G, kTagG,
                   uint32_t(seq));
        s.len = uint16_t(len);
        s.flags = 0;
        t->head = t->cur = nm_ring_next(t, t->cur);
      }
      if (ioctl(e.fd, NIOCTXSYNC, nullptr) < 0) return 3;
      if (nm_ring_space(t) != t->num_slots - 1) return 4;
      sh->g_sent.store(seq);
    }
    sh->g_final.store(seq);
    nmport_close(d);
    return 0;
  });
  ASSERT_EQ(g_ready.wait(20000), 'x');

  // A look at R's rx ring from outside (statistics only): how often did a
  // victim die while it held a lease on it?
  std::shared_ptr<unetmap::Region> r_region;
  unetmap::KringState* r_ks = nullptr;
  {
    int err = 0;
    unetmap::Registry* reg = unetmap::Registry::get(&err);
    ASSERT_NE(reg, nullptr);
    unetmap::LockGuard g(reg->lock());
    int p = reg->find_port("vale0:r");
    ASSERT_GE(p, 0);
    r_region = unetmap::Region::get(reg->port(p).mem_id, unetmap::RegionConfig::from_env(), &err,
                                    nullptr, false);
    ASSERT_TRUE(r_region);
    r_ks = r_region->kring(reg->port(p).ring[unetmap::kRx][0]);
  }
  int died_holding = 0;

  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> delay_us(0, 3000);
  const double t0 = now_ms();
  for (int life = 0; life < kLives; life++) {
    SCOPED_TRACE("victim life " + std::to_string(life));
    Event started;
    const std::string vname = "vale0:v" + std::to_string(life);
    Child victim([&] {
      die_with_parent();
      std::string spec = vname + "@conf:slots=256";
      nmport_d* d = nmport_open(spec.c_str());
      if (!d) return 2;
      Ep e = ep_of(d);
      netmap_ring* t = e.tx(e.tx0);
      const uint32_t tag = kTagVictim + uint32_t(life);
      std::atomic<uint64_t>& consumed = sh->v_consumed[life];
      uint64_t seq = 0;
      for (;;) {
        if (seq - consumed.load() > kB - kBatch) {  // full speed, bounded in flight
          sched_yield();
          continue;
        }
        for (uint32_t k = 0; k < kBatch; k++, seq++) {
          netmap_slot& s = t->slot[t->cur];
          uint32_t len = 60 + uint32_t(seq % 1400);
          fill_frame(reinterpret_cast<uint8_t*>(NETMAP_BUF(t, s.buf_idx)), len, R, V, tag,
                     uint32_t(seq));
          s.len = uint16_t(len);
          s.flags = 0;
          t->head = t->cur = nm_ring_next(t, t->cur);
        }
        ioctl(e.fd, NIOCTXSYNC, nullptr);
        if (seq == kBatch) started.signal();
      }
      return 0;
    });
    ASSERT_EQ(started.wait(20000), 'x') << "victim did not start sending";
    const int us = delay_us(rng);
    timespec ts{0, long(us) * 1000};
    if (us) nanosleep(&ts, nullptr);  // the random moment of the kill
    const pid_t vpid = victim.pid();
    victim.kill_now(SIGKILL);
    {
      unetmap::LockGuard g(r_ks->lease_lock);
      for (uint32_t k = 0; k < r_ks->lease_count; k++) {
        const unetmap::Lease& l = r_ks->leases[(r_ks->lease_first + k) % unetmap::kMaxLeases];
        if (!l.done && l.owner.pid == vpid) {
          died_holding++;
          break;
        }
      }
    }
    ASSERT_EQ(sh->error.load(), 0u) << sh->why;

    // The dead victim's port is gone at the next reap (vale_list reaps).
    auto v = switches();
    EXPECT_EQ(find_port(v, "vale0", vname), nullptr) << vname << " outlived its process";
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].ports.size(), 2u) << "stale ports on the switch";

    // G's frames sent after the death arrive: whatever the victim left
    // behind was reclaimed (and its frames in the ring were consumed).
    const uint64_t mark = sh->g_sent.load() + 2 * kBatch;
    const double end = now_ms() + 10000;
    while (sh->r_good.load() < mark && now_ms() < end && !sh->error.load()) pause_us(50);
    ASSERT_EQ(sh->error.load(), 0u) << sh->why;
    ASSERT_GE(sh->r_good.load(), mark) << "the switch stopped forwarding G's frames after a kill";
  }
  const double loop_ms = now_ms() - t0;

  // Stop G; R must get every frame G sent, in order (checked as they come).
  sh->stop.store(1);
  ASSERT_EQ(gx.wait(10000), 0) << "G failed";
  const uint64_t gf = sh->g_final.load();
  {
    const double end = now_ms() + 10000;
    while (sh->r_good.load() < gf && now_ms() < end && !sh->error.load()) pause_us(50);
  }
  ASSERT_EQ(sh->error.load(), 0u) << sh->why;
  EXPECT_EQ(sh->r_good.load(), gf) << "frames of the well-behaved sender were lost";

  // No lease is stuck: a new sender still reaches R.
  {
    nmport_d* fd = nmport_open("vale0:fin");
    ASSERT_NE(fd, nullptr);
    Ep fe = ep_of(fd);
    for (uint32_t i = 0; i < 10; i++) ASSERT_EQ(send_frame(fe, frame(R, F, kTagFinal, i)), 0);
    const double end = now_ms() + 10000;
    while (sh->finals.load() < 10 && now_ms() < end && !sh->error.load()) pause_us(50);
    EXPECT_EQ(sh->finals.load(), 10u) << "the receiver no longer gets new packets";
    auto v = switches();
    const unetmap::ValePortInfo* pr = find_port(v, "vale0", "vale0:r");
    ASSERT_NE(pr, nullptr);
    EXPECT_EQ(pr->drops, 0u) << "frames dropped although in-flight was bounded below the ring";
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].ports.size(), 2u);  // r and fin
    nmport_close(fd);
  }
  sh->quit.store(1);
  EXPECT_EQ(rx.wait(10000), 0) << sh->why;
  EXPECT_TRUE(switches().empty()) << "the switch outlived its last port";
  printf(
      "  %d victims in %.0f ms (%d killed holding a lease on R's ring); G sent %llu, "
      "victims delivered %llu\n",
      kLives, loop_ms, died_holding, (unsigned long long)gf,
      (unsigned long long)sh->victim_frames.load());
  free_block(sh);
}

// A sender that died holding a lease (simulated exactly: a process takes a
// lease on R's rx ring the way a forwarding txsync does, then is killed
// before filling it). Frames forwarded after it wait behind the hole; once
// the owner is dead the hole is closed, the frames are delivered, and a
// receiver blocked in poll() is woken for them.
TEST(Vale, LeaseOfAKilledSenderIsReclaimedAndTheReceiverWoken) {
  const Mac S = host(0x5), R = host(0x6);
  Remote r("vale0:r"), s("vale0:s");
  ASSERT_TRUE(r.ok() && s.ok());
  ASSERT_EQ(r.send(frame(kBcast, R, kData, 0)), 0);
  ASSERT_EQ(next_is(s, kData, 0), "");
  ASSERT_EQ(s.send(frame(R, S, kData, 1)), 0);
  ASSERT_EQ(next_is(r, kData, 1), "");

  Event leased;
  Child holder([&] {
    die_with_parent();
    int err = 0;
    unetmap::Registry* reg = unetmap::Registry::get(&err);
    if (!reg) return 2;
    uint16_t mem_id;
    uint32_t ring;
    {
      unetmap::LockGuard g(reg->lock());
      int p = reg->find_port("vale0:r");
      if (p < 0) return 3;
      mem_id = reg->port(p).mem_id;
      ring = reg->port(p).ring[unetmap::kRx][0];
    }
    auto region = unetmap::Region::get(mem_id, unetmap::RegionConfig::from_env(), &err);
    if (!region) return 4;
    unetmap::KringState* ks = region->kring(ring);
    {
      // What the forwarding code does to reserve one slot.
      unetmap::LockGuard g(ks->lease_lock);
      const uint32_t n = ks->nslots;
      uint32_t slot = (ks->lease_first + ks->lease_count) % unetmap::kMaxLeases;
      unetmap::Lease& l = ks->leases[slot];
      l.start = ks->lease_tail;
      l.end = (ks->lease_tail + 1) % n;
      l.done = 0;
      l.owner = unetmap::ProcId::self();
      timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      l.since_ns = uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
      ks->lease_count++;
      ks->lease_tail = l.end;
    }
    leased.signal();
    for (;;) pause();
    return 0;
  });
  ASSERT_EQ(leased.wait(10000), 'x');

  // Forwarded behind the live lease: not published while its owner lives.
  ASSERT_EQ(s.send(frame(R, S, kData, 2)), 0);
  RxFrame f;
  EXPECT_FALSE(r.recv(&f, 300)) << "published past an unfinished lease: " << describe(f);

  // The receiver blocks in poll (8 s); then the lease holder dies. The
  // frame behind the hole must be delivered well before that timeout.
  r.recv_start(8000);
  bool got = false;
  ASSERT_FALSE(r.recv_finish(&f, 300, &got)) << "the receiver did not block";
  holder.kill_now(SIGKILL);
  const double t0 = now_ms();
  ASSERT_TRUE(r.recv_finish(&f, 20000, &got));
  const double waited = now_ms() - t0;
  ASSERT_TRUE(got) << "frame behind the dead lease never arrived";
  EXPECT_TRUE(frame_is(f, kData, 2)) << describe(f);
  EXPECT_LT(waited, 2000) << "a receiver blocked in poll() behind a dead sender's lease was not "
                             "woken: it got the frame only at its poll timeout ("
                          << waited << " ms)";

  // And the ring works normally afterwards, without losing slots.
  for (uint32_t i = 3; i < 3 + 2000; i++) {
    ASSERT_EQ(s.send(frame(R, S, kData, i)), 0);
    ASSERT_EQ(next_is(r, kData, i), "");
  }
}

// ===========================================================================
// 8. Persistent ports.

int ctrl_list(int fd, const char* name, nmreq_vale_list* l, std::string* out_name) {
  nmreq_header h;
  memset(&h, 0, sizeof h);
  h.nr_version = NETMAP_API;
  h.nr_reqtype = NETMAP_REQ_VALE_LIST;
  snprintf(h.nr_name, sizeof h.nr_name, "%s", name);
  h.nr_body = uintptr_t(l);
  if (ioctl(fd, NIOCCTRL, &h) < 0) return errno;
  *out_name = h.nr_name;
  return 0;
}

TEST(Vale, PersistentPortLifecycleThroughNiocctrl) {
  const Mac P = host(0x11), E = host(0x12), M = host(0x13);
  int fd = open("/dev/netmap", O_RDWR);
  ASSERT_GE(fd, 0);
  nmreq_vale_newif nw;
  memset(&nw, 0, sizeof nw);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_NEWIF, "p1", &nw), 0);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_NEWIF, "p1", &nw), EEXIST);
  EXPECT_TRUE(switches().empty()) << "a port not attached made a switch";

  nmreq_vale_attach at;
  memset(&at, 0, sizeof at);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_ATTACH, "vale0:p1", &at), 0);
  const uint32_t p1_index = at.port_index;
  memset(&at, 0, sizeof at);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_ATTACH, "vale0:p1", &at), EBUSY);
  // No interface nor persistent port of that name: EINVAL, as netmap.
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_ATTACH, "vale0:nosuch", &at), EINVAL);

  // Open it by its switch name and exchange frames with an ephemeral port.
  auto p1 = std::make_unique<Remote>("vale0:p1");
  Remote e("vale0:e");
  ASSERT_TRUE(p1->ok() && e.ok());
  ASSERT_EQ(p1->send(frame(kBcast, P, kData, 1)), 0);
  EXPECT_EQ(next_is(e, kData, 1, &P), "");
  ASSERT_EQ(e.send(frame(P, E, kData, 2)), 0);
  EXPECT_EQ(next_is(*p1, kData, 2, &E), "");

  // LIST with an empty name walks every port, then ENOENT.
  std::set<std::string> names;
  std::map<std::string, std::pair<uint32_t, uint32_t>> where;
  nmreq_vale_list l;
  memset(&l, 0, sizeof l);
  int rc = 0;
  for (int k = 0; k < 10; k++) {
    std::string n;
    rc = ctrl_list(fd, "", &l, &n);
    if (rc) break;
    names.insert(n);
    where[n] = {l.nr_bridge_idx, l.nr_port_idx};
    l.nr_port_idx++;
  }
  EXPECT_EQ(rc, ENOENT);
  EXPECT_EQ(names, (std::set<std::string>{"vale0:p1", "vale0:e"}));
  // LIST by name: bridge and port index.
  for (const char* n : {"vale0:p1", "vale0:e"}) {
    memset(&l, 0, sizeof l);
    std::string out;
    ASSERT_EQ(ctrl_list(fd, n, &l, &out), 0) << n;
    EXPECT_EQ(l.nr_bridge_idx, where[n].first) << n;
    EXPECT_EQ(l.nr_port_idx, where[n].second) << n;
  }
  EXPECT_EQ(where["vale0:p1"].second, p1_index);
  {
    memset(&l, 0, sizeof l);
    std::string out;
    EXPECT_NE(ctrl_list(fd, "vale0:nosuch", &l, &out), 0);
  }

  // Delete while attached: EBUSY. Detach (still open), then delete while
  // open: EBUSY.
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_DELIF, "p1", nullptr), EBUSY);
  nmreq_vale_detach dt;
  memset(&dt, 0, sizeof dt);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_DETACH, "vale0:p1", &dt), 0);
  EXPECT_EQ(dt.port_index, p1_index);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_DETACH, "vale0:p1", &dt), ENXIO);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_DELIF, "p1", nullptr), EBUSY)
      << "deleted while a process has it open";
  // Detached, its frames go nowhere: e sees a later marker first.
  Remote m("vale0:m");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(p1->send(frame(kBcast, P, kData, 3)), 0);
  uint32_t mk = g_marker++;
  ASSERT_EQ(m.send(frame(kBcast, M, kMarker, mk)), 0);
  EXPECT_EQ(next_is(e, kMarker, mk), "") << "a detached port still forwards";
  EXPECT_EQ(m.close(), 0);

  EXPECT_EQ(p1->close(), 0);
  p1.reset();
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_DELIF, "p1", nullptr), 0);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_DELIF, "p1", nullptr), ENXIO);
  // The name is free again (nw holds what the first NEWIF wrote back).
  memset(&nw, 0, sizeof nw);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_NEWIF, "p1", &nw), 0);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_DELIF, "p1", nullptr), 0);

  // The ephemeral port, and then the switch, go with their last user.
  ASSERT_EQ(switches().size(), 1u);
  EXPECT_EQ(e.close(), 0);
  EXPECT_TRUE(switches().empty()) << "switch left after its last port closed";
  close(fd);
}

// NEWIF writes back the rings, slots and region it made, as netmap does
// (libnetmap and vale-ctl -n read them); the legacy nr_cmd too.
TEST(Vale, NewifWritesBackWhatItMade) {
  int fd = open("/dev/netmap", O_RDWR);
  ASSERT_GE(fd, 0);
  nmreq_vale_newif nw;
  memset(&nw, 0, sizeof nw);
  ASSERT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_NEWIF, "wb1", &nw), 0);
  EXPECT_EQ(nw.nr_tx_rings, 1);
  EXPECT_EQ(nw.nr_rx_rings, 1);
  EXPECT_EQ(nw.nr_tx_slots, 1024u);
  EXPECT_EQ(nw.nr_rx_slots, 1024u);
  nmreq_port_info_get pi;
  memset(&pi, 0, sizeof pi);
  ASSERT_EQ(nmtest::ctrl(fd, NETMAP_REQ_PORT_INFO_GET, "wb1", &pi), 0);
  EXPECT_GT(nw.nr_mem_id, 1) << "a private region";
  EXPECT_EQ(nw.nr_mem_id, pi.nr_mem_id);
  nmreq_vale_newif asked;
  memset(&asked, 0, sizeof asked);
  asked.nr_tx_slots = 256, asked.nr_rx_slots = 512, asked.nr_tx_rings = 2, asked.nr_rx_rings = 3;
  nw = asked;
  ASSERT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_NEWIF, "wb2", &nw), 0);
  EXPECT_EQ(nw.nr_tx_slots, 256u);
  EXPECT_EQ(nw.nr_rx_slots, 512u);
  EXPECT_EQ(nw.nr_tx_rings, 2);
  EXPECT_EQ(nw.nr_rx_rings, 3);
  EXPECT_GT(nw.nr_mem_id, 1);
  nmreq r{};
  strcpy(r.nr_name, "wb3");
  r.nr_version = 14;
  r.nr_cmd = NETMAP_BDG_NEWIF;
  ASSERT_EQ(ioctl(fd, NIOCREGIF, &r), 0) << strerror(errno);
  EXPECT_EQ(r.nr_tx_rings, 1);
  EXPECT_EQ(r.nr_rx_slots, 1024u);
  EXPECT_GT(r.nr_arg2, 1);
  for (const char* n : {"wb1", "wb2", "wb3"})
    EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_DELIF, n, nullptr), 0) << n;
  close(fd);
}

// A persistent port already on one switch, attached to a second one: netmap
// wraps it and puts the wrapper on the second switch, so the port joins the
// two; here a forwarder (ports/vale/attach.h) does, started by a process that
// exits before the traffic runs. While wrapped the port cannot be removed,
// detached from its first switch, wrapped again or opened; once the
// wrapper is detached all of that works again.
TEST(Vale, PersistentPortOnASecondSwitchJoinsTheTwo) {
  const Mac A = host(0x31), B = host(0x32), M = host(0x33);
  int fd = open("/dev/netmap", O_RDWR);
  ASSERT_GE(fd, 0);
  nmreq_vale_newif nw;
  memset(&nw, 0, sizeof nw);
  ASSERT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_NEWIF, "w1", &nw), 0);
  nmreq_vale_attach at;
  memset(&at, 0, sizeof at);
  at.reg.nr_mode = NR_REG_ALL_NIC;
  ASSERT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_ATTACH, "valeA:w1", &at), 0);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_ATTACH, "valeA:w1", &at), EBUSY);
  Child requester([] {
    int f = open("/dev/netmap", O_RDWR);
    nmreq_vale_attach a;
    memset(&a, 0, sizeof a);
    a.reg.nr_mode = NR_REG_ALL_NIC;
    return f < 0 ? 9 : nmtest::ctrl(f, NETMAP_REQ_VALE_ATTACH, "valeB:w1", &a);
  });
  ASSERT_EQ(requester.wait(20000), 0) << "attach to a second switch";
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_ATTACH, "valeB:w1", &at), EBUSY);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_ATTACH, "valeC:w1", &at), EBUSY) << "wrapped twice";
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_NEWIF, "w1", &nw), EEXIST);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_DELIF, "w1", nullptr), EBUSY);
  nmreq_vale_detach dt;
  memset(&dt, 0, sizeof dt);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_DETACH, "valeA:w1", &dt), EBUSY);
  {
    Remote busy("valeA:w1");
    EXPECT_FALSE(busy.ok()) << "a wrapped port was opened";
  }

  // Both ways through the port: valeA -> w1 -> wrapper -> valeB, and back.
  Remote a("valeA:a"), b("valeB:b");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a.send(frame(kBcast, A, kData, 1)), 0);
  EXPECT_EQ(next_is(b, kData, 1, &A), "");
  ASSERT_EQ(b.send(frame(A, B, kData, 2)), 0);
  EXPECT_EQ(next_is(a, kData, 2, &B), "");

  // Unwrapped, the switches are apart: b's next frame is valeB's marker.
  memset(&dt, 0, sizeof dt);
  ASSERT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_DETACH, "valeB:w1", &dt), 0);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_DETACH, "valeB:w1", &dt), ENXIO);
  ASSERT_EQ(a.send(frame(kBcast, A, kData, 3)), 0);
  Remote m("valeB:m");
  ASSERT_TRUE(m.ok());
  uint32_t mk = g_marker++;
  ASSERT_EQ(m.send(frame(kBcast, M, kMarker, mk)), 0);
  EXPECT_EQ(next_is(b, kMarker, mk), "") << "the switches are still joined";
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_DETACH, "valeA:w1", &dt), 0);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_DELIF, "w1", nullptr), 0);
  close(fd);
}

// A VALE port's private region has room for what netmap's private
// allocator holds besides the port: pipes in its region (upstream lb opens
// its output pipes "IN{N@MEM" there) and monitors. netmap's pools for a
// VALE port fit four one-ring pipes; so does unetmap's region, with four
// copy monitors of the port on top.
TEST(Vale, PrivateRegionHasRoomForPipesAndMonitors) {
  std::string err;
  auto in = unetmap::Port::open("vale9:in", &err);
  ASSERT_TRUE(in) << err;
  const unsigned mem = in.desc()->reg.nr_mem_id;
  ASSERT_GE(mem, 1000u) << "a private region";
  std::vector<unetmap::Port> ends;
  for (int k = 0; k < 4; k++) {
    const std::string name = "vale9:in{" + std::to_string(k) + "/x@" + std::to_string(mem);
    ends.push_back(unetmap::Port::open(name, &err));
    ASSERT_TRUE(ends.back()) << name << ": " << err;
    EXPECT_EQ(ends.back().desc()->reg.nr_mem_id, mem) << name;
  }
  for (int k = 0; k < 2; k++) {
    const std::string name = "vale9:in}" + std::to_string(k) + "@" + std::to_string(mem);
    ends.push_back(unetmap::Port::open(name, &err));
    ASSERT_TRUE(ends.back()) << name << ": " << err;
  }
  std::vector<unetmap::Port> mons;
  for (int k = 0; k < 4; k++) {
    mons.push_back(unetmap::Port::open("vale9:in/rt", &err));
    ASSERT_TRUE(mons.back()) << "monitor " << k << ": " << err;
  }
}

// A forwarder whose entry is removed under it (its runtime directory
// went) stops within a second or two: nobody could find or stop it any
// more; its port leaves the switch.
TEST(Vale, WrapperStopsWhenItsStateFileGoes) {
  int fd = open("/dev/netmap", O_RDWR);
  ASSERT_GE(fd, 0);
  nmreq_vale_newif nw;
  memset(&nw, 0, sizeof nw);
  ASSERT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_NEWIF, "w2", &nw), 0);
  nmreq_vale_attach at;
  memset(&at, 0, sizeof at);
  at.reg.nr_mode = NR_REG_ALL_NIC;
  ASSERT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_ATTACH, "valeA:w2", &at), 0);
  ASSERT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_ATTACH, "valeB:w2", &at), 0);
  const std::string entry = std::string(getenv("UNETMAP_DIR")) + "/workers/valeB:w2";
  pid_t pid = 0;
  {
    std::ifstream f(entry + ".state");
    for (std::string key; f >> key;)
      if (key == "pid") f >> pid;
  }
  ASSERT_GT(pid, 1);
  ASSERT_EQ(unlink((entry + ".lock").c_str()), 0);
  // Gone, or a zombie waiting for init.
  auto alive = [pid] {
    const char s = nmtest::proc_state(pid);
    return s != '?' && s != 'Z';
  };
  const double end = now_ms() + 5000;
  while (alive() && now_ms() < end) usleep(10000);
  EXPECT_FALSE(alive()) << "the forwarder kept running";
  nmreq_vale_detach dt;
  memset(&dt, 0, sizeof dt);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_DETACH, "valeB:w2", &dt), ENXIO);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_DETACH, "valeA:w2", &dt), 0);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_DELIF, "w2", nullptr), 0);
  close(fd);
}

TEST(Vale, PersistentPortLifecycleThroughTheApi) {
  using namespace unetmap;
  const Mac P = host(0x21), E = host(0x22);
  std::string why;
  ValeNewif conf;
  conf.slots[kTx] = conf.slots[kRx] = 256;
  EXPECT_EQ(vale_newif("p2", conf, &why), 0) << why;
  EXPECT_EQ(vale_newif("p2", conf, &why), EEXIST);
  EXPECT_EQ(vale_newif("bad:name", conf, &why), EINVAL);
  uint32_t idx = 99, idx2 = 99;
  EXPECT_EQ(vale_attach("vale1:p2", &idx, &why), 0) << why;
  EXPECT_EQ(vale_attach("vale1:p2", &idx2, &why), EBUSY);
  // (Attaching it to a second switch wraps it: NIOCCTRL, in the test above.)
  EXPECT_EQ(vale_attach("vale2:p2", &idx2, &why), EBUSY) << "attached to two switches";
  EXPECT_EQ(vale_attach("vale1:nosuch", &idx2, &why), ENXIO);

  {
    Remote e("vale1:e");
    ASSERT_TRUE(e.ok());
    for (int round = 0; round < 2; round++) {
      // A user opens it, exchanges frames, closes; the port stays.
      Remote u("vale1:p2");
      ASSERT_TRUE(u.ok());
      ASSERT_EQ(u.send(frame(kBcast, P, kData, 10 + round)), 0);
      EXPECT_EQ(next_is(e, kData, 10 + round, &P), "");
      ASSERT_EQ(e.send(frame(P, E, kData, 20 + round)), 0);
      EXPECT_EQ(next_is(u, kData, 20 + round, &E), "");
      EXPECT_EQ(u.close(), 0);
      auto v = switches();
      const ValePortInfo* pi = find_port(v, "vale1", "vale1:p2");
      ASSERT_NE(pi, nullptr) << "persistent port gone with its user";
      EXPECT_TRUE(pi->persistent);
      EXPECT_EQ(pi->index, idx);
      EXPECT_EQ(pi->slots[kRx], 256u);
    }
    std::string name = "vale1:p2";
    uint32_t b = 0, p = 0;
    EXPECT_EQ(vale_list_port(&name, &b, &p, &why), 0) << why;
    EXPECT_EQ(p, idx);
    EXPECT_EQ(vale_delif("p2", &why), EBUSY) << "deleted while attached";
  }
  // The ephemeral port is gone; the switch stays for the persistent port.
  auto v = switches();
  ASSERT_EQ(v.size(), 1u);
  ASSERT_EQ(v[0].ports.size(), 1u);
  EXPECT_EQ(v[0].ports[0].name, "vale1:p2");

  uint32_t didx = 99;
  EXPECT_EQ(vale_detach("vale1:p2", &didx, &why), 0) << why;
  EXPECT_EQ(didx, idx);
  EXPECT_TRUE(switches().empty()) << "switch left after its last port was detached";
  EXPECT_EQ(vale_delif("p2", &why), 0) << why;
  EXPECT_EQ(vale_delif("p2", &why), ENXIO);
  Remote gone("vale1:p2");  // now just an ephemeral port of that name
  EXPECT_TRUE(gone.ok());
}

// ===========================================================================
// 9. Pluggable lookups.

// dst MAC last byte: even -> port 0, odd -> port 1; 0xf0 -> port 7 (no
// such port); >= 0x80 -> drop.
uint32_t evenodd(const uint8_t* pkt, uint32_t len, const unetmap::ValeLookupCtx&) {
  if (len < 14) return unetmap::kValeDrop;
  uint8_t last = pkt[5];
  if (last == 0xf0) return 7;
  if (last >= 0x80) return unetmap::kValeDrop;
  return last & 1 ? 1 : 0;
}

void register_evenodd() {
  int rc = unetmap::vale_register_lookup("evenodd", evenodd);
  ASSERT_TRUE(rc == 0 || rc == EEXIST) << rc;  // EEXIST: an earlier test in this process
}

TEST(Vale, CustomLookupDecidesWhereFramesGo) {
  register_evenodd();
  EXPECT_EQ(unetmap::vale_register_lookup("evenodd", evenodd), EEXIST);
  EXPECT_EQ(unetmap::vale_register_lookup("", evenodd), EINVAL);
  const Mac S = host(0x55);
  // Ports in order: a = 0, b = 1, s = 2, c = 3. The children are forked
  // after the registration, so they know "evenodd".
  Remote a("vale0:a"), b("vale0:b"), s("vale0:s"), c("vale0:c");
  ASSERT_TRUE(a.ok() && b.ok() && s.ok() && c.ok());
  {
    auto v = switches();
    ASSERT_EQ(v.size(), 1u);
    ASSERT_EQ(v[0].ports.size(), 4u);
    EXPECT_EQ(v[0].ports[0].name, "vale0:a");
    EXPECT_EQ(v[0].ports[1].name, "vale0:b");
    EXPECT_EQ(v[0].ports[2].name, "vale0:s");
    EXPECT_EQ(v[0].ports[3].name, "vale0:c");
  }
  std::string why;
  EXPECT_EQ(unetmap::vale_set_lookup("vale0", "nosuch", &why), EINVAL);
  EXPECT_EQ(unetmap::vale_set_lookup("vale9", "hub", &why), ENOENT);
  ASSERT_EQ(unetmap::vale_set_lookup("vale0", "evenodd", &why), 0) << why;
  EXPECT_EQ(lookup_of("vale0"), "evenodd");

  Mac even = host(0x10), odd = host(0x11), drop = host(0x90), to0 = host(0x00), to1 = host(0x01);
  // Even -> a only, odd -> b only, >= 0x80 (broadcast too) -> nowhere.
  ASSERT_EQ(s.send(frame(even, S, kData, 1)), 0);
  ASSERT_EQ(s.send(frame(odd, S, kData, 2)), 0);
  ASSERT_EQ(s.send(frame(drop, S, kData, 3)), 0);
  ASSERT_EQ(s.send(frame(kBcast, S, kData, 4)), 0);
  ASSERT_EQ(s.send(frame(to0, S, kMarker, 5)), 0);
  ASSERT_EQ(s.send(frame(to1, S, kMarker, 6)), 0);
  EXPECT_EQ(next_is(a, kData, 1), "");
  EXPECT_EQ(next_is(a, kMarker, 5), "") << "a got a frame the lookup did not send it";
  EXPECT_EQ(next_is(b, kData, 2), "");
  EXPECT_EQ(next_is(b, kMarker, 6), "") << "b got a frame the lookup did not send it";

  // Back to learning: c (which the lookup never chose) must have nothing
  // queued before a broadcast marker.
  ASSERT_EQ(unetmap::vale_set_lookup("vale0", "", &why), 0);
  EXPECT_EQ(lookup_of("vale0"), "learning");
  uint32_t m = g_marker++;
  ASSERT_EQ(s.send(frame(kBcast, S, kMarker, m)), 0);
  EXPECT_EQ(next_is(c, kMarker, m), "") << "the custom lookup let a frame reach c";
  EXPECT_EQ(next_is(a, kMarker, m), "");
  EXPECT_EQ(next_is(b, kMarker, m), "");
}

// netmap drops a packet whose lookup names the sender's own port or a port
// index with no port behind it.
TEST(Vale, CustomLookupToTheSenderOrAMissingPortDrops) {
  register_evenodd();
  Remote a("vale0:a"), b("vale0:b"), c("vale0:c");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  std::string why;
  // From a (port 0) to an even MAC: the lookup says port 0, a itself.
  // Then to port 7, which does not exist. Each followed by a marker (sent
  // with the learning lookup, which floods it).
  struct Case {
    Mac dst;
    const char* what;
  };
  uint32_t seq = 1;
  for (const Case& k :
       {Case{host(0x20), "the sender's own port"}, Case{host(0xf0), "a missing port"}}) {
    ASSERT_EQ(unetmap::vale_set_lookup("vale0", "evenodd", &why), 0) << why;
    ASSERT_EQ(a.send(frame(k.dst, host(0xa), kData, seq++)), 0);
    ASSERT_EQ(unetmap::vale_set_lookup("vale0", "", &why), 0);
    uint32_t m = g_marker++;
    ASSERT_EQ(a.send(frame(kBcast, host(0xa), kMarker, m)), 0);
    for (Remote* r : {&b, &c}) {
      RxFrame f;
      ASSERT_TRUE(r->recv(&f));
      if (!frame_is(f, kMarker, m)) {
        ADD_FAILURE() << "lookup result " << k.what << ": " << r->spec() << " got " << describe(f)
                      << " (netmap drops it)";
        ASSERT_TRUE(r->recv(&f));
        EXPECT_TRUE(frame_is(f, kMarker, m)) << describe(f);
      }
    }
  }
  uint32_t m2 = g_marker++;
  ASSERT_EQ(b.send(frame(kBcast, host(0xb), kMarker, m2)), 0);
  EXPECT_EQ(next_is(a, kMarker, m2), "") << "a got its own frame back";
}

// A process that does not know a switch's lookup (it was not registered in
// it) must not crash forwarding on that switch.
uint32_t flood_all(const uint8_t*, uint32_t, const unetmap::ValeLookupCtx&) {
  return unetmap::kValeBroadcast;
}

TEST(Vale, SenderThatDoesNotKnowTheLookupDoesNotCrash) {
  // s is forked before "late" is registered: it does not know it.
  Remote s("vale0:s"), a("vale0:a");
  ASSERT_TRUE(s.ok() && a.ok());
  ASSERT_EQ(unetmap::vale_register_lookup("late", flood_all), 0);
  std::string why;
  ASSERT_EQ(unetmap::vale_set_lookup("vale0", "late", &why), 0) << why;
  int rc = s.send(frame(host(0x10), host(0x5), kData, 1));
  EXPECT_NE(rc, -1) << "the sender died in txsync on a switch with an unknown lookup";
  // The switch keeps working for everyone else.
  ASSERT_EQ(unetmap::vale_set_lookup("vale0", "", &why), 0);
  uint32_t m = g_marker++;
  Remote t("vale0:t");
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(t.send(frame(kBcast, host(0x7), kMarker, m)), 0);
  RxFrame f;
  ASSERT_TRUE(a.recv(&f));
  // Frame 1 was dropped (the library's documented choice: a process that
  // cannot run the lookup forwards nothing); the marker comes first.
  EXPECT_TRUE(frame_is(f, kMarker, m)) << "got " << describe(f);
  // s itself still works once the lookup is one it knows.
  ASSERT_EQ(s.send(frame(kBcast, host(0x5), kData, 2)), 0);
  EXPECT_EQ(next_is(a, kData, 2), "");
}

TEST(Vale, HubLookupFloodsEvenLearnedUnicast) {
  const Mac A = host(0xa), B = host(0xb);
  Remote a("vale0:a"), b("vale0:b"), c("vale0:c");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  // Teach A under the learning bridge.
  ASSERT_EQ(a.send(frame(kBcast, A, kData, 1)), 0);
  EXPECT_EQ(next_is(b, kData, 1), "");
  EXPECT_EQ(next_is(c, kData, 1), "");
  std::string why;
  ASSERT_EQ(unetmap::vale_set_lookup("vale0", "hub", &why), 0) << why;
  EXPECT_EQ(lookup_of("vale0"), "hub");
  ASSERT_EQ(b.send(frame(A, B, kData, 2)), 0);
  EXPECT_EQ(next_is(a, kData, 2), "");
  EXPECT_EQ(next_is(c, kData, 2), "") << "hub did not flood learned unicast";
  uint32_t m = g_marker++;
  ASSERT_EQ(a.send(frame(A, A, kMarker, m)), 0);  // hub floods this too, never back to a
  EXPECT_EQ(next_is(b, kMarker, m), "");
  EXPECT_EQ(next_is(c, kMarker, m), "");
  // Back to learning: A is still known, unicast goes to a only (control).
  ASSERT_EQ(unetmap::vale_set_lookup("vale0", "", &why), 0);
  ASSERT_EQ(b.send(frame(A, B, kData, 3)), 0);
  m = g_marker++;
  ASSERT_EQ(b.send(frame(kBcast, B, kMarker, m)), 0);
  EXPECT_EQ(next_is(a, kData, 3), "");
  EXPECT_EQ(next_is(a, kMarker, m), "") << "a got its own hub frame back";
  EXPECT_EQ(next_is(c, kMarker, m), "");
}

// ===========================================================================
// 10. Bad input.

TEST(Vale, SlotLongerThanItsBufferIsRejected) {
  const Mac S = host(0x5), O = host(0x6);
  Remote r1("vale0:r1"), r2("vale0:r2"), o("vale0:o");
  ASSERT_TRUE(r1.ok() && r2.ok() && o.ok());
  RawPort s("vale0:s");
  ASSERT_TRUE(s.ok()) << strerror(s.err);
  Ep se = ep_of(s);
  netmap_ring* t = s.tx();
  const uint32_t bsz = t->nr_buf_size;
  for (uint32_t bad_len : {bsz + 1, 65535u}) {
    SCOPED_TRACE(bad_len);
    ASSERT_EQ(s.txsync(), 0);
    const uint32_t head0 = t->head, tail0 = t->tail;
    // A good frame, then a slot claiming more bytes than its buffer holds.
    put_frame(t, frame(kBcast, S, kData, 1).data(), 60, 0, bsz);
    netmap_slot& bad = t->slot[t->cur];
    bad.len = uint16_t(bad_len);
    bad.flags = 0;
    t->head = t->cur = nm_ring_next(t, t->cur);
    errno = 0;
    EXPECT_EQ(s.txsync(), -1);
    EXPECT_EQ(errno, EINVAL);
    EXPECT_EQ(t->head, head0) << "ring not reset to its last good state";
    EXPECT_EQ(t->cur, head0);
    EXPECT_EQ(t->tail, tail0);
    // Nothing of the rejected batch was forwarded; other ports work.
    uint32_t m = g_marker++;
    ASSERT_EQ(o.send(frame(kBcast, O, kMarker, m)), 0);
    EXPECT_EQ(next_is(r1, kMarker, m), "") << "part of a rejected batch was forwarded";
    EXPECT_EQ(next_is(r2, kMarker, m), "") << "part of a rejected batch was forwarded";
  }
  // The sender itself recovers with valid slots.
  ASSERT_EQ(send_frame(se, frame(kBcast, S, kData, 2)), 0);
  EXPECT_EQ(next_is(r1, kData, 2), "");
  EXPECT_EQ(next_is(r2, kData, 2), "");
  EXPECT_EQ(next_is(o, kData, 2), "");
}

// NS_INDIRECT: the frame is at slot->ptr in the sender's memory (here a
// malloc'd buffer), not in the slot's buffer, which holds garbage. Every
// fragment or only some may be indirect.
void put_indirect(netmap_ring* r, const uint8_t* f, size_t len, uint32_t chunk, uint32_t direct_mask) {
  uint32_t i = r->cur, k = 0;
  size_t off = 0;
  do {
    netmap_slot& s = r->slot[i];
    size_t n = std::min<size_t>(chunk, len - off);
    uint8_t* b = reinterpret_cast<uint8_t*>(NETMAP_BUF(r, s.buf_idx));
    memset(b, 0xee, r->nr_buf_size);  // not the frame
    s.len = uint16_t(n);
    s.flags = uint16_t(off + n < len ? NS_MOREFRAG : 0);
    if (direct_mask & (1u << k)) {
      memcpy(b, f + off, n);
    } else {
      s.flags |= NS_INDIRECT;
      s.ptr = uint64_t(uintptr_t(f + off));
    }
    off += n;
    k++;
    i = nm_ring_next(r, i);
  } while (off < len);
  r->head = r->cur = i;
}

TEST(Vale, IndirectSlotsAreReadFromTheSendersMemory) {
  const Mac S = host(0x5), R = host(0x6);
  Remote r("vale0:r"), o("vale0:o");
  ASSERT_TRUE(r.ok() && o.ok());
  RawPort s("vale0:s");
  ASSERT_TRUE(s.ok()) << strerror(s.err);
  netmap_ring* t = s.tx();
  const uint32_t bsz = t->nr_buf_size;
  uint32_t seq = 1;
  // One slot, two, three (the middle one direct), as netmap's VALE copies them.
  for (auto [len, direct] : {std::pair{60u, 0u}, {1514u, 0u}, {bsz + 100, 0u}, {2 * bsz + 7, 2u}}) {
    SCOPED_TRACE(len);
    std::vector<uint8_t> want = frame(kBcast, S, kData, seq, len);
    uint8_t* heap = static_cast<uint8_t*>(malloc(len));
    ASSERT_NE(heap, nullptr);
    memcpy(heap, want.data(), len);
    ASSERT_EQ(s.txsync(), 0);
    ASSERT_GE(nm_ring_space(t), slots_for(len, bsz));
    put_indirect(t, heap, len, bsz, direct);
    ASSERT_EQ(s.txsync(), 0);
    memset(heap, 0, len);  // forwarded in the txsync: later writes change nothing
    free(heap);
    for (Remote* x : {&r, &o}) {
      RxFrame got;
      ASSERT_TRUE(x->recv(&got)) << x->spec() << ": the indirect frame did not arrive";
      EXPECT_TRUE(got.data == want) << x->spec() << ": " << describe(got);
      for (uint16_t fl : got.flags) EXPECT_FALSE(fl & NS_INDIRECT) << "a receiver saw NS_INDIRECT";
    }
    seq++;
  }
  // Unicast is looked up in the indirect bytes: R learned, then reached alone.
  ASSERT_EQ(r.send(frame(kBcast, R, kData, 0)), 0);
  ASSERT_EQ(next_is(o, kData, 0), "");
  std::vector<uint8_t> uni = frame(R, S, kData, seq, 100);
  ASSERT_EQ(s.txsync(), 0);
  put_indirect(t, uni.data(), uni.size(), bsz, 0);
  ASSERT_EQ(s.txsync(), 0);
  EXPECT_EQ(next_is(r, kData, seq), "");
  uint32_t m = g_marker++;
  ASSERT_EQ(send_frame(ep_of(s), frame(kBcast, S, kMarker, m)), 0);
  EXPECT_EQ(next_is(o, kMarker, m), "") << "indirect unicast to R was flooded";
  EXPECT_EQ(next_is(r, kMarker, m), "");
  const auto sw = switches();
  const auto* ps = find_port(sw, "vale0", "vale0:s");
  ASSERT_NE(ps, nullptr);
  EXPECT_EQ(ps->tx_drops, 0u);
}

TEST(Vale, IndirectSlotWithABadAddressIsDroppedAndCounted) {
  const Mac S = host(0x5);
  Remote r("vale0:r");
  ASSERT_TRUE(r.ok());
  RawPort s("vale0:s");
  ASSERT_TRUE(s.ok()) << strerror(s.err);
  netmap_ring* t = s.tx();
  const uint32_t bsz = t->nr_buf_size;
  // Memory that is gone, memory never mapped, a null pointer, a kernel
  // address, and a frame whose second fragment runs off a mapping's end.
  const long pg = sysconf(_SC_PAGESIZE);
  uint8_t* gone = static_cast<uint8_t*>(mmap(nullptr, size_t(pg), PROT_READ | PROT_WRITE,
                                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(gone, MAP_FAILED);
  munmap(gone, size_t(pg));
  uint8_t* two = static_cast<uint8_t*>(mmap(nullptr, size_t(2 * pg), PROT_READ | PROT_WRITE,
                                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(two, MAP_FAILED);
  munmap(two + pg, size_t(pg));
  std::vector<uint8_t> good = frame(kBcast, S, kData, 1, 60);
  memcpy(two + pg - 60, good.data(), 60);  // the last 60 bytes of a mapped page
  const uint64_t bad[] = {uint64_t(uintptr_t(gone)), 0, 16, 0xffff888000000000ull,
                          ~0ull - 100};
  uint64_t sent_bad = 0;
  for (uint64_t ptr : bad) {
    SCOPED_TRACE(ptr);
    ASSERT_EQ(s.txsync(), 0);
    netmap_slot& sl = t->slot[t->cur];
    sl.len = 60;
    sl.flags = NS_INDIRECT;
    sl.ptr = ptr;
    t->head = t->cur = nm_ring_next(t, t->cur);
    EXPECT_EQ(s.txsync(), 0) << "a bad indirect address is the packet's problem, not the ring's";
    sent_bad++;
  }
  {  // fragment 1 readable, fragment 2 past the end of the mapping
    ASSERT_EQ(s.txsync(), 0);
    netmap_slot& a = t->slot[t->cur];
    a.len = 60, a.flags = NS_INDIRECT | NS_MOREFRAG, a.ptr = uint64_t(uintptr_t(two + pg - 60));
    uint32_t j = nm_ring_next(t, t->cur);
    netmap_slot& b = t->slot[j];
    b.len = uint16_t(bsz), b.flags = NS_INDIRECT, b.ptr = uint64_t(uintptr_t(two + pg));
    t->head = t->cur = nm_ring_next(t, j);
    EXPECT_EQ(s.txsync(), 0);
    sent_bad++;
  }
  // The same page's good bytes still go through, and so does a marker.
  ASSERT_EQ(s.txsync(), 0);
  put_indirect(t, two + pg - 60, 60, bsz, 0);
  ASSERT_EQ(s.txsync(), 0);
  EXPECT_EQ(next_is(r, kData, 1), "") << "nothing of the bad packets may arrive first";
  uint32_t m = g_marker++;
  ASSERT_EQ(send_frame(ep_of(s), frame(kBcast, S, kMarker, m)), 0);
  EXPECT_EQ(next_is(r, kMarker, m), "");
  // Good and bad addresses in one batch (one txsync): the good packets
  // arrive whole and in order around the bad ones.
  std::vector<uint8_t> g2 = frame(kBcast, S, kData, 2, 60), g3 = frame(kBcast, S, kData, 3, bsz + 40),
                       g4 = frame(kBcast, S, kData, 4, 200);
  ASSERT_EQ(s.txsync(), 0);
  put_indirect(t, g2.data(), g2.size(), bsz, 0);
  for (uint64_t ptr : {uint64_t(uintptr_t(gone)), uint64_t(0)}) {
    netmap_slot& sl = t->slot[t->cur];
    sl.len = 60, sl.flags = NS_INDIRECT, sl.ptr = ptr;
    t->head = t->cur = nm_ring_next(t, t->cur);
    sent_bad++;
  }
  put_indirect(t, g3.data(), g3.size(), bsz, 0);
  {  // second fragment gone
    netmap_slot& a = t->slot[t->cur];
    a.len = 60, a.flags = NS_INDIRECT | NS_MOREFRAG, a.ptr = uint64_t(uintptr_t(g4.data()));
    uint32_t j = nm_ring_next(t, t->cur);
    netmap_slot& b = t->slot[j];
    b.len = 60, b.flags = NS_INDIRECT, b.ptr = uint64_t(uintptr_t(gone));
    t->head = t->cur = nm_ring_next(t, j);
    sent_bad++;
  }
  put_indirect(t, g4.data(), g4.size(), bsz, 0);
  ASSERT_EQ(s.txsync(), 0);
  EXPECT_EQ(next_is(r, kData, 2), "");
  EXPECT_EQ(next_is(r, kData, 3), "");
  EXPECT_EQ(next_is(r, kData, 4), "");
  m = g_marker++;
  ASSERT_EQ(send_frame(ep_of(s), frame(kBcast, S, kMarker, m)), 0);
  EXPECT_EQ(next_is(r, kMarker, m), "");
  munmap(two, size_t(pg));
  const auto sw = switches();
  const auto* ps = find_port(sw, "vale0", "vale0:s");
  ASSERT_NE(ps, nullptr);
  EXPECT_EQ(ps->tx_drops, sent_bad);
}

TEST(Vale, GarbageBufferIndexesInAReceiversRingAreSkipped) {
  const Mac S = host(0x5);
  Remote bad("vale0:bad"), c("vale0:c"), s("vale0:s");
  ASSERT_TRUE(bad.ok() && c.ok() && s.ok());
  ASSERT_EQ(s.send(frame(kBcast, S, kData, 0)), 0);
  EXPECT_EQ(next_is(bad, kData, 0), "");
  EXPECT_EQ(next_is(c, kData, 0), "");
  // bad releases its ring, then writes garbage buffer indexes into every
  // slot (the ones the switch now owns included).
  Rep sr = bad.simple(kOpScribble);
  ASSERT_EQ(sr.rc, 0);
  // s floods 1500 frames of 1000 bytes: more than bad's ring can hold.
  uint32_t seq = 1;
  for (int round = 0; round < 15; round++) {
    Rep rep = s.send_many(kBcast, S, kData, seq, 100, 25, 1000);
    ASSERT_EQ(rep.rc, 0) << "the sender failed (or died) copying into garbage slots";
    for (uint32_t i = 0; i < 100; i++, seq++) {
      std::string e = next_is(c, kData, seq);
      ASSERT_EQ(e, "") << "c's data damaged by bad's garbage";
    }
  }
  // bad's slots were delivered without data (their buffers are not real).
  Rep lens = bad.simple(kOpRxLens);
  EXPECT_GT(lens.a, 0u);
  EXPECT_EQ(lens.b, 0u) << "a slot with a garbage buffer index was given data";
  // Everyone is alive and the switch still forwards.
  uint32_t m = g_marker++;
  ASSERT_EQ(c.send(frame(kBcast, host(0xc), kMarker, m)), 0);
  EXPECT_EQ(next_is(s, kMarker, m), "");
  EXPECT_EQ(s.close(), 0) << "the sender did not survive";
  EXPECT_EQ(c.close(), 0);
}

}  // namespace
