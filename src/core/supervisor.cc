// The supervisor of one worker (worker.h): main() of unetmap-worker.
//
// One process per worker, single-threaded, asleep in poll() on a signalfd
// (SIGCHLD: its worker ended; SIGTERM: stop) and on the worker's ready
// pipe. It holds the entry's lock for its whole life and is the only writer
// of NAME.state, always through publish() (a whole file renamed over the
// old one): killed at any instruction, it leaves the last state it
// published, and the lock, released by the kernel, says it is gone.
//
//   start      lock NAME.lock (EBUSY if held), fresh log, state starting,
//              fork + exec the worker (stdout, stderr: the log; fd 3: the
//              ready pipe; PR_SET_PDEATHSIG SIGKILL), answer start() with
//              the worker's first answer. An error there ends everything
//              and removes the files: start() fails, nothing is left.
//   ready      state running.
//   death      state restarting, a new worker after the backoff; or, at
//              the fifth young death in a row, failed (kept for the
//              listing until stop()).
//   SIGTERM    state stopping, SIGTERM to the worker (SIGKILL after 5 s),
//              remove the files (the lock file last), exit.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "core/worker.h"
#include "core/worker_files.h"

namespace unetmap::worker {

namespace {

using namespace files;

class Supervisor {
 public:
  Supervisor(const Spec& spec, int requester) : requester_(requester) { info_.spec = spec; }
  int run();

 private:
  int init();
  int sleep_ms() const;
  void say(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
  void tell_requester(const std::string& line);
  void set_state(State s, const std::string& reason);
  int take_lock(std::string* why);
  int fail_start(int err, const std::string& why);
  void spawn();
  void exec_worker(int ready_w);
  void read_ready();
  void on_ready(int err, const std::string& why);
  void reap();
  void on_death(int status);
  void stop_worker();
  void remove_files();
  std::string last_log_line();
  bool still_mine() const;

  Info info_;
  const Kind* kind_ = nullptr;
  std::string dir_, prog_;
  int requester_;  // start()'s ready pipe until the first answer
  int lock_fd_ = -1, log_fd_ = -1, sig_fd_ = -1, ready_fd_ = -1;
  std::string ready_buf_;
  pid_t child_ = 0;
  bool answered_ = false;  // a worker was ready once: start() has returned
  bool stopping_ = false;
  int young_ = 0;          // young deaths in a row
  uint64_t started_ns_ = 0, restart_at_ns_ = 0;
};

void Supervisor::say(const char* fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  time_t now = time(nullptr);
  tm t;
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", gmtime_r(&now, &t));
  dprintf(log_fd_, "unetmap-worker %s UTC: %s: %s\n", when, info_.spec.name.c_str(), msg);
}

void Supervisor::tell_requester(const std::string& line) {
  if (requester_ < 0) return;
  const std::string l = line + "\n";
  ssize_t r = write(requester_, l.data(), l.size());
  (void)r;
  close(requester_);
  requester_ = -1;
}

void Supervisor::set_state(State s, const std::string& reason) {
  info_.state = s;
  info_.reason = reason;
  info_.since = uint64_t(time(nullptr));
  std::string why;
  publish(dir_, path(dir_, info_.spec.name, ".state"), encode(info_), false, &why);
}

// The entry's lock. A prober (LOCK_SH for a moment) or a stopper clearing
// a stale entry may hold it briefly; a live supervisor holds it for good.
int Supervisor::take_lock(std::string* why) {
  const std::string lp = path(dir_, info_.spec.name, ".lock");
  for (int attempt = 0; attempt < 100; attempt++) {
    int fd = open_checked(lp, O_RDWR | O_CREAT, why, shared_file_mode());
    if (fd < 0) return -fd;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
      struct stat a, b;
      if (fstat(fd, &a) == 0 && stat(lp.c_str(), &b) == 0 && a.st_ino == b.st_ino) {
        lock_fd_ = fd;
        return 0;
      }
    } else {
      Info other;
      decode(read_text(path(dir_, info_.spec.name, ".state")), &other);
      if (other.supervisor.alive() && attempt > 0) {
        sys::close(fd);
        *why = "worker " + info_.spec.name + " runs already (supervisor pid " +
               std::to_string(other.supervisor.pid) + ")";
        return EBUSY;
      }
    }
    sys::close(fd);
    timespec ts{0, 4000000};
    nanosleep(&ts, nullptr);
  }
  *why = "the lock of worker " + info_.spec.name + " stays held";
  return EBUSY;
}

// The worker process: its stdout and stderr go to the log, fd 3 is the
// ready pipe (closed by exec for kinds that do not speak the protocol).
void Supervisor::exec_worker(int ready_w) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != info_.supervisor.pid) _exit(1);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_DFL);
  int nul = open("/dev/null", O_RDWR);
  if (nul < 0 || dup2(nul, 0) < 0 || dup2(log_fd_, 1) < 0 || dup2(log_fd_, 2) < 0 ||
      dup2(ready_w, 3) < 0)
    _exit(127);
  if (!kind_->protocol) fcntl(3, F_SETFD, FD_CLOEXEC);
  closefrom(4);
  setenv("UNETMAP_WORKER", info_.spec.name.c_str(), 1);
  std::vector<std::string> args = info_.spec.args;
  if (kind_->program) args.insert(args.begin(), prog_);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv(prog_.c_str(), argv.data());
  dprintf(3, "%d cannot run %s: %s\n", errno, prog_.c_str(), strerror(errno));
  _exit(127);
}

