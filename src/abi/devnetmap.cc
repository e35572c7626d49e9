#include "abi/devnetmap.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <net/netmap.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <limits.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "abi/file.h"
#include "core/spin.h"

namespace unetmap {

namespace {

constexpr int kMaxFd = 65536;

std::atomic<NetmapFile*> g_files[kMaxFd];
std::atomic<int> g_nfiles{0};  // open NetmapFiles in this process
thread_local std::string t_last_error;

NetmapFile* file_of(int fd) {
  if (fd < 0 || fd >= kMaxFd) return nullptr;
  return g_files[fd].load(std::memory_order_acquire);
}

void release(NetmapFile* f) {
  if (f->refs.fetch_sub(1) != 1) return;
  const bool bound = f->binding != nullptr;
  f->binding.reset();
  g_nfiles.fetch_sub(1);
  if (Registry* reg = Registry::get(nullptr)) {
    RegistryLock g(*reg);  // if it fails, the reaper frees what this process held
    // Registered by another process that has this open file: we held the
    // registration too, without ever using it.
    const ChanEntry& c = reg->file()->chans[Registry::chan_id(f->token)];
    if (g.ok() && !bound && c.in_use && c.gen == (f->token >> 10) && c.reg1 && c.reg1 <= kMaxRegs) {
      RegEntry& re = reg->reg(int(c.reg1 - 1));
      if (re.in_use && re.nifp == c.reg_nifp && !holders_remove(re.holders, ProcId::self()))
        reg->drop_reg(int(c.reg1 - 1));
    }
    if (g.ok()) reg->release_chan(f->token, ProcId::self());
  }
  delete f;
}

void drain(int fd) {
  char buf[64];
  while (::read(fd, buf, sizeof buf) > 0) {
  }
}



// How long poll spins at most before it sleeps: UNETMAP_SPIN_US, default
// 50 us.
int64_t spin_ns() {
  static const int64_t ns = int64_t(spin_max_ns("UNETMAP_SPIN_US", 50));
  return ns;
}

// This thread's spin (core/spin.h): shorter while spins find nothing, as
// when the producer shares this core.
SpinBudget& spin_budget() {
  thread_local SpinBudget b{uint64_t(spin_ns())};
  return b;
}

// netmap refuses poll in CSB mode (POLLERR): the sync-kloop syncs.
short scan_one(NetmapFile* f, short events) {
  if (!f->binding && !refresh_binding(f)) return POLLERR;
  if (f->binding->csb_mode()) return POLLERR;
  return f->binding->poll_scan(events);
}

// Does poll arm and disarm f's waiters? Not in CSB mode: a sync-kloop
// armed them with this file's token.
bool poll_arms(const NetmapFile* f) { return f->binding && !f->binding->csb_mode(); }

// Per-epoll-fd netmap registrations: these fds are not handed to the
// kernel epoll; dev_epoll_wait checks them itself.
struct EpollEntry {
  epoll_event ev;
};
std::mutex g_ep_mu;
std::map<int, std::map<int, EpollEntry>> g_ep;
std::atomic<int> g_ep_used{0};  // nonzero once any epoll set has a netmap fd

}  // namespace

int fail(int err, const std::string& why) {
  t_last_error = why.empty() ? strerror(err) : why;
  if (!why.empty() && !quiet()) fprintf(stderr, "unetmap: %s\n", why.c_str());
  errno = err;
  return -1;
}

bool copy_in(void* dst, const void* src, size_t n) {
  iovec local{dst, n}, remote{const_cast<void*>(src), n};
  return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == ssize_t(n);
}

bool copy_out(void* dst, const void* src, size_t n) {
  iovec local{const_cast<void*>(src), n}, remote{dst, n};
  return process_vm_writev(getpid(), &local, 1, &remote, 1, 0) == ssize_t(n);
}

const Libc& libc() {
  static const Libc l = [] {
    Libc x;
#define NEXT(name) x.name = reinterpret_cast<decltype(x.name)>(dlsym(RTLD_NEXT, #name))
    NEXT(open);
    NEXT(openat);
    NEXT(ioctl);
    NEXT(mmap);
    NEXT(poll);
    NEXT(ppoll);
    NEXT(select);
    NEXT(pselect);
    NEXT(epoll_ctl);
    NEXT(epoll_wait);
    NEXT(epoll_pwait);
    NEXT(close);
    NEXT(dup);
    NEXT(dup2);
    NEXT(dup3);
    NEXT(fcntl);
    NEXT(fork);
    NEXT(recvmsg);
    NEXT(recvmmsg);
#undef NEXT
    return x;
  }();
  return l;
}

bool is_netmap_path(const char* path) { return path && strcmp(path, "/dev/netmap") == 0; }
bool is_netmap_fd(int fd) { return file_of(fd) != nullptr; }

bool is_netmap_ioctl(unsigned long req) {
  return req == NIOCCTRL || req == NIOCREGIF || req == NIOCGINFO || req == NIOCTXSYNC ||
         req == NIOCRXSYNC;
}

// An open file shared with other processes (SCM_RIGHTS, execve) may have
// been registered by one of them: then this process adopts that
// registration, as all of them see the one open file of the kernel.
Binding* refresh_binding(NetmapFile* f) {
  if (f->binding) return f->binding.get();
  Registry* reg = Registry::get(nullptr);
  if (!reg) return nullptr;
  uint32_t reg1 = 0, nifp = 0;
  uint64_t flags = 0;
  {
    RegistryLock g(*reg);
    if (!g.ok()) return nullptr;
    const ChanEntry& c = reg->file()->chans[Registry::chan_id(f->token)];
    if (!c.in_use || c.gen != (f->token >> 10) || !c.reg1) return nullptr;
    reg1 = c.reg1, nifp = c.reg_nifp, flags = c.reg_flags;
  }
  std::string why;
  std::unique_ptr<Binding> b;
  if (Binding::adopt(int(reg1 - 1), flags, &b, &why) != 0 || b->nifp_index() != nifp) return nullptr;
  std::lock_guard<std::mutex> g(f->mu);
  if (!f->binding) f->binding = std::move(b);
  return f->binding.get();
}

void note_registration(NetmapFile* f) {
  Registry* reg = Registry::get(nullptr);
  if (!reg) return;
  RegistryLock g(*reg);
  if (!g.ok()) return;
  ChanEntry& c = reg->file()->chans[Registry::chan_id(f->token)];
  if (!c.in_use || c.gen != (f->token >> 10)) return;
  const Binding* b = f->binding.get();
  c.reg1 = b ? uint32_t(b->reg_index() + 1) : 0;
  c.reg_nifp = b ? b->nifp_index() : 0;
  c.reg_flags = b ? b->flags() : 0;
  // Every process that has the open file holds its registration, as the
  // kernel's file holds its netmap_priv_d.
  if (b)
    for (const ProcId& h : c.holders)
      if (!h.empty() && !(h == ProcId::self())) {
        RegEntry& re = reg->reg(b->reg_index());
        bool held = false;
        for (const ProcId& x : re.holders) held |= x == h;
        if (!held) holders_add(re.holders, h);
      }
}


// The wake-up channel is a FIFO made by this process in chan/ (mode 0622:
// Registry::chan_dir says who reaches it), opened O_NOFOLLOW and checked
// to be the FIFO this process just made.
int dev_open(int flags) {
  int err = 0;
  std::string why;
  uint32_t token = 0;
  Registry* reg;
  {
    std::optional<RegistryLock> g;
    reg = lock_registry(&g, &err, &why);
    if (!reg) return fail(err, why);
    if ((err = reg->alloc_chan(&token)) != 0) return fail(err, "too many open /dev/netmap fds");
    ChanEntry& c = reg->file()->chans[Registry::chan_id(token)];
    c.reg1 = 0, c.reg_nifp = 0, c.reg_flags = 0;
  }
  const std::string path = Registry::chan_path(Registry::chan_id(token));
  const std::string name = Registry::chan_name(Registry::chan_id(token));
  const int dfd = Registry::chan_dir(&why);
  int fd = -1;
  if (dfd < 0) {
    errno = -dfd;
  } else {
    unlinkat(dfd, name.c_str(), 0);
    if (mkfifoat(dfd, name.c_str(), 0600) == 0) {
      fd = sys::openat(dfd, name.c_str(), O_RDWR | O_NONBLOCK | O_NOFOLLOW | (flags & O_CLOEXEC));
      struct stat st;
      if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode) || st.st_uid != geteuid())) {
        sys::close(fd);
        fd = -1;
        errno = EACCES;
        why = path + " was replaced while it was made: refused";
      } else if (fd >= 0 && fchmod(fd, fifo_mode()) != 0) {
        const int e = errno;
        sys::close(fd);
        fd = -1;
        errno = e;
      }
    }
  }
  if (fd < 0 || fd >= kMaxFd) {
    err = fd < 0 ? errno : EMFILE;
    if (fd >= 0) sys::close(fd);
    RegistryLock g(*reg);
    if (g.ok()) reg->free_chan(token);  // else the reaper frees it with this process
    if (why.empty()) why = "cannot create wake-up channel " + path + ": " + strerror(err);
    return fail(err, why);
  }
  auto* f = new NetmapFile;
  f->token = token;
  g_nfiles.fetch_add(1);
  g_files[fd].store(f, std::memory_order_release);
  return fd;
}

