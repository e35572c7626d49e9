// What every libFuzzer harness shares: a private runtime directory with
// small memory regions, removed at exit; a network namespace of its own (so
// that a fuzzed name such as "netmap:lo" binds nothing the machine uses);
// and the checks that an input left nothing behind.
//
// The harnesses reach the library the way an application does: they link
// libnetmap and call open/ioctl/mmap/poll/close on /dev/netmap (or the
// nmport_* API). The sanitizer runtime's interceptors come first in the
// lookup order and call on to libnetmap's, which call libc.
#pragma once

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>
#include <string>

#include "core/registry.h"

namespace fuzz {

inline std::string& runtime_dir() {
  static std::string d;
  return d;
}

inline int remove_entry(const char* path, const struct stat*, int, struct FTW*) {
  remove(path);
  return 0;
}

inline void remove_runtime_dir() {
  if (runtime_dir().empty()) return;
  nftw(runtime_dir().c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  nftw((runtime_dir() + ".pcap").c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

// Abort with a message: libFuzzer reports it as a crash with this input.
[[noreturn]] inline void die(const char* what, const std::string& detail = {}) {
  fprintf(stderr, "FUZZ CHECK FAILED: %s%s%s\n", what, detail.empty() ? "" : ": ", detail.c_str());
  abort();
}
#define FUZZ_CHECK(cond, ...) \
  do {                        \
    if (!(cond)) ::fuzz::die(#cond, ##__VA_ARGS__); \
  } while (0)

// Before the library is first used (it reads the environment once).
inline void setup(const char* name) {
  const char* base = getenv("UNETMAP_FUZZ_TMP");
  std::string tmpl = std::string(base && *base ? base : "/dev/shm") + "/unetmap-fuzz-" + name + "-XXXXXX";
  if (!mkdtemp(tmpl.data())) {
    perror("mkdtemp");
    exit(1);
  }
  runtime_dir() = tmpl;
  setenv("UNETMAP_DIR", tmpl.c_str(), 1);
  setenv("UNETMAP_QUIET", "1", 1);
  // Capture files of pcap: ports made from fuzzed names: beside the
  // runtime directory (whose files the harnesses count), removed with it.
  const std::string pcap_dir = tmpl + ".pcap";
  if (mkdir(pcap_dir.c_str(), 0700) != 0) perror("mkdir");
  setenv("UNETMAP_PCAP_DIR", pcap_dir.c_str(), 1);
  // Small regions: a fuzzer makes thousands of ports, some in regions of
  // their own (@N, VALE private regions, extmem).
  setenv("UNETMAP_BUF_NUM", "1024", 0);
  setenv("UNETMAP_RING_NUM", "64", 0);
  setenv("UNETMAP_RING_SIZE", "8192", 0);  // up to 500 slots a ring
  setenv("UNETMAP_IF_NUM", "32", 0);
  setenv("UNETMAP_SPIN_US", "0", 0);
  // As root, a network namespace with only a loopback (down): NIC ports
  // made from fuzzed names touch nothing outside. Without root NIC ports
  // cannot bind anyway.
  if (unshare(CLONE_NEWNET) != 0 && geteuid() == 0) perror("unshare(CLONE_NEWNET)");
  atexit(remove_runtime_dir);
}

// The open fds and what they are ("3 -> /dev/shm/..."), but for anonymous
// pipes (the sanitizers' symbolizer, started when libFuzzer prints a new
// function; the library makes none) and those on the global region's file
// mem.1: POOLS_INFO_GET makes that region, and it stays while it exists
// (issue 9, item 7).
inline std::set<std::string> open_fds() {
  std::set<std::string> s;
  struct stat global;
  bool have_global = stat((runtime_dir() + "/mem.1").c_str(), &global) == 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d)) continue;
      struct stat st;
      if (have_global && fstat(atoi(e->d_name), &st) == 0 && st.st_dev == global.st_dev &&
          st.st_ino == global.st_ino)
        continue;
      char target[512] = "";
      ssize_t n = readlinkat(dirfd(d), e->d_name, target, sizeof target - 1);
      if (n > 0) target[n] = 0;
      if (strncmp(target, "pipe:", 5) == 0) continue;
      s.insert(std::string(e->d_name) + " -> " + target);
    }
    closedir(d);
  }
  return s;
}

// The runtime directory's files, and those of its workers/ directory as
// "workers/NAME". The workers/ directory itself is not counted: the worker
// service (src/core/worker.h) makes it at its first request, even one that
// fails (a fuzzed VALE_ATTACH), and it stays with the runtime directory;
// a worker's files left in it are counted. So are the wake-up FIFOs of
// chan/ (made with the first /dev/netmap fd).
inline std::set<std::string> runtime_files() {
  std::set<std::string> s;
  auto list = [&s](const std::string& dir, const std::string& prefix) {
    if (DIR* d = opendir(dir.c_str())) {
      while (dirent* e = readdir(d))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) s.insert(prefix + e->d_name);
      closedir(d);
    }
  };
  list(runtime_dir(), "");
  if (s.erase("workers")) list(runtime_dir() + "/workers", "workers/");
  if (s.erase("chan")) list(runtime_dir() + "/chan", "chan/");  // wake-up FIFOs
  return s;
}

// Ports in the registry (persistent ones only if `persistent`).
inline std::string live_ports(bool persistent_only = false) {
  std::string s;
  unetmap::Registry* reg = unetmap::Registry::get(nullptr);
  if (!reg) return s;
  for (uint32_t i = 0; i < unetmap::kMaxPorts; i++) {
    const unetmap::PortEntry& pe = reg->port(int(i));
    if (pe.kind == unetmap::kNoPort) continue;
    if (persistent_only && !pe.persistent) continue;
    s += std::string(pe.name, strnlen(pe.name, sizeof pe.name)) + " ";
  }
  return s;
}

inline std::string join(const std::set<std::string>& s) {
  std::string r;
  for (auto& x : s) r += x + " ";
  return r;
}

}  // namespace fuzz
