// What reject, reset and unreach send back: a TCP RST answering a TCP
// segment, or an ICMP (ICMPv6) destination unreachable quoting the packet,
// as an Ethernet frame to the packet's sender.
#pragma once

#include <cstdint>

#include "ipfw/packet.h"
#include "ipfw/rules.h"

namespace unetmap::ipfw {

// The reply to p for action a (kReject, kReset, kUnreach with `code`)
// into out (cap bytes, at least 128); its length, or 0 if none is due (a
// RST is never answered, nor an ICMP error, nor a fragment but the first).
uint32_t make_reply(const Packet& p, Action a, uint32_t code, uint8_t* out, uint32_t cap);

}  // namespace unetmap::ipfw
