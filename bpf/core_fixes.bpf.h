/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every kernel difference the BPF side cares about, in one place. Each block names the upstream change;
 * decisions are made by CO-RE existence checks at load time, never by kernel version.
 * Function-name differences (which symbol a probe attaches to) live in agent/kernel/tracer.cpp and
 * agent/kernel/system.cpp.
 */
#ifndef CTBPF_CORE_FIXES_BPF_H
#define CTBPF_CORE_FIXES_BPF_H

#include <vmlinux.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include "ctbpf/abi.h"

/*
 * 4.11, commit a9e419dc7be6 ("netfilter: merge ctinfo into nfct pointer storage area"): sk_buff::nfct
 * (a pointer) became sk_buff::_nfct (pointer | ctinfo in the low 3 bits).
 */
struct sk_buff___nfct_ptr {
	struct nf_conntrack *nfct;
} __attribute__((preserve_access_index));

#define CTBPF_NFCT_PTRMASK (~7UL)

static __always_inline struct nf_conn *skb_conntrack(struct sk_buff *skb)
{
	if (bpf_core_field_exists(skb->_nfct))
		return (struct nf_conn *)(BPF_CORE_READ(skb, _nfct) & CTBPF_NFCT_PTRMASK);
	return (struct nf_conn *)BPF_CORE_READ((struct sk_buff___nfct_ptr *)skb, nfct);
}

/* The same for a typed (BTF) skb, fentry/fexit's: a load the verifier allows, no helper call. */
static __always_inline struct nf_conn *skb_conntrack_typed(struct sk_buff *skb)
{
	if (bpf_core_field_exists(skb->_nfct))
		return (struct nf_conn *)(skb->_nfct & CTBPF_NFCT_PTRMASK);
	return (struct nf_conn *)((struct sk_buff___nfct_ptr *)skb)->nfct;
}

/*
 * The status bits are UAPI (enum ip_conntrack_status, include/uapi/linux/netfilter/
 * nf_conntrack_common.h): their values are fixed, so they are constants here, where a CO-RE enum
 * relocation cost each test a 64-bit immediate and two zero-extension shifts, on every new flow and
 * every free. IPS_NAT_CLASH (5.6) marks an entry that confirm inserted in the reply direction only
 * after an unresolvable origin-direction clash: a clash resolved without a drop, not a new flow. It
 * reuses IPS_UNTRACKED's bit, which the header calls "obsolete and not used anymore": on a kernel
 * without IPS_NAT_CLASH no entry carries the bit.
 */
#define CT_STATUS_CONFIRMED (1UL << 3) /* IPS_CONFIRMED_BIT */
#define CT_STATUS_DYING (1UL << 9)     /* IPS_DYING_BIT */
#define CT_STATUS_NAT_CLASH (1UL << 12) /* IPS_NAT_CLASH_BIT = IPS_UNTRACKED_BIT */
#define CT_STATUS_NAT (3UL << 4)        /* IPS_NAT_MASK: IPS_SRC_NAT | IPS_DST_NAT */

static __always_inline bool ct_is_nat_clash(unsigned long status)
{
	return status & CT_STATUS_NAT_CLASH;
}

/* nf_conn::zone exists only with CONFIG_NF_CONNTRACK_ZONES; without it every entry is in zone 0. */
static __always_inline __u16 ct_zone_id(struct nf_conn *ct)
{
	if (!bpf_core_field_exists(ct->zone))
		return 0;
	return BPF_CORE_READ(ct, zone.id);
}

