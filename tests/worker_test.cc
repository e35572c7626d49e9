// The worker service (src/core/worker.h) with real processes: workers of
// kind program (a shell) started, listed, killed, restarted, failed and
// stopped through the library, each test in its own runtime directory.
// Every wait is on a condition with a deadline. The attachment forwarders
// (kind attach) are tested with traffic in valectl_test and nic_test.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "core/worker.h"
#include "util/test_util.h"

using nmtest::now_ms;
namespace wk = unetmap::worker;

namespace {

// Wait (at most timeout_ms) until cond() holds, looking every 5 ms.
bool wait_until(const std::function<bool()>& cond, int timeout_ms = 10000) {
  const double end = now_ms() + timeout_ms;
  while (!cond()) {
    if (now_ms() > end) return false;
    usleep(5000);
  }
  return true;
}

wk::Info info(const std::string& name) {
  wk::Info i;
  std::string why;
  EXPECT_EQ(wk::get(name, &i, &why), 0) << why;
  return i;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) n++;
  return n;
}

// Not running: gone, or a zombie nobody reaped yet.
bool gone(pid_t pid) {
  const char s = nmtest::proc_state(pid);
  return s == '?' || s == 'Z';
}

wk::Spec shell(const std::string& name, const std::string& script) {
  return wk::Spec{name, "program", {"/bin/sh", "-c", script}};
}

std::string workers_dir() { return std::string(getenv("UNETMAP_DIR")) + "/workers"; }

}  // namespace

// start: running at once, with its pid, no restarts, its log in the
// runtime directory receiving its stderr; the listing shows it.
TEST(Worker, StartListAndLog) {
  std::string why;
  ASSERT_EQ(wk::start(shell("w1", "echo hello from w1 >&2; exec sleep 1000"), &why), 0) << why;
  wk::Info i = info("w1");
  EXPECT_EQ(i.state, wk::State::kRunning);
  EXPECT_TRUE(i.supervised);
  EXPECT_GT(i.pid.pid, 0);
  EXPECT_FALSE(gone(i.pid.pid));
  EXPECT_EQ(i.restarts, 0u);
  EXPECT_EQ(wk::describe_exit(i), "-");
  EXPECT_EQ(i.spec.kind, "program");
  EXPECT_EQ(i.log, workers_dir() + "/w1.log");
  EXPECT_TRUE(wait_until([&] { return slurp(i.log).find("hello from w1\n") != std::string::npos; }))
      << slurp(i.log);
  struct stat st;
  ASSERT_EQ(stat(i.log.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "the log is the runtime directory's";
  std::vector<wk::Info> all;
  ASSERT_EQ(wk::list(&all, &why), 0) << why;
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].spec.name, "w1");
  EXPECT_EQ(all[0].pid, i.pid);
  EXPECT_EQ(wk::start(shell("w1", "exec sleep 1000"), &why), EBUSY) << "started twice";
  EXPECT_EQ(wk::stop("w1", &why), 0) << why;
}

// A worker killed with SIGKILL is started again: a new process, the
// restart counted, how the last one ended recorded, all of it in the log.
TEST(Worker, KilledWorkerIsRestarted) {
  std::string why;
  ASSERT_EQ(wk::start(shell("w2", "echo up >&2; exec sleep 1000"), &why), 0) << why;
  const unetmap::ProcId first = info("w2").pid;
  ASSERT_GT(first.pid, 0);
  ASSERT_TRUE(wait_until([&] { return count(slurp(info("w2").log), "up\n") == 1; }));
  ASSERT_EQ(kill(first.pid, SIGKILL), 0);
  wk::Info i;
  ASSERT_TRUE(wait_until([&] {
    i = info("w2");
    return i.state == wk::State::kRunning && i.pid.pid > 0 && !(i.pid == first);
  })) << wk::state_name(i.state) << " " << i.reason;
  EXPECT_EQ(i.restarts, 1u);
  EXPECT_EQ(i.exit_signal, SIGKILL);
  EXPECT_EQ(wk::describe_exit(i), "signal 9 (" + std::string(strsignal(SIGKILL)) + ")");
  EXPECT_TRUE(gone(first.pid));
  EXPECT_TRUE(wait_until([&] { return count(slurp(i.log), "up\n") == 2; })) << slurp(i.log);
  EXPECT_NE(slurp(i.log).find("ended: signal 9"), std::string::npos) << slurp(i.log);
  EXPECT_EQ(wk::stop("w2", &why), 0) << why;
  EXPECT_TRUE(wait_until([&] { return gone(i.pid.pid); }));
}