// A netmap fd that reached this process other than by open or fork (a
// Unix socket's SCM_RIGHTS, execve): the FIFO of a channel of the runtime
// directory. The channel names the registration of that open file; adopt
// both, with this process as a holder, as a kernel would find the file.
NetmapFile* dev_adopt(int fd) {
  if (fd < 0 || fd >= kMaxFd) return nullptr;
  if (NetmapFile* f = file_of(fd)) return f;
  char link[64], path[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n <= 0) return nullptr;
  path[n] = 0;
  const std::string prefix = runtime_dir() + "/chan/";
  if (strncmp(path, prefix.c_str(), prefix.size()) != 0) return nullptr;
  char* end = nullptr;
  unsigned long id = strtoul(path + prefix.size(), &end, 10);
  if (end == path + prefix.size() || *end || id >= kMaxChans) return nullptr;
  // The file by that name now must be this very FIFO (a freed channel's is
  // unlinked, a reused one is a new FIFO).
  const int dfd = Registry::chan_dir();
  const char* name = path + prefix.size();
  struct stat a, b;
  if (dfd < 0 || fstat(fd, &a) != 0 || !S_ISFIFO(a.st_mode) ||
      fstatat(dfd, name, &b, AT_SYMLINK_NOFOLLOW) != 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino)
    return nullptr;
  Registry* reg = Registry::get(nullptr);
  if (!reg) return nullptr;
  uint32_t token = 0, reg1 = 0, nifp = 0;
  uint64_t flags = 0;
  {
    RegistryLock g(*reg);
    ChanEntry& c = reg->file()->chans[id];
    if (!g.ok() || !c.in_use || fstatat(dfd, name, &b, AT_SYMLINK_NOFOLLOW) != 0 || a.st_ino != b.st_ino)
      return nullptr;
    token = (c.gen << 10) | uint32_t(id);
    bool held = false;
    for (const ProcId& h : c.holders) held |= h == ProcId::self();
    if (!held) holders_add(c.holders, ProcId::self());
    reg1 = c.reg1, nifp = c.reg_nifp, flags = c.reg_flags;
  }
  auto* f = new NetmapFile;
  f->token = token;
  if (reg1) {
    std::string why;
    std::unique_ptr<Binding> bd;
    if (Binding::adopt(int(reg1 - 1), flags, &bd, &why) == 0 && bd->nifp_index() == nifp)
      f->binding = std::move(bd);
    else if (!why.empty())
      fail(ENXIO, why);
  }
  NetmapFile* expected = nullptr;
  if (!g_files[fd].compare_exchange_strong(expected, f)) {  // another thread was first
    f->binding.reset();
    delete f;
    return expected;
  }
  g_nfiles.fetch_add(1);
  return f;
}

