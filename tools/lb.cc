// lb: netmap's load balancer, unetmap's own. Packets read from one port
// go to groups of netmap pipes; every group gets every packet, spread
// over its pipes by a symmetric hash of the flow (flow_hash.h), so both
// directions of a connection reach the same consumer.
//
//   lb -i PORT [-p [NAME:]N ...] [-B BUFS] [-b BATCH] [-w SECS] [-W] [-s SECS] [-o SECS]
//
// A group of N pipes named NAME (default: the input port's name) is the
// pipes NAME{K, which lb holds, whose consumers open netmap:NAME}K; K
// counts on across groups of one name. The pipes live in the input port's
// memory region, so no packet is copied: the input's rx buffer goes into
// a pipe of the first group; when that group's consumer has released it,
// lb moves it on to a pipe of the next group, and after the last group it
// comes back to the input ring. Consumers must not write the buffers.
//
// A pipe whose ring is full keeps its packets in an overflow queue of
// extra buffers (-B: taken from the input port's region and shared by
// all pipes); when none is free, the pipe with the longest queue gives
// up its oldest packets (revoked: lost for its group and the next ones).
// Unlike netmap's lb, a packet that finds its pipe
// full with no queue room is dropped for that pipe only (counted) and
// still goes on to the next groups: a consumer that stalls or dies costs
// only its own share, and one that comes back resumes where its pipe is.
//
// Counters: -o SECS prints a JSON line to stdout every SECS seconds, -s
// SECS sends it to syslog; the last line is printed at exit (SIGINT,
// SIGTERM).
#include <errno.h>
#include <getopt.h>
#include <libnetmap.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <deque>
#include <string>
#include <vector>

#include "cli.h"
#include "core/engine.h"
#include "flow_hash.h"
#include "forward.h"

