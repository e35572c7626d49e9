// A vhost-user front end for tests: the driver side of a virtio-net device
// with split rings, in this process. Its guest memory is a memfd mapped
// here (guest physical address 0 is its first byte); it negotiates
// features, shares the memory and sets up queue pair 0 as QEMU or DPDK's
// virtio_user would, then sends and receives frames through the rings. It
// also gives raw access to the messages and the rings, so hostile tests
// can write anything anywhere.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ports/vhost/protocol.h"

namespace nmtest {

namespace vh = unetmap::vhost;

class VhostFront {
 public:
  struct Options {
    uint16_t qsize = 256;
    bool mrg = true;        // VIRTIO_NET_F_MRG_RXBUF
    bool indirect = false;  // VIRTIO_RING_F_INDIRECT_DESC
    bool event_idx = false; // VIRTIO_RING_F_EVENT_IDX
    bool reply_ack = true;  // VHOST_USER_PROTOCOL_F_REPLY_ACK
    uint32_t rx_buf = 2048; // bytes of each receive buffer posted
    uint64_t offloads = 0;  // feature bits acked besides the above (CSUM, TSO...)
    size_t mem = 48u << 20;
  };
  explicit VhostFront(const Options& o);
  ~VhostFront();
  VhostFront(const VhostFront&) = delete;
  VhostFront& operator=(const VhostFront&) = delete;

  // Connect to a backend listening at path (retried until timeout_ms), or
  // take the first connection on listening socket lfd.
  bool connect(const std::string& path, int timeout_ms);
  bool accept_from(int lfd, int timeout_ms);
  void close_conn();
  int sock() const { return sock_; }

  // Raw messages.
  bool send_msg(uint32_t req, const void* payload, uint32_t size, const std::vector<int>& fds = {},
                uint32_t flags = vh::kVersion);
  // Any bytes, as one sendmsg with the fds (a header may claim anything).
  bool send_raw(const void* bytes, size_t n, const std::vector<int>& fds = {});
  // A reply (or the REPLY_ACK of a request sent with kFlagNeedReply);
  // false on timeout or a closed connection.
  bool recv_reply(vh::MsgHeader* h, std::string* payload, int timeout_ms = 5000);
  // Has the backend closed the connection (within timeout_ms)?
  bool closed_by_peer(int timeout_ms);

  // The usual setup: features, owner, memory, queue pair 0 (rx 0, tx 1).
  bool setup(std::string* why);
  uint64_t features() const { return features_; }
  uint32_t hdr_len() const { return 12; }

  // Transmit: a frame (header added, zeroed) in one descriptor, or laid
  // out as `pieces` of the bytes header+frame, each its own descriptor (or
  // all in an indirect table). Reclaims what the device used. False if the
  // ring has no room.
  bool send_frame(const std::vector<uint8_t>& frame);
  bool send_pieces(const std::vector<uint8_t>& frame, const std::vector<uint32_t>& pieces,
                   bool indirect);
  // A header of hdr_len() bytes and its frame, as given, cut into
  // descriptors of the transmit buffers' size.
  bool send_with_header(const std::vector<uint8_t>& bytes);
  // Wait until the device has used every transmit chain (bounded).
  bool tx_drained(int timeout_ms);
  uint32_t reclaim_tx();

  // Receive: keep `n` buffers of rx_buf posted; the next frame (header
  // removed, *hdr its header), waiting for the device's interrupt.
  void post_rx(uint32_t n);
  bool recv_frame(std::vector<uint8_t>* frame, vh::NetHdr* hdr, int timeout_ms);

  // Raw access for hostile tests: guest memory and queue q's rings.
  uint8_t* mem() { return mem_; }
  size_t mem_size() const { return o_.mem; }
  int memfd() const { return memfd_; }
  vh::Desc* desc(int q) { return reinterpret_cast<vh::Desc*>(mem_ + q_[q].desc); }
  uint16_t* avail(int q) { return reinterpret_cast<uint16_t*>(mem_ + q_[q].avail); }
  uint16_t* used(int q) { return reinterpret_cast<uint16_t*>(mem_ + q_[q].used); }
  uint64_t uva(uint64_t gpa) const { return reinterpret_cast<uint64_t>(mem_) + gpa; }
  // Where free guest memory for test data starts (after rings and buffers).
  uint64_t scratch() const { return scratch_; }
  // Publish avail entry `head` on queue q and kick.
  void make_avail(int q, uint16_t head);
  void kick(int q);
  // Did queue q's call eventfd fire (within timeout_ms)? Clears it.
  bool called(int q, int timeout_ms);

 private:
  struct Q {
    uint64_t desc = 0, avail = 0, used = 0;  // guest physical addresses
    uint64_t bufs = 0;                       // per descriptor index: one buffer
    uint32_t buf_size = 0;
    uint16_t avail_idx = 0, used_seen = 0;
    int kick = -1, call = -1;
    std::vector<uint16_t> free;              // free descriptor indexes
    std::map<uint16_t, std::vector<uint16_t>> chains;  // head -> its descriptors
  };
  bool send_bytes(const std::vector<uint8_t>& bytes, const std::vector<uint32_t>& pieces, bool indirect);
  bool request(uint32_t req, const void* p, uint32_t size, const std::vector<int>& fds, std::string* why);
  bool get_u64(uint32_t req, uint64_t* v);
  int take_desc(Q& q);
  Options o_;
  int memfd_ = -1, sock_ = -1;
  uint8_t* mem_ = nullptr;
  uint64_t features_ = 0, protocol_ = 0;
  Q q_[2];
  uint64_t scratch_ = 0;
  std::vector<std::pair<uint16_t, uint32_t>> rx_pending_;  // used entries not consumed
};

}  // namespace nmtest
