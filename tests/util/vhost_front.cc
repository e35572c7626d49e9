#include "util/vhost_front.h"

#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "util/test_util.h"

namespace nmtest {

using namespace unetmap::vhost;

namespace {
constexpr uint32_t kTxBuf = 16384;
inline void store16(uint16_t* p, uint16_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
inline uint16_t load16(const uint16_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
}  // namespace

VhostFront::VhostFront(const Options& o) : o_(o) {
  memfd_ = memfd_create("vhost-front", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (memfd_ < 0 || ftruncate(memfd_, off_t(o_.mem)) != 0) abort();
  void* m = mmap(nullptr, o_.mem, PROT_READ | PROT_WRITE, MAP_SHARED, memfd_, 0);
  if (m == MAP_FAILED) abort();
  mem_ = static_cast<uint8_t*>(m);
  uint64_t at = 0;
  const uint32_t n = o_.qsize;
  for (int i = 0; i < 2; i++) {
    Q& q = q_[i];
    q.desc = at;
    q.avail = at + 16ull * n;
    q.used = (q.avail + 6 + 2ull * n + 4095) & ~4095ull;
    at = (q.used + 6 + 8ull * n + 4095) & ~4095ull;
  }
  q_[0].buf_size = o_.rx_buf;
  q_[1].buf_size = kTxBuf;
  for (int i = 0; i < 2; i++) {
    q_[i].bufs = at;
    at += uint64_t(n) * q_[i].buf_size;
    at = (at + 4095) & ~4095ull;
    for (uint32_t d = 0; d < n; d++) q_[i].free.push_back(uint16_t(n - 1 - d));
    q_[i].kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    q_[i].call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  }
  scratch_ = at;
  if (scratch_ + (1u << 20) > o_.mem) abort();  // the test asked for too little memory
}

VhostFront::~VhostFront() {
  close_conn();
  for (Q& q : q_)
    for (int fd : {q.kick, q.call})
      if (fd >= 0) close(fd);
  munmap(mem_, o_.mem);
  close(memfd_);
}

void VhostFront::close_conn() {
  if (sock_ >= 0) close(sock_);
  sock_ = -1;
}

bool VhostFront::connect(const std::string& path, int timeout_ms) {
  const double end = now_ms() + timeout_ms;
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) return false;
  memcpy(a.sun_path, path.c_str(), path.size() + 1);
  do {
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      sock_ = s;
      return true;
    }
    close(s);
    usleep(2000);  // the backend is not listening yet: a bounded retry
  } while (now_ms() < end);
  return false;
}

bool VhostFront::accept_from(int lfd, int timeout_ms) {
  pollfd p{lfd, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) != 1) return false;
  sock_ = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  return sock_ >= 0;
}

bool VhostFront::send_msg(uint32_t req, const void* payload, uint32_t size, const std::vector<int>& fds,
                          uint32_t flags) {
  MsgHeader h{req, flags, size};
  std::string buf(reinterpret_cast<const char*>(&h), sizeof h);
  if (size) buf.append(static_cast<const char*>(payload), size);
  return send_raw(buf.data(), buf.size(), fds);
}

bool VhostFront::send_raw(const void* bytes, size_t n, const std::vector<int>& fds) {
  iovec iov{const_cast<void*>(bytes), n};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * 16)];
  if (!fds.empty()) {
    mh.msg_control = ctl;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  return sendmsg(sock_, &mh, MSG_NOSIGNAL) == ssize_t(n);
}

bool VhostFront::recv_reply(MsgHeader* h, std::string* payload, int timeout_ms) {
  const double end = now_ms() + timeout_ms;
  std::string got;
  size_t want = sizeof *h;
  while (got.size() < want) {
    pollfd p{sock_, POLLIN, 0};
    int left = int(end - now_ms());
    if (left <= 0 || poll(&p, 1, left) != 1) return false;
    char b[512];
    ssize_t r = recv(sock_, b, std::min(sizeof b, want - got.size()), 0);
    if (r <= 0) return false;
    got.append(b, size_t(r));
    if (got.size() == sizeof *h) {
      memcpy(h, got.data(), sizeof *h);
      if (h->size > 4096) return false;
      want = sizeof *h + h->size;
    }
  }
  *payload = got.substr(sizeof *h);
  return true;
}

