// A virtio-net device as the vhost-user protocol sets it up: the answer to
// every message of the front end (feature negotiation, the guest's memory
// table, each virtqueue's size, addresses, base, kick and call eventfds,
// enable), with no I/O of its own: the transport (transport.h) reads the
// messages and sends the replies, the backend (backend.cc) moves packets
// through the queues this object has made ready.
//
// The front end is not trusted: every payload is checked for its size and
// values before use, fds that a message does not take are closed, and a
// request this device cannot serve is refused (with REPLY_ACK, or by
// closing the connection when the front end waits for an answer it cannot
// have). Nothing it sends can make the backend touch memory outside the
// guest's (guest_mem.h, virtq.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ports/vhost/guest_mem.h"
#include "ports/vhost/virtq.h"

namespace unetmap::vhost {

constexpr uint32_t kMaxQueuePairs = 16;

struct Queue {
  VringConfig cfg;
  Virtq vq;
  int kick = -1, call = -1, err = -1;
  bool have_num = false, have_addr = false;
  bool started = false;  // SET_VRING_KICK came (GET_VRING_BASE stops it)
  bool enabled = false;  // SET_VRING_ENABLE 1, or no protocol features
};

class Device {
 public:
  struct Options {
    uint32_t queue_pairs = 1;
    // Checksum and segmentation offloads offered (CSUM, GUEST_CSUM,
    // HOST_/GUEST_TSO4, TSO6, UFO).
    bool offloads = true;
  };
  explicit Device(const Options& o);
  ~Device() { reset(); }
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  // One message: its header, payload and the fds that came with it (taken:
  // kept or closed). The reply to send, if any, goes into *reply (header
  // included). Returns 0, or an errno value with *why: the connection is
  // to be closed (a malformed message, or one whose answer cannot be
  // given).
  int handle(const MsgHeader& h, const uint8_t* payload, std::vector<int>& fds, std::string* reply,
             std::string* why);
  // The front end went away: back to the state before any message.
  void reset();

  uint64_t features() const { return acked_; }
  bool has(uint32_t feature) const { return acked_ & bit(feature); }
  // The virtio-net header the guest puts before each frame: 12 bytes with
  // VERSION_1 or MRG_RXBUF, else 10.
  uint32_t hdr_len() const { return has(kVersion1) || has(kNetMrgRxbuf) ? 12 : 10; }
  // Whether SET_FEATURES came (since the last reset).
  bool features_set() const { return features_set_; }
  // The guest takes partial checksums and TCP segments of both versions:
  // frames with a header asking for them may go to it as they are.
  bool guest_offloads() const { return has(kNetGuestCsum) && has(kNetGuestTso4) && has(kNetGuestTso6); }
  uint32_t queue_pairs() const { return opt_.queue_pairs; }
  Queue& queue(uint32_t i) { return q_[i]; }
  // A queue the backend may use: started, enabled, its rings mapped.
  bool live(uint32_t i) const { return q_[i].started && q_[i].enabled && q_[i].vq.ready(); }
  const GuestMemory& memory() const { return mem_; }
  // Changes whenever a queue starts, stops, or the memory table changes:
  // the backend then looks at the queues (and kick fds) again.
  uint64_t generation() const { return gen_; }
  // What the device's state says, for the worker's status.
  std::string describe() const;
  // Offered feature bits.
  uint64_t offered() const { return offered_; }

 private:
  int start_queue(uint32_t i, std::string* why);
  void stop_queue(uint32_t i);
  int remap(std::string* why);

  Options opt_;
  uint64_t offered_ = 0, acked_ = 0;
  uint64_t protocol_offered_ = 0, protocol_acked_ = 0;
  bool features_set_ = false;
  uint8_t status_ = 0;
  GuestMemory mem_;
  std::vector<Queue> q_;
  uint64_t gen_ = 0;
};

}  // namespace unetmap::vhost
