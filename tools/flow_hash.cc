#include "flow_hash.h"

#include <string.h>

#include "ipfw/packet.h"

namespace unetmap::lb {

namespace {

// One 64-bit mix per word (a multiply-xorshift finaliser): the hash of
// a key is the same wherever it runs, with no table and no seed.
uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

uint64_t mix_bytes(uint64_t h, const uint8_t* p, uint32_t n) {
  for (uint32_t k = 0; k < n; k += 8) {
    uint64_t w = 0;
    memcpy(&w, p + k, n - k < 8 ? n - k : 8);
    h = mix(h, w);
  }
  return h;
}

}  // namespace

FlowKey flow_hash(const uint8_t* frame, uint32_t len) {
  ipfw::Packet p;
  ipfw::parse_packet(frame, len, &p);
  if (p.ipv && !p.truncated) {
    const uint32_t alen = p.ipv == 6 ? 16 : 4;
    const bool ports = p.has_ports && !p.fragmented;
    const uint16_t sp = ports ? p.sport : 0, dp = ports ? p.dport : 0;
    // The lower end first: (address, then port).
    const int c = memcmp(p.src, p.dst, alen);
    const bool swap = c > 0 || (c == 0 && sp > dp);
    const uint8_t* lo = swap ? p.dst : p.src;
    const uint8_t* hi = swap ? p.src : p.dst;
    uint64_t h = mix(p.ipv, p.proto);
    h = mix_bytes(h, lo, alen);
    h = mix_bytes(h, hi, alen);
    h = mix(h, uint64_t(swap ? dp : sp) << 16 | (swap ? sp : dp));
    return {uint32_t(h ^ (h >> 32)), true};
  }
  if (len < 12) return {0, false};
  const bool swap = memcmp(frame, frame + 6, 6) > 0;
  uint64_t h = mix_bytes(0, frame + (swap ? 6 : 0), 6);
  h = mix_bytes(h, frame + (swap ? 0 : 6), 6);
  return {uint32_t(h ^ (h >> 32)), false};
}

}  // namespace unetmap::lb