// Inherited across execve: the fds are there, this image's table is empty.
// Adopt every netmap fd at load; this process is already a holder of what
// it had (execve keeps the pid and start time). Runs before main(): it must
// not fix runtime_dir() (a program may set UNETMAP_DIR first), so it looks
// for the directory the same way without caching it.
void dev_adopt_inherited() {
  const char* e = getenv("UNETMAP_DIR");
  const std::string prefix = std::string(e && *e ? e : "/dev/shm/unetmap") + "/chan/";
  DIR* d = opendir("/proc/self/fd");
  if (!d) return;
  std::vector<int> fds;
  while (dirent* de = readdir(d)) {
    char link[300], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%s", de->d_name);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) continue;
    path[n] = 0;
    if (strncmp(path, prefix.c_str(), prefix.size()) == 0) fds.push_back(atoi(de->d_name));
  }
  closedir(d);
  for (int fd : fds) dev_adopt(fd);
}

// The fds an SCM_RIGHTS message brought.
void dev_adopt_received(const msghdr* m) {
  if (!m || !m->msg_control || m->msg_controllen < sizeof(cmsghdr)) return;
  for (cmsghdr* c = CMSG_FIRSTHDR(const_cast<msghdr*>(m)); c;
       c = CMSG_NXTHDR(const_cast<msghdr*>(m), c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      struct stat st;
      if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) dev_adopt(fd);
    }
  }
}