// A worker that keeps dying is marked failed after five young deaths in a
// row, with the reason and its last exit status, and is not started again.
TEST(Worker, WorkerThatKeepsDyingIsFailed) {
  std::string why;
  ASSERT_EQ(wk::start(shell("w3", "echo dying >&2; exit 3"), &why), 0) << why;
  wk::Info i;
  ASSERT_TRUE(wait_until([&] {
    i = info("w3");
    return i.state == wk::State::kFailed;
  }, 20000)) << wk::state_name(i.state);
  EXPECT_TRUE(i.supervised) << "the supervisor keeps the entry for the listing";
  EXPECT_EQ(i.restarts, 4u);
  EXPECT_EQ(i.exit_status, 3);
  EXPECT_EQ(i.pid.pid, 0);
  EXPECT_NE(i.reason.find("5 times in a row"), std::string::npos) << i.reason;
  EXPECT_NE(i.reason.find("exit 3"), std::string::npos) << i.reason;
  const std::string log = slurp(i.log);
  EXPECT_EQ(count(log, "dying\n"), 5u) << log;
  EXPECT_NE(log.find("failed"), std::string::npos) << log;
  // Starting it again replaces the failed entry.
  ASSERT_EQ(wk::start(shell("w3", "exec sleep 1000"), &why), 0) << why;
  i = info("w3");
  EXPECT_EQ(i.state, wk::State::kRunning);
  EXPECT_EQ(i.restarts, 0u);
  EXPECT_EQ(wk::stop("w3", &why), 0) << why;
}

// stop ends the worker and its supervisor and removes every file of the
// entry; a second stop finds nothing.
TEST(Worker, StopRemovesItAndItsFiles) {
  std::string why;
  ASSERT_EQ(wk::start(shell("w4", "exec sleep 1000"), &why), 0) << why;
  const wk::Info i = info("w4");
  ASSERT_EQ(wk::stop("w4", &why), 0) << why;
  EXPECT_TRUE(gone(i.pid.pid));
  EXPECT_TRUE(wait_until([&] { return gone(i.supervisor.pid); }));
  wk::Info none;
  EXPECT_EQ(wk::get("w4", &none, &why), ENOENT);
  for (const char* sfx : {".lock", ".state", ".log", ".conf", ".status"}) {
    struct stat st;
    EXPECT_NE(stat((workers_dir() + "/w4" + sfx).c_str(), &st), 0) << sfx << " left";
  }
  EXPECT_EQ(wk::stop("w4", &why), ENOENT);
}

// A supervisor killed with SIGKILL takes its worker along (nothing runs
// unsupervised); the entry is listed failed until stopped or restarted.
TEST(Worker, KilledSupervisorIsReportedFailed) {
  std::string why;
  ASSERT_EQ(wk::start(shell("w5", "exec sleep 1000"), &why), 0) << why;
  const wk::Info i = info("w5");
  ASSERT_EQ(kill(i.supervisor.pid, SIGKILL), 0);
  EXPECT_TRUE(wait_until([&] { return gone(i.pid.pid); })) << "the worker outlived its supervisor";
  wk::Info f;
  ASSERT_TRUE(wait_until([&] {
    f = info("w5");
    return !f.supervised;
  }));
  EXPECT_EQ(f.state, wk::State::kFailed);
  EXPECT_NE(f.reason.find("supervisor (pid " + std::to_string(i.supervisor.pid) + ") died"),
            std::string::npos) << f.reason;
  EXPECT_EQ(f.pid.pid, 0);
  EXPECT_EQ(wk::stop("w5", &why), 0) << why;
  EXPECT_EQ(wk::get("w5", &f, &why), ENOENT);
}

