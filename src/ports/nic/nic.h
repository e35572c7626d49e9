// NIC ports, inside: what the adapter (nic.cc) shares with its backends.
//
// A NIC port's rings live in a region like any port's; what moves packets
// between them and the interface is a kernel socket that belongs to the
// process that bound the ring. Each backend is a Queue: the socket (or tap)
// under one hardware queue, or under the host rings, serving the tx and rx
// kring of that queue at their syncs. Everything a backend holds in the
// kernel (sockets, BPF links, the tap) closes with the process, so a crash
// gives the interface back to the host.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/adapter.h"
#include "core/ring_io.h"
#include "ports/nic/bpf.h"

namespace unetmap {
const Adapter& nic_adapter();
}

namespace unetmap::nic {

enum class Backend : uint8_t { kNone = 0, kXdp = 1, kPacket = 2 };
const char* backend_name(Backend b);

// A NIC port's part of its port entry.
struct NicPortExt {
  Backend backend;  // of the last process to bind a ring
};
// NIC port pe's backend (kNone if pe is no NIC port or none bound yet).
Backend port_backend(const PortEntry& pe);

class Queue {
 public:
  virtual ~Queue() = default;
  // The port-specific halves of txsync and rxsync (core/adapter.h).
  virtual void txsync(Kring& k, uint32_t head) = 0;
  virtual void rxsync(Kring& k, uint32_t head) = 0;
  // Readable (rx) or writable (tx) when the ring may have work.
  virtual int fd() const = 0;
  // An rx kring starts (or stops) draining this queue.
  virtual int start_rx(std::string* why) { return 0; }
  virtual void stop_rx() {}
  // Send one frame out of the ring's order (NS_FORWARD); false if dropped.
  virtual bool inject(uint8_t* frame, uint32_t len) { return false; }
};

// One process's use of one interface: made with its first bound ring, gone
// with its last.
struct Iface {
  std::string name;
  int ifindex = 0;
  uint32_t nqueues = 1;
  uint32_t mtu = 1500;
  Backend backend = Backend::kNone;
  std::string why_backend;  // why this backend was chosen
  int refs = 0;
  std::vector<std::weak_ptr<Queue>> queues;  // by hardware queue
  std::vector<std::weak_ptr<Queue>> host;  // by tap queue (host rx ring)
  std::weak_ptr<void> host_tap;             // the host rings' tap (host.cc)
  // AF_XDP: the program steering rx queues to sockets, attached for as
  // long as the process uses the interface.
  XskProgram xsk;
  Fd xdp_link;
  bool xdp_native = false;
  // AF_PACKET: what keeps received frames from the host stack.
  Fd drop_prog, drop_link;
  int packet_rx = 0;
  // While NIC rings are bound: the stack's output on the interface goes
  // nowhere unless host rings take it (their program runs first).
  Fd cut_prog, cut_link;
  // NS_FORWARD from the host rings to the wire when no tx ring is open
  // here: a plain AF_PACKET socket, made on first use.
  Fd raw_tx;
};

// Backends (xsk.cc, packet.cc, host.cc). nslots: the netmap ring size.
std::shared_ptr<Queue> open_xsk(Iface& ifc, uint32_t q, uint32_t nslots, int* err,
                                std::string* why);
std::shared_ptr<Queue> open_packet(Iface& ifc, uint32_t q, uint32_t nslots, int* err,
                                   std::string* why);
// Tap queue q of the interface's host rings (made with the first), or the
// one this process has open already.
std::shared_ptr<Queue> open_host(Iface& ifc, uint32_t q, int* err, std::string* why);

// Ring helpers shared by the backends: core/ring_io.h.

}  // namespace unetmap::nic
