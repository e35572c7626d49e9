#include "core/shm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/futex.h>
#include <pwd.h>
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

namespace {

thread_local std::string t_lock_error;

// The type word glibc gives a robust process-shared mutex: a mutex whose
// word differs was overwritten, and glibc must not act on it (another type
// means other code paths: PI futexes, recursion counts).
int robust_kind() {
  static const int kind = [] {
    RobustMutex r;
    r.init();
    int k = r.m.__data.__kind;
    pthread_mutex_destroy(&r.m);
    return k;
  }();
  return kind;
}

std::string read_small(const std::string& path) {
  int fd = sys::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  char buf[2048];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  sys::close(fd);
  return n > 0 ? std::string(buf, size_t(n)) : std::string();
}

std::string status_field(const std::string& status, const char* key) {
  const std::string k = std::string(key) + ":";
  for (size_t at = 0; at < status.size();) {
    size_t end = status.find('\n', at);
    if (end == std::string::npos) end = status.size();
    if (status.compare(at, k.size(), k) == 0) {
      size_t v = at + k.size();
      while (v < end && (status[v] == ' ' || status[v] == '\t')) v++;
      return status.substr(v, end - v);
    }
    at = end + 1;
  }
  return {};
}

// "pid 12 (pkt-gen), thread 14" for the thread id a lock word names.
std::string describe_holder(int tid) {
  if (tid == 0) return "no thread (the holder let go as the wait ended)";
  if (::kill(tid, 0) != 0 && errno == ESRCH)
    return "thread id " + std::to_string(tid) +
           ", which no live process has: the lock word was overwritten (or its holder is in "
           "another pid namespace)";
  std::string st = read_small("/proc/" + std::to_string(tid) + "/status");
  std::string tgid = status_field(st, "Tgid"), name = status_field(st, "Name");
  std::string s = "pid " + (tgid.empty() ? std::to_string(tid) : tgid);
  if (!name.empty()) s += " (" + name + ")";
  if (!tgid.empty() && tgid != std::to_string(tid)) s += ", thread " + std::to_string(tid);
  if (tid == int(::syscall(SYS_gettid))) s += ", this very thread";
  return s;
}

}  // namespace

void RobustMutex::init() {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&m, &a);
  pthread_mutexattr_destroy(&a);
}

int lock_timeout_ms() {
  static const int ms = [] {
    const char* e = getenv("UNETMAP_LOCK_TIMEOUT_MS");
    char* end = nullptr;
    long v = e && *e ? strtol(e, &end, 10) : 5000;
    if (e && *e && (*end || v < 1)) v = 5000;
    return int(v > 3600000 ? 3600000 : v);
  }();
  return ms;
}

const std::string& lock_error() { return t_lock_error; }

int RobustMutex::lock(bool* owner_died) {
  if (owner_died) *owner_died = false;
  const int kind = __atomic_load_n(&m.__data.__kind, __ATOMIC_RELAXED);
  if (kind != robust_kind()) {
    t_lock_error = "the lock's type word is " + std::to_string(kind) + ", not " +
                   std::to_string(robust_kind()) +
                   ": the shared lock was overwritten; refused rather than used";
    return EPROTO;
  }
  int r = pthread_mutex_trylock(&m);
  if (r == EBUSY) {
    timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    const long ms = lock_timeout_ms();
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) dl.tv_sec++, dl.tv_nsec -= 1000000000L;
    r = pthread_mutex_clocklock(&m, CLOCK_MONOTONIC, &dl);
  }
  if (r == 0) return 0;
  if (r == EOWNERDEAD) {
    pthread_mutex_consistent(&m);
    if (owner_died) *owner_died = true;
    return 0;
  }
  const int tid = __atomic_load_n(&m.__data.__lock, __ATOMIC_RELAXED) & FUTEX_TID_MASK;
  if (r == ETIMEDOUT)
    t_lock_error = "lock held for more than " + std::to_string(lock_timeout_ms()) +
                   " ms (UNETMAP_LOCK_TIMEOUT_MS) by " + describe_holder(tid);
  else
    t_lock_error = std::string("lock refused (") + strerror(r) + "); its word names " +
                   describe_holder(tid);
  return r;
}

