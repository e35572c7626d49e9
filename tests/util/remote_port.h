// Ethernet test frames, frames in and out of a port's bound rings, and a
// port opened in a process of its own (Remote) that the test drives over a
// pipe: what the VALE tests (and any test that moves frames between
// processes) share.
//
// Frames:
//
//   dst[6] src[6] type 0x88b5 | u32 tag | u32 seq | u32 len (whole frame) |
//   u32 FNV-1a of bytes [30, len) | bytes derived from (tag, seq)
//
// A frame shorter than 30 bytes is a prefix of the 30-byte one. A received
// frame is checked whole (length and checksum) by check_frame.
//
// A Remote is a child process that opens one port with nmport_open() and
// runs the commands the test sends it (send a frame, receive one with a
// timeout, ...), so a packet really crosses from one process's txsync to
// another process's mapping. Every wait is bounded.
#pragma once

#include <sys/mman.h>

#include <array>
#include <cstdint>
#include <new>
#include <string>
#include <vector>

#include "util/test_util.h"

namespace nmtest {

// ---------------------------------------------------------------------------
// Frames.

using Mac = std::array<uint8_t, 6>;
inline Mac host(uint8_t n) { return {0x02, 0x00, 0x00, 0x00, 0x00, n}; }  // unicast, local
inline const Mac kBcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
inline const Mac kMcast = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x42};

constexpr uint32_t kFrameHdr = 30;
constexpr uint32_t kData = 0xda7a;    // tags of ordinary test frames
constexpr uint32_t kMarker = 0x3a4b;  // a marker frame

inline void put32(uint8_t* p, uint32_t v) { memcpy(p, &v, 4); }
inline uint32_t get32(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

// FNV-1a of p[0..n).
uint32_t fnv(const uint8_t* p, size_t n);

// Write a whole frame of len >= kFrameHdr bytes at p.
void fill_frame(uint8_t* p, uint32_t len, const Mac& dst, const Mac& src, uint32_t tag,
                uint32_t seq);

// The frame (tag, seq) from src to dst, len bytes (a prefix if < kFrameHdr).
std::vector<uint8_t> frame(const Mac& dst, const Mac& src, uint32_t tag, uint32_t seq,
                           uint32_t len = 60);

struct FrameInfo {
  Mac dst{}, src{};
  uint32_t tag = 0, seq = 0;
};

// "" if p[0..n) is a whole, intact frame; else what is wrong with it.
std::string check_frame(const uint8_t* p, size_t n, FrameInfo* fi = nullptr);

// ---------------------------------------------------------------------------
// Bound rings of an open port, and frames in and out of them.

struct Ep {
  int fd = -1;
  netmap_if* nifp = nullptr;
  unsigned tx0 = 0, tx1 = 0, rx0 = 0, rx1 = 0;  // bound rings, [first, last)
  netmap_ring* tx(unsigned i) const { return NETMAP_TXRING(nifp, i); }
  netmap_ring* rx(unsigned i) const { return NETMAP_RXRING(nifp, i); }
};

Ep ep_of(const nmport_d* d);
Ep ep_of(const RawPort& p);

// Write frame f at the tx ring's cur as a chain of `chunk`-byte slots
// (NS_MOREFRAG on all but the last, `flags` added on the first) and move
// head and cur past it. The caller made room.
void put_frame(netmap_ring* r, const uint8_t* f, size_t len, uint16_t flags, uint32_t chunk);

// Send one frame on tx ring `ring` (default: the first bound one) and
// txsync. 0 or the errno of the failing txsync.
int send_frame(const Ep& e, const std::vector<uint8_t>& f, uint16_t flags = 0,
               unsigned ring = ~0u);

struct RxFrame {
  std::vector<uint8_t> data;
  std::vector<uint16_t> flags, lens;  // per slot
  unsigned ring = 0;
};

// Take the next whole frame already visible on a bound rx ring (no sync).
bool take_frame(const Ep& e, RxFrame* out);

// Wait in poll() (bounded) for the next frame on any bound rx ring.
bool recv_frame(const Ep& e, int timeout_ms, RxFrame* out);

// Is f an intact frame (tag, seq)?
bool frame_is(const RxFrame& f, uint32_t tag, uint32_t seq);
// What f is, for a failure message.
std::string describe(const RxFrame& f);

// ---------------------------------------------------------------------------
// Processes.

// Whole writes and reads on a pipe; timeout_ms < 0: no deadline.
bool write_all(int fd, const void* p, size_t n);
bool read_all(int fd, void* p, size_t n, int timeout_ms);

// First thing in every child: go when the test process goes (a crashed
// test must not leave senders running).
void die_with_parent();

// A struct shared with children (MAP_SHARED before fork).
template <class T>
T* shared_block() {
  void* p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) abort();
  return new (p) T();
}
template <class T>
void free_block(T* p) {
  p->~T();
  munmap(p, sizeof(T));
}

