// nmreplay: replay a capture file through a netmap port at a schedule,
// with netmap's nmreplay options, unetmap's own code.
//
//   nmreplay -f FILE -i PORT [-B BW] [-D DELAY] [-L LOSS] [-b BATCH] [-w SECS]
//            [-C CPU] [-l LOOPS] [-v]
//
// The capture (pcap or pcapng, microsecond or nanosecond stamps: libpcap's
// offline API reads it) is loaded into memory first, so the sending loop
// only copies frames into the port's first tx ring when their time comes
// (replay.h: the link's bandwidth, delay and loss). A frame longer than a
// buffer goes as an NS_MOREFRAG chain. The loop sleeps until shortly
// before a frame's time and spins the rest, and puts every frame whose
// time has come in one sync (at most BATCH), so rates hold at microsecond
// gaps without a system call per frame.
//
// Output: "nmreplay: ... start at monotonic S.NNNNNNNNN" on stderr when
// sending starts, a line a second with -v, and a summary line on stdout at
// the end (or on SIGINT/SIGTERM).
#include <errno.h>
#include <getopt.h>
#include <libnetmap.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cinttypes>
#include <random>
#include <string>
#include <vector>

#include "cli.h"
#include "replay.h"
#include "tx_frame.h"

namespace {

using namespace unetmap;
using cli::now_ns;

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr uint64_t kSpinNs = 100000;  // sleep until this close to a frame's time, then spin

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

void usage(FILE* f) {
  fprintf(f,
          "usage: nmreplay -f FILE -i PORT [-B BW] [-D DELAY] [-L LOSS] [-b BATCH] [-w SECS] [-C CPU]\n"
          "                [-l LOOPS] [-v]\n"
          "Replay a capture file (pcap or pcapng) through a netmap port at a schedule.\n"
          "  -f FILE    the capture (Ethernet frames)\n"
          "  -i PORT    the port (any netmap port); frames go on its first tx ring\n"
          "  -B BW      BPS | constant,BPS | ether,BPS | real[,SPEEDUP] (BPS with k, m, g);\n"
          "             ether counts 24 bytes of framing and CRC; real follows the capture's\n"
          "             time stamps; default: as fast as the port takes frames\n"
          "  -D DELAY   DT | constant,DT | uniform,DMIN,DMAX | exp,DMIN,DAVG (times with s, m, u,\n"
          "             n; n if none), added to each frame without reordering\n"
          "  -L LOSS    X | plr,X | ber,X: packet loss rate or bit error rate (0..1)\n"
          "  -b BATCH   most frames in one sync (default 512)\n"
          "  -w SECS    wait before sending, for a NIC's link (default 2)\n"
          "  -C CPU     run on this CPU\n"
          "  -l LOOPS   replay the file LOOPS times, 0 for ever (default 1)\n"
          "  -v         a line of counters every second (stderr)\n");
}

struct Options {
  std::string file, port;
  replay::Rate rate;
  replay::Delay delay;
  replay::Loss loss;
  long batch = 512, wait = 2, cpu = -1, loops = 1;
  bool verbose = false;
};

bool number(char c, const char* arg, long lo, long hi, long* out) {
  return cli::number("nmreplay", c, arg, lo, hi, "a number in", out);
}

// The options; -1 to go on, else the exit status.
int parse_options(int argc, char** argv, Options* o) {
  static const option longopts[] = {{"help", no_argument, nullptr, 'h'}, {nullptr, 0, nullptr, 0}};
  std::string why;
  int ch;
  while ((ch = getopt_long(argc, argv, "f:i:B:D:L:b:w:C:l:vh", longopts, nullptr)) != -1) {
    bool ok = true;
    switch (ch) {
      case 'f': o->file = optarg; break;
      case 'i': o->port = optarg; break;
      case 'B': ok = replay::parse_rate(optarg, &o->rate, &why); break;
      case 'D': ok = replay::parse_delay(optarg, &o->delay, &why); break;
      case 'L': ok = replay::parse_loss(optarg, &o->loss, &why); break;
      case 'b': ok = number('b', optarg, 1, 1 << 16, &o->batch); break;
      case 'w': ok = number('w', optarg, 0, 3600, &o->wait); break;
      case 'C': ok = number('C', optarg, 0, CPU_SETSIZE - 1, &o->cpu); break;
      case 'l': ok = number('l', optarg, 0, 1L << 40, &o->loops); break;
      case 'v': o->verbose = true; break;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return kExitUsage;
    }
    if (!ok) {
      if (!why.empty()) fprintf(stderr, "nmreplay: -%c %s\n", ch, why.c_str());
      return kExitUsage;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "nmreplay: unexpected argument '%s'; --help for usage\n", argv[optind]);
    return kExitUsage;
  }
  if (o->file.empty() || o->port.empty()) {
    fprintf(stderr, "nmreplay: %s; --help for usage\n", o->file.empty() ? "no capture file (-f FILE)" : "no port (-i PORT)");
    return kExitUsage;
  }
  return -1;
}

// The capture in memory: every frame's bytes in one arena.
struct Capture {
  struct Frame {
    uint64_t off;
    uint32_t len;
    uint64_t stamp_ns;
  };
  std::vector<uint8_t> bytes;
  std::vector<Frame> frames;
};

bool load(const std::string& path, Capture* cap) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    fprintf(stderr, "nmreplay: %s: %s\n", path.c_str(), strerror(errno));
    return false;
  }
  if (uint64_t(st.st_size) > cli::mem_available() / 2) {
    fprintf(stderr, "nmreplay: %s: %" PRIu64 " MB, more than half the memory available (nmreplay holds the whole capture)\n",
            path.c_str(), uint64_t(st.st_size) >> 20);
    return false;
  }
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
  if (!p) {
    fprintf(stderr, "nmreplay: %s\n", err);
    return false;
  }
  if (pcap_datalink(p) != DLT_EN10MB) {
    fprintf(stderr, "nmreplay: %s: not an Ethernet capture (link type %s)\n", path.c_str(),
            pcap_datalink_val_to_name(pcap_datalink(p)) ? pcap_datalink_val_to_name(pcap_datalink(p)) : "?");
    pcap_close(p);
    return false;
  }
  cap->bytes.reserve(size_t(st.st_size));
  pcap_pkthdr* h;
  const u_char* data;
  int r;
  while ((r = pcap_next_ex(p, &h, &data)) == 1) {
    if (h->caplen == 0) continue;
    cap->frames.push_back({cap->bytes.size(), h->caplen, uint64_t(h->ts.tv_sec) * 1000000000ull + uint64_t(h->ts.tv_usec)});
    cap->bytes.insert(cap->bytes.end(), data, data + h->caplen);
  }
  if (r == PCAP_ERROR) fprintf(stderr, "nmreplay: %s: %s (replaying the frames before it)\n", path.c_str(), pcap_geterr(p));
  pcap_close(p);
  if (cap->frames.empty()) {
    fprintf(stderr, "nmreplay: %s: no frames\n", path.c_str());
    return false;
  }
  return true;
}

