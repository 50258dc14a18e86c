// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ctbpf's kernel side. Each conntrack probe point has ONE handler body (on_*), called from two thin
 * program families that user space chooses between before load by a real trial:
 *   fentry/fexit      (BTF trampolines: cheapest, needs CONFIG_DEBUG_INFO_BTF + ftrace direct calls)
 *   kprobe/kretprobe  (CONFIG_KPROBES)
 * The tp_btf programs are always loaded; on kernels with neither family they are all ctbpf sees.
 * Counters and histograms are per-CPU and summed by user space once per interval: no per-event cost
 * outside the kernel.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "ctbpf/abi.h"
#include "maps.bpf.h"
#include "event_ring.bpf.h"
#include "core_fixes.bpf.h"

/* The kernel's name for this dual licence; GPL-compatible (include/linux/license.h), as
 * bpf_probe_read_kernel and friends, GPL-only helpers, require. */
char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define NF_DROP 0
#define NF_ACCEPT 1
#define IS_ERR_VALUE(ptr) ((unsigned long)(ptr) >= (unsigned long)-4095)
#define IPPROTO_ICMPV6_NUM 58

/* Set by user space before load. */
const volatile __u32 event_mask = 0;		  /* 1 << enum ctbpf_event_kind, for --events */
const volatile __u32 lifetime_sample_mask = 0; /* keep births of 1 entry in mask + 1 */
const volatile bool track_sources = false;	  /* per-source counts, for `ctbpf top` */
const volatile bool track_ports = false;	  /* per-destination-port inserts, for `ctbpf doctor` */
/* Drop events per second per CPU (serve); 0 = no limit (trace --events limits lines in user space). */
const volatile __u32 drop_events_per_s = 0;
const volatile __u32 chain_sample_mask = 0; /* walk the chain of 1 insert in mask + 1 (serve) */

static __always_inline bool wants(enum ctbpf_event_kind kind)
{
	return event_mask & (1U << kind);
}

/*
 * The key of per-call state kept from a probe's entry to its return: the thread, which it follows when
 * it migrates; but never pid 0 alone. On a gateway confirm runs in softirq on every CPU with the idle
 * task current, and every CPU's idle task has pid 0: their calls are keyed by CPU (an idle CPU's
 * softirq work never migrates, and softirqs do not nest). A softirq that interrupts a task between the
 * entry and the return of the same function shares the task's key: the outer call then goes unpaired,
 * counted in probe_misses.confirm_unpaired, never silently.
 */
#define CTX_IDLE_CPU (1ULL << 63)

static __always_inline __u64 context_key(void)
{
	__u64 id = bpf_get_current_pid_tgid();

	return (__u32)id ? id : CTX_IDLE_CPU | bpf_get_smp_processor_id();
}

static __always_inline __u32 proto_class(__u8 l4)
{
	switch (l4) {
	case IPPROTO_TCP: return CTBPF_PROTO_TCP;
	case IPPROTO_UDP: return CTBPF_PROTO_UDP;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6_NUM: return CTBPF_PROTO_ICMP;
	default: return CTBPF_PROTO_OTHER;
	}
}

static __always_inline __u8 ct_l4proto(struct nf_conn *ct)
{
	return BPF_CORE_READ(ct, tuplehash[IP_CT_DIR_ORIGINAL].tuple.dst.protonum);
}

/*
 * A fingerprint of the entry's original tuple, kept with its birth: entries live in a
 * SLAB_TYPESAFE_BY_RCU cache, so an address is reused at once, and a birth whose free was missed (a
 * skipped program run) must not become the birth of the next entry at that address.
 */
static __always_inline __u32 tuple_tag(__u16 sport, __u16 dport, __u32 saddr, __u32 daddr, __u8 l4)
{
	return (sport | (__u32)dport << 16) ^ saddr ^ daddr ^ l4;
}

static __always_inline __u32 ct_tuple_tag_read(const struct nf_conntrack_tuple *t, __u8 l4)
{
	return tuple_tag(BPF_CORE_READ(t, src.u.all), BPF_CORE_READ(t, dst.u.all), BPF_CORE_READ(t, src.u3.ip),
			 BPF_CORE_READ(t, dst.u3.ip), l4);
}

/*
 * The Fibonacci multiplier 2654435761 (0x9e3779b1) sign-extended, as the 32-bit immediate of a BPF
 * multiply is: bits 0-31 of a product depend only on the factors' bits 0-31, so the hashes below, which
 * keep bits within 16-31, run in plain 64-bit arithmetic with no truncation to a u32 and no 64-bit
 * constant.
 */
#define FIBONACCI_MUL 0xffffffff9e3779b1ULL

/*
 * A uniform 1-in-N sample of entries for lifetimes, decided once at insert (free only asks the births
 * map): a multiplicative (Fibonacci) hash of a seed of the entry (struct ct_facts) and this CPU's
 * insert count, bits 16 up, where bpf_get_prandom_u32() was a helper call per new flow (and murmur3's
 * finalizer two multiplies more). The count keeps an entry that comes back from always or never being
 * sampled; the seed keeps a workload's period from lining up with the count's.
 */
static __always_inline bool lifetime_sampled(__u64 seed, __u64 inserts)
{
	/* the mask is below 1 << 16: --lifetime-sample <= 65536 */
	return ((((seed ^ inserts) * FIBONACCI_MUL) >> 16) & lifetime_sample_mask) == 0;
}

static __always_inline __u32 ct_netns(struct nf_conn *ct)
{
	return BPF_CORE_READ(ct, ct_net.net, ns.inum);
}

/*
 * This CPU's counts for a netns (its inode, and which netns holds it): its slot, claimed on first use,
 * a multiplicative hash of the inode and up to CTBPF_NETNS_PROBES slots on; a netns that finds neither
 * its slot nor a free one counts in netns_other. No map call: the slots are in this CPU's own state.
 * A slot whose inode a later netns now holds (the dead one's entries are all gone by then: conntrack's
 * netns exit waits for them before the inode is freed) gives its counts to netns_other and starts
 * again, so a new pod never inherits a dead one's totals (struct ctbpf_netns_slot). Only this CPU
 * writes the slots; a program nested on the same CPU (a softirq) that claims the same slot between
 * this one's test and write would share it, a window of a few instructions that needs two namespaces'
 * first entries at once.
 */
