/*
 * Test frames for the libpcap tests (C and C++): Ethernet broadcast, IPv4
 * 10.0.0.1 -> 10.0.0.2, UDP 4000 -> 1000 + seq % 2 (a filter on one port
 * keeps exactly half), the sequence number in the first payload bytes.
 */
#ifndef NMTEST_UDP_FRAME_H
#define NMTEST_UDP_FRAME_H

#include <stdint.h>
#include <string.h>

#define UDP_FRAME_LEN 60u

static inline uint16_t udp_frame_csum(const uint8_t *p, unsigned n)
{
	uint32_t sum = 0;
	for (unsigned i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Fills f[UDP_FRAME_LEN]. */
static inline void udp_frame(uint8_t *f, uint32_t seq)
{
	static const uint8_t eth[14] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00};
	memset(f, 0, UDP_FRAME_LEN);
	memcpy(f, eth, sizeof eth);
	uint8_t *ip = f + 14, *udp = ip + 20;
	const unsigned ip_len = UDP_FRAME_LEN - 14, udp_len = ip_len - 20;
	ip[0] = 0x45;
	ip[2] = (uint8_t)(ip_len >> 8), ip[3] = (uint8_t)ip_len;
	ip[8] = 64, ip[9] = 17;
	ip[12] = 10, ip[15] = 1;
	ip[16] = 10, ip[19] = 2;
	const uint16_t c = udp_frame_csum(ip, 20);
	ip[10] = (uint8_t)(c >> 8), ip[11] = (uint8_t)c;
	const uint16_t dport = (uint16_t)(1000 + seq % 2);
	udp[0] = 4000 >> 8, udp[1] = 4000 & 0xff;
	udp[2] = (uint8_t)(dport >> 8), udp[3] = (uint8_t)dport;
	udp[4] = (uint8_t)(udp_len >> 8), udp[5] = (uint8_t)udp_len;
	memcpy(udp + 8, &seq, sizeof seq); /* UDP checksum 0: none */
}

/* The sequence number of a frame udp_frame made, or -1. */
static inline int64_t udp_frame_seq(const uint8_t *f, unsigned len)
{
	uint32_t seq;
	if (len < UDP_FRAME_LEN || f[12] != 0x08 || f[13] != 0x00 || f[23] != 17)
		return -1;
	memcpy(&seq, f + 42, sizeof seq);
	return seq;
}

#endif
