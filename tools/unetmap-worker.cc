// unetmap-worker: the supervisor of one worker (src/core/worker.h,
// src/core/supervisor.cc), run by libnetmap when a worker starts; it is not
// meant to be run by hand. `vale-ctl -W` lists the workers.
#include "core/worker.h"

int main(int argc, char** argv) { return unetmap::worker::supervisor_main(argc, argv); }
