// The forwarding core of the tools that move packets between two ports:
// `bridge`, and later the helper process that attaches a NIC to a VALE
// switch (`vale-ctl -a valeX:IF`).
//
// forward() takes whole packets (a chain of slots linked by NS_MOREFRAG)
// from the bound rx rings of one port and puts them on the bound tx rings
// of another, in order. A packet never straddles two tx rings, and one
// whose last fragment has not arrived yet waits on its rx ring for the
// next round. Two ways of moving a packet:
//
//   zero copy  the rx slot and the tx slot exchange their buffers (both
//              marked NS_BUF_CHANGED): one 16-byte slot write per fragment.
//              Only valid when both ports live in one memory region.
//   copy       the bytes are copied into the tx slots' own buffers by the
//              packet engine (src/core/engine.h): each fragment into tx
//              slots of its own, split over a NS_MOREFRAG chain where the
//              tx ring's buffers are shorter (the regions may differ).
//
// The caller syncs: forward() only advances head/cur of the rings it
// touched. poll() with POLLIN on the source and POLLOUT on the destination
// (netmap's tx poll) does both syncs, as netmap's bridge relies on.
#pragma once

#include <libnetmap.h>

#include <cstdint>
#include <string>
#include <vector>

namespace unetmap::fwd {

// What one direction has moved. Updated once per forward() call.
struct Counters {
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t drops = 0;  // packets that can never fit a tx ring (more slots than the ring)
  uint64_t filtered = 0;  // packets a Filter dropped
};

// nmport_open without the library's own message: nullptr with the reason
// in *why ("cannot open NAME: ..."), for a tool's one line of its own.
// extra_bufs: as many extra buffers asked for (netmap's nr_extra_bufs;
// the region may give fewer).
nmport_d* open_quiet(const std::string& name, std::string* why, uint32_t extra_bufs = 0);

// The extra buffers d was given (its netmap_if's ni_bufs_head list),
// taken off the list: the caller keeps them (they go back with the port).
std::vector<uint32_t> take_extra_bufs(nmport_d* d);

// The two ports share a memory region, so their buffers can be swapped.
bool same_region(const nmport_d* a, const nmport_d* b);

// Slots waiting on the bound rx rings of d (between cur and tail).
uint32_t rx_pending(const nmport_d* d);

// A per-packet decision (kipfw's firewall), made when the packet can go
// (the tx ring has room for it): called with the packet's first bytes in
// one piece (its first slot, or its first kFilterHead bytes gathered from
// a chain whose first slot is shorter) and its whole length; false drops
// the packet (counted in Counters::filtered). A packet in one slot comes
// with that rx slot (`one`, else nullptr): a filter that keeps the packet
// (kipfw's dummynet) may take its buffer, putting another buffer of the
// region in the slot and setting NS_BUF_CHANGED, before it returns false.
constexpr uint32_t kFilterHead = 256;
struct Filter {
  bool (*fn)(void* ctx, const uint8_t* head, uint32_t head_len, uint32_t len, netmap_slot* one);
  void* ctx;
};

// Move up to `limit` packets from src's rx rings to dst's tx rings,
// swapping buffers if zero_copy (the caller checked same_region()),
// copying otherwise. Returns the packets moved; adds them to *c.
uint32_t forward(nmport_d* src, nmport_d* dst, uint32_t limit, bool zero_copy, Counters* c,
                 const Filter* filter = nullptr);

}  // namespace unetmap::fwd
