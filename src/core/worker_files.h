// What the worker service's client side (worker.cc) and its supervisor
// (supervisor.cc) share: the kind table, the files of an entry and the
// text of its state file. See worker.h for the mechanism.
#pragma once

#include <string>
#include <vector>

#include "core/worker.h"

namespace unetmap::worker::files {

// The port types' kinds and `program`; nullptr with *why naming them all.
const Kind* find_kind(const std::string& name, std::string* why);
// The program that runs a worker of this kind.
std::string program_of(const Kind& k, const Spec& spec);
// A program that lives next to libnetmap.so.
std::string beside_library(const char* program);
// Name, kind and arguments, as start() and the supervisor accept them.
int check_spec(const Spec& spec, const Kind** kind, std::string* why);

// <runtime>/workers, made and checked. 0 or errno with *why.
int dir(std::string* path, std::string* why);
std::string path(const std::string& dir, const std::string& name, const char* suffix);

// Open a file of the directory with O_NOFOLLOW and check it (owner, type,
// mode); -errno with *why.
int open_checked(const std::string& path, int flags, std::string* why, mode_t mode = 0);
// The text of a checked file ("" if missing or refused), at most 64 KiB.
std::string read_text(const std::string& path);
// Write `text` under a temporary name and publish it at `path`: rename()
// (replace), or link() (exclusive: EEXIST if there is one). 0 or errno.
int publish(const std::string& dir, const std::string& path, const std::string& text,
            bool exclusive, std::string* why);

// Is the entry's lock held (by its supervisor)? A probe with LOCK_SH.
bool lock_held(int fd);

std::string encode(const Info& info);
bool decode(const std::string& text, Info* info);

// Send sig to exactly the process `p` (pidfd: not another that got its
// pid). false if it is gone.
bool signal_proc(const ProcId& p, int sig);

// The restart policy.
constexpr int kYoungDeaths = 5;           // in a row: failed
constexpr uint64_t kYoungNs = 10'000'000'000ull;  // died within 10 s of its start
constexpr uint64_t kFirstBackoffNs = 100'000'000ull, kMaxBackoffNs = 3'200'000'000ull;
constexpr int kStopGraceMs = 5000;        // SIGTERM, then SIGKILL

}  // namespace unetmap::worker::files
