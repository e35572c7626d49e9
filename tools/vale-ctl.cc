// vale-ctl: unetmap's implementation of netmap's vale-ctl, the control tool
// of VALE software switches.
//
//   vale-ctl -n v0 -C 1024,1024,2,2     make persistent port v0 (2 ring pairs)
//   vale-ctl -a vale0:v0                attach it to switch vale0
//   vale-ctl -l                         every port of every switch
//   vale-ctl -s vale0 -j                per-port counters of vale0, as JSON
//   vale-ctl -d vale0:v0 ; vale-ctl -r v0
//
// netmap's commands (-n -r -a -d -l -g) go through NIOCCTRL on an open("/dev/netmap")
// exactly as netmap's vale-ctl issues them: the library interposes the
// ioctl and answers as netmap's kernel module would, so this file is also
// the reference of that path. NICs on a switch (-a/-h/-d with an interface,
// -p, -P) too: the library serves them with a helper process
// (src/ports/vale/attach.h), a worker of the library's worker service
// (src/core/worker.h), as netmap serves them with kernel threads. The
// unetmap extensions (-s statistics, -L lookup functions, -W workers,
// vhost-user ports) have no netmap ioctl and use unetmap's C API
// (unetmap/unetmap.h), as any program can.
//
// One command per run. Bad input is refused before anything is done, with
// one line naming the option and what it accepts (exit 2); a failed
// operation prints one line with the library's explanation (exit 1).
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <getopt.h>
#include <net/netmap.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdarg>
#include <cinttypes>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <unetmap/unetmap.h>

