// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The synthetic producer of bench/ring_bench.cpp. Each BPF_PROG_TEST_RUN of `produce` emits args[0]
 * insert events through ctbpf's own ring and submit policy (bpf/event_ring.bpf.h): what user space
 * measures is the path from bpf_ringbuf_reserve() to a decoded event, with no conntrack and no
 * traffic in the way. raw_tp because its test runs execute on the calling CPU with any context given.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>

#include "ctbpf/abi.h"
#include "event_ring.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL"; /* GPL-compatible, as bpf/conntrack.bpf.c */

struct batch {
	__u64 first; /* sequence number of the batch's first event */
	__u32 lost;  /* reservations refused: the ring was full */
};

static long emit_one(__u64 i, void *ctx)
{
	struct batch *b = ctx;
	__u64 n = b->first + i;
	struct ctbpf_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		b->lost++;
		return 0;
	}
	/* What an IPv4 UDP insert in one of 7 namespaces looks like (as bench/core_bench.cpp makes them). */
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->kind = CTBPF_EV_INSERT;
	e->netns = 4026531840u + (__u32)(n % 7);
	e->l3 = 2; /* AF_INET */
	e->l4 = 17;
	e->saddr[0] = 127;
	e->saddr[3] = 1;
	e->daddr[0] = 127;
	e->daddr[3] = (__u8)n;
	e->sport = 40000;
	e->dport = (__u16)(20000 + n % 40000);
	e->value = (__u32)(n % 80);
	submit_event(e);
	return 0;
}

/* A record's share of the ring: the event behind the ring's 8-byte header, 8-byte aligned. */
#define RECORD_BYTES ((sizeof(struct ctbpf_event) + 8 + 7) / 8 * 8)
#define NO_ROOM 0xffffffffu

/*
 * args[0]: events to emit; args[1]: the first one's sequence number; args[2]: nonzero = emit only if
 * all of them fit (the caller retries on NO_ROOM), so the pipeline's capacity is measured without
 * loss. Returns how many reservations the full ring refused.
 */
SEC("raw_tp")
int produce(struct bpf_raw_tracepoint_args *ctx)
{
	struct batch b = {.first = ctx->args[1]};
	__u32 n = (__u32)ctx->args[0];

	if (ctx->args[2] && bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) + n * RECORD_BYTES >
				    bpf_ringbuf_query(&events, BPF_RB_RING_SIZE))
		return NO_ROOM;
	bpf_loop(n, emit_one, &b, 0);
	return b.lost;
}
