/*
 * unetmap's own C API, beside netmap's (net/netmap_user.h, libnetmap.h):
 * what netmap keeps in the kernel and unetmap keeps in its registry,
 * readable by programs and tools. Link with -lnetmap.
 */
#ifndef UNETMAP_UNETMAP_H
#define UNETMAP_UNETMAP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Why the last failed call of this thread failed, in words ("" if none). */
const char *unetmap_last_error(void);

/* A port of the runtime directory's registry. */
struct unetmap_port_info {
	char name[64];     /* as netmap names it: "p{0", "vale0:a", "eth0", "null:x" */
	char type[16];     /* its port type: "null", "pipe", "vale", "monitor", "nic" */
	uint16_t mem_id;   /* its memory region */
	uint16_t tx_rings, rx_rings;
	uint8_t persistent; /* outlives its users (vale-ctl -n) */
	uint8_t pad;
	uint32_t users;    /* live registrations */
};

/*
 * The ports of the registry, up to max of them into out[] (out may be NULL
 * with max 0). Returns how many there are (more than max: call again with
 * a larger array), or -1 with errno set (unetmap_last_error() says why).
 */
int unetmap_ports(struct unetmap_port_info *out, int max);

/* Counters of the rings a netmap fd has registered, in one direction. */
struct unetmap_ring_counters {
	uint64_t packets;  /* moved through them */
	uint64_t bytes;
	uint64_t drops;    /* rx: frames producers dropped for lack of room, and bad
	                    * frames the port dropped; tx: frames the port refused */
};

/*
 * Sums over the rx (rx != 0) or tx rings registered on netmap fd `fd`.
 * 0, or -1 with errno: EBADF (not a netmap fd), ENXIO (not registered).
 */
int unetmap_fd_counters(int fd, int rx, struct unetmap_ring_counters *out);

/* A range of the caller's memory. */
struct unetmap_mem_range {
	const void *addr;
	uint64_t len;
};

/*
 * NS_INDIRECT slots (VALE ports) carry the address of a fragment in the
 * sender's memory; netmap copies it from there, and so does unetmap, with a
 * checked copy that turns a bad address into a dropped packet. A program
 * that sends from memory it keeps mapped (a vhost-user backend: the
 * guest's memory) may name up to 64 ranges of it here: fragments of the tx
 * rings of netmap fd `fd` that lie wholly in one are then read in place,
 * with no extra copy. Fragments outside them are still read with the
 * checked copy. The caller keeps the ranges mapped while they are set and
 * does not sync fd's rings in another thread meanwhile; n = 0 clears them.
 * 0, or -1 with errno: EBADF, ENXIO (fd not registered), EINVAL.
 */
int unetmap_indirect_ranges(int fd, const struct unetmap_mem_range *r, unsigned n);

/*
 * vhost-user ports: switch port `port` ("valeX:NAME") becomes a virtio-net
 * device for a VM or any vhost-user front end (QEMU, DPDK's virtio_user)
 * at Unix socket `path`, served by a supervised worker process until
 * unetmap_vhost_detach(). It listens on path, or with UNETMAP_VHOST_CLIENT
 * connects to it (and again whenever the front end restarts). queues:
 * queue pairs, 1 to 16. 0, or -1 with errno (EBUSY: the port is served
 * already; ENXIO on detach: it is not a vhost-user port).
 * vale-ctl -a valeX:NAME,vhost=PATH[,client][,queues=N] calls this.
 */
#define UNETMAP_VHOST_CLIENT 0x1
int unetmap_vhost_attach(const char *port, const char *path, unsigned flags, unsigned queues);
int unetmap_vhost_detach(const char *port);

#ifdef __cplusplus
}
#endif

#endif /* UNETMAP_UNETMAP_H */
