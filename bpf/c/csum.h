/* Internet checksum helpers (RFC 1071, incremental update per RFC 1624).
 * Words are summed as loaded (network order); the one's complement sum is
 * byte-order independent as long as loads and stores agree. */
#ifndef EDGESBC_CSUM_H
#define EDGESBC_CSUM_H

#include <linux/types.h>

static __always_inline __u16 csum_fold32(__u32 acc)
{
	acc = (acc & 0xffff) + (acc >> 16);
	acc = (acc & 0xffff) + (acc >> 16);
	return (__u16)acc;
}

/* acc += ~old + new, for one 16-bit word. */
static __always_inline __u32 csum_replace16(__u32 acc, __u16 old, __u16 new)
{
	return acc + (__u16)~old + new;
}

/* acc over n 16-bit words changing from old to new (n constant). */
static __always_inline __u32 csum_replace_words(__u32 acc, const __u16 *old,
						const __u16 *new, const int n)
{
#pragma unroll
	for (int i = 0; i < n; i++)
		acc = csum_replace16(acc, old[i], new[i]);
	return acc;
}

/* Start an update of a stored checksum field. */
static __always_inline __u32 csum_start(__u16 check)
{
	return (__u16)~check;
}

/* Finish: the value to store back. */
static __always_inline __u16 csum_finish(__u32 acc)
{
	return (__u16)~csum_fold32(acc);
}

#endif
