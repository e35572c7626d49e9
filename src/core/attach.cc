// Attachments (see attach.h): starting, finding, stopping and switching the
// helper process that forwards between a port and a VALE switch.
#include "core/attach.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <net/netmap.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "core/registry.h"
#include "core/shm.h"

extern char** environ;

namespace unetmap::attach {

namespace {

std::string state_path(const std::string& sw, const std::string& port) {
  return runtime_dir() + "/attach/" + sw + ":" + port;
}
std::string poll_path(const std::string& sw, const std::string& port) {
  return state_path(sw, port) + ".poll";
}

// The state file's text (pid line, then the helper's mode line).
std::string read_state(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return "";
  char buf[128] = {};
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  close(fd);
  return n > 0 ? std::string(buf, size_t(n)) : "";
}

// The pid of the live helper holding the state file, or 0.
pid_t live_helper(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return 0;
  pid_t pid = 0;
  if (flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
    char buf[32] = {};
    if (pread(fd, buf, sizeof buf - 1, 0) > 0) pid = pid_t(atoi(buf));
  }
  close(fd);
  return pid;
}

void pause_ms(long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, nullptr);
}

// The helper program: $UNETMAP_ATTACH_HELPER, else unetmap-attach in the
// directory of this library.
std::string helper_path() {
  if (const char* e = getenv("UNETMAP_ATTACH_HELPER"); e && *e) return e;
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&helper_path), &info) && info.dli_fname) {
    std::string lib = info.dli_fname;
    size_t slash = lib.rfind('/');
    return (slash == std::string::npos ? std::string(".") : lib.substr(0, slash)) +
           "/unetmap-attach";
  }
  return "unetmap-attach";
}

// Rings of the registry port `name` in direction d (0 if unknown).
uint32_t port_rings(const std::string& name, int d) {
  int err = 0;
  Registry* reg = Registry::get(&err);
  if (!reg) return 0;
  RegistryLock g(*reg);
  if (!g.ok()) return 0;
  int p = reg->find_port(name.c_str());
  return p < 0 ? 0 : reg->port(p).nrings[d];
}

bool parse_polling(const std::string& line, Polling* p) {
  return sscanf(line.c_str(), "%u %u %u", &p->mode, &p->first_cpu, &p->ncpus) == 3;
}

// Wait (at most 5 s) until the helper's mode line says `want`; false if it
// did not, or died.
bool wait_ack(const std::string& sw, const std::string& port, const std::string& want) {
  const std::string path = state_path(sw, port);
  for (int i = 0; i < 500; i++) {
    std::string s = read_state(path);
    size_t nl = s.find('\n');
    if (nl != std::string::npos && s.compare(nl + 1, std::string::npos, want + "\n") == 0)
      return true;
    if (live_helper(path) <= 0) return false;
    pause_ms(10);
  }
  return false;
}

}  // namespace

bool running(const std::string& sw, const std::string& port) {
  return live_helper(state_path(sw, port)) > 0;
}

std::string switch_of(const std::string& port) {
  const std::string dir = runtime_dir() + "/attach";
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) names.push_back(e->d_name);
    closedir(d);
  }
  const std::string tail = ":" + port;
  for (const std::string& n : names)
    if (n.size() > tail.size() && n.compare(n.size() - tail.size(), tail.size(), tail) == 0 &&
        live_helper(dir + "/" + n) > 0)
      return n.substr(0, n.size() - tail.size());
  return "";
}

