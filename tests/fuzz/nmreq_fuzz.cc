// Fuzzes the control requests of /dev/netmap as an application makes them:
// open("/dev/netmap"), then ioctl(fd, NIOCCTRL / NIOCREGIF / NIOCGINFO, arg)
// with everything the library reads through arg built from the input:
// nmreq_header (version, type, name, reserved, body, options), the request
// bodies, the nro_next option chain (loops, bad pointers, extmem options with
// fuzzed pool sizes on a real MAP_SHARED file), the legacy struct nmreq with
// its nr_cmd VALE codes; then maybe mmap, a sync and poll; then close.
//
// Input: [ops] [ops2] [nfix] nfix x [at:2 kind:1 off:2] [arena bytes...].
// ops: bits 0-1 the first request (NIOCCTRL, NIOCREGIF, NIOCGINFO), 0x10
// mmap, 0x20 txsync+rxsync, 0x40 poll, 0x80 arg NULL. ops2: bits 0-1 a
// second request (none, NIOCCTRL, NIOCREGIF, NIOCGINFO) with its arg at
// arena+4096, 0x04 on the same fd (else on a second one), 0x08 arg NULL.
// The arena (8 KiB followed by a PROT_NONE page) holds the request; each fixup
// writes a pointer at arena+at: into the arena, NULL, into the guard page,
// into the extmem file's mapping, or a kernel address. So the fuzzer can
// make any chain of structures point anywhere, and the library's copy-in /
// copy-out of application memory is tested for real.
//
// Checks, besides no crash/UB/leak: after close and the deletion of the
// persistent VALE ports a request made (NEWIF, ATTACH), no port, fd or file
// is left behind.
#include <fcntl.h>
#include <net/netmap.h>
#include <net/netmap_user.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "fuzz_env.h"
#include "ports/vale/vale.h"

