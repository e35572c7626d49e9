// Shared-memory building blocks used by every file that lives in /dev/shm:
// a process-shared robust mutex, an RAII file mapping, raw system calls that
// bypass the library's own interposition, and process identity that survives
// pid reuse (pid + start time).
#pragma once

#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace unetmap {

// A mutex that lives in shared memory. If its holder dies, the next locker
// gets it (EOWNERDEAD is turned into a normal acquisition after marking the
// mutex consistent): the critical sections are short and written so that a
// half-done one leaves the shared state usable.
struct RobustMutex {
  pthread_mutex_t m;
  void init();
  // True if the previous holder died holding it: the caller may repair.
  bool lock();
  void unlock() { pthread_mutex_unlock(&m); }
};

class LockGuard {
 public:
  explicit LockGuard(RobustMutex& m) : m_(m), died_(m_.lock()) {}
  ~LockGuard() { m_.unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;
  bool owner_died() const { return died_; }

 private:
  RobustMutex& m_;
  bool died_;
};

// CLOCK_MONOTONIC in nanoseconds.
uint64_t mono_ns();

// This process's pid without a system call (refreshed in fork children).
int32_t my_pid();

// Is process pid running (not gone, not an unreaped zombie: an exited
// process holds no files and runs no sync)?
bool pid_running(int32_t pid);

// Identity of a live process: pid plus start time, so a recycled pid is not
// mistaken for the process that registered.
struct ProcId {
  int32_t pid = 0;
  uint64_t start = 0;
  static ProcId self();
  static ProcId of(int pid);
  bool alive() const;
  bool operator==(const ProcId& o) const { return pid == o.pid && start == o.start; }
  bool empty() const { return pid == 0; }
};

// Direct system calls: the library's internal file work must not go back
// through its own interposed open/close/mmap.
namespace sys {
int open(const char* path, int flags, mode_t mode = 0);
int close(int fd);
void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off);
int munmap(void* addr, size_t len);
}  // namespace sys

// A MAP_SHARED mapping of a whole file, unmapped on destruction.
class Mapping {
 public:
  Mapping() = default;
  Mapping(void* base, size_t size) : base_(base), size_(size) {}
  ~Mapping();
  Mapping(Mapping&& o) noexcept : base_(o.base_), size_(o.size_) { o.base_ = nullptr; }
  Mapping& operator=(Mapping&& o) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  char* base() const { return static_cast<char*>(base_); }
  size_t size() const { return size_; }
  explicit operator bool() const { return base_ != nullptr; }

 private:
  void* base_ = nullptr;
  size_t size_ = 0;
};

// Where unetmap keeps its shared files: $UNETMAP_DIR, else /dev/shm/unetmap.
const std::string& runtime_dir();

// Open the shared file `name` in the runtime directory, creating it with
// `size` bytes and running `init` on a private copy before publishing it
// (link() makes creation atomic: every opener sees an initialised file).
// Returns the fd (O_RDWR), or -errno.
int open_shared_file(const std::string& name, size_t size, mode_t mode,
                     void (*init)(void* base, size_t size, const void* arg),
                     const void* arg, bool create);

}  // namespace unetmap