static __always_inline struct ctbpf_netns_counts *netns_counts_of(struct ctbpf_cpu_state *st, __u32 netns,
								   __u32 identity)
{
	/* bits 22-31 of the product, once masked below: CTBPF_NETNS_SLOTS = 1 << 10 */
	__u64 home = (netns * FIBONACCI_MUL) >> 22;
	struct ctbpf_netns_counts *other = &st->netns_other.counts;
	/* A slot's netns and identity as the one 8-byte word they are in memory: one load and compare. */
	__u64 held_by = netns | (__u64)identity << 32;

	_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ &&
			       __builtin_offsetof(struct ctbpf_netns_slot, identity) == sizeof(__u32),
		       "netns, then identity, in one little-endian word");
	for (__u32 i = 0; i < CTBPF_NETNS_PROBES; i++) {
		struct ctbpf_netns_slot *slot = &st->netns[(home + i) & (CTBPF_NETNS_SLOTS - 1)];
		__u64 held = *(__u64 *)&slot->netns;

		if (held == held_by)
			return &slot->counts;
		if ((__u32)held == netns) {
			other->inserts += slot->counts.inserts;
			other->destroys += slot->counts.destroys;
			slot->counts.inserts = slot->counts.destroys = 0;
		} else if ((__u32)held) {
			continue;
		}
		slot->netns = netns;
		slot->identity = identity;
		slot->claimed_ns = bpf_ktime_get_ns();
		return &slot->counts;
	}
	return other;
}

/* This CPU's counts for the entry's original source address, or NULL (counted) when the map is full. */
static __always_inline struct ctbpf_netns_counts *source_counts_of(struct nf_conn *ct)
{
	struct ctbpf_netns_counts zero = {};
	struct ctbpf_source_key key = {};
	struct ctbpf_netns_counts *counts;

	key.netns = ct_netns(ct);
	key.l3 = (__u8)BPF_CORE_READ(ct, tuplehash[IP_CT_DIR_ORIGINAL].tuple.src.l3num);
	BPF_CORE_READ_INTO(&key.addr, ct, tuplehash[IP_CT_DIR_ORIGINAL].tuple.src.u3);
	counts = bpf_map_lookup_elem(&source_counts, &key);
	if (!counts) {
		bpf_map_update_elem(&source_counts, &key, &zero, BPF_NOEXIST);
		counts = bpf_map_lookup_elem(&source_counts, &key);
	}
	if (!counts)
		count(CTBPF_CNT_SOURCE_UNTRACKED);
	return counts;
}

/* One more insert for the entry's (protocol, destination port). The map is an LRU: when full, a new
 * port evicts the least recently counted one (its count is lost: doctor only ranks the busiest). */
static __always_inline void count_port(struct nf_conn *ct)
{
	struct ctbpf_port_key key = {};
	__u64 one = 1, *inserts;

	key.l4 = ct_l4proto(ct);
	key.dport = bpf_ntohs(BPF_CORE_READ(ct, tuplehash[IP_CT_DIR_ORIGINAL].tuple.dst.u.all));
	inserts = bpf_map_lookup_elem(&port_counts, &key);
	if (inserts)
		(*inserts)++;
	else
		bpf_map_update_elem(&port_counts, &key, &one, BPF_NOEXIST);
}

static __always_inline void fill_tuple(struct ctbpf_event *e, const struct nf_conntrack_tuple *t)
{
	BPF_CORE_READ_INTO(&e->saddr, t, src.u3);
	BPF_CORE_READ_INTO(&e->daddr, t, dst.u3);
	e->sport = bpf_ntohs(BPF_CORE_READ(t, src.u.all));
	e->dport = bpf_ntohs(BPF_CORE_READ(t, dst.u.all));
	e->l3 = (__u8)BPF_CORE_READ(t, src.l3num);
	e->l4 = BPF_CORE_READ(t, dst.protonum);
}

/* False when this CPU's drop-event budget is spent: the event is counted, not sent. */
static __always_inline bool drop_event_fits(void)
{
	__u32 zero = 0;
	struct ctbpf_event_budget *b;

	if (!drop_events_per_s)
		return true;
	b = bpf_map_lookup_elem(&event_budget, &zero);
	if (!b || ctbpf_budget_admit(b, bpf_ktime_get_ns(), drop_events_per_s))
		return true;
	count(CTBPF_CNT_DROP_EVENTS_SUPPRESSED);
	return false;
}

static __always_inline struct ctbpf_event *reserve_event(enum ctbpf_event_kind kind, __u32 cause)
{
	struct ctbpf_event *e;

	if (kind == CTBPF_EV_DROP && !drop_event_fits())
		return NULL;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(CTBPF_CNT_LOST_EVENTS);
		return NULL;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->kind = kind;
	e->cause = cause;
	e->value = 0;
	return e;
}

static __always_inline void emit_ct_event(enum ctbpf_event_kind kind, __u32 cause, struct nf_conn *ct,
					  __u32 value)
{
	struct ctbpf_event *e;

	if (!wants(kind))
		return;
	e = reserve_event(kind, cause);
	if (!e)
		return;
	e->netns = ct_netns(ct);
	e->zone = ct_zone_id(ct);
	fill_tuple(e, &ct->tuplehash[IP_CT_DIR_ORIGINAL].tuple);
	e->value = value;
	submit_event(e);
}

/* A function, not BPF_CORE_READ(call.ct, status): CO-RE would relocate our struct's field too. */
static __always_inline unsigned long ct_status(struct nf_conn *ct)
{
	return BPF_CORE_READ(ct, status);
}

/*
 * What the destroy and delete bodies need of an entry, gathered by each program family its cheapest
 * way. fentry programs get `ct` as a typed (BTF) pointer, which the verifier lets them load from
 * directly: one instruction per field, which the JIT guards with an exception-table entry. kprobe
 * programs get a plain number and need a bpf_probe_read_kernel() call per field (fentry_free's four
 * reads of a UDP entry, loaded directly instead: about a fifth of its run time in the 6.1 guest).
 * Pointers the programs keep in maps are plain numbers too, and so is confirm's entry, which comes out of
 * skb->_nfct (an unsigned long): confirm always reads.
 */
