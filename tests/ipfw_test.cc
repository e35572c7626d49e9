// ipfw's rule language and matcher (src/ipfw): rules parsed and printed
// back, malformed rules refused with the word at fault, and frames built
// here run through rulesets.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <string.h>

#include <string>
#include <vector>

#include "ipfw/command.h"
#include "ipfw/dummynet.h"
#include "ipfw/packet.h"
#include "ipfw/ruleset.h"
#include "ipfw/rules.h"
#include "util/ip_frames.h"

using namespace unetmap::ipfw;
using nmtest::FrameSpec;
using nmtest::frame;

namespace {

// `ipfw list`'s line for the rule given as text ("" and *err if refused).
std::string roundtrip(const std::string& text, std::string* err = nullptr) {
  Rule r;
  std::string e;
  if (!parse_rule(split_words(text), &r, &e)) {
    if (err) *err = e;
    return "";
  }
  return format_rule(r);
}

// The number of the rule that decides for frame f (and its action in *a).
uint32_t decide(Ruleset& rs, const std::vector<uint8_t>& f, Action* a = nullptr, bool out = false,
                const std::string& recv = "vale0:a", const std::string& xmit = "vale0:b", uint64_t now = 1) {
  Packet p;
  parse_packet(f.data(), uint32_t(f.size()), &p);
  Where w;
  w.out = out;
  w.recv = &recv;
  w.xmit = &xmit;
  w.now_ns = now;
  const Verdict v = rs.check(p, w);
  if (a) *a = v.action;
  return v.rule;
}

// A ruleset from commands; fails the test on a refused one.
Ruleset ruleset(const std::vector<std::string>& cmds) {
  Ruleset rs;
  for (const std::string& c : cmds) {
    std::string out, err;
    EXPECT_TRUE(run_command(rs, split_words(c), &out, &err)) << c << ": " << err;
  }
  return rs;
}

}  // namespace

TEST(Parse, RulesPrintAsIpfwListsThem) {
  EXPECT_EQ(roundtrip("100 allow tcp from any to any 80"), "00100 allow tcp from any to any 80");
  EXPECT_EQ(roundtrip("200 deny log udp from 10.0.0.0/8 to not 192.168.1.1 53,1000-2000"),
            "00200 deny log udp from 10.0.0.0/8 to not 192.168.1.1 53,1000-2000");
  EXPECT_EQ(roundtrip("300 pass ip6 from 2001:db8::/32 to ::1"), "00300 allow ip6 from 2001:db8::/32 to ::1");
  EXPECT_EQ(roundtrip("10 accept all from 10.1.2.3:255.255.0.255 to any"),
            "00010 allow ip from 10.1.0.3:255.255.0.255 to any");
  EXPECT_EQ(roundtrip("1 count ip from {10.0.0.1,10.0.0.2} to table(3)"),
            "00001 count ip from 10.0.0.1,10.0.0.2 to table(3)");
  EXPECT_EQ(roundtrip("2 skipto 500 ip from me to me6"), "00002 skipto 500 ip from me to me6");
  EXPECT_EQ(roundtrip("3 set 5 prob 0.5 drop icmp from any to any icmptypes 0,8"),
            "00003 prob 0.5 deny icmp from any to any icmptypes 0,8");
  EXPECT_EQ(roundtrip("4 unreach port udp from any to any"), "00004 unreach port udp from any to any");
  EXPECT_EQ(roundtrip("4 unreach 200 udp from any to any"), "00004 unreach 200 udp from any to any");
  EXPECT_EQ(roundtrip("5 check-state"), "00005 check-state");
  EXPECT_EQ(roundtrip("6 allow tcp from any to any established"), "00006 allow tcp from any to any established");
  EXPECT_EQ(roundtrip("7 allow tcp from any to any setup keep-state"),
            "00007 allow tcp from any to any setup keep-state");
  EXPECT_EQ(roundtrip("8 deny tcp from any to any tcpflags syn,!ack in recv vale0:a"),
            "00008 deny tcp from any to any tcpflags syn,!ack in recv vale0:a");
  EXPECT_EQ(roundtrip("9 deny ip from any to any not frag out xmit x via y"),
            "00009 deny ip from any to any not frag out xmit x via y");
  EXPECT_EQ(roundtrip("11 deny ip from any to any iplen 20-100 ipttl 1,255 dscp ef,af11"),
            "00011 deny ip from any to any iplen 20-100 ipttl 1,255 dscp 46,10");
  EXPECT_EQ(roundtrip("12 allow ip from any to any mac any 02:00:00:00:00:01"),
            "00012 allow ip from any to any mac any 02:00:00:00:00:01");
  EXPECT_EQ(roundtrip("13 allow ip from any to any mac 02:00:00:00:00:00/24 any"),
            "00013 allow ip from any to any mac 02:00:00:00:00:00&ff:ff:ff:00:00:00 any");
  EXPECT_EQ(roundtrip("14 allow ip from any to any proto tcp dst-port 22 src-port 1024-65535"),
            "00014 allow ip from any to any proto tcp dst-port 22 src-port 1024-65535");
  EXPECT_EQ(roundtrip("15 allow ip from any to any src-ip 10.0.0.0/24 dst-ip table(2,7)"),
            "00015 allow ip from any to any src-ip 10.0.0.0/24 dst-ip table(2,7)");
  EXPECT_EQ(roundtrip("16 allow ipv6-icmp from any to any icmp6types 128,129 ipversion 6"),
            "00016 allow ipv6-icmp from any to any icmp6types 128,129 ipversion 6");
  EXPECT_EQ(roundtrip("17 reject tcp from any not 80 to any"), "00017 reject tcp from any not 80 to any");
  EXPECT_EQ(roundtrip("18 allow 47 from any to any"), "00018 allow gre from any to any");
  EXPECT_EQ(roundtrip("reset tcp from any to any"), "00000 reset tcp from any to any");
}

