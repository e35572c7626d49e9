// NIC ports ("netmap:IF", "netmap:IF-N", "netmap:IF^", "netmap:IF*"): the
// interfaces of the host, as netmap's native and generic adapters.
//
// The port has one ring pair per hardware queue and one host ring pair, in
// the global region (as netmap's NIC ports). A process that binds a ring
// opens the kernel object under it (nic.h): an AF_XDP socket on the queue
// (the default, as netmap's native mode), or an AF_PACKET socket with
// mmap'ed rings (netmap's emulated "generic" mode), and for the host rings a
// tap device spliced into the interface by two tc programs. txsync copies
// the slots into the socket's ring and kicks it; rxsync copies what the
// socket received into free slots. Slot ownership is netmap's: the
// application's [head, tail), the kernel's the rest.
//
// The backend is chosen when the process first binds a ring of the
// interface: AF_XDP if its XDP program can be attached, else AF_PACKET, or
// what UNETMAP_NIC=xdp|packet forces. The choice and why are printed with
// UNETMAP_VERBOSE=1 and kept in the port entry for the tools.
//
// NS_FORWARD works as netmap's: a NIC rx ring's marked slots go up to the
// host stack (through the host rings' tap, so only while this process has
// them open: netmap:IF*), a host rx ring's go out on the wire.
//
// One process at a time may bind a given NIC ring (the socket is its
// own). Processes that bind different queues of one interface share its
// XDP program: the second finds the first's program and map, and holds the
// program's link, so the program stays while any of them lives.
#include "ports/nic/nic.h"

#include <errno.h>
#include <linux/if_packet.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>