namespace {

constexpr int kExitFailed = 1;  // the operation was refused or failed
constexpr int kExitUsage = 2;   // bad command line: nothing was done

constexpr uint32_t kMinSlots = 2, kMaxSlots = 65536;
constexpr const char* kConfForm = "tx_slots[,rx_slots[,tx_rings[,rx_rings]]]";

void usage(FILE* f) {
  fprintf(f,
          "usage: vale-ctl COMMAND [options]\n"
          "netmap's commands:\n"
          "  -n NAME          create persistent VALE port NAME (letters, digits, _)\n"
          "  -r NAME          remove persistent port NAME (detach it first)\n"
          "  -a valeX:NAME    attach persistent port NAME to switch valeX (made if needed);\n"
          "                   if NAME is an interface, attach that NIC: a helper process\n"
          "                   forwards between netmap:NAME and VALE port valeX:NAME; if\n"
          "                   NAME is on another switch already, it joins both (wrapped)\n"
          "  -a valeX:NAME,vhost=PATH[,client][,queues=N][,slots=S]\n"
          "                   make NAME a vhost-user port of switch valeX: a virtio-net\n"
          "                   device for a VM (QEMU) or DPDK's virtio_user at Unix socket\n"
          "                   PATH, served by a worker; it listens on PATH, or connects\n"
          "                   to it with 'client' (again whenever the front end restarts);\n"
          "                   N queue pairs (1..16, default 1), S slots per ring\n"
          "                   (64..32768, default 1024)\n"
          "  -d valeX:NAME    detach NAME from switch valeX (a NIC: stop its helper, the\n"
          "                   interface goes back to the host; refused in polling mode;\n"
          "                   a vhost-user port: stop its worker, the port goes)\n"
          "  -l [valeX:Y]     list every port of every switch, or where port Y is:\n"
          "                   lines 'valeX:Y bridge:B port:P'; an attached NIC or wrapped\n"
          "                   port adds its forwarder's 'worker:STATE pid:N restarts:N',\n"
          "                   and one that is not on its switch now (its forwarder is\n"
          "                   restarting or failed) has a line 'valeX:Y worker:...' of its own\n"
          "  -g NAME          rings, slots and memory region of port NAME\n"
          "  -h valeX:IF      attach NIC IF and its host stack (host rings as port\n"
          "                   valeX:IF_host)\n"
          "  -p valeX:IF / -P valeX:IF  polling mode on / off for an attached NIC (its\n"
          "                   helper spins on the rings instead of sleeping in poll)\n"
          "options of -p:\n"
          "  -C 0,CPU         poll every ring on CPU (the default: -C 0,0)\n"
          "  -C 1,FIRST,N     one ring per CPU, rings and CPUs FIRST..FIRST+N-1\n"
          "options of -n:\n"
          "  -C %s\n"
          "                   ring configuration: slots %u..%u, rings 1..%u; rx_slots\n"
          "                   defaults to tx_slots, rx_rings to tx_rings (default\n"
          "                   1024 slots, 1 ring)\n"
          "  -m MEMID         put the port's rings in memory region MEMID (1..65535;\n"
          "                   default: a private region of its own)\n"
          "unetmap's commands:\n"
          "  -s [valeX]       per-port statistics of every switch, or of valeX\n"
          "  -L valeX:LOOKUP  lookup function of switch valeX: learning (default), hub\n"
          "  -W [NAME]        the workers of the runtime directory (the forwarders of\n"
          "                   attached NICs and wrapped ports, named valeX:Y, and any\n"
          "                   other): one line each, 'NAME kind:K state:S pid:P\n"
          "                   restarts:N last_exit:E log:FILE status:T reason: why';\n"
          "                   states starting, running, restarting, failed, stopping.\n"
          "                   A worker that dies is restarted, 5 deaths in a row within\n"
          "                   10 s of their start mark it failed. With NAME: that one\n"
          "                   only, exit 0 if it is running, 1 if not (a health check)\n"
          "  -j               with -l, -s or -W: print JSON\n"
          "  --help           this help\n"
          "Ports are opened by name: 'valeX:Y' is port Y of switch valeX (an ephemeral\n"
          "port is made on first open); persistent port NAME is 'netmap:NAME' or, once\n"
          "attached, 'valeX:NAME'. State lives in $UNETMAP_DIR (default /dev/shm/unetmap).\n"
          "Exit status: 0 done, 1 the operation failed, 2 bad command line.\n",
          kConfForm, kMinSlots, kMaxSlots, unsigned(UNETMAP_MAX_RINGS));
}

[[noreturn]] void bad(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] void bad(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "vale-ctl: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(kExitUsage);
}

// One line for a failed operation: what was asked, why it failed, and
// what to do about it if there is more to say.
int failed(const char* opt, const std::string& arg, int err, std::string why,
           const char* hint = nullptr) {
  std::string e = strerror(err);
  if (why.empty()) why = e;
  else if (why != e) why += " (" + e + ")";
  if (hint) why += std::string("; ") + hint;
  fprintf(stderr, "vale-ctl: %s%s%s: %s\n", opt, arg.empty() ? "" : " ", arg.c_str(), why.c_str());
  return kExitFailed;
}

// ---- argument checks ----

bool is_word_char(char c) { return isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// A persistent port's name, as the library accepts it.
bool plain_name(std::string_view n) {
  if (n.empty() || n.size() >= NETMAP_REQ_IFNAMSIZ) return false;
  for (char c : n)
    if (!is_word_char(c)) return false;
  return true;
}

// "valeX": "vale" and letters, digits or _.
bool switch_name(std::string_view n) {
  return n.size() < NETMAP_REQ_IFNAMSIZ && n.substr(0, 4) == "vale" && plain_name(n);
}

// "valeX:Y" -> valeX, Y. Y must be a plain name if strict, else any name
// without the pipe characters (an ephemeral port's name).
bool split_vale(std::string_view arg, bool strict, std::string* sw, std::string* port) {
  size_t colon = arg.find(':');
  if (colon == std::string_view::npos || arg.size() >= NETMAP_REQ_IFNAMSIZ) return false;
  std::string_view s = arg.substr(0, colon), p = arg.substr(colon + 1);
  if (!switch_name(s) || p.empty()) return false;
  if (strict ? !plain_name(p) : p.find_first_of("{}:") != std::string_view::npos) return false;
  *sw = std::string(s);
  *port = std::string(p);
  return true;
}

void need_plain(const char* opt, const char* arg) {
  if (plain_name(arg)) return;
  if (strchr(arg, ':'))
    bad("%s: '%s': give the port's own name (NAME, not valeX:NAME)", opt, arg);
  bad("%s: '%s' is not a port name: 1 to %d letters, digits or _", opt, arg,
      NETMAP_REQ_IFNAMSIZ - 1);
}

// valeX:IF names an interface of this network namespace.
bool is_interface(std::string_view arg) {
  size_t colon = arg.find(':');
  if (colon == std::string_view::npos) return false;
  std::string ifname(arg.substr(colon + 1));
  return !ifname.empty() && ifname.size() < IF_NAMESIZE && if_nametoindex(ifname.c_str()) != 0;
}

void need_vale(const char* opt, const char* arg, bool strict, const char* what) {
  std::string sw, port;
  if (split_vale(arg, strict, &sw, &port)) return;
  bad("%s: '%s' is not valeX:%s (a switch name 'vale' + letters/digits/_, a colon, %s; "
      "at most %d characters)",
      opt, arg, what, strict ? "a port name of letters/digits/_" : "a port name",
      NETMAP_REQ_IFNAMSIZ - 1);
}

// Strict decimal in [lo, hi]; false if not.
bool parse_u32(std::string_view s, uint32_t lo, uint32_t hi, uint32_t* out) {
  if (s.empty() || s.size() > 10) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + uint64_t(c - '0');
  }
  if (v < lo || v > hi) return false;
  *out = uint32_t(v);
  return true;
}

// "a,b,c" -> {"a", "b", "c"} (empty fields kept).
std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> parts;
  for (size_t at = 0;;) {
    size_t comma = s.find(',', at);
    parts.push_back(s.substr(at, comma == std::string::npos ? std::string::npos : comma - at));
    if (comma == std::string::npos) return parts;
    at = comma + 1;
  }
}

