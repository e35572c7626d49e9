#include "core/port.h"

#include <errno.h>
#include <poll.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>

namespace unetmap {

namespace {

bool valid_port_name(const std::string& n, std::string* why) {
  if (n.empty() || n.size() >= NETMAP_REQ_IFNAMSIZ) {
    *why = "port name must have 1 to " + std::to_string(NETMAP_REQ_IFNAMSIZ - 1) + " characters";
    return false;
  }
  for (char c : n) {
    if (isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '{' || c == '}' || c == ':' ||
        c == '.')
      continue;
    *why = std::string("invalid character '") + c + "' in port name '" + n + "'";
    return false;
  }
  return true;
}

// The ring indexes a port entry lists (shared memory) are rings of that
// port in its region, by the region's owner tags: never another's.
bool rings_are_own(const Region& r, const PortEntry& pe, int port, std::string* why) {
  for (int d : {kTx, kRx}) {
    const uint32_t n = pe.nrings[d] + pe.nhost[d];
    if (n > kMaxRings + 1) {
      *why = std::string("port '") + pe.name + "' lists " + std::to_string(n) + " rings";
      return false;
    }
    for (uint32_t i = 0; i < n; i++)
      if (r.ring_port(pe.ring[d][i]) != port) {
        *why = std::string("port '") + pe.name + "': ring " + std::to_string(i) +
               " of region " + std::to_string(r.id()) + " is not its own (registry damaged?)";
        return false;
      }
  }
  return true;
}


}  // namespace

bool ring_range(const PortEntry& pe, uint32_t mode, uint16_t ringid, uint64_t flags,
                uint32_t first[2], uint32_t last[2], std::string* why) {
  for (int d : {kTx, kRx}) {
    uint32_t hw = pe.nrings[d], host = pe.nhost[d];
    switch (mode) {
      case NR_REG_DEFAULT:
      case NR_REG_ALL_NIC:
        first[d] = 0, last[d] = hw;
        break;
      case NR_REG_SW:
        first[d] = hw, last[d] = hw + host;
        break;
      case NR_REG_NIC_SW:
        first[d] = 0, last[d] = hw + host;
        break;
      case NR_REG_ONE_NIC:
        first[d] = ringid, last[d] = ringid + 1u;
        if (ringid >= hw) {
          *why = "ring " + std::to_string(ringid) + " out of range: port has " +
                 std::to_string(hw) + " rings";
          return false;
        }
        break;
      case NR_REG_ONE_SW:
        first[d] = hw + ringid, last[d] = hw + ringid + 1u;
        if (ringid >= host) {
          *why = "host ring " + std::to_string(ringid) + " out of range: port has " +
                 std::to_string(host) + " host rings";
          return false;
        }
        break;
      case NR_REG_NULL:
        first[d] = last[d] = 0;
        break;
      default:
        *why = "unknown register mode " + std::to_string(mode);
        return false;
    }
    if ((mode == NR_REG_SW || mode == NR_REG_ONE_SW || mode == NR_REG_NIC_SW) && host == 0) {
      *why = "port has no host rings";
      return false;
    }
  }
  if (flags & NR_TX_RINGS_ONLY) first[kRx] = last[kRx] = 0;
  if (flags & NR_RX_RINGS_ONLY) first[kTx] = last[kTx] = 0;
  return true;
}

int Binding::open(const BindRequest& rq, std::unique_ptr<Binding>* out, std::string* why) {
  if (!valid_port_name(rq.name, why)) return EINVAL;
  int err = 0;
  std::unique_ptr<Binding> b(new Binding);  // goes after the lock is released
  std::optional<RegistryLock> g;
  Registry* reg = lock_registry(&g, &err, why);
  if (!reg) return err;
  int p = find_port_any(*reg, rq.name);
  // A port type made on an existing port by a register flag (monitors).
  if (const Adapter* na = adapter_for_flags(rq.flags)) {
    if (p < 0) {
      *why = "no port '" + rq.name + "' to open a " + na->flags_name() + " of";
      return ENXIO;
    }
    int m;
    if ((err = na->create_on(*reg, p, rq.flags, rq.mem_id, &m, why)) != 0) return err;
    reg->publish_port(m);
    BindRequest mrq = rq;
    mrq.mode = NR_REG_ALL_NIC;
    mrq.flags &= ~(na->register_flags() | NR_EXCLUSIVE);
    if ((err = b->attach(*reg, m, mrq, why)) != 0) {
      reg->maybe_destroy_port(m);
      return err;
    }
    *out = std::move(b);
    return 0;
  }
  if (p < 0) {
    const Adapter* na = adapter_for_name(rq.name);
    if (!na) {
      *why = "no such port '" + rq.name + "': this build has " + port_grammars();
      return ENXIO;
    }
    if ((err = create_port(*reg, *na, rq, why, &p)) != 0) return err;
  }
  err = b->attach(*reg, p, rq, why);
  if (err) {
    reg->maybe_destroy_port(p);  // a port made for this register goes again
    return err;
  }
  *out = std::move(b);
  return 0;
}

int Binding::create_port(Registry& reg, const Adapter& na, const BindRequest& rq,
                         std::string* why, int* out) {
  int p = reg.alloc_port(rq.name.c_str(), na.kind());
  if (p < 0) {
    *why = "too many ports (" + std::to_string(kMaxPorts) + ")";
    return ENOMEM;
  }
  PortRequest pr;
  pr.name = rq.name;
  pr.mem_id = rq.mem_id;
  memcpy(pr.nrings, rq.nrings, sizeof pr.nrings);
  memcpy(pr.nslots, rq.nslots, sizeof pr.nslots);
  memcpy(pr.nhost, rq.nhost, sizeof pr.nhost);
  if (int err = na.create(reg, p, pr, why)) {
    reg.unmake_port(p);  // and a region made for it
    return err;
  }
  reg.publish_port(p);
  *out = p;
  return 0;
}

int Binding::attach(Registry& reg, int p, const BindRequest& rq, std::string* why) {
  PortEntry& pe = reg.port(p);
  if (!ring_range(pe, rq.mode, rq.ringid, rq.flags, first_, last_, why)) return EINVAL;
  int err = 0;
  region_ = Region::get(pe.mem_id, RegionConfig::from_env(), &err, why);
  if (!region_) return err;
  if (!rings_are_own(*region_, pe, p, why)) return EIO;
  // /x: the rings bound are this registration's alone (netmap's NR_EXCLUSIVE).
  const bool excl = rq.flags & NR_EXCLUSIVE;
  for (int d : {kTx, kRx})
    for (uint32_t i = first_[d]; i < last_[d]; i++) {
      const KringState* ks = region_->kring(pe.ring[d][i]);
      if (ks->excl || (excl && ks->users)) {
        *why = "port '" + rq.name + "': " + (d == kTx ? "tx" : "rx") + " ring " +
               std::to_string(i) + (ks->excl ? " is open exclusively (/x)" : " is in use, /x refused");
        return EBUSY;
      }
    }
  int ri = reg.alloc_reg();
  if (ri < 0) {
    *why = "too many registrations (" + std::to_string(kMaxRegs) + ")";
    return ENOMEM;
  }
  RegEntry& re = reg.reg(ri);
  re.port = p;
  re.mem_id = pe.mem_id;
  re.holders[0] = ProcId::self();
  re.excl = excl;
  if ((err = region_->alloc_if(&re.nifp, p, ri, why)) != 0) {
    re.in_use = 0;
    return err;
  }
  for (int d : {kTx, kRx}) {
    re.first[d] = uint16_t(first_[d]), re.last[d] = uint16_t(last_[d]);
    for (uint32_t i = first_[d]; i < last_[d]; i++) {
      KringState* ks = region_->kring(pe.ring[d][i]);
      ks->users++;
      if (excl) ks->excl = 1;
    }
  }
  pe.nregs++;
  reg_ = ri;
  port_ = p;
  info_ = pe;
  partner_ = port_partner(reg, p);
  flags_ = rq.flags;
  nifp_off_ = region_->nifp_offset(re.nifp);
  nifp_idx_ = re.nifp;
  if ((err = build_views(reg, why)) != 0) {
    reg.drop_reg(ri);  // the caller holds the registry lock: undo here
    reg_ = -1;
    return err;
  }
  if (rq.extra_bufs)
    extra_bufs_ = region_->alloc_extra(rq.extra_bufs, re.nifp, &region_->nifp(re.nifp)->ni_bufs_head);
  re.state = EntryState::kLive;
  bind_ports(+1);
  return 0;
}

// This process may move buffers of the ports it has bound between its
// rings (and of a partner's, a pipe's other end, whose tx ring fills its
// rx ring).
void Binding::bind_ports(int delta) {
  Region::bind_port(port_, delta);
  if (partner_ >= 0) Region::bind_port(partner_, delta);
  bound_ = delta > 0;
}

int Binding::adopt(int ri, uint64_t flags, std::unique_ptr<Binding>* out, std::string* why) {
  int err = 0;
  std::unique_ptr<Binding> b(new Binding);  // goes after the lock is released
  std::optional<RegistryLock> g;
  Registry* reg = lock_registry(&g, &err, why);
  if (!reg) return err;
  if (ri < 0 || uint32_t(ri) >= kMaxRegs || !reg->reg(ri).in_use) {
    *why = "the registration of this netmap fd is gone (its last holder closed it)";
    return ENXIO;
  }
  RegEntry& re = reg->reg(ri);
  if (re.port < 0 || uint32_t(re.port) >= kMaxPorts) {
    *why = "registration " + std::to_string(ri) + " names no port";
    return ENXIO;
  }
  const PortEntry& pe = reg->port(re.port);
  b->region_ = Region::get(re.mem_id, RegionConfig::from_env(), &err, why);
  if (!b->region_) return err;
  if (!rings_are_own(*b->region_, pe, re.port, why)) return EIO;
  b->reg_ = ri;
  b->port_ = re.port;
  b->info_ = pe;
  b->partner_ = port_partner(*reg, re.port);
  b->flags_ = flags;
  b->nifp_idx_ = re.nifp;
  b->nifp_off_ = b->region_->nifp_offset(re.nifp);
  for (int d : {kTx, kRx}) {
    b->first_[d] = std::min<uint32_t>(re.first[d], pe.nrings[d] + pe.nhost[d]);
    b->last_[d] = std::min<uint32_t>(re.last[d], pe.nrings[d] + pe.nhost[d]);
  }
  if ((err = b->build_views(*reg, why, false)) != 0) {
    b->reg_ = -1;
    return err;
  }
  bool held = false;
  for (const ProcId& h : re.holders) held |= h == ProcId::self();
  if (!held) holders_add(re.holders, ProcId::self());
  b->bind_ports(+1);
  *out = std::move(b);
  return 0;
}

// Fill the netmap_if and the process-local kring views; reset the bound
// rings' public state to the kernel's (netmap does this at register). Not
// fresh (an adopted registration): the views only. Fails only if a port
// type cannot set up a bound ring (a NIC's socket).
int Binding::build_views(Registry& reg, std::string* why, bool fresh) {
  Region& r = *region_;
  const PortEntry& pe = info_;
  const uint32_t nifp = reg.reg(reg_).nifp;
  netmap_if* ni = r.nifp(nifp);
  ssize_t scratch[2 * (kMaxRings + 1)];
  auto* ofs = fresh ? const_cast<ssize_t*>(ni->ring_ofs) : scratch;
  if (fresh) {
    memset(static_cast<void*>(ni), 0, r.cfg().if_size);
    snprintf(ni->ni_name, sizeof ni->ni_name, "%.*s", int(sizeof ni->ni_name - 1), pe.name);
    *const_cast<uint32_t*>(&ni->ni_version) = NETMAP_API;
    *const_cast<uint32_t*>(&ni->ni_tx_rings) = pe.nrings[kTx];
    *const_cast<uint32_t*>(&ni->ni_rx_rings) = pe.nrings[kRx];
    *const_cast<uint32_t*>(&ni->ni_host_tx_rings) = pe.nhost[kTx];
    *const_cast<uint32_t*>(&ni->ni_host_rx_rings) = pe.nhost[kRx];
  }
  uint32_t slot = 0;
  for (int d : {kTx, kRx}) {
    uint32_t n = pe.nrings[d] + pe.nhost[d];
    kr_[d].resize(n);
    for (uint32_t i = 0; i < n; i++) {
      Kring& k = kr_[d][i];
      k.ring = r.ring(pe.ring[d][i]);
      k.ks = r.kring(pe.ring[d][i]);
      k.region = &r;
      k.na = adapter_for_kind(pe.kind);
      k.nslots = k.ks->nslots;
      k.id = uint16_t(i);
      k.dir = uint8_t(d);
      k.host = i >= pe.nrings[d];
      k.port = port_;
      // netmap leaves 0 for a ring the fd did not bind: libnetmap finds the
      // bound range from there.
      const bool bound = i >= first_[d] && i < last_[d];
      ofs[slot++] = bound ? reinterpret_cast<char*>(k.ring) - reinterpret_cast<char*>(ni) : 0;
      if (bound && fresh) {
        KringState* s = k.ks;
        s->rhead = s->rcur = s->hwcur.load();
        s->rtail = s->hwtail.load();
        k.ring->head = k.ring->cur = s->rhead;
        k.ring->tail = s->rtail;
      }
    }
  }
  if (int err = init_krings(reg, why)) return err;
  // A partner's rings face this port's: views of them too.
  if (partner_ < 0) return 0;
  const PortEntry& q = reg.port(partner_);
  if (!rings_are_own(r, q, partner_, why)) return EIO;
  for (int d : {kTx, kRx}) {
    peer_[d].resize(q.nrings[d]);
    for (uint32_t i = 0; i < q.nrings[d]; i++) {
      Kring& k = peer_[d][i];
      k.ring = r.ring(q.ring[d][i]);
      k.ks = r.kring(q.ring[d][i]);
      k.region = &r;
      k.na = adapter_for_kind(q.kind);
      k.nslots = k.ks->nslots;
      k.id = uint16_t(i);
      k.dir = uint8_t(d);
    }
  }
  for (uint32_t i = 0; i < kr_[kTx].size() && i < peer_[kRx].size(); i++)
    kr_[kTx][i].peer = &peer_[kRx][i];
  for (uint32_t i = 0; i < kr_[kRx].size() && i < peer_[kTx].size(); i++)
    kr_[kRx][i].peer = &peer_[kTx][i];
  return 0;
}

// The port type's per-ring setup of every bound ring; on failure the rings
// set up so far are taken down and the binding binds nothing.
// netmap stamps ring->ts at every rxsync unless its no_timestamp knob is
// set (NR_TIMESTAMP forces it): UNETMAP_NO_TIMESTAMP=1 is that knob, read
// when a port is bound.
static bool stamp_every_rxsync() {
  const char* e = getenv("UNETMAP_NO_TIMESTAMP");
  return !(e && *e && strcmp(e, "0") != 0);
}

int Binding::init_krings(Registry& reg, std::string* why) {
  const bool stamp = stamp_every_rxsync();
  for (int d : {kTx, kRx})
    for (uint32_t i = first_[d]; i < last_[d]; i++) {
      kr_[d][i].stamp = stamp && d == kRx;
      int err = kr_[d][i].na->kring_init(reg, kr_[d][i], why);
      if (!err) continue;
      for (int e : {kTx, kRx})
        for (uint32_t j = first_[e]; j < last_[e] && (e < d || j < i); j++)
          kr_[e][j].na->kring_fini(kr_[e][j]);
      first_[kTx] = last_[kTx] = first_[kRx] = last_[kRx] = 0;
      return err;
    }
  return 0;
}

void Binding::set_direct_ranges(std::vector<DirectRanges::Range> r) {
  direct_.r = std::move(r);
  for (Kring& k : kr_[kTx]) k.direct = direct_.r.empty() ? nullptr : &direct_;
}

Binding::Counters Binding::counters(Dir d) const {
  Counters c;
  for (uint32_t i = first_[d]; i < last_[d] && i < kr_[d].size(); i++) {
    const KringState* ks = kr_[d][i].ks;
    c.packets += ks->packets;
    c.bytes += ks->bytes;
    c.drops += ks->drops + (d == kRx ? ks->fwd_drops : 0);
  }
  return c;
}

Binding::~Binding() {
  for (int d : {kTx, kRx})
    for (uint32_t i = first_[d]; i < last_[d] && i < kr_[d].size(); i++)
      kr_[d][i].na->kring_fini(kr_[d][i]);
  if (bound_) bind_ports(-1);
  if (reg_ < 0) return;
  Registry* reg = Registry::get(nullptr);
  if (!reg) return;
  RegistryLock g(*reg);
  if (!g.ok()) return;  // the reaper drops it once this process is gone
  RegEntry& re = reg->reg(reg_);
  if (!re.in_use || re.port != port_) return;  // already reaped
  if (!holders_remove(re.holders, ProcId::self())) reg->drop_reg(reg_);
}

void Binding::add_holder(const ProcId& p) {
  Registry* reg = Registry::get(nullptr);
  if (!reg || reg_ < 0) return;
  RegistryLock g(*reg);
  if (!g.ok()) return;
  RegEntry& re = reg->reg(reg_);
  if (re.in_use && re.port == port_) holders_add(re.holders, p);
}

int Binding::sync(Dir d) {
  int err = 0;
  for (uint32_t i = first_[d]; i < last_[d]; i++) {
    int e = d == kTx ? txsync_kring(kr_[d][i]) : rxsync_kring(kr_[d][i]);
    if (e) err = e;
  }
  return err;
}

short Binding::poll_scan(short events) {
  short rev = 0;
  bool want_tx = events & (POLLOUT | POLLWRNORM);
  bool want_rx = events & (POLLIN | POLLRDNORM);
  if (want_tx || !(flags_ & NR_NO_TX_POLL)) {
    for (uint32_t i = first_[kTx]; i < last_[kTx]; i++) {
      if (txsync_kring(kr_[kTx][i])) rev |= POLLERR;
      if (want_tx && kring_ready(kr_[kTx][i])) rev |= events & (POLLOUT | POLLWRNORM);
    }
  }
  if (want_rx) {
    for (uint32_t i = first_[kRx]; i < last_[kRx]; i++) {
      if (rxsync_kring(kr_[kRx][i])) rev |= POLLERR;
      if (kring_ready(kr_[kRx][i])) rev |= events & (POLLIN | POLLRDNORM);
    }
  }
  return rev;
}

bool Binding::rx_leases_pending() const {
  for (uint32_t i = first_[kRx]; i < last_[kRx]; i++)
    if (*reinterpret_cast<volatile uint32_t*>(&kr_[kRx][i].ks->lease_count)) return true;
  return false;
}

void Binding::arm(short events, uint32_t token) {
  if (events & (POLLOUT | POLLWRNORM))
    for (uint32_t i = first_[kTx]; i < last_[kTx]; i++)
      kr_[kTx][i].ks->waiter.store(token, std::memory_order_seq_cst);
  if (events & (POLLIN | POLLRDNORM))
    for (uint32_t i = first_[kRx]; i < last_[kRx]; i++)
      kr_[kRx][i].ks->waiter.store(token, std::memory_order_seq_cst);
}

void Binding::wait_fds(short events, std::vector<pollfd>* fds) const {
  if (events & (POLLOUT | POLLWRNORM))
    for (uint32_t i = first_[kTx]; i < last_[kTx]; i++)
      if (int fd = kr_[kTx][i].na->kring_wait_fd(kr_[kTx][i]); fd >= 0)
        fds->push_back(pollfd{fd, POLLOUT, 0});
  if (events & (POLLIN | POLLRDNORM))
    for (uint32_t i = first_[kRx]; i < last_[kRx]; i++)
      if (int fd = kr_[kRx][i].na->kring_wait_fd(kr_[kRx][i]); fd >= 0)
        fds->push_back(pollfd{fd, POLLIN, 0});
}

}  // namespace unetmap
