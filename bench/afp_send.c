// afp_send - AF_PACKET sender for bench/vale.sh (the Linux bridge peer).
//
//   afp_send -i IFACE -n COUNT [-l LEN] [-b BATCH] [-a CPU] [-S MAC] [-D MAC] [-P]
//
// Sends COUNT Ethernet/IPv4/UDP frames of LEN bytes (without FCS, default 60)
// on IFACE with sendmmsg(2), BATCH frames per call (default 256; with -P
// each frame of a batch has a source port of its own, 1024 + its place:
// BATCH flows), on a raw
// AF_PACKET socket with PACKET_QDISC_BYPASS (straight to the driver, as a
// netmap sender is). Prints "afp_send: IFACE: ready" on stderr once the socket
// is bound and, at the end (or on SIGINT/SIGTERM), a line in pkt-gen's format:
//   summary: func=tx packets=N bytes=B seconds=S mpps=X
// "packets" counts frames the kernel accepted; a veth may still drop them
// further on (the receiver's count tells).
#define _GNU_SOURCE
#define PROG "afp_send"
#include "afp_common.h"

#include <errno.h>
#include <net/ethernet.h>

static void usage(void) {
    fprintf(stderr, "usage: afp_send -i IFACE -n COUNT [-l LEN] [-b BATCH] [-a CPU] [-S MAC] [-D MAC] [-P]\n");
    exit(2);
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
    int len = 60, batch = 256, cpu = -1, flows = 0, c;
    unsigned char src[6] = {0, 0, 0, 0, 0, 1}, dst[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    while ((c = getopt(argc, argv, "i:n:l:b:a:S:D:Ph")) != -1) {
        switch (c) {
        case 'i': ifname = optarg; break;
        case 'n': count = atoll(optarg); break;
        case 'l': len = atoi(optarg); break;
        case 'b': batch = atoi(optarg); break;
        case 'a': cpu = atoi(optarg); break;
        case 'P': flows = 1; break;
        case 'S':
        case 'D':
            if (parse_mac(optarg, c == 'S' ? src : dst)) {
                fprintf(stderr, "afp_send: bad MAC '%s'\n", optarg);
                exit(2);
            }
            break;
        default: usage();
        }
    }
    if (!ifname || count <= 0 || len < 42 || len > 1514 || batch < 1 || batch > 1024) usage();

    pin_cpu(cpu);
    catch_stop_signals();

    int fd = packet_socket();  // bound with protocol 0 too: this socket receives nothing
    if (fd < 0) return 1;
    int one = 1;
    if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one))
        perror("afp_send: PACKET_QDISC_BYPASS");
    int sndbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    if (bind_iface(fd, ifname, 0)) return 1;

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
    unsigned char* own = flows ? malloc((size_t)batch * 1514) : NULL;
    for (int i = 0; i < batch; i++) {
        iov[i].iov_base = frame;
        if (own) {  // a flow per place in the batch
            unsigned char* f = own + (size_t)i * 1514;
            memcpy(f, frame, (size_t)len);
            f[34] = (unsigned char)((1024 + i) >> 8), f[35] = (unsigned char)(1024 + i);
            iov[i].iov_base = f;
        }
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
