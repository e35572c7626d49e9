// unetmap-attach: the forwarder of a port attached to a VALE switch
// (src/core/attach.h). The library starts it for NIOCCTRL VALE_ATTACH of an
// interface, or of a persistent VALE port already on another switch; it is
// not meant to be run by hand.
//
//   unetmap-attach SWITCH PORT nic|port host|-      (fd 3: the ready pipe)
//
// The first process forks the helper and exits, so the helper is nobody's
// child (the requester may go away: the attachment stays, as in netmap).
// The helper takes the state file's lock, opens the two sides, writes "ok"
// (or "ERRNO why") on fd 3, and forwards both ways until SIGTERM. SIGUSR1
// means: read SWITCH:PORT.poll again (present: polling mode, spinning on the
// rings on the CPUs it names; absent: sleeping in poll()), then say which
// on the second line of the state file.
#include <errno.h>
#include <fcntl.h>
#include <libnetmap.h>
#include <net/netmap_user.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "core/shm.h"  // runtime_dir()
#include "forward.h"

namespace {

using unetmap::fwd::Counters;

volatile sig_atomic_t g_stop = 0, g_reload = 0;

void on_signal(int sig) {
  if (sig == SIGUSR1)
    g_reload = 1;
  else
    g_stop = 1;
}

struct Pair {
  nmport_d* end;   // the NIC (or its host rings), or the wrapped VALE port
  nmport_d* vale;  // the switch side
  bool zero_copy;
  Counters c[2];
};

struct Mode {
  bool polling = false;
  cpu_set_t all;  // the affinity to go back to
};

// Read the .poll file and apply it; write the mode line of the state file.
void reload(Mode* m, int state_fd, const std::string& poll_path) {
  unsigned mode = 0, first = 0, n = 0;
  bool on = false;
  if (FILE* f = fopen(poll_path.c_str(), "re")) {
    on = fscanf(f, "%u %u %u", &mode, &first, &n) == 3 && n > 0;
    fclose(f);
  }
  if (on) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (unsigned c = first; c < first + n && c < CPU_SETSIZE; c++) CPU_SET(c, &set);
    sched_setaffinity(0, sizeof set, &set);
  } else {
    sched_setaffinity(0, sizeof m->all, &m->all);
  }
  m->polling = on;
  std::string text = std::to_string(getpid()) + "\n" +
                     (on ? "poll " + std::to_string(mode) + " " + std::to_string(first) + " " +
                               std::to_string(n)
                         : std::string("block")) +
                     "\n";
  if (ftruncate(state_fd, 0) == 0 && pwrite(state_fd, text.data(), text.size(), 0) < 0) {
  }
}

// Forward both ways until told to stop: blocking in poll(), or spinning on
// the sync ioctls in polling mode.
// The state file is still the one this helper holds (a runtime directory
// removed under it ends the attachment: nobody could find or stop it).
bool still_mine(int state_fd, const std::string& path) {
  struct stat a, b;
  return fstat(state_fd, &a) == 0 && stat(path.c_str(), &b) == 0 && a.st_ino == b.st_ino &&
         a.st_dev == b.st_dev;
}

void run(std::vector<Pair>& pairs, int state_fd, const std::string& path,
         const std::string& poll_path) {
  Mode m;
  sched_getaffinity(0, sizeof m.all, &m.all);
  std::vector<pollfd> fds;
  timespec last{};
  clock_gettime(CLOCK_MONOTONIC, &last);
  while (!g_stop) {
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec != last.tv_sec) {
      last = now;
      if (!still_mine(state_fd, path)) break;
    }
    if (g_reload) {
      g_reload = 0;
      reload(&m, state_fd, poll_path);
    }
    if (!m.polling) {
      fds.clear();
      for (auto& p : pairs)
        for (nmport_d* d : {p.end, p.vale}) fds.push_back({d->fd, POLLIN, 0});
      poll(fds.data(), fds.size(), 200);
    } else {
      for (auto& p : pairs)
        for (nmport_d* d : {p.end, p.vale}) ioctl(d->fd, NIOCRXSYNC, nullptr);
    }
    for (auto& p : pairs) {
      uint32_t to_vale = unetmap::fwd::forward(p.end, p.vale, 1024, p.zero_copy, &p.c[0]);
      uint32_t to_end = unetmap::fwd::forward(p.vale, p.end, 1024, p.zero_copy, &p.c[1]);
      if (to_vale) ioctl(p.vale->fd, NIOCTXSYNC, nullptr);
      if (to_end) ioctl(p.end->fd, NIOCTXSYNC, nullptr);
    }
  }
}

