// vale-ctl, run as a real process (the binary the build made) against the
// test's own runtime directory: persistent ports made, attached, listed,
// detached and removed by the tool while this process opens them and moves
// packets through the switch; statistics and JSON output checked against
// what was sent; every kind of bad argument refused with one line.
#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "core/worker.h"
#include "util/proc.h"
#include "util/test_util.h"

#ifndef VALE_CTL
#error "VALE_CTL (path of the vale-ctl binary) must be defined by the build"
#endif

using nmtest::Child;
using nmtest::now_ms;

namespace {

struct Result {
  int code = -1;  // exit status; -1 if it did not finish in time
  std::string out, err;
};

// Run vale-ctl with args; collect stdout and stderr until it exits (bounded).
Result vale_ctl(const std::vector<std::string>& args, int timeout_ms = 10000) {
  std::vector<std::string> argv = {VALE_CTL};
  argv.insert(argv.end(), args.begin(), args.end());
  nmtest::Proc p(argv);
  Result r;
  r.code = p.finish(timeout_ms);
  r.out = p.out();
  r.err = p.err();
  return r;
}

std::string show(const std::vector<std::string>& args, const Result& r) {
  std::string s = "vale-ctl";
  for (auto& a : args) s += " '" + a + "'";
  return s + "\n  exit " + std::to_string(r.code) + "\n  stdout: " + r.out + "\n  stderr: " + r.err;
}

// Result and expect success.
Result ok(const std::vector<std::string>& args) {
  Result r = vale_ctl(args);
  EXPECT_EQ(r.code, 0) << show(args, r);
  EXPECT_EQ(r.err, "") << show(args, r);
  return r;
}

size_t lines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// Result and expect a failure explained in one line of stderr that contains
// every one of `words`.
Result fails(const std::vector<std::string>& args, int code, std::vector<std::string> words) {
  Result r = vale_ctl(args);
  EXPECT_EQ(r.code, code) << show(args, r);
  EXPECT_EQ(lines(r.err), 1u) << "want one line of explanation\n" << show(args, r);
  EXPECT_EQ(r.out, "") << show(args, r);
  for (auto& w : words) EXPECT_NE(r.err.find(w), std::string::npos) << "want '" << w << "'\n" << show(args, r);
  return r;
}

bool has_line(const std::string& out, const std::string& line) {
  std::istringstream in(out);
  for (std::string l; std::getline(in, l);)
    if (l == line) return true;
  return false;
}

// The whitespace-separated fields of the -s row of `port`.
std::vector<std::string> stats_row(const std::string& out, const std::string& port) {
  std::istringstream in(out);
  for (std::string l; std::getline(in, l);) {
    std::istringstream ls(l);
    std::vector<std::string> f;
    for (std::string w; ls >> w;) f.push_back(w);
    if (!f.empty() && f[0] == port) return f;
  }
  return {};
}

// ---- a small JSON checker: the whole text is one JSON value ----

class Json {
 public:
  explicit Json(const std::string& s) : s_(s) {}
  bool valid() {
    ws();
    if (!value()) return false;
    ws();
    return i_ == s_.size();
  }

