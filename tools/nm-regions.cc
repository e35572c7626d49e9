// nm-regions: the memory regions (netmap's allocators) in the runtime
// directory: their sizes as POOLS_INFO_GET reports them, how many buffers
// are in use, and who may attach (owner and mode of the region file).
//
//   nm-regions           every region, one line each
//   nm-regions -m N      region N only
//   nm-regions -j        JSON
//   nm-regions -c N [buf-num=..,buf-size=..,ring-num=..,ring-size=..,if-num=..,if-size=..]
//                        make region N with these sizes (the rest from the
//                        UNETMAP_* knobs or the defaults) before its first
//                        port names it (@N, vale-ctl -m N). Sizes are a
//                        region's for its life, as a netmap allocator's are
//                        once in use. Such a region is persistent: it stays
//                        when its last port goes, until
//   nm-regions -d N      deletes it (refused while a port uses it).
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <unetmap/unetmap.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

[[noreturn]] void usage(int code) {
  fprintf(code ? stderr : stdout,
          "usage: nm-regions [-m MEMID] [-j]\n"
          "       nm-regions -c MEMID [SIZES]\n"
          "  -m MEMID   only region MEMID (1..65535)\n"
          "  -j         JSON output\n"
          "  -c MEMID   make region MEMID (for ports that name it: @MEMID, vale-ctl -m)\n"
          "             SIZES: buf-num=N,buf-size=N,ring-num=N,ring-size=N,if-num=N,if-size=N\n"
          "             (any of them; the others from UNETMAP_* or the defaults);\n"
          "             it stays when its last port goes, until -d\n"
          "  -d MEMID   delete region MEMID made with -c (not while a port uses it)\n"
          "Regions live in $UNETMAP_DIR (default /dev/shm/unetmap).\n");
  exit(code);
}

std::string runtime_dir() {
  const char* e = getenv("UNETMAP_DIR");
  return e && *e ? e : "/dev/shm/unetmap";
}

// SIZES ("buf-num=N,buf-size=N,..." in any subset) into *out; empty if
// fine, else what is wrong. A size left out stays 0: the default.
std::string parse_sizes(std::string_view spec, unetmap_region_sizes* out) {
  *out = {};
  while (!spec.empty()) {
    const size_t comma = spec.find(',');
    const std::string_view kv = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    const size_t eq = kv.find('=');
    const std::string_view key = kv.substr(0, eq);
    uint32_t* field = key == "buf-num"     ? &out->buf_num
                      : key == "buf-size"  ? &out->buf_size
                      : key == "ring-num"  ? &out->ring_num
                      : key == "ring-size" ? &out->ring_size
                      : key == "if-num"    ? &out->if_num
                      : key == "if-size"   ? &out->if_size
                                           : nullptr;
    if (!field)
      return "unknown size '" + std::string(key) + "' (buf-num, buf-size, ring-num, ring-size, if-num, if-size)";
    const std::string val(eq == std::string_view::npos ? "" : kv.substr(eq + 1));
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = val.empty() ? 0 : strtoull(val.c_str(), &end, 0);
    if (val.empty() || *end || errno || v < 1 || v > UINT32_MAX || val[0] == '-')
      return "'" + std::string(kv) + "': KEY=NUMBER expected, a number from 1";
    *field = uint32_t(v);
  }
  return {};
}

// -c: make region `id` with the sizes of `spec`; an existing region is
// fine if it has them already.
int create(long id, const char* spec) {
  unetmap_region_sizes sizes;
  const std::string bad = parse_sizes(spec ? spec : "", &sizes);
  if (!bad.empty()) {
    fprintf(stderr, "nm-regions: -c %ld: %s\n", id, bad.c_str());
    return 2;
  }
  if (unetmap_region_create(uint16_t(id), &sizes) != 0) {
    fprintf(stderr, "nm-regions: %s\n", unetmap_last_error());
    return 1;
  }
  return 0;
}

// -d: delete region `id` if no port uses it.
int remove_region(long id) {
  if (unetmap_region_delete(uint16_t(id)) != 0) {
    fprintf(stderr, "nm-regions: %s\n", unetmap_last_error());
    return 1;
  }
  return 0;
}

