#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# features.sh [FENTRY KPROBE MODE [trial]]: `ctbpf features --json` reports what the kernel allows.
# With no arguments (the host test, on whatever kernel it meets) the expectations come from trials
# that owe nothing to ctbpf (lib.sh kernel_allows: bpftrace on conntrack's confirm). In the guests
# the kernel's facts are given: 6.1 and 6.12 true true fentry, 5.10 false (no module BTF) true kprobe;
# `trial` also checks that kernel_allows finds them (bpftrace costs 8-20 s per trial under TCG).
# The causes of every usable family and of the picked mode are the kernel's own facts: chaintoolong
# where conntrack -S counts it (5.15+), netfilter_drop_reason where the kernel's BTF names
# SKB_DROP_REASON_NETFILTER_DROP, table_full everywhere.
source "$(dirname "$0")/lib.sh"

load_modules
make_netns
trial() {
	declare -gA TRIAL
	local family
	for family in fentry kprobe; do
		if kernel_allows "$family"; then TRIAL[$family]=true; else TRIAL[$family]=false; fi
	done
}
if [ $# -eq 0 ]; then
	trial
	want_fentry=${TRIAL[fentry]} want_kprobe=${TRIAL[kprobe]} want_mode=$(mode_auto_should_pick)
else
	want_fentry=${1:?} want_kprobe=${2:?} want_mode=${3:?}
	if [ "${4:-}" = trial ]; then
		trial
		expect "bpftrace trial: fentry" "${TRIAL[fentry]}" "$want_fentry"
		expect "bpftrace trial: kprobe" "${TRIAL[kprobe]}" "$want_kprobe"
	fi
fi
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
for cause in chaintoolong:$chaintoolong netfilter_drop_reason:$netfilter table_full:true; do
	expect "causes.${cause%%:*} (mode $want_mode)" "$(summary ".causes.${cause%%:*}")" "${cause#*:}"
done
if [ "$want_fentry" = false ] && [ -e /sys/module/nf_conntrack/initstate ] && [ ! -e /sys/kernel/btf/nf_conntrack ]; then
	expect "fentry reason names module BTF" "$(summary '.families.fentry.reason | test("module BTF")')" true
fi
# docs/kernels.md is generated (tests/vm/kernel_table) for the guests' kernels: in a guest, its rows
# for this kernel must be what features says now, line for line.
if in_guest; then
	doc=$(dirname "$0")/../../docs/kernels.md
	rows=$("$(dirname "$0")/../vm/kernel_table" --rows <<<"$SUMMARY")
	while IFS= read -r line; do
		expect "docs/kernels.md has: ${line:0:90}" "$(grep -cxF -- "$line" "$doc")" 1
	done <<<"$rows"
	expect "docs/kernels.md: lines for $(uname -r)" "$(grep -cF -- " $(uname -r) " "$doc")" "$(wc -l <<<"$rows")"
fi
finish
