// dummynet: FreeBSD's link emulator behind ipfw's pipe and queue actions,
// as kipfw runs it. A packet a rule sends to `pipe N` or `queue N` is held
// here and let go when the emulated link has carried it:
//
//   pipe N config [bw B] [delay D] [plr P] [queue Q] [mask M]
//       a link of B bit/s (0: no limit) with a propagation delay D, and
//       its scheduler N; plr and queue are those of the pipe's own flow
//       set, where `pipe N` rules put packets. A mask on a pipe makes one
//       link per flow (each with the whole bandwidth: dynamic pipes).
//   queue N config pipe P|sched P [weight W] [plr P] [queue Q] [mask M]
//       a flow set: its packets queue in per-flow queues (by mask) that
//       share pipe P's link, served by its scheduler by weight.
//   sched N config [type fifo|wf2q+|rr|qfq] [mask M]
//       the scheduler of pipe N (default wf2q+). qfq is served as wf2q+,
//       the order QFQ approximates.
//   pipe|queue|sched N delete, pipe|queue|sched show [N ...]
//
// Time is a parameter everywhere (nanoseconds of a monotonic clock), so
// the shapers run against a simulated clock in tests. A packet is held
// either as a copy (made when it comes in) or, zero copy, as the caller's
// own buffer named by a token (kipfw: a netmap buffer it swapped out of
// the rx ring, where both ports of a direction share a memory region);
// the token comes back with the packet when it goes, or to the release
// hook if the packet is dropped after it was held (a pipe reconfigured or
// deleted). At most kMaxHeld packets are held at once, the rest dropped
// and counted.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "ipfw/packet.h"

namespace unetmap::ipfw {

class Dummynet {
 public:
  static constexpr size_t kMaxHeld = 65536;
  static constexpr uint64_t kNoToken = ~0ull;  // held as a copy

  Dummynet();
  ~Dummynet();

  // `pipe ...`, `queue ...`, `sched ...` commands (the words after ipfw).
  bool command(const std::vector<std::string>& words, std::string* out, std::string* err);

  // Is there a pipe (queue: false) or flow set (queue: true) numbered n?
  bool exists(bool queue, uint32_t n) const;

  // Hold packet p (len bytes at frame, the whole packet) for pipe or queue
  // n, to leave by output `out` (kipfw's direction). With a token the
  // bytes at frame are held where they are (they must stay until the token
  // comes back); without, they are copied. false: dropped (no such pipe,
  // plr, queue full, too many held), counted, and a token stays the
  // caller's.
  bool enqueue(bool queue, uint32_t n, const Packet& p, const uint8_t* frame, uint32_t len, uint32_t out,
               uint64_t now, uint64_t token = kNoToken);

  // Let go of the packets whose time has come: sink(out, frame, len,
  // token) for each, in order; the token (kNoToken for a copy) is the
  // caller's again once sink returns true. sink returns false when its
  // output is full: the packet stays first in line. Returns when the next
  // packet is due (~0: none).
  template <typename Sink>
  uint64_t run(uint64_t now, Sink&& sink) {
    using S = std::remove_reference_t<Sink>;
    return run_impl(
        now,
        [](void* c, uint32_t o, const uint8_t* f, uint32_t l, uint64_t t) {
          return bool((*static_cast<S*>(c))(o, f, l, t));
        },
        const_cast<void*>(static_cast<const void*>(&sink)));
  }

  // Where the tokens of held packets that are dropped go (fn(ctx, out,
  // token)). Not called from the destructor: whatever the tokens name is
  // the caller's to free then.
  void set_release(void (*fn)(void* ctx, uint32_t out, uint64_t token), void* ctx) {
    release_ = fn;
    release_ctx_ = ctx;
  }

  size_t held() const { return held_; }

  struct Stats {
    uint64_t in_packets = 0, in_bytes = 0, out_packets = 0, out_bytes = 0;
    uint64_t plr_drops = 0, queue_drops = 0, no_pipe = 0, held_drops = 0;
    uint64_t zero_copy = 0;  // packets held by token, not copied
  };
  const Stats& stats() const { return stats_; }

  struct Impl;

 private:
  std::string show(const std::string& kind, const std::vector<uint32_t>& only) const;
  using SinkFn = bool (*)(void*, uint32_t, const uint8_t*, uint32_t, uint64_t);
  uint64_t run_impl(uint64_t now, SinkFn fn, void* ctx);
  std::unique_ptr<Impl> impl_;
  size_t held_ = 0;
  Stats stats_;
  void (*release_)(void*, uint32_t, uint64_t) = nullptr;
  void* release_ctx_ = nullptr;
};

}  // namespace unetmap::ipfw
