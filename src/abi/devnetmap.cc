#include "abi/devnetmap.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <net/netmap.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
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

#include "core/port.h"
#include "ports/vale.h"

namespace unetmap {

namespace {

constexpr int kMaxFd = 65536;

// One per open of /dev/netmap; shared by dup'ed fds of this process.
struct NetmapFile {
  uint32_t token = 0;  // wake-up channel
  std::unique_ptr<Binding> binding;
  std::atomic<int> refs{1};
  std::mutex mu;  // serialises register against register
};

std::atomic<NetmapFile*> g_files[kMaxFd];
std::atomic<int> g_nfiles{0};  // open NetmapFiles in this process
thread_local std::string t_last_error;

NetmapFile* file_of(int fd) {
  if (fd < 0 || fd >= kMaxFd) return nullptr;
  return g_files[fd].load(std::memory_order_acquire);
}

int fail(int err, const std::string& why = {}) {
  t_last_error = why.empty() ? strerror(err) : why;
  if (!why.empty() && !getenv("UNETMAP_QUIET")) fprintf(stderr, "unetmap: %s\n", why.c_str());
  errno = err;
  return -1;
}

// Copy to/from application memory the way a kernel would: a bad pointer
// gives EFAULT, never a crash of the library.
bool copy_in(void* dst, const void* src, size_t n) {
  iovec local{dst, n}, remote{const_cast<void*>(src), n};
  return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == ssize_t(n);
}
bool copy_out(void* dst, const void* src, size_t n) {
  iovec local{const_cast<void*>(src), n}, remote{dst, n};
  return process_vm_writev(getpid(), &local, 1, &remote, 1, 0) == ssize_t(n);
}

void release(NetmapFile* f) {
  if (f->refs.fetch_sub(1) != 1) return;
  f->binding.reset();
  g_nfiles.fetch_sub(1);
  if (Registry* reg = Registry::get(nullptr)) {
    LockGuard g(reg->lock());
    reg->release_chan(f->token, ProcId::self());
  }
  delete f;
}

void drain(int fd) {
  char buf[64];
  while (::read(fd, buf, sizeof buf) > 0) {
  }
}

void fill_register_reply(const Binding& b, nmreq_register* r) {
  const PortEntry& pe = b.port_info();
  r->nr_offset = b.nifp_offset();
  r->nr_memsize = b.region().memsize();
  r->nr_tx_slots = pe.nslots[kTx];
  r->nr_rx_slots = pe.nslots[kRx];
  r->nr_tx_rings = pe.nrings[kTx];
  r->nr_rx_rings = pe.nrings[kRx];
  r->nr_host_tx_rings = pe.nhost[kTx];
  r->nr_host_rx_rings = pe.nhost[kRx];
  r->nr_mem_id = b.region().id();
  r->nr_extra_bufs = b.extra_bufs();
}

std::string name_of(const char* n, size_t max) { return std::string(n, strnlen(n, max)); }

// The deprecated pipe modes name the pipe by ring id: NAME + mode
// PIPE_MASTER/SLAVE + ring N is the port NAME{N / NAME}N.
void apply_pipe_mode(BindRequest* rq) {
  if (rq->mode != NR_REG_PIPE_MASTER && rq->mode != NR_REG_PIPE_SLAVE) return;
  rq->name += (rq->mode == NR_REG_PIPE_MASTER ? "{" : "}") + std::to_string(rq->ringid);
  rq->mode = NR_REG_ALL_NIC;
  rq->ringid = 0;
}

int do_register(NetmapFile* f, BindRequest rq) {
  apply_pipe_mode(&rq);
  std::lock_guard<std::mutex> g(f->mu);
  if (f->binding) return fail(EBUSY, "this fd is already registered to a port");
  std::string why;
  int err = Binding::open(rq, &f->binding, &why);
  return err ? fail(err, why) : 0;
}

// PORT_INFO_GET on a port nobody holds: bind it with no rings and let go.
int port_info(NetmapFile* f, const std::string& name, uint16_t mem_id, nmreq_register* out) {
  if (f->binding && f->binding->port_info().name == name) {
    fill_register_reply(*f->binding, out);
    return 0;
  }
  BindRequest rq;
  rq.name = name;
  rq.mode = NR_REG_NULL;
  rq.mem_id = mem_id;
  std::unique_ptr<Binding> tmp;
  std::string why;
  if (int err = Binding::open(rq, &tmp, &why)) return fail(err, why);
  fill_register_reply(*tmp, out);
  return 0;
}

int pools_info(NetmapFile* f, nmreq_pools_info* pi) {
  std::shared_ptr<Region> r;
  int err = 0;
  if (pi->nr_mem_id == 0 && f->binding) {
    pi->nr_mem_id = f->binding->region().id();
  } else if (pi->nr_mem_id == 0) {
    pi->nr_mem_id = 1;
  }
  std::string why;
  // Region 1, the global one, always exists (as netmap's global allocator).
  r = Region::get(pi->nr_mem_id, RegionConfig::from_env(), &err, &why, pi->nr_mem_id == 1);
  if (!r) return fail(err, why);
  const RegionHeader* h = r->hdr();
  pi->nr_memsize = h->memsize;
  pi->nr_if_pool_offset = h->if_pool;
  pi->nr_if_pool_objtotal = h->cfg.if_num;
  pi->nr_if_pool_objsize = h->cfg.if_size;
  pi->nr_ring_pool_offset = h->ring_pool;
  pi->nr_ring_pool_objtotal = h->cfg.ring_num;
  pi->nr_ring_pool_objsize = h->cfg.ring_size;
  pi->nr_buf_pool_offset = h->buf_pool;
  pi->nr_buf_pool_objtotal = h->cfg.buf_num;
  pi->nr_buf_pool_objsize = h->cfg.buf_size;
  return 0;
}

// Options: none are implemented yet; each one is refused with its status
// set, and the request fails, as netmap does for options it does not know.
int check_options(uint64_t first) {
  int hops = 0;
  bool any = false;
  for (uint64_t p = first; p; hops++) {
    if (hops > 64) return fail(EINVAL, "option list too long or looping");
    nmreq_option o;
    if (!copy_in(&o, reinterpret_cast<void*>(p), sizeof o)) return fail(EFAULT);
    o.nro_status = EOPNOTSUPP;
    if (!copy_out(reinterpret_cast<void*>(p), &o, sizeof o)) return fail(EFAULT);
    any = true;
    p = o.nro_next;
  }
  if (any) return fail(EOPNOTSUPP, "request options (extmem, csb, offsets) are not supported yet");
  return 0;
}

// NIOCCTRL VALE_* requests: the body is copied in and out like the others.
int vale_ctrl(void* arg, nmreq_header* h, const std::string& name, void* body) {
  std::string why;
  int err = 0;
  switch (h->nr_reqtype) {
    case NETMAP_REQ_VALE_NEWIF: {
      nmreq_vale_newif r;
      if (!body || !copy_in(&r, body, sizeof r)) return fail(EFAULT);
      ValeNewif c;
      c.rings[kTx] = r.nr_tx_rings, c.rings[kRx] = r.nr_rx_rings;
      c.slots[kTx] = r.nr_tx_slots, c.slots[kRx] = r.nr_rx_slots;
      c.mem_id = r.nr_mem_id;
      err = vale_newif(name, c, &why);
      break;
    }
    case NETMAP_REQ_VALE_DELIF:
      err = vale_delif(name, &why);
      break;
    case NETMAP_REQ_VALE_ATTACH:
    case NETMAP_REQ_VALE_DETACH: {
      bool att = h->nr_reqtype == NETMAP_REQ_VALE_ATTACH;
      size_t sz = att ? sizeof(nmreq_vale_attach) : sizeof(nmreq_vale_detach);
      alignas(8) char buf[sizeof(nmreq_vale_attach)];
      if (!body || !copy_in(buf, body, sz)) return fail(EFAULT);
      uint32_t idx = 0;
      uint32_t mode = reinterpret_cast<nmreq_vale_attach*>(buf)->reg.nr_mode;
      if (att && (mode == NR_REG_NIC_SW || mode == NR_REG_SW))
        return fail(EOPNOTSUPP, "attaching a host stack needs NIC ports, not supported yet");
      err = att ? vale_attach(name, &idx, &why) : vale_detach(name, &idx, &why);
      if (err) break;
      if (att)
        reinterpret_cast<nmreq_vale_attach*>(buf)->port_index = idx;
      else
        reinterpret_cast<nmreq_vale_detach*>(buf)->port_index = idx;
      return copy_out(body, buf, sz) ? 0 : fail(EFAULT);
    }
    case NETMAP_REQ_VALE_LIST: {
      nmreq_vale_list r;
      if (!body || !copy_in(&r, body, sizeof r)) return fail(EFAULT);
      std::string n = name;
      uint32_t b = r.nr_bridge_idx, p = r.nr_port_idx;
      if ((err = vale_list_port(&n, &b, &p, &why)) != 0) break;
      r.nr_bridge_idx = uint16_t(b), r.nr_port_idx = p;
      snprintf(h->nr_name, sizeof h->nr_name, "%s", n.c_str());
      if (!copy_out(body, &r, sizeof r) || !copy_out(arg, h, sizeof *h)) return fail(EFAULT);
      return 0;
    }
  }
  return err ? fail(err, why) : 0;
}

int ctrl(NetmapFile* f, void* arg) {
  nmreq_header h;
  if (!copy_in(&h, arg, sizeof h)) return fail(EFAULT);
  if (h.nr_version < NETMAP_MIN_API || h.nr_version > NETMAP_MAX_API)
    return fail(EINVAL, "nr_version " + std::to_string(h.nr_version) + " not supported: use " +
                            std::to_string(NETMAP_API));
  if (h.nr_reserved != 0) return fail(EINVAL, "nmreq_header.nr_reserved must be 0");
  if (check_options(h.nr_options)) return -1;
  std::string name = name_of(h.nr_name, sizeof h.nr_name);
  void* body = reinterpret_cast<void*>(h.nr_body);
  switch (h.nr_reqtype) {
    case NETMAP_REQ_REGISTER: {
      nmreq_register r;
      if (!body || !copy_in(&r, body, sizeof r)) return fail(EFAULT);
      BindRequest rq;
      rq.name = name;
      rq.mode = r.nr_mode;
      rq.ringid = r.nr_ringid;
      rq.flags = r.nr_flags;
      rq.mem_id = r.nr_mem_id;
      rq.nrings[kTx] = r.nr_tx_rings, rq.nrings[kRx] = r.nr_rx_rings;
      rq.nslots[kTx] = r.nr_tx_slots, rq.nslots[kRx] = r.nr_rx_slots;
      rq.extra_bufs = r.nr_extra_bufs;
      if (do_register(f, rq)) return -1;
      fill_register_reply(*f->binding, &r);
      return copy_out(body, &r, sizeof r) ? 0 : fail(EFAULT);
    }
    case NETMAP_REQ_PORT_INFO_GET: {
      nmreq_port_info_get pi;
      if (!body || !copy_in(&pi, body, sizeof pi)) return fail(EFAULT);
      nmreq_register r{};
      if (port_info(f, name, pi.nr_mem_id, &r)) return -1;
      pi.nr_memsize = r.nr_memsize;
      pi.nr_tx_slots = r.nr_tx_slots, pi.nr_rx_slots = r.nr_rx_slots;
      pi.nr_tx_rings = r.nr_tx_rings, pi.nr_rx_rings = r.nr_rx_rings;
      pi.nr_host_tx_rings = r.nr_host_tx_rings, pi.nr_host_rx_rings = r.nr_host_rx_rings;
      pi.nr_mem_id = r.nr_mem_id;
      return copy_out(body, &pi, sizeof pi) ? 0 : fail(EFAULT);
    }
    case NETMAP_REQ_POOLS_INFO_GET: {
      nmreq_pools_info pi;
      if (!body || !copy_in(&pi, body, sizeof pi)) return fail(EFAULT);
      if (pools_info(f, &pi)) return -1;
      return copy_out(body, &pi, sizeof pi) ? 0 : fail(EFAULT);
    }
    case NETMAP_REQ_VALE_ATTACH:
    case NETMAP_REQ_VALE_DETACH:
    case NETMAP_REQ_VALE_LIST:
    case NETMAP_REQ_VALE_NEWIF:
    case NETMAP_REQ_VALE_DELIF:
      return vale_ctrl(arg, &h, name, body);
    case NETMAP_REQ_VALE_POLLING_ENABLE:
    case NETMAP_REQ_VALE_POLLING_DISABLE:
      return fail(EOPNOTSUPP, "VALE polling mode is for NIC ports, which are not supported yet");
    default:
      return fail(EOPNOTSUPP, "request type " + std::to_string(h.nr_reqtype) + " not supported");
  }
}

// Legacy NIOCREGIF / NIOCGINFO (struct nmreq).
BindRequest legacy_request(const nmreq& r) {
  BindRequest rq;
  rq.name = name_of(r.nr_name, sizeof r.nr_name);
  rq.mode = r.nr_flags & NR_REG_MASK;
  rq.flags = r.nr_flags & ~uint64_t(NR_REG_MASK);
  if (rq.mode == NR_REG_DEFAULT) {
    if (r.nr_ringid & NETMAP_SW_RING)
      rq.mode = NR_REG_SW;
    else if (r.nr_ringid & NETMAP_HW_RING)
      rq.mode = NR_REG_ONE_NIC;
    else
      rq.mode = NR_REG_ALL_NIC;
  }
  rq.ringid = r.nr_ringid & NETMAP_RING_MASK;
  if (r.nr_ringid & NETMAP_NO_TX_POLL) rq.flags |= NR_NO_TX_POLL;
  if (r.nr_ringid & NETMAP_DO_RX_POLL) rq.flags |= NR_DO_RX_POLL;
  rq.mem_id = r.nr_arg2;
  rq.nrings[kTx] = r.nr_tx_rings, rq.nrings[kRx] = r.nr_rx_rings;
  rq.nslots[kTx] = r.nr_tx_slots, rq.nslots[kRx] = r.nr_rx_slots;
  rq.extra_bufs = r.nr_arg3;
  return rq;
}

void legacy_reply(const nmreq_register& rr, nmreq* r) {
  r->nr_offset = uint32_t(rr.nr_offset);
  r->nr_memsize = uint32_t(rr.nr_memsize);
  r->nr_tx_slots = rr.nr_tx_slots, r->nr_rx_slots = rr.nr_rx_slots;
  r->nr_tx_rings = rr.nr_tx_rings, r->nr_rx_rings = rr.nr_rx_rings;
  r->nr_arg2 = rr.nr_mem_id;
  r->nr_arg3 = rr.nr_extra_bufs;
}

// Legacy VALE control: nr_cmd in a NIOCREGIF request.
int legacy_cmd(void* arg, nmreq* r) {
  std::string name = name_of(r->nr_name, sizeof r->nr_name), why;
  uint32_t idx = 0, bridge = r->nr_arg1, port = r->nr_arg2;
  int err;
  switch (r->nr_cmd) {
    case NETMAP_BDG_ATTACH:
      if (r->nr_arg1 & NETMAP_BDG_HOST)
        return fail(EOPNOTSUPP, "attaching a host stack needs NIC ports, not supported yet");
      err = vale_attach(name, &idx, &why);
      break;
    case NETMAP_BDG_DETACH:
      err = vale_detach(name, &idx, &why);
      break;
    case NETMAP_BDG_NEWIF: {
      ValeNewif c;
      c.rings[kTx] = r->nr_tx_rings, c.rings[kRx] = r->nr_rx_rings;
      c.slots[kTx] = r->nr_tx_slots, c.slots[kRx] = r->nr_rx_slots;
      c.mem_id = r->nr_arg2;
      err = vale_newif(name, c, &why);
      break;
    }
    case NETMAP_BDG_DELIF:
      err = vale_delif(name, &why);
      break;
    case NETMAP_BDG_LIST:
      if ((err = vale_list_port(&name, &bridge, &port, &why)) != 0) break;
      snprintf(r->nr_name, sizeof r->nr_name, "%s", name.c_str());
      r->nr_arg1 = uint16_t(bridge), r->nr_arg2 = uint16_t(port);
      return copy_out(arg, r, sizeof *r) ? 0 : fail(EFAULT);
    default:
      return fail(EOPNOTSUPP, "nr_cmd " + std::to_string(r->nr_cmd) + " not supported");
  }
  return err ? fail(err, why) : 0;
}

int legacy(NetmapFile* f, unsigned long req, void* arg) {
  nmreq r;
  if (!copy_in(&r, arg, sizeof r)) return fail(EFAULT);
  if (r.nr_version < 11 || r.nr_version > NETMAP_MAX_API)
    return fail(EINVAL, "nr_version " + std::to_string(r.nr_version) + " not supported");
  if (r.nr_cmd != 0) return legacy_cmd(arg, &r);
  BindRequest rq = legacy_request(r);
  nmreq_register rr{};
  if (req == NIOCREGIF) {
    if (do_register(f, rq)) return -1;
    fill_register_reply(*f->binding, &rr);
  } else if (rq.name.empty()) {
    nmreq_pools_info pi{};
    pi.nr_mem_id = rq.mem_id;
    if (pools_info(f, &pi)) return -1;
    rr.nr_memsize = pi.nr_memsize;
    rr.nr_mem_id = pi.nr_mem_id;
  } else if (port_info(f, rq.name, rq.mem_id, &rr)) {
    return -1;
  }
  legacy_reply(rr, &r);
  return copy_out(arg, &r, sizeof r) ? 0 : fail(EFAULT);
}

int64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// How long poll spins before it sleeps: UNETMAP_SPIN_US, default 50 us.
int64_t spin_ns() {
  static const int64_t ns = [] {
    const char* e = getenv("UNETMAP_SPIN_US");
    long us = e && *e ? strtol(e, nullptr, 10) : 50;
    return int64_t(us < 0 ? 0 : us > 100000 ? 100000 : us) * 1000;
  }();
  return ns;
}

short scan_one(NetmapFile* f, short events) {
  if (!f->binding) return POLLERR;
  return f->binding->poll_scan(events);
}

// Per-epoll-fd netmap registrations: these fds are not handed to the
// kernel epoll; dev_epoll_wait checks them itself.
struct EpollEntry {
  epoll_event ev;
};
std::mutex g_ep_mu;
std::map<int, std::map<int, EpollEntry>> g_ep;
std::atomic<int> g_ep_used{0};  // nonzero once any epoll set has a netmap fd

}  // namespace

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
#undef NEXT
    return x;
  }();
  return l;
}

