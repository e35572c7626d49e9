#include "ipfw/dummynet.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "ipfw/rules.h"

namespace unetmap::ipfw {

namespace {

constexpr uint64_t kNever = ~0ull;
constexpr uint32_t kDefaultSlots = 50;    // dummynet's default queue
constexpr uint32_t kMaxSlots = 100000;
constexpr uint64_t kMaxQueueBytes = 1ull << 30;
constexpr uint32_t kOwnFlowSet = 1u << 20;  // a pipe's own flow set: kOwnFlowSet + N

enum class SchedType : uint8_t { kFifo, kWf2q, kRr, kQfq };

const char* sched_name(SchedType t) {
  switch (t) {
    case SchedType::kFifo: return "FIFO";
    case SchedType::kWf2q: return "WF2Q+";
    case SchedType::kRr: return "RR";
    case SchedType::kQfq: return "QFQ";
  }
  return "?";
}

// A flow's identity, as a mask leaves it.
struct FlowId {
  uint8_t proto = 0, ipv = 0;
  uint8_t src[16] = {}, dst[16] = {};
  uint16_t sport = 0, dport = 0;
  bool operator==(const FlowId& o) const {
    return proto == o.proto && ipv == o.ipv && sport == o.sport && dport == o.dport && !memcmp(src, o.src, 16) &&
           !memcmp(dst, o.dst, 16);
  }
};

struct FlowHash {
  size_t operator()(const FlowId& f) const {
    uint64_t h = 1469598103934665603ull;
    const auto add = [&h](const uint8_t* p, size_t n) {
      for (size_t k = 0; k < n; k++) h = (h ^ p[k]) * 1099511628211ull;
    };
    add(f.src, 16);
    add(f.dst, 16);
    const uint8_t rest[6] = {f.proto, f.ipv, uint8_t(f.sport), uint8_t(f.sport >> 8), uint8_t(f.dport),
                             uint8_t(f.dport >> 8)};
    add(rest, 6);
    return size_t(h);
  }
};

// `mask ...`: which bits of a flow tell flows apart (none: one flow).
struct Mask {
  bool any = false;
  uint8_t proto = 0;
  uint8_t src4[4] = {}, dst4[4] = {}, src6[16] = {}, dst6[16] = {};
  uint16_t sport = 0, dport = 0;
  FlowId apply(const Packet& p) const {
    FlowId f;
    if (!any) return f;
    f.ipv = p.ipv;
    f.proto = p.proto & proto;
    const uint8_t* sm = p.ipv == 6 ? src6 : src4;
    const uint8_t* dm = p.ipv == 6 ? dst6 : dst4;
    for (int k = 0; k < (p.ipv == 6 ? 16 : 4); k++) f.src[k] = p.src[k] & sm[k], f.dst[k] = p.dst[k] & dm[k];
    f.sport = p.has_ports ? p.sport & sport : 0;
    f.dport = p.has_ports ? p.dport & dport : 0;
    return f;
  }
};

struct Held {
  uint8_t* data;    // a copy of the pool's, or the caller's bytes (token)
  uint32_t len, out;
  uint64_t arrival, ready;
  uint64_t token;   // Dummynet::kNoToken: data is a copy
};

struct FlowSet;
struct SchedInst;

struct FlowQueue {
  FlowSet* fs;
  SchedInst* inst;
  FlowId id;
  std::deque<Held> q;
  uint64_t bytes = 0;
  double S = 0, F = 0;     // WF2Q+ virtual start and finish
  int64_t deficit = 0;     // RR
  bool active = false;
  uint64_t tot_pkts = 0, tot_bytes = 0, drops = 0;
};

struct FlowSet {
  uint32_t num = 0;
  uint32_t sched = 0;      // the pipe/scheduler it feeds
  uint32_t weight = 1;
  uint32_t plr = 0;        // of 2^32
  uint32_t qslots = kDefaultSlots;
  uint64_t qbytes = 0;     // 0: a limit in slots
  Mask mask;
  // Its only queue, when neither it nor its pipe has a mask (one flow,
  // one link): packets go there without a lookup. Reset whenever that
  // queue goes (drop_pipe, drop_flowset_queues).
  FlowQueue* one = nullptr;
};

struct Pipe;

struct SchedInst {
  Pipe* pipe;
  FlowId id;
  uint64_t link_free_at = 0;
  std::deque<Held> delay;
  std::vector<FlowQueue*> active;
  std::deque<FlowQueue*> fifo;  // FIFO: the queue of each packet, in arrival order
  size_t rr_at = 0;
  double V = 0;
  bool busy = false;            // in Impl::busy
  std::map<uint32_t, std::unordered_map<FlowId, std::unique_ptr<FlowQueue>, FlowHash>> by_fs;
};

struct Pipe {
  uint32_t num = 0;
  uint64_t bw = 0;          // bit/s; 0: no limit
  uint64_t delay_ns = 0;
  SchedType type = SchedType::kWf2q;
  Mask mask;                // per-flow links
  std::unordered_map<FlowId, std::unique_ptr<SchedInst>, FlowHash> inst;
};

// "10Mbit/s", "10 Mbit/s", "1.5Gbit/s", "100KByte/s", "0": bits per second.
bool parse_bw(const std::string& w, const std::string& next, bool* used_next, uint64_t* bps) {
  char* end = nullptr;
  const double v = strtod(w.c_str(), &end);
  if (end == w.c_str() || !(v >= 0)) return false;
  std::string unit = end;
  *used_next = false;
  if (unit.empty() && !next.empty() && (next.find("bit") != std::string::npos || next.find("yte") != std::string::npos ||
                                        next.find("bps") != std::string::npos || next.find("Bps") != std::string::npos)) {
    unit = next;
    *used_next = true;
  }
  double mult = 1;
  std::string u = unit;
  if (!u.empty() && (u[0] == 'K' || u[0] == 'k')) mult = 1e3, u = u.substr(1);
  else if (!u.empty() && u[0] == 'M') mult = 1e6, u = u.substr(1);
  else if (!u.empty() && u[0] == 'G') mult = 1e9, u = u.substr(1);
  if (u == "bit/s" || u == "bps" || u == "b/s" || u.empty()) {
  } else if (u == "Byte/s" || u == "byte/s" || u == "B/s" || u == "Bps") {
    mult *= 8;
  } else {
    return false;
  }
  const double b = v * mult;
  if (b > 1e12) return false;
  *bps = uint64_t(b);
  return true;
}

// "20" (ms, as FreeBSD), "20ms", "500us", "1s": nanoseconds.
bool parse_delay(const std::string& w, uint64_t* ns) {
  char* end = nullptr;
  const double v = strtod(w.c_str(), &end);
  if (end == w.c_str() || !(v >= 0)) return false;
  const std::string u = end;
  double mult;
  if (u.empty() || u == "ms") mult = 1e6;
  else if (u == "us") mult = 1e3;
  else if (u == "ns") mult = 1;
  else if (u == "s") mult = 1e9;
  else return false;
  const double d = v * mult;
  if (d > 3600e9) return false;
  *ns = uint64_t(d);
  return true;
}

// mask all | mask [src-ip M] [dst-ip M] [src-ip6 /L] [dst-ip6 /L] [src-port M] [dst-port M] [proto M]
bool parse_mask(const std::vector<std::string>& w, size_t* i, Mask* m, std::string* err) {
  *m = Mask();
  m->any = true;
  bool some = false;
  const auto hex = [](const std::string& s, uint64_t max, uint64_t* v) {
    char* end = nullptr;
    *v = strtoull(s.c_str(), &end, 0);
    return !s.empty() && !*end && *v <= max && s[0] != '-';
  };
  while (*i < w.size()) {
    const std::string& k = w[*i];
    uint64_t v;
    const std::string arg = *i + 1 < w.size() ? w[*i + 1] : "";
    if (k == "all") {
      memset(m->src4, 0xff, 4), memset(m->dst4, 0xff, 4), memset(m->src6, 0xff, 16), memset(m->dst6, 0xff, 16);
      m->sport = m->dport = 0xffff;
      m->proto = 0xff;
      *i += 1;
      some = true;
      continue;
    }
    if (k == "src-ip" || k == "dst-ip") {
      in_addr a;
      if (hex(arg, 0xffffffffull, &v)) {
        const uint32_t be = htonl(uint32_t(v));
        memcpy(&a, &be, 4);
      } else if (inet_pton(AF_INET, arg.c_str(), &a) != 1) {
        *err = "bad mask `" + arg + "' for " + k;
        return false;
      }
      memcpy(k == "src-ip" ? m->src4 : m->dst4, &a, 4);
    } else if (k == "src-ip6" || k == "dst-ip6") {
      uint64_t len;
      if (arg.size() < 2 || arg[0] != '/' || !parse_number(arg.substr(1), 128, &len)) {
        *err = "bad mask `" + arg + "' for " + k + " (/LEN)";
        return false;
      }
      prefix_mask(uint32_t(len), k == "src-ip6" ? m->src6 : m->dst6, 16);
    } else if (k == "src-port" || k == "dst-port" || k == "proto") {
      const uint64_t max = k == "proto" ? 0xff : 0xffff;
      if (!hex(arg, max, &v)) {
        *err = "bad mask `" + arg + "' for " + k;
        return false;
      }
      if (k == "proto") m->proto = uint8_t(v);
      else (k == "src-port" ? m->sport : m->dport) = uint16_t(v);
    } else {
      break;
    }
    *i += 2;
    some = true;
  }
  if (!some) {
    *err = "mask: what to mask is missing";
    return false;
  }
  return true;
}

std::string flow_text(const FlowId& f) {
  char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
  const int fam = f.ipv == 6 ? AF_INET6 : AF_INET;
  inet_ntop(fam, f.src, a, sizeof a);
  inet_ntop(fam, f.dst, b, sizeof b);
  char out[160];
  snprintf(out, sizeof out, "%3u %s/%u %s/%u", f.proto, a, f.sport, b, f.dport);
  return out;
}

// " queue 50 sl." or " queue 4096 bytes", and " plr P" if it loses.
std::string queue_text(const FlowSet& fs) {
  char b[64];
  if (fs.qbytes) snprintf(b, sizeof b, " queue %" PRIu64 " bytes", fs.qbytes);
  else snprintf(b, sizeof b, " queue %u sl.", fs.qslots);
  std::string s = b;
  if (fs.plr) {
    snprintf(b, sizeof b, " plr %.6f", double(fs.plr) / 4294967296.0);
    s += b;
  }
  return s;
}

std::string bw_text(uint64_t bps) {
  char b[32];
  if (bps == 0) return "unlimited";
  if (bps >= 1000000000ull) snprintf(b, sizeof b, "%.3f Gbit/s", double(bps) / 1e9);
  else if (bps >= 1000000ull) snprintf(b, sizeof b, "%.3f Mbit/s", double(bps) / 1e6);
  else if (bps >= 1000ull) snprintf(b, sizeof b, "%.3f Kbit/s", double(bps) / 1e3);
  else snprintf(b, sizeof b, "%" PRIu64 " bit/s", bps);
  return b;
}

}  // namespace

struct Dummynet::Impl {
  std::map<uint32_t, Pipe> pipes;
  std::map<uint32_t, FlowSet> flowsets;  // queue N; a pipe's own at kOwnFlowSet + N
  std::vector<SchedInst*> busy;
  std::vector<uint8_t*> pool;  // free packet buffers of kBuf bytes
  static constexpr uint32_t kBuf = 2048;
  uint64_t rng = 0x2545f4914f6cdd1dull;
  Dummynet* dn;
  bool dying = false;  // tokens are not released from the destructor

