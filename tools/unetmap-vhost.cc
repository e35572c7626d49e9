// unetmap-vhost: the backend of a vhost-user port on a VALE switch
// (src/ports/vhost/backend.h), a worker of kind "vhost" that the worker
// service runs for vale-ctl -a valeX:NAME,vhost=PATH; not meant to be run
// by hand.
//
//   unetmap-vhost SWITCH NAME PATH server|client QUEUES SLOTS   (fd 3: the ready pipe)
#include "ports/vhost/backend.h"

int main(int argc, char** argv) { return unetmap::vhost::backend_main(argc, argv); }
