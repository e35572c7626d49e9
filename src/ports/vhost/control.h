// vhost-user ports on VALE switches: what vale-ctl and the C API ask for.
//
//   vale-ctl -a valeX:NAME,vhost=PATH[,client][,queues=N][,slots=N]
//
// makes switch port valeX:NAME a virtio-net device for a VM (or any
// vhost-user front end: QEMU, DPDK's virtio_user) at socket PATH. Its
// backend (backend.h) is a worker of kind "vhost" named "valeX:NAME"
// (core/worker.h): supervised, restarted if it dies, listed with its
// state, and stopped with vale-ctl -d valeX:NAME. In server mode (the
// default) it listens on PATH; with `client` it connects to PATH, and
// connects again whenever the front end restarts. slots sizes the port's
// rings (more absorb a backend that is not scheduled for a while).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/worker.h"

namespace unetmap::vhost {

struct AttachRequest {
  std::string sw, name;  // "vale0", "vm1"
  std::string path;      // the socket; made absolute by attach()
  bool client = false;
  uint32_t queues = 1;   // queue pairs
  uint32_t slots = 0;    // slots of the port's rings (0: the switch's default, 1024)
};

// "valeX:NAME,vhost=PATH[,client][,queues=N][,slots=N]". 0, EINVAL with *why, or
// ENOENT if spec has no vhost= (not a vhost-user request).
int parse(const std::string& spec, AttachRequest* out, std::string* why);
// Start the port's worker and wait until it serves. 0 or errno with *why
// (EBUSY: there is a worker for valeX:NAME already).
int attach(const AttachRequest& r, std::string* why);
// Stop it. ENXIO if valeX:NAME is no vhost-user port.
int detach(const std::string& sw, const std::string& name, std::string* why);
bool exists(const std::string& sw, const std::string& name);
// The workers of vhost-user ports.
std::vector<worker::Info> ports();
// Is this worker a vhost-user port's backend? (Its arguments, in order:
// SWITCH NAME /SOCKET server|client QUEUES SLOTS.)
bool is_port(const worker::Info& i);

}  // namespace unetmap::vhost
