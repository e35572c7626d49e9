// Interposition of libc's entry points. Each one costs a table lookup for
// fds that are not netmap fds, then goes to libc. Works the same linked
// (-lnetmap, which precedes libc) and through LD_PRELOAD.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/socket.h>

#include "abi/devnetmap.h"

using unetmap::libc;

#define EXPORT extern "C" __attribute__((visibility("default")))

namespace {

mode_t mode_arg(int flags, va_list ap) {
  return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? mode_t(va_arg(ap, int)) : 0;
}

int nm_ppoll(struct pollfd* fds, nfds_t n, const struct timespec* ts, const sigset_t* mask) {
  bool nm = false;
  for (nfds_t i = 0; i < n && !nm; i++) nm = unetmap::is_netmap_fd(fds[i].fd);
  if (!nm) return libc().ppoll(fds, n, ts, mask);
  const int64_t ns = ts ? int64_t(ts->tv_sec) * 1000000000 + ts->tv_nsec : -1;
  sigset_t old;
  if (mask) pthread_sigmask(SIG_SETMASK, mask, &old);
  int r = unetmap::dev_poll(fds, n, ns);
  if (mask) {
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    errno = e;
  }
  return r;
}

bool any_netmap(int nfds, fd_set* r, fd_set* w, fd_set* e) {
  if (nfds > FD_SETSIZE) nfds = FD_SETSIZE;
  for (int fd = 0; fd < nfds; fd++)
    if (((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (e && FD_ISSET(fd, e))) &&
        unetmap::is_netmap_fd(fd))
      return true;
  return false;
}

}  // namespace

EXPORT int open(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = mode_arg(flags, ap);
  va_end(ap);
  if (unetmap::is_netmap_path(path)) return unetmap::dev_open(flags);
  return libc().open(path, flags, m);
}
EXPORT int open64(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = mode_arg(flags, ap);
  va_end(ap);
  if (unetmap::is_netmap_path(path)) return unetmap::dev_open(flags);
  return libc().open(path, flags | O_LARGEFILE, m);
}
EXPORT int openat(int dirfd, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = mode_arg(flags, ap);
  va_end(ap);
  if (unetmap::is_netmap_path(path)) return unetmap::dev_open(flags);
  return libc().openat(dirfd, path, flags, m);
}
EXPORT int openat64(int dirfd, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = mode_arg(flags, ap);
  va_end(ap);
  if (unetmap::is_netmap_path(path)) return unetmap::dev_open(flags);
  return libc().openat(dirfd, path, flags | O_LARGEFILE, m);
}
EXPORT int __open_2(const char* path, int flags) { return open(path, flags); }
EXPORT int __open64_2(const char* path, int flags) { return open64(path, flags); }
EXPORT int __openat_2(int dirfd, const char* path, int flags) { return openat(dirfd, path, flags); }
EXPORT int __openat64_2(int dirfd, const char* path, int flags) {
  return openat64(dirfd, path, flags);
}

EXPORT int ioctl(int fd, unsigned long req, ...) {
  va_list ap;
  va_start(ap, req);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  if (unetmap::is_netmap_fd(fd)) return unetmap::dev_ioctl(fd, req, arg);
  // A netmap fd this process has not seen yet (SCM_RIGHTS, execve).
  if (unetmap::is_netmap_ioctl(req) && unetmap::dev_adopt(fd)) return unetmap::dev_ioctl(fd, req, arg);
  return libc().ioctl(fd, req, arg);
}

EXPORT void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (!(flags & MAP_ANONYMOUS) && unetmap::is_netmap_fd(fd))
    return unetmap::dev_mmap(addr, len, prot, flags, fd, off);
  void* p = libc().mmap(addr, len, prot, flags, fd, off);
  // A FIFO cannot be mapped: maybe a netmap fd this process has not seen yet.
  if (p == MAP_FAILED && errno == ENODEV && !(flags & MAP_ANONYMOUS) && unetmap::dev_adopt(fd))
    return unetmap::dev_mmap(addr, len, prot, flags, fd, off);
  return p;
}
EXPORT void* mmap64(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  return mmap(addr, len, prot, flags, fd, off);
}

EXPORT int poll(struct pollfd* fds, nfds_t n, int timeout) {
  for (nfds_t i = 0; i < n; i++)
    if (unetmap::is_netmap_fd(fds[i].fd)) return unetmap::dev_poll(fds, n, timeout < 0 ? -1 : int64_t(timeout) * 1000000);
  return libc().poll(fds, n, timeout);
}
EXPORT int __poll_chk(struct pollfd* fds, nfds_t n, int timeout, size_t) {
  return poll(fds, n, timeout);
}
EXPORT int ppoll(struct pollfd* fds, nfds_t n, const struct timespec* ts, const sigset_t* m) {
  return nm_ppoll(fds, n, ts, m);
}
EXPORT int __ppoll_chk(struct pollfd* fds, nfds_t n, const struct timespec* ts,
                       const sigset_t* m, size_t) {
  return nm_ppoll(fds, n, ts, m);
}

