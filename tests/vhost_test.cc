// vhost-user ports on VALE switches (src/ports/vhost), and the virtio-net
// headers of VALE ports they rest on (ValeHdr.*): a front end in this
// process (util/vhost_front.h: a virtio-net driver with split rings, as a
// VM's) or DPDK's testpmd with net_virtio_user (split and packed rings,
// server and client modes), the backend run by the worker service as for
// vale-ctl -a valeX:NAME,vhost=PATH, and netmap ports opened here on the
// same switch. Frames are checked byte by byte and in order; every wait is
// on an event (a frame, an interrupt, a worker's state, a line printed)
// with a deadline.
//
// Hostile front ends (VhostHostile.*) send malformed messages, garbage
// rings, random message storms and shrink the guest's memory under the
// backend: the backend closes the connection or stops the queue, or at
// worst its worker dies and is restarted; the switch and its other ports
// never notice.
#include <gtest/gtest.h>
#include <libnetmap.h>
#include <net/netmap_user.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/worker.h"
#include "ports/vale/vale.h"
#include "ports/vhost/control.h"
#include "ports/vhost/virtq.h"
#include "util/proc.h"
#include "util/test_util.h"
#include "util/offload_frames.h"
#include "util/vhost_front.h"

namespace {

using nmtest::now_ms;
using nmtest::Proc;
using nmtest::VhostFront;
namespace vh = unetmap::vhost;

// A socket path beside the test's runtime directory (removed with it).
std::string sock_path(const std::string& name) {
  const std::string p = std::string(getenv("UNETMAP_DIR")) + "." + name + ".sock";
  if (p.size() >= sizeof(sockaddr_un{}.sun_path)) abort();
  return p;
}

// Frame `seq` of `len` bytes: broadcast (every other port of the switch
// gets it), an experimental ethertype, the sequence number, then bytes
// derived from it.
std::vector<uint8_t> frame(uint32_t seq, uint32_t len) {
  std::vector<uint8_t> f(len);
  memset(f.data(), 0xff, 6);
  const uint8_t src[6] = {0x02, 0, 0, 0, 0, 0x01};
  memcpy(f.data() + 6, src, 6);
  f[12] = 0x88, f[13] = 0xb5;
  memcpy(f.data() + 14, &seq, 4);
  uint64_t st = nmtest::mix64(seq + 0x1234);
  for (uint32_t i = 18; i < len; i++) {
    if ((i - 18) % 8 == 0) st = nmtest::mix64(st);
    f[i] = uint8_t(st >> (8 * ((i - 18) % 8)));
  }
  return f;
}
// Lengths: mostly Ethernet sizes, every 7th a jumbo frame (several VALE
// buffers, several guest buffers).
uint32_t len_of(uint32_t seq) { return seq % 7 == 6 ? 9000 + seq % 100 : 60 + (seq * 37) % 1455; }

// A netmap port of the switch, in this process.
struct Port {
  nmport_d* d = nullptr;
  explicit Port(const std::string& name) {
    d = nmport_open(name.c_str());
    if (!d) abort();
  }
  ~Port() { nmport_close(d); }
  // Send f (several slots if it must); false if the ring has no room.
  bool send(const std::vector<uint8_t>& f) {
    netmap_ring* r = NETMAP_TXRING(d->nifp, 0);
    const uint32_t b = r->nr_buf_size, need = uint32_t((f.size() + b - 1) / b);
    if (nm_ring_space(r) < need) {
      ioctl(d->fd, NIOCTXSYNC, nullptr);
      if (nm_ring_space(r) < need) return false;
    }
    uint32_t i = r->cur;
    for (size_t off = 0; off < f.size();) {
      netmap_slot& s = r->slot[i];
      const size_t k = std::min<size_t>(b, f.size() - off);
      memcpy(NETMAP_BUF(r, s.buf_idx), f.data() + off, k);
      s.len = uint16_t(k);
      off += k;
      s.flags = off < f.size() ? NS_MOREFRAG : 0;
      i = nm_ring_next(r, i);
    }
    r->head = r->cur = i;
    return ioctl(d->fd, NIOCTXSYNC, nullptr) == 0;
  }
  // The next frame (waiting at most timeout_ms).
  bool recv(std::vector<uint8_t>* f, int timeout_ms) {
    netmap_ring* r = NETMAP_RXRING(d->nifp, 0);
    const double end = now_ms() + timeout_ms;
    while (nm_ring_empty(r)) {
      ioctl(d->fd, NIOCRXSYNC, nullptr);
      if (!nm_ring_empty(r)) break;
      const int left = int(end - now_ms());
      if (left <= 0) return false;
      pollfd p{d->fd, POLLIN, 0};
      poll(&p, 1, left);
    }
    f->clear();
    uint32_t i = r->cur;
    for (;;) {
      const netmap_slot& s = r->slot[i];
      const uint8_t* b = reinterpret_cast<const uint8_t*>(NETMAP_BUF(r, s.buf_idx));
      f->insert(f->end(), b, b + s.len);
      i = nm_ring_next(r, i);
      if (!(s.flags & NS_MOREFRAG)) break;
      if (i == r->tail) return false;  // VALE delivers whole frames
    }
    r->head = r->cur = i;
    return true;
  }
};

std::string file_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

unetmap::worker::Info worker_info(const std::string& name) {
  unetmap::worker::Info i;
  std::string why;
  unetmap::worker::get(name, &i, &why);
  return i;
}

// Wait until the worker's status contains `what`.
bool status_has(const std::string& name, const std::string& what, int timeout_ms) {
  const double end = now_ms() + timeout_ms;
  while (now_ms() < end) {
    if (worker_info(name).status.find(what) != std::string::npos) return true;
    usleep(2000);
  }
  return false;
}

// Stop queue q of f's device (GET_VRING_BASE): the base it hands back
// into *base. False if no reply came.
bool stop_queue(VhostFront& f, uint32_t q, uint32_t* base) {
  const vh::VringState stop{q, 0};
  vh::MsgHeader h;
  std::string r;
  if (!f.send_msg(vh::kGetVringBase, &stop, sizeof stop) || !f.recv_reply(&h, &r) || r.size() < sizeof stop)
    return false;
  vh::VringState got;
  memcpy(&got, r.data(), sizeof got);
  *base = got.num;
  return true;
}

// The VALE counters of port `name`.
unetmap::ValePortInfo vale_port_info(const std::string& sw, const std::string& name) {
  std::vector<unetmap::ValeSwitchInfo> all;
  std::string why;
  unetmap::vale_list(sw, &all, &why);
  for (auto& s : all)
    for (auto& p : s.ports)
      if (p.name == name) return p;
  return {};
}

class Vhost : public ::testing::Test {
 protected:
  void attach(const std::string& name, bool client = false, uint32_t queues = 1) {
    vh::AttachRequest r;
    r.sw = "vale0";
    r.name = name;
    r.path = sock_path(name);
    r.client = client;
    r.queues = queues;
    std::string why;
    ASSERT_EQ(vh::attach(r, &why), 0) << why;
  }
  // A front end acking `offloads` on vale0:name, once its port's header
  // is `hdr` bytes (what those offloads give it).
  std::unique_ptr<VhostFront> offload_front(const std::string& name, uint64_t offloads, uint32_t hdr);
  // A front end connected and set up on vale0:name.
  std::unique_ptr<VhostFront> front(const std::string& name, VhostFront::Options o = {}) {
    auto f = std::make_unique<VhostFront>(o);
    std::string why;
    if (!f->connect(sock_path(name), 5000) || !f->setup(&why)) {
      ADD_FAILURE() << "front end for " << name << ": " << why;
      return nullptr;
    }
    // Queues are live once the worker says so (its status).
    EXPECT_TRUE(status_has("vale0:" + name, "2 of 2 queues live", 5000)) << worker_info("vale0:" + name).status;
    return f;
  }
};

// Guest -> switch: frames arrive whole, in order, byte for byte, through
// one descriptor each, jumbo frames split over the port's buffers.
TEST_F(Vhost, GuestFramesArriveWholeAndInOrder) {
  attach("vm");
  Port p("vale0:p");
  auto f = front("vm");
  ASSERT_TRUE(f);
  constexpr uint32_t kFrames = 3000;
  uint32_t sent = 0, got = 0;
  std::vector<uint8_t> r;
  while (got < kFrames) {
    while (sent < kFrames && sent - got < 128 && f->send_frame(frame(sent, len_of(sent)))) sent++;
    ASSERT_TRUE(p.recv(&r, 5000)) << "frame " << got << " of " << sent << " sent";
    ASSERT_EQ(r, frame(got, len_of(got))) << "frame " << got;
    got++;
  }
  EXPECT_TRUE(f->tx_drained(5000));
  EXPECT_EQ(vale_port_info("vale0", "vale0:vm").tx_packets, kFrames);
}

// Switch -> guest: frames arrive whole and in order in mergeable buffers
// (jumbo frames over several, num_buffers saying how many), with a zeroed
// virtio-net header.
TEST_F(Vhost, SwitchFramesReachTheGuestInMergeableBuffers) {
  attach("vm");
  Port p("vale0:p");
  auto f = front("vm");
  ASSERT_TRUE(f);
  f->post_rx(256);
  constexpr uint32_t kFrames = 3000;
  std::vector<uint8_t> r;
  vh::NetHdr h;
  uint32_t multi = 0;
  for (uint32_t seq = 0; seq < kFrames; seq++) {
    ASSERT_TRUE(p.send(frame(seq, len_of(seq))));
    ASSERT_TRUE(f->recv_frame(&r, &h, 5000)) << "frame " << seq;
    ASSERT_EQ(r, frame(seq, len_of(seq))) << "frame " << seq;
    EXPECT_EQ(h.flags, 0);
    EXPECT_EQ(h.gso_type, 0);
    EXPECT_EQ(h.num_buffers, (len_of(seq) + 12 + 2047) / 2048);
    multi += h.num_buffers > 1;
  }
  EXPECT_GT(multi, kFrames / 8);
}

// Frames around the size of the guest's buffers: num_buffers exact.
TEST_F(Vhost, MergeableAroundTheBufferSize) {
  attach("vm");
  Port p("vale0:p");
  VhostFront::Options o;
  o.rx_buf = 1536;
  auto f = front("vm", o);
  ASSERT_TRUE(f);
  f->post_rx(256);
  std::vector<uint8_t> r;
  vh::NetHdr h;
  for (uint32_t len = 1500; len < 1560; len++) {
    ASSERT_TRUE(p.send(frame(len, len)));
    ASSERT_TRUE(f->recv_frame(&r, &h, 5000)) << len;
    ASSERT_EQ(r, frame(len, len)) << len;
    EXPECT_EQ(h.num_buffers, len + 12 <= 1536 ? 1 : 2) << len;
  }
  EXPECT_FALSE(f->recv_frame(&r, &h, 100));
}

// Bursts from the switch: every frame once, in order.
TEST_F(Vhost, SwitchBurstsReachTheGuestOnceEach) {
  attach("vm");
  Port p("vale0:p");
  auto f = front("vm");
  ASSERT_TRUE(f);
  f->post_rx(256);
  std::vector<uint8_t> r;
  vh::NetHdr h;
  uint32_t next = 0;
  for (uint32_t sent = 0; sent < 4000;) {
    for (uint32_t k = 0; k < 32; k++, sent++) ASSERT_TRUE(p.send(frame(sent, 60 + sent % 1400)));
    while (next < sent) {
      ASSERT_TRUE(f->recv_frame(&r, &h, 5000)) << next;
      ASSERT_EQ(r, frame(next, 60 + next % 1400)) << next;
      next++;
    }
  }
  EXPECT_FALSE(f->recv_frame(&r, &h, 100));
}

// Frames that came while no guest could take them are dropped (as by a
// link that is down), never delivered late; the worker's status counts them.
TEST_F(Vhost, FramesBeforeTheGuestAreDroppedNotDeliveredLate) {
  attach("vm");
  Port p("vale0:p");
  for (uint32_t seq = 0; seq < 10; seq++) ASSERT_TRUE(p.send(frame(seq, 100)));
  auto f = front("vm");
  ASSERT_TRUE(f);
  f->post_rx(64);
  ASSERT_TRUE(p.send(frame(99, 100)));
  std::vector<uint8_t> r;
  vh::NetHdr h;
  ASSERT_TRUE(f->recv_frame(&r, &h, 5000));
  EXPECT_EQ(r, frame(99, 100));
  EXPECT_TRUE(status_has("vale0:vm", "to guest 1, 10 dropped", 5000)) << worker_info("vale0:vm").status;
}

// Without mergeable buffers a frame must fit one buffer: a longer one is
// dropped and the next is delivered.
TEST_F(Vhost, WithoutMergeableBuffersALongerFrameIsDropped) {
  attach("vm");
  Port p("vale0:p");
  VhostFront::Options o;
  o.mrg = false;
  auto f = front("vm", o);
  ASSERT_TRUE(f);
  f->post_rx(64);
  std::vector<uint8_t> r;
  vh::NetHdr h;
  ASSERT_TRUE(p.send(frame(1, 3000)));  // more than 2048 - 12
  ASSERT_TRUE(p.send(frame(2, 2036)));  // exactly fits
  ASSERT_TRUE(f->recv_frame(&r, &h, 5000));
  EXPECT_EQ(r, frame(2, 2036));
  EXPECT_EQ(h.num_buffers, 1);
}

// The backend takes receive buffers ahead of the frames waiting (to fetch
// their lines early). They are used in the order the guest made them
// available, and those it still holds go back, used and empty, when the
// queue stops: none is lost.
TEST_F(Vhost, ReceiveBuffersTakenAheadAreUsedInOrderAndNoneIsLost) {
  attach("vm");
  Port p("vale0:p");
  VhostFront::Options o;
  o.mrg = false;
  o.rx_buf = 8192;
  auto f = front("vm", o);
  ASSERT_TRUE(f);
  // A short frame, then long ones of three of the switch's slots each.
  constexpr uint32_t kPosted = 8, kFrames = 6;
  const auto len = [](uint32_t seq) { return seq == 0 ? 60u : 5000u; };
  f->post_rx(kPosted);
  for (uint32_t seq = 0; seq < kFrames; seq++) ASSERT_TRUE(p.send(frame(seq, len(seq))));
  const uint16_t* used = f->used(0);
  const uint16_t* avail = f->avail(0);
  const auto used_idx = [&] { return __atomic_load_n(&used[1], __ATOMIC_ACQUIRE); };
  const double end = now_ms() + 5000;
  while (used_idx() < kFrames && now_ms() < end) usleep(1000);
  ASSERT_EQ(used_idx(), kFrames);
  const vh::UsedElem* u = reinterpret_cast<const vh::UsedElem*>(used + 2);
  for (uint32_t k = 0; k < kFrames; k++) {
    ASSERT_EQ(u[k].id, avail[2 + k]) << k;
    ASSERT_EQ(u[k].len, f->hdr_len() + len(k)) << k;
    const uint8_t* b = f->mem() + f->desc(0)[u[k].id].addr + f->hdr_len();
    EXPECT_EQ(std::vector<uint8_t>(b, b + len(k)), frame(k, len(k))) << k;
  }
  uint32_t base = 0;
  ASSERT_TRUE(stop_queue(*f, 0, &base));
  EXPECT_GE(base, kFrames);
  EXPECT_LE(base, kPosted);
  ASSERT_EQ(used_idx(), base);
  for (uint32_t k = kFrames; k < base; k++) {
    EXPECT_EQ(u[k].id, avail[2 + k]) << k;
    EXPECT_EQ(u[k].len, 0u) << k;
  }
}

// A transmit chain may cut header and frame anywhere, over several
// descriptors or an indirect table.
TEST_F(Vhost, ChainedAndIndirectDescriptors) {
  attach("vm");
  Port p("vale0:p");
  VhostFront::Options o;
  o.indirect = true;
  auto f = front("vm", o);
  ASSERT_TRUE(f);
  std::vector<uint8_t> r;
  const std::vector<std::vector<uint32_t>> layouts = {
      {12, 1000}, {5, 7, 500, 500}, {12, 1, 1, 1, 997}, {100, 912}};
  uint32_t seq = 0;
  for (bool indirect : {false, true})
    for (const auto& l : layouts) {
      ASSERT_TRUE(f->send_pieces(frame(seq, 1000), l, indirect));
      ASSERT_TRUE(p.recv(&r, 5000)) << "layout " << seq;
      EXPECT_EQ(r, frame(seq, 1000)) << "layout " << seq;
      seq++;
    }
}

// Event index on, REPLY_ACK off: both ways still work (interrupts as the
// guest asks for them).
TEST_F(Vhost, EventIndexWithoutReplyAck) {
  attach("vm");
  Port p("vale0:p");
  VhostFront::Options o;
  o.event_idx = true;
  o.reply_ack = false;
  auto f = front("vm", o);
  ASSERT_TRUE(f);
  f->post_rx(128);
  std::vector<uint8_t> r;
  vh::NetHdr h;
  for (uint32_t seq = 0; seq < 500; seq++) {
    ASSERT_TRUE(f->send_frame(frame(seq, 200)));
    ASSERT_TRUE(p.recv(&r, 5000));
    ASSERT_EQ(r, frame(seq, 200));
    ASSERT_TRUE(p.send(frame(seq + 1000, 300)));
    ASSERT_TRUE(f->recv_frame(&r, &h, 5000)) << seq;
    ASSERT_EQ(r, frame(seq + 1000, 300));
  }
}

// Two VMs on one switch: what one sends, the other receives.
TEST_F(Vhost, VmToVm) {
  attach("a");
  attach("b");
  auto fa = front("a");
  auto fb = front("b");
  ASSERT_TRUE(fa && fb);
  fb->post_rx(256);
  std::vector<uint8_t> r;
  vh::NetHdr h;
  for (uint32_t seq = 0; seq < 2000; seq++) {
    ASSERT_TRUE(fa->send_frame(frame(seq, len_of(seq))));
    ASSERT_TRUE(fb->recv_frame(&r, &h, 5000)) << seq;
    ASSERT_EQ(r, frame(seq, len_of(seq)));
  }
}

// ---- offloads: checksums and segmentation negotiated with the guest ----

constexpr uint64_t fbit(uint32_t b) { return 1ull << b; }
// What a Linux guest acks: checksums and TSO both ways (UFO only where a
// test says).
constexpr uint64_t kGuestTakes = fbit(vh::kNetGuestCsum) | fbit(vh::kNetGuestTso4) | fbit(vh::kNetGuestTso6);
constexpr uint64_t kHostTakes = fbit(vh::kNetCsum) | fbit(vh::kNetHostTso4) | fbit(vh::kNetHostTso6) |
                                fbit(vh::kNetHostUfo);

// PORT_HDR_SET / GET through /dev/netmap, as an application asks: the errno.
int hdr_set(const std::string& name, uint32_t len) {
  const int fd = open("/dev/netmap", O_RDWR | O_CLOEXEC);
  nmreq_port_hdr ph{};
  ph.nr_hdr_len = len;
  const int err = nmtest::ctrl(fd, NETMAP_REQ_PORT_HDR_SET, name.c_str(), &ph);
  close(fd);
  return err;
}
uint32_t hdr_get(const std::string& name) {
  const int fd = open("/dev/netmap", O_RDWR | O_CLOEXEC);
  nmreq_port_hdr ph{};
  ph.nr_hdr_len = 99;
  const int err = nmtest::ctrl(fd, NETMAP_REQ_PORT_HDR_GET, name.c_str(), &ph);
  close(fd);
  return err ? ~0u : ph.nr_hdr_len;
}

// The port's header length once it is `want` (bounded wait), else what it is.
uint32_t port_hdr_becomes(const std::string& name, uint32_t want, int timeout_ms) {
  const double end = now_ms() + timeout_ms;
  uint32_t h = hdr_get(name);
  while (h != want && now_ms() < end) {
    usleep(2000);
    h = hdr_get(name);
  }
  return h;
}

std::unique_ptr<VhostFront> Vhost::offload_front(const std::string& name, uint64_t offloads, uint32_t hdr) {
  VhostFront::Options o;
  o.offloads = offloads;
  auto f = front(name, o);
  if (f && port_hdr_becomes("vale0:" + name, hdr, 5000) != hdr) {
    ADD_FAILURE() << "vale0:" << name << ": the header is not " << hdr << " bytes";
    return nullptr;
  }
  return f;
}

// A 64000-byte TCPv4 GSO frame as a guest hands it over: its header
// (NEEDS_CSUM, gso TCPv4 at 1448) in 12 bytes, then the frame.
nmtest::Offloaded tso_frame(bool v6 = false) {
  nmtest::Offloaded o = nmtest::offloaded(v6, true, 64000, false);
  o.hdr.gso_type = v6 ? unetmap::kGsoTcp6 : unetmap::kGsoTcp4;
  o.hdr.gso_size = 1448;
  return o;
}

// n frames from p (fewer if they stop coming for 5 s).
std::vector<std::vector<uint8_t>> recv_n(Port& p, size_t n) {
  std::vector<std::vector<uint8_t>> out;
  std::vector<uint8_t> r;
  while (out.size() < n && p.recv(&r, 5000)) out.push_back(r);
  return out;
}

// The backend offers every offload; the port's header follows what the
// guest acks: 12 bytes when it takes checksums and TSO, 0 when not.
TEST_F(Vhost, OffloadsAreOfferedAndThePortHeaderFollowsTheGuest) {
  attach("vm");
  {
    VhostFront probe({});
    ASSERT_TRUE(probe.connect(sock_path("vm"), 5000));
    uint64_t offered = 0;
    ASSERT_TRUE(probe.send_msg(vh::kGetFeatures, nullptr, 0));
    vh::MsgHeader h;
    std::string pl;
    ASSERT_TRUE(probe.recv_reply(&h, &pl));
    ASSERT_EQ(pl.size(), 8u);
    memcpy(&offered, pl.data(), 8);
    EXPECT_EQ(offered & (kGuestTakes | kHostTakes | fbit(vh::kNetGuestUfo)),
              kGuestTakes | kHostTakes | fbit(vh::kNetGuestUfo));
  }
  ASSERT_TRUE(status_has("vale0:vm", "listening", 5000));
  VhostFront::Options o;
  o.offloads = kGuestTakes | kHostTakes;
  {
    auto f = front("vm", o);
    ASSERT_TRUE(f);
    EXPECT_EQ(port_hdr_becomes("vale0:vm", 12, 5000), 12u);
  }
  ASSERT_TRUE(status_has("vale0:vm", "listening", 5000));
  o.offloads = kHostTakes;  // sends offloaded frames, takes none
  auto f = front("vm", o);
  ASSERT_TRUE(f);
  EXPECT_EQ(port_hdr_becomes("vale0:vm", 0, 5000), 0u);
}

// VM to VM with TSO: a 64000-byte TCP frame goes through the switch as
// one frame, header and bytes unchanged (num_buffers aside), into
// mergeable buffers; a port without a header on the same switch gets it
// as 45 wire-size segments that scapy finds right.
TEST_F(Vhost, VmToVmMovesTsoFramesWhole) {
  attach("a");
  attach("b");
  auto fa = offload_front("a", kGuestTakes | kHostTakes, 12);
  auto fb = offload_front("b", kGuestTakes | kHostTakes, 12);
  ASSERT_TRUE(fa && fb);
  Port bare("vale0:bare");
  fb->post_rx(256);
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "TCPv6" : "TCPv4");
    const nmtest::Offloaded t = tso_frame(v6);
    ASSERT_TRUE(fa->send_with_header(t.with_header(12)));
    std::vector<uint8_t> r;
    vh::NetHdr h;
    ASSERT_TRUE(fb->recv_frame(&r, &h, 5000));
    EXPECT_TRUE(r == t.frame) << "the frame changed on the way: " << r.size() << " bytes";
    EXPECT_EQ(h.flags, unetmap::kVnetNeedsCsum);
    EXPECT_EQ(h.gso_type, t.hdr.gso_type);
    EXPECT_EQ(h.gso_size, 1448);
    EXPECT_EQ(h.csum_start, t.hdr.csum_start);
    EXPECT_EQ(h.csum_offset, t.hdr.csum_offset);
    EXPECT_EQ(h.num_buffers, (t.frame.size() + 12 + 2047) / 2048);
    const auto segs = recv_n(bare, 45);
    ASSERT_EQ(segs.size(), 45u);
    EXPECT_EQ(nmtest::scapy_says("tcp", segs, t.payload, 1500, 1448), "");
  }
}

