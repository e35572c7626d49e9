#include "util/remote_port.h"

#include <sys/prctl.h>

#include <algorithm>

namespace nmtest {

// ---------------------------------------------------------------------------
// Frames.

uint32_t fnv(const uint8_t* p, size_t n) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  return h;
}

// Write a whole frame of len >= kFrameHdr bytes at p.
void fill_frame(uint8_t* p, uint32_t len, const Mac& dst, const Mac& src, uint32_t tag,
                uint32_t seq) {
  memcpy(p, dst.data(), 6);
  memcpy(p + 6, src.data(), 6);
  p[12] = 0x88;
  p[13] = 0xb5;
  put32(p + 14, tag);
  put32(p + 18, seq);
  put32(p + 22, len);
  uint64_t st = mix64((uint64_t(tag) << 32) | seq);
  for (uint32_t i = kFrameHdr; i < len; i += 8) {
    st = mix64(st);
    uint32_t k = len - i < 8 ? len - i : 8;
    memcpy(p + i, &st, k);
  }
  put32(p + 26, fnv(p + kFrameHdr, len - kFrameHdr));
}

std::vector<uint8_t> frame(const Mac& dst, const Mac& src, uint32_t tag, uint32_t seq,
                           uint32_t len) {
  std::vector<uint8_t> f(std::max(len, kFrameHdr));
  fill_frame(f.data(), uint32_t(f.size()), dst, src, tag, seq);
  f.resize(len);
  return f;
}

// "" if p[0..n) is a whole, intact frame; else what is wrong with it.
std::string check_frame(const uint8_t* p, size_t n, FrameInfo* fi) {
  char why[160];
  if (n < kFrameHdr) {
    snprintf(why, sizeof why, "frame of %zu bytes, shorter than its header", n);
    return why;
  }
  if (p[12] != 0x88 || p[13] != 0xb5) return "not a test frame (ethertype)";
  if (get32(p + 22) != n) {
    snprintf(why, sizeof why, "tag %x seq %u: %zu bytes, its header says %u", get32(p + 14),
             get32(p + 18), n, get32(p + 22));
    return why;
  }
  if (fnv(p + kFrameHdr, n - kFrameHdr) != get32(p + 26)) {
    snprintf(why, sizeof why, "tag %x seq %u (%zu bytes): payload checksum mismatch", get32(p + 14),
             get32(p + 18), n);
    return why;
  }
  if (fi) {
    memcpy(fi->dst.data(), p, 6);
    memcpy(fi->src.data(), p + 6, 6);
    fi->tag = get32(p + 14);
    fi->seq = get32(p + 18);
  }
  return {};
}
// ---------------------------------------------------------------------------
// Bound rings of an open port, and frames in and out of them.

Ep ep_of(const nmport_d* d) {
  Ep e;
  e.fd = d->fd;
  e.nifp = d->nifp;
  e.tx0 = d->first_tx_ring, e.tx1 = d->last_tx_ring + 1u;
  e.rx0 = d->first_rx_ring, e.rx1 = d->last_rx_ring + 1u;
  return e;
}

Ep ep_of(const RawPort& p) {
  Ep e;
  e.fd = p.fd;
  e.nifp = p.nifp;
  if (p.reg.nr_mode == NR_REG_ONE_NIC) {
    e.tx0 = e.rx0 = p.reg.nr_ringid;
    e.tx1 = e.rx1 = p.reg.nr_ringid + 1u;
  } else {
    e.tx1 = p.nifp->ni_tx_rings;
    e.rx1 = p.nifp->ni_rx_rings;
  }
  return e;
}

// Write frame f at the tx ring's cur as a chain of `chunk`-byte slots
// (NS_MOREFRAG on all but the last, `flags` added on the first) and move
// head and cur past it. The caller made room.
void put_frame(netmap_ring* r, const uint8_t* f, size_t len, uint16_t flags, uint32_t chunk) {
  uint32_t i = r->cur;
  size_t off = 0;
  bool first = true;
  do {
    netmap_slot& s = r->slot[i];
    size_t n = std::min<size_t>(chunk, len - off);
    memcpy(NETMAP_BUF(r, s.buf_idx), f + off, n);
    s.len = uint16_t(n);
    off += n;
    s.flags = uint16_t((first ? flags : 0) | (off < len ? NS_MOREFRAG : 0));
    first = false;
    i = nm_ring_next(r, i);
  } while (off < len);
  r->head = r->cur = i;
}

