/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The event ring and how records enter it: shared by conntrack.bpf.c and the ring-buffer benchmark's
 * synthetic producer (bench/ring_producer.bpf.c), so the benchmark measures the path ctbpf runs.
 */
#ifndef CTBPF_EVENT_RING_BPF_H
#define CTBPF_EVENT_RING_BPF_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include "ctbpf/abi.h"

/* Per-event records for `ctbpf trace --events`; sized at load, a page when events are off. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

/* Wake the reader once this many bytes of records wait (submit_event()); 0 = on every record. Set by
 * user space before load. */
const volatile __u32 wakeup_bytes = 0;

/*
 * The ring buffer's default wakes the reader whenever a record lands in a ring it had caught up with:
 * at flood rate that is a wake-up, a context switch and a write(2) of output for every one or two
 * events (8-12 thousand switches for 20000 inserts in the 6.1 guest), paid by the flood's CPUs too.
 * Instead, records wait until wakeup_bytes of them do, and the reader also drains the ring on its own
 * at every poll timeout (50 ms at most): a lone event is late by that much, never lost.
 */
static __always_inline void submit_event(struct ctbpf_event *e)
{
	__u64 flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
										    : BPF_RB_NO_WAKEUP;

	bpf_ringbuf_submit(e, flags);
}

#endif /* CTBPF_EVENT_RING_BPF_H */
