// extmem (NETMAP_REQ_OPT_EXTMEM, "@extmem:file=..."): a port whose region's
// public part (netmap_if, rings, buffers) is a file the application maps.
// The region gets a new id; other processes open the port's peer and find
// the same pages (the packets are in the application's file); memory that
// other processes could not map, too little memory, and an existing port
// are refused with a clear message; the region goes with its last port and
// the file stays.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <string>
#include <vector>

#include "util/test_util.h"

namespace {

using nmtest::CaptureCtx;
using nmtest::Child;
using nmtest::RawPort;

// The application's files, in a directory of their own (never in the
// runtime directory: extmem on a region's own file is refused), removed at
// the end of the test.
class ExtDir {
 public:
  ExtDir() {
    char t[] = "/dev/shm/unetmap-extmem-XXXXXX";
    if (!mkdtemp(t)) abort();
    dir_ = t;
  }
  ~ExtDir() {
    for (auto& f : files_) unlink(f.c_str());
    rmdir(dir_.c_str());
  }
  std::string file(const char* name, off_t size) {
    std::string path = dir_ + "/" + name;
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, size) != 0) abort();
    ::close(fd);
    files_.push_back(path);
    return path;
  }

 private:
  std::string dir_;
  std::vector<std::string> files_;
};

std::string unetmap_dir() { return getenv("UNETMAP_DIR"); }

bool region_file_exists(uint16_t id) {
  struct stat st;
  std::string p = std::string(getenv("UNETMAP_DIR")) + "/mem." + std::to_string(id);
  return stat(p.c_str(), &st) == 0;
}

nmport_d* open_capture(const std::string& spec, std::string* msg, int* err) {
  CaptureCtx* cc = new CaptureCtx;  // lives as long as the descriptor may
  nmctx* old = nmctx_set_default(&cc->ctx);
  errno = 0;
  nmport_d* d = nmport_open(spec.c_str());
  *err = errno;
  nmctx_set_default(old);
  *msg = cc->last;
  return d;
}

TEST(Extmem, PortOnAFileSharedWithAnotherProcess) {
  ExtDir ext;
  const off_t kSize = 8 << 20;
  std::string path = ext.file("ext.a", kSize);
  std::string msg;
  int err;
  nmport_d* d = open_capture("netmap:xa{0@extmem:file=" + path + ",ring-num=16,if-num=16", &msg, &err);
  ASSERT_NE(d, nullptr) << msg;
  const uint16_t id = d->reg.nr_mem_id;
  EXPECT_GE(id, 1000) << "a region of its own";
  nmreq_pools_info* pi = nmport_extmem_getinfo(d);
  ASSERT_NE(pi, nullptr);
  EXPECT_EQ(pi->nr_mem_id, id);
  EXPECT_EQ(pi->nr_ring_pool_objtotal, 16u);
  EXPECT_EQ(pi->nr_if_pool_objtotal, 16u);
  EXPECT_GT(pi->nr_buf_pool_objtotal, 3000u) << "buf-num not given: as many as fit";
  EXPECT_LE(pi->nr_memsize, uint64_t(kSize));
  char* base = static_cast<char*>(d->mem->mem);
  EXPECT_EQ(uintptr_t(base), uintptr_t(d->extmem->nro_usrptr)) << "the application's memory is the region";
  EXPECT_GE(reinterpret_cast<char*>(d->nifp), base);
  EXPECT_LT(reinterpret_cast<char*>(d->nifp), base + kSize);
  const uint64_t buf_pool = pi->nr_buf_pool_offset, buf_size = pi->nr_buf_pool_objsize;

  nmtest::Event go, done;
  Child peer([&] {
    nmport_d* p = nmport_open("netmap:xa}0");  // no extmem: finds the region
    if (!p) return 2;
    if (p->reg.nr_mem_id != id) return 3;
    netmap_ring* t = NETMAP_TXRING(p->nifp, 0);
    for (uint32_t i = 0; i < 100; i++) {
      netmap_slot& s = t->slot[t->cur];
      char* b = NETMAP_BUF(t, s.buf_idx);
      snprintf(b, 64, "extmem packet %u", i);
      s.len = 64;
      t->head = t->cur = nm_ring_next(t, t->cur);
    }
    if (ioctl(p->fd, NIOCTXSYNC, nullptr) != 0) return 4;
    go.signal();
    if (done.wait(10000) < 0) return 5;  // stay until the parent read
    nmport_close(p);
    return 0;
  });
  ASSERT_EQ(go.wait(10000), 'x') << "peer exit " << peer.wait(1000);
  pollfd pf{d->fd, POLLIN, 0};
  ASSERT_EQ(poll(&pf, 1, 5000), 1);
  netmap_ring* r = NETMAP_RXRING(d->nifp, 0);
  ASSERT_EQ(nm_ring_space(r), 100u);
  int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  for (uint32_t i = 0; i < 100; i++) {
    const netmap_slot& s = r->slot[r->cur];
    char want[64], in_file[64];
    snprintf(want, sizeof want, "extmem packet %u", i);
    EXPECT_STREQ(NETMAP_BUF(r, s.buf_idx), want);
    ASSERT_EQ(pread(fd, in_file, sizeof in_file, off_t(buf_pool + s.buf_idx * buf_size)), 64);
    EXPECT_STREQ(in_file, want) << "the packet is in the application's file";
    r->head = r->cur = nm_ring_next(r, r->cur);
  }
  ::close(fd);
  done.signal();
  EXPECT_EQ(peer.wait(10000), 0);
  nmport_close(d);
  int probe = ::open("/dev/netmap", O_RDWR);  // reap
  ::close(probe);
  EXPECT_FALSE(region_file_exists(id)) << "the region went with its last port";
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0) << "the application's file stays";
  EXPECT_EQ(st.st_size, kSize);
}

