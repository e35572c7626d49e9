// Fuzzes ring validation (the sync prologue, src/core/sync.cc) the way a
// hostile application reaches it: through its own rings in shared memory.
// Per input it opens, through libnetmap, a VALE port vale0:f and a pipe end
// fz{1 (2 rings of 64 slots each), a copy monitor of vale0:f and a
// zero-copy monitor of fz{1 (the fuzzed ports), and the pipe's other end
// fz}1; two well-behaved VALE ports g1, g2 on the same switch stay open
// across inputs (the good peers, with fz}1). Then it runs the input as a
// sequence of operations on the fuzzed ports' rings: write head/cur/tail,
// slots (buf_idx, len, flags), packet bytes, ring flags, the ring header's
// read-only fields and the netmap_if, and call NIOCTXSYNC / NIOCRXSYNC /
// poll. Between operations and at the end the good peers exchange a packet.
//
// Checks, besides no crash/UB/leak in the library: a good peer's syncs
// succeed, g2 receives the broadcast g1 sends, byte for byte; every slot a
// good peer receives names a buffer of its region and a length that fits
// it; after closing the per-input ports no port, fd or file is left.
//
// Input: operations, each [op] [port] [ring] operands (make_seeds.py):
//   0 head, 1 cur, 2 tail: [mode] [u32]  (mode&1: advance by u32 % n)
//   3 slot:  [index from head] [bufmode] [u32] [len u16] [flags u16]
//   4 ring flags: [u32]
//   5 txsync, 6 rxsync, 7 poll: no operands
//   8 the good peers exchange a packet: no operands
//   9 a read-only word of the ring header: [word] [u32]
//  10 a word of the netmap_if: [word] [u32]
//  11 8 bytes of a slot's buffer: [index from head] [offset] [u64]
// ring: bit 7 rx, else tx; the rest picks the ring. Read-only fields and the
// netmap_if are put back before the ports are closed (teardown trusting
// them is issue 9 item 4, tested elsewhere).
#include <libnetmap.h>
#include <net/netmap_user.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "fuzz_env.h"
#include "mem/region.h"

extern "C" const char* unetmap_last_error(void);