// Start time of process pid (field 22 of /proc/PID/stat), 0 if unknown;
// *zombie (if given) tells whether it has exited (state Z or X): a zombie
// holds nothing, as netmap releases a process's fds when it exits.
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
  if (zombie) return false;
  return s == 0 || s == start;  // 0: cannot read /proc, assume alive
}

namespace sys {
int open(const char* path, int flags, mode_t mode) {
  long r = ::syscall(SYS_openat, AT_FDCWD, path, flags, mode);
  return static_cast<int>(r);
}
int openat(int dirfd, const char* path, int flags, mode_t mode) {
  return static_cast<int>(::syscall(SYS_openat, dirfd, path, flags, mode));
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

// ---- the runtime directory: the trust domain ----

namespace {

std::string user_name(uid_t uid) {
  passwd pw, *res = nullptr;
  char buf[1024];
  std::string s = "uid " + std::to_string(uid);
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res) s = std::string(pw.pw_name) + " (" + s + ")";
  return s;
}

std::string group_name(gid_t gid) {
  group gr, *res = nullptr;
  char buf[1024];
  std::string s = "gid " + std::to_string(gid);
  if (getgrgid_r(gid, &gr, buf, sizeof buf, &res) == 0 && res) s = std::string(gr.gr_name) + " (" + s + ")";
  return s;
}

std::string mode_str(mode_t m) {
  char b[16];
  snprintf(b, sizeof b, "%04o", unsigned(m & 07777));
  return b;
}

// UNETMAP_GROUP: a group name or number. 0 if unset (*gid untouched), 1
// if set, -1 if it names no group (*why says so).
int shared_group(gid_t* gid, std::string* why) {
  const char* e = getenv("UNETMAP_GROUP");
  if (!e || !*e) return 0;
  char* end = nullptr;
  unsigned long n = strtoul(e, &end, 10);
  if (!*end && n < 0xffffffffu) {
    *gid = gid_t(n);
    return 1;
  }
  group gr, *res = nullptr;
  char buf[4096];
  if (getgrnam_r(e, &gr, buf, sizeof buf, &res) == 0 && res) {
    *gid = res->gr_gid;
    return 1;
  }
  if (why) *why = std::string("UNETMAP_GROUP=") + e + ": no such group";
  return -1;
}

// Make the runtime directory if it is missing (0700, or 02770 for the
// shared group: made 0700 first, so nobody gets in while it is set up),
// then check it. 0 or errno with *why.
int setup_dir(const std::string& d, std::string* why) {
  auto fail = [&](int e, const std::string& text) {
    if (why) *why = "runtime directory " + d + " " + text;
    return e;
  };
  gid_t gid = 0;
  std::string gwhy;
  const int grp = shared_group(&gid, &gwhy);
  if (grp < 0) return fail(EINVAL, "not used: " + gwhy);
  const bool made = ::mkdir(d.c_str(), 0700) == 0;
  if (!made && errno != EEXIST) return fail(errno, std::string("cannot be made: ") + strerror(errno));
  int fd = sys::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    struct stat ls;
    if (::lstat(d.c_str(), &ls) == 0 && S_ISLNK(ls.st_mode))
      return fail(ELOOP, "is a symbolic link (made by " + user_name(ls.st_uid) +
                             "): refused; remove it, or set UNETMAP_DIR to a real directory");
    if (e == ENOTDIR) return fail(ENOTDIR, "is not a directory: refused");
    return fail(e, std::string("cannot be opened: ") + strerror(e));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    sys::close(fd);
    return fail(e, std::string("cannot be checked: ") + strerror(e));
  }
  const uid_t me = geteuid();
  const bool mine = st.st_uid == me;
  int err = 0;
  std::string text;
  if (!mine && me == 0) {
    err = EACCES;
    text = "belongs to " + user_name(st.st_uid) +
           ": root uses only a runtime directory root made (another user could have prepared "
           "it); remove it, or set UNETMAP_DIR to a directory of root's";
  } else if (!mine && st.st_uid != 0 && !(grp > 0 && st.st_gid == gid)) {
    err = EACCES;
    text = "belongs to " + user_name(st.st_uid) + ", group " + group_name(st.st_gid) +
           ": not to you, root or the group named by UNETMAP_GROUP; refused";
  } else if (mine && grp > 0 && (st.st_gid != gid || (st.st_mode & 07777) != 02770)) {
    // Sharing is the owner's explicit setting: apply it.
    if (fchown(fd, uid_t(-1), gid) != 0) {
      err = errno;
      text = "cannot be given to group " + group_name(gid) + " (UNETMAP_GROUP): " + strerror(errno) +
             " (are you a member of it?)";
    } else if (fchmod(fd, 02770) != 0 || fstat(fd, &st) != 0) {
      err = errno;
      text = std::string("cannot be made 02770: ") + strerror(errno);
    }
  } else if (mine && made && grp == 0 && (st.st_mode & 07777) != 0700) {
    if (fchmod(fd, 0700) != 0 || fstat(fd, &st) != 0) {
      err = errno;
      text = std::string("cannot be made 0700: ") + strerror(errno);
    }
  }
  sys::close(fd);
  if (err) return fail(err, text);
  if (st.st_mode & S_IWOTH)
    return fail(EACCES, "is writable by every user (mode " + mode_str(st.st_mode) +
                            ", as older unetmap versions made it): refused; remove it (or "
                            "chmod o-w), and share with a group by UNETMAP_GROUP");
  if ((st.st_mode & S_IWGRP) && !(grp > 0 && st.st_gid == gid))
    return fail(EACCES, "is writable by group " + group_name(st.st_gid) + " (mode " +
                            mode_str(st.st_mode) + "): set UNETMAP_GROUP=" +
                            std::to_string(st.st_gid) +
                            " to share it with that group, or chmod g-w; refused");
  // Who can pass through it can reach chan/'s wake-up FIFOs (0622).
  if (st.st_mode & S_IXOTH)
    return fail(EACCES, "can be entered by every user (mode " + mode_str(st.st_mode) +
                            "): refused; chmod o-rx it (0700), or share it with a group by "
                            "UNETMAP_GROUP");
  if ((st.st_mode & S_IXGRP) && !(grp > 0 && st.st_gid == gid))
    return fail(EACCES, "can be entered by group " + group_name(st.st_gid) + " (mode " +
                            mode_str(st.st_mode) + "): set UNETMAP_GROUP=" +
                            std::to_string(st.st_gid) +
                            " to share it with that group, or chmod g-rx; refused");
  return 0;
}


}  // namespace

