/*
 * unetmap: libnetmap, netmap's port-opening library (API 14).
 *
 * A port is described by a string, parsed by nmport_parse():
 *
 *   PREFIX:NAME[PIPE][RINGS][/FLAGS][@MEMID][@OPTION...]
 *
 *   PREFIX  netmap | valeID (the whole "valeX:Y" is the port name)
 *   PIPE    {ID (master end) or }ID (slave end) of pipe ID of NAME
 *   RINGS   (none) all rings, -N ring N, ^ host rings, ^N host ring N,
 *           * hardware and host rings
 *   FLAGS   x exclusive, z zero-copy monitor, t/r monitor tx/rx,
 *           R rx rings only, T tx rings only
 *   @N      memory region (allocator) N
 *   @conf:rings=,host-rings=,slots=,tx-rings=,rx-rings=,host-tx-rings=,
 *         host-rx-rings=,tx-slots=,rx-slots=   (rings= is the default key)
 *   @share=PORT   use PORT's memory region
 *   @extmem:file=,if-num=,if-size=,ring-num=,ring-size=,buf-num=,buf-size=
 *
 * nmport_open() = nmport_prepare() (parse) + nmport_open_desc() (register
 * and mmap). The struct layouts below are netmap's.
 */
#ifndef LIBNETMAP_H_
#define LIBNETMAP_H_

#include <net/netmap_user.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct nmctx;
struct nmport_cleanup_d;

typedef void (*nmctx_error_cb)(struct nmctx *, const char *);
typedef void *(*nmctx_malloc_cb)(struct nmctx *, size_t);
typedef void (*nmctx_free_cb)(struct nmctx *, void *);
typedef void (*nmctx_lock_cb)(struct nmctx *, int);

/* A mapped memory region, shared by the ports of a process that use it. */
struct nmem_d {
	uint16_t mem_id;
	int refcount;
	void *mem;
	size_t size;
	int is_extmem;
	struct nmem_d *next;
	struct nmem_d *prev;
};

/* Library context: error reporting, allocation, locking. */
struct nmctx {
	int verbose;
	nmctx_error_cb error;
	nmctx_malloc_cb malloc;
	nmctx_free_cb free;
	nmctx_lock_cb lock;
	struct nmem_d *mem_descs;
};

