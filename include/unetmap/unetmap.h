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

/*
 * Control and statistics. Every list call below fills up to max entries
 * of out[] (out may be NULL with max 0) and returns how many there are
 * (more than max: call again with a larger array), or -1 with errno set
 * and unetmap_last_error() saying why. None of them makes a runtime
 * directory, a registry or a region: with nothing there, they list nothing.
 */

/* The rings of one port, every direction, host rings after the others. */
struct unetmap_ring_info {
	uint16_t ring;     /* index in its direction (host ring: after the last hardware one) */
	uint8_t tx;        /* 1: a tx ring, 0: an rx ring */
	uint8_t host;      /* 1: a host ring (NIC ports: the host stack) */
	uint32_t slots;
	uint32_t users;    /* registrations binding it */
	uint32_t monitors; /* copy monitors tapping it */
	uint32_t hwcur, hwtail;
	uint64_t packets;  /* moved through it (tx: sent, rx: released by the reader) */
	uint64_t bytes;    /* tx: sent; rx: received from outside (NIC and host rings,
	                    * pcap files, vhost-user guests). An rx ring of a pipe or a
	                    * switch port counts packets only: its bytes are its senders'. */
	uint64_t drops;    /* the port's own: bad slots, frames too long */
	uint64_t fwd_drops;/* rx: frames producers dropped for lack of room */
};
int unetmap_port_rings(const char *port, struct unetmap_ring_info *out, int max);

/* A port's rings summed per direction. 0, or -1 with errno (ENOENT: no such port). */
struct unetmap_port_stats {
	uint64_t tx_packets, tx_bytes, tx_drops;
	uint64_t rx_packets, rx_bytes, rx_drops; /* rx_drops: the port's and producers' */
};
int unetmap_port_counters(const char *port, struct unetmap_port_stats *out);

/* A NIC port's backend ("AF_XDP", "AF_PACKET"), as the last process to bind one
 * of its rings chose it; NULL with errno: ENXIO if `port` is not a NIC port or
 * none of its rings was bound yet, ENOENT if there is no such port. The string
 * is static. */
const char *unetmap_nic_backend(const char *port);

/* VALE switches. */
struct unetmap_switch_info {
	char name[64];     /* "vale0" */
	char lookup[32];   /* its lookup function: "learning", "hub" */
	uint32_t ports;
};
int unetmap_switches(struct unetmap_switch_info *out, int max);

struct unetmap_switch_port {
	char name[64];     /* "vale0:a" (a persistent port too: unetmap_port_rings and
	                    * unetmap_port_counters take either name) */
	uint32_t index;    /* its index on the switch */
	uint16_t mem_id;
	uint16_t hdr_len;  /* virtio-net header length: 0, 10 or 12 */
	uint16_t tx_rings, rx_rings;
	uint32_t tx_slots, rx_slots;
	uint8_t persistent;
	uint8_t pad[7];
	uint64_t tx_packets, tx_bytes; /* sent into the switch */
	uint64_t rx_packets;           /* released by the receiver */
	uint64_t drops;                /* for it: no room for all of a frame */
	uint64_t tx_drops;             /* from it: bad slots, too long, unknown lookup */
};
/* The ports of switch `sw` ("vale0"); -1 with ENOENT if there is none. */
int unetmap_switch_ports(const char *sw, struct unetmap_switch_port *out, int max);
/* Switch `sw`'s lookup function by name: "learning" (the default) or "hub". */
int unetmap_switch_set_lookup(const char *sw, const char *lookup);

/* Memory regions (netmap's allocators). */
struct unetmap_region_sizes {
	uint32_t if_num, if_size;     /* netmap_if objects */
	uint32_t ring_num, ring_size; /* rings: how many, bytes each */
	uint32_t buf_num, buf_size;   /* buffers */
};
struct unetmap_region_info {
	uint16_t mem_id;
	uint8_t persistent; /* made by unetmap_region_create: stays without ports */
	uint8_t pad;
	uint32_t ports;     /* ports that use it */
	int32_t error;      /* 0, or why its file cannot be read (an errno value: EACCES,
	                     * EPROTO...); then only mem_id, uid, gid and mode are set */
	struct unetmap_region_sizes sizes;
	uint64_t memsize;   /* bytes an application maps */
	uint32_t bufs_in_use;
	uint32_t uid, gid, mode; /* of its file: who may attach */
};
/* Every region file of the runtime directory, readable or not (see error). */
int unetmap_regions(struct unetmap_region_info *out, int max);
/* Make region mem_id (1..65535) with these sizes (a 0 field: from the
 * UNETMAP_* knobs or the defaults; NULL: all of them), persistent until
 * unetmap_region_delete. An existing region with the same sizes is fine;
 * with others, EEXIST. */
int unetmap_region_create(uint16_t mem_id, const struct unetmap_region_sizes *sizes);
/* Delete it: EBUSY while a port uses it, ENOENT if there is none. */
int unetmap_region_delete(uint16_t mem_id);

/* Workers: the supervised helper processes of attached NICs and vhost-user
 * ports (vale-ctl -W). */
#define UNETMAP_WORKER_MAX_ARGS 8
struct unetmap_worker_info {
	char name[64];
	char kind[16];     /* "attach", "vhost", "program" */
	char state[16];    /* "starting", "running", "restarting", "failed", "stopping" */
	uint8_t supervised;/* its supervisor lives */
	uint8_t pad[3];
	int32_t supervisor;/* its supervisor's pid, 0 if none lives */
	int32_t pid;       /* the worker process now, 0 if none */
	uint32_t restarts;
	int32_t exit_status, exit_signal; /* how its last process ended: -1 and 0 if none did */
	uint64_t since;    /* wall-clock seconds of the last change of state */
	uint32_t nargs;    /* its kind's arguments (attach: switch, port, NIC, "host" or "nic";
	                    * vhost: switch, port, socket, "server" or "client", queues, slots),
	                    * all of them: args holds the first UNETMAP_WORKER_MAX_ARGS, each
	                    * cut at 255 bytes (a program worker's may be longer) */
	char args[UNETMAP_WORKER_MAX_ARGS][256];
	char reason[512];  /* failed, restarting: why */
	char log[4096];    /* its log file */
	char status[512];  /* what the worker last reported of itself */
};
/* One worker by name: 0, or -1 with errno (ENOENT: none). */
int unetmap_worker_get(const char *name, struct unetmap_worker_info *out);
int unetmap_workers(struct unetmap_worker_info *out, int max);

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
/*
 * The same from vale-ctl's words: "valeX:NAME,vhost=PATH[,client][,queues=N][,slots=N]"
 * (slots: of the port's rings, 64 to 32768). -1 with ENOENT if spec has no
 * ",vhost=" (it asks for no vhost-user port), EINVAL if it is malformed.
 * With UNETMAP_VHOST_CHECK in flags it only checks spec and attaches nothing.
 */
#define UNETMAP_VHOST_CHECK 0x2
int unetmap_vhost_attach_spec(const char *spec, unsigned flags);

/* Hardware rings per direction a port may have. */
#define UNETMAP_MAX_RINGS 64

#ifdef __cplusplus
}
#endif

#endif /* UNETMAP_UNETMAP_H */
