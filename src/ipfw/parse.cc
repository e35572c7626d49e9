// ipfw's rule grammar (rules.h): words in, a Rule out, and back.
#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include <cstdio>

#include "ipfw/rules.h"

namespace unetmap::ipfw {
namespace {

std::string quoted(const std::string& w) { return "`" + w + "'"; }

// unreach's codes by name (ICMP destination unreachable codes 0..15).
const char* const kCodes[] = {"net",        "host",        "protocol",      "port",
                              "needfrag",   "srcfail",     "net-unknown",   "host-unknown",
                              "isolated",   "net-prohib",  "host-prohib",   "tosnet",
                              "toshost",    "filter-prohib", "host-precedence", "precedence-cutoff"};


class Cursor {
 public:
  explicit Cursor(const std::vector<std::string>& w) : w_(w) {}
  bool done() const { return i_ >= w_.size(); }
  const std::string& peek(size_t k = 0) const {
    static const std::string none;
    return i_ + k >= w_.size() ? none : w_[i_ + k];
  }
  std::string take() { return done() ? std::string() : w_[i_++]; }
  bool accept(const char* word) {
    if (done() || w_[i_] != word) return false;
    i_++;
    return true;
  }

 private:
  const std::vector<std::string>& w_;
  size_t i_ = 0;
};

struct Parser {
  Cursor c;
  Rule* r;
  std::string* err;

  bool fail(const std::string& m) {
    *err = m;
    return false;
  }