struct RingConf {
  uint32_t slots[2] = {0, 0};
  uint32_t rings[2] = {0, 0};
};

RingConf parse_conf(const char* arg) {
  static const char* const kField[4] = {"tx_slots", "rx_slots", "tx_rings", "rx_rings"};
  RingConf c;
  const std::vector<std::string> parts = split_commas(arg);
  if (parts.size() > 4)
    bad("-C: '%s' has %zu values, at most 4: %s", arg, parts.size(), kConfForm);
  uint32_t v[4] = {0, 0, 0, 0};
  for (size_t i = 0; i < parts.size(); i++) {
    bool slots = i < 2;
    uint32_t lo = slots ? kMinSlots : 1, hi = slots ? kMaxSlots : UNETMAP_MAX_RINGS;
    if (!parse_u32(parts[i], lo, hi, &v[i]))
      bad("-C: %s '%s' is not a number in %u..%u (-C %s)", kField[i], parts[i].c_str(), lo, hi,
          kConfForm);
  }
  c.slots[0] = v[0];
  c.slots[1] = parts.size() > 1 ? v[1] : v[0];
  c.rings[0] = v[2];
  c.rings[1] = parts.size() > 3 ? v[3] : v[2];
  return c;
}

// -p's -C: "0,CPU" (one CPU polls every ring) or "1,FIRST,N" (one ring
// per CPU), as netmap's vale-ctl takes it.
void parse_poll_conf(const char* arg, uint32_t poll[3]) {
  const std::vector<std::string> parts = split_commas(arg);
  uint32_t v[3] = {0, 0, 1};
  const bool multi = parts[0] == "1";
  if (parts[0] != "0" && !multi) bad("-C: polling mode '%s' is 0 (one CPU) or 1 (a CPU per ring)", parts[0].c_str());
  if (parts.size() > (multi ? 3u : 2u))
    bad("-C: '%s': -C 0,CPU or -C 1,FIRST,N", arg);
  for (size_t i = 1; i < parts.size(); i++)
    if (!parse_u32(parts[i], i == 2 ? 1 : 0, 65535, &v[i]))
      bad("-C: '%s' is not a %s (-C 0,CPU or -C 1,FIRST,N)", parts[i].c_str(),
          i == 1 ? "CPU number" : "CPU count of at least 1");
  poll[0] = multi ? NETMAP_POLLING_MODE_MULTI_CPU : NETMAP_POLLING_MODE_SINGLE_CPU;
  poll[1] = v[1];
  poll[2] = v[2];
}

// ---- the command line ----

struct Options {
  char cmd = 0;           // the command's option letter
  std::string arg;        // its argument ("" for -l / -s without one)
  bool have_conf = false;
  std::string conf_arg;   // -C, parsed once the command is known
  uint32_t poll[3] = {NETMAP_POLLING_MODE_SINGLE_CPU, 0, 1};  // -p: mode, first CPU, CPUs
  RingConf conf;
  uint16_t mem_id = 0;
  bool json = false;
  bool vhost = false;                  // -a valeX:NAME,vhost=PATH...
};

void set_cmd(Options* o, char c, const char* arg) {
  if (o->cmd)
    bad("-%c and -%c: one command at a time (run vale-ctl once for each)", o->cmd, c);
  o->cmd = c;
  o->arg = arg ? arg : "";
}

