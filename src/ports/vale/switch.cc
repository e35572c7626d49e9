// VALE's switch table, in VALE's part of the registry's type area (see
// SwitchEntry in vale.h): switches are made by the first port attached to
// them and go with their last one, under the registry lock. Ports are
// attached and detached here, and a VALE port's rings are made here, in a
// private region sized for it unless the name asks for one (@N).
#include <errno.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "ports/monitor/monitor.h"  // kMonitorTxSlots: a private region has room for monitors
#include "ports/vale/vale_impl.h"

namespace unetmap::vale {

bool split_name(std::string_view name, std::string* sw, std::string* port) {
  if (name.substr(0, 4) != "vale") return false;
  size_t colon = name.find(':');
  if (colon == std::string_view::npos || colon + 1 >= name.size()) return false;
  *sw = std::string(name.substr(0, colon));
  *port = std::string(name.substr(colon + 1));
  return true;
}

int find_switch(Registry& reg, const std::string& name) {
  for (uint32_t i = 0; i < kMaxSwitches; i++)
    if (vale_switch(reg, int(i)).in_use && name == vale_switch(reg, int(i)).name) return int(i);
  return -1;
}

int alloc_switch(Registry& reg, const std::string& name) {
  for (uint32_t i = 0; i < kMaxSwitches; i++) {
    SwitchEntry& s = vale_switch(reg, int(i));
    if (s.in_use) continue;
    snprintf(s.name, sizeof s.name, "%s", name.c_str());
    s.lookup[0] = 0;
    memset(s.lookup_data, 0, sizeof s.lookup_data);
    s.nports = 0;
    for (auto& p : s.ports) p = -1;
    for (auto& m : s.mac) m.store(0, std::memory_order_relaxed);
    s.gen.fetch_add(1);
    s.in_use = 1;
    return int(i);
  }
  return -1;
}

namespace {

// A private region for one port, sized for its rings (netmap's private
// allocator of a VALE port): ids from 1000 up, the first one free.
uint16_t pick_private_region(Registry& reg) {
  for (uint32_t id = 1000; id <= Region::kMaxId; id++) {
    bool used = false;
    for (const PortEntry& o : reg.file()->ports)
      if (o.kind != kNoPort && o.mem_id == id) used = true;
    struct stat st;
    if (!used && stat((runtime_dir() + "/" + Region::file_name(uint16_t(id))).c_str(), &st) != 0)
      return uint16_t(id);
  }
  return 0;
}

// As vale-ctl documents (netmap itself bounds VALE rings at 4096 slots).
constexpr uint32_t kMaxValeSlots = 65536;
// The pipes a VALE port's private region has room for: netmap's default
// for the private allocator of a VALE port (2), with rings of up to
// kPrivatePipeSlots (pipes' default): sizing them from the port's own rings
// made a 65536-slot port's region 1.7 GB (found by tests/fuzz/nmreq_fuzz).
constexpr uint32_t kPrivatePipes = 2;
constexpr uint32_t kPrivatePipeSlots = 1024;
// The largest private region a VALE port may ask for (its rings and the
// room for monitors scale with rings x slots: 64 rings of 65536 slots made
// a 15 GB region, reserved up front, found by tests/fuzz/nmreq_fuzz).
constexpr uint64_t kMaxPrivateBytes = 1ull << 30;

RegionConfig private_config(const PortEntry& pe) {
  RegionConfig c = RegionConfig::from_env();
  uint32_t rings = 0, bufs = 0, max_slots = 0;
  for (int d : {kTx, kRx}) {
    rings += pe.nrings[d] + pe.nhost[d];
    bufs += (pe.nrings[d] + pe.nhost[d]) * pe.nslots[d];
    if (pe.nslots[d] > max_slots) max_slots = pe.nslots[d];
  }
  // Room for kMaxMonitors copy monitors too: their rings live in the
  // region of the port they watch (the file is sparse: unused room is free).
  const uint32_t mon_rings = kMaxMonitors * std::max(pe.nrings[kTx], pe.nrings[kRx]);
  // And the pipes netmap's private allocator has room for (lb opens its
  // output pipes in its input port's region): netmap adds 8 ring objects
  // per pipe of kPrivatePipes; a pipe here takes 4 (its rx rings are the
  // other end's tx rings, without buffers of their own), so that is room
  // for 2 * kPrivatePipes pipes of kPrivatePipeSlots, buffers included.
  const uint32_t pipe_rings = 8 * kPrivatePipes;
  const uint32_t pipe_bufs = 2 * kPrivatePipes * 2 * std::min(max_slots, kPrivatePipeSlots);
  c.ring_num = rings + mon_rings + kMaxMonitors + pipe_rings;  // each monitor has a tx ring too
  c.ring_size = uint32_t((sizeof(netmap_ring) + sizeof(netmap_slot) * max_slots + 4095) & ~4095ull);
  c.buf_num = bufs + mon_rings * max_slots + kMaxMonitors * kMonitorTxSlots + pipe_bufs + 2 +
              256;  // reserved, plus extra buffers
  c.if_num = 64;
  c.if_size = 1024;
  return c;
}

void release_switch_if_empty(Registry& reg, int s) {
  SwitchEntry& sw = vale_switch(reg, s);
  if (sw.nports != 0) return;
  lookup_gone(sw);
  sw.in_use = 0;
}

}  // namespace

int make_port(Registry& reg, int p, const PortRequest& req, std::string* why) {
  PortEntry& pe = reg.port(p);
  for (int d : {kTx, kRx}) {
    pe.nrings[d] = req.nrings[d] ? req.nrings[d] : 1;
    pe.nslots[d] = req.nslots[d] ? req.nslots[d] : 1024;
    if (pe.nrings[d] > kMaxRings) {
      *why = "VALE ports have at most " + std::to_string(kMaxRings) + " rings";
      return EINVAL;
    }
    // The private region is sized from these: an unbounded count made a
    // region of gigabytes (found by tests/fuzz/nmreq_fuzz).
    if (pe.nslots[d] > kMaxValeSlots) {
      *why = "VALE rings have at most " + std::to_string(kMaxValeSlots) + " slots";
      return EINVAL;
    }
  }
  RegionConfig cfg = RegionConfig::from_env();
  pe.mem_id = req.mem_id;
  if (!pe.mem_id) {
    pe.mem_id = pick_private_region(reg);
    cfg = private_config(pe);
    if (!pe.mem_id) {
      *why = "no free region id for a private VALE region";
      return ENOMEM;
    }
    const uint64_t bytes = uint64_t(cfg.buf_num) * cfg.buf_size + uint64_t(cfg.ring_num) * cfg.ring_size;
    if (bytes > kMaxPrivateBytes) {
      *why = "a VALE port of " + std::to_string(pe.nrings[kTx]) + "/" + std::to_string(pe.nrings[kRx]) +
             " rings of " + std::to_string(pe.nslots[kTx]) + "/" + std::to_string(pe.nslots[kRx]) +
             " slots needs a private region of " + std::to_string(bytes >> 20) + " MB (with room for " +
             "monitors and pipes): at most " + std::to_string(kMaxPrivateBytes >> 20) +
             " MB; use fewer rings or slots, or a shared region (@N)";
      return ENOMEM;
    }
  }
  int err = 0;
  auto region = Region::get(pe.mem_id, cfg, &err, why);
  if (!region) return err;
  return make_port_rings(reg, p, *region, why);
}

int attach(Registry& reg, int p, const std::string& swname, std::string* why) {
  ValePortExt& vp = vale_port(reg.port(p));
  int s = find_switch(reg, swname);
  if (s < 0 && (s = alloc_switch(reg, swname)) < 0) {
    *why = "too many VALE switches (" + std::to_string(kMaxSwitches) + ")";
    return ENOMEM;
  }
  SwitchEntry& sw = vale_switch(reg, s);
  uint32_t slot = 0;
  while (slot < kSwitchPorts && sw.ports[slot] >= 0) slot++;
  if (slot == kSwitchPorts) {
    *why = "switch " + swname + " is full (" + std::to_string(kSwitchPorts) + " ports)";
    release_switch_if_empty(reg, s);
    return ENOSPC;
  }
  // The port's sw is written last: it is what a repair trusts.
  sw.ports[slot] = int16_t(p);
  sw.nports++;
  vp.sw_port = uint16_t(slot);
  vp.sw = int16_t(s);
  sw.gen.fetch_add(1);
  return 0;
}

void detach(Registry& reg, int p) {
  ValePortExt& vp = vale_port(reg.port(p));
  if (uint32_t(vp.sw) >= kMaxSwitches || vp.sw_port >= kSwitchPorts ||
      vale_switch(reg, vp.sw).ports[vp.sw_port] != p) {
    vp.sw = -1;  // not (or not yet) in the switch's table
    return;
  }
  SwitchEntry& sw = vale_switch(reg, vp.sw);
  sw.ports[vp.sw_port] = -1;
  sw.nports--;
  sw.gen.fetch_add(1);
  for (auto& m : sw.mac) {
    uint64_t e = m.load(std::memory_order_relaxed);
    if ((e & kMacValid) && ((e >> 48) & 0x7fff) == vp.sw_port) m.store(0, std::memory_order_relaxed);
  }
  release_switch_if_empty(reg, vp.sw);
  vp.sw = -1;
}

// A switch's port table from the ports (a port's sw and sw_port are
// written last when it is attached).
void recount_switches(Registry& reg) {
  for (uint32_t s = 0; s < kMaxSwitches; s++) {
    SwitchEntry& sw = vale_switch(reg, int(s));
    for (auto& q : sw.ports) q = -1;
    sw.nports = 0;
  }
  for (uint32_t i = 0; i < kMaxPorts; i++) {
    PortEntry& pe = reg.port(int(i));
    ValePortExt& vp = vale_port(pe);
    if (!is_vale_port(pe) || vp.sw < 0) continue;
    SwitchEntry& sw = vale_switch(reg, vp.sw);
    if (uint32_t(vp.sw) >= kMaxSwitches || !sw.in_use || vp.sw_port >= kSwitchPorts ||
        sw.ports[vp.sw_port] >= 0) {
      vp.sw = -1;
      continue;
    }
    sw.ports[vp.sw_port] = int16_t(i);
    sw.nports++;
  }
  for (uint32_t s = 0; s < kMaxSwitches; s++) {
    SwitchEntry& sw = vale_switch(reg, int(s));
    if (sw.in_use && sw.nports == 0) {
      lookup_gone(sw);
      sw.in_use = 0;
    }
    sw.gen.fetch_add(1);
  }
}

}  // namespace unetmap::vale

namespace unetmap {

SwitchEntry& vale_switch(Registry& reg, int i) {
  if (uint32_t(i) < kMaxSwitches) return static_cast<SwitchEntry*>(type_area(reg, vale_adapter()))[i];
  static thread_local SwitchEntry nowhere;
  nowhere.in_use = 0;
  return nowhere;
}

}  // namespace unetmap
