// afp_common.h - what bench/afp_send.c and afp_recv.c share: the stop flag of
// SIGINT/SIGTERM, the clock, MAC arguments, CPU pinning and the packet socket.
// Each defines PROG (its name, for messages) before including it.
#ifndef AFP_COMMON_H
#define AFP_COMMON_H

#include <arpa/inet.h>
#include <linux/if_packet.h>
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

// SIGINT and SIGTERM set stop (and interrupt the call in progress).
static void catch_stop_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

// "aa:bb:cc:dd:ee:ff" into out[6]; -1 if s is not a MAC.
static int parse_mac(const char* s, unsigned char* out) {
    unsigned v[6];
    char extra;
    if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &extra) != 6) return -1;
    for (int i = 0; i < 6; i++) out[i] = (unsigned char)v[i];
    return 0;
}

// Runs this thread on cpu (if >= 0).
static void pin_cpu(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set)) perror(PROG ": sched_setaffinity");
}

// A raw AF_PACKET socket of protocol 0 (it receives nothing until bound); -1 on error.
static int packet_socket(void) {
    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    if (fd < 0) perror(PROG ": socket");
    return fd;
}

// Binds packet socket fd to ifname for protocol proto (network order, 0: none);
// -1 on error.
static int bind_iface(int fd, const char* ifname, uint16_t proto) {
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = proto;
    sll.sll_ifindex = (int)if_nametoindex(ifname);
    if (!sll.sll_ifindex) { fprintf(stderr, PROG ": no interface %s\n", ifname); return -1; }
    if (bind(fd, (struct sockaddr*)&sll, sizeof sll)) { perror(PROG ": bind"); return -1; }
    return 0;
}

#endif
