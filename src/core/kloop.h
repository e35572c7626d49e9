// CSB mode and the sync-kloop of a registration (netmap's
// NETMAP_REQ_OPT_CSB, NETMAP_REQ_CSB_ENABLE, NETMAP_REQ_SYNC_KLOOP_START and
// _STOP). The mechanism is described at the top of kloop.cc.
#pragma once

#include <net/netmap.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

namespace unetmap {

// The CSB mode of one registration in this process (netmap's
// np_csb_atok_base, np_csb_ktoa_base and np_kloop_state). The CSB is the
// application's memory; its addresses mean something in this process only.
struct CsbState {
  std::atomic<nm_csb_atok*> atok{nullptr};
  nm_csb_ktoa* ktoa = nullptr;
  std::mutex mu;               // kloop and wake_fd
  std::condition_variable cv;  // a kloop ended
  uint32_t kloop = 0;          // kKloopRunning | kKloopStopping
  int32_t kloop_pid = 0;       // the process running it (a fork child inherits the state, not the thread)
  int wake_fd = -1;            // eventfd the running kloop waits on, for STOP
  std::atomic<bool> stopping{false};
};
constexpr uint32_t kKloopRunning = 1, kKloopStopping = 2;

// A SYNC_KLOOP_START request as the application gave it (copied in, not
// yet checked), and the option statuses the kloop reports.
struct KloopRequest {
  uint32_t sleep_us = 0;
  bool has_mode = false;
  uint32_t mode = 0;  // NM_OPT_SYNC_KLOOP_DIRECT_TX | _RX
  bool has_eventfds = false;
  uint64_t eventfds_size = 0;  // the option's nro_size
  std::vector<int32_t> ioeventfd, irqfd;
  uint32_t token = 0;  // the open file's wake-up channel
  int chan_fd = -1;    // a descriptor of that channel, owned (closed) by the kloop
  // Out: the status of each option the kloop looked at; -1 if it did not.
  int mode_status = -1, eventfds_status = -1;
};

// Write n bytes to application memory, false if it is not mapped and
// writable there (abi/file.h: copy_out).
using AppWrite = bool (*)(void* dst, const void* src, size_t n);

}  // namespace unetmap
