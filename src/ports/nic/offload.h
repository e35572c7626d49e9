// What NIC offloads leave for unetmap to do in software.
//
// Checksums. Frames on a NIC's rx ring may carry a TCP/UDP checksum that the sender
// left for the hardware to finish (a veth peer with checksum offload, the
// usual case in containers): valid on the way to a NIC, invalid to a stack
// that receives them as they are. Before a host tx ring injects a frame,
// its L4 checksum is computed afresh, so TCP keeps working through the
// host rings whatever the offloads (upstream netmap leaves this to the
// user, who must turn offloads off with ethtool).
//
// Segmentation. An AF_PACKET socket sees frames as the stack has them:
// a veth peer's TSO or a NIC's GRO gives TCP frames of up to 64 KiB, which
// the rx ring gets cut back to the wire's size, as the NIC would have sent
// them, each with its own headers and checksums.
#pragma once

#include <functional>

#include <cstdint>

namespace unetmap::nic {

// Recompute the TCP or UDP checksum of an Ethernet frame (IPv4 or IPv6,
// one optional VLAN tag, not a fragment); other frames are left alone.
void fix_l4_checksum(uint8_t* frame, uint32_t len);

// Cut a TCP frame longer than `mtu` (IP packet size) into frames of at
// most mtu, calling out(frame, len) for each (the frames live in scratch
// space until out returns). False if the frame is not TCP over IPv4/IPv6.
bool tcp_segment(const uint8_t* frame, uint32_t len, uint32_t mtu,
                 const std::function<void(uint8_t*, uint32_t)>& out);

}  // namespace unetmap::nic
