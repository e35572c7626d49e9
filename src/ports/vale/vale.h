// VALE switches: what the rest of unetmap (vale-ctl, tests) may ask of them.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/registry.h"

namespace unetmap {

constexpr uint32_t kMaxSwitches = 64;
constexpr uint32_t kSwitchPorts = 254;  // ports per VALE switch, as netmap
constexpr uint32_t kMacTable = 1024;    // learning-bridge hash entries
constexpr uint32_t kLookupData = 256;   // a lookup's private data, per switch

// A VALE switch, in VALE's table of the registry (its type area): changed
// under the registry lock. ports[] maps switch port index -> registry port
// (-1 free); gen changes on every attach/detach so forwarding processes
// refresh their view. mac[] is the learning table: (1 << 63) | (port << 48)
// | MAC. lookup_data is the lookup's private data, shared by every
// process: zeroed when the lookup is set, written by its config.
struct SwitchEntry {
  char name[NETMAP_REQ_IFNAMSIZ];  // "vale0"
  uint32_t in_use;
  uint32_t nports;
  std::atomic<uint32_t> gen;
  char lookup[32];  // name of the lookup ("" = learning bridge)
  int16_t ports[kSwitchPorts];
  alignas(8) uint8_t lookup_data[kLookupData];
  std::atomic<uint64_t> mac[kMacTable];
};

// VALE's part of a port entry (PortEntry::ext).
struct ValePortExt {
  int16_t sw;        // switch index, -1 when not attached
  uint16_t sw_port;  // port index on the switch
  uint16_t hdr_len;  // virtio-net header before each frame (netmap's virt_hdr_len): 0, 10, 12
};
inline ValePortExt& vale_port(PortEntry& pe) { return port_ext<ValePortExt>(pe); }
inline const ValePortExt& vale_port(const PortEntry& pe) { return port_ext<ValePortExt>(pe); }
// Switch i (registry locked, or read-only by a forwarder); out of range, a
// process-local empty one.
SwitchEntry& vale_switch(Registry& reg, int i);
// Whether pe is a VALE port.
bool is_vale_port(const PortEntry& pe);
class Adapter;
const Adapter& vale_adapter();

// A lookup decides where a packet goes: a switch port index, or one of
// these. It runs in the sender's txsync, once per packet.
constexpr uint32_t kValeBroadcast = 0xffff;  // every port but the source
constexpr uint32_t kValeDrop = 0xfffe;

struct SwitchEntry;
struct ValeLookupCtx {
  SwitchEntry* sw;     // the switch (its learning table: sw->mac)
  uint16_t src_port;   // the sender's port index
  uint16_t src_ring;   // the sender's ring
  uint16_t slot_flags; // flags of the packet's first slot (NS_NO_LEARN...)
};
using ValeLookupFn = uint32_t (*)(const uint8_t* pkt, uint32_t len, const ValeLookupCtx& ctx);

// A lookup is a set of operations, as netmap's netmap_bdg_ops. lookup runs
// per packet and may read and write sw->lookup_data (other processes run
// it at the same time: single words, atomics); config and dtor run on
// control paths, with the registry locked.
struct ValeLookupOps {
  ValeLookupFn lookup = nullptr;
  // A control request's bytes (vale_config_lookup) into sw.lookup_data.
  // 0 or an errno value with *why set. None: the lookup takes no config.
  int (*config)(SwitchEntry& sw, std::span<const uint8_t> req, std::string* why) = nullptr;
  // The switch goes or its lookup changes; sw.lookup_data is zeroed after.
  // It runs in the process that does this, if that process knows the lookup.
  void (*dtor)(SwitchEntry& sw) = nullptr;
};

// "learning" (the default) and "hub" are built into every process. A
// program registers its own before it forwards: a switch stores the name,
// and a process that has not registered it drops that switch's packets
// (counted in its tx rings' drops), as netmap cannot run a lookup whose
// module is not loaded. Returns 0, or EEXIST / EINVAL.
int vale_register_lookup(const std::string& name, ValeLookupFn fn);
int vale_register_lookup(const std::string& name, const ValeLookupOps& ops);
// Set switch `sw`'s lookup ("" for the default): the old one's dtor runs
// and the private data is zeroed. 0 or an errno value.
int vale_set_lookup(const std::string& sw, const std::string& lookup, std::string* why);
// Hand `req` to the config of switch `sw`'s lookup (this process must know
// it). 0 or an errno value (EOPNOTSUPP: a lookup without config).
int vale_config_lookup(const std::string& sw, std::span<const uint8_t> req, std::string* why);

struct ValePortInfo {
  std::string name;  // "vale0:a"
  uint32_t index = 0;
  bool persistent = false;
  uint16_t mem_id = 0;
  uint16_t rings[2] = {0, 0};
  uint32_t slots[2] = {0, 0};
  uint64_t tx_packets = 0, tx_bytes = 0;  // sent into the switch
  uint64_t rx_packets = 0;                // released by the receiver
  uint64_t drops = 0;     // for this port: no room for all of a packet
  uint64_t tx_drops = 0;  // from this port: bad slots (rewritten after the check), too long,
                          // or a lookup the sender does not know
  uint32_t hdr_len = 0;   // its virtio-net header length
};

struct ValeSwitchInfo {
  std::string name;
  std::string lookup;
  std::vector<ValePortInfo> ports;
};

// netmap's VALE control requests (NIOCCTRL VALE_* and the legacy nr_cmd
// codes). Each returns 0 or an errno value with *why set.
struct ValeNewif {
  uint16_t rings[2] = {0, 0};
  uint32_t slots[2] = {0, 0};
  uint16_t mem_id = 0;
};
// *made (if given) gets what was made: rings, slots and region, as netmap
// writes them back into the request.
int vale_newif(const std::string& name, const ValeNewif& conf, std::string* why,
               ValeNewif* made = nullptr);
int vale_delif(const std::string& name, std::string* why);
// name is "valeX:Y"; *port_index gets Y's index on the switch.
int vale_attach(const std::string& name, uint32_t* port_index, std::string* why);
int vale_detach(const std::string& name, uint32_t* port_index, std::string* why);
// The virtio-net header length of VALE port `name` (netmap's
// NETMAP_REQ_PORT_HDR_SET/GET): 0, 10 or 12 bytes before each frame in its
// rings. The switch converts between ports whose lengths differ. 0 or an
// errno value with *why (ENXIO: no such VALE port; EINVAL: a bad length).
int vale_set_hdr_len(const std::string& name, uint32_t len, std::string* why);
int vale_hdr_len(const std::string& name, uint32_t* len, std::string* why);

// Whether `port` is a persistent VALE port; *sw gets the switch it is on
// ("" if none).
bool vale_persistent(const std::string& port, std::string* sw);
// With a name: its switch and port index. Without: the first port at or
// after (*bridge, *port), its name in *name; ENOENT past the last.
int vale_list_port(std::string* name, uint32_t* bridge, uint32_t* port, std::string* why);

// Every switch (or the one named), with its ports and counters.
int vale_list(const std::string& only, std::vector<ValeSwitchInfo>* out, std::string* why);

}  // namespace unetmap