 private:
  void ws() {
    while (i_ < s_.size() && isspace(static_cast<unsigned char>(s_[i_]))) i_++;
  }
  bool lit(const char* w) {
    size_t n = strlen(w);
    if (s_.compare(i_, n, w) != 0) return false;
    i_ += n;
    return true;
  }
  bool string() {
    if (i_ >= s_.size() || s_[i_] != '"') return false;
    for (i_++; i_ < s_.size(); i_++) {
      if (s_[i_] == '\\') i_++;
      else if (s_[i_] == '"') return ++i_, true;
      else if (static_cast<unsigned char>(s_[i_]) < 0x20) return false;
    }
    return false;
  }
  bool number() {
    size_t b = i_;
    if (i_ < s_.size() && s_[i_] == '-') i_++;
    while (i_ < s_.size() && (isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.' ||
                              s_[i_] == 'e' || s_[i_] == 'E' || s_[i_] == '+'))
      i_++;
    return i_ > b && isdigit(static_cast<unsigned char>(s_[i_ - 1]));
  }
  template <class F>
  bool list(char close, F item) {
    i_++;
    ws();
    if (i_ < s_.size() && s_[i_] == close) return ++i_, true;
    for (;;) {
      ws();
      if (!item()) return false;
      ws();
      if (i_ >= s_.size()) return false;
      if (s_[i_] == close) return ++i_, true;
      if (s_[i_++] != ',') return false;
    }
  }
  bool value() {
    if (i_ >= s_.size()) return false;
    switch (s_[i_]) {
      case '{':
        return list('}', [this] {
          if (!string()) return false;
          ws();
          if (i_ >= s_.size() || s_[i_++] != ':') return false;
          ws();
          return value();
        });
      case '[':
        return list(']', [this] { return value(); });
      case '"':
        return string();
      case 't':
        return lit("true");
      case 'f':
        return lit("false");
      case 'n':
        return lit("null");
      default:
        return number();
    }
  }
  const std::string& s_;
  size_t i_ = 0;
};

bool json_valid(const std::string& s) { return Json(s).valid(); }

// "key": N in the JSON object of port `name` (-s -j output); -1 if absent.
long long json_port_field(const std::string& js, const std::string& name, const std::string& key) {
  size_t at = js.find("\"name\": \"" + name + "\"");
  if (at == std::string::npos) return -1;
  size_t open = js.rfind('{', at), close = js.find('}', at);
  std::string obj = js.substr(open, close - open + 1), k = "\"" + key + "\":";
  size_t v = obj.find(k);
  if (v == std::string::npos) return -1;
  v += k.size();
  while (v < obj.size() && obj[v] == ' ') v++;
  size_t e = v;
  while (e < obj.size() && isdigit(static_cast<unsigned char>(obj[e]))) e++;
  if (e == v || (obj[e] != ',' && obj[e] != '}')) return -1;  // not a plain number
  return std::stoll(obj.substr(v, e - v));
}

// ---- packets through the switch ----

constexpr uint8_t kBroadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

std::vector<uint8_t> frame(uint8_t src_id, uint32_t seq, size_t len) {
  std::vector<uint8_t> f(len, 0);
  memcpy(f.data(), kBroadcast, 6);
  const uint8_t src[6] = {0x02, 0, 0, 0, 0, src_id};
  memcpy(f.data() + 6, src, 6);
  f[12] = 0x88, f[13] = 0xb5;  // local experimental ethertype
  memcpy(f.data() + 14, &seq, sizeof seq);
  for (size_t i = 18; i < len; i++) f[i] = uint8_t(seq * 7 + i);
  return f;
}

// Send `count` frames of `len` bytes from port d (one txsync at the end).
void send_frames(nmport_d* d, uint8_t src_id, uint32_t count, size_t len) {
  for (uint32_t s = 0; s < count; s++) {
    std::vector<uint8_t> f = frame(src_id, s, len);
    ASSERT_EQ(nmport_inject(d, f.data(), f.size()), int(len)) << "no room for frame " << s;
  }
  ASSERT_EQ(ioctl(d->fd, NIOCTXSYNC, nullptr), 0) << strerror(errno);
}

// Receive exactly `count` frames sent by send_frames(src_id, .., len),
// blocking in poll() with a deadline; release them (NIOCRXSYNC).
void recv_frames(nmport_d* d, uint8_t src_id, uint32_t count, size_t len) {
  const double end = now_ms() + 10000;
  uint32_t got = 0;
  while (got < count) {
    int left = int(end - now_ms());
    pollfd p{d->fd, POLLIN, 0};
    ASSERT_GT(left > 0 ? ::poll(&p, 1, left) : 0, 0)
        << "timed out after " << got << " of " << count << " frames";
    for (unsigned r = d->first_rx_ring; r <= d->last_rx_ring; r++) {
      netmap_ring* ring = NETMAP_RXRING(d->nifp, r);
      while (!nm_ring_empty(ring)) {
        netmap_slot& sl = ring->slot[ring->cur];
        std::vector<uint8_t> want = frame(src_id, got, len);
        ASSERT_EQ(sl.len, len) << "frame " << got;
        ASSERT_EQ(memcmp(NETMAP_BUF(ring, sl.buf_idx), want.data(), len), 0) << "frame " << got;
        ring->head = ring->cur = nm_ring_next(ring, ring->cur);
        ASSERT_LE(++got, count) << "more frames than were sent";
      }
    }
  }
  ASSERT_EQ(ioctl(d->fd, NIOCRXSYNC, nullptr), 0) << strerror(errno);
}

struct Port {
  nmport_d* d = nullptr;
  explicit Port(const char* spec) : d(nmport_open(spec)) {}
  ~Port() { close(); }
  void close() {
    if (d) nmport_close(d);
    d = nullptr;
  }
};

}  // namespace

