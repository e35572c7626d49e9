// libunetmap-pcap.so: what libpcap's netmap module (pcap-netmap.c, built
// from Debian's libpcap source against unetmap: scripts/libpcap.sh) gets
// wrong or leaves out, fixed by interposing libpcap's public functions.
// unetmap-run preloads it after libnetmap.so; libpcap itself is unchanged.
// Each wrapper acts only on captures whose fd is a netmap fd and calls
// libpcap's own function for everything else.
//
// - pcap_findalldevs: libpcap's list, then unetmap's ports under the names
//   pcap_open_live takes (`tcpdump -D`): VALE ports as "valeX:Y", pipe ends
//   and NIC ports as "netmap:NAME". Monitors and null ports are left out
//   (a monitor is opened by naming the port it watches, "vale0:a/rt").
// - pcap_dispatch / pcap_loop / pcap_next_ex / pcap_next: the module
//   counts the frames its filter rejected as delivered, so `tcpdump -c N`
//   with a filter stopped after N frames read, not N matching, and
//   pcap_next_ex returned a stale frame when the one read was filtered
//   out; and it never returns without a frame, even nonblocking. Here a
//   count is of frames delivered, pcap_next_ex reads until one passes,
//   and a nonblocking dispatch with nothing ready returns 0.
// - pcap_inject / pcap_sendpacket: the module's inject fails (0) when the
//   tx ring is full and pcap_sendpacket then reports success; here a
//   blocking capture waits for room (poll), as a socket would, and every
//   injected frame leaves at once (the module left it in the ring until
//   the ring filled, the next poll or pcap_close).
// - pcap_create / pcap_activate / pcap_open_live: the module makes a NIC's
//   interface promiscuous with SIOCSIFFLAGS and clears it at close, which
//   fails once tcpdump has dropped root (and never happens after a kill
//   -9): the interface stayed promiscuous. Here the flag it set is cleared
//   at once (still root) and the capture holds a PACKET_MR_PROMISC
//   membership on an AF_PACKET socket instead, which the kernel drops when
//   the socket closes, however the process ends.
// - pcap_activate / pcap_open_live / pcap_stats: the module reports no
//   drops; ps_drop is the frames producers dropped for lack of room in the
//   capture's rx rings since it was activated (VALE senders, copy monitors, NIC backends count them; a
//   pipe's sender waits instead of dropping).
#include <dlfcn.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <net/netmap.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unetmap/unetmap.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace {

template <typename F>
F next_symbol(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

// libpcap's own functions.
struct Real {
  int (*findalldevs)(pcap_if_t**, char*) = next_symbol<decltype(findalldevs)>("pcap_findalldevs");
  int (*activate)(pcap_t*) = next_symbol<decltype(activate)>("pcap_activate");
  pcap_t* (*open_live)(const char*, int, int, int, char*) = next_symbol<decltype(open_live)>("pcap_open_live");
  int (*dispatch)(pcap_t*, int, pcap_handler, u_char*) = next_symbol<decltype(dispatch)>("pcap_dispatch");
  int (*loop)(pcap_t*, int, pcap_handler, u_char*) = next_symbol<decltype(loop)>("pcap_loop");
  int (*next_ex)(pcap_t*, pcap_pkthdr**, const u_char**) = next_symbol<decltype(next_ex)>("pcap_next_ex");
  const u_char* (*next)(pcap_t*, pcap_pkthdr*) = next_symbol<decltype(next)>("pcap_next");
  int (*inject)(pcap_t*, const void*, size_t) = next_symbol<decltype(inject)>("pcap_inject");
  int (*sendpacket)(pcap_t*, const u_char*, int) = next_symbol<decltype(sendpacket)>("pcap_sendpacket");
  int (*stats)(pcap_t*, pcap_stat*) = next_symbol<decltype(stats)>("pcap_stats");
  void (*close)(pcap_t*) = next_symbol<decltype(close)>("pcap_close");
};
const Real& real() {
  static const Real r;
  return r;
}

// ---- the captures on netmap fds ----

struct Capture {
  uint64_t drops_at_open = 0;
  bool nonblock = false;  // pcap_setnonblock's setting, kept here
  int promisc_fd = -1;  // holds the NIC's promiscuous mode (see above)
  pcap_pkthdr hdr{};  // pcap_next_ex's frame
  const u_char* data = nullptr;
};

struct Captures {
  std::mutex mu;
  std::map<pcap_t*, Capture> netmap;
  std::map<pcap_t*, bool> other;  // activated captures on other fds
  std::map<pcap_t*, std::string> device;  // pcap_create's name, until activated
};
Captures& captures() {
  static Captures* c = new Captures;  // used until exit: never destroyed
  return *c;
}

bool rx_drops(pcap_t* p, uint64_t* drops) {
  unetmap_ring_counters c;
  const int fd = pcap_fileno(p);
  if (fd < 0 || unetmap_fd_counters(fd, 1, &c) != 0) return false;
  *drops = c.drops;
  return true;
}

bool nonblocking(pcap_t* p) {
  char err[PCAP_ERRBUF_SIZE];
  return pcap_getnonblock(p, err) == 1;
}

// capture()'s lookup, lock held.
Capture* lookup(Captures& c, pcap_t* p) {
  auto it = c.netmap.find(p);
  if (it != c.netmap.end()) return &it->second;
  if (c.other.count(p)) return nullptr;
  uint64_t drops;
  const int fd = pcap_fileno(p);
  if (fd < 0) return nullptr;  // not activated yet: ask again later
  if (!rx_drops(p, &drops)) {
    c.other[p] = true;
    return nullptr;
  }
  Capture& cap = c.netmap[p];
  cap.drops_at_open = drops;
  cap.nonblock = nonblocking(p);
  return &cap;
}

// Bumped by pcap_close: a thread's cached lookup is stale.
std::atomic<uint64_t> g_closes{0};

// p's state if p captures on a netmap fd, else nullptr. Known from the
// first call on it (pcap_open_live activates it inside libpcap). The
// last capture a thread asked about is answered without the lock.
Capture* capture(pcap_t* p) {
  thread_local pcap_t* last_p = nullptr;
  thread_local Capture* last_cap = nullptr;
  thread_local uint64_t last_closes = ~0ull;
  const uint64_t closes = g_closes.load(std::memory_order_acquire);
  if (p == last_p && closes == last_closes) return last_cap;
  Capture* cap = nullptr;
  {
    Captures& c = captures();
    std::lock_guard<std::mutex> g(c.mu);
    cap = lookup(c, p);
  }
  if (cap || pcap_fileno(p) >= 0) last_p = p, last_cap = cap, last_closes = closes;
  return cap;
}

// ---- promiscuous mode of NIC ports ----

// The interface a netmap name opens on its NIC rings ("netmap:eth0-1/x"
// -> "eth0"), "" for anything else (pipes, VALE, host rings only).
std::string nic_interface(const std::string& dev) {
  if (dev.rfind("netmap:", 0) != 0) return "";
  const std::string rest = dev.substr(7);
  const size_t end = rest.find_first_of("^*/@{}");
  if (end != std::string::npos && rest[end] == '^') return "";  // host rings only
  std::string name = rest.substr(0, end);
  // "-N" names one ring (netmap's grammar takes no other '-' in a name).
  const size_t dash = name.rfind('-');
  if (if_nametoindex(name.c_str()) == 0 && dash != std::string::npos && dash + 1 < name.size() &&
      name.find_first_not_of("0123456789", dash + 1) == std::string::npos)
    name.resize(dash);
  if (name.empty() || name.size() >= IFNAMSIZ || if_nametoindex(name.c_str()) == 0) return "";
  return name;
}

int if_flags(const std::string& ifname, short* flags, bool set) {
  const int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -1;
  ifreq ifr{};
  memcpy(ifr.ifr_name, ifname.data(), ifname.size());
  ifr.ifr_flags = *flags;
  const int rc = ioctl(s, set ? SIOCSIFFLAGS : SIOCGIFFLAGS, &ifr);
  if (rc == 0 && !set) *flags = ifr.ifr_flags;
  ::close(s);
  return rc;
}

// Is IFF_PROMISC set on the interface (false for "")?
bool promiscuous(const std::string& ifname) {
  short flags = 0;
  return !ifname.empty() && if_flags(ifname, &flags, false) == 0 && (flags & IFF_PROMISC);
}

// After libpcap's activate: if IFF_PROMISC is on, hold the mode by a
// membership of this capture's own (another capture's flag may go any
// time), and clear the flag if it was not on before (so libpcap's module
// set it). The socket's fd, or -1.
int promisc_by_membership(const std::string& ifname, bool was_promisc) {
  short flags = 0;
  if (if_flags(ifname, &flags, false) != 0 || !(flags & IFF_PROMISC)) return -1;
  const int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);  // protocol 0: receives nothing
  packet_mreq mr{};
  mr.mr_ifindex = int(if_nametoindex(ifname.c_str()));
  mr.mr_type = PACKET_MR_PROMISC;
  if (s < 0 || setsockopt(s, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) != 0) {
    if (s >= 0) ::close(s);
    return -1;  // libpcap's flag stays: as without this library
  }
  if (!was_promisc) {
    flags &= short(~IFF_PROMISC);
    if_flags(ifname, &flags, true);
  }
  return s;
}