namespace {

using namespace unetmap;

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr uint32_t kRevoke = 100;    // packets a full pool takes back from the longest queue
constexpr uint32_t kMaxPipes = 4096;
constexpr uint32_t kMaxChain = 64;   // slots of a packet lb moves; longer ones are too_long
constexpr uint32_t kLowRoom = 256;   // slots: a last-group pipe with less is polled for its releases

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

void usage(FILE* f) {
  fprintf(f,
          "usage: lb -i PORT [-p [NAME:]N ...] [-B BUFS] [-b BATCH] [-w SECS] [-W] [-s SECS] [-o SECS]\n"
          "Spread the packets of PORT over groups of netmap pipes, by flow; every group gets them all.\n"
          "  -i PORT    the input port (any netmap port)\n"
          "  -p [NAME:]N  a group of N pipes NAME{0..N-1 (consumers open netmap:NAME}K); NAME defaults\n"
          "             to the input port's name (vale0:a: vale0_a); repeat for more groups (default: one group of 2)\n"
          "  -B BUFS    extra buffers for the pipes' overflow queues (default 0)\n"
          "  -b BATCH   packets read before the input ring is synced again (default 2048)\n"
          "  -w SECS    wait before forwarding, for a NIC's link (default 0)\n"
          "  -W         poll without sleeping\n"
          "  -s SECS    counters as JSON to syslog every SECS seconds\n"
          "  -o SECS    counters as JSON to stdout every SECS seconds\n");
}

struct Options {
  std::string input;
  std::vector<std::pair<std::string, uint32_t>> groups;  // name ("": the input's), pipes
  long extra_bufs = 0, batch = 2048, wait = 0, syslog_every = 0, stdout_every = 0;
  bool busy = false;
};

// One output pipe: lb's end (NAME{K), one tx ring.
struct Pipe {
  std::string name;  // the consumers' end, NAME}K
  nmport_d* d = nullptr;
  netmap_ring* ring = nullptr;
  uint32_t group = 0;
  bool last = false;      // in the last group: nothing moves on from it
  uint32_t released = 0;  // the first slot not yet moved on to the next group
  // Each slot's packet's hash, kept here: a consumer can write its slots.
  std::vector<uint32_t> hash;
  std::deque<netmap_slot> overflow;  // whole packets (chains), oldest first
  // packets: put on the ring; drops: found no room (they go on to the
  // next group); queued: waited in the overflow queue; revoked: taken
  // back from that queue for others (lost for this group and the next).
  uint64_t packets = 0, bytes = 0, drops = 0, queued = 0, revoked = 0;
  bool touched = false;  // slots put on the ring since its last sync
};

struct Group {
  uint32_t first, n;  // its pipes: pipes[first .. first + n)
};

struct Lb {
  Options opt;
  nmport_d* in = nullptr;
  std::vector<Pipe> pipes;
  std::vector<Group> groups;
  std::vector<uint32_t> free_bufs;  // extra buffers not in any ring or queue
  uint64_t received = 0, received_bytes = 0, non_ip = 0, too_long = 0;
  bool input_stuck = false;  // the input holds only the start of a chain
};

bool number(char c, const char* arg, long lo, long hi, long* out) {
  return cli::number("lb", c, arg, lo, hi, "a number in", out);
}

// -p [NAME:]N
bool parse_group(const char* arg, Options* o) {
  std::string s = arg, name;
  const size_t colon = s.find(':');
  if (colon != std::string::npos) {
    name = s.substr(0, colon);
    s = s.substr(colon + 1);
    if (name.empty() || name.size() > 48 ||
        !std::all_of(name.begin(), name.end(), [](char c) { return isalnum((unsigned char)c) || c == '_'; })) {
      fprintf(stderr, "lb: -p %s: a group's name is 1..48 letters, digits or _\n", arg);
      return false;
    }
  }
  long n = 2;
  if ((colon != std::string::npos || !s.empty()) && !number('p', s.c_str(), 1, kMaxPipes, &n)) return false;
  o->groups.push_back({name, uint32_t(n)});
  return true;
}

// The options; -1 to go on, else the exit status.
int parse_options(int argc, char** argv, Options* o) {
  static const option longopts[] = {{"help", no_argument, nullptr, 'h'}, {nullptr, 0, nullptr, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "i:p:B:b:w:Ws:o:h", longopts, nullptr)) != -1) {
    switch (ch) {
      case 'i': o->input = optarg; break;
      case 'p':
        if (!parse_group(optarg, o)) return kExitUsage;
        break;
      case 'B':
        if (!number('B', optarg, 0, 1 << 20, &o->extra_bufs)) return kExitUsage;
        break;
      case 'b':
        if (!number('b', optarg, 1, 1 << 16, &o->batch)) return kExitUsage;
        break;
      case 'w':
        if (!number('w', optarg, 0, 3600, &o->wait)) return kExitUsage;
        break;
      case 'W': o->busy = true; break;
      case 's':
        if (!number('s', optarg, 1, 86400, &o->syslog_every)) return kExitUsage;
        break;
      case 'o':
        if (!number('o', optarg, 1, 86400, &o->stdout_every)) return kExitUsage;
        break;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return kExitUsage;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "lb: unexpected argument '%s'; --help for usage\n", argv[optind]);
    return kExitUsage;
  }
  if (o->input.empty()) {
    fprintf(stderr, "lb: no input port (-i PORT); --help for usage\n");
    return kExitUsage;
  }
  if (o->groups.empty()) o->groups.push_back({"", 2});
  uint64_t total = 0;
  for (const auto& g : o->groups) total += g.second;
  if (total > kMaxPipes) {
    fprintf(stderr, "lb: %" PRIu64 " pipes: at most %u in all\n", total, kMaxPipes);
    return kExitUsage;
  }
  return -1;
}

// The input port's name without "netmap:" and its suffixes ({}/@^*-), a
// prefix's colon as _ (vale0:a: groups vale0_a{K, a pipe name has no colon).
std::string base_name(const std::string& spec) {
  std::string s = spec.compare(0, 7, "netmap:") == 0 ? spec.substr(7) : spec;
  s = s.substr(0, s.find_first_of("{}/@^*-"));
  std::replace(s.begin(), s.end(), ':', '_');
  return s;
}

