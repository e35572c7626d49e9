// tlem: a two-way link emulator between two netmap ports, with netmap's
// tlem options, unetmap's own code.
//
//   tlem -i A -i B [-B BW] [-D DELAY] [-L LOSS] [-R REORDER] [-Q SIZE] [-b BATCH]
//        [-w SECS] [-C CPU] [-s SESSION [-a]] [-M BW,DELAY,HOLD] [-v] [-q]
//
// Frames read from A go to B and frames from B go to A, each direction
// through its own link (replay.h's ArrivalLink: bandwidth with a queue,
// delay, loss, reordering). -B, -D, -L, -R and -Q given once apply to
// both directions; given twice, the first is A to B and the second B to A.
//
// A frame waits in its direction's delay line, a copy in a ring of bytes
// sized by -M (the largest bandwidth times the largest delay plus hold,
// plus the queue; 64 MB a direction without -M), until its time; then it
// goes on the other port's first tx ring. The loop sleeps in ppoll until
// the ports have frames or 100 us before the next frame's time, then
// spins, as nmreplay does.
//
// Sessions (-s NAME): the first tlem of a session serves it on
// $UNETMAP_DIR/tlem.NAME.sock (ctl_socket.h); a later `tlem -s NAME` with
// -B/-D/-L/-R/-Q changes the running emulation's parameters, and
// `tlem -s NAME -a` stops it. With -M, requests beyond its maxima are
// refused.
#include <errno.h>
#include <getopt.h>
#include <libnetmap.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <cinttypes>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cli.h"
#include "ctl_socket.h"
#include "replay.h"
#include "tlem_route.h"
#include "tx_frame.h"