  ~Impl() {
    dying = true;
    for (auto& [n, p] : pipes) drop_pipe(p);
    for (uint8_t* b : pool) delete[] b;
  }

  uint8_t* get_buf(uint32_t len) {
    if (len > kBuf) return new uint8_t[len];
    if (pool.empty()) return new uint8_t[kBuf];
    uint8_t* b = pool.back();
    pool.pop_back();
    return b;
  }
  // A held packet is gone: sent (its token is the sink's again) or
  // dropped (its token goes to the release hook).
  void let_go(const Held& h, bool sent) {
    if (h.token != kNoToken) {
      if (!sent && !dying && dn->release_) dn->release_(dn->release_ctx_, h.out, h.token);
    } else if (h.len > kBuf || pool.size() >= 4096) {
      delete[] h.data;
    } else {
      pool.push_back(h.data);
    }
    if (!dying) dn->held_--;
  }

  uint32_t random32() {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return uint32_t(rng >> 32);
  }

  void free_inst(SchedInst& si) {
    for (auto& [fs, m] : si.by_fs)
      for (auto& [id, q] : m)
        for (Held& h : q->q) let_go(h, false);
    for (Held& h : si.delay) let_go(h, false);
    si.delay.clear();
    si.by_fs.clear();
    si.active.clear();
    si.fifo.clear();
  }