/*
 * Why __nf_conntrack_confirm() returned NF_DROP, from the entry's own state at its return (nothing
 * else is left: fexit has no entry program on confirm; the decision is ctbpf_confirm_drop_kind() in
 * include/ctbpf/abi.h). Its paths (6.1, 6.12):
 *   - the entry was already confirmed (a clone of the packet won the race: bridge floods, multicast):
 *     WARN_ON_ONCE, counted by no statistic;
 *   - nf_ct_ext_valid_pre() failed or the entry was dying: insert_failed;
 *   - an unresolvable clash (nf_ct_resolve_clash() ran): insert_failed and drop;
 *   - 5.15, commit d7e7747ac5c2 ("netfilter: refuse insertion if chain has grown too large"): the chain
 *     limit, chaintoolong and insert_failed;
 *   - nf_ct_ext_valid_post() failed after the insert: the entry is killed, counted as drop.
 * Upstream 2d72afb34065 ("netfilter: nf_conntrack: fix crash due to removal of uninitialised entry",
 * 2025; in Debian's 6.1 and 6.12, stable 6.1.147, 6.6.100, 6.12.40, 6.15.8) moved the setting of
 * IPS_CONFIRMED after the insert. Before it (from 5.19, and in 5.10 never), confirm set the bit ahead
 * of its dying, clash and chain checks, so on those kernels the bit alone does not say "in the table":
 * an entry that is confirmed, not dying and still linked from its bucket is the already-confirmed
 * case; confirmed and dying is the killed one (or, on those kernels only, one that was dying before
 * the insert: counted as inserted, and its free as a destroy, which keeps the two balanced).
 * ext_valid_pre() cannot be told from the chain limit without the kernel's ext genid (a module variable
 * with no BTF, absent from 6.12's kallsyms): such a drop would count as chaintoolong. Traffic does not
 * reach it: nf_ct_iterate_destroy(), the one place that bumps the genid (6.1), first drops every queued
 * packet and waits out RCU (synchronize_net()), so only a packet reinjected inside that window can
 * meet a stale genid at confirm.
 */
/* The entry is linked from its origin bucket: what points at its node is the node. */
static __always_inline bool ct_is_linked(struct nf_conn *ct)
{
	struct hlist_nulls_node *node = &ct->tuplehash[IP_CT_DIR_ORIGINAL].hnnode, *at = NULL;
	struct hlist_nulls_node **pprev = BPF_CORE_READ(ct, tuplehash[IP_CT_DIR_ORIGINAL].hnnode.pprev);

	if (!pprev || bpf_probe_read_kernel(&at, sizeof(at), pprev))
		return false;
	return at == node;
}

static __always_inline enum ctbpf_confirm_drop confirm_drop_kind(struct nf_conn *ct, bool clash_seen)
{
	unsigned long status = BPF_CORE_READ(ct, status);
	bool confirmed = status & CT_STATUS_CONFIRMED, dying = status & CT_STATUS_DYING;

	/* Linked matters only for a confirmed entry that is not dying: one probe read, on drops only. */
	return ctbpf_confirm_drop_kind(confirmed, dying, confirmed && !dying && ct_is_linked(ct), clash_seen);
}

static __always_inline bool ct_was_inserted(unsigned long status)
{
	return ctbpf_was_inserted(status & CT_STATUS_CONFIRMED, status & CT_STATUS_DYING);
}

/*
 * nf_ct_delete() returned false: another path had set IPS_DYING first (this call deleted nothing), or
 * this call deleted the entry but could not deliver its destroy event (reliable ctnetlink delivery, as
 * conntrackd asks for). That delete unhashes both nodes (hlist_nulls_del_rcu() leaves LIST_POISON2 in
 * pprev) and parks the entry, by its origin node, on the netns's ecache list until the event worker
 * delivers the event and frees it. Since the "netfilter: remove pcpu dying list" series (5.19, which
 * added struct nf_conntrack_net_ecache to hold that list) nothing else links an origin node whose
 * reply node is unhashed, so that is this call's delete (or, rarer still, a loser's whose winner also
 * failed to deliver). Before it every delete parks the entry on a per-CPU dying list in the same way,
 * and the two cannot be told apart: there an undelivered delete is not counted (its destroy is).
 */
#define CT_LIST_POISON2 (0xdead000000000000ULL + 0x122) /* x86_64 POISON_POINTER_DELTA, linux/poison.h */

/*
 * The same series removed netns_ct's per-CPU lists: a vmlinux type, where struct
 * nf_conntrack_net_ecache is nf_conntrack's (a module's type sends libbpf iterating every module's BTF,
 * which needs CAP_SYS_ADMIN: the kprobe family must load without it).
 */
struct netns_ct___with_pcpu_lists {
	void *pcpu_lists;
} __attribute__((preserve_access_index));

static __always_inline bool ct_delete_undelivered(struct nf_conn *ct)
{
	__u64 origin, reply;

	if (bpf_core_field_exists(((struct netns_ct___with_pcpu_lists *)0)->pcpu_lists))
		return false;
	origin = (__u64)BPF_CORE_READ(ct, tuplehash[IP_CT_DIR_ORIGINAL].hnnode.pprev);
	reply = (__u64)BPF_CORE_READ(ct, tuplehash[IP_CT_DIR_REPLY].hnnode.pprev);
	return reply == CT_LIST_POISON2 && origin && origin != CT_LIST_POISON2;
}

#endif /* CTBPF_CORE_FIXES_BPF_H */
