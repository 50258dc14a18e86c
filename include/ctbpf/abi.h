/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one ABI between ctbpf's BPF programs and its C++ agent: map layouts, counter indices and the
 * ring-buffer event record. Plain C, fixed-width types, explicit padding; both compilers assert the
 * sizes below, so a field added on one side only fails the build instead of garbling data.
 */
#ifndef CTBPF_ABI_H
#define CTBPF_ABI_H

#ifdef __bpf__
/* BPF side: vmlinux.h already defines __u8..__u64. */
#else
#include <linux/types.h>
#endif

#include "ctbpf/slots.h"

/* Index into the per-CPU `counters` map value (struct ctbpf_counters). The BPF object is built into the
 * binary that reads it, so indices may change; the names user space gives them (JSON, metrics) never do. */
enum ctbpf_counter {
	CTBPF_CNT_FREED_UNINSERTED = 0, /* nf_conntrack_free of an entry never inserted: allocs = this + inserts */
	CTBPF_CNT_TABLE_FULL,	 /* early_drop found no victim: "table full, dropping packet" */
	CTBPF_CNT_EARLY_DROP,	 /* an entry evicted to make room */
	CTBPF_CNT_INSERT,	 /* __nf_conntrack_confirm put the entry in the hash table */
	CTBPF_CNT_INSERT_FAILED, /* __nf_conntrack_confirm returned NF_DROP */
	CTBPF_CNT_CHAINTOOLONG,	 /* confirm dropped the packet: bucket chain over the kernel's limit */
	CTBPF_CNT_CLASH_RESOLVE, /* confirm found a clash and kept the packet (NF_ACCEPT, other entry) */
	CTBPF_CNT_DESTROY,	 /* nf_conntrack_free: the entry's memory went back to the slab */
	CTBPF_CNT_DELETE,	 /* nf_ct_delete removed a confirmed entry from the table */
	CTBPF_CNT_NETFILTER_DROP,/* kfree_skb with SKB_DROP_REASON_NETFILTER_DROP (any netfilter verdict) */
	CTBPF_CNT_LOST_EVENTS,	 /* bpf_ringbuf_reserve failed: an event that user space never sees */
	CTBPF_CNT_CONFIRM_UNPAIRED, /* confirm exit without a recorded entry (stash full or nested) */
	CTBPF_CNT_CHAIN_TRUNCATED,  /* chain walk hit CTBPF_CHAIN_WALK_MAX before the nulls marker */
	CTBPF_CNT_LIFETIME_UNTRACKED, /* sampled entry whose birth the full `births` map could not keep */
	CTBPF_CNT_SOURCE_UNTRACKED,   /* insert or destroy whose source the full `source_counts` map lost */
	CTBPF_CNT_DROP_EVENTS_SUPPRESSED, /* drop event over the `drop_events_per_s` budget: not in the ring */
	CTBPF_CNT_NAT_BLACKHOLED, /* kfree_skb of a packet whose entry is NAT'd (struct ctbpf_blackhole_key) */
	CTBPF_CNT_MAX,
};

/* Protocol classes for per-protocol counts and lifetime histograms. */
enum ctbpf_proto_class {
	CTBPF_PROTO_TCP = 0,
	CTBPF_PROTO_UDP,
	CTBPF_PROTO_ICMP, /* ICMP and ICMPv6 */
	CTBPF_PROTO_OTHER,
	CTBPF_PROTO_MAX,
};

/* enum tcp_conntrack has 10-12 states across kernels; slots past the kernel's last stay 0. */
#define CTBPF_TCP_STATES 16

struct ctbpf_counters {
	__u64 c[CTBPF_CNT_MAX];
	__u64 chain_max; /* longest chain seen on this CPU */
	__u64 inserts_by_proto[CTBPF_PROTO_MAX];
	__u64 destroys_by_proto[CTBPF_PROTO_MAX]; /* confirmed entries only */
	__u64 tcp_deaths_by_state[CTBPF_TCP_STATES];
};