struct Counters {
  uint64_t sent = 0, bytes = 0, lost = 0, too_long = 0;
  uint64_t lag_max_ns = 0;  // the latest a frame went into the ring after its time
};

struct Sender {
  nmport_d* d;
  netmap_ring* ring;
  uint32_t queued = 0;  // frames put on the ring since the last sync
  long batch;
  Counters c;

  bool sync() {
    queued = 0;
    return ioctl(d->fd, NIOCTXSYNC, nullptr) == 0;
  }
  // Room for `slots` slots, waiting for the port (poll) if needed; false
  // when stopped or the port fails.
  bool room(uint32_t slots) {
    while (nm_ring_space(ring) < slots) {
      if (g_stop) return false;
      pollfd p{d->fd, POLLOUT, 0};
      if (poll(&p, 1, 100) < 0 && errno != EINTR) return false;
      queued = 0;
    }
    return true;
  }
  // Until the ring's frames have left (a NIC sends them, a pipe's reader
  // takes them): closing the port earlier could lose them. At most 2 s,
  // asked every 200 us: poll would return at once (the ring has room), and
  // a sender spinning right after its sync keeps a reader woken on its CPU
  // from running for milliseconds (measured here).
  void drain() {
    const uint64_t end = now_ns() + 2000000000ull;
    while (nm_tx_pending(ring) && !g_stop && now_ns() < end) {
      usleep(200);
      if (ioctl(d->fd, NIOCTXSYNC, nullptr) != 0) return;
    }
  }
  // Put one frame on the ring (a chain if it is longer than a buffer).
  bool put(const uint8_t* f, uint32_t len) {
    const uint32_t slots = tx_slots(ring, f, len);
    if (slots == 0) {
      c.too_long++;
      return true;
    }
    if (!room(slots)) return false;
    tx_put(ring, f, len);
    c.sent++;
    c.bytes += len;
    if (++queued >= uint32_t(batch)) return sync();
    return true;
  }
};