int dev_counters(int fd, Dir d, Binding::Counters* out) {
  NetmapFile* f = file_of(fd);
  if (!f) return fail(EBADF);  // a question, not a failed request: nothing printed
  refresh_binding(f);  // adopts a registration made elsewhere (takes f->mu itself)
  std::lock_guard<std::mutex> g(f->mu);
  Binding* b = f->binding.get();
  if (!b) return fail(ENXIO, "the netmap fd has no port registered");
  *out = b->counters(d);
  return 0;
}

int dev_direct_ranges(int fd, std::vector<DirectRanges::Range> r) {
  NetmapFile* f = file_of(fd);
  if (!f) return fail(EBADF, "unetmap_indirect_ranges: not a netmap fd");
  refresh_binding(f);  // adopts a registration made elsewhere (takes f->mu itself)
  std::lock_guard<std::mutex> g(f->mu);
  Binding* b = f->binding.get();
  if (!b) return fail(ENXIO, "unetmap_indirect_ranges: the netmap fd has no port registered");
  b->set_direct_ranges(std::move(r));
  return 0;
}

int dev_ioctl(int fd, unsigned long req, void* arg) {
  NetmapFile* f = file_of(fd);
  if (!f) return fail(EBADF);
  switch (req) {
    case NIOCTXSYNC:
    case NIOCRXSYNC: {
      Binding* b = refresh_binding(f);
      if (!b) return fail(ENXIO, "sync on an fd that is not registered");
      if (b->csb_mode()) return fail(EBUSY, "NIOC*SYNC in CSB mode: the sync-kloop syncs the rings");
      int err = b->sync(req == NIOCTXSYNC ? kTx : kRx);
      return err ? fail(err) : 0;
    }
    case NIOCCTRL:
    case NIOCREGIF:
    case NIOCGINFO: {
      // Held for the request: a sync-kloop runs in it until STOP, also if
      // the application closes this fd meanwhile (the kernel's file ref).
      f->refs.fetch_add(1);
      const int r = dev_ctrl(f, fd, req, arg);
      const int e = errno;
      release(f);
      errno = e;
      return r;
    }
    case FIONBIO: {
      int on = 0;
      if (!copy_in(&on, arg, sizeof on)) return fail(EFAULT);
      f->nonblock.store(on != 0);
      return 0;
    }
    default:
      return fail(ENOTTY);
  }
}

