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
//
// Nothing a port type reads from the ring is trusted for having passed
// this check: the application may rewrite a slot at any time, also one it
// already handed over. A port type that works from the slots later, or
// across syncs, keeps a private copy: if it sizes Kring::copy (VALE tx
// rings, whose incomplete NS_MOREFRAG chains stay in [hwcur, rhead) from
// one sync to the next), the check reads each slot handed over exactly
// once (buf_idx, len, flags in one load) into that copy, and the port type
// uses the copy, never the ring. Port types without a copy (pipes, the
// slots monitors see) read each slot once where they use it and check it
// there, as netmap's NMB() checks every index at use.
//
// The copy of a pending chain lives in the process-local view that read
// it. If another view (another process, or another registration of the
// same ring) synced the ring since, the pending slots are read again and
// checked; one that fails can no longer be refused (it was accepted
// earlier), so its copy is marked unusable (buf_idx 0) and the port type
// drops the packet it belongs to, counted.
//
// CSB mode (core/kloop.cc) runs the same prologue and epilogue with head
// and cur read from the application's CSB entry instead of the ring, and
// leaves the ring's tail alone: the sync-kloop publishes hwcur and hwtail
// in the CSB.
#include <errno.h>
#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstddef>

#include "core/port.h"
#include "core/tap.h"

