// Fuzzes the port-name grammar: libnetmap's decoders (nmreq_header_decode,
// nmreq_register_decode), the whole name with its @options (nmport_prepare:
// @conf, @share, @extmem, @N), then a register of what parsed, which takes
// the name through the library's side of the grammar (valid_port_name, the
// port types' owns()/resolve(), pipe and VALE names, ring_range); and the C
// API's names: a vhost-user spec checked (unetmap_vhost_attach_spec with
// UNETMAP_VHOST_CHECK: it must start nothing), a port's counters.
//
// Checks, besides no crash/UB/leak: the decoders stop inside the input and
// leave a NUL-terminated name; a port opened and closed leaves no port, fd
// or file behind.
#include <libnetmap.h>
#include <unetmap/unetmap.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "fuzz_env.h"

namespace {

void no_error(nmctx*, const char*) {}
nmctx g_quiet;
std::set<std::string> g_fds;
std::set<std::string> g_files;

void check_clean(const std::string& spec) {
  std::string ports = fuzz::live_ports();
  FUZZ_CHECK(ports.empty(), "'" + spec + "' left ports " + ports);
  std::set<std::string> fds = fuzz::open_fds();
  FUZZ_CHECK(fds == g_fds, "'" + spec + "' left fds open: " + fuzz::join(fds) + " before: " + fuzz::join(g_fds));
  std::set<std::string> files = fuzz::runtime_files();
  files.erase("mem.1");  // the global region, made by the first port
  FUZZ_CHECK(files == g_files, "'" + spec + "' left files: " + fuzz::join(files));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::setup("name");
  g_quiet = *nmctx_get();
  g_quiet.error = no_error;
  nmctx_set_default(&g_quiet);
  // The registry exists from the first use on: make it now.
  nmport_d* d = nmport_open("null:init");
  if (d) nmport_close(d);
  g_fds = fuzz::open_fds();
  g_files = fuzz::runtime_files();
  g_files.erase("mem.1");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 300) return -1;
  std::string spec(reinterpret_cast<const char*>(data), size);
  spec.resize(strlen(spec.c_str()));
  const char* const begin = spec.c_str();
  const char* const end = begin + spec.size();

  nmreq_header h;
  const char* p = begin;
  if (nmreq_header_decode(&p, &h, &g_quiet) == 0) {
    FUZZ_CHECK(p >= begin && p <= end, spec);
    FUZZ_CHECK(memchr(h.nr_name, 0, sizeof h.nr_name) != nullptr, spec);
    nmreq_register reg;
    memset(&reg, 0, sizeof reg);
    const char* q = p;
    if (nmreq_register_decode(&q, &reg, &g_quiet) == 0) FUZZ_CHECK(q >= p && q <= end, spec);
  }

  if (nmport_d* d = nmport_prepare(begin)) {
    FUZZ_CHECK(memchr(d->hdr.nr_name, 0, sizeof d->hdr.nr_name) != nullptr, spec);
    if (nmport_open_desc(d) == 0) {
      FUZZ_CHECK(d->nifp != nullptr, spec);
      FUZZ_CHECK(d->first_tx_ring <= d->last_tx_ring || d->reg.nr_tx_rings == 0, spec);
      nmport_undo_open_desc(d);
    }
    nmport_undo_prepare(d);
  }
  const int checked = unetmap_vhost_attach_spec(begin, UNETMAP_VHOST_CHECK);
  FUZZ_CHECK(checked == 0 || errno == EINVAL || errno == ENOENT, spec + ": " + unetmap_last_error());
  FUZZ_CHECK(unetmap_workers(nullptr, 0) == 0, "'" + spec + "': a check started a worker");
  unetmap_port_stats st;
  FUZZ_CHECK(unetmap_port_counters(begin, &st) == 0 || errno == ENOENT, spec + ": " + unetmap_last_error());
  check_clean(spec);
  return 0;
}
