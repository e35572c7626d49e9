// pcap-file ports (src/ports/pcap): "pcap:NAME" is a port whose wire is
// the capture file NAME.pcap. The files are written and read back here
// with libpcap itself, the independent side; frames are compared byte by
// byte.
#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unetmap/unetmap.h>

#include <string>
#include <vector>

#include "util/test_util.h"

namespace {

using Frame = std::vector<uint8_t>;

// A frame of len bytes whose every byte says which frame and where.
Frame make_frame(uint32_t seq, uint32_t len) {
  Frame f(len);
  for (uint32_t i = 0; i < len; i++) f[i] = uint8_t(seq * 7 + i * 13 + (i >> 8));
  return f;
}

class PcapPort : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(getenv("UNETMAP_DIR")) + ".files";
    ASSERT_EQ(mkdir(dir_.c_str(), 0700), 0) << strerror(errno);
    setenv("UNETMAP_PCAP_DIR", dir_.c_str(), 1);
  }
  std::string file(const std::string& name) const { return dir_ + "/" + name + ".pcap"; }

  // Write frames to NAME.pcap with libpcap (link type, precision, the
  // header's snapshot length given; records are written whole).
  void write_capture(const std::string& name, const std::vector<Frame>& frames, int dlt = DLT_EN10MB,
                     u_int prec = PCAP_TSTAMP_PRECISION_MICRO, int snaplen = 262144) {
    pcap_t* dead = pcap_open_dead_with_tstamp_precision(dlt, snaplen, prec);
    ASSERT_NE(dead, nullptr);
    pcap_dumper_t* d = pcap_dump_open(dead, file(name).c_str());
    ASSERT_NE(d, nullptr) << pcap_geterr(dead);
    for (size_t i = 0; i < frames.size(); i++) {
      pcap_pkthdr h{};
      h.ts.tv_sec = 1000 + long(i);
      h.caplen = h.len = uint32_t(frames[i].size());
      pcap_dump(reinterpret_cast<u_char*>(d), &h, frames[i].data());
    }
    pcap_dump_close(d);
    pcap_close(dead);
  }

  // Every frame of NAME.pcap, read with libpcap; their time stamps in ts,
  // and whether the file ended cleanly (no record cut short) in *clean.
  std::vector<Frame> read_capture(const std::string& name, std::vector<timespec>* ts = nullptr,
                                  bool* clean = nullptr) {
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p = pcap_open_offline_with_tstamp_precision(file(name).c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
    std::vector<Frame> out;
    EXPECT_NE(p, nullptr) << err;
    if (!p) return out;
    pcap_pkthdr* h;
    const u_char* data;
    int r;
    while ((r = pcap_next_ex(p, &h, &data)) == 1) {
      out.emplace_back(data, data + h->caplen);
      if (ts) ts->push_back(timespec{h->ts.tv_sec, long(h->ts.tv_usec)});
    }
    if (clean) *clean = r == PCAP_ERROR_BREAK;
    pcap_close(p);
    return out;
  }

  std::string dir_;
};

// Send frames on tx ring 0 of d (chains where a frame is longer than a
// buffer), one txsync per batch of up to 64.
void send_frames(nmport_d* d, const std::vector<Frame>& frames) {
  netmap_ring* r = NETMAP_TXRING(d->nifp, 0);
  size_t i = 0;
  while (i < frames.size()) {
    for (int batch = 0; batch < 64 && i < frames.size(); batch++, i++) {
      const Frame& f = frames[i];
      const uint32_t nslots = uint32_t((f.size() + r->nr_buf_size - 1) / r->nr_buf_size);
      ASSERT_GE(nm_ring_space(r), nslots);
      for (uint32_t off = 0, k = 0; k < nslots; k++) {
        netmap_slot& s = r->slot[r->head];
        const uint32_t c = std::min<uint32_t>(r->nr_buf_size, uint32_t(f.size()) - off);
        memcpy(NETMAP_BUF(r, s.buf_idx), f.data() + off, c);
        s.len = uint16_t(c);
        s.flags = k + 1 < nslots ? NS_MOREFRAG : 0;
        off += c;
        r->head = r->cur = nm_ring_next(r, r->head);
      }
    }
    ASSERT_EQ(ioctl(d->fd, NIOCTXSYNC, nullptr), 0) << strerror(errno);
  }
}