TEST(ValeCtl, HelpAndUsage) {
  Result h = vale_ctl({"--help"});
  EXPECT_EQ(h.code, 0) << h.err;
  EXPECT_EQ(h.err, "");
  for (const char* o : {"-n NAME", "-r NAME", "-a valeX:NAME", "-d valeX:NAME", "-l [valeX:Y]",
                        "-h valeX:IF", "-C ", "-m MEMID", "-p valeX:IF", "-P valeX:IF", "-s [valeX]",
                        "-L valeX:LOOKUP", "-j", "--help"})
    EXPECT_NE(h.out.find(o), std::string::npos) << "--help does not mention " << o << "\n" << h.out;

  Result none = vale_ctl({});
  EXPECT_EQ(none.code, 2);
  EXPECT_NE(none.err.find("usage: vale-ctl"), std::string::npos) << none.err;

  for (const char* unknown : {"-x", "--frobnicate"}) {
    Result u = vale_ctl({unknown});
    EXPECT_EQ(u.code, 2) << u.err;
    EXPECT_NE(u.err.find(std::string("unknown option '") + unknown + "'"), std::string::npos)
        << u.err;
    EXPECT_NE(u.err.find("usage: vale-ctl"), std::string::npos) << u.err;
  }
}

TEST(ValeCtl, BadArgumentsAreRefusedWithOneLine) {
  struct Case {
    std::vector<std::string> args;
    std::vector<std::string> words;  // the message names the option and the right form
  };
  const std::vector<Case> cases = {
      {{"-C", "abc", "-n", "p"}, {"-C", "tx_slots 'abc'", "tx_slots[,rx_slots"}},
      {{"-C", "1024,x", "-n", "p"}, {"-C", "rx_slots 'x'"}},
      {{"-C", "1", "-n", "p"}, {"-C", "2..65536"}},
      {{"-C", "64,64,0", "-n", "p"}, {"-C", "tx_rings '0'", "1..64"}},
      {{"-C", "64,64,2,65", "-n", "p"}, {"-C", "rx_rings '65'"}},
      {{"-C", "1,2,3,4,5", "-n", "p"}, {"-C", "at most 4"}},
      {{"-C", "64,,2", "-n", "p"}, {"-C", "rx_slots ''"}},
      {{"-C", "64", "-l"}, {"-C", "applies to -n"}},
      {{"-m", "0", "-n", "p"}, {"-m", "'0'", "1..65535"}},
      {{"-m", "65536", "-n", "p"}, {"-m", "1..65535"}},
      {{"-m", "-1", "-n", "p"}, {"-m"}},
      {{"-m", "3", "-a", "vale0:p"}, {"-m", "applies to -n"}},
      {{"-a", "nocolon"}, {"-a", "'nocolon'", "valeX:NAME"}},
      {{"-a", "switch0:p"}, {"-a", "valeX:NAME"}},
      {{"-a", "vale0:"}, {"-a", "valeX:NAME"}},
      {{"-a", "vale0:a{1"}, {"-a", "valeX:NAME"}},
      {{"-d", "nocolon"}, {"-d", "valeX:NAME"}},
      {{"-h", "eth0"}, {"-h", "valeX:IF"}},
      {{"-l", "nocolon"}, {"-l", "valeX:Y"}},
      {{"-n", "vale0:p"}, {"-n", "NAME, not valeX:NAME"}},
      {{"-n", "a-b"}, {"-n", "letters, digits or _"}},
      {{"-n", std::string(64, 'a')}, {"-n", "1 to 63"}},
      {{"-r", "a b"}, {"-r", "not a port name"}},
      {{"-n"}, {"-n needs an argument"}},
      {{"-a"}, {"-a needs an argument"}},
      {{"-s", "notaswitch"}, {"-s", "valeX"}},
      {{"-L", "vale0"}, {"-L", "valeX:LOOKUP"}},
      {{"-L", "vale0:bogus"}, {"-L", "unknown lookup 'bogus'", "learning", "hub"}},
      {{"-j", "-n", "p"}, {"-j", "-l and -s"}},
      {{"-n", "p", "-a", "vale0:p"}, {"one command at a time"}},
      {{"-l", "vale0:p", "extra"}, {"unexpected argument 'extra'"}},
      {{"-j"}, {"no command"}},
      {{"-a", "vale1:x,vhost=/tmp/a,queues=0"}, {"-a", "queues is 1 to"}},
      {{"-a", "vale1:x,client,vhost=/tmp/a"}, {"-a", "valeX:NAME,vhost=PATH first"}},
  };
  for (const Case& c : cases) fails(c.args, 2, c.words);
  // The library's own report is not printed beside the tool's (one line),
  // whatever the environment says.
  unsetenv("UNETMAP_QUIET");
  fails({"-a", "vale1:x,vhost=/tmp/a,queues=0"}, 2, {"-a", "queues"});
  fails({"-s", "vale9"}, 1, {"-s vale9"});
  setenv("UNETMAP_QUIET", "1", 1);
  // None of them did anything: p can still be made, and nothing is listed.
  Result l = ok({"-l"});
  EXPECT_EQ(l.out, "");
  ok({"-n", "p"});
}

