// The vhost-user protocol (QEMU's docs/interop/vhost-user.rst) and the
// virtio facts it carries (virtio 1.1: split and packed virtqueues, the
// virtio-net device): message codes, feature bits and wire layouts. Only
// interface facts: the device that speaks it is device.h.
#pragma once

#include <cstdint>

namespace unetmap::vhost {

// ---- messages from the front end (QEMU, DPDK's virtio_user) ----
enum Request : uint32_t {
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetLogBase = 6,
  kSetLogFd = 7,
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kSetVringErr = 14,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
  kSendRarp = 19,
  kNetSetMtu = 20,
  kSetBackendReqFd = 21,
  kIotlbMsg = 22,
  kGetConfig = 24,
  kSetConfig = 25,
  kGetInflightFd = 31,
  kSetInflightFd = 32,
  kResetDevice = 34,
  kGetMaxMemSlots = 36,
  kAddMemReg = 37,
  kRemMemReg = 38,
  kSetStatus = 39,
  kGetStatus = 40,
};

// Header flags: version 1 in the low bits, reply, need reply.
constexpr uint32_t kVersion = 0x1, kVersionMask = 0x3;
constexpr uint32_t kFlagReply = 0x4, kFlagNeedReply = 0x8;

struct MsgHeader {
  uint32_t request;
  uint32_t flags;
  uint32_t size;  // of the payload that follows
};
static_assert(sizeof(MsgHeader) == 12);

constexpr uint32_t kMaxMemRegions = 8;  // without CONFIGURE_MEM_SLOTS
constexpr uint32_t kMaxFds = 8;

struct MemRegionDesc {
  uint64_t guest_phys_addr;
  uint64_t memory_size;
  uint64_t userspace_addr;  // in the front end's address space
  uint64_t mmap_offset;     // of the region in its fd
};
struct MemTable {
  uint32_t nregions;
  uint32_t padding;
  MemRegionDesc regions[kMaxMemRegions];
};
struct VringState {
  uint32_t index;
  uint32_t num;
};
struct VringAddr {
  uint32_t index;
  uint32_t flags;  // bit 0: log
  uint64_t desc_user_addr;
  uint64_t used_user_addr;
  uint64_t avail_user_addr;
  uint64_t log_guest_addr;
};
// SET_VRING_KICK/CALL/ERR: index in bits 0-7; bit 8: no fd (polling).
constexpr uint64_t kVringIndexMask = 0xff, kVringNoFd = 0x100;

// Protocol features (GET/SET_PROTOCOL_FEATURES).
enum ProtocolFeature : uint32_t {
  kPfMq = 0,
  kPfLogShmfd = 1,
  kPfRarp = 2,
  kPfReplyAck = 3,
  kPfMtu = 4,
  kPfBackendReq = 5,
  kPfConfig = 9,
  kPfResetDevice = 13,
  kPfStatus = 16,
};

// ---- virtio feature bits ----
enum Feature : uint32_t {
  kNetCsum = 0,         // the device takes partial checksums (NEEDS_CSUM)
  kNetGuestCsum = 1,    // the guest takes them
  kNetCtrlGuestOffloads = 2,
  kNetMtu = 3,
  kNetMac = 5,
  kNetGuestTso4 = 7,
  kNetGuestTso6 = 8,
  kNetGuestEcn = 9,
  kNetGuestUfo = 10,
  kNetHostTso4 = 11,
  kNetHostTso6 = 12,
  kNetHostEcn = 13,
  kNetHostUfo = 14,
  kNetMrgRxbuf = 15,
  kNetStatus = 16,
  kNetCtrlVq = 17,
  kNetMq = 22,
  kNotifyOnEmpty = 24,
  kLogAll = 26,
  kRingIndirectDesc = 28,
  kRingEventIdx = 29,
  kProtocolFeatures = 30,  // VHOST_USER_F_PROTOCOL_FEATURES
  kVersion1 = 32,
  kAccessPlatform = 33,
  kRingPacked = 34,
  kInOrder = 35,
};
constexpr uint64_t bit(uint32_t b) { return 1ull << b; }

// ---- virtqueues ----
constexpr uint16_t kDescNext = 1, kDescWrite = 2, kDescIndirect = 4;
// Packed rings: the avail and used bits of a descriptor's flags.
constexpr uint16_t kDescAvail = 1 << 7, kDescUsed = 1 << 15;
constexpr uint16_t kMaxQueueSize = 32768;  // virtio's limit

struct Desc {  // split: addr, len, flags, next; packed: addr, len, id, flags
  uint64_t addr;
  uint32_t len;
  uint16_t a;  // split: flags; packed: id
  uint16_t b;  // split: next; packed: flags
};
static_assert(sizeof(Desc) == 16);

// Split ring: avail->flags bit 0 asks for no interrupt; used->flags bit 0
// asks for no kick.
constexpr uint16_t kAvailNoInterrupt = 1, kUsedNoNotify = 1;
struct UsedElem {
  uint32_t id;
  uint32_t len;
};
// Packed rings' event suppression: flags 0 enable, 1 disable, 2 desc.
constexpr uint16_t kEventEnable = 0, kEventDisable = 1, kEventDesc = 2;
struct EventSuppress {
  uint16_t off_wrap;
  uint16_t flags;
};

// virtio-net: queue 2k receives (the device writes), 2k+1 transmits.
struct NetHdr {
  uint8_t flags;  // 1: needs csum, 2: data valid
  uint8_t gso_type;  // 0 none, 1 tcpv4, 3 udp, 4 tcpv6, 0x80 ecn
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
  uint16_t num_buffers;  // with VERSION_1 or MRG_RXBUF
};
static_assert(sizeof(NetHdr) == 12);

// The event-index rule: notify if new_idx passed event since old_idx.
inline bool need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx) {
  return uint16_t(new_idx - event - 1) < uint16_t(new_idx - old_idx);
}

}  // namespace unetmap::vhost
