// VALE's internals, shared by the files of src/ports/vale/ and by nothing
// else: the switch table (switch.cc), the per-kring forwarder (forward.cc),
// the lookups (lookup.cc), the control requests (ctl.cc) and the adapter
// (vale.cc).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/adapter.h"
#include "ports/vale/vale.h"

namespace unetmap::vale {

// ---- switch.cc: names, switches, private regions ----

// "valeX:Y" -> "valeX", "Y"
bool split_name(std::string_view name, std::string* sw, std::string* port);
// Switch index of name, or -1 (registry locked).
int find_switch(Registry& reg, const std::string& name);
// A free switch entry made name's, or -1.
int alloc_switch(Registry& reg, const std::string& name);
// A VALE port's rings, in its own private region unless req.mem_id.
int make_port(Registry& reg, int p, const PortRequest& req, std::string* why);
// Put port p on switch swname (made if needed).
int attach(Registry& reg, int p, const std::string& swname, std::string* why);
// Take port p off its switch (the switch goes with its last port).
void detach(Registry& reg, int p);
// Every switch's port table from the ports (Adapter::recount).
void recount_switches(Registry& reg);

// A learning-table entry: kMacValid | port << 48 | MAC.
constexpr uint64_t kMacValid = 1ull << 63;

// ---- lookup.cc ----

uint32_t learning_lookup(const uint8_t* pkt, uint32_t len, const ValeLookupCtx& c);
// For a switch whose lookup this process does not know: it cannot forward.
uint32_t unknown_lookup(const uint8_t*, uint32_t, const ValeLookupCtx&);
// The operations of the lookup of that name ("" = learning): a built-in
// one, or one this process registered; false if neither.
bool find_lookup(const char* name, ValeLookupOps* ops);
// sw's lookup goes (the switch goes, or its lookup changes): its dtor runs
// if this process knows it, and its private data is zeroed. Registry locked.
void lookup_gone(SwitchEntry& sw);

// ---- forward.cc: the sender's view of the switch ----

// The longest packet a VALE port takes (64 KiB, as netmap's switch).
constexpr uint32_t kMaxFrame = 65535;
// The IP packets a GSO frame is cut into for a port without a virtio-net
// header: netmap's default maximum frame (1514) less Ethernet's header.
constexpr uint32_t kValeMtu = 1500;
// Bytes of frames the mismatch path makes for one destination in one
// batch, at most (what does not fit is dropped and counted).
constexpr uint32_t kMadeMax = 4u << 20;

struct RxView {
  KringState* ks;
  netmap_ring* ring;
  uint32_t gen;
  uint32_t tag;  // ks->buf_tag, read once: that line is the receiver's hot one
};

struct DstPort {
  std::shared_ptr<Region> region;
  std::vector<RxView> rx;
  uint16_t hdr = 0;  // its virtio-net header length
};

struct FwdPkt {
  uint32_t first;  // first tx slot
  uint32_t nslots;
  uint32_t dst;  // switch port, kValeBroadcast or kValeDrop
  uint32_t next;  // next packet to the same destination (unicast lists)
  uint32_t len;
  bool offload;   // its virtio-net header asks for segmentation or a checksum
};

struct ValeKring {
  Registry* reg = nullptr;  // the process's registry mapping
  int sw = -1;
  uint16_t me = 0;
  uint16_t hdr = 0;  // this port's virtio-net header length
  uint32_t sw_gen = ~0u;
  ValeLookupFn lookup = learning_lookup;
  bool lookup_missing = false;  // this process does not know the switch's lookup
  std::vector<DstPort> dst;        // by switch port index
  std::vector<uint16_t> active;    // switch ports other than me
  std::vector<FwdPkt> ft;          // this batch
  std::vector<uint32_t> list_head;  // by switch port: first packet, ~0u none
  std::vector<uint32_t> list_tail;  // by switch port: last packet
  std::vector<uint32_t> order;      // packets for one destination, in order
  std::vector<uint32_t> need;       // their slots there, where not one per fragment
  uint32_t maxlen = 0;              // the batch's longest fragment
  std::unique_ptr<char[]> stage;    // NS_INDIRECT fragments, one buffer per slot
  std::vector<const char*> ind;     // by slot: where its NS_INDIRECT fragment is
                                    // (in stage, or in place: Kring::direct), or nullptr
  // The mismatch path (forward.cc): a frame whose header asks for work,
  // gathered in one piece, and the frames finished from it for the
  // current destination; an `order` entry with kMadeBit names one.
  std::vector<uint8_t> whole;
  std::vector<uint8_t> made;
  struct Made {
    uint32_t off, len;
  };
  std::vector<Made> made_frames;
};
constexpr uint32_t kMadeBit = 0x80000000u;

// Rebuild v's view of its switch (registry locked).
void refresh(Registry& reg, ValeKring& v);
// Forward the complete packets of [hwcur, head); return the new hwcur.
uint32_t forward(Kring& k, ValeKring& v, uint32_t head);
// A destination ring being destroyed: no new leases; wait (bounded) for
// the pending ones.
void drain(KringState* ks);

}  // namespace unetmap::vale