struct ct_facts {
	unsigned long status;
	struct hlist_nulls_node *next; /* ct_facts_read() only: the origin node's next, for the chain walk */
	__u32 netns;	      /* inode */
	__u32 netns_identity; /* struct net's hash_mix: tells a netns from a later one on the same inode */
	__u32 tag; /* tuple_tag() of the original tuple */
	__u8 l4;
	__u8 tcp_state; /* TCP entries only, when asked for */
	bool lean;	/* ct_facts_read_lean(): no tag, no next */
	__u64 sample_seed; /* lifetime_sampled()'s: the tag, or where there is none yet the entry's address */
};

static __always_inline struct ct_facts ct_facts_typed(struct nf_conn *ct)
{
	const struct nf_conntrack_tuple *t = &ct->tuplehash[IP_CT_DIR_ORIGINAL].tuple;
	struct ct_facts f = {
		.status = ct->status,
		.netns = ct->ct_net.net->ns.inum,
		.netns_identity = ct->ct_net.net->hash_mix,
		.l4 = t->dst.protonum,
	};

	f.tag = tuple_tag(t->src.u.all, t->dst.u.all, t->src.u3.ip, t->dst.u3.ip, f.l4);
	f.sample_seed = f.tag;

	if (f.l4 == IPPROTO_TCP)
		f.tcp_state = ct->proto.tcp.state;
	return f;
}

/*
 * Reading, the fields from the origin node's next to ct_net sit in one span of the entry (about 128
 * bytes on 5.10-6.12: the two tuple hashes, status, ct_net), taken in one probe read, where a read
 * per field took six, on every kprobe free. The netns's inode and hash_mix are two reads of 4 bytes:
 * a probe read's cost grows with its length, and the one read of the 188 bytes from one to the other
 * that this replaced cost kprobe_free 103 more guest instructions a run (977 against 874 in the
 * instruction-counted 6.1 guest, BENCHMARKS.md). The offsets are CO-RE relocated constants, so the
 * verifier knows every load's stack offset and drops the branch a kernel's layout does not take; a
 * layout where the fields are not in that order within CT_SPAN_MAX bytes (a randomized struct layout)
 * reads field by field.
 */
#define CT_SPAN_MAX 256
#define CT_OFFSET(field) __builtin_preserve_field_info(field, BPF_FIELD_BYTE_OFFSET)

/*
 * The netns's inode and hash_mix. `likely_net` (fexit on confirm: the netns of skb's device, a typed
 * pointer, or NULL) saves both reads when it is the entry's: they are then direct loads. Equal
 * pointers are the same netns, so this is never a guess.
 */
static __always_inline void netns_facts_read(struct net *net, struct net *likely_net, struct ct_facts *f)
{
	if (likely_net && net == likely_net) {
		f->netns = likely_net->ns.inum;
		f->netns_identity = likely_net->hash_mix;
	} else {
		f->netns = BPF_CORE_READ(net, ns.inum);
		f->netns_identity = BPF_CORE_READ(net, hash_mix);
	}
}

/* A field of the entry inside the span that ct_facts_read() took from offset `first` to `end`: a load
 * from the stack, at an offset the verifier knows (every operand is a CO-RE constant), so it drops
 * the branch a kernel's layout does not take. */
#define CT_SPAN_HAS(field, first, end)                                                              \
	(CT_OFFSET(field) >= (first) && CT_OFFSET(field) + sizeof(field) <= (end) &&                    \
	 (CT_OFFSET(field) - (first)) % sizeof(field) == 0)
#define CT_SPAN_GET(span, field, first)                                                             \
	({                                                                                          \
		/* the offset first: the verifier forbids subtracting from a stack pointer */       \
		__u32 at_ = CT_OFFSET(field) - (first);                                             \
		barrier_var(at_);                                                                   \
		*(typeof(field) *)((__u8 *)(span) + at_);                                           \
	})

/* Everything ct_facts_typed() gives, and the origin node's next, for the kprobe family's free and for
 * ctnetlink's inserts. */
static __always_inline struct ct_facts ct_facts_read(struct nf_conn *ct, bool tcp_state)
{
	__u64 span[CT_SPAN_MAX / 8];
	/* Every CT_OFFSET path starts at ct: through a tuple pointer it gives offsets in the tuple. */
	__u32 first = CT_OFFSET(ct->tuplehash[IP_CT_DIR_ORIGINAL].hnnode.next);
	__u32 end = CT_OFFSET(ct->ct_net.net) + sizeof(ct->ct_net.net);
	struct ct_facts f = {};
	struct net *net;
#define ORIG (ct->tuplehash[IP_CT_DIR_ORIGINAL].tuple)

	/* A failed span read (never seen) falls back to reading field by field, never to made-up zeros. */
	if (end - first <= sizeof(span) && CT_SPAN_HAS(ct->status, first, end) &&
	    CT_SPAN_HAS(ct->ct_net.net, first, end) && CT_SPAN_HAS(ORIG.dst.protonum, first, end) &&
	    CT_SPAN_HAS(ORIG.src.u.all, first, end) && CT_SPAN_HAS(ORIG.dst.u.all, first, end) &&
	    CT_SPAN_HAS(ORIG.src.u3.ip, first, end) && CT_SPAN_HAS(ORIG.dst.u3.ip, first, end) &&
	    bpf_probe_read_kernel(span, end - first, (void *)ct + first) == 0) {
		f.next = (struct hlist_nulls_node *)span[0];
		f.status = CT_SPAN_GET(span, ct->status, first);
		f.l4 = CT_SPAN_GET(span, ORIG.dst.protonum, first);
		net = CT_SPAN_GET(span, ct->ct_net.net, first);
		f.tag = tuple_tag(CT_SPAN_GET(span, ORIG.src.u.all, first), CT_SPAN_GET(span, ORIG.dst.u.all, first),
				  CT_SPAN_GET(span, ORIG.src.u3.ip, first), CT_SPAN_GET(span, ORIG.dst.u3.ip, first),
				  f.l4);
	} else {
		f.next = BPF_CORE_READ(ct, tuplehash[IP_CT_DIR_ORIGINAL].hnnode.next);
		f.status = ct_status(ct);
		f.l4 = ct_l4proto(ct);
		net = BPF_CORE_READ(ct, ct_net.net);
		f.tag = ct_tuple_tag_read(&ORIG, f.l4);
	}
	f.sample_seed = f.tag;
	netns_facts_read(net, NULL, &f);
	if (tcp_state && f.l4 == IPPROTO_TCP)
		f.tcp_state = BPF_CORE_READ(ct, proto.tcp.state);
	return f;
#undef ORIG
}

