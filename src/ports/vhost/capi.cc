// The C API of vhost-user ports (include/unetmap/unetmap.h):
// unetmap_vhost_attach, unetmap_vhost_attach_spec and unetmap_vhost_detach,
// over control.h.
#include <errno.h>
#include <string.h>
#include <unetmap/unetmap.h>

#include <string>

#include "abi/file.h"  // fail()
#include "ports/vhost/control.h"
#include "ports/vhost/device.h"

using namespace unetmap;

namespace {
// "valeX:NAME" into a request, or -1 with errno.
int vhost_port(const char* port, vhost::AttachRequest* r) {
  if (!port) return fail(EFAULT, "vhost-user port name is NULL");
  std::string why;
  const int err = vhost::parse(std::string(port) + ",vhost=/", r, &why);
  return err ? fail(err, why) : 0;
}
}  // namespace

extern "C" int unetmap_vhost_attach(const char* port, const char* path, unsigned flags, unsigned queues) {
  vhost::AttachRequest r;
  if (vhost_port(port, &r) != 0) return -1;
  if (!path || !*path) return fail(EINVAL, "unetmap_vhost_attach: no socket path");
  if (flags & ~unsigned(UNETMAP_VHOST_CLIENT)) return fail(EINVAL, "unetmap_vhost_attach: unknown flags");
  if (queues < 1 || queues > vhost::kMaxQueuePairs)
    return fail(EINVAL, "unetmap_vhost_attach: queues is 1 to " + std::to_string(vhost::kMaxQueuePairs));
  r.path = path;
  r.client = flags & UNETMAP_VHOST_CLIENT;
  r.queues = queues;
  std::string why;
  const int err = vhost::attach(r, &why);
  return err ? fail(err, why) : 0;
}

extern "C" int unetmap_vhost_detach(const char* port) {
  vhost::AttachRequest r;
  if (vhost_port(port, &r) != 0) return -1;
  std::string why;
  const int err = vhost::detach(r.sw, r.name, &why);
  return err ? fail(err, why) : 0;
}

extern "C" int unetmap_vhost_attach_spec(const char* spec, unsigned flags) {
  if (!spec) return fail(EFAULT, "unetmap_vhost_attach_spec: spec is NULL");
  if (flags & ~unsigned(UNETMAP_VHOST_CHECK)) return fail(EINVAL, "unetmap_vhost_attach_spec: unknown flags");
  vhost::AttachRequest r;
  std::string why;
  int err = vhost::parse(spec, &r, &why);
  if (err == ENOENT && strstr(spec, ",vhost="))
    return fail(EINVAL, std::string("'") + spec + "': valeX:NAME,vhost=PATH first, then client, queues=N, slots=N");
  if (err == ENOENT) return fail(ENOENT, std::string("'") + spec + "' has no ,vhost=PATH");
  if (!err && !(flags & UNETMAP_VHOST_CHECK)) err = vhost::attach(r, &why);
  return err ? fail(err, why) : 0;
}
