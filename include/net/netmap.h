/*
 * unetmap: netmap's user-visible ABI, written for a user-space implementation.
 *
 * Everything here is an interface fact of netmap API 14 (struct layouts, flag
 * values, request codes, ioctl numbers): a program compiled against this file
 * is binary compatible with one compiled against netmap's own header.
 *
 * Memory model, as seen by an application:
 *   - one region (the "allocator") is mmap()ed from the /dev/netmap fd; it
 *     holds netmap_if objects, netmap_ring objects and fixed-size buffers;
 *   - nr_offset (from the register request) locates this fd's netmap_if;
 *     netmap_if.ring_ofs[] locates each ring relative to the netmap_if;
 *     ring->buf_ofs locates buffer 0 relative to the ring, so buffer i
 *     starts at (char *)ring + buf_ofs + i * nr_buf_size.
 *
 * Ring ownership: slots [head, tail) belong to the application, slots
 * [tail, head) to the "kernel" (here: the library sync code). cur is the
 * wake-up point for poll(): a ring is ready when cur != tail. One slot is
 * always left empty, so a ring of N slots carries at most N-1 packets.
 */
#ifndef _NET_NETMAP_H_
#define _NET_NETMAP_H_

#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <sys/types.h>
#ifndef IFNAMSIZ
#include <net/if.h>
#endif
#ifndef IFNAMSIZ /* strict ISO C modes: net/if.h only has IF_NAMESIZE */
#define IFNAMSIZ IF_NAMESIZE
#endif

#define NETMAP_API 14     /* version this header describes */
#define NETMAP_MIN_API 14 /* oldest request version accepted */
#define NETMAP_MAX_API 15 /* newest request version accepted */

#define NM_CACHE_ALIGN 128

#define NETMAP_MAX_FRAGS 64 /* slots one packet may span */

/* One slot of a ring: a buffer index, a length and per-packet flags. */
struct netmap_slot {
	uint32_t buf_idx; /* buffer index within the region */
	uint16_t len;     /* bytes of packet data in the buffer */
	uint16_t flags;   /* NS_* below */
	uint64_t ptr;     /* user pointer (NS_INDIRECT) or offset */
};

#define NS_BUF_CHANGED 0x0001 /* buf_idx changed: reload mappings */
#define NS_REPORT 0x0002      /* ask for a notification on completion */
#define NS_FORWARD 0x0004     /* pass this slot on to the other side (host rings) */
#define NS_NO_LEARN 0x0008    /* VALE: do not learn the source address */
#define NS_INDIRECT 0x0010    /* data is at ptr, not in the buffer */
#define NS_MOREFRAG 0x0020    /* the packet continues in the next slot */
#define NS_TXMON 0x0040       /* monitor: the slot was seen on a tx ring */
#define NS_PORT_SHIFT 8
#define NS_PORT_MASK (0xff << NS_PORT_SHIFT)
#define NS_RFRAGS(_slot) (((_slot)->flags >> 8) & 0xff)

struct netmap_ring {
	const int64_t buf_ofs;      /* buffer 0, relative to this ring */
	const uint32_t num_slots;   /* slots in the ring */
	const uint32_t nr_buf_size; /* bytes per buffer */
	const uint16_t ringid;
	const uint16_t dir; /* 0: tx, 1: rx */

	uint32_t head; /* first slot owned by the application */
	uint32_t cur;  /* wake-up point */
	uint32_t tail; /* first slot owned by the kernel (read-only) */

	uint32_t flags; /* NR_TIMESTAMP, NR_FORWARD: set by the application */

	struct timeval ts; /* time of the last rxsync (UNETMAP_NO_TIMESTAMP=1: only with NR_TIMESTAMP) */

	const uint64_t offset_mask; /* bits of slot.ptr used as data offset */
	const uint64_t buf_align;   /* alignment required for offsets */

	/* opaque room for synchronisation, cache aligned */
	uint8_t __attribute__((__aligned__(NM_CACHE_ALIGN))) sem[128];

	struct netmap_slot slot[0]; /* num_slots slots follow */
};

#define NR_TIMESTAMP 0x0002 /* refresh ts at every sync */
#define NR_FORWARD 0x0004   /* honour NS_FORWARD (host rings) */

/* One per registration: the rings this fd can use. */
struct netmap_if {
	char ni_name[IFNAMSIZ];
	const uint32_t ni_version;
	const uint32_t ni_flags;
#define NI_PRIV_MEM 0x1
	const uint32_t ni_tx_rings; /* hardware tx rings */
	const uint32_t ni_rx_rings; /* hardware rx rings */
	uint32_t ni_bufs_head;      /* head of the extra buffer list */
	const uint32_t ni_host_tx_rings;
	const uint32_t ni_host_rx_rings;
	uint32_t ni_spare1[3];
	/* tx rings (hardware then host), then rx rings (hardware then host) */
	const ssize_t ring_ofs[0];
};

