// pcap-file ports ("pcap:NAME"): a port whose wire is a capture file,
// NAME.pcap in the directory $UNETMAP_PCAP_DIR, or else in the working
// directory of the process. Its rx ring delivers the file's frames in
// order from the first, as fast as the application releases slots (pacing
// is nmreplay's job); its tx ring appends every frame sent to the file,
// stamped with the time of the sync, and flushes it at the end of each
// sync, so what a sync consumed is in the file whatever happens to the
// process next. A port bound both ways reads the frames that were in the
// file when its rx ring was bound, never those it writes itself.
//
// The file is checked when the port is made: an existing file must be an
// Ethernet capture (pcap or pcapng; only pcap can be appended to), a
// missing one is made, empty. Each ring has one binding at a time (one
// reader, one writer: two would each read every frame, or write over one
// another). Frames longer than a buffer arrive as NS_MOREFRAG chains; one
// longer than the whole ring is dropped, counted in the rx ring's drops; a
// write the disk refuses drops the sync's frames, counted in the tx ring's
// drops, and the ring goes on.
//
// libpcap reads and writes the files. It is loaded when the first pcap
// port is made (dlopen), so programs that never open one do not load it.
#include <dlfcn.h>
#include <pcap/pcap.h>
#include <sys/stat.h>
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>

#include "core/adapter.h"
#include "core/ring_io.h"