namespace {

using namespace unetmap;
using cli::now_ns;
using replay::LinkParams;

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr uint64_t kSpinNs = 100000;
constexpr uint64_t kDefaultLine = 64ull << 20;
constexpr size_t kNowQueue = 1024;  // route mode: tlem's own frames waiting for room

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

void usage(FILE* f) {
  fprintf(f,
          "usage: tlem -i A -i B [-B BW] [-D DELAY] [-L LOSS] [-R REORDER] [-Q SIZE] [-b BATCH] [-w SECS]\n"
          "            [-C CPU] [-s SESSION [-a]] [-M BW,DELAY,HOLD] [-r [-G ADDR]...] [-v] [-q]\n"
          "Emulate a link between two netmap ports, each direction on its own. -B, -D, -L, -R, -Q:\n"
          "once for both directions, twice for A to B then B to A.\n"
          "  -B BW      BPS | constant,BPS | ether,BPS (k, m, g); default: no limit\n"
          "  -D DELAY   DT | constant,DT | uniform,DMIN,DMAX | exp,DMIN,DAVG (s, m, u, n)\n"
          "  -L LOSS    X | plr,X | ber,X\n"
          "  -R REORDER const,P,T: hold a frame T longer with probability P (it may be overtaken)\n"
          "  -Q SIZE    queue in bytes (k, m, g) before the bandwidth: beyond it frames are dropped\n"
          "  -b BATCH   most frames in one sync (default 512)\n"
          "  -w SECS    wait before forwarding (default 2, for a NIC's link)\n"
          "  -C CPU     run on this CPU\n"
          "  -s SESSION serve the session, or change a running one's parameters; -a stops it\n"
          "  -M BW,DELAY,HOLD  the largest values the session accepts; sizes the delay lines\n"
          "  -r         route mode: an IPv4 router between the subnets of the two ports' interfaces\n"
          "  -G ADDR    route mode: a default gateway (on the subnet of the side it belongs to)\n"
          "  -v / -q    a line of counters every second / no start-up line\n");
}

// What the command line or a session request says.
struct Request {
  std::vector<std::string> ports;
  std::vector<std::string> opt[5];  // -B -D -L -R -Q, as given (one or two each)
  LinkParams dir[2];
  long batch = 512, wait = 2, cpu = -1;
  std::string session;
  bool stop_server = false, verbose = false, quiet = false, route = false;
  std::vector<std::string> gateways;  // -G, route mode
  bool have_max = false;
  double max_bps = 0, max_delay_ns = 0, max_hold_ns = 0;
};

constexpr const char* kLinkOpts = "BDLRQ";

// Apply option c (one of kLinkOpts) with its argument to direction d.
bool apply(char c, const char* arg, LinkParams* d, std::string* why) {
  switch (c) {
    case 'B':
      if (!replay::parse_rate(arg, &d->rate, why)) return false;
      if (d->rate.kind == replay::Rate::kReal) {
        *why = "bandwidth 'real': a link has no capture time stamps";
        return false;
      }
      return true;
    case 'D': return replay::parse_delay(arg, &d->delay, why);
    case 'L': return replay::parse_loss(arg, &d->loss, why);
    case 'R': return replay::parse_reorder(arg, &d->reorder_p, &d->hold_ns, why);
    default: return replay::parse_size(arg, &d->queue_bytes, why);
  }
}

// The link options of r into r->dir; false with *why.
bool link_params(Request* r, std::string* why) {
  for (int k = 0; k < 5; k++) {
    const auto& v = r->opt[k];
    if (v.size() > 2) {
      *why = std::string("-") + kLinkOpts[k] + " given " + std::to_string(v.size()) +
             " times: once for both directions, or twice";
      return false;
    }
    for (int d = 0; d < 2; d++)
      if (!v.empty() && !apply(kLinkOpts[k], v[v.size() == 2 ? d : 0].c_str(), &r->dir[d], why)) return false;
  }
  return true;
}

// -M BW,DELAY,HOLD
bool parse_max(const char* arg, Request* r, std::string* why) {
  std::string s = arg;
  const size_t a = s.find(','), b = a == std::string::npos ? a : s.find(',', a + 1);
  replay::Rate rate;
  replay::Delay d, h;
  if (b == std::string::npos || !replay::parse_rate(s.substr(0, a).c_str(), &rate, why) ||
      rate.kind == replay::Rate::kReal || !replay::parse_delay(s.substr(a + 1, b - a - 1).c_str(), &d, why) ||
      !replay::parse_delay(s.substr(b + 1).c_str(), &h, why) || d.kind != replay::Delay::kConstant ||
      h.kind != replay::Delay::kConstant) {
    *why = std::string("-M '") + arg + "': BW,DELAY,HOLD (a bandwidth and two times)";
    return false;
  }
  r->have_max = true;
  r->max_bps = rate.bps;
  r->max_delay_ns = d.lo_ns;
  r->max_hold_ns = h.lo_ns;
  return true;
}

// The longest delay a link's parameters can give (uniform: DMAX; exp: its
// mean times 10, past which a draw is rarer than 1 in 20000).
double max_delay_of(const replay::Delay& d) {
  return d.kind == replay::Delay::kUniform ? d.hi_ns
         : d.kind == replay::Delay::kExp   ? d.lo_ns + 10 * (d.hi_ns - d.lo_ns)
                                           : d.lo_ns;
}

// Whether r's links fit in the maxima of `limits` (-M); *why if not.
bool within_max(const Request& r, const Request& limits, std::string* why) {
  if (!limits.have_max) return true;
  for (const LinkParams& p : r.dir) {
    if (p.rate.kind == replay::Rate::kMax || p.rate.bps > limits.max_bps || max_delay_of(p.delay) > limits.max_delay_ns ||
        double(p.hold_ns) > limits.max_hold_ns) {
      *why = "beyond the session's maxima (-M): a bandwidth, delay or hold above them, or no bandwidth limit";
      return false;
    }
  }
  return true;
}

// Parse argv (the command line, or a session request's words) into r,
// whose link parameters the options given change; -1 to go on, else the
// exit status, with *why unless it is 0 (--help).
int parse(int argc, char** argv, Request* r, std::string* why) {
  static const option longopts[] = {{"help", no_argument, nullptr, 'h'}, {nullptr, 0, nullptr, 0}};
  optind = 0;  // a full restart: glibc keeps a pointer into the last argv otherwise
  opterr = 0;
  int ch;
  while ((ch = getopt_long(argc, argv, "i:B:D:L:R:Q:b:w:C:s:aM:vqrG:h", longopts, nullptr)) != -1) {
    bool ok = true;
    switch (ch) {
      case 'i': r->ports.push_back(optarg); break;
      case 'B': case 'D': case 'L': case 'R': case 'Q': r->opt[strchr(kLinkOpts, ch) - kLinkOpts].push_back(optarg); break;
      case 'b': ok = cli::parse_number('b', optarg, 1, 1 << 16, "a number in", &r->batch, why); break;
      case 'w': ok = cli::parse_number('w', optarg, 0, 3600, "a number in", &r->wait, why); break;
      case 'C': ok = cli::parse_number('C', optarg, 0, CPU_SETSIZE - 1, "a number in", &r->cpu, why); break;
      case 's':
        r->session = optarg;
        ok = !r->session.empty() && r->session.size() <= 48 &&
             r->session.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") ==
                 std::string::npos;
        if (!ok) *why = "-s " + r->session + ": a session name is 1..48 letters, digits, _ or -";
        break;
      case 'a': r->stop_server = true; break;
      case 'M': ok = parse_max(optarg, r, why); break;
      case 'v': r->verbose = true; break;
      case 'r': r->route = true; break;
      case 'G': r->gateways.push_back(optarg); break;
      case 'q': r->quiet = true; break;
      case 'h': usage(stdout); return 0;
      default:
        *why = optopt ? std::string("-") + char(optopt) + ": unknown option, or its argument is missing"
                      : std::string("unknown option ") + argv[optind - 1];
        ok = false;
    }
    if (!ok) return kExitUsage;
  }
  if (optind < argc) {
    *why = std::string("unexpected argument '") + argv[optind] + "'";
    return kExitUsage;
  }
  if (!link_params(r, why)) return kExitUsage;
  return -1;
}

// The frame of nslots slots at i of rx ring r (len bytes in all) into dst,
// with the packet engine's gather.
void gather(const netmap_ring* r, uint32_t i, uint32_t nslots, uint8_t* dst, uint32_t len) {
  netmap_ring* ring = const_cast<netmap_ring*>(r);
  gather_frame(
      [&](uint32_t k) {
        const netmap_slot& s = r->slot[ring_add(i, k, r->num_slots)];
        return Frag{reinterpret_cast<const uint8_t*>(NETMAP_BUF(ring, s.buf_idx)), s.len};
      },
      nslots, dst, len);
}

// One direction's delay line: frames copied into a ring of bytes, in the
// order they leave (held frames in a second line of their own: both are
// in exit-time order, and the sender takes the earlier head).
class Line {
 public:
  explicit Line(size_t bytes) : arena_(new uint8_t[bytes]), n_(bytes) {}
  // false if there is no room (the frame is dropped, counted).
  bool push(uint64_t t, const netmap_ring* r, uint32_t i, uint32_t nslots, uint32_t len) {
    // Every record takes a byte at least: the write position meeting the
    // oldest record then always means full, never empty.
    const size_t at = place(len ? len : 1);
    if (at == SIZE_MAX) return false;
    gather(r, i, nslots, &arena_[at], len);
    recs_.push_back({t, at, len});
    used_ += len;
    return true;
  }
  bool empty() const { return recs_.empty(); }
  uint8_t* last() { return &arena_[recs_.back().off]; }
  uint64_t front_time() const { return recs_.front().t; }
  const uint8_t* front(uint32_t* len) const {
    *len = recs_.front().len;
    return &arena_[recs_.front().off];
  }
  void pop() {
    used_ -= recs_.front().len;
    recs_.pop_front();
    if (recs_.empty()) wr_ = 0;
  }
  size_t size() const { return recs_.size(); }

