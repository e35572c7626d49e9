#include "ports/vhost/device.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>

namespace unetmap::vhost {

namespace {

void close_all(std::vector<int>& fds) {
  for (int fd : fds) close(fd);
  fds.clear();
}

void set_fd(int* slot, int fd) {
  if (*slot >= 0) close(*slot);
  *slot = fd;
}

std::string reply_of(uint32_t request, const void* payload, uint32_t size) {
  MsgHeader h{request, kVersion | kFlagReply, size};
  std::string r(reinterpret_cast<const char*>(&h), sizeof h);
  r.append(static_cast<const char*>(payload), size);
  return r;
}

std::string reply_u64(uint32_t request, uint64_t v) { return reply_of(request, &v, sizeof v); }

// Kick and call fds must be eventfds (a pipe or socket could block the
// backend's read or write, or never clear); made nonblocking for the same
// reason. False if it is no eventfd.
bool make_eventfd_nonblocking(int fd) {
  char link[64];
  const std::string p = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = readlink(p.c_str(), link, sizeof link - 1);
  if (n <= 0) return false;
  link[n] = '\0';
  if (strcmp(link, "anon_inode:[eventfd]") != 0) return false;
  const int fl = fcntl(fd, F_GETFL);
  return fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0;
}

const char* request_name(uint32_t r) {
  switch (r) {
    case kGetFeatures: return "GET_FEATURES";
    case kSetFeatures: return "SET_FEATURES";
    case kSetOwner: return "SET_OWNER";
    case kResetOwner: return "RESET_OWNER";
    case kSetMemTable: return "SET_MEM_TABLE";
    case kSetVringNum: return "SET_VRING_NUM";
    case kSetVringAddr: return "SET_VRING_ADDR";
    case kSetVringBase: return "SET_VRING_BASE";
    case kGetVringBase: return "GET_VRING_BASE";
    case kSetVringKick: return "SET_VRING_KICK";
    case kSetVringCall: return "SET_VRING_CALL";
    case kSetVringErr: return "SET_VRING_ERR";
    case kGetProtocolFeatures: return "GET_PROTOCOL_FEATURES";
    case kSetProtocolFeatures: return "SET_PROTOCOL_FEATURES";
    case kGetQueueNum: return "GET_QUEUE_NUM";
    case kSetVringEnable: return "SET_VRING_ENABLE";
    case kSetStatus: return "SET_STATUS";
    case kGetStatus: return "GET_STATUS";
    case kResetDevice: return "RESET_DEVICE";
    default: return nullptr;
  }
}

}  // namespace

Device::Device(const Options& o) : opt_(o), q_(2 * o.queue_pairs) {
  offered_ = bit(kVersion1) | bit(kNetMrgRxbuf) | bit(kRingIndirectDesc) | bit(kRingEventIdx) |
             bit(kProtocolFeatures) | bit(kRingPacked) | bit(kInOrder);
  if (o.queue_pairs > 1) offered_ |= bit(kNetMq);
  if (o.offloads)
    offered_ |= bit(kNetCsum) | bit(kNetGuestCsum) | bit(kNetHostTso4) | bit(kNetHostTso6) |
                bit(kNetHostUfo) | bit(kNetGuestTso4) | bit(kNetGuestTso6) | bit(kNetGuestUfo);
  protocol_offered_ = bit(kPfReplyAck) | bit(kPfStatus) | bit(kPfResetDevice);
  if (o.queue_pairs > 1) protocol_offered_ |= bit(kPfMq);
}

void Device::reset() {
  for (uint32_t i = 0; i < q_.size(); i++) {
    Queue& q = q_[i];
    for (int* fd : {&q.kick, &q.call, &q.err}) set_fd(fd, -1);
    q = Queue{};
  }
  mem_.clear();
  acked_ = protocol_acked_ = 0;
  features_set_ = false;
  status_ = 0;
  gen_++;
}

std::string Device::describe() const {
  uint32_t live_q = 0;
  for (uint32_t i = 0; i < q_.size(); i++) live_q += live(i);
  char b[160];
  snprintf(b, sizeof b, "features 0x%llx, %u of %zu queues live, %u memory regions",
           static_cast<unsigned long long>(acked_), live_q, q_.size(), mem_.regions());
  return b;
}

int Device::start_queue(uint32_t i, std::string* why) {
  Queue& q = q_[i];
  q.cfg.packed = has(kRingPacked);
  q.cfg.event_idx = has(kRingEventIdx);
  q.cfg.indirect = has(kRingIndirectDesc);
  if (!q.have_num || !q.have_addr || mem_.empty()) {
    *why = "queue " + std::to_string(i) + " started before its size, addresses and the memory table";
    return EINVAL;
  }
  if (int err = q.vq.setup(mem_, q.cfg, why)) {
    *why = "queue " + std::to_string(i) + ": " + *why;
    return err;
  }
  q.started = true;
  gen_++;
  return 0;
}

void Device::stop_queue(uint32_t i) {
  Queue& q = q_[i];
  if (q.started) q.cfg.base = q.vq.base();
  q.vq.reset();
  q.started = false;
  set_fd(&q.kick, -1);
  gen_++;
}

// The memory table changed under running queues: map their rings again
// where they are, keeping their positions.
int Device::remap(std::string* why) {
  for (uint32_t i = 0; i < q_.size(); i++) {
    Queue& q = q_[i];
    if (!q.started) continue;
    q.cfg.base = q.vq.base();
    if (int err = q.vq.setup(mem_, q.cfg, why)) {
      *why = "queue " + std::to_string(i) + " after a new memory table: " + *why;
      return err;
    }
  }
  gen_++;
  return 0;
}

int Device::handle(const MsgHeader& h, const uint8_t* p, std::vector<int>& fds, std::string* reply,
                   std::string* why) {
  reply->clear();
  const uint32_t req = h.request, size = h.size;
  const bool need_reply = (h.flags & kFlagNeedReply) && (protocol_acked_ & bit(kPfReplyAck));
  auto bad = [&](const std::string& what) {
    close_all(fds);
    const char* n = request_name(req);
    *why = std::string(n ? n : ("request " + std::to_string(req)).c_str()) + ": " + what;
    return EINVAL;
  };
  auto need = [&](uint32_t bytes, uint32_t nfds) -> bool {
    return size >= bytes && fds.size() == nfds;
  };
  auto u64 = [&]() {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
  };
  auto queue_index = [&](uint32_t i) { return i < q_.size(); };
  // Requests answered with REPLY_ACK when the front end asks for it.
  auto ack = [&](int err, const std::string& what) {
    if (need_reply) *reply = reply_u64(req, err ? 1 : 0);
    if (err && !need_reply) return bad(what);  // no way to say it failed: the connection goes
    if (err) *why = what;
    return 0;
  };
  if ((h.flags & kVersionMask) != kVersion) return bad("protocol version " + std::to_string(h.flags & kVersionMask));
  switch (req) {
    case kGetFeatures:
      close_all(fds);
      *reply = reply_u64(req, offered_);
      return 0;
    case kSetFeatures: {
      if (!need(8, 0)) return bad("payload or fds");
      const uint64_t f = u64();
      if (f & ~offered_) return ack(EINVAL, "features not offered");
      // QEMU sets them again, unchanged, for each queue pair it starts.
      if (features_set_ && f == acked_) return ack(0, "");
      for (const Queue& q : q_)
        if (q.started) return ack(EBUSY, "features changed while a queue runs");
      acked_ = f;
      features_set_ = true;
      // Without protocol features, a queue is enabled as soon as it starts.
      return ack(0, "");
    }
    case kSetOwner:
      close_all(fds);
      return ack(0, "");
    case kResetOwner:
    case kResetDevice:
      close_all(fds);
      reset();
      return ack(0, "");
    case kGetProtocolFeatures:
      close_all(fds);
      *reply = reply_u64(req, protocol_offered_);
      return 0;
    case kSetProtocolFeatures: {
      if (!need(8, 0)) return bad("payload or fds");
      const uint64_t f = u64();
      if (f & ~protocol_offered_) return bad("protocol features not offered");
      protocol_acked_ = f;
      return 0;
    }
    case kGetQueueNum:
      close_all(fds);
      *reply = reply_u64(req, opt_.queue_pairs);
      return 0;
    case kSetMemTable: {
      MemTable t{};
      if (size < 8 || size > sizeof t) return bad("payload size " + std::to_string(size));
      memcpy(&t, p, size);
      if (t.nregions == 0 || t.nregions > kMaxMemRegions || size < 8 + 32 * t.nregions)
        return bad(std::to_string(t.nregions) + " regions in " + std::to_string(size) + " bytes");
      std::string w;
      int err = mem_.set(t, fds.data(), uint32_t(fds.size()), &w);
      close_all(fds);  // mapped (or refused): the fds are not needed any more
      gen_++;          // the memory changed, whatever follows
      if (!err) err = remap(&w);
      if (err)  // no queue may run on rings the table no longer maps
        for (uint32_t i = 0; i < q_.size(); i++)
          if (q_[i].started) stop_queue(i);
      return ack(err, w);
    }
    case kSetVringNum:
    case kSetVringBase:
    case kSetVringEnable: {
      VringState s;
      if (!need(sizeof s, 0)) return bad("payload or fds");
      memcpy(&s, p, sizeof s);
      if (!queue_index(s.index)) return ack(EINVAL, "queue " + std::to_string(s.index) + " does not exist");
      Queue& q = q_[s.index];
      if (req == kSetVringEnable) {
        if (s.num > 1) return ack(EINVAL, "enable " + std::to_string(s.num));
        q.enabled = s.num == 1;
        gen_++;
        return ack(0, "");
      }
      if (q.started) return ack(EBUSY, "queue " + std::to_string(s.index) + " is running");
      if (req == kSetVringNum) {
        if (s.num == 0 || s.num > kMaxQueueSize) return ack(EINVAL, "queue size " + std::to_string(s.num));
        q.cfg.num = uint16_t(s.num);
        q.have_num = true;
      } else {
        q.cfg.base = s.num;
      }
      return ack(0, "");
    }
    case kSetVringAddr: {
      VringAddr a;
      if (!need(sizeof a, 0)) return bad("payload or fds");
      memcpy(&a, p, sizeof a);
      if (!queue_index(a.index)) return ack(EINVAL, "queue " + std::to_string(a.index) + " does not exist");
      Queue& q = q_[a.index];
      if (q.started) return ack(EBUSY, "queue " + std::to_string(a.index) + " is running");
      q.cfg.desc = a.desc_user_addr;
      q.cfg.avail = a.avail_user_addr;
      q.cfg.used = a.used_user_addr;
      q.have_addr = true;
      return ack(0, "");
    }
    case kGetVringBase: {
      VringState s;
      if (!need(sizeof s, 0)) return bad("payload or fds");
      memcpy(&s, p, sizeof s);
      if (!queue_index(s.index)) return bad("queue " + std::to_string(s.index) + " does not exist");
      stop_queue(s.index);
      s.num = q_[s.index].cfg.base;
      *reply = reply_of(req, &s, sizeof s);
      return 0;
    }
    case kSetVringKick:
    case kSetVringCall:
    case kSetVringErr: {
      if (size < 8 || fds.size() > 1) return bad("payload or fds");
      const uint64_t v = u64();
      const uint32_t i = uint32_t(v & kVringIndexMask);
      const bool nofd = v & kVringNoFd;
      if (nofd != fds.empty() || !queue_index(i)) {
        close_all(fds);
        return ack(EINVAL, "queue " + std::to_string(i) + ": an fd flag that does not match the fds sent");
      }
      Queue& q = q_[i];
      const int fd = nofd ? -1 : fds[0];
      fds.clear();
      if (fd >= 0 && !make_eventfd_nonblocking(fd)) {
        close(fd);
        return ack(EINVAL, "queue " + std::to_string(i) + ": a kick, call or err fd that is no eventfd");
      }
      if (req == kSetVringCall) {
        set_fd(&q.call, fd);
        return ack(0, "");
      }
      if (req == kSetVringErr) {
        set_fd(&q.err, fd);
        return ack(0, "");
      }
      if (q.started) stop_queue(i);
      set_fd(&q.kick, fd);
      if (!(acked_ & bit(kProtocolFeatures))) q.enabled = true;
      std::string w;
      const int err = start_queue(i, &w);
      return ack(err, w);
    }
    case kSetStatus:
      if (!need(8, 0)) return bad("payload or fds");
      status_ = uint8_t(u64());
      return ack(0, "");
    case kGetStatus:
      close_all(fds);
      *reply = reply_u64(req, status_);
      return 0;
    default:
      // Asked for something this device did not offer.
      if (req == kGetConfig || req == kGetInflightFd || req == kGetMaxMemSlots || req == kIotlbMsg)
        return bad("not offered");
      close_all(fds);
      return ack(EOPNOTSUPP, std::string("request ") + std::to_string(req) + " is not supported");
  }
}

}  // namespace unetmap::vhost
