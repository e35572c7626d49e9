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
// write the disk refuses drops the sync's frames (the file is cut back to
// where the sync began, no half record stays), counted in the tx ring's
// drops, and the ring goes on. The read position is the port's
// (PortEntry::ext): a fork child, or a process given the fd, goes on where
// the ring is.
//
// libpcap reads and writes the files. It is loaded when the first pcap
// port is made (dlopen), so programs that never open one do not load it.
#include <dlfcn.h>
#include <stdio_ext.h>
#include <pcap/pcap.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>

#include "core/adapter.h"
#include "core/ring_io.h"
#include "core/shm.h"

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
  int (*snapshot)(pcap_t*);
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
    get(&api.snapshot, "pcap_snapshot");
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

// The first four bytes of a file, 0 if it has fewer.
uint32_t magic_of(const std::string& path) {
  uint32_t magic = 0;
  if (FILE* f = fopen(path.c_str(), "rb")) {
    if (fread(&magic, 4, 1, f) != 1) magic = 0;
    fclose(f);
  }
  return magic;
}
bool is_nano(uint32_t m) { return m == 0xa1b23c4d || m == 0x4d3cb2a1; }
bool is_pcap(uint32_t m) { return m == 0xa1b2c3d4 || m == 0xd4c3b2a1 || is_nano(m); }

// What every process reading a port's rx ring shares (PortEntry::ext):
// how many frames were delivered, so a process that takes the ring over
// (a fork child, an fd passed on) goes on where the ring is, and where
// reading stops.
struct PcapPortExt {
  uint64_t delivered;  // frames put on the rx ring since the port was made
  uint64_t stop;       // byte offset + 1 where reading stops (a pcap file); 0: not set
};
static_assert(sizeof(PcapPortExt) <= kPortExtBytes);

// The rx ring's reader, this process's: the next frame of the file.
struct Reader {
  const PcapApi* api;
  std::string port, path;
  std::unique_ptr<char[]> buf{new char[kFileBuffer]};  // the FILE's, freed after it
  pcap_t* p = nullptr;
  FILE* f = nullptr;  // p's
  long end = -1;      // stop before this offset (-1: at the end of the file)
  long pos = 0;       // the offset of the next record, while end is set
  uint32_t limit = 0; // libpcap cuts longer records to this (and skips the rest)
  int32_t pid = 0;    // the process that opened it (a fork child opens its own)
  uint64_t delivered = 0;  // as PcapPortExt::delivered, for this reader
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
    int r = 0;
    if ((end >= 0 && pos >= end) || (r = api->next_ex(p, &h, &data)) != 1) {
      eof = true;
      // A record cut short or corrupt ends the stream; what came before
      // stays delivered.
      if (r == PCAP_ERROR && !quiet())
        fprintf(stderr, "unetmap: %s: %s: %s: the frames after it are not read\n", port.c_str(), path.c_str(),
                api->geterr(p));
      return false;
    }
    len = h->caplen;
    // A pcap record is its 16-byte header and caplen bytes, unless libpcap
    // cut caplen to its limit: then the stream says where it is (a system
    // call; not per frame).
    if (end >= 0) pos = len >= limit ? ftell(f) : pos + 16 + long(len);
    return true;
  }
  // Stop reading at offset e of a pcap file.
  void stop_at(long e) {
    end = e;
    pos = ftell(f);
    const int snap = api->snapshot(p);
    limit = snap > 0 && uint32_t(snap) < kSnapLen ? uint32_t(snap) : kSnapLen;
  }
};

