// unetmap's C API for control and statistics (unetmap/unetmap.h): what
// vale-ctl, nm-regions and the Python module read instead of the registry.
// Counters of pipes and VALE ports after real traffic, per ring and per
// port; switches, regions and workers listed, made and removed; and every
// call with bad arguments refused with errno and a reason, nothing made.
#include <errno.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unetmap/netmap.hpp>
#include <unetmap/unetmap.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace {

// Send n frames of len bytes from tx to rx, and read them: true if all came.
bool move_frames(unetmap::Port& tx, unetmap::Port& rx, unsigned n, unsigned len) {
  unsigned sent = 0, got = 0;
  for (int rounds = 0; got < n && rounds < 100000; rounds++) {
    unetmap::Ring t = tx.tx_ring(0), r = rx.rx_ring(0);
    for (; sent < n && t.space(); sent++) {
      t.slot(t.cur()).len = uint16_t(len);
      t.advance();
    }
    tx.txsync();
    rx.rxsync();
    for (; !r.empty(); got++) r.advance();
    rx.rxsync();
  }
  return got == n;
}

template <typename T, typename F>
std::vector<T> list(F call) {
  std::vector<T> v(64);
  const int n = call(v.data(), int(v.size()));
  EXPECT_GE(n, 0) << unetmap_last_error();
  v.resize(size_t(std::max(n, 0)));
  return v;
}

