// Attachments: ports that a VALE switch reaches through a forwarder, the
// work netmap's kernel does with a bridge wrapper (bwrap) and, in polling
// mode, with kernel threads. Two kinds, one mechanism:
//
//   a NIC        NIOCCTRL VALE_ATTACH "valeX:IF" (vale-ctl -a / -h) of an
//                interface of the caller's network namespace: netmap:IF
//                (and netmap:IF^ with NR_REG_NIC_SW) on one side, the
//                ephemeral VALE ports valeX:IF (and valeX:IF_host) on the
//                other, in the NIC's region: packets move by swapping
//                buffers;
//   a VALE port  VALE_ATTACH "valeY:P" of a persistent port P that is on
//                switch valeX already: netmap wraps P and puts the wrapper
//                on valeY, so P joins both switches; here netmap:P (opened
//                exclusively: netmap's wrapped port is busy) and valeY:P.
//
// The forwarder is a worker of kind "attach" (core/worker.h) named after
// the attachment, "valeX:P": its program, tools/unetmap-attach.cc, is
// found next to libnetmap.so or at $UNETMAP_ATTACH_HELPER. The worker
// service runs it under a supervisor of its own, so the attachment outlives
// the requester as in netmap, is restarted when it dies (kill -9, crash:
// the interface comes back to the switch after the backoff) and is listed
// with its state (vale-ctl -l, vale-ctl -W). A failed attachment holds no
// port; detaching it removes it, attaching again replaces it.
//
// Polling mode (VALE_POLLING_ENABLE/DISABLE): netmap starts kernel threads
// that poll the NIC's rings on the CPUs asked for. The forwarder already
// runs the attachment; polling makes it spin on the rings instead of
// sleeping in poll(), pinned to those CPUs. The request is the worker's
// conf, "MODE FIRST_CPU NCPUS" (made with link(): enabling twice fails, as
// in netmap; it survives a restart), and the forwarder's status, "poll
// MODE FIRST NCPUS" or "block", is its acknowledgement.
#pragma once

#include <cstdint>
#include <string>

#include "core/worker.h"

namespace unetmap::attach {

struct Polling {
  uint32_t mode = 0;       // NETMAP_POLLING_MODE_SINGLE_CPU or _MULTI_CPU
  uint32_t first_cpu = 0;  // nr_first_cpu_id
  uint32_t ncpus = 0;      // nr_num_polling_cpus
};

// Start the forwarder of port `port` on switch `sw` (nic: an interface,
// with its host rings if `host`; else a persistent VALE port) and wait
// until it forwards or has failed. 0 or errno with *why (EBUSY if there is
// one already).
int start(const std::string& sw, const std::string& port, bool nic, bool host, std::string* why);
// Stop it and wait until it is gone. ENXIO if there is none; EBUSY in
// polling mode (netmap refuses to detach a polled NIC).
int stop(const std::string& sw, const std::string& port, std::string* why);
// Is there a live forwarder for this pair?
bool running(const std::string& sw, const std::string& port);
// Is there an attachment for this pair, even a failed one?
bool exists(const std::string& sw, const std::string& port);
// Is this worker an attachment's forwarder?
bool is_attachment(const worker::Info& i);
// The switch of a live forwarder of `port` (any switch), or "".
std::string switch_of(const std::string& port);

// Polling mode on an attachment: netmap's checks (EINVAL for a bad
// configuration, EFAULT if already on / not on), then the helper's ack.
int polling_enable(const std::string& sw, const std::string& port, const Polling& p,
                   std::string* why);
int polling_disable(const std::string& sw, const std::string& port, std::string* why);
// Whether it polls now (and how, into *p).
bool polling(const std::string& sw, const std::string& port, Polling* p = nullptr);

}  // namespace unetmap::attach
