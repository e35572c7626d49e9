// ipfw's commands on a Ruleset: what the `ipfw` tool sends to kipfw over
// its control socket and what a ruleset file (kipfw -f) holds, one
// command a line, with or without the leading "ipfw".
//   add [N] [set S] [prob P] ACTION ...     delete [set] N ...
//   list|show [N ...]                       zero [N ...]      flush
//   set enable|disable N ... | set show
//   table N add ADDR[/LEN] [VALUE] | table N delete ADDR[/LEN]
//   table N flush | table N list
//   pipe|queue|sched ... (dummynet.h)
#pragma once

#include <string>
#include <vector>

#include "ipfw/dummynet.h"
#include "ipfw/ruleset.h"

namespace unetmap::ipfw {

// Run one command (flags -q, -S before it). *out gets what ipfw prints (list, show, the rule
// added); false with *err (its first word is the command's) on a bad
// command, which changes nothing.
// pipe, queue and sched go to dn (refused without one).
bool run_command(Ruleset& rs, const std::vector<std::string>& words, std::string* out, std::string* err,
                 Dummynet* dn = nullptr);

// ipfw's log line for packet p matched by rule r:
// "ipfw: 100 Deny TCP 10.0.0.1:1234 10.0.0.2:22 in via netmap:eth0".
std::string log_line(const Rule& r, const Packet& p, const Where& w);

// The rules as `ipfw show` prints them: number, packets, bytes, rule.
// with_set: each rule's set too (ipfw -S).
std::string show_rules(const Ruleset& rs, const std::vector<uint32_t>& only, bool counters, bool with_set = false);

}  // namespace unetmap::ipfw
