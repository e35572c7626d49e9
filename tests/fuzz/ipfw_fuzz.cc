// Fuzzes ipfw's command and rule grammar (src/ipfw) and its packet parser
// and matcher. The input's first line is a command run on a ruleset
// already holding rules of every kind; the rest is a frame run through it,
// as it comes in and as it goes out, and answered when the verdict asks.
//
// Checks, besides no crash/UB/leak: a rule that parses prints back as a
// rule that parses again to the same text (list is stable), a reply
// stays within its buffer, and lb's flow hash (tools/flow_hash.h, on this
// parser) is symmetric: the frame with its addresses (and ports, when it
// has them and is no fragment) swapped hashes alike. The first line also
// goes to nmreplay's -B, -D and -L parsers (tools/replay.h); a link made of
// what they accept sends frames in order.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ipfw/command.h"
#include "ipfw/packet.h"
#include "ipfw/reply.h"
#include "ipfw/ruleset.h"
#include "flow_hash.h"
#include "replay.h"

using namespace unetmap::ipfw;

namespace {

Ruleset make_base() {
  Ruleset rs;
  const char* const cmds[] = {
      "table 1 add 10.0.0.0/8 5", "table 1 add 2001:db8::/32", "add 10 check-state",
      "add 20 count ip from table(1) to any", "add 30 skipto 100 tcp from any to any established",
      "add 40 allow udp from any to any 53 keep-state", "add 50 reject tcp from any to any 23",
      "add 60 unreach port udp from any to any 7", "add 70 deny ip from any to any frag",
      "add 80 deny ip from any to any in recv a", "add 90 deny ip from any to any out xmit b",
      "add 100 allow icmp from any to any icmptypes 0,8", "add 110 allow ipv6-icmp from any to any",
      "add 120 reset tcp from any to any tcpflags syn,!ack", "add 130 prob 0.5 allow ip from me to any"};
  std::string out, err;
  for (const char* c : cmds)
    if (!run_command(rs, split_words(c), &out, &err)) {
      fprintf(stderr, "base ruleset: %s: %s\n", c, err.c_str());
      abort();
    }
  return rs;
}

// The frame with its ends swapped hashes as the frame does.
void check_flow_hash(const std::vector<uint8_t>& frame, const Packet& p) {
  const unetmap::lb::FlowKey h = unetmap::lb::flow_hash(frame.data(), uint32_t(frame.size()));
  if (!p.ipv || p.truncated) return;
  std::vector<uint8_t> r = frame;
  const uint32_t alen = p.ipv == 6 ? 16 : 4, src = p.l3 + (p.ipv == 6 ? 8 : 12);
  if (src + 2 * alen > r.size()) return;
  for (uint32_t k = 0; k < alen; k++) std::swap(r[src + k], r[src + alen + k]);
  if (p.has_ports && !p.fragmented && p.l4 + 4 <= r.size()) {
    std::swap(r[p.l4], r[p.l4 + 2]);
    std::swap(r[p.l4 + 1], r[p.l4 + 3]);
  }
  const unetmap::lb::FlowKey g = unetmap::lb::flow_hash(r.data(), uint32_t(r.size()));
  if (g.hash != h.hash || g.ip != h.ip) {
    fprintf(stderr, "flow hash not symmetric: %08x (ip %d) and %08x (ip %d) reversed\n", h.hash, h.ip, g.hash, g.ip);
    abort();
  }
}

}  // namespace

// nmreplay's parsers on `arg`; a link of what they accept never sends a
// frame before the one ahead of it, over two passes.
void check_replay_link(const std::string& arg) {
  namespace rp = unetmap::replay;
  rp::Rate rate;
  rp::Delay delay;
  rp::Loss loss;
  std::string why;
  const bool r = rp::parse_rate(arg.c_str(), &rate, &why), d = rp::parse_delay(arg.c_str(), &delay, &why),
             l = rp::parse_loss(arg.c_str(), &loss, &why);
  rp::LinkParams lp;
  const bool ro = rp::parse_reorder(arg.c_str(), &lp.reorder_p, &lp.hold_ns, &why),
             q = rp::parse_size(arg.c_str(), &lp.queue_bytes, &why);
  if (!r && !d && !l && !ro && !q) return;
  // tlem's link of what parsed: a frame never leaves before it came, and
  // frames not held for reordering leave in order.
  if (r && rate.kind != rp::Rate::kReal) lp.rate = rate;
  if (d) lp.delay = delay;
  if (l) lp.loss = loss;
  rp::ArrivalLink al(lp, arg.size());
  uint64_t last = 0;
  for (uint32_t i = 0; i < 16; i++) {
    const uint64_t now = 1000000ull * (i / 3);
    uint64_t out;
    bool held;
    if (al.arrive(now, 60 + i * 100, &out, &held) != rp::ArrivalLink::kGo) continue;
    if (out < now || (!held && out < last)) {
      fprintf(stderr, "tlem link '%s': frame %u out at %llu (came %llu, last %llu)\n", arg.c_str(), i,
              (unsigned long long)out, (unsigned long long)now, (unsigned long long)last);
      abort();
    }
    if (!held) last = out;
  }
  rp::Link link(rate, delay, loss, arg.size());
  uint64_t prev = 0;
  bool lost;
  for (int pass = 0; pass < 2; pass++, link.end_pass())
    for (uint32_t i = 0; i < 8; i++) {
      const uint64_t t = link.next(60 + i * 200, 1000000000ull + (i * 7919u % 5) * 1000000ull, &lost);
      if (t < prev) {
        fprintf(stderr, "replay link '%s': frame %u at %llu before %llu\n", arg.c_str(), i, (unsigned long long)t,
                (unsigned long long)prev);
        abort();
      }
      prev = t;
    }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Ruleset base = make_base();
  Ruleset rs = base;
  const std::string in(reinterpret_cast<const char*>(data), size);
  const size_t nl = in.find('\n');
  const std::string line = in.substr(0, nl);
  const std::vector<std::string> words = split_words(line);
  Rule r;
  std::string err;
  if (parse_rule(words, &r, &err)) {
    const std::string text = format_rule(r);
    Rule again;
    std::vector<std::string> w2 = split_words(text);
    w2.erase(w2.begin());  // the number, printed 0-padded
    std::vector<std::string> with_num = {std::to_string(r.num)};
    with_num.insert(with_num.end(), w2.begin(), w2.end());
    if (r.num == 0) with_num.erase(with_num.begin());
    if (!parse_rule(with_num, &again, &err) || format_rule(again) != text) {
      fprintf(stderr, "'%s' printed as '%s', which reads back as '%s' (%s)\n", line.c_str(), text.c_str(),
              format_rule(again).c_str(), err.c_str());
      abort();
    }
  }
  std::string out;
  run_command(rs, words, &out, &err);
  check_replay_link(line);
  if (nl == std::string::npos) return 0;
  const std::vector<uint8_t> frame(data + nl + 1, data + size);
  Packet p;
  parse_packet(frame.data(), uint32_t(frame.size()), &p);
  const std::string a = "a", b = "b";
  for (int out_dir = 0; out_dir < 2; out_dir++) {
    Where w;
    w.out = out_dir;
    w.recv = &a;
    w.xmit = &b;
    w.now_ns = 1000;
    const Verdict v = rs.check(p, w);
    std::vector<uint8_t> reply(1536);
    const uint32_t n = make_reply(p, v.action, v.arg, reply.data(), uint32_t(reply.size()));
    if (n > reply.size()) abort();
  }
  check_flow_hash(frame, p);
  return 0;
}
