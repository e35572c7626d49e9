// VALE lookups: where a packet goes, decided once per packet in the
// sender's txsync. A lookup is a set of operations (ValeLookupOps in
// vale.h, as netmap's netmap_bdg_ops) found by name: a switch stores the
// name and the lookup's private data (SwitchEntry::lookup_data), and each
// process finds the operations by that name, first among the built-in
// lookups every process has ("learning", the default, and "hub"), then
// among those the program registered (vale_register_lookup). A process
// that knows neither cannot run the lookup: forward.cc drops the switch's
// packets there.
#include <errno.h>

#include <cstring>
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

struct NamedLookup {
  std::string_view name;
  ValeLookupOps ops;
};
// Every process has these, whoever set them on a switch.
const NamedLookup kBuiltin[] = {
    {"learning", {learning_lookup, nullptr, nullptr}},
    {"hub", {hub_lookup, nullptr, nullptr}},
};

// The ones this program registered.
struct LookupEntry {
  std::string name;
  ValeLookupOps ops;
};
std::mutex g_lookup_mu;
std::vector<LookupEntry>& lookups() {
  static std::vector<LookupEntry> v;
  return v;
}

const ValeLookupOps* builtin(std::string_view n) {
  for (const NamedLookup& b : kBuiltin)
    if (b.name == n) return &b.ops;
  return nullptr;
}

}  // namespace

bool find_lookup(const char* name, ValeLookupOps* ops) {
  std::string_view n = name[0] ? name : "learning";
  if (const ValeLookupOps* b = builtin(n)) {
    *ops = *b;
    return true;
  }
  std::lock_guard<std::mutex> g(g_lookup_mu);
  for (auto& e : lookups())
    if (e.name == n) {
      *ops = e.ops;
      return true;
    }
  return false;
}

void lookup_gone(SwitchEntry& sw) {
  ValeLookupOps ops;
  if (find_lookup(sw.lookup, &ops) && ops.dtor) ops.dtor(sw);
  memset(sw.lookup_data, 0, sizeof sw.lookup_data);
}

}  // namespace unetmap::vale

namespace unetmap {

int vale_register_lookup(const std::string& name, const ValeLookupOps& ops) {
  if (name.empty() || name.size() >= sizeof(SwitchEntry::lookup) || !ops.lookup) return EINVAL;
  if (vale::builtin(name)) return EEXIST;
  std::lock_guard<std::mutex> g(vale::g_lookup_mu);
  for (auto& e : vale::lookups())
    if (e.name == name) return EEXIST;
  vale::lookups().push_back({name, ops});
  return 0;
}

int vale_register_lookup(const std::string& name, ValeLookupFn fn) {
  return vale_register_lookup(name, ValeLookupOps{fn, nullptr, nullptr});
}

}  // namespace unetmap
