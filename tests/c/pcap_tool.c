/*
 * A libpcap program of the pcap tests, run through unetmap-run with the
 * system's libpcap headers and soname (the libpcap it gets at run time is
 * unetmap's, with the netmap module):
 *   pcap_tool inject DEV COUNT   pcap_open_live, then COUNT pcap_inject
 *                                (udp_frame seq 0..COUNT-1), print "sent
 *                                COUNT", wait for a line on stdin, pcap_close
 *   pcap_tool stats DEV          pcap_create + activate, print "ready",
 *                                wait for a line on stdin, read what is
 *                                there (pcap_dispatch, nonblocking), then
 *                                print "got G recv R drop D" (pcap_stats)
 *   pcap_tool loop DEV COUNT     pcap_open_live, pcap_loop COUNT with a
 *                                "udp dst port 1000" filter; every frame's
 *                                sequence number must be even and rising;
 *                                print "got G"
 * Exit 0 on success, 1 with a message on stderr otherwise.
 */
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/udp_frame.h"

static int fail(const char *what, const char *why)
{
	fprintf(stderr, "pcap_tool: %s: %s\n", what, why);
	return 1;
}

static int inject(const char *dev, long count)
{
	char err[PCAP_ERRBUF_SIZE] = "";
	pcap_t *p = pcap_open_live(dev, 2048, 1, 100, err);
	if (!p)
		return fail("pcap_open_live", err);
	for (long i = 0; i < count; i++) {
		uint8_t f[UDP_FRAME_LEN];
		udp_frame(f, (uint32_t)i);
		if (pcap_inject(p, f, sizeof f) != (int)sizeof f)
			return fail("pcap_inject", pcap_geterr(p));
	}
	printf("sent %ld\n", count);
	fflush(stdout);
	char line[64];
	if (!fgets(line, sizeof line, stdin))
		return fail("stdin", "closed before the close line");
	pcap_close(p);
	return 0;
}

static long got;
static void count_one(u_char *u, const struct pcap_pkthdr *h, const u_char *b)
{
	(void)u, (void)h, (void)b;
	got++;
}

static int stats(const char *dev)
{
	char err[PCAP_ERRBUF_SIZE] = "", line[64];
	pcap_t *p = pcap_create(dev, err);
	if (!p)
		return fail("pcap_create", err);
	if (pcap_activate(p) < 0)
		return fail("pcap_activate", pcap_geterr(p));
	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin))
		return fail("stdin", "closed before the go line");
	if (pcap_setnonblock(p, 1, err) != 0)
		return fail("pcap_setnonblock", err);
	int n;
	while ((n = pcap_dispatch(p, -1, count_one, NULL)) > 0)
		;
	if (n < 0)
		return fail("pcap_dispatch", pcap_geterr(p));
	struct pcap_stat st;
	if (pcap_stats(p, &st) != 0)
		return fail("pcap_stats", pcap_geterr(p));
	printf("got %ld recv %u drop %u\n", got, st.ps_recv, st.ps_drop);
	pcap_close(p);
	return 0;
}

static long next_seq;
static int bad;
static void check_one(u_char *u, const struct pcap_pkthdr *h, const u_char *b)
{
	(void)u;
	int64_t seq = udp_frame_seq(b, h->caplen);
	if (seq < 0 || seq % 2 != 0 || seq < next_seq)
		bad++;
	next_seq = seq + 1;
	got++;
}

static int loop(const char *dev, long count)
{
	char err[PCAP_ERRBUF_SIZE] = "";
	struct bpf_program prog;
	pcap_t *p = pcap_open_live(dev, 2048, 1, 100, err);
	if (!p)
		return fail("pcap_open_live", err);
	if (pcap_compile(p, &prog, "udp dst port 1000", 1, PCAP_NETMASK_UNKNOWN) != 0 ||
	    pcap_setfilter(p, &prog) != 0)
		return fail("filter", pcap_geterr(p));
	printf("ready\n");
	fflush(stdout);
	if (pcap_loop(p, (int)count, check_one, NULL) != 0)
		return fail("pcap_loop", pcap_geterr(p));
	printf("got %ld\n", got);
	pcap_close(p);
	return bad ? fail("frames", "a frame the filter should have dropped, or out of order") : 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "inject"))
		return inject(argv[2], atol(argv[3]));
	if (argc == 3 && !strcmp(argv[1], "stats"))
		return stats(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "loop"))
		return loop(argv[2], atol(argv[3]));
	fprintf(stderr, "usage: pcap_tool inject DEV COUNT | stats DEV | loop DEV COUNT\n");
	return 2;
}