// Bad names, kinds and arguments are refused with a reason; a worker of a
// kind that speaks the protocol and fails its first start fails start()
// with its own error and leaves nothing behind.
TEST(Worker, StartRefusesBadRequests) {
  std::string why;
  EXPECT_EQ(wk::start(wk::Spec{"", "program", {"/bin/true"}}, &why), EINVAL);
  EXPECT_EQ(wk::start(wk::Spec{"a/b", "program", {"/bin/true"}}, &why), EINVAL);
  EXPECT_EQ(wk::start(wk::Spec{".x", "program", {"/bin/true"}}, &why), EINVAL);
  EXPECT_EQ(wk::start(wk::Spec{"x", "nosuchkind", {}}, &why), EINVAL);
  EXPECT_NE(why.find("attach, vhost or program"), std::string::npos) << why;
  EXPECT_EQ(wk::start(wk::Spec{"x", "program", {"sh"}}, &why), EINVAL) << "a relative path";
  EXPECT_EQ(wk::start(wk::Spec{"x", "program", {"/bin/sh", "a\nb"}}, &why), EINVAL);
  EXPECT_EQ(wk::start(wk::Spec{"x", "program", {"/nonexistent/prog"}}, &why), ENOENT);
  EXPECT_EQ(wk::start(wk::Spec{"x", "attach", {"vale0"}}, &why), EINVAL);
  // The forwarder of a port that does not exist says why and exits.
  EXPECT_NE(wk::start(wk::Spec{"valeZ:nosuch", "attach", {"valeZ", "nosuch", "port", "-"}}, &why), 0);
  EXPECT_NE(why.find("nosuch"), std::string::npos) << why;
  wk::Info i;
  EXPECT_EQ(wk::get("valeZ:nosuch", &i, &why), ENOENT);
  std::vector<wk::Info> all;
  ASSERT_EQ(wk::list(&all, &why), 0);
  EXPECT_TRUE(all.empty());
}

// Requests to a worker that takes none, and to none, are refused.
TEST(Worker, ConfigureNeedsAWorkerThatTakesRequests) {
  std::string why;
  EXPECT_EQ(wk::configure("nobody", "x", "x", &why), ESRCH);
  ASSERT_EQ(wk::start(shell("w6", "exec sleep 1000"), &why), 0) << why;
  EXPECT_EQ(wk::configure("w6", "x", "x", &why), EOPNOTSUPP);
  EXPECT_EQ(wk::stop("w6", &why), 0) << why;
}

// A file planted in the directory by another user, or a symlink, is
// refused, as the runtime directory's other files are.
TEST(Worker, PlantedFilesAreRefused) {
  std::string why;
  ASSERT_EQ(wk::start(shell("w7", "exec sleep 1000"), &why), 0) << why;
  ASSERT_EQ(wk::stop("w7", &why), 0) << why;
  const std::string lock = workers_dir() + "/w8.lock";
  ASSERT_EQ(symlink("/etc/passwd", lock.c_str()), 0);
  wk::Info i;
  EXPECT_EQ(wk::get("w8", &i, &why), ELOOP);
  EXPECT_NE(wk::start(shell("w8", "exec sleep 1000"), &why), 0);
  unlink(lock.c_str());
  int fd = open(lock.c_str(), O_CREAT | O_WRONLY, 0666);
  ASSERT_GE(fd, 0);
  fchmod(fd, 0666);
  close(fd);
  EXPECT_EQ(wk::get("w8", &i, &why), EACCES) << "a world-writable lock file";
  EXPECT_NE(why.find("writable by every user"), std::string::npos) << why;
}

// A FIFO planted as a worker's state file (by another member of a shared
// domain) is refused, not waited on: the listing returns at once.
TEST(Worker, APlantedFifoDoesNotHangTheListing) {
  std::string why;
  ASSERT_EQ(wk::start(shell("w9", "exec sleep 1000"), &why), 0) << why;
  ASSERT_EQ(wk::stop("w9", &why), 0) << why;
  const std::string base = workers_dir() + "/evil";
  int fd = open((base + ".lock").c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  close(fd);
  ASSERT_EQ(mkfifo((base + ".state").c_str(), 0600), 0);
  nmtest::Child c([] {
    std::vector<wk::Info> all;
    std::string w;
    wk::list(&all, &w);
    return 0;
  });
  EXPECT_EQ(c.wait(5000), 0) << "the listing blocked on the FIFO";
}

// The supervisor and its workers carry the library: libnetmap.so is taken out
// of LD_PRELOAD for them (unetmap-run puts it there), the rest is kept.
TEST(Worker, LibnetmapIsNotPreloadedIntoWorkers) {
  std::string why;
  const std::string old = getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "";
  setenv("LD_PRELOAD", "/nonexistent/libnetmap.so.1 /nonexistent/libother.so:/x/libnetmap.so", 1);
  const int err = wk::start(shell("w10", "echo \"preload=[$LD_PRELOAD]\" >&2; exec sleep 1000"), &why);
  if (old.empty()) unsetenv("LD_PRELOAD"); else setenv("LD_PRELOAD", old.c_str(), 1);
  ASSERT_EQ(err, 0) << why;
  const std::string log = info("w10").log;
  EXPECT_TRUE(wait_until([&] { return slurp(log).find("preload=[") != std::string::npos; })) << slurp(log);
  EXPECT_NE(slurp(log).find("preload=[/nonexistent/libother.so]"), std::string::npos) << slurp(log);
  EXPECT_EQ(wk::stop("w10", &why), 0) << why;
}