// Another port of the process on the extmem region shares its mapping; the
// extmem port closing first leaves that mapping to it.
TEST(Extmem, OtherPortsOfTheProcessKeepTheMapping) {
  ExtDir ext;
  std::string path = ext.file("ext.k", 8 << 20);
  nmport_d* a = nmport_open(("netmap:xk{0@extmem:file=" + path + ",ring-num=8").c_str());
  ASSERT_NE(a, nullptr);
  nmport_d* b = nmport_open("netmap:xk}0");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->mem, b->mem) << "one mapping per region and process";
  nmport_close(a);
  netmap_ring* t = NETMAP_TXRING(b->nifp, 0);
  strcpy(NETMAP_BUF(t, t->slot[t->cur].buf_idx), "still mapped");
  t->slot[t->cur].len = 60;
  t->head = t->cur = nm_ring_next(t, t->cur);
  EXPECT_EQ(ioctl(b->fd, NIOCTXSYNC, nullptr), 0);
  nmport_close(b);
}

TEST(Extmem, ValePortOnAFile) {
  ExtDir ext;
  std::string path = ext.file("ext.v", 8 << 20);
  std::string msg;
  int err;
  nmport_d* v = open_capture("vale0:xv@extmem:file=" + path + ",ring-num=8", &msg, &err);
  ASSERT_NE(v, nullptr) << msg;
  RawPort other("vale0:xo");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other.reg.nr_mem_id, v->reg.nr_mem_id);
  netmap_ring* t = other.tx();
  char* f = NETMAP_BUF(t, t->slot[t->cur].buf_idx);
  memset(f, 0xff, 6);
  memset(f + 6, 0x02, 6);
  strcpy(f + 14, "into extmem");
  t->slot[t->cur].len = 60;
  t->head = t->cur = nm_ring_next(t, t->cur);
  ASSERT_EQ(other.txsync(), 0);
  pollfd pf{v->fd, POLLIN, 0};
  ASSERT_EQ(poll(&pf, 1, 5000), 1);
  netmap_ring* r = NETMAP_RXRING(v->nifp, 0);
  EXPECT_STREQ(NETMAP_BUF(r, r->slot[r->cur].buf_idx) + 14, "into extmem");
  nmport_close(v);
}

int extmem_register(const char* name, void* mem, size_t size, std::string* msg) {
  CaptureCtx cc;
  nmport_d* d = nmport_prepare(name);
  if (!d) return -1;
  d->ctx = &cc.ctx;
  int rc = nmport_extmem(d, mem, size);
  if (rc == 0) rc = nmport_open_desc(d);
  int e = rc < 0 ? errno : 0;
  *msg = cc.last;
  if (rc == 0) nmport_undo_open_desc(d);
  nmport_undo_prepare(d);
  return e;
}