// Open the input (with the extra buffers) and every pipe in its region.
bool open_ports(Lb& lb) {
  const std::string base = base_name(lb.opt.input);
  // An input that is a pipe of NAME cannot feed groups named NAME: their
  // pipes would include its own.
  const bool input_pipe = lb.opt.input.find_first_of("{}") != std::string::npos;
  for (const auto& g : lb.opt.groups)
    if (input_pipe && (g.first.empty() || g.first == base)) {
      fprintf(stderr, "lb: the input is a pipe of %s: name the groups otherwise (-p NAME:N)\n", base.c_str());
      return false;
    }
  std::string why;
  lb.in = fwd::open_quiet(lb.opt.input, &why, uint32_t(lb.opt.extra_bufs));
  if (!lb.in) {
    fprintf(stderr, "lb: %s\n", why.c_str());
    return false;
  }
  lb.free_bufs = fwd::take_extra_bufs(lb.in);
  std::vector<std::pair<std::string, uint32_t>> next_id;  // per name
  for (const auto& [gname, n] : lb.opt.groups) {
    const std::string name = gname.empty() ? base : gname;
    auto it = std::find_if(next_id.begin(), next_id.end(), [&](const auto& e) { return e.first == name; });
    if (it == next_id.end()) it = next_id.insert(next_id.end(), {name, 0});
    lb.groups.push_back({uint32_t(lb.pipes.size()), n});
    for (uint32_t k = 0; k < n; k++) {
      Pipe p;
      const std::string id = std::to_string(it->second++);
      p.name = name + "}" + id;
      p.group = uint32_t(lb.groups.size() - 1);
      const std::string spec = "netmap:" + name + "{" + id + "/T@" + std::to_string(lb.in->reg.nr_mem_id);
      p.d = fwd::open_quiet(spec, &why);
      if (!p.d) {
        fprintf(stderr, "lb: %s\n", why.c_str());
        return false;
      }
      if (!fwd::same_region(lb.in, p.d)) {
        fprintf(stderr, "lb: %s is not in %s's memory region: close what holds %s and retry\n", spec.c_str(),
                lb.opt.input.c_str(), p.name.c_str());
        return false;
      }
      p.ring = NETMAP_TXRING(p.d->nifp, p.d->first_tx_ring);
      p.released = nm_ring_next(p.ring, p.ring->tail);
      p.hash.assign(p.ring->num_slots, 0);
      lb.pipes.push_back(std::move(p));
    }
  }
  for (Pipe& p : lb.pipes) p.last = p.group + 1 == lb.groups.size();
  return true;
}

// A free buffer for a packet that waits in an overflow queue: from the
// pool, or taken back from the longest queue (its oldest packets are
// dropped). 0 if there is none at all.
uint32_t take_free(Lb& lb) {
  if (lb.free_bufs.empty()) {
    Pipe* longest = nullptr;
    for (Pipe& p : lb.pipes)
      if (!longest || p.overflow.size() > longest->overflow.size()) longest = &p;
    for (uint32_t k = 0; longest && k < kRevoke && !longest->overflow.empty();) {
      // Whole packets: a chain's slots go together.
      do {
        const netmap_slot s = longest->overflow.front();
        longest->overflow.pop_front();
        lb.free_bufs.push_back(s.buf_idx);
        if (!(s.flags & NS_MOREFRAG)) break;
      } while (!longest->overflow.empty());
      longest->revoked++;
      k++;
    }
  }
  if (lb.free_bufs.empty()) return 0;
  const uint32_t b = lb.free_bufs.back();
  lb.free_bufs.pop_back();
  return b;
}

