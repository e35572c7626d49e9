// Host rings of a NIC port: the host stack's side of the interface.
//
// A tap device ("nmhost<ifindex>", no address, no IPv6, no ARP) carries the
// packets: a tc egress program on the interface hands whatever the host
// stack transmits on it to the tap, where the host rx ring reads it; what
// the application puts on the host tx ring is written to the tap, whose tc
// ingress program passes it on to the interface's receive path, marked, so
// the stack takes it as received on the interface. The tap has no offloads,
// so the stack segments and checksums what it sends before the ring sees
// it; frames the ring injects get their TCP/UDP checksum recomputed
// (offload.h), since they may come from a peer that left it to hardware.
// The tap and both programs go with the process.
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "ports/nic/offload.h"
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

class HostQueue final : public Queue {
 public:
  explicit HostQueue(Iface& ifc) : ifc_(ifc) {}
  int open(std::string* why);

  void txsync(Kring& k, uint32_t head) override;
  void rxsync(Kring& k, uint32_t head) override;
  int fd() const override { return tap_.get(); }
  bool inject(uint8_t* frame, uint32_t len) override;

 private:
  int set_up(const char* name, std::string* why);

  Iface& ifc_;
  Fd tap_;
  Fd to_tap_prog_, to_tap_link_;    // interface egress -> tap
  Fd to_stack_prog_, to_stack_link_;  // tap ingress -> interface ingress
  uint8_t frame_[65536];              // a packet gathered from its slots
};

int fail(std::string* why, const std::string& what) {
  int err = errno;
  *why = "host rings: " + what + ": " + strerror(err);
  return err;
}

int HostQueue::set_up(const char* name, std::string* why) {
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

int HostQueue::open(std::string* why) {
  tap_ = Fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!tap_) return fail(why, "open /dev/net/tun");
  ifreq ifr{};
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "nmhost%d", ifc_.ifindex);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (ioctl(tap_.get(), TUNSETIFF, &ifr)) return fail(why, std::string("create tap ") + ifr.ifr_name);
  ioctl(tap_.get(), TUNSETOFFLOAD, 0);
  if (int err = set_up(ifr.ifr_name, why)) return err;
  int tap_index = int(if_nametoindex(ifr.ifr_name));
  int err = make_redirect(tap_index, false, &to_tap_prog_, why);
  if (!err) err = make_redirect(ifc_.ifindex, true, &to_stack_prog_, why);
  if (!err) err = attach_tc(to_stack_prog_.get(), tap_index, Hook::kIngress, false, &to_stack_link_, why);
  if (!err) err = attach_tc(to_tap_prog_.get(), ifc_.ifindex, Hook::kEgress, true, &to_tap_link_, why);
  return err;
}

void HostQueue::rxsync(Kring& k, uint32_t head) {
  KringState* s = k.ks;
  s->hwcur.store(head, std::memory_order_relaxed);
  uint32_t room = rx_room(s, k.nslots);
  uint32_t tail = s->hwtail.load(std::memory_order_relaxed);
  const uint32_t bsize = k.region->cfg().buf_size;
  uint64_t taken = 0, bytes = 0;
  VnetHdr vh;
  while (room > 0) {
    netmap_slot& sl = k.ring->slot[tail];
    iovec iov[2] = {{&vh, sizeof vh}, {k.region->buf(sl.buf_idx), bsize}};
    ssize_t r = readv(tap_.get(), iov, 2);
    if (r < ssize_t(sizeof vh)) break;
    sl.len = uint16_t(r - sizeof vh);
    sl.flags = 0;
    tail = next_slot(tail, k.nslots);
    room--;
    taken++;
    bytes += sl.len;
  }
  s->packets += taken;
  s->bytes += bytes;
  s->hwtail.store(tail, std::memory_order_release);
}

bool HostQueue::inject(uint8_t* frame, uint32_t len) {
  fix_l4_checksum(frame, len);
  VnetHdr vh{};
  iovec iov[2] = {{&vh, sizeof vh}, {frame, len}};
  return writev(tap_.get(), iov, 2) > 0;
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
    cur = (cur + ns) % n;
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

std::shared_ptr<Queue> open_host(Iface& ifc, int* err, std::string* why) {
  auto h = std::make_shared<HostQueue>(ifc);
  if ((*err = h->open(why)) != 0) return nullptr;
  return h;
}

}  // namespace unetmap::nic