Options parse_args(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    exit(kExitUsage);
  }
  static const option kLong[] = {{"help", no_argument, nullptr, 'H'}, {nullptr, 0, nullptr, 0}};
  Options o;
  opterr = 0;
  int c;
  // '+': stop at the first non-option; ':': report a missing argument.
  while ((c = getopt_long(argc, argv, "+:n:r:a:d:h:l::g:s::p:P:C:m:L:jW::", kLong, nullptr)) != -1) {
    // -l, -s and -W take an optional argument, attached or as the next word.
    if ((c == 'l' || c == 's' || c == 'W') && !optarg && optind < argc && argv[optind][0] != '-')
      optarg = argv[optind++];
    switch (c) {
      case 'H':
        usage(stdout);
        exit(0);
      case 'n':
      case 'r':
        need_plain(c == 'n' ? "-n" : "-r", optarg);
        set_cmd(&o, char(c), optarg);
        break;
      case 'a':
      case 'd': {
        // valeX:NAME,vhost=...: checked by the library, which owns the grammar.
        if (c == 'a' && strstr(optarg, ",vhost=")) {
          if (unetmap_vhost_attach_spec(optarg, UNETMAP_VHOST_CHECK) != 0)
            bad("-a: %s", unetmap_last_error());
          o.vhost = true;
          set_cmd(&o, 'a', optarg);
          break;
        }
        // A port name, or the name of an interface (which may have - or .).
        need_vale(c == 'a' ? "-a" : "-d", optarg, !is_interface(optarg), "NAME");
        set_cmd(&o, char(c), optarg);
        break;
      }
      case 'h':
        need_vale("-h", optarg, false, "IF");
        set_cmd(&o, 'h', optarg);
        break;
      case 'l':
        if (optarg) need_vale("-l", optarg, false, "Y");
        set_cmd(&o, 'l', optarg);
        break;
      case 's':
        if (optarg && !switch_name(optarg))
          bad("-s: '%s' is not a switch name: valeX ('vale' + letters, digits or _)", optarg);
        set_cmd(&o, 's', optarg);
        break;
      case 'g':
      case 'p':
      case 'P':
        if (!*optarg || strlen(optarg) >= NETMAP_REQ_IFNAMSIZ)
          bad("-%c: '%s' is not a port name (1 to %d characters)", c, optarg,
              NETMAP_REQ_IFNAMSIZ - 1);
        set_cmd(&o, char(c), optarg);
        break;
      case 'L': {
        std::string_view a = optarg;
        size_t colon = a.find(':');
        if (colon == std::string_view::npos || !switch_name(a.substr(0, colon)))
          bad("-L: '%s' is not valeX:LOOKUP (e.g. -L vale0:hub)", optarg);
        std::string_view l = a.substr(colon + 1);
        if (l != "learning" && l != "hub")
          bad("-L: unknown lookup '%.*s': learning (the default) or hub", int(l.size()), l.data());
        set_cmd(&o, 'L', optarg);
        break;
      }
      case 'C':
        o.conf_arg = optarg;
        o.have_conf = true;
        break;
      case 'm': {
        uint32_t m;
        if (!parse_u32(optarg, 1, 65535, &m))
          bad("-m: '%s' is not a memory region id in 1..65535", optarg);
        o.mem_id = uint16_t(m);
        break;
      }
      case 'W':
        if (optarg && (!*optarg || strlen(optarg) >= 64))
          bad("-W: '%s' is not a worker name (1 to 63 characters)", optarg);
        set_cmd(&o, 'W', optarg);
        break;
      case 'j':
        o.json = true;
        break;
      case ':':
        bad("-%c needs an argument (see --help)", optopt);
      default:
        if (optopt)
          fprintf(stderr, "vale-ctl: unknown option '-%c'\n", optopt);
        else
          fprintf(stderr, "vale-ctl: unknown option '%s'\n", argv[optind - 1]);
        usage(stderr);
        exit(kExitUsage);
    }
  }
  if (optind < argc) bad("unexpected argument '%s' (see --help)", argv[optind]);
  if (!o.cmd) bad("no command: one of -n -r -a -d -l -g -h -p -P -s -L -W (see --help)");
  if (o.have_conf && o.cmd == 'p')
    parse_poll_conf(o.conf_arg.c_str(), o.poll);
  else if (o.have_conf && o.cmd == 'n')
    o.conf = parse_conf(o.conf_arg.c_str());
  else if (o.have_conf)
    bad("-C: applies to -n (ring configuration) and -p (polling CPUs) only");
  if (o.mem_id && o.cmd != 'n') bad("-m: applies to -n only (the memory region of a new port)");
  if (o.json && o.cmd != 'l' && o.cmd != 's' && o.cmd != 'W')
    bad("-j: applies to -W, -l and -s only");
  return o;
}

// ---- netmap's commands, through NIOCCTRL ----