// Slots pipe p can take now: up to its tail, and, unless it is in the
// last group, not past the packets its consumer released that have not
// moved on yet (a chain released in part waits whole).
uint32_t ring_room(const Pipe& p) {
  netmap_ring* r = p.ring;
  const uint32_t room = nm_ring_space(r);
  if (p.last) return room;
  return std::min(room, ring_dist(r->head, prev_slot(p.released, r->num_slots), r->num_slots));
}

// Put the packet of n slots at s (a chain) on pipe p's ring: each slot's
// buffer goes in, the ring slot's buffer (free: already moved on) comes
// back in s.
void put_on_ring(Pipe& p, netmap_slot* s, uint32_t n, uint32_t hash) {
  netmap_ring* r = p.ring;
  uint32_t len = 0;
  for (uint32_t k = 0; k < n; k++) {
    netmap_slot& t = r->slot[r->head];
    std::swap(t.buf_idx, s[k].buf_idx);
    t.len = s[k].len;
    t.flags = uint16_t(NS_BUF_CHANGED | (s[k].flags & NS_MOREFRAG));
    p.hash[r->head] = hash;
    s[k].flags = NS_BUF_CHANGED;
    len += t.len;
    r->head = r->cur = nm_ring_next(r, r->head);
  }
  p.packets++;
  p.bytes += len;
  p.touched = true;
}

void move_released(Lb& lb, Pipe& p);

// Hand the packet of n slots at s to group g (and, if its pipe there has
// no room at all, to the next groups): on return each s[k] names a free
// buffer in place of the packet's.
void forward(Lb& lb, uint32_t g, netmap_slot* s, uint32_t n, uint32_t hash) {
  for (; g < lb.groups.size(); g++) {
    Pipe& p = lb.pipes[lb.groups[g].first + hash % lb.groups[g].n];
    if (p.overflow.empty() && ring_room(p) < n && nm_tx_pending(p.ring)) {
      // It looks full: its consumer may have released slots since the
      // last sync (pipes with room are not polled).
      ioctl(p.d->fd, NIOCTXSYNC, nullptr);
      p.touched = false;
      if (!p.last) move_released(lb, p);
    }
    if (p.overflow.empty() && ring_room(p) >= n) {
      put_on_ring(p, s, n, hash);
      return;
    }
    if (lb.opt.extra_bufs > 0) {  // an overflow queue
      std::vector<uint32_t> got;
      for (uint32_t k = 0; k < n; k++) {
        const uint32_t b = take_free(lb);
        if (!b) break;
        got.push_back(b);
      }
      if (got.size() == n) {
        for (uint32_t k = 0; k < n; k++) {
          netmap_slot q = s[k];
          q.ptr = hash;
          p.overflow.push_back(q);
          s[k].buf_idx = got[k];
          s[k].flags = NS_BUF_CHANGED;
        }
        p.queued++;
        return;
      }
      for (uint32_t b : got) lb.free_bufs.push_back(b);
    }
    p.drops++;  // no room here: the packet goes on to the next group
  }
}

// Pass the packet in the n slots of ring r from slot at on to group g (n
// at most kMaxChain; more: counted too_long and left): its slots then
// name the free buffers forward() gave back.
void pass_on(Lb& lb, uint32_t g, netmap_ring* r, uint32_t at, uint32_t n, uint32_t hash) {
  const uint32_t ns = r->num_slots;
  if (n > kMaxChain) {
    lb.too_long++;
    return;
  }
  netmap_slot chain[kMaxChain];
  for (uint32_t k = 0; k < n; k++) chain[k] = r->slot[ring_add(at, k, ns)];
  forward(lb, g, chain, n, hash);
  for (uint32_t k = 0; k < n; k++) {
    netmap_slot& s = r->slot[ring_add(at, k, ns)];
    s.buf_idx = chain[k].buf_idx;
    s.flags = NS_BUF_CHANGED;
  }
}

