/*
 * A netmap application written only against netmap's kernel interface:
 * open("/dev/netmap"), ioctl(NIOCCTRL/NIOCTXSYNC/NIOCRXSYNC), mmap, poll.
 * It has no unetmap code in it: the tests build it without -lnetmap and run
 * it with LD_PRELOAD, and build it again linked with -lnetmap.
 *
 * usage: plain_pipe PIPENAME COUNT SEED
 * The parent sends COUNT packets of pseudo-random length (60..1514 bytes)
 * on the master end "PIPENAME{0"; a child process receives them on
 * "PIPENAME}0" and checks every byte. Exit status 0 if all arrived intact.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/netmap.h>
#include <net/netmap_user.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

struct port {
	int fd;
	void *mem;
	struct netmap_if *nifp;
};

static int open_port(struct port *p, const char *name)
{
	struct nmreq_header hdr;
	struct nmreq_register reg;

	p->fd = open("/dev/netmap", O_RDWR);
	if (p->fd < 0) {
		perror("open /dev/netmap");
		return -1;
	}
	memset(&hdr, 0, sizeof(hdr));
	memset(&reg, 0, sizeof(reg));
	hdr.nr_version = NETMAP_API;
	hdr.nr_reqtype = NETMAP_REQ_REGISTER;
	snprintf(hdr.nr_name, sizeof(hdr.nr_name), "%s", name);
	hdr.nr_body = (uintptr_t)&reg;
	reg.nr_mode = NR_REG_ALL_NIC;
	if (ioctl(p->fd, NIOCCTRL, &hdr) < 0) {
		perror("NIOCCTRL register");
		return -1;
	}
	p->mem = mmap(NULL, reg.nr_memsize, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
	if (p->mem == MAP_FAILED) {
		perror("mmap");
		return -1;
	}
	p->nifp = NETMAP_IF(p->mem, reg.nr_offset);
	return 0;
}

static uint32_t next_rand(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

static uint16_t pkt_len(uint32_t seed, uint32_t i)
{
	uint32_t s = seed ^ (i * 2654435761u);
	return (uint16_t)(60 + next_rand(&s) % (1514 - 60 + 1));
}

static void fill(unsigned char *buf, uint16_t len, uint32_t seed, uint32_t i)
{
	uint32_t s = seed + i;
	memcpy(buf, &i, 4);
	for (uint16_t k = 4; k < len; k++)
		buf[k] = (unsigned char)next_rand(&s);
}

static int receiver(const char *name, uint32_t count, uint32_t seed)
{
	struct port p;
	unsigned char want[2048];
	uint32_t got = 0;

	if (open_port(&p, name) < 0)
		return 2;
	struct netmap_ring *ring = NETMAP_RXRING(p.nifp, 0);
	while (got < count) {
		struct pollfd pfd = {.fd = p.fd, .events = POLLIN};
		int r = poll(&pfd, 1, 5000);
		if (r <= 0) {
			fprintf(stderr, "receiver: poll %s after %u packets\n",
				r == 0 ? "timed out" : strerror(errno), got);
			return 3;
		}
		while (!nm_ring_empty(ring)) {
			struct netmap_slot *slot = &ring->slot[ring->cur];
			unsigned char *buf = (unsigned char *)NETMAP_BUF(ring, slot->buf_idx);
			uint16_t len = pkt_len(seed, got);
			fill(want, len, seed, got);
			if (slot->len != len || memcmp(buf, want, len) != 0) {
				fprintf(stderr, "receiver: packet %u differs (len %u, want %u)\n",
					got, slot->len, len);
				return 4;
			}
			got++;
			ring->head = ring->cur = nm_ring_next(ring, ring->cur);
		}
	}
	printf("receiver: %u packets intact\n", got);
	fflush(stdout);
	return 0;
}

static int sender(const char *name, uint32_t count, uint32_t seed)
{
	struct port p;
	uint32_t sent = 0;

	if (open_port(&p, name) < 0)
		return 2;
	struct netmap_ring *ring = NETMAP_TXRING(p.nifp, 0);
	while (sent < count) {
		struct pollfd pfd = {.fd = p.fd, .events = POLLOUT};
		if (poll(&pfd, 1, 5000) <= 0) {
			fprintf(stderr, "sender: poll timed out after %u packets\n", sent);
			return 3;
		}
		while (nm_ring_space(ring) > 0 && sent < count) {
			struct netmap_slot *slot = &ring->slot[ring->cur];
			uint16_t len = pkt_len(seed, sent);
			fill((unsigned char *)NETMAP_BUF(ring, slot->buf_idx), len, seed, sent);
			slot->len = len;
			sent++;
			ring->head = ring->cur = nm_ring_next(ring, ring->cur);
		}
		if (ioctl(p.fd, NIOCTXSYNC, NULL) < 0) {
			perror("NIOCTXSYNC");
			return 5;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	char master[64], slave[64];

	if (argc != 4) {
		fprintf(stderr, "usage: %s PIPENAME COUNT SEED\n", argv[0]);
		return 1;
	}
	uint32_t count = (uint32_t)strtoul(argv[2], NULL, 0);
	uint32_t seed = (uint32_t)strtoul(argv[3], NULL, 0);
	snprintf(master, sizeof(master), "%s{0", argv[1]);
	snprintf(slave, sizeof(slave), "%s}0", argv[1]);

	pid_t child = fork();
	if (child == 0)
		_exit(receiver(slave, count, seed));
	int rc = sender(master, count, seed);
	int status;
	waitpid(child, &status, 0);
	if (rc)
		return rc;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 10;
}
