// pkt-gen: unetmap's traffic generator and sink, with netmap pkt-gen's
// options and output. It works on any port: pipes, null ports (and later
// VALE and NIC ports).
//
//   pkt-gen -i netmap:p{0 -f tx -l 60 -b 512        send as fast as possible
//   pkt-gen -i netmap:p}0 -f rx                      count what arrives
//   pkt-gen -i netmap:p{1 -f ping / -f pong          round-trip latency
//
// Each thread (-p) binds one hardware ring pair of the port. Rates are
// printed every report interval (-T), and a summary at the end (-n packets
// sent or received, -W exits rx after a second with no traffic, or SIGINT).
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <net/ethernet.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <unetmap/netmap.hpp>

#include "cli.h"

namespace {

enum class Func { kTx, kRx, kPing, kPong };

struct AddrRange {  // an IPv4 address and UDP port range, host order
  uint32_t ip0 = 0, ip1 = 0;
  uint16_t port0 = 0, port1 = 0;
};

struct Options {
  std::string ifname;
  Func func = Func::kRx;
  int len = 60;
  int virt_hdr = 0;    // -H: virtio-net header bytes before each frame (0, 10, 12)
  uint64_t count = 0;  // 0: forever
  int burst = 512;
  double rate = 0;  // packets per second, 0: unlimited
  int threads = 1;
  int wait_link = 2;
  int report_ms = 1000;
  int cpu = -1;
  bool rx_exit_idle = false;
  bool rand_src = false, rand_dst = false;
  uint8_t src_mac[6] = {0x00, 0x00, 0x00, 0x00, 0x00, 0x01};
  uint8_t dst_mac[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  AddrRange src{0x0a000001, 0x0a000001, 1234, 1234};
  AddrRange dst{0x0a010001, 0x0a010001, 4321, 4321};
};

struct alignas(64) ThreadStats {
  std::atomic<uint64_t> pkts{0}, bytes{0}, events{0};
  std::atomic<uint64_t> first_ns{0}, last_ns{0};  // rx: first and last packet
  std::atomic<uint64_t> rtt_ns_sum{0}, rtt_count{0}, rtt_min{UINT64_MAX}, rtt_max{0};
};

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop.store(true); }

[[noreturn]] void die(const char* fmt, const char* arg = "") {
  fprintf(stderr, "pkt-gen: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n");
  exit(1);
}

[[noreturn]] void usage(int code) {
  FILE* f = code ? stderr : stdout;
  fprintf(f,
          "usage: pkt-gen -i PORT [-f tx|rx|ping|pong] [options]\n"
          "  -i PORT      port name, e.g. netmap:p{0, netmap:p}0, null:x\n"
          "  -f FUNC      tx, rx (default), ping, pong\n"
          "  -l LEN       frame length in bytes, 60..65535 (default 60)\n"
          "  -H LEN       a virtio-net header of LEN bytes (0, 10, 12) before each frame,\n"
          "               zeroed; set on the port (NETMAP_REQ_PORT_HDR_SET: VALE ports)\n"
          "  -n COUNT     packets to send or receive, 0 = forever (default)\n"
          "  -b BURST     packets per batch (default 512)\n"
          "  -R RATE      transmit rate in packets per second (default: unlimited)\n"
          "  -p THREADS   threads, each on its own ring pair (default 1)\n"
          "  -a CPU       pin thread i to CPU+i\n"
          "  -w SECONDS   wait for the link before starting (default 2; NIC ports\n"
          "               only: pipes, VALE, null and pcap ports have none)\n"
          "  -T MS        report interval in milliseconds (default 1000)\n"
          "  -W           rx: exit after one second without traffic\n"
          "  -S MAC       source MAC (default 00:00:00:00:00:01)\n"
          "  -D MAC       destination MAC (default ff:ff:ff:ff:ff:ff)\n"
          "  -s IP[:PORT][-IP[:PORT]]  source address range (default 10.0.0.1:1234)\n"
          "  -d IP[:PORT][-IP[:PORT]]  destination range (default 10.1.0.1:4321)\n"
          "  -z / -Z      random source / destination address and port\n"
          "  -h           this help\n");
  exit(code);
}

long parse_long(const char* opt, const char* s, long lo, long hi) {
  char* end;
  errno = 0;
  long v = strtol(s, &end, 0);
  if (errno || *end || v < lo || v > hi) {
    fprintf(stderr, "pkt-gen: %s: '%s' is not a number in %ld..%ld\n", opt, s, lo, hi);
    exit(1);
  }
  return v;
}

void parse_mac(const char* opt, const char* s, uint8_t out[6]) {
  unsigned b[6];
  char tail;
  if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6) {
    fprintf(stderr, "pkt-gen: %s: '%s' is not a MAC address like 00:11:22:33:44:55\n", opt, s);
    exit(1);
  }
  for (int i = 0; i < 6; i++) {
    if (b[i] > 255) die("MAC byte out of range in '%s'", s);
    out[i] = uint8_t(b[i]);
  }
}

