// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
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

#include "ctbpf/abi.h"
#include "maps.bpf.h"
#include "core_fixes.bpf.h"

char LICENSE[] SEC("license") = "GPL"; /* bpf_probe_read_kernel and friends are GPL-only */

#define NF_DROP 0
#define NF_ACCEPT 1
#define IS_ERR_VALUE(ptr) ((unsigned long)(ptr) >= (unsigned long)-4095)

static __always_inline bool ct_status_has(struct nf_conn *ct, unsigned int bit)
{
	unsigned long status = BPF_CORE_READ(ct, status);

	return status & (1UL << bit);
}

/* nf_ct_is_expired(): (s32)(ct->timeout - nfct_time_stamp) <= 0, nfct_time_stamp = (u32)jiffies */
static __always_inline bool ct_is_expired(struct nf_conn *ct)
{
	__u32 timeout = BPF_CORE_READ(ct, timeout);

	return (__s32)(timeout - (__u32)bpf_jiffies64()) <= 0;
}

/* ---- alloc --------------------------------------------------------------------------------------- */

static __always_inline void on_alloc_exit(struct nf_conn *ret)
{
	count(IS_ERR_VALUE(ret) ? CTBPF_CNT_ALLOC_ERR : CTBPF_CNT_ALLOC);
}

/* ---- early_drop: called by alloc when the table is full; false means "table full, dropping packet" - */

static __always_inline void on_early_drop_enter(void)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 one = 1;

	bpf_map_update_elem(&early_drop_calls, &id, &one, BPF_ANY);
}

static __always_inline void on_early_drop_exit(int evicted)
{
	__u64 id = bpf_get_current_pid_tgid();

	bpf_map_delete_elem(&early_drop_calls, &id);
	if (!evicted)
		count(CTBPF_CNT_TABLE_FULL);
}

/* ---- delete: removal from the table (timeout, flush, RST, gc, eviction) --------------------------- */

static __always_inline void on_delete_enter(struct nf_conn *ct)
{
	__u64 id = bpf_get_current_pid_tgid();

	/* nf_ct_delete() does nothing when another path already set IPS_DYING. */
	if (ct_status_has(ct, bpf_core_enum_value(enum ip_conntrack_status, IPS_DYING_BIT)))
		return;
	count(CTBPF_CNT_DELETE);
	/* Inside early_drop(), a live entry being deleted is an eviction; expired ones are plain gc. */
	if (bpf_map_lookup_elem(&early_drop_calls, &id) && !ct_is_expired(ct))
		count(CTBPF_CNT_EARLY_DROP);
}

/* ---- confirm: insertion into the hash table ------------------------------------------------------ */

static __always_inline void record_chain_length(struct nf_conn *ct)
{
	struct hlist_nulls_node *node = BPF_CORE_READ(ct, tuplehash[IP_CT_DIR_ORIGINAL].hnnode.next);
	struct ctbpf_counters *c = this_cpu_counters();
	struct ctbpf_chain_hist *h;
	__u32 zero = 0, slot;
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
		if (bpf_probe_read_kernel(&node, sizeof(node), &node->next))
			break;
	}
	if (!ended)
		count(CTBPF_CNT_CHAIN_TRUNCATED);

	h = bpf_map_lookup_elem(&chain_hist, &zero);
	if (!h || !c)
		return;
	slot = ctbpf_chain_slot(len);
	if (slot >= CTBPF_CHAIN_SLOTS)
		return;
	h->slot[slot]++;
	h->sum += len;
	if (len > c->chain_max)
		c->chain_max = len;
}

static __always_inline void on_confirm_enter(struct sk_buff *skb)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct confirm_call call = { .skb = skb, .ct = skb_conntrack(skb) };

	if (bpf_map_update_elem(&confirm_calls, &id, &call, BPF_ANY))
		count(CTBPF_CNT_CONFIRM_UNPAIRED);
}

static __always_inline void on_resolve_clash_enter(void)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct confirm_call *call = bpf_map_lookup_elem(&confirm_calls, &id);

	if (call)
		call->clash_seen = 1;
}

static __always_inline void on_confirm_exit(int verdict)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct confirm_call *stashed = bpf_map_lookup_elem(&confirm_calls, &id);
	struct confirm_call call;
	struct nf_conn *ct;
	unsigned long status;

	if (!stashed) {
		count(CTBPF_CNT_CONFIRM_UNPAIRED);
		return;
	}
	call = *stashed;
	bpf_map_delete_elem(&confirm_calls, &id);

	if (verdict != NF_ACCEPT) {
		count(CTBPF_CNT_INSERT_FAILED);
		/*
		 * 5.15, commit d7e7747ac5c2 ("netfilter: refuse insertion if chain has grown too large"):
		 * the NF_DROP that is neither an unresolvable clash nor an entry already dying is the
		 * chain limit. User space reports chaintoolong as null where the kernel lacks the stat.
		 */
		if (!call.clash_seen &&
		    !ct_status_has(call.ct, bpf_core_enum_value(enum ip_conntrack_status, IPS_DYING_BIT)))
			count(CTBPF_CNT_CHAINTOOLONG);
		return;
	}
	/* A clash resolved by adopting the entry already in the table swaps skb's conntrack. */
	if (skb_conntrack(call.skb) != call.ct) {
		count(CTBPF_CNT_CLASH_RESOLVE);
		return;
	}
	ct = call.ct; /* a plain local: CO-RE must not relocate our own struct's field */
	status = BPF_CORE_READ(ct, status);
	if (ct_is_nat_clash(status)) {
		count(CTBPF_CNT_CLASH_RESOLVE);
		return;
	}
	/* NF_ACCEPT without IPS_CONFIRMED: a reply-direction packet, nothing was inserted. */
	if (!(status & (1UL << bpf_core_enum_value(enum ip_conntrack_status, IPS_CONFIRMED_BIT))))
		return;
	count(CTBPF_CNT_INSERT);
	record_chain_length(ct);
}