// A guest that sends offloaded frames but takes none (its port has no
// header): the backend finishes them itself, TSO cut at the guest's
// gso_size, UFO into IP fragments, a partial checksum completed; a bad
// header is dropped and counted.
TEST_F(Vhost, BackendFinishesWhatAGuestWithoutAPortHeaderOffloads) {
  attach("vm");
  auto f = offload_front("vm", kHostTakes, 0);
  ASSERT_TRUE(f);
  Port bare("vale0:bare");
  const nmtest::Offloaded t = tso_frame();
  ASSERT_TRUE(f->send_with_header(t.with_header(12)));
  std::vector<uint8_t> r;
  const auto segs = recv_n(bare, 45);
  ASSERT_EQ(segs.size(), 45u);
  EXPECT_EQ(nmtest::scapy_says("tcp", segs, t.payload, 1500, 1448), "");
  nmtest::Offloaded u = nmtest::offloaded(true, false, 5000, false);
  u.hdr.gso_type = unetmap::kGsoUdp, u.hdr.gso_size = 1400;
  ASSERT_TRUE(f->send_with_header(u.with_header(12)));
  const auto frags = recv_n(bare, 4);  // 5008 bytes in 1400s
  ASSERT_EQ(frags.size(), 4u);
  EXPECT_EQ(nmtest::scapy_says("udp", frags, u.payload, 1500, 1400), "");
  const nmtest::Offloaded c = nmtest::offloaded(false, false, 900, false);
  ASSERT_TRUE(f->send_with_header(c.with_header(12)));
  ASSERT_TRUE(bare.recv(&r, 5000));
  EXPECT_EQ(nmtest::scapy_says("csum", {r}, c.payload, 1500, 1500), "");
  nmtest::Offloaded bad = nmtest::offloaded(false, true, 3000, false);
  bad.hdr.gso_type = unetmap::kGsoTcp6, bad.hdr.gso_size = 1000;  // TCPv6 on IPv4
  ASSERT_TRUE(f->send_with_header(bad.with_header(12)));
  ASSERT_TRUE(f->send_frame(frame(1, 100)));
  ASSERT_TRUE(bare.recv(&r, 5000));
  EXPECT_EQ(r, frame(1, 100));
  // 45 segments, 4 fragments, 1 frame, the marker; the bad one dropped.
  EXPECT_TRUE(status_has("vale0:vm", "from guest 51 frames, 1 dropped", 5000)) << worker_info("vale0:vm").status;
}