/*
 * What confirm's exit needs of every new entry: status, netns and protocol, in one probe read from
 * the end of the reply tuple to ct_net (24 bytes; 32 on 5.10, where a u16 `cpu` for the per-CPU
 * entry lists sits between status and ct_net: 5.19's series "netfilter: conntrack: remove percpu
 * lists" removed both; the 5.10 and 6.1 guests' BTF show it there and gone).
 * The protocol is the reply tuple's (nf_ct_invert_tuple() copies it from the original), right before
 * status; the original tuple's is 56 bytes further away. The tuple's tag and the origin node's next are
 * read only for the inserts that are sampled (keep_birth(), record_chain_length()). In the
 * instruction-counted 6.1 guest (bench/profile.sh, guest instructions per run of fexit_confirm in
 * serve): ct_facts_read()'s 128-byte span with its range checks 667; a 16-byte read of status and
 * ct_net plus a 1-byte read of the protocol 532; this read 492, and 430 with its layout tested by
 * equalities of CO-RE constants, where CT_SPAN_HAS()'s range and alignment tests ran ~40 instructions
 * (the verifier drops the branch a layout does not take, but the JIT still runs the arithmetic).
 */
static __always_inline struct ct_facts ct_facts_read_lean(struct nf_conn *ct, struct net *likely_net)
{
	__u64 l4_at = CT_OFFSET(ct->tuplehash[IP_CT_DIR_REPLY].tuple.dst.protonum);
	__u64 status_at = CT_OFFSET(ct->status), net_at = CT_OFFSET(ct->ct_net.net);
	/* Entries are 64-byte aligned: lifetime_sampled()'s multiply mixes the bits above into those it
	 * keeps. */
	struct ct_facts f = { .lean = true, .sample_seed = (__u64)ct };
	struct {
		__u8 _tuple_end[6]; /* the 8-byte word that ends with the reply tuple's protocol and dir */
		__u8 l4;
		__u8 _dir;
		unsigned long status;
		__u64 after_status[2]; /* ct_net: [0], or [1] on 5.10 */
	} span;
	struct net *net;

	/* Two layouts, each tested by its own equalities: the one a kernel has runs only its own. */
	if (status_at == l4_at + 2 && net_at == status_at + 8 &&
	    bpf_probe_read_kernel(&span, 24, (void *)ct + status_at - 8) == 0) {
		net = (struct net *)span.after_status[0];
	} else if (status_at == l4_at + 2 && net_at == status_at + 16 &&
		   bpf_probe_read_kernel(&span, 32, (void *)ct + status_at - 8) == 0) {
		net = (struct net *)span.after_status[1];
	} else {
		span.l4 = ct_l4proto(ct);
		span.status = ct_status(ct);
		net = BPF_CORE_READ(ct, ct_net.net);
	}
	f.l4 = span.l4;
	f.status = span.status;
	netns_facts_read(net, likely_net, &f);
	return f;
}

/* nf_ct_is_expired(): (s32)(ct->timeout - nfct_time_stamp) <= 0, nfct_time_stamp = (u32)jiffies */
static __always_inline bool ct_is_expired(struct nf_conn *ct)
{
	__u32 timeout = BPF_CORE_READ(ct, timeout);

	return (__s32)(timeout - (__u32)bpf_jiffies64()) <= 0;
}

/* Lifetimes run from the insert: 1 entry in N is stamped there (lifetime_sampled()). `inserts` is
 * this CPU's insert count, this one included. */
static __always_inline void keep_birth(struct nf_conn *ct, const struct ct_facts *f, __u64 inserts)
{
	__u64 key = (__u64)ct;
	struct birth birth = {};

	if (!lifetime_sampled(f->sample_seed, inserts))
		return;
	birth.ns = bpf_ktime_get_ns();
	birth.tag = f->lean ? ct_tuple_tag_read(&ct->tuplehash[IP_CT_DIR_ORIGINAL].tuple, f->l4) : f->tag;
	if (bpf_map_update_elem(&births, &key, &birth, BPF_ANY))
		count(CTBPF_CNT_LIFETIME_UNTRACKED);
}

/*
 * ---- early_drop: called by __nf_conntrack_alloc() only when the table is full; 0 means "table full,
 * dropping packet": alloc returns ERR_PTR and nf_conntrack_in() drops the packet. Nothing else of
 * alloc is hooked: one program per new flow (confirm's exit) is what ctbpf costs (BENCHMARKS.md); an
 * entry's allocation is counted where it is inserted, or at its free when it never was.
 */

static __always_inline void early_drop_in_flight_add(__s64 delta)
{
	__sync_fetch_and_add(&in_flight.early_drop, delta);
}

static __always_inline void on_early_drop_enter(struct net *net)
{
	__u64 key = context_key();
	struct early_drop_call running = { .netns = BPF_CORE_READ(net, ns.inum) };

	early_drop_in_flight_add(1);
	bpf_map_update_elem(&early_drop_calls, &key, &running, BPF_ANY);
}

static __always_inline void on_early_drop_exit(int evicted)
{
	__u64 key = context_key();
	struct early_drop_call *call = bpf_map_lookup_elem(&early_drop_calls, &key);
	__u32 netns = call ? call->netns : 0;
	struct ctbpf_event *e;

	early_drop_in_flight_add(-1);
	if (call)
		bpf_map_delete_elem(&early_drop_calls, &key);
	if (evicted)
		return;
	count(CTBPF_CNT_TABLE_FULL);
	if (!wants(CTBPF_EV_DROP))
		return;
	/* The refused flow's tuple is alloc's argument, which nothing here sees: the netns says where. */
	e = reserve_event(CTBPF_EV_DROP, CTBPF_CNT_TABLE_FULL);
	if (!e)
		return;
	__builtin_memset(&e->netns, 0, sizeof(*e) - __builtin_offsetof(struct ctbpf_event, netns));
	e->netns = netns;
	submit_event(e);
}