  bool action();
  bool proto(const std::string& w, int* p);
  bool addr_set(AddrSet* s, const char* what);
  bool addr_item(const std::string& w, Addr* a);
  bool ports(std::vector<Range>* out, const std::string& w);
  bool ranges(const std::string& w, uint32_t max, std::vector<Range>* out, const char* what,
              bool (*name)(const std::string&, uint32_t*) = nullptr);
  bool port_list(std::vector<Range>* out, bool* neg);
  bool option();
  bool tcp_flags(const std::string& w, Option* o);
  bool mac(Option* o);
  bool run();
};

bool Parser::action() {
  const std::string w = c.take();
  if (w.empty()) return fail("missing action");
  if (w == "allow" || w == "accept" || w == "pass" || w == "permit") r->action = Action::kAllow;
  else if (w == "deny" || w == "drop") r->action = Action::kDeny;
  else if (w == "reject") r->action = Action::kReject;
  else if (w == "reset") r->action = Action::kReset;
  else if (w == "count") r->action = Action::kCount;
  else if (w == "check-state") r->action = Action::kCheckState;
  else if (w == "unreach") {
    r->action = Action::kUnreach;
    const std::string code = c.take();
    for (uint32_t k = 0; k < sizeof kCodes / sizeof kCodes[0]; k++)
      if (code == kCodes[k]) {
        r->arg = k;
        return true;
      }
    if (!parse_number(code, 255, &r->arg)) return fail("invalid ICMP unreachable code " + quoted(code));
  } else if (w == "skipto" || w == "pipe" || w == "queue") {
    r->action = w == "skipto" ? Action::kSkipto : w == "pipe" ? Action::kPipe : Action::kQueue;
    const std::string n = c.take();
    if (!parse_number(n, 65535, &r->arg) || r->arg == 0) return fail("illegal argument for " + w + " " + quoted(n));
  } else {
    return fail("invalid action " + quoted(w));
  }
  return true;
}

bool Parser::proto(const std::string& w, int* p) {
  uint32_t n;
  if (w == "ip" || w == "all") *p = kProtoAny;
  else if (w == "ip4" || w == "ipv4") *p = kProtoIp4;
  else if (w == "ip6" || w == "ipv6") *p = kProtoIp6;
  else if (w == "icmp6" || w == "ipv6-icmp") *p = 58;
  else if (parse_number(w, 255, &n)) *p = int(n);
  else if (const protoent* pe = getprotobyname(w.c_str())) *p = pe->p_proto;
  else if (w == "tcp") *p = 6;  // a system without /etc/protocols
  else if (w == "udp") *p = 17;
  else if (w == "icmp") *p = 1;
  else return fail("invalid protocol " + quoted(w));
  return true;
}

// a.b.c.d[/len] | a.b.c.d:mask | v6[/len]
bool Parser::addr_item(const std::string& w, Addr* a) {
  std::string host = w, mask;
  size_t cut = w.find('/');
  bool is_len = true;
  if (cut == std::string::npos && w.find('.') != std::string::npos && w.find(':') != std::string::npos) {
    cut = w.find(':');
    is_len = false;
  }
  if (cut != std::string::npos) {
    host = w.substr(0, cut);
    mask = w.substr(cut + 1);
  }
  if (inet_pton(AF_INET, host.c_str(), a->a) == 1) {
    a->v6 = false;
  } else if (inet_pton(AF_INET6, host.c_str(), a->a) == 1) {
    a->v6 = true;
  } else {
    return false;
  }
  const uint32_t bits = a->v6 ? 128 : 32;
  uint32_t len = bits;
  if (!mask.empty() && !is_len) {
    if (inet_pton(AF_INET, mask.c_str(), a->m) != 1) return false;
  } else {
    if (cut != std::string::npos && !parse_number(mask, bits, &len)) return false;
    prefix_mask(len, a->m, bits / 8);
  }
  for (uint32_t k = 0; k < 16; k++) a->a[k] &= a->m[k];
  return true;
}

bool Parser::addr_set(AddrSet* s, const char* what) {
  if (c.accept("not") || c.accept("!")) s->neg = true;
  std::string w = c.take();
  if (w.empty()) return fail(std::string("missing ") + what + " address");
  if (w == "any") s->kind = AddrSet::kAny;
  else if (w == "me") s->kind = AddrSet::kMe;
  else if (w == "me6") s->kind = AddrSet::kMe6;
  else if (w.compare(0, 6, "table(") == 0 && w.back() == ')') {
    s->kind = AddrSet::kTable;
    const std::string in = w.substr(6, w.size() - 7);
    const size_t comma = in.find(',');
    const std::string n = in.substr(0, comma);
    if (!parse_number(n, 65535, &s->table)) return fail("bad table number " + quoted(w));
    if (comma != std::string::npos) {
      s->has_value = true;
      if (!parse_number(in.substr(comma + 1), ~0u, &s->value)) return fail("bad table value " + quoted(w));
    }
  } else {
    s->kind = AddrSet::kList;
    if (w.size() > 2 && w.front() == '{' && w.back() == '}') w = w.substr(1, w.size() - 2);
    size_t at = 0;
    while (at <= w.size()) {
      const size_t comma = w.find(',', at);
      const std::string item = w.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
      Addr a;
      if (!addr_item(item, &a)) return fail(std::string("bad ") + what + " address " + quoted(item));
      s->items.push_back(a);
      if (comma == std::string::npos) break;
      at = comma + 1;
    }
  }
  return true;
}

bool service_port(const std::string& w, uint32_t* v) {
  const servent* se = getservbyname(w.c_str(), nullptr);
  if (!se) return false;
  *v = ntohs(uint16_t(se->s_port));
  return true;
}

// N | N-M | name, comma separated; each within 0..max.
bool Parser::ranges(const std::string& w, uint32_t max, std::vector<Range>* out, const char* what,
                    bool (*name)(const std::string&, uint32_t*)) {
  if (w.empty()) return fail(std::string("missing ") + what);
  size_t at = 0;
  for (;;) {
    const size_t comma = w.find(',', at);
    const std::string item = w.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    const size_t dash = item.find('-', 1);
    Range rg;
    const auto one = [&](const std::string& s, uint32_t* v) {
      return parse_number(s, max, v) || (name && name(s, v) && *v <= max);
    };
    bool ok;
    if (dash != std::string::npos && !(name && name(item, &rg.lo))) {
      ok = one(item.substr(0, dash), &rg.lo) && one(item.substr(dash + 1), &rg.hi) && rg.lo <= rg.hi;
    } else {
      ok = one(item, &rg.lo);
      rg.hi = rg.lo;
    }
    if (!ok) return fail(std::string("invalid ") + what + " " + quoted(item));
    out->push_back(rg);
    if (comma == std::string::npos) return true;
    at = comma + 1;
  }
}

// Ports after an address: present if the next word starts like one.
bool Parser::ports(std::vector<Range>* out, const std::string& w) { return ranges(w, 65535, out, "port", service_port); }

bool looks_like_ports(const std::string& w) {
  if (w.empty()) return false;
  if (w[0] >= '0' && w[0] <= '9') return true;
  const size_t comma = w.find(',');
  const size_t dash = w.find('-');
  std::string first = w.substr(0, comma < dash ? comma : dash);
  return getservbyname(first.c_str(), nullptr) != nullptr;
}

// [not] PORTS after an address, if the next word looks like ports
// (`to any not 80`; `to any not in` is an option).
bool Parser::port_list(std::vector<Range>* out, bool* neg) {
  const bool n = c.peek() == "not" || c.peek() == "!";
  if (!looks_like_ports(c.peek(n ? 1 : 0))) return true;
  if (n) c.take();
  *neg = n;
  return ports(out, c.take());
}

bool Parser::tcp_flags(const std::string& w, Option* o) {
  static const struct {
    const char* name;
    uint8_t bit;
  } kFlags[] = {{"fin", 0x01}, {"syn", 0x02}, {"rst", 0x04}, {"psh", 0x08},
                {"ack", 0x10}, {"urg", 0x20}, {"ece", 0x40}, {"cwr", 0x80}};
  if (w.empty()) return fail("missing argument for tcpflags");
  size_t at = 0;
  for (;;) {
    const size_t comma = w.find(',', at);
    std::string f = w.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    const bool clear = !f.empty() && f[0] == '!';
    if (clear) f = f.substr(1);
    bool found = false;
    for (const auto& k : kFlags)
      if (f == k.name) {
        (clear ? o->flags_clear : o->flags_set) |= k.bit;
        found = true;
      }
    if (!found) return fail("invalid tcpflags " + quoted(f));
    if (comma == std::string::npos) return true;
    at = comma + 1;
  }
}

// mac DST SRC: each any, or aa:bb:cc:dd:ee:ff[/len] or [&mask].
bool Parser::mac(Option* o) {
  for (int k = 0; k < 2; k++) {
    const std::string w = c.take();
    uint8_t* a = o->mac + 6 * k;
    uint8_t* m = o->mac_mask + 6 * k;
    if (w == "any") continue;
    std::string host = w, mask;
    size_t cut = w.find_first_of("/&");
    if (cut != std::string::npos) host = w.substr(0, cut), mask = w.substr(cut + 1);
    unsigned v[6];
    char end;
    const auto hex6 = [&](const std::string& s, unsigned* x) {
      return sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &x[0], &x[1], &x[2], &x[3], &x[4], &x[5], &end) == 6;
    };
    if (!hex6(host, v)) return fail("invalid MAC address " + quoted(w));
    for (int i = 0; i < 6; i++) a[i] = uint8_t(v[i]), m[i] = 0xff;
    if (cut != std::string::npos && w[cut] == '/') {
      uint32_t len;
      if (!parse_number(mask, 48, &len)) return fail("invalid MAC mask " + quoted(w));
      prefix_mask(len, m, 6);
    } else if (cut != std::string::npos) {
      if (!hex6(mask, v)) return fail("invalid MAC mask " + quoted(w));
      for (int i = 0; i < 6; i++) m[i] = uint8_t(v[i]);
    }
    for (int i = 0; i < 6; i++) a[i] &= m[i];
  }
  return true;
}

bool dscp_name(const std::string& w, uint32_t* v) {
  static const struct {
    const char* name;
    uint32_t code;
  } kNames[] = {{"be", 0},   {"ef", 46},  {"af11", 10}, {"af12", 12}, {"af13", 14}, {"af21", 18},
                {"af22", 20}, {"af23", 22}, {"af31", 26}, {"af32", 28}, {"af33", 30}, {"af41", 34},
                {"af42", 36}, {"af43", 38}, {"cs0", 0},   {"cs1", 8},   {"cs2", 16},  {"cs3", 24},
                {"cs4", 32},  {"cs5", 40},  {"cs6", 48},  {"cs7", 56}};
  for (const auto& k : kNames)
    if (w == k.name) {
      *v = k.code;
      return true;
    }
  return false;
}

bool Parser::option() {
  Option o;
  if (c.accept("not") || c.accept("!")) o.neg = true;
  const std::string w = c.take();
  const auto needs = [&](Option::Kind k) {
    o.kind = k;
    if (c.done()) return fail("missing argument for " + w);
    return true;
  };
  if (w == "in") o.kind = Option::kIn;
  else if (w == "out") o.kind = Option::kOut;
  else if (w == "recv" || w == "xmit" || w == "via") {
    if (!needs(w == "recv" ? Option::kRecv : w == "xmit" ? Option::kXmit : Option::kVia)) return false;
    o.port = c.take();
  } else if (w == "established") o.kind = Option::kEstablished;
  else if (w == "setup") o.kind = Option::kSetup;
  else if (w == "frag") o.kind = Option::kFrag;
  else if (w == "keep-state") {
    if (o.neg) return fail("keep-state cannot be negated");
    r->keep_state = true;
    return true;
  } else if (w == "log") {
    r->log = true;
    return true;
  } else if (w == "tcpflags" || w == "tcpflag") {
    o.kind = Option::kTcpFlags;
    if (!tcp_flags(c.take(), &o)) return false;
  } else if (w == "icmptypes" || w == "icmptype") {
    o.kind = Option::kIcmpTypes;
    if (!ranges(c.take(), 255, &o.ranges, "ICMP type")) return false;
  } else if (w == "icmp6types" || w == "icmp6type") {
    o.kind = Option::kIcmp6Types;
    if (!ranges(c.take(), 255, &o.ranges, "ICMPv6 type")) return false;
  } else if (w == "iplen") {
    o.kind = Option::kIpLen;
    if (!ranges(c.take(), 65535, &o.ranges, "iplen")) return false;
  } else if (w == "ipttl") {
    o.kind = Option::kIpTtl;
    if (!ranges(c.take(), 255, &o.ranges, "ipttl")) return false;
  } else if (w == "dscp") {
    o.kind = Option::kDscp;
    if (!ranges(c.take(), 63, &o.ranges, "dscp", dscp_name)) return false;
  } else if (w == "ipversion" || w == "ipver") {
    o.kind = Option::kIpVersion;
    uint32_t v;
    const std::string n = c.take();
    if (!parse_number(n, 6, &v) || (v != 4 && v != 6)) return fail("invalid ipversion " + quoted(n));
    o.ranges.push_back({v, v});
  } else if (w == "src-port" || w == "dst-port") {
    o.kind = w == "src-port" ? Option::kSrcPort : Option::kDstPort;
    if (!ports(&o.ranges, c.take())) return false;
  } else if (w == "proto") {
    o.kind = Option::kProto;
    if (!proto(c.take(), &o.proto)) return false;
  } else if (w == "src-ip" || w == "dst-ip" || w == "src-ip6" || w == "dst-ip6") {
    o.kind = w.compare(0, 3, "src") == 0 ? Option::kSrcIp : Option::kDstIp;
    if (!addr_set(&o.addrs, o.kind == Option::kSrcIp ? "source" : "destination")) return false;
  } else if (w == "mac") {
    o.kind = Option::kMac;
    if (!mac(&o)) return false;
  } else {
    return fail("unrecognised option " + quoted(w));
  }
  r->opts.push_back(o);
  return true;
}

bool Parser::run() {
  uint32_t v;
  if (parse_number(c.peek(), ~0u, &v)) {
    c.take();
    if (v == 0 || v > kDefaultRule - 1) return fail("invalid rule number " + std::to_string(v));
    r->num = v;
  }
  if (c.accept("set")) {
    const std::string n = c.take();
    if (!parse_number(n, 31, &v)) return fail("illegal set " + quoted(n));
    r->set = uint8_t(v);
  }
  if (c.accept("prob")) {
    const std::string p = c.take();
    char* end = nullptr;
    const double d = strtod(p.c_str(), &end);
    if (p.empty() || *end || !(d > 0 && d <= 1)) return fail("illegal match prob. " + quoted(p));
    r->prob = d >= 1 ? 0 : uint32_t(d * 4294967296.0);
    if (d < 1 && r->prob == 0) r->prob = 1;  // tiny, but not "always"
  }
  if (!action()) return false;
  if (c.accept("log")) {
    r->log = true;
    if (c.accept("logamount")) {
      const std::string n = c.take();
      if (!parse_number(n, 65535, &v)) return fail("invalid logamount " + quoted(n));
      r->log_amount = v;
    }
  }
  if (r->action == Action::kCheckState && c.done()) return true;
  if (c.done()) return fail("missing protocol");
  if (!proto(c.take(), &r->proto)) return false;
  if (!c.accept("from")) return fail("missing ``from''");
  if (!addr_set(&r->src, "source")) return false;
  if (!port_list(&r->sports, &r->sports_neg)) return false;
  if (!c.accept("to")) return fail("missing ``to''");
  if (!addr_set(&r->dst, "destination")) return false;
  if (!port_list(&r->dports, &r->dports_neg)) return false;
  while (!c.done())
    if (!option()) return false;
  const bool l4 = r->proto == 6 || r->proto == 17 || r->proto == 132;
  if ((!r->sports.empty() || !r->dports.empty()) && !l4)
    return fail("only TCP, UDP and SCTP protocols are valid with port specifications");
  return true;
}

// ---- printing ----

std::string addr_text(const Addr& a) {
  char b[INET6_ADDRSTRLEN];
  inet_ntop(a.v6 ? AF_INET6 : AF_INET, a.a, b, sizeof b);
  const uint32_t bytes = a.v6 ? 16 : 4;
  const uint32_t len = prefix_len(a.m, bytes);
  Addr prefix;
  prefix_mask(len, prefix.m, bytes);
  std::string s = b;
  if (memcmp(prefix.m, a.m, bytes) != 0) {  // a:mask (IPv4 only can say it)
    char mb[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, a.m, mb, sizeof mb);
    return s + ":" + mb;
  }
  if (len != bytes * 8) s += "/" + std::to_string(len);
  return s;
}

std::string set_text(const AddrSet& s) {
  std::string t = s.neg ? "not " : "";
  switch (s.kind) {
    case AddrSet::kAny: return t + "any";
    case AddrSet::kMe: return t + "me";
    case AddrSet::kMe6: return t + "me6";
    case AddrSet::kTable:
      return t + "table(" + std::to_string(s.table) + (s.has_value ? "," + std::to_string(s.value) : "") + ")";
    case AddrSet::kList: break;
  }
  for (size_t k = 0; k < s.items.size(); k++) t += (k ? "," : "") + addr_text(s.items[k]);
  return t;
}

std::string ranges_text(const std::vector<Range>& rs) {
  std::string t;
  for (size_t k = 0; k < rs.size(); k++) {
    t += (k ? "," : "") + std::to_string(rs[k].lo);
    if (rs[k].hi != rs[k].lo) t += "-" + std::to_string(rs[k].hi);
  }
  return t;
}

std::string proto_text(int p) {
  switch (p) {
    case kProtoAny: return "ip";
    case kProtoIp4: return "ip4";
    case kProtoIp6: return "ip6";
    case 58: return "ipv6-icmp";
    default: break;
  }
  if (const protoent* pe = getprotobynumber(p)) return pe->p_name;
  if (p == 6) return "tcp";
  if (p == 17) return "udp";
  if (p == 1) return "icmp";
  return std::to_string(p);
}

std::string mac_text(const uint8_t* a, const uint8_t* m) {
  bool any = true;
  for (int i = 0; i < 6; i++) any &= m[i] == 0;
  if (any) return "any";
  char b[40];
  snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3], a[4], a[5]);
  std::string s = b;
  bool full = true;
  for (int i = 0; i < 6; i++) full &= m[i] == 0xff;
  if (!full) {
    snprintf(b, sizeof b, "&%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
    s += b;
  }
  return s;
}