namespace unetmap {
namespace nic {

const char* backend_name(Backend b) {
  switch (b) {
    case Backend::kXdp: return "AF_XDP";
    case Backend::kPacket: return "AF_PACKET";
    default: return "none";
  }
}

namespace {

// The process's interfaces in use, by name.
std::mutex g_mu;
std::map<std::string, Iface*> g_ifaces;

// Queues and MTU come from the interface itself (ethtool and ifreq
// ioctls), not sysfs: a process that entered another network namespace
// still sees the sysfs of the one it was started in.
// A socket binds a queue that exists both ways, so a ring pair per queue
// that has an rx and a tx side.
struct IfInfo {
  uint32_t queues = 1, mtu = 1500;
};

IfInfo if_info(const std::string& ifname) {
  IfInfo r;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return r;
  ifreq ifr{};
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname.c_str());
  if (ioctl(s, SIOCGIFMTU, &ifr) == 0) r.mtu = uint32_t(ifr.ifr_mtu);
  ethtool_channels ch{};
  ch.cmd = ETHTOOL_GCHANNELS;
  ifr.ifr_data = reinterpret_cast<char*>(&ch);
  if (ioctl(s, SIOCETHTOOL, &ifr) == 0)
    r.queues = std::max(1u, std::min(ch.rx_count, ch.tx_count) + ch.combined_count);
  close(s);
  return r;
}

Backend wanted_backend(std::string* why) {
  const char* e = getenv("UNETMAP_NIC");
  if (!e || !*e || !strcmp(e, "auto")) return Backend::kNone;
  if (!strcmp(e, "xdp") || !strcmp(e, "native")) return Backend::kXdp;
  if (!strcmp(e, "packet") || !strcmp(e, "generic")) return Backend::kPacket;
  *why = std::string("UNETMAP_NIC='") + e + "' is not one of auto, xdp, packet";
  return Backend::kNone;
}

bool verbose() {
  const char* v = getenv("UNETMAP_VERBOSE");
  return v && *v && strcmp(v, "0");
}

// Per bound kring: the queue serving it.
struct NicKring {
  Iface* ifc = nullptr;
  std::shared_ptr<Queue> q;
  bool rx_started = false;
};

Iface* iface_get(const std::string& name, int* err, std::string* why) {
  auto it = g_ifaces.find(name);
  if (it != g_ifaces.end()) return it->second;
  auto* ifc = new Iface;
  ifc->name = name;
  ifc->ifindex = int(if_nametoindex(name.c_str()));
  if (!ifc->ifindex) {
    *err = ENXIO;
    *why = "no interface '" + name + "' in this network namespace";
    delete ifc;
    return nullptr;
  }
  IfInfo info = if_info(name);
  ifc->nqueues = std::min(info.queues, kMaxRings);
  ifc->mtu = info.mtu;
  ifc->queues.resize(ifc->nqueues);
  g_ifaces[name] = ifc;
  return ifc;
}

void iface_put(Iface* ifc) {
  if (--ifc->refs > 0) return;
  g_ifaces.erase(ifc->name);
  delete ifc;
}

// The backend of a new interface: AF_XDP if its XDP program can be
// attached (which also proves the rights it needs), else AF_PACKET, or
// what UNETMAP_NIC forces. The program passes every frame to the host
// stack until an rx ring puts a socket in its map.
int choose_backend(Iface& ifc, std::string* why) {
  std::string bad;
  Backend want = wanted_backend(&bad);
  if (!bad.empty()) {
    *why = bad;
    return EINVAL;
  }
  if (want == Backend::kPacket) {
    ifc.backend = Backend::kPacket;
    ifc.why_backend = "AF_PACKET: forced by UNETMAP_NIC";
    return 0;
  }
  int err = make_xdp_to_xsk(ifc.nqueues, &ifc.xsk, why);
  if (!err) err = attach_xdp(ifc.xsk.prog.get(), ifc.ifindex, &ifc.xdp_link, &ifc.xdp_native, why);
  if (err == EBUSY) {  // another unetmap process has other queues of this interface
    ifc.xsk = XskProgram{};
    std::string jwhy;
    if (join_xdp_to_xsk(ifc.ifindex, &ifc.xsk, &ifc.xdp_link, &jwhy) == 0) {
      ifc.backend = Backend::kXdp;
      ifc.why_backend = "AF_XDP, sharing the XDP program another unetmap process attached";
      return 0;
    }
    *why = jwhy;
  }
  if (!err) {
    ifc.backend = Backend::kXdp;
    ifc.why_backend = ifc.xdp_native ? "AF_XDP, XDP in the driver" : "AF_XDP, generic XDP (no XDP in the driver)";
    return 0;
  }
  ifc.xsk = XskProgram{};
  if (want == Backend::kXdp) return err;
  ifc.backend = Backend::kPacket;
  ifc.why_backend = "AF_PACKET: AF_XDP unavailable (" + *why + ")";
  why->clear();
  return 0;
}

// The socket of hardware queue q; the backend is chosen at the first one
// (host rings alone need none).
std::shared_ptr<Queue> open_queue(Iface& ifc, uint32_t q, uint32_t nslots, int* err,
                                  std::string* why) {
  if (ifc.backend == Backend::kNone) {
    if ((*err = choose_backend(ifc, why)) != 0) return nullptr;
    // The interface is in netmap mode: the stack no longer transmits on it.
    // Without tcx (Linux < 6.6) it still does: said, not fatal.
    std::string cut_why;
    int e = make_drop_all(&ifc.cut_prog, &cut_why);
    if (!e) e = attach_tc(ifc.cut_prog.get(), ifc.ifindex, Hook::kEgress, false, &ifc.cut_link, &cut_why);
    if (e) ifc.why_backend += "; the stack still transmits on the interface (" + cut_why + ")";
  }
  return ifc.backend == Backend::kXdp ? open_xsk(ifc, q, nslots, err, why)
                                      : open_packet(ifc, q, nslots, err, why);
}

// The wire, for frames from the host rings: a socket that bypasses the
// qdisc (and so the tc program that diverts the stack's output).
bool send_wire(Iface& ifc, const uint8_t* f, uint32_t len) {
  int fd;
  {
    std::lock_guard<std::mutex> g(g_mu);  // a rare path: the lock costs nothing here
    if (!ifc.raw_tx) {
      Fd s(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
      int one = 1;
      sockaddr_ll a{};
      a.sll_family = AF_PACKET;
      a.sll_ifindex = ifc.ifindex;
      if (!s || setsockopt(s.get(), SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) ||
          bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a))
        return false;
      ifc.raw_tx = std::move(s);
    }
    fd = ifc.raw_tx.get();
  }
  return send(fd, f, len, MSG_DONTWAIT) == ssize_t(len);
}

// NS_FORWARD, on a ring with NR_FORWARD set: the slots the application
// releases with the flag go to the other side, as netmap passes them: what
// a NIC rx ring received goes up to the host stack, what a host rx ring
// got from the stack goes out on the wire.
void forward_marked(Kring& k, uint32_t head, Iface& ifc) {
  static thread_local uint8_t frame[65536];
  const uint32_t n = k.nslots;
  std::shared_ptr<Queue> host;
  if (!k.host)
    for (const auto& w : ifc.host)
      if ((host = w.lock())) break;
  for (uint32_t i = k.ks->hwcur.load(std::memory_order_relaxed); i != head;) {
    uint32_t ns = packet_slots(k.ring, i, head, n);
    if (ns == 0) break;
    if (k.ring->slot[i].flags & NS_FORWARD) {
      uint32_t len = tx_gather(k, i, ns, frame, sizeof frame);
      bool ok = len && (k.host ? send_wire(ifc, frame, len) : host && host->inject(frame, len));
      if (!ok) k.ks->drops++;
    }
    i = ring_add(i, ns, n);
  }
}

class NicAdapter final : public Adapter {
 public:
  const char* grammar() const override {
    return "the interfaces of this network namespace (IF, IF-N, IF^, IF*)";
  }

