// VALE lookups as sets of operations (ValeLookupOps, as netmap's
// netmap_bdg_ops), across processes: a built-in lookup set by one process
// runs in a sender that never named it, a lookup's private data written
// through its config is what the lookup reads in another process, the
// destructor runs when the lookup changes or the switch goes, and a
// custom lookup a sender does not know drops its packets there, counted.
//
// Senders and receivers are Remote processes (util/remote_port.h); a frame
// that must not arrive is checked with a later marker, as in vale_test.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "ports/vale/vale.h"
#include "util/remote_port.h"
#include "util/test_util.h"

namespace {

using nmtest::frame;
using nmtest::host;
using nmtest::kBcast;
using nmtest::kData;
using nmtest::kMarker;
using nmtest::Mac;
using nmtest::next_is;
using nmtest::Remote;

const unetmap::ValePortInfo* port_info(std::vector<unetmap::ValeSwitchInfo>& v, const std::string& name) {
  std::string why;
  v.clear();
  EXPECT_EQ(unetmap::vale_list("", &v, &why), 0) << why;
  for (auto& s : v)
    for (auto& p : s.ports)
      if (p.name == name) return &p;
  return nullptr;
}

// A lookup that sends every packet to the port its private data's first
// byte names; its config copies the request into the private data.
uint32_t to_port(const uint8_t*, uint32_t, const unetmap::ValeLookupCtx& c) {
  return c.sw->lookup_data[0];
}
int copy_config(unetmap::SwitchEntry& sw, std::span<const uint8_t> req, std::string* why) {
  if (req.size() > sizeof sw.lookup_data) {
    *why = "too long";
    return EINVAL;
  }
  memcpy(sw.lookup_data, req.data(), req.size());
  return 0;
}
int g_dtors = 0;
uint8_t g_dtor_saw = 0xff;
void count_dtor(unetmap::SwitchEntry& sw) {
  g_dtors++;
  g_dtor_saw = sw.lookup_data[0];
}

void register_to_port() {
  unetmap::ValeLookupOps ops;
  ops.lookup = to_port;
  ops.config = copy_config;
  ops.dtor = count_dtor;
  int rc = unetmap::vale_register_lookup("toport", ops);
  ASSERT_TRUE(rc == 0 || rc == EEXIST) << rc;
}

int config(const std::string& sw, std::vector<uint8_t> bytes) {
  std::string why;
  int rc = unetmap::vale_config_lookup(sw, bytes, &why);
  EXPECT_EQ(rc, 0) << why;
  return rc;
}

TEST(ValeLookup, BuiltinLookupSetElsewhereRunsInEverySender) {
  const Mac A = host(0xa), B = host(0xb);
  // Every port's process is started before "hub" is named anywhere.
  Remote a("vale0:a"), b("vale0:b"), c("vale0:c");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  ASSERT_EQ(a.send(frame(kBcast, A, kData, 1)), 0);  // A is learned on a
  EXPECT_EQ(next_is(b, kData, 1), "");
  EXPECT_EQ(next_is(c, kData, 1), "");
  std::string why;
  ASSERT_EQ(unetmap::vale_set_lookup("vale0", "hub", &why), 0) << why;
  // b's process never named "hub": it floods learned unicast all the same.
  ASSERT_EQ(b.send(frame(A, B, kData, 2)), 0);
  EXPECT_EQ(next_is(a, kData, 2), "");
  EXPECT_EQ(next_is(c, kData, 2), "") << "the hub lookup did not run in b's process";
  std::vector<unetmap::ValeSwitchInfo> v;
  const unetmap::ValePortInfo* pb = port_info(v, "vale0:b");
  ASSERT_NE(pb, nullptr);
  EXPECT_EQ(pb->tx_drops, 0u);
}

TEST(ValeLookup, PrivateDataFromConfigIsSeenByTheLookupInAnotherProcess) {
  register_to_port();
  // Forked after the registration: the senders know "toport", but its
  // private data is written later, by this process.
  Remote a("vale0:a"), b("vale0:b"), s("vale0:s");
  ASSERT_TRUE(a.ok() && b.ok() && s.ok());
  std::string why;
  ASSERT_EQ(unetmap::vale_set_lookup("vale0", "toport", &why), 0) << why;
  EXPECT_EQ(unetmap::vale_config_lookup("vale0", std::vector<uint8_t>(unetmap::kLookupData + 1), &why),
            EINVAL);
  ASSERT_EQ(config("vale0", {1}), 0);
  ASSERT_EQ(s.send(frame(kBcast, host(0x5), kData, 1)), 0);
  EXPECT_EQ(next_is(b, kData, 1), "") << "the sender's lookup did not see the config";
  ASSERT_EQ(config("vale0", {0}), 0);
  ASSERT_EQ(s.send(frame(kBcast, host(0x5), kData, 2)), 0);
  EXPECT_EQ(next_is(a, kData, 2), "");
  ASSERT_EQ(config("vale0", {1}), 0);
  ASSERT_EQ(s.send(frame(kBcast, host(0x5), kMarker, 3)), 0);
  EXPECT_EQ(next_is(b, kMarker, 3), "") << "b got the frame the config sent to a";
  // Built-in lookups take no config.
  ASSERT_EQ(unetmap::vale_set_lookup("vale0", "hub", &why), 0) << why;
  EXPECT_EQ(unetmap::vale_config_lookup("vale0", std::vector<uint8_t>{1}, &why), EOPNOTSUPP);
  EXPECT_EQ(unetmap::vale_config_lookup("vale9", std::vector<uint8_t>{1}, &why), ENOENT);
}

TEST(ValeLookup, DestructorRunsWhenTheLookupChangesOrTheSwitchGoes) {
  register_to_port();
  std::string why;
  unetmap::ValeNewif conf;
  ASSERT_EQ(unetmap::vale_newif("p1", conf, &why), 0) << why;
  uint32_t idx = 0;
  ASSERT_EQ(unetmap::vale_attach("vale4:p1", &idx, &why), 0) << why;
  ASSERT_EQ(unetmap::vale_set_lookup("vale4", "toport", &why), 0) << why;
  ASSERT_EQ(config("vale4", {7}), 0);
  const int before = g_dtors;
  ASSERT_EQ(unetmap::vale_set_lookup("vale4", "hub", &why), 0) << why;
  EXPECT_EQ(g_dtors, before + 1) << "no destructor when the lookup changed";
  EXPECT_EQ(g_dtor_saw, 7) << "the destructor did not see the private data";
  // Set again: the private data starts zeroed.
  ASSERT_EQ(unetmap::vale_set_lookup("vale4", "toport", &why), 0) << why;
  ASSERT_EQ(unetmap::vale_set_lookup("vale4", "", &why), 0) << why;
  EXPECT_EQ(g_dtors, before + 2);
  EXPECT_EQ(g_dtor_saw, 0) << "the private data was not zeroed when the lookup was set";
  // The switch goes with its last port.
  ASSERT_EQ(unetmap::vale_set_lookup("vale4", "toport", &why), 0) << why;
  ASSERT_EQ(config("vale4", {9}), 0);
  ASSERT_EQ(unetmap::vale_detach("vale4:p1", &idx, &why), 0) << why;
  EXPECT_EQ(g_dtors, before + 3) << "no destructor when the switch went";
  EXPECT_EQ(g_dtor_saw, 9);
  EXPECT_EQ(unetmap::vale_delif("p1", &why), 0) << why;
}

uint32_t flood(const uint8_t*, uint32_t, const unetmap::ValeLookupCtx&) { return unetmap::kValeBroadcast; }

TEST(ValeLookup, CustomLookupUnknownToTheSenderDropsAndCounts) {
  // s is forked before "late2" is registered: it does not know it.
  Remote s("vale0:s"), a("vale0:a");
  ASSERT_TRUE(s.ok() && a.ok());
  int rc = unetmap::vale_register_lookup("late2", flood);
  ASSERT_TRUE(rc == 0 || rc == EEXIST) << rc;
  std::string why;
  ASSERT_EQ(unetmap::vale_set_lookup("vale0", "late2", &why), 0) << why;
  for (uint32_t i = 0; i < 5; i++) ASSERT_EQ(s.send(frame(kBcast, host(0x5), kData, i)), 0);
  std::vector<unetmap::ValeSwitchInfo> v;
  const unetmap::ValePortInfo* ps = port_info(v, "vale0:s");
  ASSERT_NE(ps, nullptr);
  EXPECT_EQ(ps->tx_drops, 5u) << "the drops of an unknown lookup are not counted";
  ASSERT_EQ(unetmap::vale_set_lookup("vale0", "", &why), 0) << why;
  ASSERT_EQ(s.send(frame(kBcast, host(0x5), kMarker, 9)), 0);
  EXPECT_EQ(next_is(a, kMarker, 9), "") << "a sender that does not know the lookup forwarded";
  // A process cannot register a built-in's name.
  EXPECT_EQ(unetmap::vale_register_lookup("hub", flood), EEXIST);
}

}  // namespace
