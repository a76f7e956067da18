//go:build ignore

/* EdgeSBC media fast path. A UDP packet to one of the SBC's media
 * address:port pairs (a flow), from the flow's expected source (the peer
 * the relay latched; a packet from any other source goes to the stack
 * untouched, counted as src_mismatch), is rewritten (addresses, ports, MACs, TTL,
 * checksums) and sent out of the flow's egress interface; everything else
 * goes to the kernel stack untouched.
 *
 *   xdp_fwd   XDP program, redirect through the tx_ports DEVMAP
 *   tc_fwd    tcx/clsact ingress program, bpf_redirect
 *   xdp_probe loader's delivery self-test: redirects whatever it is given
 *             to probe_target's ifindex (run with BPF_F_TEST_XDP_LIVE_FRAMES)
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "consts.h"
#include "structs.h"
#include "maps.h"
#include "csum.h"
#include "parse.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline void account(const struct flow_key *key, __u32 bytes)
{
	struct flow_stats *s = bpf_map_lookup_elem(&flow_counters, key);
	if (!s)
		return;
	s->packets += 1;
	s->bytes += bytes;
	s->last_seen = bpf_ktime_get_ns();
}

/* rewrite_xdp rewrites L3/L4 in place. Returns -1 on success or a counter. */
static __always_inline int rewrite_xdp(void *data, void *data_end, struct pkt *p,
				       const struct flow_action *a, __u32 *payload)
{
	__u32 acc;
	__u32 l3 = p->l3_off;

	if (l3 > ETH_HLEN + VLAN_HLEN) /* 14 or 18; bounds it for the verifier */
		return CNT_MALFORMED;
	if (p->family == FAMILY_V4) {
		struct iphdr *iph = data + l3;
		if ((void *)(iph + 1) > data_end)
			return CNT_MALFORMED;
		struct udphdr *udp = (void *)(iph + 1);
		if ((void *)(udp + 1) > data_end)
			return CNT_MALFORMED;
		if (iph->ttl <= 1)
			return CNT_TTL;

		__u16 old_ttl = *(__u16 *)&iph->ttl; /* ttl and protocol */
		iph->ttl--;
		__u16 new_ttl = *(__u16 *)&iph->ttl;

		acc = csum_start(iph->check);
		acc = csum_replace16(acc, old_ttl, new_ttl);
		acc = csum_replace_words(acc, (__u16 *)&iph->saddr, (const __u16 *)a->saddr, 2);
		acc = csum_replace_words(acc, (__u16 *)&iph->daddr, (const __u16 *)a->daddr, 2);
		iph->check = csum_finish(acc);

		if (udp->check) { /* a zero UDP checksum (none) stays zero */
			acc = csum_start(udp->check);
			acc = csum_replace_words(acc, (__u16 *)&iph->saddr, (const __u16 *)a->saddr, 2);
			acc = csum_replace_words(acc, (__u16 *)&iph->daddr, (const __u16 *)a->daddr, 2);
			acc = csum_replace16(acc, udp->source, *(const __u16 *)a->sport);
			acc = csum_replace16(acc, udp->dest, *(const __u16 *)a->dport);
			__u16 c = csum_finish(acc);
			udp->check = c ? c : 0xffff;
		}
		__builtin_memcpy(&iph->saddr, a->saddr, 4);
		__builtin_memcpy(&iph->daddr, a->daddr, 4);
		__builtin_memcpy(&udp->source, a->sport, 2);
		__builtin_memcpy(&udp->dest, a->dport, 2);
		*payload = bpf_ntohs(udp->len) - sizeof(*udp);
		return -1;
	}

	struct ipv6hdr *ip6 = data + l3;
	if ((void *)(ip6 + 1) > data_end)
		return CNT_MALFORMED;
	struct udphdr *udp = (void *)(ip6 + 1);
	if ((void *)(udp + 1) > data_end)
		return CNT_MALFORMED;
	if (ip6->hop_limit <= 1)
		return CNT_TTL;
	ip6->hop_limit--;
	acc = csum_start(udp->check);
	acc = csum_replace_words(acc, (__u16 *)&ip6->saddr, (const __u16 *)a->saddr, 8);
	acc = csum_replace_words(acc, (__u16 *)&ip6->daddr, (const __u16 *)a->daddr, 8);
	acc = csum_replace16(acc, udp->source, *(const __u16 *)a->sport);
	acc = csum_replace16(acc, udp->dest, *(const __u16 *)a->dport);
	__u16 c = csum_finish(acc);
	udp->check = c ? c : 0xffff;
	__builtin_memcpy(&ip6->saddr, a->saddr, 16);
	__builtin_memcpy(&ip6->daddr, a->daddr, 16);
	__builtin_memcpy(&udp->source, a->sport, 2);
	__builtin_memcpy(&udp->dest, a->dport, 2);
	*payload = bpf_ntohs(udp->len) - sizeof(*udp);
	return -1;
}