namespace unetmap {

namespace {


// Read head/cur once (the application may change them concurrently).
inline void read_head_cur(const Kring& k, uint32_t* head, uint32_t* cur) {
  const volatile netmap_ring* r = k.ring;
  *head = r->head;
  *cur = r->cur;
}

// head in [rhead, rtail], cur in [head, rtail].
inline bool head_cur_ok(const Kring& k, uint32_t head, uint32_t cur) {
  const KringState* s = k.ks;
  const uint32_t n = k.nslots;
  if (head >= n || cur >= n) return false;
  uint32_t span = ring_dist(s->rhead, s->rtail, n);
  return ring_dist(s->rhead, head, n) <= span && ring_dist(head, cur, n) <= ring_dist(head, s->rtail, n);
}

static_assert(sizeof(SlotCopy) == 8 && offsetof(netmap_slot, buf_idx) == 0 &&
                  offsetof(netmap_slot, len) == 4 && offsetof(netmap_slot, flags) == 6,
              "SlotCopy is the first 8 bytes of a netmap_slot");

// Check the slots the application hands over, [rhead, head) (false:
// refuse the sync). For a view that keeps a copy (k.copy sized by the port
// type), copy them too; pending slots [hwcur, rhead) that another view
// synced meanwhile are read again (see the top comment).
static inline __attribute__((always_inline)) bool check_slots(Kring& k, uint32_t head, bool tx) {
  const uint32_t n = k.nslots;
  const netmap_slot* slot = k.ring->slot;
  const uint32_t rhead = k.ks->rhead;
  const SlotCheck ok(k, tx);
  if (k.copy.empty()) {  // a check only: the port type checks again what it uses
    for (uint32_t i = rhead; i != head; i = next_slot(i, n))
      if (!ok(read_slot(slot, i))) return false;
    return true;
  }
  SlotCopy* c = k.copy.data();
  const uint32_t hwcur = k.ks->hwcur.load(std::memory_order_relaxed);
  if (hwcur != rhead && (k.copy_lo != hwcur || k.copy_hi != rhead)) {
    for (uint32_t i = hwcur; i != rhead; i = next_slot(i, n)) {
      c[i] = read_slot(slot, i);
      if (c[i].buf_idx - 2u >= ok.nbufs - 2u || c[i].len > ok.bsize || ok.tags[c[i].buf_idx] != ok.tag)
        c[i].buf_idx = 0;
    }
  }
  for (uint32_t i = rhead; i != head; i = next_slot(i, n)) {
    const SlotCopy s = read_slot(slot, i);
    if (!ok(s)) return false;
    c[i] = s;
  }
  return true;
}

void reinit(Kring& k) {
  KringState* s = k.ks;
  k.ring->head = k.ring->cur = s->rhead;
  k.ring->tail = s->rtail;
}

// One sync at a time per ring, across threads and processes (netmap's
// nm_kr_tryget): a ring busy in another sync is skipped, as netmap does. A
// ring left busy by a process that died is taken over, also while the dead
// one is an unreaped zombie (else a restarted sender stalls until its
// parent reaps the old one, or for ever under an init that never does).
inline bool ring_tryget(KringState* s) {
  const int32_t me = my_pid();
  int32_t expected = 0;
  if (s->busy.compare_exchange_strong(expected, me, std::memory_order_acquire)) return true;
  if (expected == me || pid_running(expected)) return false;
  return s->busy.compare_exchange_strong(expected, me, std::memory_order_acquire);
}
inline void ring_put(KringState* s) { s->busy.store(0, std::memory_order_release); }

// In CSB mode the application reads tail from its CSB (the caller writes
// it there), so the ring is not written.
template <bool kCsb>
inline void finalize(Kring& k, uint32_t head, uint32_t cur) {
  KringState* s = k.ks;
  s->rhead = head;
  s->rcur = cur;
  uint32_t tail = s->hwtail.load(std::memory_order_acquire);
  s->rtail = tail;
  if (kCsb) return;
  k.ring->tail = tail;
  if (k.ring->flags & NR_TIMESTAMP) gettimeofday(&k.ring->ts, nullptr);
}

}  // namespace

template <bool kCsb>
static int txsync_locked(Kring& k, uint32_t head, uint32_t cur);
template <bool kCsb>
static int rxsync_locked(Kring& k, uint32_t head, uint32_t cur);

int txsync_kring(Kring& k) {
  if (!ring_tryget(k.ks)) return 0;
  uint32_t head, cur;
  read_head_cur(k, &head, &cur);
  int err = txsync_locked<false>(k, head, cur);
  ring_put(k.ks);
  return err;
}

int rxsync_kring(Kring& k) {
  if (!ring_tryget(k.ks)) return 0;
  uint32_t head, cur;
  read_head_cur(k, &head, &cur);
  int err = rxsync_locked<false>(k, head, cur);
  ring_put(k.ks);
  return err;
}

int txsync_kring_csb(Kring& k, uint32_t head, uint32_t cur) {
  if (!ring_tryget(k.ks)) return EBUSY;
  int err = txsync_locked<true>(k, head, cur);
  ring_put(k.ks);
  return err;
}

int rxsync_kring_csb(Kring& k, uint32_t head, uint32_t cur) {
  if (!ring_tryget(k.ks)) return EBUSY;
  int err = rxsync_locked<true>(k, head, cur);
  ring_put(k.ks);
  return err;
}

template <bool kCsb>
static int txsync_locked(Kring& k, uint32_t head, uint32_t cur) {
  if (!head_cur_ok(k, head, cur)) {
    reinit(k);
    return EINVAL;
  }
  const uint32_t n = k.nslots;
  const uint32_t old = k.ks->hwcur.load(std::memory_order_relaxed), old_tail = k.ks->rtail;
  // The port type checks in its own pass (Adapter::checks_slots), or the
  // prologue checks first.
  const bool fused = k.na->checks_slots() && !tapped(k.ks);
  if (!(fused ? k.na->txsync_checked(k, head) : check_slots(k, head, true))) {
    reinit(k);
    return EINVAL;
  }
  if (!fused) k.na->txsync(k, head);
  const uint32_t hwcur = k.ks->hwcur.load(std::memory_order_relaxed);
  // Delivered to a partner's ring (a pipe's other end): its taps see the
  // packets as they arrive, read by anyone or not (netmap hooks the port's
  // notify).
  if (k.peer && tapped(k.peer->ks))
    ring_tap()->arrived(*k.region, k.peer->ks, k.ring->slot, nullptr, n, old, hwcur);
  if (tapped(k.ks)) {
    ring_tap()->moved(k, old, hwcur, true);
    // Given back by this txsync: (old tail, new tail].
    ring_tap()->released(k, next_slot(old_tail, n),
                         next_slot(k.ks->hwtail.load(std::memory_order_acquire), n), true);
  }
  k.copy_lo = hwcur;  // what this view keeps of a pending chain
  k.copy_hi = head;
  finalize<kCsb>(k, head, cur);
  return 0;
}

template <bool kCsb>
static int rxsync_locked(Kring& k, uint32_t head, uint32_t cur) {
  if (!head_cur_ok(k, head, cur)) {
    reinit(k);
    return EINVAL;
  }
  const uint32_t old_tail = k.ks->rtail;
  const bool fused = k.na->checks_slots() && !tapped(k.ks);
  if (!(fused ? k.na->rxsync_checked(k, head) : check_slots(k, head, false))) {
    reinit(k);
    return EINVAL;
  }
  if (!fused) {
    if (tapped(k.ks)) ring_tap()->released(k, k.ks->hwcur.load(std::memory_order_relaxed), head, false);
    k.na->rxsync(k, head);
  }
  k.copy_lo = k.copy_hi = head;
  finalize<kCsb>(k, head, cur);
  if (!kCsb && k.stamp && !(k.ring->flags & NR_TIMESTAMP)) gettimeofday(&k.ring->ts, nullptr);
  // What a producer's txsync put there, it showed the taps itself.
  if (tapped(k.ks) && !k.na->producer_fills_rx()) ring_tap()->moved(k, old_tail, k.ks->rtail, false);
  return 0;
}

}  // namespace unetmap
