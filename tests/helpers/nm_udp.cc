// nm_udp: numbered IPv4/UDP frames of varied lengths through a port,
// checked byte by byte at the other end, for tests of forwarders that
// hold packets (kipfw's dummynet).
//
//   nm_udp send PORT COUNT DST_PORT      frames 0..COUNT-1
//   nm_udp recv PORT COUNT TIMEOUT_MS    expects frames 0..COUNT-1, in order
//
// Frame k is 60 + (k * 37) % 1455 bytes long (60..1514); its UDP payload
// starts with k (4 bytes, big endian), then byte i of the frame is
// (k * 7 + i) & 0xff. recv prints "ok COUNT" (exit 0) or what was wrong
// (exit 3: a bad frame, 4: too few in time).
#include <libnetmap.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include <cstdint>

namespace {

constexpr uint32_t kHead = 14 + 20 + 8;

uint32_t frame_len(uint32_t k) { return 60 + (k * 37) % 1455; }

void put16(uint8_t* p, uint32_t v) { p[0] = uint8_t(v >> 8), p[1] = uint8_t(v); }

void make_frame(uint8_t* f, uint32_t k, uint32_t dport) {
  const uint32_t len = frame_len(k);
  memcpy(f, "\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00", 14);
  uint8_t* ip = f + 14;
  memset(ip, 0, 20);
  ip[0] = 0x45;
  put16(ip + 2, len - 14);
  ip[8] = 64;
  ip[9] = 17;
  memcpy(ip + 12, "\x0a\0\0\x01\x0a\x01\0\x01", 8);
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) sum += uint32_t(ip[i] << 8 | ip[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  put16(ip + 10, ~sum & 0xffff);
  uint8_t* udp = ip + 20;
  put16(udp, 1000);
  put16(udp + 2, dport);
  put16(udp + 4, len - 34);
  put16(udp + 6, 0);
  for (uint32_t i = kHead; i < len; i++) f[i] = uint8_t(k * 7 + i);
  for (int b = 0; b < 4; b++) f[kHead + b] = uint8_t(k >> (24 - 8 * b));
}

double now_ms() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return double(t.tv_sec) * 1e3 + double(t.tv_nsec) / 1e6;
}

int send(nmport_d* d, uint32_t count, uint32_t dport) {
  netmap_ring* t = NETMAP_TXRING(d->nifp, d->first_tx_ring);
  for (uint32_t k = 0; k < count;) {
    if (nm_ring_space(t) == 0) {
      pollfd p{d->fd, POLLOUT, 0};
      if (poll(&p, 1, 5000) <= 0) {
        fprintf(stderr, "nm_udp send: no room for frame %u in 5 s\n", k);
        return 4;
      }
      continue;
    }
    netmap_slot& s = t->slot[t->cur];
    make_frame(reinterpret_cast<uint8_t*>(NETMAP_BUF(t, s.buf_idx)), k, dport);
    s.len = uint16_t(frame_len(k));
    s.flags = 0;
    t->head = t->cur = nm_ring_next(t, t->cur);
    k++;
  }
  ioctl(d->fd, NIOCTXSYNC, nullptr);
  return 0;
}

int recv(nmport_d* d, uint32_t count, int timeout_ms) {
  const double end = now_ms() + timeout_ms;
  uint8_t want[2048];
  uint32_t k = 0;
  while (k < count) {
    const int left = int(end - now_ms());
    pollfd p{d->fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, left) <= 0) {
      printf("got %u of %u frames in %d ms\n", k, count, timeout_ms);
      return 4;
    }
    for (unsigned r = d->first_rx_ring; r <= d->last_rx_ring; r++) {
      netmap_ring* ring = NETMAP_RXRING(d->nifp, r);
      for (; !nm_ring_empty(ring); ring->head = ring->cur = nm_ring_next(ring, ring->cur)) {
        const netmap_slot& s = ring->slot[ring->cur];
        const uint8_t* f = reinterpret_cast<const uint8_t*>(NETMAP_BUF(ring, s.buf_idx));
        uint32_t seq = 0;
        if (s.len >= kHead + 4)
          for (int b = 0; b < 4; b++) seq = seq << 8 | f[kHead + b];
        make_frame(want, k, uint32_t(f[36] << 8 | f[37]));
        if (k >= count || s.len != frame_len(k) || memcmp(f, want, s.len) != 0) {
          uint32_t at = 0;
          while (at < s.len && at < frame_len(k) && f[at] == want[at]) at++;
          printf("frame %u: len %u (want %u), number %u, first wrong byte at %u\n", k, s.len, frame_len(k), seq,
                 at);
          return 3;
        }
        k++;
      }
    }
  }
  printf("ok %u\n", count);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 || (strcmp(argv[1], "send") && strcmp(argv[1], "recv"))) {
    fprintf(stderr, "usage: nm_udp send PORT COUNT DST_PORT | recv PORT COUNT TIMEOUT_MS\n");
    return 1;
  }
  nmport_d* d = nmport_open(argv[2]);
  if (!d) return 2;
  const uint32_t count = uint32_t(strtoul(argv[3], nullptr, 10));
  const int rc = argv[1][0] == 's' ? send(d, count, uint32_t(atoi(argv[4]))) : recv(d, count, atoi(argv[4]));
  nmport_close(d);
  return rc;
}