std::string runtime_dir_path() {
  const char* e = getenv("UNETMAP_DIR");
  return (e && *e) ? e : "/dev/shm/unetmap";
}

bool quiet() {
  const char* q = getenv("UNETMAP_QUIET");
  return q && *q && strcmp(q, "0") != 0;
}

const std::string& runtime_dir() {
  static const std::string dir = [] {
    std::string d = runtime_dir_path();
    setup_dir(d, nullptr);
    return d;
  }();
  return dir;
}

int runtime_dir_check(std::string* why) { return setup_dir(runtime_dir(), why); }

mode_t shared_file_mode() {
  gid_t g;
  return shared_group(&g, nullptr) > 0 ? 0660 : 0600;
}

mode_t fifo_mode() { return 0622; }

int check_shared_fd(int fd, const std::string& path, mode_t type, std::string* why) {
  auto fail = [&](int e, const std::string& text) {
    if (why) *why = path + " " + text;
    return e;
  };
  struct stat st;
  if (fstat(fd, &st) != 0) return fail(errno, std::string("cannot be checked: ") + strerror(errno));
  if ((st.st_mode & S_IFMT) != type)
    return fail(EACCES, std::string("is not a ") + (type == S_IFIFO ? "FIFO" : "regular file") +
                            ": refused (made by " + user_name(st.st_uid) + ")");
  if (st.st_mode & S_IWOTH)
    return fail(EACCES, "is writable by every user (mode " + mode_str(st.st_mode) +
                            ", owner " + user_name(st.st_uid) + "): refused");
  gid_t gid = 0;
  const bool grp = shared_group(&gid, nullptr) > 0;
  const uid_t me = geteuid();
  if (st.st_uid != me && st.st_uid != 0 && !(grp && st.st_gid == gid))
    return fail(EACCES, "belongs to " + user_name(st.st_uid) + ", group " + group_name(st.st_gid) +
                            ": not to you, root or the group named by UNETMAP_GROUP; refused");
  return 0;
}