int start(const std::string& sw, const std::string& port, bool nic, bool host, std::string* why) {
  if (running(sw, port)) {
    *why = port + " is already attached to " + sw;
    return EBUSY;
  }
  const std::string dir = runtime_dir() + "/attach";
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    *why = "cannot make " + dir + ": " + strerror(errno);
    return errno;
  }
  const std::string helper = helper_path();
  if (access(helper.c_str(), X_OK) != 0) {
    *why = "cannot run the attachment helper " + helper + " (" + strerror(errno) +
           "): it is built next to libnetmap.so; UNETMAP_ATTACH_HELPER names another";
    return ENOENT;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return errno;
  // Only the pipe goes to the helper (as fd 3), nothing else of this
  // process: its netmap fds would make the helper hold its ports.
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDWR, 0);
  posix_spawn_file_actions_adddup2(&fa, 0, 1);
  posix_spawn_file_actions_adddup2(&fa, 0, 2);
  posix_spawn_file_actions_adddup2(&fa, p[1], 3);
  posix_spawn_file_actions_addclosefrom_np(&fa, 4);
  std::vector<std::string> args = {helper, sw, port, nic ? "nic" : "port", host ? "host" : "-"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int err = posix_spawn(&pid, helper.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(p[1]);
  if (err) {
    close(p[0]);
    *why = "cannot start " + helper + ": " + strerror(err);
    return err;
  }
  // The first process forks the helper and exits at once.
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
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
  // "ERRNO why": the helper has exited (or exits now).
  if (msg.empty()) {
    *why = "the attachment helper did not start";
    return EIO;
  }
  msg.resize(msg.find('\n'));
  char* end = nullptr;
  long e = strtol(msg.c_str(), &end, 10);
  *why = end && *end == ' ' ? std::string(end + 1) : msg;
  return e > 0 && e < 4096 ? int(e) : EIO;
}

int stop(const std::string& sw, const std::string& port, std::string* why) {
  const std::string path = state_path(sw, port);
  pid_t pid = live_helper(path);
  if (pid <= 0) {
    *why = port + " is not attached to " + sw;
    return ENXIO;
  }
  if (polling(sw, port)) {
    *why = sw + ":" + port + " is in polling mode: disable it first (vale-ctl -P)";
    return EBUSY;
  }
  kill(pid, SIGTERM);
  // The helper closes its ports and drops the lock as it exits.
  for (int i = 0; i < 1000 && live_helper(path) > 0; i++) pause_ms(10);
  if (live_helper(path) > 0) {
    kill(pid, SIGKILL);
    *why = "the helper (pid " + std::to_string(pid) + ") did not stop in 10 s: killed";
    for (int i = 0; i < 100 && live_helper(path) > 0; i++) pause_ms(10);
  }
  return 0;
}

bool polling(const std::string& sw, const std::string& port, Polling* p) {
  if (!running(sw, port)) return false;
  std::string s = read_state(state_path(sw, port));
  size_t nl = s.find('\n');
  Polling tmp;
  if (nl == std::string::npos || s.compare(nl + 1, 5, "poll ") != 0) return false;
  if (!parse_polling(s.substr(nl + 6), &tmp)) return false;
  if (p) *p = tmp;
  return true;
}

int polling_enable(const std::string& sw, const std::string& port, const Polling& p,
                   std::string* why) {
  const std::string name = sw + ":" + port;
  if (!running(sw, port)) {
    *why = name + " is not an attached NIC (polling mode is for ports attached with vale-ctl -a)";
    return ENXIO;
  }
  // netmap's checks of the configuration.
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (p.ncpus == 0) {
    *why = "nr_num_polling_cpus must be at least 1";
    return EINVAL;
  }
  if (long(p.ncpus) >= cpus) {
    *why = "polling on " + std::to_string(p.ncpus) + " CPUs of " + std::to_string(cpus) +
           ": netmap leaves at least one CPU free";
    return EINVAL;
  }
  if (p.mode == NETMAP_POLLING_MODE_SINGLE_CPU) {
    if (p.ncpus != 1) {
      *why = "NETMAP_POLLING_MODE_SINGLE_CPU takes 1 CPU (nr_num_polling_cpus " +
             std::to_string(p.ncpus) + ")";
      return EINVAL;
    }
  } else if (p.mode == NETMAP_POLLING_MODE_MULTI_CPU) {
    const uint32_t rings = port_rings(port, 1);
    if (uint64_t(p.first_cpu) + p.ncpus > rings) {
      *why = "NETMAP_POLLING_MODE_MULTI_CPU polls one ring per CPU: rings " +
             std::to_string(p.first_cpu) + ".." + std::to_string(uint64_t(p.first_cpu) + p.ncpus - 1) +
             " asked, " + port + " has " + std::to_string(rings);
      return EINVAL;
    }
  } else {
    *why = "polling mode " + std::to_string(p.mode) +
           ": NETMAP_POLLING_MODE_SINGLE_CPU (1) or NETMAP_POLLING_MODE_MULTI_CPU (2)";
    return EINVAL;
  }
  if (uint64_t(p.first_cpu) + p.ncpus > uint64_t(cpus)) {
    *why = "CPUs " + std::to_string(p.first_cpu) + ".." +
           std::to_string(uint64_t(p.first_cpu) + p.ncpus - 1) + " asked, this system has 0.." +
           std::to_string(cpus - 1);
    return EINVAL;
  }
  const std::string pp = poll_path(sw, port);
  int fd = open(pp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) {
    if (errno != EEXIST) {
      *why = "cannot make " + pp + ": " + strerror(errno);
      return errno;
    }
    *why = name + " is in polling mode already";
    return EFAULT;  // netmap's answer
  }
  const std::string line =
      std::to_string(p.mode) + " " + std::to_string(p.first_cpu) + " " + std::to_string(p.ncpus);
  bool wrote = write(fd, (line + "\n").data(), line.size() + 1) == ssize_t(line.size() + 1);
  close(fd);
  pid_t pid = live_helper(state_path(sw, port));
  if (!wrote || pid <= 0 || kill(pid, SIGUSR1) != 0 || !wait_ack(sw, port, "poll " + line)) {
    unlink(pp.c_str());
    *why = "the helper of " + name + " did not switch to polling mode";
    return EIO;
  }
  return 0;
}

int polling_disable(const std::string& sw, const std::string& port, std::string* why) {
  const std::string name = sw + ":" + port;
  if (!running(sw, port)) {
    *why = name + " is not an attached NIC (polling mode is for ports attached with vale-ctl -a)";
    return ENXIO;
  }
  if (unlink(poll_path(sw, port).c_str()) != 0) {
    *why = name + " is not in polling mode";
    return EFAULT;  // netmap's answer
  }
  pid_t pid = live_helper(state_path(sw, port));
  if (pid <= 0 || kill(pid, SIGUSR1) != 0 || !wait_ack(sw, port, "block")) {
    *why = "the helper of " + name + " did not leave polling mode";
    return EIO;
  }
  return 0;
}

}  // namespace unetmap::attach