TEST(Parse, MalformedRulesNameTheWordAtFault) {
  const struct {
    const char* rule;
    const char* err;
  } cases[] = {
      {"100 alow ip from any to any", "invalid action `alow'"},
      {"100 allow ipx from any to any", "invalid protocol `ipx'"},
      {"100 allow ip any to any", "missing ``from''"},
      {"100 allow ip from any any", "missing ``to''"},
      {"100 allow ip from 10.0.0.300 to any", "bad source address `10.0.0.300'"},
      {"100 allow ip from any to 10.0.0.0/33", "bad destination address `10.0.0.0/33'"},
      {"100 allow ip from any to ::1/129", "bad destination address `::1/129'"},
      {"100 allow tcp from any to any 70000", "invalid port `70000'"},
      {"100 allow tcp from any to any 90-80", "invalid port `90-80'"},
      {"100 allow ip from any to any 80", "only TCP, UDP and SCTP protocols are valid with port specifications"},
      {"100 allow ip from any to any bogus", "unrecognised option `bogus'"},
      {"100 allow tcp from any to any tcpflags syn,xyz", "invalid tcpflags `xyz'"},
      {"100 allow ip from any to any dscp af99", "invalid dscp `af99'"},
      {"100 allow ip from any to any recv", "missing argument for recv"},
      {"100 allow ip from any to any mac zz any", "invalid MAC address `zz'"},
      {"100 allow ip from table(x) to any", "bad table number `table(x)'"},
      {"100 skipto abc ip from any to any", "illegal argument for skipto `abc'"},
      {"100 prob 2 allow ip from any to any", "illegal match prob. `2'"},
      {"65535 allow ip from any to any", "invalid rule number 65535"},
      {"100 set 32 allow ip from any to any", "illegal set `32'"},
      {"100 unreach bogus ip from any to any", "invalid ICMP unreachable code `bogus'"},
      {"100 allow", "missing protocol"},
      {"", "missing action"},
  };
  for (const auto& c : cases) {
    std::string err = "(accepted)";
    EXPECT_EQ(roundtrip(c.rule, &err), "") << c.rule;
    EXPECT_EQ(err, c.err) << c.rule;
  }
}

TEST(Match, AddressesPortsAndProtocols) {
  Ruleset rs = ruleset({"add 100 deny tcp from 10.0.0.1 to any 22",
                        "add 200 allow udp from any to 10.0.0.0/24 53",
                        "add 300 allow tcp from any 1000-2000 to not 10.0.0.9",
                        "add 400 allow ip from 2001:db8::/32 to any",
                        "add 500 deny ip4 from any to any"});
  FrameSpec s;
  s.sport = 3000;
  s.dport = 22;
  EXPECT_EQ(decide(rs, frame(s)), 100u);
  s.src = "10.0.0.7";
  EXPECT_EQ(decide(rs, frame(s)), 500u);
  s.sport = 1500;
  EXPECT_EQ(decide(rs, frame(s)), 300u);
  s.dst = "10.0.0.9";
  EXPECT_EQ(decide(rs, frame(s)), 500u);
  FrameSpec u;
  u.proto = 17;
  u.dport = 53;
  EXPECT_EQ(decide(rs, frame(u)), 200u);
  u.dst = "10.0.1.2";
  EXPECT_EQ(decide(rs, frame(u)), 500u);
  FrameSpec v6;
  v6.v6 = true;
  v6.sport = 3000;  // 1000-2000 (rule 300) is for any destination but 10.0.0.9: IPv6 too
  v6.src = "2001:db8::5";
  v6.dst = "2001:db9::1";
  EXPECT_EQ(decide(rs, frame(v6)), 400u);
  v6.src = "2001:db9::5";
  Action a;
  EXPECT_EQ(decide(rs, frame(v6), &a), kDefaultRule);  // ip4 does not take IPv6
  EXPECT_EQ(a, Action::kDeny);
  // A VLAN tag is looked through.
  s = FrameSpec();
  s.vlan = true;
  s.dport = 22;
  EXPECT_EQ(decide(rs, frame(s)), 100u);
}

TEST(Match, OptionsOfEveryKind) {
  Ruleset rs = ruleset({"add 10 count tcp from any to any setup",
                        "add 20 deny tcp from any to any tcpflags fin,!ack",
                        "add 30 allow tcp from any to any established",
                        "add 40 deny icmp from any to any icmptypes 8",
                        "add 50 deny ip from any to any frag",
                        "add 60 deny ip from any to any ipttl 1",
                        "add 70 deny ip from any to any dscp ef",
                        "add 80 deny ip from any to any iplen 1000-2000",
                        "add 90 deny ip from any to any mac any 02:00:00:00:00:99",
                        "add 100 deny ip from any to any recv vale0:z",
                        "add 110 deny ipv6-icmp from any to any icmp6types 128",
                        "add 120 allow ip from any to any"});
  FrameSpec s;
  s.tcp_flags = 0x02;  // SYN: counted by 10, then allowed by 120
  EXPECT_EQ(decide(rs, frame(s)), 120u);
  EXPECT_EQ(rs.rules()[0].packets, 1u);
  s.tcp_flags = 0x01;
  EXPECT_EQ(decide(rs, frame(s)), 20u);
  s.tcp_flags = 0x10;
  EXPECT_EQ(decide(rs, frame(s)), 30u);
  FrameSpec i;
  i.proto = 1;
  EXPECT_EQ(decide(rs, frame(i)), 40u);
  i.icmp_type = 0;
  EXPECT_EQ(decide(rs, frame(i)), 120u);
  i.frag_off = 10;
  EXPECT_EQ(decide(rs, frame(i)), 50u);
  i.frag_off = 0x2000;  // more fragments, offset 0: the first one is not `frag'
  EXPECT_EQ(decide(rs, frame(i)), 120u);
  i = FrameSpec();
  i.proto = 17;
  i.ttl = 1;
  EXPECT_EQ(decide(rs, frame(i)), 60u);
  i.ttl = 64;
  i.dscp = 46;
  EXPECT_EQ(decide(rs, frame(i)), 70u);
  i.dscp = 0;
  i.payload = 1200;
  EXPECT_EQ(decide(rs, frame(i)), 80u);
  i.payload = 20;
  i.smac[5] = 0x99;  // mac DST SRC
  EXPECT_EQ(decide(rs, frame(i)), 90u);
  i.smac[5] = 1;
  EXPECT_EQ(decide(rs, frame(i), nullptr, false, "vale0:z"), 100u);
  FrameSpec e;
  e.v6 = true;
  e.src = "fe80::1";
  e.dst = "fe80::2";
  e.proto = 58;
  e.icmp_type = 128;
  EXPECT_EQ(decide(rs, frame(e)), 110u);
  e.dscp = 46;
  EXPECT_EQ(decide(rs, frame(e)), 70u);
}