class Dev {
 public:
  Dev() {
    fd_ = open("/dev/netmap", O_RDWR);
    if (fd_ < 0) {
      fprintf(stderr, "vale-ctl: cannot open /dev/netmap: %s\n", strerror(errno));
      exit(kExitFailed);
    }
  }
  ~Dev() { close(fd_); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;

  // One NIOCCTRL request; 0 or errno (unetmap_last_error() says why).
  int ctrl(nmreq_header* h) { return ioctl(fd_, NIOCCTRL, h) < 0 ? errno : 0; }

 private:
  int fd_ = -1;
};

void init_header(nmreq_header* h, uint16_t reqtype, const std::string& name, void* body) {
  memset(h, 0, sizeof *h);
  h->nr_version = NETMAP_API;
  h->nr_reqtype = reqtype;
  snprintf(h->nr_name, sizeof h->nr_name, "%s", name.c_str());
  h->nr_body = uintptr_t(body);
}

std::string why_of(int err) {
  const char* w = unetmap_last_error();
  return w && *w ? w : strerror(err);
}

std::string json_str(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      snprintf(b, sizeof b, "\\u%04x", c);
      out += b;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// Workers by the shapes of their kinds' arguments (unetmap.h): a port on a
// switch served by a worker is an attachment (a NIC, or a port wrapped
// from another switch) or a vhost-user port.
using Worker = unetmap_worker_info;
bool is_attachment(const Worker& w) { return !strcmp(w.kind, "attach") && w.nargs == 4; }
bool is_vhost(const Worker& w) { return !strcmp(w.kind, "vhost") && w.nargs == 6; }

std::vector<Worker> workers() {
  std::vector<Worker> v(8);
  for (;;) {
    const int n = unetmap_workers(v.data(), int(v.size()));
    if (n < 0) return {};
    if (size_t(n) <= v.size()) {
      v.resize(size_t(n));
      return v;
    }
    v.resize(size_t(n) + 8);
  }
}

// Whether valeX:NAME is served by a vhost-user worker.
bool vhost_port(const std::string& name) {
  Worker w;
  return unetmap_worker_get(name.c_str(), &w) == 0 && is_vhost(w);
}

// The forwarders of attachments and vhost-user ports, to show beside
// the ports they put on switches.
std::vector<Worker> attach_workers() {
  std::vector<Worker> out;
  for (const Worker& w : workers())
    if (is_attachment(w) || is_vhost(w)) out.push_back(w);
  return out;
}

// The worker whose port `name` is (valeX:IF, or valeX:IF_host with host rings).
const Worker* worker_of(const std::vector<Worker>& ws, const std::string& name) {
  for (auto& w : ws)
    if (name == w.name || (!strcmp(w.args[3], "host") && name == std::string(w.name) + "_host"))
      return &w;
  return nullptr;
}

std::string describe_exit(const Worker& w) {
  if (w.exit_signal > 0) return "signal " + std::to_string(w.exit_signal) + " (" + strsignal(w.exit_signal) + ")";
  if (w.exit_status >= 0) return "exit " + std::to_string(w.exit_status);
  return "-";
}

std::string worker_fields(const Worker& w, bool json) {
  const bool vhost = is_vhost(w);
  if (json)
    return "{\"state\": " + json_str(w.state) + ", \"pid\": " + std::to_string(w.pid) +
           ", \"restarts\": " + std::to_string(w.restarts) + ", \"log\": " + json_str(w.log) +
           (vhost ? ", \"vhost\": " + json_str(w.args[2]) + ", \"mode\": " + json_str(w.args[3]) +
                        ", \"queues\": " + w.args[4] + ", \"status\": " + json_str(w.status)
                  : std::string()) +
           "}";
  return std::string("worker:") + w.state + " pid:" + std::to_string(w.pid) +
         " restarts:" + std::to_string(w.restarts) +
         (vhost ? std::string(" vhost:") + w.args[2] + " mode:" + w.args[3] + " queues:" + w.args[4]
                : std::string());
}

void print_list_entry(bool json, const char* name, unsigned bridge, unsigned port,
                      const Worker* w = nullptr) {
  if (json)
    printf("{\"name\": %s, \"bridge\": %u, \"port\": %u%s}", json_str(name).c_str(), bridge, port,
           w ? (", \"worker\": " + worker_fields(*w, true)).c_str() : "");
  else
    printf("%s bridge:%u port:%u%s\n", name, bridge, port,
           w ? (" " + worker_fields(*w, false)).c_str() : "");
}

int do_newif(Dev& dev, const Options& o) {
  nmreq_vale_newif nif;
  memset(&nif, 0, sizeof nif);
  nif.nr_tx_slots = o.conf.slots[0];
  nif.nr_rx_slots = o.conf.slots[1];
  nif.nr_tx_rings = uint16_t(o.conf.rings[0]);
  nif.nr_rx_rings = uint16_t(o.conf.rings[1]);
  nif.nr_mem_id = o.mem_id;
  nmreq_header h;
  init_header(&h, NETMAP_REQ_VALE_NEWIF, o.arg, &nif);
  int err = dev.ctrl(&h);
  return err ? failed("-n", o.arg, err, why_of(err)) : 0;
}

int do_delif(Dev& dev, const Options& o) {
  nmreq_header h;
  init_header(&h, NETMAP_REQ_VALE_DELIF, o.arg, nullptr);
  int err = dev.ctrl(&h);
  return err ? failed("-r", o.arg, err, why_of(err)) : 0;
}

// -a, or -h (a NIC with its host stack: NR_REG_NIC_SW).
int do_attach(Dev& dev, const Options& o) {
  if (o.vhost) {
    const bool ok = unetmap_vhost_attach_spec(o.arg.c_str(), 0) == 0;
    return ok ? 0 : failed("-a", o.arg, errno, unetmap_last_error());
  }
  nmreq_vale_attach att;
  memset(&att, 0, sizeof att);
  att.reg.nr_mode = o.cmd == 'h' ? NR_REG_NIC_SW : NR_REG_ALL_NIC;
  nmreq_header h;
  init_header(&h, NETMAP_REQ_VALE_ATTACH, o.arg, &att);
  int err = dev.ctrl(&h);
  return err ? failed(o.cmd == 'h' ? "-h" : "-a", o.arg, err, why_of(err)) : 0;
}

int do_detach(Dev& dev, const Options& o) {
  std::string sw, port;
  if (split_vale(o.arg.c_str(), true, &sw, &port) && vhost_port(o.arg)) {
    const bool ok = unetmap_vhost_detach(o.arg.c_str()) == 0;
    return ok ? 0 : failed("-d", o.arg, errno, unetmap_last_error());
  }
  nmreq_vale_detach det;
  memset(&det, 0, sizeof det);
  nmreq_header h;
  init_header(&h, NETMAP_REQ_VALE_DETACH, o.arg, &det);
  int err = dev.ctrl(&h);
  return err ? failed("-d", o.arg, err, why_of(err)) : 0;
}

// -l NAME: where NAME is. -l: every port, by asking for the first port at
// or after (bridge, port) until ENOENT, as netmap's vale-ctl does.
int do_list(Dev& dev, const Options& o) {
  nmreq_vale_list l;
  memset(&l, 0, sizeof l);
  nmreq_header h;
  init_header(&h, NETMAP_REQ_VALE_LIST, o.arg, &l);
  const std::vector<Worker> ws = attach_workers();
  if (!o.arg.empty()) {
    if (int err = dev.ctrl(&h)) return failed("-l", o.arg, err, why_of(err));
    print_list_entry(o.json, o.arg.c_str(), l.nr_bridge_idx, l.nr_port_idx, worker_of(ws, o.arg));
    if (o.json) printf("\n");
    return 0;
  }
  if (o.json) printf("[");
  int n = 0, rc = 0;
  std::vector<std::string> shown;
  for (;; n++) {
    h.nr_name[0] = '\0';
    if (int err = dev.ctrl(&h)) {
      if (err != ENOENT) rc = failed("-l", "", err, why_of(err));
      break;
    }
    h.nr_name[sizeof h.nr_name - 1] = '\0';
    if (o.json) printf("%s\n  ", n ? "," : "");
    const Worker* w = worker_of(ws, h.nr_name);
    if (w) shown.push_back(w->name);
    print_list_entry(o.json, h.nr_name, l.nr_bridge_idx, l.nr_port_idx, w);
    l.nr_port_idx++;
  }
  // Attachments whose forwarder is not on its switch now.
  for (const auto& w : ws) {
    if (std::find(shown.begin(), shown.end(), w.name) != shown.end()) continue;
    if (o.json)
      printf("%s\n  {\"name\": %s, \"worker\": %s}", n++ ? "," : "", json_str(w.name).c_str(),
             worker_fields(w, true).c_str());
    else
      printf("%s %s (not on the switch%s%s)\n", w.name, worker_fields(w, false).c_str(),
             *w.reason ? ": " : "", w.reason);
  }
  if (o.json) printf("%s]\n", n ? "\n" : "");
  return rc;
}

// A NIC port's backend, as the last process to bind one of its rings chose
// it (nothing for other ports, or before any ring was bound).
void print_nic_backend(const std::string& name) {
  if (const char* b = unetmap_nic_backend(name.c_str()))
    printf("%s: NIC port, backend %s\n", name.rfind("netmap:", 0) == 0 ? name.c_str() + 7 : name.c_str(), b);
}

int do_info(Dev& dev, const Options& o) {
  nmreq_port_info_get pi;
  memset(&pi, 0, sizeof pi);
  nmreq_header h;
  init_header(&h, NETMAP_REQ_PORT_INFO_GET, o.arg, &pi);
  if (int err = dev.ctrl(&h)) return failed("-g", o.arg, err, why_of(err));
  printf("%s: region %u, memsize %" PRIu64 ", tx %u rings of %u slots, rx %u rings of %u slots\n",
         o.arg.c_str(), unsigned(pi.nr_mem_id), uint64_t(pi.nr_memsize), unsigned(pi.nr_tx_rings),
         unsigned(pi.nr_tx_slots), unsigned(pi.nr_rx_rings), unsigned(pi.nr_rx_slots));
  print_nic_backend(o.arg);
  return 0;
}

// Polling mode of an attached NIC: NIOCCTRL VALE_POLLING_ENABLE/DISABLE.
int do_polling(Dev& dev, const Options& o) {
  const char* opt = o.cmd == 'p' ? "-p" : "-P";
  nmreq_vale_polling vp;
  memset(&vp, 0, sizeof vp);
  if (o.cmd == 'p') {
    vp.nr_mode = o.poll[0];
    vp.nr_first_cpu_id = o.poll[1];
    vp.nr_num_polling_cpus = o.poll[2];
  }
  nmreq_header h;
  init_header(&h, o.cmd == 'p' ? NETMAP_REQ_VALE_POLLING_ENABLE : NETMAP_REQ_VALE_POLLING_DISABLE,
              o.arg, &vp);
  int err = dev.ctrl(&h);
  return err ? failed(opt, o.arg, err, why_of(err)) : 0;
}

// ---- unetmap's commands ----

// A C API list call into a vector: call(out, max) returns how many there are.
template <typename T, typename F>
int list_all(F call, std::vector<T>* v) {
  v->resize(8);
  for (;;) {
    const int n = call(v->data(), int(v->size()));
    if (n < 0) return errno;
    if (size_t(n) <= v->size()) {
      v->resize(size_t(n));
      return 0;
    }
    v->resize(size_t(n) + 8);  // more came meanwhile
  }
}

struct SwitchStats {
  unetmap_switch_info sw;
  std::vector<unetmap_switch_port> ports;
};

int do_stats(const Options& o) {
  std::vector<unetmap_switch_info> all;
  int err = list_all(unetmap_switches, &all);
  std::vector<SwitchStats> sws;
  for (size_t i = 0; !err && i < all.size(); i++) {
    if (!o.arg.empty() && o.arg != all[i].name) continue;
    SwitchStats s{all[i], {}};
    err = list_all([&](unetmap_switch_port* out, int max) { return unetmap_switch_ports(s.sw.name, out, max); },
                   &s.ports);
    if (err == ENOENT) err = 0;  // gone meanwhile
    else if (!err) sws.push_back(std::move(s));
  }
  if (err) return failed("-s", o.arg, err, unetmap_last_error());
  if (!o.arg.empty() && sws.empty())
    return failed("-s", o.arg, ENOENT, "no switch " + o.arg, "a switch exists only while it has ports");
  if (o.json) {
    printf("[");
    for (size_t i = 0; i < sws.size(); i++) {
      const auto& s = sws[i];
      printf("%s\n  {\"switch\": %s, \"lookup\": %s, \"ports\": [", i ? "," : "",
             json_str(s.sw.name).c_str(), json_str(s.sw.lookup).c_str());
      for (size_t j = 0; j < s.ports.size(); j++) {
        const auto& p = s.ports[j];
        printf("%s\n    {\"name\": %s, \"index\": %u, \"persistent\": %s, \"region\": %u, "
               "\"tx_rings\": %u, \"rx_rings\": %u, \"tx_slots\": %u, \"rx_slots\": %u, "
               "\"tx_packets\": %" PRIu64 ", \"tx_bytes\": %" PRIu64
               ", \"rx_packets\": %" PRIu64 ", \"drops\": %" PRIu64 ", \"tx_drops\": %" PRIu64
               ", \"hdr_len\": %u}",
               j ? "," : "", json_str(p.name).c_str(), p.index, p.persistent ? "true" : "false",
               unsigned(p.mem_id), unsigned(p.tx_rings), unsigned(p.rx_rings), p.tx_slots,
               p.rx_slots, p.tx_packets, p.tx_bytes, p.rx_packets, p.drops, p.tx_drops,
               unsigned(p.hdr_len));
      }
      printf("%s]}", s.ports.empty() ? "" : "\n  ");
    }
    printf("%s]\n", sws.empty() ? "" : "\n");
    return 0;
  }
  if (sws.empty()) {
    printf("no VALE switches\n");
    return 0;
  }
  for (const auto& s : sws) {
    printf("%s: lookup %s, %zu port%s\n", s.sw.name, s.sw.lookup, s.ports.size(),
           s.ports.size() == 1 ? "" : "s");
    int w = 4;
    for (const auto& p : s.ports) w = std::max(w, int(strlen(p.name)));
    printf("  %-*s %5s %-10s %5s %11s %6s %12s %14s %12s %10s %3s\n", w, "port", "index", "kind",
           "rings", "slots", "region", "tx_packets", "tx_bytes", "rx_packets", "drops", "hdr");
    for (const auto& p : s.ports) {
      char rings[16], slots[24];
      snprintf(rings, sizeof rings, "%u/%u", unsigned(p.tx_rings), unsigned(p.rx_rings));
      snprintf(slots, sizeof slots, "%u/%u", p.tx_slots, p.rx_slots);
      printf("  %-*s %5u %-10s %5s %11s %6u %12" PRIu64 " %14" PRIu64 " %12" PRIu64 " %10" PRIu64
             " %3u\n",
             w, p.name, p.index, p.persistent ? "persistent" : "ephemeral", rings, slots,
             unsigned(p.mem_id), p.tx_packets, p.tx_bytes, p.rx_packets, p.drops, unsigned(p.hdr_len));
    }
  }
  return 0;
}

// -W [NAME]: the workers, or one (exit 1 if it does not run).
int do_workers(const Options& o) {
  std::vector<Worker> ws;
  if (o.arg.empty()) {
    if (int err = list_all(unetmap_workers, &ws)) return failed("-W", "", err, unetmap_last_error());
  } else {
    Worker w;
    if (unetmap_worker_get(o.arg.c_str(), &w) != 0)
      return failed("-W", o.arg, errno, unetmap_last_error(), errno == ENOENT ? "vale-ctl -W lists them" : nullptr);
    ws.push_back(w);
  }
  if (o.json) printf("[");
  for (size_t k = 0; k < ws.size(); k++) {
    const Worker& w = ws[k];
    if (o.json) {
      std::string args;
      for (uint32_t a = 0; a < w.nargs && a < UNETMAP_WORKER_MAX_ARGS; a++)
        args += (a ? ", " : "") + json_str(w.args[a]);
      printf("%s\n  {\"name\": %s, \"kind\": %s, \"args\": [%s], \"state\": %s, \"pid\": %d, "
             "\"supervisor\": %d, \"restarts\": %u, \"last_exit\": %s, \"log\": %s, "
             "\"status\": %s, \"reason\": %s}",
             k ? "," : "", json_str(w.name).c_str(), json_str(w.kind).c_str(), args.c_str(),
             json_str(w.state).c_str(), w.pid, w.supervisor, w.restarts,
             json_str(describe_exit(w)).c_str(), json_str(w.log).c_str(), json_str(w.status).c_str(),
             json_str(w.reason).c_str());
    } else {
      printf("%s kind:%s state:%s pid:%d restarts:%u last_exit:%s log:%s status:%s%s%s\n", w.name,
             w.kind, w.state, w.pid, w.restarts, describe_exit(w).c_str(), w.log,
             *w.status ? w.status : "-", *w.reason ? " reason: " : "", w.reason);
    }
  }
  if (o.json) printf("%s]\n", ws.empty() ? "" : "\n");
  else if (ws.empty()) printf("no workers\n");
  return !o.arg.empty() && strcmp(ws[0].state, "running") != 0 ? kExitFailed : 0;
}

int do_lookup(const Options& o) {
  size_t colon = o.arg.find(':');
  const std::string sw = o.arg.substr(0, colon), lookup = o.arg.substr(colon + 1);
  if (unetmap_switch_set_lookup(sw.c_str(), lookup.c_str()) != 0)
    return failed("-L", o.arg, errno, unetmap_last_error(),
                  errno == ENOENT ? "a switch exists only while it has ports: attach one first" : nullptr);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // This tool reports every failure itself, with the library's explanation
  // (the command line's checks included).
  setenv("UNETMAP_QUIET", "1", 1);
  Options o = parse_args(argc, argv);
  switch (o.cmd) {
    case 's':
      return do_stats(o);
    case 'L':
      return do_lookup(o);
    case 'W':
      return do_workers(o);
    default:
      break;
  }
  Dev dev;
  switch (o.cmd) {
    case 'n': return do_newif(dev, o);
    case 'r': return do_delif(dev, o);
    case 'a':
    case 'h': return do_attach(dev, o);
    case 'd': return do_detach(dev, o);
    case 'p':
    case 'P': return do_polling(dev, o);
    case 'l': return do_list(dev, o);
    case 'g': return do_info(dev, o);
  }
  return kExitFailed;
}
