/*
 * unetmap: netmap's user-side helpers.
 *
 * The macros translate the offsets of the shared region into pointers and
 * walk rings; they are pure functions of what the region holds. With
 * NETMAP_WITH_LIBS defined, the classic descriptor API (nm_open, nm_close,
 * nm_inject, nm_dispatch, nm_nextpkt) is available too: nm_open/nm_close/
 * nm_mmap are implemented in libnetmap (link with -lnetmap), the per-packet
 * helpers are inline here.
 */
#ifndef _NET_NETMAP_USER_H_
#define _NET_NETMAP_USER_H_

#include <stdint.h>
#include <string.h>
#include <net/netmap.h>

#ifndef likely
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

#define NETMAP_DEVICE_NAME "/dev/netmap"

#define _NETMAP_OFFSET(type, ptr, offset) ((type)(void *)((char *)(ptr) + (offset)))

#define NETMAP_IF(_base, _ofs) _NETMAP_OFFSET(struct netmap_if *, _base, _ofs)

#define NETMAP_TXRING(nifp, index) \
	_NETMAP_OFFSET(struct netmap_ring *, nifp, (nifp)->ring_ofs[index])

#define NETMAP_RXRING(nifp, index)                                          \
	_NETMAP_OFFSET(struct netmap_ring *, nifp,                          \
		       (nifp)->ring_ofs[(index) + (nifp)->ni_tx_rings +      \
					(nifp)->ni_host_tx_rings])

#define NETMAP_BUF(ring, index) \
	((char *)(ring) + (ring)->buf_ofs + ((size_t)(index) * (ring)->nr_buf_size))

#define NETMAP_BUF_IDX(ring, buf) \
	(((char *)(buf) - ((char *)(ring) + (ring)->buf_ofs)) / (ring)->nr_buf_size)

/* Offsets inside buffers (NR_OFFSETS): the low bits of slot->ptr. */
#define NETMAP_ROFFSET(ring, slot) ((slot)->ptr & (ring)->offset_mask)
#define NETMAP_WOFFSET(ring, slot, offset) \
	do { (slot)->ptr = ((slot)->ptr & ~(ring)->offset_mask) | \
		((offset) & (ring)->offset_mask); } while (0)
#define NETMAP_BUF_OFFSET(ring, slot) \
	(NETMAP_BUF(ring, (slot)->buf_idx) + NETMAP_ROFFSET(ring, slot))

#ifdef __cplusplus
extern "C" {
#endif

static inline uint32_t nm_ring_next(struct netmap_ring *r, uint32_t i)
{
	return unlikely(i + 1 == r->num_slots) ? 0 : i + 1;
}

/* Slots the application can use from cur (tx: free, rx: filled). */
static inline uint32_t nm_ring_space(struct netmap_ring *ring)
{
	int ret = (int)(ring->tail - ring->cur);
	if (ret < 0)
		ret += ring->num_slots;
	return ret;
}

static inline int nm_ring_empty(struct netmap_ring *ring)
{
	return ring->cur == ring->tail;
}

/* True while transmissions are still in flight on a tx ring. */
static inline int nm_tx_pending(struct netmap_ring *r)
{
	return nm_ring_next(r, r->tail) != r->head;
}

/* Copy a packet: 64-byte blocks for short multiples of 64, memcpy otherwise. */
static inline void nm_pkt_copy(const void *src, void *dst, int len)
{
	if (unlikely(len >= 1024 || len <= 0 || (len & 63))) {
		if (len > 0)
			memcpy(dst, src, (size_t)len);
		return;
	}
	const uint64_t *s = (const uint64_t *)src;
	uint64_t *d = (uint64_t *)dst;
	for (; len > 0; len -= 64, s += 8, d += 8) {
		d[0] = s[0]; d[1] = s[1]; d[2] = s[2]; d[3] = s[3];
		d[4] = s[4]; d[5] = s[5]; d[6] = s[6]; d[7] = s[7];
	}
}

#ifdef __cplusplus
}
#endif

#ifdef NETMAP_WITH_LIBS

#include <poll.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

struct nm_desc;

struct nm_pkthdr { /* starts like pcap_pkthdr */
	struct timeval ts;
	uint32_t caplen;
	uint32_t len;
	uint64_t flags;
#define NM_MORE_PKTS 1
	struct nm_desc *d;
	struct netmap_slot *slot;
	uint8_t *buf;
};

struct nm_stat { /* same as pcap_stat */
	unsigned int ps_recv;
	unsigned int ps_drop;
	unsigned int ps_ifdrop;
};

#define NM_ERRBUF_SIZE 512

struct nm_desc {
	struct nm_desc *self; /* points to itself for a valid descriptor */
	int fd;
	void *mem;
	uint64_t memsize;
	int done_mmap;
	struct netmap_if *const nifp;
	uint16_t first_tx_ring, last_tx_ring, cur_tx_ring;
	uint16_t first_rx_ring, last_rx_ring, cur_rx_ring;
	struct nmreq req;
	struct nm_pkthdr hdr;
	struct netmap_ring *const some_ring;
	void *const buf_start;
	void *const buf_end;
	int snaplen;
	int promisc;
	int to_ms;
	char *errbuf;
	uint32_t if_flags;
	uint32_t if_reqcap;
	uint32_t if_curcap;
	struct nm_stat st;
	char msg[NM_ERRBUF_SIZE];
};

#define P2NMD(p) ((const struct nm_desc *)(p))
#define IS_NETMAP_DESC(d) ((d) && P2NMD(d)->self == P2NMD(d))
#define NETMAP_FD(d) (P2NMD(d)->fd)

