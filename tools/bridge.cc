// bridge: unetmap's netmap bridge. It moves every packet that arrives on
// one port to the other, in both directions, until SIGINT or SIGTERM.
//
//   bridge -i netmap:veth0 -i netmap:veth0^    NIC <-> its host stack
//   bridge -i netmap:eth0                       the same, written short
//   bridge -i vale0:a -i vale1:b                join two VALE switches
//   bridge -v -b 512 -i 'netmap:p}0' -i 'netmap:q}0'
//
// Options and defaults are netmap's bridge's (including -c to turn zero
// copy off, -L, and the positional form `bridge [PORT1 [PORT2 [BATCH]]]`),
// plus -a for CPU affinity as in pkt-gen. Ports in one memory region
// exchange buffers (zero copy); across regions the packets are copied.
// The forwarding itself is forward.h's, shared with other tools.
//
// One thread, one poll() per round: a port whose rx rings hold packets
// asks for room (POLLOUT) on the other port, otherwise for packets (POLLIN)
// on its own; netmap's poll syncs both. Counts per direction are printed
// every second with -v and once at the end:
//   bridge: summary: a->b=N b->a=M bytes_a->b=X bytes_b->a=Y drops=D ...
// ("a" is the first port, "b" the second).
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <string>

#include "cli.h"
#include "forward.h"

namespace {

constexpr int kExitFailed = 1;  // a port could not be opened, or failed while running
constexpr int kExitUsage = 2;   // bad command line: nothing was done

constexpr long kMaxBatch = 8192;
constexpr long kMaxWait = 100;
constexpr int kStopLatencyMs = 200;

struct Options {
  std::string port_a, port_b;
  long batch = 1024;
  long wait_link = 4;
  long cpu = -1;
  bool copy = false;      // -c: copy even where buffers could be swapped
  bool loopback = false;  // -L: one port, forwarded to itself
  int verbose = 0;
};

volatile sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

void usage(FILE* f) {
  fprintf(f,
          "usage: bridge [-v] [-c] [-L] [-b BATCH] [-w SECONDS] [-a CPU] -i PORT1 [-i PORT2]\n"
          "       bridge [options] PORT1 [PORT2 [BATCH]]\n"
          "Forward packets between two netmap ports, in both directions.\n"
          "  -i PORT     a port, e.g. netmap:eth0, netmap:eth0^, vale0:a, 'netmap:p}0';\n"
          "              give -i twice. With one port (or the same one twice) the\n"
          "              bridge joins PORT1's host rings (PORT1^) and PORT1\n"
          "  -b BATCH    packets moved per direction per round, 1..%ld (default 1024)\n"
          "  -w SECONDS  wait for the link before forwarding, 0..%ld (default 4; NIC\n"
          "              ports only: pipes, VALE, null and pcap ports do not wait)\n"
          "  -c          always copy packets (default: swap buffers, zero copy, when\n"
          "              both ports are in one memory region; copy otherwise)\n"
          "  -L          with one port: forward its traffic back to itself instead of\n"
          "              to its host rings\n"
          "  -a CPU      run on CPU\n"
          "  -v          print packets per second in each direction, every second\n"
          "  -h, --help  this help\n"
          "Stops on SIGINT or SIGTERM and prints\n"
          "  bridge: summary: a->b=N b->a=M bytes_a->b=X bytes_b->a=Y drops=D mode=M seconds=S\n"
          "(a is PORT1, b is PORT2; drops are packets too long for a tx ring).\n"
          "Exit status: 0 stopped by a signal, 1 a port failed, 2 bad command line.\n",
          kMaxBatch, kMaxWait);
}

[[noreturn]] void bad(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] void bad(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "bridge: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(kExitUsage);
}

long parse_num(const char* what, const char* s, long lo, long hi) {
  char* end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    bad("%s: '%s' is not a number in %ld..%ld", what, s, lo, hi);
  return v;
}

void add_port(Options* o, const char* name) {
  if (!*name) bad("-i: empty port name (e.g. netmap:eth0, vale0:a)");
  if (o->port_a.empty()) o->port_a = name;
  else if (o->port_b.empty()) o->port_b = name;
  else bad("-i %s: a bridge joins two ports, '%s' and '%s' are given already", name,
           o->port_a.c_str(), o->port_b.c_str());
}

Options parse_args(int argc, char** argv) {
  static const option kLong[] = {{"help", no_argument, nullptr, 'h'}, {nullptr, 0, nullptr, 0}};
  Options o;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":i:b:w:a:cLvh", kLong, nullptr)) != -1) {
    switch (c) {
      case 'i': add_port(&o, optarg); break;
      case 'b': o.batch = parse_num("-b", optarg, 1, kMaxBatch); break;
      case 'w': o.wait_link = parse_num("-w", optarg, 0, kMaxWait); break;
      case 'a': o.cpu = parse_num("-a", optarg, 0, CPU_SETSIZE - 1); break;
      case 'c': o.copy = true; break;
      case 'L': o.loopback = true; break;
      case 'v': o.verbose++; break;
      case 'h':
        usage(stdout);
        exit(0);
      case ':':
        bad("-%c needs an argument (see --help)", optopt);
      default:
        if (optopt)
          bad("unknown option '-%c' (see --help)", optopt);
        bad("unknown option '%s' (see --help)", argv[optind - 1]);
    }
  }
  // netmap's second form: PORT1 [PORT2 [BATCH]].
  for (int i = 0; optind < argc; i++, optind++) {
    if (i < 2) add_port(&o, argv[optind]);
    else if (i == 2) o.batch = parse_num("BATCH", argv[optind], 1, kMaxBatch);
    else bad("unexpected argument '%s' (see --help)", argv[optind]);
  }
  if (o.port_a.empty()) bad("no port: give -i PORT1 [-i PORT2] (see --help)");
  if (o.port_b.empty()) o.port_b = o.port_a;
  if (o.port_a == o.port_b && !o.loopback) o.port_a += '^';  // the host rings of PORT1
  return o;
}

