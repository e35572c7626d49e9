// Internal to src/abi: the per-open state of a /dev/netmap fd and the
// helpers the fd layer (devnetmap.cc) and the control requests (ctrl.cc)
// share.
#pragma once

#include <string.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/port.h"
#include "core/registry.h"

namespace unetmap {

// One per open of /dev/netmap; shared by dup'ed fds of this process.
struct NetmapFile {
  uint32_t token = 0;  // wake-up channel
  std::unique_ptr<Binding> binding;
  std::atomic<int> refs{1};
  std::mutex mu;  // serialises register against register
  // The application's O_NONBLOCK (fcntl, FIONBIO). The FIFO underneath
  // stays O_NONBLOCK: the library drains it.
  std::atomic<bool> nonblock{false};
};

// Fail a request: errno = err, the explanation kept for unetmap_last_error()
// (and printed unless UNETMAP_QUIET). Returns -1.
int fail(int err, const std::string& why = {});
// Copy to/from application memory the way a kernel would: a bad pointer
// gives false (EFAULT), never a crash of the library.
bool copy_in(void* dst, const void* src, size_t n);
bool copy_out(void* dst, const void* src, size_t n);

// f's binding; if it has none, the registration another process made on
// this open file (shared by SCM_RIGHTS or execve), adopted; else nullptr.
Binding* refresh_binding(NetmapFile* f);
// Record f's registration (or none) with its channel, for processes that
// adopt the fd (devnetmap.cc: dev_adopt).
void note_registration(NetmapFile* f);

// Counters of the rings fd registered in direction d (unetmap_fd_counters).
int dev_counters(int fd, Dir d, Binding::Counters* out);
// unetmap_indirect_ranges(): 0 or -1 with errno.
int dev_direct_ranges(int fd, std::vector<DirectRanges::Range> r);

// The C API's listings make nothing: the registry, locked, if the runtime
// directory has one. 1 with *reg set; 0 if there is none (*reg nullptr);
// -1 with errno (fail()).
int existing_registry(std::optional<RegistryLock>* g, Registry** reg);
// Copy a string into a fixed C field, always terminated.
template <size_t N>
void put_field(char (&field)[N], std::string_view v) {
  const size_t n = std::min(N - 1, v.size());
  memcpy(field, v.data(), n);
  field[n] = 0;
}

// NIOCCTRL, NIOCREGIF and NIOCGINFO on an open file, issued on fd (ctrl.cc).
int dev_ctrl(NetmapFile* f, int fd, unsigned long req, void* arg);

}  // namespace unetmap
