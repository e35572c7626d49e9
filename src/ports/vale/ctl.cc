// VALE's control requests: netmap's NIOCCTRL VALE_* requests (and the
// legacy nr_cmd codes) as src/abi/ctrl.cc and tools/vale-ctl.cc ask them,
// each under the registry lock: persistent ports (newif, delif), attach
// and detach, listing, and a switch's lookup.
#include <errno.h>

#include <cctype>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "ports/vale/vale_impl.h"

namespace unetmap {

namespace {

// Run f with the registry locked (and dead processes reaped).
template <typename F>
int with_registry(std::string* why, F f) {
  int err = 0;
  std::optional<RegistryLock> g;
  Registry* reg = lock_registry(&g, &err, why);
  return reg ? f(*reg) : err;
}

bool split_or_explain(const std::string& name, std::string* sw, std::string* port,
                      std::string* why) {
  if (vale::split_name(name, sw, port)) return true;
  *why = "'" + name + "' is not valeX:PORT";
  return false;
}

bool plain_name(const std::string& n) {
  if (n.empty() || n.size() >= NETMAP_REQ_IFNAMSIZ) return false;
  for (char c : n)
    if (!isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

// Run f on switch swname with the registry locked.
template <typename F>
int with_switch(const std::string& swname, std::string* why, F f) {
  return with_registry(why, [&](Registry& reg) {
    int s = vale::find_switch(reg, swname);
    if (s < 0) {
      *why = "no switch " + swname;
      return ENOENT;
    }
    return f(vale_switch(reg, s));
  });
}

}  // namespace

int vale_newif(const std::string& name, const ValeNewif& conf, std::string* why,
               ValeNewif* made) {
  if (!plain_name(name)) {
    *why = "persistent port name '" + name + "' must be letters, digits and _";
    return EINVAL;
  }
  return with_registry(why, [&](Registry& reg) {
    if (find_port_any(reg, name) >= 0) {
      *why = "port " + name + " already exists";
      return EEXIST;
    }
    int p = reg.alloc_port(name.c_str(), vale_adapter().kind());
    if (p < 0) {
      *why = "too many ports";
      return ENOMEM;
    }
    PortRequest req;
    req.name = name;
    req.mem_id = conf.mem_id;
    for (int d : {kTx, kRx}) req.nrings[d] = conf.rings[d], req.nslots[d] = conf.slots[d];
    if (int err = vale::make_port(reg, p, req, why)) {
      reg.unmake_port(p);
      return err;
    }
    reg.port(p).persistent = 1;
    reg.publish_port(p);
    if (made) {
      const PortEntry& pe = reg.port(p);
      for (int d : {kTx, kRx}) made->rings[d] = pe.nrings[d], made->slots[d] = pe.nslots[d];
      made->mem_id = pe.mem_id;
    }
    return 0;
  });
}

int vale_delif(const std::string& name, std::string* why) {
  return with_registry(why, [&](Registry& reg) {
    int p = reg.find_port(name.c_str());
    if (p < 0 || !is_vale_port(reg.port(p)) || !reg.port(p).persistent) {
      *why = "no persistent VALE port " + name;
      return ENXIO;
    }
    PortEntry& pe = reg.port(p);
    if (vale_port(pe).sw >= 0) {
      *why = name + " is attached to " + vale_switch(reg, vale_port(pe).sw).name + ": detach it first (vale-ctl -d)";
      return EBUSY;
    }
    if (pe.nregs > 0) {
      *why = name + " is open by " + std::to_string(pe.nregs) + " registration(s)";
      return EBUSY;
    }
    pe.persistent = 0;
    reg.maybe_destroy_port(p);
    return 0;
  });
}

int vale_attach(const std::string& name, uint32_t* port_index, std::string* why) {
  std::string swname, portname;
  if (!split_or_explain(name, &swname, &portname, why)) return EINVAL;
  return with_registry(why, [&](Registry& reg) {
    int p = reg.find_port(portname.c_str());
    if (p < 0) {
      *why = "no port " + portname + " to attach (make one with vale-ctl -n " + portname + ")";
      return ENXIO;
    }
    PortEntry& pe = reg.port(p);
    if (!is_vale_port(pe) || !pe.persistent) {
      *why = portname + " cannot be attached to a switch (not a persistent VALE port)";
      return EINVAL;
    }
    if (vale_port(pe).sw >= 0) {
      *why = portname + " is already attached to " + vale_switch(reg, vale_port(pe).sw).name;
      return EBUSY;
    }
    if (int err = vale::attach(reg, p, swname, why)) return err;
    *port_index = vale_port(pe).sw_port;
    return 0;
  });
}

int vale_detach(const std::string& name, uint32_t* port_index, std::string* why) {
  std::string swname, portname;
  if (!split_or_explain(name, &swname, &portname, why)) return EINVAL;
  return with_registry(why, [&](Registry& reg) {
    int p = reg.find_port(portname.c_str());
    if (p < 0 || !is_vale_port(reg.port(p)) || vale_port(reg.port(p)).sw < 0 ||
        swname != vale_switch(reg, vale_port(reg.port(p)).sw).name) {
      *why = portname + " is not attached to " + swname;
      return ENXIO;
    }
    if (!reg.port(p).persistent) {
      *why = name + " is an ephemeral port: it goes when its last user closes it";
      return EINVAL;
    }
    *port_index = vale_port(reg.port(p)).sw_port;
    vale::detach(reg, p);
    return 0;
  });
}

int vale_set_hdr_len(const std::string& name, uint32_t len, std::string* why) {
  if (len != 0 && len != 10 && len != 12) {
    *why = "virtio-net header length " + std::to_string(len) + ": netmap takes 0, 10 or 12";
    return EINVAL;
  }
  return with_registry(why, [&](Registry& reg) {
    const int p = find_port_any(reg, name);
    if (p < 0 || !is_vale_port(reg.port(p))) {
      *why = "'" + name + "' is no VALE port: virtio-net headers are set on VALE ports";
      return ENXIO;
    }
    ValePortExt& vp = vale_port(reg.port(p));
    if (vp.hdr_len == len) return 0;
    vp.hdr_len = uint16_t(len);
    // Senders' views of the switch carry each port's length: they refresh.
    if (vp.sw >= 0) vale_switch(reg, vp.sw).gen.fetch_add(1);
    return 0;
  });
}

int vale_hdr_len(const std::string& name, uint32_t* len, std::string* why) {
  return with_registry(why, [&](Registry& reg) {
    const int p = find_port_any(reg, name);
    if (p < 0 || !is_vale_port(reg.port(p))) {
      *why = "'" + name + "' is no VALE port";
      return ENXIO;
    }
    *len = vale_port(reg.port(p)).hdr_len;
    return 0;
  });
}

bool vale_persistent(const std::string& port, std::string* sw) {
  std::string why;
  bool yes = false;
  sw->clear();
  with_registry(&why, [&](Registry& reg) {
    int p = reg.find_port(port.c_str());
    if (p < 0 || !is_vale_port(reg.port(p)) || !reg.port(p).persistent) return 0;
    yes = true;
    if (vale_port(reg.port(p)).sw >= 0) *sw = vale_switch(reg, vale_port(reg.port(p)).sw).name;
    return 0;
  });
  return yes;
}

int vale_list_port(std::string* name, uint32_t* bridge, uint32_t* port, std::string* why) {
  return with_registry(why, [&](Registry& reg) {
    if (!name->empty()) {
      int p = find_port_any(reg, *name);
      if (p < 0 || !is_vale_port(reg.port(p)) || vale_port(reg.port(p)).sw < 0) {
        *why = "no VALE port " + *name;
        return ENXIO;
      }
      *bridge = uint32_t(vale_port(reg.port(p)).sw);
      *port = vale_port(reg.port(p)).sw_port;
      return 0;
    }
    for (uint32_t b = *bridge; b < kMaxSwitches; b++, *port = 0) {
      SwitchEntry& sw = vale_switch(reg, int(b));
      if (!sw.in_use) continue;
      for (uint32_t i = *port; i < kSwitchPorts; i++) {
        if (sw.ports[i] < 0) continue;
        const PortEntry& pe = reg.port(sw.ports[i]);
        *name = pe.persistent ? std::string(sw.name) + ":" + pe.name : std::string(pe.name);
        *bridge = b;
        *port = i;
        return 0;
      }
    }
    return ENOENT;
  });
}

int vale_set_lookup(const std::string& swname, const std::string& lookup, std::string* why) {
  ValeLookupOps ops;
  if (!lookup.empty() && !vale::find_lookup(lookup.c_str(), &ops)) {
    *why = "no lookup named '" + lookup + "' in this process";
    return EINVAL;
  }
  return with_switch(swname, why, [&](SwitchEntry& sw) {
    vale::lookup_gone(sw);
    snprintf(sw.lookup, sizeof sw.lookup, "%s", lookup.c_str());
    sw.gen.fetch_add(1);
    return 0;
  });
}

int vale_config_lookup(const std::string& swname, std::span<const uint8_t> req, std::string* why) {
  return with_switch(swname, why, [&](SwitchEntry& sw) {
    const char* name = sw.lookup[0] ? sw.lookup : "learning";
    ValeLookupOps ops;
    if (!vale::find_lookup(name, &ops)) {
      *why = std::string("switch ") + sw.name + " uses lookup '" + name + "', which this process has not registered";
      return EINVAL;
    }
    if (!ops.config) {
      *why = std::string("lookup '") + name + "' takes no configuration";
      return EOPNOTSUPP;
    }
    return ops.config(sw, req, why);
  });
}

int vale_list(const std::string& only, std::vector<ValeSwitchInfo>* out, std::string* why) {
  int err = 0;
  std::optional<RegistryLock> g;
  Registry* reg = lock_registry(&g, &err, why);
  if (!reg) return err;
  for (uint32_t i = 0; i < kMaxSwitches; i++) {
    SwitchEntry& sw = vale_switch(*reg, int(i));
    if (!sw.in_use || (!only.empty() && only != sw.name)) continue;
    ValeSwitchInfo si;
    si.name = sw.name;
    si.lookup = sw.lookup[0] ? sw.lookup : "learning";
    for (uint32_t j = 0; j < kSwitchPorts; j++) {
      if (sw.ports[j] < 0) continue;
      const PortEntry& pe = reg->port(sw.ports[j]);
      ValePortInfo pi;
      pi.name = pe.persistent ? std::string(sw.name) + ":" + pe.name : std::string(pe.name);
      pi.index = j;
      pi.persistent = pe.persistent;
      pi.mem_id = pe.mem_id;
      pi.hdr_len = vale_port(pe).hdr_len;
      for (int d : {kTx, kRx}) pi.rings[d] = pe.nrings[d], pi.slots[d] = pe.nslots[d];
      auto region = Region::get(pe.mem_id, RegionConfig::from_env(), &err, nullptr, false);  // a listing makes none
      if (region) {
        for (uint32_t r = 0; r < pe.nrings[kTx] && r <= kMaxRings; r++) {
          if (region->ring_port(pe.ring[kTx][r]) != sw.ports[j]) continue;
          KringState* ks = region->kring(pe.ring[kTx][r]);
          pi.tx_packets += ks->packets, pi.tx_bytes += ks->bytes, pi.tx_drops += ks->drops;
        }
        for (uint32_t r = 0; r < pe.nrings[kRx] && r <= kMaxRings; r++) {
          if (region->ring_port(pe.ring[kRx][r]) != sw.ports[j]) continue;
          KringState* ks = region->kring(pe.ring[kRx][r]);
          pi.rx_packets += ks->packets, pi.drops += ks->fwd_drops;
        }
      }
      si.ports.push_back(pi);
    }
    out->push_back(std::move(si));
  }
  if (!only.empty() && out->empty()) {
    *why = "no switch " + only;
    return ENOENT;
  }
  return 0;
}

}  // namespace unetmap
