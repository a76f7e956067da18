//go:build ignore

/* Delivery monitor for XDP redirects. An XDP_REDIRECT the kernel cannot
 * carry out is dropped without touching any device counter: since 6.3 the
 * DEVMAP refuses a device lacking xdp ndo-xmit (a veth whose peer has no
 * NAPI) and only the xdp_redirect_err tracepoint sees it; a DEVMAP flush
 * the driver refuses shows only in xdp_devmap_xmit. These programs add
 * both up per egress device so the loader can see redirects being dropped,
 * rather than trust the fast path's own counters.
 * Separate object: the datapath loads without it where tp_btf is missing. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Just the kernel fields we read; CO-RE relocates them against the
 * running kernel's BTF. */
struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} possible_net_t;

struct net_device {
	int ifindex;
	possible_net_t nd_net;
} __attribute__((preserve_access_index));

/* Egress device: ifindex within its network namespace (inode number). */
struct xmit_key {
	__u32 ifindex;
	__u32 netns;
};

struct xmit_val {
	__u64 sent;
	__u64 drops;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct xmit_key);
	__type(value, struct xmit_val);
} xmit SEC(".maps");

/* Redirect errors by DEVMAP: map id (global) and key (the egress ifindex). */
struct redir_key {
	__u32 map_id;
	__u32 index;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct redir_key);
	__type(value, __u64);
} redirect_err SEC(".maps");

/* TP_PROTO(const struct net_device *dev, const struct bpf_prog *xdp,
 *          const void *tgt, int err, enum bpf_map_type map_type,
 *          u32 map_id, u32 index) */
SEC("tp_btf/xdp_redirect_err")
int redirect_error(__u64 *ctx)
{
	struct redir_key k = {.map_id = (__u32)ctx[5], .index = (__u32)ctx[6]};
	__u64 one = 1;
	__u64 *v = bpf_map_lookup_elem(&redirect_err, &k);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&redirect_err, &k, &one, BPF_NOEXIST);
	return 0;
}

/* TP_PROTO(const struct net_device *from_dev, const struct net_device *to_dev,
 *          int sent, int drops, int err) */
SEC("tp_btf/xdp_devmap_xmit")
int devmap_xmit(__u64 *ctx)
{
	const struct net_device *to = (const void *)ctx[1];
	int sent = (int)ctx[2];
	int drops = (int)ctx[3];
	struct xmit_key k = {};

	k.ifindex = BPF_CORE_READ(to, ifindex);
	k.netns = BPF_CORE_READ(to, nd_net.net, ns.inum);
	struct xmit_val *v = bpf_map_lookup_elem(&xmit, &k);
	if (!v) {
		struct xmit_val zero = {};
		bpf_map_update_elem(&xmit, &k, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&xmit, &k);
		if (!v)
			return 0;
	}
	if (sent > 0)
		__sync_fetch_and_add(&v->sent, sent);
	if (drops > 0)
		__sync_fetch_and_add(&v->drops, drops);
	return 0;
}