struct nmctx *nmctx_get(void);
struct nmctx *nmctx_set_default(struct nmctx *ctx);
void nmctx_set_threadsafe(void);
void nmctx_ferror(struct nmctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void *nmctx_malloc(struct nmctx *ctx, size_t sz);
void nmctx_free(struct nmctx *ctx, void *p);
void nmctx_lock(struct nmctx *ctx);
void nmctx_unlock(struct nmctx *ctx);

/* An open (or prepared) port. */
struct nmport_d {
	struct nmreq_header hdr;
	struct nmreq_register reg;
	struct nmem_d *mem;
	struct nmctx *ctx;
	int register_done;
	int mmap_done;
	struct nmreq_opt_extmem *extmem;
	int fd;
	struct netmap_if *nifp;
	uint16_t first_tx_ring;
	uint16_t last_tx_ring;
	uint16_t first_rx_ring;
	uint16_t last_rx_ring;
	uint16_t cur_tx_ring;
	uint16_t cur_rx_ring;
	struct nmport_cleanup_d *clist;
};

struct nmport_d *nmport_open(const char *portspec);
void nmport_close(struct nmport_d *d);
struct nmport_d *nmport_prepare(const char *portspec);
int nmport_open_desc(struct nmport_d *d);
void nmport_undo_prepare(struct nmport_d *d);
void nmport_undo_open_desc(struct nmport_d *d);
struct nmport_d *nmport_clone(struct nmport_d *d);

struct nmport_d *nmport_new(void);
void nmport_delete(struct nmport_d *d);
int nmport_parse(struct nmport_d *d, const char *portspec);
void nmport_undo_parse(struct nmport_d *d);
int nmport_register(struct nmport_d *d);
void nmport_unregister(struct nmport_d *d);
int nmport_mmap(struct nmport_d *d);
void nmport_undo_mmap(struct nmport_d *d);
int nmport_extmem(struct nmport_d *d, void *base, size_t size);
int nmport_extmem_from_file(struct nmport_d *d, const char *fname);
struct nmreq_pools_info *nmport_extmem_getinfo(struct nmport_d *d);
int nmport_offset(struct nmport_d *d, uint64_t initial, uint64_t maxoff, uint64_t bits,
		  uint64_t mingap);
int nmport_enable_option(const char *opt);
int nmport_disable_option(const char *opt);

/* Request helpers */
void nmreq_header_init(struct nmreq_header *h, uint16_t reqtype, void *body);
int nmreq_header_decode(const char **ppspec, struct nmreq_header *h, struct nmctx *ctx);
int nmreq_register_decode(const char **pmode, struct nmreq_register *reg, struct nmctx *ctx);
void nmreq_push_option(struct nmreq_header *h, struct nmreq_option *o);
void nmreq_remove_option(struct nmreq_header *h, struct nmreq_option *o);
struct nmreq_option *nmreq_find_option(struct nmreq_header *h, uint32_t t);
void nmreq_free_options(struct nmreq_header *h);
const char *nmreq_option_name(uint32_t nro_reqtype);

/* Option parsers, for tools that extend the "@option:key=value" syntax. */
#define NMREQ_OPT_MAXKEYS 16 /* keys one option can have */

struct nmreq_parse_ctx {
	struct nmctx *ctx;                      /* for errors */
	void *token;                            /* the caller's cookie */
	const char *keys[NMREQ_OPT_MAXKEYS];    /* values, by key id; NULL if unset */
};

typedef int (*nmreq_opt_parser_cb)(struct nmreq_parse_ctx *);

struct nmreq_opt_key {
	const char *key;
	int id;
	unsigned int flags;
#define NMREQ_OPTK_ALLOWEMPTY (1U << 0) /* "=value" may be left out */
#define NMREQ_OPTK_MUSTSET (1U << 1)    /* the key is mandatory */
#define NMREQ_OPTK_DEFAULT (1U << 2)    /* "option=value" sets this key */
};

struct nmreq_opt_parser {
	const char *prefix;
	nmreq_opt_parser_cb parse;
	int default_key;
	int nr_keys;
	unsigned int flags;
#define NMREQ_OPTF_DISABLED (1U << 0)
#define NMREQ_OPTF_ALLOWEMPTY (1U << 1)
	struct nmreq_opt_parser *next;
	struct nmreq_opt_key keys[NMREQ_OPT_MAXKEYS];
} __attribute__((aligned(16)));

#define nmreq_foreach_option(h_, o_)                                        \
	for ((o_) = (struct nmreq_option *)((uintptr_t)((h_)->nr_options)); \
	     (o_) != NULL;                                                  \
	     (o_) = (struct nmreq_option *)((uintptr_t)((o_)->nro_next)))

/* Send one packet on the first tx ring with room; size, or 0 if none. */
static inline int nmport_inject(struct nmport_d *d, const void *buf, size_t size)
{
	unsigned int c, n = d->last_tx_ring - d->first_tx_ring + 1;
	for (c = 0; c < n; c++) {
		unsigned int ri = d->cur_tx_ring + c;
		if (ri > d->last_tx_ring)
			ri = d->first_tx_ring + (ri - d->last_tx_ring - 1);
		struct netmap_ring *ring = NETMAP_TXRING(d->nifp, ri);
		uint32_t bsz = ring->nr_buf_size;
		uint32_t need = size ? (uint32_t)((size + bsz - 1) / bsz) : 1;
		if (nm_ring_space(ring) < need)
			continue;
		const char *p = (const char *)buf;
		size_t rem = size;
		uint32_t i = ring->cur;
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

#ifdef __cplusplus
}
#endif

#endif /* LIBNETMAP_H_ */
