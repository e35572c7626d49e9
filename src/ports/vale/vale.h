// VALE switches: what the rest of unetmap (vale-ctl, tests) may ask of them.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "core/registry.h"

namespace unetmap {

constexpr uint32_t kMaxSwitches = 64;
constexpr uint32_t kSwitchPorts = 254;  // ports per VALE switch, as netmap
constexpr uint32_t kMacTable = 1024;    // learning-bridge hash entries

// A VALE switch, in VALE's table of the registry (its type area): changed
// under the registry lock. ports[] maps switch port index -> registry port
// (-1 free); gen changes on every attach/detach so forwarding processes
// refresh their view. mac[] is the learning table: (1 << 63) | (port << 48)
// | MAC.
struct SwitchEntry {
  char name[NETMAP_REQ_IFNAMSIZ];  // "vale0"
  uint32_t in_use;
  uint32_t nports;
  std::atomic<uint32_t> gen;
  char lookup[32];  // name of the lookup function ("" = learning bridge)
  int16_t ports[kSwitchPorts];
  std::atomic<uint64_t> mac[kMacTable];
};

// VALE's part of a port entry (PortEntry::ext).
struct ValePortExt {
  int16_t sw;        // switch index, -1 when not attached
  uint16_t sw_port;  // port index on the switch
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

// Lookups are found by name in each process: "learning" (the default) and
// "hub" are built in; a program registers its own before it forwards.
// Returns 0, or EEXIST / EINVAL.
int vale_register_lookup(const std::string& name, ValeLookupFn fn);
// Set switch `sw`'s lookup ("" for the default). 0 or an errno value.
int vale_set_lookup(const std::string& sw, const std::string& lookup, std::string* why);

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
  uint64_t tx_drops = 0;  // from this port: bad slots (rewritten after the check), too long
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
// Whether `port` is a persistent VALE port; *sw gets the switch it is on
// ("" if none).
bool vale_persistent(const std::string& port, std::string* sw);
// With a name: its switch and port index. Without: the first port at or
// after (*bridge, *port), its name in *name; ENOENT past the last.
int vale_list_port(std::string* name, uint32_t* bridge, uint32_t* port, std::string* why);

// Every switch (or the one named), with its ports and counters.
int vale_list(const std::string& only, std::vector<ValeSwitchInfo>* out, std::string* why);

}  // namespace unetmap