bool is_netmap_path(const char* path) { return path && strcmp(path, "/dev/netmap") == 0; }
bool is_netmap_fd(int fd) { return file_of(fd) != nullptr; }

int dev_open(int flags) {
  int err = 0;
  Registry* reg = Registry::get(&err);
  if (!reg) return fail(err, "cannot open the registry in " + runtime_dir() + ": " + strerror(err));
  uint32_t token = 0;
  {
    LockGuard g(reg->lock());
    reg->reap();
    if ((err = reg->alloc_chan(&token)) != 0) return fail(err, "too many open /dev/netmap fds");
  }
  std::string path = Registry::chan_path(Registry::chan_id(token));
  unlink(path.c_str());
  int fd = -1;
  if (mkfifo(path.c_str(), 0600) == 0) {
    chmod(path.c_str(), 0622);  // any producer may wake us, nobody else reads
    fd = sys::open(path.c_str(), O_RDWR | O_NONBLOCK | (flags & O_CLOEXEC));
  }
  if (fd < 0 || fd >= kMaxFd) {
    err = fd < 0 ? errno : EMFILE;
    if (fd >= 0) sys::close(fd);
    LockGuard g(reg->lock());
    reg->free_chan(token);
    return fail(err, "cannot create wake-up channel " + path + ": " + strerror(err));
  }
  auto* f = new NetmapFile;
  f->token = token;
  g_nfiles.fetch_add(1);
  g_files[fd].store(f, std::memory_order_release);
  return fd;
}