void Supervisor::spawn() {
  ::unlink(path(dir_, info_.spec.name, ".status").c_str());
  struct stat st;
  if (fstat(log_fd_, &st) == 0 && st.st_size > (1 << 20) && ftruncate(log_fd_, 0) == 0)
    say("log cut at 1 MiB");
  int p[2];
  pid_t pid = -1;
  if (pipe2(p, O_CLOEXEC) == 0 && (pid = fork()) == 0) exec_worker(p[1]);
  if (pid < 0) {
    const int e = errno;
    say("cannot start a worker: %s", strerror(e));
    if (!answered_) fail_start(e, std::string("cannot start a worker: ") + strerror(e));
    restart_at_ns_ = mono_ns() + kMaxBackoffNs;
    return;
  }
  close(p[1]);
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  ready_fd_ = p[0];
  ready_buf_.clear();
  child_ = pid;
  started_ns_ = mono_ns();
  info_.pid = ProcId::of(pid);
  say("worker pid %d started: %s%s", pid, prog_.c_str(),
      answered_ ? (" (restart " + std::to_string(info_.restarts) + ")").c_str() : "");
  set_state(answered_ ? State::kRestarting : State::kStarting, info_.reason);
}

void Supervisor::read_ready() {
  char buf[512];
  ssize_t n;
  while ((n = read(ready_fd_, buf, sizeof buf)) > 0) ready_buf_.append(buf, size_t(n));
  const size_t nl = ready_buf_.find('\n');
  if (n == 0 || nl != std::string::npos || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    close(ready_fd_);
    ready_fd_ = -1;
    if (ready_buf_ == "ok\n" || (ready_buf_.empty() && !kind_->protocol)) {
      on_ready(0, "");
    } else if (nl != std::string::npos) {
      const std::string line = ready_buf_.substr(0, nl);
      char* end = nullptr;
      long e = strtol(line.c_str(), &end, 10);
      on_ready(e > 0 && e < 4096 ? int(e) : EIO, end && *end == ' ' ? std::string(end + 1) : line);
    }
    // EOF without a word from a worker that speaks the protocol: it died
    // (reap() says how).
  }
}

void Supervisor::on_ready(int err, const std::string& why) {
  if (err == 0) {
    say("worker pid %d ready", child_);
    set_state(State::kRunning, "");
    if (!answered_) tell_requester("ok");
    answered_ = true;
    return;
  }
  say("worker pid %d failed to start: %s (%s)", child_, why.c_str(), strerror(err));
  if (!answered_) {
    fail_start(err, why);
    return;
  }
  info_.reason = why;  // it exits now; its death counts
}

// The first start failed: start() gets the error, nothing is left.
int Supervisor::fail_start(int err, const std::string& why) {
  stopping_ = true;
  stop_worker();
  remove_files();  // before the answer: start() returns with nothing left
  tell_requester(std::to_string(err) + " " + why);
  _exit(1);
}

std::string Supervisor::last_log_line() {
  std::string s = read_text(path(dir_, info_.spec.name, ".log"));
  while (!s.empty() && s.back() == '\n') s.pop_back();
  size_t nl = s.rfind('\n');
  return nl == std::string::npos ? s : s.substr(nl + 1);
}

void Supervisor::on_death(int status) {
  if (ready_fd_ >= 0) read_ready();  // what it said before it went comes first
  if (ready_fd_ >= 0) close(ready_fd_), ready_fd_ = -1;
  const pid_t pid = child_;
  child_ = 0;
  info_.pid = ProcId{};
  info_.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  info_.exit_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  const std::string how = describe_exit(info_);
  say("worker pid %d ended: %s", pid, how.c_str());
  if (stopping_) return;
  if (!answered_) {
    const std::string last = last_log_line();
    fail_start(EIO, "worker " + info_.spec.name + " ended (" + how + ") before it was ready" +
                        (last.empty() ? "" : ": " + last));
  }
  young_ = mono_ns() - started_ns_ < kYoungNs ? young_ + 1 : 1;
  if (young_ >= kYoungDeaths) {
    const std::string r = "ended " + std::to_string(young_) +
                          " times in a row within 10 s of its start; last: " + how;
    say("failed: %s; not restarted (stop it, or start it again)", r.c_str());
    set_state(State::kFailed, r);
    return;
  }
  const uint64_t backoff = std::min(kFirstBackoffNs << (young_ - 1), kMaxBackoffNs);
  restart_at_ns_ = mono_ns() + backoff;
  say("restart in %llu ms", static_cast<unsigned long long>(backoff / 1000000));
  set_state(State::kRestarting, "ended: " + how);
}

