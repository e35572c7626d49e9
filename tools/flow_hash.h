// A symmetric flow hash for load balancing (lb): a packet and its reply
// hash alike, so both directions of a connection reach one consumer.
//
//   IP (v4, v6, behind up to four VLAN tags, IPv6 extension headers
//   walked): the two (address, port) ends in a fixed order, and the
//   protocol. Fragments hash on the addresses and protocol only (the
//   ports are in the first fragment alone), so a datagram's fragments stay
//   together. Not IP: the two MAC addresses in a fixed order.
#pragma once

#include <cstdint>

namespace unetmap::lb {

struct FlowKey {
  uint32_t hash;
  bool ip;  // false: hashed on the MAC addresses
};

// The first len bytes of an Ethernet frame (the whole head of a packet:
// at least its headers, when they fit).
FlowKey flow_hash(const uint8_t* frame, uint32_t len);

}  // namespace unetmap::lb