TEST(Match, DirectionsAndInterfaces) {
  Ruleset rs = ruleset({"add 10 deny ip from any to any in recv a",
                        "add 20 deny ip from any to any out xmit b",
                        "add 30 count ip from any to any via c",
                        "add 40 allow ip from any to any"});
  EXPECT_TRUE(rs.has_out_rules());
  FrameSpec s;
  EXPECT_EQ(decide(rs, frame(s), nullptr, false, "a", "b"), 10u);
  EXPECT_EQ(decide(rs, frame(s), nullptr, true, "a", "b"), 20u);  // out: recv is not looked at
  EXPECT_EQ(decide(rs, frame(s), nullptr, false, "b", "a"), 40u);
  EXPECT_EQ(decide(rs, frame(s), nullptr, true, "x", "c"), 40u);
  EXPECT_EQ(rs.rules()[2].packets, 1u);
  EXPECT_FALSE(ruleset({"add allow ip from any to any in"}).has_out_rules());
}

TEST(Match, SkiptoCountAndProbability) {
  Ruleset rs = ruleset({"add 10 skipto 40 tcp from any to any", "add 20 deny tcp from any to any",
                        "add 40 count ip from any to any", "add 50 prob 0.25 deny udp from any to any",
                        "add 60 allow ip from any to any"});
  FrameSpec s;
  EXPECT_EQ(decide(rs, frame(s)), 60u);
  EXPECT_EQ(rs.rules()[1].packets, 0u);
  EXPECT_EQ(rs.rules()[2].packets, 1u);
  FrameSpec u;
  u.proto = 17;
  int denied = 0;
  for (int k = 0; k < 20000; k++) denied += decide(rs, frame(u)) == 50u;
  // Binomial(20000, 0.25): mean 5000, sd 61; 6 sd either way.
  EXPECT_GT(denied, 5000 - 370);
  EXPECT_LT(denied, 5000 + 370);
  std::string err;
  Rule back;
  ASSERT_TRUE(parse_rule(split_words("30 skipto 20 ip from any to any"), &back, &err));
  EXPECT_FALSE(rs.add(back, &err));
  EXPECT_EQ(err, "skipto 20 must go forward from rule 30");
}

TEST(Match, TablesTakeTheLongestPrefixAndValues) {
  Ruleset rs = ruleset({"table 1 add 10.0.0.0/8 1", "table 1 add 10.1.0.0/16 2", "table 1 add 2001:db8::/48 3",
                        "add 100 deny ip from table(1,2) to any", "add 200 count ip from table(1) to any",
                        "add 300 allow ip from any to any"});
  FrameSpec s;
  s.src = "10.1.2.3";
  EXPECT_EQ(decide(rs, frame(s)), 100u);
  s.src = "10.2.2.3";
  EXPECT_EQ(decide(rs, frame(s)), 300u);
  EXPECT_EQ(rs.rules()[1].packets, 1u);
  s.src = "11.0.0.1";
  EXPECT_EQ(decide(rs, frame(s)), 300u);
  EXPECT_EQ(rs.rules()[1].packets, 1u);
  FrameSpec v6;
  v6.v6 = true;
  v6.src = "2001:db8:0:1::1";
  v6.dst = "::1";
  EXPECT_EQ(decide(rs, frame(v6)), 300u);
  EXPECT_EQ(rs.rules()[1].packets, 2u);
  std::string out, err;
  ASSERT_TRUE(run_command(rs, split_words("table 1 list"), &out, &err));
  EXPECT_EQ(out, "10.0.0.0/8 1\n10.1.0.0/16 2\n2001:db8::/48 3\n");
  ASSERT_TRUE(run_command(rs, split_words("table 1 delete 10.1.0.0/16"), &out, &err)) << err;
  s.src = "10.1.2.3";
  EXPECT_EQ(decide(rs, frame(s)), 300u);
  EXPECT_FALSE(run_command(rs, split_words("table 1 delete 10.1.0.0/16"), &out, &err));
  EXPECT_FALSE(run_command(rs, split_words("table 1 add 10.0.0.0:255.0.255.0"), &out, &err));
  EXPECT_EQ(err, "table: a table entry takes a prefix (ADDR/LEN), not a mask");
  // A thousand prefixes: each found, its neighbour outside not.
  Ruleset big = ruleset({"add 100 deny ip from any to table(9)", "add 200 allow ip from any to any"});
  for (int k = 0; k < 1000; k++) {
    const std::string p = "172." + std::to_string(16 + k / 256) + "." + std::to_string(k % 256) + ".0/24";
    ASSERT_TRUE(run_command(big, split_words("table 9 add " + p), &out, &err)) << err;
  }
  FrameSpec t;
  t.dst = "172.19.231.77";  // k = 999
  EXPECT_EQ(decide(big, frame(t)), 100u);
  t.dst = "172.19.232.1";
  EXPECT_EQ(decide(big, frame(t)), 200u);
}