void Supervisor::reap() {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
    if (pid == child_) on_death(status);
}

// SIGTERM, then SIGKILL after the grace time; returns when it is reaped.
void Supervisor::stop_worker() {
  if (!child_) return;
  kill(child_, SIGTERM);
  const uint64_t end = mono_ns() + uint64_t(kStopGraceMs) * 1000000;
  while (child_) {
    const uint64_t now = mono_ns();
    if (now >= end) {
      say("worker pid %d did not stop in %d s: SIGKILL", child_, kStopGraceMs / 1000);
      kill(child_, SIGKILL);
      int st;
      while (waitpid(child_, &st, 0) < 0 && errno == EINTR) {
      }
      on_death(st);
      break;
    }
    pollfd pf{sig_fd_, POLLIN, 0};
    ::poll(&pf, 1, int((end - now) / 1000000 + 1));
    signalfd_siginfo si;
    while (read(sig_fd_, &si, sizeof si) == sizeof si) {
    }
    reap();
  }
}

void Supervisor::remove_files() {
  for (const char* sfx : {".conf", ".status", ".state", ".log", ".lock"})
    ::unlink(path(dir_, info_.spec.name, sfx).c_str());
}

bool Supervisor::still_mine() const {
  struct stat a, b;
  const std::string lp = path(dir_, info_.spec.name, ".lock");
  return fstat(lock_fd_, &a) == 0 && stat(lp.c_str(), &b) == 0 && a.st_ino == b.st_ino &&
         a.st_dev == b.st_dev;
}

// Everything before the first worker: 0, or start()'s error (told).
int Supervisor::init() {
  std::string why;
  auto refuse = [&](int e) {
    tell_requester(std::to_string(e) + " " + why);
    return e;
  };
  const Spec& spec = info_.spec;
  if (int e = check_spec(spec, &kind_, &why)) return refuse(e);
  if (int e = dir(&dir_, &why)) return refuse(e);
  prog_ = program_of(*kind_, spec);
  info_.supervisor = ProcId::self();
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&set, s);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  if ((sig_fd_ = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
    why = std::string("signalfd: ") + strerror(errno);
    return refuse(errno);
  }
  if (int e = take_lock(&why)) return refuse(e);
  remove_dead_tmp_files(dir_);
  for (const char* sfx : {".conf", ".status"}) ::unlink(path(dir_, spec.name, sfx).c_str());
  log_fd_ = open_checked(path(dir_, spec.name, ".log"), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND,
                         &why, shared_file_mode());
  if (log_fd_ < 0) {
    remove_files();
    return refuse(-log_fd_);
  }
  say("supervisor pid %d: kind %s", info_.supervisor.pid, spec.kind.c_str());
  return 0;
}

// How long poll() may sleep: until the next restart, at most 1 s.
int Supervisor::sleep_ms() const {
  if (child_ || info_.state != State::kRestarting) return 1000;
  const uint64_t now = mono_ns();
  return restart_at_ns_ > now ? int(std::min<uint64_t>((restart_at_ns_ - now) / 1000000 + 1, 1000)) : 0;
}

int Supervisor::run() {
  if (init() != 0) return 1;
  spawn();
  uint64_t checked = mono_ns();
  for (;;) {
    pollfd fds[2] = {{sig_fd_, POLLIN, 0}, {ready_fd_, POLLIN, 0}};
    ::poll(fds, ready_fd_ >= 0 ? 2 : 1, sleep_ms());
    if (ready_fd_ >= 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) read_ready();
    signalfd_siginfo si;
    while (read(sig_fd_, &si, sizeof si) == sizeof si)
      if (si.ssi_signo != SIGCHLD) stopping_ = true;
    reap();
    if (stopping_) {
      set_state(State::kStopping, "");
      say("stopping");
      stop_worker();
      remove_files();
      return 0;
    }
    if (!child_ && info_.state == State::kRestarting && mono_ns() >= restart_at_ns_) {
      info_.restarts++;
      spawn();
    }
    if (mono_ns() - checked >= 1000000000ull) {
      checked = mono_ns();
      if (!still_mine()) {  // the runtime directory went: nobody can find us
        stopping_ = true;
        stop_worker();
        return 0;
      }
    }
  }
}

}  // namespace

int supervisor_main(int argc, char** argv) {
  if (argc < 4 || strcmp(argv[1], "--supervise") != 0 || fcntl(3, F_GETFD) < 0) {
    fprintf(stderr,
            "usage: unetmap-worker --supervise NAME KIND [ARG...] (fd 3: the ready pipe)\n"
            "The supervisor of one worker, started by libnetmap (src/core/worker.h); "
            "vale-ctl -W lists the workers.\n");
    return 2;
  }
  Spec spec{argv[2], argv[3], std::vector<std::string>(argv + 4, argv + argc)};
  pid_t pid = fork();
  if (pid < 0) {
    dprintf(3, "%d cannot fork the worker supervisor\n", errno);
    return 1;
  }
  if (pid > 0) return 0;
  setsid();
  return Supervisor(spec, 3).run();
}

}  // namespace unetmap::worker
