// The control requests of /dev/netmap: NIOCCTRL (API 14: REGISTER,
// PORT_INFO_GET, POOLS_INFO_GET, VALE_*) and the legacy NIOCREGIF /
// NIOCGINFO with struct nmreq (and its nr_cmd VALE codes). Bodies are copied
// in and out of application memory as a kernel would.
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/netmap.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cctype>
#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include "abi/file.h"
#include "core/adapter.h"
#include "mem/extmem.h"
#include "ports/vale/attach.h"
#include "ports/vale/vale.h"

namespace unetmap {

namespace {

void fill_register_reply(const Binding& b, nmreq_register* r) {
  const PortEntry& pe = b.port_info();
  r->nr_offset = b.nifp_offset();
  r->nr_memsize = b.region().memsize();
  r->nr_tx_slots = pe.nslots[kTx];
  r->nr_rx_slots = pe.nslots[kRx];
  r->nr_tx_rings = pe.nrings[kTx];
  r->nr_rx_rings = pe.nrings[kRx];
  r->nr_host_tx_rings = pe.nhost[kTx];
  r->nr_host_rx_rings = pe.nhost[kRx];
  r->nr_mem_id = b.region().id();
  r->nr_extra_bufs = b.extra_bufs();
}

// A duplicate of fd made past the interposed fcntl (not a netmap fd of its own).
int dup_raw(int fd) { return int(::syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 0)); }

std::string name_of(const char* n, size_t max) { return std::string(n, strnlen(n, max)); }

// The deprecated pipe modes name the pipe by ring id: NAME + mode
// PIPE_MASTER/SLAVE + ring N is the port NAME{N / NAME}N.
void apply_pipe_mode(BindRequest* rq) {
  if (rq->mode != NR_REG_PIPE_MASTER && rq->mode != NR_REG_PIPE_SLAVE) return;
  rq->name += (rq->mode == NR_REG_PIPE_MASTER ? "{" : "}") + std::to_string(rq->ringid);
  rq->mode = NR_REG_ALL_NIC;
  rq->ringid = 0;
}

// NR_REG_NULL: netmap's null port, a port of its own named after the
// request ("null:NAME"), with the rings and slots asked for, in the region
// asked for (1 by default), every ring bound. Decision: unetmap's null
// ports have names, so registers that name the same port share it, where
// netmap makes one per register.
void apply_null_mode(BindRequest* rq) {
  if (rq->mode != NR_REG_NULL) return;
  if (rq->name.compare(0, 5, "null:") != 0) rq->name = "null:" + rq->name;
  rq->mode = NR_REG_ALL_NIC;
  rq->ringid = 0;
  if (!rq->mem_id) rq->mem_id = 1;
}

int do_register(NetmapFile* f, BindRequest rq) {
  apply_pipe_mode(&rq);
  apply_null_mode(&rq);
  refresh_binding(f);  // another process may have registered this open file
  std::lock_guard<std::mutex> g(f->mu);
  if (f->binding) return fail(EBUSY, "this fd is already registered to a port");
  std::string why;
  int err = Binding::open(rq, &f->binding, &why);
  if (err) return fail(err, why);
  note_registration(f);
  return 0;
}

// PORT_INFO_GET on a port nobody holds: bind it with no rings and let go.
int port_info(NetmapFile* f, const std::string& name, uint16_t mem_id, nmreq_register* out) {
  if (f->binding && f->binding->port_info().name == name) {
    fill_register_reply(*f->binding, out);
    return 0;
  }
  BindRequest rq;
  rq.name = name;
  rq.mode = NR_REG_NULL;
  rq.mem_id = mem_id;
  std::unique_ptr<Binding> tmp;
  std::string why;
  if (int err = Binding::open(rq, &tmp, &why)) return fail(err, why);
  fill_register_reply(*tmp, out);
  return 0;
}

// The type of the port a name means (existing, else the one a register
// would make); nullptr if none.
const Adapter* port_type(const std::string& name) {
  Registry* reg = Registry::get(nullptr);
  if (!reg) return nullptr;
  {
    RegistryLock g(*reg);
    int p = g.ok() ? find_port_any(*reg, name) : -1;
    if (p >= 0) return adapter_for_kind(reg->port(p).kind);
  }
  return adapter_for_name(name);
}

// PORT_HDR_GET / PORT_HDR_SET: the virtio-net header length of a port.
// netmap answers GET for any port (0 for all but VALE ports, the only
// ones that have one) and SET for existing VALE ports.
int port_hdr(NetmapFile* f, uint16_t type, const std::string& name, nmreq_port_hdr* ph) {
  std::string why;
  if (type == NETMAP_REQ_PORT_HDR_SET) {
    if (ph->nr_hdr_len != 0 && ph->nr_hdr_len != 10 && ph->nr_hdr_len != 12)
      return fail(EINVAL, "virtio-net header length " + std::to_string(ph->nr_hdr_len) +
                              ": netmap takes 0, 10 or 12");
    const Adapter* a = port_type(name);
    const int err = a ? a->set_hdr_len(name, ph->nr_hdr_len, &why) : EINVAL;
    if (!a) why = "port '" + name + "': a virtio-net header length is set on VALE ports";
    return err ? fail(err, why) : 0;
  }
  nmreq_register r{};
  if (port_info(f, name, 0, &r)) return -1;
  uint32_t len = 0;
  const Adapter* a = port_type(name);
  if (a && a->hdr_len(name, &len, &why) != 0) len = 0;
  ph->nr_hdr_len = len;
  return 0;
}

int pools_info(NetmapFile* f, nmreq_pools_info* pi) {
  std::shared_ptr<Region> r;
  int err = 0;
  if (pi->nr_mem_id == 0 && f->binding) {
    pi->nr_mem_id = f->binding->region().id();
  } else if (pi->nr_mem_id == 0) {
    pi->nr_mem_id = 1;
  }
  std::string why;
  // Region 1, the global one, always exists for netmap (its global
  // allocator): here it is described as it would be made, without making
  // (and reserving) it for a question.
  RegionHeader planned;
  r = Region::get(pi->nr_mem_id, RegionConfig::from_env(), &err, &why, false);
  if (!r && pi->nr_mem_id == 1) {
    const RegionConfig cfg = RegionConfig::from_env();
    const std::string bad = cfg.check();
    if (!bad.empty()) return fail(EINVAL, "region 1: " + bad + " (from UNETMAP_* settings)");
    planned = Region::planned(1, cfg);
  } else if (!r) {
    return fail(err, why);
  }
  const RegionHeader* h = r ? r->hdr() : &planned;
  pi->nr_memsize = h->memsize;
  pi->nr_if_pool_offset = h->if_pool;
  pi->nr_if_pool_objtotal = h->cfg.if_num;
  pi->nr_if_pool_objsize = h->cfg.if_size;
  pi->nr_ring_pool_offset = h->ring_pool;
  pi->nr_ring_pool_objtotal = h->cfg.ring_num;
  pi->nr_ring_pool_objsize = h->cfg.ring_size;
  pi->nr_buf_pool_offset = h->buf_pool;
  pi->nr_buf_pool_objtotal = h->cfg.buf_num;
  pi->nr_buf_pool_objsize = h->cfg.buf_size;
  return 0;
}

// The size of a request's body, by type (0: the type has none).
size_t body_size(uint16_t reqtype) {
  switch (reqtype) {
    case NETMAP_REQ_REGISTER: return sizeof(nmreq_register);
    case NETMAP_REQ_PORT_INFO_GET: return sizeof(nmreq_port_info_get);
    case NETMAP_REQ_VALE_ATTACH: return sizeof(nmreq_vale_attach);
    case NETMAP_REQ_VALE_DETACH: return sizeof(nmreq_vale_detach);
    case NETMAP_REQ_VALE_LIST: return sizeof(nmreq_vale_list);
    case NETMAP_REQ_PORT_HDR_SET:
    case NETMAP_REQ_PORT_HDR_GET: return sizeof(nmreq_port_hdr);
    case NETMAP_REQ_VALE_NEWIF: return sizeof(nmreq_vale_newif);
    case NETMAP_REQ_VALE_POLLING_ENABLE:
    case NETMAP_REQ_VALE_POLLING_DISABLE: return sizeof(nmreq_vale_polling);
    case NETMAP_REQ_POOLS_INFO_GET: return sizeof(nmreq_pools_info);
    case NETMAP_REQ_SYNC_KLOOP_START: return sizeof(nmreq_sync_kloop_start);
    default: return 0;
  }
}

// The size of an option's body after its nmreq_option header: fixed by
// type, or given by nro_size for the eventfds array.
size_t option_body_size(uint32_t type, uint64_t nro_size) {
  const size_t h = sizeof(nmreq_option);
  switch (type) {
    case NETMAP_REQ_OPT_EXTMEM: return sizeof(nmreq_opt_extmem) - h;
    case NETMAP_REQ_OPT_CSB: return sizeof(nmreq_opt_csb) - h;
    case NETMAP_REQ_OPT_SYNC_KLOOP_MODE: return sizeof(nmreq_opt_sync_kloop_mode) - h;
    case NETMAP_REQ_OPT_OFFSETS: return sizeof(nmreq_opt_offsets) - h;
    case NETMAP_REQ_OPT_SYNC_KLOOP_EVENTFDS: return nro_size > h ? size_t(nro_size - h) : 0;
    default: return 0;
  }
}

// A request's option list, read as netmap's kernel reads it: netmap copies
// the body and the options into one bounded kernel buffer, so the list has
// a size budget, and every known option type may appear once.
//  - the body plus each option (its header and, for a known type, its body)
//    must fit in NETMAP_REQ_MAXSIZE, and the copy (which also keeps each
//    option's user pointer and a table of the known types) in that plus the
//    table: past it, EMSGSIZE (a looping list ends there; its statuses are
//    not written back, the list may be a loop);
//  - type 0: EINVAL, that option's status EINVAL;
//  - a known type seen twice: EINVAL, both options' status EINVAL;
//  - types past NETMAP_REQ_OPT_MAX are skipped (status EOPNOTSUPP).
// On success at[t] is the address of the option of type t (0 if none) and
// every option's status is EOPNOTSUPP until a request takes it.
struct Options {
  uint64_t at[NETMAP_REQ_OPT_MAX] = {};
  std::vector<uint64_t> all;  // every option, in list order
  // Write status st to the option at addr.
  static bool set_status(uint64_t addr, uint32_t st) {
    void* where = reinterpret_cast<char*>(addr) + offsetof(nmreq_option, nro_status);
    return copy_out(where, &st, sizeof st);
  }
};

int read_options(uint64_t first, uint16_t reqtype, Options* o) {
  constexpr size_t kPtr = sizeof(uint64_t);
  const size_t budget = NETMAP_REQ_MAXSIZE + NETMAP_REQ_OPT_MAX * kPtr;
  size_t copied = body_size(reqtype), reqsize = copied;
  auto clear_seen = [&] {  // what netmap writes back: status 0 for each option read
    for (uint64_t a : o->all) Options::set_status(a, 0);
  };
  for (uint64_t p = first; p;) {
    if (copied + kPtr + sizeof(nmreq_option) > budget)
      return fail(EMSGSIZE, "option list too long (or looping)");
    nmreq_option opt;
    if (!copy_in(&opt, reinterpret_cast<void*>(p), sizeof opt)) return fail(EFAULT);
    copied += kPtr + sizeof opt;
    reqsize += sizeof opt;
    const uint32_t t = opt.nro_reqtype;
    if (t == 0) {
      clear_seen();
      Options::set_status(p, EINVAL);
      return fail(EINVAL, "option of type 0");
    }
    if (t < NETMAP_REQ_OPT_MAX) {
      if (o->at[t]) {
        clear_seen();
        Options::set_status(o->at[t], EINVAL);
        Options::set_status(p, EINVAL);
        return fail(EINVAL, "option type " + std::to_string(t) + " given twice");
      }
      o->at[t] = p;
      const size_t body = option_body_size(t, opt.nro_size);
      if (body > NETMAP_REQ_MAXSIZE || opt.nro_size > NETMAP_REQ_MAXSIZE ||
          reqsize + body > NETMAP_REQ_MAXSIZE || copied + body > budget) {
        o->all.push_back(p);
        clear_seen();
        return fail(EMSGSIZE, "options too large (" + std::to_string(reqsize + body) +
                                  " bytes with the body; netmap takes " +
                                  std::to_string(NETMAP_REQ_MAXSIZE) + ")");
      }
      reqsize += body;
      copied += body;
    }
    o->all.push_back(p);
    p = opt.nro_next;
  }
  for (uint64_t a : o->all)
    if (!Options::set_status(a, EOPNOTSUPP)) return fail(EFAULT);
  return 0;
}

// The option types a request takes (a bit per type).
uint32_t options_taken(uint16_t reqtype) {
  switch (reqtype) {
    case NETMAP_REQ_REGISTER: return 1u << NETMAP_REQ_OPT_EXTMEM | 1u << NETMAP_REQ_OPT_CSB;
    case NETMAP_REQ_CSB_ENABLE: return 1u << NETMAP_REQ_OPT_CSB;
    case NETMAP_REQ_SYNC_KLOOP_START:
      return 1u << NETMAP_REQ_OPT_SYNC_KLOOP_MODE | 1u << NETMAP_REQ_OPT_SYNC_KLOOP_EVENTFDS;
    default: return 0;
  }
}

// Any other option: EOPNOTSUPP, as netmap fails a request with an option
// it does not know or that does not apply.
int refuse_other_options(const Options& o, uint16_t reqtype) {
  const uint32_t taken = options_taken(reqtype);
  for (uint64_t a : o.all) {
    uint32_t t = 1;
    while (t < NETMAP_REQ_OPT_MAX && o.at[t] != a) t++;
    if (t == NETMAP_REQ_OPT_MAX || !(taken & (1u << t)))
      return fail(EOPNOTSUPP, t == NETMAP_REQ_OPT_OFFSETS
                                  ? "the offsets option is not supported yet"
                                  : "an option of type " + std::to_string(t) +
                                        " does not apply to request type " + std::to_string(reqtype));
  }
  return 0;
}

// Undo a register (a later step of it failed).
void unregister(NetmapFile* f) {
  {
    std::lock_guard<std::mutex> g(f->mu);
    f->binding.reset();
  }
  note_registration(f);
}

// NETMAP_REQ_OPT_CSB (at REGISTER, or CSB_ENABLE): CSB mode on the
// registration (core/kloop.h); the option's status tells the outcome.
int csb_option(NetmapFile* f, uint64_t opt) {
  nmreq_opt_csb c;
  if (!copy_in(&c, reinterpret_cast<void*>(opt), sizeof c)) return fail(EFAULT);
  Binding* b = refresh_binding(f);
  std::string why = "CSB mode on an fd that is not registered";
  const int err = b ? b->csb_enable(c.csb_atok, c.csb_ktoa, copy_out, &why) : ENXIO;
  Options::set_status(opt, uint32_t(err));
  return err ? fail(err, why) : 0;
}

// SYNC_KLOOP_START: blocks in the sync-kloop until SYNC_KLOOP_STOP.
int kloop_start(NetmapFile* f, int fd, void* body, const Options& o) {
  nmreq_sync_kloop_start req;
  if (!body || !copy_in(&req, body, sizeof req)) return fail(EFAULT);
  Binding* b = refresh_binding(f);
  if (!b) return fail(ENXIO, "sync-kloop on an fd that is not registered");
  KloopRequest rq;
  rq.sleep_us = req.sleep_us;
  rq.token = f->token;
  const uint64_t mode = o.at[NETMAP_REQ_OPT_SYNC_KLOOP_MODE];
  const uint64_t efds = o.at[NETMAP_REQ_OPT_SYNC_KLOOP_EVENTFDS];
  if (mode) {
    nmreq_opt_sync_kloop_mode m;
    if (!copy_in(&m, reinterpret_cast<void*>(mode), sizeof m)) return fail(EFAULT);
    rq.has_mode = true, rq.mode = m.mode;
  }
  if (efds) {
    nmreq_option h;
    if (!copy_in(&h, reinterpret_cast<void*>(efds), sizeof h)) return fail(EFAULT);
    // nro_size is bounded by read_options (NETMAP_REQ_MAXSIZE).
    const size_t n = h.nro_size > sizeof h ? (h.nro_size - sizeof h) / (2 * sizeof(int32_t)) : 0;
    std::vector<int32_t> v(2 * n);
    if (n && !copy_in(v.data(), reinterpret_cast<char*>(efds) + sizeof h, v.size() * sizeof v[0]))
      return fail(EFAULT);
    rq.has_eventfds = true, rq.eventfds_size = h.nro_size;
    for (size_t i = 0; i < n; i++) rq.ioeventfd.push_back(v[2 * i]), rq.irqfd.push_back(v[2 * i + 1]);
  }
  if ((rq.chan_fd = dup_raw(fd)) < 0) return fail(errno, "sync-kloop: cannot duplicate the fd");
  std::string why;
  const int err = b->kloop_run(rq, &why);
  if (rq.mode_status >= 0) Options::set_status(mode, uint32_t(rq.mode_status));
  if (rq.eventfds_status >= 0) Options::set_status(efds, uint32_t(rq.eventfds_status));
  return err ? fail(err, why) : 0;
}

// REGISTER with NETMAP_REQ_OPT_EXTMEM: the port is made in a new region on
// the application's memory (mem/extmem.h); the option's nro_info tells the
// sizes obtained.
int register_extmem(NetmapFile* f, BindRequest rq, uint64_t opt) {
  nmreq_opt_extmem ext;
  void* where = reinterpret_cast<void*>(opt);
  if (!copy_in(&ext, where, sizeof ext)) return fail(EFAULT);
  std::string why;
  if (int e = extmem_region(ext.nro_usrptr, ext.nro_info, &rq.mem_id, &why)) {
    ext.nro_opt.nro_status = uint32_t(e);
    copy_out(where, &ext, sizeof ext);
    return fail(e, why);
  }
  const uint16_t id = rq.mem_id;
  if (do_register(f, rq)) {
    extmem_drop(id);
    return -1;
  }
  if (f->binding->region().id() != id) {  // the port existed, in its own region
    uint16_t other = f->binding->region().id();
    unregister(f);
    extmem_drop(id);
    return fail(EINVAL, "port '" + rq.name + "' exists already, in region " + std::to_string(other) +
                            ": extmem applies to the port a register creates");
  }
  ext.nro_info.nr_mem_id = id;
  pools_info(f, &ext.nro_info);
  ext.nro_opt.nro_status = 0;
  return copy_out(where, &ext, sizeof ext) ? 0 : fail(EFAULT);
}

// ---- VALE_ATTACH / DETACH / POLLING: ports reached through a forwarder ----
//
// netmap attaches to a switch, besides persistent VALE ports, any NIC (its
// host stack too with NR_REG_NIC_SW) and a persistent port that is on
// another switch already, through a bridge wrapper; unetmap through a
// forwarder process (ports/vale/attach.h), started here for whichever process
// asks. The decision, by the port part of valeX:Y:
//   a persistent VALE port on no switch    attach it (ports/vale.h)
//   ... on valeX already                   EBUSY
//   ... on another switch                  a forwarder (netmap's bwrap)
//   an interface of this network namespace a forwarder (NIC, host rings)
//   anything else                          EINVAL, as netmap

// "valeX:Y" with a switch name of letters, digits and _ (it names a file).
bool split_switch_port(const std::string& name, std::string* sw, std::string* port,
                       std::string* why) {
  size_t colon = name.find(':');
  if (name.compare(0, 4, "vale") != 0 || colon == std::string::npos || colon + 1 >= name.size()) {
    *why = "'" + name + "' is not valeX:Y (a switch and a port)";
    return false;
  }
  *sw = name.substr(0, colon);
  *port = name.substr(colon + 1);
  for (char c : *sw)
    if (!isalnum(static_cast<unsigned char>(c)) && c != '_') {
      *why = "switch name '" + *sw + "': letters, digits and _";
      return false;
    }
  return true;
}

bool is_interface(const std::string& port) {
  return port.size() < IF_NAMESIZE && port.find_first_of("/:{}@^*") == std::string::npos &&
         if_nametoindex(port.c_str()) != 0;
}

// The index of ephemeral port "sw:port" on its switch (0 if not found).
uint32_t switch_index(const std::string& name) {
  std::string n = name, why;
  uint32_t b = 0, p = 0;
  return vale_list_port(&n, &b, &p, &why) == 0 ? p : 0;
}

int attach_port(const std::string& name, const nmreq_register& reg, uint32_t* idx,
                std::string* why) {
  std::string sw, port, on;
  if (!split_switch_port(name, &sw, &port, why)) return EINVAL;
  if (attach::running(sw, port)) {
    *why = port + " is already attached to " + sw;
    return EBUSY;
  }
  const bool persistent = vale_persistent(port, &on);
  if (persistent && (on.empty() || on == sw)) return vale_attach(name, idx, why);
  if (!persistent && !is_interface(port)) {
    *why = "no interface or persistent VALE port '" + port +
           "' in this network namespace (vale-ctl -n makes a persistent port)";
    return EINVAL;
  }
  // netmap's wrapper takes all the rings, and the host stack's with NIC_SW.
  if (reg.nr_ringid != 0 || (reg.nr_mode != NR_REG_ALL_NIC && reg.nr_mode != NR_REG_NIC_SW)) {
    *why = "attaching " + port + ": nr_mode NR_REG_ALL_NIC or NR_REG_NIC_SW and nr_ringid 0";
    return EINVAL;
  }
  if (!persistent && reg.nr_mem_id > 1) {
    *why = "NIC ports live in region 1: nr_mem_id " + std::to_string(reg.nr_mem_id) + " refused";
    return EINVAL;
  }
  const std::string other = attach::switch_of(port);
  if (!other.empty()) {
    *why = port + " is already attached to " + other + " (netmap wraps a port once)";
    return EBUSY;
  }
  int err = attach::start(sw, port, !persistent, !persistent && reg.nr_mode == NR_REG_NIC_SW, why);
  if (!err) *idx = switch_index(name);
  return err;
}

int detach_port(const std::string& name, uint32_t* idx, std::string* why) {
  std::string sw, port, on;
  if (!split_switch_port(name, &sw, &port, why)) return EINVAL;
  if (attach::exists(sw, port)) {  // a failed one too: detaching removes it
    const uint32_t i = switch_index(name);
    if (int err = attach::stop(sw, port, why)) return err;
    *idx = i;
    return 0;
  }
  if (vale_persistent(port, &on) && on == sw) {
    const std::string other = attach::switch_of(port);
    if (!other.empty()) {
      *why = port + " is wrapped on " + other + " too: detach " + other + ":" + port + " first";
      return EBUSY;
    }
  }
  return vale_detach(name, idx, why);
}

int polling(uint16_t type, const std::string& name, const nmreq_vale_polling& r, std::string* why) {
  std::string sw, port;
  if (!split_switch_port(name, &sw, &port, why)) return EINVAL;
  if (!attach::running(sw, port)) {
    std::string n = name, w;
    uint32_t b = 0, p = 0;
    if (vale_list_port(&n, &b, &p, &w) == 0) {
      *why = name + " is a VALE port, not an attached NIC: polling mode is for NICs";
      return EOPNOTSUPP;
    }
    *why = "no port " + name + " (polling mode is for NICs attached with vale-ctl -a)";
    return ENXIO;
  }
  if (type == NETMAP_REQ_VALE_POLLING_DISABLE) return attach::polling_disable(sw, port, why);
  attach::Polling p;
  p.mode = r.nr_mode, p.first_cpu = r.nr_first_cpu_id, p.ncpus = r.nr_num_polling_cpus;
  return attach::polling_enable(sw, port, p, why);
}

// NIOCCTRL VALE_* requests: the body is copied in and out like the others.
int vale_ctrl(void* arg, nmreq_header* h, const std::string& name, void* body) {
  std::string why;
  int err = 0;
  switch (h->nr_reqtype) {
    case NETMAP_REQ_VALE_NEWIF: {
      nmreq_vale_newif r;
      if (!body || !copy_in(&r, body, sizeof r)) return fail(EFAULT);
      ValeNewif c, made;
      c.rings[kTx] = r.nr_tx_rings, c.rings[kRx] = r.nr_rx_rings;
      c.slots[kTx] = r.nr_tx_slots, c.slots[kRx] = r.nr_rx_slots;
      c.mem_id = r.nr_mem_id;
      if ((err = vale_newif(name, c, &why, &made)) != 0) break;
      // As netmap: what was made goes back into the request.
      r.nr_tx_rings = made.rings[kTx], r.nr_rx_rings = made.rings[kRx];
      r.nr_tx_slots = made.slots[kTx], r.nr_rx_slots = made.slots[kRx];
      r.nr_mem_id = made.mem_id;
      return copy_out(body, &r, sizeof r) ? 0 : fail(EFAULT);
    }
    case NETMAP_REQ_VALE_DELIF:
      err = vale_delif(name, &why);
      break;
    case NETMAP_REQ_VALE_ATTACH:
    case NETMAP_REQ_VALE_DETACH: {
      bool att = h->nr_reqtype == NETMAP_REQ_VALE_ATTACH;
      size_t sz = att ? sizeof(nmreq_vale_attach) : sizeof(nmreq_vale_detach);
      alignas(8) char buf[sizeof(nmreq_vale_attach)];
      if (!body || !copy_in(buf, body, sz)) return fail(EFAULT);
      uint32_t idx = 0;
      err = att ? attach_port(name, reinterpret_cast<nmreq_vale_attach*>(buf)->reg, &idx, &why)
                : detach_port(name, &idx, &why);
      if (err) break;
      if (att)
        reinterpret_cast<nmreq_vale_attach*>(buf)->port_index = idx;
      else
        reinterpret_cast<nmreq_vale_detach*>(buf)->port_index = idx;
      return copy_out(body, buf, sz) ? 0 : fail(EFAULT);
    }
    case NETMAP_REQ_VALE_POLLING_ENABLE:
    case NETMAP_REQ_VALE_POLLING_DISABLE: {
      nmreq_vale_polling r;
      if (!body || !copy_in(&r, body, sizeof r)) return fail(EFAULT);
      err = polling(h->nr_reqtype, name, r, &why);
      break;
    }
    case NETMAP_REQ_VALE_LIST: {
      nmreq_vale_list r;
      if (!body || !copy_in(&r, body, sizeof r)) return fail(EFAULT);
      std::string n = name;
      uint32_t b = r.nr_bridge_idx, p = r.nr_port_idx;
      if ((err = vale_list_port(&n, &b, &p, &why)) != 0) break;
      r.nr_bridge_idx = uint16_t(b), r.nr_port_idx = p;
      snprintf(h->nr_name, sizeof h->nr_name, "%s", n.c_str());
      if (!copy_out(body, &r, sizeof r) || !copy_out(arg, h, sizeof *h)) return fail(EFAULT);
      return 0;
    }
  }
  return err ? fail(err, why) : 0;
}

int ctrl(NetmapFile* f, int fd, void* arg) {
  nmreq_header h;
  if (!copy_in(&h, arg, sizeof h)) return fail(EFAULT);
  if (h.nr_version < NETMAP_MIN_API || h.nr_version > NETMAP_MAX_API)
    return fail(EINVAL, "nr_version " + std::to_string(h.nr_version) + " not supported: use " +
                            std::to_string(NETMAP_API));
  if (h.nr_reserved != 0) return fail(EINVAL, "nmreq_header.nr_reserved must be 0");
  Options opts;
  if (read_options(h.nr_options, h.nr_reqtype, &opts)) return -1;
  if (refuse_other_options(opts, h.nr_reqtype)) return -1;
  const uint64_t extmem = opts.at[NETMAP_REQ_OPT_EXTMEM], csb = opts.at[NETMAP_REQ_OPT_CSB];
  std::string name = name_of(h.nr_name, sizeof h.nr_name);
  void* body = reinterpret_cast<void*>(h.nr_body);
  switch (h.nr_reqtype) {
    case NETMAP_REQ_REGISTER: {
      nmreq_register r;
      if (!body || !copy_in(&r, body, sizeof r)) return fail(EFAULT);
      BindRequest rq;
      rq.name = name;
      rq.mode = r.nr_mode;
      rq.ringid = r.nr_ringid;
      rq.flags = r.nr_flags;
      rq.mem_id = r.nr_mem_id;
      rq.nrings[kTx] = r.nr_tx_rings, rq.nrings[kRx] = r.nr_rx_rings;
      rq.nslots[kTx] = r.nr_tx_slots, rq.nslots[kRx] = r.nr_rx_slots;
      rq.nhost[kTx] = r.nr_host_tx_rings, rq.nhost[kRx] = r.nr_host_rx_rings;
      rq.extra_bufs = r.nr_extra_bufs;
      if (extmem ? register_extmem(f, rq, extmem) : do_register(f, rq)) return -1;
      if (csb && csb_option(f, csb)) {
        const int e = errno;
        unregister(f);
        errno = e;
        return -1;
      }
      fill_register_reply(*f->binding, &r);
      return copy_out(body, &r, sizeof r) ? 0 : fail(EFAULT);
    }
    case NETMAP_REQ_PORT_INFO_GET: {
      nmreq_port_info_get pi;
      if (!body || !copy_in(&pi, body, sizeof pi)) return fail(EFAULT);
      nmreq_register r{};
      if (port_info(f, name, pi.nr_mem_id, &r)) return -1;
      pi.nr_memsize = r.nr_memsize;
      pi.nr_tx_slots = r.nr_tx_slots, pi.nr_rx_slots = r.nr_rx_slots;
      pi.nr_tx_rings = r.nr_tx_rings, pi.nr_rx_rings = r.nr_rx_rings;
      pi.nr_host_tx_rings = r.nr_host_tx_rings, pi.nr_host_rx_rings = r.nr_host_rx_rings;
      pi.nr_mem_id = r.nr_mem_id;
      return copy_out(body, &pi, sizeof pi) ? 0 : fail(EFAULT);
    }
    case NETMAP_REQ_POOLS_INFO_GET: {
      nmreq_pools_info pi;
      if (!body || !copy_in(&pi, body, sizeof pi)) return fail(EFAULT);
      // As netmap: the region of the port named (made if need be).
      // Extension: no name but a region id is that region (nm-regions).
      if (name.empty() && !pi.nr_mem_id)
        return fail(ENXIO, "POOLS_INFO_GET names no port (nor a region, nr_mem_id)");
      if (!name.empty()) {
        nmreq_register r{};
        if (port_info(f, name, pi.nr_mem_id, &r)) return -1;
        pi.nr_mem_id = r.nr_mem_id;
      }
      if (pools_info(f, &pi)) return -1;
      return copy_out(body, &pi, sizeof pi) ? 0 : fail(EFAULT);
    }
    case NETMAP_REQ_VALE_ATTACH:
    case NETMAP_REQ_VALE_DETACH:
    case NETMAP_REQ_VALE_LIST:
    case NETMAP_REQ_VALE_NEWIF:
    case NETMAP_REQ_VALE_DELIF:
    case NETMAP_REQ_VALE_POLLING_ENABLE:
    case NETMAP_REQ_VALE_POLLING_DISABLE:
      return vale_ctrl(arg, &h, name, body);
    case NETMAP_REQ_PORT_HDR_GET:
    case NETMAP_REQ_PORT_HDR_SET: {
      nmreq_port_hdr ph;
      if (!body || !copy_in(&ph, body, sizeof ph)) return fail(EFAULT);
      if (port_hdr(f, h.nr_reqtype, name, &ph)) return -1;
      return copy_out(body, &ph, sizeof ph) ? 0 : fail(EFAULT);
    }
    case NETMAP_REQ_CSB_ENABLE:
      if (!csb) return fail(EINVAL, "CSB_ENABLE needs the NETMAP_REQ_OPT_CSB option");
      return csb_option(f, csb);
    case NETMAP_REQ_SYNC_KLOOP_START:
      return kloop_start(f, fd, body, opts);
    case NETMAP_REQ_SYNC_KLOOP_STOP: {
      Binding* b = refresh_binding(f);
      if (!b) return fail(ENXIO, "sync-kloop stop on an fd that is not registered");
      b->kloop_stop();
      return 0;
    }
    default:
      return fail(EOPNOTSUPP, "request type " + std::to_string(h.nr_reqtype) + " not supported");
  }
}

// Legacy NIOCREGIF / NIOCGINFO (struct nmreq).
BindRequest legacy_request(const nmreq& r) {
  BindRequest rq;
  rq.name = name_of(r.nr_name, sizeof r.nr_name);
  rq.mode = r.nr_flags & NR_REG_MASK;
  rq.flags = r.nr_flags & ~uint64_t(NR_REG_MASK);
  if (rq.mode == NR_REG_DEFAULT) {
    if (r.nr_ringid & NETMAP_SW_RING)
      rq.mode = NR_REG_SW;
    else if (r.nr_ringid & NETMAP_HW_RING)
      rq.mode = NR_REG_ONE_NIC;
    else
      rq.mode = NR_REG_ALL_NIC;
  }
  rq.ringid = r.nr_ringid & NETMAP_RING_MASK;
  if (r.nr_ringid & NETMAP_NO_TX_POLL) rq.flags |= NR_NO_TX_POLL;
  if (r.nr_ringid & NETMAP_DO_RX_POLL) rq.flags |= NR_DO_RX_POLL;
  rq.mem_id = r.nr_arg2;
  rq.nrings[kTx] = r.nr_tx_rings, rq.nrings[kRx] = r.nr_rx_rings;
  rq.nslots[kTx] = r.nr_tx_slots, rq.nslots[kRx] = r.nr_rx_slots;
  rq.extra_bufs = r.nr_arg3;
  return rq;
}

void legacy_reply(const nmreq_register& rr, nmreq* r) {
  r->nr_offset = uint32_t(rr.nr_offset);
  r->nr_memsize = uint32_t(rr.nr_memsize);
  r->nr_tx_slots = rr.nr_tx_slots, r->nr_rx_slots = rr.nr_rx_slots;
  r->nr_tx_rings = rr.nr_tx_rings, r->nr_rx_rings = rr.nr_rx_rings;
  r->nr_arg2 = rr.nr_mem_id;
  r->nr_arg3 = rr.nr_extra_bufs;
}

// Legacy VALE control: nr_cmd in a NIOCREGIF request.
int legacy_cmd(NetmapFile* f, void* arg, nmreq* r) {
  std::string name = name_of(r->nr_name, sizeof r->nr_name), why;
  uint32_t idx = 0, bridge = r->nr_arg1, port = r->nr_arg2;
  int err;
  switch (r->nr_cmd) {
    case NETMAP_BDG_ATTACH: {
      nmreq_register reg{};
      reg.nr_mode = (r->nr_arg1 & NETMAP_BDG_HOST) ? NR_REG_NIC_SW : NR_REG_ALL_NIC;
      reg.nr_mem_id = r->nr_arg2;
      err = attach_port(name, reg, &idx, &why);
      break;
    }
    case NETMAP_BDG_DETACH:
      err = detach_port(name, &idx, &why);
      break;
    case NETMAP_BDG_POLLING_ON:
    case NETMAP_BDG_POLLING_OFF: {
      // netmap's mapping: ONE_NIC is multi-CPU, ALL_NIC single-CPU.
      nmreq_vale_polling p{};
      const uint32_t m = r->nr_flags & NR_REG_MASK;
      p.nr_mode = m == NR_REG_ONE_NIC   ? NETMAP_POLLING_MODE_MULTI_CPU
                  : m == NR_REG_ALL_NIC ? NETMAP_POLLING_MODE_SINGLE_CPU
                                        : 0;
      p.nr_first_cpu_id = r->nr_ringid & NETMAP_RING_MASK;
      p.nr_num_polling_cpus = r->nr_arg1;
      err = polling(r->nr_cmd == NETMAP_BDG_POLLING_ON ? NETMAP_REQ_VALE_POLLING_ENABLE
                                                       : NETMAP_REQ_VALE_POLLING_DISABLE,
                    name, p, &why);
      break;
    }
    case NETMAP_BDG_NEWIF: {
      ValeNewif c, made;
      c.rings[kTx] = r->nr_tx_rings, c.rings[kRx] = r->nr_rx_rings;
      c.slots[kTx] = r->nr_tx_slots, c.slots[kRx] = r->nr_rx_slots;
      c.mem_id = r->nr_arg2;
      if ((err = vale_newif(name, c, &why, &made)) != 0) break;
      r->nr_tx_rings = made.rings[kTx], r->nr_rx_rings = made.rings[kRx];
      r->nr_tx_slots = made.slots[kTx], r->nr_rx_slots = made.slots[kRx];
      r->nr_arg2 = made.mem_id;
      return copy_out(arg, r, sizeof *r) ? 0 : fail(EFAULT);
    }
    case NETMAP_BDG_DELIF:
      err = vale_delif(name, &why);
      break;
    case NETMAP_BDG_VNET_HDR:
    case NETMAP_VNET_HDR_GET: {  // the length in nr_arg1, as PORT_HDR_SET/GET
      nmreq_port_hdr ph{};
      ph.nr_hdr_len = r->nr_arg1;
      const uint16_t t = r->nr_cmd == NETMAP_BDG_VNET_HDR ? NETMAP_REQ_PORT_HDR_SET : NETMAP_REQ_PORT_HDR_GET;
      if (port_hdr(f, t, name, &ph) != 0) return -1;
      r->nr_arg1 = uint16_t(ph.nr_hdr_len);
      return copy_out(arg, r, sizeof *r) ? 0 : fail(EFAULT);
    }
    case NETMAP_BDG_LIST:
      if ((err = vale_list_port(&name, &bridge, &port, &why)) != 0) break;
      snprintf(r->nr_name, sizeof r->nr_name, "%s", name.c_str());
      r->nr_arg1 = uint16_t(bridge), r->nr_arg2 = uint16_t(port);
      return copy_out(arg, r, sizeof *r) ? 0 : fail(EFAULT);
    default:
      return fail(EOPNOTSUPP, "nr_cmd " + std::to_string(r->nr_cmd) + " not supported");
  }
  return err ? fail(err, why) : 0;
}

int legacy(NetmapFile* f, unsigned long req, void* arg) {
  nmreq r;
  if (!copy_in(&r, arg, sizeof r)) return fail(EFAULT);
  // Any version from 11 on: netmap keeps the legacy ABI for newer
  // applications too (their nmreq is the same).
  constexpr uint16_t kLegacyApi = 11;  // the first version with struct nmreq as it is
  if (r.nr_version < kLegacyApi)
    return fail(EINVAL, "nr_version " + std::to_string(r.nr_version) + " not supported");
  if (r.nr_cmd != 0) return legacy_cmd(f, arg, &r);
  BindRequest rq = legacy_request(r);
  nmreq_register rr{};
  if (req == NIOCREGIF) {
    if (do_register(f, rq)) return -1;
    fill_register_reply(*f->binding, &rr);
  } else if (rq.name.empty()) {
    nmreq_pools_info pi{};
    pi.nr_mem_id = rq.mem_id;
    if (pools_info(f, &pi)) return -1;
    rr.nr_memsize = pi.nr_memsize;
    rr.nr_mem_id = pi.nr_mem_id;
  } else if (port_info(f, rq.name, rq.mem_id, &rr)) {
    return -1;
  }
  legacy_reply(rr, &r);
  return copy_out(arg, &r, sizeof r) ? 0 : fail(EFAULT);
}

}  // namespace

int dev_ctrl(NetmapFile* f, int fd, unsigned long req, void* arg) {
  return req == NIOCCTRL ? ctrl(f, fd, arg) : legacy(f, req, arg);
}

}  // namespace unetmap
