#include "ipfw/ruleset.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <algorithm>

namespace unetmap::ipfw {
namespace {

constexpr uint64_t kSec = 1000000000ull;
// ipfw's dynamic rule lifetimes (net.inet.ip.fw.dyn_*_lifetime).
constexpr uint64_t kSynLife = 20 * kSec, kAckLife = 300 * kSec, kFinLife = 1 * kSec;
constexpr uint64_t kUdpLife = 10 * kSec, kShortLife = 5 * kSec;

bool in_ranges(const std::vector<Range>& rs, uint32_t v) {
  for (const Range& r : rs)
    if (v >= r.lo && v <= r.hi) return true;
  return false;
}

bool masked_equal(const Addr& a, const uint8_t* x) {
  const uint32_t n = a.v6 ? 16 : 4;
  for (uint32_t k = 0; k < n; k++)
    if ((x[k] & a.m[k]) != a.a[k]) return false;
  return true;
}

uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

}  // namespace

size_t Ruleset::KeyHash::operator()(const Key& k) const { return size_t(mix(k.w[0] ^ mix(k.w[1]))); }

bool Ruleset::FlowKey::operator==(const FlowKey& o) const {
  return proto == o.proto && ipv == o.ipv && pa == o.pa && pb == o.pb && memcmp(a, o.a, 16) == 0 &&
         memcmp(b, o.b, 16) == 0;
}

size_t Ruleset::FlowHash::operator()(const FlowKey& k) const {
  uint64_t w[4];
  memcpy(w, k.a, 16);
  memcpy(w + 2, k.b, 16);
  uint64_t h = seed;
  for (uint64_t x : w) h = mix(h ^ x) + seed;
  return size_t(mix(h ^ (uint64_t(k.pa) << 32 | uint64_t(k.pb) << 16 | k.proto)));
}

uint64_t Ruleset::random_seed() {
  uint64_t s = 0;
  if (getrandom(&s, sizeof s, GRND_NONBLOCK) != sizeof s) s = uint64_t(time(nullptr)) * 0x9e3779b97f4a7c15ull;
  return s | 1;
}

void Ruleset::reindex() {
  by_id_.clear();
  for (size_t i = 0; i < rules_.size(); i++) by_id_[rules_[i].id] = i;
  out_rules_ = false;
  for (const Rule& r : rules_)
    for (const Option& o : r.opts)
      if (o.kind == Option::kOut || o.kind == Option::kXmit) out_rules_ = true;
}

Ruleset::Ruleset(bool default_allow) {
  Rule d;
  d.num = kDefaultRule;
  d.set = 31;
  d.action = default_allow ? Action::kAllow : Action::kDeny;
  d.id = next_id_++;
  rules_.push_back(d);
  reindex();
  rng_ = random_seed();  // prob: a different draw each run
}

size_t Ruleset::index_from(uint32_t num) const {
  return size_t(std::lower_bound(rules_.begin(), rules_.end(), num,
                                 [](const Rule& r, uint32_t n) { return r.num < n; }) -
                rules_.begin());
}

bool Ruleset::add(Rule r, std::string* err, uint32_t* num) {
  if (r.num == 0) {
    const uint32_t last = rules_.size() > 1 ? rules_[rules_.size() - 2].num : 0;
    r.num = last + kAutoStep < kDefaultRule ? last + kAutoStep : last + 1;
    if (r.num >= kDefaultRule) {
      *err = "no rule number left after " + std::to_string(last);
      return false;
    }
  }
  if (r.num >= kDefaultRule) {
    *err = "the default rule " + std::to_string(kDefaultRule) + " cannot be changed";
    return false;
  }
  if (r.action == Action::kSkipto && r.arg <= r.num) {
    *err = "skipto " + std::to_string(r.arg) + " must go forward from rule " + std::to_string(r.num);
    return false;
  }
  r.packets = r.bytes = r.last_ns = 0;
  r.id = next_id_++;
  if (num) *num = r.num;
  rules_.insert(rules_.begin() + long(index_from(r.num + 1)), std::move(r));  // after its equals
  reindex();
  return true;
}

bool Ruleset::remove(uint32_t n) {
  if (n >= kDefaultRule) return false;
  const size_t before = rules_.size();
  rules_.erase(std::remove_if(rules_.begin(), rules_.end(), [n](const Rule& r) { return r.num == n; }),
               rules_.end());
  reindex();
  for (auto it = dyn_.begin(); it != dyn_.end();) it = by_id_.count(it->second.rule) ? std::next(it) : dyn_.erase(it);
  return rules_.size() != before;
}

void Ruleset::remove_set(uint32_t s) {
  std::vector<uint32_t> gone;
  for (const Rule& r : rules_)
    if (r.set == s && r.num != kDefaultRule) gone.push_back(r.num);
  for (uint32_t n : gone) remove(n);
}

// As FreeBSD's flush: every rule but those of set 31 (the default rule's).
void Ruleset::flush() {
  rules_.erase(std::remove_if(rules_.begin(), rules_.end(), [](const Rule& r) { return r.set != 31; }), rules_.end());
  dyn_.clear();
  reindex();
}

void Ruleset::zero(uint32_t n) {
  for (Rule& r : rules_)
    if (n == 0 || r.num == n) r.packets = r.bytes = r.last_ns = r.logged = 0;
}

void Ruleset::reset_log(uint32_t n) {
  for (Rule& r : rules_)
    if (n == 0 || r.num == n) r.logged = 0;
}

void Ruleset::enable_set(uint32_t s, bool on) {
  if (s >= 31) return;  // set 31 (the default rule's) is always on
  if (on) disabled_sets_ &= ~(1u << s);
  else disabled_sets_ |= 1u << s;
}

// ---- tables ----

Ruleset::Key Ruleset::masked(const uint8_t* a, uint32_t bytes, uint32_t len) {
  uint8_t b[16] = {};
  for (uint32_t k = 0; k < bytes; k++) b[k] = a[k] & prefix_byte(len, k);
  Key key;
  memcpy(key.w, b, 16);
  return key;
}

bool Ruleset::table_add(uint32_t t, const Addr& a, uint32_t value, std::string* err) {
  const uint32_t bytes = a.v6 ? 16 : 4;
  const uint32_t len = prefix_len(a.m, bytes);
  const Key want = masked(a.m, bytes, len);
  Key mk;
  memcpy(mk.w, a.m, 16);
  if (!(mk == want) && !(len == 0 && mk.w[0] == 0 && mk.w[1] == 0)) {
    *err = "a table entry takes a prefix (ADDR/LEN), not a mask";
    return false;
  }
  Table& tb = tables_[t];
  const int f = a.v6;
  tb.exact[f][len][masked(a.a, bytes, len)] = value;
  if (std::find(tb.lens[f].begin(), tb.lens[f].end(), uint8_t(len)) == tb.lens[f].end()) {
    tb.lens[f].push_back(uint8_t(len));
    std::sort(tb.lens[f].rbegin(), tb.lens[f].rend());
  }
  return true;
}

bool Ruleset::table_delete(uint32_t t, const Addr& a) {
  auto it = tables_.find(t);
  if (it == tables_.end()) return false;
  const uint32_t bytes = a.v6 ? 16 : 4;
  const uint32_t len = prefix_len(a.m, bytes);
  Table& tb = it->second;
  const int f = a.v6;
  if (tb.exact[f][len].erase(masked(a.a, bytes, len)) == 0) return false;
  if (tb.exact[f][len].empty()) tb.lens[f].erase(std::find(tb.lens[f].begin(), tb.lens[f].end(), uint8_t(len)));
  return true;
}

void Ruleset::table_flush(uint32_t t) { tables_.erase(t); }

std::string Ruleset::table_list(uint32_t t) const {
  auto it = tables_.find(t);
  if (it == tables_.end()) return "";
  std::vector<std::pair<std::string, std::string>> lines;
  for (int f = 0; f < 2; f++)
    for (uint32_t len = 0; len <= (f ? 128u : 32u); len++)
      for (const auto& [k, v] : it->second.exact[f][len]) {
        char b[INET6_ADDRSTRLEN];
        inet_ntop(f ? AF_INET6 : AF_INET, k.w, b, sizeof b);
        const std::string s = std::string(b) + "/" + std::to_string(len);
        lines.push_back({s, s + " " + std::to_string(v) + "\n"});
      }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const auto& l : lines) out += l.second;
  return out;
}