std::string option_text(const Option& o) {
  std::string t = o.neg ? "not " : "";
  switch (o.kind) {
    case Option::kIn: return t + "in";
    case Option::kOut: return t + "out";
    case Option::kRecv: return t + "recv " + o.port;
    case Option::kXmit: return t + "xmit " + o.port;
    case Option::kVia: return t + "via " + o.port;
    case Option::kEstablished: return t + "established";
    case Option::kSetup: return t + "setup";
    case Option::kFrag: return t + "frag";
    case Option::kTcpFlags: {
      static const char* const kNames[] = {"fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr"};
      std::string f;
      for (int b = 0; b < 8; b++) {
        if (o.flags_set & (1 << b)) f += std::string(f.empty() ? "" : ",") + kNames[b];
        if (o.flags_clear & (1 << b)) f += std::string(f.empty() ? "" : ",") + "!" + kNames[b];
      }
      return t + "tcpflags " + f;
    }
    case Option::kIcmpTypes: return t + "icmptypes " + ranges_text(o.ranges);
    case Option::kIcmp6Types: return t + "icmp6types " + ranges_text(o.ranges);
    case Option::kIpLen: return t + "iplen " + ranges_text(o.ranges);
    case Option::kIpTtl: return t + "ipttl " + ranges_text(o.ranges);
    case Option::kDscp: return t + "dscp " + ranges_text(o.ranges);
    case Option::kIpVersion: return t + "ipversion " + ranges_text(o.ranges);
    case Option::kSrcPort: return t + "src-port " + ranges_text(o.ranges);
    case Option::kDstPort: return t + "dst-port " + ranges_text(o.ranges);
    case Option::kProto: return t + "proto " + proto_text(o.proto);
    case Option::kSrcIp: return t + "src-ip " + set_text(o.addrs);
    case Option::kDstIp: return t + "dst-ip " + set_text(o.addrs);
    case Option::kMac: return t + "mac " + mac_text(o.mac, o.mac_mask) + " " + mac_text(o.mac + 6, o.mac_mask + 6);
  }
  return t;
}