// Packets pipe p's consumer released, on to the next group (from the
// last group back, before any slot is reused).
void move_released(Lb& lb, Pipe& p) {
  netmap_ring* r = p.ring;
  const uint32_t stop = nm_ring_next(r, r->tail), ns = r->num_slots;
  while (p.released != stop) {
    // A whole packet, or wait for the rest of it.
    const FrameSpan f = frame_at(r->slot, p.released, ring_dist(p.released, stop, ns), ns);
    if (f.nslots == 0) break;
    pass_on(lb, p.group + 1, r, p.released, f.nslots, p.hash[p.released]);
    p.released = ring_add(p.released, f.nslots, ns);
  }
}

// Queued packets of pipe p onto its ring, as room allows.
void flush_overflow(Lb& lb, Pipe& p) {
  while (!p.overflow.empty()) {
    uint32_t n = 0;
    while (n < p.overflow.size() && (p.overflow[n].flags & NS_MOREFRAG)) n++;
    n++;
    if (n > p.overflow.size() || ring_room(p) < n) return;
    netmap_slot chain[kMaxChain];  // queued packets come from pass_on: n <= kMaxChain
    const uint32_t m = std::min(n, kMaxChain);
    const uint32_t hash = uint32_t(p.overflow[0].ptr);  // lb's own copy of the slot
    for (uint32_t k = 0; k < m; k++) chain[k] = p.overflow[k];
    put_on_ring(p, chain, m, hash);
    for (uint32_t k = 0; k < m; k++) lb.free_bufs.push_back(chain[k].buf_idx);
    p.overflow.erase(p.overflow.begin(), p.overflow.begin() + n);
  }
}

// New packets from the input's rx rings to the first group.
void read_input(Lb& lb) {
  uint32_t batch = 0;
  lb.input_stuck = false;
  for (unsigned i = lb.in->first_rx_ring; i <= lb.in->last_rx_ring; i++) {
    netmap_ring* r = NETMAP_RXRING(lb.in->nifp, i);
    const uint32_t ns = r->num_slots;
    while (!nm_ring_empty(r)) {
      const uint32_t avail = nm_ring_space(r);
      const FrameSpan f = frame_at(r->slot, r->head, avail, ns);
      if (f.nslots == 0) {
        if (avail + 1 < ns) {  // the rest of a chain is still to come
          lb.input_stuck = true;
          break;
        }
        lb.too_long++;  // a chain that fills the ring never ends: dropped
        r->head = r->cur = ring_add(r->head, avail, ns);
        continue;
      }
      const netmap_slot& first = r->slot[r->head];
      const uint8_t* head = reinterpret_cast<const uint8_t*>(NETMAP_BUF(r, first.buf_idx));
      const unetmap::lb::FlowKey key = unetmap::lb::flow_hash(head, std::min<uint32_t>(first.len, r->nr_buf_size));
      lb.received++;
      lb.received_bytes += f.len;
      if (!key.ip) lb.non_ip++;
      pass_on(lb, 0, r, r->head, f.nslots, key.hash);
      r->head = r->cur = ring_add(r->head, f.nslots, ns);
      if (++batch >= uint32_t(lb.opt.batch)) {
        ioctl(lb.in->fd, NIOCRXSYNC, nullptr);
        batch = 0;
      }
    }
  }
}

std::string stats_json(const Lb& lb) {
  char b[512];
  snprintf(b, sizeof b,
           "{\"input\":\"%s\",\"received\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"non_ip\":%" PRIu64
           ",\"too_long\":%" PRIu64 ",\"free_buffers\":%zu,\"pipes\":[",
           lb.opt.input.c_str(), lb.received, lb.received_bytes, lb.non_ip, lb.too_long, lb.free_bufs.size());
  std::string j = b;
  for (size_t k = 0; k < lb.pipes.size(); k++) {
    const Pipe& p = lb.pipes[k];
    snprintf(b, sizeof b,
             "%s{\"pipe\":\"%s\",\"group\":%u,\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"drops\":%" PRIu64
             ",\"queued\":%" PRIu64 ",\"revoked\":%" PRIu64 ",\"backlog\":%zu}",
             k ? "," : "", p.name.c_str(), p.group, p.packets, p.bytes, p.drops, p.queued, p.revoked,
             p.overflow.size());
    j += b;
  }
  return j + "]}";
}

