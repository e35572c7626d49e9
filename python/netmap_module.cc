// The Python module `netmap` (pybind11): netmap's extra/python classes
// (NetmapDesc, NetmapInterface, NetmapRing, NetmapSlot) over libnetmap's
// nmport_* API, a batch API that moves many frames per call (send,
// recv_into, recv), and unetmap's control and statistics C API
// (unetmap/unetmap.h). Only the public headers (include/) are used.
//
// Interposition. libnetmap serves netmap fds through its own ioctl, poll
// and select, which a program linked with -lnetmap (or run with
// LD_PRELOAD=libnetmap.so) calls instead of libc's. Python loads this
// module, and libnetmap with it, long after libc: calls made by this
// module or by Python's select module would reach libc's. So the module
// takes libnetmap's entry points from the library itself (dlsym on its
// handle), and offers netmap.poll() and netmap.select() built on them,
// installed as select.poll and select.select when libnetmap does not
// already interpose (see install_select in the module's docstring).
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include <libnetmap.h>
#include <net/netmap.h>
#include <net/netmap_user.h>
#include <unetmap/unetmap.h>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

// ------------------------------------------------------------ libnetmap entry points

using ioctl_fn = int (*)(int, unsigned long, ...);
using poll_fn = int (*)(struct pollfd*, nfds_t, int);

struct Entry {
  ioctl_fn ioctl = nullptr;
  poll_fn poll = nullptr;
  bool interposed = false;  // libnetmap's poll is what the process calls already
};

Entry g_entry;

void resolve_entry_points() {
  Dl_info info{};
  if (!dladdr(reinterpret_cast<void*>(&nmport_open), &info) || !info.dli_fname)
    throw std::runtime_error("netmap: cannot find libnetmap (dladdr failed)");
  void* h = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD);
  if (!h) throw std::runtime_error(std::string("netmap: cannot reopen ") + info.dli_fname + ": " + dlerror());
  g_entry.ioctl = reinterpret_cast<ioctl_fn>(dlsym(h, "ioctl"));
  g_entry.poll = reinterpret_cast<poll_fn>(dlsym(h, "poll"));
  if (!g_entry.ioctl || !g_entry.poll)
    throw std::runtime_error(std::string("netmap: ") + info.dli_fname + " has no ioctl/poll entry points");
  g_entry.interposed = reinterpret_cast<void*>(dlsym(RTLD_DEFAULT, "poll")) == reinterpret_cast<void*>(g_entry.poll);
  // dlclose would only drop the reference dlopen(RTLD_NOLOAD) took; the
  // library stays loaded as this module's dependency either way.
}

// ------------------------------------------------------------------ errors

PyObject* g_error = nullptr;  // netmap.NetmapError (an OSError)

thread_local std::string t_ctx_msg;  // what libnetmap's context reported last

[[noreturn]] void raise_errno(int err, const std::string& msg) {
  py::object e = py::reinterpret_steal<py::object>(PyObject_CallFunction(g_error, "is", err, msg.c_str()));
  if (!e) throw py::error_already_set();
  PyErr_SetObject(g_error, e.ptr());
  throw py::error_already_set();
}

// After a failed unetmap_* call: errno and the library's words.
[[noreturn]] void raise_last(const std::string& what) {
  const int err = errno ? errno : EIO;
  const char* why = unetmap_last_error();
  std::string msg = what;
  msg += ": ";
  msg += (why && *why) ? why : strerror(err);
  raise_errno(err, msg);
}

void ctx_error(struct nmctx*, const char* msg) { t_ctx_msg = msg ? msg : ""; }
void* ctx_malloc(struct nmctx*, size_t sz) { return calloc(1, sz); }
void ctx_free(struct nmctx*, void* p) { free(p); }
void ctx_lock(struct nmctx*, int) {}  // every call into it holds the GIL

// The module's libnetmap context: errors are kept for the exception, not
// printed; ports of one memory region share one mapping.
struct nmctx g_ctx = {0, ctx_error, ctx_malloc, ctx_free, ctx_lock, nullptr};

// What is left of a timeout of timeout_ms started at t0 (CLOCK_MONOTONIC):
// timeout_ms itself if it is 0 or negative (no wait, no limit), else the
// milliseconds to go, 0 once it is over.
int ms_left(const struct timespec& t0, int timeout_ms) {
  if (timeout_ms <= 0) return timeout_ms;
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  const long long el = (t.tv_sec - t0.tv_sec) * 1000LL + (t.tv_nsec - t0.tv_nsec) / 1000000;
  return el >= timeout_ms ? 0 : int(timeout_ms - el);
}

// poll() through libnetmap for up to timeout_ms (negative: no limit), the
// GIL released. After a signal, Python's handlers run (they may raise), then
// again() (it may raise), and the wait goes on for what is left of the
// timeout. The count of ready fds, or -1 with errno set (never EINTR).
int poll_retrying(pollfd* fds, size_t n, int timeout_ms, const std::function<void()>& again) {
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    const int left = ms_left(t0, timeout_ms);
    int r, err = 0;
    {
      py::gil_scoped_release nogil;
      r = g_entry.poll(fds, n, left);
      if (r < 0) err = errno;
    }
    if (r >= 0) return r;
    if (err != EINTR) {
      errno = err;
      return -1;
    }
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    again();
  }
}

// ------------------------------------------------------------------ the port

// An open port and its mapping. The mapping lives as long as any Python
// object that can reach it (rings, slots, memoryviews of buffers): close()
// closes the fd at once, the memory goes with the last of them.
struct Port {
  nmport_d* d = nullptr;
  std::string spec;
  bool open = false;

  ~Port() {
    if (d) nmport_close(d);
  }
  void check() const {
    if (!open) throw py::value_error("I/O operation on a closed NetmapDesc");
  }
  void close() {
    if (!open) return;
    open = false;
    nmport_unregister(d);  // the fd; the mapping stays until ~Port
  }
  netmap_if* nifp() const { return d->nifp; }
  uint32_t ntx() const { return nifp()->ni_tx_rings + nifp()->ni_host_tx_rings; }
  uint32_t nrx() const { return nifp()->ni_rx_rings + nifp()->ni_host_rx_rings; }
  netmap_ring* ring_at(uint32_t ofs_index) const {
    const ssize_t ofs = nifp()->ring_ofs[ofs_index];
    return ofs ? _NETMAP_OFFSET(netmap_ring*, nifp(), ofs) : nullptr;
  }
  netmap_ring* txring(uint32_t i) const { return ring_at(i); }
  netmap_ring* rxring(uint32_t i) const { return ring_at(i + ntx()); }

  // ioctl and poll without the GIL.
  void sync(bool tx) {
    check();
    int r, err = 0;
    const int fd = d->fd;
    {
      py::gil_scoped_release nogil;
      r = g_entry.ioctl(fd, tx ? NIOCTXSYNC : NIOCRXSYNC, nullptr);
      if (r < 0) err = errno;
    }
    if (r < 0) {
      errno = err;
      raise_last(tx ? "txsync" : "rxsync");
    }
  }
  // Waits up to timeout_ms (negative: forever) for events; revents or 0.
  // Signals: Python's handlers run (and may raise); then it waits again
  // for what is left of the timeout.
  int wait(short events, int timeout_ms) {
    check();
    struct pollfd p = {d->fd, events, 0};
    const int r = poll_retrying(&p, 1, timeout_ms, [this] { check(); });
    if (r < 0) raise_last("poll");
    return r > 0 ? p.revents : 0;
  }
};