/* ---- delete: removal from the table (timeout, flush, RST, gc, eviction) --------------------------- */

/* This context's early_drop() call, when it is inside one; the common case costs an inlined array read. */
static __always_inline struct early_drop_call *inside_early_drop(void)
{
	__u64 key;

	if (in_flight.early_drop == 0)
		return NULL;
	key = context_key();
	return bpf_map_lookup_elem(&early_drop_calls, &key);
}

/*
 * At nf_ct_delete()'s return, when it returns true: the call that set IPS_DYING (its test_and_set_bit)
 * is the one that unlinks the entry, and two paths racing to delete one expired entry (gc and a
 * lookup) both see the bit clear at entry. A false return is the loser of such a race, or a delete
 * whose destroy event could not be delivered (ct_delete_undelivered()): counted as a delete, never as
 * an eviction (the kernel's early_drop() counts only a true return). `ct` is NULL where unknown.
 */
static __always_inline void on_delete_exit(struct nf_conn *ct, bool deleted)
{
	if (!deleted) {
		if (ct && ct_delete_undelivered(ct))
			count(CTBPF_CNT_DELETE);
		return;
	}
	count(CTBPF_CNT_DELETE);
	/* Inside early_drop(), a live entry being deleted is an eviction; expired ones are plain gc. */
	if (ct && inside_early_drop() && !ct_is_expired(ct)) {
		count(CTBPF_CNT_EARLY_DROP);
		emit_ct_event(CTBPF_EV_DROP, CTBPF_CNT_EARLY_DROP, ct, 0);
	}
}

/* ---- confirm: insertion into the hash table ------------------------------------------------------ */

/* `node` is the new entry's origin-direction node's next. */
static __always_inline __u32 record_chain_length(struct hlist_nulls_node *node, struct ctbpf_cpu_state *st)
{
	struct ctbpf_counters *c = &st->counters;
	struct ctbpf_chain_hist *h = &st->chain;
	__u32 slot;
	__u64 len = 1;
	bool ended = false;

	/*
	 * The new entry sits at the head of its origin-direction bucket (hlist_nulls_add_head_rcu), so the
	 * bucket's length is 1 + the nodes after it, up to the nulls marker (a pointer with bit 0 set).
	 * Other CPUs may change the chain while we walk it (SLAB_TYPESAFE_BY_RCU can even move a node to
	 * another bucket): every read is a non-faulting probe read and the walk has a hard bound.
	 */
	for (int i = 0; i < CTBPF_CHAIN_WALK_MAX; i++) {
		if ((unsigned long)node & 1) {
			ended = true;
			break;
		}
		len++;
		barrier_var(len);
		if (bpf_probe_read_kernel(&node, sizeof(node), &node->next))
			break;
	}
	if (!ended)
		c->c[CTBPF_CNT_CHAIN_TRUNCATED]++;

	/*
	 * The histogram index comes from a copy of len the verifier cannot see into. Indexing with len itself
	 * makes the verifier track len exactly, back through the walk, so it explores all that follows the
	 * walk once per length the walk can end at: 204,757 instructions processed for fexit_confirm on 6.1,
	 * 5-7 s of load+verify under qemu TCG (`ctbpf -v` prints the verifier's counts). The verifier does
	 * not track what map memory holds, so len stored there and loaded back (volatile: clang must not
	 * forward the store) is just "some number" to it, which needs the bounds check that clang would
	 * otherwise drop (ctbpf_chain_slot() already clamps): two instructions, where a helper call
	 * (bpf_probe_read_kernel of len) did this before. barrier_var(len) keeps clang from deriving len from i.
	 */
	h->last_len = len;
	slot = ctbpf_chain_slot(*(volatile __u64 *)&h->last_len);
	barrier_var(slot);
	if (slot >= CTBPF_CHAIN_SLOTS)
		return (__u32)len;
	h->slot[slot]++;
	h->sum += len;
	if (len > c->chain_max)
		c->chain_max = len;
	return (__u32)len;
}

static __always_inline struct confirm_call confirm_call_of(struct sk_buff *skb)
{
	struct confirm_call call = { .skb = skb, .ct = skb_conntrack(skb) };

	return call;
}

/*
 * An entry now in the table: by confirm (a packet) or nf_conntrack_hash_check_insert (ctnetlink, kfunc).
 * `f` is what ct_facts_read() or ct_facts_read_lean() found; `walk_chain` is false where there is no
 * chain to walk. The walk is sampled (chain_sample_mask, serve): 1 insert in N on each CPU, by that
 * CPU's insert count.
 */
static __always_inline void count_insert(struct nf_conn *ct, struct ctbpf_cpu_state *st, bool walk_chain,
					 const struct ct_facts *f)
{
	struct ctbpf_counters *c = &st->counters;
	struct ctbpf_netns_counts *netns;
	__u32 len = 0;

	c->c[CTBPF_CNT_INSERT]++;
	keep_birth(ct, f, c->c[CTBPF_CNT_INSERT]);
	c->inserts_by_proto[proto_class(f->l4) & (CTBPF_PROTO_MAX - 1)]++;
	netns_counts_of(st, f->netns, f->netns_identity)->inserts++;
	if (track_sources) {
		netns = source_counts_of(ct);
		if (netns)
			netns->inserts++;
	}
	if (track_ports)
		count_port(ct);
	if (walk_chain && (c->c[CTBPF_CNT_INSERT] & chain_sample_mask) == 0)
		len = record_chain_length(f->lean ? BPF_CORE_READ(ct, tuplehash[IP_CT_DIR_ORIGINAL].hnnode.next) : f->next,
					  st);
	emit_ct_event(CTBPF_EV_INSERT, 0, ct, len);
}