// ---------------------------------------------------------------------------
// A port in a process of its own, driven over a pipe.

enum Op : uint32_t {
  kOpSend = 1,  // payload: a frame; rc = errno of txsync
  kOpRecv,      // rc 0 + frame, or ETIMEDOUT
  kOpSendMany,  // count frames of len bytes in batches; a = txsyncs, b = batches
                // after which the tx ring was not wholly free again
  kOpScribble,  // release every rx slot, then write garbage buf_idx into all of them
  kOpRxLens,    // rxsync; a = slots ready, b = how many of them have len != 0
  kOpExit,
};

struct Req {
  uint32_t op = 0, flags = 0, ring = ~0u, len = 0, count = 0, seq0 = 0, batch = 0, tag = 0;
  int32_t timeout_ms = 0;
  Mac dst{}, src{};
};

struct Rep {
  int32_t rc = -1;
  uint32_t len = 0, nslots = 0, ring = 0, a = 0, b = 0;
};

class Remote {
 public:
  // Start the process and open spec there; ok() tells whether it opened.
  explicit Remote(const std::string& spec);
  Remote(const Remote&) = delete;
  Remote& operator=(const Remote&) = delete;
  ~Remote() { close(); }

  bool ok() const { return ok_; }
  int open_err() const { return open_err_; }
  unsigned rx_rings() const { return rx_rings_; }
  unsigned tx_rings() const { return tx_rings_; }
  pid_t pid() const { return child_.pid(); }
  const std::string& spec() const { return spec_; }

  // Send one frame; 0 or the errno of the txsync (-1: the process is gone).
  int send(const std::vector<uint8_t>& f, uint16_t flags = 0, unsigned ring = ~0u);

  // Receive one frame, waiting up to timeout_ms in the child's poll().
  bool recv(RxFrame* f, int timeout_ms = 5000);
  // The same in two halves: start the child's wait, collect the result.
  void recv_start(int timeout_ms);
  // false: no reply within wait_ms (or the process is gone); else *got
  // tells whether a frame came.
  bool recv_finish(RxFrame* f, int wait_ms, bool* got);

  // `count` frames (tag, seq0..) of len bytes to dst, `batch` per txsync.
  Rep send_many(const Mac& dst, const Mac& src, uint32_t tag, uint32_t seq0, uint32_t count,
                uint32_t batch, uint32_t len = 100);

  // A command without payload (kOpScribble, kOpRxLens).
  Rep simple(uint32_t op);

  // Close the port and end the process; its exit status (0 = clean).
  int close();

 private:
  bool request(const Req& q);
  bool reply(Rep* r, int wait_ms);
  void answer(const Rep& r);
  // The child: open the port, then serve commands until kOpExit.
  int serve();

  std::string spec_;
  Event to_, from_;
  Child child_;
  bool ok_ = false;
  int open_err_ = 0;
  unsigned rx_rings_ = 0, tx_rings_ = 0;
  int status_ = -1;
};

// "" if the next frame at r is intact and is (tag, seq) from src; else
// what came instead.
std::string next_is(Remote& r, uint32_t tag, uint32_t seq, const Mac* src = nullptr,
                    int timeout_ms = 5000);

}  // namespace nmtest
