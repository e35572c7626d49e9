#include "ipfw/command.h"

#include <arpa/inet.h>

#include <cinttypes>
#include <cstdio>

namespace unetmap::ipfw {
namespace {

bool numbers(const std::vector<std::string>& w, size_t from, uint32_t max, std::vector<uint32_t>* out,
             std::string* err) {
  for (size_t k = from; k < w.size(); k++) {
    uint32_t v;
    if (!parse_number(w[k], max, &v)) {
      *err = "invalid rule number `" + w[k] + "'";
      return false;
    }
    out->push_back(v);
  }
  return true;
}

bool table_cmd(Ruleset& rs, const std::vector<std::string>& w, std::string* out, std::string* err) {
  uint32_t t;
  if (w.size() < 3 || !parse_number(w[1], 65535, &t)) {
    *err = "table: usage: table N add|delete|flush|list ...";
    return false;
  }
  const std::string& op = w[2];
  if (op == "flush" || op == "list") {
    if (op == "flush") rs.table_flush(t);
    else *out = rs.table_list(t);
    return true;
  }
  if ((op != "add" && op != "delete") || w.size() < 4 || w.size() > 5 || (op == "delete" && w.size() != 4)) {
    *err = "table: usage: table N add ADDR[/LEN] [VALUE] | table N delete ADDR[/LEN]";
    return false;
  }
  // An address parsed as a rule's source is: reuse the rule grammar.
  Rule r;
  std::string why;
  if (!parse_rule({"allow", "ip", "from", w[3], "to", "any"}, &r, &why) || r.src.kind != AddrSet::kList ||
      r.src.items.size() != 1 || r.src.neg) {
    *err = "table: bad address `" + w[3] + "'";
    return false;
  }
  if (op == "delete") {
    if (!rs.table_delete(t, r.src.items[0])) {
      *err = "table: " + w[3] + " is not in table " + w[1];
      return false;
    }
    return true;
  }
  uint32_t value = 0;
  if (w.size() == 5 && !parse_number(w[4], ~0u, &value)) {
    *err = "table: bad value `" + w[4] + "'";
    return false;
  }
  if (!rs.table_add(t, r.src.items[0], value, &why)) {
    *err = "table: " + why;
    return false;
  }
  return true;
}

bool set_cmd(Ruleset& rs, const std::vector<std::string>& w, std::string* out, std::string* err) {
  if (w.size() == 2 && w[1] == "show") {
    std::string en = "enable", dis = "disable";
    for (uint32_t s = 0; s < 32; s++) (rs.set_enabled(s) ? en : dis) += " " + std::to_string(s);
    *out = (rs.disabled_sets() ? dis + " " : "") + en + "\n";
    return true;
  }
  bool on = true;
  bool any = false;
  for (size_t k = 1; k < w.size(); k++) {
    uint32_t s;
    if (w[k] == "enable") on = true;
    else if (w[k] == "disable") on = false;
    else if (parse_number(w[k], 31, &s)) rs.enable_set(s, on), any = true;
    else {
      *err = "set: invalid set number `" + w[k] + "'";
      return false;
    }
  }
  if (!any) {
    *err = "set: usage: set enable|disable N ... | set show";
    return false;
  }
  return true;
}

bool fail(std::string* err, const std::string& m) {
  *err = m;
  return false;
}

}  // namespace

std::string log_line(const Rule& r, const Packet& p, const Where& w) {
  static const char* const kAction[] = {"Accept", "Deny", "Reject", "Reset", "Unreach", "Count",
                                        "Skipto", "Pipe",  "Queue",  "Check-state"};
  std::string s = "ipfw: " + std::to_string(r.num) + " " + kAction[int(r.action)];
  if (r.action == Action::kSkipto || r.action == Action::kPipe || r.action == Action::kQueue ||
      r.action == Action::kUnreach)
    s += " " + std::to_string(r.arg);
  char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
  const int fam = p.ipv == 6 ? AF_INET6 : AF_INET;
  inet_ntop(fam, p.src, a, sizeof a);
  inet_ntop(fam, p.dst, b, sizeof b);
  const char* proto = p.proto == 6 ? "TCP" : p.proto == 17 ? "UDP" : p.proto == 1 ? "ICMP" : p.proto == 58 ? "ICMPv6" : nullptr;
  s += " " + (proto ? std::string(proto) : "P:" + std::to_string(p.proto));
  if (p.has_ports) {
    const bool v6 = p.ipv == 6;
    s += std::string(" ") + (v6 ? "[" : "") + a + (v6 ? "]" : "") + ":" + std::to_string(p.sport) + " " +
         (v6 ? "[" : "") + b + (v6 ? "]" : "") + ":" + std::to_string(p.dport);
  } else {
    s += std::string(" ") + a + " " + b;
    if (p.has_icmp) s += " type " + std::to_string(p.icmp_type);
  }
  const std::string* port = w.out ? w.xmit : w.recv;
  s += std::string(w.out ? " out" : " in") + (port ? " via " + *port : "");
  if (p.frag) s += " (frag)";
  return s;
}

std::string show_rules(const Ruleset& rs, const std::vector<uint32_t>& only, bool counters, bool with_set) {
  int pw = 1, bw = 1;
  char b[64];
  for (const Rule& r : rs.rules()) {
    pw = std::max(pw, snprintf(b, sizeof b, "%" PRIu64, r.packets));
    bw = std::max(bw, snprintf(b, sizeof b, "%" PRIu64, r.bytes));
  }
  std::string out;
  for (const Rule& r : rs.rules()) {
    bool want = only.empty();
    for (uint32_t n : only) want |= n == r.num;
    if (!want) continue;
    std::string line = format_rule(r, with_set);
    if (counters) {
      snprintf(b, sizeof b, " %*" PRIu64 " %*" PRIu64, pw, r.packets, bw, r.bytes);
      line.insert(5, b);
    }
    out += line + "\n";
  }
  return out;
}

bool run_command(Ruleset& rs, const std::vector<std::string>& words, std::string* out, std::string* err,
                 Dummynet* dn) {
  out->clear();
  std::vector<std::string> w = words;
  if (!w.empty() && w[0] == "ipfw") w.erase(w.begin());
  bool with_set = false;
  // -q (quiet) and -f (no confirmation) change nothing here; -S shows sets.
  while (!w.empty() && (w[0] == "-q" || w[0] == "-S" || w[0] == "-f")) {
    with_set |= w[0] == "-S";
    w.erase(w.begin());
  }
  if (w.empty()) {
    *err = "missing command";
    return false;
  }
  const std::string cmd = w[0];
  std::vector<uint32_t> nums;
  if (cmd == "add") {
    Rule r;
    if (!parse_rule(std::vector<std::string>(w.begin() + 1, w.end()), &r, err)) return false;
    if ((r.action == Action::kPipe || r.action == Action::kQueue) && !dn)
      return fail(err, "add: pipe and queue actions need dummynet");
    uint32_t num;
    if (!rs.add(r, err, &num)) return false;
    *out = show_rules(rs, {num}, false, with_set);
    return true;
  }
  if (cmd == "delete") {
    if (w.size() >= 2 && w[1] == "set") {
      if (!numbers(w, 2, 31, &nums, err) || nums.empty()) return fail(err, "delete set: a set number, 0..31");
      for (uint32_t s : nums) rs.remove_set(s);
      return true;
    }
    if (!numbers(w, 1, kDefaultRule, &nums, err)) return false;
    if (nums.empty()) return fail(err, "delete: rule number(s) needed");
    for (uint32_t n : nums) {  // all found, or nothing deleted
      bool found = false;
      for (const Rule& r : rs.rules()) found |= r.num == n && n != kDefaultRule;
      if (!found) return fail(err, "delete: rule " + std::to_string(n) + " not found");
    }
    for (uint32_t n : nums) rs.remove(n);
    return true;
  }
  if (cmd == "list" || cmd == "show") {
    if (!numbers(w, 1, kDefaultRule, &nums, err)) return false;
    *out = show_rules(rs, nums, cmd == "show", with_set);
    return true;
  }
  if (cmd == "zero" || cmd == "resetlog") {
    if (!numbers(w, 1, kDefaultRule, &nums, err)) return false;
    if (cmd == "resetlog") {
      if (nums.empty()) rs.reset_log(0);
      for (uint32_t n : nums) rs.reset_log(n);
      return true;
    }
    if (nums.empty()) rs.zero(0);
    for (uint32_t n : nums) rs.zero(n);
    *out = nums.empty() ? "Accounting cleared.\n" : "";
    return true;
  }
  if (cmd == "flush") {
    rs.flush();
    return true;
  }
  if (cmd == "set") return set_cmd(rs, w, out, err);
  if (cmd == "table") return table_cmd(rs, w, out, err);
  if (cmd == "pipe" || cmd == "queue" || cmd == "sched") {
    if (!dn) return fail(err, cmd + ": no dummynet here");
    return dn->command(w, out, err);
  }
  *err = "bad command `" + cmd + "'";
  return false;
}

}  // namespace unetmap::ipfw