// Frames from rx ring 0 of d until `want` came or nothing came for
// quiet_ms (chains put together).
std::vector<Frame> recv_frames(nmport_d* d, size_t want, int quiet_ms = 300) {
  netmap_ring* r = NETMAP_RXRING(d->nifp, 0);
  std::vector<Frame> out;
  Frame cur;
  while (out.size() < want) {
    pollfd p{d->fd, POLLIN, 0};
    if (poll(&p, 1, quiet_ms) != 1) break;
    while (!nm_ring_empty(r)) {
      netmap_slot& s = r->slot[r->head];
      const uint8_t* b = reinterpret_cast<const uint8_t*>(NETMAP_BUF(r, s.buf_idx));
      cur.insert(cur.end(), b, b + s.len);
      if (!(s.flags & NS_MOREFRAG)) out.push_back(std::move(cur)), cur.clear();
      r->head = r->cur = nm_ring_next(r, r->head);
    }
  }
  return out;
}

TEST_F(PcapPort, RxDeliversTheFileInOrderWithLongFramesAsChains) {
  // 2048-byte buffers: 3000 and 9000 bytes come as chains of 2 and 5; the
  // 40000-byte frame is longer than the whole ring (16 slots) and dropped.
  std::vector<Frame> in;
  const uint32_t sizes[] = {60, 1514, 3000, 9000, 64, 40000, 128};
  for (uint32_t i = 0; i < 300; i++) in.push_back(make_frame(i, sizes[i % 7]));
  write_capture("in", in);
  nmport_d* d = nmport_open("pcap:in@conf:rx-slots=16,tx-slots=16");
  ASSERT_NE(d, nullptr) << unetmap_last_error();
  std::vector<Frame> want;
  for (const Frame& f : in)
    if (f.size() != 40000) want.push_back(f);
  const std::vector<Frame> got = recv_frames(d, want.size() + 1);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); i++) ASSERT_EQ(got[i], want[i]) << "frame " << i;
  // The end of the file: nothing more comes (poll times out).
  pollfd p{d->fd, POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 100), 0);
  nmport_close(d);
}

TEST_F(PcapPort, TxAppendsEveryFrameStampedAndFlushedAtEachSync) {
  // A missing file is made; a sync's frames are in it before the port closes.
  std::vector<Frame> out;
  for (uint32_t i = 0; i < 500; i++) out.push_back(make_frame(i, i % 5 == 0 ? 5000 : 60 + i));
  nmport_d* d = nmport_open("pcap:out");
  ASSERT_NE(d, nullptr) << unetmap_last_error();
  timespec before;
  clock_gettime(CLOCK_REALTIME, &before);
  send_frames(d, out);
  std::vector<timespec> ts;
  const std::vector<Frame> got = read_capture("out", &ts);
  ASSERT_EQ(got.size(), out.size());
  for (size_t i = 0; i < got.size(); i++) ASSERT_EQ(got[i], out[i]) << "frame " << i;
  EXPECT_GE(ts.front().tv_sec, before.tv_sec);  // the time of the sync, not 0
  EXPECT_LE(ts.back().tv_sec, before.tv_sec + 5);
  // A second opener appends after what is there.
  nmport_close(d);
  d = nmport_open("pcap:out/T");
  ASSERT_NE(d, nullptr) << unetmap_last_error();
  send_frames(d, {make_frame(999, 99)});
  nmport_close(d);
  const std::vector<Frame> all = read_capture("out");
  ASSERT_EQ(all.size(), out.size() + 1);
  EXPECT_EQ(all.back(), make_frame(999, 99));
}

TEST_F(PcapPort, WhatASyncConsumedSurvivesKillOfTheWriter) {
  nmtest::Event synced;
  nmtest::Child c([&] {
    nmport_d* d = nmport_open("pcap:killed/T");
    if (!d) return 1;
    std::vector<Frame> f;
    for (uint32_t i = 0; i < 100; i++) f.push_back(make_frame(i, 100));
    send_frames(d, f);
    synced.signal();
    pause();
    return 0;
  });
  ASSERT_EQ(synced.wait(10000), 'x');
  kill(c.pid(), SIGKILL);
  EXPECT_EQ(c.wait(10000), 128 + SIGKILL);
  const std::vector<Frame> got = read_capture("killed");
  ASSERT_EQ(got.size(), 100u);
  EXPECT_EQ(got[99], make_frame(99, 100));
}