/* Per-netns counts: CTBPF_NETNS_SLOTS slots per CPU (struct ctbpf_cpu_state), found by a hash of the
 * netns inode and up to CTBPF_NETNS_PROBES steps from it. A netns that finds none counts in the
 * CTBPF_NETNS_OTHER slot, so a node with 10,000 namespaces costs what one with a thousand does.
 * The kernel hands a dead netns's inode to the next netns made (the lowest free number), so a slot
 * also keeps which netns holds the inode (struct net's random hash_mix): a later netns on the same
 * inode moves the dead one's counts to CTBPF_NETNS_OTHER and starts from zero. Slots are reused as
 * inodes are, so pod churn does not fill them. */
#define CTBPF_NETNS_SLOTS 1024 /* a power of two */
#define CTBPF_NETNS_PROBES 16
#define CTBPF_NETNS_OTHER 0

struct ctbpf_netns_counts {
	__u64 inserts;
	__u64 destroys; /* confirmed entries only */
};

struct ctbpf_netns_slot {
	__u32 netns;	  /* inode; 0: free */
	__u32 identity;	  /* the netns holding the inode (its hash_mix): a new one on a reused inode differs */
	__u64 claimed_ns; /* when this CPU first counted this identity: across CPUs the newest is the live one */
	struct ctbpf_netns_counts counts;
};

/* Per-source counts for "who fills the table" (PERCPU_HASH, bounded; a source that finds the map full
 * is counted in CTBPF_CNT_SOURCE_UNTRACKED). Enabled by the `track_sources` rodata. */
#define CTBPF_SOURCES_MAX 16384

struct ctbpf_source_key {
	__u32 netns;
	__u8 l3; /* AF_INET / AF_INET6 */
	__u8 _pad[3];
	__u8 addr[16];
};

/* Inserts per (L4 protocol, destination port) for `ctbpf doctor` (LRU_PERCPU_HASH, bounded; enabled by
 * the `track_ports` rodata). ICMP's "port" is its type and code. */
#define CTBPF_PORTS_MAX 1024

struct ctbpf_port_key {
	__u8 l4;
	__u8 _pad;
	__u16 dport; /* host byte order */
};

/*
 * NAT'd flows whose packets die on this machine after the NAT: one element per (flow, drop reason) in
 * the `nat_blackholes` LRU hash, counted by the kfree_skb tracepoint (5.17+: it gives a reason). The
 * stale-entry incident: a UDP flow DNAT'd to a backend that went away refreshes its entry with every
 * packet, so the entry never expires and every packet dies (no route, no neighbour, a filter). Only a
 * dropped packet pays; nothing runs on the new-flow path.
 */
#define CTBPF_BLACKHOLES_MAX 1024

struct ctbpf_blackhole_key {
	__u32 netns;
	__u32 reason; /* enum skb_drop_reason: the running kernel's number, named from its BTF */
	__u16 zone;
	__u8 l3;      /* AF_INET / AF_INET6 */
	__u8 l4;      /* IPPROTO_* */
	__u8 dir;     /* the dropped packet's direction: 0 original, 1 reply */
	__u8 _pad;
	__u16 sport;  /* the original tuple, host byte order */
	__u16 dport;
	__u8 _pad2[2];
	__u8 saddr[16];
	__u8 daddr[16];
};

struct ctbpf_blackhole {
	__u64 first_ns; /* bpf_ktime_get_ns() of the first drop and the latest */
	__u64 last_ns;
	__u64 packets;
	__u32 status;	  /* the entry's IPS_* bits at the first drop: IPS_SRC_NAT (1 << 4), IPS_DST_NAT (1 << 5) */
	__u16 reply_sport; /* the reply tuple: its source is where a DNAT sends the flow, its destination */
	__u16 reply_dport; /* where an SNAT makes it come from */
	__u8 reply_saddr[16];
	__u8 reply_daddr[16];
};

/*
 * The DNS race: UDP port 53 entries refused or merged at confirm (insert_failed, chaintoolong,
 * clash_resolve), by netns, the address asked (the original destination: a Service's) and the one that
 * answers (the reply source: where a DNAT sent it). Counted on the refused path only.
 */
#define CTBPF_DNS_RACES_MAX 1024