  void drop_pipe(Pipe& p) {
    for (auto& [n, fs] : flowsets)
      if (fs.one && fs.one->inst->pipe == &p) fs.one = nullptr;
    for (auto& [id, si] : p.inst) {
      free_inst(*si);
      busy.erase(std::remove(busy.begin(), busy.end(), si.get()), busy.end());
    }
    p.inst.clear();
  }

  // Packets of flow set fs go away (it is deleted or reconfigured).
  void drop_flowset_queues(uint32_t fs) {
    if (auto it = flowsets.find(fs); it != flowsets.end()) it->second.one = nullptr;
    for (auto& [n, p] : pipes)
      for (auto& [id, si] : p.inst) {
        auto it = si->by_fs.find(fs);
        if (it == si->by_fs.end()) continue;
        for (auto& [fid, q] : it->second) {
          for (Held& h : q->q) let_go(h, false);
          si->active.erase(std::remove(si->active.begin(), si->active.end(), q.get()), si->active.end());
          si->fifo.erase(std::remove(si->fifo.begin(), si->fifo.end(), q.get()), si->fifo.end());
        }
        si->by_fs.erase(it);
        si->rr_at = 0;
      }
  }

  // The queue of flow set fs on pipe's link for packet p, made if new.
  FlowQueue& queue_for(Pipe& pipe, FlowSet& fs, const Packet& p, uint64_t now) {
    const FlowId sid = pipe.mask.apply(p);
    std::unique_ptr<SchedInst>& sip = pipe.inst[sid];
    if (!sip) {
      sip.reset(new SchedInst);
      sip->pipe = &pipe;
      sip->id = sid;
      sip->link_free_at = now;
    }
    SchedInst& si = *sip;
    const FlowId qid = fs.mask.apply(p);
    std::unique_ptr<FlowQueue>& qp = si.by_fs[fs.num][qid];
    if (!qp) {
      qp.reset(new FlowQueue);
      qp->fs = &fs;
      qp->inst = &si;
      qp->id = qid;
    }
    if (!pipe.mask.any && !fs.mask.any) fs.one = qp.get();
    return *qp;
  }

