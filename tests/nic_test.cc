// NIC ports on real interfaces: each test makes two network namespaces
// joined by a veth pair (removed when it ends), and runs the two ends in
// child processes that entered them. Packets are checked one by one (our
// own ethertype, a sequence number), on both backends; the host rings are
// checked against the real host stack of the namespace (ARP, UDP sockets);
// and a process killed while it holds the interface must leave it working.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <sched.h>
#include <sys/socket.h>

#include <atomic>
#include <fstream>
#include <thread>
#include <sstream>
#include <string>

#include "core/registry.h"
#include "core/worker.h"
#include "ports/nic/nic.h"
#include "ports/vale/vale.h"
#include "unetmap/netmap.hpp"
#include "util/proc.h"
#include "util/test_util.h"

using nmtest::Child;
using nmtest::Event;
using nmtest::now_ms;
using nmtest::Proc;

namespace {

constexpr uint16_t kEtherType = 0x88b5;  // IEEE local experimental

int sh(const std::string& cmd) {
  int rc = system((cmd + " >/dev/null 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string sh_out(const std::string& cmd) {
  std::string out;
  if (FILE* f = popen(cmd.c_str(), "r")) {
    char buf[512];
    while (fgets(buf, sizeof buf, f)) out += buf;
    pclose(f);
  }
  return out;
}

// Two namespaces joined by a veth pair: interface `ia` in `a`, `ib` in `b`,
// addresses 10.77.0.1 and 10.77.0.2, IPv6 off (no stray packets).
struct Veth {
  std::string a, b, ia, ib;
  bool ok = false;
  explicit Veth(int queues = 1) {
    std::string tag = std::to_string(getpid() % 1000000);
    a = "unmA" + tag, b = "unmB" + tag, ia = "na" + tag, ib = "nb" + tag;
    std::string q = " numtxqueues " + std::to_string(queues) + " numrxqueues " + std::to_string(queues);
    ok = sh("ip netns add " + a) == 0 && sh("ip netns add " + b) == 0 &&
         sh("ip -n " + a + " link set lo up") == 0 && sh("ip -n " + b + " link set lo up") == 0 &&
         sh("ip netns exec " + a + " sysctl -w net.ipv6.conf.all.disable_ipv6=1") == 0 &&
         sh("ip netns exec " + b + " sysctl -w net.ipv6.conf.all.disable_ipv6=1") == 0 &&
         sh("ip netns exec " + a + " sysctl -w net.ipv6.conf.default.disable_ipv6=1") == 0 &&
         sh("ip netns exec " + b + " sysctl -w net.ipv6.conf.default.disable_ipv6=1") == 0 &&
         sh("ip link add " + ia + " netns " + a + q + " type veth peer name " + ib + " netns " + b + q) == 0 &&
         sh("ip -n " + a + " addr add 10.77.0.1/24 dev " + ia) == 0 &&
         sh("ip -n " + b + " addr add 10.77.0.2/24 dev " + ib) == 0 &&
         sh("ip -n " + a + " link set " + ia + " up") == 0 &&
         sh("ip -n " + b + " link set " + ib + " up") == 0;
  }
  ~Veth() {
    // Whatever still runs in them (a NIC helper of a failed test) goes too.
    for (const std::string& ns : {a, b}) {
      std::istringstream pids(sh_out("ip netns pids " + ns + " 2>/dev/null"));
      for (int pid; pids >> pid;) kill(pid, SIGKILL);
    }
    sh("ip netns del " + a);
    sh("ip netns del " + b);
  }
  static bool enter(const std::string& ns) {
    int fd = open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    bool r = fd >= 0 && setns(fd, CLONE_NEWNET) == 0;
    if (fd >= 0) close(fd);
    return r;
  }
  std::string link(const std::string& ns, const std::string& ifname) const {
    return sh_out("ip -n " + ns + " -d link show " + ifname);
  }
};

#define NEED_VETH(v)                                                        \
  do {                                                                      \
    if (geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)"; \
    ASSERT_TRUE((v).ok) << "cannot make the namespaces and veth pair";       \
  } while (0)

// Our test frame: broadcast, ethertype kEtherType, then tag and sequence.
size_t make_frame(uint8_t* p, uint32_t tag, uint32_t seq, size_t len = 60) {
  memset(p, 0, len);
  memset(p, 0xff, 6);
  const uint8_t src[6] = {0x02, 0, 0, 0, 0, 0x0b};
  memcpy(p + 6, src, 6);
  p[12] = kEtherType >> 8, p[13] = kEtherType & 0xff;
  memcpy(p + 14, &tag, 4);
  memcpy(p + 18, &seq, 4);
  for (size_t i = 22; i < len; i++) p[i] = uint8_t(seq + i);
  return len;
}

bool is_ours(const uint8_t* p, size_t len, uint32_t* tag, uint32_t* seq) {
  if (len < 22 || p[12] != (kEtherType >> 8) || p[13] != (kEtherType & 0xff)) return false;
  memcpy(tag, p + 14, 4);
  memcpy(seq, p + 18, 4);
  for (size_t i = 22; i < len; i++)
    if (p[i] != uint8_t(*seq + i)) return false;
  return true;
}

struct RxResult {
  uint32_t got[4] = {0, 0, 0, 0};  // frames of ours, in order, per tag
  uint32_t bad = 0;                // ours but out of order or corrupt
  uint32_t foreign = 0;            // not ours
};

// Receive frames of ours (tag < 4) until `want` of them arrived or the
// deadline; signal `progress` after every `step` of them.
RxResult receive(unetmap::Port& p, uint32_t want, const Event* progress, uint32_t step,
                 int timeout_ms) {
  RxResult r;
  uint32_t next[4] = {0, 0, 0, 0}, total = 0;
  const double end = now_ms() + timeout_ms;
  while (total < want && now_ms() < end) {
    p.poll(POLLIN, 50);
    for (unsigned i = p.first_rx_ring(); i <= p.last_rx_ring(); i++) {
      unetmap::Ring ring = p.rx_ring(i);
      while (!ring.empty()) {
        const netmap_slot& s = ring.slot(ring.cur());
        uint32_t tag, seq;
        if (!is_ours(ring.buf(s.buf_idx), s.len, &tag, &seq)) {
          const uint8_t* f = ring.buf(s.buf_idx);
          if (getenv("NICTEST_DEBUG"))
            fprintf(stderr, "foreign frame: len %u type %02x%02x dst %02x:%02x:%02x:%02x:%02x:%02x\n",
                    s.len, f[12], f[13], f[38], f[39], f[40], f[41], f[28], f[29]);
          r.foreign++;
        } else if (tag >= 4 || seq != next[tag]) {
          r.bad++;
        } else {
          next[tag]++;
          r.got[tag]++;
          if (++total % step == 0 && progress) progress->signal();
        }
        ring.advance();
      }
    }
  }
  return r;
}

// Put `count` frames of `tag` on tx ring `ring_i`, in bursts of `step`,
// each after the receiver acknowledged the previous one (so no ring on the
// way overflows). False if the receiver stopped acknowledging.
bool send_paced(unetmap::Port& p, unsigned ring_i, uint32_t tag, uint32_t count, uint32_t step,
                const Event& progress) {
  unetmap::Ring ring = p.tx_ring(ring_i);
  for (uint32_t seq = 0; seq < count;) {
    for (uint32_t i = 0; i < step && seq < count; i++, seq++) {
      netmap_slot& s = ring.slot(ring.cur());
      s.len = uint16_t(make_frame(ring.buf(s.buf_idx), tag, seq));
      ring.advance();
    }
    if (p.txsync() < 0 || progress.wait(5000) < 0) return false;
  }
  return true;
}

// One end in namespace ns, with UNETMAP_NIC=backend (nullptr: default).
Child in_ns(const std::string& ns, const char* backend, const std::function<int()>& body) {
  return Child([ns, backend, body] {
    if (!Veth::enter(ns)) return 90;
    if (backend) setenv("UNETMAP_NIC", backend, 1);
    return body();
  });
}

// A receiving end: a child in namespace ns (this one if ns is empty) that
// opens spec, says it is ready, receives `count` frames of ours (every
// `step` of them acknowledged on `progress` when ack is set), and reports
// what it got.
class Receiver {
 public:
  // False if the port was not open in time.
  bool start(const std::string& ns, const char* backend, const std::string& spec,
             uint32_t count, uint32_t step, bool ack = true) {
    child_ = Child([=, this] {
      if (!ns.empty() && !Veth::enter(ns)) return 90;
      if (backend) setenv("UNETMAP_NIC", backend, 1);
      std::string err;
      auto p = unetmap::Port::open(spec, &err);
      if (!p) {
        fprintf(stderr, "open %s: %s\n", spec.c_str(), err.c_str());
        return 2;
      }
      ready_.signal();
      result_.send(receive(p, count, ack ? &progress : nullptr, step, 20000));
      return 0;
    });
    return ready_.wait(10000) == 'x';
  }
  bool result(RxResult* r) { return result_.recv(r, 30000); }
  int wait() { return child_.wait(10000); }
  Event progress;

 private:
  Event ready_, result_;
  Child child_;
};

// count frames sent on port (a VALE port of this process, on the switch v.ia
// is attached to) reach netmap:ib in v.b, every `step` acknowledged.
void expect_reaches_wire(unetmap::Port& port, const Veth& v, uint32_t count, uint32_t step) {
  Receiver wire;
  ASSERT_TRUE(wire.start(v.b, nullptr, "netmap:" + v.ib, count, step));
  EXPECT_TRUE(send_paced(port, 0, 0, count, step, wire.progress));
  RxResult r;
  ASSERT_TRUE(wire.result(&r));
  EXPECT_EQ(r.got[0], count);
  EXPECT_EQ(wire.wait(), 0);
}

// vale-ctl run in namespace ns; its exit status (output in *out).
int vale_ctl_in(const std::string& ns, const std::vector<std::string>& args, std::string* out) {
  std::vector<std::string> a = {VALE_CTL};
  a.insert(a.end(), args.begin(), args.end());
  Proc p(a, [&] {
    if (!Veth::enter(ns)) _exit(90);
  });
  int rc = p.finish(20000);
  *out = p.out() + p.err();
  return rc;
}

// The backend recorded in the registry for NIC port `name` (nic::Backend:
// 1 AF_XDP, 2 AF_PACKET).
int backend_of(const std::string& name) {
  int err = 0;
  unetmap::Registry* reg = unetmap::Registry::get(&err);
  if (!reg) return -1;
  unetmap::LockGuard g(reg->lock());
  int p = reg->find_port(name.c_str());
  return p < 0 ? -1 : int(unetmap::nic::port_backend(reg->port(p)));
}

class NicBackend : public ::testing::TestWithParam<const char*> {
 protected:
  int expected_backend() const { return strcmp(GetParam(), "xdp") == 0 ? 1 : 2; }
};

// Frames sent through netmap:ib arrive through netmap:ia, whole and in
// order, on the backend asked for.
TEST_P(NicBackend, SendReceive) {
  Veth v;
  NEED_VETH(v);
  const uint32_t kCount = 3000, kStep = 100;
  Receiver rx;
  ASSERT_TRUE(rx.start(v.a, GetParam(), "netmap:" + v.ia, kCount, kStep));
  EXPECT_EQ(backend_of(v.ia), expected_backend());
  std::string info;
  EXPECT_EQ(vale_ctl_in(v.a, {"-g", v.ia}, &info), 0) << info;
  EXPECT_NE(info.find(expected_backend() == 1 ? "backend AF_XDP" : "backend AF_PACKET"),
            std::string::npos) << info;
  Child tx = in_ns(v.b, GetParam(), [&] {
    auto p = unetmap::Port::open("netmap:" + v.ib);
    return p && send_paced(p, 0, 0, kCount, kStep, rx.progress) ? 0 : 3;
  });
  RxResult r;
  ASSERT_TRUE(rx.result(&r));
  EXPECT_EQ(r.got[0], kCount);
  EXPECT_EQ(r.bad, 0u);
  EXPECT_EQ(tx.wait(10000), 0);
  EXPECT_EQ(rx.wait(), 0);
}

// Odd lengths an application may put on a NIC tx ring (0, 1, shorter than
// an Ethernet header, a whole buffer: longer than the MTU) are dropped or
// sent as the kernel sees fit, never wedge the ring: frames after them,
// many rings' worth, still arrive.
TEST_P(NicBackend, OddTxLengthsDoNotWedgeTheRing) {
  Veth v;
  NEED_VETH(v);
  const uint32_t kCount = 10000, kStep = 100;  // more than the AF_XDP socket's tx frames
  Receiver rx;
  ASSERT_TRUE(rx.start(v.a, GetParam(), "netmap:" + v.ia, kCount, kStep));
  Child tx = in_ns(v.b, GetParam(), [&] {
    auto p = unetmap::Port::open("netmap:" + v.ib);
    if (!p) return 2;
    unetmap::Ring ring = p.tx_ring(0);
    for (int round = 0; round < 20; round++) {  // 20 x 4 odd frames
      for (uint16_t len : {uint16_t(0), uint16_t(1), uint16_t(13), uint16_t(ring.buf_size())}) {
        netmap_slot& sl = ring.slot(ring.cur());
        memset(ring.buf(sl.buf_idx), 0xee, ring.buf_size());
        sl.len = len;
        ring.advance();
      }
      if (p.txsync() < 0) return 3;
    }
    return send_paced(p, 0, 0, kCount, kStep, rx.progress) ? 0 : 4;
  });
  RxResult r;
  ASSERT_TRUE(rx.result(&r));
  EXPECT_EQ(r.got[0], kCount);
  EXPECT_EQ(r.bad, 0u);
  EXPECT_EQ(tx.wait(10000), 0);
  EXPECT_EQ(rx.wait(), 0);
}

// A 60-byte frame from 10.77.0.2:5555 to 10.77.0.1:7777 carrying
// "hello", to mac, put on ring r (the caller syncs).
void put_udp_hello(unetmap::Ring& r, const uint8_t mac[6]) {
  alignas(4) uint8_t raw[66] = {};
  uint8_t* frame = raw + 2;  // the IP header 4-aligned
  memcpy(frame, mac, 6);
  memcpy(frame + 6, "\x02\x00\x00\x00\x00\x0b", 6);
  frame[12] = 0x08;
  auto* ip = reinterpret_cast<iphdr*>(frame + 14);
  ip->version = 4, ip->ihl = 5, ip->ttl = 64, ip->protocol = IPPROTO_UDP;
  ip->tot_len = htons(20 + 8 + 5);
  ip->saddr = inet_addr("10.77.0.2"), ip->daddr = inet_addr("10.77.0.1");
  uint32_t sum = 0;
  for (int i = 0; i < 10; i++) sum += reinterpret_cast<uint16_t*>(ip)[i];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  ip->check = uint16_t(~sum);
  auto* udp = reinterpret_cast<udphdr*>(frame + 34);
  udp->source = htons(5555), udp->dest = htons(7777), udp->len = htons(8 + 5);
  memcpy(frame + 42, "hello", 5);  // checksum 0: none, valid for IPv4
  netmap_slot& s = r.slot(r.cur());
  memcpy(r.buf(s.buf_idx), frame, 60);
  s.len = 60;
  r.advance();
}

// Host rings: what the namespace's stack sends on ia (here the ARP request
// for a neighbour) arrives on the host rx ring and not on the wire; a UDP
// datagram put on the host tx ring reaches a socket of the stack as if
// received on ia.
TEST_P(NicBackend, HostRings) {
  Veth v;
  NEED_VETH(v);
  Event ready, finished, released;
  // The wire: ib must see none of ia's host traffic while the rings are
  // held (the stack retries its ARP request after they are let go).
  Child wire = in_ns(v.b, GetParam(), [&] {
    auto p = unetmap::Port::open("netmap:" + v.ib);
    if (!p) return 2;
    ready.signal();
    uint32_t foreign = 0;
    const double end = now_ms() + 15000;
    while (finished.wait(0) < 0 && now_ms() < end) foreign += receive(p, 1, nullptr, 1, 50).foreign;
    foreign += receive(p, 1, nullptr, 1, 0).foreign;
    released.signal();
    return foreign == 0 ? 0 : 5;  // an ARP request from a would be foreign
  });
  ASSERT_EQ(ready.wait(10000), 'x');
  Child host = in_ns(v.a, GetParam(), [&] {
    std::string err;
    auto p = unetmap::Port::open("netmap:" + v.ia + "^", &err);
    if (!p) {
      fprintf(stderr, "open: %s\n", err.c_str());
      return 2;
    }
    // 1. The stack resolves 10.77.0.9: its ARP request comes to us.
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in dst{AF_INET, htons(9), {inet_addr("10.77.0.9")}, {}};
    if (sendto(u, "x", 1, 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 1) return 3;
    bool arp = false;
    const double end = now_ms() + 5000;
    unetmap::Ring hrx = p.rx_ring(p.last_rx_ring());
    while (!arp && now_ms() < end) {
      p.poll(POLLIN, 100);
      for (; !hrx.empty(); hrx.advance()) {
        const netmap_slot& s = hrx.slot(hrx.cur());
        const uint8_t* f = hrx.buf(s.buf_idx);
        arp |= s.len >= 42 && f[12] == 0x08 && f[13] == 0x06 && !memcmp(f + 38, "\x0a\x4d\x00\x09", 4);
      }
    }
    if (!arp) return 4;
    // 2. A datagram from 10.77.0.2 to our UDP socket, injected on host tx.
    int r = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in me{AF_INET, htons(7777), {inet_addr("10.77.0.1")}, {}};
    if (bind(r, reinterpret_cast<sockaddr*>(&me), sizeof me)) return 6;
    uint8_t mac[6];
    {
      ifreq ifr{};
      snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", v.ia.c_str());
      if (ioctl(u, SIOCGIFHWADDR, &ifr)) return 7;
      memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    }
    unetmap::Ring htx = p.tx_ring(p.last_tx_ring());
    put_udp_hello(htx, mac);
    p.txsync();
    pollfd pf{r, POLLIN, 0};
    char got[16] = {};
    if (poll(&pf, 1, 5000) != 1 || recv(r, got, sizeof got, 0) != 5 || memcmp(got, "hello", 5)) return 8;
    finished.signal();
    return released.wait(10000) == 'x' ? 0 : 9;
  });
  EXPECT_EQ(host.wait(15000), 0);
  EXPECT_EQ(wire.wait(15000), 0);
}

// Several host rings (netmap's nr_host_tx_rings/nr_host_rx_rings): the
// counts asked for at the first register are made; the stack's flows are
// spread over the host rx rings and every one arrives on one of them; a
// datagram put on any host tx ring reaches the stack; more host rings than
// the ring table holds is EINVAL.
TEST(Nic, SeveralHostRings) {
  Veth v;
  NEED_VETH(v);
  ASSERT_EQ(sh("ip -n " + v.a + " neigh add 10.77.0.9 lladdr 02:00:00:00:00:09 dev " + v.ia), 0);
  Child host = in_ns(v.a, nullptr, [&] {
    std::string err;
    if (unetmap::Port::open("netmap:" + v.ia + "^@conf:host_rings=65", &err)) return 2;
    auto p = unetmap::Port::open("netmap:" + v.ia + "^@conf:host_tx_rings=3,host_rx_rings=2", &err);
    if (!p) {
      fprintf(stderr, "open: %s\n", err.c_str());
      return 3;
    }
    if (p.last_tx_ring() - p.first_tx_ring() != 2 || p.last_rx_ring() - p.first_rx_ring() != 1) {
      fprintf(stderr, "host rings tx %u-%u rx %u-%u\n", p.first_tx_ring(), p.last_tx_ring(),
              p.first_rx_ring(), p.last_rx_ring());
      return 4;
    }
    // 1. 64 flows from the stack: all arrive, on both host rx rings.
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    constexpr int kFlows = 64;
    for (int i = 0; i < kFlows; i++) {
      sockaddr_in src{AF_INET, htons(uint16_t(20000 + i)), {inet_addr("10.77.0.1")}, {}};
      int s = socket(AF_INET, SOCK_DGRAM, 0);
      sockaddr_in dst{AF_INET, htons(9), {inet_addr("10.77.0.9")}, {}};
      if (bind(s, reinterpret_cast<sockaddr*>(&src), sizeof src) ||
          sendto(s, "flow", 4, 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 4)
        return 5;
      close(s);
    }
    uint32_t got[2] = {0, 0};
    const double end = now_ms() + 5000;
    while (got[0] + got[1] < kFlows && now_ms() < end) {
      p.poll(POLLIN, 100);
      for (uint32_t i = 0; i < 2; i++)
        for (unetmap::Ring r = p.rx_ring(p.first_rx_ring() + i); !r.empty(); r.advance()) {
          const netmap_slot& s = r.slot(r.cur());
          const uint8_t* f = r.buf(s.buf_idx);
          got[i] += s.len >= 46 && f[23] == IPPROTO_UDP && !memcmp(f + 42, "flow", 4);
        }
    }
    if (got[0] + got[1] != kFlows || !got[0] || !got[1]) {
      fprintf(stderr, "host rx rings got %u and %u of %d flows\n", got[0], got[1], kFlows);
      return 6;
    }
    // 2. A datagram on each host tx ring reaches the stack.
    int r = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in me{AF_INET, htons(7777), {inet_addr("10.77.0.1")}, {}};
    if (bind(r, reinterpret_cast<sockaddr*>(&me), sizeof me)) return 7;
    uint8_t mac[6];
    ifreq ifr{};
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", v.ia.c_str());
    if (ioctl(u, SIOCGIFHWADDR, &ifr)) return 8;
    memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    for (uint32_t i = p.first_tx_ring(); i <= p.last_tx_ring(); i++) {
      unetmap::Ring htx = p.tx_ring(i);
      put_udp_hello(htx, mac);
      p.txsync();
      pollfd pf{r, POLLIN, 0};
      char buf[16] = {};
      if (poll(&pf, 1, 5000) != 1 || recv(r, buf, sizeof buf, 0) != 5 || memcmp(buf, "hello", 5)) {
        fprintf(stderr, "nothing from host tx ring %u\n", i);
        return 9;
      }
    }
    return 0;
  });
  EXPECT_EQ(host.wait(20000), 0);
}

// FNV-1a over a byte stream.
uint64_t fnv(uint64_t h, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}
constexpr uint64_t kFnvSeed = 0xcbf29ce484222325ull;

// `bridge -i netmap:ia -i netmap:ia^` makes the port a transparent bridge:
// ping and a TCP transfer between the namespaces keep working through it
// (on the AF_PACKET backend too, where the peer's TSO gives 64 KiB frames),
// and the tool counts the packets it moved both ways.
TEST_P(NicBackend, TransparentBridge) {
  Veth v;
  NEED_VETH(v);
  const char* backend = GetParam();
  Proc br({BRIDGE_BIN, "-w", "0", "-i", "netmap:" + v.ia, "-i", "netmap:" + v.ia + "^"}, [&] {
    if (!Veth::enter(v.a)) _exit(90);
    setenv("UNETMAP_NIC", backend, 1);
  });
  ASSERT_TRUE(br.wait_for("bridge: ready:", true, 10000)) << br.show();
  EXPECT_EQ(sh("ip netns exec " + v.b + " ping -c 3 -i 0.2 -W 2 10.77.0.1"), 0);
  // 4 MB over TCP from b to a, hashed at both ends.
  const size_t kBytes = 4 << 20;
  Event listening, result;
  Child server = in_ns(v.a, nullptr, [&] {
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in me{AF_INET, htons(5001), {inet_addr("10.77.0.1")}, {}};
    if (bind(l, reinterpret_cast<sockaddr*>(&me), sizeof me) || listen(l, 1)) return 2;
    listening.signal();
    pollfd pf{l, POLLIN, 0};
    if (poll(&pf, 1, 10000) != 1) return 3;
    int c = accept(l, nullptr, nullptr);
    uint64_t h = kFnvSeed, n = 0;
    uint8_t buf[65536];
    for (;;) {
      pollfd q{c, POLLIN, 0};
      if (poll(&q, 1, 10000) != 1) return 4;
      ssize_t r = read(c, buf, sizeof buf);
      if (r <= 0) break;
      h = fnv(h, buf, size_t(r));
      n += uint64_t(r);
    }
    uint64_t res[2] = {n, h};
    result.send(res);
    return 0;
  });
  ASSERT_EQ(listening.wait(10000), 'x');
  uint64_t sent_hash = kFnvSeed;
  std::vector<uint8_t> data(kBytes);
  for (size_t i = 0; i < kBytes; i++) data[i] = uint8_t(i * 7 + (i >> 12));
  sent_hash = fnv(sent_hash, data.data(), data.size());
  Child client = in_ns(v.b, nullptr, [&] {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in to{AF_INET, htons(5001), {inet_addr("10.77.0.1")}, {}};
    if (connect(c, reinterpret_cast<sockaddr*>(&to), sizeof to)) return 2;
    for (size_t off = 0; off < data.size();) {
      ssize_t w = write(c, data.data() + off, data.size() - off);
      if (w <= 0) return 3;
      off += size_t(w);
    }
    shutdown(c, SHUT_WR);
    char x;
    return read(c, &x, 1) == 0 ? 0 : 4;  // the server closed: all was read
  });
  uint64_t res[2] = {0, 0};
  ASSERT_TRUE(result.recv(&res, 30000)) << br.show();
  EXPECT_EQ(res[0], kBytes);
  EXPECT_EQ(res[1], sent_hash);
  EXPECT_EQ(client.wait(10000), 0);
  EXPECT_EQ(server.wait(10000), 0);
  EXPECT_EQ(br.stop(SIGINT), 0) << br.show();
  auto pos = br.out().find("a->b=");
  ASSERT_NE(pos, std::string::npos) << br.show();
  long a_to_b = 0, b_to_a = 0;
  sscanf(br.out().c_str() + pos, "a->b=%ld b->a=%ld", &a_to_b, &b_to_a);
  EXPECT_GT(a_to_b, long(kBytes / 1500));  // data segments from the wire to the stack
  EXPECT_GT(b_to_a, 3);                    // ping replies and ACKs
}

// netmap's transparent mode by flags: an application on netmap:ia* (NIC
// and host rings) sets NR_FORWARD on its rx rings and marks every slot
// NS_FORWARD; releasing them passes the wire's frames up to the stack and
// the stack's out to the wire, so ping works through it.
TEST_P(NicBackend, ForwardFlag) {
  Veth v;
  NEED_VETH(v);
  Event ready, stop;
  Child app = in_ns(v.a, GetParam(), [&] {
    std::string err;
    auto p = unetmap::Port::open("netmap:" + v.ia + "*", &err);
    if (!p) {
      fprintf(stderr, "open: %s\n", err.c_str());
      return 2;
    }
    for (unsigned i = p.first_rx_ring(); i <= p.last_rx_ring(); i++) p.rx_ring(i).raw()->flags |= NR_FORWARD;
    ready.signal();
    uint64_t moved = 0;
    while (stop.wait(0) < 0) {
      p.poll(POLLIN, 50);
      for (unsigned i = p.first_rx_ring(); i <= p.last_rx_ring(); i++) {
        unetmap::Ring r = p.rx_ring(i);
        for (; !r.empty(); r.advance(), moved++) r.slot(r.cur()).flags |= NS_FORWARD;
      }
      p.rxsync();
    }
    return moved >= 6 ? 0 : 3;  // 3 requests and 3 replies at least
  });
  ASSERT_EQ(ready.wait(10000), 'x');
  EXPECT_EQ(sh("ip netns exec " + v.b + " ping -c 3 -i 0.2 -W 2 10.77.0.1"), 0);
  stop.signal();
  EXPECT_EQ(app.wait(10000), 0);
}

// `vale-ctl -a vale0:ia` attaches the NIC to a switch: a VALE port in
// another process reaches the wire through it and gets what the wire
// sends; `-p`/`-P` switch its helper between polling and sleeping with the
// traffic still flowing; `-d` gives the interface back to the host.
TEST(Nic, AttachedToValeSwitch) {
  Veth v;
  NEED_VETH(v);
  std::string out;
  ASSERT_EQ(vale_ctl_in(v.a, {"-a", "vale0:" + v.ia}, &out), 0) << out;
  ASSERT_EQ(vale_ctl_in(v.a, {"-l"}, &out), 0) << out;
  EXPECT_NE(out.find("vale0:" + v.ia), std::string::npos) << out;
  EXPECT_NE(v.link(v.a, v.ia).find("xdp"), std::string::npos);
  for (const char* mode : {"-p", "-P"}) {
    SCOPED_TRACE(mode);
    ASSERT_EQ(vale_ctl_in(v.a, {mode, "vale0:" + v.ia}, &out), 0) << out;
    const uint32_t kCount = 400, kStep = 100;
    // VALE port -> switch -> NIC -> wire -> netmap:ib.
    auto port = unetmap::Port::open("vale0:user");
    ASSERT_TRUE(port);
    ASSERT_NO_FATAL_FAILURE(expect_reaches_wire(port, v, kCount, kStep));
    // And back: wire -> NIC -> switch -> the VALE port (flooded).
    Event go, back;
    Child sender = in_ns(v.b, nullptr, [&] {
      std::string why;
      auto p = unetmap::Port::open("netmap:" + v.ib, &why);
      if (!p) {
        fprintf(stderr, "sender: %s\n", why.c_str());
        return 2;
      }
      go.signal();
      return send_paced(p, 0, 1, kCount, kStep, back) ? 0 : 3;
    });
    ASSERT_EQ(go.wait(10000), 'x') << "the sender ended with " << sender.wait(1000);
    RxResult b = receive(port, kCount, &back, kStep, 20000);
    EXPECT_EQ(b.got[1], kCount);
    EXPECT_EQ(b.bad, 0u);
    EXPECT_EQ(sender.wait(10000), 0);
  }
  ASSERT_EQ(vale_ctl_in(v.a, {"-d", "vale0:" + v.ia}, &out), 0) << out;
  EXPECT_EQ(v.link(v.a, v.ia).find("xdp"), std::string::npos);
  EXPECT_NE(vale_ctl_in(v.a, {"-d", "vale0:" + v.ia}, &out), 0) << "detached twice";
  EXPECT_EQ(sh("ip netns exec " + v.b + " ping -c 1 -W 2 10.77.0.1"), 0);
}

// `vale-ctl -h vale0:ia` puts the host stack on the switch too: the
// namespaces ping each other through the switch (wire -> NIC port ->
// switch -> host port -> stack, and back), and the host port is listed.
TEST(Nic, HostStackOnValeSwitch) {
  Veth v;
  NEED_VETH(v);
  std::string out;
  ASSERT_EQ(vale_ctl_in(v.a, {"-h", "vale0:" + v.ia}, &out), 0) << out;
  ASSERT_EQ(vale_ctl_in(v.a, {"-l"}, &out), 0) << out;
  EXPECT_NE(out.find("vale0:" + v.ia + "_host"), std::string::npos) << out;
  EXPECT_EQ(sh("ip netns exec " + v.b + " ping -c 3 -i 0.2 -W 2 10.77.0.1"), 0);
  EXPECT_NE(vale_ctl_in(v.a, {"-h", "vale0:" + v.ia}, &out), 0) << "attached twice";
  EXPECT_NE(out.find("already attached"), std::string::npos) << out;
  ASSERT_EQ(vale_ctl_in(v.a, {"-d", "vale0:" + v.ia}, &out), 0) << out;
  EXPECT_EQ(sh_out("ip -n " + v.a + " link show").find("nmhost"), std::string::npos);
}

// ---- VALE control of NICs through NIOCCTRL, from any program ----

// One NIOCCTRL VALE_ATTACH of `name` from a process in namespace ns that
// exits right after: its errno (0 on success; 99 if the register part of
// the body came back changed, which netmap never does).
int attach_in(const std::string& ns, const std::string& name, uint32_t mode = NR_REG_ALL_NIC,
              uint16_t ringid = 0, uint16_t mem_id = 0) {
  Child c([=] {
    if (!Veth::enter(ns)) return 90;
    int fd = open("/dev/netmap", O_RDWR);
    if (fd < 0) return 91;
    nmreq_vale_attach at;
    memset(&at, 0, sizeof at);
    at.reg.nr_mode = mode;
    at.reg.nr_ringid = ringid;
    at.reg.nr_mem_id = mem_id;
    int rc = nmtest::ctrl(fd, NETMAP_REQ_VALE_ATTACH, name.c_str(), &at);
    if (rc == 0 && (at.reg.nr_mem_id != mem_id || at.reg.nr_flags != 0 || at.reg.nr_mode != mode))
      return 99;
    return rc;
  });
  return c.wait(30000);
}

int ctrl_here(uint16_t type, const std::string& name, void* body) {
  int fd = open("/dev/netmap", O_RDWR);
  if (fd < 0) return -1;
  int rc = nmtest::ctrl(fd, type, name.c_str(), body);
  close(fd);
  return rc;
}

// The ports of switch sw, by name (empty if there is no such switch).
std::vector<std::string> ports_of(const std::string& sw) {
  std::vector<unetmap::ValeSwitchInfo> v;
  std::string why;
  std::vector<std::string> out;
  if (unetmap::vale_list(sw, &v, &why) == 0 && v.size() == 1)
    for (const auto& p : v[0].ports) out.push_back(p.name);
  return out;
}

// The pid of the forwarder that runs the attachment sw:port (its worker).
pid_t helper_of(const std::string& sw, const std::string& port) {
  unetmap::worker::Info i;
  std::string why;
  return unetmap::worker::get(sw + ":" + port, &i, &why) == 0 ? i.pid.pid : 0;
}

std::string cpus_allowed(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("Cpus_allowed_list:", 0) == 0) {
      line = line.substr(18);
      line.erase(0, line.find_first_not_of(" \t"));
      return line;
    }
  return "";
}

// Any program (not only vale-ctl) attaches a NIC and its host stack with
// NIOCCTRL VALE_ATTACH (NR_REG_NIC_SW), and the attachment outlives the
// process that asked, as in netmap: after it exited, the switch reaches the
// wire and the host stack (the namespaces ping through the switch), and a
// third process detaches it, giving the interface back.
TEST(Nic, AttachThroughNiocctrlOutlivesTheRequester) {
  Veth v;
  NEED_VETH(v);
  ASSERT_EQ(attach_in(v.a, "vale0:" + v.ia, NR_REG_NIC_SW), 0);
  EXPECT_EQ(ports_of("vale0"), (std::vector<std::string>{"vale0:" + v.ia, "vale0:" + v.ia + "_host"}));
  EXPECT_NE(v.link(v.a, v.ia).find("xdp"), std::string::npos);
  EXPECT_EQ(sh("ip netns exec " + v.b + " ping -c 3 -i 0.2 -W 2 10.77.0.1"), 0);
  // A VALE port of this process reaches the wire through it.
  auto port = unetmap::Port::open("vale0:user");
  ASSERT_TRUE(port);
  ASSERT_NO_FATAL_FAILURE(expect_reaches_wire(port, v, 200, 50));
  nmreq_vale_detach dt;
  memset(&dt, 0, sizeof dt);
  EXPECT_EQ(ctrl_here(NETMAP_REQ_VALE_DETACH, "vale0:" + v.ia, &dt), 0);
  EXPECT_EQ(ctrl_here(NETMAP_REQ_VALE_DETACH, "vale0:" + v.ia, &dt), ENXIO);
  EXPECT_EQ(v.link(v.a, v.ia).find("xdp"), std::string::npos);
  EXPECT_EQ(sh_out("ip -n " + v.a + " link show").find("nmhost"), std::string::npos);
  EXPECT_EQ(sh("ip netns exec " + v.b + " ping -c 1 -W 2 10.77.0.1"), 0);
}

// The forwarder of an attached NIC is a worker (core/worker.h): killed with
// SIGKILL, it is restarted (the kernel gave the interface back when it
// died; the new one takes it again) and a VALE port reaches the wire
// through it again; `vale-ctl -l` shows the port with its worker's restart.
TEST(Nic, AttachedNicForwarderIsRestartedAfterKill) {
  Veth v;
  NEED_VETH(v);
  const std::string name = "vale0:" + v.ia;
  ASSERT_EQ(attach_in(v.a, name), 0);
  auto port = unetmap::Port::open("vale0:user");
  ASSERT_TRUE(port);
  ASSERT_NO_FATAL_FAILURE(expect_reaches_wire(port, v, 100, 50));
  const pid_t first = helper_of("vale0", v.ia);
  ASSERT_GT(first, 1);
  ASSERT_EQ(kill(first, SIGKILL), 0);
  unetmap::worker::Info i;
  std::string why;
  const double end = now_ms() + 10000;
  while (now_ms() < end && !(unetmap::worker::get(name, &i, &why) == 0 &&
                             i.state == unetmap::worker::State::kRunning && i.pid.pid != first))
    usleep(5000);
  ASSERT_EQ(i.state, unetmap::worker::State::kRunning) << i.reason;
  ASSERT_NE(i.pid.pid, first) << "not restarted";
  EXPECT_EQ(i.restarts, 1u);
  EXPECT_EQ(i.exit_signal, SIGKILL);
  ASSERT_NO_FATAL_FAILURE(expect_reaches_wire(port, v, 100, 50));
  std::string out;
  ASSERT_EQ(vale_ctl_in(v.a, {"-l"}, &out), 0) << out;
  EXPECT_NE(out.find(name + " bridge:0 port:"), std::string::npos) << out;
  EXPECT_NE(out.find("worker:running pid:" + std::to_string(i.pid.pid) + " restarts:1"),
            std::string::npos) << out;
  nmreq_vale_detach dt;
  memset(&dt, 0, sizeof dt);
  EXPECT_EQ(ctrl_here(NETMAP_REQ_VALE_DETACH, name, &dt), 0);
  EXPECT_EQ(v.link(v.a, v.ia).find("xdp"), std::string::npos);
}

// Bad attach requests get netmap's errors and leave the attachment that is
// there alone.
TEST(Nic, AttachRefusesBadArgumentsAndTouchesNothingElse) {
  Veth v;
  NEED_VETH(v);
  const std::string name = "vale0:" + v.ia;
  ASSERT_EQ(attach_in(v.a, name), 0);
  EXPECT_EQ(attach_in(v.a, name), EBUSY) << "attached twice";
  EXPECT_EQ(attach_in(v.a, "vale1:" + v.ia), EBUSY) << "on two switches";
  EXPECT_EQ(attach_in(v.a, "vale1:" + v.ia, NR_REG_SW), EINVAL) << "host rings alone";
  EXPECT_EQ(attach_in(v.a, "vale1:" + v.ia, NR_REG_ONE_NIC, 0), EINVAL) << "one ring";
  EXPECT_EQ(attach_in(v.a, "vale1:" + v.ia, NR_REG_ALL_NIC, 1), EINVAL) << "a ring id";
  EXPECT_EQ(attach_in(v.a, "vale1:" + v.ia, NR_REG_ALL_NIC, 0, 7), EINVAL) << "region 7";
  EXPECT_EQ(attach_in(v.a, "vale1:nosuchif9"), EINVAL) << "no such interface";
  EXPECT_EQ(attach_in(v.a, v.ia), EINVAL) << "no switch in the name";
  EXPECT_EQ(attach_in(v.a, "vale/x:" + v.ia), EINVAL) << "a switch name with a slash";
  EXPECT_EQ(attach_in(v.b, "vale1:" + v.ia), EINVAL) << "not an interface of that namespace";
  EXPECT_EQ(ports_of("vale0"), std::vector<std::string>{name});
  EXPECT_TRUE(ports_of("vale1").empty());
  // It still forwards.
  auto port = unetmap::Port::open("vale0:user");
  ASSERT_TRUE(port);
  ASSERT_NO_FATAL_FAILURE(expect_reaches_wire(port, v, 100, 50));
  nmreq_vale_detach dt;
  memset(&dt, 0, sizeof dt);
  EXPECT_EQ(ctrl_here(NETMAP_REQ_VALE_DETACH, name, &dt), 0);
}

// VALE_POLLING_ENABLE / DISABLE: netmap's errors for what is no attached
// NIC and for bad configurations; enabled, the helper is pinned to the CPU
// asked for; twice on or off is EFAULT; a polled NIC cannot be detached
// (EBUSY); the legacy nr_cmd codes do the same.
TEST(Nic, PollingModeThroughNiocctrl) {
  Veth v;
  NEED_VETH(v);
  const std::string name = "vale0:" + v.ia;
  const long ncpus = sysconf(_SC_NPROCESSORS_ONLN);
  nmreq_vale_polling vp;
  auto conf = [&](uint32_t mode, uint32_t first, uint32_t n) {
    memset(&vp, 0, sizeof vp);
    vp.nr_mode = mode, vp.nr_first_cpu_id = first, vp.nr_num_polling_cpus = n;
    return &vp;
  };
  const uint32_t kSingle = NETMAP_POLLING_MODE_SINGLE_CPU, kMulti = NETMAP_POLLING_MODE_MULTI_CPU;
  EXPECT_EQ(ctrl_here(NETMAP_REQ_VALE_POLLING_ENABLE, name, conf(kSingle, 0, 1)), ENXIO);
  EXPECT_EQ(ctrl_here(NETMAP_REQ_VALE_POLLING_ENABLE, v.ia, conf(kSingle, 0, 1)), EINVAL);
  ASSERT_EQ(attach_in(v.a, name), 0);
  auto user = unetmap::Port::open("vale0:user");
  ASSERT_TRUE(user);
  EXPECT_EQ(ctrl_here(NETMAP_REQ_VALE_POLLING_ENABLE, "vale0:user", conf(kSingle, 0, 1)),
            EOPNOTSUPP) << "a VALE port";
  EXPECT_EQ(ctrl_here(NETMAP_REQ_VALE_POLLING_ENABLE, name, conf(0, 0, 1)), EINVAL);
  EXPECT_EQ(ctrl_here(NETMAP_REQ_VALE_POLLING_ENABLE, name, conf(3, 0, 1)), EINVAL);
  EXPECT_EQ(ctrl_here(NETMAP_REQ_VALE_POLLING_ENABLE, name, conf(kSingle, 0, 0)), EINVAL);
  EXPECT_EQ(ctrl_here(NETMAP_REQ_VALE_POLLING_ENABLE, name, conf(kSingle, 0, 2)), EINVAL);
  EXPECT_EQ(ctrl_here(NETMAP_REQ_VALE_POLLING_ENABLE, name, conf(kMulti, 1, 1)), EINVAL)
      << "ring 1 of a one-ring NIC";
  EXPECT_EQ(ctrl_here(NETMAP_REQ_VALE_POLLING_ENABLE, name, conf(kSingle, 0, uint32_t(ncpus))),
            EINVAL) << "every CPU";
  EXPECT_EQ(ctrl_here(NETMAP_REQ_VALE_POLLING_ENABLE, name, conf(kSingle, uint32_t(ncpus), 1)),
            EINVAL) << "a CPU that does not exist";
  EXPECT_EQ(ctrl_here(NETMAP_REQ_VALE_POLLING_DISABLE, name, conf(0, 0, 0)), EFAULT)
      << "not polling";
  const pid_t helper = helper_of("vale0", v.ia);
  ASSERT_GT(helper, 0);
  const std::string before = cpus_allowed(helper);
  const uint32_t cpu = uint32_t(ncpus - 1);
  ASSERT_EQ(ctrl_here(NETMAP_REQ_VALE_POLLING_ENABLE, name, conf(kSingle, cpu, 1)), 0);
  EXPECT_EQ(vp.nr_mode, kSingle);  // the request comes back as it went
  EXPECT_EQ(vp.nr_first_cpu_id, cpu);
  EXPECT_EQ(vp.nr_num_polling_cpus, 1u);
  EXPECT_EQ(cpus_allowed(helper), std::to_string(cpu));
  EXPECT_EQ(ctrl_here(NETMAP_REQ_VALE_POLLING_ENABLE, name, conf(kSingle, 0, 1)), EFAULT)
      << "enabled twice";
  nmreq_vale_detach dt;
  memset(&dt, 0, sizeof dt);
  EXPECT_EQ(ctrl_here(NETMAP_REQ_VALE_DETACH, name, &dt), EBUSY) << "detached while polled";
  ASSERT_EQ(ctrl_here(NETMAP_REQ_VALE_POLLING_DISABLE, name, conf(0, 0, 0)), 0);
  EXPECT_EQ(cpus_allowed(helper), before);
  EXPECT_EQ(ctrl_here(NETMAP_REQ_VALE_POLLING_DISABLE, name, conf(0, 0, 0)), EFAULT);
  // The legacy codes: ALL_NIC is one CPU, nr_arg1 CPUs from ring id's CPU.
  int fd = open("/dev/netmap", O_RDWR);
  ASSERT_GE(fd, 0);
  for (uint16_t cmd : {uint16_t(NETMAP_BDG_POLLING_ON), uint16_t(NETMAP_BDG_POLLING_OFF)}) {
    nmreq r{};
    snprintf(r.nr_name, sizeof r.nr_name, "%s", name.c_str());
    r.nr_version = 14;
    r.nr_cmd = cmd;
    r.nr_flags = NR_REG_ALL_NIC;
    r.nr_arg1 = 1;
    EXPECT_EQ(ioctl(fd, NIOCREGIF, &r), 0) << cmd << ": " << strerror(errno);
  }
  close(fd);
  EXPECT_EQ(ctrl_here(NETMAP_REQ_VALE_DETACH, name, &dt), 0);
}

// Slots an application rewrites after handing them over are checked where
// the library uses them: a receiver that put garbage indexes in its free
// rx slots, and a sender whose second thread scribbles on the tx slots it
// handed over, are never crashed inside the library; frames into a bad rx
// slot come up empty.
TEST_P(NicBackend, RewrittenSlotsNeverCrashTheLibrary) {
  Veth v;
  NEED_VETH(v);
  Event ready, got;
  Child rx = in_ns(v.a, GetParam(), [&] {
    auto p = unetmap::Port::open("netmap:" + v.ia);
    if (!p) return 2;
    unetmap::Ring ring = p.rx_ring(0);
    for (uint32_t i = 0; i < ring.num_slots(); i++) ring.slot(i).buf_idx = 0x7ffffff0u;
    ready.signal();
    uint32_t arrived = 0, nonempty = 0;
    const double end = now_ms() + 10000;
    while (arrived < 50 && now_ms() < end) {
      p.poll(POLLIN, 50);
      while (!ring.empty()) {
        arrived++;
        if (ring.slot(ring.cur()).len) nonempty++;
        ring.slot(ring.cur()).buf_idx = 0x7ffffff0u;  // and again
        ring.advance();
      }
    }
    got.signal(arrived >= 50 && nonempty == 0 ? 'y' : 'n');
    return 0;
  });
  ASSERT_EQ(ready.wait(10000), 'x');
  Child tx = in_ns(v.b, GetParam(), [&] {
    auto p = unetmap::Port::open("netmap:" + v.ib);
    if (!p) return 2;
    unetmap::Ring ring = p.tx_ring(0);
    std::atomic<bool> stop{false};
    std::thread scribbler([&] {
      for (uint32_t i = 0; !stop.load(std::memory_order_relaxed); i++) {
        netmap_slot& sl = ring.slot(i % ring.num_slots());
        sl.len = 65535;
        sl.buf_idx = 0x7ffffff0u;
      }
    });
    for (uint32_t seq = 0; seq < 20000; seq++) {
      netmap_slot& s = ring.slot(ring.cur());
      s.len = 60;
      ring.advance();
      if (seq % 32 == 31 && p.txsync() < 0 && errno != EINVAL) break;
    }
    stop = true;
    scribbler.join();
    return 0;
  });
  EXPECT_EQ(tx.wait(20000), 0) << "the sender survived its own scribbling";
  // The receiver: frames of the clean part of the stream arrived, empty.
  Child more = in_ns(v.b, GetParam(), [&] {
    auto p = unetmap::Port::open("netmap:" + v.ib);
    if (!p) return 2;
    unetmap::Ring ring = p.tx_ring(0);
    for (uint32_t seq = 0; seq < 200; seq++) {
      while (ring.empty()) p.poll(POLLOUT, 100);
      netmap_slot& s = ring.slot(ring.cur());
      s.len = uint16_t(make_frame(ring.buf(s.buf_idx), 0, seq));
      ring.advance();
      p.txsync();
    }
    return 0;
  });
  EXPECT_EQ(more.wait(20000), 0);
  EXPECT_EQ(got.wait(15000), 'y') << "frames into garbage slots arrive empty";
  EXPECT_EQ(rx.wait(10000), 0) << "the receiver was not crashed inside the library";
}

// A raw AF_PACKET socket on ifname (of this namespace) that sends what the
// host stack would: through the interface's egress, where the host rings
// take it.
int stack_socket(const std::string& ifname) {
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  sockaddr_ll a{};
  a.sll_family = AF_PACKET;
  a.sll_ifindex = int(if_nametoindex(ifname.c_str()));
  if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a)) {
    close(fd);
    return -1;
  }
  return fd;
}

// Packets the qdisc of interface ifname (of this namespace) has handed
// to its driver; -1 if unknown.
long qdisc_sent(const std::string& ifname) {
  std::string out = sh_out("tc -s qdisc show dev " + ifname + " 2>/dev/null");
  long bytes = 0, pkts = -1;
  size_t at = out.find("Sent ");
  if (at == std::string::npos || sscanf(out.c_str() + at, "Sent %ld bytes %ld pkt", &bytes, &pkts) != 2) return -1;
  return pkts;
}

// Wait until ifname's qdisc has passed at least want packets to its
// driver (5 s at most).
bool transmitted(const std::string& ifname, long want) {
  for (const double end = now_ms() + 5000; now_ms() < end;) {
    if (qdisc_sent(ifname) >= want) return true;
    usleep(1000);
  }
  return false;
}

// Host rx slots the application rewrote after handing them back (so the
// sync prologue never sees them again) name a buffer of another ring or
// none of the region while the stack's frames wait in the tap: the sync
// passes them over, empty, and writes no buffer but the ring's own (the
// host tx ring's buffers keep their marker). The frames were not lost:
// with the slots' own buffers back they arrive whole, in order.
TEST(Nic, HostRxNeverWritesABufferItsRingDoesNotOwn) {
  Veth v;
  NEED_VETH(v);
  Child host = in_ns(v.a, nullptr, [&] {
    std::string err;
    auto p = unetmap::Port::open("netmap:" + v.ia + "^", &err);
    if (!p) {
      fprintf(stderr, "open: %s\n", err.c_str());
      return 2;
    }
    unetmap::Ring hrx = p.rx_ring(p.last_rx_ring()), htx = p.tx_ring(p.last_tx_ring());
    const uint32_t n = hrx.num_slots(), bsize = hrx.buf_size();
    const uint32_t past = uint32_t(p.reg().nr_memsize / bsize) + 16;  // beyond the region
    for (uint32_t i = 0; i < htx.num_slots(); i++) memset(htx.buf(htx.slot(i).buf_idx), 0xa5, bsize);
    std::vector<uint32_t> own(n);
    for (uint32_t i = 0; i < n; i++) {
      own[i] = hrx.slot(i).buf_idx;
      hrx.slot(i).buf_idx = i % 3 == 0   ? htx.slot(i % htx.num_slots()).buf_idx
                            : i % 3 == 1 ? past
                                         : 0x7ffffff0u;
    }
    const std::string tap = "nmhost" + std::to_string(if_nametoindex(v.ia.c_str()));
    const long before = qdisc_sent(tap);
    int raw = stack_socket(v.ia);
    if (raw < 0 || before < 0) return 3;
    constexpr uint32_t kFrames = 32;
    uint8_t f[200];
    for (uint32_t seq = 0; seq < kFrames; seq++)
      if (send(raw, f, make_frame(f, 1, seq, sizeof f), 0) != ssize_t(sizeof f)) return 4;
    if (!transmitted(tap, before + kFrames)) return 5;  // in the tap: the host rx ring's to take
    if (p.poll(POLLIN, 5000) <= 0) return 6;
    for (uint32_t i = 0; i < htx.num_slots(); i++) {
      const uint8_t* b = htx.buf(htx.slot(i).buf_idx);
      for (uint32_t j = 0; j < bsize; j++)
        if (b[j] != 0xa5) {
          fprintf(stderr, "host tx buffer %u written at %u\n", htx.slot(i).buf_idx, j);
          return 8;
        }
    }
    for (uint32_t i = hrx.cur(); i != hrx.tail(); i = hrx.next(i))
      if (hrx.slot(i).len != 0) return 7;
    for (uint32_t i = 0; i < n; i++) hrx.slot(i).buf_idx = own[i];
    hrx.release_to(hrx.tail());
    uint32_t next = 0;
    for (const double end = now_ms() + 5000; next < kFrames && now_ms() < end;) {
      p.poll(POLLIN, 100);
      for (; !hrx.empty(); hrx.advance()) {
        const netmap_slot& s = hrx.slot(hrx.cur());
        uint32_t tag, seq;
        if (s.len != sizeof f || !is_ours(hrx.buf(s.buf_idx), s.len, &tag, &seq) || tag != 1 || seq != next)
          return 9;
        next++;
      }
    }
    return next == kFrames ? 0 : 10;
  });
  EXPECT_EQ(host.wait(20000), 0);
}

// Frames from the stack longer than a buffer (the interface's MTU above
// the buffer size) arrive on the host rx ring as NS_MOREFRAG chains whose
// slots each fit their buffer, with the frame's bytes, not cut short.
TEST(Nic, HostRxFrameLongerThanABufferArrivesAsAChain) {
  Veth v;
  NEED_VETH(v);
  ASSERT_EQ(sh("ip -n " + v.a + " link set " + v.ia + " mtu 9000"), 0);
  Child host = in_ns(v.a, nullptr, [&] {
    std::string err;
    auto p = unetmap::Port::open("netmap:" + v.ia + "^", &err);
    if (!p) {
      fprintf(stderr, "open: %s\n", err.c_str());
      return 2;
    }
    unetmap::Ring hrx = p.rx_ring(p.last_rx_ring());
    const uint32_t bsize = hrx.buf_size();
    if (bsize >= 9014) return 3;  // nothing to chain
    const std::vector<uint32_t> lens = {60, bsize, bsize + 1, 2 * bsize + 7, 9014, 61};
    int raw = stack_socket(v.ia);
    if (raw < 0) return 4;
    std::vector<uint8_t> f(9014), got;
    for (uint32_t seq = 0; seq < lens.size(); seq++)
      if (send(raw, f.data(), make_frame(f.data(), 2, seq, lens[seq]), 0) != ssize_t(lens[seq])) return 5;
    uint32_t next = 0;
    for (const double end = now_ms() + 5000; next < lens.size() && now_ms() < end;) {
      p.poll(POLLIN, 100);
      for (; !hrx.empty(); hrx.advance()) {
        const netmap_slot& s = hrx.slot(hrx.cur());
        if (s.len > bsize) return 6;
        got.insert(got.end(), hrx.buf(s.buf_idx), hrx.buf(s.buf_idx) + s.len);
        if (s.flags & NS_MOREFRAG) continue;
        if (next >= lens.size() || got.size() != lens[next]) {
          fprintf(stderr, "frame %u: %zu bytes\n", next, got.size());
          return 7;
        }
        make_frame(f.data(), 2, next, lens[next]);
        if (memcmp(got.data(), f.data(), got.size())) return 8;
        got.clear();
        next++;
      }
    }
    return next == lens.size() ? 0 : 9;
  });
  EXPECT_EQ(host.wait(20000), 0);
}

// A second thread rewrites tx slots while the sender syncs (the moment a
// slot names another port's buffer, an index past the region, or a length
// past its buffer, then its own again): whatever the sync read after its
// prologue's check, only the sender's frame bytes reach the wire (the
// other port's buffers hold frames of tag 7, which must never arrive), and
// the library does not crash.
TEST_P(NicBackend, SlotsRewrittenDuringTxsyncPutOnlyFrameBytesOnTheWire) {
  Veth v;
  NEED_VETH(v);
  struct Bufs {
    uint32_t n;
    uint32_t idx[64];
  };
  struct Seen {
    uint32_t good, leaked;
  };
  Event bufs, done, seen;
  Child rx = in_ns(v.a, GetParam(), [&] {
    auto p = unetmap::Port::open("netmap:" + v.ia);
    if (!p) return 2;
    // The other port's buffers: its tx ring's, a frame of tag 7 each.
    unetmap::Ring tx = p.tx_ring(0), ring = p.rx_ring(0);
    Bufs b{};
    for (; b.n < 64 && b.n < tx.num_slots(); b.n++) {
      b.idx[b.n] = tx.slot(b.n).buf_idx;
      make_frame(tx.buf(b.idx[b.n]), 7, b.n, tx.buf_size());
    }
    bufs.send(b);
    Seen r{0, 0};
    bool end_seen = false;
    for (const double end = now_ms() + 60000; !end_seen && now_ms() < end;) {
      p.poll(POLLIN, 50);
      for (; !ring.empty(); ring.advance()) {
        const netmap_slot& s = ring.slot(ring.cur());
        uint32_t tag, seq;
        if (is_ours(ring.buf(s.buf_idx), s.len, &tag, &seq) && (tag == 0 || tag == 3)) {
          r.good += tag == 0;
          end_seen |= tag == 3;
        } else {
          r.leaked++;
        }
      }
    }
    seen.send(r);
    return end_seen ? 0 : 3;
  });
  Child tx = in_ns(v.b, GetParam(), [&] {
    auto p = unetmap::Port::open("netmap:" + v.ib);
    if (!p) return 2;
    Bufs other;
    if (!bufs.recv(&other, 10000) || other.n == 0) return 3;
    unetmap::Ring ring = p.tx_ring(0);
    const uint32_t n = ring.num_slots(), bsize = ring.buf_size();
    const uint32_t past = uint32_t(p.reg().nr_memsize / bsize) + 16;
    std::vector<uint32_t> own(n);
    for (uint32_t i = 0; i < n; i++) {
      own[i] = ring.slot(i).buf_idx;
      make_frame(ring.buf(own[i]), 0, i, bsize);  // any length of it is a frame of ours
    }
    std::atomic<bool> stop{false};
    // The scribbler works on the slots just handed over (behind head), one
    // at a time, each bad for a moment.
    std::thread scribbler([&] {
      for (uint32_t i = 0; !stop.load(std::memory_order_relaxed); i++) {
        const uint32_t at = (ring.head() + n - 1 - i % 32) % n;
        netmap_slot& sl = ring.slot(at);
        const uint32_t k = i / 32 % 3;
        volatile uint32_t* idx = &sl.buf_idx;
        volatile uint16_t* len = &sl.len;
        *idx = k == 0 ? other.idx[i % other.n] : k == 1 ? past : own[at];
        *len = uint16_t(k == 2 ? bsize + 1000 : 60);
        for (int spin = 0; spin < 200; spin++) asm volatile("" ::: "memory");
        *len = 60;
        *idx = own[at];
      }
    });
    uint32_t refused = 0;
    for (const double end = now_ms() + 4000; now_ms() < end;) {
      for (uint32_t c = 0; c < 32 && !ring.empty(); c++) {
        ring.slot(ring.cur()).len = 60;
        ring.advance();
      }
      if (p.txsync() < 0) {
        if (errno != EINVAL) break;
        refused++;
      }
    }
    if (getenv("NICTEST_DEBUG")) fprintf(stderr, "refused %u\n", refused);
    stop = true;
    scribbler.join();
    for (uint32_t i = 0; i < n; i++) ring.slot(i) = netmap_slot{own[i], 60, 0, 0};
    // The end, clean: a frame of tag 3 (sent until the receiver saw it).
    for (const double end = now_ms() + 20000; now_ms() < end;) {
      if (p.txsync() < 0) return 4;
      if (!ring.empty()) {
        netmap_slot& s = ring.slot(ring.cur());
        s.len = uint16_t(make_frame(ring.buf(s.buf_idx), 3, 0, 60));
        ring.advance();
        p.txsync();
      }
      if (done.wait(0) >= 0) break;
      p.poll(POLLOUT, 20);
    }
    return 0;
  });
  Seen r{};
  ASSERT_TRUE(seen.recv(&r, 90000));
  done.signal();
  EXPECT_EQ(r.leaked, 0u) << "bytes other than the sender's frames reached the wire";
  EXPECT_GT(r.good, 0u);
  EXPECT_EQ(tx.wait(30000), 0) << "the sender survived its own scribbling";
  EXPECT_EQ(rx.wait(10000), 0);
}

INSTANTIATE_TEST_SUITE_P(Backends, NicBackend, ::testing::Values("xdp", "packet"),
                         [](const auto& info) { return std::string(info.param); });

// A copy monitor on a NIC port (netmap:ia/r) sees exactly what the port
// receives, in order, while the port's own reader gets it all too.
TEST(Nic, CopyMonitorOnNicPort) {
  Veth v;
  NEED_VETH(v);
  const uint32_t kCount = 1000, kStep = 100;
  Receiver rx, mon;
  ASSERT_TRUE(rx.start(v.a, nullptr, "netmap:" + v.ia, kCount, kStep));
  ASSERT_TRUE(mon.start("", nullptr, "netmap:" + v.ia + "/r", kCount, kStep, false));
  Child tx = in_ns(v.b, nullptr, [&] {
    auto p = unetmap::Port::open("netmap:" + v.ib);
    return p && send_paced(p, 0, 0, kCount, kStep, rx.progress) ? 0 : 3;
  });
  RxResult r, m;
  ASSERT_TRUE(rx.result(&r));
  ASSERT_TRUE(mon.result(&m));
  EXPECT_EQ(r.got[0], kCount);
  EXPECT_EQ(m.got[0], kCount);
  EXPECT_EQ(m.bad, 0u);
  EXPECT_EQ(tx.wait(10000), 0);
  EXPECT_EQ(rx.wait(), 0);
  EXPECT_EQ(mon.wait(), 0);
}

// netmap:IF-N binds queue N only: with AF_XDP, frames the peer sends on
// queue 1 arrive on ring 1; those on queue 0 stay with the host stack.
TEST(Nic, PerQueueBinding) {
  Veth v(2);
  NEED_VETH(v);
  const uint32_t kCount = 500, kStep = 100;
  Event ready, progress, result;
  Child rx = in_ns(v.a, "xdp", [&] {
    std::string err;
    auto p = unetmap::Port::open("netmap:" + v.ia + "-1", &err);
    if (!p) {
      fprintf(stderr, "open: %s\n", err.c_str());
      return 2;
    }
    if (p.first_rx_ring() != 1 || p.last_rx_ring() != 1) return 3;
    ready.signal();
    result.send(receive(p, kCount, &progress, kStep, 20000));
    return 0;
  });
  ASSERT_EQ(ready.wait(10000), 'x');
  Child tx = in_ns(v.b, "xdp", [&] {
    auto q0 = unetmap::Port::open("netmap:" + v.ib + "-0");
    auto q1 = unetmap::Port::open("netmap:" + v.ib + "-1");
    if (!q0 || !q1) return 2;
    // Queue 0 first: none of it may reach ring 1.
    unetmap::Ring r0 = q0.tx_ring(0);
    for (uint32_t i = 0; i < 50; i++) {
      netmap_slot& s = r0.slot(r0.cur());
      s.len = uint16_t(make_frame(r0.buf(s.buf_idx), 2, i));
      r0.advance();
    }
    q0.txsync();
    return send_paced(q1, 1, 1, kCount, kStep, progress) ? 0 : 3;
  });
  RxResult r;
  ASSERT_TRUE(result.recv(&r, 30000));
  EXPECT_EQ(r.got[1], kCount);
  EXPECT_EQ(r.got[2], 0u);
  EXPECT_EQ(r.bad, 0u);
  EXPECT_EQ(tx.wait(10000), 0);
  EXPECT_EQ(rx.wait(10000), 0);
}

// Two processes bind different queues of one interface (AF_XDP): each gets
// its queue's frames; the second shares the first's XDP program, which
// stays attached when the first is killed, and goes with the second.
TEST(Nic, QueuesInTwoProcesses) {
  Veth v(2);
  NEED_VETH(v);
  const uint32_t kCount = 300, kStep = 100;
  Event ready0, ready1, progress0, progress1, result0, result1, again;
  Child q0 = in_ns(v.a, "xdp", [&] {
    auto p = unetmap::Port::open("netmap:" + v.ia + "-0");
    if (!p) return 2;
    ready0.signal();
    result0.send(receive(p, kCount, &progress0, kStep, 20000));
    pause();  // killed by the test
    return 0;
  });
  ASSERT_EQ(ready0.wait(10000), 'x');
  Child q1 = in_ns(v.a, "xdp", [&] {
    std::string err;
    auto p = unetmap::Port::open("netmap:" + v.ia + "-1", &err);
    if (!p) {
      fprintf(stderr, "open: %s\n", err.c_str());
      return 2;
    }
    ready1.signal();
    result1.send(receive(p, kCount, &progress1, kStep, 20000));
    if (again.wait(20000) != 'x') return 3;
    result1.send(receive(p, kCount, &progress1, kStep, 20000));  // tag 1 again, seq from 0
    return 0;
  });
  ASSERT_EQ(ready1.wait(10000), 'x');
  auto sender = [&](bool both) {
    return in_ns(v.b, "xdp", [&, both] {
      auto s0 = unetmap::Port::open("netmap:" + v.ib + "-0");
      auto s1 = unetmap::Port::open("netmap:" + v.ib + "-1");
      if (!s0 || !s1) return 2;
      if (both && !send_paced(s0, 0, 0, kCount, kStep, progress0)) return 3;
      return send_paced(s1, 1, 1, kCount, kStep, progress1) ? 0 : 4;
    });
  };
  Child tx = sender(true);
  RxResult r0, r1;
  ASSERT_TRUE(result0.recv(&r0, 30000));
  ASSERT_TRUE(result1.recv(&r1, 30000));
  EXPECT_EQ(r0.got[0], kCount);
  EXPECT_EQ(r0.got[1], 0u);
  EXPECT_EQ(r1.got[1], kCount);
  EXPECT_EQ(r1.got[0], 0u);
  EXPECT_EQ(tx.wait(10000), 0);
  // The first process goes: queue 1 keeps working through the shared program.
  q0.kill_now();
  EXPECT_NE(v.link(v.a, v.ia).find("xdp"), std::string::npos);
  again.signal();
  Child tx2 = sender(false);
  ASSERT_TRUE(result1.recv(&r1, 30000));
  EXPECT_EQ(r1.got[1], kCount);
  EXPECT_EQ(tx2.wait(10000), 0);
  EXPECT_EQ(q1.wait(10000), 0);
  const double end = now_ms() + 5000;
  while (v.link(v.a, v.ia).find("xdp") != std::string::npos && now_ms() < end) usleep(10000);
  EXPECT_EQ(v.link(v.a, v.ia).find("xdp"), std::string::npos);
}

// While only the NIC rings are bound, the stack no longer transmits on the
// interface (netmap queues its output on the unread host rx ring): a UDP
// send makes the stack emit an ARP request, which must not leave ia; once
// the port is closed, the same send does go out.
TEST(Nic, NicRingsCutTheStacksOutputOff) {
  Veth v;
  NEED_VETH(v);
  Child app = in_ns(v.a, nullptr, [&] {
    auto tx_packets = [&] {
      std::ifstream f("/proc/net/dev");
      std::string line;
      while (std::getline(f, line)) {
        size_t c = line.find(':');
        if (c == std::string::npos) continue;
        std::string name = line.substr(0, c);
        name.erase(0, name.find_first_not_of(' '));
        if (name != v.ia) continue;
        std::istringstream in(line.substr(c + 1));
        uint64_t x[10] = {};
        for (auto& e : x) in >> e;
        return x[9];  // tx packets
      }
      return uint64_t(~0ull);
    };
    auto emit_arp = [&](const char* ip) {
      int u = socket(AF_INET, SOCK_DGRAM, 0);
      sockaddr_in dst{AF_INET, htons(9), {inet_addr(ip)}, {}};
      bool ok = sendto(u, "x", 1, 0, reinterpret_cast<sockaddr*>(&dst), sizeof dst) == 1;
      close(u);
      return ok;
    };
    {
      auto p = unetmap::Port::open("netmap:" + v.ia);
      if (!p) return 2;
      uint64_t before = tx_packets();
      if (!emit_arp("10.77.0.9")) return 3;
      if (tx_packets() != before) return 4;  // the ARP request went out
    }
    uint64_t before = tx_packets();
    if (!emit_arp("10.77.0.8")) return 5;
    return tx_packets() > before ? 0 : 6;  // out again once the port is closed
  });
  EXPECT_EQ(app.wait(15000), 0);
}

// A process killed while it holds the NIC and host rings leaves the
// interface as it was: no XDP program, no tap, and the stack answers ping.
TEST(Nic, KillRestoresInterface) {
  Veth v;
  NEED_VETH(v);
  Event ready;
  Child holder = in_ns(v.a, nullptr, [&] {
    auto nic = unetmap::Port::open("netmap:" + v.ia);
    auto host = unetmap::Port::open("netmap:" + v.ia + "^");
    if (!nic || !host) return 2;
    ready.signal();
    pause();
    return 0;
  });
  ASSERT_EQ(ready.wait(10000), 'x');
  EXPECT_NE(v.link(v.a, v.ia).find("xdp"), std::string::npos) << v.link(v.a, v.ia);
  EXPECT_NE(sh_out("ip -n " + v.a + " link show").find("nmhost"), std::string::npos);
  EXPECT_NE(sh("ip netns exec " + v.b + " ping -c 1 -W 1 10.77.0.1"), 0)
      << "the host stack answered while its rings were held";
  holder.kill_now();
  // The kernel drops links and the tap as the process's fds close.
  const double end = now_ms() + 5000;
  while (v.link(v.a, v.ia).find("xdp") != std::string::npos && now_ms() < end) usleep(10000);
  EXPECT_EQ(v.link(v.a, v.ia).find("xdp"), std::string::npos);
  EXPECT_EQ(sh_out("ip -n " + v.a + " link show").find("nmhost"), std::string::npos);
  EXPECT_EQ(sh("ip netns exec " + v.b + " ping -c 1 -W 2 10.77.0.1"), 0);
}

}  // namespace