EXPORT int select(int nfds, fd_set* r, fd_set* w, fd_set* e, struct timeval* tv) {
  if (!any_netmap(nfds, r, w, e)) return libc().select(nfds, r, w, e, tv);
  return unetmap::dev_select(nfds, r, w, e, tv);
}
EXPORT int pselect(int nfds, fd_set* r, fd_set* w, fd_set* e, const struct timespec* ts,
                   const sigset_t* mask) {
  if (!any_netmap(nfds, r, w, e)) return libc().pselect(nfds, r, w, e, ts, mask);
  struct timeval tv, *tvp = nullptr;
  if (ts) tv = {ts->tv_sec, ts->tv_nsec / 1000}, tvp = &tv;
  sigset_t old;
  if (mask) pthread_sigmask(SIG_SETMASK, mask, &old);
  int rc = unetmap::dev_select(nfds, r, w, e, tvp);
  if (mask) {
    int err = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    errno = err;
  }
  return rc;
}

EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event* ev) {
  if (unetmap::is_netmap_fd(fd)) return unetmap::dev_epoll_ctl(epfd, op, fd, ev);
  return libc().epoll_ctl(epfd, op, fd, ev);
}
EXPORT int epoll_wait(int epfd, struct epoll_event* evs, int max, int timeout) {
  if (unetmap::epoll_has_netmap(epfd)) return unetmap::dev_epoll_wait(epfd, evs, max, timeout);
  return libc().epoll_wait(epfd, evs, max, timeout);
}
EXPORT int epoll_pwait(int epfd, struct epoll_event* evs, int max, int timeout,
                       const sigset_t* mask) {
  if (!unetmap::epoll_has_netmap(epfd)) return libc().epoll_pwait(epfd, evs, max, timeout, mask);
  sigset_t old;
  if (mask) pthread_sigmask(SIG_SETMASK, mask, &old);
  int r = unetmap::dev_epoll_wait(epfd, evs, max, timeout);
  if (mask) {
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    errno = e;
  }
  return r;
}

EXPORT int close(int fd) { return unetmap::dev_close(fd); }

EXPORT int dup(int fd) {
  int r = libc().dup(fd);
  if (r >= 0) unetmap::dev_dup(fd, r);
  return r;
}
EXPORT int dup2(int fd, int fd2) {
  int r = libc().dup2(fd, fd2);
  if (r >= 0 && fd != fd2) {
    unetmap::dev_forget(fd2);
    unetmap::dev_dup(fd, r);
  }
  return r;
}
EXPORT int dup3(int fd, int fd2, int flags) {
  int r = libc().dup3(fd, fd2, flags);
  if (r >= 0) {
    unetmap::dev_forget(fd2);
    unetmap::dev_dup(fd, r);
  }
  return r;
}
EXPORT int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  long arg = va_arg(ap, long);
  va_end(ap);
  int r;
  if (unetmap::dev_fcntl_fl(fd, cmd, arg, &r)) return r;
  r = libc().fcntl(fd, cmd, arg);
  if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) unetmap::dev_dup(fd, r);
  return r;
}
EXPORT int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  long arg = va_arg(ap, long);
  va_end(ap);
  return fcntl(fd, cmd, arg);
}

// Netmap fds that arrive over a Unix socket are known from their arrival.
EXPORT ssize_t recvmsg(int fd, struct msghdr* m, int flags) {
  ssize_t r = libc().recvmsg(fd, m, flags);
  if (r >= 0 && m && m->msg_controllen) unetmap::dev_adopt_received(m);
  return r;
}
EXPORT int recvmmsg(int fd, struct mmsghdr* v, unsigned int n, int flags, struct timespec* t) {
  int r = libc().recvmmsg(fd, v, n, flags, t);
  for (int i = 0; i < r; i++)
    if (v[i].msg_hdr.msg_controllen) unetmap::dev_adopt_received(&v[i].msg_hdr);
  return r;
}

// After execve the inherited netmap fds are adopted before main() runs.
__attribute__((constructor)) static void adopt_inherited() { unetmap::dev_adopt_inherited(); }

EXPORT pid_t fork(void) {
  pid_t pid = libc().fork();
  if (pid > 0) unetmap::dev_after_fork_parent(pid);
  return pid;
}
