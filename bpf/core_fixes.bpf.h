/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * Every kernel difference the BPF side cares about, in one place. Each block names the upstream change;
 * decisions are made by CO-RE existence checks at load time, never by kernel version.
 * Function-name differences (which symbol a probe attaches to) live in agent/kernel/probe_points.cpp.
 */
#ifndef CTBPF_CORE_FIXES_BPF_H
#define CTBPF_CORE_FIXES_BPF_H

#include <vmlinux.h>
#include <bpf/bpf_core_read.h>

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

/*
 * IPS_NAT_CLASH (5.6) marks an entry that confirm inserted in the reply direction only after an
 * unresolvable origin-direction clash: a clash resolved without a drop, not a new flow. Kernels without
 * the bit have no such path.
 */
static __always_inline bool ct_is_nat_clash(unsigned long status)
{
	if (!bpf_core_enum_value_exists(enum ip_conntrack_status, IPS_NAT_CLASH_BIT))
		return false;
	return status & (1UL << bpf_core_enum_value(enum ip_conntrack_status, IPS_NAT_CLASH_BIT));
}

/* nf_conn::zone exists only with CONFIG_NF_CONNTRACK_ZONES; without it every entry is in zone 0. */
static __always_inline __u16 ct_zone_id(struct nf_conn *ct)
{
	if (!bpf_core_field_exists(ct->zone))
		return 0;
	return BPF_CORE_READ(ct, zone.id);
}

#endif /* CTBPF_CORE_FIXES_BPF_H */
