// The ruleset kipfw applies: rules in number order ending with the default
// rule 65535, lookup tables, and the dynamic states that keep-state makes.
//
// check() runs a packet through it as FreeBSD's ipfw does: the first rule
// that matches decides, count goes on, skipto jumps forward, a
// keep-state rule that matches makes a state so the flow's packets in
// both directions match it at the first check-state or keep-state rule.
// Sets 0..31 can be disabled (`ipfw set disable N`); the default rule's
// set 31 cannot.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "ipfw/packet.h"
#include "ipfw/rules.h"

namespace unetmap::ipfw {

// Where a packet is when it is checked (its direction and ports).
struct Where {
  bool out = false;                     // false: coming in on recv; true: going out on xmit
  const std::string* recv = nullptr;    // the port it came in on
  const std::string* xmit = nullptr;    // the port it goes out on (known to kipfw both ways)
  uint64_t now_ns = 0;                  // a monotonic clock
};

struct Verdict {
  Action action = Action::kAllow;  // kAllow, kDeny, kReject, kReset, kUnreach, kPipe, kQueue
  uint32_t arg = 0;                // pipe or queue number; unreach code
  uint32_t rule = 0;               // the rule that decided
  bool log = false;
};

class Ruleset {
 public:
  explicit Ruleset(bool default_allow = false);

  // Add r (r.num 0: after the last rule, by kAutoStep). false with *err if
  // the number is the default rule's, or a table is unusable.
  bool add(Rule r, std::string* err, uint32_t* num = nullptr);
  // Remove every rule numbered n (false if none).
  bool remove(uint32_t n);
  // Remove the rules of set s.
  void remove_set(uint32_t s);
  void flush();          // every rule but the default one; states go too
  void zero(uint32_t n); // counters of rule n (0: of every rule)
  void enable_set(uint32_t s, bool on);
  bool set_enabled(uint32_t s) const { return !(disabled_sets_ >> s & 1); }
  uint32_t disabled_sets() const { return disabled_sets_; }
  const std::vector<Rule>& rules() const { return rules_; }
  // Rules that look at a packet on its way out (out, xmit): kipfw then
  // checks it twice, on the way in and on the way out, as a gateway does.
  bool has_out_rules() const { return out_rules_; }

  // Tables: table N add ADDR[/LEN] [VALUE], delete, flush, list.
  bool table_add(uint32_t t, const Addr& a, uint32_t value, std::string* err);
  bool table_delete(uint32_t t, const Addr& a);
  void table_flush(uint32_t t);
  std::string table_list(uint32_t t) const;
  // The host's own addresses, for `me` and `me6`.
  void set_me(std::vector<Addr> addrs) { me_ = std::move(addrs); }

  Verdict check(const Packet& p, const Where& w);

  // Called for each packet a rule with `log` matches, up to its logamount
  // (ipfw's log lines; kipfw writes them to stderr or syslog).
  using Logger = void (*)(void* ctx, const Rule& r, const Packet& p, const Where& w);
  void set_logger(Logger fn, void* ctx) { log_fn_ = fn, log_ctx_ = ctx; }
  void reset_log(uint32_t n);  // the log counts of rule n (0: every rule)

  size_t states() const { return dyn_.size(); }
  void expire(uint64_t now_ns);  // drop states past their lifetime

  // Cap on dynamic states: a new flow past it is denied (fail closed).
  static constexpr size_t kMaxStates = 65536;

 private:
  struct Key {
    uint64_t w[2];
    bool operator==(const Key& o) const { return w[0] == o.w[0] && w[1] == o.w[1]; }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  struct Table {
    // Per family (0: IPv4, 1: IPv6) and prefix length: masked address -> value.
    std::unordered_map<Key, uint32_t, KeyHash> exact[2][129];
    std::vector<uint8_t> lens[2];  // lengths present, longest first
  };
  static Key masked(const uint8_t* a, uint32_t bytes, uint32_t len);
  struct FlowKey {
    uint8_t proto, ipv;
    uint8_t a[16], b[16];
    uint16_t pa, pb;
    bool operator==(const FlowKey& o) const;
  };
  struct FlowHash {
    uint64_t seed;  // random per Ruleset: flows a sender chooses do not collide at will
    size_t operator()(const FlowKey& k) const;
  };
  struct State {
    uint64_t rule;      // the id of the keep-state rule that made it
    uint64_t expire_ns;
    uint8_t seen;       // TCP: SYN from a (1), from b (2); FIN from a (4), from b (8); RST (16)
    uint64_t packets, bytes;
  };

  bool matches(const Rule& r, const Packet& p, const Where& w) const;
  bool option_matches(const Option& o, const Packet& p, const Where& w) const;
  bool addr_matches(const AddrSet& s, const uint8_t* a, uint8_t ipv) const;
  bool table_lookup(uint32_t t, const uint8_t* a, uint8_t ipv, uint32_t* value) const;
  size_t index_from(uint32_t num) const;  // first rule numbered >= num
  static FlowKey flow_of(const Packet& p, bool* reversed);
  // The index of the rule whose state p belongs to, or -1.
  long state_lookup(const Packet& p, const Where& w);
  bool state_make(const Rule& r, const Packet& p, const Where& w);
  static uint64_t lifetime_ns(const Packet& p, State* s, bool reversed);

  std::vector<Rule> rules_;
  std::map<uint32_t, Table> tables_;
  std::unordered_map<FlowKey, State, FlowHash> dyn_{16, FlowHash{random_seed()}};
  static uint64_t random_seed();
  std::vector<Addr> me_;
  uint32_t disabled_sets_ = 0;
  bool out_rules_ = false;
  uint64_t rng_ = 0x9e3779b97f4a7c15ull;
  uint64_t next_id_ = 1;
  Logger log_fn_ = nullptr;
  void* log_ctx_ = nullptr;
  uint64_t last_full_expire_ = 0;
  std::unordered_map<uint64_t, size_t> by_id_;  // rule id -> index in rules_
  void reindex();
};

}  // namespace unetmap::ipfw
