// The C API of NIC ports (include/unetmap/unetmap.h): unetmap_nic_backend.
#include <errno.h>
#include <unetmap/unetmap.h>

#include <string>

#include "abi/file.h"  // fail(), existing_registry()
#include "ports/nic/nic.h"

using namespace unetmap;

extern "C" const char* unetmap_nic_backend(const char* port) {
  if (!port) return fail(EFAULT, "unetmap_nic_backend: port name is NULL"), nullptr;
  std::string name(port);
  if (name.rfind("netmap:", 0) == 0) name = name.substr(7);
  std::optional<RegistryLock> g;
  Registry* reg = nullptr;
  if (existing_registry(&g, &reg) < 0) return nullptr;
  const int p = reg ? reg->find_port(name.c_str()) : -1;
  if (p < 0) return fail(ENOENT, "no port '" + name + "'"), nullptr;
  const nic::Backend b = nic::port_backend(reg->port(p));
  if (b == nic::Backend::kNone) return fail(ENXIO, "'" + name + "' is not a NIC port, or none of its rings was bound"), nullptr;
  return nic::backend_name(b);
}