// Open `path` for reading, `skip` frames read already, to stop at offset
// stop - 1 (PcapPortExt::stop; ~0: at its end): the reader, or nullptr
// with *why.
std::unique_ptr<Reader> open_reader(const PcapApi* api, std::string_view port, const std::string& path,
                                    uint64_t skip, uint64_t stop, int* err, std::string* why) {
  char errbuf[PCAP_ERRBUF_SIZE] = "";
  auto rd = std::make_unique<Reader>();
  rd->api = api;
  rd->port = port;
  rd->path = path;
  rd->pid = my_pid();
  rd->f = fopen(path.c_str(), "rb");
  if (rd->f) {
    setvbuf(rd->f, rd->buf.get(), _IOFBF, kFileBuffer);
    // One sync at a time uses it (the ring's busy word): stdio's lock per
    // fread, two a frame, was half of a sync.
    __fsetlocking(rd->f, FSETLOCKING_BYCALLER);
  }
  if (!rd->f) {
    snprintf(errbuf, sizeof errbuf, "%s: %s", path.c_str(), strerror(errno));
  } else if (!(rd->p = api->fopen_offline(rd->f, errbuf))) {
    fclose(rd->f);
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
  if (stop != ~0ull) rd->stop_at(long(stop - 1));
  while (rd->delivered < skip && rd->next()) rd->delivered++;
  rd->data = nullptr;
  return rd;
}

// The tx ring's writer, this process's.
struct Writer {
  const PcapApi* api;
  std::string port, path;
  std::unique_ptr<char[]> buf{new char[kFileBuffer]};  // the FILE's, freed after it
  pcap_t* dead = nullptr;
  pcap_dumper_t* d = nullptr;
  FILE* f = nullptr;  // d's
  int32_t pid = 0;
  uint32_t snap = kSnapLen;  // the file's snapshot length: longer frames are cut to it
  bool nano = false, said = false;
  std::unique_ptr<uint8_t[]> frame{new uint8_t[kSnapLen]};
  void close() {
    if (d) api->dump_close(d);  // a write that fails here is dropped (the file is cut back)
    if (dead) api->close(dead);
    d = nullptr;
    dead = nullptr;
  }
  ~Writer() { close(); }
};

// Open `path` for appending, made with a header if it is missing or
// empty; frames get the file's own precision (microseconds for a new
// file) and snapshot length. 0 or errno with *why.
int open_writer(Writer* wr, std::string* why) {
  const PcapApi* api = wr->api;
  const std::string& path = wr->path;
  wr->close();
  wr->pid = my_pid();
  wr->snap = kSnapLen;
  wr->nano = false;
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && st.st_size > 0) {
    const uint32_t m = magic_of(path);
    if (!is_pcap(m))
      return fail(why, wr->port, path + " is not a pcap file: frames are appended only to pcap files (pcapng " +
                                     "files are read: open the port with /R)", EINVAL);
    wr->nano = is_nano(m);
    char errbuf[PCAP_ERRBUF_SIZE];
    FILE* f = fopen(path.c_str(), "rb");
    pcap_t* p = f ? api->fopen_offline(f, errbuf) : nullptr;
    if (!p) {
      if (f) fclose(f);
      return fail(why, wr->port, "cannot read " + path + ": " + (f ? errbuf : strerror(errno)), EINVAL);
    }
    const int snap = api->snapshot(p);
    api->close(p);
    if (snap > 0 && uint32_t(snap) < kSnapLen) wr->snap = uint32_t(snap);
  }
  wr->dead = api->open_dead_prec(DLT_EN10MB, int(wr->snap),
                                 wr->nano ? PCAP_TSTAMP_PRECISION_NANO : PCAP_TSTAMP_PRECISION_MICRO);
  if (!wr->dead) return fail(why, wr->port, "libpcap could not make a dumper", ENOMEM);
  errno = 0;
  if (!(wr->d = api->dump_open_append(wr->dead, path.c_str()))) {
    const std::string msg = api->geterr(wr->dead);
    const int e = errno && errno != EINVAL ? errno : EINVAL;
    wr->close();
    return fail(why, wr->port, "cannot write " + (msg.find(path) == 0 ? msg : path + ": " + msg), e);
  }
  // glibc's setvbuf writes out what the stream holds first (the header of
  // a new file); the flush makes that explicit.
  wr->f = api->dump_file(wr->d);
  if (fflush(wr->f) == 0) setvbuf(wr->f, wr->buf.get(), _IOFBF, kFileBuffer);
  __fsetlocking(wr->f, FSETLOCKING_BYCALLER);  // as the reader's
  return 0;
}