bool dev_fcntl_fl(int fd, int cmd, long arg, int* ret) {
  if (cmd != F_GETFL && cmd != F_SETFL) return false;
  NetmapFile* f = file_of(fd);
  struct stat st;
  // A netmap fd this process has not seen yet (SCM_RIGHTS, execve).
  if (!f && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) f = dev_adopt(fd);
  if (!f) return false;
  if (cmd == F_GETFL) {
    // As /dev/netmap's: the FIFO's O_NOFOLLOW and O_NONBLOCK are the library's.
    const long r = ::syscall(SYS_fcntl, fd, F_GETFL, 0);
    *ret = r < 0 ? -1 : int((r & ~(O_NONBLOCK | O_NOFOLLOW)) | (f->nonblock.load() ? O_NONBLOCK : 0));
    return true;
  }
  const long r = ::syscall(SYS_fcntl, fd, F_SETFL, arg | O_NONBLOCK);
  if (r == 0) f->nonblock.store((arg & O_NONBLOCK) != 0);
  *ret = int(r);
  return true;
}

void* dev_mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  NetmapFile* f = file_of(fd);
  if (!f || !refresh_binding(f)) {
    fail(EINVAL, "mmap of a netmap fd before it is registered");
    return MAP_FAILED;
  }
  Region& r = f->binding->region();
  if (off < 0 || uint64_t(off) > r.memsize() || len > r.memsize() - uint64_t(off)) {
    fail(EINVAL, "mmap beyond the region (" + std::to_string(r.memsize()) + " bytes)");
    return MAP_FAILED;
  }
  void* p = sys::mmap(addr, len, prot, flags, r.pub_fd(), off_t(r.pub_file_off() + uint64_t(off)));
  if (p == MAP_FAILED) fail(errno);
  return p;
}

// netmap's poll: sync the rings the fd is bound to and report readiness.
// Only when nothing is ready does it arm the rings' waiters and block in the
// kernel on the fds' FIFOs (together with any non-netmap fds in the set).
// When a netmap fd is ready and the set has no other fds, no system call
// is made at all.
int dev_poll(struct pollfd* fds, nfds_t n, int64_t timeout_ns) {
  int ready = 0;
  bool others = false;
  for (nfds_t i = 0; i < n; i++) {
    NetmapFile* f = file_of(fds[i].fd);
    if (!f) {
      others = true;
      continue;
    }
    fds[i].revents = scan_one(f, fds[i].events);
    if (fds[i].revents) ready++;
  }
  if (ready && !others) return ready;
  if (!ready && timeout_ns != 0) {
    // A short bounded spin before sleeping: between two processes that
    // exchange packets at full speed the ring is empty (or full) only for
    // a moment, and a sleep/wake-up pair costs far more than the wait.
    const int64_t spin = int64_t(spin_budget().next());
    const uint64_t spin_end = mono_ns() + uint64_t(spin);
    while (spin > 0 && !ready) {
      for (int k = 0; k < 64; k++) __builtin_ia32_pause();
      for (nfds_t i = 0; i < n; i++)
        if (NetmapFile* f = file_of(fds[i].fd)) {
          fds[i].revents = scan_one(f, fds[i].events);
          if (fds[i].revents) ready++;
        }
      if (mono_ns() >= spin_end) break;
    }
    if (spin > 0) spin_budget().spun(ready > 0);
    if (ready && !others) return ready;
  }
  // Nanoseconds throughout, as ppoll's timeout: a sub-millisecond wait
  // (a link emulator's next frame) is not rounded to a millisecond.
  const int64_t deadline = timeout_ns < 0 ? -1 : int64_t(mono_ns()) + timeout_ns;
  std::vector<pollfd> kfds;  // fds, then the kernel fds under NIC rings
  bool nm_ready = ready > 0;
  for (;;) {
    int64_t wait = nm_ready ? 0 : (deadline < 0 ? -1 : std::max<int64_t>(0, deadline - int64_t(mono_ns())));
    if (!nm_ready && wait != 0) {
      // Arm, then look again: a producer that published before it could
      // see the waiter is caught by this second scan.
      bool leases = false;
      for (nfds_t i = 0; i < n; i++)
        if (NetmapFile* f = file_of(fds[i].fd); f && poll_arms(f)) {
          f->binding->arm(fds[i].events, f->token);
          fds[i].revents = scan_one(f, fds[i].events);
          if (fds[i].revents) nm_ready = true;
          leases |= (fds[i].events & POLLIN) && f->binding->rx_leases_pending();
        }
      if (nm_ready) wait = 0;
      // A producer that dies holding a lease wakes nobody: look again soon,
      // the rescan's rxsync reclaims the lease once it is stale.
      if (leases && (wait < 0 || wait > 2000000)) wait = 2000000;
    }
    kfds.assign(fds, fds + n);
    for (nfds_t i = 0; i < n; i++)
      if (NetmapFile* f = file_of(fds[i].fd)) {
        kfds[i].events = POLLIN;
        if (f->binding && wait != 0) f->binding->wait_fds(fds[i].events, &kfds);
      }
    const timespec ts{time_t(wait / 1000000000), long(wait % 1000000000)};
    int r = libc().ppoll(kfds.data(), kfds.size(), wait < 0 ? nullptr : &ts, nullptr);
    if (r < 0) return r;
    bool kernel = false;  // a NIC socket has something: rescan every netmap fd
    for (size_t j = n; j < kfds.size(); j++) kernel |= kfds[j].revents != 0;
    ready = 0;
    for (nfds_t i = 0; i < n; i++) {
      NetmapFile* f = file_of(fds[i].fd);
      if (!f) {
        fds[i].revents = kfds[i].revents;
      } else if (poll_arms(f)) {
        f->binding->arm(fds[i].events, 0);
        if (kfds[i].revents & POLLIN) drain(fds[i].fd);
        if (!nm_ready || kernel || (kfds[i].revents & POLLIN))
          fds[i].revents = scan_one(f, fds[i].events);
      }
      if (fds[i].revents) ready++;
    }
    if (ready || wait == 0) return ready;
    if (deadline >= 0 && int64_t(mono_ns()) >= deadline) return 0;
    nm_ready = false;
  }
}