uint64_t now_s() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return uint64_t(t.tv_sec);
}

// One round: wait for the input or a pipe, then move what can move.
void round(Lb& lb, std::vector<pollfd>& pfd) {
  pfd.clear();
  for (Pipe& p : lb.pipes) {
    // A pipe with packets in flight is woken when its consumer releases
    // some (cur = tail: netmap's wake-up point), when something waits on
    // that: the next group, its overflow queue, or room (it is nearly
    // full). Other pipes are synced when lb puts packets on them.
    const bool waits = !p.last || !p.overflow.empty() || ring_room(p) < kLowRoom;
    if (waits && nm_tx_pending(p.ring)) {
      p.ring->cur = p.ring->tail;
      pfd.push_back({p.d->fd, POLLOUT, 0});
    }
  }
  // An input holding only the start of a chain is synced every round, a
  // millisecond apart, until the chain is whole (POLLIN would not sleep).
  pfd.push_back({lb.in->fd, short(lb.input_stuck ? 0 : POLLIN), 0});
  const int timeout = lb.opt.busy ? 0 : lb.input_stuck ? 1 : 100;
  const int r = poll(pfd.data(), pfd.size(), timeout);
  for (Pipe& p : lb.pipes) p.ring->cur = p.ring->head;  // room counts from cur
  if (lb.input_stuck) ioctl(lb.in->fd, NIOCRXSYNC, nullptr);
  if (r < 0 && errno != EINTR) {
    fprintf(stderr, "lb: poll: %s\n", strerror(errno));
    g_stop = 1;
    return;
  }
  for (size_t g = lb.groups.size(); g-- > 1;)
    for (uint32_t k = 0; k < lb.groups[g - 1].n; k++) move_released(lb, lb.pipes[lb.groups[g - 1].first + k]);
  for (Pipe& p : lb.pipes)
    if (!p.overflow.empty()) flush_overflow(lb, p);
  read_input(lb);
  for (Pipe& p : lb.pipes)
    if (p.touched) {
      ioctl(p.d->fd, NIOCTXSYNC, nullptr);
      p.touched = false;
    }
}

}  // namespace

int main(int argc, char** argv) {
  Lb lb;
  if (const int rc = parse_options(argc, argv, &lb.opt); rc >= 0) return rc;
  if (!open_ports(lb)) return kExitFailed;
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  if (lb.opt.syslog_every) openlog("lb", LOG_PID, LOG_LOCAL1);
  fprintf(stderr, "lb: %s -> %zu pipes in %zu groups, %zu extra buffers\n", lb.opt.input.c_str(), lb.pipes.size(),
          lb.groups.size(), lb.free_bufs.size());
  for (long s = 0; s < lb.opt.wait && !g_stop; s++) sleep(1);
  std::vector<pollfd> pfd;
  uint64_t next_out = now_s() + uint64_t(lb.opt.stdout_every), next_log = now_s() + uint64_t(lb.opt.syslog_every);
  while (!g_stop) {
    round(lb, pfd);
    const uint64_t t = now_s();
    if (lb.opt.stdout_every && t >= next_out) {
      printf("%s\n", stats_json(lb).c_str());
      fflush(stdout);
      next_out = t + uint64_t(lb.opt.stdout_every);
    }
    if (lb.opt.syslog_every && t >= next_log) {
      syslog(LOG_INFO, "%s", stats_json(lb).c_str());
      next_log = t + uint64_t(lb.opt.syslog_every);
    }
  }
  printf("%s\n", stats_json(lb).c_str());
  for (Pipe& p : lb.pipes) nmport_close(p.d);
  nmport_close(lb.in);
  return 0;
}
