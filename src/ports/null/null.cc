// null ports ("null:NAME"): rings that go nowhere, as netmap's null adapter.
// Everything put on a tx ring is consumed at once; rx rings stay empty.
// Useful to map a region, to measure the cost of the API itself, and for
// NR_REG_NULL-like tests.
#include "core/adapter.h"

namespace unetmap {

namespace {

class NullAdapter final : public Adapter {
 public:
  bool owns(std::string_view name) const override { return name.substr(0, 5) == "null:"; }
  const char* grammar() const override { return "null:NAME"; }
  // "null:" stays in the name, as "valeX:" does.
  size_t spec_prefix(std::string_view spec) const override { return spec.substr(0, 5) == "null:" ? 5 : 0; }
  const char* spec_prefix_form() const override { return "null:NAME"; }

  int create(Registry& reg, int p, const PortRequest& req, std::string* why) const override {
    PortEntry& pe = reg.port(p);
    pe.mem_id = req.mem_id ? req.mem_id : 1;  // the global region by default
    for (int d : {kTx, kRx}) {
      pe.nrings[d] = req.nrings[d] ? req.nrings[d] : 1;
      pe.nslots[d] = req.nslots[d] ? req.nslots[d] : 1024;
      if (pe.nrings[d] > kMaxRings) {
        *why = "null ports have at most " + std::to_string(kMaxRings) + " rings";
        return EINVAL;
      }
    }
    int err = 0;
    auto region = Region::get(reg.port(p).mem_id, RegionConfig::from_env(), &err, why);
    if (!region) return err;
    return make_port_rings(reg, p, *region, why);
  }

  void txsync(Kring& k, uint32_t head) const override {
    KringState* s = k.ks;
    uint32_t n = k.nslots, old = s->hwcur.load(std::memory_order_relaxed);
    s->packets += ring_dist(old, head, n);
    s->hwcur.store(head, std::memory_order_relaxed);
    s->hwtail.store(prev_slot(head, n), std::memory_order_relaxed);
  }

  void rxsync(Kring& k, uint32_t head) const override {
    k.ks->hwcur.store(head, std::memory_order_relaxed);
  }
};

}  // namespace

const Adapter& null_adapter() {
  static NullAdapter a;
  return a;
}

}  // namespace unetmap