  void activate(SchedInst& si, FlowQueue& q, uint32_t len) {
    q.active = true;
    q.S = std::max(q.F, si.V);
    q.F = q.S + double(len) / q.fs->weight;
    q.deficit = 0;
    si.active.push_back(&q);
  }

  FlowQueue* pick(SchedInst& si) {
    switch (si.pipe->type) {
      case SchedType::kFifo: {
        if (si.fifo.empty()) return nullptr;
        FlowQueue* q = si.fifo.front();
        si.fifo.pop_front();
        return q;
      }
      case SchedType::kRr: {
        if (si.active.empty()) return nullptr;
        // Deficit round robin: a queue sends while its deficit covers its
        // next packet; then the next queue's turn comes, with its quantum.
        for (;;) {
          if (si.rr_at >= si.active.size()) si.rr_at = 0;
          FlowQueue* q = si.active[si.rr_at];
          if (q->deficit >= int64_t(q->q.front().len)) return q;
          si.rr_at = si.rr_at + 1 < si.active.size() ? si.rr_at + 1 : 0;
          FlowQueue* n = si.active[si.rr_at];
          n->deficit += int64_t(1514) * n->fs->weight;
        }
      }
      case SchedType::kWf2q:
      case SchedType::kQfq: {
        if (si.active.empty()) return nullptr;
        FlowQueue* best = nullptr;
        double min_s = si.active[0]->S;
        for (FlowQueue* q : si.active) min_s = std::min(min_s, q->S);
        if (si.V < min_s) si.V = min_s;  // nobody eligible: time jumps to the first start
        for (FlowQueue* q : si.active)
          if (q->S <= si.V && (!best || q->F < best->F)) best = q;
        return best;
      }
    }
    return nullptr;
  }

