// kipfw: unetmap's ipfw, a firewall between pairs of netmap ports.
//
//   kipfw [-d] [-P] [-f FILE] [-n NAME] [-b BATCH] [-B BUFS] [-q] PORT_A PORT_B [PORT_C PORT_D ...]
//
// Every packet that arrives on one port of a pair goes out on the other
// if the ruleset (src/ipfw, FreeBSD's syntax) lets it: checked as it comes
// in on its port, and again on its way out when the ruleset has rules for
// outgoing packets (`out`, `xmit`), as a FreeBSD gateway does. Frames that
// are not IP (ARP, ...) pass without a rule. reject, reset and unreach
// send their reply back out of the port the packet came in on. pipe and
// queue hand packets to dummynet (src/ipfw/dummynet.h), which sends them
// on when their time comes. Rules with `log` write a line each to stderr
// (to syslog with -d). Ports in one memory region exchange buffers (zero
// copy); others are copied. Where a pair shares a region, dummynet holds
// a packet of 512 bytes or more in its own buffer: an extra buffer of the
// pair's (-B) takes its place in the rx ring, and it goes out by a swap
// into the tx ring; shorter packets, and any when no extra buffer is
// left, are held as copies. -P busy-polls while traffic flows (for a
// core of its own). docs/ipfw.md says more.
//
// The ruleset starts empty (the default rule, 65535 deny ip from any to
// any) or from FILE (-f: ipfw commands, one a line, "#" comments); a bad
// line stops kipfw before it forwards anything, naming the line. The
// `ipfw` tool changes it while kipfw runs, over a Unix socket in the
// runtime directory ($UNETMAP_DIR, else /dev/shm/unetmap):
// kipfw.NAME.sock (NAME: -n, default "default"), mode 0600, and kipfw
// answers only its own user and root. Nothing is reloaded or lost when
// ipfw connects or goes away. `ipfw stats` prints kipfw's counters as
// JSON.
#include <errno.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "cli.h"
#include "ctl_socket.h"
#include "forward.h"
#include "ipfw/command.h"
#include "ipfw/dummynet.h"
#include "ipfw/packet.h"
#include "ipfw/reply.h"
#include "ipfw/ruleset.h"

