/*
 * A small program written only against unetmap's public headers, compiled
 * at test time by the system compiler as C and as C++ with -Wall -Wextra
 * -Werror (tests/compile_headers.cmake), linked with -lnetmap and run.
 *
 * It uses the helpers of each header: libnetmap's nmport_open /
 * nmport_inject / nmport_close, netmap_user.h's ring macros and inline
 * functions, NETMAP_WITH_LIBS's nm_open / nm_nextpkt / nm_close, and the
 * raw NIOCCTRL request with netmap.h's structs. Exit status 0 if the 200
 * packets it sends through a pipe arrive intact.
 */
#define NETMAP_WITH_LIBS
#include <errno.h>
#include <fcntl.h>
#include <libnetmap.h>
#include <net/netmap.h>
#include <net/netmap_legacy.h>
#include <net/netmap_user.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define N 200

static int fail(const char *what)
{
	fprintf(stderr, "header_user: %s (errno %d: %s)\n", what, errno, strerror(errno));
	return 1;
}

int main(void)
{
	unsigned char pkt[256];
	struct nmport_d *tx = nmport_open("netmap:hu{0@conf:slots=256");
	struct nm_desc *rx;
	struct nm_pkthdr h;
	struct nmreq_header hdr;
	struct nmreq_port_info_get info;
	unsigned i, got = 0;
	int fd;

	if (tx == NULL)
		return fail("nmport_open");
	rx = nm_open("netmap:hu}0", NULL, 0, NULL);
	if (rx == NULL)
		return fail("nm_open");

	/* The raw control path: port info of the pipe end just made. */
	fd = open("/dev/netmap", O_RDWR);
	if (fd < 0)
		return fail("open /dev/netmap");
	memset(&hdr, 0, sizeof(hdr));
	memset(&info, 0, sizeof(info));
	hdr.nr_version = NETMAP_API;
	hdr.nr_reqtype = NETMAP_REQ_PORT_INFO_GET;
	strncpy(hdr.nr_name, "hu}0", sizeof(hdr.nr_name) - 1);
	hdr.nr_body = (uint64_t)(uintptr_t)&info;
	if (ioctl(fd, NIOCCTRL, &hdr) < 0)
		return fail("NIOCCTRL PORT_INFO_GET");
	if (info.nr_rx_slots != 256 || info.nr_rx_rings != 1)
		return fail("PORT_INFO_GET reports the wrong geometry");
	close(fd);

	{
		struct netmap_ring *ring = NETMAP_TXRING(tx->nifp, 0);
		if (nm_ring_space(ring) != 255 || nm_tx_pending(ring))
			return fail("a fresh 256-slot tx ring must have 255 free slots");
		if (NETMAP_BUF_IDX(ring, NETMAP_BUF(ring, 7)) != 7)
			return fail("NETMAP_BUF_IDX does not invert NETMAP_BUF");
		if (NETMAP_ROFFSET(ring, &ring->slot[0]) != 0)
			return fail("offsets are off by default");
	}

	for (i = 0; i < N; i++) {
		memset(pkt, (int)i, sizeof(pkt));
		memcpy(pkt, &i, sizeof(i));
		if (nmport_inject(tx, pkt, 60 + i % 190) == 0)
			return fail("nmport_inject: ring full");
		if (i % 50 == 49 && ioctl(tx->fd, NIOCTXSYNC, NULL) < 0)
			return fail("NIOCTXSYNC");
	}
	if (ioctl(tx->fd, NIOCTXSYNC, NULL) < 0)
		return fail("NIOCTXSYNC");

	while (got < N) {
		struct pollfd p;
		unsigned char *buf;
		p.fd = NETMAP_FD(rx);
		p.events = POLLIN;
		p.revents = 0;
		if (poll(&p, 1, 5000) != 1)
			return fail("poll on the receiver timed out");
		while ((buf = nm_nextpkt(rx, &h)) != NULL) {
			unsigned seq;
			memcpy(&seq, buf, sizeof(seq));
			if (seq != got || h.len != 60 + got % 190 || buf[h.len - 1] != (unsigned char)got)
				return fail("packet differs");
			got++;
		}
	}
	nm_close(rx);
	nmport_close(tx);
	printf("header_user: %u packets intact\n", got);
	return 0;
}