TEST(Match, KeepStateLetsRepliesThrough) {
  Ruleset rs = ruleset({"add 10 check-state", "add 20 allow tcp from 10.0.0.1 to any setup keep-state",
                        "add 30 allow udp from 10.0.0.1 to any keep-state", "add 40 deny ip from any to any"});
  FrameSpec syn;
  EXPECT_EQ(decide(rs, frame(syn), nullptr, false, "a", "b", 1000), 20u);
  EXPECT_EQ(rs.states(), 1u);
  FrameSpec reply;
  reply.src = "10.0.0.2", reply.dst = "10.0.0.1", reply.sport = 80, reply.dport = 1234, reply.tcp_flags = 0x12;
  EXPECT_EQ(decide(rs, frame(reply), nullptr, false, "b", "a", 2000), 20u);  // through the state
  reply.sport = 81;  // another flow: no state
  EXPECT_EQ(decide(rs, frame(reply), nullptr, false, "b", "a", 3000), 40u);
  FrameSpec u;
  u.proto = 17;
  EXPECT_EQ(decide(rs, frame(u), nullptr, false, "a", "b", 1000), 30u);
  FrameSpec ur = u;
  ur.src = "10.0.0.2", ur.dst = "10.0.0.1", ur.sport = 80, ur.dport = 1234;
  const uint64_t s = 1000000000ull;
  EXPECT_EQ(decide(rs, frame(ur), nullptr, false, "b", "a", 5 * s), 30u);
  EXPECT_EQ(decide(rs, frame(ur), nullptr, false, "b", "a", 16 * s), 40u);  // 10 s idle: gone
  // Deleting the rule takes its states.
  EXPECT_TRUE(rs.remove(20));
  reply.sport = 80;
  EXPECT_EQ(decide(rs, frame(reply), nullptr, false, "b", "a", 3000), 40u);
}

TEST(Commands, ListShowZeroDeleteFlushSets) {
  Ruleset rs;
  std::string out, err;
  ASSERT_TRUE(run_command(rs, split_words("ipfw -q add allow tcp from any to any 80"), &out, &err));
  EXPECT_EQ(out, "00100 allow tcp from any to any 80\n");
  ASSERT_TRUE(run_command(rs, split_words("add set 3 deny ip from any to any"), &out, &err));
  EXPECT_EQ(out, "00200 deny ip from any to any\n");
  FrameSpec s;
  for (int k = 0; k < 3; k++) decide(rs, frame(s));
  ASSERT_TRUE(run_command(rs, split_words("show"), &out, &err));
  const std::string len = std::to_string(3 * frame(s).size());
  const std::string zero = std::string(len.size() - 1, ' ') + "0";  // right-aligned as the widest
  EXPECT_EQ(out, "00100 3 " + len + " allow tcp from any to any 80\n00200 0 " + zero +
                     " deny ip from any to any\n65535 0 " + zero + " deny ip from any to any\n");
  ASSERT_TRUE(run_command(rs, split_words("-S list 200"), &out, &err));
  EXPECT_EQ(out, "00200 set 3 deny ip from any to any\n");
  ASSERT_TRUE(run_command(rs, split_words("zero 100"), &out, &err));
  EXPECT_EQ(rs.rules()[0].packets, 0u);
  ASSERT_TRUE(run_command(rs, split_words("delete 100"), &out, &err));
  EXPECT_EQ(decide(rs, frame(s)), 200u);
  ASSERT_TRUE(run_command(rs, split_words("set disable 3"), &out, &err));
  EXPECT_EQ(decide(rs, frame(s)), kDefaultRule);
  ASSERT_TRUE(run_command(rs, split_words("set enable 3"), &out, &err));
  EXPECT_EQ(decide(rs, frame(s)), 200u);
  ASSERT_TRUE(run_command(rs, split_words("delete set 3"), &out, &err));
  EXPECT_EQ(rs.rules().size(), 1u);
  EXPECT_FALSE(run_command(rs, split_words("delete 100"), &out, &err));
  EXPECT_EQ(err, "delete: rule 100 not found");
  EXPECT_FALSE(run_command(rs, split_words("delete 65535"), &out, &err));
  EXPECT_FALSE(run_command(rs, split_words("frobnicate"), &out, &err));
  EXPECT_EQ(err, "bad command `frobnicate'");
  EXPECT_FALSE(run_command(rs, split_words("add 5 pipe 1 ip from any to any"), &out, &err));
  ASSERT_TRUE(run_command(rs, split_words("add 5 allow ip from any to any"), &out, &err));
  ASSERT_TRUE(run_command(rs, split_words("flush"), &out, &err));
  EXPECT_EQ(rs.rules().size(), 1u);
}

TEST(Packet, TruncatedHeadersAreNeverReadPast) {
  FrameSpec s;
  s.v6 = true;
  s.src = "::1", s.dst = "::2";
  std::vector<uint8_t> f = frame(s);
  Ruleset rs = ruleset({"add 10 deny tcp from any to any 80", "add 20 allow ip from any to any"});
  for (size_t n = 0; n <= f.size(); n++) {
    // A copy of exactly n bytes: ASan sees any read past it.
    std::vector<uint8_t> cut(f.begin(), f.begin() + long(n));
    Packet p;
    parse_packet(cut.data(), uint32_t(n), &p);
    // The TCP header is needed whole; short of it, the packet is
    // truncated and no rule can allow it.
    EXPECT_EQ(p.has_ports, n >= 14 + 40 + 20) << n;
    EXPECT_EQ(p.truncated, n >= 14 && n < 14 + 40 + 20) << n;
    Where w;
    const Verdict v = rs.check(p, w);
    if (p.truncated) {
      EXPECT_EQ(v.action, Action::kDeny) << n;
    }
  }
}