// Until t (monotonic ns): sleep to kSpinNs before it, then spin.
void wait_until(uint64_t t) {
  uint64_t n = now_ns();
  if (t > n + 2 * kSpinNs) {
    const uint64_t wake = t - kSpinNs;
    timespec ts{time_t(wake / 1000000000ull), long(wake % 1000000000ull)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
  }
  while (now_ns() < t && !g_stop) __builtin_ia32_pause();
}

void report(const Counters& c, uint64_t ns, bool final) {
  const double s = ns / 1e9;
  if (final)
    printf("summary: func=replay packets=%" PRIu64 " bytes=%" PRIu64 " lost=%" PRIu64 " too_long=%" PRIu64
           " seconds=%.6f mpps=%.3f mbps=%.3f lag_max_us=%.1f\n",
           c.sent, c.bytes, c.lost, c.too_long, s, s > 0 ? c.sent / s / 1e6 : 0.0,
           s > 0 ? c.bytes * 8 / s / 1e6 : 0.0, c.lag_max_ns / 1e3);
  else
    fprintf(stderr, "nmreplay: %.1f s: %" PRIu64 " frames, %" PRIu64 " lost, %.3f Mbit/s so far\n", s, c.sent, c.lost,
            s > 0 ? c.bytes * 8 / s / 1e6 : 0.0);
}

// Send every pass of the capture; the time sending took.
uint64_t run(const Options& o, const Capture& cap, Sender& tx) {
  replay::Link link(o.rate, o.delay, o.loss, std::random_device{}());
  const bool timed = o.rate.kind != replay::Rate::kMax || o.delay.kind != replay::Delay::kNone;
  const uint64_t start = now_ns();
  fprintf(stderr, "nmreplay: %s: %zu frames -> %s, start at monotonic %" PRIu64 ".%09" PRIu64 "\n", o.file.c_str(),
          cap.frames.size(), o.port.c_str(), start / 1000000000, start % 1000000000);
  uint64_t next_report = start + 1000000000ull;
  for (long pass = 0; (o.loops == 0 || pass < o.loops) && !g_stop; pass++, link.end_pass()) {
    for (const Capture::Frame& f : cap.frames) {
      bool lost;
      const uint64_t due = start + link.next(f.len, f.stamp_ns, &lost);
      if (timed) {
        const uint64_t n = now_ns();
        if (due > n) {
          if (tx.queued && !tx.sync()) return now_ns() - start;
          wait_until(due);
        } else if (n - due > tx.c.lag_max_ns) {
          tx.c.lag_max_ns = n - due;
        }
      }
      if (o.verbose && (timed || (tx.c.sent & 1023) == 0)) {
        const uint64_t n = now_ns();
        if (n >= next_report) {
          report(tx.c, n - start, false);
          next_report += 1000000000ull;
        }
      }
      if (g_stop) break;
      if (lost) {
        tx.c.lost++;
        continue;
      }
      if (!tx.put(&cap.bytes[f.off], f.len)) return now_ns() - start;
    }
  }
  tx.sync();
  const uint64_t took = now_ns() - start;
  tx.drain();
  return took;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (const int rc = parse_options(argc, argv, &o); rc >= 0) return rc;
  if (o.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(int(o.cpu), &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
      fprintf(stderr, "nmreplay: -C %ld: %s\n", o.cpu, strerror(errno));
      return kExitFailed;
    }
  }
  Capture cap;
  if (!load(o.file, &cap)) return kExitFailed;
  nmport_d* d = nmport_open(o.port.c_str());
  if (!d) return kExitFailed;  // libnetmap said why
  if (d->first_tx_ring > d->last_tx_ring) {
    fprintf(stderr, "nmreplay: %s: no tx ring bound\n", o.port.c_str());
    nmport_close(d);
    return kExitFailed;
  }
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  prctl(PR_SET_TIMERSLACK, 1UL);  // wake-ups to the microsecond
  for (long s = 0; s < o.wait && !g_stop; s++) sleep(1);
  Sender tx{d, NETMAP_TXRING(d->nifp, d->first_tx_ring), 0, o.batch, {}};
  const uint64_t ns = run(o, cap, tx);
  report(tx.c, ns, true);
  nmport_close(d);
  return 0;
}