bool Ruleset::table_lookup(uint32_t t, const uint8_t* a, uint8_t ipv, uint32_t* value) const {
  auto it = tables_.find(t);
  if (it == tables_.end()) return false;
  const int f = ipv == 6;
  const uint32_t bytes = f ? 16 : 4;
  for (uint8_t len : it->second.lens[f]) {
    const auto& m = it->second.exact[f][len];
    auto e = m.find(masked(a, bytes, len));
    if (e != m.end()) {
      *value = e->second;
      return true;
    }
  }
  return false;
}

// ---- matching ----

bool Ruleset::addr_matches(const AddrSet& s, const uint8_t* a, uint8_t ipv) const {
  bool m = false;
  switch (s.kind) {
    case AddrSet::kAny: m = true; break;
    case AddrSet::kMe:  // the host's addresses, IPv4 and IPv6 (me6: IPv6 only)
    case AddrSet::kMe6:
      for (const Addr& x : me_)
        if (x.v6 == (ipv == 6) && (s.kind == AddrSet::kMe || x.v6) && masked_equal(x, a)) m = true;
      break;
    case AddrSet::kList:
      for (const Addr& x : s.items)
        if (x.v6 == (ipv == 6) && masked_equal(x, a)) {
          m = true;
          break;
        }
      break;
    case AddrSet::kTable: {
      uint32_t v = 0;
      m = table_lookup(s.table, a, ipv, &v) && (!s.has_value || v == s.value);
      break;
    }
  }
  return m != s.neg;
}