SEC("xdp")
int xdp_fwd(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct pkt p = {};
	__u32 payload = 0;
	int r;

	if (banned(data, data_end)) {
		count(CNT_BANNED);
		return XDP_DROP;
	}
	r = parse(data, data_end, data_end - data, &p);
	if (r >= 0) {
		count(r);
		return XDP_PASS;
	}
	struct flow_action *a = bpf_map_lookup_elem(&flows, &p.key);
	if (!a || a->family != p.family) {
		count(CNT_MISS);
		return XDP_PASS;
	}
	if (!from_ok(&p, a)) {
		count(CNT_SRC_MISMATCH);
		return XDP_PASS; /* untouched: the relay's latching decides */
	}
	__u32 ifindex = a->ifindex;
	if (!bpf_map_lookup_elem(&tx_ports, &ifindex)) {
		count(CNT_NO_EGRESS);
		return XDP_PASS;
	}
	r = rewrite_xdp(data, data_end, &p, a, &payload);
	if (r >= 0) {
		count(r);
		return XDP_PASS;
	}

	/* New Ethernet header; a VLAN tag is dropped by writing the MACs 4
	 * bytes later and moving the frame start over them. */
	if (p.vlan) {
		if (data + VLAN_HLEN + ETH_HLEN > data_end)
			return XDP_PASS;
		__builtin_memcpy(data + VLAN_HLEN, a->dmac, ETH_ALEN);
		__builtin_memcpy(data + VLAN_HLEN + ETH_ALEN, a->smac, ETH_ALEN);
		if (bpf_xdp_adjust_head(ctx, VLAN_HLEN)) {
			count(CNT_ERROR);
			return XDP_DROP; /* half rewritten: must not reach the stack */
		}
	} else {
		if (data + ETH_HLEN > data_end)
			return XDP_PASS;
		__builtin_memcpy(data, a->dmac, ETH_ALEN);
		__builtin_memcpy(data + ETH_ALEN, a->smac, ETH_ALEN);
	}
	account(&p.key, payload);
	count(CNT_REDIRECT);
	return bpf_redirect_map(&tx_ports, ifindex, 0);
}

#define TC_PULL_LEN (ETH_HLEN + VLAN_HLEN + sizeof(struct ipv6hdr) + sizeof(struct udphdr))

