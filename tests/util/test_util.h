// Helpers shared by the unetmap tests: processes with bounded waits, one-shot
// events between processes, a raw /dev/netmap port (open/ioctl/mmap, exactly
// what an application does), and the deterministic packets the pipe tests
// send and check byte by byte.
//
// Nothing here sleeps to let something happen: every wait is on a real
// event (a pipe byte, a pidfd, a netmap poll) with a deadline.
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <libnetmap.h>
#include <net/netmap.h>
#include <net/netmap_user.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace nmtest {

inline double now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) / 1e6;
}

// The state letter of process pid in /proc (R running, S sleeping, Z a
// zombie...), '?' if it is gone.
inline char proc_state(pid_t pid) {
  char path[32], line[512];
  snprintf(path, sizeof path, "/proc/%d/stat", int(pid));
  FILE* f = fopen(path, "r");
  if (!f) return '?';
  const size_t n = fread(line, 1, sizeof line - 1, f);
  fclose(f);
  line[n] = 0;
  const char* p = strrchr(line, ')');  // after the command name, which may hold ')'
  return p && p[1] == ' ' && p[2] ? p[2] : '?';
}

// CPU time (user + system) of this process so far, in ms.
inline double cpu_ms(int who = RUSAGE_SELF) {
  rusage ru;
  getrusage(who, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
         double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

// A one-way channel between two processes (create before fork). signal()
// writes one byte; wait() returns it, or -1 on timeout / EOF.
class Event {
 public:
  Event() {
    if (pipe(fd_) != 0) abort();
  }
  ~Event() {
    ::close(fd_[0]);
    ::close(fd_[1]);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void signal(char c = 'x') const {
    ssize_t r = ::write(fd_[1], &c, 1);
    (void)r;
  }
  // Send a whole object (a result record from a child).
  template <class T>
  void send(const T& v) const {
    ssize_t r = ::write(fd_[1], &v, sizeof v);
    (void)r;
  }
  int wait(int timeout_ms) const {
    pollfd p{fd_[0], POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return -1;
    char c;
    return ::read(fd_[0], &c, 1) == 1 ? (unsigned char)c : -1;
  }
  template <class T>
  bool recv(T* v, int timeout_ms) const {
    size_t got = 0;
    const double end = now_ms() + timeout_ms;
    while (got < sizeof *v) {
      int left = int(end - now_ms());
      pollfd p{fd_[0], POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, left) != 1) return false;
      ssize_t r = ::read(fd_[0], reinterpret_cast<char*>(v) + got, sizeof *v - got);
      if (r <= 0) return false;
      got += size_t(r);
    }
    return true;
  }
  int read_fd() const { return fd_[0]; }
  int write_fd() const { return fd_[1]; }

 private:
  int fd_[2];
};

// A child process. The body runs in the child and its return value is the
// exit status (stdout/stderr are flushed, atexit handlers do not run).
class Child {
 public:
  Child() = default;
  explicit Child(const std::function<int()>& body) {
    fflush(nullptr);
    pid_ = fork();
    if (pid_ < 0) abort();
    if (pid_ == 0) {
      int rc = body();
      fflush(nullptr);
      _exit(rc);
    }
  }
  // fork + execv(argv[0], argv).
  static Child exec(const std::vector<std::string>& argv) {
    Child c;
    fflush(nullptr);
    c.pid_ = fork();
    if (c.pid_ < 0) abort();
    if (c.pid_ == 0) {
      std::vector<char*> a;
      for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
      a.push_back(nullptr);
      execv(a[0], a.data());
      fprintf(stderr, "execv %s: %s\n", a[0], strerror(errno));
      _exit(127);
    }
    return c;
  }
  Child(Child&& o) noexcept : pid_(o.pid_), status_(o.status_) { o.pid_ = -1; }
  Child& operator=(Child&& o) noexcept {
    std::swap(pid_, o.pid_);
    std::swap(status_, o.status_);
    return *this;
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }

  // Exit code (0..255), 128+signal if killed, -1 if still running at the
  // deadline (then it is killed).
  int wait(int timeout_ms) {
    if (pid_ <= 0) return status_;
    int pfd = int(syscall(SYS_pidfd_open, pid_, 0));
    if (pfd >= 0) {
      pollfd p{pfd, POLLIN, 0};
      int r = ::poll(&p, 1, timeout_ms);
      ::close(pfd);
      if (r != 1) return kill_now();
    } else {
      const double end = now_ms() + timeout_ms;
      for (;;) {
        int st;
        pid_t r = waitpid(pid_, &st, WNOHANG);
        if (r == pid_) return finish(st);
        if (now_ms() > end) return kill_now();
        timespec ts{0, 1000000};
        nanosleep(&ts, nullptr);
      }
    }
    int st;
    if (waitpid(pid_, &st, 0) != pid_) return -1;
    return finish(st);
  }
  int kill_now(int sig = SIGKILL) {
    if (pid_ <= 0) return status_;  // reaped: kill(-1) would signal every process of the user
    ::kill(pid_, sig);
    int st;
    waitpid(pid_, &st, 0);
    finish(st);
    return sig == SIGKILL ? -1 : status_;
  }

 private:
  int finish(int st) {
    pid_ = -1;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
    return status_;
  }
  pid_t pid_ = -1;
  int status_ = -1;
};

// An nmctx that records every error message (install with d->ctx = &ctx or
// nmctx_set_default(&ctx)).
struct CaptureCtx {
  nmctx ctx;
  std::string last;
  std::vector<std::string> all;
  CaptureCtx() {
    memset(&ctx, 0, sizeof ctx);
    ctx.error = [](nmctx* c, const char* msg) {
      auto* self = reinterpret_cast<CaptureCtx*>(c);
      self->last = msg;
      self->all.push_back(msg);
    };
    ctx.malloc = [](nmctx*, size_t n) { return calloc(1, n); };
    ctx.free = [](nmctx*, void* p) { free(p); };
    ctx.lock = [](nmctx*, int) {};
  }
};
static_assert(offsetof(CaptureCtx, ctx) == 0);

// A port opened the way a plain netmap application does it.
struct RawPort {
  int fd = -1;
  void* mem = nullptr;
  nmreq_register reg{};
  netmap_if* nifp = nullptr;
  int err = 0;  // errno of a failed open()

  RawPort() = default;
  // name is the kernel-level name ("p{0", "null:x"), as in nmreq_header.
  explicit RawPort(const char* name, uint32_t mode = NR_REG_ALL_NIC, uint16_t ringid = 0,
                   uint64_t flags = 0, uint32_t slots = 0, uint16_t rings = 0) {
    open(name, mode, ringid, flags, slots, rings);
  }
  RawPort(const RawPort&) = delete;
  RawPort& operator=(const RawPort&) = delete;
  ~RawPort() { close(); }

  bool open(const char* name, uint32_t mode = NR_REG_ALL_NIC, uint16_t ringid = 0,
            uint64_t flags = 0, uint32_t slots = 0, uint16_t rings = 0) {
    fd = ::open("/dev/netmap", O_RDWR);
    if (fd < 0) return fail();
    nmreq_header h;
    memset(&h, 0, sizeof h);
    h.nr_version = NETMAP_API;
    h.nr_reqtype = NETMAP_REQ_REGISTER;
    snprintf(h.nr_name, sizeof h.nr_name, "%s", name);
    memset(&reg, 0, sizeof reg);
    reg.nr_mode = mode;
    reg.nr_ringid = ringid;
    reg.nr_flags = flags;
    reg.nr_tx_slots = reg.nr_rx_slots = slots;
    reg.nr_tx_rings = reg.nr_rx_rings = rings;
    h.nr_body = uintptr_t(&reg);
    if (ioctl(fd, NIOCCTRL, &h) < 0) return fail();
    mem = mmap(nullptr, reg.nr_memsize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED) {
      mem = nullptr;
      return fail();
    }
    nifp = NETMAP_IF(mem, reg.nr_offset);
    return true;
  }
  void close() {
    if (mem) munmap(mem, reg.nr_memsize);
    mem = nullptr;
    nifp = nullptr;
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  bool ok() const { return nifp != nullptr; }
  netmap_ring* tx(unsigned i = 0) const { return NETMAP_TXRING(nifp, i); }
  netmap_ring* rx(unsigned i = 0) const { return NETMAP_RXRING(nifp, i); }
  int txsync() const { return ioctl(fd, NIOCTXSYNC, nullptr); }
  int rxsync() const { return ioctl(fd, NIOCRXSYNC, nullptr); }
  int poll(short events, int timeout_ms, short* revents = nullptr) const {
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (revents) *revents = p.revents;
    return r;
  }

 private:
  bool fail() {
    err = errno;
    close();
    errno = err;
    return false;
  }
};

// Issue one NIOCCTRL request on fd; returns 0 or the errno.
inline int ctrl(int fd, uint16_t reqtype, const char* name, void* body,
                uint64_t options = 0, uint16_t version = NETMAP_API) {
  nmreq_header h;
  memset(&h, 0, sizeof h);
  h.nr_version = version;
  h.nr_reqtype = reqtype;
  snprintf(h.nr_name, sizeof h.nr_name, "%s", name);
  h.nr_body = uintptr_t(body);
  h.nr_options = options;
  return ioctl(fd, NIOCCTRL, &h) < 0 ? errno : 0;
}

// ---------------------------------------------------------------------------
// Deterministic packets. Each packet starts with a 16-byte header
//   u32 seq | u32 len | u32 buf_idx (of its first slot, written by the
//   sender) | u32 ring
// followed by bytes derived from (seed, seq). Lengths are drawn from
// [min, max]; every `big_every`-th packet is drawn from [big_min, big_max]
// (larger than a buffer: it spans several slots with NS_MOREFRAG).

struct PktSpec {
  uint32_t seed = 1;
  uint32_t min = 60, max = 2048;
  uint32_t big_every = 0, big_min = 2049, big_max = 6000;
};

struct PktHdr {
  uint32_t seq, len, buf_idx, ring;
};

inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

inline uint32_t pkt_len(const PktSpec& s, uint32_t seq) {
  uint64_t r = mix64((uint64_t(s.seed) << 32) ^ seq ^ 0x5a5a0000ull);
  if (s.big_every && seq % s.big_every == s.big_every - 1)
    return s.big_min + uint32_t(r % (s.big_max - s.big_min + 1));
  return s.min + uint32_t(r % (s.max - s.min + 1));
}

// The packet body (without header) for (seed, seq): `len - 16` bytes.
inline void pkt_body(const PktSpec& s, uint32_t seq, uint8_t* out, uint32_t n) {
  uint64_t st = mix64((uint64_t(s.seed) << 32) | seq);
  for (uint32_t i = 0; i < n; i += 8) {
    st = mix64(st);
    uint32_t k = n - i < 8 ? n - i : 8;
    memcpy(out + i, &st, k);
  }
}

inline std::vector<uint8_t> make_pkt(const PktSpec& s, uint32_t seq, uint32_t ring,
                                     uint32_t buf_idx) {
  uint32_t len = pkt_len(s, seq);
  std::vector<uint8_t> p(len);
  PktHdr h{seq, len, buf_idx, ring};
  memcpy(p.data(), &h, sizeof h);
  pkt_body(s, seq, p.data() + sizeof h, len - uint32_t(sizeof h));
  return p;
}

// Slots needed for a packet of len bytes.
inline uint32_t slots_for(uint32_t len, uint32_t buf_size) {
  return len == 0 ? 1 : (len + buf_size - 1) / buf_size;
}

// Write packet `seq` at ring->cur (caller checked the space), advance
// head/cur past it. Returns the first slot's buffer index.
inline uint32_t put_pkt(netmap_ring* ring, const PktSpec& s, uint32_t seq, uint32_t ring_id) {
  const uint32_t bsz = ring->nr_buf_size;
  uint32_t i = ring->cur;
  uint32_t first_idx = ring->slot[i].buf_idx;
  std::vector<uint8_t> p = make_pkt(s, seq, ring_id, first_idx);
  size_t off = 0;
  for (;;) {
    netmap_slot* sl = &ring->slot[i];
    size_t chunk = p.size() - off > bsz ? bsz : p.size() - off;
    memcpy(NETMAP_BUF(ring, sl->buf_idx), p.data() + off, chunk);
    sl->len = uint16_t(chunk);
    off += chunk;
    sl->flags = off < p.size() ? NS_MOREFRAG : 0;
    i = nm_ring_next(ring, i);
    if (off >= p.size()) break;
  }
  ring->head = ring->cur = i;
  return first_idx;
}

// Gather the packet at ring->cur. Returns false if it is not complete yet
// (its last fragment is beyond tail). *nslots = slots it takes.
inline bool peek_pkt(netmap_ring* ring, std::vector<uint8_t>* out, uint32_t* nslots,
                     bool* all_buf_changed, uint32_t* first_idx) {
  out->clear();
  uint32_t i = ring->cur, n = 0;
  bool changed = true;
  *first_idx = ring->slot[i].buf_idx;
  for (;;) {
    if (i == ring->tail) return false;
    netmap_slot* sl = &ring->slot[i];
    const uint8_t* b = reinterpret_cast<const uint8_t*>(NETMAP_BUF(ring, sl->buf_idx));
    out->insert(out->end(), b, b + sl->len);
    changed = changed && (sl->flags & NS_BUF_CHANGED);
    n++;
    i = nm_ring_next(ring, i);
    if (!(sl->flags & NS_MOREFRAG)) break;
    if (n > NETMAP_RING_MASK) return false;
  }
  *nslots = n;
  *all_buf_changed = changed;
  return true;
}

// Check a received packet against what (seed, seq, ring) must contain.
// Empty string if good, else what is wrong.
inline std::string check_pkt(const PktSpec& s, const std::vector<uint8_t>& got,
                             uint32_t want_seq, uint32_t want_ring) {
  char why[256];
  if (got.size() < sizeof(PktHdr)) {
    snprintf(why, sizeof why, "packet of %zu bytes, shorter than its header", got.size());
    return why;
  }
  PktHdr h;
  memcpy(&h, got.data(), sizeof h);
  if (h.seq != want_seq || h.ring != want_ring) {
    snprintf(why, sizeof why, "got seq %u ring %u, want seq %u ring %u", h.seq, h.ring,
             want_seq, want_ring);
    return why;
  }
  std::vector<uint8_t> want = make_pkt(s, want_seq, want_ring, h.buf_idx);
  if (got.size() != want.size()) {
    snprintf(why, sizeof why, "seq %u: length %zu, want %zu", want_seq, got.size(), want.size());
    return why;
  }
  for (size_t k = 0; k < want.size(); k++)
    if (got[k] != want[k]) {
      snprintf(why, sizeof why, "seq %u: byte %zu is 0x%02x, want 0x%02x", want_seq, k, got[k],
               want[k]);
      return why;
    }
  return {};
}

}  // namespace nmtest