TEST(Packet, EveryExtensionHeaderIsWalkedAndTooManyTagsAreDenied) {
  FrameSpec s;
  s.v6 = true;
  s.src = "::1", s.dst = "::2";
  s.dport = 22;
  std::vector<uint8_t> f = frame(s);
  // Nine destination-options headers (8 bytes each) and an AH before TCP.
  const size_t l3 = 14;
  std::vector<uint8_t> ext;
  for (int k = 0; k < 9; k++) ext.insert(ext.end(), {60, 0, 1, 4, 0, 0, 0, 0});
  ext.insert(ext.end(), {6, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});  // AH: (1 + 2) * 4 = 12 bytes, then TCP
  ext[9 * 8 - 8] = 60;
  ext[8 * 8] = 51;  // the last options header leads to AH
  f[l3 + 6] = 60;
  f.insert(f.begin() + long(l3 + 40), ext.begin(), ext.end());
  Packet p;
  parse_packet(f.data(), uint32_t(f.size()), &p);
  EXPECT_FALSE(p.truncated);
  EXPECT_EQ(p.proto, 6);
  EXPECT_TRUE(p.has_ports);
  EXPECT_EQ(p.dport, 22);
  Ruleset rs = ruleset({"add 10 deny tcp from any to any 22", "add 20 allow ip from any to any"});
  EXPECT_EQ(decide(rs, f), 10u);
  // Five VLAN tags: what is inside cannot be seen, and is denied.
  FrameSpec t;
  std::vector<uint8_t> g = frame(t);
  for (int k = 0; k < 5; k++) g.insert(g.begin() + 12, {0x81, 0x00, 0x00, 0x07});
  Action a;
  EXPECT_EQ(decide(rs, g, &a), 0u);
  EXPECT_EQ(a, Action::kDeny);
  // Four are looked through (0x9100 too).
  g.erase(g.begin() + 12, g.begin() + 16);
  g[12] = 0x91;
  EXPECT_EQ(decide(rs, g), 20u);
}

TEST(Match, AStateResumesItsRulesSkiptoAndCount) {
  Ruleset rs = ruleset({"add 100 skipto 1000 tcp from 10.0.0.1 to any setup keep-state",
                        "add 200 deny ip from any to any", "add 1000 allow ip from any to any"});
  FrameSpec syn;
  EXPECT_EQ(decide(rs, frame(syn), nullptr, false, "a", "b", 1000), 1000u);
  FrameSpec reply;
  reply.src = "10.0.0.2", reply.dst = "10.0.0.1", reply.sport = 80, reply.dport = 1234, reply.tcp_flags = 0x12;
  EXPECT_EQ(decide(rs, frame(reply), nullptr, false, "b", "a", 2000), 1000u);  // skipto again, not denied
  EXPECT_EQ(rs.rules()[0].packets, 2u);
  // Two rules numbered 100: the state knows which one made it.
  Ruleset dup = ruleset({"add 100 deny icmp from any to any", "add 100 allow tcp from 10.0.0.1 to any keep-state",
                         "add 200 deny ip from any to any"});
  EXPECT_EQ(decide(dup, frame(syn), nullptr, false, "a", "b", 1000), 100u);
  Action a;
  EXPECT_EQ(decide(dup, frame(reply), &a, false, "b", "a", 2000), 100u);
  EXPECT_EQ(a, Action::kAllow);
}

TEST(Match, AHalfClosedFlowKeepsItsState) {
  Ruleset rs = ruleset({"add 10 check-state", "add 20 allow tcp from 10.0.0.1 to any keep-state",
                        "add 30 deny ip from any to any"});
  const uint64_t s = 1000000000ull;
  FrameSpec syn, synack, fin;
  synack.src = "10.0.0.2", synack.dst = "10.0.0.1", synack.sport = 80, synack.dport = 1234;
  synack.tcp_flags = 0x12;
  EXPECT_EQ(decide(rs, frame(syn), nullptr, false, "a", "b", 1 * s), 20u);
  EXPECT_EQ(decide(rs, frame(synack), nullptr, false, "b", "a", 1 * s), 20u);
  fin.tcp_flags = 0x11;  // one side is done sending
  EXPECT_EQ(decide(rs, frame(fin), nullptr, false, "a", "b", 2 * s), 20u);
  synack.tcp_flags = 0x10;  // the other still sends, 10 s later
  EXPECT_EQ(decide(rs, frame(synack), nullptr, false, "b", "a", 12 * s), 20u);
  synack.tcp_flags = 0x11;  // now both FIN: a second later it is gone
  EXPECT_EQ(decide(rs, frame(synack), nullptr, false, "b", "a", 13 * s), 20u);
  synack.tcp_flags = 0x10;
  EXPECT_EQ(decide(rs, frame(synack), nullptr, false, "b", "a", 15 * s), 30u);
}

TEST(Match, MeIsEveryHostAddress) {
  Ruleset rs = ruleset({"add 10 deny ip from any to me6", "add 20 count ip from any to me",
                        "add 30 allow ip from any to any"});
  Addr v4, v6;
  inet_pton(AF_INET, "10.0.0.2", v4.a);
  memset(v4.m, 0xff, 4);
  v6.v6 = true;
  inet_pton(AF_INET6, "2001:db8::2", v6.a);
  memset(v6.m, 0xff, 16);
  rs.set_me({v4, v6});
  FrameSpec s;
  EXPECT_EQ(decide(rs, frame(s)), 30u);
  EXPECT_EQ(rs.rules()[1].packets, 1u);  // `me` took the IPv4 address
  FrameSpec t;
  t.v6 = true, t.src = "2001:db8::1", t.dst = "2001:db8::2";
  EXPECT_EQ(decide(rs, frame(t)), 10u);
  Ruleset only = ruleset({"add 20 deny ip from any to me", "add 30 allow ip from any to any"});
  only.set_me({v4, v6});
  EXPECT_EQ(decide(only, frame(t)), 20u);  // and the IPv6 one
}

TEST(Commands, ADeleteOfSeveralRulesIsAllOrNothing) {
  Ruleset rs = ruleset({"add 100 allow ip from any to any", "add 200 deny ip from any to any"});
  std::string out, err;
  EXPECT_FALSE(run_command(rs, split_words("delete 100 999"), &out, &err));
  EXPECT_EQ(rs.rules().size(), 3u);
  EXPECT_TRUE(run_command(rs, split_words("-f flush"), &out, &err)) << err;
  EXPECT_EQ(rs.rules().size(), 1u);
}

