#include "tlem_route.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace unetmap::tlem {

namespace {

constexpr uint16_t kArp = 0x0806, kIpv4 = 0x0800;
constexpr uint64_t kAskEveryNs = 100000000;  // an unresolved next hop is asked for at most every 100 ms
const Mac kBroadcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

uint16_t be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
void put32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24), p[1] = uint8_t(v >> 16), p[2] = uint8_t(v >> 8), p[3] = uint8_t(v);
}

// An ARP frame (op 1 request, 2 reply) from `from` (mac, ip) to (tha, tpa).
std::vector<uint8_t> arp_frame(uint16_t op, const Mac& eth_dst, const Mac& sha, uint32_t spa, const Mac& tha,
                               uint32_t tpa) {
  std::vector<uint8_t> f(60, 0);  // padded to Ethernet's minimum
  memcpy(&f[0], eth_dst.data(), 6);
  memcpy(&f[6], sha.data(), 6);
  f[12] = 0x08, f[13] = 0x06;
  f[14] = 0, f[15] = 1;     // Ethernet
  f[16] = 0x08, f[17] = 0;  // IPv4
  f[18] = 6, f[19] = 4;
  f[20] = 0, f[21] = uint8_t(op);
  memcpy(&f[22], sha.data(), 6);
  put32(&f[28], spa);
  memcpy(&f[32], tha.data(), 6);
  put32(&f[38], tpa);
  return f;
}

}  // namespace

bool parse_ip(const char* a, uint32_t* out) {
  in_addr x;
  if (inet_pton(AF_INET, a, &x) != 1) return false;
  *out = ntohl(x.s_addr);
  return true;
}

bool side_of(const std::string& port, Side* s, std::string* why) {
  std::string n = port.compare(0, 7, "netmap:") == 0 ? port.substr(7) : port;
  n = n.substr(0, n.find_first_of("-*^{}/@"));
  s->ifname = n;
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq r{};
  bool ok = fd >= 0 && n.size() < sizeof r.ifr_name;
  if (ok) strcpy(r.ifr_name, n.c_str());
  const char* what = "its address";
  if (ok && (ok = ioctl(fd, SIOCGIFADDR, &r) == 0))
    s->ip = ntohl(reinterpret_cast<sockaddr_in*>(&r.ifr_addr)->sin_addr.s_addr);
  if (ok && (what = "its netmask", ok = ioctl(fd, SIOCGIFNETMASK, &r) == 0))
    s->mask = ntohl(reinterpret_cast<sockaddr_in*>(&r.ifr_netmask)->sin_addr.s_addr);
  if (ok && (what = "its MAC address", ok = ioctl(fd, SIOCGIFHWADDR, &r) == 0))
    memcpy(s->mac.data(), r.ifr_hwaddr.sa_data, 6);
  const int e = errno;
  if (fd >= 0) close(fd);
  if (!ok)
    *why = "route mode needs ports on interfaces with an IPv4 address: " + port + " (interface '" + n +
           "'): cannot read " + what + ": " + strerror(e);
  return ok;
}

Route route(const uint8_t* f, uint32_t hlen, Side& in, Side& out, uint64_t now,
            std::vector<std::vector<uint8_t>>* reply_in, std::vector<std::vector<uint8_t>>* ask_out) {
  Route r;
  if (hlen < 14) return r;
  const uint16_t type = be16(f + 12);
  if (type == kArp) {
    r.kind = Route::kConsumed;
    if (hlen < 42 || be16(f + 14) != 1 || be16(f + 16) != kIpv4 || f[18] != 6 || f[19] != 4) return r;
    const uint16_t op = be16(f + 20);
    Mac sha;
    memcpy(sha.data(), f + 22, 6);
    const uint32_t spa = be32(f + 28), tpa = be32(f + 38);
    if (in.on_subnet(spa) && spa != in.ip && !(sha[0] & 1)) in.arp[spa] = sha;  // a neighbour of this side
    if (op == 1 && tpa == in.ip) reply_in->push_back(arp_frame(2, sha, in.mac, in.ip, sha, spa));
    return r;
  }
  if (type != kIpv4 || hlen < 34 || (f[14] >> 4) != 4) return r;
  const uint32_t dst = be32(f + 30);
  if (dst == in.ip || dst == out.ip || in.on_subnet(dst)) return r;  // for tlem, or for where it came from
  uint32_t hop = out.on_subnet(dst) ? dst : out.gw;
  if (hop == 0) return r;  // no route
  r.kind = Route::kForward;
  r.src = out.mac;
  const auto known = out.arp.find(hop);
  if (known != out.arp.end()) {
    r.dst = known->second;
    return r;
  }
  r.dst = kBroadcast;
  uint64_t& last = out.asked[hop];
  if (last == 0 || now - last >= kAskEveryNs) {
    last = now;
    ask_out->push_back(arp_frame(1, kBroadcast, out.mac, out.ip, Mac{}, hop));
  }
  return r;
}

}  // namespace unetmap::tlem