using unetmap::cli::now_ns;
nmport_d* open_port(const std::string& name) {
  std::string why;
  nmport_d* d = unetmap::fwd::open_quiet(name, &why);
  if (!d) fprintf(stderr, "bridge: %s\n", why.c_str());
  return d;
}

std::string rate(double pps) {
  char b[32];
  if (pps >= 1e6) snprintf(b, sizeof b, "%.3f Mpps", pps / 1e6);
  else if (pps >= 1e3) snprintf(b, sizeof b, "%.3f Kpps", pps / 1e3);
  else snprintf(b, sizeof b, "%.0f pps", pps);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  // Our own line says why a port did not open; the library's would repeat it.
  setenv("UNETMAP_QUIET", "1", 0);

  if (o.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(int(o.cpu), &set);
    if (int e = pthread_setaffinity_np(pthread_self(), sizeof set, &set)) {
      fprintf(stderr, "bridge: -a %ld: cannot run on that CPU: %s\n", o.cpu, strerror(e));
      return kExitFailed;
    }
  }

  nmport_d* a = open_port(o.port_a);
  if (!a) return kExitFailed;
  nmport_d* b = open_port(o.port_b);
  if (!b) {
    nmport_close(a);
    return kExitFailed;
  }
  const bool zero_copy = !o.copy && unetmap::fwd::same_region(a, b);
  char mode[96];
  if (zero_copy)
    snprintf(mode, sizeof mode, "zero copy in region %u", unsigned(a->reg.nr_mem_id));
  else if (o.copy)
    snprintf(mode, sizeof mode, "copy (-c)");
  else
    snprintf(mode, sizeof mode, "copy between regions %u and %u", unsigned(a->reg.nr_mem_id),
             unsigned(b->reg.nr_mem_id));

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);  // no SA_RESTART: poll() returns at once
  sigaction(SIGTERM, &sa, nullptr);

  using unetmap::cli::port_has_link;
  if (o.wait_link > 0 && (port_has_link(o.port_a) || port_has_link(o.port_b))) {
    fprintf(stderr, "bridge: waiting %ld s for the link\n", o.wait_link);
    timespec ts{o.wait_link, 0};
    while (!g_stop && nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
  }
  fprintf(stderr, "bridge: ready: %s (%u rx rings) <-> %s (%u rx rings), %s, batch %ld\n",
          o.port_a.c_str(), a->last_rx_ring - a->first_rx_ring + 1u, o.port_b.c_str(),
          b->last_rx_ring - b->first_rx_ring + 1u, mode, o.batch);

  unetmap::fwd::Counters ab, ba;  // a->b, b->a
  const uint32_t batch = uint32_t(o.batch);
  const uint64_t t0 = now_ns();
  uint64_t next_report = t0 + 1000000000ull, last_report = t0;
  uint64_t prev_ab = 0, prev_ba = 0;
  int status = 0;
  pollfd pfd[2] = {{a->fd, 0, 0}, {b->fd, 0, 0}};
  while (!g_stop) {
    const uint32_t pending_a = unetmap::fwd::rx_pending(a), pending_b = unetmap::fwd::rx_pending(b);
    pfd[0].events = short((pending_a ? 0 : POLLIN) | (pending_b ? POLLOUT : 0));
    pfd[1].events = short((pending_b ? 0 : POLLIN) | (pending_a ? POLLOUT : 0));
    pfd[0].revents = pfd[1].revents = 0;
    // A signal that lands between the check of g_stop and the kernel's
    // poll() is seen at the next timeout: keep it short.
    int timeout = kStopLatencyMs;
    if (o.verbose) {
      uint64_t now = now_ns();
      if (now >= next_report) timeout = 0;
      else timeout = std::min(timeout, int((next_report - now) / 1000000 + 1));
    }
    int r = poll(pfd, 2, timeout);
    if (r < 0 && errno != EINTR) {
      fprintf(stderr, "bridge: poll: %s\n", strerror(errno));
      status = kExitFailed;
      break;
    }
    if (r > 0) {
      for (int i = 0; i < 2; i++)
        if (pfd[i].revents & (POLLERR | POLLNVAL)) {
          fprintf(stderr, "bridge: %s: poll reports an error on the port%s\n",
                  (i ? o.port_b : o.port_a).c_str(),
                  pfd[i].revents & POLLNVAL ? " (closed)" : " (rings reset)");
          status = kExitFailed;
        }
      if (status) break;
      if (pfd[1].revents & POLLOUT) unetmap::fwd::forward(a, b, batch, zero_copy, &ab);
      if (pfd[0].revents & POLLOUT) unetmap::fwd::forward(b, a, batch, zero_copy, &ba);
    }
    if (o.verbose) {
      uint64_t now = now_ns();
      if (now >= next_report) {
        double dt = double(now - last_report) / 1e9;
        printf("bridge: a->b %s (%" PRIu64 " pkts) b->a %s (%" PRIu64 " pkts)\n",
               rate(double(ab.packets - prev_ab) / dt).c_str(), ab.packets - prev_ab,
               rate(double(ba.packets - prev_ba) / dt).c_str(), ba.packets - prev_ba);
        fflush(stdout);
        prev_ab = ab.packets, prev_ba = ba.packets;
        last_report = now;
        next_report = now + 1000000000ull;
      }
    }
  }
  // Push out what the last round put on the tx rings.
  ioctl(a->fd, NIOCTXSYNC, nullptr);
  ioctl(b->fd, NIOCTXSYNC, nullptr);
  printf("bridge: summary: a->b=%" PRIu64 " b->a=%" PRIu64 " bytes_a->b=%" PRIu64
         " bytes_b->a=%" PRIu64 " drops=%" PRIu64 " mode=%s seconds=%.3f\n",
         ab.packets, ba.packets, ab.bytes, ba.bytes, ab.drops + ba.drops,
         zero_copy ? "zero-copy" : "copy", double(now_ns() - t0) / 1e9);
  fflush(stdout);
  nmport_close(b);
  nmport_close(a);
  return status;
}