 private:
  struct Rec {
    uint64_t t;
    size_t off;
    uint32_t len;
  };
  // Where len contiguous bytes go, after the newest frame (wrapping to the
  // start when the end has no room), SIZE_MAX if the oldest is in the way.
  size_t place(uint32_t len) {
    const size_t n = n_;
    if (recs_.empty()) wr_ = 0;
    const size_t rd = recs_.empty() ? 0 : recs_.front().off;
    size_t at = wr_;
    if (!recs_.empty() && wr_ <= rd) {  // wrapped: free space is [wr_, rd)
      if (rd - wr_ < len) return SIZE_MAX;
    } else if (n - wr_ < len) {  // the end is short: start again at 0
      if (rd < len || (recs_.empty() && n < len)) return SIZE_MAX;
      at = 0;
    }
    wr_ = at + len;
    return at;
  }
  std::unique_ptr<uint8_t[]> arena_;  // touched as it fills
  size_t n_;
  std::deque<Rec> recs_;
  size_t wr_ = 0, used_ = 0;
};

// Frames held for reordering: their exit times need not come in order
// (a random delay), so they are kept sorted; a budget of bytes bounds them.
class HeldLine {
 public:
  explicit HeldLine(size_t bytes) : budget_(bytes) {}
  bool push(uint64_t t, const netmap_ring* r, uint32_t i, uint32_t nslots, uint32_t len) {
    if (len > budget_ - used_) return false;
    std::vector<uint8_t> f(len);
    gather(r, i, nslots, f.data(), len);
    last_ = q_.emplace(t, std::move(f));
    used_ += len;
    return true;
  }
  bool empty() const { return q_.empty(); }
  uint64_t front_time() const { return q_.begin()->first; }
  const uint8_t* front(uint32_t* len) const {
    *len = uint32_t(q_.begin()->second.size());
    return q_.begin()->second.data();
  }
  void pop() {
    used_ -= q_.begin()->second.size();
    if (last_ == q_.begin()) last_ = q_.end();
    q_.erase(q_.begin());
  }
  size_t size() const { return q_.size(); }
  uint8_t* last() { return last_->second.data(); }