// Transmit chains the backend finishes (TSO for a port without a header)
// become many frames: ten 64000-byte chains at an MSS of 536 make 120 each,
// more than a batch leaves room for. None is dropped: the ring goes to the
// switch first.
TEST_F(Vhost, ManyFinishedTsoChainsAtOnceAreNotDropped) {
  attach("vm");
  auto f = offload_front("vm", kHostTakes, 0);
  ASSERT_TRUE(f);
  nmtest::Offloaded t = nmtest::offloaded(false, true, 64000, false);
  t.hdr.gso_type = unetmap::kGsoTcp4;
  t.hdr.gso_size = 536;
  const std::vector<uint8_t> w = t.with_header(f->hdr_len());
  constexpr uint16_t kChains = 10;
  const uint32_t each = (64000 + 535) / 536;
  // All ten made available with one index store, so one batch pops them.
  uint64_t at = f->scratch();
  vh::Desc* d = f->desc(1);
  uint16_t* av = f->avail(1);
  const uint16_t idx = av[1];
  for (uint16_t k = 0; k < kChains; k++) {
    memcpy(f->mem() + at, w.data(), w.size());
    d[k] = vh::Desc{at, uint32_t(w.size()), 0, 0};
    av[2 + uint16_t(idx + k) % 256] = k;
    at += (w.size() + 63) & ~size_t(63);
  }
  __atomic_store_n(&av[1], uint16_t(idx + kChains), __ATOMIC_RELEASE);
  f->kick(1);
  const std::string want = "from guest " + std::to_string(kChains * each) + " frames, 0 dropped";
  EXPECT_TRUE(status_has("vale0:vm", want, 5000)) << worker_info("vale0:vm").status;
}

// Frames whose header asks for what the guest did not ack (UFO, ECN)
// never reach it: dropped by the backend, counted; the rest come.
TEST_F(Vhost, FramesTheGuestCannotTakeAreDropped) {
  attach("vm");
  auto f = offload_front("vm", kGuestTakes, 12);
  ASSERT_TRUE(f);
  f->post_rx(256);
  Port app("vale0:app");
  ASSERT_EQ(hdr_set("vale0:app", 12), 0);
  nmtest::Offloaded u = nmtest::offloaded(false, false, 3000, false);
  u.hdr.gso_type = unetmap::kGsoUdp, u.hdr.gso_size = 1400;
  ASSERT_TRUE(app.send(u.with_header(12)));
  nmtest::Offloaded e = tso_frame();
  e.hdr.gso_type |= unetmap::kGsoEcn;
  ASSERT_TRUE(app.send(e.with_header(12)));
  const nmtest::Offloaded t = tso_frame();
  ASSERT_TRUE(app.send(t.with_header(12)));
  std::vector<uint8_t> r;
  vh::NetHdr h;
  ASSERT_TRUE(f->recv_frame(&r, &h, 5000));
  EXPECT_TRUE(r == t.frame);
  EXPECT_EQ(h.gso_type, unetmap::kGsoTcp4);
  EXPECT_TRUE(status_has("vale0:vm", "to guest 1, 2 dropped", 5000)) << worker_info("vale0:vm").status;
}

// ---- the virtqueue on its own ----

