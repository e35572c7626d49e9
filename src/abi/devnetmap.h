// The /dev/netmap emulation: what open/ioctl/mmap/poll/close/dup do on a
// netmap fd. interpose.cc routes libc's entry points here for netmap fds;
// libnetmap (nm_open, nmport_*) calls these functions directly.
//
// A netmap fd is a real kernel fd: the read end of a FIFO in the runtime
// directory, opened O_RDWR. It is the wake-up channel of that open file:
// a producer that finds a waiter armed on a ring writes one byte to it, so
// poll/select/epoll on the fd block in the kernel. dup/fork work as for any
// fd; this layer keeps an fd -> NetmapFile table (shared by dup'ed fds).
#pragma once

#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>

namespace unetmap {

bool is_netmap_path(const char* path);
bool is_netmap_fd(int fd);

// A netmap fd this process got other than by open or fork (SCM_RIGHTS,
// execve): known from now on. nullptr if fd is not a netmap fd.
struct NetmapFile;
NetmapFile* dev_adopt(int fd);
void dev_adopt_inherited();  // at load: every netmap fd execve kept
void dev_adopt_received(const struct msghdr* m);  // after recvmsg: SCM_RIGHTS fds
// Is req one of /dev/netmap's ioctls?
bool is_netmap_ioctl(unsigned long req);

// All return like the system calls: -1 with errno set on failure.
int dev_open(int flags);
int dev_ioctl(int fd, unsigned long req, void* arg);
// fcntl F_GETFL/F_SETFL on a netmap fd: the application sees and sets its
// own O_NONBLOCK (as on /dev/netmap; FIONBIO too), the FIFO underneath
// stays nonblocking. true if fd is a netmap fd and cmd one of those (*ret
// is fcntl's result, errno set on -1).
bool dev_fcntl_fl(int fd, int cmd, long arg, int* ret);
void* dev_mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off);
// poll() on netmap fds (and others beside them); timeout in ns, -1 for none.
int dev_poll(struct pollfd* fds, nfds_t n, int64_t timeout_ns);
int dev_select(int nfds, fd_set* r, fd_set* w, fd_set* e, struct timeval* tv);
int dev_epoll_ctl(int epfd, int op, int fd, struct epoll_event* ev);
int dev_epoll_wait(int epfd, struct epoll_event* evs, int max, int timeout_ms);
bool epoll_has_netmap(int epfd);
// close() of any fd: forget it here, then close it in the kernel.
int dev_close(int fd);
// Called after the kernel closed/duplicated an fd.
void dev_forget(int fd);
void dev_dup(int oldfd, int newfd);
// In the parent, right after fork() created child_pid.
void dev_after_fork_parent(int child_pid);

// libc's own entry points (the next definition after this library).
struct Libc {
  int (*open)(const char*, int, ...);
  int (*openat)(int, const char*, int, ...);
  int (*ioctl)(int, unsigned long, ...);
  void* (*mmap)(void*, size_t, int, int, int, off_t);
  int (*poll)(struct pollfd*, nfds_t, int);
  int (*ppoll)(struct pollfd*, nfds_t, const struct timespec*, const sigset_t*);
  int (*select)(int, fd_set*, fd_set*, fd_set*, struct timeval*);
  int (*pselect)(int, fd_set*, fd_set*, fd_set*, const struct timespec*, const sigset_t*);
  int (*epoll_ctl)(int, int, int, struct epoll_event*);
  int (*epoll_wait)(int, struct epoll_event*, int, int);
  int (*epoll_pwait)(int, struct epoll_event*, int, int, const sigset_t*);
  int (*close)(int);
  int (*dup)(int);
  int (*dup2)(int, int);
  int (*dup3)(int, int, int);
  int (*fcntl)(int, int, ...);
  pid_t (*fork)(void);
  ssize_t (*recvmsg)(int, struct msghdr*, int);
  int (*recvmmsg)(int, struct mmsghdr*, unsigned int, int, struct timespec*);
};
const Libc& libc();

}  // namespace unetmap

extern "C" {
// The explanation of the last failed netmap operation of this thread.
const char* unetmap_last_error(void);
}
