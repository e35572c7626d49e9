// Sender and receiver loops for the pipe tests, used in-process and by the
// nm_peer helper program. Packet `seq` goes on bound tx ring
// first + seq % nrings, so every rx ring sees its own increasing sequence.
//
// Both loops block in poll() with a deadline, and the receiver checks the
// zero-copy contract of netmap pipes: its slot holds the very buffer the
// sender filled (the sender writes that buffer's index into the packet).
#pragma once

#include <string>
#include <vector>

#include "util/test_util.h"

namespace nmtest {

struct Rings {
  int fd;
  netmap_if* nifp;
  unsigned first, last;  // bound rings, inclusive
  unsigned count() const { return last - first + 1; }
};

struct IoOpts {
  PktSpec spec;
  uint32_t count = 1000;
  bool zero_copy = true;  // check that the receiver gets the sender's buffers
  int timeout_ms = 10000; // for the whole transfer
};

// Send opts.count packets. Empty string on success, else what went wrong.
inline std::string send_pkts(const Rings& R, const IoOpts& o) {
  const double end = now_ms() + o.timeout_ms;
  char why[256];
  for (uint32_t seq = 0; seq < o.count;) {
    unsigned r = R.first + seq % R.count();
    netmap_ring* ring = NETMAP_TXRING(R.nifp, r);
    uint32_t need = slots_for(pkt_len(o.spec, seq), ring->nr_buf_size);
    if (nm_ring_space(ring) < need) {
      if (ioctl(R.fd, NIOCTXSYNC, nullptr) < 0) {
        snprintf(why, sizeof why, "NIOCTXSYNC: %s", strerror(errno));
        return why;
      }
      while (nm_ring_space(ring) < need) {
        int left = int(end - now_ms());
        pollfd p{R.fd, POLLOUT, 0};
        int rc = left > 0 ? ::poll(&p, 1, left) : 0;
        if (rc < 0) {
          snprintf(why, sizeof why, "poll: %s", strerror(errno));
          return why;
        }
        if (rc == 0) {
          snprintf(why, sizeof why, "timed out waiting for room on tx ring %u at seq %u", r, seq);
          return why;
        }
        if (p.revents & POLLERR) return "poll reported POLLERR on the tx side";
      }
    }
    put_pkt(ring, o.spec, seq, r);
    seq++;
  }
  if (ioctl(R.fd, NIOCTXSYNC, nullptr) < 0) {
    snprintf(why, sizeof why, "final NIOCTXSYNC: %s", strerror(errno));
    return why;
  }
  return {};
}

// Receive opts.count packets over the bound rx rings and check each one.
// per_ring (if given) gets the number of packets seen on each bound ring.
inline std::string recv_pkts(const Rings& R, const IoOpts& o,
                             std::vector<uint32_t>* per_ring = nullptr) {
  std::vector<uint32_t> next(R.count()), seen(R.count(), 0);
  for (unsigned i = 0; i < R.count(); i++) next[i] = i;
  const double end = now_ms() + o.timeout_ms;
  std::vector<uint8_t> pkt;
  char why[256];
  uint32_t got = 0;
  while (got < o.count) {
    int left = int(end - now_ms());
    pollfd p{R.fd, POLLIN, 0};
    int rc = left > 0 ? ::poll(&p, 1, left) : 0;
    if (rc < 0) {
      snprintf(why, sizeof why, "poll: %s", strerror(errno));
      return why;
    }
    if (rc == 0) {
      snprintf(why, sizeof why, "timed out after %u of %u packets", got, o.count);
      return why;
    }
    if (p.revents & POLLERR) return "poll reported POLLERR on the rx side";
    for (unsigned k = 0; k < R.count(); k++) {
      unsigned r = R.first + k;
      netmap_ring* ring = NETMAP_RXRING(R.nifp, r);
      for (;;) {
        if (nm_ring_empty(ring)) break;
        uint32_t nslots, first_idx;
        bool changed;
        if (!peek_pkt(ring, &pkt, &nslots, &changed, &first_idx)) break;  // rest not here yet
        std::string e = check_pkt(o.spec, pkt, next[k], r);
        if (!e.empty()) return "rx ring " + std::to_string(r) + ": " + e;
        if (o.zero_copy) {
          PktHdr h;
          memcpy(&h, pkt.data(), sizeof h);
          if (h.buf_idx != first_idx) {
            snprintf(why, sizeof why, "seq %u: arrived in buffer %u, sender filled buffer %u",
                     h.seq, first_idx, h.buf_idx);
            return why;
          }
        }
        uint32_t i = ring->cur;
        for (uint32_t s = 0; s < nslots; s++) i = nm_ring_next(ring, i);
        ring->head = ring->cur = i;
        next[k] += R.count();
        seen[k]++;
        if (++got > o.count) return "more packets than were sent";
      }
    }
  }
  // Release what was consumed, so a sender waiting for room can finish.
  ioctl(R.fd, NIOCRXSYNC, nullptr);
  if (per_ring) *per_ring = seen;
  return {};
}

}  // namespace nmtest
