// Port-name grammar as a register sees it: which port a name reaches, which
// of its rings it binds, the ring geometry and region it asks for, and the
// error (errno, and the text of the nmctx message and unetmap_last_error())
// of a name that cannot be opened. name_test.cc checks the request fields
// nmport_parse fills; here the names are opened for real (nmport_open), or
// parsed where the grammar alone decides (option keys, garbage suffixes).
//
// Only behaviour netmap has is asserted (libnetmap's nmreq.c/nmport.c, the
// kernel's netmap_interp_ringid and NR_EXCLUSIVE rules, netmap_legacy.c).
// Where unetmap differs today the case is left out; the differences found
// (issue 11) are:
//  - "x@3/T": netmap takes flags after a mem_id; unetmap refuses.
//  - "x@3@3": netmap takes the same mem_id twice; unetmap parses the second
//    as an option ("missing body").
//  - @conf and @extmem values: netmap uses atoi (no check, "abc" is 0, no
//    range); unetmap refuses non-numbers and out-of-range values. An empty
//    value ("slots=") is ignored by netmap, refused by unetmap.
//  - "@conf=N" and "@conf:N": netmap refuses (conf has no default key);
//    unetmap takes N as rings.
//  - "@extmem=FILE" and "@share:port=X": netmap accepts (file and port are
//    default keys, and every option takes key=value); unetmap refuses.
//  - extmem keys spelled with '_' (buf_num): netmap accepts, unetmap only
//    takes the '-' spelling.
//  - @N above 65535: netmap truncates to 16 bits; unetmap refuses.
//  - NIOCCTRL with NR_REG_PIPE_MASTER/SLAVE: netmap refuses (EINVAL,
//    "Deprecated pipe nr_mode"); unetmap accepts as NIOCREGIF does.
//  - NIOCCTRL with a 64-byte nr_name: netmap cuts it to 63 characters;
//    unetmap refuses (EINVAL).
//  - NR_REG_ONE_NIC with a ring only one direction has: netmap binds ring 0
//    of the other direction; unetmap refuses (EINVAL).
//  - nmport_register on a registered descriptor: netmap EINVAL, unetmap
//    EBUSY.
//
// Which rings a registration binds is observed through NR_EXCLUSIVE (/x):
// a register that binds a ring another registration holds exclusively
// fails with EBUSY, one that binds other rings succeeds.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "util/remote_port.h"
#include "util/test_util.h"

extern "C" const char* unetmap_last_error(void);