TEST_F(PcapPort, BoundBothWaysReadsOnlyWhatWasThereAndAppendsItsOwn) {
  std::vector<Frame> in;
  for (uint32_t i = 0; i < 5; i++) in.push_back(make_frame(i, 200));
  write_capture("both", in);
  nmport_d* d = nmport_open("pcap:both");
  ASSERT_NE(d, nullptr) << unetmap_last_error();
  std::vector<Frame> mine;
  for (uint32_t i = 0; i < 10; i++) mine.push_back(make_frame(100 + i, 300));
  send_frames(d, mine);
  const std::vector<Frame> got = recv_frames(d, 100, 200);
  EXPECT_EQ(got, in);  // not the frames sent since
  nmport_close(d);
  EXPECT_EQ(read_capture("both").size(), 15u);
}

TEST_F(PcapPort, NanosecondFilesStayNanosecond) {
  write_capture("nano", {make_frame(1, 64)}, DLT_EN10MB, PCAP_TSTAMP_PRECISION_NANO);
  nmport_d* d = nmport_open("pcap:nano/T");
  ASSERT_NE(d, nullptr) << unetmap_last_error();
  send_frames(d, {make_frame(2, 64)});
  nmport_close(d);
  char err[PCAP_ERRBUF_SIZE];
  pcap_t* p = pcap_open_offline_with_tstamp_precision(file("nano").c_str(), PCAP_TSTAMP_PRECISION_NANO, err);
  ASSERT_NE(p, nullptr) << err;
  EXPECT_EQ(pcap_get_tstamp_precision(p), PCAP_TSTAMP_PRECISION_NANO);
  pcap_close(p);
  EXPECT_EQ(read_capture("nano").size(), 2u);
}

