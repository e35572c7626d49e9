// What the tools' command lines share.
#pragma once

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cstdint>
#include <string>

namespace unetmap::cli {

// The number in lo..hi that option -c's argument is, or false with *why:
// "-c ARG: WHAT LO..HI" (what: "a batch is").
inline bool parse_number(char c, const char* arg, long lo, long hi, const char* what, long* out, std::string* why) {
  char* end;
  errno = 0;
  *out = strtol(arg, &end, 10);
  if (*end || end == arg || errno || *out < lo || *out > hi) {
    *why = std::string("-") + c + " " + arg + ": " + what + " " + std::to_string(lo) + ".." + std::to_string(hi);
    return false;
  }
  return true;
}

// The same, saying why in one line on stderr: "TOOL: -c ARG: WHAT LO..HI".
inline bool number(const char* tool, char c, const char* arg, long lo, long hi, const char* what, long* out) {
  std::string why;
  if (parse_number(c, arg, lo, hi, what, out, &why)) return true;
  fprintf(stderr, "%s: %s\n", tool, why.c_str());
  return false;
}

// Whether port `spec` has a link to wait for: only a NIC port does
// (netmap:IF with its ring and flag suffixes, IF an interface here). Pipes,
// VALE, null and pcap-file ports never wait.
inline bool port_has_link(const std::string& spec) {
  std::string n = spec.compare(0, 7, "netmap:") == 0 ? spec.substr(7) : spec;
  n = n.substr(0, n.find_first_of("/@"));
  if (n.find_first_of("{}:") != std::string::npos) return false;  // a pipe, or a prefixed port type
  if (!n.empty() && (n.back() == '*' || n.back() == '^')) n.pop_back();
  size_t digits = n.size();
  while (digits > 0 && n[digits - 1] >= '0' && n[digits - 1] <= '9') digits--;
  if (digits > 0 && digits < n.size() && (n[digits - 1] == '-' || n[digits - 1] == '^') &&
      if_nametoindex(n.c_str()) == 0)
    n.resize(digits - 1);  // IF-N, IF^N: ring N (unless the whole is an interface's name)
  return !n.empty() && n.size() < IF_NAMESIZE && if_nametoindex(n.c_str()) != 0;
}

// CLOCK_MONOTONIC in nanoseconds.
inline uint64_t now_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return uint64_t(t.tv_sec) * 1000000000ull + uint64_t(t.tv_nsec);
}

// Bytes of memory the kernel says are available (UINT64_MAX if unknown):
// tools that hold data in memory refuse more than half of it.
inline uint64_t mem_available() {
  FILE* f = fopen("/proc/meminfo", "r");
  unsigned long long kb = 0;
  char line[128];
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
  if (f) fclose(f);
  return kb ? kb * 1024 : UINT64_MAX;
}

}  // namespace unetmap::cli
