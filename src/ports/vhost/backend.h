// A vhost-user port on a VALE switch: the worker that serves it (kind
// "vhost", program unetmap-vhost, run by the worker service; see
// control.h for how one is asked for).
//
// It opens the switch port valeX:NAME exclusively with one ring pair per
// queue pair, listens on (or connects to) the vhost-user socket, and moves
// frames between the guest's virtqueues and the port's rings:
//   guest -> switch  each transmit chain becomes NS_INDIRECT tx slots that
//                    point into guest memory; the port's txsync (VALE's
//                    forwarding, in this process) copies the frame from
//                    there into its destinations: one copy;
//   switch -> guest  frames the switch put on the port's rx rings are
//                    copied into the guest's receive buffers (mergeable
//                    when negotiated): one copy.
// Batches throughout; no system call per packet. While it finds work it
// polls with the guest's kicks turned off; idle, it turns them on and
// sleeps in poll() on the socket, the kick eventfds and the netmap fd.
#pragma once

namespace unetmap::vhost {

// main() of unetmap-vhost: "SWITCH NAME PATH server|client QUEUES SLOTS", fd 3
// the worker's ready pipe.
int backend_main(int argc, char** argv);

}  // namespace unetmap::vhost