// ---- dummynet against a simulated clock ----

namespace {

constexpr uint64_t kMs = 1000000ull;

struct Out {
  uint64_t t;
  uint32_t out, len;
  uint16_t sport;
};

// Configure dn with the commands; fails the test on a refused one.
void configure(Dummynet& dn, const std::vector<std::string>& cmds) {
  for (const std::string& c : cmds) {
    std::string out, err;
    ASSERT_TRUE(dn.command(split_words(c), &out, &err)) << c << ": " << err;
  }
}

bool hold(Dummynet& dn, bool queue, uint32_t n, const FrameSpec& s, uint64_t now, uint32_t out = 0) {
  const std::vector<uint8_t> f = frame(s);
  Packet p;
  parse_packet(f.data(), uint32_t(f.size()), &p);
  return dn.enqueue(queue, n, p, f.data(), uint32_t(f.size()), out, now);
}

// Run the clock from `from` to `to` in steps of `step`, collecting what leaves.
std::vector<Out> drain(Dummynet& dn, uint64_t from, uint64_t to, uint64_t step) {
  std::vector<Out> got;
  for (uint64_t t = from; t <= to; t += step)
    dn.run(t, [&](uint32_t o, const uint8_t* f, uint32_t l, uint64_t token) {
      EXPECT_EQ(token, Dummynet::kNoToken);
      got.push_back(Out{t, o, l, uint16_t(f[34] << 8 | f[35])});
      return true;
    });
  return got;
}

}  // namespace

TEST(Dummynet, BandwidthIsATokenRate) {
  Dummynet dn;
  configure(dn, {"pipe 1 config bw 10Mbit/s queue 200"});
  FrameSpec s;
  s.proto = 17;
  s.payload = 1250 - 14 - 20 - 8;  // 1250-byte frames: 1 ms each at 10 Mbit/s
  for (int k = 0; k < 100; k++) ASSERT_TRUE(hold(dn, false, 1, s, 0));
  const std::vector<Out> got = drain(dn, 0, 200 * kMs, 100000);  // a 100 us clock
  ASSERT_EQ(got.size(), 100u);
  for (size_t k = 0; k < got.size(); k++) EXPECT_EQ(got[k].t, (k + 1) * kMs) << k;
  EXPECT_EQ(dn.held(), 0u);
}

TEST(Dummynet, DelayAddsToTheLinkTime) {
  Dummynet dn;
  configure(dn, {"pipe 2 config delay 20", "pipe 3 config bw 1Mbit/s delay 500us"});
  FrameSpec s;
  s.proto = 17;
  ASSERT_TRUE(hold(dn, false, 2, s, 5 * kMs));
  std::vector<Out> got = drain(dn, 0, 40 * kMs, 10000);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].t, 25 * kMs);
  // 1 Mbit/s: a 62-byte frame takes 496 us, then 500 us of delay.
  ASSERT_TRUE(hold(dn, false, 3, s, 0));
  got = drain(dn, 0, 2 * kMs, 1000);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].t, 996000u);
  EXPECT_EQ(got[0].len, frame(s).size());
}

TEST(Dummynet, LossIsTheConfiguredRate) {
  Dummynet dn;
  configure(dn, {"pipe 4 config plr 0.1 queue 100000"});
  FrameSpec s;
  s.proto = 17;
  int kept = 0;
  for (int k = 0; k < 10000; k++) kept += hold(dn, false, 4, s, 0);
  // Binomial(10000, 0.1): 1000 lost, sd 30; 5 sd either way.
  EXPECT_GT(10000 - kept, 1000 - 150);
  EXPECT_LT(10000 - kept, 1000 + 150);
  EXPECT_EQ(dn.stats().plr_drops, uint64_t(10000 - kept));
  EXPECT_EQ(drain(dn, 0, 0, 1).size(), size_t(kept));
}

TEST(Dummynet, AFullQueueDropsTheTail) {
  Dummynet dn;
  configure(dn, {"pipe 5 config bw 1Mbit/s queue 10", "pipe 6 config bw 1Mbit/s queue 3KB"});
  FrameSpec s;
  s.proto = 17;
  int kept = 0;
  for (int k = 0; k < 20; k++) kept += hold(dn, false, 5, s, 0);
  EXPECT_EQ(kept, 10);
  s.payload = 1000 - 42;  // 1000-byte frames: three fit in 3 KB (3072 bytes)
  kept = 0;
  for (int k = 0; k < 5; k++) kept += hold(dn, false, 6, s, 0);
  EXPECT_EQ(kept, 3);
  EXPECT_EQ(dn.stats().queue_drops, 12u);
  EXPECT_FALSE(hold(dn, false, 77, s, 0));  // no such pipe
  EXPECT_EQ(dn.stats().no_pipe, 1u);
}

TEST(Dummynet, WeightsShareTheLink) {
  for (const char* type : {"wf2q+", "rr", "qfq"}) {
    Dummynet dn;
    configure(dn, {"pipe 1 config bw 8Mbit/s", std::string("sched 1 config type ") + type,
                   "queue 10 config pipe 1 weight 1 queue 1000", "queue 30 config pipe 1 weight 3 queue 1000"});
    FrameSpec a, b;
    a.proto = b.proto = 17;
    a.payload = b.payload = 1000 - 42;  // 1 ms each at 8 Mbit/s
    a.sport = 1, b.sport = 3;
    for (int k = 0; k < 400; k++) {
      ASSERT_TRUE(hold(dn, true, 10, a, 0));
      ASSERT_TRUE(hold(dn, true, 30, b, 0));
    }
    // The first 200 ms: both backlogged, 200 frames shared 1:3.
    const std::vector<Out> got = drain(dn, 0, 200 * kMs, kMs);
    ASSERT_EQ(got.size(), 200u) << type;
    int ones = 0;
    for (const Out& o : got) ones += o.sport == 1;
    EXPECT_NEAR(ones, 50, 3) << type;
  }
}

