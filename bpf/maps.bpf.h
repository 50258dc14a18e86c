/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* ctbpf's maps. Every map has a fixed bound chosen at load: ctbpf's memory never grows with the table. */
#ifndef CTBPF_MAPS_BPF_H
#define CTBPF_MAPS_BPF_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include "ctbpf/abi.h"

/* Calls inside __nf_conntrack_confirm or early_drop at once: bounded by CPUs x contexts, far below. */
#define CTBPF_INFLIGHT_MAX 4096

/* Each CPU's counts, histograms and netns slots (include/ctbpf/abi.h, struct ctbpf_cpu_state): one
 * element per possible CPU (max_entries set by user space), mmapped by user space. A plain array, not a
 * per-CPU one: user space can mmap it, and the verifier inlines its lookups. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ctbpf_cpu_state);
} cpu_state SEC(".maps");

/*
 * Birth time of each sampled entry, keyed by its address, for lifetimes. Entries outlive any bound we
 * could pick on a big gateway, so only a 1-in-N sample is kept, in a map sized at load (user space) and
 * preallocated (an update must not kmalloc on the packet path); a birth it cannot keep is counted
 * (CTBPF_CNT_LIFETIME_UNTRACKED), never silently lost.
 */
struct birth {
	__u64 ns;  /* bpf_ktime_get_ns() at alloc */
	__u32 tag; /* tuple_tag() of the entry: a free whose entry does not match is another life's */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* struct nf_conn * */
	__type(value, struct birth);
} births SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, CTBPF_SOURCES_MAX);
	__type(key, struct ctbpf_source_key);
	__type(value, struct ctbpf_netns_counts); /* inserts, destroys */
} source_counts SEC(".maps");

/* LRU: once full, a new port evicts the least recently counted one, so a busy port that first shows up
 * after CTBPF_PORTS_MAX one-off ports (a scan, ephemeral ports) still gets a slot and keeps it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, CTBPF_PORTS_MAX);
	__type(key, struct ctbpf_port_key);
	__type(value, __u64); /* inserts */
} port_counts SEC(".maps");

/* NAT'd flows dropped after the NAT (struct ctbpf_blackhole_key). Shared, not per CPU: user space
 * needs one first and last time per flow. LRU: a new stuck flow evicts the one dropped longest ago. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CTBPF_BLACKHOLES_MAX);
	__type(key, struct ctbpf_blackhole_key);
	__type(value, struct ctbpf_blackhole);
} nat_blackholes SEC(".maps");

/* UDP port 53 entries refused or merged at confirm (struct ctbpf_dns_race_key). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CTBPF_DNS_RACES_MAX);
	__type(key, struct ctbpf_dns_race_key);
	__type(value, __u64);
} dns_races SEC(".maps");

/* This CPU's drop-event budget (the `drop_events_per_s` rodata; serve): see ctbpf_budget_admit(). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ctbpf_event_budget);
} event_budget SEC(".maps");

/* What confirm's entry saw, for its exit (kretprobe has no arguments; fexit cannot see the old ct). */
struct confirm_call {
	struct sk_buff *skb;
	struct nf_conn *ct;
	__u32 clash_seen; /* nf_ct_resolve_clash ran inside this confirm */
	__u32 _pad;
	__u64 ts_ns;	  /* fentry family's clash notes: when it was left (a stale one is ignored) */
};

/*
 * kprobe family: what each running __nf_conntrack_confirm (and nf_conntrack_hash_check_insert) saw at
 * its entry, for its kretprobe. Keyed by context_key() (conntrack.bpf.c), never by thread alone: on a
 * gateway confirm runs in softirq, where the current task is often the idle task, pid 0 on every CPU.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CTBPF_INFLIGHT_MAX);
	__type(key, __u64); /* context_key() */
	__type(value, struct confirm_call);
} confirm_calls SEC(".maps");

/*
 * fentry family: a note left by nf_ct_resolve_clash for confirm's exit, matched by skb (which fexit
 * sees). Shared by all CPUs: a task may be preempted and migrate between the clash and confirm's
 * return (local_bh_enable() is a preemption point). Only clashes write one, and the exit looks here
 * only while `in_flight.clash_notes` says one waits: the common insert costs one load.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CTBPF_INFLIGHT_MAX);
	__type(key, __u64); /* struct sk_buff * */
	__type(value, struct confirm_call);
} clash_notes SEC(".maps");

/* How many of each kind of call are in flight on all CPUs: the common case (none) skips a hash lookup. */
struct in_flight {
	__s64 early_drop;  /* threads inside early_drop() */
	__s64 clash_notes; /* entries of clash_notes */
};

/* A global (.bss): one load on every new flow, where an array map's lookup was a few instructions more. */
static struct in_flight in_flight;

/* Inside early_drop(), per context_key(): nf_ct_delete there is an eviction. */
struct early_drop_call {
	__u32 netns; /* early_drop()'s netns, for the drop event when it finds no victim */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CTBPF_INFLIGHT_MAX);
	__type(key, __u64); /* context_key() */
	__type(value, struct early_drop_call);
} early_drop_calls SEC(".maps");

/*
 * kprobe family: the entry this CPU's running nf_ct_delete() is deleting, for its kretprobe, which
 * cannot see it (an eviction inside early_drop(); a false return that still deleted it:
 * ct_delete_undelivered()). A delete nested in another on this CPU (a softirq's) clears it at its
 * return, and the outer return then looks no further.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64); /* struct nf_conn * */
} deleting SEC(".maps");

static __always_inline struct ctbpf_cpu_state *this_cpu_state(void)
{
	__u32 cpu = bpf_get_smp_processor_id();

	return bpf_map_lookup_elem(&cpu_state, &cpu);
}

static __always_inline void count(enum ctbpf_counter which)
{
	struct ctbpf_cpu_state *st = this_cpu_state();

	if (st)
		st->counters.c[which]++;
}

#endif /* CTBPF_MAPS_BPF_H */
