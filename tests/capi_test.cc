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

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "core/registry.h"
#include "mem/region.h"
#include "util/test_util.h"

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
  EXPECT_EQ(unetmap_region_delete(5), -1);
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

// The region files of the runtime directory, by name.
std::vector<std::string> region_files() {
  std::vector<std::string> out;
  if (DIR* d = opendir(getenv("UNETMAP_DIR"))) {
    while (dirent* e = readdir(d))
      if (strncmp(e->d_name, "mem.", 4) == 0) out.push_back(e->d_name);
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A region file that cannot be read is listed with its error; the others are
// listed as usual (it made the whole listing fail).
TEST(Capi, AnUnreadableRegionIsFlaggedAndTheOthersListed) {
  std::string err;
  auto p = unetmap::Port::open("netmap:ur{0", &err);
  ASSERT_TRUE(p) << err;
  const std::string bad = std::string(getenv("UNETMAP_DIR")) + "/mem.77";
  int fd = open(bad.c_str(), O_CREAT | O_WRONLY, 0600);  // empty: no header
  ASSERT_GE(fd, 0);
  close(fd);
  const auto regions = list<unetmap_region_info>(unetmap_regions);
  ASSERT_EQ(regions.size(), 2u);
  EXPECT_EQ(regions[0].mem_id, 1);
  EXPECT_EQ(regions[0].error, 0);
  EXPECT_EQ(regions[0].ports, 2u);
  EXPECT_EQ(regions[1].mem_id, 77);
  EXPECT_EQ(regions[1].error, EPROTO);
  EXPECT_EQ(regions[1].uid, getuid());
  EXPECT_EQ(regions[1].mode, 0600u);
}

// A listing never makes a region: a switch port whose region file is gone
// is listed without it (the switch listing made a fresh, default-sized one).
TEST(Capi, ListingASwitchMakesNoRegion) {
  std::string err;
  auto a = unetmap::Port::open("vale6:a", &err);
  ASSERT_TRUE(a) << err;
  const auto before = region_files();
  ASSERT_EQ(before.size(), 1u) << "the port's private region";
  const std::string file = std::string(getenv("UNETMAP_DIR")) + "/" + before[0];
  nmtest::Child c([&] {  // a process that never mapped it
    unlink(file.c_str());
    std::vector<unetmap_switch_port> v(8);
    return unetmap_switch_ports("vale6", v.data(), 8) == 1 ? 0 : 1;
  });
  EXPECT_EQ(c.wait(10000), 0);
  struct stat st;
  EXPECT_NE(stat(file.c_str(), &st), 0) << "the listing made " << file;
}

// A program that listed a region does not keep it mapped once another
// process deleted it.
TEST(Capi, ADeletedRegionIsNotKeptMappedByAListing) {
  nmtest::Child made([] { return unetmap_region_create(41, nullptr) == 0 ? 0 : 1; });
  ASSERT_EQ(made.wait(10000), 0);
  EXPECT_EQ(list<unetmap_region_info>(unetmap_regions).size(), 1u);  // mapped here now
  nmtest::Child c([] { return unetmap_region_delete(41) == 0 ? 0 : 1; });
  ASSERT_EQ(c.wait(10000), 0);
  EXPECT_EQ(list<unetmap_region_info>(unetmap_regions).size(), 0u);
  std::ifstream maps("/proc/self/maps");
  std::stringstream text;
  text << maps.rdbuf();
  EXPECT_EQ(text.str().find("mem.41"), std::string::npos) << text.str();
}

// Sizes and offsets come from the region header as it was checked when
// mapped: a header and a port entry rewritten afterwards (by another process
// of the domain) give no address outside the region.
TEST(Capi, ARewrittenRegionHeaderIsNotFollowed) {
  std::string err;
  auto p = unetmap::Port::open("netmap:hr{0", &err);
  ASSERT_TRUE(p) << err;
  ASSERT_EQ(unetmap_port_rings("hr{0", nullptr, 0), 2);  // mapped and checked
  const std::string file = std::string(getenv("UNETMAP_DIR")) + "/mem.1";
  int fd = open(file.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  void* m = mmap(nullptr, sizeof(unetmap::RegionHeader), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  ASSERT_NE(m, MAP_FAILED);
  auto* h = static_cast<unetmap::RegionHeader*>(m);
  const unetmap::RegionHeader saved = *h;
  h->cfg.ring_num = 0xffffffffu;
  h->kring_off = 1ull << 40;
  h->ring_owner_off = 1ull << 40;
  {
    int e = 0;
    std::string why;
    std::optional<unetmap::RegistryLock> g;
    unetmap::Registry* reg = unetmap::lock_registry(&g, &e, &why);
    ASSERT_NE(reg, nullptr) << why;
    reg->port(reg->find_port("hr{0")).ring[0][0] = 0x7ffffff0u;
  }
  unetmap_ring_info r[4];
  EXPECT_EQ(unetmap_port_rings("hr{0", r, 4), 1) << "the tx ring's index is no ring of the region: skipped";
  *h = saved;
  munmap(m, sizeof(unetmap::RegionHeader));
}

// A persistent VALE port by either name: its own, or valeX:NAME as the
// switch lists it.
TEST(Capi, APersistentPortByTheNameItsSwitchGivesIt) {
  int fd = open("/dev/netmap", O_RDWR);
  ASSERT_GE(fd, 0);
  nmreq_vale_newif nif{};
  ASSERT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_NEWIF, "pb", &nif), 0) << unetmap_last_error();
  nmreq_vale_attach att{};
  att.reg.nr_mode = NR_REG_ALL_NIC;
  ASSERT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_ATTACH, "vale4:pb", &att), 0) << unetmap_last_error();
  const auto ports = list<unetmap_switch_port>([](unetmap_switch_port* o, int m) { return unetmap_switch_ports("vale4", o, m); });
  ASSERT_EQ(ports.size(), 1u);
  EXPECT_STREQ(ports[0].name, "vale4:pb");
  unetmap_port_stats st;
  EXPECT_EQ(unetmap_port_counters("vale4:pb", &st), 0) << unetmap_last_error();
  EXPECT_EQ(unetmap_port_counters("pb", &st), 0) << unetmap_last_error();
  EXPECT_EQ(unetmap_port_counters("vale4:nonesuch", &st), -1);
  nmreq_vale_detach det{};
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_DETACH, "vale4:pb", &det), 0);
  EXPECT_EQ(nmtest::ctrl(fd, NETMAP_REQ_VALE_DELIF, "pb", nullptr), 0);
  close(fd);
}

// A FIFO planted among the workers' files does not hang a listing.
TEST(Capi, APlantedFifoDoesNotHangTheWorkersListing) {
  const std::string dir = std::string(getenv("UNETMAP_DIR")) + "/workers";
  mkdir(dir.c_str(), 0700);
  int fd = open((dir + "/evil.lock").c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  close(fd);
  ASSERT_EQ(mkfifo((dir + "/evil.state").c_str(), 0600), 0);
  nmtest::Child c([] { return unetmap_workers(nullptr, 0) >= 0 ? 0 : 1; });
  EXPECT_EQ(c.wait(5000), 0) << "the listing blocked on the FIFO";
}

}  // namespace