int dev_ioctl(int fd, unsigned long req, void* arg) {
  NetmapFile* f = file_of(fd);
  if (!f) return fail(EBADF);
  switch (req) {
    case NIOCTXSYNC:
    case NIOCRXSYNC: {
      Binding* b = f->binding.get();
      if (!b) return fail(ENXIO, "sync on an fd that is not registered");
      int err = b->sync(req == NIOCTXSYNC ? kTx : kRx);
      return err ? fail(err) : 0;
    }
    case NIOCCTRL:
      return ctrl(f, arg);
    case NIOCREGIF:
    case NIOCGINFO:
      return legacy(f, req, arg);
    default:
      return fail(ENOTTY);
  }
}

void* dev_mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  NetmapFile* f = file_of(fd);
  if (!f || !f->binding) {
    fail(EINVAL, "mmap of a netmap fd before it is registered");
    return MAP_FAILED;
  }
  Region& r = f->binding->region();
  if (off < 0 || uint64_t(off) > r.memsize() || len > r.memsize() - uint64_t(off)) {
    fail(EINVAL, "mmap beyond the region (" + std::to_string(r.memsize()) + " bytes)");
    return MAP_FAILED;
  }
  void* p = sys::mmap(addr, len, prot, flags, r.fd(), off_t(r.hdr()->pub_off + uint64_t(off)));
  if (p == MAP_FAILED) fail(errno);
  return p;
}