// A packed receive queue of 8 descriptors in 64 KiB of guest memory (a
// memfd), the guest's side written by the test.
struct PackedRing {
  static constexpr uint16_t kNum = 8;
  int fd = memfd_create("packed", MFD_CLOEXEC);
  uint8_t* mem = nullptr;
  unetmap::vhost::GuestMemory gm;
  unetmap::vhost::Virtq vq;
  bool wrap = true;  // the driver's wrap counter
  uint16_t next = 0;
  PackedRing() {
    if (fd < 0 || ftruncate(fd, 65536) != 0) abort();
    mem = static_cast<uint8_t*>(mmap(nullptr, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    vh::MemTable t{};
    t.nregions = 1;
    t.regions[0] = vh::MemRegionDesc{0, 65536, reinterpret_cast<uint64_t>(mem), 0};
    std::string why;
    if (gm.set(t, &fd, 1, &why) != 0) abort();
    unetmap::vhost::VringConfig c;
    c.num = kNum;
    c.packed = c.event_idx = true;
    c.desc = reinterpret_cast<uint64_t>(mem) + 0x1000;
    c.avail = reinterpret_cast<uint64_t>(mem) + 0x2000;  // the driver's event area
    c.used = reinterpret_cast<uint64_t>(mem) + 0x3000;
    c.base = 0x8000;
    if (vq.setup(gm, c, &why) != 0) abort();
  }
  ~PackedRing() {
    munmap(mem, 65536);
    close(fd);
  }
  vh::Desc* desc() { return reinterpret_cast<vh::Desc*>(mem + 0x1000); }
  vh::EventSuppress* driver_ev() { return reinterpret_cast<vh::EventSuppress*>(mem + 0x2000); }
  // Make n writable buffers available, as a driver does.
  void give(uint16_t n) {
    for (uint16_t k = 0; k < n; k++) {
      const uint16_t f = vh::kDescWrite | (wrap ? vh::kDescAvail : vh::kDescUsed);
      desc()[next] = vh::Desc{0x4000u + next * 256u, 256, next, f};
      if (++next == kNum) next = 0, wrap = !wrap;
    }
  }
  // Pop and use n buffers; what flush() says.
  bool use(uint16_t n) {
    unetmap::vhost::Chain c;
    for (uint16_t k = 0; k < n; k++) {
      if (!vq.pop(&c, true)) abort();
      vq.push(c, 64);
    }
    return vq.flush();
  }
};

// The guest asks for an interrupt when descriptor 3 of the first lap is
// used. Used within the lap: once, when it is passed. Two whole laps used
// between two flushes (the positions are where they started) pass it too:
// the guest is interrupted, not left waiting.
TEST(VirtqPacked, InterruptWhenTheGuestsDescriptorIsPassed) {
  {
    PackedRing r;
    r.driver_ev()->flags = vh::kEventDesc;
    r.driver_ev()->off_wrap = uint16_t(3 | 1u << 15);
    r.give(8);
    EXPECT_FALSE(r.use(3));  // 0, 1, 2
    EXPECT_TRUE(r.use(1));   // 3
    EXPECT_FALSE(r.use(2));
  }
  PackedRing r;
  r.driver_ev()->flags = vh::kEventDesc;
  r.driver_ev()->off_wrap = uint16_t(3 | 1u << 15);
  unetmap::vhost::Chain c;
  for (int lap = 0; lap < 2; lap++) {
    r.give(8);
    for (int k = 0; k < 8; k++) {
      ASSERT_TRUE(r.vq.pop(&c, true)) << lap << " " << k;
      r.vq.push(c, 64);
    }
  }
  EXPECT_TRUE(r.vq.flush()) << "16 descriptors used, the guest's 4th among them, and no interrupt";
}

// UNETMAP_VHOST_SPIN_US is capped at 100 ms, as the library's
// UNETMAP_SPIN_US: an idle worker told to spin for days still sleeps.
// (Without the cap it spun, a core lost; before a spinning worker looked
// at its socket, the front end's setup got no replies either.)
TEST_F(Vhost, AnIdleWorkerSleepsWhateverSpinItIsAsked) {
  setenv("UNETMAP_VHOST_SPIN_US", "1000000000000", 1);  // 11.6 days
  attach("vm");
  unsetenv("UNETMAP_VHOST_SPIN_US");
  auto f = front("vm");
  ASSERT_TRUE(f);
  const pid_t pid = worker_info("vale0:vm").pid.pid;
  ASSERT_GT(pid, 0);
  bool slept = false;
  for (const double end = now_ms() + 5000; !slept && now_ms() < end; usleep(1000))
    slept = nmtest::proc_state(pid) == 'S';
  EXPECT_TRUE(slept) << "state " << nmtest::proc_state(pid);
}

// A worker spinning idle still answers its front end: its spin (here the
// most there is, 100 ms) looks at the socket every so many rounds. A new
// connection finds the worker spinning its longest, and the front end's
// setup took 200 ms when messages waited for each spin's end; it takes a
// few now. The best of three workers, so one stall of a loaded machine
// does not decide it.
TEST_F(Vhost, ASpinningWorkerAnswersItsFrontEnd) {
  double best = 1e9;
  for (const char* name : {"s0", "s1", "s2"}) {
    setenv("UNETMAP_VHOST_SPIN_US", "100000", 1);
    attach(name);
    unsetenv("UNETMAP_VHOST_SPIN_US");
    const double t0 = now_ms();
    auto f = front(name);
    ASSERT_TRUE(f);
    best = std::min(best, now_ms() - t0);
  }
  EXPECT_LT(best, 80.0) << "ms for the front end's setup, the shortest of three";
}

// In client mode the worker connects to the front end, and connects again
// when the front end comes back.
TEST_F(Vhost, ClientModeConnectsAndReconnects) {
  const std::string path = sock_path("cm");
  const int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(lfd, 4), 0);
  attach("cm", true);
  Port p("vale0:p");
  std::vector<uint8_t> r;
  for (int round = 0; round < 3; round++) {
    VhostFront f(VhostFront::Options{});
    ASSERT_TRUE(f.accept_from(lfd, 5000)) << "round " << round;
    std::string why;
    ASSERT_TRUE(f.setup(&why)) << why;
    ASSERT_TRUE(status_has("vale0:cm", "2 of 2 queues live", 5000));
    for (uint32_t seq = 0; seq < 100; seq++) {
      ASSERT_TRUE(f.send_frame(frame(seq, 100)));
      ASSERT_TRUE(p.recv(&r, 5000));
      ASSERT_EQ(r, frame(seq, 100));
    }
  }  // each round's front end goes away: the worker connects again
  close(lfd);
}

// A front end that goes away, and another that comes: the same worker
// serves it; while one is connected, a second is refused.
TEST_F(Vhost, FrontEndGoneAndBackAndOneAtATime) {
  attach("vm");
  const pid_t pid = worker_info("vale0:vm").pid.pid;
  Port p("vale0:p");
  std::vector<uint8_t> r;
  for (int round = 0; round < 3; round++) {
    auto f = front("vm");
    ASSERT_TRUE(f);
    VhostFront second(VhostFront::Options{});
    ASSERT_TRUE(second.connect(sock_path("vm"), 5000));
    EXPECT_TRUE(second.closed_by_peer(5000));
    ASSERT_TRUE(f->send_frame(frame(round, 100)));
    ASSERT_TRUE(p.recv(&r, 5000));
    EXPECT_EQ(r, frame(round, 100));
    f->close_conn();
    ASSERT_TRUE(status_has("vale0:vm", "listening", 5000));
  }
  EXPECT_EQ(worker_info("vale0:vm").pid.pid, pid);
  EXPECT_EQ(worker_info("vale0:vm").restarts, 0u);
}

// Detaching stops the worker: the port leaves the switch and its socket
// goes.
TEST_F(Vhost, DetachRemovesPortWorkerAndSocket) {
  attach("vm");
  ASSERT_EQ(access(sock_path("vm").c_str(), F_OK), 0);
  struct stat st;
  ASSERT_EQ(stat(sock_path("vm").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u);  // only its owner may connect and be the VM
  EXPECT_EQ(vale_port_info("vale0", "vale0:vm").name, "vale0:vm");
  std::string why;
  ASSERT_EQ(vh::detach("vale0", "vm", &why), 0) << why;
  EXPECT_FALSE(vh::exists("vale0", "vm"));
  EXPECT_EQ(vale_port_info("vale0", "vale0:vm").name, "");
  EXPECT_NE(access(sock_path("vm").c_str(), F_OK), 0);
  EXPECT_EQ(vh::detach("vale0", "vm", &why), ENXIO);
}

// Bad requests are refused before anything runs.
TEST_F(Vhost, BadAttachRequestsAreRefused) {
  vh::AttachRequest r;
  std::string why;
  EXPECT_EQ(vh::parse("vale0:vm", &r, &why), ENOENT);
  EXPECT_EQ(vh::parse("vale0:v-m,vhost=/x", &r, &why), EINVAL);
  EXPECT_EQ(vh::parse("vale0:vm,vhost=", &r, &why), EINVAL);
  EXPECT_EQ(vh::parse("vale0:vm,vhost=/x,queues=0", &r, &why), EINVAL);
  EXPECT_EQ(vh::parse("vale0:vm,vhost=/x,queues=17", &r, &why), EINVAL);
  EXPECT_EQ(vh::parse("vale0:vm,vhost=/x,slots=32", &r, &why), EINVAL);
  ASSERT_EQ(vh::parse("vale0:vm,vhost=/tmp/a,b.sock,client,queues=2,slots=4096", &r, &why), 0) << why;
  EXPECT_EQ(r.path, "/tmp/a,b.sock");
  EXPECT_TRUE(r.client);
  EXPECT_EQ(r.queues, 2u);
  EXPECT_EQ(r.slots, 4096u);
  r.slots = 0;
  r.path = "/" + std::string(200, 'x');
  EXPECT_EQ(vh::attach(r, &why), EINVAL);
  // A path that is a regular file is never replaced.
  const std::string file = sock_path("file");
  close(open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  r.path = file;
  r.client = false;
  r.queues = 1;
  EXPECT_NE(vh::attach(r, &why), 0);
  EXPECT_NE(why.find("not a socket"), std::string::npos) << why;
  struct stat st;
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

}  // namespace

namespace {

// ---- hostile front ends ----

// A zeroed virtio-net header with num_buffers n, then frame f.
std::vector<uint8_t> with_hdr_zero(const std::vector<uint8_t>& f, uint16_t n) {
  vh::NetHdr h{};
  h.num_buffers = n;
  std::vector<uint8_t> v(reinterpret_cast<const uint8_t*>(&h), reinterpret_cast<const uint8_t*>(&h) + 12);
  v.insert(v.end(), f.begin(), f.end());
  return v;
}

class VhostHostile : public Vhost {
 protected:
  void SetUp() override {
    attach("vm");
    pid_ = worker_info("vale0:vm").pid.pid;
    ASSERT_GT(pid_, 0);
  }
  // The switch still forwards between two ordinary ports.
  void switch_works(uint32_t seq) {
    Port a("vale0:h1"), b("vale0:h2");
    std::vector<uint8_t> r;
    ASSERT_TRUE(a.send(frame(seq, 500)));
    ASSERT_TRUE(b.recv(&r, 5000));
    EXPECT_EQ(r, frame(seq, 500));
  }
  // A well-behaved front end is served, by the same worker process unless
  // `restarted`.
  void good_front_works(bool restarted = false) {
    Port p("vale0:p");
    auto f = front("vm");
    ASSERT_TRUE(f);
    std::vector<uint8_t> r;
    for (uint32_t seq = 0; seq < 50; seq++) {
      ASSERT_TRUE(f->send_frame(frame(seq, 300)));
      ASSERT_TRUE(p.recv(&r, 5000)) << seq;
      ASSERT_EQ(r, frame(seq, 300));
    }
    const auto i = worker_info("vale0:vm");
    if (!restarted) {
      EXPECT_EQ(i.pid.pid, pid_);
      EXPECT_EQ(i.restarts, 0u);
    }
  }
  pid_t pid_ = 0;
};

struct BadMessage {
  const char* what;
  uint32_t req, flags, size;  // size: the header's claim
  std::vector<uint8_t> payload;
  int nfds;                   // memfds attached
};

std::vector<uint8_t> bytes_of(const void* p, size_t n) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  return std::vector<uint8_t>(b, b + n);
}

// Each malformed message ends its connection (or is refused); nothing else
// is touched.
TEST_F(VhostHostile, MalformedMessagesEndOnlyThatConnection) {
  vh::MemTable t{};
  t.nregions = 1;
  t.regions[0] = vh::MemRegionDesc{0, 1 << 20, 0x10000000, 0};
  vh::MemTable nine = t, wrap = t, big = t, zero = t;
  nine.nregions = 9;
  zero.nregions = 0;
  wrap.regions[0].guest_phys_addr = ~0ull - 100;
  big.regions[0].memory_size = 1ull << 40;
  const uint64_t idx99 = 99, nofd0 = vh::kVringNoFd, unoffered = ~0ull;
  vh::VringState s99{99, 256};
  const std::vector<BadMessage> bad = {
      {"oversized payload", vh::kGetFeatures, vh::kVersion, 5000, {}, 0},
      {"version 2", vh::kGetFeatures, 2, 0, {}, 0},
      {"short SET_VRING_ADDR", vh::kSetVringAddr, vh::kVersion, 8, std::vector<uint8_t>(8), 0},
      {"9 regions", vh::kSetMemTable, vh::kVersion, sizeof nine, bytes_of(&nine, sizeof nine), 1},
      {"0 regions", vh::kSetMemTable, vh::kVersion, 8 + 32, bytes_of(&zero, 8 + 32), 1},
      {"regions without fds", vh::kSetMemTable, vh::kVersion, 8 + 32, bytes_of(&t, 8 + 32), 0},
      {"more fds than regions", vh::kSetMemTable, vh::kVersion, 8 + 32, bytes_of(&t, 8 + 32), 2},
      {"region wrapping around", vh::kSetMemTable, vh::kVersion, 8 + 32, bytes_of(&wrap, 8 + 32), 1},
      {"region beyond its file", vh::kSetMemTable, vh::kVersion, 8 + 32, bytes_of(&big, 8 + 32), 1},
      {"kick without fd flag", vh::kSetVringKick, vh::kVersion, 8, bytes_of(&idx99, 8), 0},
      {"no-fd flag with an fd", vh::kSetVringCall, vh::kVersion, 8, bytes_of(&nofd0, 8), 1},
      {"ten fds", vh::kGetFeatures, vh::kVersion, 0, {}, 10},
      {"features not offered", vh::kSetFeatures, vh::kVersion, 8, bytes_of(&unoffered, 8), 0},
      {"unknown request", 99, vh::kVersion, 0, {}, 0},
      {"queue 99", vh::kSetVringNum, vh::kVersion, 8, bytes_of(&s99, 8), 0},
      {"base of queue 99", vh::kGetVringBase, vh::kVersion, 8, bytes_of(&s99, 8), 0},
      {"config not offered", vh::kGetConfig, vh::kVersion, 0, {}, 0},
  };
  for (const BadMessage& m : bad) {
    VhostFront g(VhostFront::Options{});
    ASSERT_TRUE(g.connect(sock_path("vm"), 5000));
    std::vector<int> fds(m.nfds, g.memfd());
    // The header claims m.size; the bytes sent are the payload given.
    vh::MsgHeader h{m.req, m.flags, m.size};
    std::vector<uint8_t> b = bytes_of(&h, sizeof h);
    b.insert(b.end(), m.payload.begin(), m.payload.end());
    ASSERT_TRUE(g.send_raw(b.data(), b.size(), fds)) << m.what;
    EXPECT_TRUE(g.closed_by_peer(5000)) << m.what;
  }
  switch_works(1);
  good_front_works();
}

// With REPLY_ACK, a refused request is answered "no" and the connection
// stays.
TEST_F(VhostHostile, RefusedRequestsAreAnsweredWithReplyAck) {
  auto f = front("vm");
  ASSERT_TRUE(f);
  vh::VringState s99{99, 256};
  vh::MsgHeader h;
  std::string p;
  ASSERT_TRUE(f->send_msg(vh::kSetVringNum, &s99, sizeof s99, {}, vh::kVersion | vh::kFlagNeedReply));
  ASSERT_TRUE(f->recv_reply(&h, &p));
  ASSERT_EQ(p.size(), 8u);
  uint64_t v;
  memcpy(&v, p.data(), 8);
  EXPECT_NE(v, 0u);
  // Features cannot change under running queues; set again unchanged (as
  // QEMU does for each queue pair it starts) they are accepted.
  const uint64_t same = f->features(), changed = same ^ (1ull << vh::kRingIndirectDesc);
  ASSERT_TRUE(f->send_msg(vh::kSetFeatures, &changed, 8, {}, vh::kVersion | vh::kFlagNeedReply));
  ASSERT_TRUE(f->recv_reply(&h, &p));
  memcpy(&v, p.data(), 8);
  EXPECT_NE(v, 0u);
  ASSERT_TRUE(f->send_msg(vh::kSetFeatures, &same, 8, {}, vh::kVersion | vh::kFlagNeedReply));
  ASSERT_TRUE(f->recv_reply(&h, &p));
  memcpy(&v, p.data(), 8);
  EXPECT_EQ(v, 0u);
  // A ring outside the guest's memory cannot start: refused, not live.
  // (Stopped first: a running queue's addresses cannot change.)
  uint32_t base = 0;
  ASSERT_TRUE(stop_queue(*f, 1, &base));
  vh::VringAddr a{1, 0, f->uva(f->mem_size() + 4096), f->uva(0), f->uva(0), 0};
  ASSERT_TRUE(f->send_msg(vh::kSetVringAddr, &a, sizeof a, {}, vh::kVersion | vh::kFlagNeedReply));
  ASSERT_TRUE(f->recv_reply(&h, &p));
  memcpy(&v, p.data(), 8);
  EXPECT_EQ(v, 0u);  // taken: checked when the queue starts
  const uint64_t idx = 1;
  ASSERT_TRUE(f->send_msg(vh::kSetVringKick, &idx, 8, {f->memfd()}, vh::kVersion | vh::kFlagNeedReply));
  ASSERT_TRUE(f->recv_reply(&h, &p));
  memcpy(&v, p.data(), 8);
  EXPECT_NE(v, 0u);
  EXPECT_TRUE(status_has("vale0:vm", "1 of 2 queues live", 5000)) << worker_info("vale0:vm").status;
  EXPECT_FALSE(f->closed_by_peer(200));
}

// Receive buffers the backend holds for a frame that needs more (mergeable
// buffers) go back to the guest, used and empty, before a request can stop
// the queue or change the memory they are in.
TEST_F(VhostHostile, HeldReceiveBuffersGoBackBeforeTheQueueStops) {
  VhostFront::Options o;
  o.rx_buf = 256;
  o.event_idx = true;
  auto f = front("vm", o);
  ASSERT_TRUE(f);
  Port p("vale0:p");
  f->post_rx(3);  // 768 bytes: not enough for the frame below
  ASSERT_TRUE(p.send(frame(1, 1500)));
  // The backend took the three and asks for a kick when more come: its
  // avail_event (after the used ring) says it is at 3.
  const uint16_t* avail_event = f->used(0) + 2 + 4 * o.qsize;
  const double end = now_ms() + 5000;
  while (__atomic_load_n(avail_event, __ATOMIC_ACQUIRE) != 3 && now_ms() < end) usleep(1000);
  ASSERT_EQ(*avail_event, 3);
  uint32_t base = 0;
  ASSERT_TRUE(stop_queue(*f, 0, &base));
  EXPECT_EQ(base, 3u);
  // All three are in the used ring, empty: none is lost to the guest.
  EXPECT_EQ(__atomic_load_n(&f->used(0)[1], __ATOMIC_ACQUIRE), 3);
  const vh::UsedElem* u = reinterpret_cast<const vh::UsedElem*>(f->used(0) + 2);
  for (int i = 0; i < 3; i++) EXPECT_EQ(u[i].len, 0u) << i;
  EXPECT_EQ(worker_info("vale0:vm").pid.pid, pid_);
}

// A receive chain of more segments than the backend records is filled only
// as far as it recorded: never past it.
TEST_F(VhostHostile, OverlongReceiveChainIsFilledOnlyWhereRecorded) {
  auto f = front("vm");
  ASSERT_TRUE(f);
  Port p("vale0:p");
  // 64 one-byte buffers, then a 4000-byte one, in one chain (heads at 100..164).
  const uint64_t at = f->scratch();
  memset(f->mem() + at, 0xee, 8192);
  for (uint16_t k = 0; k < 65; k++)
    f->desc(0)[100 + k] = vh::Desc{at + k, k < 64 ? 1u : 4000u, uint16_t(vh::kDescWrite | (k < 64 ? vh::kDescNext : 0)),
                                   uint16_t(101 + k)};
  f->make_avail(0, 100);
  ASSERT_TRUE(p.send(frame(2, 1500)));
  // Then an ordinary buffer: the frame takes both, 64 bytes in the first.
  f->post_rx(1);
  std::vector<uint8_t> r;
  vh::NetHdr h;
  const double end = now_ms() + 5000;
  while (__atomic_load_n(&f->used(0)[1], __ATOMIC_ACQUIRE) < 2 && now_ms() < end) f->called(0, 20);
  ASSERT_EQ(f->used(0)[1], 2);
  const vh::UsedElem* u = reinterpret_cast<const vh::UsedElem*>(f->used(0) + 2);
  EXPECT_EQ(u[0].id, 100u);
  EXPECT_EQ(u[0].len, 64u);
  EXPECT_EQ(u[1].len, 12u + 1500u - 64u);
  std::vector<uint8_t> want = with_hdr_zero(frame(2, 1500), 2);
  EXPECT_EQ(std::vector<uint8_t>(f->mem() + at, f->mem() + at + 64), std::vector<uint8_t>(want.begin(), want.begin() + 64));
  EXPECT_EQ(f->mem()[at + 64], 0xee);  // the 4000-byte buffer was not recorded: untouched
  EXPECT_EQ(worker_info("vale0:vm").pid.pid, pid_);
  EXPECT_EQ(worker_info("vale0:vm").restarts, 0u);
  (void)r;
  (void)h;
}

// A new memory table that no longer maps the running queues' rings: the
// request is refused and every queue stops, so the backend never touches
// the old mapping again (it would fault); the worker lives on and a new
// front end is served.
TEST_F(VhostHostile, MemoryTableWithoutTheRingsStopsEveryQueue) {
  {
    auto f = front("vm");
    ASSERT_TRUE(f);
    f->post_rx(64);
    Port p("vale0:p");
    vh::MemTable t{};
    t.nregions = 1;
    // The same memory, at front-end addresses the rings are not at.
    t.regions[0] = vh::MemRegionDesc{0, f->mem_size(), f->uva(0) + (1ull << 40), 0};
    ASSERT_TRUE(f->send_msg(vh::kSetMemTable, &t, 8 + 32, {f->memfd()}, vh::kVersion | vh::kFlagNeedReply));
    vh::MsgHeader h;
    std::string pl;
    ASSERT_TRUE(f->recv_reply(&h, &pl));
    ASSERT_EQ(pl.size(), 8u);
    uint64_t status = 0;
    memcpy(&status, pl.data(), 8);
    EXPECT_NE(status, 0u) << "the table was accepted";
    EXPECT_TRUE(status_has("vale0:vm", "0 of 2 queues live", 5000)) << worker_info("vale0:vm").status;
    // Frames for it are dropped, its rings untouched.
    const uint16_t used0 = f->used(0)[1];
    for (uint32_t seq = 0; seq < 20; seq++) ASSERT_TRUE(p.send(frame(seq, 200)));
    EXPECT_TRUE(status_has("vale0:vm", "to guest 0, 20 dropped", 5000)) << worker_info("vale0:vm").status;
    EXPECT_EQ(f->used(0)[1], used0);
  }
  ASSERT_TRUE(status_has("vale0:vm", "listening", 5000));
  good_front_works();
}

// A front end that stalls halfway through a message, or never reads its
// replies, is cut off: it cannot hang the backend.
TEST_F(VhostHostile, StallingFrontEndsAreCutOff) {
  {
    VhostFront f(VhostFront::Options{});
    ASSERT_TRUE(f.connect(sock_path("vm"), 5000));
    const vh::MsgHeader h{vh::kSetFeatures, vh::kVersion, 8};
    ASSERT_EQ(send(f.sock(), &h, sizeof h, 0), ssize_t(sizeof h));  // and no payload
    EXPECT_TRUE(f.closed_by_peer(5000));
  }
  {
    VhostFront f(VhostFront::Options{});
    ASSERT_TRUE(f.connect(sock_path("vm"), 5000));
    // GET_FEATURES until the socket is full, reading nothing.
    const vh::MsgHeader h{vh::kGetFeatures, vh::kVersion, 0};
    int sent = 0;
    while (sent < 200000 && send(f.sock(), &h, sizeof h, MSG_DONTWAIT | MSG_NOSIGNAL) == ssize_t(sizeof h)) sent++;
    // The backend gives up on its reply; the connection ends.
    EXPECT_TRUE(f.closed_by_peer(10000));
  }
  switch_works(2);
  good_front_works();
}

// Garbage in the rings: each case stops that queue (or the connection),
// never the worker, never the switch.
TEST_F(VhostHostile, GarbageRingsStopOnlyThatQueue) {
  VhostFront::Options io;
  io.indirect = true;
  struct Case {
    const char* what;
    std::function<void(VhostFront&)> act;
  };
  const uint16_t n = 256;
  const std::vector<Case> cases = {
      {"buffer outside memory",
       [](VhostFront& f) {
         f.desc(1)[0] = vh::Desc{f.mem_size() + 4096, 100, 0, 0};
         f.make_avail(1, 0);
       }},
      {"buffer running past memory",
       [](VhostFront& f) {
         f.desc(1)[0] = vh::Desc{f.mem_size() - 100, 100000, 0, 0};
         f.make_avail(1, 0);
       }},
      {"chain looping",
       [](VhostFront& f) {
         f.desc(1)[0] = vh::Desc{f.scratch(), 100, vh::kDescNext, 1};
         f.desc(1)[1] = vh::Desc{f.scratch(), 100, vh::kDescNext, 0};
         f.make_avail(1, 0);
       }},
      {"next out of the ring",
       [n](VhostFront& f) {
         f.desc(1)[0] = vh::Desc{f.scratch(), 100, vh::kDescNext, uint16_t(n + 3)};
         f.make_avail(1, 0);
       }},
      {"head out of the ring", [n](VhostFront& f) { f.make_avail(1, uint16_t(n + 7)); }},
      {"avail index jumping",
       [n](VhostFront& f) {
         f.avail(1)[1] = uint16_t(n + 50);
         f.kick(1);
       }},
      {"writable transmit buffer",
       [](VhostFront& f) {
         f.desc(1)[0] = vh::Desc{f.scratch(), 100, vh::kDescWrite, 0};
         f.make_avail(1, 0);
       }},
      {"indirect nested",
       [](VhostFront& f) {
         vh::Desc* t = reinterpret_cast<vh::Desc*>(f.mem() + f.scratch());
         t[0] = vh::Desc{f.scratch(), 32, vh::kDescIndirect, 0};
         f.desc(1)[0] = vh::Desc{f.scratch(), 32, vh::kDescIndirect, 0};
         f.make_avail(1, 0);
       }},
      {"indirect table of 17 bytes",
       [](VhostFront& f) {
         f.desc(1)[0] = vh::Desc{f.scratch(), 17, vh::kDescIndirect, 0};
         f.make_avail(1, 0);
       }},
      {"indirect table looping",
       [](VhostFront& f) {
         vh::Desc* t = reinterpret_cast<vh::Desc*>(f.mem() + f.scratch());
         t[0] = vh::Desc{f.scratch() + 4096, 100, vh::kDescNext, 1};
         t[1] = vh::Desc{f.scratch() + 4096, 100, vh::kDescNext, 0};
         f.desc(1)[0] = vh::Desc{f.scratch(), 32, vh::kDescIndirect, 0};
         f.make_avail(1, 0);
       }},
      {"readable receive buffer",
       [](VhostFront& f) {
         f.desc(0)[0] = vh::Desc{f.scratch(), 2048, 0, 0};
         f.make_avail(0, 0);
         Port p("vale0:g");
         p.send(frame(9, 100));
       }},
      {"receive buffer outside memory",
       [](VhostFront& f) {
         f.desc(0)[0] = vh::Desc{~0ull - 10, 2048, vh::kDescWrite, 0};
         f.make_avail(0, 0);
         Port p("vale0:g");
         p.send(frame(9, 100));
       }},
  };
  uint32_t seq = 10;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    auto f = front("vm", io);
    ASSERT_TRUE(f);
    c.act(*f);
    // Whatever the queue did with it, the switch forwards, and the worker
    // is the same process.
    switch_works(seq++);
    EXPECT_EQ(worker_info("vale0:vm").pid.pid, pid_);
  }
  good_front_works();
}

// Random messages, thousands of them, with fds now and then: the worker
// lives through them all.
TEST_F(VhostHostile, RandomMessageStorm) {
  std::mt19937 rng(20261202);
  uint32_t msgs = 0, conns = 0;
  const int ev = eventfd(0, EFD_CLOEXEC);
  while (msgs < 3000) {
    VhostFront f(VhostFront::Options{});
    ASSERT_TRUE(f.connect(sock_path("vm"), 5000));
    // Every other connection starts from a device set up, queues running.
    std::string why;
    if (conns++ % 2 && !f.setup(&why)) continue;
    for (int k = 0; k < 200 && msgs < 3000; k++, msgs++) {
      const uint32_t req = rng() % 45;
      const uint32_t size = rng() % 4 == 0 ? rng() % 300 : std::vector<uint32_t>{0, 8, 8, 12, 40, 264}[rng() % 6];
      std::vector<uint8_t> p(size);
      for (auto& b : p) b = uint8_t(rng() % 4 == 0 ? rng() : (rng() % 3));
      // Sometimes a plausible queue index and small numbers.
      if (size >= 8 && rng() % 2) p[0] = uint8_t(rng() % 3), p[4] = uint8_t(rng() % 2), p[5] = 1;
      std::vector<int> fds;
      const uint32_t nf = rng() % 5 == 0 ? 1 + rng() % 2 : 0;
      for (uint32_t i = 0; i < nf; i++) fds.push_back(rng() % 2 ? f.memfd() : ev);
      const uint32_t flags = vh::kVersion | (rng() % 2 ? vh::kFlagNeedReply : 0);
      if (!f.send_msg(req, p.data(), size, fds, flags)) break;  // closed by the backend
      // Read whatever replies came.
      char sink[4096];
      while (recv(f.sock(), sink, sizeof sink, MSG_DONTWAIT) > 0) {
      }
    }
  }
  close(ev);
  EXPECT_GT(conns, 1u);
  switch_works(3);
  good_front_works();
}

// A guest that shrinks its memory under the backend makes the next access
// fault: only the worker dies; it is restarted and serves again, and the
// switch's other ports never stop.
TEST_F(VhostHostile, ShrunkGuestMemoryRestartsOnlyTheWorker) {
  auto f = front("vm");
  ASSERT_TRUE(f);
  Port a("vale0:h1"), b("vale0:h2");
  // A transmit buffer near the end of the guest's memory, then the memory
  // cut to half: the backend's read of the frame faults.
  const uint64_t at = f->mem_size() - 8192;
  memcpy(f->mem() + at + 12, frame(1, 200).data(), 200);
  memset(f->mem() + at, 0, 12);
  f->desc(1)[0] = vh::Desc{at, 212, 0, 0};
  ASSERT_EQ(ftruncate(f->memfd(), off_t(f->mem_size() / 2)), 0);
  f->make_avail(1, 0);
  // The worker dies of it and is restarted (a new process).
  const double end = now_ms() + 10000;
  unetmap::worker::Info i;
  while (now_ms() < end) {
    i = worker_info("vale0:vm");
    if (i.restarts >= 1 && i.state == unetmap::worker::State::kRunning && i.pid.pid != pid_) break;
    usleep(5000);
  }
  ASSERT_GE(i.restarts, 1u) << i.reason;
#ifdef __SANITIZE_ADDRESS__
  // AddressSanitizer takes the SIGBUS, reports it and exits 1.
  EXPECT_TRUE(i.exit_signal == SIGBUS || i.exit_status == 1) << unetmap::worker::describe_exit(i);
#else
  EXPECT_EQ(i.exit_signal, SIGBUS) << unetmap::worker::describe_exit(i);
#endif
  std::vector<uint8_t> r;
  ASSERT_TRUE(a.send(frame(2, 400)));
  ASSERT_TRUE(b.recv(&r, 5000));
  EXPECT_EQ(r, frame(2, 400));
  f.reset();
  good_front_works(true);
}

}  // namespace

namespace {

// ---- DPDK's testpmd with net_virtio_user: a real front end ----

const char* const kTestpmd = "/usr/bin/dpdk-testpmd";

// testpmd in interactive mode, its commands on stdin; no hugepages (the
// command line of ../shared/peers), one forwarding core.
class Testpmd {
 public:
  explicit Testpmd(const std::string& vdev) {
    prefix_ = "nmvh" + std::to_string(getpid()) + "_" + std::to_string(count_++);
    // Line-buffered: its answers come before its next prompt.
    p_ = std::make_unique<Proc>(std::vector<std::string>{
        "/usr/bin/stdbuf", "-oL", kTestpmd, "-l", "0,1", "--main-lcore", "0", "--no-huge", "-m", "512", "--no-pci",
        "--file-prefix=" + prefix_, "--vdev=net_virtio_user0," + vdev, "--", "-i",
        "--total-num-mbufs=32768", "--nb-cores=1"});
  }
  ~Testpmd() {
    if (p_) {
      p_->write_in("quit\n");
      p_->finish(10000);
    }
    std::string dir = "/var/run/dpdk/" + prefix_;
    if (system(("rm -rf " + dir).c_str()) != 0) {
    }
  }
  // Wait for its prompt (it has set up the port).
  bool ready(int ms = 30000) { return p_->wait_for_from("testpmd> ", 0, false, ms) != std::string::npos; }
  // Run a command and wait for the next prompt: what it printed.
  std::string run(const std::string& c, int ms = 10000) {
    const size_t from = p_->out().size();
    p_->write_in(c + "\n");
    // The prompt after the echoed command.
    const size_t echo = p_->wait_for_from(c, from, false, ms);
    if (echo == std::string::npos) return "";
    const size_t at = p_->wait_for_from("testpmd> ", echo, false, ms);
    return at == std::string::npos ? "" : p_->out().substr(from, at - from);
  }
  // A counter of "show port stats 0" ("RX-packets", "TX-packets").
  uint64_t stat(const std::string& key) {
    const std::string s = run("show port stats 0");
    const size_t at = s.find(key + ":");
    return at == std::string::npos ? ~0ull : strtoull(s.c_str() + at + key.size() + 1, nullptr, 10);
  }
  // Where its output is now, and whether `what` appears after that.
  size_t mark() const { return p_->out().size(); }
  bool saw(const std::string& what, size_t from, int ms) {
    return p_->wait_for_from(what, from, false, ms) != std::string::npos;
  }
  pid_t pid() const { return p_->pid(); }
  void kill9() {
    kill(p_->pid(), SIGKILL);
    p_->finish(10000);
    p_.reset();
  }
  std::string log() const { return p_ ? p_->out() + p_->err() : ""; }

