// The classic descriptor API of netmap_user.h (nm_open, nm_close, nm_mmap),
// written on nmport_parse and the /dev/netmap emulation. nm_open accepts
// the same names as nmport_open; the legacy template (req, flags, arg)
// overrides ring configuration (NM_OPEN_RING_CFG), the region
// (NM_OPEN_ARG2) and can reuse the parent's mapping (NM_OPEN_NO_MMAP).
#define NETMAP_WITH_LIBS
#include <errno.h>
#include <fcntl.h>
#include <libnetmap.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "abi/devnetmap.h"
#include "lib/rings.h"

extern "C" {

int nm_mmap(struct nm_desc* d, const struct nm_desc* parent) {
  if (d->done_mmap) return 0;
  if (parent && parent->mem && parent->req.nr_arg2 == d->req.nr_arg2) {
    d->mem = parent->mem;  // same region: share the parent's mapping
  } else {
    d->mem = unetmap::dev_mmap(nullptr, d->memsize, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd, 0);
    if (d->mem == MAP_FAILED) {
      d->mem = nullptr;
      snprintf(d->msg, sizeof d->msg, "mmap failed: %s", unetmap_last_error());
      return -1;
    }
    d->done_mmap = 1;
  }
  auto* nifp = NETMAP_IF(d->mem, d->req.nr_offset);
  *const_cast<netmap_if**>(&d->nifp) = nifp;
  // Any ring the fd bound (the netmap_if has 0 for the others): tx first.
  const uint32_t ntx = nifp->ni_tx_rings + nifp->ni_host_tx_rings;
  const uint32_t nall = ntx + nifp->ni_rx_rings + nifp->ni_host_rx_rings;
  netmap_ring* r = nullptr;
  for (uint32_t i = 0; i < nall && !r; i++)
    if (nifp->ring_ofs[i]) r = reinterpret_cast<netmap_ring*>(reinterpret_cast<char*>(nifp) + nifp->ring_ofs[i]);
  *const_cast<netmap_ring**>(&d->some_ring) = r;
  char* base = r ? reinterpret_cast<char*>(r) + r->buf_ofs : static_cast<char*>(d->mem);
  *const_cast<void**>(&d->buf_start) = base;
  *const_cast<void**>(&d->buf_end) = static_cast<char*>(d->mem) + d->memsize;
  return 0;
}

struct nm_desc* nm_open(const char* ifname, const struct nmreq* req, uint64_t flags,
                        const struct nm_desc* arg) {
  nmport_d* p = nmport_prepare(ifname);
  if (!p) return nullptr;
  nmreq_register& r = p->reg;
  if (req && (flags & NM_OPEN_RING_CFG)) {
    r.nr_tx_slots = req->nr_tx_slots, r.nr_rx_slots = req->nr_rx_slots;
    r.nr_tx_rings = req->nr_tx_rings, r.nr_rx_rings = req->nr_rx_rings;
  }
  if (req && (flags & NM_OPEN_ARG2) && req->nr_arg2) r.nr_mem_id = req->nr_arg2;
  if (req && (flags & NM_OPEN_ARG3)) r.nr_extra_bufs = req->nr_arg3;
  if ((flags & NM_OPEN_NO_MMAP) && arg && IS_NETMAP_DESC(arg) && !r.nr_mem_id)
    r.nr_mem_id = arg->req.nr_arg2;
  auto* d = static_cast<nm_desc*>(calloc(1, sizeof(nm_desc)));
  if (!d) {
    nmport_undo_prepare(p);
    errno = ENOMEM;
    return nullptr;
  }
  d->self = d;
  d->fd = unetmap::dev_open(O_RDWR | O_CLOEXEC);
  if (d->fd < 0 || unetmap::dev_ioctl(d->fd, NIOCCTRL, &p->hdr) < 0) {
    int e = errno;
    fprintf(stderr, "nm_open: %s: %s\n", ifname, unetmap_last_error());
    if (d->fd >= 0) unetmap::dev_close(d->fd);
    free(d);
    nmport_undo_prepare(p);
    errno = e;
    return nullptr;
  }
  snprintf(d->req.nr_name, sizeof d->req.nr_name, "%.*s", int(sizeof d->req.nr_name - 1),
           p->hdr.nr_name);
  d->req.nr_version = NETMAP_API;
  d->req.nr_offset = uint32_t(r.nr_offset);
  d->req.nr_memsize = uint32_t(r.nr_memsize);
  d->req.nr_tx_slots = r.nr_tx_slots, d->req.nr_rx_slots = r.nr_rx_slots;
  d->req.nr_tx_rings = r.nr_tx_rings, d->req.nr_rx_rings = r.nr_rx_rings;
  d->req.nr_ringid = r.nr_ringid;
  d->req.nr_flags = uint32_t(r.nr_mode | (r.nr_flags & ~uint64_t(NR_REG_MASK)));
  d->req.nr_arg2 = r.nr_mem_id;
  d->req.nr_arg3 = r.nr_extra_bufs;
  d->memsize = r.nr_memsize;
  unetmap::RingSpan rs = unetmap::ring_span(r);
  d->first_tx_ring = d->cur_tx_ring = rs.first_tx, d->last_tx_ring = rs.last_tx;
  d->first_rx_ring = d->cur_rx_ring = rs.first_rx, d->last_rx_ring = rs.last_rx;
  nmport_undo_prepare(p);
  const nm_desc* parent = (flags & NM_OPEN_NO_MMAP) && arg && IS_NETMAP_DESC(arg) ? arg : nullptr;
  if (nm_mmap(d, parent) < 0) {
    int e = errno;
    fprintf(stderr, "nm_open: %s: %s\n", ifname, d->msg);
    unetmap::dev_close(d->fd);
    free(d);
    errno = e;
    return nullptr;
  }
  return d;
}

int nm_close(struct nm_desc* d) {
  if (!d || !IS_NETMAP_DESC(d)) {
    errno = EINVAL;
    return EINVAL;
  }
  // What nm_inject queued leaves now (netmap's close drops it: pcap_inject
  // then pcap_close would send nothing).
  if (d->fd >= 0 && d->nifp) unetmap::dev_ioctl(d->fd, NIOCTXSYNC, nullptr);
  if (d->done_mmap && d->mem) munmap(d->mem, d->memsize);
  if (d->fd >= 0) unetmap::dev_close(d->fd);
  memset(static_cast<void*>(d), 0, sizeof *d);
  free(d);
  return 0;
}

}  // extern "C"