TEST(Capi, NothingThereListsNothingAndMakesNothing) {
  const std::string dir = getenv("UNETMAP_DIR");
  rmdir(dir.c_str());  // the runner made it: gone, it must stay gone
  EXPECT_EQ(unetmap_ports(nullptr, 0), 0);
  EXPECT_EQ(unetmap_switches(nullptr, 0), 0);
  EXPECT_EQ(unetmap_regions(nullptr, 0), 0);
  EXPECT_EQ(unetmap_workers(nullptr, 0), 0);
  unetmap_port_stats st;
  EXPECT_EQ(unetmap_port_counters("p{0", &st), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(unetmap_switch_ports("vale0", nullptr, 0), -1);
  EXPECT_EQ(errno, ENOENT);
  struct stat sb;
  EXPECT_NE(stat(dir.c_str(), &sb), 0) << "a listing made the runtime directory";
  mkdir(dir.c_str(), 0700);
}

TEST(Capi, PipeCountersPerRingAndPerPort) {
  std::string err;
  auto tx = unetmap::Port::open("netmap:cp{0", &err);
  auto rx = unetmap::Port::open("netmap:cp}0", &err);
  ASSERT_TRUE(tx && rx) << err;
  ASSERT_TRUE(move_frames(tx, rx, 3000, 100));

  unetmap_port_stats a, b;
  ASSERT_EQ(unetmap_port_counters("cp{0", &a), 0) << unetmap_last_error();
  ASSERT_EQ(unetmap_port_counters("netmap:cp}0", &b), 0) << unetmap_last_error();
  EXPECT_EQ(a.tx_packets, 3000u);
  EXPECT_EQ(a.tx_bytes, 300000u);
  EXPECT_EQ(b.rx_packets, 3000u);  // a pipe's rx bytes are its sender's (unetmap.h)
  EXPECT_EQ(a.rx_packets + b.tx_packets, 0u) << "the other directions carried nothing";

  const auto rings = list<unetmap_ring_info>([](unetmap_ring_info* o, int m) { return unetmap_port_rings("cp{0", o, m); });
  ASSERT_EQ(rings.size(), 2u) << "one tx and one rx ring";
  for (const auto& r : rings) {
    EXPECT_EQ(r.slots, 1024u);
    EXPECT_EQ(r.users, 1u);
    EXPECT_EQ(r.host, 0);
    EXPECT_EQ(r.packets, r.tx ? 3000u : 0u);
  }
  // Asking for fewer than there are: the count, and only max filled.
  unetmap_ring_info one[1];
  EXPECT_EQ(unetmap_port_rings("cp{0", one, 1), 2);

  const auto ports = list<unetmap_port_info>(unetmap_ports);
  int pipes = 0;
  for (const auto& p : ports) pipes += std::string(p.type) == "pipe";
  EXPECT_EQ(pipes, 2);
}

TEST(Capi, SwitchesPortsAndLookups) {
  std::string err;
  auto a = unetmap::Port::open("vale7:a", &err);
  auto b = unetmap::Port::open("vale7:b", &err);
  ASSERT_TRUE(a && b) << err;
  // Broadcast frames (the learning switch floods them to b).
  unetmap::Ring t = a.tx_ring(0);
  for (int i = 0; i < 50; i++) {
    netmap_slot& s = t.slot(t.cur());
    uint8_t* f = t.buf(s.buf_idx);
    memset(f, 0xff, 6);
    memset(f + 6, 0x02, 6);
    f[12] = 0x08, f[13] = 0x00;
    s.len = 60;
    t.advance();
  }
  ASSERT_EQ(a.txsync(), 0);
  unetmap::Ring r = b.rx_ring(0);
  ASSERT_EQ(b.rxsync(), 0);
  EXPECT_EQ(r.space(), 50u);

  const auto sws = list<unetmap_switch_info>(unetmap_switches);
  ASSERT_EQ(sws.size(), 1u);
  EXPECT_STREQ(sws[0].name, "vale7");
  EXPECT_STREQ(sws[0].lookup, "learning");
  EXPECT_EQ(sws[0].ports, 2u);
  const auto ports = list<unetmap_switch_port>([](unetmap_switch_port* o, int m) { return unetmap_switch_ports("vale7", o, m); });
  ASSERT_EQ(ports.size(), 2u);
  EXPECT_STREQ(ports[0].name, "vale7:a");
  EXPECT_EQ(ports[0].tx_packets, 50u);
  EXPECT_EQ(ports[0].tx_bytes, 3000u);
  EXPECT_STREQ(ports[1].name, "vale7:b");
  EXPECT_EQ(ports[1].tx_packets, 0u);

  ASSERT_EQ(unetmap_switch_set_lookup("vale7", "hub"), 0) << unetmap_last_error();
  EXPECT_STREQ(list<unetmap_switch_info>(unetmap_switches).at(0).lookup, "hub");
  EXPECT_EQ(unetmap_switch_set_lookup("vale7", "nonesuch"), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_NE(std::string(unetmap_last_error()).find("nonesuch"), std::string::npos) << unetmap_last_error();
  EXPECT_EQ(unetmap_switch_ports("vale8", nullptr, 0), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(unetmap_nic_backend("vale7:a"), nullptr);
  EXPECT_EQ(errno, ENXIO);
}

TEST(Capi, RegionsMadeListedAndDeleted) {
  const unetmap_region_sizes sizes{0, 0, 16, 0, 512, 4096};
  ASSERT_EQ(unetmap_region_create(31, &sizes), 0) << unetmap_last_error();
  EXPECT_EQ(unetmap_region_create(31, &sizes), 0) << "the same sizes again: fine";
  const unetmap_region_sizes other{0, 0, 0, 0, 1024, 0};
  EXPECT_EQ(unetmap_region_create(31, &other), -1);
  EXPECT_EQ(errno, EEXIST);
  const unetmap_region_sizes bad{0, 0, 0, 0, 0, 100};  // not a multiple of 64
  EXPECT_EQ(unetmap_region_create(32, &bad), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(unetmap_region_create(0, nullptr), -1);
  EXPECT_EQ(errno, EINVAL);

  std::string err;
  {
    auto p = unetmap::Port::open("netmap:rg{0@31@conf:slots=64", &err);
    ASSERT_TRUE(p) << err;
    const auto regions = list<unetmap_region_info>(unetmap_regions);
    ASSERT_EQ(regions.size(), 1u);
    const unetmap_region_info& r = regions[0];
    EXPECT_EQ(r.mem_id, 31);
    EXPECT_EQ(r.persistent, 1);
    EXPECT_EQ(r.ports, 2u) << "both ends of the pipe";
    EXPECT_EQ(r.sizes.buf_num, 512u);
    EXPECT_EQ(r.sizes.buf_size, 4096u);
    EXPECT_EQ(r.sizes.ring_num, 16u);
    EXPECT_GT(r.bufs_in_use, 0u);
    EXPECT_EQ(r.uid, getuid());
    EXPECT_EQ(r.mode & 0777, 0600u);
    EXPECT_EQ(unetmap_region_delete(31), -1) << "in use";
    EXPECT_EQ(errno, EBUSY);
  }
  ASSERT_EQ(unetmap_region_delete(31), 0) << unetmap_last_error();
  EXPECT_EQ(unetmap_regions(nullptr, 0), 0);
  EXPECT_EQ(unetmap_region_delete(31), -1);
  EXPECT_EQ(errno, ENOENT);
}

TEST(Capi, BadArgumentsAreRefusedWithAReason) {
  unetmap_port_info p[1];
  EXPECT_EQ(unetmap_ports(nullptr, 1), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(unetmap_ports(p, -1), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(unetmap_port_rings(nullptr, nullptr, 0), -1);
  EXPECT_EQ(errno, EFAULT);
  EXPECT_EQ(unetmap_port_counters("x", nullptr), -1);
  EXPECT_EQ(errno, EFAULT);
  EXPECT_EQ(unetmap_switch_ports(nullptr, nullptr, 0), -1);
  EXPECT_EQ(errno, EFAULT);
  EXPECT_EQ(unetmap_switch_set_lookup(nullptr, "hub"), -1);
  EXPECT_EQ(errno, EFAULT);
  EXPECT_EQ(unetmap_nic_backend(nullptr), nullptr);
  EXPECT_EQ(errno, EFAULT);
  unetmap_worker_info w;
  EXPECT_EQ(unetmap_worker_get("nonesuch", &w), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(unetmap_worker_get(nullptr, &w), -1);
  EXPECT_EQ(errno, EFAULT);
  EXPECT_EQ(unetmap_vhost_attach_spec("vale0:a", UNETMAP_VHOST_CHECK), -1);
  EXPECT_EQ(errno, ENOENT) << "no vhost=: not a vhost-user request";
  EXPECT_EQ(unetmap_vhost_attach_spec("vale0:a,vhost=/x,queues=99", UNETMAP_VHOST_CHECK), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_NE(std::string(unetmap_last_error()).find("queues"), std::string::npos) << unetmap_last_error();
  EXPECT_EQ(unetmap_vhost_attach_spec("vale0:a,vhost=/x,client", UNETMAP_VHOST_CHECK), 0);
  EXPECT_EQ(unetmap_workers(nullptr, 0), 0) << "a check starts nothing";
  unetmap_port_stats st;
  EXPECT_EQ(unetmap_port_counters("nonesuch", &st), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_NE(std::string(unetmap_last_error()).find("nonesuch"), std::string::npos);
}

}  // namespace