/* nmreq_register.nr_flags */
#define NR_REG_MASK 0xf /* legacy nr_flags: the NR_REG_* mode */
#define NR_MONITOR_TX 0x100
#define NR_MONITOR_RX 0x200
#define NR_ZCOPY_MON 0x400
#define NR_EXCLUSIVE 0x800
#define NR_RX_RINGS_ONLY 0x2000
#define NR_TX_RINGS_ONLY 0x4000
#define NR_ACCEPT_VNET_HDR 0x8000
#define NR_DO_RX_POLL 0x10000
#define NR_NO_TX_POLL 0x20000

/* Which rings a registration binds (nr_mode). */
enum {
	NR_REG_DEFAULT = 0, /* backward compat, same as NR_REG_ALL_NIC */
	NR_REG_ALL_NIC = 1,
	NR_REG_SW = 2,
	NR_REG_NIC_SW = 3,
	NR_REG_ONE_NIC = 4,
	NR_REG_PIPE_MASTER = 5, /* deprecated, pipes are named now */
	NR_REG_PIPE_SLAVE = 6,  /* deprecated */
	NR_REG_NULL = 7,
	NR_REG_ONE_SW = 8,
};

/* Legacy nr_ringid bits */
#define NETMAP_HW_RING 0x4000
#define NETMAP_SW_RING 0x2000
#define NETMAP_RING_MASK 0x0fff
#define NETMAP_NO_TX_POLL 0x1000
#define NETMAP_DO_RX_POLL 0x8000

#define NETMAP_BDG_HOST 1 /* attach the host stack too */

/* ---------------- API 14 control requests (NIOCCTRL) ---------------- */

#define NETMAP_REQ_IFNAMSIZ 64
#define NETMAP_REQ_MAXSIZE 4096

struct nmreq_header {
	uint16_t nr_version; /* NETMAP_API */
	uint16_t nr_reqtype; /* NETMAP_REQ_* */
	uint32_t nr_reserved;
	char nr_name[NETMAP_REQ_IFNAMSIZ]; /* port name */
	uint64_t nr_options; /* pointer to the first nmreq_option */
	uint64_t nr_body;    /* pointer to the request body */
};

enum {
	NETMAP_REQ_REGISTER = 1,
	NETMAP_REQ_PORT_INFO_GET,
	NETMAP_REQ_VALE_ATTACH,
	NETMAP_REQ_VALE_DETACH,
	NETMAP_REQ_VALE_LIST,
	NETMAP_REQ_PORT_HDR_SET,
	NETMAP_REQ_PORT_HDR_GET,
	NETMAP_REQ_VALE_NEWIF,
	NETMAP_REQ_VALE_DELIF,
	NETMAP_REQ_VALE_POLLING_ENABLE,
	NETMAP_REQ_VALE_POLLING_DISABLE,
	NETMAP_REQ_POOLS_INFO_GET,
	NETMAP_REQ_SYNC_KLOOP_START,
	NETMAP_REQ_SYNC_KLOOP_STOP,
	NETMAP_REQ_CSB_ENABLE,
};

enum {
	NETMAP_REQ_OPT_EXTMEM = 1,
	NETMAP_REQ_OPT_SYNC_KLOOP_EVENTFDS,
	NETMAP_REQ_OPT_CSB,
	NETMAP_REQ_OPT_SYNC_KLOOP_MODE,
	NETMAP_REQ_OPT_OFFSETS,
	NETMAP_REQ_OPT_MAX,
};

/* An option, chained from nmreq_header.nr_options through nro_next. */
struct nmreq_option {
	uint64_t nro_next;   /* pointer to the next option, 0 ends the list */
	uint32_t nro_reqtype; /* NETMAP_REQ_OPT_* */
	uint32_t nro_status; /* set by the kernel: 0 if accepted, else errno */
	uint64_t nro_size;   /* size of the whole option, set by the user */
};

struct nmreq_register {
	uint64_t nr_offset;  /* out: offset of the netmap_if in the region */
	uint64_t nr_memsize; /* out: size of the region to mmap */
	uint32_t nr_tx_slots;
	uint32_t nr_rx_slots;
	uint16_t nr_tx_rings;
	uint16_t nr_rx_rings;
	uint16_t nr_host_tx_rings;
	uint16_t nr_host_rx_rings;
	uint16_t nr_mem_id; /* in/out: region (allocator) id */
	uint16_t nr_ringid; /* ring index for the ONE_* modes */
	uint32_t nr_mode;   /* NR_REG_* */
	uint32_t nr_extra_bufs; /* in: wanted, out: obtained */
	uint64_t nr_flags;  /* NR_* flags above */
};

struct nmreq_port_info_get {
	uint64_t nr_memsize;
	uint32_t nr_tx_slots;
	uint32_t nr_rx_slots;
	uint16_t nr_tx_rings;
	uint16_t nr_rx_rings;
	uint16_t nr_host_tx_rings;
	uint16_t nr_host_rx_rings;
	uint16_t nr_mem_id;
	uint16_t pad[3];
};

