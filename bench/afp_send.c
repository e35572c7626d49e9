// afp_send - AF_PACKET sender for bench/vale.sh (the Linux bridge peer).
//
//   afp_send -i IFACE -n COUNT [-l LEN] [-b BATCH] [-a CPU] [-S MAC] [-D MAC]
//
// Sends COUNT Ethernet/IPv4/UDP frames of LEN bytes (without FCS, default 60)
// on IFACE with sendmmsg(2), BATCH frames per call (default 256), on a raw
// AF_PACKET socket with PACKET_QDISC_BYPASS (straight to the driver, as a
// netmap sender is). Prints "afp_send: IFACE: ready" on stderr once the socket
// is bound and, at the end (or on SIGINT/SIGTERM), a line in pkt-gen's format:
//   summary: func=tx packets=N bytes=B seconds=S mpps=X
// "packets" counts frames the kernel accepted; a veth may still drop them
// further on (the receiver's count tells).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void usage(void) {
    fprintf(stderr, "usage: afp_send -i IFACE -n COUNT [-l LEN] [-b BATCH] [-a CPU] [-S MAC] [-D MAC]\n");
    exit(2);
}

static void parse_mac(const char* s, unsigned char* out) {
    unsigned v[6];
    char extra;
    if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &extra) != 6) {
        fprintf(stderr, "afp_send: bad MAC '%s'\n", s);
        exit(2);
    }
    for (int i = 0; i < 6; i++) out[i] = (unsigned char)v[i];
}

static uint16_t ip_checksum(const unsigned char* p, size_t n) {
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

int main(int argc, char** argv) {
    const char* ifname = NULL;
    long long count = 0;
    int len = 60, batch = 256, cpu = -1, c;
    unsigned char src[6] = {0, 0, 0, 0, 0, 1}, dst[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    while ((c = getopt(argc, argv, "i:n:l:b:a:S:D:h")) != -1) {
        switch (c) {
        case 'i': ifname = optarg; break;
        case 'n': count = atoll(optarg); break;
        case 'l': len = atoi(optarg); break;
        case 'b': batch = atoi(optarg); break;
        case 'a': cpu = atoi(optarg); break;
        case 'S': parse_mac(optarg, src); break;
        case 'D': parse_mac(optarg, dst); break;
        default: usage();
        }
    }
    if (!ifname || count <= 0 || len < 42 || len > 1514 || batch < 1 || batch > 1024) usage();

    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set)) perror("afp_send: sched_setaffinity");
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int fd = socket(AF_PACKET, SOCK_RAW, 0);  // protocol 0: this socket receives nothing
    if (fd < 0) { perror("afp_send: socket"); return 1; }
    int one = 1;
    if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one))
        perror("afp_send: PACKET_QDISC_BYPASS");
    int sndbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_ifindex = (int)if_nametoindex(ifname);
    if (!sll.sll_ifindex) { fprintf(stderr, "afp_send: no interface %s\n", ifname); return 1; }
    if (bind(fd, (struct sockaddr*)&sll, sizeof sll)) { perror("afp_send: bind"); return 1; }

    // Ethernet + IPv4 + UDP 10.0.0.1:1234 -> 10.1.0.1:4321, zero payload.
    static unsigned char frame[1514];
    memcpy(frame, dst, 6);
    memcpy(frame + 6, src, 6);
    frame[12] = 0x08, frame[13] = 0x00;
    unsigned char* ip = frame + 14;
    int iplen = len - 14;
    ip[0] = 0x45, ip[2] = (unsigned char)(iplen >> 8), ip[3] = (unsigned char)iplen;
    ip[8] = 64, ip[9] = 17;
    ip[12] = 10, ip[13] = 0, ip[14] = 0, ip[15] = 1;
    ip[16] = 10, ip[17] = 1, ip[18] = 0, ip[19] = 1;
    uint16_t ck = ip_checksum(ip, 20);
    ip[10] = (unsigned char)(ck >> 8), ip[11] = (unsigned char)ck;
    unsigned char* udp = ip + 20;
    int udplen = iplen - 20;
    udp[0] = 1234 >> 8, udp[1] = 1234 & 0xff, udp[2] = 4321 >> 8, udp[3] = 4321 & 0xff;
    udp[4] = (unsigned char)(udplen >> 8), udp[5] = (unsigned char)udplen;

    struct mmsghdr* msgs = calloc((size_t)batch, sizeof *msgs);
    struct iovec* iov = calloc((size_t)batch, sizeof *iov);
    if (!msgs || !iov) { perror("afp_send: calloc"); return 1; }
    for (int i = 0; i < batch; i++) {
        iov[i].iov_base = frame;
        iov[i].iov_len = (size_t)len;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    fprintf(stderr, "afp_send: %s: ready (%d-byte frames, batch %d)\n", ifname, len, batch);
    long long sent = 0, errors = 0;
    double t0 = now(), stalled_since = 0;  // 0: not stalled
    while (!stop && sent < count) {
        unsigned n = (unsigned)(count - sent < batch ? count - sent : batch);
        int r = sendmmsg(fd, msgs, n, 0);
        if (r > 0) {
            sent += r;
            stalled_since = 0;
        } else {
            if (r < 0 && errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
                perror("afp_send: sendmmsg");
                return 1;
            }
            errors++;
            double t = now();
            if (stalled_since == 0) stalled_since = t;
            else if (t - stalled_since > 5) {
                fprintf(stderr, "afp_send: no progress for 5 s (%s)\n", strerror(errno));
                break;
            }
            sched_yield();
        }
    }
    double secs = now() - t0;
    printf("Sent %lld packets of %d bytes in %.3f seconds (%lld failed sendmmsg calls).\n", sent, len,
           secs, errors);
    printf("summary: func=tx packets=%lld bytes=%lld seconds=%.3f mpps=%.3f\n", sent, sent * len, secs,
           secs > 0 ? (double)sent / secs / 1e6 : 0.0);
    return sent == count || stop ? 0 : 1;
}