/* ---- destroy: the entry's memory goes back to the slab ------------------------------------------- */

static __always_inline void on_free_enter(struct nf_conn *ct)
{
	count(CTBPF_CNT_DESTROY);
}

/* ---- fentry/fexit family ------------------------------------------------------------------------- */

SEC("fexit/__nf_conntrack_alloc")
int BPF_PROG(fexit_alloc, struct net *net, const struct nf_conntrack_zone *zone,
	     const struct nf_conntrack_tuple *orig, const struct nf_conntrack_tuple *repl, gfp_t gfp,
	     u32 hash, struct nf_conn *ret)
{
	on_alloc_exit(ret);
	return 0;
}

SEC("fentry/early_drop")
int BPF_PROG(fentry_early_drop)
{
	on_early_drop_enter();
	return 0;
}

SEC("fexit/early_drop")
int BPF_PROG(fexit_early_drop, struct net *net, unsigned int hash, int ret)
{
	on_early_drop_exit(ret);
	return 0;
}

SEC("fentry/nf_ct_delete")
int BPF_PROG(fentry_delete, struct nf_conn *ct)
{
	on_delete_enter(ct);
	return 0;
}

SEC("fentry/__nf_conntrack_confirm")
int BPF_PROG(fentry_confirm, struct sk_buff *skb)
{
	on_confirm_enter(skb);
	return 0;
}

SEC("fentry/nf_ct_resolve_clash")
int BPF_PROG(fentry_resolve_clash)
{
	on_resolve_clash_enter();
	return 0;
}

SEC("fexit/__nf_conntrack_confirm")
int BPF_PROG(fexit_confirm, struct sk_buff *skb, int ret)
{
	on_confirm_exit(ret);
	return 0;
}

SEC("fentry/nf_conntrack_free")
int BPF_PROG(fentry_free, struct nf_conn *ct)
{
	on_free_enter(ct);
	return 0;
}

/* ---- kprobe/kretprobe family (same functions; user space resolves .isra/.constprop names) -------- */

SEC("kretprobe/__nf_conntrack_alloc")
int BPF_KRETPROBE(kretprobe_alloc, struct nf_conn *ret)
{
	on_alloc_exit(ret);
	return 0;
}

SEC("kprobe/early_drop")
int BPF_KPROBE(kprobe_early_drop)
{
	on_early_drop_enter();
	return 0;
}

SEC("kretprobe/early_drop")
int BPF_KRETPROBE(kretprobe_early_drop, int ret)
{
	on_early_drop_exit(ret);
	return 0;
}

SEC("kprobe/nf_ct_delete")
int BPF_KPROBE(kprobe_delete, struct nf_conn *ct)
{
	on_delete_enter(ct);
	return 0;
}

SEC("kprobe/__nf_conntrack_confirm")
int BPF_KPROBE(kprobe_confirm, struct sk_buff *skb)
{
	on_confirm_enter(skb);
	return 0;
}

SEC("kprobe/nf_ct_resolve_clash")
int BPF_KPROBE(kprobe_resolve_clash)
{
	on_resolve_clash_enter();
	return 0;
}

SEC("kretprobe/__nf_conntrack_confirm")
int BPF_KRETPROBE(kretprobe_confirm, int ret)
{
	on_confirm_exit(ret);
	return 0;
}

SEC("kprobe/nf_conntrack_free")
int BPF_KPROBE(kprobe_free, struct nf_conn *ct)
{
	on_free_enter(ct);
	return 0;
}

/* ---- always loaded: packet drops on the netfilter path ------------------------------------------- */

/*
 * 5.17, commit c504e5c2f964 ("net: skb: introduce kfree_skb_reason()") gave kfree_skb a reason, and
 * 5.18, commit 2df3041ba3be ("net: netfilter: use kfree_drop_reason() for NF_DROP") the netfilter one
 * (both also in 5.15 stable). Every netfilter verdict drop shows as SKB_DROP_REASON_NETFILTER_DROP:
 * conntrack's, but also every nft/iptables DROP rule. Kernels without the value: the program counts 0
 * and user space reports null (it checks the enum in BTF).
 */
SEC("tp_btf/kfree_skb")
int BPF_PROG(tp_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	if (!bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_NETFILTER_DROP))
		return 0;
	if (reason == bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NETFILTER_DROP))
		count(CTBPF_CNT_NETFILTER_DROP);
	return 0;
}
