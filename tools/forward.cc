// The forwarding loop (see forward.h). Plain loops over slots: no call per
// packet beyond memcpy in copy mode, no allocation, no sync. Chains and
// copies are the packet engine's (src/core/engine.h), as in the library.
#include "forward.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <vector>

#include "core/engine.h"

namespace unetmap::fwd {
namespace {

constexpr uint32_t kPrefetchAhead = 4;  // packets: the filter's head prefetch distance

// Why one ring pair stopped.
enum class Stop { kRxDone, kTxFull, kLimit };

// The bytes of the rx slots of a packet (a slot's length is the
// library's, within its buffer; bounded all the same).
struct RxFrags {
  const netmap_ring* rx;
  uint32_t first;
  Frag operator()(uint32_t i) const {
    const netmap_slot& s = rx->slot[ring_add(first, i, rx->num_slots)];
    return Frag{reinterpret_cast<const uint8_t*>(NETMAP_BUF(rx, s.buf_idx)),
                std::min<uint32_t>(s.len, rx->nr_buf_size)};
  }
};

// Move packets from one rx ring to one tx ring until the rx ring has no
// complete packet left, the tx ring has no room for the next one, or
// `limit` packets have moved.
Stop move_ring(netmap_ring* rx, netmap_ring* tx, uint32_t limit, bool zero_copy, Counters* c,
               uint32_t* moved, const Filter* filter) {
  const uint32_t rn = rx->num_slots, tn = tx->num_slots;
  CopyRule rule;
  rule.src_buf = rx->nr_buf_size;
  rule.dst_buf = tx->nr_buf_size;
  rule.max_frame = ~0u;  // whatever the tx ring has room for
  const auto bufs = [tx](uint32_t b) { return reinterpret_cast<uint8_t*>(NETMAP_BUF(tx, b)); };
  uint8_t gathered[kFilterHead];
  uint32_t j = rx->cur, k = tx->cur;
  uint32_t rx_avail = nm_ring_space(rx), tx_avail = nm_ring_space(tx);
  uint32_t pkts = 0;
  uint64_t bytes = 0;
  Stop why = Stop::kRxDone;
  while (rx_avail > 0) {
    if (pkts == limit) {
      why = Stop::kLimit;
      break;
    }
    const FrameSpan f = frame_at(rx->slot, j, rx_avail, rn);
    const uint32_t n = f.nslots, len = f.len;
    if (n == 0) {
      // The rest of the packet is still to come, unless the chain already
      // fills the ring: then it never ends, and is dropped.
      if (rx_avail + 1 < rn) break;
      c->drops++;
      j = ring_add(j, rx_avail, rn);
      rx_avail = 0;
      break;
    }
    const RxFrags frags{rx, j};
    const uint32_t need = zero_copy ? n : frame_slots(frags, n, len, rule);
    if (need > tx_avail) {
      if (need + 1 < tn) {
        why = Stop::kTxFull;
        break;
      }
      c->drops++;  // longer than the tx ring: it could never be sent
      j = ring_add(j, n, rn);
      rx_avail -= n;
      continue;
    }
    // The filter sees the packet once it can go: its first kFilterHead
    // bytes in one piece, gathered from the chain if the first slot is
    // shorter.
    if (filter) {
      // The rules read each packet's head: ask for a later one's now, as
      // it was most likely written on another core.
      if (rx_avail > kPrefetchAhead)
        __builtin_prefetch(NETMAP_BUF(rx, rx->slot[ring_add(j, kPrefetchAhead, rn)].buf_idx));
      const Frag head = frags(0);
      const uint8_t* h = head.buf;
      uint32_t hl = head.len;
      if (n > 1 && hl < kFilterHead) {
        hl = gather_head(frags, n, gathered, kFilterHead);
        h = gathered;
      }
      if (!filter->fn(filter->ctx, h, hl, len, n == 1 ? &rx->slot[j] : nullptr)) {
        c->filtered++;
        j = ring_add(j, n, rn);
        rx_avail -= n;
        continue;
      }
    }
    if (zero_copy) {
      for (uint32_t x = 0; x < n; x++) {
        netmap_slot& rs = rx->slot[j];
        netmap_slot& ts = tx->slot[k];
        std::swap(rs.buf_idx, ts.buf_idx);
        ts.len = rs.len;
        ts.flags = uint16_t(NS_BUF_CHANGED | (rs.flags & NS_MOREFRAG));
        rs.flags = NS_BUF_CHANGED;
        j = next_slot(j, rn);
        k = next_slot(k, tn);
      }
    } else {
      k = copy_frame(frags, n, rule, tx->slot, tn, k, bufs);
      j = ring_add(j, n, rn);
    }
    rx_avail -= n;
    tx_avail -= need;
    pkts++;
    bytes += len;
  }
  rx->head = rx->cur = j;
  tx->head = tx->cur = k;
  c->packets += pkts;
  c->bytes += bytes;
  *moved += pkts;
  return why;
}

}  // namespace

namespace {
std::string g_lib_error;  // the port library's last message
}  // namespace

nmport_d* open_quiet(const std::string& name, std::string* why, uint32_t extra_bufs) {
  static nmctx ctx = {0,
                      [](nmctx*, const char* m) { g_lib_error = m; },
                      [](nmctx*, size_t n) { return calloc(1, n); },
                      [](nmctx*, void* p) { free(p); },
                      [](nmctx*, int) {},
                      nullptr};
  nmctx_set_default(&ctx);
  g_lib_error.clear();
  nmport_d* d = nmport_prepare(name.c_str());
  if (d) {
    d->reg.nr_extra_bufs = extra_bufs;
    if (nmport_open_desc(d) != 0) {
      const int err = errno;
      nmport_undo_prepare(d);
      d = nullptr;
      errno = err;
    }
  }
  if (!d) {
    const int err = errno;
    *why = "cannot open " + name + ": " + (g_lib_error.empty() ? strerror(err) : g_lib_error);
    errno = err;  // the caller may report it
  }
  return d;
}

std::vector<uint32_t> take_extra_bufs(nmport_d* d) {
  std::vector<uint32_t> out;
  const netmap_ring* r = NETMAP_TXRING(d->nifp, d->first_tx_ring);
  const char* lo = static_cast<const char*>(d->mem->mem);
  const char* hi = lo + d->mem->size;
  uint32_t b = d->nifp->ni_bufs_head;
  for (uint32_t k = 0; b >= 2 && k < d->reg.nr_extra_bufs; k++) {
    const char* p = NETMAP_BUF(r, b);
    if (p < lo || p + r->nr_buf_size > hi) break;  // not a buffer of the region: the list ends
    out.push_back(b);
    memcpy(&b, p, sizeof b);
  }
  d->nifp->ni_bufs_head = 0;
  return out;
}

bool same_region(const nmport_d* a, const nmport_d* b) {
  return a->reg.nr_mem_id == b->reg.nr_mem_id && a->mem != nullptr && a->mem == b->mem;
}

uint32_t rx_pending(const nmport_d* d) {
  uint32_t n = 0;
  for (unsigned i = d->first_rx_ring; i <= d->last_rx_ring; i++)
    n += nm_ring_space(NETMAP_RXRING(d->nifp, i));
  return n;
}

uint32_t forward(nmport_d* src, nmport_d* dst, uint32_t limit, bool zero_copy, Counters* c,
                 const Filter* filter) {
  uint32_t moved = 0;
  unsigned si = src->first_rx_ring, di = dst->first_tx_ring;
  while (si <= src->last_rx_ring && di <= dst->last_tx_ring && moved < limit) {
    netmap_ring* rx = NETMAP_RXRING(src->nifp, si);
    netmap_ring* tx = NETMAP_TXRING(dst->nifp, di);
    if (move_ring(rx, tx, limit - moved, zero_copy, c, &moved, filter) == Stop::kTxFull)
      di++;
    else
      si++;
  }
  return moved;
}

}  // namespace unetmap::fwd