/* A UDP port 53 entry refused or merged at confirm: the DNS race (struct ctbpf_dns_race_key). */
static __always_inline void count_dns_race(struct nf_conn *ct, __u32 cause)
{
	struct ctbpf_dns_race_key key = {};
	__u64 zero = 0, *races;

	if (ct_l4proto(ct) != IPPROTO_UDP ||
	    BPF_CORE_READ(ct, tuplehash[IP_CT_DIR_ORIGINAL].tuple.dst.u.all) != bpf_htons(53))
		return;
	key.netns = ct_netns(ct);
	key.cause = cause;
	key.l3 = (__u8)BPF_CORE_READ(ct, tuplehash[IP_CT_DIR_ORIGINAL].tuple.src.l3num);
	BPF_CORE_READ_INTO(&key.service, ct, tuplehash[IP_CT_DIR_ORIGINAL].tuple.dst.u3);
	BPF_CORE_READ_INTO(&key.resolver, ct, tuplehash[IP_CT_DIR_REPLY].tuple.src.u3);
	races = bpf_map_lookup_elem(&dns_races, &key);
	if (!races) {
		bpf_map_update_elem(&dns_races, &key, &zero, BPF_NOEXIST);
		races = bpf_map_lookup_elem(&dns_races, &key);
	}
	if (races)
		__sync_fetch_and_add(races, 1);
}

/* Refused (insert_failed, chaintoolong) or merged (clash_resolve) at confirm: the rare path, which may
 * look at the entry's tuple. */
static __always_inline void count_refused(struct nf_conn *ct, struct ctbpf_counters *c, __u32 cause)
{
	c->c[cause]++;
	count_dns_race(ct, cause);
	emit_ct_event(CTBPF_EV_DROP, cause, ct, 0);
}

/*
 * `call` is what confirm's entry saw (skb, its entry, whether nf_ct_resolve_clash ran), or NULL when
 * the exit could not be paired with it. `reread` (kprobe family) re-reads skb's entry even when no
 * clash was seen: there nf_ct_resolve_clash is optional, and the entry a clash replaced is freed.
 * One lookup of this CPU's state serves the whole run, which comes once per new flow.
 */
static __always_inline void on_confirm_exit(const struct confirm_call *paired, int verdict, bool reread,
					    struct net *likely_net)
{
	struct ctbpf_cpu_state *st = this_cpu_state();
	struct ctbpf_counters *c;
	struct confirm_call call;
	struct ct_facts f;
	struct nf_conn *ct;

	if (!st)
		return;
	c = &st->counters;
	if (!paired) {
		c->c[CTBPF_CNT_CONFIRM_UNPAIRED]++;
		return;
	}
	call = *paired;

	if (verdict != NF_ACCEPT) {
		/* Nothing of the entry but its own fields: an unresolvable clash keeps it on skb. */
		switch (confirm_drop_kind(call.ct, call.clash_seen)) {
		case CTBPF_CONFIRM_DROP_CHAINTOOLONG:
			c->c[CTBPF_CNT_INSERT_FAILED]++;
			count_refused(call.ct, c, CTBPF_CNT_CHAINTOOLONG);
			break;
		case CTBPF_CONFIRM_DROP_INSERT_FAILED:
			count_refused(call.ct, c, CTBPF_CNT_INSERT_FAILED);
			break;
		case CTBPF_CONFIRM_DROP_AFTER_INSERT:
			f = ct_facts_read_lean(call.ct, likely_net);
			count_insert(call.ct, st, false, &f);
			break;
		default: /* CTBPF_CONFIRM_DROP_ALREADY_CONFIRMED: the kernel counts nothing */
			break;
		}
		return;
	}
	/*
	 * A clash resolved by adopting the entry already in the table swaps skb's conntrack (and frees
	 * ours): the event describes the adopted entry, which has the same tuple. Only
	 * nf_ct_resolve_clash() swaps it, so without a clash skb's entry is still call.ct.
	 */
	ct = call.clash_seen || reread ? skb_conntrack(call.skb) : call.ct;
	if (ct != call.ct) {
		count_refused(ct, c, CTBPF_CNT_CLASH_RESOLVE);
		return;
	}
	f = ct_facts_read_lean(ct, likely_net);
	/* NF_ACCEPT without IPS_CONFIRMED: a reply-direction packet, nothing was inserted. */
	if (!(f.status & CT_STATUS_CONFIRMED))
		return;
	/*
	 * A NAT clash is a clash resolved by inserting the entry in the reply direction only: counted as
	 * both, like the kernel (clash_resolve; the entry is in nf_conntrack_count until its first reply
	 * kills it), and it is deleted and destroyed like any inserted entry. Its origin node is a fake
	 * add, so there is no chain to walk.
	 */
	if (ct_is_nat_clash(f.status)) {
		count_refused(ct, c, CTBPF_CNT_CLASH_RESOLVE);
		count_insert(ct, st, false, &f);
		return;
	}
	count_insert(ct, st, true, &f);
}

/*
 * nf_conntrack_hash_check_insert() puts entries made without a packet in the table: ctnetlink's create
 * (conntrack -I, conntrackd) and the bpf_ct_insert_entry() kfunc. 5.15, commit d7e7747ac5c2
 * ("netfilter: refuse insertion if chain has grown too large") made it refuse long chains with
 * -ENOSPC, counted as chaintoolong only (no insert_failed); -EEXIST and -EAGAIN count nothing.
 */
#define CTBPF_ENOSPC 28

static __always_inline void on_check_insert_exit(struct nf_conn *ct, int err)
{
	struct ctbpf_cpu_state *st = this_cpu_state();
	struct ct_facts f;

	if (!st || !ct)
		return;
	if (err == 0) {
		f = ct_facts_read(ct, false);
		count_insert(ct, st, true, &f);
	} else if (err == -CTBPF_ENOSPC) {
		count_refused(ct, &st->counters, CTBPF_CNT_CHAINTOOLONG);
	}
}

/* ---- destroy: the entry's memory goes back to the slab ------------------------------------------- */