TEST(Dummynet, FifoKeepsArrivalOrder) {
  Dummynet dn;
  configure(dn, {"pipe 1 config bw 8Mbit/s", "sched 1 config type fifo", "queue 10 config pipe 1 weight 1",
                 "queue 30 config pipe 1 weight 50"});
  FrameSpec s;
  s.proto = 17;
  for (int k = 0; k < 20; k++) {
    s.sport = uint16_t(k);
    ASSERT_TRUE(hold(dn, true, k % 2 ? 30 : 10, s, 0));
  }
  const std::vector<Out> got = drain(dn, 0, 50 * kMs, kMs);
  ASSERT_EQ(got.size(), 20u);
  for (int k = 0; k < 20; k++) EXPECT_EQ(got[size_t(k)].sport, k);
}

TEST(Dummynet, AMaskGivesEachFlowItsOwnLink) {
  Dummynet dn;
  configure(dn, {"pipe 1 config bw 10Mbit/s mask src-ip 0xffffffff queue 100"});
  FrameSpec a, b;
  a.proto = b.proto = 17;
  a.payload = b.payload = 1250 - 42;
  a.src = "10.0.0.1", b.src = "10.0.0.2";
  a.sport = 1, b.sport = 2;
  for (int k = 0; k < 10; k++) {
    ASSERT_TRUE(hold(dn, false, 1, a, 0));
    ASSERT_TRUE(hold(dn, false, 1, b, 0));
  }
  // Each flow at the full 10 Mbit/s: both done by 10 ms.
  const std::vector<Out> got = drain(dn, 0, 10 * kMs, 100000);
  EXPECT_EQ(got.size(), 20u);
  std::string out, err;
  ASSERT_TRUE(dn.command(split_words("pipe show"), &out, &err));
  EXPECT_NE(out.find("00001: 10.000 Mbit/s 0.000 ms queue 100 sl. sched WF2Q+ dynamic (mask)"), std::string::npos) << out;
}

// Zero copy: a packet held by token is the caller's bytes, not a copy; the
// token comes back with it when it goes, or through the release hook when
// it is dropped after it was held, and a refused packet keeps its token.
TEST(Dummynet, TokensHoldTheCallersBytesAndComeBack) {
  std::vector<std::pair<uint32_t, uint64_t>> released;
  auto owned = std::make_unique<Dummynet>();
  Dummynet& dn = *owned;
  configure(dn, {"pipe 1 config delay 10 queue 3", "pipe 2 config delay 10"});
  dn.set_release([](void* c, uint32_t out, uint64_t token) {
    static_cast<std::vector<std::pair<uint32_t, uint64_t>>*>(c)->push_back({out, token});
  }, &released);
  FrameSpec s;
  s.proto = 17;
  std::vector<std::vector<uint8_t>> bufs;
  for (int k = 0; k < 4; k++) {
    s.sport = uint16_t(100 + k);
    bufs.push_back(frame(s));
  }
  Packet p;
  parse_packet(bufs[0].data(), uint32_t(bufs[0].size()), &p);
  for (uint64_t k = 0; k < 4; k++)  // the fourth finds the queue full
    EXPECT_EQ(dn.enqueue(false, 1, p, bufs[k].data(), uint32_t(bufs[k].size()), 7, 0, 40 + k), k < 3) << k;
  ASSERT_TRUE(dn.enqueue(false, 2, p, bufs[3].data(), uint32_t(bufs[3].size()), 5, 0, 99));
  EXPECT_EQ(dn.stats().zero_copy, 4u);
  EXPECT_EQ(dn.held(), 4u);
  bufs[1][35] = 0x77;  // written after it was held: what leaves is the caller's buffer
  std::vector<std::pair<const uint8_t*, uint64_t>> sent;
  bool full = true;  // the first try finds the output full: the packet stays first
  const auto sink = [&](uint32_t o, const uint8_t* f, uint32_t l, uint64_t token) {
    if (full) return full = false;
    EXPECT_EQ(o, 7u);
    EXPECT_EQ(l, bufs[0].size());
    sent.push_back({f, token});
    return true;
  };
  std::string out, err;
  ASSERT_TRUE(dn.command(split_words("pipe 2 delete"), &out, &err)) << err;
  ASSERT_EQ(released.size(), 1u);
  EXPECT_EQ(released[0], std::make_pair(5u, uint64_t(99)));
  EXPECT_EQ(dn.held(), 3u);
  dn.run(5 * kMs, sink);
  EXPECT_TRUE(sent.empty());
  dn.run(10 * kMs, sink);
  EXPECT_TRUE(sent.empty());  // the output was full
  dn.run(10 * kMs, sink);
  ASSERT_EQ(sent.size(), 3u);
  for (size_t k = 0; k < 3; k++) {
    EXPECT_EQ(sent[k].first, bufs[k].data()) << k;
    EXPECT_EQ(sent[k].second, 40 + k) << k;
  }
  EXPECT_EQ(sent[1].first[35], 0x77);
  EXPECT_EQ(dn.held(), 0u);
  EXPECT_EQ(released.size(), 1u);
  // A copy is a copy: changing the frame after it is held changes nothing.
  ASSERT_TRUE(dn.enqueue(false, 1, p, bufs[0].data(), uint32_t(bufs[0].size()), 7, 20 * kMs));
  bufs[0][35] = 0x55;
  std::vector<uint8_t> got;
  dn.run(30 * kMs, [&](uint32_t, const uint8_t* f, uint32_t l, uint64_t token) {
    EXPECT_EQ(token, Dummynet::kNoToken);
    got.assign(f, f + l);
    return true;
  });
  ASSERT_EQ(got.size(), bufs[0].size());
  EXPECT_NE(got[35], 0x55);
  // Held tokens are not released by the destructor: the caller frees then.
  ASSERT_TRUE(dn.enqueue(false, 1, p, bufs[2].data(), uint32_t(bufs[2].size()), 7, 40 * kMs, 123));
  owned.reset();
  EXPECT_EQ(released.size(), 1u);
}