struct ctbpf_dns_race_key {
	__u32 netns;
	__u32 cause; /* CTBPF_CNT_INSERT_FAILED, CTBPF_CNT_CHAINTOOLONG or CTBPF_CNT_CLASH_RESOLVE */
	__u8 l3;
	__u8 _pad[3];
	__u8 service[16];
	__u8 resolver[16];
};

/* Per-CPU chain-length histogram: one slot array, see slots.h for the slot math. */
struct ctbpf_chain_hist {
	__u64 slot[CTBPF_CHAIN_SLOTS];
	__u64 sum;	/* sum of lengths, for the mean */
	__u64 last_len; /* the kernel side's scratch (record_chain_length()): not a statistic */
};

/* Lifetime (insert to free of an inserted entry) histograms per protocol class, in ms, log2 slots. */
struct ctbpf_lifetime_hist {
	__u64 slot[CTBPF_PROTO_MAX][CTBPF_LOG2_SLOTS];
	__u64 sum_ms[CTBPF_PROTO_MAX];
};

/*
 * Everything one CPU counts, in one element of the `cpu_state` array (one element per possible CPU,
 * mmapped by user space). Programs write only their own CPU's element. User space reads the mapping
 * with plain loads, never with a map syscall: a syscall's copy holds the CPU's bpf_prog_active
 * (bpf_disable_instrumentation(), kernel/bpf/syscall.c) and can be preempted holding it, and the
 * kernel skips every kprobe program on that CPU meanwhile (a softirq's confirm included).
 */
struct ctbpf_cpu_state {
	struct ctbpf_counters counters;
	struct ctbpf_chain_hist chain;
	struct ctbpf_lifetime_hist lifetime;
	struct ctbpf_netns_slot netns_other; /* CTBPF_NETNS_OTHER: netns that found no slot */
	struct ctbpf_netns_slot netns[CTBPF_NETNS_SLOTS];
};

/* Ring-buffer event kinds; user space enables them with the `event_mask` rodata (1 << kind). */
enum ctbpf_event_kind {
	CTBPF_EV_INSERT = 1,
	CTBPF_EV_DESTROY = 2,
	CTBPF_EV_DROP = 3,
};

struct ctbpf_event {
	__u64 ts_ns;	   /* bpf_ktime_get_ns() */
	__u32 kind;	   /* enum ctbpf_event_kind */
	__u32 cause;	   /* for drops: enum ctbpf_counter of the cause */
	__u32 netns;	   /* netns inode */
	__u16 zone;
	__u8 l3;	   /* AF_INET / AF_INET6 */
	__u8 l4;	   /* IPPROTO_* */
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;	   /* host byte order */
	__u16 dport;
	__u32 value;	   /* chain length for inserts, lifetime ms for destroys (0: not sampled) */
};

/*
 * The in-kernel rate limit of drop events (serve): each CPU lets at most `per_s` through in each
 * one-second window, so a drop storm costs a bounded ring and bounded user-space work. Per CPU: no
 * atomics, no shared cache line. Here, not in the BPF file, so a unit test runs the kernel's logic.
 */
struct ctbpf_event_budget {
	__u64 window_start_ns;
	__u64 used;
};

/* 1 if one more event fits this CPU's budget at now_ns (and takes it), 0 if it must be suppressed. */
CTBPF_INLINE int ctbpf_budget_admit(struct ctbpf_event_budget *b, __u64 now_ns, __u64 per_s)
{
	if (now_ns - b->window_start_ns >= 1000000000ULL) {
		b->window_start_ns = now_ns;
		b->used = 0;
	}
	if (b->used >= per_s)
		return 0;
	b->used++;
	return 1;
}

/*
 * Why __nf_conntrack_confirm() returned NF_DROP, decided from the entry's state at its return
 * (bpf/core_fixes.bpf.h gathers the facts and explains the kernel's paths). Here, not in the BPF file,
 * so a unit test covers both kernel behaviours, including the one no kernel here has.
 */