namespace {

using namespace unetmap;

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr uint32_t kReplyMax = 1536;
constexpr size_t kMaxReplies = 256;  // queued per port per round; more are not made
constexpr uint64_t kDnSpinNs = 300000;  // dummynet: polled awake this long before a packet is due
constexpr long kDefaultExtraBufs = 4096;  // per pair, for dummynet's zero-copy delay lines
constexpr long kMaxExtraBufs = long(ipfw::Dummynet::kMaxHeld);
// Shorter packets are held as copies even where they could be held zero
// copy: copying a short frame in and out costs no more than moving
// buffers through both rings (the library checks and retags each one).
// Measured into a sink over pipes, with a sender that writes every frame:
// copies as fast or faster up to 512 bytes, buffers about a quarter
// faster at 1514.
constexpr uint32_t kZeroCopyMin = 512;

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

using unetmap::cli::now_ns;
void usage(FILE* f) {
  fprintf(f,
          "usage: kipfw [-d] [-P] [-f FILE] [-n NAME] [-b BATCH] [-B BUFS] [-q] PORT_A PORT_B [PORT_C PORT_D ...]\n"
          "Forward packets between each pair of netmap ports through an ipfw ruleset.\n"
          "  -f FILE   load the ruleset from FILE (ipfw commands, one a line)\n"
          "  -n NAME   the name ipfw reaches this kipfw by (ipfw -n NAME; default \"default\")\n"
          "  -b BATCH  packets moved per direction per round, 1..8192 (default 512)\n"
          "  -B BUFS   extra buffers per pair of ports in one memory region, 0..65536 (default\n"
          "            4096): dummynet holds that many packets of 512 bytes or more in their own\n"
          "            buffers (zero copy); shorter ones, and more, as copies\n"
          "  -d        run as a daemon once the ports are open and the socket listens\n"
          "  -q        no summary at exit\n"
          "  -P        while traffic flows, sync the rings without sleeping in poll (for a\n"
          "            core of its own: more packets per second, the CPU always busy)\n"
          "The ruleset starts with only rule 65535 (deny ip from any to any). Change it with\n"
          "`ipfw [-n NAME] add ...`, list it with `ipfw show`, counters as JSON: `ipfw stats`.\n");
}

struct Direction;

// One port of kipfw.
struct Port {
  std::string name;
  nmport_d* d = nullptr;
  std::vector<std::vector<uint8_t>> replies;  // to send out of this port
  // The first port of a pair in one region: the pair's extra buffers, not
  // in any ring, that take the place of the rx buffers dummynet holds.
  std::vector<uint32_t> spare;
};

// One way through a pair: what the firewall needs to know of it.
struct Direction {
  Port* from = nullptr;
  Port* to = nullptr;
  fwd::Counters c;
  uint64_t non_ip = 0, denied = 0, replied = 0;
  ipfw::Ruleset* rs = nullptr;
  uint64_t now = 0;
  bool zero_copy = false;
  ipfw::Dummynet* dn = nullptr;
  uint32_t index = 0;       // in dirs: where dummynet sends what it held
  uint64_t piped = 0;       // packets given to dummynet
  uint64_t piped_zero_copy = 0;  // of which in their own buffers
  std::vector<uint32_t>* spare = nullptr;  // the pair's extra buffers (zero copy only)
  uint64_t replies_dropped = 0;
  uint64_t too_long = 0;    // packets of several slots a pipe could not take
  uint64_t malformed = 0;   // IP whose headers are not all there: denied
  bool stuck = false;       // its rx rings hold only an unfinished chain
};

// Give a packet to dummynet: its own buffer where the direction is zero
// copy, the packet is one slot of at least kZeroCopyMin bytes and the pair
// has an extra buffer to put in its place; a copy otherwise.
bool hold(Direction& d, const ipfw::Verdict& v, const ipfw::Packet& p, const uint8_t* frame, uint32_t len,
          netmap_slot* one) {
  const bool queue = v.action == ipfw::Action::kQueue;
  if (!one || len < kZeroCopyMin || !d.spare || d.spare->empty())
    return d.dn->enqueue(queue, v.arg, p, frame, len, d.index, d.now);
  if (!d.dn->enqueue(queue, v.arg, p, frame, len, d.index, d.now, one->buf_idx)) return false;
  one->buf_idx = d.spare->back();
  one->flags |= NS_BUF_CHANGED;
  d.spare->pop_back();
  d.piped_zero_copy++;
  return true;
}

bool filter(void* ctx, const uint8_t* head, uint32_t head_len, uint32_t len, netmap_slot* one) {
  Direction& d = *static_cast<Direction*>(ctx);
  ipfw::Packet p;
  ipfw::parse_packet(head, head_len, &p);
  if (p.truncated) {
    d.malformed++;
    return false;
  }
  if (!p.ipv) {
    d.non_ip++;
    return true;
  }
  p.wire_len = len;
  ipfw::Where w;
  w.recv = &d.from->name;
  w.xmit = &d.to->name;
  w.now_ns = d.now;
  ipfw::Verdict v = d.rs->check(p, w);
  if (v.action == ipfw::Action::kAllow && d.rs->has_out_rules()) {
    w.out = true;
    v = d.rs->check(p, w);
  }
  if (v.action == ipfw::Action::kAllow) return true;
  if (v.action == ipfw::Action::kPipe || v.action == ipfw::Action::kQueue) {
    // Held by dummynet, sent from there when its time comes.
    if (len > head_len) d.too_long++;
    else if (hold(d, v, p, head, head_len, one)) d.piped++;
    return false;
  }
  d.denied++;
  const bool replies = v.action == ipfw::Action::kReject || v.action == ipfw::Action::kReset ||
                       v.action == ipfw::Action::kUnreach;
  if (replies && d.from->replies.size() < kMaxReplies) {
    std::vector<uint8_t> r(kReplyMax);
    const uint32_t n = ipfw::make_reply(p, v.action, v.arg, r.data(), kReplyMax);
    if (n) {
      r.resize(n < 60 ? 60 : n);  // Ethernet's minimum
      d.from->replies.push_back(std::move(r));
    }
  }
  return false;
}

// The replies queued for port p, in order, onto its tx rings with room;
// those that find none are dropped (counted), as a full interface drops.
void send_replies(Port& p, uint64_t* sent, uint64_t* dropped) {
  if (p.replies.empty()) return;
  size_t next = 0;
  for (unsigned i = p.d->first_tx_ring; i <= p.d->last_tx_ring && next < p.replies.size(); i++) {
    netmap_ring* t = NETMAP_TXRING(p.d->nifp, i);
    while (next < p.replies.size() && nm_ring_space(t) > 0) {
      const std::vector<uint8_t>& r = p.replies[next++];
      if (r.size() > t->nr_buf_size) {
        (*dropped)++;
        continue;
      }
      netmap_slot& s = t->slot[t->cur];
      memcpy(NETMAP_BUF(t, s.buf_idx), r.data(), r.size());
      s.len = uint16_t(r.size());
      s.flags = 0;
      t->head = t->cur = nm_ring_next(t, t->cur);
      (*sent)++;
    }
  }
  *dropped += p.replies.size() - next;
  p.replies.clear();
  ioctl(p.d->fd, NIOCTXSYNC, nullptr);
}

// A rule's log line: to stderr, or to syslog once kipfw is a daemon.
bool g_syslog = false;
void log_packet(void*, const ipfw::Rule& r, const ipfw::Packet& p, const ipfw::Where& w) {
  const std::string line = ipfw::log_line(r, p, w);
  if (g_syslog) syslog(LOG_INFO, "%s", line.c_str());
  else fprintf(stderr, "%s\n", line.c_str());
}

// The host's addresses, for `me` and `me6`.
std::vector<ipfw::Addr> host_addrs() {
  std::vector<ipfw::Addr> out;
  ifaddrs* ifa = nullptr;
  if (getifaddrs(&ifa) != 0) return out;
  for (ifaddrs* i = ifa; i; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    ipfw::Addr a;
    if (i->ifa_addr->sa_family == AF_INET) {
      memcpy(a.a, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, 4);
      memset(a.m, 0xff, 4);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      a.v6 = true;
      memcpy(a.a, &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, 16);
      memset(a.m, 0xff, 16);
    } else {
      continue;
    }
    out.push_back(a);
  }
  freeifaddrs(ifa);
  return out;
}

bool load_file(ipfw::Ruleset& rs, ipfw::Dummynet& dn, const std::string& path, std::string* err) {
  std::ifstream in(path);
  if (!in) {
    *err = "cannot read " + path + ": " + strerror(errno);
    return false;
  }
  std::string line, out, why;
  for (int n = 1; std::getline(in, line); n++) {
    const std::vector<std::string> w = ipfw::split_words(line);
    if (w.empty()) continue;
    if (!ipfw::run_command(rs, w, &out, &why, &dn)) {
      *err = path + ":" + std::to_string(n) + ": " + why;
      return false;
    }
  }
  return true;
}

std::string stats_json(const std::vector<Direction>& dirs, const ipfw::Ruleset& rs, const ipfw::Dummynet& dn) {
  std::string j = "{\"directions\":[";
  char b[512];
  for (size_t k = 0; k < dirs.size(); k++) {
    const Direction& d = dirs[k];
    snprintf(b, sizeof b,
             "%s{\"from\":\"%s\",\"to\":\"%s\",\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"denied\":%" PRIu64
             ",\"non_ip\":%" PRIu64 ",\"replies\":%" PRIu64 ",\"ring_drops\":%" PRIu64 ",\"piped\":%" PRIu64
             ",\"piped_zero_copy\":%" PRIu64 ",\"too_long_for_pipes\":%" PRIu64 ",\"malformed\":%" PRIu64
             ",\"replies_dropped\":%" PRIu64 ",\"mode\":\"%s\",\"spare_buffers\":%zu}",
             k ? "," : "", d.from->name.c_str(), d.to->name.c_str(), d.c.packets, d.c.bytes, d.denied, d.non_ip,
             d.replied, d.c.drops, d.piped, d.piped_zero_copy, d.too_long, d.malformed, d.replies_dropped,
             d.zero_copy ? "zero-copy" : "copy", d.spare ? d.spare->size() : size_t(0));
    j += b;
  }
  j += "],\"rules\":[";
  bool first = true;
  for (const ipfw::Rule& r : rs.rules()) {
    snprintf(b, sizeof b, "%s{\"number\":%u,\"set\":%u,\"packets\":%" PRIu64 ",\"bytes\":%" PRIu64 "}",
             first ? "" : ",", r.num, r.set, r.packets, r.bytes);
    j += b;
    first = false;
  }
  const ipfw::Dummynet::Stats& ds = dn.stats();
  snprintf(b, sizeof b,
           "],\"dummynet\":{\"in\":%" PRIu64 ",\"out\":%" PRIu64 ",\"held\":%zu,\"plr_drops\":%" PRIu64
           ",\"queue_drops\":%" PRIu64 ",\"no_pipe\":%" PRIu64 ",\"held_drops\":%" PRIu64 "}",
           ds.in_packets, ds.out_packets, dn.held(), ds.plr_drops, ds.queue_drops, ds.no_pipe, ds.held_drops);
  j += b;
  j += ",\"states\":" + std::to_string(rs.states()) + "}\n";
  return j;
}

// One request from ipfw (ctl_socket.h): a line of words, an ipfw command
// or "stats".
void serve(int ls, ipfw::Ruleset& rs, ipfw::Dummynet& dn, const std::vector<Direction>& dirs) {
  ctl::serve_one(ls, "kipfw", [&](const std::string& line, std::string* reply) {
    std::string out, err;
    const std::vector<std::string> w = ipfw::split_words(line);
    if (w.size() == 1 && w[0] == "stats") *reply = "0\n" + stats_json(dirs, rs, dn);
    else if (ipfw::run_command(rs, w, &out, &err, &dn)) *reply = "0\n" + out;
    else *reply = "1 " + err + "\n";
  });
}

// Sleep in ppoll until a port or ipfw wants us. false (and *status set)
// if a port reports an error.
bool poll_ports(std::vector<Port>& ports, std::vector<Direction>& dirs, std::vector<pollfd>& pfd, int ls,
                uint64_t next_dn, int* status) {
  // A port with packets waits for room on the other (POLLOUT there);
  // one without, for packets (POLLIN). A port whose rx rings hold only
  // the start of a chain asks for neither: it is synced every round,
  // at most a millisecond apart, until the chain is whole.
  bool stuck = false;
  for (size_t k = 0; k < ports.size(); k++) {
    const bool pending = fwd::rx_pending(ports[k].d) != 0;
    const Direction& from_other = dirs[k ^ 1];
    const bool other = fwd::rx_pending(ports[k ^ 1].d) != 0 && !from_other.stuck;
    pfd[k] = {ports[k].d->fd, short((pending ? 0 : POLLIN) | (other ? POLLOUT : 0)), 0};
    stuck |= dirs[k].stuck;
  }
  pfd[ports.size()] = {ls, POLLIN, 0};
  // Sleep until a port or ipfw wants us, or until shortly before
  // dummynet's next packet is due: a timer wakes a sleeper a few hundred
  // microseconds late on a busy or virtual machine, so the last
  // kDnSpinNs are polled awake.
  uint64_t wait_ns = 200000000ull;
  const uint64_t before = now_ns();
  if (next_dn != ~0ull) {
    const uint64_t to = next_dn > before ? next_dn - before : 0;
    wait_ns = std::min(wait_ns, to > kDnSpinNs ? to - kDnSpinNs : 0);
  }
  if (stuck) wait_ns = std::min<uint64_t>(wait_ns, 1000000);
  const timespec ts{time_t(wait_ns / 1000000000ull), long(wait_ns % 1000000000ull)};
  const int r = ppoll(pfd.data(), pfd.size(), &ts, nullptr);
  if (r < 0 && errno != EINTR) {
    fprintf(stderr, "kipfw: poll: %s\n", strerror(errno));
    *status = kExitFailed;
    return false;
  }
  for (size_t k = 0; k < ports.size(); k++)
    if (pfd[k].revents & (POLLERR | POLLNVAL)) {
      fprintf(stderr, "kipfw: %s: poll reports an error on the port%s\n", ports[k].name.c_str(),
              pfd[k].revents & POLLNVAL ? " (closed)" : " (rings reset)");
      *status = kExitFailed;
    }
  return *status == 0;
}

struct Options {
  std::string file, name = "default";
  long batch = 512;
  long extra_bufs = kDefaultExtraBufs;
  bool daemonize = false, quiet = false, busy_poll = false;
};

// The options; -1 to go on, else the exit status.
int parse_options(int argc, char** argv, Options* o) {
  static const option longopts[] = {{"help", no_argument, nullptr, 'h'}, {nullptr, 0, nullptr, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "df:n:b:B:qPh", longopts, nullptr)) != -1) {
    switch (ch) {
      case 'd': o->daemonize = true; break;
      case 'f': o->file = optarg; break;
      case 'n': o->name = optarg; break;
      case 'q': o->quiet = true; break;
      case 'P': o->busy_poll = true; break;
      case 'b':
        if (!cli::number("kipfw", 'b', optarg, 1, 8192, "a batch of packets is", &o->batch)) return kExitUsage;
        break;
      case 'B':
        if (!cli::number("kipfw", 'B', optarg, 0, kMaxExtraBufs, "a number of extra buffers is", &o->extra_bufs))
          return kExitUsage;
        break;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return kExitUsage;
    }
  }
  const int nports = argc - optind;
  if (nports < 2 || nports % 2) {
    fprintf(stderr, "kipfw: give ports in pairs (PORT_A PORT_B ...); --help for usage\n");
    return kExitUsage;
  }
  if (o->name.empty() || o->name.find('/') != std::string::npos) {
    fprintf(stderr, "kipfw: -n %s: a name without '/'\n", o->name.c_str());
    return kExitUsage;
  }
  return -1;
}