TEST_F(PcapPort, BadFilesRingsAndSecondBindersGetClearErrors) {
  // Not a capture: refused, and left as it was (nothing appended to it).
  FILE* f = fopen(file("junk").c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs("this is not a capture file\n", f);
  fclose(f);
  EXPECT_EQ(nmport_open("pcap:junk"), nullptr);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_NE(std::string(unetmap_last_error()).find("junk.pcap"), std::string::npos) << unetmap_last_error();
  struct stat st;
  ASSERT_EQ(stat(file("junk").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 27);
  // Not Ethernet.
  write_capture("raw", {make_frame(1, 40)}, DLT_RAW);
  EXPECT_EQ(nmport_open("pcap:raw"), nullptr);
  EXPECT_NE(std::string(unetmap_last_error()).find("not an Ethernet capture"), std::string::npos)
      << unetmap_last_error();
  // One tx and one rx ring.
  EXPECT_EQ(nmport_open("pcap:x@conf:rings=2"), nullptr);
  EXPECT_NE(std::string(unetmap_last_error()).find("one tx ring and one rx ring"), std::string::npos)
      << unetmap_last_error();
  // One reader, one writer.
  nmport_d* a = nmport_open("pcap:shared");
  ASSERT_NE(a, nullptr) << unetmap_last_error();
  EXPECT_EQ(nmport_open("pcap:shared/R"), nullptr);
  EXPECT_EQ(errno, EBUSY);
  EXPECT_NE(std::string(unetmap_last_error()).find("one reader"), std::string::npos) << unetmap_last_error();
  nmport_close(a);
  // A directory that does not exist.
  setenv("UNETMAP_PCAP_DIR", (dir_ + "/none").c_str(), 1);
  EXPECT_EQ(nmport_open("pcap:y"), nullptr);
  EXPECT_EQ(errno, ENOENT) << unetmap_last_error();
}

TEST_F(PcapPort, AFullFileDropsItsSyncsFramesCutsNoRecordAndWritesAgainWhenThereIsRoom) {
  // The writer may not grow the file past 64 KB (RLIMIT_FSIZE: EFBIG, as
  // a full disk's ENOSPC): syncs still free the ring, their frames are
  // dropped and no half record stays; once the limit goes, frames are
  // written again.
  const Frame after = make_frame(77, 300);
  nmtest::Child c([&] {
    setenv("UNETMAP_QUIET", "1", 1);
    nmport_d* d = nmport_open("pcap:full/T");
    if (!d) return 1;
    signal(SIGXFSZ, SIG_IGN);
    rlimit rl{65536, RLIM_INFINITY};
    setrlimit(RLIMIT_FSIZE, &rl);
    netmap_ring* r = NETMAP_TXRING(d->nifp, 0);
    for (int round = 0; round < 20; round++) {
      std::vector<Frame> f;
      for (uint32_t i = 0; i < 20; i++) f.push_back(make_frame(i, 1000));
      send_frames(d, f);
      if (::testing::Test::HasFailure()) return 2;
      if (nm_ring_space(r) + 1 != r->num_slots) return 3;  // everything consumed
    }
    rl.rlim_cur = RLIM_INFINITY;
    setrlimit(RLIMIT_FSIZE, &rl);
    send_frames(d, std::vector<Frame>(10, after));
    nmport_close(d);
    return ::testing::Test::HasFailure() ? 4 : 0;
  });
  EXPECT_EQ(c.wait(20000), 0);
  bool clean = false;
  const std::vector<Frame> got = read_capture("full", nullptr, &clean);
  EXPECT_TRUE(clean) << "a record was left cut short";
  ASSERT_GT(got.size(), 10u);
  for (size_t i = 0; i + 10 < got.size(); i++) EXPECT_EQ(got[i].size(), 1000u);
  for (size_t i = got.size() - 10; i < got.size(); i++) EXPECT_EQ(got[i], after) << "frame " << i;
}

TEST_F(PcapPort, AForkChildGoesOnWhereTheRingIs) {
  // The parent reads part of the file; its child, sharing the ring, reads
  // the rest: together every frame once, in order.
  std::vector<Frame> in;
  for (uint32_t i = 0; i < 20000; i++) in.push_back(make_frame(i, 200 + i % 1200));
  write_capture("forked", in);
  nmport_d* d = nmport_open("pcap:forked/R");
  ASSERT_NE(d, nullptr) << unetmap_last_error();
  const std::vector<Frame> first = recv_frames(d, 2000);
  ASSERT_GE(first.size(), 2000u);
  nmtest::Event done;
  nmtest::Child c([&] {
    const std::vector<Frame> rest = recv_frames(d, in.size() - first.size() + 1, 300);
    if (rest.size() != in.size() - first.size()) return 1;
    for (size_t i = 0; i < rest.size(); i++)
      if (rest[i] != in[first.size() + i]) return 2;
    return 0;
  });
  EXPECT_EQ(c.wait(30000), 0);
  for (size_t i = 0; i < first.size(); i++) ASSERT_EQ(first[i], in[i]) << i;
  // And the parent, after its child: nothing more (the file is done).
  EXPECT_TRUE(recv_frames(d, 1, 100).empty());
  nmport_close(d);
}

TEST_F(PcapPort, FilesWithAShorterSnapshotLengthAreReadAndAppendedTo) {
  // A header of snaplen 100 whose records hold 500 bytes: libpcap cuts
  // them to 100 (and skips the rest). Bound both ways, the port reads the
  // file's 50 frames, cut, and none of those it appends (cut to 100 too).
  std::vector<Frame> in;
  for (uint32_t i = 0; i < 50; i++) in.push_back(make_frame(i, 500));
  write_capture("short", in, DLT_EN10MB, PCAP_TSTAMP_PRECISION_MICRO, 100);
  nmport_d* d = nmport_open("pcap:short");
  ASSERT_NE(d, nullptr) << unetmap_last_error();
  const Frame mine = make_frame(9, 400);
  send_frames(d, std::vector<Frame>(30, mine));
  const std::vector<Frame> got = recv_frames(d, 1000, 200);
  ASSERT_EQ(got.size(), in.size());
  for (size_t i = 0; i < got.size(); i++) EXPECT_EQ(got[i], Frame(in[i].begin(), in[i].begin() + 100)) << i;
  nmport_close(d);
  const std::vector<Frame> all = read_capture("short");
  ASSERT_EQ(all.size(), 80u);
  EXPECT_EQ(all.back(), Frame(mine.begin(), mine.begin() + 100));
}

TEST_F(PcapPort, AFrameLongerThanTheRingIsDroppedAndTheNextComes) {
  // 64 KB buffers carry at most 65535 bytes a slot: a 131071-byte frame
  // needs 3 slots, more than a 4-slot ring's 3 free... minus one.
  setenv("UNETMAP_BUF_SIZE", "65536", 1);
  setenv("UNETMAP_BUF_NUM", "256", 1);
  write_capture("huge", {make_frame(1, 131071), make_frame(2, 60)});
  nmport_d* d = nmport_open("pcap:huge/R@conf:rx-slots=3,tx-slots=8");
  ASSERT_NE(d, nullptr) << unetmap_last_error();
  const std::vector<Frame> got = recv_frames(d, 1, 500);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], make_frame(2, 60));
  nmport_close(d);
}

}  // namespace