  // Any name of an interface of this network namespace that no other
  // port type claims.
  bool name_fallback() const override { return true; }
  bool owns(std::string_view name) const override {
    if (name.empty() || name.size() >= IFNAMSIZ) return false;
    if (name.find_first_of(":{}") != std::string_view::npos) return false;
    return if_nametoindex(std::string(name).c_str()) != 0;
  }

  int create(Registry& reg, int p, const PortRequest& req, std::string* why) const override {
    PortEntry& pe = reg.port(p);
    pe.mem_id = req.mem_id ? req.mem_id : 1;
    IfInfo info = if_info(req.name);
    pe.nrings[kTx] = pe.nrings[kRx] = uint16_t(std::min(info.queues, kMaxRings));
    for (int d : {kTx, kRx}) {
      pe.nslots[d] = req.nslots[d] ? req.nslots[d] : 1024;
      // Host rings share the ring table with the hardware rings.
      pe.nhost[d] = req.nhost[d] ? req.nhost[d] : 1;
      if (pe.nrings[d] + pe.nhost[d] > kMaxRings + 1) {
        *why = "netmap:" + req.name + " has " + std::to_string(pe.nrings[d]) + " rings: at most " +
               std::to_string(kMaxRings + 1 - pe.nrings[d]) + " host rings";
        return EINVAL;
      }
    }
    int err = 0;
    auto region = Region::get(pe.mem_id, RegionConfig::from_env(), &err, why);
    if (!region) return err;
    return make_port_rings(reg, p, *region, why);
  }

  int kring_init(Registry& reg, Kring& k, std::string* why) const override {
    const PortEntry& pe = reg.port(k.port);
    if (k.ks->users > 1) {
      *why = std::string("netmap:") + pe.name + ": " + (k.dir == kTx ? "tx" : "rx") + " ring " +
             std::to_string(k.id) + " is bound by another registration (NIC rings have one user)";
      return EBUSY;
    }
    std::lock_guard<std::mutex> g(g_mu);
    int err = 0;
    Iface* ifc = iface_get(pe.name, &err, why);
    if (!ifc) return err;
    ifc->refs++;
    auto* nk = new NicKring;
    nk->ifc = ifc;
    if (k.host) {
      // Host rx ring i reads tap queue i; host tx ring i writes queue i
      // modulo the host rx rings (a queue nobody reads would lose flows).
      const uint32_t hi = k.id - pe.nrings[k.dir];
      nk->q = open_host(*ifc, k.dir == kRx ? hi : hi % pe.nhost[kRx], &err, why);
    } else if (k.id < ifc->nqueues) {
      nk->q = ifc->queues[k.id].lock();
      if (!nk->q && (nk->q = open_queue(*ifc, k.id, k.nslots, &err, why)))
        ifc->queues[k.id] = nk->q;
    } else {
      err = EINVAL;
      *why = "interface has " + std::to_string(ifc->nqueues) + " queues";
    }
    if (nk->q && k.dir == kRx && !err) {
      err = nk->q->start_rx(why);
      nk->rx_started = !err;
    }
    if (!nk->q || err) {
      delete nk;
      iface_put(ifc);
      return err ? err : EIO;
    }
    port_ext<NicPortExt>(reg.port(k.port)).backend = ifc->backend;
    if (verbose() && !ifc->why_backend.empty()) {
      fprintf(stderr, "unetmap: netmap:%s: %s\n", pe.name, ifc->why_backend.c_str());
      ifc->why_backend.clear();  // said once
    }
    k.priv = nk;
    return 0;
  }

  void kring_fini(Kring& k) const override {
    auto* nk = static_cast<NicKring*>(k.priv);
    if (!nk) return;
    std::lock_guard<std::mutex> g(g_mu);
    if (nk->rx_started) nk->q->stop_rx();
    Iface* ifc = nk->ifc;
    delete nk;  // the last kring of a queue closes its socket
    k.priv = nullptr;
    iface_put(ifc);
  }

  int kring_wait_fd(const Kring& k) const override {
    auto* nk = static_cast<NicKring*>(k.priv);
    return nk ? nk->q->fd() : -1;
  }

  void txsync(Kring& k, uint32_t head) const override {
    static_cast<NicKring*>(k.priv)->q->txsync(k, head);
  }
  void rxsync(Kring& k, uint32_t head) const override {
    auto* nk = static_cast<NicKring*>(k.priv);
    if (k.ring->flags & NR_FORWARD) forward_marked(k, head, *nk->ifc);
    nk->q->rxsync(k, head);
  }
};

}  // namespace

Backend port_backend(const PortEntry& pe) {
  return pe.kind != kNoPort && pe.kind == nic_adapter().kind() ? port_ext<NicPortExt>(pe).backend
                                                                 : Backend::kNone;
}
}  // namespace nic

const Adapter& nic_adapter() {
  static nic::NicAdapter a;
  return a;
}

}  // namespace unetmap
