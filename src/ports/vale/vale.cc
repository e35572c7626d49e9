// VALE: netmap's software Ethernet switch, "valeX:Y" (switch valeX, port Y).
//
// The switch and an ephemeral port are created by the first register of a
// name; the port goes with its last registration, the switch with its last
// port. Each port has tx and rx rings with buffers of their own, in a
// private region unless the name asks for one (@N), as netmap's VALE ports
// have private allocators; forwarding therefore always copies.
//
// Forwarding runs in the sender's txsync (forward.cc), lookups decide
// where a packet goes (lookup.cc), the switches are kept in the registry
// (switch.cc) and the control requests of vale-ctl and NIOCCTRL are in
// ctl.cc. This file is the adapter.
#include "ports/vale/vale.h"

#include <cctype>
#include <string>
#include <string_view>

#include "core/adapter.h"
#include "core/lease.h"
#include "ports/vale/vale_impl.h"

namespace unetmap {

namespace vale {
namespace {

class ValeAdapter final : public Adapter {
 public:
  bool owns(std::string_view name) const override {
    std::string sw, port;
    return split_name(name, &sw, &port) && name.find_first_of("{}") == std::string_view::npos;
  }
  const char* grammar() const override {
    return "VALE ports (valeX:Y) and persistent VALE ports made with vale-ctl -n";
  }
  // "valeX:" stays in the name, as in libnetmap.
  size_t spec_prefix(std::string_view spec) const override {
    if (spec.substr(0, 4) != "vale") return 0;
    size_t i = 4;
    while (i < spec.size() && (isalnum(static_cast<unsigned char>(spec[i])) || spec[i] == '_')) i++;
    return i < spec.size() && spec[i] == ':' ? i + 1 : 0;
  }
  const char* spec_prefix_form() const override { return "valeX:NAME"; }

  void init_entry(PortEntry& pe) const override { vale_port(pe).sw = -1; }
  // Senders fill the rx rings, in their txsync.
  bool producer_fills_rx() const override { return true; }
  int hdr_len(const std::string& name, uint32_t* len, std::string* why) const override {
    return vale_hdr_len(name, len, why);
  }
  int set_hdr_len(const std::string& name, uint32_t len, std::string* why) const override {
    return vale_set_hdr_len(name, len, why);
  }
  uint32_t shared_size() const override { return sizeof(SwitchEntry) * kMaxSwitches; }

  void recount(Registry& reg) const override { recount_switches(reg); }

  int create(Registry& reg, int p, const PortRequest& req, std::string* why) const override {
    std::string swname, portname;
    if (!split_name(req.name, &swname, &portname)) {
      *why = "VALE port name '" + req.name + "' is not valeX:Y";
      return EINVAL;
    }
    if (int err = make_port(reg, p, req, why)) return err;
    int err = attach(reg, p, swname, why);
    if (err) Adapter::destroy(reg, p);  // give the rings back
    return err;
  }

  // "valeX:Y" where Y is a persistent port attached to valeX.
  int resolve(Registry& reg, std::string_view name) const override {
    std::string swname, portname;
    if (!split_name(name, &swname, &portname)) return -1;
    int p = reg.find_port(portname.c_str());
    if (p < 0 || !is_vale_port(reg.port(p)) || vale_port(reg.port(p)).sw < 0) return -1;
    return swname == vale_switch(reg, vale_port(reg.port(p)).sw).name ? p : -1;
  }

  void destroy(Registry& reg, int p) const override {
    PortEntry& pe = reg.port(p);
    int err = 0;
    auto region = Region::get(pe.mem_id, RegionConfig::from_env(), &err);
    if (vale_port(pe).sw >= 0) detach(reg, p);
    if (region)
      for (uint32_t r = 0; r < pe.nrings[kRx] && r <= kMaxRings; r++)
        if (region->ring_port(pe.ring[kRx][r]) == p) drain(region->kring(pe.ring[kRx][r]));
    Adapter::destroy(reg, p);
  }

  int kring_init(Registry& reg, Kring& k, std::string*) const override {
    if (k.dir != kTx || k.host) return 0;
    k.copy.assign(k.nslots, SlotCopy{0, 0, 0});  // the prologue's copy of what is handed over
    auto* v = new ValeKring;
    v->reg = &reg;
    v->ft.resize(k.nslots);
    v->order.reserve(k.nslots);
    v->need.reserve(k.nslots);
    v->list_head.assign(kSwitchPorts, ~0u);
    v->list_tail.assign(kSwitchPorts, ~0u);
    rebind(reg, k, *v);
    k.priv = v;
    return 0;
  }

  // The port may be attached or detached while open (persistent ports).
  static void rebind(Registry& reg, const Kring& k, ValeKring& v) {
    const PortEntry& pe = reg.port(k.port);
    v.sw = vale_port(pe).sw;
    v.me = vale_port(pe).sw_port;
    if (v.sw >= 0) refresh(reg, v);
  }

  void kring_fini(Kring& k) const override {
    delete static_cast<ValeKring*>(k.priv);
    k.priv = nullptr;
  }

  void txsync(Kring& k, uint32_t head) const override {
    KringState* ts = k.ks;
    auto* v = static_cast<ValeKring*>(k.priv);
    const uint32_t n = k.nslots;
    uint32_t done = ts->hwcur.load(std::memory_order_relaxed);
    if (v && vale_port(v->reg->port(k.port)).sw != v->sw) {
      RegistryLock g(*v->reg);
      if (g.ok()) rebind(*v->reg, k, *v);
    }
    if (v && v->sw >= 0 && done != head) done = forward(k, *v, head);
    else done = head;  // a port on no switch: packets go nowhere
    ts->hwcur.store(done, std::memory_order_relaxed);
    ts->hwtail.store(prev_slot(done, n), std::memory_order_relaxed);
  }

  void rxsync(Kring& k, uint32_t head) const override { lease_ring_release(k.ks, k.ring, head); }
};

}  // namespace
}  // namespace vale

bool is_vale_port(const PortEntry& pe) { return pe.kind != kNoPort && pe.kind == vale_adapter().kind(); }

const Adapter& vale_adapter() {
  static vale::ValeAdapter a;
  return a;
}

}  // namespace unetmap