namespace {

constexpr size_t kArena = 8192;
constexpr size_t kExtmem = 1 << 20;
char* g_arena;    // kArena bytes, then a PROT_NONE page
char* g_extmem;   // a MAP_SHARED mapping of a file outside the runtime dir
std::string g_extmem_dir;
std::set<std::string> g_fds, g_files;

void remove_extmem_dir() {
  if (!g_extmem_dir.empty()) {
    unlink((g_extmem_dir + "/extmem").c_str());
    rmdir(g_extmem_dir.c_str());
  }
}

uint64_t pointer(uint8_t kind, uint16_t off) {
  switch (kind % 5) {
    case 0: return uint64_t(uintptr_t(g_arena + off % kArena));
    case 1: return 0;
    case 2: return uint64_t(uintptr_t(g_arena + kArena + off % 4096));
    case 3: return uint64_t(uintptr_t(g_extmem + size_t(off % 256) * 4096));
    default: return 0xffff800000000000ull + off;
  }
}

// Persistent VALE ports outlive the fd (that is their point): delete them,
// as vale-ctl -d / -r would.
void delete_persistent_ports() {
  unetmap::Registry* reg = unetmap::Registry::get(nullptr);
  if (!reg) return;
  for (uint32_t i = 0; i < unetmap::kMaxPorts; i++) {
    const unetmap::PortEntry& pe = reg->port(int(i));
    if (pe.kind == unetmap::kNoPort || !pe.persistent) continue;
    std::string name(pe.name, strnlen(pe.name, sizeof pe.name)), why;
    uint32_t idx;
    if (unetmap::vale_port(pe).sw >= 0) {
      const unetmap::SwitchEntry& sw = unetmap::vale_switch(*reg, unetmap::vale_port(pe).sw);
      unetmap::vale_detach(std::string(sw.name, strnlen(sw.name, sizeof sw.name)) + ":" + name,
                           &idx, &why);
    }
    int err = unetmap::vale_delif(name, &why);
    FUZZ_CHECK(err == 0, "cannot delete persistent port " + name + ": " + why);
  }
}

void check_clean() {
  std::string ports = fuzz::live_ports();
  FUZZ_CHECK(ports.empty(), "ports left: " + ports);
  std::set<std::string> fds = fuzz::open_fds();
  FUZZ_CHECK(fds == g_fds, "fds left open: " + fuzz::join(fds) + " before: " + fuzz::join(g_fds));
  std::set<std::string> files = fuzz::runtime_files();
  files.erase("mem.1");  // the global region (POOLS_INFO makes it: issue 9, item 7)
  FUZZ_CHECK(files == g_files, "files left: " + fuzz::join(files));
}

unsigned long request(uint8_t op) {
  switch (op & 3) {
    case 1: return NIOCREGIF;
    case 2: return NIOCGINFO;
    default: return NIOCCTRL;
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::setup("nmreq");
  void* a = mmap(nullptr, kArena + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (a == MAP_FAILED || mprotect(static_cast<char*>(a) + kArena, 4096, PROT_NONE) != 0) abort();
  g_arena = static_cast<char*>(a);
  // The extmem file: outside the runtime directory (a region's own file is
  // refused as extmem), removed at exit.
  g_extmem_dir = fuzz::runtime_dir() + "-extmem";
  if (mkdir(g_extmem_dir.c_str(), 0700) != 0) abort();
  atexit(remove_extmem_dir);
  int fd = open((g_extmem_dir + "/extmem").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0 || ftruncate(fd, kExtmem) != 0) abort();
  void* e = mmap(nullptr, kExtmem, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (e == MAP_FAILED) abort();
  close(fd);
  g_extmem = static_cast<char*>(e);
  // The registry exists from the first open on: make it now.
  close(open("/dev/netmap", O_RDWR));
  g_fds = fuzz::open_fds();
  g_files = fuzz::runtime_files();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return -1;
  const uint8_t ops = data[0], ops2 = data[1];
  const size_t nfix = data[2] & 15;
  size_t pos = 3;
  if (size < pos + nfix * 5) return -1;
  const uint8_t* fix = data + pos;
  pos += nfix * 5;
  if (size - pos > kArena) return -1;
  memset(g_arena, 0, kArena);
  memcpy(g_arena, data + pos, size - pos);
  for (size_t i = 0; i < nfix; i++) {
    const uint8_t* f = fix + 5 * i;
    size_t at = (f[0] | f[1] << 8) % (kArena - 7);
    uint64_t v = pointer(f[2], uint16_t(f[3] | f[4] << 8));
    memcpy(g_arena + at, &v, sizeof v);
  }

  int fd = open("/dev/netmap", O_RDWR);
  FUZZ_CHECK(fd >= 0, strerror(errno));
  int fd2 = -1;
  ioctl(fd, request(ops), (ops & 0x80) ? nullptr : g_arena);
  if (ops2 & 3) {
    if (!(ops2 & 4)) fd2 = open("/dev/netmap", O_RDWR);
    FUZZ_CHECK((ops2 & 4) || fd2 >= 0, strerror(errno));
    ioctl(fd2 >= 0 ? fd2 : fd, request(uint8_t((ops2 & 3) - 1)),
          (ops2 & 8) ? nullptr : g_arena + 4096);
  }
  // What an application does with a registered fd: map, sync, poll.
  for (int f : {fd, fd2}) {
    if (f < 0) continue;
    if (ops & 0x10) {
      void* m = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, f, 0);
      if (m != MAP_FAILED) munmap(m, 4096);
    }
    if (ops & 0x20) {
      ioctl(f, NIOCTXSYNC, nullptr);
      ioctl(f, NIOCRXSYNC, nullptr);
    }
    if (ops & 0x40) {
      pollfd p{f, POLLIN | POLLOUT, 0};
      poll(&p, 1, 0);
    }
  }
  if (fd2 >= 0) close(fd2);
  close(fd);
  delete_persistent_ports();
  check_clean();
  return 0;
}
