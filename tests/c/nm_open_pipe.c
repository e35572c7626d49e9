/*
 * The classic netmap descriptor API from C: nm_open, nm_inject, poll,
 * nm_nextpkt, nm_dispatch, nm_close (netmap_user.h with NETMAP_WITH_LIBS).
 *
 * usage: nm_open_pipe [COUNT]
 * A child opens "netmap:q}0" and receives COUNT packets: the first half
 * with nm_nextpkt, the rest with nm_dispatch (these include 3000-byte
 * packets that nm_inject splits over two slots with NS_MOREFRAG). The
 * parent opens "netmap:q{0" and sends them with nm_inject. Every byte is
 * checked. Exit status 0 when all is well; a message says what failed.
 */
#define NETMAP_WITH_LIBS
#include <errno.h>
#include <net/netmap_user.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define BIG 3000

static unsigned count;

static unsigned pkt_len(unsigned i)
{
	if (i >= count / 2 && i % 50 == 49)
		return BIG;
	return 60 + (i * 7919u) % 1455u;
}

static unsigned char pkt_byte(unsigned i, unsigned k)
{
	return (unsigned char)(i * 31u + k * 7u);
}

static void fill(unsigned char *p, unsigned i, unsigned len)
{
	unsigned k;
	memcpy(p, &i, 4);
	for (k = 4; k < len; k++)
		p[k] = pkt_byte(i, k);
}

/* 0 if the first n bytes of packet i are right. */
static int check(const unsigned char *p, unsigned i, unsigned n)
{
	unsigned k, seq;
	memcpy(&seq, p, 4);
	if (seq != i) {
		fprintf(stderr, "receiver: got packet %u, want %u\n", seq, i);
		return -1;
	}
	for (k = 4; k < n; k++)
		if (p[k] != pkt_byte(i, k)) {
			fprintf(stderr, "receiver: packet %u byte %u differs\n", i, k);
			return -1;
		}
	return 0;
}

struct rx_state {
	unsigned next;
	int bad;
};

static void on_packet(unsigned char *arg, const struct nm_pkthdr *h, const unsigned char *buf)
{
	struct rx_state *st = (struct rx_state *)arg;
	unsigned want = pkt_len(st->next);
	if (h->len != want) {
		fprintf(stderr, "nm_dispatch: packet %u has len %u, want %u\n", st->next, h->len, want);
		st->bad = 1;
	} else if (h->caplen == 0 || h->caplen > h->len ||
		   check(buf, st->next, h->caplen) != 0) {
		fprintf(stderr, "nm_dispatch: packet %u (caplen %u) is wrong\n", st->next, h->caplen);
		st->bad = 1;
	} else if (h->d == NULL || h->slot == NULL) {
		fprintf(stderr, "nm_dispatch: header lacks d/slot\n");
		st->bad = 1;
	}
	st->next++;
}

static int receiver(int ready_fd)
{
	struct nm_desc *d = nm_open("netmap:q}0", NULL, 0, NULL);
	struct nm_pkthdr h;
	struct rx_state st = {0, 0};
	if (d == NULL) {
		fprintf(stderr, "receiver: nm_open: %s\n", strerror(errno));
		return 2;
	}
	if (!IS_NETMAP_DESC(d) || d->nifp == NULL || d->first_rx_ring != 0 || d->last_rx_ring != 0 ||
	    strcmp(d->req.nr_name, "q}0") != 0) {
		fprintf(stderr, "receiver: descriptor fields wrong (name '%s')\n", d->req.nr_name);
		return 2;
	}
	if (write(ready_fd, "r", 1) != 1)
		return 2;
	while (st.next < count / 2) {
		struct pollfd p = {.fd = NETMAP_FD(d), .events = POLLIN};
		unsigned char *buf;
		if (poll(&p, 1, 5000) <= 0) {
			fprintf(stderr, "receiver: poll timed out at packet %u\n", st.next);
			return 3;
		}
		while (st.next < count / 2 && (buf = nm_nextpkt(d, &h)) != NULL) {
			if (h.len != pkt_len(st.next) || check(buf, st.next, h.len) != 0) {
				fprintf(stderr, "nm_nextpkt: packet %u wrong (len %u)\n", st.next, h.len);
				return 4;
			}
			st.next++;
		}
	}
	while (st.next < count) {
		struct pollfd p = {.fd = NETMAP_FD(d), .events = POLLIN};
		if (poll(&p, 1, 5000) <= 0) {
			fprintf(stderr, "receiver: poll timed out at packet %u\n", st.next);
			return 3;
		}
		nm_dispatch(d, 0, on_packet, (unsigned char *)&st);
		if (st.bad)
			return 4;
	}
	ioctl(NETMAP_FD(d), NIOCRXSYNC, NULL);
	if (nm_close(d) != 0)
		return 5;
	printf("receiver: %u packets intact\n", st.next);
	fflush(stdout);
	return 0;
}

static int sender(void)
{
	static unsigned char pkt[BIG];
	struct nm_desc *d = nm_open("netmap:q{0", NULL, 0, NULL);
	struct nm_desc *d2;
	unsigned i = 0;
	if (d == NULL) {
		fprintf(stderr, "sender: nm_open: %s\n", strerror(errno));
		return 2;
	}
	/* A second port in the same region shares the first one's mapping. */
	d2 = nm_open("netmap:q2{0", NULL, NM_OPEN_NO_MMAP, d);
	if (d2 == NULL || d2->mem != d->mem || d2->done_mmap) {
		fprintf(stderr, "sender: NM_OPEN_NO_MMAP did not share the mapping\n");
		return 2;
	}
	nm_close(d2);
	while (i < count) {
		struct pollfd p = {.fd = NETMAP_FD(d), .events = POLLOUT};
		if (poll(&p, 1, 5000) <= 0) {
			fprintf(stderr, "sender: poll timed out at packet %u\n", i);
			return 3;
		}
		for (; i < count; i++) {
			fill(pkt, i, pkt_len(i));
			if (nm_inject(d, pkt, pkt_len(i)) == 0)
				break;
		}
		if (ioctl(NETMAP_FD(d), NIOCTXSYNC, NULL) < 0) {
			perror("sender: NIOCTXSYNC");
			return 5;
		}
	}
	/* Packets still in flight stay: the receiver holds the pipe too. */
	return nm_close(d) == 0 ? 0 : 5;
}

int main(int argc, char **argv)
{
	int fds[2], status = 0, rc;
	char c;
	pid_t child;
	count = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : 3000;
	if (count < 100) {
		fprintf(stderr, "COUNT must be at least 100\n");
		return 1;
	}
	if (nm_close(NULL) != EINVAL) {
		fprintf(stderr, "nm_close(NULL) did not fail with EINVAL\n");
		return 1;
	}
	if (pipe(fds) != 0)
		return 1;
	child = fork();
	if (child == 0) {
		alarm(30);
		_exit(receiver(fds[1]));
	}
	alarm(30);
	{
		struct pollfd p = {.fd = fds[0], .events = POLLIN};
		if (poll(&p, 1, 10000) != 1 || read(fds[0], &c, 1) != 1) {
			fprintf(stderr, "receiver did not start\n");
			kill(child, SIGKILL);
			return 2;
		}
	}
	rc = sender();
	if (waitpid(child, &status, 0) != child)
		return 10;
	if (rc)
		return rc;
	if (!WIFEXITED(status)) {
		fprintf(stderr, "receiver killed by signal %d\n", WTERMSIG(status));
		return 10;
	}
	return WEXITSTATUS(status);
}
