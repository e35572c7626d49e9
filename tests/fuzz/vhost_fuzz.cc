// Fuzzes a vhost-user backend from its front end's side: the message
// stream (read_message over a socket pair: sizes, versions, fds) and the
// device's answers to it (Device::handle: features, memory tables, queue
// setup), then the virtqueues the messages set up, over guest memory whose
// contents come from the input too (Virtq::pop/push/flush on split and
// packed rings: descriptors, chains, indirect tables, indexes). What a
// hostile VM or front end controls, all of it.
//
// Input: [pairs:1] [memory: 4096 bytes, the first page of guest memory]
// then messages: [req:1] [flags:1] [size:2] [fds:1] [size bytes]; fds bits
// 0-1 how many, bit 2 whether the first is the eventfd (else the memfd).
// The guest memory is a 64 KiB memfd (the rest zero); a message's fds are
// dups of it or of an eventfd. After each message, every live queue is run
// as the backend runs it: chains popped, their bytes read or written,
// given back, flushed.
//
// Checks, besides no crash/UB/leak: no fd is left open once the device is
// reset (every fd a message brought was kept or closed).
#include <dirent.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ports/vhost/device.h"
#include "ports/vhost/transport.h"

namespace {

using namespace unetmap::vhost;

int open_fds() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  while (d && readdir(d)) n++;
  if (d) closedir(d);
  return n;
}

void check(bool ok, const char* what) {
  if (ok) return;
  fprintf(stderr, "FUZZ CHECK FAILED: %s\n", what);
  abort();
}

// The backend's use of a live queue: every chain popped is read (transmit)
// or filled (receive), then given back.
void run_queue(Device& dev, uint32_t qi) {
  Queue& q = dev.queue(qi);
  static Chain c;
  const bool write = qi % 2 == 0;
  for (int k = 0; k < 64 && q.vq.pop(&c, write); k++) {
    uint32_t sum = 0, len = 0;
    for (uint32_t s = 0; s < c.nsegs; s++) {
      if (write) memset(c.seg[s].p, 0xab, c.seg[s].len);
      else
        for (uint32_t i = 0; i < c.seg[s].len; i += 64) sum += c.seg[s].p[i];
      len += c.seg[s].len;
    }
    q.vq.push(c, write ? len : sum % 2);
  }
  q.vq.pending();
  q.vq.flush();
  q.vq.kicks(true);
  q.vq.kicks(false);
  (void)q.vq.state();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 + 4096) return 0;
  const int baseline = open_fds();
  const int memfd = memfd_create("guest", MFD_CLOEXEC);
  const int ev = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  constexpr size_t kMem = 64 << 10;
  if (memfd < 0 || ev < 0 || ftruncate(memfd, kMem) != 0) abort();
  if (pwrite(memfd, data + 1, 4096, 0) != 4096) abort();
  {
    Device dev(Device::Options{1u + data[0] % 2});
    int sv[2] = {-1, -1};
    size_t at = 1 + 4096;
    Message m;
    while (at + 5 <= size) {
      if (sv[0] < 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) abort();
      const uint8_t* h = data + at;
      uint16_t len;
      memcpy(&len, h + 2, 2);
      len %= 4200;  // sometimes more than any message may have
      const uint32_t nfds = h[4] % 4;
      const bool ev_first = h[4] & 4;  // the first fd an eventfd (kick, call), else the memfd
      at += 5;
      // Header and payload as the front end sends them; the payload's bytes
      // are the input's (zeros past its end).
      MsgHeader mh{h[0], uint32_t(h[1] & 0x0f), len};
      std::string bytes(reinterpret_cast<const char*>(&mh), sizeof mh);
      const size_t avail = size - at < len ? size - at : len;
      bytes.append(reinterpret_cast<const char*>(data + at), avail);
      bytes.resize(sizeof mh + (len > kMaxPayload ? 0 : len), '\0');
      at += avail;
      std::vector<int> fds;
      for (uint32_t i = 0; i < nfds; i++) fds.push_back((i % 2 == 0) == ev_first ? ev : memfd);
      iovec iov{bytes.data(), bytes.size()};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * 4)];
      if (nfds) {
        msg.msg_control = ctl;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        cmsghdr* cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds.data(), sizeof(int) * nfds);
      }
      if (sendmsg(sv[0], &msg, MSG_NOSIGNAL) != ssize_t(bytes.size())) abort();
      std::string why, reply;
      int err = read_message(sv[1], &m, &why);
      if (!err) err = dev.handle(m.h, m.payload, m.fds, &reply, &why);
      for (int fd : m.fds) close(fd);  // handle() took what it keeps; the rest is ours
      m.fds.clear();
      if (err) {  // the backend ends the connection, and the device with it
        close(sv[0]);
        close(sv[1]);
        sv[0] = sv[1] = -1;
        dev.reset();
        continue;
      }
      for (uint32_t qi = 0; qi < 2 * dev.queue_pairs(); qi++)
        if (dev.live(qi)) run_queue(dev, qi);
    }
    if (sv[0] >= 0) close(sv[0]), close(sv[1]);
    dev.reset();
  }
  close(memfd);
  close(ev);
  check(open_fds() == baseline, "an fd a message brought is still open");
  return 0;
}
