#include "nic-attach.h"

#include <errno.h>
#include <fcntl.h>
#include <libnetmap.h>
#include <net/netmap_user.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "core/shm.h"  // runtime_dir()
#include "forward.h"

namespace unetmap::attach {

namespace {

std::string state_path(const std::string& sw, const std::string& ifname) {
  return runtime_dir() + "/attach/" + sw + ":" + ifname;
}

// The pid of the live helper holding the state file, or 0.
pid_t live_helper(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  pid_t pid = 0;
  if (flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
    char buf[32] = {};
    if (pread(fd, buf, sizeof buf - 1, 0) > 0) pid = pid_t(atoi(buf));
  }
  close(fd);
  return pid;
}

volatile sig_atomic_t g_stop = 0, g_polling = 0;

struct Pair {
  nmport_d* nic;
  nmport_d* vale;
  bool zero_copy;
  fwd::Counters c[2];
};

// Forward both ways until told to stop: blocking in poll(), or spinning
// on the sync ioctls in polling mode (SIGUSR1 on, SIGUSR2 off).
void run(std::vector<Pair>& pairs) {
  std::vector<pollfd> fds;
  while (!g_stop) {
    if (!g_polling) {
      fds.clear();
      for (auto& p : pairs)
        for (nmport_d* d : {p.nic, p.vale}) fds.push_back({d->fd, POLLIN, 0});
      poll(fds.data(), fds.size(), 200);
    } else {
      for (auto& p : pairs)
        for (nmport_d* d : {p.nic, p.vale}) ioctl(d->fd, NIOCRXSYNC, nullptr);
    }
    for (auto& p : pairs) {
      uint32_t to_vale = fwd::forward(p.nic, p.vale, 1024, p.zero_copy, &p.c[0]);
      uint32_t to_nic = fwd::forward(p.vale, p.nic, 1024, p.zero_copy, &p.c[1]);
      if (to_vale) ioctl(p.vale->fd, NIOCTXSYNC, nullptr);
      if (to_nic) ioctl(p.nic->fd, NIOCTXSYNC, nullptr);
    }
  }
}

void on_signal(int sig) {
  if (sig == SIGUSR1) g_polling = 1;
  else if (sig == SIGUSR2) g_polling = 0;
  else g_stop = 1;
}

// The helper: take the state file, open the ports, say "ok" (or why not)
// on `ready`, then forward. Returns its exit status.
int helper(const std::string& sw, const std::string& ifname, bool host, int ready) {
  auto say = [&](const std::string& m) {
    std::string line = m + "\n";
    ssize_t r = write(ready, line.data(), line.size());
    (void)r;
    close(ready);
  };
  setsid();
  const std::string path = state_path(sw, ifname);
  int sf = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (sf < 0 || flock(sf, LOCK_EX | LOCK_NB) != 0) {
    say(sf < 0 ? "cannot create " + path + ": " + strerror(errno) : "already attached");
    return 1;
  }
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(sf, 0) != 0 || pwrite(sf, pid.data(), pid.size(), 0) < 0) {
    say("cannot write " + path);
    return 1;
  }
  std::vector<Pair> pairs;
  std::string why;
  for (bool h : {false, true}) {
    if (h && !host) break;
    nmport_d* nic = fwd::open_quiet("netmap:" + ifname + (h ? "^" : ""), &why);
    nmport_d* vale = nic ? fwd::open_quiet(sw + ":" + ifname + (h ? "_host" : "") + "@" +
                                         std::to_string(nic->reg.nr_mem_id), &why)
                         : nullptr;
    if (!vale) {
      say(why);
      unlink(path.c_str());
      return 1;
    }
    pairs.push_back({nic, vale, fwd::same_region(nic, vale), {}});
  }
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2}) sigaction(s, &sa, nullptr);
  int null = open("/dev/null", O_RDWR);
  dup2(null, 0);
  dup2(null, 1);
  dup2(null, 2);
  say("ok");
  run(pairs);
  for (auto& p : pairs) {
    nmport_close(p.vale);
    nmport_close(p.nic);
  }
  unlink(path.c_str());
  return 0;
}

}  // namespace

bool running(const std::string& sw, const std::string& ifname) {
  return live_helper(state_path(sw, ifname)) > 0;
}

int start(const std::string& sw, const std::string& ifname, bool host, std::string* why) {
  if (running(sw, ifname)) {
    *why = ifname + " is already attached to " + sw;
    return EEXIST;
  }
  mkdir((runtime_dir() + "/attach").c_str(), 0755);
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return errno;
  fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) return errno;
  if (pid == 0) {
    close(p[0]);
    _exit(helper(sw, ifname, host, p[1]));
  }
  close(p[1]);
  std::string msg;
  pollfd pf{p[0], POLLIN, 0};
  char buf[512];
  while (msg.find('\n') == std::string::npos && poll(&pf, 1, 15000) == 1) {
    ssize_t n = read(p[0], buf, sizeof buf);
    if (n <= 0) break;
    msg.append(buf, size_t(n));
  }
  close(p[0]);
  if (msg == "ok\n") return 0;
  kill(pid, SIGKILL);
  *why = msg.empty() ? "the helper did not start" : msg.substr(0, msg.find('\n'));
  return msg.find("already") != std::string::npos ? EEXIST : EIO;
}

int stop(const std::string& sw, const std::string& ifname, std::string* why) {
  const std::string path = state_path(sw, ifname);
  pid_t pid = live_helper(path);
  if (pid <= 0) {
    unlink(path.c_str());  // a stale file, if any
    *why = ifname + " is not attached to " + sw;
    return ENOENT;
  }
  kill(pid, SIGTERM);
  // The helper closes its ports and drops the lock as it exits.
  for (int i = 0; i < 1000 && live_helper(path) > 0; i++) {
    timespec ts{0, 10000000};
    nanosleep(&ts, nullptr);
  }
  if (live_helper(path) > 0) {
    kill(pid, SIGKILL);
    *why = "the helper (pid " + std::to_string(pid) + ") did not stop in 10 s: killed";
  }
  unlink(path.c_str());
  return 0;
}

int set_polling(const std::string& sw, const std::string& ifname, bool on, std::string* why) {
  pid_t pid = live_helper(state_path(sw, ifname));
  if (pid <= 0) {
    *why = ifname + " is not attached to " + sw;
    return ENOENT;
  }
  return kill(pid, on ? SIGUSR1 : SIGUSR2) == 0 ? 0 : errno;
}

}  // namespace unetmap::attach