bool Ruleset::option_matches(const Option& o, const Packet& p, const Where& w) const {
  bool m = false;
  switch (o.kind) {
    case Option::kIn: m = !w.out; break;
    case Option::kOut: m = w.out; break;
    case Option::kRecv: m = w.recv && *w.recv == o.port; break;
    case Option::kXmit: m = w.out && w.xmit && *w.xmit == o.port; break;
    case Option::kVia: m = (w.out ? w.xmit : w.recv) && *(w.out ? w.xmit : w.recv) == o.port; break;
    case Option::kEstablished: m = p.has_tcp && (p.tcp_flags & 0x14); break;
    case Option::kSetup: m = p.has_tcp && (p.tcp_flags & 0x12) == 0x02; break;
    case Option::kTcpFlags:
      m = p.has_tcp && (p.tcp_flags & o.flags_set) == o.flags_set && !(p.tcp_flags & o.flags_clear);
      break;
    case Option::kIcmpTypes: m = p.has_icmp && p.proto == 1 && in_ranges(o.ranges, p.icmp_type); break;
    case Option::kIcmp6Types: m = p.has_icmp && p.proto == 58 && in_ranges(o.ranges, p.icmp_type); break;
    case Option::kFrag: m = p.frag; break;
    case Option::kIpLen: m = p.ipv && in_ranges(o.ranges, p.ip_len); break;
    case Option::kIpTtl: m = p.ipv && in_ranges(o.ranges, p.ttl); break;
    case Option::kDscp: m = p.ipv && in_ranges(o.ranges, p.dscp); break;
    case Option::kIpVersion: m = p.ipv && in_ranges(o.ranges, p.ipv); break;
    case Option::kSrcPort: m = p.has_ports && in_ranges(o.ranges, p.sport); break;
    case Option::kDstPort: m = p.has_ports && in_ranges(o.ranges, p.dport); break;
    case Option::kProto:
      m = o.proto == kProtoAny || (o.proto == kProtoIp4 && p.ipv == 4) || (o.proto == kProtoIp6 && p.ipv == 6) ||
          (o.proto >= 0 && p.proto == o.proto);
      break;
    case Option::kSrcIp: m = p.ipv && addr_matches(o.addrs, p.src, p.ipv); break;
    case Option::kDstIp: m = p.ipv && addr_matches(o.addrs, p.dst, p.ipv); break;
    case Option::kMac:
      m = p.len >= 12;
      for (int i = 0; m && i < 12; i++) m = (p.frame[i] & o.mac_mask[i]) == o.mac[i];
      break;
  }
  return m != o.neg;
}

bool Ruleset::matches(const Rule& r, const Packet& p, const Where& w) const {
  if (r.proto == kProtoIp4 && p.ipv != 4) return false;
  if (r.proto == kProtoIp6 && p.ipv != 6) return false;
  if (r.proto >= 0 && p.proto != r.proto) return false;
  if (!addr_matches(r.src, p.src, p.ipv) || !addr_matches(r.dst, p.dst, p.ipv)) return false;
  if (!r.sports.empty() && (!p.has_ports || in_ranges(r.sports, p.sport) == r.sports_neg)) return false;
  if (!r.dports.empty() && (!p.has_ports || in_ranges(r.dports, p.dport) == r.dports_neg)) return false;
  for (const Option& o : r.opts)
    if (!option_matches(o, p, w)) return false;
  return true;
}

// ---- dynamic states ----

Ruleset::FlowKey Ruleset::flow_of(const Packet& p, bool* reversed) {
  FlowKey k{};
  k.proto = p.proto;
  k.ipv = p.ipv;
  const uint32_t n = p.ipv == 6 ? 16 : 4;
  const uint16_t sp = p.has_ports ? p.sport : 0, dp = p.has_ports ? p.dport : 0;
  const int c = memcmp(p.src, p.dst, n);
  *reversed = c > 0 || (c == 0 && sp > dp);
  memcpy(k.a, *reversed ? p.dst : p.src, n);
  memcpy(k.b, *reversed ? p.src : p.dst, n);
  k.pa = *reversed ? dp : sp;
  k.pb = *reversed ? sp : dp;
  return k;
}