int check_chan_fd(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return errno;
  if (!S_ISFIFO(st.st_mode) || (st.st_mode & 07777) != fifo_mode()) return EACCES;
  gid_t gid = 0;
  const bool grp = shared_group(&gid, nullptr) > 0;
  if (st.st_uid != geteuid() && st.st_uid != 0 && !(grp && st.st_gid == gid)) return EACCES;
  return 0;
}

// ---- shared files: made complete, with their pages reserved ----

int runtime_subdir_fd(const std::string& name, bool traversable, std::string* path,
                      std::string* why) {
  if (int e = runtime_dir_check(why)) return -e;
  *path = runtime_dir() + "/" + name;
  gid_t gid = 0;
  const bool grp = shared_group(&gid, nullptr) > 0;
  const mode_t mode = (grp ? 02770 : 0700) | (traversable ? 0011 : 0);
  const bool made = ::mkdir(path->c_str(), 0700) == 0;
  // Set its mode through an fd of what was made, never by path: a member
  // of a shared directory could put a link there in between.
  int fd = sys::open(path->c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    if (why) *why = *path + (e == ELOOP || e == ENOTDIR ? " is not a directory (a symbolic link?): refused"
                                                        : std::string(" cannot be opened: ") + strerror(e));
    return -e;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    sys::close(fd);
    if (why) *why = *path + " cannot be checked: " + strerror(e);
    return -e;
  }
  if (made && st.st_uid == geteuid() && (st.st_mode & 07777) != mode &&
      (fchmod(fd, mode) != 0 || fstat(fd, &st) != 0)) {
    const int e = errno;
    sys::close(fd);
    if (why) *why = "cannot make " + *path + " " + mode_str(mode) + ": " + strerror(e);
    return -e;
  }
  if ((st.st_mode & S_IWOTH) ||
      (st.st_uid != geteuid() && st.st_uid != 0 && !(grp && st.st_gid == gid))) {
    sys::close(fd);
    if (why) *why = *path + " belongs to " + user_name(st.st_uid) + " (mode " + mode_str(st.st_mode) +
                    "): not to you, root or the group named by UNETMAP_GROUP, or writable by every "
                    "user; refused";
    return -EACCES;
  }
  return fd;
}

int runtime_subdir(const std::string& name, std::string* path, std::string* why) {
  const int fd = runtime_subdir_fd(name, false, path, why);
  if (fd < 0) return -fd;
  sys::close(fd);
  return 0;
}

std::string tmp_file_name() {
  static std::atomic<uint32_t> seq{0};
  const ProcId me = ProcId::self();
  char tmp[96];
  snprintf(tmp, sizeof tmp, ".tmp.%d.%llu.%u", me.pid, static_cast<unsigned long long>(me.start),
           seq.fetch_add(1));
  return tmp;
}

