/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* ctbpf's maps. Every map has a fixed bound chosen at load: ctbpf's memory never grows with the table. */
#ifndef CTBPF_MAPS_BPF_H
#define CTBPF_MAPS_BPF_H

#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include "ctbpf/abi.h"

/* Threads inside __nf_conntrack_confirm or early_drop at once: bounded by CPUs x nesting, far below. */
#define CTBPF_INFLIGHT_MAX 4096

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ctbpf_counters);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ctbpf_chain_hist);
} chain_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ctbpf_lifetime_hist);
} lifetime_hist SEC(".maps");

/*
 * Birth time of each sampled entry, keyed by its address, for lifetimes. Entries outlive any bound we
 * could pick on a big gateway, so only a 1-in-N sample is kept, in a map sized at load (user space) and
 * preallocated (an update must not kmalloc on the packet path); a birth it cannot keep is counted
 * (CTBPF_CNT_LIFETIME_UNTRACKED), never silently lost.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);   /* struct nf_conn * */
	__type(value, __u64); /* bpf_ktime_get_ns() at alloc */
} births SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, CTBPF_NETNS_MAX + 1); /* + the CTBPF_NETNS_OTHER bucket */
	__type(key, __u32);
	__type(value, struct ctbpf_netns_counts);
} netns_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, CTBPF_SOURCES_MAX);
	__type(key, struct ctbpf_source_key);
	__type(value, struct ctbpf_netns_counts); /* inserts, destroys */
} source_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, CTBPF_PORTS_MAX);
	__type(key, struct ctbpf_port_key);
	__type(value, __u64); /* inserts */
} port_counts SEC(".maps");

/* This CPU's drop-event budget (the `drop_events_per_s` rodata; serve): see ctbpf_budget_admit(). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ctbpf_event_budget);
} event_budget SEC(".maps");

/*
 * __nf_conntrack_alloc's arguments, for kretprobe (fexit has them): the tuple of a refused entry.
 * kprobe family: one per-CPU slot, written on every alloc (an inlined array store, not a hash update +
 * delete). The packet path allocates with BH off, so entry and return share the CPU; an alloc that
 * sleeps and migrates (ctnetlink, GFP_KERNEL) finds another thread's id in the slot and its drop
 * event goes without a tuple. Counts never depend on it.
 */
struct alloc_call {
	struct net *net;
	const struct nf_conntrack_zone *zone;
	const struct nf_conntrack_tuple *orig;
	__u64 id; /* pid_tgid of the thread whose call this is; 0 once taken */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct alloc_call);
} alloc_calls SEC(".maps");

/* What confirm's entry saw, for its exit (kretprobe has no arguments; fexit cannot see the old ct). */
struct confirm_call {
	struct sk_buff *skb;
	struct nf_conn *ct;
	__u32 clash_seen; /* nf_ct_resolve_clash ran inside this confirm */
	__u32 _pad;
};

/* kprobe family: keyed by thread, since kretprobe cannot see the skb. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CTBPF_INFLIGHT_MAX);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct confirm_call);
} confirm_calls SEC(".maps");

/*
 * fentry family: a few per-CPU notes, matched by skb (which fexit sees), left by nf_ct_resolve_clash
 * for confirm's exit: only clashes write one, so the common insert costs one array lookup.
 */
#define CONFIRM_SLOTS 4
struct confirm_slots {
	struct confirm_call call[CONFIRM_SLOTS];
	__u32 next;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct confirm_slots);
} confirm_slots SEC(".maps");

/* How many threads are inside early_drop() right now: nf_ct_delete skips its lookup when none. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __s64);
} early_drop_active SEC(".maps");

/* Threads inside early_drop(): nf_ct_delete there is an eviction. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CTBPF_INFLIGHT_MAX);
	__type(key, __u64);
	__type(value, __u32);
} early_drop_calls SEC(".maps");

static __always_inline struct ctbpf_counters *this_cpu_counters(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&counters, &zero);
}

static __always_inline void count(enum ctbpf_counter which)
{
	struct ctbpf_counters *c = this_cpu_counters();

	if (c)
		c->c[which]++;
}

#endif /* CTBPF_MAPS_BPF_H */
