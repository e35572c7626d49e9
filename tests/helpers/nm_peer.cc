// nm_peer: one end of a pipe test, run as a separate program (fork + exec)
// so that sender and receiver share nothing but what unetmap shares.
//
//   nm_peer mode=send|recv port=SPEC count=N [seed=S] [min=A max=B]
//           [big_every=K big_min=C big_max=D] [zc=0|1] [timeout_ms=T]
//           [ready_fd=F] [hold_fd=G]
//
// The port is opened with nmport_open(SPEC). ready_fd: write one byte to
// it once the port is open (send: "o") and once the transfer is done
// ("d"). hold_fd: before closing the port, wait for one byte on it.
// Exit status: 0 all good, 1 usage, 2 open failed, 3 transfer failed.
#include <libnetmap.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "util/pipe_io.h"

int main(int argc, char** argv) {
  std::map<std::string, std::string> a;
  for (int i = 1; i < argc; i++) {
    const char* eq = strchr(argv[i], '=');
    if (!eq) {
      fprintf(stderr, "nm_peer: bad argument '%s' (want key=value)\n", argv[i]);
      return 1;
    }
    a[std::string(argv[i], size_t(eq - argv[i]))] = eq + 1;
  }
  auto num = [&](const char* k, long d) { return a.count(k) ? strtol(a[k].c_str(), nullptr, 0) : d; };
  std::string mode = a["mode"], spec = a["port"];
  if ((mode != "send" && mode != "recv") || spec.empty()) {
    fprintf(stderr, "usage: nm_peer mode=send|recv port=SPEC count=N [...]\n");
    return 1;
  }
  nmtest::IoOpts o;
  o.count = uint32_t(num("count", 1000));
  o.spec.seed = uint32_t(num("seed", 1));
  o.spec.min = uint32_t(num("min", 60));
  o.spec.max = uint32_t(num("max", 2048));
  o.spec.big_every = uint32_t(num("big_every", 0));
  o.spec.big_min = uint32_t(num("big_min", 2049));
  o.spec.big_max = uint32_t(num("big_max", 6000));
  o.zero_copy = num("zc", 1) != 0;
  o.timeout_ms = int(num("timeout_ms", 20000));
  int ready_fd = int(num("ready_fd", -1)), hold_fd = int(num("hold_fd", -1));

  nmport_d* d = nmport_open(spec.c_str());
  if (!d) {
    fprintf(stderr, "nm_peer %s: cannot open %s: %s\n", mode.c_str(), spec.c_str(),
            strerror(errno));
    return 2;
  }
  if (ready_fd >= 0 && write(ready_fd, "o", 1) != 1) return 1;
  nmtest::Rings R{d->fd, d->nifp, 0, 0};
  std::string err;
  if (mode == "send") {
    R.first = d->first_tx_ring, R.last = d->last_tx_ring;
    err = nmtest::send_pkts(R, o);
  } else {
    R.first = d->first_rx_ring, R.last = d->last_rx_ring;
    std::vector<uint32_t> per_ring;
    err = nmtest::recv_pkts(R, o, &per_ring);
    for (unsigned k = 0; err.empty() && k < per_ring.size(); k++) {
      uint32_t want = o.count / R.count() + (k < o.count % R.count() ? 1 : 0);
      if (per_ring[k] != want)
        err = "rx ring " + std::to_string(R.first + k) + " got " + std::to_string(per_ring[k]) +
              " packets, want " + std::to_string(want);
    }
  }
  if (!err.empty()) {
    fprintf(stderr, "nm_peer %s %s: %s\n", mode.c_str(), spec.c_str(), err.c_str());
    nmport_close(d);
    return 3;
  }
  if (ready_fd >= 0 && write(ready_fd, "d", 1) != 1) return 1;
  if (hold_fd >= 0) {
    pollfd p{hold_fd, POLLIN, 0};
    if (poll(&p, 1, o.timeout_ms) != 1) fprintf(stderr, "nm_peer: hold timed out\n");
  }
  nmport_close(d);
  return 0;
}
