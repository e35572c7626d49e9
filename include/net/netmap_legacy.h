/*
 * unetmap: netmap's legacy control interface (API 11, struct nmreq with
 * NIOCREGIF and NIOCGINFO), still used by many applications and by
 * nm_open() in older builds. The layout is an interface fact.
 */
#ifndef _NET_NETMAP_LEGACY_H_
#define _NET_NETMAP_LEGACY_H_

#include <stdint.h>
#include <sys/ioctl.h>
#ifndef IFNAMSIZ
#include <net/if.h>
#endif
#ifndef IFNAMSIZ
#define IFNAMSIZ IF_NAMESIZE
#endif

struct nmreq {
	char nr_name[IFNAMSIZ];
	uint32_t nr_version; /* API version, 11..14 */
	uint32_t nr_offset;  /* out: netmap_if offset in the region */
	uint32_t nr_memsize; /* out: region size */
	uint32_t nr_tx_slots;
	uint32_t nr_rx_slots;
	uint16_t nr_tx_rings;
	uint16_t nr_rx_rings;
	uint16_t nr_ringid; /* NETMAP_*_RING bits and ring index */
	uint16_t nr_cmd;    /* NETMAP_BDG_* and friends */
	uint16_t nr_arg1;   /* extra rings (pipes), bridge flags */
	uint16_t nr_arg2;   /* region id */
	uint32_t nr_arg3;   /* extra buffers wanted / obtained */
	uint32_t nr_flags;  /* NR_REG_* mode in the low bits, NR_* flags */
	uint32_t spare2[1];
};

/* nr_cmd values */
#define NETMAP_BDG_ATTACH 1
#define NETMAP_BDG_DETACH 2
#define NETMAP_BDG_REGOPS 3
#define NETMAP_BDG_LIST 4
#define NETMAP_BDG_VNET_HDR 5
#define NETMAP_BDG_NEWIF 6
#define NETMAP_BDG_DELIF 7
#define NETMAP_PT_HOST_CREATE 8
#define NETMAP_PT_HOST_DELETE 9
#define NETMAP_BDG_POLLING_ON 10
#define NETMAP_BDG_POLLING_OFF 11
#define NETMAP_VNET_HDR_GET 12
#define NETMAP_POOLS_INFO_GET 13

/* Answer of NETMAP_POOLS_INFO_GET (legacy: offsets are 32 bits). */
struct netmap_pools_info {
	uint64_t memsize;
	uint32_t memid;
	uint32_t if_pool_offset;
	uint32_t if_pool_objtotal;
	uint32_t if_pool_objsize;
	uint32_t ring_pool_offset;
	uint32_t ring_pool_objtotal;
	uint32_t ring_pool_objsize;
	uint32_t buf_pool_offset;
	uint32_t buf_pool_objtotal;
	uint32_t buf_pool_objsize;
};

/* NIOCCONFIG: driver-specific configuration, an opaque blob. */
#define NM_IFRDATA_LEN 256
struct nm_ifreq {
	char nifr_name[IFNAMSIZ];
	char data[NM_IFRDATA_LEN];
};

#define NIOCGINFO _IOWR('i', 145, struct nmreq)
#define NIOCREGIF _IOWR('i', 146, struct nmreq)
#define NIOCCONFIG _IOWR('i', 150, struct nm_ifreq)

#endif /* _NET_NETMAP_LEGACY_H_ */