struct PcapKring {
  std::unique_ptr<Reader> rd;
  std::unique_ptr<Writer> wr;
  PcapPortExt* shared = nullptr;  // the port's, in the registry
};

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
      if (!open_reader(api, name, path, 0, ~0ull, &err, why)) return err;
    } else {
      Writer wr{api, std::string(name), path};
      if ((err = open_writer(&wr, why)) != 0) return err;
    }
    auto region = Region::get(pe.mem_id, RegionConfig::from_env(), &err, why);
    if (!region) return err;
    return make_port_rings(reg, p, *region, why);
  }

  int kring_init(Registry& reg, Kring& k, std::string* why) const override {
    PortEntry& pe = reg.port(k.port);
    const std::string_view name = pe.name;
    if (k.ks->users > 1)
      return fail(why, name, std::string(k.dir == kTx ? "tx" : "rx") +
                                 " ring is bound by another registration (a capture file has one " +
                                 (k.dir == kTx ? "writer)" : "reader)"), EBUSY);
    const PcapApi* api = pcap_api(why);
    if (!api) return EOPNOTSUPP;
    auto pk = std::make_unique<PcapKring>();
    pk->shared = &port_ext<PcapPortExt>(pe);
    const std::string path = file_of(name);
    int err = 0;
    if (k.dir == kRx) {
      // The first reader of the port fixes where reading stops: the end of
      // a pcap file as it is now, so frames the port writes itself are
      // never read back (a pcapng file is never written).
      if (pk->shared->stop == 0) {
        struct stat st;
        pk->shared->stop = is_pcap(magic_of(path)) && stat(path.c_str(), &st) == 0 ? uint64_t(st.st_size) + 1 : ~0ull;
      }
      if (!(pk->rd = open_reader(api, name, path, pk->shared->delivered, pk->shared->stop, &err, why))) return err;
    } else {
      pk->wr.reset(new Writer{api, std::string(name), path});
      if ((err = open_writer(pk->wr.get(), why)) != 0) return err;
    }
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
    PcapKring* pk = static_cast<PcapKring*>(k.priv);
    if (!reader_in_step(*pk)) return;
    Reader* rd = pk->rd.get();
    uint32_t room = rx_room(s, k.nslots), tail = s->hwtail.load(std::memory_order_relaxed);
    CopyRule rule;
    rule.dst_buf = k.region->cfg().buf_size;
    rule.max_frame = ~0u;
    uint64_t got = 0, bytes = 0;
    while (room > 0 && (rd->data || rd->next())) {
      if (!rx_put(k, &tail, &room, rd->data, rd->len)) {
        const FlatFrag f{rd->data, rd->len};
        if (frame_slots(f, 1, rd->len, rule) < k.nslots) break;  // wait for room
        s->drops++;  // longer than the whole ring can hold
      } else {
        got++;
        bytes += rd->len;
      }
      rd->data = nullptr;
      rd->delivered++;
    }
    __atomic_store_n(&pk->shared->delivered, rd->delivered, __ATOMIC_RELAXED);
    s->packets += got;
    s->bytes += bytes;
    s->hwtail.store(tail, std::memory_order_release);
  }

  // The finished frames of [hwcur, head) into the file, one flush per sync.
  void txsync(Kring& k, uint32_t head) const override {
    KringState* s = k.ks;
    Writer* wr = static_cast<PcapKring*>(k.priv)->wr.get();
    const uint32_t n = k.nslots;
    uint32_t cur = s->hwcur.load(std::memory_order_relaxed);
    uint64_t sent = 0, bytes = 0, bad = 0;
    // Another process's writer (a fork child's, or the parent's after the
    // child wrote) may have written since: write at the end as it is. The
    // stream holds nothing (flushed at every sync), so the descriptor is
    // moved under it (fseek would read the file's last block).
    off_t at = -1;
    if (cur != head && (wr->pid == my_pid() || reopen(wr))) at = lseek(fileno(wr->f), 0, SEEK_END);
    if (at < 0) {
      bad = ring_dist(cur, head, n);  // no writer: the frames are dropped
      cur = head;
    }
    timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    pcap_pkthdr h{};
    h.ts.tv_sec = now.tv_sec;
    h.ts.tv_usec = wr->nano ? now.tv_nsec : now.tv_nsec / 1000;
    const uint32_t bsize = k.region->cfg().buf_size;
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
      h.len = len;
      h.caplen = len < wr->snap ? len : wr->snap;
      wr->api->dump(reinterpret_cast<u_char*>(wr->d), &h, frame);
      sent++;
      bytes += len;
    }
    if (sent && (wr->api->dump_flush(wr->d) != 0 || ferror(wr->f))) {
      write_failed(wr, at);
      bad += sent;
      sent = bytes = 0;
    }
    s->packets += sent;
    s->bytes += bytes;
    s->drops += bad;
    tx_done(s, cur, n);
  }

 private:
  // A reader that another process moved past (or that a fork child
  // inherited) opens the file anew where the ring is; false if it cannot.
  static bool reader_in_step(PcapKring& pk) {
    const uint64_t delivered = __atomic_load_n(&pk.shared->delivered, __ATOMIC_RELAXED);
    Reader& rd = *pk.rd;
    if (rd.pid == my_pid() && rd.delivered == delivered) return true;
    if (rd.pid != my_pid()) {
      // A fork child's copy shares its file offset with the parent's:
      // closing the stream could move it (glibc puts an input stream's
      // offset back on close), so only the descriptor goes; the stream's
      // few hundred bytes stay.
      ::close(fileno(rd.f));
      rd.p = nullptr;
    }
    std::string why;
    int err = 0;
    auto fresh = open_reader(rd.api, rd.port, rd.path, delivered, pk.shared->stop, &err, &why);
    if (!fresh) {
      if (!quiet()) fprintf(stderr, "unetmap: %s\n", why.c_str());
      rd.eof = true;  // and this reader delivers nothing more
      return false;
    }
    pk.rd = std::move(fresh);
    return true;
  }

  static bool reopen(Writer* wr) {
    std::string why;
    if (open_writer(wr, &why) == 0) return true;
    if (!wr->said && !quiet()) fprintf(stderr, "unetmap: %s: frames dropped\n", why.c_str());
    wr->said = true;
    return false;
  }

  // A write the file system refused (full, a size limit): the file is cut
  // back to where the sync began, so no record is left half written, and
  // the writer is made anew (its stream keeps the error); the sync's
  // frames are dropped.
  static void write_failed(Writer* wr, off_t at) {
    const int e = errno;
    if (!wr->said && !quiet())
      fprintf(stderr, "unetmap: %s: writing %s failed (%s): frames dropped\n", wr->port.c_str(), wr->path.c_str(),
              strerror(e));
    wr->said = true;
    const int fd = dup(fileno(wr->f));
    wr->close();  // its buffered bytes are lost with it
    if (fd >= 0) {
      if (ftruncate(fd, at) != 0) { /* the reader stops at the bad record */ }
      ::close(fd);
    }
    std::string why;
    if (open_writer(wr, &why) != 0) wr->pid = 0;  // tried again at the next sync
  }
};

}  // namespace

const Adapter& pcap_adapter() {
  static PcapAdapter a;
  return a;
}

}  // namespace unetmap