// Counts the frames the filter let through to the caller's handler.
struct Counting {
  pcap_handler handler;
  u_char* user;
  int delivered = 0;
};
void count_and_deliver(u_char* arg, const pcap_pkthdr* h, const u_char* bytes) {
  auto* c = reinterpret_cast<Counting*>(arg);
  c->delivered++;
  c->handler(c->user, h, bytes);
}

// Is a frame (or an error) waiting? poll on a netmap fd syncs its rx rings.
bool readable_now(pcap_t* p) {
  pollfd pf{pcap_fileno(p), POLLIN, 0};
  return poll(&pf, 1, 0) != 0;
}

// ---- the port list ----

std::string capture_name(const unetmap_port_info& p) {
  const std::string type = p.type, name = p.name;
  if (type == "vale") return name;
  if (type == "pipe" || type == "nic") return "netmap:" + name;
  return "";
}

std::string describe(const unetmap_port_info& p) {
  const std::string type = p.type, name = p.name;
  std::string d = "unetmap ";
  if (type == "vale")
    d += "port of VALE switch " + name.substr(0, name.find(':'));
  else if (type == "pipe")
    d += "pipe end";
  else
    d += "NIC port";
  d += ", region " + std::to_string(p.mem_id) + ", " + std::to_string(p.users) + " user";
  if (p.users != 1) d += "s";
  if (p.persistent) d += ", persistent";
  return d;
}

std::vector<unetmap_port_info> ports() {
  std::vector<unetmap_port_info> v(64);
  for (;;) {
    const int n = unetmap_ports(v.data(), int(v.size()));
    if (n < 0) return {};
    if (size_t(n) <= v.size()) {
      v.resize(size_t(n));
      return v;
    }
    v.resize(size_t(n) + 16);
  }
}

}  // namespace

