// A program run as a child process with its stdout and stderr collected as
// it goes: tests wait for a line it prints (bounded), signal it, and read
// what it said when it ends.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "util/test_util.h"

namespace nmtest {

// A program run with its stdout and stderr collected as it goes.
class Proc {
 public:
  // before_exec runs in the child first (e.g. to enter a network namespace).
  explicit Proc(const std::vector<std::string>& args, const std::function<void()>& before_exec = {}) {
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) abort();
    child_ = Child([&] {
      dup2(in[0], 0);
      dup2(out[1], 1);
      dup2(err[1], 2);
      if (before_exec) before_exec();
      std::vector<char*> a;
      for (auto& s : args) a.push_back(const_cast<char*>(s.c_str()));
      a.push_back(nullptr);
      execv(a[0], a.data());
      fprintf(stderr, "execv %s: %s\n", a[0], strerror(errno));
      return 127;
    });
    close(in[0]);
    close(out[1]);
    close(err[1]);
    in_ = in[1];
    fd_[0] = out[0], fd_[1] = err[0];
  }
  ~Proc() {
    for (int fd : fd_)
      if (fd >= 0) close(fd);
    if (in_ >= 0) close(in_);
  }
  pid_t pid() const { return child_.pid(); }
  // Write to its stdin (a line it waits for); false if it is gone.
  bool write_in(const std::string& s) {
    signal(SIGPIPE, SIG_IGN);
    return in_ >= 0 && ::write(in_, s.data(), s.size()) == ssize_t(s.size());
  }
  Proc(const Proc&) = delete;
  Proc& operator=(const Proc&) = delete;

  // Read until `what` appears in stderr (err=true) or stdout; false on
  // timeout or end of output.
  bool wait_for(const std::string& what, bool err, int timeout_ms) {
    const double end = now_ms() + timeout_ms;
    const std::string& s = err ? err_ : out_;
    while (s.find(what) == std::string::npos) {
      int left = int(end - now_ms());
      if (left <= 0 || !read_some(left)) return false;
    }
    return true;
  }
  // The same, for an occurrence that starts at or after offset `from`
  // (what a command printed after out().size() was `from`). Its offset, or
  // npos on timeout.
  size_t wait_for_from(const std::string& what, size_t from, bool err, int timeout_ms) {
    const double end = now_ms() + timeout_ms;
    const std::string& s = err ? err_ : out_;
    size_t at;
    while ((at = s.find(what, from)) == std::string::npos) {
      int left = int(end - now_ms());
      if (left <= 0 || !read_some(left)) return std::string::npos;
    }
    return at;
  }
  // Send sig, read the output to its end and wait for the exit.
  int stop(int sig = SIGTERM, int timeout_ms = 10000) {
    // Once reaped, pid() is -1: kill(-1) would signal every process of
    // the user.
    if (child_.pid() > 0) kill(child_.pid(), sig);
    return finish(timeout_ms);
  }
  // Read the output to its end and wait for the exit: the exit status.
  int finish(int timeout_ms = 10000) {
    const double end = now_ms() + timeout_ms;
    while (fd_[0] >= 0 || fd_[1] >= 0) {
      int left = int(end - now_ms());
      if (left <= 0 || !read_some(left)) break;
    }
    int left = int(end - now_ms());
    return code_ = child_.wait(left > 0 ? left : 1);
  }
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }
  std::string show() const {
    return "exit " + std::to_string(code_) + "\n  stdout: " + out_ + "\n  stderr: " + err_;
  }

 private:
  // One poll and read of whichever output has data. false on timeout or
  // when both outputs are closed.
  bool read_some(int timeout_ms) {
    pollfd p[2] = {{fd_[0], POLLIN, 0}, {fd_[1], POLLIN, 0}};
    if (fd_[0] < 0 && fd_[1] < 0) return false;
    if (::poll(p, 2, timeout_ms) <= 0) return false;
    std::string* dst[2] = {&out_, &err_};
    for (int i = 0; i < 2; i++) {
      if (fd_[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t n = ::read(fd_[i], buf, sizeof buf);
      if (n > 0) {
        dst[i]->append(buf, size_t(n));
      } else {
        close(fd_[i]);
        fd_[i] = -1;
      }
    }
    return true;
  }
  Child child_;
  int in_ = -1;
  int fd_[2] = {-1, -1};
  std::string out_, err_;
  int code_ = -1;
};

}  // namespace nmtest