// ipfw's lifetimes: a TCP flow is short-lived until both sides sent SYN,
// long-lived once established, short again when both sent FIN or one RST.
uint64_t Ruleset::lifetime_ns(const Packet& p, State* s, bool reversed) {
  if (p.proto != 6) return p.proto == 17 ? kUdpLife : kShortLife;
  if (!p.has_tcp) return kShortLife;
  if (p.tcp_flags & 0x04) s->seen |= 16;
  if (p.tcp_flags & 0x01) s->seen |= reversed ? 8 : 4;
  if (p.tcp_flags & 0x02) s->seen |= reversed ? 2 : 1;
  if ((s->seen & 16) || (s->seen & 12) == 12) return kFinLife;
  return (s->seen & 3) == 3 ? kAckLife : kSynLife;
}

long Ruleset::state_lookup(const Packet& p, const Where& w) {
  if (dyn_.empty()) return -1;
  bool rev;
  auto it = dyn_.find(flow_of(p, &rev));
  if (it == dyn_.end()) return -1;
  State& s = it->second;
  auto r = by_id_.find(s.rule);
  if (s.expire_ns < w.now_ns || r == by_id_.end()) {
    dyn_.erase(it);
    return -1;
  }
  s.expire_ns = w.now_ns + lifetime_ns(p, &s, rev);
  s.packets++;
  s.bytes += p.wire_len;
  return long(r->second);
}

// false: no room for the state (the packet is denied, as ipfw does).
bool Ruleset::state_make(const Rule& r, const Packet& p, const Where& w) {
  bool rev;
  const FlowKey k = flow_of(p, &rev);
  auto it = dyn_.find(k);
  if (it == dyn_.end()) {
    if (dyn_.size() >= kMaxStates && w.now_ns - last_full_expire_ > 1000000000ull) {
      expire(w.now_ns);  // at most once a second: a full table is not a full scan per packet
      last_full_expire_ = w.now_ns;
    }
    if (dyn_.size() >= kMaxStates) return false;
    it = dyn_.emplace(k, State{r.id, 0, 0, 0, 0}).first;
  }
  it->second.rule = r.id;
  it->second.expire_ns = w.now_ns + lifetime_ns(p, &it->second, rev);
  return true;
}

void Ruleset::expire(uint64_t now_ns) {
  for (auto it = dyn_.begin(); it != dyn_.end();) it = it->second.expire_ns < now_ns ? dyn_.erase(it) : std::next(it);
}

Verdict Ruleset::check(const Packet& p, const Where& w) {
  Verdict v;
  if (p.truncated) {  // IP whose headers are not all there: nothing can judge it
    v.action = Action::kDeny;
    return v;
  }
  if (!p.ipv) return v;  // rules are for IP: the rest passes (kipfw counts it)
  bool looked = false;  // the states were looked at (first check-state or keep-state)
  for (size_t i = 0; i < rules_.size(); i++) {
    Rule* r = &rules_[i];
    if (disabled_sets_ >> r->set & 1) continue;
    bool hit = false;
    if ((r->action == Action::kCheckState || r->keep_state) && !looked) {
      looked = true;
      const long at = state_lookup(p, w);
      if (at >= 0) {  // the flow's state: its rule's action, as if it matched
        i = size_t(at);
        r = &rules_[i];
        hit = true;
      }
    }
    if (!hit) {
      if (r->action == Action::kCheckState || !matches(*r, p, w)) continue;
      if (r->prob) {
        rng_ ^= rng_ << 13, rng_ ^= rng_ >> 7, rng_ ^= rng_ << 17;
        if (uint32_t(rng_ >> 32) >= r->prob) continue;
      }
    }
    r->packets++;
    r->bytes += p.wire_len;
    r->last_ns = w.now_ns;
    if (r->log && log_fn_ && r->logged < (r->log_amount ? r->log_amount : kDefaultLogAmount)) {
      r->logged++;
      log_fn_(log_ctx_, *r, p, w);
    }
    if (!hit && r->keep_state && !state_make(*r, p, w)) {
      v.action = Action::kDeny;  // no room for its state
      v.rule = r->num;
      return v;
    }
    if (r->action == Action::kCount) continue;
    if (r->action == Action::kSkipto) {
      const size_t j = index_from(r->arg);
      if (j <= i) continue;  // never backwards (add() refuses it anyway)
      i = j - 1;
      continue;
    }
    v.action = r->action;
    v.arg = r->arg;
    v.rule = r->num;
    v.log = r->log;
    return v;
  }
  v.action = Action::kDeny;  // not reached: the default rule matches everything
  v.rule = kDefaultRule;
  return v;
}

}  // namespace unetmap::ipfw
