/*
 * Built against an installed unetmap with pkg-config alone
 * (tests/scripts/install_test.sh): libnetmap's nmport API over a pipe,
 * every byte checked, then the pipe's counters read with unetmap's C API.
 * usage: pipe_c NAME COUNT
 */
#include <libnetmap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unetmap/unetmap.h>

static unsigned char frame_byte(unsigned i, unsigned k) { return (unsigned char)(i * 31 + k * 7 + 1); }

int main(int argc, char **argv) {
	if (argc != 3) {
		fprintf(stderr, "usage: pipe_c NAME COUNT\n");
		return 2;
	}
	const unsigned count = (unsigned)atoi(argv[2]);
	char tx_name[64], rx_name[64], stat_name[64];
	snprintf(tx_name, sizeof tx_name, "netmap:%s{0", argv[1]);
	snprintf(rx_name, sizeof rx_name, "netmap:%s}0", argv[1]);
	snprintf(stat_name, sizeof stat_name, "%s}0", argv[1]);
	struct nmport_d *tx = nmport_open(tx_name), *rx = nmport_open(rx_name);
	if (!tx || !rx) {
		fprintf(stderr, "pipe_c: cannot open the pipe: %s\n", unetmap_last_error());
		return 1;
	}
	unsigned sent = 0, got = 0;
	while (got < count) {
		struct netmap_ring *t = NETMAP_TXRING(tx->nifp, 0), *r = NETMAP_RXRING(rx->nifp, 0);
		for (; sent < count && !nm_ring_empty(t); sent++) {
			struct netmap_slot *s = &t->slot[t->cur];
			unsigned char *b = (unsigned char *)NETMAP_BUF(t, s->buf_idx);
			s->len = (uint16_t)(60 + sent % 900);
			for (unsigned k = 0; k < s->len; k++) b[k] = frame_byte(sent, k);
			t->head = t->cur = nm_ring_next(t, t->cur);
		}
		ioctl(tx->fd, NIOCTXSYNC, NULL);
		ioctl(rx->fd, NIOCRXSYNC, NULL);
		if (nm_ring_empty(r) && sent == count) {
			fprintf(stderr, "pipe_c: %u of %u frames arrived\n", got, count);
			return 1;
		}
		for (; !nm_ring_empty(r); got++) {
			struct netmap_slot *s = &r->slot[r->cur];
			const unsigned char *b = (const unsigned char *)NETMAP_BUF(r, s->buf_idx);
			if (s->len != 60 + got % 900) {
				fprintf(stderr, "pipe_c: frame %u has %u bytes\n", got, s->len);
				return 1;
			}
			for (unsigned k = 0; k < s->len; k++)
				if (b[k] != frame_byte(got, k)) {
					fprintf(stderr, "pipe_c: frame %u differs at byte %u\n", got, k);
					return 1;
				}
			r->head = r->cur = nm_ring_next(r, r->cur);
		}
		ioctl(rx->fd, NIOCRXSYNC, NULL);
	}
	struct unetmap_port_stats st;
	if (unetmap_port_counters(stat_name, &st) != 0) {
		fprintf(stderr, "pipe_c: unetmap_port_counters(%s): %s\n", stat_name, unetmap_last_error());
		return 1;
	}
	if (st.rx_packets != count) {
		fprintf(stderr, "pipe_c: %s counted %llu frames received, not %u\n", stat_name,
		        (unsigned long long)st.rx_packets, count);
		return 1;
	}
	nmport_close(tx);
	nmport_close(rx);
	printf("pipe_c: %u frames checked, %llu counted\n", count, (unsigned long long)st.rx_packets);
	return 0;
}
