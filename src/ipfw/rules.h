// unetmap's ipfw: FreeBSD's firewall language, its rules and the ruleset
// that kipfw applies to every packet it forwards (tools/kipfw.cc).
//
// A rule, as `ipfw add` takes it:
//   [N] [set S] [prob P] ACTION [log] PROTO from SRC [PORTS] to DST [PORTS] [OPTIONS]
// parse_rule() turns words into a Rule with a FreeBSD-like error naming
// the word it could not take; format_rule() prints it back the way
// `ipfw list` does. The Ruleset holds the rules in number order, the
// tables, and the dynamic states of keep-state; check() runs a parsed
// packet (packet.h) through it and says what to do with it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace unetmap::ipfw {

// One address with its mask: IPv4 in the first 4 bytes (v6 false).
struct Addr {
  bool v6 = false;
  uint8_t a[16] = {};
  uint8_t m[16] = {};
};

// SRC or DST of a rule, or the operand of src-ip / dst-ip.
struct AddrSet {
  enum Kind : uint8_t { kAny, kMe, kMe6, kList, kTable };
  Kind kind = kAny;
  bool neg = false;
  std::vector<Addr> items;   // kList
  uint32_t table = 0;        // kTable: table(N)
  bool has_value = false;    // table(N,V): only entries whose value is V
  uint32_t value = 0;
};

// A closed range of numbers (ports, lengths, TTLs, DSCP codes, ICMP types).
struct Range {
  uint32_t lo = 0, hi = 0;
};

enum class Action : uint8_t {
  kAllow,       // allow, accept, pass, permit
  kDeny,        // deny, drop
  kReject,      // reject: a TCP RST for TCP, an ICMP unreachable for the rest
  kReset,       // reset: a TCP RST (other protocols: dropped)
  kUnreach,     // unreach CODE: an ICMP unreachable with that code
  kCount,       // count: counted, the search goes on
  kSkipto,      // skipto N
  kPipe,        // pipe N (dummynet)
  kQueue,       // queue N (dummynet)
  kCheckState,  // check-state
};

// A match option after the addresses.
struct Option {
  enum Kind : uint8_t {
    kIn, kOut, kRecv, kXmit, kVia,
    kEstablished, kSetup, kTcpFlags, kIcmpTypes, kIcmp6Types, kFrag,
    kMac, kIpLen, kIpTtl, kDscp, kSrcPort, kDstPort, kProto, kSrcIp, kDstIp,
    kIpVersion,
  };
  Kind kind = kIn;
  bool neg = false;
  std::string port;             // recv, xmit, via
  std::vector<Range> ranges;    // ports, iplen, ipttl, dscp, icmptypes, ipversion
  int proto = 0;                // kProto (as Rule::proto)
  uint8_t flags_set = 0, flags_clear = 0;  // tcpflags
  uint8_t mac[12] = {}, mac_mask[12] = {};  // destination then source
  AddrSet addrs;                // src-ip, dst-ip
};

// Rule::proto beside a protocol number 0..255.
constexpr int kProtoAny = -1;   // ip, all
constexpr int kProtoIp4 = -4;   // ip4, ipv4
constexpr int kProtoIp6 = -6;   // ip6, ipv6

struct Rule {
  uint32_t num = 0;      // 1..65535 (0 in parse: the next free number)
  uint8_t set = 0;       // 0..31
  uint32_t prob = 0;     // 0: always; else matches with probability prob / 2^32
  Action action = Action::kDeny;
  uint32_t arg = 0;      // skipto, pipe, queue: its number; unreach: the code
  bool log = false;
  uint32_t log_amount = 0;  // logamount N: lines at most (0: kDefaultLogAmount)
  bool keep_state = false;
  int proto = kProtoAny;
  AddrSet src, dst;
  std::vector<Range> sports, dports;
  bool sports_neg = false, dports_neg = false;
  std::vector<Option> opts;
  uint64_t id = 0;       // the Ruleset's own name for it (states point at it)
  // Counters (show, zero).
  uint64_t packets = 0, bytes = 0;
  uint64_t last_ns = 0;
  uint32_t logged = 0;  // lines logged since it was added, zeroed or resetlog
};

constexpr uint32_t kDefaultLogAmount = 100;  // as FreeBSD's verbose_limit

constexpr uint32_t kDefaultRule = 65535;
constexpr uint32_t kAutoStep = 100;  // ipfw's autoinc_step

// Words of `ipfw add`'s rule (after `add`) into *r; false with *err
// ("invalid action `foo'") on the first word it cannot take. Port and
// protocol names come from the system's services and protocols.
bool parse_rule(const std::vector<std::string>& words, Rule* r, std::string* err);
// A rule as `ipfw list` prints it ("00100 allow tcp from any to any 80");
// with_set: its set too, as `ipfw -S list` ("00100 set 3 allow ...").
std::string format_rule(const Rule& r, bool with_set = false);

// A decimal number 0..max and nothing else (ipfw's and dummynet's
// numbers: rules, sets, tables, pipes, weights).
bool parse_number(const std::string& w, uint64_t max, uint64_t* v);
inline bool parse_number(const std::string& w, uint32_t max, uint32_t* v) {
  uint64_t x;
  if (!parse_number(w, max, &x)) return false;
  *v = uint32_t(x);
  return true;
}

// Prefixes: byte k of the mask of a len-bit prefix; the whole mask into
// m[0, bytes); and the leading one bits of a mask (its prefix length).
inline uint8_t prefix_byte(uint32_t len, uint32_t k) {
  const uint32_t left = len > k * 8 ? len - k * 8 : 0;
  return left >= 8 ? 0xff : uint8_t(0xff00 >> left);
}
inline void prefix_mask(uint32_t len, uint8_t* m, uint32_t bytes) {
  for (uint32_t k = 0; k < bytes; k++) m[k] = prefix_byte(len, k);
}
inline uint32_t prefix_len(const uint8_t* m, uint32_t bytes) {
  uint32_t len = 0;
  while (len < bytes * 8 && (m[len / 8] & (0x80 >> (len % 8)))) len++;
  return len;
}

// Split a line into words, as a shell would for ipfw's grammar: blanks
// separate; `#` starts a comment; parentheses, braces and commas stay
// inside words ("table(1)", "{1.2.3.4,5.6.7.8}").
std::vector<std::string> split_words(const std::string& line);

}  // namespace unetmap::ipfw