using PortPtr = std::shared_ptr<Port>;

// ------------------------------------------------------------ buffers

// The exporter behind a slot's memoryview: a buffer of the region, kept
// mapped while the memoryview lives.
struct Buffer {
  PortPtr port;
  char* ptr;
  size_t len;
};

py::memoryview buffer_view(const PortPtr& port, char* ptr, size_t len) {
  return py::memoryview(py::buffer(py::cast(Buffer{port, ptr, len})));
}

// ------------------------------------------------------------ interface, ring, slot

struct Interface {
  PortPtr port;
  netmap_if* nifp() const { return port->nifp(); }
};

struct Slot {
  PortPtr port;
  netmap_ring* ring;
  netmap_slot* slot;
};

struct Ring {
  PortPtr port;
  netmap_ring* ring;
  py::list slots_cache;
  bool built = false;

  Ring(PortPtr p, netmap_ring* r) : port(std::move(p)), ring(r) {}

  py::list slots() {
    if (!built) {
      for (uint32_t i = 0; i < ring->num_slots; i++) slots_cache.append(py::cast(Slot{port, ring, &ring->slot[i]}));
      built = true;
    }
    return slots_cache;
  }
};

std::string slot_flags_str(unsigned f) {
  static const std::pair<unsigned, const char*> names[] = {
      {NS_BUF_CHANGED, "NsBufChanged"}, {NS_REPORT, "NsReport"},   {NS_FORWARD, "NsForward"},
      {NS_NO_LEARN, "NsNoLearn"},       {NS_INDIRECT, "NsIndirect"}, {NS_MOREFRAG, "NsMorefrag"}};
  std::string s;
  for (auto& [v, n] : names)
    if (f & v) s += std::string(s.empty() ? "" : "|") + n;
  return s;
}

// ------------------------------------------------------------ batch API

// Where the frames to send come from.
struct Source {
  virtual ~Source() = default;
  virtual size_t size() const = 0;
  virtual void get(size_t i, const char** p, size_t* len) const = 0;
};

// A list or tuple of bytes-like objects (bytes, bytearray, memoryview,
// numpy rows, ...): their buffers are taken once, before sending.
struct ListSource : Source {
  py::object keep;  // a tuple of the frames: they live while we copy without the GIL
  std::vector<Py_buffer> views;
  std::vector<std::pair<const char*, size_t>> frames;
  ~ListSource() override {
    for (auto& v : views) PyBuffer_Release(&v);
  }
  size_t size() const override { return frames.size(); }
  void get(size_t i, const char** p, size_t* len) const override {
    *p = frames[i].first;
    *len = frames[i].second;
  }
  void add(PyObject* o) {
    if (PyBytes_Check(o)) {
      frames.emplace_back(PyBytes_AS_STRING(o), size_t(PyBytes_GET_SIZE(o)));
      return;
    }
    Py_buffer v;
    if (PyObject_GetBuffer(o, &v, PyBUF_C_CONTIGUOUS) != 0) {
      PyErr_Clear();
      throw py::type_error(std::string("send: frame ") + std::to_string(frames.size()) +
                           " is not a bytes-like object (got " + Py_TYPE(o)->tp_name + ")");
    }
    views.push_back(v);
    frames.emplace_back(static_cast<const char*>(v.buf), size_t(v.len));
  }
};

// One C-contiguous buffer: rows of a 2-D array (each a frame of the row's
// length, or lengths[i]), or a 1-D buffer of frames back to back whose
// lengths say where each ends.
struct BufferSource : Source {
  Py_buffer view{};
  bool have = false;
  std::vector<size_t> offs, lens;
  ~BufferSource() override {
    if (have) PyBuffer_Release(&view);
  }
  size_t size() const override { return lens.size(); }
  void get(size_t i, const char** p, size_t* len) const override {
    *p = static_cast<const char*>(view.buf) + offs[i];
    *len = lens[i];
  }
};

// Reads a 1-D sequence of integers (a list, array.array, numpy array) into v.
std::vector<size_t> read_lengths(py::handle lengths, const char* what) {
  std::vector<size_t> v;
  for (py::handle x : lengths) {
    long long n = PyLong_AsLongLong(x.ptr());
    if (n == -1 && PyErr_Occurred()) {
      // numpy integers are not PyLong but have __index__
      PyErr_Clear();
      PyObject* idx = PyNumber_Index(x.ptr());
      if (!idx) throw py::error_already_set();
      n = PyLong_AsLongLong(idx);
      Py_DECREF(idx);
      if (n == -1 && PyErr_Occurred()) throw py::error_already_set();
    }
    if (n < 0) throw py::value_error(std::string(what) + ": a negative length");
    v.push_back(size_t(n));
  }
  return v;
}

