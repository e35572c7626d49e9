// NICs attached to VALE switches (vale-ctl -a / -h / -d / -p / -P on an
// interface name): netmap's kernel moves packets between a NIC and the
// switch in its own threads; here a helper process does, started by
// vale-ctl and left running in the background (netmap's "polling" is the
// same helper spinning instead of sleeping in poll()).
//
// The helper opens the interface (netmap:IF, and netmap:IF^ with -h) and
// an ephemeral VALE port named after it (valeX:IF, and valeX:IF_host), in
// the NIC's region so that packets move by swapping buffers, and forwards
// both ways until it is told to stop. It holds an flock on its state file
// <runtime>/attach/valeX:IF for as long as it lives: vale-ctl tells a live
// helper from a stale file by that lock, never by a pid alone. A helper
// that dies takes its ports with it: the interface goes back to the host
// (the kernel drops the XDP program and the tap with the process) and the
// switch forgets the port at its next reap.
#pragma once

#include <string>

namespace unetmap::attach {

// Start the helper for interface `ifname` on switch `sw` (host: with its
// host rings too) and wait until it forwards or has failed. 0 or errno,
// with *why.
int start(const std::string& sw, const std::string& ifname, bool host, std::string* why);
// Stop it and wait until it is gone; ENOENT if there is none.
int stop(const std::string& sw, const std::string& ifname, std::string* why);
// Polling (busy) or blocking mode; ENOENT if there is no helper.
int set_polling(const std::string& sw, const std::string& ifname, bool on, std::string* why);
// Is there a live helper for this pair?
bool running(const std::string& sw, const std::string& ifname);

}  // namespace unetmap::attach
