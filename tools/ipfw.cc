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
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace {

constexpr int kExitRefused = 65;
constexpr int kExitNoKipfw = 69;
constexpr int kExitUsage = 64;

void usage(FILE* f) {
  fprintf(f,
          "usage: ipfw [-n NAME] [-q] [-S] COMMAND ...\n"
          "Change or read the ruleset of a running kipfw (FreeBSD's ipfw syntax).\n"
          "  add [N] [set S] [prob P] ACTION [log] PROTO from SRC [PORTS] to DST [PORTS] [OPTIONS]\n"
          "  delete [set] N ...   list|show [N ...]   zero [N ...]   flush\n"
          "  set enable|disable N ...   set show\n"
          "  table N add ADDR[/LEN] [VALUE] | delete ADDR[/LEN] | flush | list\n"
          "  stats                kipfw's counters as JSON\n"
          "  -n NAME  the kipfw started with -n NAME (default \"default\")\n"
          "  -q       quiet: add prints nothing\n"
          "  -S       show each rule's set\n");
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
  const char* d = getenv("UNETMAP_DIR");
  const std::string path = std::string(d && *d ? d : "/dev/shm/unetmap") + "/kipfw." + name + ".sock";
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) {
    fprintf(stderr, "ipfw: socket path too long: %s\n", path.c_str());
    return kExitUsage;
  }
  strcpy(a.sun_path, path.c_str());
  const int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    fprintf(stderr, "ipfw: socket: %s\n", strerror(errno));
    return kExitNoKipfw;
  }
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    fprintf(stderr, "ipfw: no kipfw named %s is running (%s: %s)\n", name.c_str(), path.c_str(), strerror(errno));
    return kExitNoKipfw;
  }
  // Only a kipfw of our own user or root is told anything (in a runtime
  // directory shared with a group, another member could listen there).
  ucred cr{};
  socklen_t cl = sizeof cr;
  if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || (cr.uid != 0 && cr.uid != geteuid())) {
    fprintf(stderr, "ipfw: %s is served by uid %u, neither root nor this user: refused\n", path.c_str(),
            unsigned(cr.uid));
    return kExitNoKipfw;
  }
  if (write(s, line.data(), line.size()) != ssize_t(line.size())) {
    fprintf(stderr, "ipfw: cannot send to kipfw: %s\n", strerror(errno));
    return kExitNoKipfw;
  }
  shutdown(s, SHUT_WR);
  std::string reply;
  char buf[65536];
  ssize_t n;
  while ((n = read(s, buf, sizeof buf)) > 0) reply.append(buf, size_t(n));
  close(s);
  if (reply.empty()) {
    fprintf(stderr, "ipfw: kipfw closed the connection without an answer\n");
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