std::unique_ptr<Source> make_source(py::handle frames, py::object lengths) {
  PyObject* o = frames.ptr();
  if (PyList_Check(o) || PyTuple_Check(o)) {
    if (!lengths.is_none()) throw py::type_error("send: lengths is for frames given as one buffer, not a list");
    auto s = std::make_unique<ListSource>();
    s->keep = py::reinterpret_steal<py::object>(PySequence_Tuple(o));
    if (!s->keep) throw py::error_already_set();
    const size_t n = size_t(PyTuple_GET_SIZE(s->keep.ptr()));
    s->frames.reserve(n);
    for (size_t i = 0; i < n; i++) s->add(PyTuple_GET_ITEM(s->keep.ptr(), Py_ssize_t(i)));
    return s;
  }
  if (!PyObject_CheckBuffer(o))
    throw py::type_error("send: frames must be a list or tuple of bytes-like objects, or a buffer "
                         "(a 2-D uint8 array of rows, or 1-D bytes with lengths)");
  auto s = std::make_unique<BufferSource>();
  if (PyObject_GetBuffer(o, &s->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0) throw py::error_already_set();
  s->have = true;
  Py_buffer& v = s->view;
  if (v.itemsize != 1) throw py::type_error("send: a buffer of frames must have 1-byte items (uint8)");
  if (v.ndim == 2) {
    const size_t rows = size_t(v.shape[0]), width = size_t(v.shape[1]);
    std::vector<size_t> l;
    if (!lengths.is_none()) {
      l = read_lengths(lengths, "send");
      if (l.size() != rows) throw py::value_error("send: lengths must have one entry per row");
    }
    for (size_t i = 0; i < rows; i++) {
      const size_t n = l.empty() ? width : l[i];
      if (n > width) throw py::value_error("send: lengths[" + std::to_string(i) + "] is longer than a row");
      s->offs.push_back(i * width);
      s->lens.push_back(n);
    }
  } else if (v.ndim <= 1) {
    if (lengths.is_none()) {
      s->offs.push_back(0);  // one frame: the whole buffer
      s->lens.push_back(size_t(v.len));
    } else {
      size_t off = 0;
      for (size_t n : read_lengths(lengths, "send")) {
        s->offs.push_back(off);
        s->lens.push_back(n);
        off += n;
      }
      if (off > size_t(v.len)) throw py::value_error("send: the lengths add up to more than the buffer");
    }
  } else {
    throw py::type_error("send: a buffer of frames must have 1 or 2 dimensions");
  }
  return s;
}

// Where received frames go.
struct Sink {
  virtual ~Sink() = default;
  virtual size_t room() const = 0;  // frames it can still take
  // A frame in parts (a chain of slots); total is its length.
  virtual void put(const std::vector<std::pair<const char*, size_t>>& parts, size_t total) = 0;
};

struct IntoSink : Sink {
  char* base;
  size_t stride, cap, n = 0;
  char* lens;
  size_t lsize;  // bytes per length
  size_t room() const override { return cap - n; }
  void put(const std::vector<std::pair<const char*, size_t>>& parts, size_t total) override {
    char* dst = base + n * stride;
    size_t left = stride;
    for (auto& [p, l] : parts) {
      const size_t c = std::min(l, left);
      memcpy(dst, p, c);
      dst += c, left -= c;
      if (!left) break;
    }
    char* lp = lens + n * lsize;
    switch (lsize) {
      case 2: { uint16_t x = uint16_t(total); memcpy(lp, &x, 2); break; }
      case 4: { uint32_t x = uint32_t(total); memcpy(lp, &x, 4); break; }
      default: { uint64_t x = total; memcpy(lp, &x, 8); break; }
    }
    n++;
  }
};

struct ListSink : Sink {
  size_t cap;
  std::vector<std::string> frames;
  size_t room() const override { return cap - frames.size(); }
  void put(const std::vector<std::pair<const char*, size_t>>& parts, size_t total) override {
    std::string f;
    f.reserve(total);
    for (auto& [p, l] : parts) f.append(p, l);
    frames.push_back(std::move(f));
  }
};

struct Desc {
  PortPtr port;
  py::object interface_, tx_rings, rx_rings;

  explicit Desc(const std::string& ifname, unsigned long flags) {
    if (flags != 0)
      throw py::value_error("NetmapDesc: flags (nm_open's NM_OPEN_*) are not supported; give "
                            "everything in the port name");
    port = std::make_shared<Port>();
    port->spec = ifname;
    nmport_d* d = nmport_new();
    if (!d) throw std::bad_alloc();
    d->ctx = &g_ctx;
    t_ctx_msg.clear();
    errno = 0;
    if (nmport_parse(d, ifname.c_str()) < 0) {
      const int err = errno ? errno : EINVAL;
      std::string why = t_ctx_msg;
      nmport_undo_parse(d);
      nmport_delete(d);
      raise_errno(err, why.empty() ? ifname + ": " + strerror(err) : why);
    }
    int r, err = 0;
    {
      py::gil_scoped_release nogil;  // registering may wait for a region or a peer
      r = nmport_open_desc(d);
      if (r < 0) err = errno ? errno : EIO;
    }
    if (r < 0) {
      std::string why = t_ctx_msg;
      nmport_undo_prepare(d);
      raise_errno(err, why.empty() ? ifname + ": " + strerror(err) : why);
    }
    port->d = d;
    port->open = true;
    interface_ = py::cast(Interface{port});
    py::list tx, rx;
    for (uint32_t i = 0; i < port->ntx(); i++) {
      netmap_ring* r = port->txring(i);
      tx.append(r ? py::cast(Ring(port, r)) : py::none());
    }
    for (uint32_t i = 0; i < port->nrx(); i++) {
      netmap_ring* r = port->rxring(i);
      rx.append(r ? py::cast(Ring(port, r)) : py::none());
    }
    tx_rings = tx;
    rx_rings = rx;
  }

  // Puts frames on the tx rings the port has bound, starting with
  // cur_tx_ring, txsyncs, and with a timeout waits for room for the rest.
  size_t send(const Source& src, int timeout_ms) {
    port->check();
    nmport_d* d = port->d;
    const size_t n = src.size();
    if (d->first_tx_ring > d->last_tx_ring || (d->reg.nr_flags & NR_RX_RINGS_ONLY))
      throw py::value_error("send: this descriptor has no tx rings");
    // Check every frame first: all or none are refused.
    for (size_t i = 0; i < n; i++) {
      const char* p;
      size_t len;
      src.get(i, &p, &len);
      if (len == 0) throw py::value_error("send: frame " + std::to_string(i) + " is empty");
      if (len > 65535) throw py::value_error("send: frame " + std::to_string(i) + " is longer than 65535 bytes");
      netmap_ring* r = NETMAP_TXRING(d->nifp, d->first_tx_ring);
      if ((len + r->nr_buf_size - 1) / r->nr_buf_size >= r->num_slots)
        throw py::value_error("send: frame " + std::to_string(i) + " needs more slots than a ring has");
    }
    size_t sent = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool reclaimed = false;  // a txsync since the rings were last found full
    for (;;) {
      const size_t before = sent;
      {
        py::gil_scoped_release nogil;
        fill(src, &sent);
      }
      if (sent > before) {
        port->sync(true);  // publishes them, reclaims what went out
        reclaimed = false;
        if (sent == n) break;
        continue;
      }
      if (sent == n) break;
      if (!reclaimed) {  // full: a txsync may find room the port freed meanwhile
        port->sync(true);
        reclaimed = true;
        continue;
      }
      if (timeout_ms == 0) break;
      const int left = ms_left(t0, timeout_ms);
      if (timeout_ms > 0 && left == 0) break;
      if (!port->wait(POLLOUT, left)) break;
      reclaimed = false;
    }
    return sent;
  }

  void fill(const Source& src, size_t* sentp) {
    nmport_d* d = port->d;
    const size_t n = src.size();
    size_t sent = *sentp;
    const unsigned first = d->first_tx_ring, last = d->last_tx_ring;
    const unsigned nr = last - first + 1;
    unsigned cur = d->cur_tx_ring;
    if (cur < first || cur > last) cur = first;
    for (unsigned k = 0; k < nr && sent < n; k++) {
      const unsigned ri = first + (cur - first + k) % nr;
      netmap_ring* ring = NETMAP_TXRING(d->nifp, ri);
      uint32_t space = nm_ring_space(ring);
      uint32_t h = ring->cur;
      const size_t bsz = ring->nr_buf_size;
      while (sent < n) {
        const char* p;
        size_t len;
        src.get(sent, &p, &len);
        netmap_slot* s0 = &ring->slot[h];
        const size_t room0 = bsz - size_t(NETMAP_ROFFSET(ring, s0));
        const size_t need = len <= room0 ? 1 : 1 + (len - room0 + bsz - 1) / bsz;
        if (need > space) break;
        size_t off = 0;
        for (size_t j = 0; j < need; j++) {
          netmap_slot* s = &ring->slot[h];
          char* dst = NETMAP_BUF_OFFSET(ring, s);
          const size_t room = j == 0 ? room0 : bsz - size_t(NETMAP_ROFFSET(ring, s));
          const size_t c = std::min(room, len - off);
          memcpy(dst, p + off, c);
          s->len = uint16_t(c);
          s->flags = uint16_t((s->flags & ~NS_MOREFRAG) | (off + c < len ? NS_MOREFRAG : 0));
          off += c;
          h = nm_ring_next(ring, h);
        }
        space -= uint32_t(need);
        sent++;
      }
      ring->head = ring->cur = h;
      if (sent < n) cur = ri + 1 > last ? first : ri + 1;
      else d->cur_tx_ring = uint16_t(ri);
    }
    if (sent < n) d->cur_tx_ring = uint16_t(cur);
    *sentp = sent;
  }

  // Takes whole frames off the rx rings into sink; false when a ring holds
  // only part of a frame (the rest comes with a later sync).
  void drain(Sink& sink) {
    nmport_d* d = port->d;
    const unsigned first = d->first_rx_ring, last = d->last_rx_ring;
    const unsigned nr = last - first + 1;
    unsigned cur = d->cur_rx_ring;
    if (cur < first || cur > last) cur = first;
    std::vector<std::pair<const char*, size_t>> parts;
    for (unsigned k = 0; k < nr && sink.room(); k++) {
      const unsigned ri = first + (cur - first + k) % nr;
      netmap_ring* ring = NETMAP_RXRING(d->nifp, ri);
      uint32_t h = ring->cur;
      const uint32_t tail = ring->tail;
      while (h != tail && sink.room()) {
        parts.clear();
        size_t total = 0;
        uint32_t j = h;
        bool whole = false;
        while (j != tail) {
          netmap_slot* s = &ring->slot[j];
          parts.emplace_back(NETMAP_BUF_OFFSET(ring, s), size_t(s->len));
          total += s->len;
          j = nm_ring_next(ring, j);
          if (!(s->flags & NS_MOREFRAG)) {
            whole = true;
            break;
          }
        }
        if (!whole) break;
        sink.put(parts, total);
        h = j;
      }
      ring->head = ring->cur = h;
      d->cur_rx_ring = uint16_t(ri);
    }
  }

  // Does a bound rx ring show frames past cur?
  bool rx_pending() const {
    nmport_d* d = port->d;
    for (unsigned i = d->first_rx_ring; i <= d->last_rx_ring; i++)
      if (!nm_ring_empty(NETMAP_RXRING(d->nifp, i))) return true;
    return false;
  }

  // Frames into sink: what the rings hold, then rxsyncs for more while the
  // sink has room and frames come; with a timeout, waits for the first one.
  // It ends with an rxsync after the last frame it took, so the slots go
  // back to the producer at once (a sender in the same thread may go on).
  size_t receive(Sink& sink, int timeout_ms) {
    port->check();
    if (port->d->first_rx_ring > port->d->last_rx_ring || (port->d->reg.nr_flags & NR_TX_RINGS_ONLY))
      throw py::value_error("receive: this descriptor has no rx rings");
    const size_t cap = sink.room();
    if (!cap) return 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
      {
        py::gil_scoped_release nogil;
        drain(sink);
      }
      port->sync(false);  // releases what drain took, shows what came since
      if (!sink.room()) break;
      if (rx_pending()) continue;
      if (sink.room() < cap || timeout_ms == 0) break;
      const int left = ms_left(t0, timeout_ms);
      if (timeout_ms > 0 && left == 0) break;
      if (!port->wait(POLLIN, left)) break;
    }
    return cap - sink.room();
  }

  size_t recv_into(py::buffer buf, py::buffer lengths, py::object stride_o, int timeout_ms) {
    port->check();
    Py_buffer b, l;
    if (PyObject_GetBuffer(buf.ptr(), &b, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0)
      throw py::error_already_set();
    struct Rel {
      Py_buffer* v;
      ~Rel() { if (v) PyBuffer_Release(v); }
    } rb{&b}, rl{nullptr};
    if (PyObject_GetBuffer(lengths.ptr(), &l, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0)
      throw py::error_already_set();
    rl.v = &l;
    size_t stride;
    if (b.ndim == 2) {
      if (b.itemsize != 1) throw py::type_error("recv_into: buffer must have 1-byte items (uint8)");
      stride = size_t(b.shape[1]);
      if (!stride_o.is_none() && stride_o.cast<size_t>() != stride)
        throw py::value_error("recv_into: stride differs from the buffer's row length");
    } else {
      stride = stride_o.is_none() ? 2048 : stride_o.cast<size_t>();
    }
    if (stride == 0) throw py::value_error("recv_into: stride must be positive");
    const char* f = l.format ? l.format : "B";
    if (*f == '@' || *f == '=' || *f == '<') f++;
    if (l.ndim > 1 || !strchr("HIiLlQq", *f) || f[1] || (l.itemsize != 2 && l.itemsize != 4 && l.itemsize != 8))
      throw py::type_error("recv_into: lengths must be a 1-D buffer of integers of 2, 4 or 8 bytes "
                           "(array('I'), numpy uint16/uint32/int64, ...)");
    IntoSink sink;
    sink.base = static_cast<char*>(b.buf);
    sink.stride = stride;
    sink.lens = static_cast<char*>(l.buf);
    sink.lsize = size_t(l.itemsize);
    sink.cap = std::min(size_t(b.len) / stride, size_t(l.len / l.itemsize));
    return receive(sink, timeout_ms);
  }

  py::list recv(size_t max, int timeout_ms) {
    ListSink sink;
    sink.cap = max;
    receive(sink, timeout_ms);
    py::list out;
    for (auto& s : sink.frames) out.append(py::bytes(s));
    return out;
  }

  py::dict counters() {
    port->check();
    py::dict out;
    for (int rx = 0; rx < 2; rx++) {
      unetmap_ring_counters c{};
      if (unetmap_fd_counters(port->d->fd, rx, &c) < 0) raise_last("counters");
      py::dict e;
      e["packets"] = c.packets;
      e["bytes"] = c.bytes;
      e["drops"] = c.drops;
      out[rx ? "rx" : "tx"] = e;
    }
    return out;
  }
};

// ------------------------------------------------------------ poll and select

// netmap.poll(): select.poll's interface over libnetmap's poll, which serves
// netmap fds and passes the others to the kernel.
int fileno_of(py::handle o) {
  const int fd = PyObject_AsFileDescriptor(o.ptr());
  if (fd < 0) throw py::error_already_set();
  return fd;
}

// Milliseconds from a timeout in `unit`s (None or negative: forever),
// rounded up so a short wait is not a busy one.
int timeout_ms(py::object t, double unit_ms) {
  if (t.is_none()) return -1;
  const double v = t.cast<double>() * unit_ms;
  if (v < 0) return -1;
  const double c = std::ceil(v);
  return c > 2147483647.0 ? 2147483647 : int(c);
}

// Calls libnetmap's poll on fds with the timeout, retrying after signals
// (Python's handlers run first and may raise).
int do_poll(std::vector<pollfd>& fds, int timeout) {
  const int r = poll_retrying(fds.data(), fds.size(), timeout, [] {});
  if (r < 0) {
    PyErr_SetFromErrno(PyExc_OSError);
    throw py::error_already_set();
  }
  return r;
}

struct Poll {
  std::vector<std::pair<int, short>> fds;  // in registration order

  void reg(py::handle o, short mask) {
    const int fd = fileno_of(o);
    for (auto& e : fds)
      if (e.first == fd) {
        e.second = mask;
        return;
      }
    fds.emplace_back(fd, mask);
  }
  void modify(py::handle o, short mask) {
    const int fd = fileno_of(o);
    for (auto& e : fds)
      if (e.first == fd) {
        e.second = mask;
        return;
      }
    errno = ENOENT;
    PyErr_SetFromErrno(PyExc_OSError);
    throw py::error_already_set();
  }
  void unreg(py::handle o) {
    const int fd = fileno_of(o);
    for (auto it = fds.begin(); it != fds.end(); ++it)
      if (it->first == fd) {
        fds.erase(it);
        return;
      }
    throw py::key_error(std::to_string(fd));
  }
  py::list poll(py::object timeout) {
    std::vector<pollfd> p;
    for (auto& [fd, ev] : fds) p.push_back(pollfd{fd, ev, 0});
    do_poll(p, timeout_ms(timeout, 1.0));
    py::list out;
    for (auto& e : p)
      if (e.revents) out.append(py::make_tuple(e.fd, int(e.revents)));
    return out;
  }
};

py::tuple do_select(py::iterable r, py::iterable w, py::iterable x, py::object timeout) {
  std::vector<pollfd> p;
  std::vector<py::object> objs;
  std::vector<int> which;  // 0 read, 1 write, 2 except
  int k = 0;
  for (py::iterable* lst : {&r, &w, &x}) {
    for (py::handle o : *lst) {
      const int fd = fileno_of(o);
      p.push_back(pollfd{fd, short(k == 0 ? POLLIN : k == 1 ? POLLOUT : POLLPRI), 0});
      objs.push_back(py::reinterpret_borrow<py::object>(o));
      which.push_back(k);
    }
    k++;
  }
  if (!timeout.is_none() && timeout.cast<double>() < 0) throw py::value_error("timeout must be non-negative");
  do_poll(p, timeout_ms(timeout, 1000.0));
  py::list out[3];
  for (size_t i = 0; i < p.size(); i++) {
    const short ev = p[i].revents;
    if (ev & POLLNVAL) {
      errno = EBADF;
      PyErr_SetFromErrno(PyExc_OSError);
      throw py::error_already_set();
    }
    bool hit = false;
    switch (which[i]) {
      case 0: hit = ev & (POLLIN | POLLHUP | POLLERR); break;
      case 1: hit = ev & (POLLOUT | POLLERR); break;
      default: hit = ev & POLLPRI; break;
    }
    if (hit) out[which[i]].append(objs[i]);
  }
  return py::make_tuple(out[0], out[1], out[2]);
}

// ------------------------------------------------------------ C API lists

template <typename T>
std::vector<T> list_of(int (*fn)(T*, int), const char* what) {
  std::vector<T> v;
  for (int tries = 0; tries < 8; tries++) {
    errno = 0;
    int n = fn(v.empty() ? nullptr : v.data(), int(v.size()));
    if (n < 0) raise_last(what);
    if (size_t(n) <= v.size()) {
      v.resize(size_t(n));
      return v;
    }
    v.resize(size_t(n) + 8);
  }
  raise_errno(EAGAIN, std::string(what) + ": the list keeps growing");
}

template <typename T>
std::vector<T> list_of_named(int (*fn)(const char*, T*, int), const std::string& name, const char* what) {
  std::vector<T> v;
  for (int tries = 0; tries < 8; tries++) {
    errno = 0;
    int n = fn(name.c_str(), v.empty() ? nullptr : v.data(), int(v.size()));
    if (n < 0) raise_last(std::string(what) + "(" + name + ")");
    if (size_t(n) <= v.size()) {
      v.resize(size_t(n));
      return v;
    }
    v.resize(size_t(n) + 8);
  }
  raise_errno(EAGAIN, std::string(what) + ": the list keeps growing");
}

std::string cstr(const char* s, size_t max) { return std::string(s, strnlen(s, max)); }

py::dict region_sizes_dict(const unetmap_region_sizes& s) {
  py::dict d;
  d["if_num"] = s.if_num, d["if_size"] = s.if_size;
  d["ring_num"] = s.ring_num, d["ring_size"] = s.ring_size;
  d["buf_num"] = s.buf_num, d["buf_size"] = s.buf_size;
  return d;
}

const char* const kModuleDoc = R"doc(netmap: fast packet I/O from Python, on unetmap (netmap in user space).

The classes follow netmap's extra/python module:

    import netmap
    with netmap.NetmapDesc("netmap:pipe{1") as d:
        r = d.transmit_rings[0]
        s = r.slots[r.cur]
        s.buf[:60] = frame          # the slot's buffer, a writable memoryview
        s.len = 60
        r.head = r.cur = (r.cur + 1) % r.num_slots
        d.txsync()

and a batch API moves many frames per call, in C++, without the GIL while
it copies:

    d.send([b"...", b"..."])                 # a list of bytes-like frames
    d.send(array_n_by_60, timeout=-1)        # rows of a 2-D uint8 array
    n = d.recv_into(buf, lengths, stride=2048, timeout=1000)

Control and statistics come from unetmap's C API: ports(), port_stats(),
port_rings(), switches(), switch_ports(), switch_set_lookup(), regions(),
region_create(), region_delete(), workers(); NetmapDesc.counters() for
the rings of one descriptor.

Errors are NetmapError (an OSError: .errno and the library's message).

select and poll: a NetmapDesc's fd (getfd(), fileno()) is served by
libnetmap's poll and select. Python calls libc's, so the module offers
netmap.poll() and netmap.select() (the same interface as select.poll and
select.select, for any fds) and, unless libnetmap is preloaded
(LD_PRELOAD) or UNETMAP_PYTHON_SELECT=0 is set, installs them as
select.poll and select.select when it is imported. select.epoll and
selectors/asyncio see netmap fds only with libnetmap preloaded.

The runtime directory is $UNETMAP_DIR (default /dev/shm/unetmap).
A NetmapDesc is for one thread at a time.)doc";

}  // namespace

PYBIND11_MODULE(netmap, m) {
  m.doc() = kModuleDoc;
  resolve_entry_points();

  // netmap.NetmapError(OSError), also netmap.error as in netmap's module.
  py::object err_type = py::reinterpret_steal<py::object>(
      PyErr_NewExceptionWithDoc("netmap.NetmapError",
                                "A netmap or unetmap call failed: errno and the library's message.",
                                PyExc_OSError, nullptr));
  if (!err_type) throw py::error_already_set();
  g_error = err_type.ptr();
  Py_INCREF(g_error);  // for the module's lifetime (a static holds it)
  m.attr("NetmapError") = err_type;
  m.attr("error") = err_type;
  m.attr("interposed") = g_entry.interposed;

  py::class_<Buffer>(m, "_Buffer", py::buffer_protocol(), "A buffer of a port's memory region (memoryview exporter).")
      .def_buffer([](Buffer& b) {
        return py::buffer_info(b.ptr, 1, py::format_descriptor<uint8_t>::format(), 1,
                               {py::ssize_t(b.len)}, {py::ssize_t(1)}, false);
      });

  py::class_<Interface>(m, "NetmapInterface", "A port's netmap_if: its name and rings (read-only).")
      .def_property_readonly("name", [](const Interface& i) { return cstr(i.nifp()->ni_name, sizeof i.nifp()->ni_name); },
                             "The port's name (ni_name).")
      .def_property_readonly("version", [](const Interface& i) { return i.nifp()->ni_version; })
      .def_property_readonly("flags", [](const Interface& i) { return i.nifp()->ni_flags; })
      .def_property_readonly("tx_rings", [](const Interface& i) { return i.nifp()->ni_tx_rings; },
                             "Hardware tx rings (host rings not counted).")
      .def_property_readonly("rx_rings", [](const Interface& i) { return i.nifp()->ni_rx_rings; })
      .def_property_readonly("host_tx_rings", [](const Interface& i) { return i.nifp()->ni_host_tx_rings; })
      .def_property_readonly("host_rx_rings", [](const Interface& i) { return i.nifp()->ni_host_rx_rings; })
      .def_property_readonly("bufs_head", [](const Interface& i) { return i.nifp()->ni_bufs_head; },
                             "Head of the extra buffers' list.")
      .def("__repr__", [](const Interface& i) {
        return "<NetmapInterface '" + cstr(i.nifp()->ni_name, sizeof i.nifp()->ni_name) +
               "' tx_rings=" + std::to_string(i.nifp()->ni_tx_rings) +
               " rx_rings=" + std::to_string(i.nifp()->ni_rx_rings) + ">";
      });

  py::class_<Slot>(m, "NetmapSlot", "A slot of a ring: the fields of netmap_slot, read and written in place.")
      .def_property("buf_idx", [](const Slot& s) { return s.slot->buf_idx; },
                    [](Slot& s, uint32_t v) { s.slot->buf_idx = v; }, "The slot's buffer index in the region.")
      .def_property("len", [](const Slot& s) { return s.slot->len; },
                    [](Slot& s, uint16_t v) { s.slot->len = v; }, "Bytes of the frame in the buffer.")
      .def_property("flags", [](const Slot& s) { return s.slot->flags; },
                    [](Slot& s, uint16_t v) { s.slot->flags = v; }, "NS_* flags (netmap.NsMorefrag, ...).")
      .def_property("ptr", [](const Slot& s) { return s.slot->ptr; },
                    [](Slot& s, uint64_t v) { s.slot->ptr = v; }, "User pointer (NS_INDIRECT) or offset.")
      .def_property_readonly(
          "buf",
          [](const Slot& s) {
            const uint32_t idx = s.slot->buf_idx;
            return buffer_view(s.port, NETMAP_BUF(s.ring, idx), s.ring->nr_buf_size);
          },
          "The slot's buffer (the one buf_idx names now): a writable memoryview of nr_buf_size "
          "bytes in the shared memory; the frame is buf[:len].")
      .def("__repr__", [](const Slot& s) {
        return "<NetmapSlot buf_idx=" + std::to_string(s.slot->buf_idx) + " len=" + std::to_string(s.slot->len) +
               " flags=0x" + [](unsigned f) { char b[16]; snprintf(b, sizeof b, "%04x", f); return std::string(b); }(s.slot->flags) +
               (s.slot->flags ? " [" + slot_flags_str(s.slot->flags) + "]" : "") + ">";
      });

#define RING_RO(field, doc) def_property_readonly(#field, [](const Ring& r) { return r.ring->field; }, doc)
  py::class_<Ring>(m, "NetmapRing", "A netmap ring: head, cur, tail and its slots, in the shared memory.")
      .RING_RO(num_slots, "Slots in the ring.")
      .RING_RO(nr_buf_size, "Bytes per buffer.")
      .RING_RO(ringid, "The ring's index in its direction.")
      .RING_RO(dir, "0: tx, 1: rx.")
      .RING_RO(tail, "First slot the application does not own (read-only).")
      .RING_RO(buf_ofs, "Offset of buffer 0 from the ring.")
      .def_property("head", [](const Ring& r) { return r.ring->head; },
                    [](Ring& r, uint32_t v) {
                      if (v >= r.ring->num_slots) throw py::value_error("head must be below num_slots");
                      r.ring->head = v;
                    }, "First slot the application owns; moving it hands slots to the port at the next sync.")
      .def_property("cur", [](const Ring& r) { return r.ring->cur; },
                    [](Ring& r, uint32_t v) {
                      if (v >= r.ring->num_slots) throw py::value_error("cur must be below num_slots");
                      r.ring->cur = v;
                    }, "Wake-up point (poll waits for slots past it).")
      .def_property("flags", [](const Ring& r) { return r.ring->flags; },
                    [](Ring& r, uint32_t v) { r.ring->flags = v; }, "NR_* flags (netmap.NrTimestamp, ...).")
      .def_property_readonly("tv_sec", [](const Ring& r) { return (long long)r.ring->ts.tv_sec; })
      .def_property_readonly("tv_usec", [](const Ring& r) { return (long long)r.ring->ts.tv_usec; })
      .def_property_readonly("slots", &Ring::slots, "The ring's slots, a list of NetmapSlot.")
      .def("space", [](const Ring& r) { return nm_ring_space(r.ring); },
           "Slots from cur to tail: free ones (tx) or received frames (rx).")
      .def("empty", [](const Ring& r) { return nm_ring_empty(r.ring) != 0; }, "True when space() is 0.")
      .def("__repr__", [](const Ring& r) {
        return std::string("<NetmapRing ") + (r.ring->dir ? "rx" : "tx") + " " + std::to_string(r.ring->ringid) +
               " num_slots=" + std::to_string(r.ring->num_slots) + " head=" + std::to_string(r.ring->head) +
               " cur=" + std::to_string(r.ring->cur) + " tail=" + std::to_string(r.ring->tail) + ">";
      });
#undef RING_RO

  py::class_<Desc>(m, "NetmapDesc",
                   "An open netmap port (nmport_open): its interface, rings, fd and batch I/O.\n\n"
                   "NetmapDesc(ifname, flags=0): ifname is a netmap port name ('netmap:pipe{1',\n"
                   "'vale0:a', 'null:x', 'netmap:eth0', with suffixes such as '-0', '/T', '@conf:...').\n"
                   "flags must be 0 (nm_open's flags have no meaning here). Raises NetmapError.\n"
                   "A context manager: leaving the block closes it.")
      .def(py::init<const std::string&, unsigned long>(), py::arg("ifname"), py::arg("flags") = 0)
      .def_property_readonly("interface", [](const Desc& d) { return d.interface_; }, "The NetmapInterface.")
      .def_property_readonly("transmit_rings", [](const Desc& d) { return d.tx_rings; },
                             "Every tx ring of the port's netmap_if, by index (hardware, then host); "
                             "the ones this descriptor bound are first_tx_ring..last_tx_ring.")
      .def_property_readonly("receive_rings", [](const Desc& d) { return d.rx_rings; },
                             "Every rx ring of the port's netmap_if, by index (hardware, then host).")
      .def_property_readonly("first_tx_ring", [](const Desc& d) { return d.port->d->first_tx_ring; })
      .def_property_readonly("last_tx_ring", [](const Desc& d) { return d.port->d->last_tx_ring; })
      .def_property_readonly("first_rx_ring", [](const Desc& d) { return d.port->d->first_rx_ring; })
      .def_property_readonly("last_rx_ring", [](const Desc& d) { return d.port->d->last_rx_ring; })
      .def_property_readonly("name", [](const Desc& d) { return d.port->spec; }, "The port name it was opened with.")
      .def_property_readonly("mem_id", [](const Desc& d) { return d.port->d->reg.nr_mem_id; }, "Its memory region.")
      .def_property_readonly("closed", [](const Desc& d) { return !d.port->open; })
      .def("txsync", [](Desc& d) { d.port->sync(true); }, "NIOCTXSYNC: send what head passed, reclaim sent slots.")
      .def("rxsync", [](Desc& d) { d.port->sync(false); }, "NIOCRXSYNC: release slots before head, see new frames.")
      .def("getfd", [](Desc& d) { d.port->check(); return d.port->d->fd; },
           "The netmap fd, for poll/select (see the module's doc).")
      .def("fileno", [](Desc& d) { d.port->check(); return d.port->d->fd; }, "Same as getfd().")
      .def("getringid", [](Desc& d) { return d.port->d->reg.nr_ringid; }, "nr_ringid of the registration.")
      .def("getflags", [](Desc& d) { return d.port->d->reg.nr_flags; }, "nr_flags of the registration.")
      .def("close", [](Desc& d) { d.port->close(); },
           "Close the fd (at once) and unregister. Rings, slots and buffers taken from it keep the "
           "memory mapped until they are gone; using the rings then raises ValueError.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](Desc& d, py::args) { d.port->close(); return false; })
      .def("poll", [](Desc& d, short events, int timeout) { return d.port->wait(events, timeout); },
           py::arg("events") = short(POLLIN), py::arg("timeout") = -1,
           "Wait up to timeout ms (negative: forever) for events (select.POLLIN / POLLOUT) on this "
           "port; returns revents, 0 on timeout.")
      .def("send",
           [](Desc& d, py::object frames, py::object lengths, int timeout) {
             std::unique_ptr<Source> s = make_source(frames, lengths);
             return d.send(*s, timeout);
           },
           py::arg("frames"), py::arg("lengths") = py::none(), py::kw_only(), py::arg("timeout") = 0,
           "Send frames in one call: a list or tuple of bytes-like objects; or a C-contiguous\n"
           "2-D uint8 buffer (numpy array), one frame per row (lengths[i] bytes of row i if\n"
           "lengths is given); or a 1-D buffer of frames back to back, cut by lengths.\n"
           "Frames are copied to the bound tx rings (a frame longer than a buffer spans\n"
           "slots with NS_MOREFRAG), then txsync. timeout (ms): 0 returns when the rings are\n"
           "full; otherwise waits for room until every frame is sent or the time is up\n"
           "(negative: no limit). Returns how many frames were sent (the first ones).")
      .def("recv_into", &Desc::recv_into, py::arg("buffer"), py::arg("lengths"), py::arg("stride") = py::none(),
           py::kw_only(), py::arg("timeout") = 0,
           "Receive frames into a writable buffer: frame i at offset i*stride (a 2-D uint8\n"
           "array: its rows; a 1-D buffer: stride, default 2048). lengths: a writable 1-D\n"
           "integer buffer (array('I'), numpy uint32, ...) that gets each frame's length; a\n"
           "frame longer than stride is cut to stride bytes, its length stays whole.\n"
           "Takes up to min(rows, len(lengths)) frames: those the rings hold, then rxsyncs\n"
           "while more come. timeout (ms): when nothing is there, wait up to that long for\n"
           "the first frame (0: do not wait, negative: no limit). Returns how many.")
      .def("recv", &Desc::recv, py::arg("max") = 1024, py::kw_only(), py::arg("timeout") = 0,
           "Like recv_into, but returns a list of bytes (up to max frames).")
      .def("counters", &Desc::counters,
           "Packet, byte and drop counters of the rings this descriptor registered: "
           "{'tx': {...}, 'rx': {...}} (unetmap_fd_counters).")
      .def("__repr__", [](const Desc& d) {
        return "<NetmapDesc '" + d.port->spec + "'" + (d.port->open ? " fd=" + std::to_string(d.port->d->fd) : " closed") + ">";
      });

  py::class_<Poll>(m, "Poll", "select.poll's interface over libnetmap's poll (any fds, netmap ones included).")
      .def(py::init<>())
      .def("register", &Poll::reg, py::arg("fd"), py::arg("eventmask") = short(POLLIN | POLLPRI | POLLOUT))
      .def("modify", &Poll::modify, py::arg("fd"), py::arg("eventmask"))
      .def("unregister", &Poll::unreg, py::arg("fd"))
      .def("poll", &Poll::poll, py::arg("timeout") = py::none(),
           "Wait up to timeout ms (None or negative: forever); a list of (fd, revents).");
  m.def("poll", []() { return Poll(); }, "A new Poll object, as select.poll().");
  m.def("select", &do_select, py::arg("rlist"), py::arg("wlist"), py::arg("xlist"), py::arg("timeout") = py::none(),
        "select.select's interface over libnetmap's poll (no FD_SETSIZE limit).");

  // ---- control and statistics
  m.def("last_error", []() { return std::string(unetmap_last_error()); },
        "Why this thread's last failed unetmap call failed ('' if none).");
  m.def("ports", []() {
    py::list out;
    for (auto& p : list_of(unetmap_ports, "ports")) {
      py::dict d;
      d["name"] = cstr(p.name, sizeof p.name);
      d["type"] = cstr(p.type, sizeof p.type);
      d["mem_id"] = p.mem_id;
      d["tx_rings"] = p.tx_rings, d["rx_rings"] = p.rx_rings;
      d["persistent"] = bool(p.persistent);
      d["users"] = p.users;
      out.append(d);
    }
    return out;
  }, "The ports of the registry: a list of dicts (name, type, mem_id, tx_rings, rx_rings, persistent, users).");
  m.def("port_rings", [](const std::string& port) {
    py::list out;
    for (auto& r : list_of_named(unetmap_port_rings, port, "port_rings")) {
      py::dict d;
      d["ring"] = r.ring, d["tx"] = bool(r.tx), d["host"] = bool(r.host);
      d["slots"] = r.slots, d["users"] = r.users, d["monitors"] = r.monitors;
      d["hwcur"] = r.hwcur, d["hwtail"] = r.hwtail;
      d["packets"] = r.packets, d["bytes"] = r.bytes, d["drops"] = r.drops, d["fwd_drops"] = r.fwd_drops;
      out.append(d);
    }
    return out;
  }, py::arg("port"), "The rings of a port ('p{0', 'vale0:a'), every direction: a list of dicts.");
  m.def("port_stats", [](const std::string& port) {
    struct unetmap_port_stats s{};
    errno = 0;
    if (unetmap_port_counters(port.c_str(), &s) < 0) raise_last("port_stats(" + port + ")");
    py::dict d;
    d["tx_packets"] = s.tx_packets, d["tx_bytes"] = s.tx_bytes, d["tx_drops"] = s.tx_drops;
    d["rx_packets"] = s.rx_packets, d["rx_bytes"] = s.rx_bytes, d["rx_drops"] = s.rx_drops;
    return d;
  }, py::arg("port"), "A port's rings summed per direction: tx_packets, tx_bytes, tx_drops, rx_...");
  m.def("nic_backend", [](const std::string& port) {
    errno = 0;
    const char* b = unetmap_nic_backend(port.c_str());
    if (!b) raise_last("nic_backend(" + port + ")");
    return std::string(b);
  }, py::arg("port"), "A NIC port's backend ('xdp', 'packet').");
  m.def("switches", []() {
    py::list out;
    for (auto& s : list_of(unetmap_switches, "switches")) {
      py::dict d;
      d["name"] = cstr(s.name, sizeof s.name);
      d["lookup"] = cstr(s.lookup, sizeof s.lookup);
      d["ports"] = s.ports;
      out.append(d);
    }
    return out;
  }, "The VALE switches: a list of dicts (name, lookup, ports).");
  m.def("switch_ports", [](const std::string& sw) {
    py::list out;
    for (auto& p : list_of_named(unetmap_switch_ports, sw, "switch_ports")) {
      py::dict d;
      d["name"] = cstr(p.name, sizeof p.name);
      d["index"] = p.index, d["mem_id"] = p.mem_id, d["hdr_len"] = p.hdr_len;
      d["tx_rings"] = p.tx_rings, d["rx_rings"] = p.rx_rings;
      d["tx_slots"] = p.tx_slots, d["rx_slots"] = p.rx_slots;
      d["persistent"] = bool(p.persistent);
      d["tx_packets"] = p.tx_packets, d["tx_bytes"] = p.tx_bytes, d["rx_packets"] = p.rx_packets;
      d["drops"] = p.drops, d["tx_drops"] = p.tx_drops;
      out.append(d);
    }
    return out;
  }, py::arg("switch"), "The ports of VALE switch `switch` ('vale0'): a list of dicts with their counters.");
  m.def("switch_set_lookup", [](const std::string& sw, const std::string& lookup) {
    errno = 0;
    if (unetmap_switch_set_lookup(sw.c_str(), lookup.c_str()) < 0)
      raise_last("switch_set_lookup(" + sw + ", " + lookup + ")");
  }, py::arg("switch"), py::arg("lookup"), "Set a switch's lookup function: 'learning' or 'hub'.");
  m.def("regions", []() {
    py::list out;
    for (auto& r : list_of(unetmap_regions, "regions")) {
      py::dict d;
      d["mem_id"] = r.mem_id, d["persistent"] = bool(r.persistent), d["ports"] = r.ports;
      d["sizes"] = region_sizes_dict(r.sizes);
      d["memsize"] = r.memsize, d["bufs_in_use"] = r.bufs_in_use;
      d["uid"] = r.uid, d["gid"] = r.gid, d["mode"] = r.mode;
      d["error"] = r.error;  // 0, or why the file cannot be read (an errno value)
      out.append(d);
    }
    return out;
  }, "The memory regions: a list of dicts (mem_id, persistent, ports, sizes, memsize, bufs_in_use, uid, gid, mode,\n"
     "error: 0, or the errno value of a region file that cannot be read, whose sizes are then 0).");
  m.def("region_create",
        [](uint16_t mem_id, uint32_t if_num, uint32_t if_size, uint32_t ring_num, uint32_t ring_size,
           uint32_t buf_num, uint32_t buf_size) {
          unetmap_region_sizes s{if_num, if_size, ring_num, ring_size, buf_num, buf_size};
          errno = 0;
          if (unetmap_region_create(mem_id, &s) < 0) raise_last("region_create(" + std::to_string(mem_id) + ")");
        },
        py::arg("mem_id"), py::kw_only(), py::arg("if_num") = 0, py::arg("if_size") = 0, py::arg("ring_num") = 0,
        py::arg("ring_size") = 0, py::arg("buf_num") = 0, py::arg("buf_size") = 0,
        "Make persistent region mem_id (1..65535); a size left 0 comes from the UNETMAP_* knobs or defaults.");
  m.def("region_delete", [](uint16_t mem_id) {
    errno = 0;
    if (unetmap_region_delete(mem_id) < 0) raise_last("region_delete(" + std::to_string(mem_id) + ")");
  }, py::arg("mem_id"), "Delete a region (EBUSY while a port uses it).");
  m.def("workers", []() {
    py::list out;
    for (auto& w : list_of(unetmap_workers, "workers")) {
      py::dict d;
      d["name"] = cstr(w.name, sizeof w.name);
      d["kind"] = cstr(w.kind, sizeof w.kind);
      d["state"] = cstr(w.state, sizeof w.state);
      d["supervised"] = bool(w.supervised);
      d["pid"] = w.pid, d["restarts"] = w.restarts;
      d["exit_status"] = w.exit_status, d["exit_signal"] = w.exit_signal;
      d["since"] = w.since;
      d["reason"] = cstr(w.reason, sizeof w.reason);
      d["log"] = cstr(w.log, sizeof w.log);
      d["supervisor"] = w.supervisor;
      d["status"] = cstr(w.status, sizeof w.status);
      py::list args;
      for (uint32_t a = 0; a < w.nargs && a < UNETMAP_WORKER_MAX_ARGS; a++) args.append(cstr(w.args[a], sizeof w.args[a]));
      d["args"] = args;
      out.append(d);
    }
    return out;
  }, "The supervised workers (attached NICs, vhost-user ports): a list of dicts.");

  // ---- constants, with netmap's module names
  struct C { const char* name; long v; };
  static const C consts[] = {
      {"RegDefault", NR_REG_DEFAULT}, {"RegAllNic", NR_REG_ALL_NIC}, {"RegSw", NR_REG_SW},
      {"RegNicSw", NR_REG_NIC_SW}, {"RegOneNic", NR_REG_ONE_NIC}, {"RegPipeMaster", NR_REG_PIPE_MASTER},
      {"RegPipeSlave", NR_REG_PIPE_SLAVE}, {"RegNull", NR_REG_NULL}, {"RegOneSw", NR_REG_ONE_SW},
      {"RegMonitorTx", NR_MONITOR_TX}, {"RegMonitorRx", NR_MONITOR_RX}, {"RegZcopyMon", NR_ZCOPY_MON},
      {"RegExclusive", NR_EXCLUSIVE}, {"RegRxRingsOnly", NR_RX_RINGS_ONLY}, {"RegTxRingsOnly", NR_TX_RINGS_ONLY},
      {"NrTimestamp", NR_TIMESTAMP}, {"NrForward", NR_FORWARD},
      {"NsBufChanged", NS_BUF_CHANGED}, {"NsReport", NS_REPORT}, {"NsForward", NS_FORWARD},
      {"NsNoLearn", NS_NO_LEARN}, {"NsIndirect", NS_INDIRECT}, {"NsMorefrag", NS_MOREFRAG},
  };
  for (const C& c : consts) m.attr(c.name) = c.v;

  // select.poll / select.select over libnetmap's, unless it interposes already.
  const char* env = getenv("UNETMAP_PYTHON_SELECT");
  const bool install = !g_entry.interposed && !(env && strcmp(env, "0") == 0);
  m.attr("select_installed") = install;
  if (install) {
    py::module_ sel = py::module_::import("select");
    sel.attr("poll") = m.attr("poll");
    sel.attr("select") = m.attr("select");
  }
}
