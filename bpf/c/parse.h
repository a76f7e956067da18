/* Bounded packet parsing shared by the XDP and tc programs: Ethernet, at
 * most one VLAN tag, IPv4 without options and not fragmented, or IPv6 with
 * UDP as the first next header, then UDP with consistent lengths. Anything
 * else returns a counter reason and the packet goes to the stack untouched. */
#ifndef EDGESBC_PARSE_H
#define EDGESBC_PARSE_H

#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include "consts.h"
#include "structs.h"
#include "maps.h"

struct vlan_hdr_ {
	__be16 tci;
	__be16 proto;
};

/* What parse() found. Offsets from the start of the frame. */
struct pkt {
	struct flow_key key;
	__u8 saddr[16]; /* source address, network order (IPv4: [0..3]) */
	__u8 sport[2];
	__u16 l3_off;
	__u16 l4_off;
	__u16 ip_len; /* IPv4 total length, IPv6 40 + payload length */
	__u8 vlan;    /* 1 when one 802.1Q/802.1ad tag sits in the frame */
	__u8 family;
};

/* parse returns -1 for a UDP packet we could forward (p filled in) or the
 * counter (enum counter) saying why not. frame_len is the whole frame's
 * length (XDP: data_end - data; tc: skb->len); data_end bounds what is
 * readable directly. */
static __always_inline int parse(void *data, void *data_end, __u32 frame_len,
				 struct pkt *p)
{
	struct ethhdr *eth = data;
	__u16 off = ETH_HLEN;
	__u16 proto;

	if ((void *)(eth + 1) > data_end)
		return CNT_MALFORMED;
	proto = eth->h_proto;
	p->vlan = 0;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr_ *vh = data + ETH_HLEN;
		if ((void *)(vh + 1) > data_end)
			return CNT_MALFORMED;
		proto = vh->proto;
		off += VLAN_HLEN;
		p->vlan = 1;
		if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD))
			return CNT_NOT_IP; /* a second tag: not ours */
	}
	p->l3_off = off;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = data + off;
		if ((void *)(iph + 1) > data_end)
			return CNT_MALFORMED;
		if (iph->version != 4)
			return CNT_MALFORMED;
		if (iph->ihl != 5)
			return iph->ihl < 5 ? CNT_MALFORMED : CNT_IP_OPTIONS;
		if (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return CNT_FRAGMENT;
		if (iph->protocol != IPPROTO_UDP_)
			return CNT_NOT_UDP;
		__u16 tot = bpf_ntohs(iph->tot_len);
		if (tot < sizeof(*iph) + sizeof(struct udphdr) || (__u32)off + tot > frame_len)
			return CNT_MALFORMED;
		p->ip_len = tot;
		p->family = FAMILY_V4;
		p->l4_off = off + sizeof(*iph);
		p->key.family = FAMILY_V4;
		__builtin_memcpy(p->key.addr, &iph->daddr, 4);
		__builtin_memcpy(p->saddr, &iph->saddr, 4);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;
		if ((void *)(ip6 + 1) > data_end)
			return CNT_MALFORMED;
		if (ip6->version != 6)
			return CNT_MALFORMED;
		if (ip6->nexthdr == IPV6_NEXTHDR_FRAGMENT)
			return CNT_FRAGMENT;
		if (ip6->nexthdr != IPPROTO_UDP_)
			return CNT_NOT_UDP;
		__u16 pl = bpf_ntohs(ip6->payload_len);
		if (pl < sizeof(struct udphdr) || (__u32)off + sizeof(*ip6) + pl > frame_len)
			return CNT_MALFORMED;
		p->ip_len = sizeof(*ip6) + pl;
		p->family = FAMILY_V6;
		p->l4_off = off + sizeof(*ip6);
		p->key.family = FAMILY_V6;
		__builtin_memcpy(p->key.addr, &ip6->daddr, 16);
		__builtin_memcpy(p->saddr, &ip6->saddr, 16);
	} else {
		return CNT_NOT_IP;
	}

	struct udphdr *udp = data + p->l4_off;
	if ((void *)(udp + 1) > data_end)
		return CNT_MALFORMED;
	/* The UDP length must match the IP payload exactly. */
	if (bpf_ntohs(udp->len) != p->ip_len - (p->l4_off - p->l3_off))
		return CNT_MALFORMED;
	/* IPv6 UDP must carry a checksum; leave a zero one to the stack. */
	if (p->family == FAMILY_V6 && udp->check == 0)
		return CNT_MALFORMED;
	__builtin_memcpy(p->key.port, &udp->dest, 2);
	__builtin_memcpy(p->sport, &udp->source, 2);
	return -1;
}

/* from_ok says whether a flow hit may be forwarded: the flow names no
 * source (from_set 0), or the packet comes from exactly its address and
 * port. Anything else goes to the stack, where the relay's latching
 * decides (anti-hijack). p->saddr is zeroed beyond the family's length, as
 * from_addr is. */
static __always_inline int from_ok(const struct pkt *p, const struct flow_action *a)
{
	if (!a->from_set)
		return 1;
	if (p->sport[0] != a->from_port[0] || p->sport[1] != a->from_port[1])
		return 0;
	const __u32 *x = (const __u32 *)p->saddr;
	const __u32 *y = (const __u32 *)a->from_addr;
	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
}

/* banned says whether the frame is IPv4 or IPv6 from a source on the ban
 * list whose ban has not ended. Anything it cannot read is not banned. */
static __always_inline int banned(void *data, void *data_end)
{
	__u32 zero = 0;
	__u32 *n = bpf_map_lookup_elem(&ban_count, &zero);
	if (!n || *n == 0)
		return 0;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return 0;
	__u16 off = ETH_HLEN;
	__u16 proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr_ *vh = data + ETH_HLEN;
		if ((void *)(vh + 1) > data_end)
			return 0;
		proto = vh->proto;
		off += VLAN_HLEN;
	}
	__u64 *until;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = data + off;
		if ((void *)(iph + 1) > data_end)
			return 0;
		__u32 saddr = iph->saddr;
		until = bpf_map_lookup_elem(&bans, &saddr);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;
		if ((void *)(ip6 + 1) > data_end)
			return 0;
		struct in6_addr saddr;
		__builtin_memcpy(&saddr, &ip6->saddr, sizeof(saddr));
		until = bpf_map_lookup_elem(&bans6, &saddr);
	} else {
		return 0;
	}
	if (!until)
		return 0;
	return *until == 0 || *until > bpf_ktime_get_ns();
}

#endif