SEC("tc")
int tc_fwd(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct pkt p = {};
	int r;

	if (data + TC_PULL_LEN > data_end && skb->len > data_end - data) {
		__u32 need = skb->len < TC_PULL_LEN ? skb->len : TC_PULL_LEN;
		bpf_skb_pull_data(skb, need);
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
	}
	if (banned(data, data_end)) {
		count(CNT_BANNED);
		return TC_ACT_SHOT;
	}
	r = parse(data, data_end, skb->len, &p);
	if (r >= 0) {
		count(r);
		return TC_ACT_OK;
	}
	struct flow_action *a = bpf_map_lookup_elem(&flows, &p.key);
	if (!a || a->family != p.family) {
		count(CNT_MISS);
		return TC_ACT_OK;
	}
	if (!from_ok(&p, a)) {
		count(CNT_SRC_MISMATCH);
		return TC_ACT_OK; /* untouched: the relay's latching decides */
	}

	/* Everything the rewrite needs, copied before the first helper that
	 * may move the packet. */
	struct flow_action act = *a;
	__u8 old_addrs[32] = {}, new_addrs[32] = {};
	__u16 old_ports[2], new_ports[2];
	__u16 old_ttl = 0, new_ttl = 0;
	__u32 alen, ttl_off, addr_off, payload;
	/* Bound the offset for the verifier (it is 14 or 18). */
	__u32 l3 = p.l3_off;
	if (l3 > ETH_HLEN + VLAN_HLEN)
		return TC_ACT_OK;

	if (p.family == FAMILY_V4) {
		struct iphdr *iph = data + l3;
		if ((void *)(iph + 1) > data_end)
			return TC_ACT_OK;
		struct udphdr *udp = (void *)(iph + 1);
		if ((void *)(udp + 1) > data_end)
			return TC_ACT_OK;
		if (iph->ttl <= 1) {
			count(CNT_TTL);
			return TC_ACT_OK;
		}
		old_ttl = *(__u16 *)&iph->ttl;
		new_ttl = old_ttl;
		((__u8 *)&new_ttl)[0] -= 1;
		__builtin_memcpy(old_addrs, &iph->saddr, 8);
		__builtin_memcpy(new_addrs, act.saddr, 4);
		__builtin_memcpy(new_addrs + 4, act.daddr, 4);
		old_ports[0] = udp->source;
		old_ports[1] = udp->dest;
		payload = bpf_ntohs(udp->len) - sizeof(*udp);
		alen = 8;
		ttl_off = offsetof(struct iphdr, ttl);
		addr_off = offsetof(struct iphdr, saddr);
	} else {
		struct ipv6hdr *ip6 = data + l3;
		if ((void *)(ip6 + 1) > data_end)
			return TC_ACT_OK;
		struct udphdr *udp = (void *)(ip6 + 1);
		if ((void *)(udp + 1) > data_end)
			return TC_ACT_OK;
		if (ip6->hop_limit <= 1) {
			count(CNT_TTL);
			return TC_ACT_OK;
		}
		old_ttl = ip6->hop_limit;
		new_ttl = old_ttl - 1;
		__builtin_memcpy(old_addrs, &ip6->saddr, 32);
		__builtin_memcpy(new_addrs, act.saddr, 16);
		__builtin_memcpy(new_addrs + 16, act.daddr, 16);
		old_ports[0] = udp->source;
		old_ports[1] = udp->dest;
		payload = bpf_ntohs(udp->len) - sizeof(*udp);
		alen = 32;
		ttl_off = offsetof(struct ipv6hdr, hop_limit);
		addr_off = offsetof(struct ipv6hdr, saddr);
	}
	__builtin_memcpy(&new_ports[0], act.sport, 2);
	__builtin_memcpy(&new_ports[1], act.dport, 2);

	__u32 l4 = p.l4_off;
	/* Leave any VLAN tag behind: the flow's egress is its own interface.
	 * At tc ingress the kernel has already moved a tag into skb metadata;
	 * a frame run through BPF_PROG_RUN still has it in the data. */
	if (p.vlan || skb->vlan_present) {
		if (bpf_skb_vlan_pop(skb))
			goto err;
		if (p.vlan) {
			l3 -= VLAN_HLEN;
			l4 -= VLAN_HLEN;
		}
	}

	__s64 diff = bpf_csum_diff((__be32 *)old_addrs, alen, (__be32 *)new_addrs, alen, 0);
	if (diff < 0)
		goto err;
	__s64 pdiff = bpf_csum_diff((__be32 *)old_ports, 4, (__be32 *)new_ports, 4, 0);
	if (pdiff < 0)
		goto err;
	/* UDP: addresses are in the pseudo header; a zero checksum stays
	 * zero (BPF_F_MARK_MANGLED_0); CHECKSUM_PARTIAL is handled. */
	if (bpf_l4_csum_replace(skb, l4 + offsetof(struct udphdr, check), 0, diff,
				BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0))
		goto err;
	if (bpf_l4_csum_replace(skb, l4 + offsetof(struct udphdr, check), 0, pdiff,
				BPF_F_MARK_MANGLED_0))
		goto err;
	if (p.family == FAMILY_V4) {
		if (bpf_l3_csum_replace(skb, l3 + offsetof(struct iphdr, check), 0, diff, 0))
			goto err;
		if (bpf_l3_csum_replace(skb, l3 + offsetof(struct iphdr, check), old_ttl, new_ttl, 2))
			goto err;
		if (bpf_skb_store_bytes(skb, l3 + ttl_off, &new_ttl, 1, 0))
			goto err;
	} else {
		__u8 hl = new_ttl;
		if (bpf_skb_store_bytes(skb, l3 + ttl_off, &hl, 1, 0))
			goto err;
	}
	if (bpf_skb_store_bytes(skb, l3 + addr_off, new_addrs, alen & 0x3f, 0))
		goto err;
	if (bpf_skb_store_bytes(skb, l4, new_ports, 4, 0))
		goto err;
	__u8 macs[12];
	__builtin_memcpy(macs, act.dmac, 6);
	__builtin_memcpy(macs + 6, act.smac, 6);
	if (bpf_skb_store_bytes(skb, 0, macs, 12, 0))
		goto err;

	account(&p.key, payload);
	count(CNT_REDIRECT);
	return bpf_redirect(act.ifindex, 0);
err:
	count(CNT_ERROR);
	return TC_ACT_SHOT; /* half rewritten: must not reach the stack */
}

SEC("xdp")
int xdp_probe(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u32 *ifindex = bpf_map_lookup_elem(&probe_target, &k);
	if (!ifindex)
		return XDP_ABORTED;
	return bpf_redirect_map(&tx_ports, *ifindex, 0);
}
