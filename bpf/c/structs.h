/* Structures shared with Go. bpf2go generates their Go mirrors
 * (datapathFlowKey, datapathFlowAction, datapathFlowStats) with explicit
 * padding; change a field here and `make generate` changes Go with it. */
#ifndef EDGESBC_STRUCTS_H
#define EDGESBC_STRUCTS_H

#include <linux/types.h>

/* A packet arriving at the SBC's address:port. Bytes in network order;
 * IPv4 uses addr[0..3] and leaves the rest zero. */
struct flow_key {
	__u8 family; /* FAMILY_V4 or FAMILY_V6 */
	__u8 pad;
	__u8 port[2];
	__u8 addr[16];
};

/* How to rewrite a hit and where to send it. */
struct flow_action {
	__u8 saddr[16]; /* new source: the SBC's egress address */
	__u8 daddr[16]; /* new destination: the peer */
	__u8 sport[2];
	__u8 dport[2];
	__u8 smac[ETH_ALEN];
	__u8 dmac[ETH_ALEN];
	__u32 ifindex; /* egress interface */
	__u8 family;   /* same as the key's */
	__u8 from_set; /* 1: forward only packets from from_addr:from_port */
	__u8 from_port[2];
	__u8 from_addr[16]; /* the latched peer; IPv4 uses [0..3], rest zero */
};

/* Per-CPU, per-flow counters. last_seen is bpf_ktime_get_ns
 * (CLOCK_MONOTONIC). */
struct flow_stats {
	__u64 packets;
	__u64 bytes;
	__u64 last_seen;
};

#endif