  // After serving a packet of len bytes from q.
  void served(SchedInst& si, FlowQueue& q, uint32_t len) {
    q.bytes -= len;
    if (si.pipe->type == SchedType::kFifo) return;
    double wsum = 0;
    for (FlowQueue* a : si.active) wsum += a->fs->weight;
    si.V += double(len) / (wsum > 0 ? wsum : 1);
    if (si.pipe->type == SchedType::kRr) q.deficit -= int64_t(len);
    if (q.q.empty()) {
      q.active = false;
      auto it = std::find(si.active.begin(), si.active.end(), &q);
      const size_t at = size_t(it - si.active.begin());
      si.active.erase(it);
      if (si.rr_at > at) si.rr_at--;
      return;
    }
    q.S = q.F;
    q.F = q.S + double(q.q.front().len) / q.fs->weight;
  }

  // Move what the link can carry by `now` into the delay line; let go of
  // what is due. Returns the instance's next event.
  uint64_t service(SchedInst& si, uint64_t now, SinkFn fn, void* ctx, bool* empty) {
    Pipe& p = *si.pipe;
    for (;;) {
      if (si.link_free_at > now) break;
      FlowQueue* q = pick(si);
      if (!q) break;
      Held h = q->q.front();
      q->q.pop_front();
      served(si, *q, h.len);
      const uint64_t start = std::max(si.link_free_at, h.arrival);
      const uint64_t tx = p.bw ? (uint64_t(h.len) * 8 * 1000000000ull + p.bw - 1) / p.bw : 0;
      si.link_free_at = start + tx;
      h.ready = si.link_free_at + p.delay_ns;
      si.delay.push_back(h);
    }
    while (!si.delay.empty() && si.delay.front().ready <= now) {
      const Held& h = si.delay.front();
      if (!fn(ctx, h.out, h.data, h.len, h.token)) return now;  // the output is full: soon again
      dn->stats_.out_packets++;
      dn->stats_.out_bytes += h.len;
      let_go(h, true);
      si.delay.pop_front();
    }
    uint64_t next = si.delay.empty() ? kNever : si.delay.front().ready;
    const bool queued = !si.active.empty() || !si.fifo.empty();
    if (queued) next = std::min(next, std::max(si.link_free_at, now));
    *empty = si.delay.empty() && !queued;
    return next;
  }
};

Dummynet::Dummynet() : impl_(new Impl) {
  impl_->dn = this;
  uint64_t seed = 0;  // losses differ from run to run, as a real link's
  if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == sizeof seed && seed) impl_->rng = seed;
}
Dummynet::~Dummynet() = default;

bool Dummynet::exists(bool queue, uint32_t n) const {
  return queue ? impl_->flowsets.count(n) != 0 : impl_->pipes.count(n) != 0;
}