// NIC operations on names that are no interface here, or on NICs that are
// not attached (the working cases are in nic_test, in namespaces).
TEST(ValeCtl, NicOperationsOnMissingNicsFail) {
  fails({"-h", "vale0:nosuchif9"}, 1, {"-h vale0:nosuchif9", "no interface or persistent"});
  fails({"-p", "vale0:nosuchif9"}, 1, {"-p vale0:nosuchif9", "attached with vale-ctl -a"});
  fails({"-P", "vale0:nosuchif9"}, 1, {"-P vale0:nosuchif9", "attached with vale-ctl -a"});
  fails({"-p", "nosuchif9"}, 1, {"-p nosuchif9", "not valeX:Y"});
  fails({"-p", "vale0:x", "-C", "2"}, 2, {"-C", "polling mode"});
}

// The whole life of a persistent port, with traffic through the switch.
TEST(ValeCtl, PersistentPortLifecycleWithTraffic) {
  ok({"-n", "vp"});
  fails({"-n", "vp"}, 1, {"-n vp", "already exists"});
  // Made but on no switch: not listed yet.
  EXPECT_EQ(ok({"-l"}).out, "");

  ok({"-a", "vale0:vp"});
  fails({"-a", "vale0:vp"}, 1, {"-a vale0:vp", "already attached", strerror(EBUSY)});
  // On a second switch it is wrapped (as netmap does): allowed, and the
  // wrapper goes with -d.
  ok({"-a", "vale1:vp"});
  fails({"-a", "vale1:vp"}, 1, {"already attached to vale1", strerror(EBUSY)});
  fails({"-d", "vale0:vp"}, 1, {"-d vale0:vp", "wrapped on vale1", strerror(EBUSY)});
  ok({"-d", "vale1:vp"});
  EXPECT_TRUE(has_line(ok({"-l"}).out, "vale0:vp bridge:0 port:0"));
  EXPECT_EQ(ok({"-l", "vale0:vp"}).out, "vale0:vp bridge:0 port:0\n");

  // This process opens the persistent port and an ephemeral one next to it.
  Port p("vale0:vp");
  ASSERT_NE(p.d, nullptr) << "open vale0:vp";
  Port x("vale0:x");
  ASSERT_NE(x.d, nullptr) << "open vale0:x";
  Result l = ok({"-l"});
  EXPECT_TRUE(has_line(l.out, "vale0:vp bridge:0 port:0")) << l.out;
  EXPECT_TRUE(has_line(l.out, "vale0:x bridge:0 port:1")) << l.out;
  EXPECT_EQ(ok({"-l", "vale0:x"}).out, "vale0:x bridge:0 port:1\n");

  // Broadcast frames both ways.
  send_frames(x.d, 1, 5, 60);
  recv_frames(p.d, 1, 5, 60);
  send_frames(p.d, 2, 3, 100);
  recv_frames(x.d, 2, 3, 100);

  // Text statistics: port index kind rings slots region tx_packets tx_bytes rx_packets drops hdr
  Result s = ok({"-s"});
  EXPECT_NE(s.out.find("vale0: lookup learning, 2 ports"), std::string::npos) << s.out;
  std::vector<std::string> rp = stats_row(s.out, "vale0:vp"), rx = stats_row(s.out, "vale0:x");
  ASSERT_EQ(rp.size(), 11u) << s.out;
  EXPECT_EQ(rp[10], "0");  // no virtio-net header
  ASSERT_EQ(rx.size(), 11u) << s.out;
  EXPECT_EQ(rp[1], "0");
  EXPECT_EQ(rp[2], "persistent");
  EXPECT_EQ(rp[3], "1/1");
  EXPECT_EQ(rp[4], "1024/1024");
  EXPECT_EQ(rp[5], std::to_string(p.d->reg.nr_mem_id));
  EXPECT_EQ(rp[6], "3");    // tx packets
  EXPECT_EQ(rp[7], "300");  // tx bytes
  EXPECT_EQ(rp[8], "5");    // rx packets
  EXPECT_EQ(rp[9], "0");    // drops
  EXPECT_EQ(rx[1], "1");
  EXPECT_EQ(rx[2], "ephemeral");
  EXPECT_EQ(rx[6], "5");
  EXPECT_EQ(rx[7], "300");
  EXPECT_EQ(rx[8], "3");
  EXPECT_EQ(rx[9], "0");
  EXPECT_EQ(ok({"-s", "vale0"}).out, s.out);

  // The same as JSON.
  Result j = ok({"-s", "-j"});
  ASSERT_TRUE(json_valid(j.out)) << j.out;
  EXPECT_EQ(j.out[0], '[') << j.out;
  EXPECT_NE(j.out.find("\"switch\": \"vale0\""), std::string::npos) << j.out;
  EXPECT_EQ(json_port_field(j.out, "vale0:vp", "index"), 0) << j.out;
  EXPECT_EQ(json_port_field(j.out, "vale0:vp", "tx_packets"), 3) << j.out;
  EXPECT_EQ(json_port_field(j.out, "vale0:vp", "tx_bytes"), 300) << j.out;
  EXPECT_EQ(json_port_field(j.out, "vale0:vp", "rx_packets"), 5) << j.out;
  EXPECT_EQ(json_port_field(j.out, "vale0:vp", "drops"), 0) << j.out;
  EXPECT_EQ(json_port_field(j.out, "vale0:vp", "hdr_len"), 0) << j.out;
  EXPECT_EQ(json_port_field(j.out, "vale0:vp", "tx_slots"), 1024) << j.out;
  EXPECT_EQ(json_port_field(j.out, "vale0:x", "tx_packets"), 5) << j.out;
  EXPECT_EQ(json_port_field(j.out, "vale0:x", "rx_packets"), 3) << j.out;
  Result lj = ok({"-l", "-j"});
  ASSERT_TRUE(json_valid(lj.out)) << lj.out;
  EXPECT_EQ(lj.out[0], '[');
  EXPECT_NE(lj.out.find("{\"name\": \"vale0:vp\", \"bridge\": 0, \"port\": 0}"), std::string::npos)
      << lj.out;
  Result l1 = ok({"-l", "vale0:vp", "-j"});
  ASSERT_TRUE(json_valid(l1.out)) << l1.out;
  EXPECT_EQ(l1.out, "{\"name\": \"vale0:vp\", \"bridge\": 0, \"port\": 0}\n");

  // Attached: cannot be removed.
  fails({"-r", "vp"}, 1, {"-r vp", "detach it first", strerror(EBUSY)});
  fails({"-d", "vale1:vp"}, 1, {"-d vale1:vp", "not attached to vale1"});
  ok({"-d", "vale0:vp"});
  Result after = ok({"-l"});
  EXPECT_EQ(after.out.find("vale0:vp"), std::string::npos) << after.out;
  EXPECT_TRUE(has_line(after.out, "vale0:x bridge:0 port:1")) << after.out;
  fails({"-l", "vale0:vp"}, 1, {"-l vale0:vp"});
  // Detached but still open here: not removable either.
  fails({"-r", "vp"}, 1, {"-r vp", strerror(EBUSY)});
  p.close();
  x.close();  // the ephemeral port goes with its last user, and vale0 with it
  EXPECT_EQ(ok({"-l"}).out, "");
  EXPECT_EQ(ok({"-s"}).out, "no VALE switches\n");
  EXPECT_EQ(ok({"-s", "-j"}).out, "[]\n");
  EXPECT_EQ(ok({"-l", "-j"}).out, "[]\n");

  ok({"-r", "vp"});
  fails({"-r", "vp"}, 1, {"-r vp", "no persistent VALE port vp"});
  fails({"-a", "vale0:vp"}, 1, {"-a vale0:vp", "no interface or persistent VALE port 'vp'"});
  // The name is free again.
  ok({"-n", "vp"});
  ok({"-r", "vp"});
}

