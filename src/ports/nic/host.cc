// Host rings of a NIC port: the host stack's side of the interface.
//
// A multi-queue tap device ("nmhost<ifindex>", no address, no IPv6, no
// ARP) carries the packets: a tc egress program on the interface hands
// whatever the host stack transmits on it to the tap, where host rx ring i
// reads tap queue i (the tap spreads the stack's flows over its queues);
// what the application puts on host tx ring i is written to tap queue
// i % (host rx rings), whose tc ingress program passes it on to the
// interface's receive path, marked, so the stack takes it as received on
// the interface. The tap and its programs (HostTap) are made with the first
// host ring this process binds and go with its last; each bound host rx
// ring attaches its own queue. Host rings of one interface belong to one
// process at a time: another process's tap is refused (EBUSY). The tap has no offloads,
// so the stack segments and checksums what it sends before the ring sees
// it; frames the ring injects get their TCP/UDP checksum recomputed
// (core/engine.h), since they may come from a peer that left it to hardware.
// The tap and both programs go with the process.
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "core/engine.h"
#include "ports/nic/nic.h"

namespace unetmap::nic {

namespace {

// virtio-net's packet header, as the tap reads and writes it
// (linux/virtio_net.h cannot be included from C++).
struct VnetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len, gso_size, csum_start, csum_offset;
};

// Bytes of a frame beyond its IP packet: an Ethernet header and a VLAN tag.
constexpr uint32_t kL2Max = 18;

int fail(std::string* why, const std::string& what) {
  int err = errno;
  *why = "host rings: " + what + ": " + strerror(err);
  return err;
}

// A tap fd attached as one more queue of the tap called name.
Fd attach_tap_queue(const std::string& name, std::string* why, int* err) {
  Fd tap(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!tap) {
    *err = fail(why, "open /dev/net/tun");
    return tap;
  }
  ifreq ifr{};
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name.c_str());
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
  if (ioctl(tap.get(), TUNSETIFF, &ifr)) {
    *err = fail(why, "tap " + name);
    return Fd();
  }
  ioctl(tap.get(), TUNSETOFFLOAD, 0);
  return tap;
}

// The tap of an interface's host rings in this process, with its programs.
class HostTap {
 public:
  explicit HostTap(Iface& ifc) : ifc_(ifc), name_("nmhost" + std::to_string(ifc.ifindex)) {}
  // Make the tap and its programs; *first is its first queue, for the
  // caller's host ring (the tap lives while any queue is open).
  int open(Fd* first, std::string* why);
  const std::string& name() const { return name_; }
  uint32_t mtu() const { return ifc_.mtu; }

 private:
  int set_up(const char* name, std::string* why);

  Iface& ifc_;
  std::string name_;
  Fd to_tap_prog_, to_tap_link_;      // interface egress -> tap
  Fd to_stack_prog_, to_stack_link_;  // tap ingress -> interface ingress
};

class HostQueue final : public Queue {
 public:
  HostQueue(std::shared_ptr<HostTap> tap, Fd fd) : tap_(std::move(tap)), fd_(std::move(fd)) {}

  void txsync(Kring& k, uint32_t head) override;
  void rxsync(Kring& k, uint32_t head) override;
  int fd() const override { return fd_.get(); }
  bool inject(uint8_t* frame, uint32_t len) override;

 private:
  std::shared_ptr<HostTap> tap_;
  Fd fd_;
  uint8_t frame_[65536];     // a packet gathered from its slots (txsync)
  uint8_t rx_frame_[65536];  // what follows a received frame's first buffer (rxsync)
};

int HostTap::set_up(const char* name, std::string* why) {
  std::ofstream(std::string("/proc/sys/net/ipv6/conf/") + name + "/disable_ipv6") << "1";
  Fd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq ifr{};
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
  ifr.ifr_mtu = int(ifc_.mtu);
  if (ioctl(s.get(), SIOCSIFMTU, &ifr)) return fail(why, "MTU of the tap");
  ifr.ifr_flags = IFF_UP | IFF_NOARP;
  if (ioctl(s.get(), SIOCSIFFLAGS, &ifr)) return fail(why, "bring the tap up");
  return 0;
}

int HostTap::open(Fd* first, std::string* why) {
  if (if_nametoindex(name_.c_str())) {
    *why = "host rings of " + ifc_.name + " are bound by another process (tap " + name_ + " exists)";
    return EBUSY;
  }
  int err = 0;
  *first = attach_tap_queue(name_, why, &err);
  if (err) return err;
  if ((err = set_up(name_.c_str(), why))) return err;
  int tap_index = int(if_nametoindex(name_.c_str()));
  err = make_redirect(tap_index, false, &to_tap_prog_, why);
  if (!err) err = make_redirect(ifc_.ifindex, true, &to_stack_prog_, why);
  if (!err) err = attach_tc(to_stack_prog_.get(), tap_index, Hook::kIngress, false, &to_stack_link_, why);
  if (!err) err = attach_tc(to_tap_prog_.get(), ifc_.ifindex, Hook::kEgress, true, &to_tap_link_, why);
  return err;
}

