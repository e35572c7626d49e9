#include "ctl_socket.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

namespace unetmap::ctl {

namespace {

constexpr int kRequestMs = 200;

uint64_t now_ms() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return uint64_t(t.tv_sec) * 1000 + uint64_t(t.tv_nsec) / 1000000;
}

bool address(const std::string& path, sockaddr_un* a, std::string* err) {
  *a = sockaddr_un{};
  a->sun_family = AF_UNIX;
  if (path.size() >= sizeof a->sun_path) {
    *err = "socket path too long: " + path;
    return false;
  }
  strcpy(a->sun_path, path.c_str());
  return true;
}

bool peer_is_us(int s) {
  ucred cr{};
  socklen_t cl = sizeof cr;
  return getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0 && (cr.uid == 0 || cr.uid == geteuid());
}

void write_all(int s, const std::string& b) {
  size_t at = 0;
  while (at < b.size()) {  // SO_SNDTIMEO bounds a reader that does not read
    const ssize_t n = send(s, b.data() + at, b.size() - at, MSG_NOSIGNAL);  // a peer gone is no SIGPIPE
    if (n <= 0) break;
    at += size_t(n);
  }
}

}  // namespace

std::string socket_path(const std::string& tool, const std::string& name) {
  const char* d = getenv("UNETMAP_DIR");
  return std::string(d && *d ? d : "/dev/shm/unetmap") + "/" + tool + "." + name + ".sock";
}

int listen_on(const std::string& path, std::string* err, bool* running) {
  sockaddr_un a;
  if (!address(path, &a, err)) return -1;
  if (running) *running = false;
  const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  const int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0 || probe < 0) {
    *err = std::string("socket: ") + strerror(errno);
    if (s >= 0) close(s);
    if (probe >= 0) close(probe);
    return -1;
  }
  if (connect(probe, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    close(probe);
    close(s);
    *err = "a server is running on " + path;
    if (running) *running = true;
    return -1;
  }
  close(probe);
  unlink(path.c_str());  // left by a server that died
  const mode_t old = umask(077);
  const int r = bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  umask(old);
  if (r != 0 || listen(s, 8) != 0) {
    *err = "cannot listen on " + path + ": " + strerror(errno);
    close(s);
    return -1;
  }
  return s;
}

void serve_one(int ls, const char* tool, const std::function<void(const std::string&, std::string*)>& handle) {
  const int c = accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
  if (c < 0) return;
  std::string reply;
  if (!peer_is_us(c)) {
    reply = std::string("1 permission denied: ") + tool + " answers its own user and root\n";
  } else {
    const timeval tv{0, kRequestMs * 1000};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const uint64_t deadline = now_ms() + kRequestMs;
    std::string req;
    char buf[4096];
    while (req.find('\n') == std::string::npos && req.size() < 65536 && now_ms() < deadline) {
      const ssize_t n = read(c, buf, sizeof buf);
      if (n <= 0) break;
      req.append(buf, size_t(n));
    }
    const size_t nl = req.find('\n');
    if (nl == std::string::npos)
      reply = "1 the request did not come whole (a line) in time\n";
    else
      handle(req.substr(0, nl), &reply);
  }
  write_all(c, reply);
  close(c);
}

bool ask(const std::string& path, const std::string& line, std::string* reply, std::string* err) {
  sockaddr_un a;
  if (!address(path, &a, err)) return false;
  const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    *err = std::string("socket: ") + strerror(errno);
    return false;
  }
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    *err = "no server on " + path + ": " + strerror(errno);
    close(s);
    return false;
  }
  // A server that does not answer (stopped, or wedged) is given up on.
  const timeval tv{2, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  // Only a server of our own user or root is told anything (in a runtime
  // directory shared with a group, another member could listen there).
  if (!peer_is_us(s)) {
    *err = path + " is served by another user, neither root nor this user: refused";
    close(s);
    return false;
  }
  const std::string msg = line + "\n";
  if (send(s, msg.data(), msg.size(), MSG_NOSIGNAL) != ssize_t(msg.size())) {
    *err = std::string("cannot send: ") + strerror(errno);
    close(s);
    return false;
  }
  shutdown(s, SHUT_WR);
  reply->clear();
  char buf[65536];
  ssize_t n;
  while ((n = read(s, buf, sizeof buf)) > 0) reply->append(buf, size_t(n));
  const int e = n < 0 ? errno : 0;
  close(s);
  if (reply->empty()) {
    *err = e == EAGAIN || e == EWOULDBLOCK ? "the server did not answer within 2 s"
                                           : "the server closed the connection without an answer";
    return false;
  }
  return true;
}

}  // namespace unetmap::ctl
