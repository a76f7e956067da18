/* Constants shared by the XDP and tc datapath programs. Keep in step with
 * consts.go (the Go side names the same numbers). */
#ifndef EDGESBC_CONSTS_H
#define EDGESBC_CONSTS_H

#define ETH_ALEN 6
#define ETH_HLEN 14
#define VLAN_HLEN 4
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

#define IPPROTO_UDP_ 17
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF
#define IPV6_NEXTHDR_FRAGMENT 44

#define FAMILY_V4 4
#define FAMILY_V6 6

/* Map sizes. MAX_FLOWS bounds the flow and flow-stats maps; the Go side
 * reads the real size from the map, so changing it needs no Go change. */
#define MAX_FLOWS 131072
#define MAX_EGRESS 256
#define MAX_BANS 65536

/* Why a packet was passed to the stack (or redirected): one per-CPU
 * counter each. The order is the Go Counter* constants' order. */
enum counter {
	CNT_REDIRECT = 0, /* forwarded by the fast path */
	CNT_MISS,         /* UDP to an address:port with no flow */
	CNT_NOT_IP,       /* not IPv4/IPv6 (ARP, ...), or two VLAN tags */
	CNT_NOT_UDP,      /* IP but not UDP, or IPv6 extension headers */
	CNT_FRAGMENT,     /* IPv4 MF or offset set, IPv6 fragment header */
	CNT_IP_OPTIONS,   /* IPv4 ihl != 5 */
	CNT_MALFORMED,    /* short, wrong lengths, bad version, v6 csum 0 */
	CNT_TTL,          /* TTL / hop limit would expire */
	CNT_NO_EGRESS,    /* flow's egress interface not in tx_ports */
	CNT_ERROR,        /* a helper failed mid-rewrite (tc) */
	CNT_BANNED,       /* dropped: source on the ban list */
	CNT_SRC_MISMATCH, /* flow hit from a source other than its latched one */
	CNT_MAX,
};

#endif
