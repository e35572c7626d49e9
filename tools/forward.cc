// The forwarding loop (see forward.h). Plain loops over slots: no call per
// packet beyond memcpy in copy mode, no allocation, no sync.
#include "forward.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>

namespace unetmap::fwd {
namespace {

// Why one ring pair stopped.
enum class Stop { kRxDone, kTxFull, kLimit };

uint32_t advance(const netmap_ring* r, uint32_t i, uint32_t n) {
  i += n;
  return i >= r->num_slots ? i - r->num_slots : i;
}

// The packet starting at rx slot i, within the `avail` slots before tail:
// its slot count (0 if its last fragment is not there yet) and length.
uint32_t packet_at(netmap_ring* rx, uint32_t i, uint32_t avail, uint32_t* len) {
  const uint32_t bsz = rx->nr_buf_size;
  uint32_t bytes = 0;
  for (uint32_t n = 1; n <= avail; n++) {
    const netmap_slot& s = rx->slot[i];
    bytes += std::min<uint32_t>(s.len, bsz);
    if (!(s.flags & NS_MOREFRAG)) {
      *len = bytes;
      return n;
    }
    i = nm_ring_next(rx, i);
  }
  return 0;
}

// Copy the n-slot packet at rx slot j into tx slots from k, cut to the tx
// buffer size. Returns the tx slot after the packet.
uint32_t copy_packet(netmap_ring* rx, uint32_t j, uint32_t n, netmap_ring* tx, uint32_t k) {
  const uint32_t rbsz = rx->nr_buf_size, tbsz = tx->nr_buf_size;
  netmap_slot* ts = &tx->slot[k];
  char* dst = NETMAP_BUF(tx, ts->buf_idx);
  uint32_t used = 0;
  for (uint32_t f = 0; f < n; f++, j = nm_ring_next(rx, j)) {
    const netmap_slot& rs = rx->slot[j];
    const char* src = NETMAP_BUF(rx, rs.buf_idx);
    uint32_t left = std::min<uint32_t>(rs.len, rbsz);
    while (left > 0) {
      if (used == tbsz) {  // this tx buffer is full: chain the next slot
        ts->len = uint16_t(used);
        ts->flags = NS_MOREFRAG;
        k = nm_ring_next(tx, k);
        ts = &tx->slot[k];
        dst = NETMAP_BUF(tx, ts->buf_idx);
        used = 0;
      }
      uint32_t chunk = std::min(left, tbsz - used);
      memcpy(dst + used, src, chunk);
      used += chunk, src += chunk, left -= chunk;
    }
  }
  ts->len = uint16_t(used);
  ts->flags = 0;
  return nm_ring_next(tx, k);
}

// Move packets from one rx ring to one tx ring until the rx ring has no
// complete packet left, the tx ring has no room for the next one, or
// `limit` packets have moved.
Stop move_ring(netmap_ring* rx, netmap_ring* tx, uint32_t limit, bool zero_copy, Counters* c,
               uint32_t* moved) {
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
    uint32_t len = 0;
    const uint32_t n = packet_at(rx, j, rx_avail, &len);
    if (n == 0) {
      // The rest of the packet is still to come, unless the chain already
      // fills the ring: then it never ends, and is dropped.
      if (rx_avail + 1 < rx->num_slots) break;
      c->drops++;
      j = advance(rx, j, rx_avail);
      rx_avail = 0;
      break;
    }
    const uint32_t need = zero_copy ? n : std::max(1u, (len + tx->nr_buf_size - 1) / tx->nr_buf_size);
    if (need > tx_avail) {
      if (need + 1 < tx->num_slots) {
        why = Stop::kTxFull;
        break;
      }
      c->drops++;  // longer than the tx ring: it could never be sent
      j = advance(rx, j, n);
      rx_avail -= n;
      continue;
    }
    if (zero_copy) {
      for (uint32_t f = 0; f < n; f++) {
        netmap_slot& rs = rx->slot[j];
        netmap_slot& ts = tx->slot[k];
        std::swap(rs.buf_idx, ts.buf_idx);
        ts.len = rs.len;
        ts.flags = uint16_t(NS_BUF_CHANGED | (rs.flags & NS_MOREFRAG));
        rs.flags = NS_BUF_CHANGED;
        j = nm_ring_next(rx, j);
        k = nm_ring_next(tx, k);
      }
    } else {
      k = copy_packet(rx, j, n, tx, k);
      j = advance(rx, j, n);
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

nmport_d* open_quiet(const std::string& name, std::string* why) {
  static nmctx ctx = {0,
                      [](nmctx*, const char* m) { g_lib_error = m; },
                      [](nmctx*, size_t n) { return calloc(1, n); },
                      [](nmctx*, void* p) { free(p); },
                      [](nmctx*, int) {},
                      nullptr};
  nmctx_set_default(&ctx);
  g_lib_error.clear();
  nmport_d* d = nmport_open(name.c_str());
  if (!d) {
    const int err = errno;
    *why = "cannot open " + name + ": " + (g_lib_error.empty() ? strerror(err) : g_lib_error);
    errno = err;  // the caller may report it
  }
  return d;
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

uint32_t forward(nmport_d* src, nmport_d* dst, uint32_t limit, bool zero_copy, Counters* c) {
  uint32_t moved = 0;
  unsigned si = src->first_rx_ring, di = dst->first_tx_ring;
  while (si <= src->last_rx_ring && di <= dst->last_tx_ring && moved < limit) {
    netmap_ring* rx = NETMAP_RXRING(src->nifp, si);
    netmap_ring* tx = NETMAP_TXRING(dst->nifp, di);
    if (move_ring(rx, tx, limit - moved, zero_copy, c, &moved) == Stop::kTxFull)
      di++;
    else
      si++;
  }
  return moved;
}

}  // namespace unetmap::fwd