// Open the ports, in pairs: the first of each with the pair's extra
// buffers. Kept only where the pair shares a region (zero copy).
bool open_ports(std::vector<Port>& ports, long extra_bufs) {
  std::string err;
  for (size_t k = 0; k < ports.size(); k++) {
    ports[k].d = fwd::open_quiet(ports[k].name, &err, k % 2 ? 0 : uint32_t(extra_bufs));
    if (!ports[k].d) {
      fprintf(stderr, "kipfw: %s\n", err.c_str());
      for (size_t j = 0; j < k; j++) nmport_close(ports[j].d);
      return false;
    }
    if (k % 2 == 0) ports[k].spare = fwd::take_extra_bufs(ports[k].d);
  }
  return true;
}

// The two directions of each pair, in port order: dirs[2k] from port 2k.
std::vector<Direction> make_directions(std::vector<Port>& ports, ipfw::Ruleset& rs, ipfw::Dummynet& dn) {
  std::vector<Direction> dirs;
  for (size_t k = 0; k < ports.size(); k += 2) {
    Port* a = &ports[k];
    Port* b = &ports[k + 1];
    for (Port* from : {a, b}) {
      Direction d;
      d.from = from;
      d.to = from == a ? b : a;
      d.rs = &rs;
      d.dn = &dn;
      d.index = uint32_t(dirs.size());
      d.zero_copy = fwd::same_region(a->d, b->d);
      d.spare = d.zero_copy ? &a->spare : nullptr;
      dirs.push_back(std::move(d));
    }
  }
  return dirs;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (const int rc = parse_options(argc, argv, &opt); rc >= 0) return rc;
  const long batch = opt.batch;
  ipfw::Ruleset rs;
  ipfw::Dummynet dn;
  rs.set_me(host_addrs());
  rs.set_logger(log_packet, nullptr);
  std::string err;
  if (!opt.file.empty() && !load_file(rs, dn, opt.file, &err)) {
    fprintf(stderr, "kipfw: %s\n", err.c_str());
    return kExitUsage;
  }
  std::vector<Port> ports(static_cast<size_t>(argc - optind));
  for (size_t k = 0; k < ports.size(); k++) ports[k].name = argv[optind + int(k)];
  if (!open_ports(ports, opt.extra_bufs)) return kExitFailed;
  std::vector<Direction> dirs = make_directions(ports, rs, dn);
  // Held packets dropped by a pipe's change give their buffers back.
  dn.set_release([](void* c, uint32_t out, uint64_t token) {
    (*static_cast<std::vector<Direction>*>(c))[out].spare->push_back(uint32_t(token));
  }, &dirs);
  const std::string sock = ctl::socket_path("kipfw", opt.name);
  const int ls = ctl::listen_on(sock, &err);
  if (ls < 0) {
    fprintf(stderr, "kipfw: %s\n", err.c_str());
    return kExitFailed;
  }
  if (opt.daemonize) {
    if (daemon(1, 0) != 0) {
      fprintf(stderr, "kipfw: daemon: %s\n", strerror(errno));
      return kExitFailed;
    }
    openlog("kipfw", LOG_PID, LOG_DAEMON);
    g_syslog = true;
  }
  // dummynet's timers want tens of microseconds, not the default 50 us slack.
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::vector<pollfd> pfd(ports.size() + 1);
  uint64_t next_expire = now_ns() + 1000000000ull;
  uint64_t next_dn = ~0ull;  // when dummynet lets the next packet go
  std::vector<bool> touched(ports.size());
  // What dummynet lets go: onto the tx ring of its direction's output
  // port, by a swap of buffers if it held the packet's own.
  const auto sink = [&](uint32_t out, const uint8_t* f, uint32_t len, uint64_t token) {
    Port& p = *dirs[out].to;
    for (unsigned i = p.d->first_tx_ring; i <= p.d->last_tx_ring; i++) {
      netmap_ring* t = NETMAP_TXRING(p.d->nifp, i);
      if (nm_ring_space(t) == 0 || len > t->nr_buf_size) continue;
      netmap_slot& s = t->slot[t->cur];
      if (token != ipfw::Dummynet::kNoToken) {
        dirs[out].spare->push_back(s.buf_idx);
        s.buf_idx = uint32_t(token);
        s.flags = NS_BUF_CHANGED;
      } else {
        memcpy(NETMAP_BUF(t, s.buf_idx), f, len);
        s.flags = 0;
      }
      s.len = uint16_t(len);
      t->head = t->cur = nm_ring_next(t, t->cur);
      dirs[out].c.packets++;
      dirs[out].c.bytes += len;
      touched[size_t(&p - ports.data())] = true;
      return true;
    }
    return false;  // full: it waits in dummynet
  };
  int status = 0;
  bool busy = false;    // the last round moved packets
  uint32_t rounds = 0;
  while (!g_stop) {
    if (busy) {
      // Traffic: more is likely there already. The rings are synced with
      // ioctls (calls into the library, no system call) rather than a
      // poll; the control socket is looked at every 64 rounds.
      for (size_t k = 0; k < ports.size(); k++) {
        if (ioctl(ports[k].d->fd, NIOCRXSYNC, nullptr) != 0) {
          fprintf(stderr, "kipfw: %s: %s\n", ports[k].name.c_str(), strerror(errno));
          status = kExitFailed;
        }
        pfd[k].revents = POLLOUT;
      }
      if (status) break;
      pfd[ports.size()] = {ls, POLLIN, 0};
      if (++rounds % 64 == 0) poll(&pfd[ports.size()], 1, 0);
      else pfd[ports.size()].revents = 0;
    } else {
      if (!poll_ports(ports, dirs, pfd, ls, next_dn, &status)) break;
    }
    const uint64_t now = now_ns();
    uint64_t work = 0;
    for (Direction& d : dirs) {
      const size_t from = size_t(d.from - ports.data()), to = size_t(d.to - ports.data());
      if (d.stuck) ioctl(ports[from].d->fd, NIOCRXSYNC, nullptr);
      if (!(pfd[to].revents & POLLOUT) && !d.stuck) continue;  // nothing to move, or no room
      d.now = now;
      const fwd::Filter f{filter, &d};
      const uint64_t before_f = d.c.filtered, before_d = d.c.drops;
      const uint32_t moved = fwd::forward(d.from->d, d.to->d, uint32_t(batch), d.zero_copy, &d.c, &f);
      if (moved) ioctl(ports[to].d->fd, NIOCTXSYNC, nullptr);
      work += moved + (d.c.filtered - before_f) + (d.c.drops - before_d);
      // Nothing moved, filtered or dropped from rings that hold slots:
      // the first packet is a chain still coming.
      d.stuck = moved == 0 && d.c.filtered == before_f && d.c.drops == before_d && fwd::rx_pending(d.from->d) != 0;
      send_replies(*d.from, &d.replied, &d.replies_dropped);
    }
    busy = opt.busy_poll && work != 0;
    next_dn = dn.run(now_ns(), sink);
    for (size_t k = 0; k < ports.size(); k++)
      if (touched[k]) {
        ioctl(ports[k].d->fd, NIOCTXSYNC, nullptr);
        touched[k] = false;
      }
    if (pfd[ports.size()].revents & POLLIN) serve(ls, rs, dn, dirs);
    if (now >= next_expire) {
      rs.expire(now);
      next_expire = now + 1000000000ull;
    }
  }
  for (Port& p : ports) ioctl(p.d->fd, NIOCTXSYNC, nullptr);
  if (!opt.quiet) {
    for (const Direction& d : dirs)
      printf("kipfw: %s -> %s: %" PRIu64 " packets, %" PRIu64 " denied, %" PRIu64 " not IP\n", d.from->name.c_str(),
             d.to->name.c_str(), d.c.packets, d.denied, d.non_ip);
  }
  close(ls);
  unlink(sock.c_str());
  for (Port& p : ports) nmport_close(p.d);
  return status;
}