// Send one frame on tx ring `ring` (default: the first bound one) and
// txsync. 0 or the errno of the failing txsync.
int send_frame(const Ep& e, const std::vector<uint8_t>& f, uint16_t flags, unsigned ring) {
  netmap_ring* r = e.tx(ring == ~0u ? e.tx0 : ring);
  const uint32_t need = slots_for(uint32_t(f.size()), r->nr_buf_size);
  if (nm_ring_space(r) < need && ioctl(e.fd, NIOCTXSYNC, nullptr) < 0) return errno;
  if (nm_ring_space(r) < need) return ENOSPC;
  put_frame(r, f.data(), f.size(), flags, r->nr_buf_size);
  return ioctl(e.fd, NIOCTXSYNC, nullptr) < 0 ? errno : 0;
}

// Take the next whole frame already visible on a bound rx ring (no sync).
bool take_frame(const Ep& e, RxFrame* out) {
  for (unsigned ri = e.rx0; ri < e.rx1; ri++) {
    netmap_ring* r = e.rx(ri);
    if (nm_ring_empty(r)) continue;
    out->data.clear();
    out->flags.clear();
    out->lens.clear();
    out->ring = ri;
    uint32_t i = r->cur;
    bool whole = false;
    while (i != r->tail && out->flags.size() <= NETMAP_MAX_FRAGS) {
      const netmap_slot& s = r->slot[i];
      const uint8_t* b = reinterpret_cast<const uint8_t*>(NETMAP_BUF(r, s.buf_idx));
      out->data.insert(out->data.end(), b, b + s.len);
      out->flags.push_back(s.flags);
      out->lens.push_back(s.len);
      i = nm_ring_next(r, i);
      if (!(s.flags & NS_MOREFRAG)) {
        whole = true;
        break;
      }
    }
    if (!whole) continue;  // VALE publishes whole packets: should not happen
    r->head = r->cur = i;
    return true;
  }
  return false;
}

// Wait in poll() (bounded) for the next frame on any bound rx ring.
bool recv_frame(const Ep& e, int timeout_ms, RxFrame* out) {
  const double end = now_ms() + timeout_ms;
  for (;;) {
    if (take_frame(e, out)) return true;
    int left = int(end - now_ms());
    if (left <= 0) {
      // One last look: the deadline may have passed while we were busy.
      if (ioctl(e.fd, NIOCRXSYNC, nullptr) == 0 && take_frame(e, out)) return true;
      return false;
    }
    pollfd p{e.fd, POLLIN, 0};
    if (::poll(&p, 1, left) < 0 && errno != EINTR) return false;
  }
}

// ---------------------------------------------------------------------------
// Pipes between the test and its children.

bool write_all(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n) {
    ssize_t r = ::write(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r;
    n -= size_t(r);
  }
  return true;
}