namespace {

struct Port {
  nmport_d* d = nullptr;
  std::vector<netmap_ring*> ring[2];  // [0] tx, [1] rx: the rings the fd binds
  std::vector<uint32_t> nslots[2];    // their sizes (the rings' own may be overwritten)
  const char* mem_lo = nullptr;
  const char* mem_hi = nullptr;
};

enum { kF, kPipe, kMonF, kMonPipe, kG1, kG2, kPeer, kNumPorts };
const char* const kSpec[kNumPorts] = {
    "vale0:f@conf:rings=2,slots=64", "netmap:fz{1@conf:rings=2,slots=64",
    "vale0:f/rt",                    "netmap:fz{1/z",
    "vale0:g1@conf:slots=64",        "vale0:g2@conf:slots=64",
    "netmap:fz}1"};

Port g_port[kNumPorts];
std::set<std::string> g_fds, g_files;
uint32_t g_seq;
std::vector<std::pair<uint32_t*, uint32_t>> g_saved;  // words to put back

void no_error(nmctx*, const char*) {}
nmctx g_quiet;

class Input {
 public:
  Input(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  bool empty() const { return n_ == 0; }
  template <typename T>
  T get() {
    T v{};
    size_t k = n_ < sizeof v ? n_ : sizeof v;
    memcpy(&v, p_, k);
    p_ += k, n_ -= k;
    return v;
  }

 private:
  const uint8_t* p_;
  size_t n_;
};

// The good VALE ports stay open from one input to the next (they are never
// written by the fuzzer); the rest is opened per input, so that an input
// runs the same way alone. A null port of another process (a child) keeps
// region 1 (the pipe's and its monitor's) for the whole run, and after
// every input the region's buffers in use must be back to their count
// before: nothing the application left in a slot may be freed at close
// unless the ring owns it, and no buffer of another process's port may be
// taken (issue 9 item 4; corpus/ring/regress_foreign_buf_idx_freed_at_close
// failed with -runs=3 before the owner tags: a buffer index written into
// the zero-copy monitor's rx ring was freed by the monitor's close although
// the null port held it). The holder must be another process: a buffer of
// a port this process has bound may be moved to another of its rings
// (zero-copy forwarding), and then goes with that ring
// (corpus/ring/regress_own_port_buffer_moved_to_pipe took one of the null
// port's buffers into the pipe when the holder was in this process).
// UNETMAP_FUZZ_STRICT=0 lets region 1 go with the pipe instead.
bool per_input(int i) { return i != kG1 && i != kG2; }
const bool g_strict = !(getenv("UNETMAP_FUZZ_STRICT") && *getenv("UNETMAP_FUZZ_STRICT") == '0');
pid_t g_holder;
int g_holder_pipe = -1;  // its write end: the holder exits when it closes
std::string g_ports;

// The child opens the null port, says so, and keeps it until this process
// closes its end of the pipe (at exit, or when it dies).
void start_holder() {
  int ready[2], hold[2];
  FUZZ_CHECK(pipe(ready) == 0 && pipe(hold) == 0, strerror(errno));
  g_holder = fork();
  FUZZ_CHECK(g_holder >= 0, strerror(errno));
  if (g_holder == 0) {
    close(ready[0]);
    close(hold[1]);
    nmport_d* d = nmport_open("null:hold@conf:slots=64");
    const char ok = d ? 1 : 0;
    if (write(ready[1], &ok, 1) != 1 || !d) _exit(1);
    char c;
    ssize_t n;
    do n = read(hold[0], &c, 1);
    while (n < 0 && errno == EINTR);
    nmport_close(d);
    _exit(0);
  }
  close(ready[1]);
  close(hold[0]);
  g_holder_pipe = hold[1];
  char ok = 0;
  FUZZ_CHECK(read(ready[0], &ok, 1) == 1 && ok == 1, "the holder could not open null:hold");
  close(ready[0]);
  atexit([] {
    close(g_holder_pipe);
    waitpid(g_holder, nullptr, 0);
  });
}

void open_ports(bool all) {
  for (int i = 0; i < kNumPorts; i++) {
    if (!all && !per_input(i)) continue;
    Port& P = g_port[i];
    P.d = nmport_open(kSpec[i]);
    FUZZ_CHECK(P.d != nullptr, std::string(kSpec[i]) + ": " + unetmap_last_error());
    for (uint16_t r = P.d->first_tx_ring; r <= P.d->last_tx_ring && r < P.d->nifp->ni_tx_rings; r++)
      P.ring[0].push_back(NETMAP_TXRING(P.d->nifp, r));
    for (uint16_t r = P.d->first_rx_ring; r <= P.d->last_rx_ring && r < P.d->nifp->ni_rx_rings; r++)
      P.ring[1].push_back(NETMAP_RXRING(P.d->nifp, r));
    for (int d : {0, 1})
      for (netmap_ring* r : P.ring[d]) {
        FUZZ_CHECK(r->num_slots > 0, kSpec[i]);
        P.nslots[d].push_back(r->num_slots);
      }
    P.mem_lo = static_cast<const char*>(P.d->mem->mem);
    P.mem_hi = P.mem_lo + P.d->mem->size;
  }
}

void close_ports() {
  for (auto it = g_saved.rbegin(); it != g_saved.rend(); ++it) *it->first = it->second;
  g_saved.clear();
  for (int i = kNumPorts - 1; i >= 0; i--) {
    if (!per_input(i)) continue;
    nmport_close(g_port[i].d);
    g_port[i] = Port{};
  }
}

int sync(const Port& P, unsigned long req) { return ioctl(P.d->fd, req, nullptr); }

// A slot a good peer owns must be usable: its buffer in its region, its
// length within the buffer.
void check_slot(const Port& P, const netmap_ring* r, uint32_t i, const char* who) {
  const netmap_slot& s = r->slot[i];
  const uintptr_t b = uintptr_t(r) + uintptr_t(r->buf_ofs) + uintptr_t(s.buf_idx) * r->nr_buf_size;
  FUZZ_CHECK(s.buf_idx >= 2 && b >= uintptr_t(P.mem_lo) && b + r->nr_buf_size <= uintptr_t(P.mem_hi),
             std::string(who) + ": slot " + std::to_string(i) + " has buffer " + std::to_string(s.buf_idx));
  FUZZ_CHECK(s.len <= r->nr_buf_size,
             std::string(who) + ": slot " + std::to_string(i) + " has len " + std::to_string(s.len));
}

void check_ring_state(const netmap_ring* r, const char* who) {
  FUZZ_CHECK(r->head < r->num_slots && r->cur < r->num_slots && r->tail < r->num_slots, who);
}

// Receive on a good port: check every slot, release them all. Returns true
// if the frame with sequence number `want` came, intact.
bool drain(const Port& P, const char* who, uint32_t want = 0) {
  FUZZ_CHECK(sync(P, NIOCRXSYNC) == 0, std::string(who) + ": rxsync failed: " + strerror(errno));
  bool found = false;
  for (netmap_ring* r : P.ring[1]) {
    check_ring_state(r, who);
    for (uint32_t i = r->head; i != r->tail; i = nm_ring_next(r, i)) {
      check_slot(P, r, i, who);
      const char* b = NETMAP_BUF(r, r->slot[i].buf_idx);
      uint32_t seq;
      memcpy(&seq, b + 14, 4);
      if (want && r->slot[i].len == 60 && seq == want) {
        for (int k = 18; k < 60; k++)
          FUZZ_CHECK(uint8_t(b[k]) == uint8_t(want + k), std::string(who) + ": corrupted byte");
        found = true;
      }
    }
    r->head = r->cur = r->tail;
  }
  FUZZ_CHECK(sync(P, NIOCRXSYNC) == 0, std::string(who) + ": rxsync failed: " + strerror(errno));
  return found;
}

// Send a 60-byte broadcast frame with sequence number seq; false if the
// ring has no room.
bool send(const Port& P, uint32_t seq, const char* who) {
  netmap_ring* r = P.ring[0][0];
  check_ring_state(r, who);
  if (nm_ring_space(r) == 0) return false;
  netmap_slot& s = r->slot[r->cur];
  char* b = NETMAP_BUF(r, s.buf_idx);
  memset(b, 0xff, 6);
  const uint8_t src[6] = {2, 0, 0, 0, 0, 1};
  memcpy(b + 6, src, 6);
  b[12] = char(0x88), b[13] = char(0xb5);
  memcpy(b + 14, &seq, 4);
  for (int k = 18; k < 60; k++) b[k] = char(seq + k);
  s.len = 60;
  s.flags = 0;
  r->head = r->cur = nm_ring_next(r, r->cur);
  FUZZ_CHECK(sync(P, NIOCTXSYNC) == 0, std::string(who) + ": txsync failed: " + strerror(errno));
  return true;
}

// The good peers still work, whatever the fuzzed ports did.
void vale_exchange() {
  drain(g_port[kG2], "g2");
  uint32_t seq = ++g_seq | 0x80000000u;
  FUZZ_CHECK(send(g_port[kG1], seq, "g1"), "g1: no room in its tx ring");
  FUZZ_CHECK(drain(g_port[kG2], "g2", seq), "g2 did not receive g1's broadcast");
}

void good_exchange() {
  vale_exchange();
  drain(g_port[kPeer], "fz}1");
  send(g_port[kPeer], ++g_seq | 0x80000000u, "fz}1");  // the fuzzed end may be full
}

void save(uint32_t* w) { g_saved.push_back({w, *w}); }

void run(Input& in) {
  while (!in.empty()) {
    const uint8_t op = in.get<uint8_t>() % 12;
    Port& P = g_port[in.get<uint8_t>() % 4];
    const uint8_t rsel = in.get<uint8_t>();
    int dir = rsel >> 7;
    if (P.ring[dir].empty()) dir ^= 1;
    const size_t ri = P.ring[dir].empty() ? 0 : (rsel & 0x7f) % P.ring[dir].size();
    netmap_ring* r = P.ring[dir].empty() ? nullptr : P.ring[dir][ri];
    const uint32_t n = r ? P.nslots[dir][ri] : 1;
    switch (op) {
      case 0:
      case 1:
      case 2: {
        uint8_t mode = in.get<uint8_t>();
        uint32_t v = in.get<uint32_t>();
        if (!r) break;
        uint32_t* f = op == 0 ? &r->head : op == 1 ? &r->cur : &r->tail;
        *f = (mode & 1) ? uint32_t((uint64_t(*f % n) + v % n) % n) : v;
        break;
      }
      case 3: {
        uint8_t idx = in.get<uint8_t>(), mode = in.get<uint8_t>();
        uint32_t v = in.get<uint32_t>();
        uint16_t len = in.get<uint16_t>(), flags = in.get<uint16_t>();
        if (!r) break;
        netmap_slot& s = r->slot[(uint64_t(r->head % n) + idx) % n];
        const netmap_ring* g2 = g_port[kG2].ring[1][0];
        const netmap_ring* peer = g_port[kPeer].ring[1][0];
        switch (mode % 8) {
          case 1: s.buf_idx = v; break;
          case 2: s.buf_idx = g2->slot[v % g2->num_slots].buf_idx; break;      // another region's
          case 3: s.buf_idx = peer->slot[v % peer->num_slots].buf_idx; break;  // the peer's
          case 4: s.buf_idx = v % 4096; break;
          case 5: s.buf_idx = 0; break;
          case 6: s.buf_idx = 1; break;
          case 7: s.buf_idx = r->slot[v % n].buf_idx; break;  // twice in the ring
          default: break;
        }
        s.len = len;
        s.flags = flags;
        break;
      }
      case 4: {
        uint32_t v = in.get<uint32_t>();
        if (r) r->flags = v;
        break;
      }
      case 5: sync(P, NIOCTXSYNC); break;
      case 6: sync(P, NIOCRXSYNC); break;
      case 7: {
        pollfd p{P.d->fd, POLLIN | POLLOUT, 0};
        poll(&p, 1, 0);
        break;
      }
      case 8: good_exchange(); break;
      case 9: {
        static const int kWord[8] = {0, 1, 2, 3, 4, 5, 14, 16};
        uint8_t w = in.get<uint8_t>();
        uint32_t v = in.get<uint32_t>();
        if (!r) break;
        uint32_t* word = reinterpret_cast<uint32_t*>(r) + kWord[w % 8];
        save(word);
        *word = v;
        break;
      }
      case 10: {
        uint8_t w = in.get<uint8_t>();
        uint32_t v = in.get<uint32_t>();
        uint32_t* word = reinterpret_cast<uint32_t*>(P.d->nifp) + w % 32;
        save(word);
        *word = v;
        break;
      }
      case 11: {  // what the port sends: headers (MACs) decide where it goes
        uint8_t idx = in.get<uint8_t>(), off = in.get<uint8_t>();
        uint64_t v = in.get<uint64_t>();
        if (!r) break;
        const netmap_slot& s = r->slot[(uint64_t(r->head % n) + idx) % n];
        // As NETMAP_BUF, without its pointer arithmetic on fuzzed values.
        uintptr_t b = uintptr_t(r) + uintptr_t(r->buf_ofs) + uintptr_t(s.buf_idx) * r->nr_buf_size + off;
        if (b >= uintptr_t(P.mem_lo) && b + 8 <= uintptr_t(P.mem_hi)) memcpy(reinterpret_cast<void*>(b), &v, 8);
        break;
      }
    }
  }
}

uint32_t bufs_in_use(uint16_t mem_id) {
  int err = 0;
  auto r = unetmap::Region::get(mem_id, unetmap::RegionConfig::from_env(), &err);
  return r ? r->bufs_in_use() : 0;
}
uint32_t g_bufs;

void check_clean() {
  if (g_strict) {
    uint32_t b = bufs_in_use(1);
    FUZZ_CHECK(b == g_bufs, "region 1: " + std::to_string(b) + " buffers in use, " +
                                std::to_string(g_bufs) + " before the input");
  }
  std::string ports = fuzz::live_ports();
  FUZZ_CHECK(ports == g_ports, "ports left: " + ports + " before: " + g_ports);
  std::set<std::string> fds = fuzz::open_fds();
  FUZZ_CHECK(fds == g_fds, "fds left open: " + fuzz::join(fds) + " before: " + fuzz::join(g_fds));
  std::set<std::string> files = fuzz::runtime_files();
  files.erase("mem.1");  // may outlive its ports (issue 9, item 7)
  FUZZ_CHECK(files == g_files, "files left: " + fuzz::join(files) + " before: " + fuzz::join(g_files));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::setup("ring");
  g_quiet = *nmctx_get();
  g_quiet.error = no_error;
  nmctx_set_default(&g_quiet);
  if (g_strict) start_holder();
  open_ports(true);
  good_exchange();
  close_ports();
  vale_exchange();
  g_ports = fuzz::live_ports();
  g_bufs = bufs_in_use(1);
  g_fds = fuzz::open_fds();
  g_files = fuzz::runtime_files();
  g_files.erase("mem.1");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return -1;
  open_ports(false);
  Input in(data, size);
  run(in);
  // The read-only fields go back first: the good peers' checks use them.
  for (auto it = g_saved.rbegin(); it != g_saved.rend(); ++it) *it->first = it->second;
  g_saved.clear();
  good_exchange();
  close_ports();
  // A sender keeps its view of the switch (with the regions of the ports
  // on it) until its next txsync: let g1 see that vale0:f went.
  vale_exchange();
  check_clean();
  return 0;
}
