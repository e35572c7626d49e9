// ipfw: the control tool of kipfw, with FreeBSD's ipfw syntax.
//
//   ipfw [-n NAME] [-q] [-S] COMMAND ...
//
// COMMAND is one of ipfw's (src/ipfw/command.h): add, delete, list, show,
// zero, flush, set, table; and `stats` (kipfw's counters as JSON). It is
// sent to the kipfw started with -n NAME (default "default") over its
// socket in the runtime directory; what kipfw answers is printed. -q
// prints nothing for add. Exit status: 0, 65 (a command kipfw refused:
// FreeBSD's EX_DATAERR) or 69 (no kipfw to talk to: EX_UNAVAILABLE).
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "ctl_socket.h"

namespace ctl = unetmap::ctl;

namespace {

constexpr int kExitRefused = 65;
constexpr int kExitNoKipfw = 69;
constexpr int kExitUsage = 64;

void usage(FILE* f) {
  fprintf(f,
          "usage: ipfw [-n NAME] [-q] [-S] COMMAND ...\n"
          "Change or read the ruleset of a running kipfw (FreeBSD's ipfw syntax).\n"
          "  add [N] [set S] [prob P] ACTION [log [logamount N]] PROTO from SRC [PORTS] to DST [PORTS] [OPTIONS]\n"
          "  delete [set] N ...   list|show [N ...]   zero [N ...]   resetlog [N ...]   flush\n"
          "  set enable|disable N ...   set show\n"
          "  table N add ADDR[/LEN] [VALUE] | delete ADDR[/LEN] | flush | list\n"
          "  pipe N config [bw B] [delay D] [plr P] [queue Q] [mask ...] | pipe N delete | pipe show\n"
          "  queue N config pipe P [weight W] [mask ...] | queue N delete | queue show\n"
          "  sched N config type fifo|wf2q+|rr|qfq | sched N delete | sched show\n"
          "  stats                kipfw's counters as JSON\n"
          "  -n NAME  the kipfw started with -n NAME (default \"default\")\n"
          "  -q       quiet: add prints nothing\n"
          "  -S       show each rule's set\n"
          "  -f       accepted and ignored (FreeBSD's ipfw -f flush: nothing asks here)\n"
          "Exit status: 0 done, 64 bad command line, 65 refused by kipfw, 69 no kipfw running.\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string name = "default";
  bool quiet = false;
  std::string line;
  int k = 1;
  for (; k < argc && argv[k][0] == '-'; k++) {
    const std::string a = argv[k];
    if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else if (a == "-n" && k + 1 < argc) {
      name = argv[++k];
    } else if (a == "-q") {
      quiet = true;
    } else if (a == "-S") {
      line += "-S ";
    } else if (a == "-f") {  // FreeBSD's "no confirmation" (ipfw -f flush): nothing asks here
    } else {
      fprintf(stderr, "ipfw: unknown option %s; --help for usage\n", a.c_str());
      return kExitUsage;
    }
  }
  if (k == argc) {
    usage(stderr);
    return kExitUsage;
  }
  for (; k < argc; k++) {
    if (strchr(argv[k], '\n')) {
      fprintf(stderr, "ipfw: a newline inside an argument\n");
      return kExitUsage;
    }
    line += std::string(argv[k]) + " ";
  }
  line += "\n";
  const std::string path = ctl::socket_path("kipfw", name);
  std::string reply, err;
  if (!ctl::ask(path, line.substr(0, line.size() - 1), &reply, &err)) {
    fprintf(stderr, "ipfw: kipfw %s: %s\n", name.c_str(), err.c_str());
    return kExitNoKipfw;
  }
  if (reply[0] != '0') {
    const size_t nl = reply.find('\n');
    fprintf(stderr, "ipfw: %s\n", reply.substr(2, nl == std::string::npos ? std::string::npos : nl - 2).c_str());
    return kExitRefused;
  }
  const std::string out = reply.substr(2);
  const bool is_add = line.find("add ") != std::string::npos && line.find("table") == std::string::npos;
  if (!(quiet && is_add)) fputs(out.c_str(), stdout);
  return 0;
}