std::vector<unetmap_region_info> regions() {
  std::vector<unetmap_region_info> v(16);
  for (;;) {
    const int n = unetmap_regions(v.data(), int(v.size()));
    if (n < 0) {
      fprintf(stderr, "nm-regions: %s\n", unetmap_last_error());
      exit(1);
    }
    if (size_t(n) <= v.size()) {
      v.resize(size_t(n));
      return v;
    }
    v.resize(size_t(n) + 16);  // made meanwhile
  }
}

std::string owner(uint32_t uid) {
  const passwd* pw = getpwuid(uid);
  return pw ? pw->pw_name : std::to_string(uid);
}

}  // namespace

int main(int argc, char** argv) {
  setenv("UNETMAP_QUIET", "1", 1);  // failures are reported here, once
  long only = 0, make = 0, drop = 0;
  bool json = false;
  int c;
  static option longopts[] = {{"help", no_argument, nullptr, 'h'}, {nullptr, 0, nullptr, 0}};
  while ((c = getopt_long(argc, argv, "m:c:d:jh", longopts, nullptr)) != -1) {
    switch (c) {
      case 'm':
      case 'c':
      case 'd': {
        char* end;
        long id = strtol(optarg, &end, 10);
        if (*end || id < 1 || id > 65535) {
          fprintf(stderr, "nm-regions: -%c: '%s' is not a region id in 1..65535\n", c, optarg);
          return 2;
        }
        (c == 'm' ? only : c == 'c' ? make : drop) = id;
        break;
      }
      case 'j': json = true; break;
      case 'h': usage(0);
      default: usage(2);
    }
  }
  if (drop) return optind < argc ? (usage(2), 2) : remove_region(drop);
  if (make) {
    if (argc - optind > 1) usage(2);
    if (int rc = create(make, optind < argc ? argv[optind] : nullptr)) return rc;
    only = make;  // and show it
  } else if (optind < argc) {
    fprintf(stderr, "nm-regions: unexpected argument '%s'\n", argv[optind]);
    return 2;
  }
  std::vector<unetmap_region_info> rows;
  int failed = 0;
  for (const unetmap_region_info& r : regions()) {
    if (only && r.mem_id != only) continue;
    if (r.error) {  // listed by the others, flagged on its own
      fprintf(stderr, "nm-regions: region %u: %s (owner %s mode %04o)\n", r.mem_id, strerror(r.error),
              owner(r.uid).c_str(), r.mode);
      failed = 1;
      continue;
    }
    rows.push_back(r);
  }
  if (only && rows.empty() && !failed) {
    fprintf(stderr, "nm-regions: no region %ld in %s\n", only, runtime_dir().c_str());
    return 1;
  }
  if (json) printf("[");
  for (size_t i = 0; i < rows.size(); i++) {
    const unetmap_region_info& r = rows[i];
    const unetmap_region_sizes& z = r.sizes;
    if (json)
      printf("%s{\"mem_id\":%u,\"memsize\":%llu,\"if_num\":%u,\"if_size\":%u,\"ring_num\":%u,"
             "\"ring_size\":%u,\"buf_num\":%u,\"buf_size\":%u,\"bufs_in_use\":%u,\"ports\":%u,"
             "\"persistent\":%s,\"owner\":\"%s\",\"mode\":\"%04o\"}",
             i ? "," : "", r.mem_id, (unsigned long long)r.memsize, z.if_num, z.if_size, z.ring_num,
             z.ring_size, z.buf_num, z.buf_size, r.bufs_in_use, r.ports, r.persistent ? "true" : "false",
             owner(r.uid).c_str(), r.mode);
    else
      printf("region %u: %llu bytes; %u netmap_if of %u; %u rings of %u; %u buffers of %u, %u in use;"
             " %u port%s%s; owner %s mode %04o\n",
             r.mem_id, (unsigned long long)r.memsize, z.if_num, z.if_size, z.ring_num, z.ring_size,
             z.buf_num, z.buf_size, r.bufs_in_use, r.ports, r.ports == 1 ? "" : "s",
             r.persistent ? ", persistent" : "", owner(r.uid).c_str(), r.mode);
  }
  if (json) printf("]\n");
  return failed;
}
