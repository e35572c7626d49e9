// afp_recv - AF_PACKET TPACKET_V3 receiver for bench/vale.sh (the Linux bridge peer).
//
//   afp_recv -i IFACE [-a CPU] [-D MAC] [-F GROUP] [-W]
//
// -F joins fanout group GROUP with PACKET_FANOUT_HASH (and defrag): the
// kernel spreads IFACE's frames over the group's sockets by flow, as
// Suricata's AF_PACKET cluster_flow does (bench/lb.sh's peer).
// Receives every frame arriving on IFACE through a memory-mapped TPACKET_V3
// ring (64 blocks of 1 MiB) and counts them; with -D only frames sent to MAC
// are counted (others are reported apart). Prints "afp_recv: IFACE: ready" on
// stderr once the socket is bound. Stops on SIGINT/SIGTERM or, with -W, one
// second after the last frame (once one arrived), then prints a line in
// pkt-gen's format, the period being first to last frame received:
//   summary: func=rx packets=N bytes=B seconds=S mpps=X
#define _GNU_SOURCE
#define PROG "afp_recv"
#include "afp_common.h"

#include <linux/if_ether.h>
#include <poll.h>
#include <sys/mman.h>

static void usage(void) {
    fprintf(stderr, "usage: afp_recv -i IFACE [-a CPU] [-D MAC] [-F GROUP] [-W]\n");
    exit(2);
}

int main(int argc, char** argv) {
    const char* ifname = NULL;
    int cpu = -1, exit_idle = 0, filter = 0, fanout = -1, c;
    unsigned char want[6] = {0};
    while ((c = getopt(argc, argv, "i:a:D:F:Wh")) != -1) {
        switch (c) {
        case 'i': ifname = optarg; break;
        case 'a': cpu = atoi(optarg); break;
        case 'D':
            if (parse_mac(optarg, want)) usage();
            filter = 1;
            break;
        case 'F': fanout = atoi(optarg) & 0xffff; break;
        case 'W': exit_idle = 1; break;
        default: usage();
        }
    }
    if (!ifname) usage();

    pin_cpu(cpu);
    catch_stop_signals();

    // Protocol 0 until bind: no frames from other interfaces in the meantime.
    int fd = packet_socket();
    if (fd < 0) return 1;
    int v = TPACKET_V3;
    if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v)) { perror("afp_recv: PACKET_VERSION"); return 1; }
    struct tpacket_req3 req;
    memset(&req, 0, sizeof req);
    req.tp_block_size = 1 << 20;
    req.tp_block_nr = 64;
    req.tp_frame_size = 2048;
    req.tp_frame_nr = req.tp_block_size / req.tp_frame_size * req.tp_block_nr;
    req.tp_retire_blk_tov = 10;  // ms: a partly filled block is handed over after this
    if (setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req)) { perror("afp_recv: PACKET_RX_RING"); return 1; }
    size_t map_len = (size_t)req.tp_block_size * req.tp_block_nr;
    unsigned char* map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (map == MAP_FAILED) { perror("afp_recv: mmap"); return 1; }
    if (bind_iface(fd, ifname, htons(ETH_P_ALL))) return 1;
    if (fanout >= 0) {
        int f = fanout | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16);
        if (setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &f, sizeof f)) { perror("afp_recv: PACKET_FANOUT"); return 1; }
    }
    fprintf(stderr, "afp_recv: %s: ready (TPACKET_V3, %u blocks of %u bytes)\n", ifname, req.tp_block_nr,
            req.tp_block_size);

    unsigned long long pkts = 0, bytes = 0, other = 0;
    double first = 0, last = 0;
    unsigned bi = 0;
    while (!stop) {
        struct tpacket_block_desc* bd = (void*)(map + (size_t)bi * req.tp_block_size);
        if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) {
            struct pollfd p = {fd, POLLIN | POLLERR, 0};
            poll(&p, 1, 100);
            if (exit_idle && pkts && now() - last > 1.0) break;
            continue;
        }
        unsigned n = bd->hdr.bh1.num_pkts;
        struct tpacket3_hdr* h = (void*)((char*)bd + bd->hdr.bh1.offset_to_first_pkt);
        unsigned long long got = 0;
        for (unsigned i = 0; i < n; i++) {
            const unsigned char* f = (const unsigned char*)h + h->tp_mac;
            if (!filter || memcmp(f, want, 6) == 0) got++, bytes += h->tp_len;
            else other++;
            h = (void*)((char*)h + h->tp_next_offset);
        }
        __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        bi = (bi + 1) % req.tp_block_nr;
        if (got) {
            double t = now();
            if (!pkts) first = t;
            last = t;
            pkts += got;
        }
    }

    struct tpacket_stats_v3 st;
    socklen_t sl = sizeof st;
    memset(&st, 0, sizeof st);
    getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl);
    double secs = last > first ? last - first : 0;
    printf("Received %llu packets %llu bytes in %.3f seconds; socket drops %u, other frames %llu.\n", pkts,
           bytes, secs, st.tp_drops, other);
    printf("summary: func=rx packets=%llu bytes=%llu seconds=%.3f mpps=%.3f drops=%u\n", pkts, bytes, secs,
           secs > 0 ? (double)pkts / secs / 1e6 : 0.0, st.tp_drops);
    return 0;
}
