#include "replay.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace unetmap::replay {

namespace {

constexpr double kMaxBps = 1e13;         // 10 Tbit/s
constexpr double kMaxDelayNs = 3600e9;   // an hour
constexpr uint64_t kMaxTime = 1000000000000000000ull;  // 1e18 ns (31 years): times saturate here

uint64_t sat_add(uint64_t a, uint64_t b) { return a + b < kMaxTime && a < kMaxTime && b < kMaxTime ? a + b : kMaxTime; }
uint64_t to_time(double ns) { return ns < double(kMaxTime) ? uint64_t(ns) : kMaxTime; }

// The words of a comma-separated argument.
std::vector<std::string> split(const char* arg) {
  std::vector<std::string> out(1);
  for (const char* p = arg; *p; p++) {
    if (*p == ',')
      out.emplace_back();
    else
      out.back() += *p;
  }
  return out;
}

// A finite number >= 0 with an optional one-letter unit from `units`
// (each with its multiplier); false if it is not one.
bool scaled(const std::string& s, const char* units, const double* mult, double dflt, double* out) {
  if (s.empty() || !(isdigit((unsigned char)s[0]) || s[0] == '.')) return false;
  char* end;
  errno = 0;
  double v = strtod(s.c_str(), &end);
  if (errno || end == s.c_str()) return false;
  double m = dflt;
  if (*end) {
    const char* u = end[1] == 0 ? strchr(units, *end) : nullptr;
    if (!u || !*end) return false;
    m = mult[u - units];
  }
  v *= m;
  if (!std::isfinite(v) || v < 0) return false;
  *out = v;
  return true;
}

bool bandwidth(const std::string& s, double* bps) {
  static const double mult[] = {1e3, 1e3, 1e6, 1e6, 1e9, 1e9, 1, 1};
  return scaled(s, "kKmMgGbB", mult, 1, bps) && *bps >= 1 && *bps <= kMaxBps;
}

bool duration(const std::string& s, double* ns) {
  static const double mult[] = {1e9, 1e6, 1e3, 1};
  return scaled(s, "smun", mult, 1, ns) && *ns <= kMaxDelayNs;
}

bool fail(std::string* why, const char* what, const char* arg, const char* rule) {
  *why = std::string(what) + " '" + arg + "': " + rule;
  return false;
}

// A delay drawn from d.
uint64_t draw_delay(const Delay& d, std::mt19937_64& rng) {
  switch (d.kind) {
    case Delay::kConstant: return to_time(d.lo_ns);
    case Delay::kUniform: return to_time(std::uniform_real_distribution<double>(d.lo_ns, d.hi_ns)(rng));
    case Delay::kExp: {
      const double mean = d.hi_ns - d.lo_ns;
      const double x = mean > 0 ? std::exponential_distribution<double>(1 / mean)(rng) : 0;
      return to_time(d.lo_ns + std::min(x, kMaxDelayNs));
    }
    default: return 0;
  }
}

}  // namespace

bool parse_rate(const char* arg, Rate* out, std::string* why) {
  const auto w = split(arg);
  const char* rule = "BPS, constant,BPS, ether,BPS or real[,SPEEDUP] (BPS a number with k, m or g)";
  Rate r;
  if (w[0] == "real") {
    r.kind = Rate::kReal;
    if (w.size() > 2) return fail(why, "bandwidth", arg, rule);
    if (w.size() == 2) {
      char* end;
      r.speedup = strtod(w[1].c_str(), &end);
      if (w[1].empty() || *end || !std::isfinite(r.speedup) || r.speedup < 1e-6 || r.speedup > 1e9)
        return fail(why, "bandwidth", arg, "the speedup is a number from 0.000001 to 1e9");
    }
  } else {
    r.kind = w[0] == "ether" ? Rate::kEther : Rate::kConstant;
    const bool named = w[0] == "ether" || w[0] == "constant";
    if (w.size() != (named ? 2u : 1u) || !bandwidth(w[named ? 1 : 0], &r.bps))
      return fail(why, "bandwidth", arg, rule);
  }
  *out = r;
  return true;
}

bool parse_delay(const char* arg, Delay* out, std::string* why) {
  const auto w = split(arg);
  const char* rule = "DT, constant,DT, uniform,DMIN,DMAX or exp,DMIN,DAVG (times with s, m, u or n; n if none)";
  Delay d;
  bool ok;
  if (w[0] == "uniform" || w[0] == "exp") {
    d.kind = w[0] == "exp" ? Delay::kExp : Delay::kUniform;
    ok = w.size() == 3 && duration(w[1], &d.lo_ns) && duration(w[2], &d.hi_ns);
    if (ok && d.hi_ns < d.lo_ns)
      return fail(why, "delay", arg, d.kind == Delay::kExp ? "DAVG is below DMIN" : "DMAX is below DMIN");
  } else {
    d.kind = Delay::kConstant;
    const bool named = w[0] == "constant";
    ok = w.size() == (named ? 2u : 1u) && duration(w[named ? 1 : 0], &d.lo_ns);
  }
  if (!ok) return fail(why, "delay", arg, rule);
  *out = d;
  return true;
}