// ---- attachment forwarders are workers (core/worker.h) ----

// The fields "key:value" of the line of `out` that starts with `first`.
std::map<std::string, std::string> fields_of(const std::string& out, const std::string& first) {
  std::istringstream in(out);
  std::map<std::string, std::string> f;
  for (std::string l; std::getline(in, l);) {
    if (l.rfind(first + " ", 0) != 0) continue;
    std::istringstream ls(l.substr(first.size() + 1));
    for (std::string w; ls >> w;) {
      size_t colon = w.find(':');
      if (colon != std::string::npos) f[w.substr(0, colon)] = w.substr(colon + 1);
    }
    f[""] = l;
  }
  return f;
}

// Wait (at most 10 s) until worker `name` runs in a process other than
// `old`; its pid, or 0.
pid_t wait_restarted(const std::string& name, pid_t old) {
  const double end = now_ms() + 10000;
  while (now_ms() < end) {
    unetmap::worker::Info i;
    std::string why;
    if (unetmap::worker::get(name, &i, &why) == 0 && i.state == unetmap::worker::State::kRunning &&
        i.pid.pid > 0 && i.pid.pid != old)
      return i.pid.pid;
    usleep(5000);
  }
  return 0;
}

// The forwarder of a wrapped port (vale-ctl -a on a second switch) is a
// worker: -W lists it (state, pid, restarts, log), -l shows it beside its
// port. Killed with SIGKILL, it is restarted and the two switches are
// joined again (frames cross both ways); -d stops it and removes it.
TEST(ValeCtl, WrapperIsAWorkerRestartedAfterKill) {
  ok({"-n", "wp"});
  ok({"-a", "vale0:wp"});
  ok({"-a", "vale1:wp"});
  Port a("vale0:a"), b("vale1:b");
  ASSERT_TRUE(a.d && b.d);
  send_frames(a.d, 1, 5, 60);
  recv_frames(b.d, 1, 5, 60);

  const std::string log = std::string(getenv("UNETMAP_DIR")) + "/workers/vale1:wp.log";
  auto w = fields_of(ok({"-W"}).out, "vale1:wp");
  EXPECT_EQ(w["kind"], "attach") << w[""];
  EXPECT_EQ(w["state"], "running") << w[""];
  EXPECT_EQ(w["restarts"], "0") << w[""];
  EXPECT_EQ(w["last_exit"], "-") << w[""];
  EXPECT_EQ(w["log"], log) << w[""];
  EXPECT_EQ(w["status"], "block") << w[""];
  const pid_t pid = pid_t(atoi(w["pid"].c_str()));
  ASSERT_GT(pid, 1) << w[""];
  EXPECT_EQ(vale_ctl({"-W", "vale1:wp"}).code, 0) << "healthy";
  auto l = fields_of(ok({"-l"}).out, "vale1:wp");
  EXPECT_EQ(l["worker"], "running") << l[""];
  EXPECT_EQ(l["pid"], std::to_string(pid)) << l[""];
  EXPECT_EQ(l["restarts"], "0") << l[""];
  Result lj = ok({"-l", "-j"});
  EXPECT_TRUE(json_valid(lj.out)) << lj.out;
  EXPECT_NE(lj.out.find("\"worker\": {\"state\": \"running\""), std::string::npos) << lj.out;
  Result wj = ok({"-W", "-j"});
  EXPECT_TRUE(json_valid(wj.out)) << wj.out;
  EXPECT_NE(wj.out.find("\"log\": \"" + log + "\""), std::string::npos) << wj.out;

  ASSERT_EQ(kill(pid, SIGKILL), 0);
  const pid_t again = wait_restarted("vale1:wp", pid);
  ASSERT_GT(again, 0) << "not restarted";
  send_frames(a.d, 1, 5, 60);
  recv_frames(b.d, 1, 5, 60);
  send_frames(b.d, 2, 3, 100);
  recv_frames(a.d, 2, 3, 100);
  w = fields_of(ok({"-W"}).out, "vale1:wp");
  EXPECT_EQ(w["restarts"], "1") << w[""];
  EXPECT_EQ(w["last_exit"], "signal") << w[""];  // "signal 9 (Killed)"
  EXPECT_NE(w[""].find("last_exit:signal 9 ("), std::string::npos) << w[""];
  EXPECT_EQ(w["pid"], std::to_string(again)) << w[""];
  std::ifstream lf(log);
  std::string text((std::istreambuf_iterator<char>(lf)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("ended: signal 9"), std::string::npos) << text;
  EXPECT_NE(text.find("unetmap-attach: forwarding between wp and vale1:wp"), std::string::npos)
      << "the worker's stderr is in the log\n" << text;

  ok({"-d", "vale1:wp"});
  EXPECT_EQ(ok({"-W"}).out, "no workers\n");
  Result gone = vale_ctl({"-W", "vale1:wp"});
  EXPECT_EQ(gone.code, 1) << gone.err;
  EXPECT_NE(gone.err.find("no worker vale1:wp"), std::string::npos) << gone.err;
  ok({"-d", "vale0:wp"});
  a.close();
  b.close();
  ok({"-r", "wp"});
}

// A forwarder killed five times in a row, each time soon after its start,
// is failed: -W says so (exit 1 for the health check), -l lists the
// attachment apart (its port is not on the switch); attaching again
// replaces it, detaching removes it.
TEST(ValeCtl, WrapperThatKeepsDyingIsFailed) {
  ok({"-n", "fp"});
  ok({"-a", "vale0:fp"});
  ok({"-a", "vale1:fp"});
  pid_t pid = pid_t(atoi(fields_of(ok({"-W"}).out, "vale1:fp")["pid"].c_str()));
  for (int k = 0; k < 5; k++) {
    ASSERT_GT(pid, 1) << "kill " << k;
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    if (k < 4) pid = wait_restarted("vale1:fp", pid);
  }
  unetmap::worker::Info i;
  std::string why;
  const double end = now_ms() + 10000;
  while (now_ms() < end && !(unetmap::worker::get("vale1:fp", &i, &why) == 0 &&
                             i.state == unetmap::worker::State::kFailed))
    usleep(5000);
  ASSERT_EQ(i.state, unetmap::worker::State::kFailed);
  Result h = vale_ctl({"-W", "vale1:fp"});
  EXPECT_EQ(h.code, 1) << h.out << h.err;
  EXPECT_NE(h.out.find("state:failed"), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("restarts:4"), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("reason: ended 5 times in a row"), std::string::npos) << h.out;
  Result l = ok({"-l"});
  EXPECT_NE(l.out.find("vale1:fp worker:failed pid:0 restarts:4 (not on the switch: ended 5 times"),
            std::string::npos) << l.out;
  EXPECT_TRUE(json_valid(ok({"-l", "-j"}).out));
  ok({"-a", "vale1:fp"});  // replaces the failed one
  auto w = fields_of(ok({"-W"}).out, "vale1:fp");
  EXPECT_EQ(w["state"], "running") << w[""];
  EXPECT_EQ(w["restarts"], "0") << w[""];
  ok({"-d", "vale1:fp"});
  ok({"-d", "vale0:fp"});
  ok({"-r", "fp"});
}

// Polling mode is the forwarder's request (its conf): a forwarder killed
// while polling comes back polling; disabled, it says "block".
TEST(ValeCtl, PollingSurvivesARestartOfTheForwarder) {
  ok({"-n", "pp"});
  ok({"-a", "vale0:pp"});
  ok({"-a", "vale1:pp"});
  ok({"-p", "vale1:pp", "-C", "0,0"});
  auto w = fields_of(ok({"-W"}).out, "vale1:pp");
  EXPECT_EQ(w["status"], "poll") << w[""];  // "poll 1 0 1"
  EXPECT_NE(w[""].find("status:poll 1 0 1"), std::string::npos) << w[""];
  fails({"-p", "vale1:pp"}, 1, {"-p vale1:pp", "polling mode already"});
  fails({"-d", "vale1:pp"}, 1, {"-d vale1:pp", "polling mode", strerror(EBUSY)});
  const pid_t pid = pid_t(atoi(w["pid"].c_str()));
  ASSERT_GT(pid, 1);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  ASSERT_GT(wait_restarted("vale1:pp", pid), 0);
  const double end = now_ms() + 10000;
  while (fields_of(ok({"-W"}).out, "vale1:pp")[""].find("status:poll 1 0 1") == std::string::npos &&
         now_ms() < end)
    usleep(10000);
  EXPECT_NE(fields_of(ok({"-W"}).out, "vale1:pp")[""].find("status:poll 1 0 1"), std::string::npos);
  ok({"-P", "vale1:pp"});
  EXPECT_EQ(fields_of(ok({"-W"}).out, "vale1:pp")["status"], "block");
  ok({"-d", "vale1:pp"});
  ok({"-d", "vale0:pp"});
  ok({"-r", "pp"});
}

// -C and -m reach the port: its rings, slots and region as the tool asked.
TEST(ValeCtl, RingConfigurationAndRegion) {
  setenv("UNETMAP_BUF_NUM", "4096", 1);  // region 7 is made with these knobs
  ok({"-n", "q", "-C", "256,512,2,3", "-m", "7"});
  {
    Port q("netmap:q");  // a persistent port on no switch opens by its name
    ASSERT_NE(q.d, nullptr);
    EXPECT_EQ(q.d->nifp->ni_tx_rings, 2u);
    EXPECT_EQ(q.d->nifp->ni_rx_rings, 3u);
    EXPECT_EQ(NETMAP_TXRING(q.d->nifp, 0)->num_slots, 256u);
    EXPECT_EQ(NETMAP_RXRING(q.d->nifp, 0)->num_slots, 512u);
    EXPECT_EQ(q.d->reg.nr_mem_id, 7);
  }
  Result g = ok({"-g", "q"});
  EXPECT_EQ(g.out.rfind("q: region 7,", 0), 0u) << g.out;
  EXPECT_NE(g.out.find("tx 2 rings of 256 slots, rx 3 rings of 512 slots"), std::string::npos)
      << g.out;
  ok({"-a", "vale2:q"});
  std::vector<std::string> row = stats_row(ok({"-s", "vale2"}).out, "vale2:q");
  ASSERT_EQ(row.size(), 11u);
  EXPECT_EQ(row[3], "2/3");
  EXPECT_EQ(row[4], "256/512");
  EXPECT_EQ(row[5], "7");

  // Two values: tx and rx slots; rings default to 1.
  ok({"-n", "q2", "-C", "128,64"});
  ok({"-a", "vale2:q2"});
  row = stats_row(ok({"-s"}).out, "vale2:q2");
  ASSERT_EQ(row.size(), 11u);
  EXPECT_EQ(row[3], "1/1");
  EXPECT_EQ(row[4], "128/64");
  // Three values: the ring count applies to both directions.
  ok({"-n", "q3", "-C", "64,64,4"});
  ok({"-a", "vale2:q3"});
  Port q3("vale2:q3");
  ASSERT_NE(q3.d, nullptr);
  EXPECT_EQ(q3.d->nifp->ni_tx_rings, 4u);
  EXPECT_EQ(q3.d->nifp->ni_rx_rings, 4u);
}

TEST(ValeCtl, LookupFunction) {
  fails({"-L", "vale0:hub"}, 1, {"-L vale0:hub", "no switch vale0", "attach one first"});
  fails({"-s", "vale0"}, 1, {"-s vale0", "no switch vale0"});
  ok({"-n", "vp"});
  ok({"-a", "vale0:vp"});
  ok({"-L", "vale0:hub"});
  EXPECT_NE(ok({"-s"}).out.find("vale0: lookup hub, 1 port"), std::string::npos);
  Result j = ok({"-s", "vale0", "-j"});
  ASSERT_TRUE(json_valid(j.out)) << j.out;
  EXPECT_NE(j.out.find("\"lookup\": \"hub\""), std::string::npos) << j.out;
  ok({"-L", "vale0:learning"});
  EXPECT_NE(ok({"-s"}).out.find("vale0: lookup learning, 1 port"), std::string::npos);
}

// The JSON checker itself: it must refuse what is not JSON.
TEST(ValeCtl, JsonCheckerRefusesBrokenText) {
  EXPECT_TRUE(json_valid("[]"));
  EXPECT_TRUE(json_valid("[{\"a\": 1, \"b\": [true, \"x\"]}]\n"));
  EXPECT_FALSE(json_valid("[{\"a\": 1,}]"));
  EXPECT_FALSE(json_valid("[{\"a\" 1}]"));
  EXPECT_FALSE(json_valid("[{\"a\": 1}"));
  EXPECT_FALSE(json_valid("vale0:vp bridge:0 port:0"));
}
