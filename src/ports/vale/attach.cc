// Attachments (see attach.h): the forwarder of a port on a VALE switch is a
// worker of kind "attach" named after the attachment; this file turns
// netmap's requests into worker requests, with netmap's checks and errors.
#include "ports/vale/attach.h"

#include <errno.h>
#include <net/netmap.h>
#include <stdio.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "core/registry.h"
#include "core/worker.h"

namespace unetmap::attach {

namespace {

std::string worker_name(const std::string& sw, const std::string& port) { return sw + ":" + port; }

// Rings of the registry port `name` in direction d (0 if unknown).
uint32_t port_rings(const std::string& name, int d) {
  int err = 0;
  Registry* reg = Registry::get(&err);
  if (!reg) return 0;
  RegistryLock g(*reg);
  if (!g.ok()) return 0;
  int p = reg->find_port(name.c_str());
  return p < 0 ? 0 : reg->port(p).nrings[d];
}

// The worker of an attachment that is not failed (it runs, or is being
// restarted): a failed one holds no port.
bool live(const std::string& sw, const std::string& port, worker::Info* info = nullptr) {
  worker::Info i;
  std::string why;
  if (worker::get(worker_name(sw, port), &i, &why) != 0 || i.spec.kind != "attach") return false;
  if (info) *info = i;
  return i.supervised && i.state != worker::State::kFailed;
}

}  // namespace

bool running(const std::string& sw, const std::string& port) { return live(sw, port); }

bool is_attachment(const worker::Info& i) { return i.spec.kind == "attach" && i.spec.args.size() == 4; }

bool exists(const std::string& sw, const std::string& port) {
  worker::Info i;
  std::string why;
  return worker::get(worker_name(sw, port), &i, &why) == 0 && is_attachment(i);
}

std::string switch_of(const std::string& port) {
  std::vector<worker::Info> all;
  std::string why;
  worker::list(&all, &why);
  for (const worker::Info& i : all)
    if (is_attachment(i) && i.spec.args[1] == port &&
        i.supervised && i.state != worker::State::kFailed)
      return i.spec.args[0];
  return "";
}

int start(const std::string& sw, const std::string& port, bool nic, bool host, std::string* why) {
  if (running(sw, port)) {
    *why = port + " is already attached to " + sw;
    return EBUSY;
  }
  worker::Spec spec{worker_name(sw, port), "attach", {sw, port, nic ? "nic" : "port", host ? "host" : "-"}};
  return worker::start(spec, why);
}

int stop(const std::string& sw, const std::string& port, std::string* why) {
  worker::Info i;
  std::string w;
  if (worker::get(worker_name(sw, port), &i, &w) != 0 || i.spec.kind != "attach") {
    *why = port + " is not attached to " + sw;
    return ENXIO;
  }
  if (i.supervised && i.state != worker::State::kFailed && !i.conf.empty()) {
    *why = sw + ":" + port + " is in polling mode: disable it first (vale-ctl -P)";
    return EBUSY;
  }
  int err = worker::stop(worker_name(sw, port), why);
  return err == ENOENT ? 0 : err;  // gone meanwhile
}

bool polling(const std::string& sw, const std::string& port, Polling* p) {
  worker::Info i;
  Polling tmp;
  if (!live(sw, port, &i) ||
      sscanf(i.conf.c_str(), "%u %u %u", &tmp.mode, &tmp.first_cpu, &tmp.ncpus) != 3)
    return false;
  if (p) *p = tmp;
  return true;
}

int polling_enable(const std::string& sw, const std::string& port, const Polling& p,
                   std::string* why) {
  const std::string name = sw + ":" + port;
  if (!running(sw, port)) {
    *why = name + " is not an attached NIC (polling mode is for ports attached with vale-ctl -a)";
    return ENXIO;
  }
  // netmap's checks of the configuration.
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (p.ncpus == 0) {
    *why = "nr_num_polling_cpus must be at least 1";
    return EINVAL;
  }
  if (long(p.ncpus) >= cpus) {
    *why = "polling on " + std::to_string(p.ncpus) + " CPUs of " + std::to_string(cpus) +
           ": netmap leaves at least one CPU free";
    return EINVAL;
  }
  if (p.mode == NETMAP_POLLING_MODE_SINGLE_CPU) {
    if (p.ncpus != 1) {
      *why = "NETMAP_POLLING_MODE_SINGLE_CPU takes 1 CPU (nr_num_polling_cpus " +
             std::to_string(p.ncpus) + ")";
      return EINVAL;
    }
  } else if (p.mode == NETMAP_POLLING_MODE_MULTI_CPU) {
    const uint32_t rings = port_rings(port, 1);
    if (uint64_t(p.first_cpu) + p.ncpus > rings) {
      *why = "NETMAP_POLLING_MODE_MULTI_CPU polls one ring per CPU: rings " +
             std::to_string(p.first_cpu) + ".." + std::to_string(uint64_t(p.first_cpu) + p.ncpus - 1) +
             " asked, " + port + " has " + std::to_string(rings);
      return EINVAL;
    }
  } else {
    *why = "polling mode " + std::to_string(p.mode) +
           ": NETMAP_POLLING_MODE_SINGLE_CPU (1) or NETMAP_POLLING_MODE_MULTI_CPU (2)";
    return EINVAL;
  }
  if (uint64_t(p.first_cpu) + p.ncpus > uint64_t(cpus)) {
    *why = "CPUs " + std::to_string(p.first_cpu) + ".." +
           std::to_string(uint64_t(p.first_cpu) + p.ncpus - 1) + " asked, this system has 0.." +
           std::to_string(cpus - 1);
    return EINVAL;
  }
  const std::string line =
      std::to_string(p.mode) + " " + std::to_string(p.first_cpu) + " " + std::to_string(p.ncpus);
  std::string w;
  int err = worker::configure(name, line, "poll " + line, &w);
  if (err == EEXIST) {
    *why = name + " is in polling mode already";
    return EFAULT;  // netmap's answer
  }
  if (err) {
    *why = "the forwarder of " + name + " did not switch to polling mode: " + w;
    return EIO;
  }
  return 0;
}

int polling_disable(const std::string& sw, const std::string& port, std::string* why) {
  const std::string name = sw + ":" + port;
  if (!running(sw, port)) {
    *why = name + " is not an attached NIC (polling mode is for ports attached with vale-ctl -a)";
    return ENXIO;
  }
  std::string w;
  int err = worker::unconfigure(name, "block", &w);
  if (err == ENOENT) {
    *why = name + " is not in polling mode";
    return EFAULT;  // netmap's answer
  }
  if (err) {
    *why = "the forwarder of " + name + " did not leave polling mode: " + w;
    return EIO;
  }
  return 0;
}

}  // namespace unetmap::attach

namespace unetmap {

namespace {
// attach: SWITCH PORT nic|port host|-
int check_attach(const std::vector<std::string>& a, std::string* why) {
  if (a.size() == 4 && a[0].rfind("vale", 0) == 0 && worker::is_word(a[0]) && !a[1].empty() &&
      a[1].find('/') == std::string::npos && (a[2] == "nic" || a[2] == "port") &&
      (a[3] == "host" || a[3] == "-"))
    return 0;
  *why = "kind attach takes SWITCH PORT nic|port host|- (e.g. vale0 eth0 nic -)";
  return EINVAL;
}
}  // namespace

const worker::Kind& attach_worker_kind() {
  static const worker::Kind k{"attach", "unetmap-attach", "UNETMAP_ATTACH_HELPER", true, check_attach};
  return k;
}

}  // namespace unetmap