TEST(Extmem, MemoryOthersCannotMapIsRefused) {
  ExtDir ext;
  const size_t kSize = 8 << 20;
  std::string msg;
  void* anon = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(anon, MAP_FAILED);
  EXPECT_EQ(extmem_register("netmap:xr{0", anon, kSize, &msg), EINVAL);
  EXPECT_NE(msg.find("MAP_SHARED mapping of a file"), std::string::npos) << msg;
  munmap(anon, kSize);
  std::string path = ext.file("ext.p", kSize);
  int fd = ::open(path.c_str(), O_RDWR);
  void* priv = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  ASSERT_NE(priv, MAP_FAILED);
  EXPECT_EQ(extmem_register("netmap:xr{0", priv, kSize, &msg), EINVAL) << "a private mapping";
  munmap(priv, kSize);
  RawPort a("xr}0");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(extmem_register("netmap:xq{0", a.mem, a.reg.nr_memsize, &msg), EINVAL)
      << "a region's own memory";
  EXPECT_NE(msg.find("is a netmap region"), std::string::npos) << msg;
  {
    // The same through a link of a region's file elsewhere.
    std::string link = ext.file("ext.l", 0);
    unlink(link.c_str());
    ASSERT_EQ(::link((unetmap_dir() + "/mem.1").c_str(), link.c_str()), 0) << strerror(errno);
    int lfd = ::open(link.c_str(), O_RDWR);
    void* m = mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, lfd, 0);
    ::close(lfd);
    ASSERT_NE(m, MAP_FAILED);
    EXPECT_EQ(extmem_register("netmap:xq{0", m, 1 << 20, &msg), EINVAL);
    EXPECT_NE(msg.find("is a netmap region"), std::string::npos) << msg;
    munmap(m, 1 << 20);
  }
  EXPECT_EQ(extmem_register("netmap:xq{0", reinterpret_cast<void*>(0x1000), kSize, &msg), EFAULT);
  a.close();
  std::string small = ext.file("ext.s", 256 << 10);
  int err;
  nmport_d* d = open_capture("netmap:xr{0@extmem:file=" + small + ",ring-num=8,buf-num=4096", &msg, &err);
  EXPECT_EQ(d, nullptr);
  EXPECT_EQ(err, ENOMEM);
  EXPECT_NE(msg.find("need"), std::string::npos) << msg;
  d = open_capture("netmap:xr{0@extmem:ring-num=8", &msg, &err);
  EXPECT_EQ(d, nullptr);
  EXPECT_EQ(err, EINVAL);
  EXPECT_NE(msg.find("file=PATH"), std::string::npos) << msg;
}

// extmem creates the port's region; a port that exists already keeps its
// own, and the register fails without leaving a region behind.
TEST(Extmem, ExistingPortIsRefused) {
  ExtDir ext;
  RawPort a("xe{0");
  ASSERT_TRUE(a.ok());
  std::string path = ext.file("ext.e", 8 << 20);
  std::string msg;
  int err;
  nmport_d* d = open_capture("netmap:xe}0@extmem:file=" + path + ",ring-num=8", &msg, &err);
  EXPECT_EQ(d, nullptr);
  EXPECT_EQ(err, EINVAL);
  EXPECT_NE(msg.find("exists already"), std::string::npos) << msg;
  EXPECT_FALSE(region_file_exists(1000)) << "the region made for it went";
}

// The option on another request is refused with its status set.
TEST(Extmem, OnlyOnRegister) {
  int fd = ::open("/dev/netmap", O_RDWR);
  ASSERT_GE(fd, 0);
  nmreq_opt_extmem e{};
  e.nro_opt.nro_reqtype = NETMAP_REQ_OPT_EXTMEM;
  nmreq_pools_info pi{};
  nmreq_header h{};
  h.nr_version = NETMAP_API;
  h.nr_reqtype = NETMAP_REQ_POOLS_INFO_GET;
  h.nr_body = uintptr_t(&pi);
  h.nr_options = uintptr_t(&e);
  EXPECT_NE(ioctl(fd, NIOCCTRL, &h), 0);
  EXPECT_EQ(errno, EOPNOTSUPP);
  EXPECT_EQ(e.nro_opt.nro_status, uint32_t(EOPNOTSUPP));
  ::close(fd);
}

}  // namespace