 private:
  std::multimap<uint64_t, std::vector<uint8_t>> q_;
  std::multimap<uint64_t, std::vector<uint8_t>>::iterator last_ = q_.end();
  size_t budget_, used_ = 0;
};

struct Counters {
  uint64_t in = 0, out = 0, bytes = 0, lost = 0, queue_full = 0, line_full = 0, held = 0, too_long = 0;
  uint64_t not_routed = 0;  // route mode: frames with no route, and ARP, which tlem answers itself
};

struct Direction {
  const char* name;
  nmport_d* from;
  nmport_d* to;
  replay::ArrivalLink link;
  Line line;
  HeldLine held;
  Counters c;
  uint32_t queued = 0;  // frames put on `to` since its last sync
  // Route mode: the sides frames come from and go to, and tlem's own
  // frames (ARP) to send out of `to` at once, ahead of the link.
  tlem::Side* in_side = nullptr;
  tlem::Side* out_side = nullptr;
  std::deque<std::vector<uint8_t>> now_q;
  bool stuck = false;  // its input holds only the start of a chain
};

// Frames waiting on the rx rings of d.from into its delay lines (other:
// the opposite direction, which sends route mode's ARP replies).
void take_in(Direction& d, Direction& other, uint64_t now) {
  std::vector<std::vector<uint8_t>> reply_in, ask_out;
  d.stuck = false;
  for (int r = d.from->first_rx_ring; r <= d.from->last_rx_ring; r++) {
    netmap_ring* ring = NETMAP_RXRING(d.from->nifp, r);
    while (!nm_ring_empty(ring)) {
      // A frame's slots (a chain), all present, else wait for the rest.
      uint32_t i = ring->head, n = 1, len = 0;
      for (;; i = nm_ring_next(ring, i), n++) {
        len += ring->slot[i].len;
        if (!(ring->slot[i].flags & NS_MOREFRAG)) break;
        if (nm_ring_next(ring, i) == ring->tail) {
          n = 0;
          break;
        }
      }
      if (n == 0) {
        // The rest of the chain is still to come, unless the chain fills
        // the ring: then it never can, and goes (counted).
        if (nm_ring_space(ring) + 1 < ring->num_slots) {
          d.stuck = true;
          break;
        }
        d.c.too_long++;
        ring->head = ring->cur = ring->tail;
        break;
      }
      d.c.in++;
      tlem::Route rt;
      if (d.in_side) {
        const netmap_slot& s0 = ring->slot[ring->head];
        rt = tlem::route(reinterpret_cast<const uint8_t*>(NETMAP_BUF(ring, s0.buf_idx)), s0.len, *d.in_side,
                         *d.out_side, now, &reply_in, &ask_out);
        if (rt.kind != tlem::Route::kForward) {
          d.c.not_routed++;
          ring->head = ring->cur = nm_ring_next(ring, i);
          continue;
        }
      }
      uint64_t t;
      bool held;
      switch (d.link.arrive(now, len, &t, &held)) {
        case replay::ArrivalLink::kLost: d.c.lost++; break;
        case replay::ArrivalLink::kQueueFull: d.c.queue_full++; break;
        default: {
          const bool ok = held ? d.held.push(t, ring, ring->head, n, len) : d.line.push(t, ring, ring->head, n, len);
          if (!ok) {
            d.c.line_full++;
          } else {
            d.c.held += held;
            if (d.in_side && len >= 12) {  // the copy gets its new Ethernet addresses
              uint8_t* f = held ? d.held.last() : d.line.last();
              memcpy(f, rt.dst.data(), 6);
              memcpy(f + 6, rt.src.data(), 6);
            }
          }
        }
      }
      ring->head = ring->cur = nm_ring_next(ring, i);
    }
  }
  // tlem's own frames wait for room in a queue of at most kNowQueue (a
  // flood of ARP requests toward a port that sends nothing costs no memory).
  for (auto& f : reply_in)
    if (other.now_q.size() < kNowQueue) other.now_q.push_back(std::move(f));
  for (auto& f : ask_out)
    if (d.now_q.size() < kNowQueue) d.now_q.push_back(std::move(f));
}

// Frames tlem makes itself (route mode's ARP) onto d.to's first tx ring.
void send_now(Direction& d) {
  netmap_ring* ring = NETMAP_TXRING(d.to->nifp, d.to->first_tx_ring);
  while (!d.now_q.empty() && nm_ring_space(ring) > 0) {
    const std::vector<uint8_t>& f = d.now_q.front();  // an ARP frame: one slot
    tx_put(ring, f.data(), uint32_t(f.size()));
    d.now_q.pop_front();
    d.queued++;
  }
}

// Frames whose time has come onto d.to's first tx ring; false if the ring
// is full with frames due (wait for room).
bool send_out(Direction& d, uint64_t now, long batch) {
  netmap_ring* ring = NETMAP_TXRING(d.to->nifp, d.to->first_tx_ring);
  if (!d.now_q.empty()) send_now(d);
  for (;;) {
    const bool line_due = !d.line.empty() && d.line.front_time() <= now;
    const bool held_due = !d.held.empty() && d.held.front_time() <= now;
    if (!line_due && !held_due) break;
    const bool from_held = held_due && (!line_due || d.held.front_time() < d.line.front_time());
    uint32_t len;
    const uint8_t* f = from_held ? d.held.front(&len) : d.line.front(&len);
    const auto pop = [&] { from_held ? d.held.pop() : d.line.pop(); };
    const uint32_t need = tx_slots(ring, f, len);
    if (need == 0) {
      d.c.too_long++;
      pop();
      continue;
    }
    if (nm_ring_space(ring) < need) {
      if (d.queued) ioctl(d.to->fd, NIOCTXSYNC, nullptr), d.queued = 0;
      if (nm_ring_space(ring) < need) return false;
    }
    tx_put(ring, f, len);
    d.c.out++;
    d.c.bytes += len;
    pop();
    if (++d.queued >= uint32_t(batch)) ioctl(d.to->fd, NIOCTXSYNC, nullptr), d.queued = 0;
  }
  if (d.queued) ioctl(d.to->fd, NIOCTXSYNC, nullptr), d.queued = 0;
  return true;
}

uint64_t next_time(const Direction& d) {
  uint64_t t = UINT64_MAX;
  if (!d.line.empty()) t = d.line.front_time();
  if (!d.held.empty() && d.held.front_time() < t) t = d.held.front_time();
  return t;
}

std::string counters_json(const Direction* dirs) {
  std::string j = "{\"directions\":[";
  char b[512];
  for (int k = 0; k < 2; k++) {
    const Counters& c = dirs[k].c;
    snprintf(b, sizeof b,
             "%s{\"dir\":\"%s\",\"in\":%" PRIu64 ",\"out\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"lost\":%" PRIu64
             ",\"queue_full\":%" PRIu64 ",\"line_full\":%" PRIu64 ",\"held\":%" PRIu64 ",\"too_long\":%" PRIu64
             ",\"not_routed\":%" PRIu64 ",\"waiting\":%zu}",
             k ? "," : "", dirs[k].name, c.in, c.out, c.bytes, c.lost, c.queue_full, c.line_full, c.held, c.too_long,
             c.not_routed, dirs[k].line.size() + dirs[k].held.size());
    j += b;
  }
  return j + "]}";
}

// A session request: "set ARGS..." (link options) or "stop" or "stats".
void handle(const std::string& line, Direction* dirs, const Request& limits, std::string* reply) {
  std::vector<std::string> w;
  for (size_t a = 0, b; a < line.size(); a = b + 1) {
    b = line.find('\x1f', a);
    if (b == std::string::npos) b = line.size();
    w.push_back(line.substr(a, b - a));
  }
  if (w.size() == 1 && w[0] == "stop") {
    g_stop = 1;
    *reply = "0\n";
    return;
  }
  if (w.size() == 1 && w[0] == "stats") {
    *reply = "0\n" + counters_json(dirs) + "\n";
    return;
  }
  if (w.empty() || w[0] != "set") {
    *reply = "1 unknown request\n";
    return;
  }
  // Only the link options: a request cannot print help onto our stdout,
  // name ports or start anything.
  for (size_t k = 1; k < w.size(); k++)
    if (w[k].size() != 2 || w[k][0] != '-' || !strchr(kLinkOpts, w[k][1]) || ++k == w.size()) {
      *reply = "1 a session request takes -B, -D, -L, -R and -Q, each with its value\n";
      return;
    }
  Request r;  // the running parameters, changed by the options given
  for (int d = 0; d < 2; d++) r.dir[d] = dirs[d].link.params();
  std::vector<char*> argv;
  for (std::string& s : w) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::string why;
  if (parse(int(w.size()), argv.data(), &r, &why) >= 0 || !within_max(r, limits, &why)) {
    *reply = "1 " + (why.empty() ? std::string("bad request") : why) + "\n";
    return;
  }
  for (int d = 0; d < 2; d++) dirs[d].link.set(r.dir[d]);
  *reply = "0\n";
}

// As a client of a running session: send our link options, or stop it.
int client(const Request& r, int argc, char** argv) {
  const std::string path = ctl::socket_path("tlem", r.session);
  std::string line = r.stop_server ? "stop" : "set";
  if (!r.stop_server)
    for (int k = 0; k < 5; k++)
      for (const std::string& v : r.opt[k]) line += std::string("\x1f-") + kLinkOpts[k] + '\x1f' + v;
  std::string reply, err;
  if (!ctl::ask(path, line, &reply, &err)) {
    fprintf(stderr, "tlem: session %s: %s\n", r.session.c_str(), err.c_str());
    return kExitFailed;
  }
  if (reply[0] != '0') {
    fprintf(stderr, "tlem: session %s: %s", r.session.c_str(), reply.substr(2).c_str());
    return kExitFailed;
  }
  if (r.stop_server) {  // until it is gone: its socket no longer answers
    for (int i = 0; i < 500; i++) {
      std::string e2, rep;
      if (!ctl::ask(path, "stats", &rep, &e2)) return 0;
      usleep(10000);
    }
    fprintf(stderr, "tlem: session %s: still running after 5 s\n", r.session.c_str());
    return kExitFailed;
  }
  return 0;
}

// Route mode's two sides, from the ports' interfaces; each -G goes to the
// side whose subnet holds it.
bool route_sides(const Request& r, tlem::Side* sides, std::string* why) {
  for (int k = 0; k < 2; k++)
    if (!tlem::side_of(r.ports[k], &sides[k], why)) return false;
  for (const std::string& g : r.gateways) {
    uint32_t ip;
    if (!tlem::parse_ip(g.c_str(), &ip)) {
      *why = "-G " + g + ": not an IPv4 address";
      return false;
    }
    int k = sides[0].on_subnet(ip) ? 0 : sides[1].on_subnet(ip) ? 1 : -1;
    if (k < 0) {
      *why = "-G " + g + ": on neither port's subnet";
      return false;
    }
    sides[k].gw = ip;
  }
  return true;
}

size_t line_bytes(const Request& r) {
  if (!r.have_max) return kDefaultLine;
  double b = r.max_bps / 8 * (r.max_delay_ns + r.max_hold_ns) / 1e9;
  uint64_t q = 0;
  for (const LinkParams& p : r.dir) q = std::max(q, p.queue_bytes);
  b += double(q) + (1 << 20);
  return b > double(16ull << 30) ? size_t(16ull << 30) : size_t(b);
}

}  // namespace