namespace {

using nmtest::CaptureCtx;

// An nmport_open() with its outcome: the descriptor (closed on
// destruction), errno, the nmctx message and unetmap_last_error().
struct Opened {
  nmport_d* d = nullptr;
  int err = 0;
  std::string msg, why;
  Opened() = default;
  Opened(const Opened&) = delete;
  Opened& operator=(const Opened&) = delete;
  ~Opened() {
    if (d) nmport_close(d);
  }
  bool ok() const { return d != nullptr; }
};

// Every descriptor of this process reports to one capturing context (the
// context also lists the process's mapped regions, so it must outlive them).
CaptureCtx& ctx() {
  static CaptureCtx* cc = [] {
    auto* c = new CaptureCtx;
    nmctx_set_default(&c->ctx);
    return c;
  }();
  return *cc;
}

std::unique_ptr<Opened> open_port(const std::string& spec) {
  auto o = std::make_unique<Opened>();
  ctx().last.clear();
  errno = 0;
  o->d = nmport_open(spec.c_str());
  o->err = o->d ? 0 : errno;
  o->msg = ctx().last;
  if (!o->d) o->why = unetmap_last_error();
  return o;
}

#define EXPECT_OPENS(o) EXPECT_TRUE((o)->ok()) << strerror((o)->err) << ": " << (o)->msg
#define ASSERT_OPENS(o) ASSERT_TRUE((o)->ok()) << strerror((o)->err) << ": " << (o)->msg
#define EXPECT_REFUSED(o, e)                                                           \
  do {                                                                                 \
    EXPECT_FALSE((o)->ok());                                                           \
    EXPECT_EQ((o)->err, (e)) << strerror((o)->err) << ": " << (o)->msg;                \
  } while (0)

bool contains(const std::string& s, const std::string& w) { return s.find(w) != std::string::npos; }

// The frame (kData, seq) sent on a's first bound tx ring.
void send_one(const nmport_d* a, uint32_t seq) {
  ASSERT_EQ(nmtest::send_frame(nmtest::ep_of(a),
                               nmtest::frame(nmtest::kBcast, nmtest::host(1), nmtest::kData, seq)),
            0);
}
// Does b have frame seq now (after an rxsync)? Takes it.
bool has_frame(const nmport_d* b, uint32_t seq, int timeout_ms = 2000) {
  nmtest::RxFrame f;
  return nmtest::recv_frame(nmtest::ep_of(b), timeout_ms, &f) &&
         nmtest::frame_is(f, nmtest::kData, seq);
}
// Is b's rx side empty (rxsync, nothing pending)?
bool rx_empty(const nmport_d* b) {
  if (ioctl(b->fd, NIOCRXSYNC, nullptr) < 0) return false;
  for (unsigned i = b->first_rx_ring; i <= b->last_rx_ring; i++)
    if (!nm_ring_empty(NETMAP_RXRING(b->nifp, i))) return false;
  return true;
}

// ===========================================================================
// Ring selection: IF (all), IF-N, /T, /R, /x.

TEST(Names, DashNBindsRingNOnly) {
  auto anchor = open_port("vale0:r-2@conf:rings=3");  // makes the port: 3 rings
  ASSERT_OPENS(anchor);
  EXPECT_EQ(anchor->d->nifp->ni_tx_rings, 3u);
  EXPECT_EQ(anchor->d->nifp->ni_rx_rings, 3u);
  EXPECT_EQ(anchor->d->first_tx_ring, 2);
  EXPECT_EQ(anchor->d->last_tx_ring, 2);
  auto x = open_port("vale0:r-1/x");
  ASSERT_OPENS(x);
  EXPECT_EQ(x->d->first_rx_ring, 1);
  EXPECT_EQ(x->d->last_rx_ring, 1);
  auto r0 = open_port("vale0:r-0");
  EXPECT_OPENS(r0);
  auto r2 = open_port("vale0:r-2");
  EXPECT_OPENS(r2);
  auto r1 = open_port("vale0:r-1");
  EXPECT_REFUSED(r1, EBUSY);
  auto all = open_port("vale0:r");  // every hardware ring, ring 1 included
  EXPECT_REFUSED(all, EBUSY);
  EXPECT_TRUE(contains(all->why, "ring 1")) << all->why;
  // /x is refused on a ring someone else uses (netmap: kring users).
  auto x2 = open_port("vale0:r-2/x");
  EXPECT_REFUSED(x2, EBUSY);
}

TEST(Names, SlashTAndSlashRBindOneDirection) {
  auto t = open_port("vale0:d/Tx@conf:rings=2");  // tx rings only, exclusively
  ASSERT_OPENS(t);
  auto r = open_port("vale0:d/R");
  EXPECT_OPENS(r) << "/R bound a tx ring";
  auto t2 = open_port("vale0:d/T");
  EXPECT_REFUSED(t2, EBUSY);
  auto both = open_port("vale0:d");
  EXPECT_REFUSED(both, EBUSY);
  auto r1 = open_port("vale0:d-1/R");
  EXPECT_OPENS(r1);
  auto t1 = open_port("vale0:d-1/T");
  EXPECT_REFUSED(t1, EBUSY);
  auto rx = open_port("vale0:d/Rx");
  EXPECT_REFUSED(rx, EBUSY);  // the rx rings are in use by the /R registrations
}

TEST(Names, WithoutSlashXRegistrationsShareRings) {
  auto a = open_port("netmap:sh{1");
  ASSERT_OPENS(a);
  auto b = open_port("netmap:sh{1");
  EXPECT_OPENS(b);
  auto x = open_port("netmap:sh{1/x");
  EXPECT_REFUSED(x, EBUSY);
}

TEST(Names, RingOutOfRangeIsEinvalNamingTheRing) {
  auto p = open_port("netmap:oor{1@conf:rings=2");
  ASSERT_OPENS(p);
  auto bad = open_port("netmap:oor{1-2");
  EXPECT_REFUSED(bad, EINVAL);
  EXPECT_TRUE(contains(bad->msg, "ring 2")) << bad->msg;
  EXPECT_TRUE(contains(bad->why, "ring 2")) << bad->why;
  auto good = open_port("netmap:oor{1-1");
  EXPECT_OPENS(good);
}

// ^, ^N and * name host rings: a port without them refuses (netmap:
// "host rings not supported", EINVAL).
TEST(Names, HostRingSuffixesOnAPortWithoutHostRingsAreEinval) {
  for (const char* spec : {"netmap:hr{1^", "netmap:hr{1^0", "netmap:hr{1*", "vale0:hr^",
                           "vale0:hr*", "null:hr^"}) {
    SCOPED_TRACE(spec);
    auto o = open_port(spec);
    EXPECT_REFUSED(o, EINVAL);
    EXPECT_TRUE(contains(o->why, "host ring")) << o->why;
  }
}

// ===========================================================================
// Port types by name.

// NAME{ID and NAME}ID are the two ends of pipe ID of NAME.
TEST(Names, BraceAndClosingBraceAreTheTwoEndsOfOnePipe) {
  auto m = open_port("netmap:pp{7");
  auto s = open_port("netmap:pp}7");
  auto other = open_port("netmap:pp}8");
  ASSERT_OPENS(m);
  ASSERT_OPENS(s);
  ASSERT_OPENS(other);
  send_one(m->d, 1);
  EXPECT_TRUE(has_frame(s->d, 1));
  EXPECT_TRUE(rx_empty(other->d)) << "pipe 8 received what was sent on pipe 7";
  send_one(s->d, 2);
  EXPECT_TRUE(has_frame(m->d, 2));
  // The slave end first works as well.
  auto s9 = open_port("netmap:pp}9");
  auto m9 = open_port("netmap:pp{9");
  ASSERT_OPENS(s9);
  ASSERT_OPENS(m9);
  send_one(s9->d, 3);
  EXPECT_TRUE(has_frame(m9->d, 3));
}

TEST(Names, ValeXYPortsOfOneSwitchTalkAndOfAnotherDoNot) {
  auto a = open_port("vale1:a");
  auto b = open_port("vale1:b");
  auto c = open_port("vale2:a");  // same port name, another switch
  auto e = open_port("vale:e");   // the switch with an empty identifier
  ASSERT_OPENS(a);
  ASSERT_OPENS(b);
  ASSERT_OPENS(c);
  ASSERT_OPENS(e);
  EXPECT_STREQ(a->d->hdr.nr_name, "vale1:a");
  send_one(a->d, 5);
  EXPECT_TRUE(has_frame(b->d, 5));
  EXPECT_TRUE(rx_empty(c->d)) << "a frame crossed from switch vale1 to vale2";
  EXPECT_TRUE(rx_empty(e->d));
}

TEST(Names, NullPortsRegisterWithTheRingsAsked) {
  auto n = open_port("null:n1@conf:rings=2,slots=64");
  ASSERT_OPENS(n);
  EXPECT_EQ(n->d->nifp->ni_tx_rings, 2u);
  EXPECT_EQ(n->d->nifp->ni_rx_rings, 2u);
  EXPECT_EQ(NETMAP_TXRING(n->d->nifp, 0)->num_slots, 64u);
  auto one = open_port("null:n1-1");
  ASSERT_OPENS(one);
  EXPECT_EQ(one->d->first_tx_ring, 1);
}

// PORT/t, /r, /rt, /z are monitors of PORT: they see its traffic.
TEST(Names, MonitorFlagsOpenAMonitorOfTheNamedPort) {
  auto m = open_port("netmap:mo{1");
  auto s = open_port("netmap:mo}1");
  ASSERT_OPENS(m);
  ASSERT_OPENS(s);
  auto tx = open_port("netmap:mo{1/t");
  auto rx = open_port("netmap:mo}1/r");
  ASSERT_OPENS(tx);
  ASSERT_OPENS(rx);
  send_one(m->d, 11);
  EXPECT_TRUE(has_frame(tx->d, 11)) << "the /t monitor did not see the master's tx";
  EXPECT_TRUE(has_frame(s->d, 11));
  ASSERT_EQ(ioctl(s->d->fd, NIOCRXSYNC, nullptr), 0);  // s released it: /r sees it now
  EXPECT_TRUE(has_frame(rx->d, 11)) << "the /r monitor did not see the slave's rx";
  for (const char* spec : {"netmap:mo{1/rt", "netmap:mo{1/z"}) {
    auto o = open_port(spec);
    EXPECT_OPENS(o) << spec;
  }
}

TEST(Names, MonitorOfAPortThatDoesNotExistIsEnxio) {
  for (const char* spec : {"netmap:nosuchif4/t", "netmap:nosuchif4/r", "netmap:nosuchif4/z"}) {
    SCOPED_TRACE(spec);
    auto o = open_port(spec);
    EXPECT_REFUSED(o, ENXIO);
    EXPECT_TRUE(contains(o->why, "nosuchif4")) << o->why;
  }
}

TEST(Names, AnInterfaceThatDoesNotExistIsEnxioNamingIt) {
  for (const char* spec : {"netmap:nosuchif7", "netmap:nosuchif7-0", "netmap:nosuchif7/R"}) {
    SCOPED_TRACE(spec);
    auto o = open_port(spec);
    EXPECT_REFUSED(o, ENXIO);
    EXPECT_TRUE(contains(o->why, "nosuchif7")) << o->why;
    EXPECT_TRUE(contains(o->msg, "nosuchif7")) << o->msg;
  }
}

// ===========================================================================
// Options: @conf, @N, @extmem.

TEST(Names, ConfSetsTheGeometryOfANewPort) {
  auto v = open_port("vale3:g@conf:tx-rings=2,rx-rings=3,slots=128");
  ASSERT_OPENS(v);
  EXPECT_EQ(v->d->nifp->ni_tx_rings, 2u);
  EXPECT_EQ(v->d->nifp->ni_rx_rings, 3u);
  EXPECT_EQ(NETMAP_TXRING(v->d->nifp, 0)->num_slots, 128u);
  EXPECT_EQ(NETMAP_RXRING(v->d->nifp, 2)->num_slots, 128u);
  EXPECT_EQ(v->d->reg.nr_tx_rings, 2);  // written back by the register
  EXPECT_EQ(v->d->reg.nr_rx_slots, 128u);
  // Two @conf options each apply their keys.
  auto p = open_port("netmap:cf{1@conf:rings=2@conf:slots=64");
  ASSERT_OPENS(p);
  EXPECT_EQ(p->d->nifp->ni_tx_rings, 2u);
  EXPECT_EQ(NETMAP_TXRING(p->d->nifp, 1)->num_slots, 64u);
}

// @N: the port's rings go in region (allocator) N: region 1 is the one
// pipes use by default; a VALE port has a private region unless @N names
// one, e.g. another port's.
TEST(Names, AtNPutsThePortInRegionN) {
  auto pipe = open_port("netmap:mm{1");
  auto a = open_port("vale4:m@1");
  auto o = open_port("vale4:o");
  ASSERT_OPENS(pipe);
  ASSERT_OPENS(a);
  ASSERT_OPENS(o);
  EXPECT_EQ(pipe->d->reg.nr_mem_id, 1);
  EXPECT_EQ(a->d->reg.nr_mem_id, 1);
  EXPECT_EQ(a->d->mem, pipe->d->mem) << "one mapping per region";
  const uint16_t priv = o->d->reg.nr_mem_id;
  EXPECT_NE(priv, 1) << "a VALE port without @N is in region 1";
  auto b = open_port("vale4:n@" + std::to_string(priv));
  ASSERT_OPENS(b);
  EXPECT_EQ(b->d->reg.nr_mem_id, priv);
  EXPECT_EQ(b->d->mem, o->d->mem);
  EXPECT_NE(b->d->mem, a->d->mem);
}

struct ExtmemFile {
  std::string path;
  ExtmemFile() {
    char p[] = "/tmp/unetmap-names-extmem-XXXXXX";
    int fd = mkstemp(p);
    if (fd < 0 || ftruncate(fd, 1 << 20) != 0) abort();
    ::close(fd);
    path = p;
  }
  ~ExtmemFile() { unlink(path.c_str()); }
};

TEST(Names, ExtmemKeysFillThePoolRequest) {
  ExtmemFile f;
  CaptureCtx cc;
  nmport_d* d = nmport_new();
  ASSERT_NE(d, nullptr);
  d->ctx = &cc.ctx;
  const std::string spec = "netmap:em{1@extmem:file=" + f.path + ",if-num=2,ring-num=4,buf-num=64,buf-size=2048";
  ASSERT_EQ(nmport_parse(d, spec.c_str()), 0) << cc.last;
  nmreq_pools_info* pi = nmport_extmem_getinfo(d);
  ASSERT_NE(pi, nullptr);
  EXPECT_EQ(pi->nr_memsize, uint64_t(1) << 20);
  EXPECT_EQ(pi->nr_if_pool_objtotal, 2u);
  EXPECT_EQ(pi->nr_ring_pool_objtotal, 4u);
  EXPECT_EQ(pi->nr_buf_pool_objtotal, 64u);
  EXPECT_EQ(pi->nr_buf_pool_objsize, 2048u);
  EXPECT_EQ(pi->nr_if_pool_objsize, 0u);  // keys not given stay 0
  EXPECT_NE(nmreq_find_option(&d->hdr, NETMAP_REQ_OPT_EXTMEM), nullptr);
  nmport_undo_parse(d);
  EXPECT_EQ(nmreq_find_option(&d->hdr, NETMAP_REQ_OPT_EXTMEM), nullptr);
  nmport_delete(d);
}

struct Bad {
  std::string spec;
  int err;
  std::vector<std::string> words;  // the nmctx message contains each
};

void check_bad(const Bad& b) {
  SCOPED_TRACE(b.spec);
  auto o = open_port(b.spec);
  EXPECT_FALSE(o->ok());
  EXPECT_EQ(o->err, b.err) << strerror(o->err) << ": " << o->msg;
  for (const std::string& w : b.words)
    EXPECT_TRUE(contains(o->msg, w)) << "message '" << o->msg << "' does not name '" << w << "'";
}

TEST(Names, ExtmemSyntaxErrorsAreEinvalNamingTheKey) {
  ExtmemFile f;
  const std::string F = "netmap:ee{1@extmem:file=" + f.path;
  for (const Bad& b : {
           Bad{"netmap:ee{1@extmem:", EINVAL, {"file"}},                // file is mandatory
           Bad{"netmap:ee{1@extmem:if-num=2", EINVAL, {"file"}},
           Bad{F + ",nosuchkey=1", EINVAL, {"nosuchkey"}},
           Bad{F + ",ring-num", EINVAL, {"ring-num"}},                  // no =value
           Bad{"netmap:ee{1@extmem:file=/nonexistent/x", ENOENT, {"/nonexistent/x"}},
       })
    check_bad(b);
}

// ===========================================================================
// Bad names, opened: netmap's errno and a message that names the problem.

TEST(Names, BadNamesAreRefusedWithNetmapsErrno) {
  const std::string long63 = std::string(60, 'l') + "{1";  // 62 characters
  const std::string long64 = std::string(63, 'l') + "{1";  // 65: too long
  for (const Bad& b : {
           Bad{"", EINVAL, {"prefix"}},
           Bad{"netmap:", EINVAL, {"empty"}},
           Bad{"nosuchprefix:x", EINVAL, {"prefix"}},
           Bad{"netmap:" + long64, EINVAL, {"too long"}},
           Bad{"vale0:" + std::string(58, 'v'), EINVAL, {"too long"}},
           Bad{"netmap:x{", EINVAL, {"pipe"}},
           Bad{"netmap:x{a-b", EINVAL, {"ring number"}},     // '-' ends the name: "-b"
           Bad{"netmap:x-1-2", EINVAL, {"unexpected character"}},
           Bad{"netmap:x**", EINVAL, {"unexpected character"}},
           Bad{"netmap:x^^", EINVAL, {"unexpected character"}},
           Bad{"netmap:x-1x", EINVAL, {"unexpected character"}},
           Bad{"netmap:x/x/x", EINVAL, {"flag"}},
           Bad{"netmap:x/k", EINVAL, {"'k'"}},
           Bad{"netmap:x-4095", EINVAL, {"out of range"}},
           Bad{"netmap:x^4095", EINVAL, {"out of range"}},
           Bad{"netmap:x-99999999999", EINVAL, {"out of range"}},
           Bad{"netmap:x@", EINVAL, {"mem_id"}},
           Bad{"netmap:x@0", EINVAL, {"mem_id"}},
           Bad{"netmap:x@3@4", EINVAL, {}},
           Bad{"netmap:x@nosuchopt:a=1", EINVAL, {"nosuchopt"}},
           Bad{"netmap:x@conf:nosuchkey=1", EINVAL, {"nosuchkey"}},
           Bad{"netmap:x@conf:rings=1,rings=2", EINVAL, {"rings"}},
           Bad{"netmap:x@conf", EINVAL, {"conf"}},
           Bad{"netmap:x@offset:initial=64", EOPNOTSUPP, {"offset"}},
       })
    check_bad(b);
  // The longest name that fits opens.
  auto ok = open_port("netmap:" + long63);
  EXPECT_OPENS(ok);
}

// Below libnetmap: NIOCCTRL takes nr_name as it is, up to its last byte.
TEST(Names, NiocctrlTakesANameOfSixtyThreeCharacters) {
  const std::string name = std::string(61, 'k') + "{1";
  ASSERT_EQ(name.size(), size_t(NETMAP_REQ_IFNAMSIZ - 1));
  nmtest::RawPort p(name.c_str());
  ASSERT_TRUE(p.ok()) << strerror(p.err) << ": " << unetmap_last_error();
}

// The legacy NIOCREGIF names pipe ID of NAME by mode and ring id
// (NR_REG_PIPE_MASTER/SLAVE, ring ID), as netmap's legacy translation
// does: NAME + PIPE_SLAVE + 1 is the other end of "NAME{1".
TEST(Names, LegacyPipeModesNameThePipeByRingId) {
  nmtest::RawPort m("kp{1");
  ASSERT_TRUE(m.ok()) << unetmap_last_error();
  int fd = open("/dev/netmap", O_RDWR);
  ASSERT_GE(fd, 0);
  nmreq req;
  memset(&req, 0, sizeof req);
  snprintf(req.nr_name, sizeof req.nr_name, "kp");
  req.nr_version = NETMAP_API;
  req.nr_flags = NR_REG_PIPE_SLAVE;
  req.nr_ringid = 1;
  ASSERT_EQ(ioctl(fd, NIOCREGIF, &req), 0) << strerror(errno) << ": " << unetmap_last_error();
  void* mem = mmap(nullptr, req.nr_memsize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(mem, MAP_FAILED);
  nmtest::Ep es;
  es.fd = fd;
  es.nifp = NETMAP_IF(mem, req.nr_offset);
  es.tx1 = es.nifp->ni_tx_rings;
  es.rx1 = es.nifp->ni_rx_rings;
  ASSERT_EQ(nmtest::send_frame(nmtest::ep_of(m),
                               nmtest::frame(nmtest::kBcast, nmtest::host(2), nmtest::kData, 21)),
            0);
  nmtest::RxFrame f;
  EXPECT_TRUE(nmtest::recv_frame(es, 2000, &f));
  EXPECT_TRUE(nmtest::frame_is(f, nmtest::kData, 21)) << nmtest::describe(f);
  munmap(mem, req.nr_memsize);
  close(fd);
}

}  // namespace