// timeout_ms < 0: no deadline.
bool read_all(int fd, void* p, size_t n, int timeout_ms) {
  char* c = static_cast<char*>(p);
  const double end = now_ms() + timeout_ms;
  while (n) {
    int left = timeout_ms < 0 ? -1 : int(end - now_ms());
    if (timeout_ms >= 0 && left <= 0) return false;
    pollfd q{fd, POLLIN, 0};
    int r = ::poll(&q, 1, left);
    if (r < 0 && errno == EINTR) continue;
    if (r != 1) return false;
    ssize_t k = ::read(fd, c, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    c += k;
    n -= size_t(k);
  }
  return true;
}
void die_with_parent() { prctl(PR_SET_PDEATHSIG, SIGKILL); }

// ---------------------------------------------------------------------------
// A port in a process of its own, driven over a pipe.

Remote::Remote(const std::string& spec) : spec_(spec) {
  child_ = Child([this] { return serve(); });
  Rep r;
  ok_ = read_all(from_.read_fd(), &r, sizeof r, 20000) && r.rc == 0;
  open_err_ = r.rc;
  rx_rings_ = r.a;
  tx_rings_ = r.b;
}

// Send one frame; 0 or the errno of the txsync (-1: the process is gone).
int Remote::send(const std::vector<uint8_t>& f, uint16_t flags, unsigned ring) {
  Req q;
  q.op = kOpSend;
  q.flags = flags;
  q.ring = ring;
  q.len = uint32_t(f.size());
  if (!request(q) || !write_all(to_.write_fd(), f.data(), f.size())) return -1;
  Rep r;
  return reply(&r, 20000) ? r.rc : -1;
}

// Receive one frame, waiting up to timeout_ms in the child's poll().
bool Remote::recv(RxFrame* f, int timeout_ms) {
  recv_start(timeout_ms);
  bool got = false;
  return recv_finish(f, timeout_ms + 20000, &got) && got;
}
// The same in two halves: start the child's wait, collect the result.
void Remote::recv_start(int timeout_ms) {
  Req q;
  q.op = kOpRecv;
  q.timeout_ms = timeout_ms;
  request(q);
}
// false: no reply within wait_ms (or the process is gone); else *got
// tells whether a frame came.
bool Remote::recv_finish(RxFrame* f, int wait_ms, bool* got) {
  Rep r;
  if (!reply(&r, wait_ms)) return false;
  *got = r.rc == 0;
  f->ring = r.ring;
  f->flags.resize(r.nslots);
  f->lens.resize(r.nslots);
  f->data.resize(r.len);
  return read_all(from_.read_fd(), f->flags.data(), r.nslots * 2, 20000) &&
         read_all(from_.read_fd(), f->lens.data(), r.nslots * 2, 20000) &&
         read_all(from_.read_fd(), f->data.data(), r.len, 20000);
}

// `count` frames (tag, seq0..) of len bytes to dst, `batch` per txsync.
Rep Remote::send_many(const Mac& dst, const Mac& src, uint32_t tag, uint32_t seq0,
                      uint32_t count, uint32_t batch, uint32_t len) {
  Req q;
  q.op = kOpSendMany;
  q.dst = dst;
  q.src = src;
  q.tag = tag;
  q.seq0 = seq0;
  q.count = count;
  q.batch = batch;
  q.len = len;
  Rep r;
  if (!request(q) || !reply(&r, 30000)) r.rc = -1;
  return r;
}

Rep Remote::simple(uint32_t op) {
  Req q;
  q.op = op;
  Rep r;
  if (!request(q) || !reply(&r, 20000)) r.rc = -1;
  return r;
}

// Close the port and end the process; its exit status (0 = clean).
int Remote::close() {
  if (child_.pid() <= 0) return status_;
  if (ok_) {
    Req q;
    q.op = kOpExit;
    Rep r;
    if (request(q)) reply(&r, 10000);
  }
  status_ = child_.wait(10000);
  return status_;
}

bool Remote::request(const Req& q) { return write_all(to_.write_fd(), &q, sizeof q); }
bool Remote::reply(Rep* r, int wait_ms) { return read_all(from_.read_fd(), r, sizeof *r, wait_ms); }
void Remote::answer(const Rep& r) { write_all(from_.write_fd(), &r, sizeof r); }

// The child: open the port, then serve commands until kOpExit.
int Remote::serve() {
  die_with_parent();
  nmport_d* d = nmport_open(spec_.c_str());
  Rep r;
  if (!d) {
    r.rc = errno ? errno : EINVAL;
    answer(r);
    return 2;
  }
  Ep e = ep_of(d);
  r.rc = 0;
  r.a = e.rx1 - e.rx0;
  r.b = e.tx1 - e.tx0;
  answer(r);
  std::vector<uint8_t> buf;
  RxFrame f;
  uint32_t real_slots = 0;  // the rx ring's size before kOpScribble
  for (;;) {
    Req q;
    if (!read_all(to_.read_fd(), &q, sizeof q, -1)) return 3;
    Rep a;
    switch (q.op) {
      case kOpSend:
        buf.resize(q.len);
        if (!read_all(to_.read_fd(), buf.data(), q.len, 20000)) return 3;
        a.rc = send_frame(e, buf, uint16_t(q.flags), q.ring);
        answer(a);
        break;
      case kOpRecv: {
        bool got = recv_frame(e, q.timeout_ms, &f);
        a.rc = got ? 0 : ETIMEDOUT;
        if (got) {
          a.len = uint32_t(f.data.size());
          a.nslots = uint32_t(f.flags.size());
          a.ring = f.ring;
        }
        answer(a);
        if (got) {
          write_all(from_.write_fd(), f.flags.data(), f.flags.size() * 2);
          write_all(from_.write_fd(), f.lens.data(), f.lens.size() * 2);
          write_all(from_.write_fd(), f.data.data(), f.data.size());
        }
        break;
      }
      case kOpSendMany: {
        netmap_ring* t = e.tx(e.tx0);
        a.rc = 0;
        for (uint32_t done = 0; done < q.count && a.rc == 0;) {
          uint32_t n = std::min(q.batch, q.count - done);
          if (nm_ring_space(t) < n) {
            a.rc = ENOSPC;
            break;
          }
          for (uint32_t k = 0; k < n; k++) {
            netmap_slot& s = t->slot[t->cur];
            fill_frame(reinterpret_cast<uint8_t*>(NETMAP_BUF(t, s.buf_idx)), q.len, q.dst, q.src,
                       q.tag, q.seq0 + done + k);
            s.len = uint16_t(q.len);
            s.flags = 0;
            t->head = t->cur = nm_ring_next(t, t->cur);
          }
          if (ioctl(e.fd, NIOCTXSYNC, nullptr) < 0) a.rc = errno;
          a.a++;
          // Forwarding is done inside txsync: the whole ring is free again.
          if (nm_ring_space(t) != t->num_slots - 1) a.b++;
          done += n;
        }
        answer(a);
        break;
      }
      case kOpScribble: {
        a.rc = 0;
        for (unsigned ri = e.rx0; ri < e.rx1; ri++) {
          netmap_ring* x = e.rx(ri);
          if (ioctl(e.fd, NIOCRXSYNC, nullptr) < 0) a.rc = errno;
          x->head = x->cur = x->tail;
          if (ioctl(e.fd, NIOCRXSYNC, nullptr) < 0) a.rc = errno;
          static const uint32_t junk[] = {0, 1, 0xffffffffu, 0x7fffffffu, 0x10000000u, 4000000u};
          real_slots = x->num_slots;
          for (uint32_t i = 0; i < real_slots; i++) {
            x->slot[i].buf_idx = junk[i % 6] + (i % 6 >= 3 ? i : 0);
            x->slot[i].len = 0;
          }
          // The ring's own size fields are in the application's memory too.
          *const_cast<uint32_t*>(&x->num_slots) = 1u << 30;
          *const_cast<uint32_t*>(&x->nr_buf_size) = 1u << 30;
        }
        answer(a);
        break;
      }
      case kOpRxLens: {
        a.rc = ioctl(e.fd, NIOCRXSYNC, nullptr) < 0 ? errno : 0;
        for (unsigned ri = e.rx0; ri < e.rx1; ri++) {
          netmap_ring* x = e.rx(ri);
          const uint32_t n = real_slots ? real_slots : x->num_slots;
          for (uint32_t i = x->cur; i != x->tail; i = i + 1 == n ? 0 : i + 1) {
            a.a++;
            if (x->slot[i].len != 0) a.b++;
          }
        }
        answer(a);
        break;
      }
      case kOpExit:
        // Release what was read, as an application does before closing
        // (the next registration of the port would see it again).
        ioctl(e.fd, NIOCRXSYNC, nullptr);
        nmport_close(d);
        a.rc = 0;
        answer(a);
        return 0;
      default:
        return 4;
    }
  }
}

bool frame_is(const RxFrame& f, uint32_t tag, uint32_t seq) {
  FrameInfo fi;
  return check_frame(f.data.data(), f.data.size(), &fi).empty() && fi.tag == tag && fi.seq == seq;
}

std::string describe(const RxFrame& f) {
  FrameInfo fi;
  std::string e = check_frame(f.data.data(), f.data.size(), &fi);
  if (!e.empty()) return "a bad frame (" + e + ")";
  char b[96];
  snprintf(b, sizeof b, "frame tag %x seq %u (%zu bytes, ring %u)", fi.tag, fi.seq, f.data.size(),
           f.ring);
  return b;
}

// "" if the next frame at r is intact and is (tag, seq) from src; else
// what came instead.
std::string next_is(Remote& r, uint32_t tag, uint32_t seq, const Mac* src, int timeout_ms) {
  RxFrame f;
  char want[64];
  snprintf(want, sizeof want, "tag %x seq %u", tag, seq);
  if (!r.recv(&f, timeout_ms)) return r.spec() + ": nothing arrived, want " + want;
  FrameInfo fi;
  std::string e = check_frame(f.data.data(), f.data.size(), &fi);
  if (!e.empty()) return r.spec() + ": " + e;
  if (fi.tag != tag || fi.seq != seq) return r.spec() + ": got " + describe(f) + ", want " + want;
  if (src && fi.src != *src) return r.spec() + ": right frame, wrong source MAC";
  return {};
}
}  // namespace nmtest