int dev_select(int nfds, fd_set* rs, fd_set* ws, fd_set* es, struct timeval* tv) {
  if (nfds < 0 || nfds > FD_SETSIZE) {
    errno = EINVAL;
    return -1;
  }
  std::vector<pollfd> p;
  for (int fd = 0; fd < nfds; fd++) {
    short ev = 0;
    if (rs && FD_ISSET(fd, rs)) ev |= POLLIN;
    if (ws && FD_ISSET(fd, ws)) ev |= POLLOUT;
    if (es && FD_ISSET(fd, es)) ev |= POLLPRI;
    if (ev) p.push_back(pollfd{fd, ev, 0});
  }
  const int64_t timeout = tv ? int64_t(tv->tv_sec) * 1000000000 + int64_t(tv->tv_usec) * 1000 : -1;
  int r = dev_poll(p.data(), p.size(), timeout);
  if (r < 0) return r;
  if (rs) FD_ZERO(rs);
  if (ws) FD_ZERO(ws);
  if (es) FD_ZERO(es);
  int count = 0;
  for (auto& q : p) {
    if (rs && (q.revents & (POLLIN | POLLHUP | POLLERR))) FD_SET(q.fd, rs), count++;
    if (ws && (q.revents & (POLLOUT | POLLERR))) FD_SET(q.fd, ws), count++;
    if (es && (q.revents & POLLPRI)) FD_SET(q.fd, es), count++;
  }
  if (tv) tv->tv_sec = tv->tv_usec = 0;
  return count;
}

bool epoll_has_netmap(int epfd) {
  std::lock_guard<std::mutex> g(g_ep_mu);
  auto it = g_ep.find(epfd);
  return it != g_ep.end() && !it->second.empty();
}

int dev_epoll_ctl(int epfd, int op, int fd, struct epoll_event* ev) {
  std::lock_guard<std::mutex> g(g_ep_mu);
  auto& m = g_ep[epfd];
  auto it = m.find(fd);
  switch (op) {
    case EPOLL_CTL_ADD:
      if (it != m.end()) return errno = EEXIST, -1;
      if (!ev) return errno = EFAULT, -1;
      m[fd] = EpollEntry{*ev};
      g_ep_used.store(1);
      return 0;
    case EPOLL_CTL_MOD:
      if (it == m.end()) return errno = ENOENT, -1;
      if (!ev) return errno = EFAULT, -1;
      it->second.ev = *ev;
      return 0;
    case EPOLL_CTL_DEL:
      if (it == m.end()) return errno = ENOENT, -1;
      m.erase(it);
      return 0;
    default:
      return errno = EINVAL, -1;
  }
}