bool Dummynet::enqueue(bool queue, uint32_t n, const Packet& p, const uint8_t* frame, uint32_t len, uint32_t out,
                       uint64_t now, uint64_t token) {
  Impl& m = *impl_;
  auto fit = m.flowsets.find(queue ? n : kOwnFlowSet + n);
  if (fit == m.flowsets.end()) {
    stats_.no_pipe++;
    return false;
  }
  FlowSet& fs = fit->second;
  Pipe* pipe = fs.one ? fs.one->inst->pipe : nullptr;
  if (!pipe) {
    auto pit = m.pipes.find(fs.sched);
    if (pit == m.pipes.end()) {
      stats_.no_pipe++;
      return false;
    }
    pipe = &pit->second;
  }
  stats_.in_packets++;
  stats_.in_bytes += len;
  if (fs.plr && m.random32() < fs.plr) {
    stats_.plr_drops++;
    return false;
  }
  if (held_ >= kMaxHeld) {
    stats_.held_drops++;
    return false;
  }
  FlowQueue& q = fs.one ? *fs.one : m.queue_for(*pipe, fs, p, now);
  SchedInst& si = *q.inst;
  q.tot_pkts++;
  q.tot_bytes += len;
  if (fs.qbytes ? q.bytes + len > fs.qbytes : q.q.size() >= fs.qslots) {
    q.drops++;
    stats_.queue_drops++;
    return false;
  }
  Held h{const_cast<uint8_t*>(frame), len, out, now, 0, token};
  if (token == kNoToken) {
    h.data = m.get_buf(len);
    memcpy(h.data, frame, len);
  } else {
    stats_.zero_copy++;
  }
  held_++;
  const bool was_empty = q.q.empty();
  q.q.push_back(h);
  q.bytes += len;
  if (pipe->type == SchedType::kFifo) si.fifo.push_back(&q);
  else if (was_empty) m.activate(si, q, len);
  if (!si.busy) {
    si.busy = true;
    m.busy.push_back(&si);
  }
  return true;
}

uint64_t Dummynet::run_impl(uint64_t now, SinkFn fn, void* ctx) {
  Impl& m = *impl_;
  uint64_t next = kNever;
  for (size_t k = 0; k < m.busy.size();) {
    SchedInst* si = m.busy[k];
    bool empty = false;
    next = std::min(next, m.service(*si, now, fn, ctx, &empty));
    if (empty) {
      si->busy = false;
      m.busy[k] = m.busy.back();
      m.busy.pop_back();
    } else {
      k++;
    }
  }
  return next;
}