enum ctbpf_confirm_drop {
	CTBPF_CONFIRM_DROP_INSERT_FAILED,     /* dying, or an unresolvable clash */
	CTBPF_CONFIRM_DROP_CHAINTOOLONG,      /* the chain limit (or nf_ct_ext_valid_pre, indistinguishable) */
	CTBPF_CONFIRM_DROP_ALREADY_CONFIRMED, /* a clone won: WARN_ON_ONCE, no statistic */
	CTBPF_CONFIRM_DROP_AFTER_INSERT,      /* inserted, then killed (nf_ct_ext_valid_post) */
};

CTBPF_INLINE enum ctbpf_confirm_drop ctbpf_confirm_drop_kind(int confirmed, int dying, int linked, int clash_seen)
{
	if (confirmed && dying)
		return CTBPF_CONFIRM_DROP_AFTER_INSERT;
	if (confirmed && linked)
		return CTBPF_CONFIRM_DROP_ALREADY_CONFIRMED;
	if (clash_seen || dying)
		return CTBPF_CONFIRM_DROP_INSERT_FAILED;
	return CTBPF_CONFIRM_DROP_CHAINTOOLONG;
}

/* Was the entry ever in the table, asked as it is freed: every inserted entry leaves through
 * nf_ct_delete(), which sets IPS_DYING, and the kernels that set IPS_CONFIRMED before confirm's checks
 * free refused entries with that bit. */
CTBPF_INLINE int ctbpf_was_inserted(int confirmed, int dying)
{
	return confirmed && dying;
}

/* Keep BPF and C++ in lockstep: both compilers check these. */
#ifdef __cplusplus
#define CTBPF_STATIC_ASSERT static_assert
#else
#define CTBPF_STATIC_ASSERT _Static_assert
#endif
CTBPF_STATIC_ASSERT(sizeof(struct ctbpf_counters) ==
			    8 * (CTBPF_CNT_MAX + 1 + 2 * CTBPF_PROTO_MAX + CTBPF_TCP_STATES),
		    "ctbpf_counters layout");
CTBPF_STATIC_ASSERT(sizeof(struct ctbpf_chain_hist) == 8 * (CTBPF_CHAIN_SLOTS + 2), "chain_hist layout");
CTBPF_STATIC_ASSERT(sizeof(struct ctbpf_lifetime_hist) == 8 * CTBPF_PROTO_MAX * (CTBPF_LOG2_SLOTS + 1),
		    "lifetime_hist layout");
CTBPF_STATIC_ASSERT(sizeof(struct ctbpf_event) == 64, "ctbpf_event layout");
CTBPF_STATIC_ASSERT(sizeof(struct ctbpf_netns_counts) == 16, "ctbpf_netns_counts layout");
CTBPF_STATIC_ASSERT(sizeof(struct ctbpf_netns_slot) == 32, "ctbpf_netns_slot layout");
CTBPF_STATIC_ASSERT(sizeof(struct ctbpf_cpu_state) ==
			    sizeof(struct ctbpf_counters) + sizeof(struct ctbpf_chain_hist) +
				    sizeof(struct ctbpf_lifetime_hist) + 32 * (CTBPF_NETNS_SLOTS + 1),
		    "ctbpf_cpu_state layout");
CTBPF_STATIC_ASSERT((CTBPF_NETNS_SLOTS & (CTBPF_NETNS_SLOTS - 1)) == 0, "CTBPF_NETNS_SLOTS: a power of two");
CTBPF_STATIC_ASSERT(sizeof(struct ctbpf_source_key) == 24, "ctbpf_source_key layout");
CTBPF_STATIC_ASSERT(sizeof(struct ctbpf_port_key) == 4, "ctbpf_port_key layout");
CTBPF_STATIC_ASSERT(sizeof(struct ctbpf_event_budget) == 16, "ctbpf_event_budget layout");
CTBPF_STATIC_ASSERT(sizeof(struct ctbpf_blackhole_key) == 52, "ctbpf_blackhole_key layout");
CTBPF_STATIC_ASSERT(sizeof(struct ctbpf_blackhole) == 64, "ctbpf_blackhole layout");
CTBPF_STATIC_ASSERT(sizeof(struct ctbpf_dns_race_key) == 44, "ctbpf_dns_race_key layout");

#endif /* CTBPF_ABI_H */
