#!/usr/bin/env bash
# features.sh FENTRY KPROBE MODE: `ctbpf features --json` reports what a real trial found.
# On the host (no kprobes, fentry refused): false false tracepoint. In the 6.1 and 6.12 VMs: true true
# fentry. In the 5.10 VM: false (no module BTF) true kprobe.
# Each usable family's causes match the kernel's own facts: chaintoolong where conntrack -S counts it
# (5.15+), netfilter_drop_reason where the kernel's BTF names SKB_DROP_REASON_NETFILTER_DROP; the
# top-level causes are those of the mode auto picks.
source "$(dirname "$0")/lib.sh"
want_fentry=${1:?} want_kprobe=${2:?} want_mode=${3:?}

load_modules
make_netns
SUMMARY=$("$CTBPF_BIN" features --json)
log "features: $SUMMARY"
expect "families.fentry.usable" "$(summary .families.fentry.usable)" "$want_fentry"
expect "families.kprobe.usable" "$(summary .families.kprobe.usable)" "$want_kprobe"
expect "families.tracepoint.usable" "$(summary .families.tracepoint.usable)" true
expect "mode" "$(summary .mode)" "\"$want_mode\""
for family in fentry kprobe; do
	# An unusable family must say why (the trial's error), never an empty reason.
	expect "families.$family.reason non-empty" "$(summary ".families.$family.reason | length > 0")" true
done
chaintoolong=false netfilter=false
kernel_counts_chaintoolong && chaintoolong=true
kernel_has_netfilter_drop_reason && netfilter=true
for family in fentry kprobe tracepoint; do
	[ "$(summary ".families.$family.usable")" = true ] || continue
	expect "families.$family.causes.chaintoolong" "$(summary ".families.$family.causes.chaintoolong")" "$chaintoolong"
	expect "families.$family.causes.netfilter_drop_reason" \
		"$(summary ".families.$family.causes.netfilter_drop_reason")" "$netfilter"
	# Every family counts a full table: the probe families at early_drop() finding no victim,
	# tracepoint from the kernel's own drop counter.
	expect "families.$family.causes.table_full" "$(summary ".families.$family.causes.table_full")" true
done
# The kernel's fact (its own BTF): the ecache list a delete with an undelivered event waits on (5.19+).
ecache_types() { bpftool "$@" 2>/dev/null | grep -c "STRUCT 'nf_conntrack_net_ecache'" || true; }
undelivered=false
[ "$(ecache_types btf dump file /sys/kernel/btf/vmlinux)" = 0 ] || undelivered=true
[ ! -e /sys/kernel/btf/nf_conntrack ] ||
	[ "$(ecache_types -B /sys/kernel/btf/vmlinux btf dump file /sys/kernel/btf/nf_conntrack)" = 0 ] || undelivered=true
expect "undelivered_deletes_counted" "$(summary .undelivered_deletes_counted)" "$undelivered"
expect "causes = the picked mode's" "$(summary ".causes == .families.$want_mode.causes")" true
if [ "$want_fentry" = false ] && [ -e /sys/module/nf_conntrack/initstate ] && [ ! -e /sys/kernel/btf/nf_conntrack ]; then
	expect "fentry reason names module BTF" "$(summary '.families.fentry.reason | test("module BTF")')" true
fi
finish
