// The C API of VALE switches (include/unetmap/unetmap.h): unetmap_switches,
// unetmap_switch_ports and unetmap_switch_set_lookup, over vale.h.
#include <errno.h>
#include <unetmap/unetmap.h>

#include <string>
#include <vector>

#include "abi/file.h"  // fail(), existing_registry(), put_field()
#include "ports/vale/vale.h"

using namespace unetmap;

namespace {

// Every switch, or the one named; none (and nothing made) without a registry.
int switches(const std::string& only, std::vector<ValeSwitchInfo>* out) {
  {
    std::optional<RegistryLock> g;
    Registry* reg = nullptr;
    const int have = existing_registry(&g, &reg);
    if (have < 0) return -1;
    if (have == 0) return only.empty() ? 0 : fail(ENOENT, "no switch " + only);
  }
  std::string why;
  const int err = vale_list(only, out, &why);
  return err ? fail(err, why) : 0;
}

}  // namespace

extern "C" int unetmap_switches(struct unetmap_switch_info* out, int max) {
  if (max < 0 || (max > 0 && !out)) return fail(EINVAL, "unetmap_switches: no array for max entries");
  std::vector<ValeSwitchInfo> all;
  if (switches("", &all) != 0) return -1;
  for (size_t i = 0; i < all.size() && int(i) < max; i++) {
    unetmap_switch_info& o = out[i];
    memset(&o, 0, sizeof o);
    put_field(o.name, all[i].name);
    put_field(o.lookup, all[i].lookup);
    o.ports = uint32_t(all[i].ports.size());
  }
  return int(all.size());
}

extern "C" int unetmap_switch_ports(const char* sw, struct unetmap_switch_port* out, int max) {
  if (!sw) return fail(EFAULT, "unetmap_switch_ports: switch name is NULL");
  if (!*sw) return fail(EINVAL, "unetmap_switch_ports: no switch name");
  if (max < 0 || (max > 0 && !out)) return fail(EINVAL, "unetmap_switch_ports: no array for max entries");
  std::vector<ValeSwitchInfo> one;
  if (switches(sw, &one) != 0) return -1;
  const std::vector<ValePortInfo>& ports = one.at(0).ports;
  for (size_t i = 0; i < ports.size() && int(i) < max; i++) {
    const ValePortInfo& p = ports[i];
    unetmap_switch_port& o = out[i];
    memset(&o, 0, sizeof o);
    put_field(o.name, p.name);
    o.index = p.index;
    o.mem_id = p.mem_id;
    o.hdr_len = uint16_t(p.hdr_len);
    o.tx_rings = p.rings[kTx], o.rx_rings = p.rings[kRx];
    o.tx_slots = p.slots[kTx], o.rx_slots = p.slots[kRx];
    o.persistent = p.persistent;
    o.tx_packets = p.tx_packets, o.tx_bytes = p.tx_bytes, o.rx_packets = p.rx_packets;
    o.drops = p.drops, o.tx_drops = p.tx_drops;
  }
  return int(ports.size());
}

extern "C" int unetmap_switch_set_lookup(const char* sw, const char* lookup) {
  if (!sw || !lookup) return fail(EFAULT, "unetmap_switch_set_lookup: a name is NULL");
  std::string why;
  const int err = vale_set_lookup(sw, lookup, &why);
  return err ? fail(err, why) : 0;
}