int main(int argc, char** argv) {
  Request r;
  std::string why;
  if (const int rc = parse(argc, argv, &r, &why); rc >= 0) {
    if (rc) fprintf(stderr, "tlem: %s; --help for usage\n", why.c_str());
    return rc;
  }
  // A session that runs already takes our parameters.
  const std::string sock = r.session.empty() ? "" : ctl::socket_path("tlem", r.session);
  if (!r.session.empty()) {
    std::string reply, err;
    if (ctl::ask(sock, "stats", &reply, &err)) return client(r, argc, argv);
    if (r.stop_server) {
      fprintf(stderr, "tlem: session %s: no tlem serves it\n", r.session.c_str());
      return kExitFailed;
    }
  }
  if (r.ports.size() != 2) {
    fprintf(stderr, "tlem: -i must name two ports (%zu given); --help for usage\n", r.ports.size());
    return kExitUsage;
  }
  if (!r.gateways.empty() && !r.route) {
    fprintf(stderr, "tlem: -G is for route mode (-r); --help for usage\n");
    return kExitUsage;
  }
  if (r.gateways.size() > 2) {
    fprintf(stderr, "tlem: -G given %zu times: a gateway for each side at most; --help for usage\n", r.gateways.size());
    return kExitUsage;
  }
  if (!within_max(r, r, &why)) {
    fprintf(stderr, "tlem: %s\n", why.c_str());
    return kExitUsage;
  }
  if (r.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(int(r.cpu), &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
      fprintf(stderr, "tlem: -C %ld: %s\n", r.cpu, strerror(errno));
      return kExitFailed;
    }
  }
  nmport_d* a = nmport_open(r.ports[0].c_str());
  nmport_d* b = a ? nmport_open(r.ports[1].c_str()) : nullptr;
  if (!b) {
    if (a) nmport_close(a);
    return kExitFailed;  // libnetmap said why
  }
  const size_t lb = line_bytes(r);
  if (const uint64_t avail = cli::mem_available(); 2 * (lb + lb / 4) > avail / 2) {
    fprintf(stderr, "tlem: delay lines of %zu MB in all (-M), more than half the memory available (%" PRIu64 " MB)\n",
            2 * (lb + lb / 4) >> 20, avail >> 20);
    nmport_close(a);
    nmport_close(b);
    return kExitUsage;
  }
  std::random_device rd;
  Direction dirs[2] = {
      {"A>B", a, b, replay::ArrivalLink(r.dir[0], rd()), Line(lb), HeldLine(lb / 4 + 65536), {}, 0, nullptr, nullptr, {}, false},
      {"B>A", b, a, replay::ArrivalLink(r.dir[1], rd()), Line(lb), HeldLine(lb / 4 + 65536), {}, 0, nullptr, nullptr, {}, false}};
  tlem::Side sides[2];
  if (r.route && !route_sides(r, sides, &why)) {
    fprintf(stderr, "tlem: %s\n", why.c_str());
    nmport_close(a);
    nmport_close(b);
    return kExitFailed;
  }
  if (r.route) {
    dirs[0].in_side = dirs[1].out_side = &sides[0];
    dirs[0].out_side = dirs[1].in_side = &sides[1];
  }
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  prctl(PR_SET_TIMERSLACK, 1UL);
  for (long s = 0; s < r.wait && !g_stop; s++) sleep(1);
  // The session's socket, once the ports (and so the runtime directory)
  // are there and tlem is about to serve it.
  int ls = -1;
  if (!sock.empty() && (ls = ctl::listen_on(sock, &why)) < 0) {
    fprintf(stderr, "tlem: %s\n", why.c_str());
    nmport_close(a);
    nmport_close(b);
    return kExitFailed;
  }
  if (!r.quiet)
    fprintf(stderr, "tlem: %s <-> %s, delay lines of %zu MB%s%s\n", r.ports[0].c_str(), r.ports[1].c_str(), lb >> 20,
            ls >= 0 ? ", session " : "", r.session.c_str());
  uint64_t next_report = now_ns() + 1000000000ull;
  while (!g_stop) {
    const uint64_t now = now_ns();
    bool blocked[2];
    for (int k = 0; k < 2; k++) blocked[k] = !send_out(dirs[k], now, r.batch);
    take_in(dirs[0], dirs[1], now);
    take_in(dirs[1], dirs[0], now);
    if (r.verbose && now >= next_report) {
      fprintf(stderr, "tlem: %s\n", counters_json(dirs).c_str());
      next_report += 1000000000ull;
    }
    // Sleep until a port has frames or room, the session asks, or 100 us
    // before the next frame's time; closer than that, spin. A direction
    // whose output is full waits for room (POLLOUT), not for its frames'
    // times; an input holding only the start of a chain is looked at again
    // a millisecond later; no sleep is longer than a second (a signal
    // caught just before it).
    uint64_t next = UINT64_MAX;
    for (int k = 0; k < 2; k++)
      if (!blocked[k]) next = std::min(next, next_time(dirs[k]));
    const uint64_t t = now_ns();
    if (next <= t + kSpinNs) {
      for (Direction& d : dirs) ioctl(d.from->fd, NIOCRXSYNC, nullptr);
      continue;
    }
    pollfd pfd[5];
    int n = 0;
    uint64_t wait_ns = next == UINT64_MAX ? 1000000000ull : std::min<uint64_t>(next - t - kSpinNs, 1000000000ull);
    for (int k = 0; k < 2; k++) {
      if (!dirs[k].stuck)
        pfd[n++] = {dirs[k].from->fd, POLLIN, 0};
      else
        wait_ns = std::min<uint64_t>(wait_ns, 1000000);
      if (blocked[k]) pfd[n++] = {dirs[k].to->fd, POLLOUT, 0};
    }
    if (ls >= 0) pfd[n++] = {ls, POLLIN, 0};
    if (r.verbose && next_report > t && next_report - t < wait_ns) wait_ns = next_report - t;
    const timespec ts{time_t(wait_ns / 1000000000ull), long(wait_ns % 1000000000ull)};
    if (ppoll(pfd, nfds_t(n), &ts, nullptr) > 0 && ls >= 0 && (pfd[n - 1].revents & POLLIN))
      ctl::serve_one(ls, "tlem", [&](const std::string& line, std::string* reply) { handle(line, dirs, r, reply); });
  }
  printf("%s\n", counters_json(dirs).c_str());
  if (ls >= 0) {
    close(ls);
    unlink(sock.c_str());
  }
  nmport_close(a);
  nmport_close(b);
  return 0;
}