std::string action_text(const Rule& r) {
  switch (r.action) {
    case Action::kAllow: return "allow";
    case Action::kDeny: return "deny";
    case Action::kReject: return "reject";
    case Action::kReset: return "reset";
    case Action::kUnreach:
      return std::string("unreach ") + (r.arg < sizeof kCodes / sizeof kCodes[0] ? kCodes[r.arg] : std::to_string(r.arg).c_str());
    case Action::kCount: return "count";
    case Action::kSkipto: return "skipto " + std::to_string(r.arg);
    case Action::kPipe: return "pipe " + std::to_string(r.arg);
    case Action::kQueue: return "queue " + std::to_string(r.arg);
    case Action::kCheckState: return "check-state";
  }
  return "?";
}

}  // namespace

bool parse_number(const std::string& w, uint64_t max, uint64_t* v) {
  if (w.empty() || w.size() > 19) return false;
  uint64_t x = 0;
  for (char c : w) {
    if (c < '0' || c > '9') return false;
    x = x * 10 + uint64_t(c - '0');
  }
  if (x > max) return false;
  *v = x;
  return true;
}

bool parse_rule(const std::vector<std::string>& words, Rule* r, std::string* err) {
  *r = Rule();
  Parser p{Cursor(words), r, err};
  return p.run();
}

