// The shared half of every sync, as netmap's nm_txsync_prologue /
// nm_rxsync_prologue / nm_sync_finalize.
//
// What the application wrote (head, cur, and the slots it hands back) is
// read once and checked against the kernel's own copy of the ring state in
// KringState (rhead, rtail): head must lie in [rhead, rtail], cur in
// [head, rtail], every slot handed over must name a real buffer of the
// region, and tx lengths must fit a buffer. On any violation the ring is
// reset to the last good state and the sync fails with EINVAL; the port's
// own txsync/rxsync never sees the bad values. The epilogue publishes tail.
#include <errno.h>
#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/port.h"
#include "ports/monitor.h"

namespace unetmap {

namespace {


// Read head/cur once (the application may change them concurrently).
inline bool read_head_cur(const Kring& k, uint32_t* head, uint32_t* cur) {
  const volatile netmap_ring* r = k.ring;
  *head = r->head;
  *cur = r->cur;
  const KringState* s = k.ks;
  const uint32_t n = k.nslots;
  if (*head >= n || *cur >= n) return false;
  uint32_t span = ring_dist(s->rhead, s->rtail, n);
  return ring_dist(s->rhead, *head, n) <= span && ring_dist(*head, *cur, n) <= ring_dist(*head, s->rtail, n);
}

void reinit(Kring& k) {
  KringState* s = k.ks;
  k.ring->head = k.ring->cur = s->rhead;
  k.ring->tail = s->rtail;
}

// One sync at a time per ring, across threads and processes (netmap's
// nm_kr_tryget): a ring busy in another sync is skipped, as netmap does. A
// ring left busy by a process that died is taken over.
inline bool ring_tryget(KringState* s) {
  const int32_t me = my_pid();
  int32_t expected = 0;
  if (s->busy.compare_exchange_strong(expected, me, std::memory_order_acquire)) return true;
  if (expected == me || ::kill(expected, 0) == 0 || errno != ESRCH) return false;
  return s->busy.compare_exchange_strong(expected, me, std::memory_order_acquire);
}
inline void ring_put(KringState* s) { s->busy.store(0, std::memory_order_release); }

inline void finalize(Kring& k, uint32_t head, uint32_t cur) {
  KringState* s = k.ks;
  s->rhead = head;
  s->rcur = cur;
  uint32_t tail = s->hwtail.load(std::memory_order_acquire);
  s->rtail = tail;
  k.ring->tail = tail;
  if (k.ring->flags & NR_TIMESTAMP) gettimeofday(&k.ring->ts, nullptr);
}

}  // namespace

static int txsync_locked(Kring& k);
static int rxsync_locked(Kring& k);

int txsync_kring(Kring& k) {
  if (!ring_tryget(k.ks)) return 0;
  int err = txsync_locked(k);
  ring_put(k.ks);
  return err;
}

int rxsync_kring(Kring& k) {
  if (!ring_tryget(k.ks)) return 0;
  int err = rxsync_locked(k);
  ring_put(k.ks);
  return err;
}

static int txsync_locked(Kring& k) {
  uint32_t head, cur;
  if (!read_head_cur(k, &head, &cur)) {
    reinit(k);
    return EINVAL;
  }
  const uint32_t n = k.nslots;
  const uint32_t bsize = k.region->cfg().buf_size;
  const uint32_t tag = k.ks->buf_tag;
  const netmap_slot* slot = k.ring->slot;
  for (uint32_t i = k.ks->rhead; i != head; i = next_slot(i, n)) {
    uint32_t b = slot[i].buf_idx;
    if (!k.region->claim(b, tag) || slot[i].len > bsize) {
      reinit(k);
      return EINVAL;
    }
  }
  const uint32_t old = k.ks->hwcur.load(std::memory_order_relaxed), old_tail = k.ks->rtail;
  k.na->txsync(k, head);
  if (k.ks->nmon.load(std::memory_order_relaxed)) {
    monitor_copy(k, old, k.ks->hwcur.load(std::memory_order_relaxed), true);
    // Given back by this txsync: (old tail, new tail].
    monitor_zswap(k, next_slot(old_tail, n),
                  next_slot(k.ks->hwtail.load(std::memory_order_acquire), n), true);
  }
  finalize(k, head, cur);
  return 0;
}

static int rxsync_locked(Kring& k) {
  uint32_t head, cur;
  if (!read_head_cur(k, &head, &cur)) {
    reinit(k);
    return EINVAL;
  }
  const uint32_t n = k.nslots;
  const uint32_t tag = k.ks->buf_tag;
  const netmap_slot* slot = k.ring->slot;
  for (uint32_t i = k.ks->rhead; i != head; i = next_slot(i, n)) {
    uint32_t b = slot[i].buf_idx;
    if (!k.region->claim(b, tag)) {
      reinit(k);
      return EINVAL;
    }
  }
  const uint32_t old_tail = k.ks->rtail;
  if (k.ks->nmon.load(std::memory_order_relaxed))
    monitor_zswap(k, k.ks->hwcur.load(std::memory_order_relaxed), head, false);
  k.na->rxsync(k, head);
  finalize(k, head, cur);
  if (k.ks->nmon.load(std::memory_order_relaxed)) monitor_copy(k, old_tail, k.ks->rtail, false);
  return 0;
}

}  // namespace unetmap
