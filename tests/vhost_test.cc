// vhost-user ports on VALE switches (src/ports/vhost): a front end in this
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
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/worker.h"
#include "ports/vale/vale.h"
#include "ports/vhost/control.h"
#include "util/proc.h"
#include "util/test_util.h"
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
  ASSERT_EQ(vh::parse("vale0:vm,vhost=/tmp/a,b.sock,client,queues=2", &r, &why), 0) << why;
  EXPECT_EQ(r.path, "/tmp/a,b.sock");
  EXPECT_TRUE(r.client);
  EXPECT_EQ(r.queues, 2u);
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
