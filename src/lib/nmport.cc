// libnetmap: port names, nmport_* descriptors and the nmctx context.
// Everything goes through the /dev/netmap emulation (abi/devnetmap.h),
// exactly as an application's own open/ioctl/mmap would.
#include <errno.h>
#include <fcntl.h>
#include <libnetmap.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "abi/devnetmap.h"
#include "core/adapter.h"
#include "core/shm.h"
#include "lib/rings.h"

namespace {

void default_error(nmctx*, const char* msg) { fprintf(stderr, "%s\n", msg); }
void* default_malloc(nmctx*, size_t sz) { return calloc(1, sz); }
void default_free(nmctx*, void* p) { free(p); }
void no_lock(nmctx*, int) {}

pthread_mutex_t g_ctx_mu = PTHREAD_MUTEX_INITIALIZER;
void mutex_lock(nmctx*, int lock) {
  if (lock)
    pthread_mutex_lock(&g_ctx_mu);
  else
    pthread_mutex_unlock(&g_ctx_mu);
}

nmctx g_default = {0, default_error, default_malloc, default_free, no_lock, nullptr};
nmctx* g_ctx = &g_default;

bool is_ident_char(char c) { return isalnum(static_cast<unsigned char>(c)) || c == '_'; }

int fail(nmctx* ctx, int err, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
int fail(nmctx* ctx, int err, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (ctx && ctx->error) ctx->error(ctx, buf);
  errno = err;
  return -1;
}

// Parse a decimal number at *p; false if none.
bool parse_num(const char** p, unsigned long* out) {
  if (!isdigit(static_cast<unsigned char>(**p))) return false;
  char* end;
  *out = strtoul(*p, &end, 10);
  *p = end;
  return true;
}

// "@conf:" keys and the nmreq_register fields they set.
int apply_conf(nmport_d* d, const std::string& body, const char* spec) {
  nmreq_register& r = d->reg;
  long all_rings = -1, host = -1, slots = -1;
  long txr = -1, rxr = -1, htx = -1, hrx = -1, txs = -1, rxs = -1;
  size_t pos = 0;
  while (pos <= body.size()) {
    size_t comma = body.find(',', pos);
    std::string kv = body.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? body.size() + 1 : comma + 1;
    size_t eq = kv.find('=');
    std::string key = eq == std::string::npos ? "rings" : kv.substr(0, eq);
    std::string val = eq == std::string::npos ? kv : kv.substr(eq + 1);
    for (char& c : key)
      if (c == '-') c = '_';
    if (val.empty()) return fail(d->ctx, EINVAL, "%s: conf key '%s': missing value", spec, key.c_str());
    // Ring counts are 16-bit in nmreq_register, slot counts 32-bit; netmap
    // (and vale-ctl) take up to 65536 slots.
    const long max = key.find("slots") != std::string::npos ? 65536 : 65535;
    char* end;
    long v = strtol(val.c_str(), &end, 10);
    if (*end || v < 0 || v > max)
      return fail(d->ctx, EINVAL, "%s: conf key '%s': '%s' is not a number in 0..%ld", spec,
                  key.c_str(), val.c_str(), max);
    long* dst = key == "rings"           ? &all_rings
                : key == "host_rings"    ? &host
                : key == "slots"         ? &slots
                : key == "tx_rings"      ? &txr
                : key == "rx_rings"      ? &rxr
                : key == "host_tx_rings" ? &htx
                : key == "host_rx_rings" ? &hrx
                : key == "tx_slots"      ? &txs
                : key == "rx_slots"      ? &rxs
                                         : nullptr;
    if (!dst)
      return fail(d->ctx, EINVAL,
                  "%s: unknown conf key '%s' (rings, host-rings, slots, tx-rings, rx-rings, "
                  "host-tx-rings, host-rx-rings, tx-slots, rx-slots)",
                  spec, key.c_str());
    if (*dst >= 0) return fail(d->ctx, EINVAL, "%s: conf key '%s' given twice", spec, key.c_str());
    *dst = v;
  }
  if (all_rings >= 0) r.nr_tx_rings = r.nr_rx_rings = uint16_t(all_rings);
  if (host >= 0) r.nr_host_tx_rings = r.nr_host_rx_rings = uint16_t(host);
  if (slots >= 0) r.nr_tx_slots = r.nr_rx_slots = uint32_t(slots);
  if (txr >= 0) r.nr_tx_rings = uint16_t(txr);
  if (rxr >= 0) r.nr_rx_rings = uint16_t(rxr);
  if (htx >= 0) r.nr_host_tx_rings = uint16_t(htx);
  if (hrx >= 0) r.nr_host_rx_rings = uint16_t(hrx);
  if (txs >= 0) r.nr_tx_slots = uint32_t(txs);
  if (rxs >= 0) r.nr_rx_slots = uint32_t(rxs);
  return 0;
}

// "@share=PORT": the memory region of another port.
int apply_share(nmport_d* d, const std::string& port, const char* spec) {
  if (port.empty()) return fail(d->ctx, EINVAL, "%s: share: missing port name", spec);
  nmreq_header h;
  const char* p = port.c_str();
  if (nmreq_header_decode(&p, &h, d->ctx) < 0) return -1;
  nmreq_port_info_get pi{};
  nmreq_header_init(&h, NETMAP_REQ_PORT_INFO_GET, &pi);
  int fd = unetmap::dev_open(O_RDWR | O_CLOEXEC);
  if (fd < 0) return fail(d->ctx, errno, "%s: share: cannot open /dev/netmap", spec);
  int r = unetmap::dev_ioctl(fd, NIOCCTRL, &h);
  int e = errno;
  unetmap::dev_close(fd);
  if (r < 0) return fail(d->ctx, e, "%s: share: cannot find port '%s': %s", spec, port.c_str(), unetmap_last_error());
  if (d->reg.nr_mem_id && d->reg.nr_mem_id != pi.nr_mem_id)
    return fail(d->ctx, EINVAL, "%s: share: region %u of '%s' conflicts with @%u", spec,
                pi.nr_mem_id, port.c_str(), d->reg.nr_mem_id);
  d->reg.nr_mem_id = pi.nr_mem_id;
  return 0;
}

// "@extmem:file=PATH[,if-num=N,if-size=N,ring-num=N,ring-size=N,buf-num=N,
// buf-size=N]": the region on a file the application names.
int apply_extmem(nmport_d* d, const std::string& body, const char* spec) {
  std::string file;
  uint32_t v[6] = {0, 0, 0, 0, 0, 0};
  static const char* const keys[6] = {"if-num", "if-size", "ring-num", "ring-size", "buf-num", "buf-size"};
  size_t pos = 0;
  while (pos < body.size()) {
    size_t comma = body.find(',', pos);
    std::string kv = body.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? body.size() : comma + 1;
    size_t eq = kv.find('=');
    std::string key = kv.substr(0, eq), val = eq == std::string::npos ? "" : kv.substr(eq + 1);
    if (val.empty()) return fail(d->ctx, EINVAL, "%s: extmem key '%s': missing value", spec, key.c_str());
    if (key == "file") {
      file = val;
      continue;
    }
    int k = 0;
    while (k < 6 && key != keys[k]) k++;
    char* end;
    unsigned long x = strtoul(val.c_str(), &end, 0);
    if (k == 6)
      return fail(d->ctx, EINVAL,
                  "%s: unknown extmem key '%s' (file, if-num, if-size, ring-num, ring-size, "
                  "buf-num, buf-size)",
                  spec, key.c_str());
    if (*end || x > UINT32_MAX)
      return fail(d->ctx, EINVAL, "%s: extmem key '%s': '%s' is not a number", spec, key.c_str(), val.c_str());
    v[k] = uint32_t(x);
  }
  if (file.empty()) return fail(d->ctx, EINVAL, "%s: extmem needs file=PATH", spec);
  if (nmport_extmem_from_file(d, file.c_str()) < 0) return -1;
  nmreq_pools_info& pi = d->extmem->nro_info;
  pi.nr_if_pool_objtotal = v[0], pi.nr_if_pool_objsize = v[1];
  pi.nr_ring_pool_objtotal = v[2], pi.nr_ring_pool_objsize = v[3];
  pi.nr_buf_pool_objtotal = v[4], pi.nr_buf_pool_objsize = v[5];
  return 0;
}

// The extmem option and, when the library mapped the file, that mapping.
struct ExtmemOpt {
  nmreq_opt_extmem opt;
  void* file_map;
  size_t file_size;
};

void free_extmem(nmport_d* d) {
  if (!d->extmem) return;
  auto* e = reinterpret_cast<ExtmemOpt*>(d->extmem);
  nmreq_remove_option(&d->hdr, &e->opt.nro_opt);
  if (e->file_map) {
    // Other ports of this process on the region may still use the mapping:
    // then the last of them unmaps it.
    nmctx_lock(d->ctx);
    nmem_d* m = d->ctx->mem_descs;
    while (m && !(m->is_extmem && m->mem == e->file_map)) m = m->next;
    if (m) {
      m->is_extmem = 0;
      m->size = e->file_size;
    }
    nmctx_unlock(d->ctx);
    if (!m) munmap(e->file_map, e->file_size);
  }
  nmctx_free(d->ctx, e);
  d->extmem = nullptr;
}

int parse_options(nmport_d* d, const char* opts, const char* spec) {
  std::string s = opts;
  size_t pos = 0;
  while (pos < s.size()) {
    if (s[pos] != '@') return fail(d->ctx, EINVAL, "%s: unexpected '%c' at '%s'", spec, s[pos], s.c_str() + pos);
    size_t next = s.find('@', pos + 1);
    std::string item = s.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1);
    pos = next == std::string::npos ? s.size() : next;
    if (item.empty()) return fail(d->ctx, EINVAL, "%s: invalid empty option", spec);
    size_t sep = item.find_first_of(":=");
    std::string name = item.substr(0, sep);
    std::string body = sep == std::string::npos ? "" : item.substr(sep + 1);
    if (sep == std::string::npos) return fail(d->ctx, EINVAL, "%s: option '%s': missing body", spec, name.c_str());
    int r;
    if (name == "conf")
      r = apply_conf(d, body, spec);
    else if (name == "share")
      r = item[sep] == '=' ? apply_share(d, body, spec)
                           : fail(d->ctx, EINVAL, "%s: share takes '=PORT'", spec);
    else if (name == "extmem")
      r = item[sep] == ':' ? apply_extmem(d, body, spec)
                           : fail(d->ctx, EINVAL, "%s: extmem takes ':file=PATH,...'", spec);
    else if (name == "offset")
      r = fail(d->ctx, EOPNOTSUPP, "%s: option '%s' is not supported yet", spec, name.c_str());
    else
      r = fail(d->ctx, EINVAL, "%s: unknown option '%s' (conf, share, extmem)", spec, name.c_str());
    if (r < 0) return r;
  }
  return 0;
}

void compute_ring_range(nmport_d* d) {
  unetmap::RingSpan rs = unetmap::ring_span(d->reg);
  d->first_tx_ring = rs.first_tx, d->last_tx_ring = rs.last_tx;
  d->first_rx_ring = rs.first_rx, d->last_rx_ring = rs.last_rx;
  d->cur_tx_ring = d->first_tx_ring;
  d->cur_rx_ring = d->first_rx_ring;
}

}  // namespace

