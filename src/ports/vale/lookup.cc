// VALE lookups: where a packet goes, decided once per packet in the
// sender's txsync. "learning" (the default) and "hub" are built in; a
// program registers its own by name (vale_register_lookup). A switch
// stores the name of its lookup, and each process finds the function by
// that name.
#include <errno.h>

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "ports/vale/vale_impl.h"

namespace unetmap::vale {

namespace {

inline uint64_t mac_of(const uint8_t* p) {
  return uint64_t(p[0]) << 40 | uint64_t(p[1]) << 32 | uint64_t(p[2]) << 24 |
         uint64_t(p[3]) << 16 | uint64_t(p[4]) << 8 | uint64_t(p[5]);
}
inline uint32_t mac_hash(uint64_t mac) {
  uint64_t h = mac * 0x9e3779b97f4a7c15ull;
  return uint32_t(h >> 54) & (kMacTable - 1);
}

}  // namespace

uint32_t learning_lookup(const uint8_t* pkt, uint32_t len, const ValeLookupCtx& c) {
  if (len < 14) return kValeDrop;
  const uint64_t src = mac_of(pkt + 6), dst = mac_of(pkt);
  if (!(c.slot_flags & NS_NO_LEARN) && !(pkt[6] & 1)) {
    uint64_t e = kMacValid | uint64_t(c.src_port) << 48 | src;
    std::atomic<uint64_t>& slot = c.sw->mac[mac_hash(src)];
    if (slot.load(std::memory_order_relaxed) != e) slot.store(e, std::memory_order_relaxed);
  }
  if (pkt[0] & 1) return kValeBroadcast;  // broadcast and multicast
  uint64_t e = c.sw->mac[mac_hash(dst)].load(std::memory_order_relaxed);
  if ((e & kMacValid) && (e & 0xffffffffffffull) == dst) {
    uint32_t port = uint32_t(e >> 48) & 0x7fff;
    return port == c.src_port ? kValeDrop : port;
  }
  return kValeBroadcast;  // unknown destination: flood
}

uint32_t hub_lookup(const uint8_t*, uint32_t, const ValeLookupCtx&) { return kValeBroadcast; }

uint32_t unknown_lookup(const uint8_t*, uint32_t, const ValeLookupCtx&) { return kValeDrop; }

namespace {

struct LookupEntry {
  std::string name;
  ValeLookupFn fn;
};
std::mutex g_lookup_mu;
std::vector<LookupEntry>& lookups() {
  static std::vector<LookupEntry> v = {{"learning", learning_lookup}, {"hub", hub_lookup}};
  return v;
}

}  // namespace

ValeLookupFn find_lookup(const char* name) {
  std::lock_guard<std::mutex> g(g_lookup_mu);
  std::string_view n = name[0] ? name : "learning";
  for (auto& e : lookups())
    if (e.name == n) return e.fn;
  return nullptr;
}

}  // namespace unetmap::vale

namespace unetmap {

int vale_register_lookup(const std::string& name, ValeLookupFn fn) {
  if (name.empty() || name.size() >= sizeof(SwitchEntry::lookup) || !fn) return EINVAL;
  std::lock_guard<std::mutex> g(vale::g_lookup_mu);
  for (auto& e : vale::lookups())
    if (e.name == name) return EEXIST;
  vale::lookups().push_back({name, fn});
  return 0;
}

}  // namespace unetmap
