// nmreplay's link model: how a capture's frames are timed (-B), delayed
// (-D) and lost (-L), with netmap's nmreplay option syntax. Pure
// functions, unit-tested and fuzzed apart from the tool.
//
//   -B BPS | constant,BPS | ether,BPS | real[,SPEEDUP]
//       BPS: a number with an optional k, m, g (10^3, 10^6, 10^9; either
//       case). constant: each frame takes len*8/BPS; ether: (len+24)*8/BPS
//       (preamble, inter-frame gap and CRC); real: the capture's own time
//       stamps, SPEEDUP times faster (default 1). No -B: as fast as the
//       port takes them.
//   -D DT | constant,DT | uniform,DMIN,DMAX | exp,DMIN,DAVG
//       times with an optional s, m, u, n (default n: nanoseconds); a
//       delay added to each frame's time, never reordering frames.
//   -L X | plr,X | ber,X
//       a packet loss rate, or a bit error rate (a frame of len bytes is
//       lost with probability 1 - (1 - X)^(8*len)).
#pragma once

#include <cstdint>
#include <random>
#include <string>

namespace unetmap::replay {

struct Rate {
  enum Kind { kMax, kConstant, kEther, kReal } kind = kMax;
  double bps = 0;
  double speedup = 1;
};

struct Delay {
  enum Kind { kNone, kConstant, kUniform, kExp } kind = kNone;
  double lo_ns = 0, hi_ns = 0;  // constant: lo; uniform: [lo, hi]; exp: lo + mean (hi - lo)
};

struct Loss {
  enum Kind { kNone, kPlr, kBer } kind = kNone;
  double rate = 0;
};

// Each parser: true, or false with *why ("bandwidth 'x': ...").
bool parse_rate(const char* arg, Rate* out, std::string* why);
bool parse_delay(const char* arg, Delay* out, std::string* why);
bool parse_loss(const char* arg, Loss* out, std::string* why);

// Nanoseconds a frame of len bytes occupies the link at rate r (0 for
// kMax and kReal, whose times come from elsewhere).
uint64_t wire_ns(const Rate& r, uint32_t len);
double wire_exact(const Rate& r, uint32_t len);  // the same, not rounded

// The link: per frame, its send time and whether it is lost. Frames are
// given in order with their length and capture time stamp (ns); a pass
// ends with end_pass(), and the next pass follows the first without a gap
// beyond the last frame's own time.
class Link {
 public:
  Link(const Rate& r, const Delay& d, const Loss& l, uint64_t seed);
  // The send time (ns from the start) of the next frame; *lost if the
  // link loses it (it still takes its time on the link).
  uint64_t next(uint32_t len, uint64_t stamp_ns, bool* lost);
  void end_pass();

 private:
  uint64_t delay();
  Rate rate_;
  Delay delay_;
  Loss loss_;
  std::mt19937_64 rng_;
  uint64_t base_ = 0;      // the pass's start
  double clock_ = 0;       // constant/ether: when the link is free again (in the pass), ns
  uint64_t first_ = 0;     // real: the pass's first stamp
  bool have_first_ = false;
  uint64_t last_t_ = 0;    // the pass's last undelayed time
  uint64_t frames_ = 0;    // in the pass
  uint64_t prev_ = 0;      // the last send time: frames never go out of order
};

// tlem's link, one direction: frames arrive at a time (ns) and leave at a
// time. With a bandwidth, a frame starts when the link is free and
// leaves once sent; a frame that would wait behind more than `queue_bytes`
// bytes is refused (queue full). Loss takes frames that were sent. The
// delay is added without reordering, but a frame held for reordering
// (probability reorder_p) leaves hold_ns later and may be overtaken.
struct LinkParams {
  Rate rate;  // kMax: no limit; kReal is not a link's
  Delay delay;
  Loss loss;
  double reorder_p = 0;
  uint64_t hold_ns = 0;
  uint64_t queue_bytes = 0;  // 0: no limit
};

// -R const,P,T | P,T (P a probability, T a time as -D's); -Q BYTES (k, m,
// g: 10^3, 10^6, 10^9). true, or false with *why.
bool parse_reorder(const char* arg, double* p, uint64_t* hold_ns, std::string* why);
bool parse_size(const char* arg, uint64_t* bytes, std::string* why);

class ArrivalLink {
 public:
  ArrivalLink(const LinkParams& p, uint64_t seed) : p_(p), rng_(seed) {}
  // New parameters, from the next frame on.
  void set(const LinkParams& p) { p_ = p; }
  const LinkParams& params() const { return p_; }
  enum Verdict { kGo, kLost, kQueueFull };
  // A frame of len bytes arriving at `now`: kGo with its exit time in
  // *out (and *held if it is held for reordering), or why it goes nowhere.
  Verdict arrive(uint64_t now, uint32_t len, uint64_t* out, bool* held);

 private:
  LinkParams p_;
  std::mt19937_64 rng_;
  double link_free_ = 0;    // when the link has sent what it took, ns (fractions add up)
  uint64_t prev_ = 0;       // the last exit time of a frame not held
};

}  // namespace unetmap::replay