std::string format_rule(const Rule& r, bool with_set) {
  char num[8];
  snprintf(num, sizeof num, "%05u", r.num);
  std::string s = num;
  if (with_set) s += " set " + std::to_string(r.set);
  if (r.prob) {
    char p[32];
    snprintf(p, sizeof p, " prob %.6g", double(r.prob) / 4294967296.0);
    s += p;
  }
  s += " " + action_text(r);
  if (r.log) s += " log";
  if (r.log && r.log_amount) s += " logamount " + std::to_string(r.log_amount);
  if (r.action == Action::kCheckState && r.src.kind == AddrSet::kAny && r.dst.kind == AddrSet::kAny &&
      r.proto == kProtoAny && r.opts.empty() && !r.src.neg && !r.dst.neg)
    return s;
  s += " " + proto_text(r.proto) + " from " + set_text(r.src);
  if (!r.sports.empty()) s += std::string(r.sports_neg ? " not " : " ") + ranges_text(r.sports);
  s += " to " + set_text(r.dst);
  if (!r.dports.empty()) s += std::string(r.dports_neg ? " not " : " ") + ranges_text(r.dports);
  for (const Option& o : r.opts) s += " " + option_text(o);
  if (r.keep_state) s += " keep-state";
  return s;
}

std::vector<std::string> split_words(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : line) {
    if (ch == '#') break;
    if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
      if (!cur.empty()) out.push_back(cur), cur.clear();
    } else {
      cur += ch;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

}  // namespace unetmap::ipfw