// The helper proper. Returns its exit status.
int helper(const std::string& sw, const std::string& port, bool nic, bool host, int ready) {
  auto say = [&](const std::string& m) {
    std::string line = m + "\n";
    ssize_t r = write(ready, line.data(), line.size());
    (void)r;
    close(ready);
  };
  auto fail = [&](int err, const std::string& why) {
    say(std::to_string(err) + " " + why);
    return 1;
  };
  setsid();
  const std::string path = unetmap::runtime_dir() + "/attach/" + sw + ":" + port;
  const std::string poll_path = path + ".poll";
  int sf = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (sf < 0) return fail(errno, "cannot create " + path + ": " + strerror(errno));
  if (flock(sf, LOCK_EX | LOCK_NB) != 0) return fail(EBUSY, port + " is already attached to " + sw);
  unlink(poll_path.c_str());  // a request left by a helper that died
  std::string text = std::to_string(getpid()) + "\nblock\n";
  if (ftruncate(sf, 0) != 0 || pwrite(sf, text.data(), text.size(), 0) < 0)
    return fail(errno, "cannot write " + path);
  std::vector<Pair> pairs;
  std::string why;
  auto cleanup = [&] {
    for (auto& p : pairs) {
      nmport_close(p.vale);
      nmport_close(p.end);
    }
    if (still_mine(sf, path)) unlink(path.c_str());
  };
  for (bool h : {false, true}) {
    if (h && !host) break;
    // A wrapped VALE port is opened exclusively: netmap's is busy while
    // wrapped. A NIC's switch side shares its region (zero copy).
    const std::string end_name = "netmap:" + port + (h ? "^" : "") + (nic ? "" : "/x");
    nmport_d* end = unetmap::fwd::open_quiet(end_name, &why);
    int err = errno;
    nmport_d* vale = nullptr;
    if (end) {
      std::string vname = sw + ":" + port + (h ? "_host" : "");
      if (nic) vname += "@" + std::to_string(end->reg.nr_mem_id);
      vale = unetmap::fwd::open_quiet(vname, &why);
      err = errno;
      if (!vale) nmport_close(end);
    }
    if (!vale) {
      cleanup();
      return fail(err > 0 ? err : EIO, why);
    }
    pairs.push_back({end, vale, unetmap::fwd::same_region(end, vale), {}});
  }
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaction(s, &sa, nullptr);
  say("ok");
  run(pairs, sf, path, poll_path);
  cleanup();
  unlink(poll_path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 || (strcmp(argv[3], "nic") != 0 && strcmp(argv[3], "port") != 0)) {
    fprintf(stderr,
            "usage: unetmap-attach SWITCH PORT nic|port host|- (started by libnetmap for "
            "VALE_ATTACH; fd 3 is its ready pipe)\n");
    return 2;
  }
  if (fcntl(3, F_GETFD) < 0) {
    fprintf(stderr, "unetmap-attach: fd 3 (the ready pipe) is not open\n");
    return 2;
  }
  setenv("UNETMAP_QUIET", "1", 1);
  pid_t pid = fork();
  if (pid < 0) {
    std::string m = std::to_string(errno) + " cannot fork the attachment helper\n";
    ssize_t r = write(3, m.data(), m.size());
    (void)r;
    return 1;
  }
  if (pid > 0) return 0;
  return helper(argv[1], argv[2], strcmp(argv[3], "nic") == 0, strcmp(argv[4], "host") == 0, 3);
}
