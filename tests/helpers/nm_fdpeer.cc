// nm_fdpeer: a sender on a netmap fd this program did not open: it got the
// fd across execve (its number on the command line), as a netmap
// application started by another with the fd left open would.
//
//   nm_fdpeer fd=F memsize=M offset=O count=N [seed=S]
//
// Polls the fd for POLLOUT before anything else (an fd unknown to the
// library would look like a plain FIFO to poll), then maps it and sends N
// test packets (util/pipe_io.h) on the tx rings the netmap_if shows.
// Exit status: 0 sent, 1 usage, 2 poll/mmap failed, 3 send failed.
#include <net/netmap.h>
#include <net/netmap_user.h>
#include <poll.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "util/pipe_io.h"

int main(int argc, char** argv) {
  std::map<std::string, long> a;
  for (int i = 1; i < argc; i++) {
    const char* eq = strchr(argv[i], '=');
    if (!eq) {
      fprintf(stderr, "nm_fdpeer: bad argument '%s' (want key=value)\n", argv[i]);
      return 1;
    }
    a[std::string(argv[i], size_t(eq - argv[i]))] = strtol(eq + 1, nullptr, 0);
  }
  if (!a.count("fd") || !a.count("memsize") || !a.count("offset")) {
    fprintf(stderr, "usage: nm_fdpeer fd=F memsize=M offset=O count=N [seed=S]\n");
    return 1;
  }
  const int fd = int(a["fd"]);
  pollfd p{fd, POLLOUT, 0};
  if (::poll(&p, 1, 5000) != 1 || !(p.revents & POLLOUT)) {
    fprintf(stderr, "nm_fdpeer: poll(POLLOUT) on fd %d: revents %#x\n", fd, p.revents);
    return 2;
  }
  void* mem = mmap(nullptr, size_t(a["memsize"]), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mem == MAP_FAILED) {
    fprintf(stderr, "nm_fdpeer: mmap of fd %d: %s\n", fd, strerror(errno));
    return 2;
  }
  netmap_if* nifp = NETMAP_IF(mem, a["offset"]);
  unsigned first = 0;
  while (first < nifp->ni_tx_rings && !nifp->ring_ofs[first]) first++;
  unsigned last = first;
  while (last + 1 < nifp->ni_tx_rings && nifp->ring_ofs[last + 1]) last++;
  nmtest::IoOpts o;
  o.count = uint32_t(a.count("count") ? a["count"] : 100);
  o.spec.seed = uint32_t(a.count("seed") ? a["seed"] : 1);
  std::string e = nmtest::send_pkts(nmtest::Rings{fd, nifp, first, last}, o);
  if (!e.empty()) {
    fprintf(stderr, "nm_fdpeer: %s\n", e.c_str());
    return 3;
  }
  return 0;
}
