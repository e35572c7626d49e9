// AF_PACKET backend (netmap's emulated, "generic" mode): works on any
// interface. Per hardware ring, one socket with an mmap'ed TPACKET_V3 rx
// ring (blocks of frames, retired by the kernel when full or after 1 ms),
// and one that sends with sendmmsg, bypassing the qdisc: one system call
// per batch of up to 256 frames, gathered by the kernel straight from the
// netmap buffers. (A TPACKET tx ring would hand the driver skbs that point
// into the ring's pages; veth and others must then copy them again, which
// costs more than the copy sendmmsg makes.)
//
// While an rx ring is bound, a tc ingress program drops what the wire
// brings after the sockets have had their copy, so the host stack no
// longer sees it (netmap's semantics for a NIC in netmap mode); frames a
// host ring injects carry a mark that lets them through, and a socket
// filter keeps them off the rx rings. With several rings, the sockets form
// a fanout group: flows are hashed across the rings (AF_PACKET cannot see
// hardware queues). Frames the stack merged (GRO, a veth peer's TSO) are
// cut back to the wire's size, and checksums left to the hardware are
// finished (the packet engine's offloads, core/engine.h).
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "core/engine.h"
#include "ports/nic/nic.h"

namespace unetmap::nic {

namespace {

constexpr uint32_t kBlock = 1u << 18;  // rx block size
constexpr uint32_t kBlocks = 32;
constexpr uint32_t kTxBatch = 256;  // frames per sendmmsg

int fail(std::string* why, const std::string& what) {
  int err = errno;
  *why = "AF_PACKET: " + what + ": " + strerror(err);
  return err;
}

class PacketQueue final : public Queue {
 public:
  explicit PacketQueue(Iface& ifc) : ifc_(ifc) {}
  ~PacketQueue() override;
  int open_tx(std::string* why);

  void txsync(Kring& k, uint32_t head) override;
  void rxsync(Kring& k, uint32_t head) override;
  int fd() const override { return rx_fd_ >= 0 ? rx_fd_ : tx_fd_; }
  int start_rx(std::string* why) override;
  void stop_rx() override;

 private:
  int bind_to(int fd, uint16_t proto, std::string* why);
  int deliver(Kring& k, uint32_t* tail, uint32_t* room, uint8_t* data, uint32_t len,
              bool csum_not_ready);
  void close_rx();
  uint32_t tx_packet(const Kring& k, uint32_t i, uint32_t head, iovec* iov, uint32_t cap, bool* ok);

  Iface& ifc_;
  int tx_fd_ = -1, rx_fd_ = -1;
  char* rx_map_ = nullptr;
  mmsghdr msgs_[kTxBatch];
  iovec iov_[kTxBatch * 2];
  // rx position: block, packets left in it, next packet.
  uint32_t rx_block_ = 0, rx_left_ = 0;
  char* rx_pkt_ = nullptr;
};

PacketQueue::~PacketQueue() {
  close_rx();
  if (tx_fd_ >= 0) close(tx_fd_);
}

void PacketQueue::close_rx() {
  if (rx_map_) munmap(rx_map_, size_t(kBlock) * kBlocks);
  if (rx_fd_ >= 0) close(rx_fd_);
  rx_map_ = nullptr;
  rx_fd_ = -1;
  rx_left_ = 0;
  rx_block_ = 0;
}

int PacketQueue::bind_to(int fd, uint16_t proto, std::string* why) {
  sockaddr_ll a{};
  a.sll_family = AF_PACKET;
  a.sll_protocol = htons(proto);
  a.sll_ifindex = ifc_.ifindex;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a)) return fail(why, "bind to " + ifc_.name);
  return 0;
}

