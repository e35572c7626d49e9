// A binding: one registration of an open /dev/netmap fd to a port (netmap's
// netmap_priv_d). It owns the registry entry of the registration, the
// process-local kring views of the port's rings, and the netmap_if the
// application sees. Its syncs run the shared prologue/epilogue (sync.cc)
// around the port type's own txsync/rxsync.
#pragma once

#include <net/netmap.h>

#include <poll.h>

#include <memory>
#include <string>
#include <vector>

#include "core/adapter.h"
#include "core/kloop.h"

namespace unetmap {

// A register request, from NIOCCTRL/REGISTER or the legacy NIOCREGIF.
struct BindRequest {
  std::string name;  // kernel-level: "p{0", "null:x" (no "netmap:", no ring suffix)
  uint32_t mode = NR_REG_ALL_NIC;
  uint16_t ringid = 0;
  uint64_t flags = 0;
  uint16_t mem_id = 0;
  uint16_t nrings[2] = {0, 0};
  uint32_t nslots[2] = {0, 0};
  uint16_t nhost[2] = {0, 0};
  uint32_t extra_bufs = 0;  // wanted
};

// Shared prologue + port work + epilogue for one ring. 0 or EINVAL (the
// application wrote something invalid; the ring was reset to the last good
// state, as netmap_ring_reinit does).
int txsync_kring(Kring& k);
int rxsync_kring(Kring& k);
// The same for CSB mode (kloop.cc): head and cur as the application wrote
// them in its CSB; the ring's tail is not written. EBUSY if another sync
// holds the ring.
int txsync_kring_csb(Kring& k, uint32_t head, uint32_t cur);
int rxsync_kring_csb(Kring& k, uint32_t head, uint32_t cur);
// Is the ring ready for poll (something between cur and tail)?
inline bool kring_ready(const Kring& k) { return k.ring->cur != k.ring->tail; }

class Binding {
 public:
  // Register; on failure returns an errno value and explains in *why.
  static int open(const BindRequest& rq, std::unique_ptr<Binding>* out, std::string* why);
  // A registration made by another open of this file (the fd came by
  // SCM_RIGHTS or across execve): views on it, this process a holder.
  static int adopt(int reg_index, uint64_t flags, std::unique_ptr<Binding>* out, std::string* why);
  ~Binding();
  Binding(const Binding&) = delete;
  Binding& operator=(const Binding&) = delete;

  // NIOCTXSYNC / NIOCRXSYNC on every bound ring of one direction.
  int sync(Dir d);
  // poll(): run the syncs poll runs, report readiness (POLLIN/POLLOUT/POLLERR).
  short poll_scan(short events);
  // Arm (token != 0) or disarm (0) the waiters of the rings poll waits on.
  void arm(short events, uint32_t token);

  void add_holder(const ProcId& p);  // a fork child keeps it open too
  // Some bound rx ring has producers' leases pending: one of them may be a
  // dead process's, which only a later sync reclaims.
  bool rx_leases_pending() const;
  // Kernel fds under the rings poll would wait on (NIC sockets), appended
  // to *fds with the events that mean the ring may be ready.
  void wait_fds(short events, std::vector<pollfd>* fds) const;

  // CSB mode and the sync-kloop (kloop.cc). With CSB mode on, the
  // application's NIOC*SYNC and poll are refused, as netmap refuses them.
  bool csb_mode() const { return csb_.atok.load(std::memory_order_relaxed) != nullptr; }
  // NETMAP_REQ_OPT_CSB / CSB_ENABLE: check and initialise the application's
  // CSB arrays (one entry per bound ring, tx first). 0 or errno, with *why.
  int csb_enable(uint64_t atok, uint64_t ktoa, AppWrite write, std::string* why);
  // SYNC_KLOOP_START: runs until kloop_stop(). 0 or errno, with *why.
  int kloop_run(KloopRequest& rq, std::string* why);
  // SYNC_KLOOP_STOP: stop the running kloop and wait for it to end (or
  // make the next one end at once, as netmap does when none runs).
  void kloop_stop();
  // Counters of the bound rings of one direction (KringState: packets,
  // bytes, and drops: the port's own plus, rx, producers' for lack of room).
  struct Counters {
    uint64_t packets = 0, bytes = 0, drops = 0;
  };
  Counters counters(Dir d) const;
  uint32_t bound_rings() const { return last_[kTx] - first_[kTx] + last_[kRx] - first_[kRx]; }

  // NS_INDIRECT fragments of the tx rings that lie in these ranges of this
  // process are read there directly (unetmap_indirect_ranges). The caller
  // syncs no ring of this binding meanwhile.
  void set_direct_ranges(std::vector<DirectRanges::Range> r);

  Region& region() const { return *region_; }
  uint64_t nifp_offset() const { return nifp_off_; }
  const PortEntry& port_info() const { return info_; }
  uint32_t first(Dir d) const { return first_[d]; }
  uint32_t last(Dir d) const { return last_[d]; }
  uint64_t flags() const { return flags_; }
  uint32_t extra_bufs() const { return extra_bufs_; }  // obtained
  int reg_index() const { return reg_; }
  uint32_t nifp_index() const { return nifp_idx_; }

 private:
  Binding() = default;
  static int create_port(Registry& reg, const Adapter& na, const BindRequest& rq,
                         std::string* why, int* out);
  int attach(Registry& reg, int p, const BindRequest& rq, std::string* why);
  bool kloop_running() const;
  int build_views(Registry& reg, std::string* why, bool fresh = true);
  int init_krings(Registry& reg, std::string* why);
  void bind_ports(int delta);
  bool bound_ = false;
  std::shared_ptr<Region> region_;
  int reg_ = -1;
  int port_ = -1;
  PortEntry info_{};  // copy of the port entry at register time
  int partner_ = -1;  // Adapter::partner of the port (a pipe's other end)
  uint64_t nifp_off_ = 0;
  uint32_t nifp_idx_ = 0;
  uint64_t flags_ = 0;
  uint32_t extra_bufs_ = 0;
  std::vector<Kring> kr_[2];    // every ring of the port
  std::vector<Kring> peer_[2];  // every ring of the partner (a pipe's other end)
  uint32_t first_[2] = {0, 0};  // bound rings: [first, last)
  uint32_t last_[2] = {0, 0};
  CsbState csb_;
  DirectRanges direct_;
};

// Bound ring range for a register mode; false (with *why) if invalid.
bool ring_range(const PortEntry& pe, uint32_t mode, uint16_t ringid, uint64_t flags,
                uint32_t first[2], uint32_t last[2], std::string* why);

}  // namespace unetmap