#define NM_BDG_NAME "vale"

struct nmreq_vale_attach {
	struct nmreq_register reg;
	uint32_t port_index; /* out */
	uint32_t pad1;
};

struct nmreq_vale_detach {
	uint32_t port_index; /* out */
	uint32_t pad1;
};

struct nmreq_vale_list {
	uint16_t nr_bridge_idx; /* in/out */
	uint16_t pad1;
	uint32_t nr_port_idx; /* in/out */
};

struct nmreq_port_hdr {
	uint32_t nr_hdr_len;
	uint32_t pad1;
};

struct nmreq_vale_newif {
	uint32_t nr_tx_slots;
	uint32_t nr_rx_slots;
	uint16_t nr_tx_rings;
	uint16_t nr_rx_rings;
	uint16_t nr_mem_id;
	uint16_t pad1;
};

struct nmreq_vale_polling {
	uint32_t nr_mode;
#define NETMAP_POLLING_MODE_SINGLE_CPU 1
#define NETMAP_POLLING_MODE_MULTI_CPU 2
	uint32_t nr_first_cpu_id;
	uint32_t nr_num_polling_cpus;
	uint32_t pad1;
};

struct nmreq_pools_info {
	uint64_t nr_memsize;
	uint16_t nr_mem_id; /* in/out */
	uint16_t pad1[3];
	uint64_t nr_if_pool_offset;
	uint32_t nr_if_pool_objtotal;
	uint32_t nr_if_pool_objsize;
	uint64_t nr_ring_pool_offset;
	uint32_t nr_ring_pool_objtotal;
	uint32_t nr_ring_pool_objsize;
	uint64_t nr_buf_pool_offset;
	uint32_t nr_buf_pool_objtotal;
	uint32_t nr_buf_pool_objsize;
};

struct nmreq_sync_kloop_start {
	uint32_t sleep_us;
	uint32_t pad1;
};

/* NETMAP_REQ_OPT_EXTMEM: build the region on user memory. */
struct nmreq_opt_extmem {
	struct nmreq_option nro_opt;
	uint64_t nro_usrptr;         /* start of the user memory */
	struct nmreq_pools_info nro_info; /* wanted and obtained sizes */
};

struct nmreq_opt_sync_kloop_eventfds {
	struct nmreq_option nro_opt;
	struct {
		int32_t ioeventfd;
		int32_t irqfd;
	} eventfds[0];
};

struct nmreq_opt_sync_kloop_mode {
	struct nmreq_option nro_opt;
#define NM_OPT_SYNC_KLOOP_DIRECT_TX (1 << 0)
#define NM_OPT_SYNC_KLOOP_DIRECT_RX (1 << 1)
	uint32_t mode;
};

struct nmreq_opt_csb {
	struct nmreq_option nro_opt;
	uint64_t csb_atok;
	uint64_t csb_ktoa;
};

struct nmreq_opt_offsets {
	struct nmreq_option nro_opt;
	uint64_t nro_max_offset;
	uint64_t nro_initial_offset;
	uint32_t nro_offset_bits;
	uint32_t nro_tx_align;
	uint64_t nro_min_gap;
};

/* Shared status blocks of the (netmap kloop) CSB mode. */
struct nm_csb_atok { /* application to kernel */
	uint32_t head;
	uint32_t cur;
	uint32_t appl_need_kick;
	uint32_t sync_flags;
	uint32_t pad[12];
};

struct nm_csb_ktoa { /* kernel to application */
	uint32_t hwcur;
	uint32_t hwtail;
	uint32_t kern_need_kick;
	uint32_t pad[13];
};

/*
 * The application's side of a CSB (sync-kloop) ring. The loop reads head
 * before cur and writes hwcur before hwtail; so the application writes cur
 * before head (the loop never sees a head newer than cur) and reads hwtail
 * before hwcur.
 */
static inline void nm_stst_barrier(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
static inline void nm_ldld_barrier(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }

static inline void
nm_sync_kloop_appl_write(struct nm_csb_atok *atok, uint32_t cur, uint32_t head)
{
	nm_stst_barrier(); /* slots written before they are published */
	atok->cur = cur;
	nm_stst_barrier();
	atok->head = head;
}

static inline void
nm_sync_kloop_appl_read(struct nm_csb_ktoa *ktoa, uint32_t *hwtail, uint32_t *hwcur)
{
	*hwtail = ktoa->hwtail;
	nm_ldld_barrier();
	*hwcur = ktoa->hwcur;
	nm_ldld_barrier(); /* slots read after the pointers */
}

/* ---------------- ioctls ---------------- */

#include <net/netmap_legacy.h>

#define NIOCCTRL _IOWR('i', 151, struct nmreq_header)
#define NIOCTXSYNC _IO('i', 148) /* sync tx queues */
#define NIOCRXSYNC _IO('i', 149) /* sync rx queues */
#define NIOCCSBSYNC _IO('i', 158)

#endif /* _NET_NETMAP_H_ */
