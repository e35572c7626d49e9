#include "ports/vhost/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace unetmap::vhost {

namespace {

// Wait until sock is ready for `events` before deadline_ms (now_ms
// clock); ETIMEDOUT if not.
int wait_ready(int sock, short events, double deadline_ms) {
  for (;;) {
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    const double now = double(t.tv_sec) * 1e3 + double(t.tv_nsec) / 1e6;
    if (now >= deadline_ms) return ETIMEDOUT;
    pollfd p{sock, events, 0};
    const int r = poll(&p, 1, int(deadline_ms - now) + 1);
    if (r > 0) return 0;
    if (r < 0 && errno != EINTR) return errno;
  }
}

double deadline(int ms) {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return double(t.tv_sec) * 1e3 + double(t.tv_nsec) / 1e6 + ms;
}

// recv exactly n bytes (fds may come with the first part), waiting at
// most until the deadline for each part.
int recv_all(int sock, void* buf, size_t n, std::vector<int>* fds, bool* cut, double until) {
  size_t got = 0;
  while (got < n) {
    if (int err = wait_ready(sock, POLLIN, until)) return err;
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * kMaxFds)];
    iovec iov{static_cast<char*>(buf) + got, n - got};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = fds ? ctl : nullptr;
    mh.msg_controllen = fds ? sizeof ctl : 0;
    const ssize_t r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r < 0) return errno;
    if (r == 0) return ECONNRESET;
    if (fds) {
      for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        const size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
          int fd;
          memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
          fds->push_back(fd);
        }
      }
      if (mh.msg_flags & MSG_CTRUNC) *cut = true;
    }
    got += size_t(r);
  }
  return 0;
}

}  // namespace

int read_message(int sock, Message* m, std::string* why) {
  m->fds.clear();
  bool cut = false;
  const double until = deadline(kMessageTimeoutMs);
  int err = recv_all(sock, &m->h, sizeof m->h, &m->fds, &cut, until);
  auto drop_fds = [m] {
    for (int fd : m->fds) close(fd);
    m->fds.clear();
  };
  if (err) {
    drop_fds();
    if (err != ECONNRESET) *why = std::string("reading a message: ") + strerror(err);
    if (err == ETIMEDOUT) *why = "a message that did not arrive whole within " + std::to_string(kMessageTimeoutMs) + " ms";
    return err;
  }
  if (cut || m->fds.size() > kMaxFds) {
    drop_fds();
    *why = "a message with more fds than a request takes";
    return EINVAL;
  }
  if (m->h.size > kMaxPayload) {
    drop_fds();
    *why = "a message of " + std::to_string(m->h.size) + " bytes (at most " + std::to_string(kMaxPayload) + ")";
    return EINVAL;
  }
  err = recv_all(sock, m->payload, m->h.size, nullptr, nullptr, until);
  if (err) {
    drop_fds();
    *why = "a message cut short";
    return err == ECONNRESET ? EINVAL : err;
  }
  return 0;
}

std::string describe_message(const MsgHeader& h, const uint8_t* p, size_t nfds) {
  char b[300];
  int n = snprintf(b, sizeof b, "message %u flags 0x%x size %u fds %zu", h.request, h.flags, h.size, nfds);
  for (uint32_t i = 0; i + 4 <= h.size && i < 40 && n > 0 && size_t(n) < sizeof b; i += 4) {
    uint32_t w;
    memcpy(&w, p + i, 4);
    n += snprintf(b + n, sizeof b - size_t(n), " %08x", w);
  }
  return b;
}

int send_reply(int sock, const std::string& reply) {
  size_t sent = 0;
  const double until = deadline(kMessageTimeoutMs);
  while (sent < reply.size()) {
    if (int err = wait_ready(sock, POLLOUT, until)) return err;  // a front end that reads no replies
    const ssize_t r = send(sock, reply.data() + sent, reply.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r < 0) return errno;
    sent += size_t(r);
  }
  return 0;
}

namespace {
bool unix_addr(const std::string& path, sockaddr_un* a) {
  if (path.empty() || path.size() >= sizeof a->sun_path) return false;
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  memcpy(a->sun_path, path.c_str(), path.size() + 1);
  return true;
}
}  // namespace

int listen_at(const std::string& path, std::string* why) {
  sockaddr_un a;
  if (!unix_addr(path, &a)) {
    *why = "socket path '" + path + "': empty or longer than " + std::to_string(sizeof a.sun_path - 1) + " bytes";
    return -EINVAL;
  }
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      *why = path + " exists and is not a socket";
      return -EEXIST;
    }
    // A socket that nobody listens on is a dead server's: replace it.
    const int probe = connect_to(path);
    if (probe >= 0) {
      close(probe);
      *why = path + ": another server listens there";
      return -EADDRINUSE;
    }
    unlink(path.c_str());
  }
  const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) {
    *why = std::string("socket: ") + strerror(errno);
    return -errno;
  }
  // The socket is the VM's NIC: only its owner may connect (0600).
  const mode_t old = umask(0077);
  const int b = bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  umask(old);
  if (b != 0 || listen(s, 4) != 0) {
    const int err = errno;
    *why = path + ": " + strerror(err);
    close(s);
    return -err;
  }
  return s;
}

int connect_to(const std::string& path) {
  sockaddr_un a;
  if (!unix_addr(path, &a)) return -EINVAL;
  // Nonblocking: a Unix socket whose backlog is full (a front end that
  // never accepts) says EAGAIN rather than blocking the backend.
  const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) return -errno;
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    const int err = errno;
    close(s);
    return -err;
  }
  return s;
}

}  // namespace unetmap::vhost