 private:
  static inline int count_ = 0;
  std::string prefix_;
  std::unique_ptr<Proc> p_;
};

struct PmdCase {
  bool packed, client, mrg;
};

class VhostTestpmd : public Vhost, public ::testing::WithParamInterface<PmdCase> {
 protected:
  void SetUp() override {
    if (access(kTestpmd, X_OK) != 0) GTEST_SKIP() << "no " << kTestpmd << " (dpdk-dev)";
  }
  std::string vdev(const std::string& name, const PmdCase& c) {
    return "path=" + sock_path(name) + ",queues=1" + (c.packed ? ",packed_vq=1" : "") +
           (c.client ? ",server=1" : "") + (c.mrg ? "" : ",mrg_rxbuf=0");
  }
  // Receive frames at p until `n` came (or the deadline): how many.
  static uint32_t count(Port& p, uint32_t n, int ms) {
    std::vector<uint8_t> r;
    uint32_t got = 0;
    const double end = now_ms() + ms;
    while (got < n && p.recv(&r, std::max(0, int(end - now_ms())))) got++;
    return got;
  }
  static void drain(Port& p) {
    std::vector<uint8_t> r;
    while (p.recv(&r, 0)) {
    }
  }
};

// testpmd's frames reach a switch port, exactly as many as it sent; frames
// from the switch reach testpmd, every one.
TEST_P(VhostTestpmd, FramesBothWays) {
  const PmdCase c = GetParam();
  attach("vm", c.client);
  Port p("vale0:p");
  Testpmd t(vdev("vm", c));
  ASSERT_TRUE(t.ready()) << t.log();
  ASSERT_TRUE(status_has("vale0:vm", "2 of 2 queues live", 10000)) << worker_info("vale0:vm").status;
  t.run("set fwd rxonly");
  t.run("start tx_first 8");  // 8 bursts of 32 frames, then it only receives
  EXPECT_EQ(count(p, 256, 10000), 256u);
  EXPECT_EQ(t.stat("RX-packets"), 0u);
  // Frames from the switch, paced by what the worker took from its ring.
  constexpr uint32_t kFrames = 2048;  // 64 batches of 32
  const uint64_t base = vale_port_info("vale0", "vale0:vm").rx_packets;
  for (uint32_t sent = 0; sent < kFrames;) {
    for (uint32_t k = 0; k < 32; k++, sent++) ASSERT_TRUE(p.send(frame(sent, 60 + sent % 1400)));
    const double end = now_ms() + 5000;
    while (vale_port_info("vale0", "vale0:vm").rx_packets < base + sent && now_ms() < end) usleep(200);
    ASSERT_EQ(vale_port_info("vale0", "vale0:vm").rx_packets, base + sent);
  }
  // The guest has them all in its used ring; testpmd counts them as its
  // forwarding core gets to them.
  uint64_t got = 0;
  for (const double end = now_ms() + 10000; (got = t.stat("RX-packets")) < kFrames && now_ms() < end;)
    usleep(10000);
  EXPECT_EQ(got, kFrames);
  EXPECT_EQ(t.stat("TX-packets"), 256u);
  EXPECT_EQ(vale_port_info("vale0", "vale0:vm").drops, 0u);
  drain(p);
  EXPECT_EQ(worker_info("vale0:vm").restarts, 0u);
}

INSTANTIATE_TEST_SUITE_P(Rings, VhostTestpmd,
                         ::testing::Values(PmdCase{false, false, true}, PmdCase{true, false, true},
                                           PmdCase{false, true, false}, PmdCase{true, true, false}),
                         [](const ::testing::TestParamInfo<PmdCase>& i) {
                           return std::string(i.param.packed ? "Packed" : "Split") +
                                  (i.param.client ? "Client" : "Server") + (i.param.mrg ? "Mergeable" : "Plain");
                         });

// kill -9 of the front end mid-traffic: the worker stays, the switch
// forwards, and the next front end is served.
TEST_P(VhostTestpmd, KilledFrontEndLeavesTheSwitchRunning) {
  const PmdCase c = GetParam();
  if (c.client) GTEST_SKIP() << "the server-mode cases cover it";
  attach("vm");
  const pid_t pid = worker_info("vale0:vm").pid.pid;
  Port p("vale0:p");
  {
    Testpmd t(vdev("vm", c));
    ASSERT_TRUE(t.ready()) << t.log();
    t.run("set fwd txonly");
    t.run("start");
    EXPECT_EQ(count(p, 1000, 10000), 1000u);
    t.kill9();
  }
  ASSERT_TRUE(status_has("vale0:vm", "listening", 10000));
  EXPECT_EQ(worker_info("vale0:vm").pid.pid, pid);
  drain(p);
  Port a("vale0:h1"), b("vale0:h2");
  std::vector<uint8_t> r;
  ASSERT_TRUE(a.send(frame(5, 300)));
  ASSERT_TRUE(b.recv(&r, 5000));
  drain(p);
  Testpmd t(vdev("vm", c));
  ASSERT_TRUE(t.ready()) << t.log();
  ASSERT_TRUE(status_has("vale0:vm", "2 of 2 queues live", 10000));
  t.run("set fwd rxonly");
  t.run("start tx_first 4");
  EXPECT_EQ(count(p, 128, 10000), 128u) << t.run("show port stats 0") << file_text(worker_info("vale0:vm").log);
  EXPECT_EQ(worker_info("vale0:vm").pid.pid, pid);
}

// kill -9 of the worker: it is restarted, connects to the front end again
// (client mode), and traffic flows again.
TEST_P(VhostTestpmd, KilledWorkerIsRestartedAndReconnects) {
  const PmdCase c = GetParam();
  if (!c.client) GTEST_SKIP() << "a restarted worker reconnects in client mode";
  attach("vm", true);
  Port p("vale0:p");
  Testpmd t(vdev("vm", c));
  ASSERT_TRUE(t.ready()) << t.log();
  ASSERT_TRUE(status_has("vale0:vm", "2 of 2 queues live", 10000));
  const pid_t pid = worker_info("vale0:vm").pid.pid;
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  const double end = now_ms() + 15000;
  while (now_ms() < end && !(worker_info("vale0:vm").pid.pid != pid &&
                             worker_info("vale0:vm").status.find("2 of 2 queues live") != std::string::npos))
    usleep(5000);
  ASSERT_NE(worker_info("vale0:vm").status.find("2 of 2 queues live"), std::string::npos)
      << worker_info("vale0:vm").status << "\n" << t.log();
  // virtio_user resets its rings some time after the worker is back (a
  // packed ring is wiped, frames queued meanwhile are lost), and says
  // nothing when it has: single bursts until one gets through.
  t.run("set fwd rxonly");
  bool through = false;
  for (int i = 0; i < 20 && !through; i++) {
    t.run("start tx_first 1");
    t.run("stop");
    through = count(p, 1, 500) == 1;
  }
  ASSERT_TRUE(through) << t.log();
  drain(p);
  t.run("start tx_first 4");
  EXPECT_EQ(count(p, 128, 10000), 128u) << t.log() << file_text(worker_info("vale0:vm").log);
}

}  // namespace

namespace {

// ---- virtio-net headers on VALE ports (netmap's virt_hdr_len) ----

// A virtio-net header of `len` bytes with recognisable fields but no
// offload asked for (flags 0, gso_type 0), then the frame.
std::vector<uint8_t> with_hdr(uint32_t len, const std::vector<uint8_t>& f) {
  std::vector<uint8_t> h(len, 0);
  if (len) {
    vh::NetHdr n{};
    n.hdr_len = 54, n.gso_size = 1448, n.csum_start = 34, n.csum_offset = 16, n.num_buffers = 1;
    memcpy(h.data(), &n, len);
  }
  h.insert(h.end(), f.begin(), f.end());
  return h;
}

TEST(ValeHdr, SetAndGetAsNetmap) {
  Port a("vale0:a");
  Port p("netmap:pp{0");
  EXPECT_EQ(hdr_get("vale0:a"), 0u);
  for (uint32_t len : {12u, 0u, 10u}) {
    EXPECT_EQ(hdr_set("vale0:a", len), 0) << len;
    EXPECT_EQ(hdr_get("vale0:a"), len);
  }
  EXPECT_EQ(hdr_set("vale0:a", 11), EINVAL);
  EXPECT_EQ(hdr_get("vale0:a"), 10u);
  EXPECT_EQ(hdr_set("pp{0", 12), EINVAL);  // not a VALE port
  EXPECT_EQ(hdr_get("pp{0"), 0u);           // every other port: none
  EXPECT_EQ(hdr_set("vale0:nosuch", 12), ENXIO);
  EXPECT_EQ(vale_port_info("vale0", "vale0:a").hdr_len, 10u);
  // The legacy request (nr_cmd NETMAP_BDG_VNET_HDR, the length in nr_arg1).
  const int fd = open("/dev/netmap", O_RDWR | O_CLOEXEC);
  nmreq r{};
  snprintf(r.nr_name, sizeof r.nr_name, "vale0:a");
  r.nr_version = 11;
  r.nr_cmd = NETMAP_BDG_VNET_HDR;
  r.nr_arg1 = 12;
  EXPECT_EQ(ioctl(fd, NIOCREGIF, &r), 0) << strerror(errno);
  close(fd);
  EXPECT_EQ(hdr_get("vale0:a"), 12u);
}

// Equal lengths: the header passes through, byte for byte; the lookup
// reads the Ethernet header after it (learned unicast goes to one port
// only), also when the header has a slot of its own.
TEST(ValeHdr, EqualLengthsPassTheHeaderAndTheLookupSkipsIt) {
  Port a("vale0:a"), b("vale0:b"), c("vale0:c");
  for (const char* n : {"vale0:a", "vale0:b", "vale0:c"}) ASSERT_EQ(hdr_set(n, 12), 0);
  // b makes itself known (source MAC 02:..:0b).
  std::vector<uint8_t> fb = frame(1, 100);
  fb[11] = 0x0b;
  ASSERT_TRUE(b.send(with_hdr(12, fb)));
  std::vector<uint8_t> r;
  ASSERT_TRUE(a.recv(&r, 5000));
  ASSERT_TRUE(c.recv(&r, 5000));
  // a to b's MAC: only b. Without skipping the header the lookup would
  // read the header as an address and flood (c would get it).
  std::vector<uint8_t> fa = frame(2, 300);
  memcpy(fa.data(), fb.data() + 6, 6);
  ASSERT_TRUE(a.send(with_hdr(12, fa)));
  ASSERT_TRUE(b.recv(&r, 5000));
  EXPECT_EQ(r, with_hdr(12, fa));
  // The same with the header in a slot of its own.
  netmap_ring* t = NETMAP_TXRING(a.d->nifp, 0);
  std::vector<uint8_t> f3 = frame(3, 200);
  memcpy(f3.data(), fb.data() + 6, 6);
  const std::vector<uint8_t> w3 = with_hdr(12, f3);
  uint32_t i = t->cur;
  memcpy(NETMAP_BUF(t, t->slot[i].buf_idx), w3.data(), 12);
  t->slot[i].len = 12, t->slot[i].flags = NS_MOREFRAG;
  i = nm_ring_next(t, i);
  memcpy(NETMAP_BUF(t, t->slot[i].buf_idx), w3.data() + 12, w3.size() - 12);
  t->slot[i].len = uint16_t(w3.size() - 12), t->slot[i].flags = 0;
  t->head = t->cur = nm_ring_next(t, i);
  ASSERT_EQ(ioctl(a.d->fd, NIOCTXSYNC, nullptr), 0);
  ASSERT_TRUE(b.recv(&r, 5000));
  EXPECT_EQ(r, w3);
  // c got neither unicast frame: the next broadcast is the first thing it sees.
  ASSERT_TRUE(a.send(with_hdr(12, frame(4, 100))));
  ASSERT_TRUE(c.recv(&r, 5000));
  EXPECT_EQ(r, with_hdr(12, frame(4, 100)));
}

// Different lengths: the source's header goes, the destination gets one of
// its own length, zeroed where no offload is asked for; where one is, its
// fields go over to a port with a header of the other length, and a port
// without one gets the work done (ValeHdr.MismatchPath*); a header that
// asks for what its frame cannot be given is dropped there, counted.
TEST(ValeHdr, DifferentLengthsConvertTheHeader) {
  Port h12("vale0:h12"), h10("vale0:h10"), h0("vale0:h0");
  ASSERT_EQ(hdr_set("vale0:h12", 12), 0);
  ASSERT_EQ(hdr_set("vale0:h10", 10), 0);
  std::vector<uint8_t> r;
  const std::vector<uint8_t> f = frame(7, 500);
  ASSERT_TRUE(h0.send(f));  // 0 -> 12 and 0 -> 10
  ASSERT_TRUE(h12.recv(&r, 5000));
  std::vector<uint8_t> z(12, 0);
  z.insert(z.end(), f.begin(), f.end());
  EXPECT_EQ(r, z);
  ASSERT_TRUE(h10.recv(&r, 5000));
  ASSERT_EQ(r.size(), 10 + f.size());
  EXPECT_EQ(std::vector<uint8_t>(r.begin(), r.begin() + 10), std::vector<uint8_t>(10, 0));
  EXPECT_EQ(std::vector<uint8_t>(r.begin() + 10, r.end()), f);
  ASSERT_TRUE(h12.send(with_hdr(12, f)));  // 12 -> 0 and 12 -> 10
  ASSERT_TRUE(h0.recv(&r, 5000));
  EXPECT_EQ(r, f);
  ASSERT_TRUE(h10.recv(&r, 5000));
  EXPECT_EQ(std::vector<uint8_t>(r.begin(), r.begin() + 10), std::vector<uint8_t>(10, 0));
  EXPECT_EQ(std::vector<uint8_t>(r.begin() + 10, r.end()), f);
  // TCPv4 GSO on a frame that is not TCP: h10 gets it with the header's
  // fields (it can take offloads: the header is its to judge), h0 never.
  std::vector<uint8_t> g = with_hdr(12, f);
  g[1] = 1;  // gso_type TCPV4
  const uint64_t before = vale_port_info("vale0", "vale0:h0").drops;
  ASSERT_TRUE(h12.send(g));
  ASSERT_TRUE(h12.send(with_hdr(12, frame(8, 100))));  // a marker after it
  ASSERT_TRUE(h0.recv(&r, 5000));
  EXPECT_EQ(r, frame(8, 100));
  EXPECT_EQ(vale_port_info("vale0", "vale0:h0").drops, before + 1);
  ASSERT_TRUE(h10.recv(&r, 5000));
  ASSERT_EQ(r.size(), 10 + f.size());
  EXPECT_EQ(std::vector<uint8_t>(r.begin(), r.begin() + 10), std::vector<uint8_t>(g.begin(), g.begin() + 10));
  EXPECT_EQ(std::vector<uint8_t>(r.begin() + 10, r.end()), f);
}

// The mismatch path to a port without a header, as netmap's: a 64 KB
// TCPv4 GSO frame (with NEEDS_CSUM) from a port with a 12-byte header
// arrives at a port without one as 45 wire-size segments that scapy finds
// right; a port with a 12-byte header gets it whole, byte for byte; one
// with a 10-byte header gets it whole with the header's fields.
TEST(ValeHdr, MismatchPathSegmentsTcpForAPortWithoutAHeader) {
  Port vm("vale0:vm"), vm2("vale0:vm2"), h10("vale0:h10"), bare("vale0:bare");
  ASSERT_EQ(hdr_set("vale0:vm", 12), 0);
  ASSERT_EQ(hdr_set("vale0:vm2", 12), 0);
  ASSERT_EQ(hdr_set("vale0:h10", 10), 0);
  nmtest::Offloaded o = nmtest::offloaded(false, true, 64000, false);
  o.hdr.gso_type = unetmap::kGsoTcp4;
  o.hdr.gso_size = 1448;
  const std::vector<uint8_t> sent = o.with_header(12);
  ASSERT_TRUE(vm.send(sent));  // broadcast: to all three
  std::vector<uint8_t> r;
  ASSERT_TRUE(vm2.recv(&r, 5000));
  EXPECT_TRUE(r == sent) << "passthrough changed the frame";
  ASSERT_TRUE(h10.recv(&r, 5000));
  EXPECT_TRUE(std::vector<uint8_t>(r.begin(), r.begin() + 10) == std::vector<uint8_t>(sent.begin(), sent.begin() + 10));
  EXPECT_TRUE(std::vector<uint8_t>(r.begin() + 10, r.end()) == o.frame);
  std::vector<std::vector<uint8_t>> segs;
  while (segs.size() < 45 && bare.recv(&r, 5000)) segs.push_back(r);
  ASSERT_EQ(segs.size(), 45u);
  EXPECT_FALSE(bare.recv(&r, 200)) << "more than 45 segments";
  EXPECT_EQ(nmtest::scapy_says("tcp", segs, o.payload, 1500, 1448), "");
}

// UDP GSO (UFO) becomes IP fragments, IPv4 and IPv6; NEEDS_CSUM alone is
// finished; a header that asks for the impossible is dropped and counted.
TEST(ValeHdr, MismatchPathFragmentsUdpAndFinishesChecksums) {
  Port vm("vale0:vm"), bare("vale0:bare");
  ASSERT_EQ(hdr_set("vale0:vm", 12), 0);
  std::vector<uint8_t> r;
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    nmtest::Offloaded o = nmtest::offloaded(v6, false, 9000, v6);
    o.hdr.gso_type = unetmap::kGsoUdp;
    o.hdr.gso_size = 1400;
    ASSERT_TRUE(vm.send(o.with_header(12)));
    std::vector<std::vector<uint8_t>> frags;
    const uint32_t want = (9008 + 1399) / 1400;  // 8 + 9000 bytes of datagram in 1400s
    while (frags.size() < want && bare.recv(&r, 5000)) frags.push_back(r);
    ASSERT_EQ(frags.size(), want);
    EXPECT_EQ(nmtest::scapy_says("udp", frags, o.payload, 1500, 1400), "");
  }
  std::vector<std::vector<uint8_t>> done;
  std::vector<uint8_t> payloads;
  for (bool tcp : {false, true}) {
    const nmtest::Offloaded o = nmtest::offloaded(tcp, tcp, 700, false);
    ASSERT_TRUE(vm.send(o.with_header(12)));
    ASSERT_TRUE(bare.recv(&r, 5000));
    done.push_back(r);
    payloads.insert(payloads.end(), o.payload.begin(), o.payload.end());
  }
  EXPECT_EQ(nmtest::scapy_says("csum", done, payloads, 1500, 1500), "");
  // Bad headers: checksum offsets past the frame, an unknown gso_type,
  // gso_size 0. Each is dropped and counted; the marker after them comes.
  const uint64_t before = vale_port_info("vale0", "vale0:bare").drops;
  nmtest::Offloaded b = nmtest::offloaded(false, true, 3000, false);
  b.hdr.csum_start = 5000;
  ASSERT_TRUE(vm.send(b.with_header(12)));
  b = nmtest::offloaded(false, true, 3000, false);
  b.hdr.gso_type = 2, b.hdr.gso_size = 1000;
  ASSERT_TRUE(vm.send(b.with_header(12)));
  b.hdr.gso_type = unetmap::kGsoTcp4, b.hdr.gso_size = 0;
  ASSERT_TRUE(vm.send(b.with_header(12)));
  ASSERT_TRUE(vm.send(with_hdr(12, frame(9, 100))));
  ASSERT_TRUE(bare.recv(&r, 5000));
  EXPECT_EQ(r, frame(9, 100));
  EXPECT_EQ(vale_port_info("vale0", "vale0:bare").drops, before + 3);
}

// pkt-gen -H 12 sets its port's header and puts a zeroed one before each
// frame: a port without one receives the bare frame, a port with one the
// header and the frame.
TEST(ValeHdr, PktGenWithAHeader) {
  Port bare("vale0:bare"), with("vale0:with");
  ASSERT_EQ(hdr_set("vale0:with", 12), 0);
  Proc tx({PKT_GEN, "-i", "vale0:tx", "-f", "tx", "-H", "12", "-n", "100", "-l", "60", "-w", "0"});
  EXPECT_EQ(tx.finish(20000), 0) << tx.show();
  std::vector<uint8_t> r;
  uint32_t n = 0;
  while (bare.recv(&r, 2000)) {
    ASSERT_EQ(r.size(), 60u);
    EXPECT_EQ(r[12], 0x08);  // IPv4 right after the addresses: no header left
    n++;
    if (n == 100) break;
  }
  EXPECT_EQ(n, 100u);
  ASSERT_TRUE(with.recv(&r, 2000));
  ASSERT_EQ(r.size(), 72u);
  EXPECT_EQ(std::vector<uint8_t>(r.begin(), r.begin() + 12), std::vector<uint8_t>(12, 0));
  EXPECT_EQ(r[12 + 12], 0x08);
  Proc bad({PKT_GEN, "-i", "vale0:tx2", "-f", "tx", "-H", "11", "-n", "1"});
  EXPECT_NE(bad.finish(10000), 0);
  EXPECT_NE(bad.err().find("0, 10 or 12"), std::string::npos) << bad.err();
}

}  // namespace