bool Dummynet::command(const std::vector<std::string>& words, std::string* out, std::string* err) {
  Impl& m = *impl_;
  out->clear();
  std::vector<std::string> w = words;
  if (!w.empty() && w[0] == "ipfw") w.erase(w.begin());
  if (w.empty()) {
    *err = "missing command";
    return false;
  }
  const std::string kind = w[0];  // pipe, queue, sched
  const auto fail = [err, &kind](const std::string& s) {
    *err = kind + ": " + s;
    return false;
  };
  // pipe show [N...] / pipe delete N... / pipe N config ... / pipe N delete|show
  uint64_t n = 0;
  std::vector<uint32_t> nums;
  std::string verb;
  size_t i = 1;
  if (i < w.size() && parse_number(w[i], 65535, &n) && n > 0) {
    nums.push_back(uint32_t(n));
    i++;
    verb = i < w.size() ? w[i++] : "show";
  } else {
    verb = i < w.size() ? w[i++] : "show";
    for (; i < w.size(); i++) {
      if (!parse_number(w[i], 65535, &n) || n == 0) return fail("invalid number `" + w[i] + "'");
      nums.push_back(uint32_t(n));
    }
  }
  if (verb == "list") verb = "show";
  if (verb == "delete") {
    if (nums.empty()) return fail("delete: which one?");
    for (uint32_t x : nums) {
      if (kind == "queue") {
        if (!m.flowsets.count(x)) return fail(std::to_string(x) + " not found");
        m.drop_flowset_queues(x);
        m.flowsets.erase(x);
      } else {
        auto it = m.pipes.find(x);
        if (it == m.pipes.end()) return fail(std::to_string(x) + " not found");
        m.drop_pipe(it->second);
        m.drop_flowset_queues(kOwnFlowSet + x);
        m.flowsets.erase(kOwnFlowSet + x);
        m.pipes.erase(it);
      }
    }
    return true;
  }
  if (verb == "show") {
    *out = show(kind, nums);
    return true;
  }
  if (verb != "config" || nums.size() != 1) return fail("usage: " + kind + " N config ... | show | delete");
  const uint32_t num = nums[0];
  // Parse into copies; commit only when every word is taken.
  Pipe pipe;
  auto pit = m.pipes.find(num);
  if (pit != m.pipes.end()) pipe.bw = pit->second.bw, pipe.delay_ns = pit->second.delay_ns,
                            pipe.type = pit->second.type, pipe.mask = pit->second.mask;
  FlowSet fs;
  const uint32_t fsnum = kind == "queue" ? num : kOwnFlowSet + num;
  auto fit = m.flowsets.find(fsnum);
  if (fit != m.flowsets.end()) fs = fit->second;
  fs.num = fsnum;
  if (kind != "queue") fs.sched = num;
  bool have_parent = kind != "queue" || fit != m.flowsets.end();
  while (i < w.size()) {
    const std::string k = w[i++];
    const std::string a = i < w.size() ? w[i] : "";
    if (a.empty() && k != "noerror") return fail("missing argument for " + k);
    if (kind == "pipe" && (k == "bw" || k == "bandwidth")) {
      bool used_next;
      if (!parse_bw(a, i + 1 < w.size() ? w[i + 1] : "", &used_next, &pipe.bw))
        return fail("bad bandwidth `" + a + "'");
      i += used_next ? 2 : 1;
    } else if (kind == "pipe" && k == "delay") {
      if (!parse_delay(a, &pipe.delay_ns)) return fail("bad delay `" + a + "'");
      i++;
    } else if (kind != "sched" && k == "plr") {
      char* end = nullptr;
      const double p = strtod(a.c_str(), &end);
      if (*end || !(p >= 0 && p <= 1)) return fail("bad plr `" + a + "' (0..1)");
      fs.plr = p >= 1 ? 0xffffffffu : uint32_t(p * 4294967296.0);
      i++;
    } else if (kind != "sched" && k == "queue") {
      char* end = nullptr;
      const unsigned long long q = strtoull(a.c_str(), &end, 10);
      const std::string u = end;
      if (end == a.c_str()) return fail("bad queue `" + a + "'");
      if (u.empty()) {
        if (q < 1 || q > kMaxSlots) return fail("bad queue `" + a + "' (1.." + std::to_string(kMaxSlots) + " slots)");
        fs.qslots = uint32_t(q), fs.qbytes = 0;
      } else if (u == "Kbytes" || u == "KB" || u == "kbytes" || u == "Bytes" || u == "B" || u == "bytes") {
        const uint64_t b = u[0] == 'K' || u[0] == 'k' ? q * 1024 : q;
        if (b < 1514 || b > kMaxQueueBytes) return fail("bad queue `" + a + "'");
        fs.qbytes = b;
      } else {
        return fail("bad queue `" + a + "'");
      }
      i++;
    } else if (kind == "queue" && (k == "pipe" || k == "sched")) {
      uint64_t p;
      if (!parse_number(a, 65535, &p) || p == 0) return fail("bad " + k + " `" + a + "'");
      fs.sched = uint32_t(p);
      have_parent = true;
      i++;
    } else if (kind == "queue" && k == "weight") {
      uint64_t wt;
      if (!parse_number(a, 100, &wt) || wt == 0) return fail("bad weight `" + a + "' (1..100)");
      fs.weight = uint32_t(wt);
      i++;
    } else if (k == "mask") {
      Mask mk;
      if (!parse_mask(w, &i, &mk, err)) return fail(*err);
      if (kind == "queue") fs.mask = mk;
      else pipe.mask = mk;  // pipe and sched: one link per flow
    } else if (kind == "sched" && k == "type") {
      if (a == "fifo" || a == "FIFO") pipe.type = SchedType::kFifo;
      else if (a == "wf2q+" || a == "wf2q" || a == "WF2Q+") pipe.type = SchedType::kWf2q;
      else if (a == "rr" || a == "RR" || a == "drr") pipe.type = SchedType::kRr;
      else if (a == "qfq" || a == "QFQ") pipe.type = SchedType::kQfq;
      else return fail("unknown scheduler type `" + a + "'");
      i++;
    } else if (k == "noerror" || k == "burst" || k == "buckets") {
      if (k != "noerror") i++;  // accepted, no effect here
    } else {
      return fail("unrecognised option `" + k + "'");
    }
  }
  if (kind == "queue" && !have_parent) return fail("a queue needs `pipe N' or `sched N'");
  if (kind == "queue" && !m.pipes.count(fs.sched))
    return fail("pipe/sched " + std::to_string(fs.sched) + " does not exist");
  // Commit. A changed link or scheduler starts empty, as dummynet's do.
  if (kind != "queue") {
    if (pit != m.pipes.end()) {
      m.drop_pipe(pit->second);
      pit->second.bw = pipe.bw, pit->second.delay_ns = pipe.delay_ns;
      pit->second.type = pipe.type, pit->second.mask = pipe.mask;
    } else {
      Pipe& p = m.pipes[num];
      p.num = num, p.bw = pipe.bw, p.delay_ns = pipe.delay_ns, p.type = pipe.type, p.mask = pipe.mask;
    }
    if (kind == "sched" && fit == m.flowsets.end()) return true;  // a scheduler alone: no flow set of its own
  }
  if (fit != m.flowsets.end()) m.drop_flowset_queues(fsnum);
  fs.one = nullptr;  // the copy's was the old queue's
  m.flowsets[fsnum] = fs;
  return true;
}

