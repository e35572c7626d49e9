#include "ports/vhost/control.h"

#include <errno.h>
#include <unistd.h>

#include <cctype>
#include <climits>

#include "ports/vhost/device.h"
#include "unetmap/unetmap.h"

namespace unetmap::vhost {

namespace {

bool word(const std::string& s) { return worker::is_word(s); }

std::string worker_name(const std::string& sw, const std::string& name) { return sw + ":" + name; }

// vhost: SWITCH NAME /SOCKET server|client QUEUES SLOTS
int check_args(const std::vector<std::string>& a, std::string* why) {
  auto in = [](const std::string& s, int lo, int hi) {
    return word(s) && s.size() < 7 && atoi(s.c_str()) >= lo && atoi(s.c_str()) <= hi;
  };
  if (a.size() == 6 && a[0].rfind("vale", 0) == 0 && word(a[0]) && word(a[1]) && a[2].size() > 1 &&
      a[2][0] == '/' && a[2].size() < 108 && (a[3] == "server" || a[3] == "client") && in(a[4], 1, 16) &&
      (a[5] == "0" || in(a[5], 64, 32768)))
    return 0;
  *why = "kind vhost takes SWITCH NAME /SOCKET server|client QUEUES SLOTS (e.g. vale0 vm1 /run/vm1.sock server 1 0)";
  return EINVAL;
}

}  // namespace

bool is_port(const worker::Info& i) { return i.spec.kind == "vhost" && i.spec.args.size() == 6; }

int parse(const std::string& spec, AttachRequest* out, std::string* why) {
  const size_t comma = spec.find(',');
  if (comma == std::string::npos || spec.compare(comma + 1, 6, "vhost=") != 0) return ENOENT;
  const std::string port = spec.substr(0, comma);
  const size_t colon = port.find(':');
  AttachRequest r;
  if (colon == std::string::npos || port.compare(0, 4, "vale") != 0 || !word(port.substr(0, colon)) ||
      !word(port.substr(colon + 1))) {
    *why = "'" + port + "': a vhost-user port is valeX:NAME (letters, digits, _)";
    return EINVAL;
  }
  r.sw = port.substr(0, colon);
  r.name = port.substr(colon + 1);
  // vhost=PATH runs to the first of the options at its end (",client",
  // ",queues=", ",slots="): a path may hold commas.
  std::string rest = spec.substr(comma + 7);
  for (;;) {
    size_t c = rest.rfind(',');
    if (c == std::string::npos) break;
    const std::string opt = rest.substr(c + 1);
    if (opt == "client") {
      r.client = true;
    } else if (opt.compare(0, 7, "queues=") == 0) {
      char* end = nullptr;
      const long q = strtol(opt.c_str() + 7, &end, 10);
      if (opt.size() == 7 || *end || q < 1 || q > long(kMaxQueuePairs)) {
        *why = "'" + opt + "': queues is 1 to " + std::to_string(kMaxQueuePairs);
        return EINVAL;
      }
      r.queues = uint32_t(q);
    } else if (opt.compare(0, 6, "slots=") == 0) {
      char* end = nullptr;
      const long n = strtol(opt.c_str() + 6, &end, 10);
      if (opt.size() == 6 || *end || n < 64 || n > 32768) {
        *why = "'" + opt + "': slots is 64 to 32768";
        return EINVAL;
      }
      r.slots = uint32_t(n);
    } else {
      break;
    }
    rest.resize(c);
  }
  r.path = rest;
  if (r.path.empty()) {
    *why = "vhost= needs the socket's path";
    return EINVAL;
  }
  *out = r;
  return 0;
}

int attach(const AttachRequest& req, std::string* why) {
  AttachRequest r = req;
  if (!r.path.empty() && r.path[0] != '/') {
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) {
      *why = "the socket path is relative and the current directory is unknown";
      return EINVAL;
    }
    r.path = std::string(cwd) + "/" + r.path;
  }
  if (r.path.size() > 107 || r.path.find('\n') != std::string::npos) {
    *why = "socket path '" + r.path + "': at most 107 bytes, no newline";
    return EINVAL;
  }
  worker::Spec spec{worker_name(r.sw, r.name), "vhost",
                    {r.sw, r.name, r.path, r.client ? "client" : "server", std::to_string(r.queues),
                     std::to_string(r.slots)}};
  return worker::start(spec, why);
}

int detach(const std::string& sw, const std::string& name, std::string* why) {
  if (!exists(sw, name)) {
    *why = sw + ":" + name + " is not a vhost-user port";
    return ENXIO;
  }
  return worker::stop(worker_name(sw, name), why);
}

bool exists(const std::string& sw, const std::string& name) {
  worker::Info i;
  std::string why;
  return worker::get(worker_name(sw, name), &i, &why) == 0 && is_port(i);
}

std::vector<worker::Info> ports() {
  std::vector<worker::Info> all, out;
  std::string why;
  worker::list(&all, &why);
  for (worker::Info& i : all)
    if (is_port(i)) out.push_back(std::move(i));
  return out;
}

}  // namespace unetmap::vhost

namespace unetmap {
const worker::Kind& vhost_worker_kind() {
  static const worker::Kind k{"vhost", "unetmap-vhost", "UNETMAP_VHOST_HELPER", true, vhost::check_args};
  return k;
}
}  // namespace unetmap