bool parse_loss(const char* arg, Loss* out, std::string* why) {
  const auto w = split(arg);
  Loss l;
  l.kind = w[0] == "ber" ? Loss::kBer : Loss::kPlr;
  const bool named = w[0] == "ber" || w[0] == "plr";
  char* end = nullptr;
  if (w.size() == (named ? 2u : 1u) && !w.back().empty()) l.rate = strtod(w.back().c_str(), &end);
  if (!end || *end || !(l.rate >= 0 && l.rate <= 1))
    return fail(why, "loss", arg, "X, plr,X or ber,X with X a rate from 0 to 1");
  *out = l;
  return true;
}

double wire_exact(const Rate& r, uint32_t len) {
  if (r.kind != Rate::kConstant && r.kind != Rate::kEther) return 0;
  return 8.0 * (len + (r.kind == Rate::kEther ? 24 : 0)) * 1e9 / r.bps;
}

uint64_t wire_ns(const Rate& r, uint32_t len) {
  if (r.kind != Rate::kConstant && r.kind != Rate::kEther) return 0;
  const double bits = 8.0 * (len + (r.kind == Rate::kEther ? 24 : 0));
  return to_time(bits * 1e9 / r.bps + 0.5);
}

Link::Link(const Rate& r, const Delay& d, const Loss& l, uint64_t seed)
    : rate_(r), delay_(d), loss_(l), rng_(seed) {}

uint64_t Link::delay() { return draw_delay(delay_, rng_); }

uint64_t Link::next(uint32_t len, uint64_t stamp_ns, bool* lost) {
  uint64_t t = 0;
  if (rate_.kind == Rate::kConstant || rate_.kind == Rate::kEther) {
    // Fractions of a nanosecond add up (60 bytes at 100 Gbit/s: 4.8 ns).
    t = to_time(clock_);
    clock_ += wire_exact(rate_, len);
  } else if (rate_.kind == Rate::kReal) {
    if (!have_first_) first_ = stamp_ns, have_first_ = true;
    // A stamp before the first (a capture whose clock stepped back) goes
    // at once; order is kept below.
    t = stamp_ns > first_ ? to_time(double(stamp_ns - first_) / rate_.speedup) : 0;
  }
  if (t > last_t_) last_t_ = t;
  frames_++;
  uint64_t s = sat_add(sat_add(base_, t), delay());
  if (s < prev_) s = prev_;
  prev_ = s;
  *lost = false;
  if (loss_.kind != Loss::kNone && loss_.rate > 0) {
    const double p = loss_.kind == Loss::kPlr ? loss_.rate : -std::expm1(8.0 * len * std::log1p(-loss_.rate));
    *lost = std::uniform_real_distribution<double>(0, 1)(rng_) < p;
  }
  return s;
}

void Link::end_pass() {
  uint64_t d = 0;
  if (rate_.kind == Rate::kConstant || rate_.kind == Rate::kEther)
    d = to_time(clock_);
  else if (rate_.kind == Rate::kReal)
    d = sat_add(last_t_, frames_ > 1 ? last_t_ / (frames_ - 1) : 0);  // the mean gap after the last
  base_ = sat_add(base_, d);
  clock_ = 0;
  last_t_ = frames_ = 0;
  have_first_ = false;
}

bool parse_reorder(const char* arg, double* p, uint64_t* hold_ns, std::string* why) {
  auto w = split(arg);
  if (w[0] == "const" || w[0] == "constant") w.erase(w.begin());
  char* end = nullptr;
  double prob = w.size() == 2 && !w[0].empty() ? strtod(w[0].c_str(), &end) : -1;
  double t;
  if (!end || *end || !(prob >= 0 && prob <= 1) || !duration(w[1], &t))
    return fail(why, "reordering", arg, "const,P,T or P,T: a probability from 0 to 1 and a time (s, m, u, n)");
  *p = prob;
  *hold_ns = to_time(t);
  return true;
}

bool parse_size(const char* arg, uint64_t* bytes, std::string* why) {
  static const double mult[] = {1e3, 1e3, 1e6, 1e6, 1e9, 1e9};
  double v;
  if (!scaled(arg, "kKmMgG", mult, 1, &v) || v < 1 || v > 1e12)
    return fail(why, "queue size", arg, "a number of bytes from 1, with k, m or g (10^3, 10^6, 10^9), at most 1000g");
  *bytes = uint64_t(v);
  return true;
}

ArrivalLink::Verdict ArrivalLink::arrive(uint64_t now, uint32_t len, uint64_t* out, bool* held) {
  uint64_t t = now;
  *held = false;
  if (p_.rate.kind == Rate::kConstant || p_.rate.kind == Rate::kEther) {
    const double start = link_free_ > double(now) ? link_free_ : double(now);
    if (p_.queue_bytes && (start - double(now)) * p_.rate.bps / 8e9 > double(p_.queue_bytes)) return kQueueFull;
    link_free_ = start + wire_exact(p_.rate, len);
    t = to_time(link_free_);
  }
  std::uniform_real_distribution<double> u(0, 1);
  if (p_.loss.kind != Loss::kNone && p_.loss.rate > 0) {
    const double pl = p_.loss.kind == Loss::kPlr ? p_.loss.rate : -std::expm1(8.0 * len * std::log1p(-p_.loss.rate));
    if (u(rng_) < pl) return kLost;
  }
  t = sat_add(t, draw_delay(p_.delay, rng_));
  if (p_.reorder_p > 0 && u(rng_) < p_.reorder_p) {
    *held = true;
    *out = sat_add(t, p_.hold_ns);
    return kGo;
  }
  if (t < prev_) t = prev_;
  prev_ = t;
  *out = t;
  return kGo;
}

}  // namespace unetmap::replay
