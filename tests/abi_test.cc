// The ABI of unetmap's public headers against netmap's (API 14, Linux
// x86_64): size, alignment, and offset and size of every member of every
// public struct, and the values of the flags, request codes and ioctl
// numbers. The numbers are interface facts measured on upstream netmap's
// headers; a program built against either header must see the same bytes.
//
// Everything is checked twice: static_assert (the build breaks on a
// mismatch) and a runtime table (the test lists every value it checked).
#define NETMAP_WITH_LIBS
#include <gtest/gtest.h>
#include <libnetmap.h>
#include <net/netmap.h>
#include <net/netmap_legacy.h>
#include <net/netmap_user.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

namespace {

#define MSIZE(s, f) sizeof(((struct s*)nullptr)->f)

// S(struct, sizeof, alignof)   F(struct, member, offsetof, sizeof member)
#define ABI_LAYOUT(S, F) \
  S(netmap_slot, 16, 8) \
  F(netmap_slot, buf_idx, 0, 4) F(netmap_slot, len, 4, 2) F(netmap_slot, flags, 6, 2) \
  F(netmap_slot, ptr, 8, 8) \
  S(netmap_ring, 256, 128) \
  F(netmap_ring, buf_ofs, 0, 8) F(netmap_ring, num_slots, 8, 4) \
  F(netmap_ring, nr_buf_size, 12, 4) F(netmap_ring, ringid, 16, 2) F(netmap_ring, dir, 18, 2) \
  F(netmap_ring, head, 20, 4) F(netmap_ring, cur, 24, 4) F(netmap_ring, tail, 28, 4) \
  F(netmap_ring, flags, 32, 4) F(netmap_ring, ts, 40, 16) F(netmap_ring, offset_mask, 56, 8) \
  F(netmap_ring, buf_align, 64, 8) F(netmap_ring, sem, 128, 128) F(netmap_ring, slot, 256, 0) \
  S(netmap_if, 56, 8) \
  F(netmap_if, ni_name, 0, 16) F(netmap_if, ni_version, 16, 4) F(netmap_if, ni_flags, 20, 4) \
  F(netmap_if, ni_tx_rings, 24, 4) F(netmap_if, ni_rx_rings, 28, 4) \
  F(netmap_if, ni_bufs_head, 32, 4) F(netmap_if, ni_host_tx_rings, 36, 4) \
  F(netmap_if, ni_host_rx_rings, 40, 4) F(netmap_if, ni_spare1, 44, 12) \
  F(netmap_if, ring_ofs, 56, 0) \
  S(nmreq_option, 24, 8) \
  F(nmreq_option, nro_next, 0, 8) F(nmreq_option, nro_reqtype, 8, 4) \
  F(nmreq_option, nro_status, 12, 4) F(nmreq_option, nro_size, 16, 8) \
  S(nmreq_header, 88, 8) \
  F(nmreq_header, nr_version, 0, 2) F(nmreq_header, nr_reqtype, 2, 2) \
  F(nmreq_header, nr_reserved, 4, 4) F(nmreq_header, nr_name, 8, 64) \
  F(nmreq_header, nr_options, 72, 8) F(nmreq_header, nr_body, 80, 8) \
  S(nmreq_register, 56, 8) \
  F(nmreq_register, nr_offset, 0, 8) F(nmreq_register, nr_memsize, 8, 8) \
  F(nmreq_register, nr_tx_slots, 16, 4) F(nmreq_register, nr_rx_slots, 20, 4) \
  F(nmreq_register, nr_tx_rings, 24, 2) F(nmreq_register, nr_rx_rings, 26, 2) \
  F(nmreq_register, nr_host_tx_rings, 28, 2) F(nmreq_register, nr_host_rx_rings, 30, 2) \
  F(nmreq_register, nr_mem_id, 32, 2) F(nmreq_register, nr_ringid, 34, 2) \
  F(nmreq_register, nr_mode, 36, 4) F(nmreq_register, nr_extra_bufs, 40, 4) \
  F(nmreq_register, nr_flags, 48, 8) \
  S(nmreq_port_info_get, 32, 8) \
  F(nmreq_port_info_get, nr_memsize, 0, 8) F(nmreq_port_info_get, nr_tx_slots, 8, 4) \
  F(nmreq_port_info_get, nr_rx_slots, 12, 4) F(nmreq_port_info_get, nr_tx_rings, 16, 2) \
  F(nmreq_port_info_get, nr_rx_rings, 18, 2) F(nmreq_port_info_get, nr_host_tx_rings, 20, 2) \
  F(nmreq_port_info_get, nr_host_rx_rings, 22, 2) F(nmreq_port_info_get, nr_mem_id, 24, 2) \
  F(nmreq_port_info_get, pad, 26, 6) \
  S(nmreq_vale_attach, 64, 8) \
  F(nmreq_vale_attach, reg, 0, 56) F(nmreq_vale_attach, port_index, 56, 4) \
  F(nmreq_vale_attach, pad1, 60, 4) \
  S(nmreq_vale_detach, 8, 4) \
  F(nmreq_vale_detach, port_index, 0, 4) F(nmreq_vale_detach, pad1, 4, 4) \
  S(nmreq_vale_list, 8, 4) \
  F(nmreq_vale_list, nr_bridge_idx, 0, 2) F(nmreq_vale_list, pad1, 2, 2) \
  F(nmreq_vale_list, nr_port_idx, 4, 4) \
  S(nmreq_port_hdr, 8, 4) \
  F(nmreq_port_hdr, nr_hdr_len, 0, 4) F(nmreq_port_hdr, pad1, 4, 4) \
  S(nmreq_vale_newif, 16, 4) \
  F(nmreq_vale_newif, nr_tx_slots, 0, 4) F(nmreq_vale_newif, nr_rx_slots, 4, 4) \
  F(nmreq_vale_newif, nr_tx_rings, 8, 2) F(nmreq_vale_newif, nr_rx_rings, 10, 2) \
  F(nmreq_vale_newif, nr_mem_id, 12, 2) F(nmreq_vale_newif, pad1, 14, 2) \
  S(nmreq_vale_polling, 16, 4) \
  F(nmreq_vale_polling, nr_mode, 0, 4) F(nmreq_vale_polling, nr_first_cpu_id, 4, 4) \
  F(nmreq_vale_polling, nr_num_polling_cpus, 8, 4) F(nmreq_vale_polling, pad1, 12, 4) \
  S(nmreq_pools_info, 64, 8) \
  F(nmreq_pools_info, nr_memsize, 0, 8) F(nmreq_pools_info, nr_mem_id, 8, 2) \
  F(nmreq_pools_info, pad1, 10, 6) F(nmreq_pools_info, nr_if_pool_offset, 16, 8) \
  F(nmreq_pools_info, nr_if_pool_objtotal, 24, 4) \
  F(nmreq_pools_info, nr_if_pool_objsize, 28, 4) \
  F(nmreq_pools_info, nr_ring_pool_offset, 32, 8) \
  F(nmreq_pools_info, nr_ring_pool_objtotal, 40, 4) \
  F(nmreq_pools_info, nr_ring_pool_objsize, 44, 4) \
  F(nmreq_pools_info, nr_buf_pool_offset, 48, 8) \
  F(nmreq_pools_info, nr_buf_pool_objtotal, 56, 4) \
  F(nmreq_pools_info, nr_buf_pool_objsize, 60, 4) \
  S(nmreq_sync_kloop_start, 8, 4) \
  F(nmreq_sync_kloop_start, sleep_us, 0, 4) F(nmreq_sync_kloop_start, pad1, 4, 4) \
  S(nmreq_opt_sync_kloop_eventfds, 24, 8) \
  F(nmreq_opt_sync_kloop_eventfds, nro_opt, 0, 24) \
  F(nmreq_opt_sync_kloop_eventfds, eventfds, 24, 0) \
  S(nmreq_opt_sync_kloop_mode, 32, 8) \
  F(nmreq_opt_sync_kloop_mode, nro_opt, 0, 24) F(nmreq_opt_sync_kloop_mode, mode, 24, 4) \
  S(nmreq_opt_extmem, 96, 8) \
  F(nmreq_opt_extmem, nro_opt, 0, 24) F(nmreq_opt_extmem, nro_usrptr, 24, 8) \
  F(nmreq_opt_extmem, nro_info, 32, 64) \
  S(nmreq_opt_csb, 40, 8) \
  F(nmreq_opt_csb, nro_opt, 0, 24) F(nmreq_opt_csb, csb_atok, 24, 8) \
  F(nmreq_opt_csb, csb_ktoa, 32, 8) \
  S(nmreq_opt_offsets, 56, 8) \
  F(nmreq_opt_offsets, nro_opt, 0, 24) F(nmreq_opt_offsets, nro_max_offset, 24, 8) \
  F(nmreq_opt_offsets, nro_initial_offset, 32, 8) F(nmreq_opt_offsets, nro_offset_bits, 40, 4) \
  F(nmreq_opt_offsets, nro_tx_align, 44, 4) F(nmreq_opt_offsets, nro_min_gap, 48, 8) \
  S(nmreq, 60, 4) \
  F(nmreq, nr_name, 0, 16) F(nmreq, nr_version, 16, 4) F(nmreq, nr_offset, 20, 4) \
  F(nmreq, nr_memsize, 24, 4) F(nmreq, nr_tx_slots, 28, 4) F(nmreq, nr_rx_slots, 32, 4) \
  F(nmreq, nr_tx_rings, 36, 2) F(nmreq, nr_rx_rings, 38, 2) F(nmreq, nr_ringid, 40, 2) \
  F(nmreq, nr_cmd, 42, 2) F(nmreq, nr_arg1, 44, 2) F(nmreq, nr_arg2, 46, 2) \
  F(nmreq, nr_arg3, 48, 4) F(nmreq, nr_flags, 52, 4) F(nmreq, spare2, 56, 4) \
  S(nm_pkthdr, 56, 8) \
  F(nm_pkthdr, ts, 0, 16) F(nm_pkthdr, caplen, 16, 4) F(nm_pkthdr, len, 20, 4) \
  F(nm_pkthdr, flags, 24, 8) F(nm_pkthdr, d, 32, 8) F(nm_pkthdr, slot, 40, 8) \
  F(nm_pkthdr, buf, 48, 8) \
  S(nm_stat, 12, 4) \
  F(nm_stat, ps_recv, 0, 4) F(nm_stat, ps_drop, 4, 4) F(nm_stat, ps_ifdrop, 8, 4) \
  S(nm_desc, 760, 8) \
  F(nm_desc, self, 0, 8) F(nm_desc, fd, 8, 4) F(nm_desc, mem, 16, 8) F(nm_desc, memsize, 24, 8) \
  F(nm_desc, done_mmap, 32, 4) F(nm_desc, nifp, 40, 8) F(nm_desc, first_tx_ring, 48, 2) \
  F(nm_desc, last_tx_ring, 50, 2) F(nm_desc, cur_tx_ring, 52, 2) \
  F(nm_desc, first_rx_ring, 54, 2) F(nm_desc, last_rx_ring, 56, 2) \
  F(nm_desc, cur_rx_ring, 58, 2) F(nm_desc, req, 60, 60) F(nm_desc, hdr, 120, 56) \
  F(nm_desc, some_ring, 176, 8) F(nm_desc, buf_start, 184, 8) F(nm_desc, buf_end, 192, 8) \
  F(nm_desc, snaplen, 200, 4) F(nm_desc, promisc, 204, 4) F(nm_desc, to_ms, 208, 4) \
  F(nm_desc, errbuf, 216, 8) F(nm_desc, if_flags, 224, 4) F(nm_desc, if_reqcap, 228, 4) \
  F(nm_desc, if_curcap, 232, 4) F(nm_desc, st, 236, 12) F(nm_desc, msg, 248, 512) \
  S(nmport_d, 216, 8) \
  F(nmport_d, hdr, 0, 88) F(nmport_d, reg, 88, 56) F(nmport_d, mem, 144, 8) \
  F(nmport_d, ctx, 152, 8) F(nmport_d, register_done, 160, 4) F(nmport_d, mmap_done, 164, 4) \
  F(nmport_d, extmem, 168, 8) F(nmport_d, fd, 176, 4) F(nmport_d, nifp, 184, 8) \
  F(nmport_d, first_tx_ring, 192, 2) F(nmport_d, last_tx_ring, 194, 2) \
  F(nmport_d, first_rx_ring, 196, 2) F(nmport_d, last_rx_ring, 198, 2) \
  F(nmport_d, cur_tx_ring, 200, 2) F(nmport_d, cur_rx_ring, 202, 2) F(nmport_d, clist, 208, 8) \
  S(nmctx, 48, 8) \
  F(nmctx, verbose, 0, 4) F(nmctx, error, 8, 8) F(nmctx, malloc, 16, 8) F(nmctx, free, 24, 8) \
  F(nmctx, lock, 32, 8) F(nmctx, mem_descs, 40, 8) \
  S(nmem_d, 48, 8) \
  F(nmem_d, mem_id, 0, 2) F(nmem_d, refcount, 4, 4) F(nmem_d, mem, 8, 8) F(nmem_d, size, 16, 8) \
  F(nmem_d, is_extmem, 24, 4) F(nmem_d, next, 32, 8) F(nmem_d, prev, 40, 8) \
  /* end */

#define SA_S(s, sz, al)                                  \
  static_assert(sizeof(struct s) == (sz), "sizeof " #s); \
  static_assert(alignof(struct s) == (al), "alignof " #s);
#define SA_F(s, f, o, n)                                             \
  static_assert(offsetof(struct s, f) == (o), "offsetof " #s "." #f); \
  static_assert(MSIZE(s, f) == (n), "sizeof " #s "." #f);
ABI_LAYOUT(SA_S, SA_F)

// The entries of nmreq_opt_sync_kloop_eventfds.eventfds[].
using EventfdPair = std::remove_reference_t<
    decltype(std::declval<nmreq_opt_sync_kloop_eventfds>().eventfds[0])>;
static_assert(sizeof(EventfdPair) == 8);
static_assert(offsetof(EventfdPair, ioeventfd) == 0);
static_assert(offsetof(EventfdPair, irqfd) == 4);

// Constants: name, value.
#define ABI_CONSTANTS(C)                                                                       \
  C(NETMAP_API, 14) C(NETMAP_MIN_API, 14) C(NETMAP_MAX_API, 15) C(NM_CACHE_ALIGN, 128)         \
  C(IFNAMSIZ, 16)                                                                              \
  /* slot flags */                                                                             \
  C(NS_BUF_CHANGED, 0x1) C(NS_REPORT, 0x2) C(NS_FORWARD, 0x4) C(NS_NO_LEARN, 0x8)              \
  C(NS_INDIRECT, 0x10) C(NS_MOREFRAG, 0x20) C(NS_TXMON, 0x40) C(NS_PORT_SHIFT, 8)              \
  C(NS_PORT_MASK, 0xff00)                                                                      \
  /* ring and netmap_if flags */                                                               \
  C(NR_TIMESTAMP, 0x2) C(NR_FORWARD, 0x4) C(NI_PRIV_MEM, 0x1)                                  \
  /* requests */                                                                               \
  C(NETMAP_REQ_MAXSIZE, 4096) C(NETMAP_REQ_IFNAMSIZ, 64)                                       \
  C(NR_MONITOR_TX, 0x100) C(NR_MONITOR_RX, 0x200) C(NR_ZCOPY_MON, 0x400)                       \
  C(NR_EXCLUSIVE, 0x800) C(NR_RX_RINGS_ONLY, 0x2000) C(NR_TX_RINGS_ONLY, 0x4000)               \
  C(NR_ACCEPT_VNET_HDR, 0x8000) C(NR_DO_RX_POLL, 0x10000) C(NR_NO_TX_POLL, 0x20000)            \
  C(NETMAP_POLLING_MODE_SINGLE_CPU, 1) C(NETMAP_POLLING_MODE_MULTI_CPU, 2)                     \
  C(NM_OPT_SYNC_KLOOP_DIRECT_TX, 1) C(NM_OPT_SYNC_KLOOP_DIRECT_RX, 2)                          \
  C(NETMAP_REQ_REGISTER, 1) C(NETMAP_REQ_PORT_INFO_GET, 2) C(NETMAP_REQ_VALE_ATTACH, 3)        \
  C(NETMAP_REQ_VALE_DETACH, 4) C(NETMAP_REQ_VALE_LIST, 5) C(NETMAP_REQ_PORT_HDR_SET, 6)        \
  C(NETMAP_REQ_PORT_HDR_GET, 7) C(NETMAP_REQ_VALE_NEWIF, 8) C(NETMAP_REQ_VALE_DELIF, 9)        \
  C(NETMAP_REQ_VALE_POLLING_ENABLE, 10) C(NETMAP_REQ_VALE_POLLING_DISABLE, 11)                 \
  C(NETMAP_REQ_POOLS_INFO_GET, 12) C(NETMAP_REQ_SYNC_KLOOP_START, 13)                          \
  C(NETMAP_REQ_SYNC_KLOOP_STOP, 14) C(NETMAP_REQ_CSB_ENABLE, 15)                               \
  C(NETMAP_REQ_OPT_EXTMEM, 1) C(NETMAP_REQ_OPT_SYNC_KLOOP_EVENTFDS, 2) C(NETMAP_REQ_OPT_CSB, 3) \
  C(NETMAP_REQ_OPT_SYNC_KLOOP_MODE, 4) C(NETMAP_REQ_OPT_OFFSETS, 5) C(NETMAP_REQ_OPT_MAX, 6)   \
  C(NR_REG_DEFAULT, 0) C(NR_REG_ALL_NIC, 1) C(NR_REG_SW, 2) C(NR_REG_NIC_SW, 3)                \
  C(NR_REG_ONE_NIC, 4) C(NR_REG_PIPE_MASTER, 5) C(NR_REG_PIPE_SLAVE, 6) C(NR_REG_NULL, 7)      \
  C(NR_REG_ONE_SW, 8) C(NR_REG_MASK, 0xf)                                                      \
  /* legacy ringid bits and nr_cmd values */                                                   \
  C(NETMAP_HW_RING, 0x4000) C(NETMAP_SW_RING, 0x2000) C(NETMAP_RING_MASK, 0xfff)               \
  C(NETMAP_NO_TX_POLL, 0x1000) C(NETMAP_DO_RX_POLL, 0x8000)                                    \
  C(NETMAP_BDG_ATTACH, 1) C(NETMAP_BDG_DETACH, 2) C(NETMAP_BDG_REGOPS, 3)                      \
  C(NETMAP_BDG_LIST, 4) C(NETMAP_BDG_VNET_HDR, 5) C(NETMAP_BDG_NEWIF, 6)                       \
  C(NETMAP_BDG_DELIF, 7) C(NETMAP_PT_HOST_CREATE, 8) C(NETMAP_PT_HOST_DELETE, 9)               \
  C(NETMAP_BDG_POLLING_ON, 10) C(NETMAP_BDG_POLLING_OFF, 11) C(NETMAP_VNET_HDR_GET, 12)        \
  C(NETMAP_BDG_HOST, 1)                                                                        \
  /* ioctls */                                                                                 \
  C(NIOCCTRL, 0xc0586997) C(NIOCTXSYNC, 0x6994) C(NIOCRXSYNC, 0x6995)                          \
  C(NIOCREGIF, 0xc03c6992) C(NIOCGINFO, 0xc03c6991)                                            \
  /* netmap_user.h with NETMAP_WITH_LIBS */                                                    \
  C(NM_MORE_PKTS, 1) C(NM_ERRBUF_SIZE, 512) C(NM_OPEN_NO_MMAP, 0x40000)                        \
  C(NM_OPEN_IFNAME, 0x80000) C(NM_OPEN_ARG1, 0x100000) C(NM_OPEN_ARG2, 0x200000)               \
  C(NM_OPEN_ARG3, 0x400000) C(NM_OPEN_RING_CFG, 0x800000)

#define SA_C(name, v) static_assert((unsigned long long)(name) == (v), #name);
ABI_CONSTANTS(SA_C)

struct Fact {
  std::string what;
  unsigned long long ours, netmap;
};

std::vector<Fact> layout_facts() {
  std::vector<Fact> v;
#define RT_S(s, sz, al)                                   \
  v.push_back({"sizeof(" #s ")", sizeof(struct s), sz});  \
  v.push_back({"alignof(" #s ")", alignof(struct s), al});
#define RT_F(s, f, o, n)                                               \
  v.push_back({"offsetof(" #s ", " #f ")", offsetof(struct s, f), o}); \
  v.push_back({"sizeof(" #s "." #f ")", MSIZE(s, f), n});
  ABI_LAYOUT(RT_S, RT_F)
  return v;
}

std::vector<Fact> constant_facts() {
  std::vector<Fact> v;
#define RT_C(name, val) v.push_back({#name, (unsigned long long)(name), val});
  ABI_CONSTANTS(RT_C)
  return v;
}

TEST(Abi, StructLayoutsMatchNetmap) {
  auto facts = layout_facts();
  EXPECT_GT(facts.size(), 400u);
  for (const Fact& f : facts) EXPECT_EQ(f.ours, f.netmap) << f.what;
}

TEST(Abi, ConstantsAndIoctlNumbersMatchNetmap) {
  auto facts = constant_facts();
  EXPECT_GT(facts.size(), 90u);
  for (const Fact& f : facts) EXPECT_EQ(f.ours, f.netmap) << f.what;
}

TEST(Abi, IoctlEncodingIsLinuxIowr) {
  // _IOWR('i', nr, type): direction read|write, type 'i', the struct size.
  EXPECT_EQ(_IOC_DIR(NIOCCTRL), unsigned(_IOC_READ | _IOC_WRITE));
  EXPECT_EQ(_IOC_TYPE(NIOCCTRL), unsigned('i'));
  EXPECT_EQ(_IOC_NR(NIOCCTRL), 151u);
  EXPECT_EQ(_IOC_SIZE(NIOCCTRL), sizeof(nmreq_header));
  EXPECT_EQ(_IOC_DIR(NIOCTXSYNC), unsigned(_IOC_NONE));
  EXPECT_EQ(_IOC_NR(NIOCTXSYNC), 148u);
  EXPECT_EQ(_IOC_NR(NIOCRXSYNC), 149u);
  EXPECT_EQ(_IOC_SIZE(NIOCREGIF), sizeof(nmreq));
  EXPECT_EQ(_IOC_NR(NIOCREGIF), 146u);
  EXPECT_EQ(_IOC_NR(NIOCGINFO), 145u);
}

TEST(Abi, StringConstants) { EXPECT_STREQ(NM_BDG_NAME, "vale"); }

// The ring macros are pure functions of the offsets in the region: check
// them on a hand-built region image.
TEST(Abi, RingMacrosFollowTheOffsets) {
  alignas(128) static char mem[1 << 16];
  memset(mem, 0, sizeof mem);
  auto* nifp = reinterpret_cast<netmap_if*>(mem + 512);
  *const_cast<uint32_t*>(&nifp->ni_tx_rings) = 2;
  *const_cast<uint32_t*>(&nifp->ni_rx_rings) = 2;
  *const_cast<uint32_t*>(&nifp->ni_host_tx_rings) = 1;
  *const_cast<uint32_t*>(&nifp->ni_host_rx_rings) = 1;
  auto* ofs = const_cast<ssize_t*>(nifp->ring_ofs);
  for (int i = 0; i < 6; i++) ofs[i] = 1024 + 1024 * i;  // tx0 tx1 htx rx0 rx1 hrx
  EXPECT_EQ(reinterpret_cast<char*>(NETMAP_IF(mem, 512)), mem + 512);
  EXPECT_EQ(reinterpret_cast<char*>(NETMAP_TXRING(nifp, 1)), mem + 512 + 2048);
  EXPECT_EQ(reinterpret_cast<char*>(NETMAP_TXRING(nifp, 2)), mem + 512 + 3072);  // host
  // rx ring i is at ring_ofs[i + ni_tx_rings + ni_host_tx_rings]
  EXPECT_EQ(reinterpret_cast<char*>(NETMAP_RXRING(nifp, 0)), mem + 512 + 4096);
  EXPECT_EQ(reinterpret_cast<char*>(NETMAP_RXRING(nifp, 2)), mem + 512 + 6144);

  auto* ring = reinterpret_cast<netmap_ring*>(mem + 8192);
  *const_cast<int64_t*>(&ring->buf_ofs) = 4096;
  *const_cast<uint32_t*>(&ring->nr_buf_size) = 256;
  *const_cast<uint32_t*>(&ring->num_slots) = 8;
  EXPECT_EQ(NETMAP_BUF(ring, 3), mem + 8192 + 4096 + 3 * 256);
  EXPECT_EQ(NETMAP_BUF_IDX(ring, NETMAP_BUF(ring, 5)), 5);
  ring->head = ring->cur = 6;
  ring->tail = 2;
  EXPECT_EQ(nm_ring_space(ring), 4u);  // 6,7,0,1
  EXPECT_FALSE(nm_ring_empty(ring));
  EXPECT_EQ(nm_ring_next(ring, 7), 0u);
  EXPECT_EQ(nm_ring_next(ring, 3), 4u);
  ring->tail = 6;
  EXPECT_TRUE(nm_ring_empty(ring));
  EXPECT_EQ(nm_ring_space(ring), 0u);
  ring->tail = 5;  // every slot but one handed back: nothing pending
  EXPECT_FALSE(nm_tx_pending(ring));
  ring->tail = 3;
  EXPECT_TRUE(nm_tx_pending(ring));
}

TEST(Abi, PktCopyCopiesExactly) {
  for (int len : {1, 60, 63, 64, 128, 640, 1023, 1024, 1514, 2048}) {
    std::vector<uint8_t> src(len + 64), dst(len + 64, 0xee);
    for (int i = 0; i < len; i++) src[i] = uint8_t(i * 13 + len);
    nm_pkt_copy(src.data(), dst.data(), len);
    EXPECT_EQ(0, memcmp(src.data(), dst.data(), len)) << len;
    for (int i = len; i < len + 64; i++) ASSERT_EQ(dst[i], 0xee) << "byte " << i << " of " << len;
  }
}

}  // namespace
