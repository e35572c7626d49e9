// Shared-memory building blocks used by every file that lives in /dev/shm:
// a process-shared robust mutex, an RAII file mapping, raw system calls that
// bypass the library's own interposition, process identity that survives
// pid reuse (pid + start time), and the runtime directory with its checks.
//
// Trust model (docs/architecture.md, "Trust model"): the runtime directory
// is what /dev/netmap is for netmap. It is made 0700 by its first user, or
// 02770 for the group named by UNETMAP_GROUP. A directory owned by another
// user (root: by anyone but root), a symbolic link, or a directory others
// may write without being the named group is refused; so is a file in it
// that is a symlink, world-writable, not of the expected type, or owned by
// anyone but the caller, root or the named group. Files are made under a
// temporary name ".tmp.<pid>.<start>.<n>" with their pages reserved
// (posix_fallocate: a full file system is an error at open, never a SIGBUS
// later) and published complete with link(); the next creator removes the
// temporary files of makers that died.
//
// Locks are bounded: a RobustMutex held longer than UNETMAP_LOCK_TIMEOUT_MS
// (default 5000) is an error (ETIMEDOUT) naming the holder, and a mutex
// whose type word was overwritten is refused (EPROTO) before glibc reads it.
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
//
// Anyone who can write the file can write the mutex: the wait is bounded
// (lock_timeout_ms()) and a damaged mutex is an error, never a hang.
struct RobustMutex {
  pthread_mutex_t m;
  void init();
  // 0 when locked (*owner_died: the previous holder died holding it, the
  // caller may repair), else an errno value and the reason in lock_error():
  // ETIMEDOUT (held past the limit; the holder is named), EPROTO (the mutex
  // was overwritten), EDEADLK, ENOTRECOVERABLE.
  int lock(bool* owner_died = nullptr);
  void unlock() { pthread_mutex_unlock(&m); }
};

// Why this thread's last failed RobustMutex::lock failed.
const std::string& lock_error();
// The bound on a lock wait: UNETMAP_LOCK_TIMEOUT_MS, default 5000.
int lock_timeout_ms();

// Holds a RobustMutex for a scope. Check ok() where the locked work can
// fail with an error (return error() and lock_error()); on cleanup paths
// skip the work when !ok().
class LockGuard {
 public:
  explicit LockGuard(RobustMutex& m) : m_(m) { err_ = m_.lock(&died_); }
  ~LockGuard() {
    if (err_ == 0) m_.unlock();
  }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;
  bool ok() const { return err_ == 0; }
  int error() const { return err_; }
  bool owner_died() const { return died_; }

 private:
  RobustMutex& m_;
  bool died_ = false;
  int err_ = 0;
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
int openat(int dirfd, const char* path, int flags, mode_t mode = 0);
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
// Made (0700, or 02770 with UNETMAP_GROUP) if missing.
const std::string& runtime_dir();
// The same path, neither made nor checked (for a look that must create
// nothing).
std::string runtime_dir_path();
// UNETMAP_QUIET set (and neither empty nor "0"): the library prints no
// reasons on stderr; programs still read them (unetmap_last_error()).
bool quiet();
// Is the runtime directory one this process may use (the trust model
// above)? 0, or an errno value with the reason in *why.
int runtime_dir_check(std::string* why);
// Mode of files every user of the directory shares (registry: 0660 with
// UNETMAP_GROUP, else 0600), and of wake-up FIFOs: 0622 (anyone who
// reaches chan/ may wake, only the owner reads), in a directory only
// members reach (Registry::chan_dir).
mode_t shared_file_mode();
mode_t fifo_mode();

// May this process use the open file `fd`, found at `path` in the runtime
// directory (opened with O_NOFOLLOW)? It must be of type `type` (S_IFREG,
// S_IFIFO), not world-writable, and owned by the caller, root or the
// UNETMAP_GROUP group. 0, or an errno value with the reason in *why.
int check_shared_fd(int fd, const std::string& path, mode_t type, std::string* why);
// The same for a wake-up FIFO of chan/: a FIFO of mode fifo_mode(), owned
// by the caller, root or the group. 0 or an errno value.
int check_chan_fd(int fd);

// The subdirectory `name` of the runtime directory, made if missing (0700,
// or 02770 for the UNETMAP_GROUP group) and checked as the runtime
// directory is (not a symlink; owned by the caller, root or the group; not
// writable by every user). 0 with its path in *path, or errno with *why.
int runtime_subdir(const std::string& name, std::string* path, std::string* why);
// The same, kept open: an fd of the directory (O_CLOEXEC), or -errno with
// *why. `traversable` adds search permission for everyone (0711, 02771):
// nobody outside the domain reaches it through the runtime directory, but
// a member that changes its uid keeps reaching it through the fd.
int runtime_subdir_fd(const std::string& name, bool traversable, std::string* path,
                      std::string* why);

// Open the shared file `name` in the runtime directory, creating it with
// `size` bytes (reserved, not sparse) and running `init` on a private copy
// before publishing it (link() makes creation atomic: every opener sees an
// initialised file). Returns the fd (O_RDWR), or -errno with *why set.
int open_shared_file(const std::string& name, size_t size, mode_t mode,
                     void (*init)(void* base, size_t size, const void* arg),
                     const void* arg, bool create, std::string* why = nullptr);

// Remove the temporary files (".tmp.<pid>.<start>.<n>") whose maker died,
// in the runtime directory or in `dir`.
void remove_dead_tmp_files();
void remove_dead_tmp_files(const std::string& dir);
// A name for a temporary file of this process: ".tmp.<pid>.<start>.<n>".
std::string tmp_file_name();

}  // namespace unetmap