// Without reading: replies may be queued before the end.
bool VhostFront::closed_by_peer(int timeout_ms) {
  const double end = now_ms() + timeout_ms;
  for (;;) {
    pollfd p{sock_, POLLRDHUP, 0};
    int left = int(end - now_ms());
    if (left <= 0 || poll(&p, 1, left) < 0) return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return true;
  }
}

bool VhostFront::get_u64(uint32_t req, uint64_t* v) {
  MsgHeader h;
  std::string p;
  if (!send_msg(req, nullptr, 0) || !recv_reply(&h, &p) || h.request != req || p.size() != 8) return false;
  memcpy(v, p.data(), 8);
  return true;
}

bool VhostFront::request(uint32_t req, const void* p, uint32_t size, const std::vector<int>& fds,
                         std::string* why) {
  const bool ack = protocol_ & bit(kPfReplyAck);
  if (!send_msg(req, p, size, fds, kVersion | (ack ? kFlagNeedReply : 0))) {
    *why = "request " + std::to_string(req) + ": send failed";
    return false;
  }
  if (!ack) return true;
  MsgHeader h;
  std::string r;
  uint64_t v = 1;
  if (!recv_reply(&h, &r) || r.size() != 8 || (memcpy(&v, r.data(), 8), v != 0)) {
    *why = "request " + std::to_string(req) + " refused";
    return false;
  }
  return true;
}

bool VhostFront::setup(std::string* why) {
  uint64_t offered = 0;
  if (!get_u64(kGetFeatures, &offered)) return *why = "GET_FEATURES", false;
  features_ = bit(kVersion1) | bit(kProtocolFeatures);
  if (o_.mrg) features_ |= bit(kNetMrgRxbuf);
  if (o_.indirect) features_ |= bit(kRingIndirectDesc);
  if (o_.event_idx) features_ |= bit(kRingEventIdx);
  features_ |= o_.offloads;
  if ((features_ & offered) != features_) return *why = "features not offered", false;
  uint64_t pf = 0;
  if (!get_u64(kGetProtocolFeatures, &pf)) return *why = "GET_PROTOCOL_FEATURES", false;
  const uint64_t want = o_.reply_ack ? bit(kPfReplyAck) : 0;
  if (!send_msg(kSetProtocolFeatures, &want, 8)) return *why = "SET_PROTOCOL_FEATURES", false;
  protocol_ = want;
  if (!request(kSetFeatures, &features_, 8, {}, why) || !request(kSetOwner, nullptr, 0, {}, why)) return false;
  MemTable t{};
  t.nregions = 1;
  t.regions[0] = MemRegionDesc{0, o_.mem, reinterpret_cast<uint64_t>(mem_), 0};
  if (!request(kSetMemTable, &t, 8 + 32, {memfd_}, why)) return false;
  for (uint32_t i = 0; i < 2; i++) {
    Q& q = q_[i];
    VringState num{i, o_.qsize}, base{i, 0}, en{i, 1};
    VringAddr a{i, 0, uva(q.desc), uva(q.used), uva(q.avail), 0};
    const uint64_t idx = i;
    if (!request(kSetVringNum, &num, sizeof num, {}, why) || !request(kSetVringAddr, &a, sizeof a, {}, why) ||
        !request(kSetVringBase, &base, sizeof base, {}, why) ||
        !request(kSetVringCall, &idx, 8, {q.call}, why) || !request(kSetVringKick, &idx, 8, {q.kick}, why) ||
        !request(kSetVringEnable, &en, sizeof en, {}, why))
      return false;
  }
  return true;
}

void VhostFront::kick(int q) {
  const uint64_t one = 1;
  ssize_t r = write(q_[q].kick, &one, sizeof one);
  (void)r;
}

