#include "core/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace unetmap {

void RobustMutex::init() {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&m, &a);
  pthread_mutexattr_destroy(&a);
}

bool RobustMutex::lock() {
  int r = pthread_mutex_lock(&m);
  if (r != EOWNERDEAD) return false;
  pthread_mutex_consistent(&m);
  return true;
}

// Start time of a process (0 if unknown); *zombie: it has exited and holds
// no files any more (its parent has not reaped it yet).
static uint64_t start_time_of(int pid, bool* zombie = nullptr) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  int fd = sys::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  sys::close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  // Field 22 (starttime) counts from after the ")" that closes the command.
  const char* p = strrchr(buf, ')');
  if (!p) return 0;
  if (zombie) *zombie = p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
  int field = 2;
  for (; *p && field < 22; p++)
    if (*p == ' ') field++;
  return strtoull(p, nullptr, 10);
}

uint64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

namespace {
std::atomic<int32_t> g_pid{0};
void forget_pid() { g_pid.store(0, std::memory_order_relaxed); }
}  // namespace

int32_t my_pid() {
  int32_t p = g_pid.load(std::memory_order_relaxed);
  if (p) return p;
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(nullptr, nullptr, forget_pid); });
  p = int32_t(::syscall(SYS_getpid));
  g_pid.store(p, std::memory_order_relaxed);
  return p;
}

ProcId ProcId::self() {
  // Cached per process; refreshed after fork by comparing the pid.
  static thread_local ProcId cached;
  int pid = my_pid();
  if (cached.pid != pid) cached = ProcId{pid, start_time_of(pid)};
  return cached;
}

ProcId ProcId::of(int pid) { return ProcId{pid, start_time_of(pid)}; }

bool pid_running(int32_t pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  bool zombie = false;
  start_time_of(pid, &zombie);
  return !zombie;
}

bool ProcId::alive() const {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  bool zombie = false;
  uint64_t s = start_time_of(pid, &zombie);
  if (zombie) return false;     // exited: its files are closed
  return s == 0 || s == start;  // 0: cannot read /proc, assume alive
}

namespace sys {
int open(const char* path, int flags, mode_t mode) {
  long r = ::syscall(SYS_openat, AT_FDCWD, path, flags, mode);
  return static_cast<int>(r);
}
int close(int fd) { return static_cast<int>(::syscall(SYS_close, fd)); }
void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  long r = ::syscall(SYS_mmap, addr, len, prot, flags, fd, off);
  if (r < 0 && r > -4096) return MAP_FAILED;  // errno set by syscall()
  return reinterpret_cast<void*>(r);
}
int munmap(void* addr, size_t len) { return static_cast<int>(::syscall(SYS_munmap, addr, len)); }
}  // namespace sys

Mapping::~Mapping() {
  if (base_) sys::munmap(base_, size_);
}

Mapping& Mapping::operator=(Mapping&& o) noexcept {
  if (this != &o) {
    if (base_) sys::munmap(base_, size_);
    base_ = o.base_;
    size_ = o.size_;
    o.base_ = nullptr;
  }
  return *this;
}

const std::string& runtime_dir() {
  static const std::string dir = [] {
    const char* e = getenv("UNETMAP_DIR");
    std::string d = (e && *e) ? e : "/dev/shm/unetmap";
    ::mkdir(d.c_str(), 01777);
    return d;
  }();
  return dir;
}

int open_shared_file(const std::string& name, size_t size, mode_t mode,
                     void (*init)(void*, size_t, const void*), const void* arg,
                     bool create) {
  std::string path = runtime_dir() + "/" + name;
  for (int attempt = 0; attempt < 100; attempt++) {
    int fd = sys::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd >= 0 || errno != ENOENT) return fd >= 0 ? fd : -errno;
    if (!create) return -ENOENT;
    char tmp[64];
    snprintf(tmp, sizeof tmp, "/.tmp.%d.%d", static_cast<int>(::syscall(SYS_getpid)), attempt);
    std::string tpath = runtime_dir() + tmp;
    fd = sys::open(tpath.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) return -errno;
    fchmod(fd, mode);  // not subject to umask
    if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
      int e = errno;
      sys::close(fd);
      unlink(tpath.c_str());
      return -e;
    }
    void* base = sys::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
      int e = errno;
      sys::close(fd);
      unlink(tpath.c_str());
      return -e;
    }
    init(base, size, arg);
    sys::munmap(base, size);
    int r = link(tpath.c_str(), path.c_str());
    unlink(tpath.c_str());
    if (r == 0) return fd;
    sys::close(fd);
    if (errno != EEXIST) return -errno;
    // Someone else published first: use theirs.
  }
  return -EAGAIN;
}

}  // namespace unetmap
