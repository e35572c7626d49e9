// Workers: the processes that do what netmap's kernel does in threads of
// its own (a NIC or a wrapped port on a VALE switch, polling mode, the
// backends of vhost-user ports). One service starts, supervises,
// lists and stops them; it is no daemon, and nothing of it is on the data
// path: a worker moves packets with the ordinary library calls.
//
// A worker is a name (unique in the runtime directory), a kind (Kind
// below, defined in its port type's folder: the program that runs it,
// found next to libnetmap.so, and whether it speaks the protocol below) and the kind's
// arguments. start() runs the supervisor program, unetmap-worker, which
// forks once (the requester may go away: the worker stays, as a netmap
// attachment outlives the process that made it), takes its entry's lock,
// and runs the worker as its child with stdout and stderr in the log.
//
// Files, in <runtime>/workers/ (0700, or 02770 with UNETMAP_GROUP; every
// one is opened O_NOFOLLOW and checked as the runtime directory's files
// are: check_shared_fd):
//   NAME.lock    the entry itself: made first, removed last. Its supervisor
//                holds an flock on it for as long as it lives; that lock,
//                never a pid alone, tells a live entry from a stale one.
//   NAME.state   what the supervisor publishes: kind, arguments, state,
//                supervisor and worker (pid and start time), restarts, how
//                the last worker process ended, why it failed. Written
//                whole under a temporary name and renamed over the old
//                one (fill first, publish last): a reader sees one state
//                or the next, never half of one, whatever instruction the
//                supervisor was killed at.
//   NAME.log     the worker's stdout and stderr, and the supervisor's own
//                lines (each start, each end and how, each restart).
//   NAME.conf    what a client asks of a running worker (attach: polling
//                mode), made with link() so that one of two concurrent
//                requests wins; it survives restarts.
//   NAME.status  what the worker says it does (attach: "block", "poll ..."),
//                written by the worker, removed before each (re)start.
//
// Supervision: a worker that dies (exit, crash, kill -9) is started again
// after 100 ms, doubling up to 3.2 s while it keeps dying young (within
// 10 s of its start); the fifth young death in a row marks it failed,
// reported in the listing with the reason, and not restarted. The
// supervisor then waits for stop(). Its worker has PR_SET_PDEATHSIG
// SIGKILL: killing the supervisor takes the worker along (nothing runs
// unsupervised), and the entry is listed failed ("its supervisor died")
// until stop() or a new start() clears it. A supervisor whose lock file
// was removed under it (the runtime directory went) stops its worker and
// exits without touching the files: nobody could find or stop it.
//
// The protocol of a kind that speaks it (attach): fd 3 is the ready pipe,
// where the worker writes "ok\n" once it works, or "ERRNO why\n" and exits;
// SIGUSR1 means "read conf() again"; report() publishes its status. The
// first start's answer is start()'s (an error leaves nothing behind); a
// restarted worker that fails so counts as a death. A kind that does not
// speak it (program) is ready once its program runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/shm.h"

namespace unetmap::worker {

enum class State : uint8_t { kStarting, kRunning, kRestarting, kFailed, kStopping };
const char* state_name(State s);

struct Spec {
  std::string name;               // 1..63 of [A-Za-z0-9_.:@^{}+-], not starting with '.'
  std::string kind;               // "attach", "vhost", "program"
  std::vector<std::string> args;  // the kind's arguments
};

// A kind of worker: what runs it and which arguments it takes. A port
// type's kind lives in its folder (NAME_worker_kind(), vale: attach,
// vhost: vhost) and has one line in the table of src/ports/ports.cc;
// `program` (any absolute path) is the service's own.
struct Kind {
  const char* name;
  const char* program;  // next to libnetmap.so; nullptr: the first argument
  const char* env;      // a variable naming another program, or nullptr
  bool protocol;        // ready line on fd 3, SIGUSR1, conf and status
  int (*check)(const std::vector<std::string>& args, std::string* why);  // 0 or EINVAL with *why
};
// The kinds of the port types (src/ports/ports.cc), then nullptr.
const Kind* const* port_kinds();
// Letters, digits and '_' only (a switch's or a port's name in arguments).
bool is_word(const std::string& s);

struct Info {
  Spec spec;
  State state = State::kFailed;
  bool supervised = false;  // its supervisor lives (holds the lock)
  ProcId supervisor;
  ProcId pid;               // the worker process now (empty: none)
  uint32_t restarts = 0;
  int exit_status = -1;     // how the last worker process ended: its exit
  int exit_signal = 0;      // status, or the signal that killed it
  uint64_t since = 0;       // wall-clock seconds of the last change of state
  std::string reason;       // failed, restarting: why
  std::string log;          // path of its log file
  std::string conf, status;
};

// Start worker spec.name and wait until it is ready or has failed (at
// most 20 s). 0, or an errno value with *why: EINVAL (a bad name, kind or
// argument), EBUSY (a worker of that name runs; a failed one is replaced),
// ENOENT (no program), or the worker's own error.
int start(const Spec& spec, std::string* why);
// Stop it (SIGTERM, SIGKILL after 5 s), wait until its supervisor is gone
// and remove its files. ENOENT if there is none.
int stop(const std::string& name, std::string* why);
// The health check: what the entry says and whether its supervisor lives.
// ENOENT if there is none.
int get(const std::string& name, Info* out, std::string* why);
// Every entry, by name.
int list(std::vector<Info>* out, std::string* why);

// Ask a running worker of a kind that speaks the protocol for `conf`
// (EEXIST if it has one: clear it first) and wait (at most 5 s) until its
// status is `ack`. EIO if it did not acknowledge (the request is taken
// back), ESRCH if the worker is not running, EOPNOTSUPP for other kinds.
int configure(const std::string& name, const std::string& conf, const std::string& ack,
              std::string* why);
// Clear it (ENOENT if there was none) and wait for `ack`.
int unconfigure(const std::string& name, const std::string& ack, std::string* why);

// "exit 3", "signal 9 (Killed)", or "-" if no worker process ended yet.
std::string describe_exit(const Info& info);

// Inside a worker process (kinds that speak the protocol).
namespace self {
// The name of this worker ("" when not started by the service).
const std::string& name();
// The client's request (NAME.conf), "" if none.
std::string conf();
// Publish this worker's status (NAME.status).
void report(const std::string& status);
}  // namespace self

// main() of unetmap-worker, the supervisor: "--supervise NAME KIND ARGS...",
// run by start() with the ready pipe on fd 3.
int supervisor_main(int argc, char** argv);

}  // namespace unetmap::worker
