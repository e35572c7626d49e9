// Hostile applications (issue 9, finding 3): what an application writes
// into its rings after the sync prologue checked it never reaches the
// library's lookups, copies or swaps unchecked, and never reaches another
// port as a length beyond its buffer or a buffer index that is not one.
//
// First, one test per path that read a slot twice (each fails without its
// fix): a VALE NS_MOREFRAG chain left pending and rewritten before its last
// fragment (the same process, and another process that never read it), a
// destination with smaller buffers than a fragment, zero-copy monitors
// whose slots (or the watched port's) are rewritten before a swap, and a
// pipe sender whose second thread rewrites slots while the first syncs.
//
// Then the storm (HostileStorm.*): a hostile process writes garbage into its
// rings, slots, netmap_if and ring headers between syncs and polls, on
// pipes, VALE ports, monitors of them and extra buffers, while well-behaved
// pairs in other processes exchange numbered, checksummed packets on the
// same switch, in the same region and in another one. See the comment
// above the storm for what "garbage" covers and what is checked.
#include <gtest/gtest.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "mem/region.h"
#include "ports/vale/vale.h"
#include "util/remote_port.h"
#include "util/test_util.h"

namespace {

using nmtest::Child;
using nmtest::Event;
using nmtest::RawPort;
using nmtest::fnv;

// The region of an open port (kept mapped while the result lives).
std::shared_ptr<unetmap::Region> region_of_id(uint16_t id) {
  int err = 0;
  return unetmap::Region::get(id, unetmap::RegionConfig::from_env(), &err, nullptr, false);
}
std::shared_ptr<unetmap::Region> region_of(const RawPort& p) { return region_of_id(p.reg.nr_mem_id); }

unetmap::KringState* kstate_of(const RawPort& p, netmap_ring* ring,
                               std::shared_ptr<unetmap::Region>* keep) {
  *keep = region_of(p);
  uint64_t ofs = uint64_t(reinterpret_cast<char*>(ring) - static_cast<char*>(p.mem));
  return (*keep)->kring(uint32_t((ofs - (*keep)->hdr()->ring_pool) / (*keep)->cfg().ring_size));
}

// A 60-byte broadcast frame whose bytes 14.. are `tag` repeated.
void put_frame(netmap_ring* r, uint32_t i, uint16_t len, uint16_t flags, uint8_t tag) {
  netmap_slot& s = r->slot[i];
  uint8_t* f = reinterpret_cast<uint8_t*>(NETMAP_BUF(r, s.buf_idx));
  memset(f, 0xff, 6);
  const uint8_t src[6] = {0x02, 0, 0, 0, 0, 0x33};
  memcpy(f + 6, src, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  memset(f + 14, tag, len - 14);
  s.len = len;
  s.flags = flags;
}

struct Got {
  std::vector<uint16_t> lens;  // per slot
  std::vector<uint8_t> tags;   // byte 14 of each slot's buffer with len > 14
  bool oversized = false;      // some slot claimed more than its buffer
  bool bad_index = false;      // some slot named no buffer of the region
};

// Everything on p's rx ring 0 now (after an rxsync), released.
Got drain(RawPort& p) {
  Got g;
  EXPECT_EQ(p.rxsync(), 0);
  netmap_ring* r = p.rx();
  auto reg = region_of(p);
  while (!nm_ring_empty(r)) {
    const netmap_slot& s = r->slot[r->cur];
    g.lens.push_back(s.len);
    if (s.len > r->nr_buf_size) g.oversized = true;
    if (!reg->valid_buf(s.buf_idx)) g.bad_index = true;
    if (!g.oversized && !g.bad_index && s.len > 14)
      g.tags.push_back(reinterpret_cast<uint8_t*>(NETMAP_BUF(r, s.buf_idx))[14]);
    r->head = r->cur = nm_ring_next(r, r->cur);
  }
  EXPECT_EQ(p.rxsync(), 0);
  return g;
}

const unetmap::ValePortInfo* vale_port(std::vector<unetmap::ValeSwitchInfo>* v,
                                        const std::string& sw, const std::string& port) {
  std::string why;
  v->clear();
  EXPECT_EQ(unetmap::vale_list(sw, v, &why), 0) << why;
  for (auto& s : *v)
    for (auto& p : s.ports)
      if (p.name == port) return &p;
  return nullptr;
}

// Start a chain on s (first fragment, NS_MOREFRAG), txsync it: the switch
// keeps it until the last fragment. Then rewrite the fragment already
// handed over the way `rewrite` says, add the last fragment and txsync.
// Run in a child, so that a crash inside the library is an exit status.
int pending_chain_rewritten(RawPort& s, const std::function<void(netmap_slot&)>& rewrite) {
  Child c([&] {
    netmap_ring* t = s.tx();
    put_frame(t, 0, 60, NS_MOREFRAG, 0xa1);
    t->head = t->cur = 1;
    if (s.txsync() != 0) return 10;
    rewrite(t->slot[0]);
    put_frame(t, 1, 60, 0, 0xa2);
    t->head = t->cur = 2;
    int rc = s.txsync();
    return rc == 0 ? 0 : errno == EINVAL ? 1 : 11;
  });
  return c.wait(10000);
}

// The first fragment of a pending chain gets a length beyond its buffer
// after the check: the receiver must not see it (it got 60000 in a
// 2048-byte buffer). What was handed over is what is sent.
TEST(Hostile, ValePendingFragmentRewrittenWithALongLength) {
  RawPort r("valeh:r"), s("valeh:s");
  ASSERT_TRUE(r.ok() && s.ok());
  int rc = pending_chain_rewritten(s, [](netmap_slot& sl) { sl.len = 60000; });
  ASSERT_EQ(rc, 0) << "the sender's txsync failed or crashed";
  Got g = drain(r);
  EXPECT_FALSE(g.oversized) << "the receiver got a length beyond its buffer";
  EXPECT_EQ(g.lens, (std::vector<uint16_t>{60, 60})) << "the chain as it was handed over";
  EXPECT_EQ(g.tags, (std::vector<uint8_t>{0xa1, 0xa2}));
}

// The same with a buffer index far outside the region: the lookup read it
// (SIGSEGV in the sender).
TEST(Hostile, ValePendingFragmentRewrittenWithABadBufferIndex) {
  RawPort r("valeh:r"), s("valeh:s");
  ASSERT_TRUE(r.ok() && s.ok());
  int rc = pending_chain_rewritten(s, [](netmap_slot& sl) { sl.buf_idx = 0x7ffffff0; });
  ASSERT_EQ(rc, 0) << "the sender's txsync failed or crashed (128+11: SIGSEGV)";
  Got g = drain(r);
  EXPECT_FALSE(g.oversized || g.bad_index);
  EXPECT_EQ(g.lens, (std::vector<uint16_t>{60, 60})) << "the chain as it was handed over";
}

// Another process shares the binding (fork) and completes a chain it never
// read, after a fragment was rewritten: the fragment is checked again and
// the packet dropped, counted in the sender's tx drops; nothing crashes and
// the receiver gets nothing bad. The next packet goes through.
TEST(Hostile, ValePendingFragmentRewrittenBeforeAnotherProcessSyncs) {
  for (int variant = 0; variant < 2; variant++) {
    SCOPED_TRACE(variant);
    const std::string sw = "valeh" + std::to_string(variant);
    RawPort r((sw + ":r").c_str()), s((sw + ":s").c_str());
    ASSERT_TRUE(r.ok() && s.ok());
    Event go;
    Child other([&] {  // forked before s ever synced: its view read nothing
      if (go.wait(10000) < 0) return 20;
      netmap_ring* t = s.tx();
      if (variant == 0) t->slot[0].len = 60000;
      else t->slot[0].buf_idx = 0x7ffffff0;
      put_frame(t, 1, 60, 0, 0xa2);
      t->head = t->cur = 2;
      return s.txsync() == 0 ? 0 : 21;
    });
    netmap_ring* t = s.tx();
    put_frame(t, 0, 60, NS_MOREFRAG, 0xa1);
    t->head = t->cur = 1;
    ASSERT_EQ(s.txsync(), 0);
    go.signal();
    ASSERT_EQ(other.wait(10000), 0) << "the other process's txsync failed or crashed";
    Got g = drain(r);
    EXPECT_FALSE(g.oversized || g.bad_index);
    EXPECT_TRUE(g.lens.empty()) << "a packet with a bad fragment was forwarded";
    std::vector<unetmap::ValeSwitchInfo> v;
    const unetmap::ValePortInfo* ps = vale_port(&v, sw, sw + ":s");
    ASSERT_NE(ps, nullptr);
    EXPECT_EQ(ps->tx_drops, 1u) << "the dropped packet is counted";
    // The sender goes on.
    ASSERT_EQ(s.txsync(), 0);
    put_frame(t, t->cur, 60, 0, 0xa3);
    t->head = t->cur = nm_ring_next(t, t->cur);
    ASSERT_EQ(s.txsync(), 0);
    g = drain(r);
    EXPECT_EQ(g.tags, (std::vector<uint8_t>{0xa3}));
  }
}

// A receiver whose buffers are shorter than a fragment gets it split over
// slots that fit (it got len 3000 in a 2048-byte buffer; later the frame
// was dropped): nothing is dropped, no length is beyond a buffer.
TEST(Hostile, ValeFragmentLongerThanTheReceiversBuffersIsSplit) {
  setenv("UNETMAP_BUF_SIZE", "4096", 1);  // the sender's private region
  RawPort s("valeb:s");
  unsetenv("UNETMAP_BUF_SIZE");
  RawPort r("valeb:r");
  ASSERT_TRUE(r.ok() && s.ok());
  ASSERT_EQ(s.tx()->nr_buf_size, 4096u);
  ASSERT_EQ(r.rx()->nr_buf_size, 2048u);
  netmap_ring* t = s.tx();
  put_frame(t, 0, 3000, 0, 0xb1);
  put_frame(t, 1, 2048, 0, 0xb2);
  t->head = t->cur = 2;
  ASSERT_EQ(s.txsync(), 0);
  Got g = drain(r);
  EXPECT_FALSE(g.oversized) << "the receiver got a length beyond its buffer";
  EXPECT_EQ(g.lens, (std::vector<uint16_t>{2048, 952, 2048}));
  EXPECT_EQ(g.tags, (std::vector<uint8_t>{0xb1, 0xb1, 0xb2}));
  std::vector<unetmap::ValeSwitchInfo> v;
  const unetmap::ValePortInfo* pr = vale_port(&v, "valeb", "valeb:r");
  ASSERT_NE(pr, nullptr);
  EXPECT_EQ(pr->drops, 0u);
}

// Send `count` 60-byte frames on a (tx ring 0) and txsync.
void send_frames(RawPort& a, uint32_t count, uint8_t tag) {
  ASSERT_EQ(a.txsync(), 0);
  netmap_ring* t = a.tx();
  for (uint32_t i = 0; i < count; i++) {
    ASSERT_GT(nm_ring_space(t), 0u);
    put_frame(t, t->cur, 60, 0, tag);
    t->head = t->cur = nm_ring_next(t, t->cur);
  }
  ASSERT_EQ(a.txsync(), 0);
}

// A zero-copy monitor writes lengths beyond its buffers into the free slots
// it will swap to the port: the port never gets them (it did, as the
// length of its tx slots and of the receiver's released slots).
TEST(Hostile, ZeroCopyMonitorSlotLengthsAreCheckedBeforeASwap) {
  RawPort a("zl{0", NR_REG_ALL_NIC, 0, 0, 64), b("zl}0");
  ASSERT_TRUE(a.ok() && b.ok());
  RawPort z("zl{0", NR_REG_ALL_NIC, 0, NR_ZCOPY_MON);
  ASSERT_TRUE(z.ok()) << strerror(z.err);
  netmap_ring* zr = z.rx();
  for (uint32_t i = 0; i < zr->num_slots; i++) zr->slot[i].len = 60000;
  send_frames(a, 10, 0xc1);
  Got g = drain(b);
  EXPECT_EQ(g.lens.size(), 10u);
  ASSERT_EQ(a.txsync(), 0);  // the slots come back to a: swaps would happen now
  netmap_ring* t = a.tx();
  for (uint32_t i = 0; i < t->num_slots; i++)
    EXPECT_LE(t->slot[i].len, t->nr_buf_size) << "tx slot " << i;
  netmap_ring* br = b.rx();
  for (uint32_t i = 0; i < br->num_slots; i++)
    EXPECT_LE(br->slot[i].len, br->nr_buf_size) << "rx slot " << i;
  ASSERT_EQ(z.rxsync(), 0);
  EXPECT_TRUE(nm_ring_empty(zr)) << "nothing swapped in";
  std::shared_ptr<unetmap::Region> keep;
  EXPECT_GT(kstate_of(z, zr, &keep)->fwd_drops, 0u);
  // Traffic goes on.
  send_frames(a, 5, 0xc2);
  g = drain(b);
  EXPECT_EQ(g.tags, std::vector<uint8_t>(5, 0xc2));
}

// The watched port rewrites tx slots it had handed over, before the txsync
// that gives them back: the monitor never gets a bad index or length (it
// got buffer 0x7ffffff0, and lengths of 60000).
TEST(Hostile, ZeroCopyMonitorNeverGetsTheWatchedPortsBadSlots) {
  RawPort a("zw{0", NR_REG_ALL_NIC, 0, 0, 64), b("zw}0");
  ASSERT_TRUE(a.ok() && b.ok());
  auto reg = region_of(a);
  const uint32_t base = reg->bufs_in_use();
  RawPort z("zw{0", NR_REG_ALL_NIC, 0, NR_ZCOPY_MON);
  ASSERT_TRUE(z.ok()) << strerror(z.err);
  send_frames(a, 10, 0xd1);
  EXPECT_EQ(drain(b).lens.size(), 10u);
  netmap_ring* t = a.tx();
  std::vector<uint32_t> keep_idx;
  for (uint32_t i = 0; i < 10; i++) {
    keep_idx.push_back(t->slot[i].buf_idx);
    if (i % 2) t->slot[i].buf_idx = 0x7ffffff0;
    else t->slot[i].len = 60000;
  }
  ASSERT_EQ(a.txsync(), 0);
  Got g = drain(z);
  EXPECT_FALSE(g.oversized) << "the monitor got a length beyond its buffer";
  EXPECT_FALSE(g.bad_index) << "the monitor got a buffer index that is no buffer";
  EXPECT_TRUE(g.lens.empty());
  // Put the buffers back, so that closing frees what the ring owns.
  for (uint32_t i = 0; i < 10; i++) t->slot[i].buf_idx = keep_idx[i];
  z.close();
  EXPECT_EQ(reg->bufs_in_use(), base) << "no buffer lost";
}

// A sender's second thread rewrites its tx slots (index, length) while the
// first one syncs: what passed the prologue's check may change before the
// pipe hands it on. The receiver must never get a slot that names no
// buffer or claims more than one (it did: the pipe read each slot again).
TEST(Hostile, PipeSlotRewrittenDuringTheSyncNeverReachesTheReceiver) {
  RawPort b("pr}0");
  ASSERT_TRUE(b.ok());
  Event ready, stop;
  Child a([&] {
    RawPort p("pr{0");
    if (!p.ok()) return 1;
    netmap_ring* t = p.tx();
    const uint32_t n = t->num_slots;
    std::vector<uint32_t> idx(n);
    for (uint32_t i = 0; i < n; i++) idx[i] = t->slot[i].buf_idx;
    std::atomic<bool> quit{false};
    // Both threads at once, when there are two CPUs: one each.
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    std::thread scribbler([&] {
      cpu_set_t other;
      CPU_ZERO(&other);
      CPU_SET(1, &other);
      pthread_setaffinity_np(pthread_self(), sizeof other, &other);
      // The slots just handed over, for a moment each.
      for (uint64_t x = 1; !quit.load(std::memory_order_relaxed); x = nmtest::mix64(x)) {
        const uint32_t j = uint32_t((*reinterpret_cast<volatile uint32_t*>(&t->head) + n - 1 - x % 64) % n);
        netmap_slot& s = t->slot[j];
        volatile uint32_t* bi = &s.buf_idx;
        volatile uint16_t* ln = &s.len;
        if (x & 1) *bi = 0x7ffffff0;
        else *ln = 60000;
        for (int spin = 0; spin < 50; spin++) asm volatile("");
        if (x & 1) *bi = idx[j];
        else *ln = 60;
      }
    });
    ready.signal();
    int rc = 0;
    while (stop.wait(0) < 0) {
      for (uint32_t k = 0; k < 64 && nm_ring_space(t); k++) {
        netmap_slot& s = t->slot[t->cur];
        s.len = 60;
        s.flags = 0;
        t->head = t->cur = nm_ring_next(t, t->cur);
      }
      if (p.txsync() != 0 && errno != EINVAL) rc = 2;
    }
    quit = true;
    scribbler.join();
    for (uint32_t i = 0; i < n; i++) t->slot[i].buf_idx = idx[i];  // what the ring owns
    return rc;
  });
  ASSERT_GE(ready.wait(10000), 0);
  auto reg = region_of(b);
  netmap_ring* r = b.rx();
  uint64_t slots = 0, bad = 0;
  for (const double end = nmtest::now_ms() + 2000; nmtest::now_ms() < end;) {
    b.poll(POLLIN, 100);
    ASSERT_EQ(b.rxsync(), 0);
    for (; !nm_ring_empty(r); r->head = r->cur = nm_ring_next(r, r->cur), slots++) {
      const netmap_slot s = r->slot[r->cur];
      if (!reg->valid_buf(s.buf_idx) || s.len > r->nr_buf_size) bad++;
    }
  }
  stop.signal();
  EXPECT_EQ(a.wait(10000), 0) << "the sender failed or crashed";
  EXPECT_GT(slots, 1000u);
  EXPECT_EQ(bad, 0u) << "of " << slots << " slots, " << bad << " named no buffer or were too long";
}

// ---------------------------------------------------------------------------
// The storm.
//
// Processes: a keeper holds a pipe open in regions 1 and 2 (so their pools
// outlive the children; not the test itself, whose ports every child would
// inherit) and the test compares the pools' free counts (buffers,
// rings, netmap_ifs) before and after; a good VALE pair on switch valeS in
// region 2 (g1 sends numbered, checksummed frames to g2, paced by g2's
// acknowledgements; a VALE sender never blocks, so g2 may lose frames, but
// never more than its rx ring's drop counter shows); a good pipe pair
// gp{0 -> gp}0 in region 1 (multi-slot packets; a pipe loses nothing); and
// the hostile process H.
//
// H opens, in region 1, the pipe hp{0 / hp}0 (hp{0 with extra buffers), a
// copy monitor of hp{0 and a zero-copy monitor of hp}0; on valeS, in
// private regions, h1 (extra buffers) with a copy monitor and h2 with a
// zero-copy monitor; and copy monitors of the good ports gp{0 and valeS:g2
// (their rings are H's to scribble on). Each iteration it writes garbage
// and then syncs, polls, "sends" (advances head over slots with random
// lengths and flags, NS_MOREFRAG chains included) or "receives"; every
// kReopen iterations it closes everything and opens it again. Meanwhile a
// second thread of H writes random lengths, flags, ptr, head and cur into
// its rings without pause (a slot that changes while the library reads it).
//
// Garbage, per iteration: a slot's len, flags or ptr; a buffer index out of
// every region (restored after the syncs unless the library replaced it);
// two slots of a VALE or monitor ring exchanging their buffer indexes
// (exchanged back after the syncs if both are still as H left them); a
// ring's head, cur, tail, flags, num_slots, nr_buf_size, buf_ofs, ringid or
// dir; the netmap_if's ring counts, ring offsets or ni_bufs_head; extra
// buffers swapped into h1's tx slots (NS_BUF_CHANGED). H uses only the
// values it saved at open. Before closing, H puts back the ring header
// fields and the netmap_if and rebuilds its extra-buffer chain.
//
// What H does NOT do here: put an index of a buffer it does not own into a
// slot or into its extra-buffer chain, or leave num_slots or the netmap_if
// broken at close. On netmap that frees another port's buffers at close;
// that is finding 4 of issue 9 (the region must know which ring owns a
// buffer), owned by the registration/region code. ForeignBuffers below is
// the same storm with those too (H still writes frame bytes only into
// buffers of ports it bound: anyone who maps a region can write all of its
// buffers, as with netmap).
//
// Passes if: nobody dies of a signal (H gets only EINVAL), the good pairs
// receive no damaged byte, out of order or unaccounted loss, and the pools
// are back to their start values. HOSTILE_SEED=<n> repeats a run's garbage
// (the seed is printed); HOSTILE_ITERS=<n> sets the iterations.

constexpr uint8_t kG1[6] = {0x02, 0, 0, 0, 0x47, 0x01};
constexpr uint8_t kG2[6] = {0x02, 0, 0, 0, 0x47, 0x02};
constexpr uint32_t kGoodHdr = 26;  // dst src type | seq | len | fnv of the rest

uint32_t good_len(uint32_t seq) { return 60 + uint32_t(nmtest::mix64(seq ^ 0x600d) % 1455); }

void good_frame(uint8_t* p, uint32_t seq) {
  const uint32_t len = good_len(seq);
  memcpy(p, kG2, 6);
  memcpy(p + 6, kG1, 6);
  p[12] = 0x88;
  p[13] = 0xb6;
  memcpy(p + 14, &seq, 4);
  memcpy(p + 18, &len, 4);
  uint64_t st = nmtest::mix64(uint64_t(seq) << 20);
  for (uint32_t i = kGoodHdr; i < len; i += 8) {
    st = nmtest::mix64(st);
    memcpy(p + i, &st, std::min<uint32_t>(8, len - i));
  }
  const uint32_t h = fnv(p + kGoodHdr, len - kGoodHdr);
  memcpy(p + 22, &h, 4);
}

// A port opened as a plain application does, with what RawPort lacks
// (mem_id, extra buffers); its rings are found once, at open.
struct Port {
  int fd = -1;
  void* mem = nullptr;
  nmreq_register reg{};
  netmap_if* nifp = nullptr;
  std::vector<netmap_ring*> tx, rx;

  Port() = default;
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;
  ~Port() { close(); }
  int open(const char* name, uint64_t flags = 0, uint16_t mem_id = 0, uint32_t extra = 0) {
    fd = ::open("/dev/netmap", O_RDWR);
    if (fd < 0) return errno;
    memset(&reg, 0, sizeof reg);
    reg.nr_mode = NR_REG_ALL_NIC;
    reg.nr_flags = flags;
    reg.nr_mem_id = mem_id;
    reg.nr_extra_bufs = extra;
    if (int e = nmtest::ctrl(fd, NETMAP_REQ_REGISTER, name, &reg)) {
      close();
      return e;
    }
    mem = mmap(nullptr, reg.nr_memsize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED) {
      mem = nullptr;
      int e = errno;
      close();
      return e;
    }
    nifp = NETMAP_IF(mem, reg.nr_offset);
    for (uint32_t i = 0; i < nifp->ni_tx_rings; i++) tx.push_back(NETMAP_TXRING(nifp, i));
    for (uint32_t i = 0; i < nifp->ni_rx_rings; i++) rx.push_back(NETMAP_RXRING(nifp, i));
    return 0;
  }
  void close() {
    if (mem) munmap(mem, reg.nr_memsize);
    mem = nullptr;
    nifp = nullptr;
    tx.clear();
    rx.clear();
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  int txsync() const { return ioctl(fd, NIOCTXSYNC, nullptr) < 0 ? errno : 0; }
  int rxsync() const { return ioctl(fd, NIOCRXSYNC, nullptr) < 0 ? errno : 0; }
  // poll until `ev` or the deadline; revents (0 on timeout).
  short wait(short ev, int timeout_ms) const {
    pollfd p{fd, ev, 0};
    return ::poll(&p, 1, timeout_ms) == 1 ? p.revents : 0;
  }
};

struct GoodResult {
  int32_t rc = -1;         // 0: ran to the end
  uint64_t count = 0;      // sent or received
  uint64_t damaged = 0;    // a byte, a length or an index wrong
  uint64_t disorder = 0;   // a seq not after the previous one
  uint64_t lost = 0;       // sent - received (receiver, once it knows)
  uint64_t drops = 0;      // receiver's rx drop counter
  uint64_t others = 0;     // frames from other senders (ignored)
  char why[160] = {};
};

struct HostileResult {
  int32_t rc = -1;
  uint64_t iterations = 0, syncs = 0, einval = 0, unexpected = 0, reopens = 0;
  char why[160] = {};
};

// Fill why[] the printf way; returns rc.
template <class R, class... A>
int fail_with(R* r, int rc, const char* fmt, A... a) {
  snprintf(r->why, sizeof r->why, fmt, a...);
  return rc;
}

// Run body(&result) and send the result (rc set) to the test.
template <class R, class F>
int report(const Event& out, F body) {
  R res;
  res.rc = body(&res);
  out.send(res);
  return res.rc;
}

// A message already waiting on an Event, without blocking.
template <class T>
bool try_recv(const Event& e, T* v) {
  pollfd q{e.read_fd(), POLLIN, 0};
  return ::poll(&q, 1, 0) == 1 && e.recv(v, 1000);
}
bool signalled(const Event& e) {
  pollfd q{e.read_fd(), POLLIN, 0};
  return ::poll(&q, 1, 0) == 1;
}

// ---- the good VALE pair ----

int run_g1(const Event& stop, const Event& acks, GoodResult* res) {
  Port p;
  if (int e = p.open("valeS:g1", 0, 2)) return fail_with(res, 1, "open g1: %s", strerror(e));
  auto reg = region_of_id(2);
  netmap_ring* t = p.tx[0];
  const uint32_t nbufs = reg->cfg().buf_num;
  uint32_t seq = 0, acked = 0, a;
  bool stopping = false, bye = false;
  const double end = nmtest::now_ms() + 90000;
  while (nmtest::now_ms() < end) {
    stopping = stopping || signalled(stop);
    while (try_recv(acks, &a))  // the receiver's highest seq so far, or ~0u: it has the end
      if (a != ~0u) acked = std::max(acked, a);
      else bye = true;
    if (bye) {
      res->count = seq;
      return 0;
    }
    if (!stopping && seq - acked >= 512) {
      if (acks.recv(&a, 20) && a != ~0u) acked = std::max(acked, a);  // bounded: frames get lost
      continue;
    }
    if (int e = p.txsync()) return fail_with(res, 2, "g1 txsync: %s", strerror(e));
    // Data frames; once stopped, the end marker (seq ~0u) until g2 has it.
    for (uint32_t k = 0; k < 32 && !nm_ring_empty(t); k++) {
      netmap_slot& s = t->slot[t->cur];
      if (s.buf_idx < 2 || s.buf_idx >= nbufs)
        return fail_with(res, 3, "g1: its slot names buffer %u", s.buf_idx);
      uint8_t* b = reinterpret_cast<uint8_t*>(NETMAP_BUF(t, s.buf_idx));
      good_frame(b, stopping ? 0 : seq);
      if (stopping) memset(b + 14, 0xff, 4);
      s.len = uint16_t(good_len(stopping ? 0 : seq));
      s.flags = 0;
      t->head = t->cur = nm_ring_next(t, t->cur);
      if (stopping) break;
      seq++;
    }
    if (int e = p.txsync()) return fail_with(res, 2, "g1 txsync: %s", strerror(e));
    if (stopping && acks.recv(&a, 20)) bye = a == ~0u;
  }
  return fail_with(res, 4, "g1: no end after 90 s (sent %u, acked %u)", seq, acked);
}

int run_g2(const Event& ready, const Event& acks, const Event& total, GoodResult* res) {
  Port p;
  if (int e = p.open("valeS:g2", 0, 2)) return fail_with(res, 1, "open g2: %s", strerror(e));
  fcntl(acks.write_fd(), F_SETFL, O_NONBLOCK);  // acks may be lost, never block g2
  auto reg = region_of_id(2);
  const uint32_t nbufs = reg->cfg().buf_num;
  // Hello: the switch learns where kG2 is.
  netmap_ring* t = p.tx[0];
  netmap_slot& hs = t->slot[t->cur];
  uint8_t* hb = reinterpret_cast<uint8_t*>(NETMAP_BUF(t, hs.buf_idx));
  memset(hb, 0, 60);
  memset(hb, 0xff, 6);
  memcpy(hb + 6, kG2, 6);
  hs.len = 60;
  t->head = t->cur = nm_ring_next(t, t->cur);
  if (int e = p.txsync()) return fail_with(res, 2, "g2 txsync: %s", strerror(e));
  ready.signal();
  netmap_ring* r = p.rx[0];
  uint32_t last = ~0u, last_acked = ~0u;
  const double end = nmtest::now_ms() + 90000;
  bool seen_end = false;
  while (!seen_end) {
    if (nmtest::now_ms() > end) return fail_with(res, 3, "g2: no end marker after 90 s");
    p.wait(POLLIN, 100);
    if (int e = p.rxsync()) return fail_with(res, 2, "g2 rxsync: %s", strerror(e));
    while (!nm_ring_empty(r)) {
      const netmap_slot s = r->slot[r->cur];
      r->head = r->cur = nm_ring_next(r, r->cur);
      if (s.len > r->nr_buf_size || s.buf_idx < 2 || s.buf_idx >= nbufs) {
        if (!res->damaged)
          fail_with(res, 0, "g2: a slot with buffer %u, len %u", s.buf_idx, unsigned(s.len));
        res->damaged++;  // never look into it
        continue;
      }
      const uint8_t* b = reinterpret_cast<const uint8_t*>(NETMAP_BUF(r, s.buf_idx));
      if (s.len < kGoodHdr || memcmp(b + 6, kG1, 6) != 0 || b[12] != 0x88 || b[13] != 0xb6) {
        res->others++;
        continue;
      }
      uint32_t seq, len, h;
      memcpy(&seq, b + 14, 4);
      memcpy(&len, b + 18, 4);
      memcpy(&h, b + 22, 4);
      if (seq == ~0u) {
        seen_end = true;
        continue;
      }
      if (len != s.len || len != good_len(seq) || (s.flags & NS_MOREFRAG) ||
          fnv(b + kGoodHdr, len - kGoodHdr) != h) {
        if (!res->damaged) fail_with(res, 0, "g2: frame %u damaged (len %u)", seq, unsigned(s.len));
        res->damaged++;
        continue;
      }
      if (last != ~0u && seq <= last) res->disorder++;
      last = seq;
      res->count++;
    }
    if (last != ~0u && last != last_acked) {
      acks.send(last);
      last_acked = last;
    }
  }
  const uint32_t bye = ~0u;
  for (const double e2 = nmtest::now_ms() + 10000; nmtest::now_ms() < e2;) {
    if (::write(acks.write_fd(), &bye, 4) == 4) break;
    pollfd q{acks.write_fd(), POLLOUT, 0};
    ::poll(&q, 1, 100);
  }
  uint64_t sent = 0;
  if (!total.recv(&sent, 30000)) return fail_with(res, 4, "g2: no total from the test");
  res->lost = sent - res->count;
  std::vector<unetmap::ValeSwitchInfo> v;
  std::string why;
  if (unetmap::vale_list("valeS", &v, &why) == 0)
    for (auto& sw : v)
      for (auto& pi : sw.ports)
        if (pi.name == "valeS:g2") res->drops = pi.drops;
  return 0;
}

// ---- the good pipe pair ----

const nmtest::PktSpec kPipeSpec{7, 60, 2048, 5, 2049, 6000};

int run_gp_tx(const Event& ready, const Event& stop, GoodResult* res) {
  Port p;
  if (int e = p.open("gp{0")) return fail_with(res, 1, "open gp{0: %s", strerror(e));
  ready.signal();
  netmap_ring* t = p.tx[0];
  uint32_t seq = 0;
  const double end = nmtest::now_ms() + 90000;
  while (!signalled(stop)) {
    if (nmtest::now_ms() > end) return fail_with(res, 2, "gp{0: no stop after 90 s");
    if (!(p.wait(POLLOUT, 100) & POLLOUT)) continue;
    for (uint32_t k = 0; k < 32; k++) {
      if (nm_ring_space(t) < nmtest::slots_for(nmtest::pkt_len(kPipeSpec, seq), t->nr_buf_size))
        break;
      nmtest::put_pkt(t, kPipeSpec, seq++, 0);
    }
    if (int e = p.txsync()) return fail_with(res, 3, "gp{0 txsync: %s", strerror(e));
  }
  res->count = seq;
  return 0;
}

int run_gp_rx(const Event& ready, const Event& total, GoodResult* res) {
  Port p;
  if (int e = p.open("gp}0")) return fail_with(res, 1, "open gp}0: %s", strerror(e));
  ready.signal();
  netmap_ring* r = p.rx[0];
  uint64_t want = ~0ull;
  std::vector<uint8_t> got;
  const double end = nmtest::now_ms() + 90000;
  while (res->count < want) {
    if (nmtest::now_ms() > end)
      return fail_with(res, 2, "gp}0: %llu of %llu after 90 s", (unsigned long long)res->count,
                       (unsigned long long)want);
    if (want == ~0ull) try_recv(total, &want);
    p.wait(POLLIN, 100);
    if (int e = p.rxsync()) return fail_with(res, 3, "gp}0 rxsync: %s", strerror(e));
    uint32_t ns, first;
    bool changed;
    while (nmtest::peek_pkt(r, &got, &ns, &changed, &first)) {
      std::string e = nmtest::check_pkt(kPipeSpec, got, uint32_t(res->count), 0);
      if (!e.empty()) {
        if (!res->damaged) snprintf(res->why, sizeof res->why, "%s", e.c_str());
        res->damaged++;
      }
      res->count++;
      for (uint32_t i = 0; i < ns; i++) r->head = r->cur = nm_ring_next(r, r->cur);
    }
  }
  return 0;
}

// ---- the hostile process ----

struct HRing {
  netmap_ring* r;
  uint32_t n, bsize, nbufs;
  char* bufs;      // buffer 0, from the buf_ofs seen at open
  bool tx;
  bool exchange;   // buffer indexes may be exchanged between its slots
  // header fields as at open
  int64_t buf_ofs;
  uint32_t num_slots, nr_buf_size;
  uint16_t ringid, dir;
};

struct HPort {
  std::unique_ptr<Port> p;
  std::vector<HRing> rings;
  std::vector<uint8_t> nifp_saved;
  std::vector<uint32_t> extra;  // extra buffers H holds
  uint32_t nbufs = 0;
  std::shared_ptr<unetmap::Region> region;
  uint32_t nifp_idx = 0;  // its netmap_if, the owner of its extra buffers
};

struct Hostile {
  std::mt19937_64 rng;
  bool foreign;  // finding 4: indexes of any buffer, nothing put back at close
  std::vector<HPort> ports;
  std::mutex mu;  // the scribbler thread and (re)opening
  std::atomic<bool> quit{false};
  HostileResult res;

  uint32_t rnd(uint32_t n) { return n ? uint32_t(rng() % n) : 0; }

  int open_all() {
    struct Spec {
      const char* name;
      uint64_t flags;
      uint32_t extra;
      bool exchange;
    };
    const Spec specs[] = {
        {"hp{0", 0, 8, false},
        {"hp}0", 0, 0, false},
        {"hp{0", NR_MONITOR_TX | NR_MONITOR_RX, 0, true},
        {"hp}0", NR_ZCOPY_MON, 0, true},
        {"valeS:h1", 0, 16, true},
        {"valeS:h2", 0, 0, true},
        {"valeS:h1", NR_MONITOR_TX | NR_MONITOR_RX, 0, true},
        {"valeS:h2", NR_ZCOPY_MON, 0, true},
        {"gp{0", NR_MONITOR_TX, 0, true},
        {"valeS:g2", NR_MONITOR_RX, 0, true},
    };
    for (const Spec& sp : specs) {
      HPort hp;
      hp.p = std::make_unique<Port>();
      if (int e = hp.p->open(sp.name, sp.flags, 0, sp.extra))
        return res.rc = fail_with(&res, 10, "H: open %s (flags %llx): %s", sp.name,
                         (unsigned long long)sp.flags, strerror(e));
      auto reg = region_of_id(hp.p->reg.nr_mem_id);
      hp.nbufs = reg->cfg().buf_num;
      hp.region = reg;
      hp.nifp_idx = uint32_t((hp.p->reg.nr_offset - reg->hdr()->if_pool) / reg->cfg().if_size);
      const size_t nsave = sizeof(netmap_if) + 64 * sizeof(ssize_t);
      hp.nifp_saved.assign(reinterpret_cast<uint8_t*>(hp.p->nifp),
                           reinterpret_cast<uint8_t*>(hp.p->nifp) + nsave);
      for (int d = 0; d < 2; d++)
        for (netmap_ring* r : d == 0 ? hp.p->tx : hp.p->rx)
          hp.rings.push_back(HRing{r, r->num_slots, r->nr_buf_size, hp.nbufs,
                                   reinterpret_cast<char*>(r) + r->buf_ofs, d == 0, sp.exchange,
                                   r->buf_ofs, r->num_slots, r->nr_buf_size, r->ringid, r->dir});
      for (uint32_t b = hp.p->nifp->ni_bufs_head, k = 0; b && k < sp.extra; k++) {
        if (b < 2 || b >= hp.nbufs) break;
        hp.extra.push_back(b);
        b = *reinterpret_cast<uint32_t*>(hp.rings[0].bufs + uint64_t(b) * hp.rings[0].bsize);
      }
      ports.push_back(std::move(hp));
    }
    return 0;
  }

  void close_all() {
    for (HPort& hp : ports) {
      if (!foreign) {
        memcpy(static_cast<void*>(hp.p->nifp), hp.nifp_saved.data(), hp.nifp_saved.size());
        for (HRing& h : hp.rings) {
          netmap_ring* r = h.r;
          *const_cast<int64_t*>(&r->buf_ofs) = h.buf_ofs;
          *const_cast<uint32_t*>(&r->num_slots) = h.num_slots;
          *const_cast<uint32_t*>(&r->nr_buf_size) = h.nr_buf_size;
          *const_cast<uint16_t*>(&r->ringid) = h.ringid;
          *const_cast<uint16_t*>(&r->dir) = h.dir;
        }
        // The extra buffers H holds now, chained again.
        uint32_t next = 0;
        for (size_t i = hp.extra.size(); i-- > 0;) {
          memcpy(hp.rings[0].bufs + uint64_t(hp.extra[i]) * hp.rings[0].bsize, &next, 4);
          next = hp.extra[i];
        }
        hp.p->nifp->ni_bufs_head = next;
      }
      hp.p->close();
    }
    ports.clear();
  }

  uint32_t garbage_index() {
    static const uint32_t bad[] = {0, 1, 0x7ffffff0, 0xffffffff, 0x80000000, 0x10000000};
    return rnd(3) == 0 ? 0x01000000u + rnd(0x7e000000) : bad[rnd(6)];
  }

  struct Undo {
    netmap_slot* s;
    uint32_t garbage, old;
    netmap_slot* s2;  // exchange: the other slot
  };
  std::vector<Undo> undo;

  void scribble() {
    HPort& hp = ports[rnd(uint32_t(ports.size()))];
    if (hp.rings.empty()) return;
    HRing& h = hp.rings[rnd(uint32_t(hp.rings.size()))];
    netmap_ring* r = h.r;
    netmap_slot* s = &r->slot[rnd(h.n)];
    switch (rnd(12)) {
      case 0: s->len = uint16_t(rng()); break;
      case 1: s->flags = uint16_t(rng()); break;
      case 2: s->ptr = rng(); break;
      case 3: {
        if (foreign) {
          s->buf_idx = rnd(2) ? 2 + rnd(hp.nbufs - 2) : garbage_index();
          break;
        }
        const uint32_t g = garbage_index();
        undo.push_back(Undo{s, g, s->buf_idx, nullptr});
        s->buf_idx = g;
        break;
      }
      case 4: {
        if (!h.exchange) break;
        netmap_slot* s2 = &r->slot[rnd(h.n)];
        if (s2 == s) break;
        for (const Undo& u : undo)  // one change per slot per iteration
          if (u.s == s || u.s == s2 || u.s2 == s || u.s2 == s2) return;
        undo.push_back(Undo{s, s2->buf_idx, s->buf_idx, s2});
        std::swap(s->buf_idx, s2->buf_idx);
        break;
      }
      case 5: r->head = rnd(4) ? rnd(h.n) : uint32_t(rng()); break;
      case 6: r->cur = rnd(4) ? rnd(h.n) : uint32_t(rng()); break;
      case 7: *const_cast<uint32_t*>(&r->tail) = uint32_t(rng()); break;
      case 8: r->flags = uint32_t(rng()); break;
      case 9:
        switch (rnd(5)) {
          case 0: *const_cast<uint32_t*>(&r->num_slots) = uint32_t(rng()); break;
          case 1: *const_cast<uint32_t*>(&r->nr_buf_size) = uint32_t(rng()); break;
          case 2: *const_cast<int64_t*>(&r->buf_ofs) = int64_t(rng()); break;
          case 3: *const_cast<uint16_t*>(&r->ringid) = uint16_t(rng()); break;
          default: *const_cast<uint16_t*>(&r->dir) = uint16_t(rng()); break;
        }
        break;
      case 10: {
        netmap_if* ni = hp.p->nifp;
        switch (rnd(4)) {
          case 0: *const_cast<uint32_t*>(&ni->ni_tx_rings) = uint32_t(rng()); break;
          case 1: *const_cast<uint32_t*>(&ni->ni_rx_rings) = uint32_t(rng()); break;
          case 2: const_cast<ssize_t*>(ni->ring_ofs)[rnd(4)] = ssize_t(rng()); break;
          default:
            ni->ni_bufs_head = foreign && rnd(2) ? 2 + rnd(hp.nbufs - 2) : garbage_index();
            break;
        }
        break;
      }
      default: {
        // An extra buffer into a tx slot of h1 (NS_BUF_CHANGED), its buffer kept.
        if (hp.extra.empty() || !h.tx || !h.exchange) break;
        const uint32_t x = hp.extra.back();
        if (s->buf_idx < 2 || s->buf_idx >= h.nbufs) break;
        for (const Undo& u : undo)
          if (u.s == s || u.s2 == s) return;
        hp.extra.back() = s->buf_idx;
        s->buf_idx = x;
        s->flags |= NS_BUF_CHANGED;
        break;
      }
    }
  }

  void restore() {
    for (size_t i = undo.size(); i-- > 0;) {
      const Undo& u = undo[i];
      if (!u.s2) {
        if (u.s->buf_idx == u.garbage) u.s->buf_idx = u.old;
      } else if (u.s->buf_idx == u.garbage && u.s2->buf_idx == u.old) {
        std::swap(u.s->buf_idx, u.s2->buf_idx);
      }
    }
    undo.clear();
  }

  // Does buffer b of hp's region belong to a ring or the extra buffers of
  // a port H has bound? (A slot may name any buffer; H writes only into
  // its own: any process that maps a region can write all of its buffers,
  // as with netmap, and that is not what is tested here.)
  bool h_owns(const HPort& hp, uint32_t b) const {
    using unetmap::Region;
    const uint32_t t = hp.region->buf_tag(b), i = t & Region::kTagIndex;
    if ((t & ~Region::kTagIndex) == Region::kRingTag) return Region::port_bound(hp.region->ring_port(i));
    if ((t & ~Region::kTagIndex) != Region::kExtraTag) return false;
    for (const HPort& q : ports)
      if (q.region->id() == hp.region->id() && q.nifp_idx == i) return true;
    return false;
  }

  // Advance head over a few slots of a tx ring with random lengths and
  // flags (frames with random MACs written into the buffers H owns), sync.
  void send(HPort& hp, HRing& h) {
    netmap_ring* r = h.r;
    uint32_t i = r->head;
    if (i >= h.n) i = rnd(h.n);
    const uint32_t k = rnd(48);
    for (uint32_t c = 0; c < k; c++, i = i + 1 == h.n ? 0 : i + 1) {
      netmap_slot& s = r->slot[i];
      const uint32_t b = s.buf_idx;
      s.len = uint16_t(rnd(20) ? 14 + rnd(h.bsize - 13) : rng());
      s.flags = uint16_t(rnd(3) == 0 ? NS_MOREFRAG : rnd(10) ? 0 : rng());
      if (b >= 2 && b < h.nbufs && h_owns(hp, b)) {
        uint8_t* f = reinterpret_cast<uint8_t*>(h.bufs + uint64_t(b) * h.bsize);
        uint64_t m = rng();
        memcpy(f, &m, 6);  // random destination: unicast, multicast, broadcast
        if (rnd(4) == 0) memset(f, 0xff, 6);
        if (rnd(4) == 0) memcpy(f, kG2, 6);
        m = rng();
        memcpy(f + 6, &m, 6);
        f[6] = uint8_t(f[6] & 0xfe) | 0x02;  // never kG1 or kG2 (MAC spoofing is not tested)
        f[11] |= 0x80;
      }
    }
    r->head = r->cur = i;
    count(hp.p->txsync());
  }

  void count(int e) {
    res.syncs++;
    if (e == EINVAL) res.einval++;
    else if (e != 0) {
      if (!res.unexpected)
        snprintf(res.why, sizeof res.why, "H: a sync failed with %s, not EINVAL", strerror(e));
      res.unexpected++;
    }
  }

  void act() {
    HPort& hp = ports[rnd(uint32_t(ports.size()))];
    switch (rnd(6)) {
      case 0: count(hp.p->txsync()); break;
      case 1: count(hp.p->rxsync()); break;
      case 2: {
        pollfd q{hp.p->fd, short(rnd(2) ? POLLIN : POLLIN | POLLOUT), 0};
        if (::poll(&q, 1, 0) < 0) count(errno);
        break;
      }
      case 3:
      case 4: {
        std::vector<HRing*> txr;
        for (HRing& h : hp.rings)
          if (h.tx) txr.push_back(&h);
        if (!txr.empty()) send(hp, *txr[rnd(uint32_t(txr.size()))]);
        break;
      }
      default: {
        for (HRing& h : hp.rings)
          if (!h.tx) {
            const uint32_t t = h.r->tail;
            h.r->head = h.r->cur = rnd(4) ? t : rnd(h.n);
          }
        count(hp.p->rxsync());
        break;
      }
    }
  }

  // The second thread: lengths, flags, ptr, head and cur, without pause.
  void scribbler(uint64_t seed) {
    std::mt19937_64 g(seed);
    while (!quit.load(std::memory_order_relaxed)) {
      std::lock_guard<std::mutex> l(mu);
      for (int k = 0; k < 64 && !ports.empty(); k++) {
        HPort& hp = ports[g() % ports.size()];
        if (hp.rings.empty()) continue;
        HRing& h = hp.rings[g() % hp.rings.size()];
        netmap_slot& s = h.r->slot[g() % h.n];
        switch (g() % 5) {
          case 0: s.len = uint16_t(g()); break;
          case 1: s.flags = uint16_t(g()); break;
          case 2: s.ptr = g(); break;
          case 3: h.r->head = uint32_t(g() % (h.n + 2)); break;
          default: h.r->cur = uint32_t(g() % (h.n + 2)); break;
        }
      }
    }
  }

  int run(uint64_t seed, uint32_t iters, uint32_t reopen_every) {
    rng.seed(seed);
    {
      std::lock_guard<std::mutex> l(mu);
      if (open_all()) return res.rc;
    }
    std::thread th([&] { scribbler(seed ^ 0x5c5c5c5c); });
    for (uint32_t it = 0; it < iters; it++) {
      if (it && it % reopen_every == 0) {
        std::lock_guard<std::mutex> l(mu);
        close_all();
        res.reopens++;
        if (open_all()) break;
      }
      const uint32_t ns = 1 + rnd(4), na = 1 + rnd(3);
      for (uint32_t k = 0; k < ns; k++) scribble();
      for (uint32_t k = 0; k < na; k++) act();
      restore();
      res.iterations++;
    }
    quit = true;
    th.join();
    close_all();
    if (res.rc > 0) return res.rc;
    res.rc = res.unexpected ? 5 : 0;
    return res.rc;
  }
};

uint64_t env_u64(const char* name, uint64_t dflt) {
  const char* v = getenv(name);
  return v && *v ? strtoull(v, nullptr, 0) : dflt;
}

struct PoolCounts {
  uint32_t buf, ring, nifp;
  bool operator==(const PoolCounts&) const = default;
};
std::ostream& operator<<(std::ostream& o, const PoolCounts& c) {
  return o << "{free bufs " << c.buf << ", rings " << c.ring << ", ifs " << c.nifp << "}";
}
PoolCounts pools(uint16_t id) {
  auto r = region_of_id(id);
  return PoolCounts{r->hdr()->buf_free, r->hdr()->ring_free, r->hdr()->if_free};
}

void storm(bool foreign) {
  const uint64_t seed = env_u64("HOSTILE_SEED", std::random_device{}() | uint64_t(getpid()) << 32);
#ifdef HOSTILE_SANITIZE
  const uint32_t iters = uint32_t(env_u64("HOSTILE_ITERS", 3000));
#else
  const uint32_t iters = uint32_t(env_u64("HOSTILE_ITERS", 20000));
#endif
  printf("hostile storm: seed %llu, %u iterations (HOSTILE_SEED=%llu to repeat)\n",
         (unsigned long long)seed, iters, (unsigned long long)seed);
  fflush(stdout);
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  // Keep regions 1 and 2 alive; their pools are compared at the end. A
  // process of its own holds them: a port opened here would be inherited
  // by every child forked below (fork makes the child a holder of the
  // registration), and so would the right to take over its buffers, which
  // H, naming any buffer of region 1, would use.
  Event keep_ready, keep_stop;
  Child keeper([&] {
    Port keep1, keep2;
    if (keep1.open("keep{1") || keep2.open("keep{2", 0, 2) || keep1.reg.nr_mem_id != 1 ||
        keep2.reg.nr_mem_id != 2)
      return 1;
    keep_ready.signal();
    return keep_stop.wait(300000) >= 0 ? 0 : 2;
  });
  ASSERT_GE(keep_ready.wait(10000), 0) << "the keeper did not start";
  const PoolCounts start1 = pools(1), start2 = pools(2);

  Event g2_ready, g2_acks, g2_total, g2_out, g1_stop, g1_out;
  Event gpr_ready, gpr_total, gpr_out, gpt_ready, gpt_stop, gpt_out, h_out;
  Child g2([&] {
    return report<GoodResult>(g2_out, [&](GoodResult* r) { return run_g2(g2_ready, g2_acks, g2_total, r); });
  });
  ASSERT_GE(g2_ready.wait(10000), 0) << "g2 did not start";
  Child g1([&] {
    return report<GoodResult>(g1_out, [&](GoodResult* r) { return run_g1(g1_stop, g2_acks, r); });
  });
  Child gpr([&] {
    return report<GoodResult>(gpr_out, [&](GoodResult* r) { return run_gp_rx(gpr_ready, gpr_total, r); });
  });
  ASSERT_GE(gpr_ready.wait(10000), 0) << "gp}0 did not start";
  Child gpt([&] {
    return report<GoodResult>(gpt_out, [&](GoodResult* r) { return run_gp_tx(gpt_ready, gpt_stop, r); });
  });
  ASSERT_GE(gpt_ready.wait(10000), 0) << "gp{0 did not start";
  Child h([&] {
    Hostile host;
    host.foreign = foreign;
    int rc = host.run(seed, iters, 500);
    h_out.send(host.res);
    return rc;
  });
  HostileResult hr;
  const bool h_reported = h_out.recv(&hr, 60000);
  const int h_status = h.wait(10000);
  g1_stop.signal();
  gpt_stop.signal();
  GoodResult r1, r2, rt, rr;
  ASSERT_TRUE(g1_out.recv(&r1, 30000)) << "g1 reported nothing";
  ASSERT_TRUE(gpt_out.recv(&rt, 30000)) << "gp{0 reported nothing";
  g2_total.send(r1.count);
  gpr_total.send(rt.count);
  ASSERT_TRUE(g2_out.recv(&r2, 30000)) << "g2 reported nothing";
  ASSERT_TRUE(gpr_out.recv(&rr, 30000)) << "gp}0 reported nothing";
  const int st[4] = {g1.wait(10000), g2.wait(10000), gpt.wait(10000), gpr.wait(10000)};
  printf("H: %llu iterations, %llu syncs (%llu EINVAL), %llu reopens\n",
         (unsigned long long)hr.iterations, (unsigned long long)hr.syncs,
         (unsigned long long)hr.einval, (unsigned long long)hr.reopens);
  printf("VALE pair: %llu sent, %llu received, %llu lost, g2 drops %llu, %llu frames of others\n",
         (unsigned long long)r1.count, (unsigned long long)r2.count,
         (unsigned long long)r2.lost, (unsigned long long)r2.drops,
         (unsigned long long)r2.others);
  printf("pipe pair: %llu sent, %llu received\n", (unsigned long long)rt.count,
         (unsigned long long)rr.count);

  EXPECT_TRUE(h_reported) << "the hostile process died or hung (status " << h_status << ")";
  EXPECT_EQ(h_status, 0) << "hostile process: " << hr.why << " (128+n: killed by signal n)";
  EXPECT_EQ(hr.rc, 0) << hr.why;
  EXPECT_GT(hr.iterations, 0u);
  const char* names[4] = {"g1", "g2", "gp{0", "gp}0"};
  const GoodResult* gr[4] = {&r1, &r2, &rt, &rr};
  for (int i = 0; i < 4; i++) {
    EXPECT_EQ(st[i], 0) << names[i] << " (128+n: killed by signal n)";
    EXPECT_EQ(gr[i]->rc, 0) << names[i] << ": " << gr[i]->why;
  }
  EXPECT_GT(r1.count, 0u);
  EXPECT_EQ(r2.damaged, 0u) << "g2 received damaged frames: " << r2.why;
  EXPECT_EQ(r2.disorder, 0u) << "g2 received frames out of order";
  EXPECT_LE(r2.lost, r2.drops) << "g2 lost frames that no drop counter shows";
  EXPECT_GT(rt.count, 0u);
  EXPECT_EQ(rr.damaged, 0u) << "gp}0: " << rr.why;
  EXPECT_EQ(rr.count, rt.count) << "the pipe lost packets";

  // Everything H and the pairs had is back in the pools.
  std::vector<unetmap::ValeSwitchInfo> v;
  std::string why;
  unetmap::vale_list("", &v, &why);  // reaps what the children left, if anything
  EXPECT_EQ(pools(1), start1) << "region 1";
  EXPECT_EQ(pools(2), start2) << "region 2";
  keep_stop.signal();
  EXPECT_EQ(keeper.wait(10000), 0) << "the keeper";
}

TEST(HostileStorm, GoodPairsUnharmed) { storm(false); }

// Finding 4 of issue 9: H also names buffers it does not own (any index of
// its region) in its slots and extra-buffer chain, and closes with
// num_slots and the netmap_if broken. Buffers are freed only by the ring
// (or registration) owning them, and taken over only from ports H has
// bound, so the good pairs and the pools are safe. (The ports keeping the
// regions alive are held by a keeper process: H, a fork of the test, would
// otherwise hold them too and may take their buffers.)
TEST(HostileStorm, ForeignBuffers) { storm(true); }

}  // namespace
