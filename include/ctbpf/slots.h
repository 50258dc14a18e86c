/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Histogram slot math, compiled by clang -target bpf (in the kernel) and by the host compiler (for the
 * labels user space prints). One definition, so the "le" of a printed bucket is exactly what the kernel
 * counted into it; tests/unit/test_core_slots.cpp checks the labels against these functions.
 */
#ifndef CTBPF_SLOTS_H
#define CTBPF_SLOTS_H

#ifdef __bpf__
#define CTBPF_INLINE static __always_inline
#else
#include <linux/types.h>
#define CTBPF_INLINE static inline
#endif

/* log2 slots: slot 0 holds 0, slot k >= 1 holds [2^(k-1), 2^k - 1]. */
#define CTBPF_LOG2_SLOTS 32

/* Chain length: exact slots for 0..CHAIN_LINEAR-1 (the kernel's chaintoolong limit is 50..79 on 5.15+,
 * so short chains deserve exact counts), then log2 slots: [32,63], [64,127], ... */
#define CTBPF_CHAIN_LINEAR 32
#define CTBPF_CHAIN_SLOTS 48
/* The walk's hard bound: far above the kernel's own limit, so it only ends on a corrupt/moving chain. */
#define CTBPF_CHAIN_WALK_MAX 1024

/* floor(log2(v)) for v >= 1, branch-free (the verifier prefers straight lines). */
CTBPF_INLINE __u32 ctbpf_ilog2(__u64 v)
{
	__u32 r, shift;

	r = (v > 0xFFFFFFFFULL) << 5; v >>= r;
	shift = (v > 0xFFFF) << 4; v >>= shift; r |= shift;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (__u32)(v >> 1);
	return r;
}

CTBPF_INLINE __u32 ctbpf_log2_slot(__u64 v)
{
	__u32 slot = v ? ctbpf_ilog2(v) + 1 : 0;

	return slot < CTBPF_LOG2_SLOTS ? slot : CTBPF_LOG2_SLOTS - 1;
}

CTBPF_INLINE __u32 ctbpf_chain_slot(__u64 len)
{
	__u32 slot;

	if (len < CTBPF_CHAIN_LINEAR)
		return (__u32)len;
	/* ilog2(32) = 5 maps to the first log2 slot, CTBPF_CHAIN_LINEAR. */
	slot = CTBPF_CHAIN_LINEAR + ctbpf_ilog2(len) - 5;
	return slot < CTBPF_CHAIN_SLOTS ? slot : CTBPF_CHAIN_SLOTS - 1;
}

#endif /* CTBPF_SLOTS_H */