bool VhostFront::called(int q, int timeout_ms) {
  pollfd p{q_[q].call, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) != 1) return false;
  uint64_t v;
  return read(q_[q].call, &v, sizeof v) == sizeof v;
}

void VhostFront::make_avail(int qi, uint16_t head) {
  Q& q = q_[qi];
  uint16_t* av = avail(qi);
  av[2 + (q.avail_idx % o_.qsize)] = head;
  store16(&av[1], ++q.avail_idx);
  kick(qi);
}

int VhostFront::take_desc(Q& q) {
  if (q.free.empty()) return -1;
  const int d = q.free.back();
  q.free.pop_back();
  return d;
}

uint32_t VhostFront::reclaim_tx() {
  Q& q = q_[1];
  const uint16_t idx = load16(&used(1)[1]);
  uint32_t n = 0;
  const UsedElem* ring = reinterpret_cast<const UsedElem*>(used(1) + 2);
  for (; q.used_seen != idx; q.used_seen++, n++) {
    const uint16_t head = uint16_t(ring[q.used_seen % o_.qsize].id);
    auto it = q.chains.find(head);
    if (it == q.chains.end()) continue;
    for (uint16_t d : it->second) q.free.push_back(d);
    q.chains.erase(it);
  }
  return n;
}

bool VhostFront::tx_drained(int timeout_ms) {
  const double end = now_ms() + timeout_ms;
  for (;;) {
    reclaim_tx();
    if (q_[1].chains.empty()) return true;
    if (now_ms() > end) return false;
    if (o_.event_idx) store16(&avail(1)[2 + o_.qsize], q_[1].used_seen);
    called(1, 10);  // the device interrupts when it uses them
  }
}

bool VhostFront::send_frame(const std::vector<uint8_t>& frame) {
  return send_pieces(frame, {uint32_t(frame.size() + hdr_len())}, false);
}

bool VhostFront::send_pieces(const std::vector<uint8_t>& frame, const std::vector<uint32_t>& pieces,
                             bool indirect) {
  std::vector<uint8_t> bytes(hdr_len(), 0);
  bytes.insert(bytes.end(), frame.begin(), frame.end());
  return send_bytes(bytes, pieces, indirect);
}

bool VhostFront::send_with_header(const std::vector<uint8_t>& bytes) {
  std::vector<uint32_t> pieces;
  for (size_t off = 0; off < bytes.size(); off += q_[1].buf_size)
    pieces.push_back(uint32_t(std::min<size_t>(q_[1].buf_size, bytes.size() - off)));
  return send_bytes(bytes, pieces, false);
}

bool VhostFront::send_bytes(const std::vector<uint8_t>& bytes, const std::vector<uint32_t>& pieces,
                            bool indirect) {
  reclaim_tx();
  Q& q = q_[1];
  const size_t need = indirect ? 2 : pieces.size();
  if (q.free.size() < need) return false;
  std::vector<uint16_t> ds;
  for (size_t i = 0; i < need; i++) ds.push_back(uint16_t(take_desc(q)));
  // Bytes go into the buffers of the descriptors taken (indirect: the
  // second one's buffer holds the data, the first one's the table).
  size_t off = 0;
  std::vector<Desc> list;
  uint64_t data = q.bufs + uint64_t(ds[indirect ? 1 : 0]) * q.buf_size;
  for (size_t i = 0; i < pieces.size(); i++) {
    const uint32_t len = pieces[i];
    if (off + len > bytes.size() || (indirect && off + len > q.buf_size)) abort();  // a test's mistake
    const uint64_t at = indirect ? data + off : q.bufs + uint64_t(ds[i]) * q.buf_size;
    if (!indirect && len > q.buf_size) abort();
    memcpy(mem_ + at, bytes.data() + off, len);
    off += len;
    list.push_back(Desc{at, len, uint16_t(i + 1 < pieces.size() ? kDescNext : 0), 0});
  }
  if (off != bytes.size()) abort();
  if (indirect) {
    Desc* table = reinterpret_cast<Desc*>(mem_ + q.bufs + uint64_t(ds[0]) * q.buf_size);
    for (size_t i = 0; i < list.size(); i++) {
      list[i].b = uint16_t(i + 1);
      table[i] = list[i];
    }
    desc(1)[ds[0]] = Desc{q.bufs + uint64_t(ds[0]) * q.buf_size, uint32_t(16 * list.size()), kDescIndirect, 0};
    q.chains[ds[0]] = ds;
  } else {
    for (size_t i = 0; i < list.size(); i++) {
      list[i].b = i + 1 < list.size() ? ds[i + 1] : 0;
      desc(1)[ds[i]] = list[i];
    }
    q.chains[ds[0]] = ds;
  }
  make_avail(1, ds[0]);
  return true;
}