/* nm_open flags: which fields of the template descriptor to take. */
#define NM_OPEN_NO_MMAP 0x040000
#define NM_OPEN_IFNAME 0x080000
#define NM_OPEN_ARG1 0x100000
#define NM_OPEN_ARG2 0x200000
#define NM_OPEN_ARG3 0x400000
#define NM_OPEN_RING_CFG 0x800000

/* Implemented in libnetmap. */
struct nm_desc *nm_open(const char *ifname, const struct nmreq *req,
			uint64_t flags, const struct nm_desc *arg);
int nm_close(struct nm_desc *d);
int nm_mmap(struct nm_desc *d, const struct nm_desc *parent);

typedef void (*nm_cb_t)(unsigned char *, const struct nm_pkthdr *,
			const unsigned char *d);

/*
 * Send one packet on the first tx ring with room; returns len or 0. The
 * packet leaves at the next sync (poll, NIOCTXSYNC, or nm_close, which
 * flushes); when every ring is full, one NIOCTXSYNC makes room first.
 */
static inline int nm_inject(struct nm_desc *d, const void *buf, size_t size)
{
	unsigned int c, n = d->last_tx_ring - d->first_tx_ring + 1;
	for (c = 0; c < 2 * n; c++) {
		if (c == n && ioctl(d->fd, NIOCTXSYNC, NULL) != 0)
			break;
		unsigned int ri = d->cur_tx_ring + c % n;
		if (ri > d->last_tx_ring)
			ri -= n;
		struct netmap_ring *ring = NETMAP_TXRING(d->nifp, ri);
		size_t rem = size;
		const char *p = (const char *)buf;
		uint32_t i = ring->cur, need = 0;
		uint32_t bsz = ring->nr_buf_size;
		need = (uint32_t)((size + bsz - 1) / bsz);
		if (need == 0)
			need = 1;
		if (nm_ring_space(ring) < need)
			continue;
		for (;;) {
			struct netmap_slot *s = &ring->slot[i];
			size_t chunk = rem > bsz ? bsz : rem;
			nm_pkt_copy(p, NETMAP_BUF(ring, s->buf_idx), (int)chunk);
			s->len = (uint16_t)chunk;
			p += chunk;
			rem -= chunk;
			if (rem == 0) {
				s->flags &= ~NS_MOREFRAG;
				break;
			}
			s->flags |= NS_MOREFRAG;
			i = nm_ring_next(ring, i);
		}
		d->cur_tx_ring = (uint16_t)ri;
		ring->head = ring->cur = nm_ring_next(ring, i);
		return (int)size;
	}
	return 0;
}

/* Deliver up to cnt packets (all if cnt <= 0) to cb; returns how many. */
static inline int nm_dispatch(struct nm_desc *d, int cnt, nm_cb_t cb,
			      unsigned char *arg)
{
	int n = d->last_rx_ring - d->first_rx_ring + 1;
	int c, got = 0, ri = d->cur_rx_ring;
	d->hdr.buf = NULL;
	d->hdr.flags = NM_MORE_PKTS;
	d->hdr.d = d;
	if (cnt == 0)
		cnt = -1;
	for (c = 0; c < n && cnt != got; c++) {
		ri = d->cur_rx_ring + c;
		if (ri > d->last_rx_ring)
			ri -= n;
		struct netmap_ring *ring = NETMAP_RXRING(d->nifp, ri);
		for (; !nm_ring_empty(ring) && cnt != got; got++) {
			uint32_t idx, i = ring->cur;
			struct netmap_slot *slot = &ring->slot[i];
			unsigned char *buf;
			idx = slot->buf_idx;
			buf = (unsigned char *)NETMAP_BUF(ring, idx);
			if (unlikely(idx < 2)) {
				snprintf(d->msg, sizeof(d->msg),
					 "bad buffer index %u on rx ring %d",
					 idx, ri);
				buf = NULL;
			}
			d->hdr.len = d->hdr.caplen = slot->len;
			while (slot->flags & NS_MOREFRAG) {
				i = nm_ring_next(ring, i);
				if (i == ring->tail)
					break; /* incomplete: should not happen */
				slot = &ring->slot[i];
				d->hdr.len += slot->len;
			}
			d->hdr.ts = ring->ts;
			d->hdr.slot = slot;
			if (buf)
				cb(arg, &d->hdr, buf);
			ring->head = ring->cur = nm_ring_next(ring, i);
		}
	}
	d->cur_rx_ring = (uint16_t)ri;
	return got;
}

/* Return the next received packet, or NULL if all rx rings are empty. */
static inline unsigned char *nm_nextpkt(struct nm_desc *d,
					struct nm_pkthdr *hdr)
{
	int ri = d->cur_rx_ring;
	do {
		struct netmap_ring *ring = NETMAP_RXRING(d->nifp, ri);
		if (!nm_ring_empty(ring)) {
			uint32_t i = ring->cur;
			struct netmap_slot *slot = &ring->slot[i];
			unsigned char *buf =
				(unsigned char *)NETMAP_BUF(ring, slot->buf_idx);
			hdr->ts = ring->ts;
			hdr->len = hdr->caplen = slot->len;
			hdr->slot = slot;
			hdr->buf = NULL;
			hdr->flags = 0;
			hdr->d = d;
			ring->cur = nm_ring_next(ring, i);
			/* release the slot at the next sync */
			ring->head = ring->cur;
			d->cur_rx_ring = (uint16_t)ri;
			return buf;
		}
		ri++;
		if (ri > d->last_rx_ring)
			ri = d->first_rx_ring;
	} while (ri != d->cur_rx_ring);
	return NULL;
}

#ifdef __cplusplus
}
#endif

#endif /* NETMAP_WITH_LIBS */

#endif /* _NET_NETMAP_USER_H_ */