// A flow set without masks keeps its only queue: reconfiguring or
// deleting the pipe or the flow set must drop that shortcut with the
// queue (the sanitizer build catches a stale one).
TEST(Dummynet, ReconfiguredPipesAndQueuesTakePacketsAgain) {
  Dummynet dn;
  FrameSpec s;
  s.proto = 17;
  configure(dn, {"pipe 1 config delay 1"});
  ASSERT_TRUE(hold(dn, false, 1, s, 0));
  configure(dn, {"pipe 1 config delay 2"});  // the held packet goes with the old link
  EXPECT_EQ(dn.held(), 0u);
  ASSERT_TRUE(hold(dn, false, 1, s, 0));
  std::vector<Out> got = drain(dn, 0, 3 * kMs, kMs);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].t, 2 * kMs);
  configure(dn, {"queue 2 config pipe 1"});
  ASSERT_TRUE(hold(dn, true, 2, s, 10 * kMs));
  configure(dn, {"queue 2 config pipe 1 weight 3"});
  EXPECT_EQ(dn.held(), 0u);
  ASSERT_TRUE(hold(dn, true, 2, s, 10 * kMs));
  ASSERT_TRUE(hold(dn, false, 1, s, 10 * kMs));
  configure(dn, {"pipe 1 config delay 5 mask src-port 0xffff"});  // per-flow links now
  EXPECT_EQ(dn.held(), 0u);
  for (uint16_t port : {100, 200, 100}) {
    s.sport = port;
    ASSERT_TRUE(hold(dn, true, 2, s, 20 * kMs));
  }
  got = drain(dn, 20 * kMs, 30 * kMs, kMs);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].t, 25 * kMs);
  std::string out, err;
  ASSERT_TRUE(dn.command(split_words("pipe 1 delete"), &out, &err)) << err;
  EXPECT_FALSE(hold(dn, true, 2, s, 40 * kMs));  // its pipe is gone
  EXPECT_EQ(dn.stats().no_pipe, 1u);
  configure(dn, {"pipe 1 config delay 1"});
  ASSERT_TRUE(hold(dn, true, 2, s, 40 * kMs));
  ASSERT_TRUE(hold(dn, false, 1, s, 40 * kMs));
  got = drain(dn, 40 * kMs, 42 * kMs, kMs);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(dn.held(), 0u);
}

TEST(Dummynet, ConfigErrorsNameTheWord) {
  Dummynet dn;
  const struct {
    const char* cmd;
    const char* err;
  } cases[] = {
      {"pipe 1 config bw fast", "pipe: bad bandwidth `fast'"},
      {"pipe 1 config delay soon", "pipe: bad delay `soon'"},
      {"pipe 1 config plr 2", "pipe: bad plr `2' (0..1)"},
      {"pipe 1 config queue 0", "pipe: bad queue `0' (1..100000 slots)"},
      {"pipe 1 config mask src-ip zz", "pipe: bad mask `zz' for src-ip"},
      {"pipe 1 config frob 1", "pipe: unrecognised option `frob'"},
      {"queue 2 config weight 5", "queue: a queue needs `pipe N' or `sched N'"},
      {"queue 2 config pipe 9", "queue: pipe/sched 9 does not exist"},
      {"sched 1 config type best", "sched: unknown scheduler type `best'"},
      {"pipe 9 delete", "pipe: 9 not found"},
  };
  for (const auto& c : cases) {
    std::string out, err;
    EXPECT_FALSE(dn.command(split_words(c.cmd), &out, &err)) << c.cmd;
    EXPECT_EQ(err, c.err) << c.cmd;
  }
  EXPECT_FALSE(dn.exists(false, 1));  // nothing was half made
  std::string out, err;
  ASSERT_TRUE(dn.command(split_words("pipe 1 config bw 2 Mbit/s delay 10ms"), &out, &err)) << err;
  ASSERT_TRUE(dn.command(split_words("pipe 1 show"), &out, &err));
  EXPECT_EQ(out.substr(0, out.find('\n')), "00001: 2.000 Mbit/s 10.000 ms queue 50 sl. sched WF2Q+");
  ASSERT_TRUE(dn.command(split_words("pipe 1 delete"), &out, &err));
  EXPECT_FALSE(dn.exists(false, 1));
}

TEST(Log, MatchedRulesLogUpToTheirAmount) {
  Ruleset rs = ruleset({"add 100 count log ip from any to any", "add 200 deny log logamount 2 tcp from any to any 22",
                        "add 300 allow ip from any to any"});
  std::vector<std::string> lines;
  rs.set_logger([](void* c, const Rule& r, const Packet& p, const Where& w) {
    static_cast<std::vector<std::string>*>(c)->push_back(log_line(r, p, w));
  }, &lines);
  FrameSpec s;
  s.dport = 22;
  for (int k = 0; k < 3; k++) decide(rs, frame(s), nullptr, false, "netmap:eth0");
  ASSERT_EQ(lines.size(), 5u);  // three counted, two of three denied
  EXPECT_EQ(lines[0], "ipfw: 100 Count TCP 10.0.0.1:1234 10.0.0.2:22 in via netmap:eth0");
  EXPECT_EQ(lines[1], "ipfw: 200 Deny TCP 10.0.0.1:1234 10.0.0.2:22 in via netmap:eth0");
  std::string out, err;
  ASSERT_TRUE(run_command(rs, split_words("resetlog 200"), &out, &err));
  decide(rs, frame(s), nullptr, false, "netmap:eth0");
  EXPECT_EQ(lines.size(), 7u);
  EXPECT_EQ(format_rule(rs.rules()[1]), "00200 deny log logamount 2 tcp from any to any 22");
}