// The kernel epoll fd is polled together with the netmap fds of this epoll
// set; ready netmap fds are reported with the user's event data.
int dev_epoll_wait(int epfd, struct epoll_event* evs, int max, int timeout_ms) {
  if (max <= 0) return errno = EINVAL, -1;
  std::vector<std::pair<int, epoll_event>> nm;
  {
    std::lock_guard<std::mutex> g(g_ep_mu);
    for (auto& [fd, e] : g_ep[epfd]) nm.push_back({fd, e.ev});
  }
  std::vector<pollfd> p;
  p.push_back(pollfd{epfd, POLLIN, 0});
  for (auto& [fd, ev] : nm) {
    short want = 0;
    if (ev.events & EPOLLIN) want |= POLLIN;
    if (ev.events & EPOLLOUT) want |= POLLOUT;
    p.push_back(pollfd{fd, want, 0});
  }
  int r = dev_poll(p.data(), p.size(), timeout_ms < 0 ? -1 : int64_t(timeout_ms) * 1000000);
  if (r < 0) return r;
  int n = 0;
  for (size_t i = 1; i < p.size() && n < max; i++) {
    if (!p[i].revents) continue;
    uint32_t e = 0;
    if (p[i].revents & POLLIN) e |= EPOLLIN;
    if (p[i].revents & POLLOUT) e |= EPOLLOUT;
    if (p[i].revents & POLLERR) e |= EPOLLERR;
    evs[n].events = e;
    evs[n].data = nm[i - 1].second.data;
    n++;
  }
  if (n < max && (p[0].revents & POLLIN)) {
    int k = libc().epoll_wait(epfd, evs + n, max - n, 0);
    if (k > 0) n += k;
  }
  return n;
}

void dev_forget(int fd) {
  if (fd < 0 || fd >= kMaxFd) return;
  if (g_ep_used.load(std::memory_order_relaxed)) {
    std::lock_guard<std::mutex> g(g_ep_mu);
    g_ep.erase(fd);  // it may have been an epoll fd
  }
  if (!g_files[fd].load(std::memory_order_relaxed)) return;  // not ours: no atomic RMW
  NetmapFile* f = g_files[fd].exchange(nullptr);
  if (!f) return;
  {
    std::lock_guard<std::mutex> g(g_ep_mu);
    for (auto& [ep, m] : g_ep) m.erase(fd);
  }
  release(f);
}

int dev_close(int fd) {
  dev_forget(fd);
  return libc().close(fd);
}

void dev_dup(int oldfd, int newfd) {
  NetmapFile* f = file_of(oldfd);
  if (!f || newfd < 0 || newfd >= kMaxFd || newfd == oldfd) return;
  dev_forget(newfd);
  f->refs.fetch_add(1);
  g_files[newfd].store(f, std::memory_order_release);
}

// After fork the child holds every registration and wake-up channel of the
// parent too. Done by the parent before fork() returns to it, so that a
// parent closing its fd at once cannot take the port from under the child.
void dev_after_fork_parent(int child_pid) {
  if (g_nfiles.load() == 0) return;
  ProcId child = ProcId::of(child_pid);
  Registry* reg = Registry::get(nullptr);
  std::set<NetmapFile*> seen;
  for (int fd = 0; fd < kMaxFd; fd++) {
    NetmapFile* f = g_files[fd].load(std::memory_order_relaxed);
    if (!f || !seen.insert(f).second) continue;
    if (f->binding) f->binding->add_holder(child);
    if (reg) {
      RegistryLock g(*reg);
      if (g.ok()) reg->add_chan_holder(f->token, child);
    }
  }
}

}  // namespace unetmap

extern "C" const char* unetmap_last_error(void) { return unetmap::t_last_error.c_str(); }