namespace unetmap {

namespace {

constexpr uint32_t kSnapLen = 262144;  // the longest frame written (libpcap's maximum)
// stdio buffers of the files: libpcap reads a frame's header and bytes with
// two freads, and stdio's default 4 KB buffer made a read() every 54 small
// frames, the largest cost of a sync.
constexpr size_t kFileBuffer = 1 << 20;

// The libpcap entry points this port uses.
struct PcapApi {
  pcap_t* (*fopen_offline)(FILE*, char*);
  pcap_t* (*open_dead_prec)(int, int, u_int);
  int (*next_ex)(pcap_t*, pcap_pkthdr**, const u_char**);
  int (*datalink)(pcap_t*);
  FILE* (*dump_file)(pcap_dumper_t*);
  char* (*geterr)(pcap_t*);
  void (*close)(pcap_t*);
  pcap_dumper_t* (*dump_open_append)(pcap_t*, const char*);
  void (*dump)(u_char*, const pcap_pkthdr*, const u_char*);
  int (*dump_flush)(pcap_dumper_t*);
  void (*dump_close)(pcap_dumper_t*);
};

// libpcap, loaded once; nullptr (with the loader's reason) if it is not
// installed.
const PcapApi* pcap_api(std::string* why) {
  static PcapApi api;
  static std::string failed;
  static std::once_flag once;
  std::call_once(once, [] {
    void* h = dlopen("libpcap.so.0.8", RTLD_NOW | RTLD_LOCAL);
    if (!h) h = dlopen("libpcap.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      failed = std::string("pcap ports need libpcap (Debian's libpcap0.8): ") + dlerror();
      return;
    }
    bool ok = true;
    auto get = [&](auto* fn, const char* name) {
      void* f = dlsym(h, name);
      ok = ok && f;
      *fn = reinterpret_cast<std::remove_reference_t<decltype(*fn)>>(f);
    };
    get(&api.fopen_offline, "pcap_fopen_offline");
    get(&api.open_dead_prec, "pcap_open_dead_with_tstamp_precision");
    get(&api.next_ex, "pcap_next_ex");
    get(&api.datalink, "pcap_datalink");
    get(&api.dump_file, "pcap_dump_file");
    get(&api.geterr, "pcap_geterr");
    get(&api.close, "pcap_close");
    get(&api.dump_open_append, "pcap_dump_open_append");
    get(&api.dump, "pcap_dump");
    get(&api.dump_flush, "pcap_dump_flush");
    get(&api.dump_close, "pcap_dump_close");
    if (!ok) failed = "pcap ports need libpcap 1.7 or later (pcap_dump_open_append)";
  });
  if (!failed.empty()) {
    *why = failed;
    return nullptr;
  }
  return &api;
}

// The capture file of port "pcap:NAME".
std::string file_of(std::string_view port) {
  const char* dir = getenv("UNETMAP_PCAP_DIR");
  std::string path = dir && *dir ? std::string(dir) + "/" : std::string();
  return path + std::string(port.substr(5)) + ".pcap";
}

int fail(std::string* why, std::string_view port, const std::string& what, int err) {
  *why = std::string(port) + ": " + what;
  return err;
}

// The rx ring's reader: the next frame, and where the file ended when the
// ring was bound.
struct Reader {
  const PcapApi* api;
  std::unique_ptr<char[]> buf{new char[kFileBuffer]};  // the FILE's, freed after it
  pcap_t* p = nullptr;
  long pos = 0, end = -1;  // classic pcap files: byte offsets (end -1: not bounded)
  const u_char* data = nullptr;  // a frame read that the ring had no room for yet
  uint32_t len = 0;
  bool eof = false;
  ~Reader() {
    if (p) api->close(p);
  }
  // The next frame into data/len; false at the end.
  bool next() {
    if (eof) return false;
    pcap_pkthdr* h;
    if ((end >= 0 && pos >= end) || api->next_ex(p, &h, &data) != 1) {
      eof = true;  // the end, or a file cut short: what came before stays delivered
      return false;
    }
    len = h->caplen;
    pos += long(sizeof(uint32_t) * 4) + long(h->caplen);
    return true;
  }
};

// The tx ring's writer.
struct Writer {
  const PcapApi* api;
  std::unique_ptr<char[]> buf{new char[kFileBuffer]};  // the FILE's, freed after it
  pcap_t* dead = nullptr;
  pcap_dumper_t* d = nullptr;
  std::string port;  // for the message of a failed write
  bool nano = false, said = false;
  std::unique_ptr<uint8_t[]> frame{new uint8_t[kSnapLen]};
  ~Writer() {
    if (d) api->dump_close(d);
    if (dead) api->close(dead);
  }
};

struct PcapKring {
  std::unique_ptr<Reader> rd;
  std::unique_ptr<Writer> wr;
};

// Open `path` for reading: the reader, or nullptr with *why.
std::unique_ptr<Reader> open_reader(const PcapApi* api, std::string_view port, const std::string& path,
                                    int* err, std::string* why) {
  char errbuf[PCAP_ERRBUF_SIZE] = "";
  auto rd = std::make_unique<Reader>();
  rd->api = api;
  FILE* f = fopen(path.c_str(), "rb");
  if (f) setvbuf(f, rd->buf.get(), _IOFBF, kFileBuffer);
  if (!f) {
    snprintf(errbuf, sizeof errbuf, "%s: %s", path.c_str(), strerror(errno));
  } else if (!(rd->p = api->fopen_offline(f, errbuf))) {
    fclose(f);
  }
  if (!rd->p) {
    // libpcap's message names the file when the file is the trouble, not
    // when its contents are ("unknown file format").
    const std::string msg = errbuf;
    struct stat st;
    *err = fail(why, port, "cannot read " + (msg.find(path) == 0 ? msg : path + ": " + msg),
                stat(path.c_str(), &st) != 0 ? errno : EINVAL);
    return nullptr;
  }
  if (api->datalink(rd->p) != DLT_EN10MB) {
    *err = fail(why, port, path + " is not an Ethernet capture (link type " +
                               std::to_string(api->datalink(rd->p)) + ")", EINVAL);
    return nullptr;
  }
  // A classic pcap file: records follow the 24-byte header, so the end of
  // what is there now is a byte offset (a pcapng file is never appended to).
  struct stat st;
  if (fstat(fileno(f), &st) == 0) {
    uint32_t magic = 0;
    FILE* peek = fopen(path.c_str(), "rb");
    if (peek) {
      if (fread(&magic, 4, 1, peek) != 1) magic = 0;
      fclose(peek);
    }
    if (magic == 0xa1b2c3d4 || magic == 0xa1b23c4d || magic == 0xd4c3b2a1 || magic == 0x4d3cb2a1) {
      rd->pos = 24;
      rd->end = long(st.st_size);
    }
  }
  return rd;
}

// Open `path` for appending (made with a header if missing): the writer,
// or nullptr with *why.
std::unique_ptr<Writer> open_writer(const PcapApi* api, std::string_view port, const std::string& path,
                                    int* err, std::string* why) {
  auto wr = std::make_unique<Writer>();
  wr->api = api;
  wr->port = port;
  // Frames are stamped in the file's own precision: microseconds (what a
  // new file gets), or nanoseconds for a file made so.
  std::string last;
  for (bool nano : {false, true}) {
    if (wr->dead) api->close(wr->dead);
    wr->dead = api->open_dead_prec(DLT_EN10MB, kSnapLen,
                                   nano ? PCAP_TSTAMP_PRECISION_NANO : PCAP_TSTAMP_PRECISION_MICRO);
    if (!wr->dead) break;
    errno = 0;
    if ((wr->d = api->dump_open_append(wr->dead, path.c_str()))) {
      wr->nano = nano;
      // glibc's setvbuf writes out what the stream holds first (the header
      // of a new file); the flush makes that explicit.
      FILE* f = api->dump_file(wr->d);
      if (f && fflush(f) == 0) setvbuf(f, wr->buf.get(), _IOFBF, kFileBuffer);
      return wr;
    }
    if (last.empty()) last = api->geterr(wr->dead);
    if (errno != 0 && errno != EINVAL) break;  // EACCES, ENOSPC, ...: no use retrying
  }
  *err = fail(why, port, "cannot write " + (last.find(path) == 0 ? last : path + ": " + last),
              errno && errno != EINVAL ? errno : EINVAL);
  return nullptr;
}

bool quiet() {
  const char* q = getenv("UNETMAP_QUIET");
  return q && *q && *q != '0';
}

class PcapAdapter final : public Adapter {
 public:
  bool owns(std::string_view name) const override { return name.substr(0, 5) == "pcap:"; }
  const char* grammar() const override { return "capture files (pcap:NAME for NAME.pcap)"; }
  size_t spec_prefix(std::string_view spec) const override { return spec.substr(0, 5) == "pcap:" ? 5 : 0; }
  const char* spec_prefix_form() const override { return "pcap:NAME"; }

  // The file is checked (or made) here, once, so a name that cannot work
  // fails at the open that makes the port.
  int create(Registry& reg, int p, const PortRequest& req, std::string* why) const override {
    const std::string_view name = req.name;
    const PcapApi* api = pcap_api(why);
    if (!api) return EOPNOTSUPP;
    PortEntry& pe = reg.port(p);
    pe.mem_id = req.mem_id ? req.mem_id : 1;  // the global region by default
    for (int d : {kTx, kRx}) {
      if (req.nrings[d] > 1 || req.nhost[d] > 0)
        return fail(why, name, "a pcap port has one tx ring and one rx ring", EINVAL);
      pe.nrings[d] = 1;
      pe.nslots[d] = req.nslots[d] ? req.nslots[d] : 1024;
    }
    const std::string path = file_of(name);
    int err = 0;
    struct stat st;
    if (stat(path.c_str(), &st) == 0) {
      if (!open_reader(api, name, path, &err, why)) return err;
    } else if (!open_writer(api, name, path, &err, why)) {
      return err;
    }
    auto region = Region::get(pe.mem_id, RegionConfig::from_env(), &err, why);
    if (!region) return err;
    return make_port_rings(reg, p, *region, why);
  }

  int kring_init(Registry& reg, Kring& k, std::string* why) const override {
    const std::string_view name = reg.port(k.port).name;
    if (k.ks->users > 1)
      return fail(why, name, std::string(k.dir == kTx ? "tx" : "rx") +
                                 " ring is bound by another registration (a capture file has one " +
                                 (k.dir == kTx ? "writer)" : "reader)"), EBUSY);
    const PcapApi* api = pcap_api(why);
    if (!api) return EOPNOTSUPP;
    auto pk = std::make_unique<PcapKring>();
    int err = 0;
    const std::string path = file_of(name);
    if (k.dir == kRx)
      pk->rd = open_reader(api, name, path, &err, why);
    else
      pk->wr = open_writer(api, name, path, &err, why);
    if (err) return err;
    k.priv = pk.release();
    return 0;
  }

  void kring_fini(Kring& k) const override {
    delete static_cast<PcapKring*>(k.priv);
    k.priv = nullptr;
  }

  // Frames of the file into the free slots, as many as fit.
  void rxsync(Kring& k, uint32_t head) const override {
    KringState* s = k.ks;
    s->hwcur.store(head, std::memory_order_relaxed);
    Reader* rd = static_cast<PcapKring*>(k.priv)->rd.get();
    uint32_t room = rx_room(s, k.nslots), tail = s->hwtail.load(std::memory_order_relaxed);
    const uint32_t bsize = k.region->cfg().buf_size;
    uint64_t got = 0, bytes = 0;
    while (room > 0 && (rd->data || rd->next())) {
      if (!rx_put(k, &tail, &room, rd->data, rd->len)) {
        if ((rd->len + bsize - 1) / bsize < k.nslots) break;  // wait for room
        s->drops++;  // longer than the whole ring
      } else {
        got++;
        bytes += rd->len;
      }
      rd->data = nullptr;
    }
    s->packets += got;
    s->bytes += bytes;
    s->hwtail.store(tail, std::memory_order_release);
  }

  // The finished frames of [hwcur, head) into the file, one flush per sync.
  void txsync(Kring& k, uint32_t head) const override {
    KringState* s = k.ks;
    Writer* wr = static_cast<PcapKring*>(k.priv)->wr.get();
    const uint32_t n = k.nslots, bsize = k.region->cfg().buf_size;
    timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    pcap_pkthdr h{};
    h.ts.tv_sec = now.tv_sec;
    h.ts.tv_usec = wr->nano ? now.tv_nsec : now.tv_nsec / 1000;
    uint32_t cur = s->hwcur.load(std::memory_order_relaxed);
    uint64_t sent = 0, bytes = 0, bad = 0;
    while (cur != head) {
      const uint32_t ns = packet_slots(k.ring, cur, head, n);
      if (ns == 0) break;  // a chain whose end is still to come
      // A frame of one slot is written from its buffer, a chain gathered
      // first; either way each slot is read once and checked.
      const uint8_t* frame = wr->frame.get();
      uint32_t len;
      if (ns == 1) {
        const SlotCopy sl = read_slot(k.ring->slot, cur);
        frame = ring_buf(k, sl.buf_idx);
        len = frame && sl.len <= bsize ? sl.len : 0;
      } else {
        len = tx_gather(k, cur, ns, wr->frame.get(), kSnapLen);
      }
      cur = ring_add(cur, ns, n);
      if (len == 0) {
        bad++;
        continue;
      }
      h.caplen = h.len = len;
      wr->api->dump(reinterpret_cast<u_char*>(wr->d), &h, frame);
      sent++;
      bytes += len;
    }
    if (sent && wr->api->dump_flush(wr->d) != 0) {
      if (!wr->said && !quiet())
        fprintf(stderr, "unetmap: %s: writing the capture file failed (%s): frames dropped\n",
                wr->port.c_str(), strerror(errno));
      wr->said = true;
      bad += sent;
      sent = bytes = 0;
    }
    s->packets += sent;
    s->bytes += bytes;
    s->drops += bad;
    tx_done(s, cur, n);
  }
};

}  // namespace

const Adapter& pcap_adapter() {
  static PcapAdapter a;
  return a;
}

}  // namespace unetmap
