// Port-name grammar: nmport_parse, nmreq_header_decode, nmreq_register_decode.
//
// Valid names must fill nr_name / nr_mode / nr_ringid / nr_flags / nr_mem_id
// and the @conf ring geometry as libnetmap does; malformed names must fail
// with EINVAL (EOPNOTSUPP for the options this build lacks) and an error,
// delivered through the nmctx, that names the problem.
#include <gtest/gtest.h>

#include <string>

#include "util/test_util.h"

namespace {

using nmtest::CaptureCtx;

struct Parsed {
  int rc = -1;
  int err = 0;
  nmreq_header hdr{};
  nmreq_register reg{};
  std::string msg;
};

Parsed parse(const std::string& spec) {
  CaptureCtx cc;
  Parsed p;
  nmport_d* d = nmport_new();
  if (!d) return p;
  d->ctx = &cc.ctx;
  errno = 0;
  p.rc = nmport_parse(d, spec.c_str());
  p.err = errno;
  p.hdr = d->hdr;
  p.reg = d->reg;
  p.msg = cc.last;
  nmport_undo_parse(d);
  nmport_delete(d);
  return p;
}

struct Good {
  const char* spec;
  const char* name;
  uint32_t mode;
  uint16_t ringid;
  uint64_t flags;
  uint16_t mem_id;
};

void PrintTo(const Good& g, std::ostream* os) { *os << '"' << g.spec << '"'; }

class ValidName : public testing::TestWithParam<Good> {};

TEST_P(ValidName, FillsTheRequest) {
  const Good& g = GetParam();
  Parsed p = parse(g.spec);
  ASSERT_EQ(p.rc, 0) << g.spec << ": " << p.msg;
  EXPECT_TRUE(p.msg.empty()) << p.msg;
  EXPECT_STREQ(p.hdr.nr_name, g.name);
  EXPECT_EQ(p.hdr.nr_version, NETMAP_API);
  EXPECT_EQ(p.hdr.nr_reqtype, NETMAP_REQ_REGISTER);
  EXPECT_EQ(p.reg.nr_mode, g.mode);
  EXPECT_EQ(p.reg.nr_ringid, g.ringid);
  EXPECT_EQ(p.reg.nr_flags, g.flags);
  EXPECT_EQ(p.reg.nr_mem_id, g.mem_id);
}

INSTANTIATE_TEST_SUITE_P(
    Names, ValidName,
    testing::Values(
        Good{"netmap:p{0", "p{0", NR_REG_ALL_NIC, 0, 0, 0},
        Good{"netmap:p}3", "p}3", NR_REG_ALL_NIC, 0, 0, 0},
        Good{"netmap:pipe_a{name_1", "pipe_a{name_1", NR_REG_ALL_NIC, 0, 0, 0},
        Good{"netmap:x", "x", NR_REG_ALL_NIC, 0, 0, 0},
        Good{"netmap:x-2", "x", NR_REG_ONE_NIC, 2, 0, 0},
        Good{"netmap:x-4094", "x", NR_REG_ONE_NIC, 4094, 0, 0},
        Good{"netmap:x^", "x", NR_REG_SW, 0, 0, 0},
        Good{"netmap:x^1", "x", NR_REG_ONE_SW, 1, 0, 0},
        Good{"netmap:x*", "x", NR_REG_NIC_SW, 0, 0, 0},
        Good{"netmap:x/xT", "x", NR_REG_ALL_NIC, 0, NR_EXCLUSIVE | NR_TX_RINGS_ONLY, 0},
        Good{"netmap:x/ztrR", "x", NR_REG_ALL_NIC, 0,
             NR_ZCOPY_MON | NR_MONITOR_TX | NR_MONITOR_RX | NR_RX_RINGS_ONLY, 0},
        Good{"netmap:x@3", "x", NR_REG_ALL_NIC, 0, 0, 3},
        Good{"netmap:eth0-2/xT@3", "eth0", NR_REG_ONE_NIC, 2, NR_EXCLUSIVE | NR_TX_RINGS_ONLY, 3},
        Good{"netmap:p{0-1/R", "p{0", NR_REG_ONE_NIC, 1, NR_RX_RINGS_ONLY, 0},
        Good{"vale0:a", "vale0:a", NR_REG_ALL_NIC, 0, 0, 0},
        Good{"vale:a", "vale:a", NR_REG_ALL_NIC, 0, 0, 0},
        Good{"vale1:p1{pipeA", "vale1:p1{pipeA", NR_REG_ALL_NIC, 0, 0, 0},
        Good{"null:n", "null:n", NR_REG_ALL_NIC, 0, 0, 0},
        Good{"null:n-1", "null:n", NR_REG_ONE_NIC, 1, 0, 0}),
    [](const testing::TestParamInfo<Good>& i) {
      std::string s;
      for (const char* c = i.param.spec; *c; c++)
        s += isalnum(static_cast<unsigned char>(*c)) ? *c : '_';
      return s + "_" + std::to_string(i.index);
    });

TEST(Name, ConfRingsAndSlots) {
  Parsed p = parse("netmap:p{0@conf:rings=2,slots=256");
  ASSERT_EQ(p.rc, 0) << p.msg;
  EXPECT_STREQ(p.hdr.nr_name, "p{0");
  EXPECT_EQ(p.reg.nr_tx_rings, 2);
  EXPECT_EQ(p.reg.nr_rx_rings, 2);
  EXPECT_EQ(p.reg.nr_tx_slots, 256u);
  EXPECT_EQ(p.reg.nr_rx_slots, 256u);
  EXPECT_EQ(p.reg.nr_mode, uint32_t(NR_REG_ALL_NIC));
}

TEST(Name, ConfDefaultKeyIsRings) {
  Parsed p = parse("netmap:p{0@conf=4");
  ASSERT_EQ(p.rc, 0) << p.msg;
  EXPECT_EQ(p.reg.nr_tx_rings, 4);
  EXPECT_EQ(p.reg.nr_rx_rings, 4);
  EXPECT_EQ(p.reg.nr_tx_slots, 0u);  // untouched: the port type's default
}

TEST(Name, ConfSpecificKeysOverrideCombinedOnes) {
  Parsed p = parse("netmap:p{0@conf:rings=2,tx-rings=3,host-rings=1,slots=512,rx-slots=128");
  ASSERT_EQ(p.rc, 0) << p.msg;
  EXPECT_EQ(p.reg.nr_tx_rings, 3);
  EXPECT_EQ(p.reg.nr_rx_rings, 2);
  EXPECT_EQ(p.reg.nr_host_tx_rings, 1);
  EXPECT_EQ(p.reg.nr_host_rx_rings, 1);
  EXPECT_EQ(p.reg.nr_tx_slots, 512u);
  EXPECT_EQ(p.reg.nr_rx_slots, 128u);
}

TEST(Name, MemIdThenConf) {
  Parsed p = parse("netmap:x-1@2@conf:slots=64");
  ASSERT_EQ(p.rc, 0) << p.msg;
  EXPECT_EQ(p.reg.nr_mem_id, 2);
  EXPECT_EQ(p.reg.nr_ringid, 1);
  EXPECT_EQ(p.reg.nr_tx_slots, 64u);
}

TEST(Name, HeaderDecodeStopsAtTheModeAndKeepsOptions) {
  const char* spec = "netmap:x-2/T@3@conf=2";
  const char* p = spec;
  nmreq_header h;
  CaptureCtx cc;
  ASSERT_EQ(nmreq_header_decode(&p, &h, &cc.ctx), 0) << cc.last;
  EXPECT_STREQ(h.nr_name, "x");
  EXPECT_STREQ(p, "-2/T@3@conf=2");
  nmreq_register reg;
  memset(&reg, 0, sizeof reg);
  ASSERT_EQ(nmreq_register_decode(&p, &reg, &cc.ctx), 0) << cc.last;
  EXPECT_EQ(reg.nr_mode, uint32_t(NR_REG_ONE_NIC));
  EXPECT_EQ(reg.nr_ringid, 2);
  EXPECT_EQ(reg.nr_flags, uint64_t(NR_TX_RINGS_ONLY));
  EXPECT_EQ(reg.nr_mem_id, 3);
  EXPECT_STREQ(p, "@conf=2");  // the options are left for the option parser
}

TEST(Name, RegisterDecodeRejectsAConflictingMemId) {
  const char* p = "@4";
  nmreq_register reg;
  memset(&reg, 0, sizeof reg);
  reg.nr_mem_id = 2;
  CaptureCtx cc;
  errno = 0;
  EXPECT_EQ(nmreq_register_decode(&p, &reg, &cc.ctx), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_NE(cc.last.find("mem_id"), std::string::npos) << cc.last;
}

struct Bad {
  const char* spec;
  int err;
  std::vector<const char*> words;  // the message must contain each
};

void PrintTo(const Bad& b, std::ostream* os) { *os << '"' << b.spec << '"'; }

class InvalidName : public testing::TestWithParam<Bad> {};

TEST_P(InvalidName, FailsAndSaysWhy) {
  const Bad& b = GetParam();
  Parsed p = parse(b.spec);
  EXPECT_EQ(p.rc, -1) << b.spec;
  EXPECT_EQ(p.err, b.err) << b.spec << ": " << strerror(p.err) << " (" << p.msg << ")";
  ASSERT_FALSE(p.msg.empty()) << b.spec << ": no message";
  for (const char* w : b.words)
    EXPECT_NE(p.msg.find(w), std::string::npos) << b.spec << ": message '" << p.msg
                                                << "' does not mention '" << w << "'";
}

const std::string kLong = "netmap:" + std::string(64, 'a');

INSTANTIATE_TEST_SUITE_P(
    Names, InvalidName,
    testing::Values(
        Bad{"eth0", EINVAL, {"prefix"}},
        Bad{"", EINVAL, {"prefix"}},
        Bad{"netmap", EINVAL, {"':'"}},
        Bad{"netmapx:y", EINVAL, {"netmap"}},
        Bad{"netmap:", EINVAL, {"empty port name"}},
        Bad{"netmap:x-", EINVAL, {"ring number"}},
        Bad{"netmap:x-a", EINVAL, {"ring number"}},
        Bad{"netmap:x-4095", EINVAL, {"out of range"}},
        Bad{"netmap:x/", EINVAL, {"end"}},
        Bad{"netmap:x/q", EINVAL, {"flag", "q"}},
        Bad{"netmap:x@0", EINVAL, {"mem_id"}},
        Bad{"netmap:x@", EINVAL, {"mem_id"}},
        Bad{"netmap:x*-1", EINVAL, {"unexpected character"}},
        Bad{"netmap:x^-1", EINVAL, {"unexpected character"}},
        Bad{"netmap:x-1^", EINVAL, {"unexpected character"}},
        Bad{kLong.c_str(), EINVAL, {"too long"}},
        Bad{"netmap:p{", EINVAL, {"pipe name"}},
        Bad{"netmap:p}", EINVAL, {"pipe name"}},
        Bad{"netmap:p{a.b", EINVAL, {"pipe name"}},
        Bad{"netmap:e.x", EINVAL, {"port name"}},
        Bad{"vale0", EINVAL, {"vale"}},
        Bad{"netmap:x@conf:bogus=1", EINVAL, {"bogus"}},
        Bad{"netmap:x@conf:rings=abc", EINVAL, {"rings", "abc"}},
        Bad{"netmap:x@conf:rings=", EINVAL, {"rings", "missing value"}},
        Bad{"netmap:x@conf:rings=1,rings=2", EINVAL, {"rings", "twice"}},
        Bad{"netmap:x@conf", EINVAL, {"conf", "missing body"}},
        Bad{"netmap:x@@conf=1", EINVAL, {"empty option"}},
        Bad{"netmap:x@nosuch=1", EINVAL, {"nosuch"}},
        Bad{"netmap:x@extmem:file=/x", ENOENT, {"extmem", "/x"}},
        Bad{"netmap:x@extmem=/x", EINVAL, {"extmem"}},
        Bad{"netmap:x@extmem:file=/x,bufnum=3", EINVAL, {"extmem", "bufnum"}},
        Bad{"netmap:x@offset=4", EOPNOTSUPP, {"offset"}}),
    [](const testing::TestParamInfo<Bad>& i) { return "case" + std::to_string(i.index); });

TEST(Name, LongestNameFits) {
  std::string name(63, 'b');
  Parsed p = parse("netmap:" + name);
  ASSERT_EQ(p.rc, 0) << p.msg;
  EXPECT_EQ(std::string(p.hdr.nr_name), name);
}

// Errors go to the default context when a descriptor has no other.
TEST(Name, DefaultContextReceivesErrors) {
  CaptureCtx cc;
  nmctx* old = nmctx_set_default(&cc.ctx);
  ASSERT_NE(old, nullptr);
  EXPECT_EQ(nmctx_get(), &cc.ctx);
  errno = 0;
  nmport_d* d = nmport_prepare("netmap:x/q");
  int err = errno;
  nmctx_set_default(old);
  EXPECT_EQ(d, nullptr);
  EXPECT_EQ(err, EINVAL);
  ASSERT_EQ(cc.all.size(), 1u);
  EXPECT_NE(cc.last.find("unrecognized flag 'q'"), std::string::npos) << cc.last;

  // nmreq_header_decode with no context uses the default one too.
  CaptureCtx cc2;
  old = nmctx_set_default(&cc2.ctx);
  const char* p = "nosuchprefix";
  nmreq_header h;
  EXPECT_EQ(nmreq_header_decode(&p, &h, nullptr), -1);
  nmctx_set_default(old);
  EXPECT_NE(cc2.last.find("prefix"), std::string::npos) << cc2.last;
}

// An error while opening (not parsing) reaches the context as well.
TEST(Name, OpenErrorsReachTheContext) {
  CaptureCtx cc;
  nmctx* old = nmctx_set_default(&cc.ctx);
  errno = 0;
  nmport_d* d = nmport_open("netmap:nosuchif9");
  int err = errno;
  nmctx_set_default(old);
  EXPECT_EQ(d, nullptr);
  EXPECT_EQ(err, ENXIO);
  EXPECT_NE(cc.last.find("nosuchif9"), std::string::npos) << cc.last;
}

TEST(Name, PrepareThenOpenDescThenClone) {
  nmport_d* d = nmport_prepare("netmap:cl{0@conf:slots=128");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->register_done, 0);
  EXPECT_EQ(d->fd, -1);
  ASSERT_EQ(nmport_open_desc(d), 0) << strerror(errno);
  EXPECT_EQ(d->register_done, 1);
  EXPECT_EQ(d->mmap_done, 1);
  EXPECT_GE(d->fd, 0);
  EXPECT_EQ(d->reg.nr_tx_slots, 128u);
  EXPECT_EQ(d->reg.nr_mem_id, 1);
  EXPECT_EQ(d->first_tx_ring, 0);
  EXPECT_EQ(d->last_tx_ring, 0);

  nmport_d* c = nmport_clone(d);
  ASSERT_NE(c, nullptr);
  EXPECT_STREQ(c->hdr.nr_name, "cl{0");
  EXPECT_EQ(c->register_done, 0);
  // The clone registers the same port again (a second fd) in the same region.
  ASSERT_EQ(nmport_open_desc(c), 0) << strerror(errno);
  EXPECT_NE(c->fd, d->fd);
  EXPECT_EQ(c->mem, d->mem);  // one mapping per region per context
  EXPECT_EQ(c->mem->refcount, 2);
  nmport_close(c);
  EXPECT_EQ(d->mem->refcount, 1);
  nmport_close(d);
}

TEST(Name, ExtmemOfAnEmptyFileAndOffsetsAreRefused) {
  CaptureCtx cc;
  nmport_d* d = nmport_new();
  ASSERT_NE(d, nullptr);
  d->ctx = &cc.ctx;
  ASSERT_EQ(nmport_parse(d, "netmap:em{0"), 0);
  errno = 0;
  EXPECT_EQ(nmport_extmem_from_file(d, "/dev/null"), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_NE(cc.last.find("extmem"), std::string::npos) << cc.last;
  errno = 0;
  EXPECT_EQ(nmport_offset(d, 0, 64, 8, 0), -1);
  EXPECT_EQ(errno, EOPNOTSUPP);
  EXPECT_EQ(nmport_extmem_getinfo(d), nullptr);
  nmport_undo_prepare(d);
}

}  // namespace