void remove_dead_tmp_files() { remove_dead_tmp_files(runtime_dir()); }

void remove_dead_tmp_files(const std::string& dir) {
  int dfd = sys::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) return;
  DIR* d = fdopendir(dfd);
  if (!d) {
    sys::close(dfd);
    return;
  }
  while (dirent* e = readdir(d)) {
    if (strncmp(e->d_name, ".tmp.", 5) != 0) continue;
    int pid = 0;
    unsigned long long start = 0;
    unsigned n = 0;
    const int got = sscanf(e->d_name + 5, "%d.%llu.%u", &pid, &start, &n);
    bool dead;
    if (got == 3)
      dead = !ProcId{pid, uint64_t(start)}.alive();
    else  // an older unetmap's ".tmp.<pid>.<attempt>": by pid only
      dead = got >= 1 && pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH;
    if (dead) unlinkat(dirfd(d), e->d_name, 0);
  }
  closedir(d);
}

int open_shared_file(const std::string& name, size_t size, mode_t mode,
                     void (*init)(void*, size_t, const void*), const void* arg,
                     bool create, std::string* why) {
  static std::atomic<uint32_t> seq{0};
  if (int e = runtime_dir_check(why)) return -e;
  const std::string path = runtime_dir() + "/" + name;
  auto fail = [&](int e, const std::string& text) {
    if (why) *why = text;
    return -e;
  };
  for (int attempt = 0; attempt < 100; attempt++) {
    int fd = sys::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
      if (int e = check_shared_fd(fd, path, S_IFREG, why)) {
        sys::close(fd);
        return -e;
      }
      return fd;
    }
    if (errno == ELOOP)
      return fail(ELOOP, path + " is a symbolic link: refused (the runtime directory holds none)");
    if (errno != ENOENT) return fail(errno, "cannot open " + path + ": " + strerror(errno));
    if (!create) return fail(ENOENT, path + " does not exist");
    if (attempt == 0) remove_dead_tmp_files();
    const ProcId me = ProcId::self();
    char tmp[96];
    snprintf(tmp, sizeof tmp, "/.tmp.%d.%llu.%u", me.pid, static_cast<unsigned long long>(me.start),
             seq.fetch_add(1));
    const std::string tpath = runtime_dir() + tmp;
    fd = sys::open(tpath.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) return fail(errno, "cannot create " + tpath + ": " + strerror(errno));
    auto undo = [&](int e, const std::string& text) {
      sys::close(fd);
      unlink(tpath.c_str());
      return fail(e, text);
    };
    if (fchmod(fd, mode) != 0)  // not subject to umask
      return undo(errno, "cannot set the mode of " + tpath + ": " + strerror(errno));
    // Reserve every page now: on tmpfs a page that cannot be had later is
    // a SIGBUS in whichever process touches it first.
    if (int e = posix_fallocate(fd, 0, static_cast<off_t>(size)))
      return undo(e, "cannot reserve " + std::to_string((size + (1 << 20) - 1) >> 20) + " MiB for " +
                         name + " in " + runtime_dir() + ": " + strerror(e) +
                         (e == ENOSPC || e == ENOMEM
                              ? " (the file system is full: free room there, or make regions "
                                "smaller with UNETMAP_BUF_NUM, UNETMAP_RING_NUM, ...)"
                              : ""));
    void* base = sys::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) return undo(errno, "cannot map " + tpath + ": " + strerror(errno));
    init(base, size, arg);
    sys::munmap(base, size);
    int r = link(tpath.c_str(), path.c_str());
    const int link_err = errno;
    unlink(tpath.c_str());
    if (r == 0) return fd;
    sys::close(fd);
    if (link_err != EEXIST) return fail(link_err, "cannot publish " + path + ": " + strerror(link_err));
    // Someone else published first: use theirs.
  }
  return fail(EAGAIN, "cannot open " + path + ": it keeps changing");
}

}  // namespace unetmap