std::string Dummynet::show(const std::string& kind, const std::vector<uint32_t>& only) const {
  const Impl& m = *impl_;
  const auto wanted = [&only](uint32_t n) { return only.empty() || std::find(only.begin(), only.end(), n) != only.end(); };
  std::string s;
  char b[256];
  const auto queue_lines = [&](const Pipe& p, uint32_t fsnum) {
    for (const auto& [sid, si] : p.inst) {
      auto it = si->by_fs.find(fsnum);
      if (it == si->by_fs.end()) continue;
      for (const auto& [qid, q] : it->second) {
        snprintf(b, sizeof b, "  %-52s %10" PRIu64 " %12" PRIu64 " %5zu %7" PRIu64 " %6" PRIu64 "\n",
                 flow_text(p.mask.any ? sid : qid).c_str(), q->tot_pkts, q->tot_bytes, q->q.size(), q->bytes,
                 q->drops);
        s += b;
      }
    }
  };
  const char* head = "  Prot Source/port Dest/port                              Tot_pkt    Tot_bytes  Qlen  Qbytes  Drops\n";
  if (kind == "pipe" || kind == "sched") {
    for (const auto& [n, p] : m.pipes) {
      if (!wanted(n)) continue;
      auto fit = m.flowsets.find(kOwnFlowSet + n);
      if (kind == "pipe") {
        snprintf(b, sizeof b, "%05u: %s %" PRIu64 ".%03" PRIu64 " ms", n, bw_text(p.bw).c_str(), p.delay_ns / 1000000,
                 p.delay_ns / 1000 % 1000);
        s += b;
        if (fit != m.flowsets.end()) s += queue_text(fit->second);
        s += std::string(" sched ") + sched_name(p.type) + (p.mask.any ? " dynamic (mask)" : "") + "\n";
      } else {
        snprintf(b, sizeof b, " sched %u type %s%s, %zu instance(s)\n", n, sched_name(p.type),
                 p.mask.any ? " with mask" : "", p.inst.size());
        s += b;
        continue;
      }
      s += head;
      queue_lines(p, kOwnFlowSet + n);
    }
  } else {
    for (const auto& [n, fs] : m.flowsets) {
      if (n >= kOwnFlowSet || !wanted(n)) continue;
      snprintf(b, sizeof b, "q%05u: weight %u pipe %u", n, fs.weight, fs.sched);
      s += b;
      s += queue_text(fs);
      s += fs.mask.any ? " mask\n" : "\n";
      auto pit = m.pipes.find(fs.sched);
      if (pit == m.pipes.end()) continue;
      s += head;
      queue_lines(pit->second, n);
    }
  }
  return s;
}

}  // namespace unetmap::ipfw