static __always_inline void on_free_enter(struct nf_conn *ct, const struct ct_facts *f)
{
	struct ctbpf_cpu_state *st = this_cpu_state();
	struct ctbpf_netns_counts *netns;
	struct ctbpf_counters *c;
	__u64 key = (__u64)ct, ms = 0;
	struct birth *born;
	__u32 cls, slot;

	if (!st)
		return;
	c = &st->counters;
	c->c[CTBPF_CNT_DESTROY]++;
	/*
	 * Entries that never made it into the table (dropped at confirm or before it, clash losers) have
	 * no life; their allocation is counted here, an inserted entry's at its insert.
	 */
	if (!ct_was_inserted(f->status)) {
		c->c[CTBPF_CNT_FREED_UNINSERTED]++;
		return;
	}
	cls = proto_class(f->l4) & (CTBPF_PROTO_MAX - 1);
	c->destroys_by_proto[cls]++;
	netns_counts_of(st, f->netns, f->netns_identity)->destroys++;
	if (track_sources) {
		netns = source_counts_of(ct);
		if (netns)
			netns->destroys++;
	}
	if (f->l4 == IPPROTO_TCP && f->tcp_state < CTBPF_TCP_STATES)
		c->tcp_deaths_by_state[f->tcp_state]++;
	born = bpf_map_lookup_elem(&births, &key);
	if (born && born->tag == f->tag) {
		ms = (bpf_ktime_get_ns() - born->ns) / 1000000;
		slot = ctbpf_log2_slot(ms);
		/* clang knows slot < CTBPF_LOG2_SLOTS and drops the check the verifier needs */
		barrier_var(slot);
		if (slot < CTBPF_LOG2_SLOTS) {
			st->lifetime.slot[cls][slot]++;
			st->lifetime.sum_ms[cls] += ms;
		}
	}
	emit_ct_event(CTBPF_EV_DESTROY, 0, ct, (__u32)ms);
	if (born)
		bpf_map_delete_elem(&births, &key);
}

/* ---- fentry/fexit family ------------------------------------------------------------------------- */

SEC("fentry/early_drop")
int BPF_PROG(fentry_early_drop, struct net *net)
{
	on_early_drop_enter(net);
	return 0;
}

SEC("fexit/early_drop")
int BPF_PROG(fexit_early_drop, struct net *net, unsigned int hash, int ret)
{
	on_early_drop_exit(ret);
	return 0;
}

SEC("fexit/nf_ct_delete")
int BPF_PROG(fexit_delete, struct nf_conn *ct, u32 portid, int report, u64 ret)
{
	on_delete_exit(ct, (__u8)ret); /* a bool: only the low byte of the return register is defined */
	return 0;
}

/* A clash note waiting for skb's confirm exit, taken (deleted) when found; NULL when none waits. */
static __always_inline bool take_clash_note(struct sk_buff *skb, struct confirm_call *call)
{
	__u64 key = (__u64)skb;
	struct confirm_call *note;
	bool fresh;

	if (in_flight.clash_notes <= 0)
		return false;
	note = bpf_map_lookup_elem(&clash_notes, &key);
	if (!note)
		return false;
	/* A note whose exit never ran (a skipped program run) must not match a recycled skb for long. */
	fresh = bpf_ktime_get_ns() - note->ts_ns < 1000000000ULL;
	if (fresh)
		*call = *note;
	if (bpf_map_delete_elem(&clash_notes, &key) == 0)
		__sync_fetch_and_add(&in_flight.clash_notes, -1);
	return fresh;
}

/*
 * No fentry on confirm: fexit sees the skb, and the skb's entry only changes inside confirm when
 * nf_ct_resolve_clash() adopts the entry already in the table. So only a clash, which is rare, leaves
 * a note for the exit: one program run per new flow instead of two. fexit_confirm comes before
 * fentry_resolve_clash in this file so it is attached first and detached first: no note is ever
 * left for an exit that is not attached.
 */
SEC("fexit/__nf_conntrack_confirm")
int BPF_PROG(fexit_confirm, struct sk_buff *skb, int ret)
{
	struct confirm_call call;
	struct net_device *dev;

	if (!take_clash_note(skb, &call))
		call = (struct confirm_call){ .skb = skb, .ct = skb_conntrack_typed(skb) };
	/* One call site: clang inlines on_confirm_exit() (and its chain walk) once, the verifier walks it once. */
	dev = skb->dev;
	on_confirm_exit(&call, ret, false, dev ? dev->nd_net.net : NULL);
	return 0;
}

/* The loser of the clash is still skb's entry here: the note keeps it, for the exit to compare. */
SEC("fentry/nf_ct_resolve_clash")
int BPF_PROG(fentry_resolve_clash, struct sk_buff *skb)
{
	__u64 key = (__u64)skb;
	struct confirm_call note = confirm_call_of(skb);

	note.clash_seen = 1;
	note.ts_ns = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&clash_notes, &key, &note, BPF_NOEXIST) == 0)
		__sync_fetch_and_add(&in_flight.clash_notes, 1);
	else if (bpf_map_update_elem(&clash_notes, &key, &note, BPF_EXIST))
		count(CTBPF_CNT_CONFIRM_UNPAIRED); /* full: the exit will count this clash as an insert */
	return 0;
}

SEC("fexit/nf_conntrack_hash_check_insert")
int BPF_PROG(fexit_check_insert, struct nf_conn *ct, int ret)
{
	on_check_insert_exit(ct, ret);
	return 0;
}

SEC("fentry/nf_conntrack_free")
int BPF_PROG(fentry_free, struct nf_conn *ct)
{
	struct ct_facts f = ct_facts_typed(ct);

	on_free_enter(ct, &f);
	return 0;
}

/* ---- kprobe/kretprobe family (same functions; user space resolves .isra/.constprop names) -------- */

SEC("kprobe/early_drop")
int BPF_KPROBE(kprobe_early_drop, struct net *net)
{
	on_early_drop_enter(net);
	return 0;
}

SEC("kretprobe/early_drop")
int BPF_KRETPROBE(kretprobe_early_drop, int ret)
{
	on_early_drop_exit(ret);
	return 0;
}

/* kretprobe cannot see the entry: kept per CPU (the `deleting` map) from the entry. */
SEC("kprobe/nf_ct_delete")
int BPF_KPROBE(kprobe_delete, struct nf_conn *ct)
{
	__u32 zero = 0;
	__u64 *deleting_ct = bpf_map_lookup_elem(&deleting, &zero);

	if (deleting_ct)
		*deleting_ct = (__u64)ct;
	return 0;
}

SEC("kretprobe/nf_ct_delete")
int BPF_KRETPROBE(kretprobe_delete, long ret)
{
	__u32 zero = 0;
	__u64 *deleting_ct = bpf_map_lookup_elem(&deleting, &zero);
	struct nf_conn *ct = NULL;

	if (deleting_ct) {
		ct = (struct nf_conn *)*deleting_ct;
		*deleting_ct = 0;
	}
	on_delete_exit(ct, (__u8)ret);
	return 0;
}