bool parse_ip_port(std::string s, uint32_t* ip, uint16_t* port) {
  size_t colon = s.find(':');
  if (colon != std::string::npos) {
    char* end;
    long p = strtol(s.c_str() + colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535) return false;
    *port = uint16_t(p);
    s.resize(colon);
  }
  in_addr a;
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return false;
  *ip = ntohl(a.s_addr);
  return true;
}

void parse_range(const char* opt, const char* s, AddrRange* r) {
  std::string str = s;
  size_t dash = str.find('-');
  AddrRange x = *r;
  bool ok = parse_ip_port(str.substr(0, dash), &x.ip0, &x.port0);
  x.ip1 = x.ip0, x.port1 = x.port0;
  if (ok && dash != std::string::npos) ok = parse_ip_port(str.substr(dash + 1), &x.ip1, &x.port1);
  if (!ok || x.ip1 < x.ip0 || x.port1 < x.port0) {
    fprintf(stderr, "pkt-gen: %s: '%s' is not IP[:PORT][-IP[:PORT]] with ascending ends\n", opt, s);
    exit(1);
  }
  *r = x;
}

Options parse_args(int argc, char** argv) {
  Options o;
  int c;
  while ((c = getopt(argc, argv, "i:f:l:n:b:R:p:a:w:T:WS:D:s:d:zZH:h")) != -1) {
    switch (c) {
      case 'i': o.ifname = optarg; break;
      case 'f': {
        std::string f = optarg;
        if (f == "tx") o.func = Func::kTx;
        else if (f == "rx") o.func = Func::kRx;
        else if (f == "ping") o.func = Func::kPing;
        else if (f == "pong") o.func = Func::kPong;
        else die("-f: unknown function '%s' (tx, rx, ping, pong)", optarg);
        break;
      }
      case 'l': o.len = int(parse_long("-l", optarg, 60, 65535)); break;
      case 'H':
        o.virt_hdr = int(parse_long("-H", optarg, 0, 12));
        if (o.virt_hdr != 0 && o.virt_hdr != 10 && o.virt_hdr != 12)
          die("-H: a virtio-net header is 0, 10 or 12 bytes, not '%s'", optarg);
        break;
      case 'n': o.count = uint64_t(parse_long("-n", optarg, 0, LONG_MAX)); break;
      case 'b': o.burst = int(parse_long("-b", optarg, 1, 65536)); break;
      case 'R': o.rate = double(parse_long("-R", optarg, 1, LONG_MAX)); break;
      case 'p': o.threads = int(parse_long("-p", optarg, 1, 64)); break;
      case 'a': o.cpu = int(parse_long("-a", optarg, 0, 4095)); break;
      case 'w': o.wait_link = int(parse_long("-w", optarg, 0, 3600)); break;
      case 'T': o.report_ms = int(parse_long("-T", optarg, 10, 3600000)); break;
      case 'W': o.rx_exit_idle = true; break;
      case 'S': parse_mac("-S", optarg, o.src_mac); break;
      case 'D': parse_mac("-D", optarg, o.dst_mac); break;
      case 's': parse_range("-s", optarg, &o.src); break;
      case 'd': parse_range("-d", optarg, &o.dst); break;
      case 'z': o.rand_src = true; break;
      case 'Z': o.rand_dst = true; break;
      case 'h':
        usage(0);
      default:
        usage(1);
    }
  }
  if (optind < argc) die("unexpected argument '%s' (see -h)", argv[optind]);
  if (o.ifname.empty()) die("missing -i PORT (see -h)");
  return o;
}