int PacketQueue::open_tx(std::string* why) {
  // Protocol 0: this socket receives nothing.
  tx_fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (tx_fd_ < 0) return fail(why, "socket");
  int one = 1, sndbuf = 4 << 20;
  setsockopt(tx_fd_, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
  setsockopt(tx_fd_, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  return bind_to(tx_fd_, 0, why);
}

int PacketQueue::start_rx(std::string* why) {
  rx_fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (rx_fd_ < 0) return fail(why, "socket");
  int v = TPACKET_V3, one = 1;
  if (setsockopt(rx_fd_, SOL_PACKET, PACKET_VERSION, &v, sizeof v)) return fail(why, "TPACKET_V3");
  setsockopt(rx_fd_, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
  if (int e = filter_injected(rx_fd_)) {
    errno = e;
    return fail(why, "socket filter");
  }
  tpacket_req3 req{};
  req.tp_block_size = kBlock;
  req.tp_block_nr = kBlocks;
  req.tp_frame_size = 2048;
  req.tp_frame_nr = kBlock / 2048 * kBlocks;
  req.tp_retire_blk_tov = 1;
  if (setsockopt(rx_fd_, SOL_PACKET, PACKET_RX_RING, &req, sizeof req)) return fail(why, "rx ring");
  void* m = mmap(nullptr, size_t(kBlock) * kBlocks, PROT_READ | PROT_WRITE, MAP_SHARED, rx_fd_, 0);
  if (m == MAP_FAILED) return fail(why, "mmap of the rx ring");
  rx_map_ = static_cast<char*>(m);
  if (int err = bind_to(rx_fd_, ETH_P_ALL, why)) return err;
  if (ifc_.nqueues > 1) {
    int arg = int(ifc_.ifindex & 0xffff) | (PACKET_FANOUT_HASH << 16);
    if (setsockopt(rx_fd_, SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg)) return fail(why, "fanout");
  }
  if (ifc_.packet_rx++ == 0) {
    // Without tcx (Linux < 6.6) the stack keeps getting the wire's frames
    // too: said, not fatal.
    std::string drop_why;
    int e = make_drop_unmarked(&ifc_.drop_prog, &drop_why);
    if (!e) e = attach_tc(ifc_.drop_prog.get(), ifc_.ifindex, Hook::kIngress, false, &ifc_.drop_link, &drop_why);
    if (e) ifc_.why_backend += "; the stack still receives the wire's frames (" + drop_why + ")";
  }
  return 0;
}

void PacketQueue::stop_rx() {
  close_rx();
  if (--ifc_.packet_rx == 0) {
    ifc_.drop_link = Fd();
    ifc_.drop_prog = Fd();
  }
}

// One received frame onto the ring: cut back to the wire's size if the
// stack merged it (core/engine.h), its checksum finished if the sender left it
// to the hardware. The number of frames put, 0 if dropped, -1 if the ring
// has no room for it now.
int PacketQueue::deliver(Kring& k, uint32_t* tail, uint32_t* room, uint8_t* data, uint32_t len,
                         bool csum_not_ready) {
  const uint32_t wire = ifc_.mtu + 18;  // Ethernet header and a VLAN tag
  if (len > wire) {
    if (*room < tcp_segments_max(len, ifc_.mtu)) return -1;
    int put = 0;
    if (tcp_segment(data, len, ifc_.mtu, [&](uint8_t* f, uint32_t n) { put += rx_put(k, tail, room, f, n); }))
      return put;
  }
  if (csum_not_ready) fix_l4_checksum(data, len);
  if (rx_put(k, tail, room, data, len)) return 1;
  return len <= k.region->cfg().buf_size * (k.nslots / 2) ? -1 : 0;
}

void PacketQueue::rxsync(Kring& k, uint32_t head) {
  KringState* s = k.ks;
  s->hwcur.store(head, std::memory_order_relaxed);
  if (!rx_map_) return;
  uint32_t room = rx_room(s, k.nslots);
  uint32_t tail = s->hwtail.load(std::memory_order_relaxed);
  uint64_t taken = 0, bytes = 0;
  while (room > 0) {
    auto* b = reinterpret_cast<tpacket_block_desc*>(rx_map_ + size_t(rx_block_) * kBlock);
    if (rx_left_ == 0) {
      if (!(__atomic_load_n(&b->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) break;
      rx_left_ = b->hdr.bh1.num_pkts;
      rx_pkt_ = reinterpret_cast<char*>(b) + b->hdr.bh1.offset_to_first_pkt;
    }
    while (rx_left_ > 0) {
      auto* h = reinterpret_cast<tpacket3_hdr*>(rx_pkt_);
      uint8_t* data = reinterpret_cast<uint8_t*>(rx_pkt_ + h->tp_mac);
      int r = deliver(k, &tail, &room, data, h->tp_snaplen, h->tp_status & TP_STATUS_CSUMNOTREADY);
      if (r < 0) break;  // wait for room
      if (r == 0) s->drops++;
      taken += uint32_t(r);
      bytes += h->tp_snaplen;
      rx_pkt_ += h->tp_next_offset;
      rx_left_--;
    }
    if (rx_left_ > 0) break;
    __atomic_store_n(&b->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    rx_block_ = (rx_block_ + 1) % kBlocks;
  }
  s->packets += taken;
  s->bytes += bytes;
  s->hwtail.store(tail, std::memory_order_release);
}

// The packet at slot i, among the slots up to head: each slot read once
// (the application may rewrite it at any time, also after the sync
// prologue's check) and checked, its iovec made from that copy, up to cap
// of them. Its slots (0 if its chain does not end before head), and false
// in *ok if a slot names no buffer of the ring, is longer than a buffer,
// or does not fit in cap.
uint32_t PacketQueue::tx_packet(const Kring& k, uint32_t i, uint32_t head, iovec* iov, uint32_t cap,
                                bool* ok) {
  const uint32_t n = k.nslots, avail = ring_dist(i, head, n), bsize = k.region->cfg().buf_size;
  *ok = true;
  for (uint32_t c = 0; c < avail; i = next_slot(i, n)) {
    const SlotCopy sl = read_slot(k.ring->slot, i);
    uint8_t* b = ring_buf(k, sl.buf_idx);
    if (c < cap && b && sl.len <= bsize)
      iov[c] = {b, sl.len};
    else
      *ok = false;
    c++;
    if (!(sl.flags & NS_MOREFRAG)) return c;
  }
  return 0;
}

void PacketQueue::txsync(Kring& k, uint32_t head) {
  KringState* s = k.ks;
  const uint32_t n = k.nslots;
  uint32_t cur = s->hwcur.load(std::memory_order_relaxed);
  uint64_t sent = 0, bytes = 0;
  while (cur != head) {
    // One batch: a message per packet, an iovec per slot. A bad packet
    // (see tx_packet) ends the batch, and is dropped at the start of one.
    uint32_t nmsg = 0, niov = 0, i = cur;
    while (i != head && nmsg < kTxBatch) {
      bool ok;
      uint32_t ns = tx_packet(k, i, head, &iov_[niov], kTxBatch * 2 - niov, &ok);
      if (ns == 0 || !ok) {
        if (ns && nmsg == 0) {
          cur = i = ring_add(i, ns, n);
          s->drops++;
          continue;
        }
        break;
      }
      mmsghdr& m = msgs_[nmsg++];
      m.msg_hdr = msghdr{};
      m.msg_hdr.msg_iov = &iov_[niov];
      m.msg_hdr.msg_iovlen = ns;
      niov += ns;
      i = ring_add(i, ns, n);
    }
    if (nmsg == 0) break;
    int r = sendmmsg(tx_fd_, msgs_, nmsg, MSG_DONTWAIT);
    if (r <= 0) {
      if (r < 0 && errno != EAGAIN && errno != ENOBUFS) {
        cur = ring_add(cur, uint32_t(msgs_[0].msg_hdr.msg_iovlen), n);  // refused (too long...): drop it
        s->drops++;
        continue;
      }
      break;  // the socket's queue is full: the rest at the next sync
    }
    for (int m = 0; m < r; m++) {
      uint32_t ns = uint32_t(msgs_[m].msg_hdr.msg_iovlen);
      cur = ring_add(cur, ns, n);
      bytes += msgs_[m].msg_len;
    }
    sent += uint32_t(r);
    if (uint32_t(r) < nmsg) break;
  }
  s->packets += sent;
  s->bytes += bytes;
  tx_done(s, cur, n);
}

}  // namespace

std::shared_ptr<Queue> open_packet(Iface& ifc, uint32_t q, uint32_t nslots, int* err,
                                   std::string* why) {
  auto p = std::make_shared<PacketQueue>(ifc);  // one socket pair serves any queue number q
  if ((*err = p->open_tx(why)) != 0) return nullptr;
  return p;
}

}  // namespace unetmap::nic
