// main() of every gtest binary: a fresh runtime directory per process.
//
// gtest_discover_tests runs each test in its own process, so each test gets
// its own UNETMAP_DIR (registry, regions, wake-up channels) and cannot see
// another's ports. The directory is set before the library is first used
// (runtime_dir() caches it); children that a test forks or execs inherit
// it.
//
// The tests run in a child process and this one only waits and removes the
// directory, so that it goes away even when a test crashes (the crash is
// then passed on: same exit status, same signal).
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

namespace {
int remove_entry(const char* path, const struct stat*, int, struct FTW*) {
  remove(path);
  return 0;
}

// A test's other scratch paths are named UNETMAP_DIR + "." + anything
// (a capture file's directory, an install prefix): they go with it.
void remove_siblings(const char* dir) {
  const std::string d = dir;
  const size_t slash = d.rfind('/');
  const std::string parent = d.substr(0, slash), prefix = d.substr(slash + 1) + ".";
  DIR* p = opendir(parent.c_str());
  if (!p) return;
  std::vector<std::string> found;
  while (dirent* e = readdir(p))
    if (strncmp(e->d_name, prefix.c_str(), prefix.size()) == 0) found.push_back(parent + "/" + e->d_name);
  closedir(p);
  for (const std::string& f : found) nftw(f.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

// Workers a test left running (core/worker.h: attachment forwarders and
// others): the supervisors that still hold their entry's lock are killed,
// and their workers with them (PR_SET_PDEATHSIG), before the directory goes.
void stop_workers(const char* dir) {
  std::string d = std::string(dir) + "/workers";
  DIR* dp = opendir(d.c_str());
  if (!dp) return;
  while (dirent* e = readdir(dp)) {
    std::string n = e->d_name;
    if (n.size() < 6 || n.compare(n.size() - 5, 5, ".lock") != 0) continue;
    int fd = open((d + "/" + n).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;
    if (flock(fd, LOCK_SH | LOCK_NB) != 0) {
      std::ifstream st(d + "/" + n.substr(0, n.size() - 5) + ".state");
      for (std::string key; st >> key;) {
        int pid = 0;
        if (key == "supervisor" && st >> pid && pid > 1) kill(pid, SIGKILL);
      }
    }
    close(fd);
  }
  closedir(dp);
}
}  // namespace

int main(int argc, char** argv) {
  char dir[] = "/dev/shm/unetmap-test-XXXXXX";
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  setenv("UNETMAP_DIR", dir, 1);
  setenv("UNETMAP_QUIET", "1", 1);
  // The library is linked into this program (unetmap-internal), not
  // loaded from the build directory: its workers are found there by name.
  setenv("UNETMAP_WORKER_SUPERVISOR", UNETMAP_BUILD_DIR "/unetmap-worker", 0);
  setenv("UNETMAP_ATTACH_HELPER", UNETMAP_BUILD_DIR "/unetmap-attach", 0);
  setenv("UNETMAP_VHOST_HELPER", UNETMAP_BUILD_DIR "/unetmap-vhost", 0);
  fflush(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return 1;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // a killed runner takes the tests along
    if (getppid() != parent) _exit(1);
    testing::InitGoogleTest(&argc, argv);
    int rc = RUN_ALL_TESTS();
    fflush(nullptr);
    _exit(rc);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  stop_workers(dir);
  nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  remove_siblings(dir);
  if (WIFSIGNALED(st)) {
    fprintf(stderr, "test process killed by signal %d (%s)\n", WTERMSIG(st),
            strsignal(WTERMSIG(st)));
    signal(WTERMSIG(st), SIG_DFL);
    raise(WTERMSIG(st));
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