using unetmap::cli::now_ns;
uint16_t ip_checksum(const void* data, size_t len) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += uint32_t(p[i] << 8 | p[i + 1]);
  if (len & 1) sum += uint32_t(p[len - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(uint16_t(~sum));
}

// The template frame: Ethernet + IPv4 + UDP, payload filled with a pattern.
// The IPv4 header lies 2 bytes off a 4-byte boundary (after 14 bytes of
// Ethernet, and a virtio-net header with -H): it is read and written
// through an aligned copy.
struct Frame {
  std::vector<uint8_t> bytes;  // the virtio-net header (-H), then the frame
  size_t hdr = 0;
  ether_header* eth() { return reinterpret_cast<ether_header*>(bytes.data() + hdr); }
  uint8_t* ip_at() { return bytes.data() + hdr + sizeof(ether_header); }
  ip get_ip() {
    ip h;
    memcpy(&h, ip_at(), sizeof h);
    return h;
  }
  void put_ip(const ip& h) { memcpy(ip_at(), &h, sizeof h); }
  udphdr* udp() {
    return reinterpret_cast<udphdr*>(bytes.data() + hdr + sizeof(ether_header) + sizeof(ip));
  }
};

constexpr size_t kHeaders = sizeof(ether_header) + sizeof(ip) + sizeof(udphdr);

void set_addresses(Frame& f, uint32_t sip, uint16_t sport, uint32_t dip, uint16_t dport) {
  ip iph = f.get_ip();
  iph.ip_src.s_addr = htonl(sip);
  iph.ip_dst.s_addr = htonl(dip);
  iph.ip_sum = 0;
  iph.ip_sum = ip_checksum(&iph, sizeof(ip));
  f.put_ip(iph);
  f.udp()->uh_sport = htons(sport);
  f.udp()->uh_dport = htons(dport);
}

Frame make_frame(const Options& o) {
  Frame f;
  f.hdr = size_t(o.virt_hdr);
  f.bytes.assign(f.hdr + size_t(o.len), 0);
  ether_header* e = f.eth();
  memcpy(e->ether_shost, o.src_mac, 6);
  memcpy(e->ether_dhost, o.dst_mac, 6);
  e->ether_type = htons(ETHERTYPE_IP);
  ip iph{};
  iph.ip_v = 4;
  iph.ip_hl = 5;
  iph.ip_len = htons(uint16_t(o.len - sizeof(ether_header)));
  iph.ip_ttl = 64;
  iph.ip_p = IPPROTO_UDP;
  f.put_ip(iph);
  udphdr* u = f.udp();
  u->uh_ulen = htons(uint16_t(o.len - sizeof(ether_header) - sizeof(ip)));
  for (size_t i = f.hdr + kHeaders; i < f.bytes.size(); i++) f.bytes[i] = uint8_t('a' + (i - f.hdr) % 26);
  set_addresses(f, o.src.ip0, o.src.port0, o.dst.ip0, o.dst.port0);
  return f;
}

// Walks the -s/-d ranges (or random addresses with -z/-Z), one step per packet.
class AddrWalker {
 public:
  explicit AddrWalker(const Options& o) : o_(o), rnd_(uint32_t(now_ns())) {
    sip_ = o.src.ip0, dip_ = o.dst.ip0, sport_ = o.src.port0, dport_ = o.dst.port0;
  }
  bool varies() const {
    return o_.rand_src || o_.rand_dst || o_.src.ip0 != o_.src.ip1 ||
           o_.src.port0 != o_.src.port1 || o_.dst.ip0 != o_.dst.ip1 ||
           o_.dst.port0 != o_.dst.port1;
  }
  void step(Frame& f) {
    if (o_.rand_src) {
      sip_ = next_rand(), sport_ = uint16_t(next_rand());
    } else if (++sport_ > o_.src.port1 || sport_ < o_.src.port0) {
      sport_ = o_.src.port0;
      if (++sip_ > o_.src.ip1) sip_ = o_.src.ip0;
    }
    if (o_.rand_dst) {
      dip_ = next_rand(), dport_ = uint16_t(next_rand());
    } else if (++dport_ > o_.dst.port1 || dport_ < o_.dst.port0) {
      dport_ = o_.dst.port0;
      if (++dip_ > o_.dst.ip1) dip_ = o_.dst.ip0;
    }
    set_addresses(f, sip_, sport_, dip_, dport_);
  }

 private:
  uint32_t next_rand() {
    rnd_ ^= rnd_ << 13, rnd_ ^= rnd_ >> 17, rnd_ ^= rnd_ << 5;
    return rnd_;
  }
  const Options& o_;
  uint32_t rnd_, sip_, dip_;
  uint16_t sport_, dport_;
};

void pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % CPU_SETSIZE, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

// Copy a frame into a packet spanning as many slots as its length needs.
// Returns the slot after the packet.
uint32_t put_frame(unetmap::Ring& r, uint32_t i, const Frame& f, bool copy) {
  size_t off = 0, len = f.bytes.size(), bsz = r.buf_size();
  for (;;) {
    netmap_slot& s = r.slot(i);
    size_t chunk = len - off > bsz ? bsz : len - off;
    if (copy || (s.flags & NS_BUF_CHANGED)) memcpy(r.buf(s.buf_idx), f.bytes.data() + off, chunk);
    s.len = uint16_t(chunk);
    off += chunk;
    s.flags = off < len ? NS_MOREFRAG : 0;
    i = r.next(i);
    if (off == len) return i;
  }
}

void tx_loop(const Options& o, const unetmap::Port& port, ThreadStats& st, uint64_t quota) {
  Frame f = make_frame(o);
  AddrWalker walk(o);
  const bool varies = walk.varies();
  const uint32_t bsz = port.tx_ring(port.first_tx_ring()).buf_size();
  const uint32_t slots_per_pkt = uint32_t((f.bytes.size() + bsz - 1) / bsz);
  // Fill every buffer once; afterwards only buffers that changed (pipes
  // swap them) or packets whose addresses vary are written again.
  for (unsigned ri = port.first_tx_ring(); ri <= port.last_tx_ring(); ri++) {
    unetmap::Ring r = port.tx_ring(ri);
    for (uint32_t i = 0; i < r.num_slots(); i++) {
      netmap_slot& s = r.slot(i);
      memcpy(r.buf(s.buf_idx), f.bytes.data(), std::min<size_t>(f.bytes.size(), bsz));
    }
  }
  uint64_t sent = 0;
  const uint64_t t0 = now_ns();
  while (!g_stop.load(std::memory_order_relaxed) && (quota == 0 || sent < quota)) {
    if (port.poll(POLLOUT, 1000) < 0 && errno != EINTR) die("poll: %s", strerror(errno));
    uint64_t allowed = UINT64_MAX;
    if (o.rate > 0) {
      double due = o.rate * double(now_ns() - t0) / 1e9;
      allowed = due > double(sent) ? uint64_t(due - double(sent)) : 0;
      if (allowed == 0) {
        timespec ts{0, 50000};
        nanosleep(&ts, nullptr);
        continue;
      }
    }
    uint64_t bytes = 0, batch_pkts = 0;
    for (unsigned ri = port.first_tx_ring(); ri <= port.last_tx_ring(); ri++) {
      unetmap::Ring r = port.tx_ring(ri);
      uint64_t n = r.space() / slots_per_pkt;
      if (n > uint64_t(o.burst)) n = uint64_t(o.burst);
      if (quota && n > quota - sent - batch_pkts) n = quota - sent - batch_pkts;
      if (n > allowed - batch_pkts) n = allowed - batch_pkts;
      uint32_t cur = r.cur();
      for (uint64_t k = 0; k < n; k++) {
        if (varies) walk.step(f);
        cur = put_frame(r, cur, f, varies || slots_per_pkt > 1);
      }
      r.release_to(cur);
      batch_pkts += n;
      bytes += n * f.bytes.size();
    }
    if (batch_pkts) {
      sent += batch_pkts;
      st.pkts.fetch_add(batch_pkts, std::memory_order_relaxed);
      st.bytes.fetch_add(bytes, std::memory_order_relaxed);
      st.events.fetch_add(1, std::memory_order_relaxed);
    }
  }
  // Push out what is still on the rings.
  port.txsync();
}

void rx_loop(const Options& o, const unetmap::Port& port, ThreadStats& st, uint64_t quota) {
  uint64_t got = 0;
  uint64_t idle_since = now_ns();
  while (!g_stop.load(std::memory_order_relaxed) && (quota == 0 || got < quota)) {
    int r = port.poll(POLLIN, 200);
    if (r < 0 && errno != EINTR) die("poll: %s", strerror(errno));
    uint64_t pkts = 0, bytes = 0;
    for (unsigned ri = port.first_rx_ring(); ri <= port.last_rx_ring(); ri++) {
      unetmap::Ring ring = port.rx_ring(ri);
      uint32_t cur = ring.cur(), tail = ring.tail();
      for (; cur != tail; cur = ring.next(cur)) {
        const netmap_slot& s = ring.slot(cur);
        bytes += s.len;
        if (!(s.flags & NS_MOREFRAG)) pkts++;
      }
      ring.release_to(cur);
    }
    if (pkts) {
      got += pkts;
      uint64_t t = now_ns();
      if (st.first_ns.load(std::memory_order_relaxed) == 0) st.first_ns.store(t);
      st.last_ns.store(t, std::memory_order_relaxed);
      st.pkts.fetch_add(pkts, std::memory_order_relaxed);
      st.bytes.fetch_add(bytes, std::memory_order_relaxed);
      st.events.fetch_add(1, std::memory_order_relaxed);
      idle_since = now_ns();
    } else if (o.rx_exit_idle && got > 0 && now_ns() - idle_since > 1000000000ull) {
      break;
    }
  }
  port.rxsync();  // release the last slots
}

// ping: one packet at a time carrying a sequence number and the send time;
// pong sends it back; ping measures the round trip.
struct PingPayload {
  uint32_t magic;
  uint32_t seq;
  uint64_t ts;
};
constexpr uint32_t kPingMagic = 0x706e6730;

void ping_loop(const Options& o, const unetmap::Port& port, ThreadStats& st, uint64_t quota) {
  Frame f = make_frame(o);
  uint32_t seq = 0;
  while (!g_stop.load() && (quota == 0 || seq < quota)) {
    PingPayload pl{kPingMagic, seq, now_ns()};
    memcpy(f.bytes.data() + f.hdr + kHeaders, &pl, sizeof pl);
    if (!port.inject({f.bytes.data(), f.bytes.size()})) {
      port.poll(POLLOUT, 1000);
      continue;
    }
    port.txsync();
    uint64_t deadline = now_ns() + 1000000000ull;
    bool answered = false;
    while (!answered && !g_stop.load() && now_ns() < deadline) {
      port.poll(POLLIN, 100);
      for (unsigned ri = port.first_rx_ring(); ri <= port.last_rx_ring(); ri++) {
        unetmap::Ring r = port.rx_ring(ri);
        while (!r.empty()) {
          const netmap_slot& s = r.slot(r.cur());
          PingPayload got{};
          const size_t at = size_t(o.virt_hdr) + kHeaders;
          if (s.len >= at + sizeof got) memcpy(&got, r.buf(s.buf_idx) + at, sizeof got);
          r.advance();
          if (got.magic != kPingMagic || got.seq != seq) continue;
          uint64_t rtt = now_ns() - got.ts;
          st.rtt_ns_sum += rtt;
          st.rtt_count++;
          if (rtt < st.rtt_min) st.rtt_min = rtt;
          if (rtt > st.rtt_max) st.rtt_max = rtt;
          st.pkts++;
          st.bytes += s.len;
          answered = true;
        }
      }
    }
    seq++;
  }
}

void pong_loop(const Options& o, const unetmap::Port& port, ThreadStats& st, uint64_t quota) {
  uint64_t done = 0;
  while (!g_stop.load() && (quota == 0 || done < quota)) {
    port.poll(POLLIN, 200);
    for (unsigned ri = port.first_rx_ring(); ri <= port.last_rx_ring(); ri++) {
      unetmap::Ring rx = port.rx_ring(ri);
      unetmap::Ring tx = port.tx_ring(ri <= port.last_tx_ring() ? ri : port.first_tx_ring());
      uint32_t n = rx.space() < tx.space() ? rx.space() : tx.space();
      for (uint32_t k = 0; k < n; k++) {
        netmap_slot& rs = rx.slot(rx.cur());
        netmap_slot& ts = tx.slot(tx.cur());
        // Same region: swap buffers (zero copy), as netmap's pong does.
        std::swap(rs.buf_idx, ts.buf_idx);
        ts.len = rs.len;
        ts.flags = NS_BUF_CHANGED | (rs.flags & NS_MOREFRAG);
        rs.flags |= NS_BUF_CHANGED;
        uint8_t* p = tx.buf(ts.buf_idx) + o.virt_hdr;
        if (ts.len >= o.virt_hdr + 12) {  // swap MAC addresses
          uint8_t tmp[6];
          memcpy(tmp, p, 6), memcpy(p, p + 6, 6), memcpy(p + 6, tmp, 6);
        }
        st.bytes += ts.len;
        rx.advance();
        tx.advance();
      }
      if (n) {
        st.pkts += n;
        done += n;
        port.txsync();
      }
    }
  }
}

std::string human(double v) {
  char b[32];
  if (v >= 1e9) snprintf(b, sizeof b, "%.3f G", v / 1e9);
  else if (v >= 1e6) snprintf(b, sizeof b, "%.3f M", v / 1e6);
  else if (v >= 1e3) snprintf(b, sizeof b, "%.3f K", v / 1e3);
  else snprintf(b, sizeof b, "%.3f ", v);
  return b;
}

// -H: the port's virtio-net header length, as netmap's pkt-gen sets it.
void set_virt_hdr(std::string name, int len) {
  if (name.rfind("netmap:", 0) == 0) name = name.substr(7);
  name = name.substr(0, name.find_first_of("/@"));
  const int fd = open("/dev/netmap", O_RDWR | O_CLOEXEC);
  nmreq_port_hdr ph{};
  ph.nr_hdr_len = uint32_t(len);
  nmreq_header h{};
  h.nr_version = NETMAP_API;
  h.nr_reqtype = NETMAP_REQ_PORT_HDR_SET;
  snprintf(h.nr_name, sizeof h.nr_name, "%s", name.c_str());
  h.nr_body = uintptr_t(&ph);
  if (fd < 0 || ioctl(fd, NIOCCTRL, &h) != 0)
    die("-H: cannot set the virtio-net header length of %s (a VALE port takes one)", name.c_str());
  close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  std::vector<unetmap::Port> ports;
  for (int t = 0; t < o.threads; t++) {
    std::string err;
    unetmap::Port p = unetmap::Port::open(o.ifname, &err, o.threads > 1 ? t : -1);
    if (!p) {
      fprintf(stderr, "pkt-gen: cannot open %s%s: %s\n", o.ifname.c_str(),
              o.threads > 1 ? (" ring " + std::to_string(t)).c_str() : "", err.c_str());
      return 1;
    }
    ports.push_back(std::move(p));
  }
  if (o.virt_hdr) set_virt_hdr(o.ifname, o.virt_hdr);
  const nmreq_register& reg = ports[0].reg();
  fprintf(stderr, "pkt-gen: %s: %u tx / %u rx rings of %u / %u slots, region %u, %d thread%s\n",
          o.ifname.c_str(), reg.nr_tx_rings, reg.nr_rx_rings, reg.nr_tx_slots, reg.nr_rx_slots,
          reg.nr_mem_id, o.threads, o.threads > 1 ? "s" : "");
  if (o.func == Func::kTx && o.len > int(reg.nr_tx_slots) * 2048)
    die("-l: frame does not fit in a ring");
  if (o.wait_link > 0 && unetmap::cli::port_has_link(o.ifname)) {
    fprintf(stderr, "pkt-gen: waiting %d s for the link\n", o.wait_link);
    sleep(unsigned(o.wait_link));
  }

  std::vector<ThreadStats> stats(size_t(o.threads));
  std::atomic<int> running{o.threads};
  std::vector<std::thread> workers;
  const uint64_t t0 = now_ns();
  for (int t = 0; t < o.threads; t++) {
    uint64_t quota = o.count ? o.count / uint64_t(o.threads) + (uint64_t(t) < o.count % uint64_t(o.threads)) : 0;
    workers.emplace_back([&, t, quota] {
      pin(o.cpu < 0 ? -1 : o.cpu + t);
      const unetmap::Port& p = ports[size_t(t)];
      switch (o.func) {
        case Func::kTx: tx_loop(o, p, stats[size_t(t)], quota); break;
        case Func::kRx: rx_loop(o, p, stats[size_t(t)], quota); break;
        case Func::kPing: ping_loop(o, p, stats[size_t(t)], quota); break;
        case Func::kPong: pong_loop(o, p, stats[size_t(t)], quota); break;
      }
      running--;
    });
  }

  uint64_t prev_pkts = 0, prev_bytes = 0, prev_t = t0;
  while (running.load() > 0) {
    for (int slept = 0; slept < o.report_ms && running.load() > 0; slept += 10) usleep(10000);
    uint64_t pkts = 0, bytes = 0, rtt_sum = 0, rtt_n = 0;
    for (auto& s : stats) {
      pkts += s.pkts.load(), bytes += s.bytes.load();
      rtt_sum += s.rtt_ns_sum.load(), rtt_n += s.rtt_count.load();
    }
    uint64_t now = now_ns();
    double dt = double(now - prev_t) / 1e9;
    if (dt <= 0) continue;
    double pps = double(pkts - prev_pkts) / dt, bps = double(bytes - prev_bytes) * 8 / dt;
    if (o.func == Func::kPing && rtt_n)
      printf("%spps %sbps  rtt avg %.1f us (%" PRIu64 " replies)\n", human(pps).c_str(),
             human(bps).c_str(), double(rtt_sum) / double(rtt_n) / 1e3, rtt_n);
    else
      printf("%spps %sbps (%" PRIu64 " pkts in %.3f s)\n", human(pps).c_str(), human(bps).c_str(),
             pkts - prev_pkts, dt);
    fflush(stdout);
    prev_pkts = pkts, prev_bytes = bytes, prev_t = now;
  }
  for (auto& w : workers) w.join();

  uint64_t pkts = 0, bytes = 0, events = 0, rtt_sum = 0, rtt_n = 0, rtt_min = UINT64_MAX, rtt_max = 0;
  for (auto& s : stats) {
    pkts += s.pkts, bytes += s.bytes, events += s.events;
    rtt_sum += s.rtt_ns_sum, rtt_n += s.rtt_count;
    if (s.rtt_min < rtt_min) rtt_min = s.rtt_min;
    if (s.rtt_max > rtt_max) rtt_max = s.rtt_max;
  }
  // The active period: for rx from the first to the last packet received.
  double secs = double(now_ns() - t0) / 1e9;
  if (o.func == Func::kRx) {
    uint64_t first = UINT64_MAX, last = 0;
    for (auto& s : stats)
      if (s.first_ns) first = std::min<uint64_t>(first, s.first_ns), last = std::max<uint64_t>(last, s.last_ns);
    if (last > first) secs = double(last - first) / 1e9;
  }
  const char* verb = o.func == Func::kTx ? "Sent" : o.func == Func::kRx ? "Received" : "Exchanged";
  printf("%s %" PRIu64 " packets %" PRIu64 " bytes %" PRIu64 " events %d bytes each in %.2f seconds.\n",
         verb, pkts, bytes, events, o.len, secs);
  double pps = secs > 0 ? double(pkts) / secs : 0;
  printf("Speed: %spps Bandwidth: %sbps (raw %sbps). Average batch: %.2f pkts\n", human(pps).c_str(),
         human(secs > 0 ? double(bytes) * 8 / secs : 0).c_str(),
         human(secs > 0 ? double(bytes + pkts * 24) * 8 / secs : 0).c_str(),
         events ? double(pkts) / double(events) : 0.0);
  if (rtt_n)
    printf("RTT: min %.1f us avg %.1f us max %.1f us over %" PRIu64 " round trips\n", double(rtt_min) / 1e3,
           double(rtt_sum) / double(rtt_n) / 1e3, double(rtt_max) / 1e3, rtt_n);
  printf("summary: func=%s packets=%" PRIu64 " bytes=%" PRIu64 " seconds=%.3f mpps=%.3f\n",
         o.func == Func::kTx ? "tx" : o.func == Func::kRx ? "rx" : o.func == Func::kPing ? "ping" : "pong",
         pkts, bytes, secs, pps / 1e6);
  return 0;
}