// A frame goes from the tap straight into the buffer of the slot at tail,
// the slot read once and its buffer checked first (the application may
// have written any index into a slot the ring owns): a slot that names no
// buffer of the ring is passed over, empty, and counted, the tap not read
// for it. What is longer than a buffer goes on into rx_frame_ and from
// there into the slots after it, a NS_MOREFRAG chain (the packet engine's
// copy, which checks each of them); the tap is read only with room for the
// longest frame the interface's MTU lets the stack send, and a frame the
// ring has no room for all the same is dropped, counted, never cut short.
void HostQueue::rxsync(Kring& k, uint32_t head) {
  KringState* s = k.ks;
  s->hwcur.store(head, std::memory_order_relaxed);
  const uint32_t n = k.nslots;
  uint32_t room = rx_room(s, n);
  uint32_t tail = s->hwtail.load(std::memory_order_relaxed);
  const uint32_t bsize = std::min<uint32_t>(k.region->cfg().buf_size, 0xffff);
  const uint32_t need = std::max<uint32_t>(std::min<uint32_t>((tap_->mtu() + kL2Max + bsize - 1) / bsize, n - 1), 1);
  CopyRule rule;
  rule.dst_buf = bsize;
  rule.max_frame = ~0u;
  uint64_t taken = 0, bytes = 0, drops = 0;
  VnetHdr vh;
  while (room >= need) {
    netmap_slot& sl = k.ring->slot[tail];
    uint8_t* b = ring_buf(k, read_slot(k.ring->slot, tail).buf_idx);
    if (!b) {
      sl.len = 0;
      sl.flags = 0;
      tail = next_slot(tail, n);
      room--;
      drops++;
      continue;
    }
    iovec iov[3] = {{&vh, sizeof vh}, {b, bsize}, {rx_frame_, sizeof rx_frame_}};
    ssize_t r = readv(fd_.get(), iov, 3);
    if (r < ssize_t(sizeof vh)) break;
    const uint32_t len = uint32_t(r - sizeof vh);
    if (len <= bsize) {
      sl.len = uint16_t(len);
      sl.flags = 0;
      tail = next_slot(tail, n);
      room--;
    } else {
      const Frag rest{rx_frame_, len - bsize};
      uint32_t t = next_slot(tail, n), left = room - 1;
      if (len >= bsize + sizeof rx_frame_ ||
          !put_frame([&](uint32_t) { return rest; }, 1, rest.len, rule, k.ring->slot, n, &t, &left,
                     [&](uint32_t i) { return ring_buf(k, i); })) {
        drops++;
        continue;
      }
      sl.len = uint16_t(bsize);
      sl.flags = NS_MOREFRAG;
      tail = t;
      room = left;
    }
    taken++;
    bytes += len;
  }
  s->packets += taken;
  s->bytes += bytes;
  s->drops += drops;
  s->hwtail.store(tail, std::memory_order_release);
}

bool HostQueue::inject(uint8_t* frame, uint32_t len) {
  fix_l4_checksum(frame, len);
  VnetHdr vh{};
  iovec iov[2] = {{&vh, sizeof vh}, {frame, len}};
  return writev(fd_.get(), iov, 2) > 0;
}

void HostQueue::txsync(Kring& k, uint32_t head) {
  KringState* s = k.ks;
  const uint32_t n = k.nslots;
  uint32_t cur = s->hwcur.load(std::memory_order_relaxed);
  uint64_t sent = 0, bytes = 0;
  while (cur != head) {
    uint32_t ns = packet_slots(k.ring, cur, head, n);
    if (ns == 0) break;
    uint32_t len = tx_gather(k, cur, ns, frame_, sizeof frame_);
    bool ok = len && inject(frame_, len);
    if (!ok && len && errno == EAGAIN) break;  // the tap's queue is full: next sync
    cur = ring_add(cur, ns, n);
    if (ok) {
      sent++;
      bytes += len;
    } else {
      s->drops++;
    }
  }
  s->packets += sent;
  s->bytes += bytes;
  tx_done(s, cur, n);
}

}  // namespace

std::shared_ptr<Queue> open_host(Iface& ifc, uint32_t q, int* err, std::string* why) {
  if (q < ifc.host.size())
    if (auto h = ifc.host[q].lock()) return h;
  std::shared_ptr<HostTap> tap = std::static_pointer_cast<HostTap>(ifc.host_tap.lock());
  Fd fd;
  if (!tap) {
    tap = std::make_shared<HostTap>(ifc);
    if ((*err = tap->open(&fd, why)) != 0) return nullptr;
    ifc.host_tap = tap;
  } else {
    fd = attach_tap_queue(tap->name(), why, err);
    if (*err) return nullptr;
  }
  auto h = std::make_shared<HostQueue>(std::move(tap), std::move(fd));
  if (q >= ifc.host.size()) ifc.host.resize(q + 1);
  ifc.host[q] = h;
  return h;
}

}  // namespace unetmap::nic
