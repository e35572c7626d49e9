// unetmap-attach: the forwarder of a port attached to a VALE switch
// (src/ports/vale/attach.h), a worker of kind "attach" (src/core/worker.h). The
// worker service runs it for NIOCCTRL VALE_ATTACH of an interface, or of a
// persistent VALE port already on another switch, under a supervisor that
// restarts it if it dies; it is not meant to be run by hand.
//
//   unetmap-attach SWITCH PORT nic|port host|-      (fd 3: the ready pipe)
//
// It opens the two sides, applies its polling request (the worker's conf:
// a restarted forwarder polls again), writes "ok" (or "ERRNO why") on fd 3,
// and forwards both ways until SIGTERM. SIGUSR1 means: read the conf again
// (present: polling mode, spinning on the rings on the CPUs it names;
// absent: sleeping in poll()), then report "poll MODE FIRST N" or "block"
// as the worker's status.
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

#include "core/worker.h"
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

// Read the polling request and apply it; report what is done.
void reload(Mode* m) {
  unsigned mode = 0, first = 0, n = 0;
  const std::string conf = unetmap::worker::self::conf();
  const bool on = sscanf(conf.c_str(), "%u %u %u", &mode, &first, &n) == 3 && n > 0;
  if (on) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (unsigned c = first; c < first + n && c < CPU_SETSIZE; c++) CPU_SET(c, &set);
    sched_setaffinity(0, sizeof set, &set);
  } else {
    sched_setaffinity(0, sizeof m->all, &m->all);
  }
  m->polling = on;
  unetmap::worker::self::report(on ? "poll " + std::to_string(mode) + " " + std::to_string(first) +
                                         " " + std::to_string(n)
                                   : std::string("block"));
}

// Forward both ways until told to stop: blocking in poll(), or spinning on
// the sync ioctls in polling mode.
void run(std::vector<Pair>& pairs, Mode& m) {
  std::vector<pollfd> fds;
  while (!g_stop) {
    if (g_reload) {
      g_reload = 0;
      reload(&m);
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
    fprintf(stderr, "unetmap-attach: %s\n", why.c_str());
    say(std::to_string(err) + " " + why);
    return 1;
  };
  std::vector<Pair> pairs;
  std::string why;
  auto cleanup = [&] {
    for (auto& p : pairs) {
      nmport_close(p.vale);
      nmport_close(p.end);
    }
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
  Mode m;
  sched_getaffinity(0, sizeof m.all, &m.all);
  reload(&m);
  fprintf(stderr, "unetmap-attach: forwarding between %s and %s:%s%s%s\n", port.c_str(), sw.c_str(),
          port.c_str(), host ? " (and the host rings)" : "", m.polling ? ", polling" : "");
  say("ok");
  run(pairs, m);
  cleanup();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 || (strcmp(argv[3], "nic") != 0 && strcmp(argv[3], "port") != 0)) {
    fprintf(stderr,
            "usage: unetmap-attach SWITCH PORT nic|port host|- (a worker of kind attach, run by "
            "the worker service for VALE_ATTACH; fd 3 is its ready pipe)\n");
    return 2;
  }
  if (fcntl(3, F_GETFD) < 0) {
    fprintf(stderr, "unetmap-attach: fd 3 (the ready pipe) is not open\n");
    return 2;
  }
  setenv("UNETMAP_QUIET", "1", 1);
  return helper(argv[1], argv[2], strcmp(argv[3], "nic") == 0, strcmp(argv[4], "host") == 0, 3);
}
