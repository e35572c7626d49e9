// tlem's route mode (-r): tlem as an IPv4 router between the subnets of
// its two ports, as netmap's tlem. Each side is a port on an interface
// with an IPv4 address; tlem answers ARP for that address, learns the
// neighbours' MAC addresses from their ARP, and sends an IPv4 frame that
// arrives on one side to the other with its Ethernet addresses rewritten:
// to the destination if it is on the other side's subnet, else to that
// side's gateway (-G), else nowhere. An unresolved next hop gets the frame
// as a broadcast, and an ARP request (at most one each 100 ms). Frames for
// the subnet they came from, non-IPv4 frames and frames to tlem's own
// addresses are dropped. The TTL is left alone, as netmap's does.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace unetmap::tlem {

using Mac = std::array<uint8_t, 6>;

struct Side {
  std::string ifname;
  uint32_t ip = 0, mask = 0, gw = 0;  // host byte order; gw 0: none
  Mac mac{};
  std::unordered_map<uint32_t, Mac> arp;       // neighbours learned
  std::unordered_map<uint32_t, uint64_t> asked;  // last ARP request sent, ns
  bool on_subnet(uint32_t a) const { return (a & mask) == (ip & mask); }
};

// The side of port `port` ("netmap:IF..."): its interface's address,
// netmask and MAC; false with *why.
bool side_of(const std::string& port, Side* s, std::string* why);

// An IPv4 address (-G); false if it is not one.
bool parse_ip(const char* a, uint32_t* out);

// What to do with a frame of `len` bytes (at least its first bytes in
// `f`, hlen of them) that arrived on side `in` for side `out`:
struct Route {
  enum Kind { kDrop, kConsumed, kForward } kind = kDrop;
  Mac dst{}, src{};  // kForward: the new Ethernet addresses
};
// Frames tlem sends itself (ARP replies out of `in`, requests out of
// `out`) are appended to reply_in / ask_out.
Route route(const uint8_t* f, uint32_t hlen, Side& in, Side& out, uint64_t now,
            std::vector<std::vector<uint8_t>>* reply_in, std::vector<std::vector<uint8_t>>* ask_out);

}  // namespace unetmap::tlem
