// nm_chain: sends one IPv4/UDP frame as a chain of two slots, the first
// holding only its Ethernet header (NS_MOREFRAG), the second the rest;
// the second is sent only after a line arrives on stdin, so a test sees
// what a forwarder does with a chain that has not finished arriving.
//
//   nm_chain PORT DST_PORT      (prints "head sent", then "done")
#include <libnetmap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <cstdint>

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: nm_chain PORT DST_PORT\n");
    return 1;
  }
  nmport_d* d = nmport_open(argv[1]);
  if (!d) return 2;
  const unsigned dport = unsigned(atoi(argv[2]));
  uint8_t f[14 + 20 + 8 + 18] = {};
  memcpy(f, "\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00", 14);
  uint8_t* ip = f + 14;
  ip[0] = 0x45;
  ip[3] = 20 + 8 + 18;
  ip[8] = 64;
  ip[9] = 17;
  memcpy(ip + 12, "\x0a\0\0\x01\x0a\x01\0\x01", 8);
  uint8_t* udp = ip + 20;
  udp[0] = 0x04, udp[1] = 0xd2;
  udp[2] = uint8_t(dport >> 8), udp[3] = uint8_t(dport);
  udp[5] = 8 + 18;
  netmap_ring* t = NETMAP_TXRING(d->nifp, d->first_tx_ring);
  const auto put = [&](const uint8_t* p, uint16_t n, uint16_t flags) {
    netmap_slot& s = t->slot[t->cur];
    memcpy(NETMAP_BUF(t, s.buf_idx), p, n);
    s.len = n;
    s.flags = flags;
    t->head = t->cur = nm_ring_next(t, t->cur);
    ioctl(d->fd, NIOCTXSYNC, nullptr);
  };
  put(f, 14, NS_MOREFRAG);
  printf("head sent\n");
  fflush(stdout);
  char line[16];
  if (!fgets(line, sizeof line, stdin)) return 3;
  put(f + 14, sizeof f - 14, 0);
  printf("done\n");
  fflush(stdout);
  if (!fgets(line, sizeof line, stdin)) return 0;  // hold the port until told
  nmport_close(d);
  return 0;
}