extern "C" {

int pcap_findalldevs(pcap_if_t** all, char* errbuf) {
  if (!real().findalldevs) {
    snprintf(errbuf, PCAP_ERRBUF_SIZE, "unetmap: libpcap's pcap_findalldevs not found");
    return PCAP_ERROR;
  }
  const int rc = real().findalldevs(all, errbuf);
  if (rc != 0) return rc;
  pcap_if_t** tail = all;
  while (*tail) tail = &(*tail)->next;
  for (const unetmap_port_info& p : ports()) {
    const std::string name = capture_name(p);
    if (name.empty()) continue;
    auto* d = static_cast<pcap_if_t*>(calloc(1, sizeof(pcap_if_t)));
    if (!d) break;
    d->name = strdup(name.c_str());
    d->description = strdup(describe(p).c_str());
    d->flags = PCAP_IF_UP | PCAP_IF_RUNNING | PCAP_IF_CONNECTION_STATUS_NOT_APPLICABLE;
    if (!d->name || !d->description) {
      free(d->name);
      free(d->description);
      free(d);
      break;
    }
    *tail = d;
    tail = &d->next;
  }
  return 0;
}

pcap_t* pcap_create(const char* dev, char* errbuf) {
  static const auto real_create = next_symbol<pcap_t* (*)(const char*, char*)>("pcap_create");
  if (!real_create) return nullptr;
  pcap_t* p = real_create(dev, errbuf);
  if (p && dev) {
    std::lock_guard<std::mutex> g(captures().mu);
    captures().device[p] = dev;
  }
  return p;
}

// A capture's drops count from here; its promiscuous mode is a membership.
int pcap_activate(pcap_t* p) {
  if (!real().activate) return PCAP_ERROR;
  std::string dev;
  {
    std::lock_guard<std::mutex> g(captures().mu);
    auto it = captures().device.find(p);
    if (it != captures().device.end()) dev = it->second, captures().device.erase(it);
  }
  const std::string ifname = nic_interface(dev);
  const bool was_promisc = promiscuous(ifname);
  const int rc = real().activate(p);
  if (rc < 0) return rc;
  Capture* cap = capture(p);
  if (cap && !ifname.empty()) cap->promisc_fd = promisc_by_membership(ifname, was_promisc);
  return rc;
}

pcap_t* pcap_open_live(const char* dev, int snaplen, int promisc, int ms, char* errbuf) {
  if (!real().open_live) return nullptr;
  const std::string ifname = dev ? nic_interface(dev) : "";
  const bool was_promisc = promiscuous(ifname);
  pcap_t* p = real().open_live(dev, snaplen, promisc, ms, errbuf);
  Capture* cap = p ? capture(p) : nullptr;
  if (cap && !ifname.empty() && cap->promisc_fd < 0) cap->promisc_fd = promisc_by_membership(ifname, was_promisc);
  return p;
}

int pcap_setnonblock(pcap_t* p, int nonblock, char* errbuf) {
  static const auto real_set = next_symbol<int (*)(pcap_t*, int, char*)>("pcap_setnonblock");
  if (!real_set) return PCAP_ERROR;
  const int rc = real_set(p, nonblock, errbuf);
  if (Capture* cap = rc == 0 ? capture(p) : nullptr) cap->nonblock = nonblock != 0;
  return rc;
}

int pcap_dispatch(pcap_t* p, int cnt, pcap_handler handler, u_char* user) {
  Capture* cap = capture(p);
  if (!cap) return real().dispatch(p, cnt, handler, user);
  if (cap->nonblock && !readable_now(p)) return 0;
  Counting c{handler, user};
  const int rc = real().dispatch(p, cnt, count_and_deliver, reinterpret_cast<u_char*>(&c));
  return rc < 0 ? rc : c.delivered;
}

int pcap_loop(pcap_t* p, int cnt, pcap_handler handler, u_char* user) {
  if (cnt <= 0 || !capture(p)) return real().loop(p, cnt, handler, user);
  Counting c{handler, user};
  while (c.delivered < cnt) {
    // Reads at most what is still wanted, so never delivers more.
    const int rc = real().dispatch(p, cnt - c.delivered, count_and_deliver, reinterpret_cast<u_char*>(&c));
    if (rc < 0) return rc;
  }
  return 0;
}

static void keep_one(u_char* arg, const pcap_pkthdr* h, const u_char* bytes) {
  auto* cap = reinterpret_cast<Capture*>(arg);
  cap->hdr = *h;
  cap->data = bytes;
}

int pcap_next_ex(pcap_t* p, pcap_pkthdr** hdr, const u_char** data) {
  Capture* cap = capture(p);
  if (!cap) return real().next_ex(p, hdr, data);
  for (;;) {
    if (cap->nonblock && !readable_now(p)) return 0;
    cap->data = nullptr;
    const int rc = real().dispatch(p, 1, keep_one, reinterpret_cast<u_char*>(cap));
    if (rc < 0) return rc;
    if (cap->data) {
      *hdr = &cap->hdr;
      *data = cap->data;
      return 1;
    }
  }
}

const u_char* pcap_next(pcap_t* p, pcap_pkthdr* h) {
  if (!capture(p)) return real().next(p, h);
  pcap_pkthdr* hp;
  const u_char* data;
  if (pcap_next_ex(p, &hp, &data) != 1) return nullptr;
  *h = *hp;
  return data;
}

int pcap_inject(pcap_t* p, const void* buf, size_t size) {
  Capture* cap = capture(p);
  if (!cap) return real().inject(p, buf, size);
  for (int tries = 0;; tries++) {
    const int rc = real().inject(p, buf, size);
    // Sent now, as on every other libpcap backend (one sync per frame).
    if (rc > 0) ioctl(pcap_fileno(p), NIOCTXSYNC, nullptr);
    if (rc != 0 || size == 0 || cap->nonblock) return rc;
    // Blocking: wait for room. A frame of several slots may find some room
    // but not enough: then wait a millisecond between tries, not spin.
    pollfd pf{pcap_fileno(p), POLLOUT, 0};
    if (poll(&pf, 1, -1) < 0 || (pf.revents & POLLERR)) return rc;
    if (tries > 0) poll(nullptr, 0, 1);
  }
}

int pcap_sendpacket(pcap_t* p, const u_char* buf, int size) {
  if (size <= 0 || !capture(p)) return real().sendpacket(p, buf, size);
  return pcap_inject(p, buf, size_t(size)) == size ? 0 : -1;
}

int pcap_stats(pcap_t* p, pcap_stat* ps) {
  const int rc = real().stats(p, ps);
  Capture* cap = capture(p);
  uint64_t drops;
  if (rc == 0 && cap && rx_drops(p, &drops)) ps->ps_drop = u_int(drops - cap->drops_at_open);
  return rc;
}

void pcap_close(pcap_t* p) {
  int promisc_fd = -1;
  {
    Captures& c = captures();
    std::lock_guard<std::mutex> g(c.mu);
    auto it = c.netmap.find(p);
    if (it != c.netmap.end()) promisc_fd = it->second.promisc_fd, c.netmap.erase(it);
    c.other.erase(p);
    c.device.erase(p);
    g_closes.fetch_add(1, std::memory_order_release);
  }
  if (real().close) real().close(p);
  if (promisc_fd >= 0) ::close(promisc_fd);
}

}  // extern "C"
