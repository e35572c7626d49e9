// The worker service's client side (worker.h): the kind table, the files of
// an entry, and start/stop/get/list/configure as any process calls them.
// The supervisor itself is supervisor.cc.
#include "core/worker.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <sstream>

#include "core/worker_files.h"

extern char** environ;

namespace unetmap::worker {

bool is_word(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

namespace files {

namespace {

// program: /ABSOLUTE/PATH [ARG...]
int check_program(const std::vector<std::string>& a, std::string* why) {
  if (!a.empty() && a[0].size() > 1 && a[0][0] == '/') return 0;
  *why = "kind program takes the program's absolute path, then its arguments";
  return EINVAL;
}

const Kind kProgram{"program", nullptr, nullptr, false, check_program};

int pidfd_of(const ProcId& p) {
  if (p.pid <= 0) return -1;
  int fd = int(syscall(SYS_pidfd_open, p.pid, 0));
  if (fd < 0) return -1;
  if (!(ProcId::of(p.pid) == p)) {  // the pid is another process's now
    sys::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

const Kind* find_kind(const std::string& name, std::string* why) {
  std::string all;
  for (const Kind* const* k = port_kinds(); *k; k++) {
    if (name == (*k)->name) return *k;
    all += std::string(all.empty() ? "" : ", ") + (*k)->name;
  }
  if (name == kProgram.name) return &kProgram;
  *why = "no worker kind '" + name + "': " + all + " or program";
  return nullptr;
}

std::string beside_library(const char* program) {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&beside_library), &info) && info.dli_fname) {
    std::string lib = info.dli_fname;
    size_t slash = lib.rfind('/');
    return (slash == std::string::npos ? std::string(".") : lib.substr(0, slash)) + "/" + program;
  }
  return program;
}

std::string program_of(const Kind& k, const Spec& spec) {
  if (!k.program) return spec.args.empty() ? "" : spec.args[0];
  if (const char* e = k.env ? getenv(k.env) : nullptr; e && *e) return e;
  return beside_library(k.program);
}

int check_spec(const Spec& spec, const Kind** kind, std::string* why) {
  const std::string& n = spec.name;
  const bool name_ok = !n.empty() && n.size() < 64 && n[0] != '.' &&
                       std::all_of(n.begin(), n.end(), [](char c) {
                         return isalnum(static_cast<unsigned char>(c)) ||
                                strchr("_.:@^{}+-", c) != nullptr;
                       });
  if (!name_ok) {
    *why = "worker name '" + n + "': 1 to 63 letters, digits or _.:@^{}+- (not starting with .)";
    return EINVAL;
  }
  if (!(*kind = find_kind(spec.kind, why))) return EINVAL;
  size_t total = 0;
  for (const std::string& a : spec.args) {
    total += a.size() + 1;
    if (a.find('\n') != std::string::npos || a.find('\0') != std::string::npos) {
      *why = "a worker argument has a newline or a NUL";
      return EINVAL;
    }
  }
  if (spec.args.size() > 32 || total > 4096) {
    *why = "at most 32 worker arguments, 4096 characters in all";
    return EINVAL;
  }
  return (*kind)->check(spec.args, why);
}

int dir(std::string* path, std::string* why) { return runtime_subdir("workers", path, why); }

std::string path(const std::string& d, const std::string& name, const char* suffix) {
  return d + "/" + name + suffix;
}

// O_NONBLOCK: a FIFO planted by another member of the domain fails the
// check below instead of blocking the open (regular files ignore the flag).
int open_checked(const std::string& p, int flags, std::string* why, mode_t mode) {
  int fd = sys::open(p.c_str(), flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, mode);
  if (fd < 0) {
    const int e = errno;
    if (why) *why = p + (e == ELOOP ? " is a symbolic link: refused" : ": " + std::string(strerror(e)));
    return -e;
  }
  if (int e = check_shared_fd(fd, p, S_IFREG, why)) {
    sys::close(fd);
    return -e;
  }
  return fd;
}

std::string read_text(const std::string& p) {
  int fd = open_checked(p, O_RDONLY, nullptr);
  if (fd < 0) return "";
  std::string s;
  char buf[4096];
  for (ssize_t n; s.size() < 65536 && (n = ::read(fd, buf, sizeof buf)) > 0;) s.append(buf, size_t(n));
  sys::close(fd);
  return s;
}

int publish(const std::string& d, const std::string& p, const std::string& text, bool exclusive,
            std::string* why) {
  const std::string tmp = d + "/" + tmp_file_name();
  int fd = open_checked(tmp, O_WRONLY | O_CREAT | O_EXCL, why, shared_file_mode());
  if (fd < 0) return -fd;
  int err = 0;
  if (fchmod(fd, shared_file_mode()) != 0 ||
      ::write(fd, text.data(), text.size()) != ssize_t(text.size()))
    err = errno ? errno : EIO;
  sys::close(fd);
  if (!err && (exclusive ? ::link(tmp.c_str(), p.c_str()) : ::rename(tmp.c_str(), p.c_str())) != 0)
    err = errno;
  ::unlink(tmp.c_str());  // after link(); gone already after rename()
  if (err && why) *why = "cannot write " + p + ": " + strerror(err);
  return err;
}

bool lock_held(int fd) {
  if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
    flock(fd, LOCK_UN);
    return false;
  }
  return errno == EWOULDBLOCK;
}

std::string encode(const Info& i) {
  std::ostringstream o;
  o << "kind " << i.spec.kind << "\n";
  for (const std::string& a : i.spec.args) o << "arg " << a << "\n";
  o << "state " << state_name(i.state) << "\n"
    << "supervisor " << i.supervisor.pid << " " << i.supervisor.start << "\n"
    << "pid " << i.pid.pid << " " << i.pid.start << "\n"
    << "restarts " << i.restarts << "\n"
    << "exit_status " << i.exit_status << "\n"
    << "exit_signal " << i.exit_signal << "\n"
    << "since " << i.since << "\n";
  if (!i.reason.empty()) o << "reason " << i.reason << "\n";
  return o.str();
}

// Every number is bounded at use: the file is the domain's, not ours.
bool decode(const std::string& text, Info* i) {
  std::istringstream in(text);
  bool have_state = false;
  for (std::string line; std::getline(in, line);) {
    const size_t sp = line.find(' ');
    const std::string key = line.substr(0, sp), v = sp == std::string::npos ? "" : line.substr(sp + 1);
    auto num = [&](long long lo, long long hi, long long dflt) {
      char* end = nullptr;
      long long x = strtoll(v.c_str(), &end, 10);
      return end != v.c_str() && x >= lo && x <= hi ? x : dflt;
    };
    auto proc = [&](ProcId* p) {
      int pid = 0;
      unsigned long long start = 0;
      if (sscanf(v.c_str(), "%d %llu", &pid, &start) == 2 && pid > 0) *p = ProcId{pid, start};
    };
    if (key == "kind") i->spec.kind = v;
    else if (key == "arg") i->spec.args.push_back(v);
    else if (key == "supervisor") proc(&i->supervisor);
    else if (key == "pid") proc(&i->pid);
    else if (key == "restarts") i->restarts = uint32_t(num(0, UINT32_MAX, 0));
    else if (key == "exit_status") i->exit_status = int(num(-1, 255, -1));
    else if (key == "exit_signal") i->exit_signal = int(num(0, 64, 0));
    else if (key == "since") i->since = uint64_t(num(0, INT64_MAX, 0));
    else if (key == "reason") i->reason = v;
    else if (key == "state") {
      for (State s : {State::kStarting, State::kRunning, State::kRestarting, State::kFailed,
                      State::kStopping})
        if (v == state_name(s)) i->state = s, have_state = true;
    }
  }
  return have_state;
}

bool signal_proc(const ProcId& p, int sig) {
  int fd = pidfd_of(p);
  if (fd < 0) return false;
  bool ok = syscall(SYS_pidfd_send_signal, fd, sig, nullptr, 0) == 0;
  sys::close(fd);
  return ok;
}

// Wait until process p is gone (at most timeout_ms); true if it is.
bool wait_gone(const ProcId& p, int timeout_ms) {
  int fd = pidfd_of(p);
  if (fd < 0) return true;
  pollfd pf{fd, POLLIN, 0};
  int r;
  while ((r = ::poll(&pf, 1, timeout_ms)) < 0 && errno == EINTR) {
  }
  sys::close(fd);
  return r == 1;
}

}  // namespace files

using namespace files;

const char* state_name(State s) {
  switch (s) {
    case State::kStarting: return "starting";
    case State::kRunning: return "running";
    case State::kRestarting: return "restarting";
    case State::kFailed: return "failed";
    case State::kStopping: return "stopping";
  }
  return "?";
}

std::string describe_exit(const Info& i) {
  if (i.exit_signal > 0)
    return "signal " + std::to_string(i.exit_signal) + " (" + strsignal(i.exit_signal) + ")";
  if (i.exit_status >= 0) return "exit " + std::to_string(i.exit_status);
  return "-";
}

namespace {

std::string trim(std::string s) {
  while (!s.empty() && isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

int check_name(const std::string& name, std::string* why) {
  // Any kind will do: only the name is checked.
  const Kind* k = nullptr;
  Spec s{name, "program", {"/x"}};
  return check_spec(s, &k, why);
}

// Remove the files of an entry whose lock this process holds on `lock_fd`
// (the lock file last: it is the entry).
void remove_entry(const std::string& d, const std::string& name) {
  for (const char* sfx : {".conf", ".status", ".state", ".log", ".lock"})
    ::unlink(path(d, name, sfx).c_str());
}

// The lock file `fd` is still the one at path p.
bool same_file(int fd, const std::string& p) {
  struct stat a, b;
  return fstat(fd, &a) == 0 && stat(p.c_str(), &b) == 0 && a.st_ino == b.st_ino &&
         a.st_dev == b.st_dev;
}

// Clear an entry whose supervisor is gone: 0, or EAGAIN if the lock is
// held by someone.
int clear_stale(const std::string& d, const std::string& name, int fd) {
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) return EAGAIN;
  if (same_file(fd, path(d, name, ".lock"))) remove_entry(d, name);
  flock(fd, LOCK_UN);
  return 0;
}

// Wait (at most 5 s) until the status of worker `name` is `ack`, sending
// SIGUSR1 once to each running worker process seen meanwhile (a worker
// restarted in between reads the request when it starts, or at the signal).
int wait_ack(const std::string& d, const std::string& name, const std::string& ack,
             std::string* why) {
  int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (in >= 0) inotify_add_watch(in, d.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE);
  const uint64_t end = mono_ns() + 5'000'000'000ull;
  ProcId signalled;
  int err = EIO;
  for (;;) {
    if (trim(read_text(path(d, name, ".status"))) == ack) {
      err = 0;
      break;
    }
    Info i;
    std::string w;
    if (get(name, &i, &w) != 0 || !i.supervised || i.state == State::kFailed) {
      *why = "worker " + name + " stopped before it acknowledged '" + ack + "'";
      break;
    }
    if (i.state == State::kRunning && !(i.pid == signalled) && signal_proc(i.pid, SIGUSR1))
      signalled = i.pid;
    const uint64_t now = mono_ns();
    if (now >= end) {
      *why = "worker " + name + " did not acknowledge '" + ack + "' in 5 s (its log: " + i.log + ")";
      break;
    }
    pollfd pf{in, POLLIN, 0};
    ::poll(&pf, in >= 0 ? 1 : 0, int(std::min<uint64_t>((end - now) / 1000000 + 1, 100)));
    char buf[4096];
    while (in >= 0 && ::read(in, buf, sizeof buf) > 0) {
    }
  }
  if (in >= 0) sys::close(in);
  return err;
}

// This process's environment without libnetmap.so in LD_PRELOAD (unetmap-run
// puts it there): the supervisor and the port types' workers carry the
// library's objects, and a second copy preloaded beside them would keep a
// second fd table.
std::vector<std::string> supervisor_env() {
  std::vector<std::string> env;
  for (char** e = environ; *e; e++) {
    std::string v = *e;
    if (v.rfind("LD_PRELOAD=", 0) == 0) {
      std::string kept, item;
      std::istringstream in(v.substr(11));
      while (in >> item) {  // separated by spaces or colons
        for (size_t at = 0, colon; at <= item.size(); at = colon + 1) {
          colon = item.find(':', at);
          if (colon == std::string::npos) colon = item.size();
          const std::string lib = item.substr(at, colon - at);
          const size_t slash = lib.rfind('/');
          if (!lib.empty() && lib.compare(slash == std::string::npos ? 0 : slash + 1, 12, "libnetmap.so") != 0)
            kept += (kept.empty() ? "" : ":") + lib;
        }
      }
      if (kept.empty()) continue;
      v = "LD_PRELOAD=" + kept;
    }
    env.push_back(std::move(v));
  }
  return env;
}

// Run the supervisor for `spec` and read its answer on the ready pipe.
int spawn_supervisor(const Spec& spec, std::string* why) {
  const char* e = getenv("UNETMAP_WORKER_SUPERVISOR");
  const std::string sup = e && *e ? e : beside_library("unetmap-worker");
  if (access(sup.c_str(), X_OK) != 0) {
    *why = "cannot run the worker supervisor " + sup + " (" + strerror(errno) +
           "): it is built next to libnetmap.so; UNETMAP_WORKER_SUPERVISOR names another";
    return ENOENT;
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return errno;
  // Only the pipe goes to the supervisor (as fd 3), nothing else of this
  // process: its netmap fds would make the worker hold its ports.
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDWR, 0);
  posix_spawn_file_actions_adddup2(&fa, 0, 1);
  posix_spawn_file_actions_adddup2(&fa, 0, 2);
  posix_spawn_file_actions_adddup2(&fa, p[1], 3);
  posix_spawn_file_actions_addclosefrom_np(&fa, 4);
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &all);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<std::string> args = {sup, "--supervise", spec.name, spec.kind};
  args.insert(args.end(), spec.args.begin(), spec.args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env = supervisor_env();
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  int err = posix_spawn(&pid, sup.c_str(), &fa, &at, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(p[1]);
  if (err) {
    close(p[0]);
    *why = "cannot start " + sup + ": " + strerror(err);
    return err;
  }
  // The first process forks the supervisor and exits at once.
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  std::string msg;
  pollfd pf{p[0], POLLIN, 0};
  char buf[512];
  while (msg.find('\n') == std::string::npos && ::poll(&pf, 1, 20000) == 1) {
    ssize_t n = read(p[0], buf, sizeof buf);
    if (n <= 0) break;
    msg.append(buf, size_t(n));
  }
  close(p[0]);
  if (msg == "ok\n") return 0;
  if (msg.find('\n') == std::string::npos) {
    *why = "the supervisor of worker " + spec.name + " did not answer";
    return EIO;
  }
  msg.resize(msg.find('\n'));
  char* end = nullptr;
  long code = strtol(msg.c_str(), &end, 10);
  *why = end && *end == ' ' ? std::string(end + 1) : msg;
  return code > 0 && code < 4096 ? int(code) : EIO;
}

}  // namespace

int get(const std::string& name, Info* out, std::string* why) {
  std::string d;
  if (int e = check_name(name, why)) return e;
  if (int e = dir(&d, why)) return e;
  int fd = open_checked(path(d, name, ".lock"), O_RDONLY, why);
  if (fd < 0) {
    if (fd == -ENOENT) *why = "no worker " + name;
    return -fd;
  }
  Info i;
  const bool held = lock_held(fd);
  sys::close(fd);
  if (!decode(read_text(path(d, name, ".state")), &i)) i.state = State::kStarting;
  i.spec.name = name;
  i.supervised = held;
  if (!held) {
    i.reason = "its supervisor" +
               (i.supervisor.pid ? " (pid " + std::to_string(i.supervisor.pid) + ")" : std::string()) +
               " died" + (i.reason.empty() ? "" : "; before: " + i.reason);
    i.state = State::kFailed;
    i.pid = ProcId{};
  }
  i.log = path(d, name, ".log");
  i.conf = trim(read_text(path(d, name, ".conf")));
  i.status = trim(read_text(path(d, name, ".status")));
  *out = i;
  return 0;
}

int list(std::vector<Info>* out, std::string* why) {
  std::string d;
  if (int e = dir(&d, why)) return e;
  std::vector<std::string> names;
  if (DIR* dp = opendir(d.c_str())) {
    while (dirent* e = readdir(dp)) {
      std::string n = e->d_name;
      if (n.size() > 5 && n[0] != '.' && n.compare(n.size() - 5, 5, ".lock") == 0)
        names.push_back(n.substr(0, n.size() - 5));
    }
    closedir(dp);
  }
  std::sort(names.begin(), names.end());
  out->clear();
  for (const std::string& n : names) {
    Info i;
    std::string w;
    if (get(n, &i, &w) == 0) out->push_back(i);
  }
  return 0;
}

namespace {

// Clear a stale entry (0), or find its live supervisor (EBUSY, *sup). A
// probe, or a supervisor being born, may hold the lock for a moment.
int clear_or_find(const std::string& d, const std::string& name, int fd, ProcId* sup) {
  for (int i = 0; i < 200; i++) {
    if (clear_stale(d, name, fd) == 0) return 0;
    Info st;
    decode(read_text(path(d, name, ".state")), &st);
    if (st.supervisor.alive()) {
      *sup = st.supervisor;
      return EBUSY;
    }
    timespec ts{0, 5000000};
    nanosleep(&ts, nullptr);
  }
  return EBUSY;
}

}  // namespace

int stop(const std::string& name, std::string* why) {
  std::string d;
  if (int e = check_name(name, why)) return e;
  if (int e = dir(&d, why)) return e;
  const std::string lp = path(d, name, ".lock");
  int fd = open_checked(lp, O_RDWR, why);
  if (fd < 0) {
    if (fd == -ENOENT) *why = "no worker " + name;
    return -fd;
  }
  // Stale (its supervisor died): cleared here. Else its supervisor stops
  // the worker and removes the files; wait until it is gone.
  ProcId sup;
  const int found = clear_or_find(d, name, fd, &sup);
  if (found == 0 || sup.empty()) {
    sys::close(fd);
    if (found == 0) return 0;
    *why = "worker " + name + ": its lock is held by a process that is not its supervisor";
    return EBUSY;
  }
  signal_proc(sup, SIGTERM);
  if (!wait_gone(sup, kStopGraceMs + 5000)) {
    signal_proc(sup, SIGKILL);  // its worker goes with it (PR_SET_PDEATHSIG)
    wait_gone(sup, 2000);
    *why = "the supervisor of worker " + name + " (pid " + std::to_string(sup.pid) +
           ") did not stop in " + std::to_string(kStopGraceMs / 1000 + 5) + " s: killed";
  }
  for (int i = 0; i < 200 && same_file(fd, lp) && clear_stale(d, name, fd) != 0; i++) {
    timespec ts{0, 5000000};
    nanosleep(&ts, nullptr);
  }
  sys::close(fd);
  return 0;
}

int start(const Spec& spec, std::string* why) {
  const Kind* kind = nullptr;
  if (int e = check_spec(spec, &kind, why)) return e;
  std::string d;
  if (int e = dir(&d, why)) return e;
  Info cur;
  std::string w;
  if (get(spec.name, &cur, &w) == 0) {
    if (cur.supervised && cur.state != State::kFailed) {
      *why = "worker " + spec.name + " is " + state_name(cur.state) + " already";
      return EBUSY;
    }
    stop(spec.name, &w);  // a failed one is replaced
  }
  const std::string prog = program_of(*kind, spec);
  if (access(prog.c_str(), X_OK) != 0) {
    *why = "cannot run " + prog + " (" + strerror(errno) + ")" +
           (kind->env ? std::string(": it is built next to libnetmap.so; ") + kind->env +
                            " names another"
                      : "");
    return ENOENT;
  }
  return spawn_supervisor(spec, why);
}

int configure(const std::string& name, const std::string& conf, const std::string& ack,
              std::string* why) {
  Info i;
  if (int e = get(name, &i, why)) return e == ENOENT ? ESRCH : e;
  std::string w;
  const Kind* k = find_kind(i.spec.kind, &w);
  if (!k || !k->protocol) {
    *why = "worker " + name + " (kind " + i.spec.kind + ") takes no requests";
    return EOPNOTSUPP;
  }
  if (!i.supervised || i.state == State::kFailed) {
    *why = "worker " + name + " has failed: " + i.reason;
    return ESRCH;
  }
  std::string d;
  if (int e = dir(&d, why)) return e;
  const std::string cp = path(d, name, ".conf");
  if (int e = publish(d, cp, conf + "\n", true, why)) return e;
  if (int e = wait_ack(d, name, ack, why)) {
    ::unlink(cp.c_str());
    return e;
  }
  return 0;
}

int unconfigure(const std::string& name, const std::string& ack, std::string* why) {
  std::string d;
  if (int e = check_name(name, why)) return e;
  if (int e = dir(&d, why)) return e;
  if (::unlink(path(d, name, ".conf").c_str()) != 0) {
    const int e = errno;
    *why = "worker " + name + " has no request to clear";
    return e;
  }
  return wait_ack(d, name, ack, why);
}

namespace self {

const std::string& name() {
  static const std::string n = [] {
    const char* e = getenv("UNETMAP_WORKER");
    return std::string(e ? e : "");
  }();
  return n;
}

std::string conf() {
  std::string d, why;
  if (name().empty() || dir(&d, &why) != 0) return "";
  return trim(read_text(path(d, name(), ".conf")));
}

void report(const std::string& status) {
  std::string d, why;
  if (name().empty() || dir(&d, &why) != 0) return;
  publish(d, path(d, name(), ".status"), status + "\n", false, &why);
}

}  // namespace self

}  // namespace unetmap::worker
