// vhost_tso: VM to VM with 64 KB TSO frames through a vhost-user switch,
// in Gbit/s. Two virtio-net drivers in this process (tests/util/vhost_front,
// each on a thread of its own), "VMs" that ack checksum and TSO offloads
// both ways, connect to two vhost-user sockets of one switch: unetmap's
// (two ports of a VALE switch) or DPDK's (testpmd, two net_vhost ports
// with io forwarding). The first sends TCP frames of 64000 bytes of data
// with a virtio-net header asking for TSO (gso_size 1448), as a Linux
// guest's stack hands them over; the second receives them (mergeable
// buffers) and counts frames and bytes.
//
// usage: vhost_tso TX_SOCKET RX_SOCKET SECONDS
// Prints one line a second (Gbit/s of frames received, frames/s, how many
// arrived whole and how many with their TSO header: a switch that does
// not pass the header on delivers 64 KB frames without it), then
// "median: G Gbit/s". VHOST_TSO_DEBUG=1 shows every other frame.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "util/offload_frames.h"
#include "util/vhost_front.h"

namespace {

namespace vh = unetmap::vhost;
using nmtest::VhostFront;

uint64_t fbit(uint32_t b) { return 1ull << b; }

std::unique_ptr<VhostFront> connect(const char* path) {
  VhostFront::Options o;
  o.qsize = 1024;
  o.rx_buf = 4096;
  o.mem = 96u << 20;
  o.offloads = fbit(vh::kNetCsum) | fbit(vh::kNetGuestCsum) | fbit(vh::kNetHostTso4) |
               fbit(vh::kNetHostTso6) | fbit(vh::kNetGuestTso4) | fbit(vh::kNetGuestTso6);
  auto f = std::make_unique<VhostFront>(o);
  std::string why;
  if (!f->connect(path, 10000) || !f->setup(&why)) {
    fprintf(stderr, "vhost_tso: %s: %s\n", path, why.empty() ? "cannot connect" : why.c_str());
    exit(1);
  }
  return f;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: vhost_tso TX_SOCKET RX_SOCKET SECONDS\n");
    return 2;
  }
  const int secs = atoi(argv[3]);
  auto tx = connect(argv[1]);
  auto rx = connect(argv[2]);
  nmtest::Offloaded o = nmtest::offloaded(false, true, 64000, false);
  o.hdr.gso_type = unetmap::kGsoTcp4;
  o.hdr.gso_size = 1448;
  const std::vector<uint8_t> bytes = o.with_header(12);
  const size_t flen = o.frame.size();

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> got_frames{0}, got_bytes{0}, whole{0}, tso{0};
  std::thread receiver([&] {
    rx->post_rx(1024);
    std::vector<uint8_t> f;
    vh::NetHdr h;
    while (!stop.load(std::memory_order_relaxed)) {
      if (!rx->recv_frame(&f, &h, 100)) continue;
      got_bytes.fetch_add(f.size(), std::memory_order_relaxed);
      got_frames.fetch_add(1, std::memory_order_relaxed);
      if (f.size() == flen) whole.fetch_add(1, std::memory_order_relaxed);
      if (f.size() == flen && h.gso_type == unetmap::kGsoTcp4 && h.gso_size == 1448)
        tso.fetch_add(1, std::memory_order_relaxed);
      else if (getenv("VHOST_TSO_DEBUG"))
        fprintf(stderr, "frame of %zu bytes, gso_type %u, gso_size %u, flags %u\n", f.size(), h.gso_type,
                h.gso_size, h.flags);
    }
  });
  std::thread sender([&] {
    while (!stop.load(std::memory_order_relaxed))
      if (!tx->send_with_header(bytes)) std::this_thread::yield();  // ring full: let the switch run
  });
  // Until the first frame arrives (bounded), then a figure a second.
  const double t0 = now_s();
  while (got_frames.load() == 0 && now_s() - t0 < 10) usleep(1000);
  if (got_frames.load() == 0) {
    fprintf(stderr, "vhost_tso: nothing arrived in 10 s\n");
    stop = true;
    sender.join();
    receiver.join();
    return 1;
  }
  std::vector<double> gbps;
  uint64_t b0 = got_bytes.load(), f0 = got_frames.load(), w0 = whole.load(), t0s = tso.load();
  double s0 = now_s();
  for (int i = 0; i < secs; i++) {
    sleep(1);
    const uint64_t b1 = got_bytes.load(), f1 = got_frames.load(), w1 = whole.load(), t1s = tso.load();
    const double s1 = now_s(), dt = s1 - s0;
    const double g = double(b1 - b0) * 8 / dt / 1e9;
    gbps.push_back(g);
    printf("%.2f Gbit/s, %.0f frames/s: %llu whole, %llu of them with their TSO header\n", g,
           double(f1 - f0) / dt, static_cast<unsigned long long>(w1 - w0),
           static_cast<unsigned long long>(t1s - t0s));
    fflush(stdout);
    b0 = b1, f0 = f1, w0 = w1, t0s = t1s, s0 = s1;
  }
  stop = true;
  sender.join();
  receiver.join();
  std::sort(gbps.begin(), gbps.end());
  printf("median: %.2f Gbit/s\n", gbps.empty() ? 0.0 : gbps[gbps.size() / 2]);
  return 0;
}