static __always_inline void stash_call(struct confirm_call *call)
{
	__u64 key = context_key();

	if (bpf_map_update_elem(&confirm_calls, &key, call, BPF_ANY))
		count(CTBPF_CNT_CONFIRM_UNPAIRED);
}

static __always_inline bool take_call(struct confirm_call *call)
{
	__u64 key = context_key();
	struct confirm_call *stashed = bpf_map_lookup_elem(&confirm_calls, &key);

	if (!stashed)
		return false;
	*call = *stashed;
	bpf_map_delete_elem(&confirm_calls, &key);
	return true;
}

SEC("kprobe/__nf_conntrack_confirm")
int BPF_KPROBE(kprobe_confirm, struct sk_buff *skb)
{
	struct confirm_call call = confirm_call_of(skb);

	stash_call(&call);
	return 0;
}

SEC("kprobe/nf_ct_resolve_clash")
int BPF_KPROBE(kprobe_resolve_clash)
{
	__u64 key = context_key();
	struct confirm_call *call = bpf_map_lookup_elem(&confirm_calls, &key);

	if (call)
		call->clash_seen = 1;
	return 0;
}

SEC("kretprobe/__nf_conntrack_confirm")
int BPF_KRETPROBE(kretprobe_confirm, int ret)
{
	struct confirm_call call;

	on_confirm_exit(take_call(&call) ? &call : NULL, ret, true, NULL);
	return 0;
}

SEC("kprobe/nf_conntrack_hash_check_insert")
int BPF_KPROBE(kprobe_check_insert, struct nf_conn *ct)
{
	struct confirm_call call = { .ct = ct };

	stash_call(&call);
	return 0;
}

SEC("kretprobe/nf_conntrack_hash_check_insert")
int BPF_KRETPROBE(kretprobe_check_insert, int ret)
{
	struct confirm_call call;

	if (take_call(&call))
		on_check_insert_exit(call.ct, ret);
	else
		count(CTBPF_CNT_CONFIRM_UNPAIRED);
	return 0;
}

SEC("kprobe/nf_conntrack_free")
int BPF_KPROBE(kprobe_free, struct nf_conn *ct)
{
	struct ct_facts f = ct_facts_read(ct, true);

	on_free_enter(ct, &f);
	return 0;
}

/* ---- always loaded: packet drops ------------------------------------------------------------------ */

/* The addresses are arrays of 16, not pointers: BPF_CORE_READ_INTO reads sizeof(*dst) bytes. */
static __always_inline void read_tuple(const struct nf_conntrack_tuple *t, __u8 (*saddr)[16], __u8 (*daddr)[16],
				       __u16 *sport, __u16 *dport)
{
	BPF_CORE_READ_INTO(saddr, t, src.u3);
	BPF_CORE_READ_INTO(daddr, t, dst.u3);
	*sport = bpf_ntohs(BPF_CORE_READ(t, src.u.all));
	*dport = bpf_ntohs(BPF_CORE_READ(t, dst.u.all));
}

/*
 * A dropped packet whose entry is NAT'd: one more for its flow and drop reason (struct
 * ctbpf_blackhole_key). A packet keeps its entry in skb->_nfct until it leaves the netns, so a drop
 * after the NAT (routing, the neighbour layer, a filter, a full queue) still names the entry. A packet
 * without an entry, or with one that is not NAT'd, costs two loads.
 */
static __always_inline void count_nat_blackhole(struct sk_buff *skb, __u32 reason)
{
	unsigned long nfct = BPF_CORE_READ(skb, _nfct);
	struct nf_conn *ct = (struct nf_conn *)(nfct & CTBPF_NFCT_PTRMASK);
	struct ctbpf_blackhole_key key = {};
	struct ctbpf_blackhole fresh = {}, *flow;
	unsigned long status;

	if (!ct)
		return;
	status = ct_status(ct);
	if (!(status & CT_STATUS_NAT))
		return;
	count(CTBPF_CNT_NAT_BLACKHOLED);
	key.netns = ct_netns(ct);
	key.reason = reason;
	key.zone = ct_zone_id(ct);
	key.l3 = (__u8)BPF_CORE_READ(ct, tuplehash[IP_CT_DIR_ORIGINAL].tuple.src.l3num);
	key.l4 = ct_l4proto(ct);
	/* enum ip_conntrack_info: IP_CT_IS_REPLY (3) and above are replies; 7 is IP_CT_UNTRACKED, never NAT'd */
	key.dir = (nfct & 7) >= 3;
	read_tuple(&ct->tuplehash[IP_CT_DIR_ORIGINAL].tuple, &key.saddr, &key.daddr, &key.sport, &key.dport);
	flow = bpf_map_lookup_elem(&nat_blackholes, &key);
	if (!flow) {
		fresh.first_ns = bpf_ktime_get_ns();
		fresh.status = (__u32)status;
		read_tuple(&ct->tuplehash[IP_CT_DIR_REPLY].tuple, &fresh.reply_saddr, &fresh.reply_daddr,
			   &fresh.reply_sport, &fresh.reply_dport);
		bpf_map_update_elem(&nat_blackholes, &key, &fresh, BPF_NOEXIST);
		flow = bpf_map_lookup_elem(&nat_blackholes, &key);
		if (!flow)
			return;
	}
	__sync_fetch_and_add(&flow->packets, 1);
	flow->last_ns = bpf_ktime_get_ns();
}

/*
 * 5.17, commit c504e5c2f964 ("net: skb: introduce kfree_skb_reason()") gave kfree_skb a reason, and
 * 5.18, commit 2df3041ba3be ("net: netfilter: use kfree_drop_reason() for NF_DROP") the netfilter one
 * (both also in 5.15 stable). Every netfilter verdict drop shows as SKB_DROP_REASON_NETFILTER_DROP:
 * conntrack's, but also every nft/iptables DROP rule. Kernels without a reason: the program counts
 * nothing and user space reports null (it checks the enum in BTF).
 */
SEC("tp_btf/kfree_skb")
int BPF_PROG(tp_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	if (!bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_NOT_SPECIFIED))
		return 0;
	if (bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_NETFILTER_DROP) &&
	    reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NETFILTER_DROP))
		count(CTBPF_CNT_NETFILTER_DROP);
	count_nat_blackhole(skb, reason);
	return 0;
}