namespace unetmap {

RingSpan ring_span(const nmreq_register& r) {
  const uint16_t tx = r.nr_tx_rings, rx = r.nr_rx_rings;
  switch (r.nr_mode) {
    case NR_REG_SW:
      return {tx, uint16_t(tx + r.nr_host_tx_rings - 1), rx, uint16_t(rx + r.nr_host_rx_rings - 1)};
    case NR_REG_NIC_SW:
      return {0, uint16_t(tx + r.nr_host_tx_rings - 1), 0, uint16_t(rx + r.nr_host_rx_rings - 1)};
    case NR_REG_ONE_NIC:
      return {r.nr_ringid, r.nr_ringid, r.nr_ringid, r.nr_ringid};
    case NR_REG_ONE_SW:
      return {uint16_t(tx + r.nr_ringid), uint16_t(tx + r.nr_ringid), uint16_t(rx + r.nr_ringid),
              uint16_t(rx + r.nr_ringid)};
    default:  // NR_REG_NULL too: netmap's null port, every ring bound
      return {0, uint16_t(tx ? tx - 1 : 0), 0, uint16_t(rx ? rx - 1 : 0)};
  }
}

}  // namespace unetmap

extern "C" {

struct nmctx* nmctx_get(void) { return g_ctx; }

struct nmctx* nmctx_set_default(struct nmctx* ctx) {
  nmctx* old = g_ctx;
  if (ctx) g_ctx = ctx;
  return old;
}

void nmctx_set_threadsafe(void) { g_default.lock = mutex_lock; }

void nmctx_ferror(struct nmctx* ctx, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (ctx && ctx->error) ctx->error(ctx, buf);
}

void* nmctx_malloc(struct nmctx* ctx, size_t sz) { return ctx->malloc(ctx, sz); }
void nmctx_free(struct nmctx* ctx, void* p) { ctx->free(ctx, p); }
void nmctx_lock(struct nmctx* ctx) { ctx->lock(ctx, 1); }
void nmctx_unlock(struct nmctx* ctx) { ctx->lock(ctx, 0); }

void nmreq_header_init(struct nmreq_header* h, uint16_t reqtype, void* body) {
  uint64_t opts = h->nr_options;
  char name[NETMAP_REQ_IFNAMSIZ];
  memcpy(name, h->nr_name, sizeof name);
  memset(h, 0, sizeof *h);
  memcpy(h->nr_name, name, sizeof name);
  h->nr_options = opts;
  h->nr_version = NETMAP_API;
  h->nr_reqtype = reqtype;
  h->nr_body = reinterpret_cast<uintptr_t>(body);
}

int nmreq_header_decode(const char** pspec, struct nmreq_header* h, struct nmctx* ctx) {
  const char* spec = *pspec;
  const char* p = spec;
  const char* name_start;
  if (!ctx) ctx = g_ctx;
  memset(h, 0, sizeof *h);
  h->nr_version = NETMAP_API;
  if (strncmp(p, "netmap", 6) == 0) {
    p += 6;
    if (*p != ':')
      return fail(ctx, EINVAL, "%s: expected ':' after 'netmap' (no identifier allowed)", spec);
    name_start = ++p;
  } else if (size_t n = unetmap::kept_spec_prefix(p)) {
    name_start = p;  // a port type's prefix stays in the name ("valeX:", "null:")
    p += n;
  } else if (strncmp(p, NM_BDG_NAME, 4) == 0) {
    return fail(ctx, EINVAL, "%s: invalid switch name, expected valeX:PORT", spec);
  } else {
    return fail(ctx, EINVAL, "%s: prefix unknown or missing: use netmap:NAME, %s", spec,
                unetmap::kept_spec_prefixes().c_str());
  }
  const char* port = p;
  while (*p && !strchr("-*^/@", *p)) p++;
  std::string span(port, size_t(p - port));
  size_t brace = span.find_first_of("{}");
  std::string base = span.substr(0, brace);
  if (base.empty() && brace == std::string::npos)
    return fail(ctx, EINVAL, "%s: invalid empty port name", spec);
  for (char c : base)
    if (!is_ident_char(c))
      return fail(ctx, EINVAL, "%s: invalid character '%c' in port name '%s'", spec, c, base.c_str());
  if (brace != std::string::npos) {
    std::string pipe = span.substr(brace + 1);
    if (pipe.empty())
      return fail(ctx, EINVAL, "%s: invalid empty pipe name after '%c'", spec, span[brace]);
    for (char c : pipe)
      if (!is_ident_char(c))
        return fail(ctx, EINVAL, "%s: invalid pipe name '%s'", spec, pipe.c_str());
  }
  size_t len = size_t(p - name_start);
  if (len >= NETMAP_REQ_IFNAMSIZ)
    return fail(ctx, EINVAL, "%s: port name too long (at most %d characters)", spec,
                NETMAP_REQ_IFNAMSIZ - 1);
  memcpy(h->nr_name, name_start, len);
  h->nr_name[len] = 0;
  *pspec = p;
  return 0;
}

int nmreq_register_decode(const char** pmode, struct nmreq_register* reg, struct nmctx* ctx) {
  const char* spec = *pmode;
  const char* p = spec;
  if (!ctx) ctx = g_ctx;
  reg->nr_mode = NR_REG_ALL_NIC;
  reg->nr_ringid = 0;
  reg->nr_flags = 0;
  unsigned long n;
  switch (*p) {
    case 0:
      break;
    case '^':
      p++;
      reg->nr_mode = NR_REG_SW;
      if (parse_num(&p, &n)) {
        if (n >= NETMAP_RING_MASK) return fail(ctx, EINVAL, "'%s': host ring %lu out of range", spec, n);
        reg->nr_mode = NR_REG_ONE_SW;
        reg->nr_ringid = uint16_t(n);
      }
      break;
    case '*':
      p++;
      reg->nr_mode = NR_REG_NIC_SW;
      break;
    case '-':
      p++;
      if (!parse_num(&p, &n))
        return fail(ctx, EINVAL, "'%s': expected a ring number after '-'", spec);
      if (n >= NETMAP_RING_MASK) return fail(ctx, EINVAL, "'%s': ring %lu out of range", spec, n);
      reg->nr_mode = NR_REG_ONE_NIC;
      reg->nr_ringid = uint16_t(n);
      break;
    case '/':
    case '@':
      break;
    default:
      return fail(ctx, EINVAL, "'%s': unknown modifier '%c'", spec, *p);
  }
  if (*p && *p != '/' && *p != '@')
    return fail(ctx, EINVAL, "'%s': unexpected character '%c' (expected '/' or '@')", spec, *p);
  if (*p == '/') {
    p++;
    if (!*p) return fail(ctx, EINVAL, "'%s': unexpected end after '/'", spec);
    for (; *p && *p != '@'; p++) {
      switch (*p) {
        case 'x': reg->nr_flags |= NR_EXCLUSIVE; break;
        case 'z': reg->nr_flags |= NR_ZCOPY_MON; break;
        case 't': reg->nr_flags |= NR_MONITOR_TX; break;
        case 'r': reg->nr_flags |= NR_MONITOR_RX; break;
        case 'R': reg->nr_flags |= NR_RX_RINGS_ONLY; break;
        case 'T': reg->nr_flags |= NR_TX_RINGS_ONLY; break;
        default:
          return fail(ctx, EINVAL, "'%s': unrecognized flag '%c' (x z t r R T)", spec, *p);
      }
    }
  }
  if (*p == '@' && isdigit(static_cast<unsigned char>(p[1]))) {
    p++;
    parse_num(&p, &n);
    if (n == 0 || n > 65535) return fail(ctx, EINVAL, "'%s': invalid mem_id %lu", spec, n);
    if (reg->nr_mem_id && reg->nr_mem_id != n)
      return fail(ctx, EINVAL, "'%s': invalid setting of mem_id", spec);
    reg->nr_mem_id = uint16_t(n);
    if (*p && *p != '@') return fail(ctx, EINVAL, "'%s': unexpected '%c' after mem_id", spec, *p);
  } else if (*p == '@' && !p[1]) {
    return fail(ctx, EINVAL, "'%s': invalid empty mem_id", spec);
  }
  *pmode = p;
  return 0;
}

void nmreq_push_option(struct nmreq_header* h, struct nmreq_option* o) {
  o->nro_next = h->nr_options;
  h->nr_options = reinterpret_cast<uintptr_t>(o);
}

void nmreq_remove_option(struct nmreq_header* h, struct nmreq_option* o) {
  uint64_t* link = &h->nr_options;
  while (*link) {
    auto* cur = reinterpret_cast<nmreq_option*>(uintptr_t(*link));
    if (cur == o) {
      *link = o->nro_next;
      o->nro_next = 0;
      return;
    }
    link = &cur->nro_next;
  }
}

struct nmreq_option* nmreq_find_option(struct nmreq_header* h, uint32_t t) {
  nmreq_option* o;
  nmreq_foreach_option(h, o) if (o->nro_reqtype == t) return o;
  return nullptr;
}

void nmreq_free_options(struct nmreq_header* h) { h->nr_options = 0; }

const char* nmreq_option_name(uint32_t t) {
  switch (t) {
    case NETMAP_REQ_OPT_EXTMEM: return "extmem";
    case NETMAP_REQ_OPT_SYNC_KLOOP_EVENTFDS: return "sync-kloop-eventfds";
    case NETMAP_REQ_OPT_CSB: return "csb";
    case NETMAP_REQ_OPT_SYNC_KLOOP_MODE: return "sync-kloop-mode";
    case NETMAP_REQ_OPT_OFFSETS: return "offsets";
    default: return "unknown";
  }
}

struct nmport_d* nmport_new(void) {
  nmctx* ctx = g_ctx;
  auto* d = static_cast<nmport_d*>(nmctx_malloc(ctx, sizeof(nmport_d)));
  if (!d) {
    fail(ctx, ENOMEM, "cannot allocate nmport_d");
    return nullptr;
  }
  memset(d, 0, sizeof *d);
  d->ctx = ctx;
  d->fd = -1;
  return d;
}

void nmport_delete(struct nmport_d* d) {
  if (d) nmctx_free(d->ctx, d);
}

int nmport_parse(struct nmport_d* d, const char* spec) {
  const char* p = spec;
  if (!spec) return fail(d->ctx, EINVAL, "missing port name");
  if (nmreq_header_decode(&p, &d->hdr, d->ctx) < 0) return -1;
  memset(&d->reg, 0, sizeof d->reg);
  if (nmreq_register_decode(&p, &d->reg, d->ctx) < 0) return -1;
  if (parse_options(d, p, spec) < 0) return -1;
  nmreq_header_init(&d->hdr, NETMAP_REQ_REGISTER, &d->reg);
  return 0;
}

void nmport_undo_parse(struct nmport_d* d) {
  free_extmem(d);
  nmreq_free_options(&d->hdr);
  memset(&d->hdr, 0, sizeof d->hdr);
  memset(&d->reg, 0, sizeof d->reg);
}

struct nmport_d* nmport_prepare(const char* spec) {
  nmport_d* d = nmport_new();
  if (!d) return nullptr;
  if (nmport_parse(d, spec) < 0) {
    int e = errno;
    nmport_delete(d);
    errno = e;
    return nullptr;
  }
  return d;
}

int nmport_register(struct nmport_d* d) {
  if (d->register_done) return fail(d->ctx, EBUSY, "%s: already registered", d->hdr.nr_name);
  d->fd = unetmap::dev_open(O_RDWR | O_CLOEXEC);
  if (d->fd < 0) return fail(d->ctx, errno, "cannot open /dev/netmap: %s", unetmap_last_error());
  d->hdr.nr_body = reinterpret_cast<uintptr_t>(&d->reg);
  if (unetmap::dev_ioctl(d->fd, NIOCCTRL, &d->hdr) < 0) {
    int e = errno;
    std::string why = unetmap_last_error();
    unetmap::dev_close(d->fd);
    d->fd = -1;
    return fail(d->ctx, e, "%s: cannot register: %s", d->hdr.nr_name, why.c_str());
  }
  d->register_done = 1;
  return 0;
}

void nmport_unregister(struct nmport_d* d) {
  if (d->fd >= 0) unetmap::dev_close(d->fd);
  d->fd = -1;
  d->register_done = 0;
}

int nmport_mmap(struct nmport_d* d) {
  if (d->mmap_done) return fail(d->ctx, EINVAL, "%s: already mapped", d->hdr.nr_name);
  if (!d->register_done) return fail(d->ctx, EINVAL, "%s: not registered", d->hdr.nr_name);
  nmctx_lock(d->ctx);
  nmem_d* m;
  for (m = d->ctx->mem_descs; m; m = m->next)
    if (m->mem_id == d->reg.nr_mem_id) break;
  if (!m && d->extmem) {  // the application's memory is the region
    m = static_cast<nmem_d*>(nmctx_malloc(d->ctx, sizeof *m));
    if (!m) {
      nmctx_unlock(d->ctx);
      return fail(d->ctx, ENOMEM, "cannot allocate nmem_d");
    }
    memset(m, 0, sizeof *m);
    m->mem_id = d->reg.nr_mem_id;
    m->mem = reinterpret_cast<void*>(d->extmem->nro_usrptr);
    m->size = d->reg.nr_memsize;
    m->is_extmem = 1;
    m->next = d->ctx->mem_descs;
    if (m->next) m->next->prev = m;
    d->ctx->mem_descs = m;
  }
  if (!m) {
    void* p = unetmap::dev_mmap(nullptr, d->reg.nr_memsize, PROT_READ | PROT_WRITE, MAP_SHARED,
                                d->fd, 0);
    if (p == MAP_FAILED) {
      nmctx_unlock(d->ctx);
      return fail(d->ctx, errno, "%s: mmap failed: %s", d->hdr.nr_name, unetmap_last_error());
    }
    m = static_cast<nmem_d*>(nmctx_malloc(d->ctx, sizeof *m));
    if (!m) {
      munmap(p, d->reg.nr_memsize);
      nmctx_unlock(d->ctx);
      return fail(d->ctx, ENOMEM, "cannot allocate nmem_d");
    }
    memset(m, 0, sizeof *m);
    m->mem_id = d->reg.nr_mem_id;
    m->mem = p;
    m->size = d->reg.nr_memsize;
    m->next = d->ctx->mem_descs;
    if (m->next) m->next->prev = m;
    d->ctx->mem_descs = m;
  }
  m->refcount++;
  nmctx_unlock(d->ctx);
  d->mem = m;
  d->nifp = NETMAP_IF(m->mem, d->reg.nr_offset);
  compute_ring_range(d);
  d->mmap_done = 1;
  return 0;
}

void nmport_undo_mmap(struct nmport_d* d) {
  if (!d->mmap_done) return;
  nmctx_lock(d->ctx);
  nmem_d* m = d->mem;
  if (--m->refcount <= 0) {
    if (!m->is_extmem) munmap(m->mem, m->size);
    if (m->prev)
      m->prev->next = m->next;
    else
      d->ctx->mem_descs = m->next;
    if (m->next) m->next->prev = m->prev;
    nmctx_free(d->ctx, m);
  }
  nmctx_unlock(d->ctx);
  d->mem = nullptr;
  d->nifp = nullptr;
  d->mmap_done = 0;
}

int nmport_open_desc(struct nmport_d* d) {
  if (nmport_register(d) < 0) return -1;
  if (nmport_mmap(d) < 0) {
    int e = errno;
    nmport_unregister(d);
    errno = e;
    return -1;
  }
  return 0;
}

void nmport_undo_open_desc(struct nmport_d* d) {
  nmport_undo_mmap(d);
  nmport_unregister(d);
}

void nmport_undo_prepare(struct nmport_d* d) {
  if (!d) return;
  nmport_undo_parse(d);
  nmport_delete(d);
}

struct nmport_d* nmport_open(const char* spec) {
  nmport_d* d = nmport_prepare(spec);
  if (!d) return nullptr;
  if (nmport_open_desc(d) < 0) {
    int e = errno;
    nmport_undo_prepare(d);
    errno = e;
    return nullptr;
  }
  return d;
}

void nmport_close(struct nmport_d* d) {
  if (!d) return;
  nmport_undo_open_desc(d);
  nmport_undo_prepare(d);
}

struct nmport_d* nmport_clone(struct nmport_d* d) {
  nmport_d* c = nmport_new();
  if (!c) return nullptr;
  c->hdr = d->hdr;
  c->reg = d->reg;
  c->hdr.nr_options = 0;
  c->hdr.nr_body = reinterpret_cast<uintptr_t>(&c->reg);
  c->ctx = d->ctx;
  return c;
}

int nmport_extmem(struct nmport_d* d, void* base, size_t size) {
  if (d->register_done) return fail(d->ctx, EINVAL, "%s: extmem after register", d->hdr.nr_name);
  if (d->extmem) return fail(d->ctx, EINVAL, "%s: extmem given twice", d->hdr.nr_name);
  auto* e = static_cast<ExtmemOpt*>(nmctx_malloc(d->ctx, sizeof(ExtmemOpt)));
  if (!e) return fail(d->ctx, ENOMEM, "cannot allocate the extmem option");
  memset(e, 0, sizeof *e);
  e->opt.nro_opt.nro_reqtype = NETMAP_REQ_OPT_EXTMEM;
  e->opt.nro_usrptr = reinterpret_cast<uintptr_t>(base);
  e->opt.nro_info.nr_memsize = size;
  nmreq_push_option(&d->hdr, &e->opt.nro_opt);
  d->extmem = &e->opt;
  return 0;
}

int nmport_extmem_from_file(struct nmport_d* d, const char* fname) {
  int fd = unetmap::sys::open(fname, O_RDWR | O_CLOEXEC);
  if (fd < 0) return fail(d->ctx, errno, "%s: extmem: cannot open %s: %s", d->hdr.nr_name, fname, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) < 0 || st.st_size == 0) {
    unetmap::sys::close(fd);
    return fail(d->ctx, EINVAL, "%s: extmem: %s is empty", d->hdr.nr_name, fname);
  }
  void* p = unetmap::sys::mmap(nullptr, size_t(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int e = errno;
  unetmap::sys::close(fd);
  if (p == MAP_FAILED) return fail(d->ctx, e, "%s: extmem: cannot map %s: %s", d->hdr.nr_name, fname, strerror(e));
  if (nmport_extmem(d, p, size_t(st.st_size)) < 0) {
    munmap(p, size_t(st.st_size));
    return -1;
  }
  auto* x = reinterpret_cast<ExtmemOpt*>(d->extmem);
  x->file_map = p;
  x->file_size = size_t(st.st_size);
  return 0;
}
struct nmreq_pools_info* nmport_extmem_getinfo(struct nmport_d* d) {
  return d->extmem ? &d->extmem->nro_info : nullptr;
}
int nmport_offset(struct nmport_d* d, uint64_t, uint64_t, uint64_t, uint64_t) {
  return fail(d->ctx, EOPNOTSUPP, "%s: offsets are not supported yet", d->hdr.nr_name);
}
int nmport_enable_option(const char* opt) {
  return fail(g_ctx, EOPNOTSUPP, "option '%s' cannot be enabled in this build", opt);
}
int nmport_disable_option(const char*) { return 0; }

}  // extern "C"