void VhostFront::post_rx(uint32_t n) {
  Q& q = q_[0];
  for (uint32_t i = 0; i < n; i++) {
    const int d = take_desc(q);
    if (d < 0) break;
    desc(0)[d] = Desc{q.bufs + uint64_t(d) * q.buf_size, q.buf_size, kDescWrite, 0};
    q.chains[uint16_t(d)] = {uint16_t(d)};
    uint16_t* av = avail(0);
    av[2 + (q.avail_idx % o_.qsize)] = uint16_t(d);
    store16(&av[1], ++q.avail_idx);
  }
  kick(0);
}

bool VhostFront::recv_frame(std::vector<uint8_t>* frame, NetHdr* hdr, int timeout_ms) {
  Q& q = q_[0];
  const double end = now_ms() + timeout_ms;
  const UsedElem* ring = reinterpret_cast<const UsedElem*>(used(0) + 2);
  auto next = [&](std::pair<uint16_t, uint32_t>* e) {
    for (;;) {
      if (q.used_seen != load16(&used(0)[1])) {
        const UsedElem u = ring[q.used_seen % o_.qsize];
        q.used_seen++;
        *e = {uint16_t(u.id), u.len};
        return true;
      }
      // With EVENT_IDX, a driver says which used entry it wants an
      // interrupt for (used_event, after the avail ring), then looks again.
      if (o_.event_idx) {
        store16(&avail(0)[2 + o_.qsize], q.used_seen);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (q.used_seen != load16(&used(0)[1])) continue;
      }
      const int left = int(end - now_ms());
      if (left <= 0) return false;
      called(0, left < 20 ? left : 20);
    }
  };
  std::pair<uint16_t, uint32_t> e;
  auto recycle = [&](uint16_t d) {
    q.chains.erase(d);
    q.free.push_back(d);
    post_rx(1);
  };
  // A buffer given back empty (the device dropped a frame that did not
  // fit it) is posted again, as a driver does.
  do {
    if (!next(&e)) return false;
    if (e.second < hdr_len()) recycle(e.first);
  } while (e.second < hdr_len());
  auto bytes_of = [&](const std::pair<uint16_t, uint32_t>& u) {
    const uint32_t len = u.second < q.buf_size ? u.second : q.buf_size;
    const uint8_t* p = mem_ + q.bufs + uint64_t(u.first) * q.buf_size;
    return std::vector<uint8_t>(p, p + len);
  };
  std::vector<uint8_t> all = bytes_of(e);
  std::vector<uint16_t> given = {e.first};
  if (all.size() < hdr_len()) return false;
  memcpy(hdr, all.data(), sizeof *hdr);
  for (uint32_t k = 1; o_.mrg && k < hdr->num_buffers; k++) {
    if (!next(&e)) return false;
    std::vector<uint8_t> more = bytes_of(e);
    all.insert(all.end(), more.begin(), more.end());
    given.push_back(e.first);
  }
  frame->assign(all.begin() + hdr_len(), all.end());
  for (uint16_t d : given) {
    q.chains.erase(d);
    q.free.push_back(d);
  }
  post_rx(uint32_t(given.size()));
  return true;
}

}  // namespace nmtest