// netmap's poll: sync the rings the fd is bound to and report readiness.
// Only when nothing is ready does it arm the rings' waiters and block in the
// kernel on the fds' FIFOs (together with any non-netmap fds in the set).
// When a netmap fd is ready and the set has no other fds, no system call
// is made at all.
int dev_poll(struct pollfd* fds, nfds_t n, int timeout_ms) {
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
  if (!ready && timeout_ms != 0) {
    // A short bounded spin before sleeping: between two processes that
    // exchange packets at full speed the ring is empty (or full) only for
    // a moment, and a sleep/wake-up pair costs far more than the wait.
    const int64_t spin_end = now_ns() + spin_ns();
    do {
      for (int k = 0; k < 64; k++) __builtin_ia32_pause();
      for (nfds_t i = 0; i < n; i++)
        if (NetmapFile* f = file_of(fds[i].fd)) {
          fds[i].revents = scan_one(f, fds[i].events);
          if (fds[i].revents) ready++;
        }
    } while (!ready && now_ns() < spin_end);
    if (ready && !others) return ready;
  }
  const int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
  pollfd small[16];
  std::vector<pollfd> big;
  pollfd* kfds = small;
  if (n > 16) {
    big.resize(n);
    kfds = big.data();
  }
  bool nm_ready = ready > 0;
  for (;;) {
    int wait = nm_ready ? 0 : (deadline < 0 ? -1 : int(std::max<int64_t>(0, deadline - now_ms())));
    if (!nm_ready && wait != 0) {
      // Arm, then look again: a producer that published before it could
      // see the waiter is caught by this second scan.
      bool leases = false;
      for (nfds_t i = 0; i < n; i++)
        if (NetmapFile* f = file_of(fds[i].fd); f && f->binding) {
          f->binding->arm(fds[i].events, f->token);
          fds[i].revents = scan_one(f, fds[i].events);
          if (fds[i].revents) nm_ready = true;
          leases |= (fds[i].events & POLLIN) && f->binding->rx_leases_pending();
        }
      if (nm_ready) wait = 0;
      // A producer that dies holding a lease wakes nobody: look again soon,
      // the rescan's rxsync reclaims the lease once it is stale.
      if (leases && (wait < 0 || wait > 2)) wait = 2;
    }
    for (nfds_t i = 0; i < n; i++) {
      kfds[i] = fds[i];
      if (file_of(fds[i].fd)) kfds[i].events = POLLIN;
    }
    int r = libc().poll(kfds, n, wait);
    if (r < 0) return r;
    ready = 0;
    for (nfds_t i = 0; i < n; i++) {
      NetmapFile* f = file_of(fds[i].fd);
      if (!f) {
        fds[i].revents = kfds[i].revents;
      } else if (f->binding) {
        f->binding->arm(fds[i].events, 0);
        if (kfds[i].revents & POLLIN) drain(fds[i].fd);
        if (!nm_ready || (kfds[i].revents & POLLIN)) fds[i].revents = scan_one(f, fds[i].events);
      }
      if (fds[i].revents) ready++;
    }
    if (ready || wait == 0) return ready;
    if (deadline >= 0 && now_ms() >= deadline) return 0;
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
  int timeout = tv ? int(tv->tv_sec * 1000 + (tv->tv_usec + 999) / 1000) : -1;
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
  int r = dev_poll(p.data(), p.size(), timeout_ms);
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
      LockGuard g(reg->lock());
      reg->add_chan_holder(f->token, child);
    }
  }
}

}  // namespace unetmap

extern "C" const char* unetmap_last_error(void) { return unetmap::t_last_error.c_str(); }
