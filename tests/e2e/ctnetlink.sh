#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ctnetlink.sh MODE [M] [FILL] [K]: entries made without a packet. ctnetlink (`conntrack -I`, as
# conntrackd does; the bpf_ct_insert_entry kfunc takes the same path) inserts through
# nf_conntrack_hash_check_insert(), not __nf_conntrack_confirm(), and refuses an insert whose chain
# is too long there too (counting chaintoolong, but not insert_failed).
#  1. While traced, `conntrack -I` creates M UDP entries (100) in the test netns and `conntrack -D`
#     deletes them: allocs, inserts, deletes and destroys each grow by exactly M.
#  2. With FILL > 0 (20000; VM only: hashsize is global): the table shrunk to 512 buckets and filled
#     by FILL UDP flows (packets: confirm refuses some for chain length), then K more `conntrack -I`
#     (100): the kernel refuses some for chain length. Their refusals (conntrack -I's ENOSPC) = the
#     kernel's chaintoolong delta over those K, and ctbpf's chaintoolong = the kernel's whole delta.
#     Kernels before 5.15 have no chain limit (commit d7e7747ac5c2) and no chaintoolong counter: no
#     phase 2 there, and ctbpf's chaintoolong must be null.
# Then the table is flushed. fentry/kprobe: allocs = M + FILL + K; inserts = M + the entries left
# before the flush; deletes likewise; destroys = allocs; drops = the kernel's deltas.
# tracepoint: probe counts null, drops are the kernel's counters.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}
m=${2:-100}
fill=${3:-20000}
k=${4:-100}

# ct_insert N SPORT0: `conntrack -I` of N UDP entries 10.99.0.1:SPORT0.. -> 10.99.0.2:53 (600 s);
# prints "INSERTED ENOSPC" and fails on any other error.
ct_insert() {
	# One netns entry for the whole loop: `ip netns exec` per insert doubled the execs, each a
	# fraction of a second under TCG.
	# shellcheck disable=SC2016 # expanded by the inner shell
	in_ns bash -c 'ok=0 nospace=0
		for ((i = 0; i < $1; i++)); do
			if err=$(conntrack -I -p udp -s 10.99.0.1 -d 10.99.0.2 --sport $(($2 + i)) --dport 53 -t 600 2>&1); then
				ok=$((ok + 1))
			elif [[ $err == *"No space left on device"* ]]; then
				nospace=$((nospace + 1))
			else
				echo "e2e: conntrack -I: $err" >&2
				exit 1
			fi
		done
		echo "$ok $nospace"' ct_insert "$1" "$2" || exit 1
}

load_modules
make_netns
# The flood's entries must outlive the test (conntrack -I execs are slow under TCG): this netns's own
# UDP timeouts, nothing global.
in_ns sh -c 'echo 600 >/proc/sys/net/netfilter/nf_conntrack_udp_timeout'
if [ "$fill" -gt 0 ] && ! kernel_counts_chaintoolong; then
	log "$(uname -r) predates the chain limit (5.15): phase 2 skipped"
	fill=0
fi
if [ "$fill" -gt 0 ]; then
	# 1 rounds up to a page of buckets: 512. Restored on exit.
	set_global /sys/module/nf_conntrack/parameters/hashsize 1
fi
inode=$(stat -L -c %i "/run/netns/$NS")
start_trace "$mode"
causes=(insert_failed drop early_drop chaintoolong clash_resolve invalid)
declare -A stat0 kern
ct_stats_read stat0 "${causes[@]}"

# 1: M entries in, M entries out.
read -r inserted1 refused1 <<<"$(ct_insert "$m" 10000)"
count1=$(ct_count)
deleted1=$(in_ns conntrack -D -p udp -s 10.99.0.1 2>&1 >/dev/null | grep -oE '[0-9]+ flow entries' | cut -d' ' -f1)
count1_after=$(ct_count)
log "phase 1: conntrack -I $inserted1 ok, $refused1 ENOSPC; conntrack -C $count1; conntrack -D ${deleted1:-?}"

# 2: chains at their limit, then ctnetlink inserts.
sent=0 refused=0 inserted2=0 refused2=0 ctl_chaintoolong=0
if [ "$fill" -gt 0 ]; then
	read -r sent refused <<<"$(udp_flood 20000 "$fill")"
	c0=$(ct_stat chaintoolong)
	read -r inserted2 refused2 <<<"$(ct_insert "$k" 30000)"
	ctl_chaintoolong=$(($(ct_stat chaintoolong) - c0))
	log "phase 2: flood $sent sent, $refused refused; conntrack -I $inserted2 ok, $refused2 ENOSPC; kernel chaintoolong +$ctl_chaintoolong"
fi
ct_stats_since kern stat0 "${causes[@]}"
count=$(ct_count)
in_ns conntrack -F 2>/dev/null
sleep 1
stop_trace TERM
restore_globals

expect "phase 1: conntrack -I inserted" "$inserted1" "$m"
expect "phase 1: conntrack -C" "$count1" "$m"
expect "phase 1: conntrack -D deleted" "${deleted1:-none}" "$m"
expect "phase 1: conntrack -C after -D" "$count1_after" 0
if [ "$fill" -gt 0 ]; then
	expect "phase 2: flood sent + refused" "$((sent + refused))" "$fill"
	expect "phase 2: conntrack -I refusals > 0 (chains at their limit)" "$((refused2 > 0))" 1
	expect "phase 2: conntrack -I refusals = kernel chaintoolong delta" "$refused2" "$ctl_chaintoolong"
	expect "phase 2: conntrack -C" "$count" "$((sent + inserted2))"
	# confirm counts its refusals as both; ctnetlink's only as chaintoolong.
	expect "kernel chaintoolong = insert_failed + ctnetlink refusals" \
		"${kern[chaintoolong]}" "$((kern[insert_failed] + refused2))"
fi

expect mode "$(summary .mode)" "\"$mode\""
for c in insert_failed chaintoolong clash_resolve early_drop invalid; do expect_drop "$c" "${kern[$c]}"; done
if [ "$mode" = tracepoint ]; then
	for key in allocs inserts destroys deletes; do expect "$key" "$(summary ".$key")" null; done
else
	allocs=$((m + fill + k * (fill > 0)))
	expect drops.table_full "$(summary .drops.table_full)" "${kern[drop]}"
	expect allocs "$(summary .allocs)" "$allocs"
	expect inserts "$(summary .inserts)" "$((m + count))"
	expect deletes "$(summary .deletes)" "$((m + count))"
	expect destroys "$(summary .destroys)" "$allocs"
	expect "by_netns[$inode].inserts" "$(summary ".by_netns[] | select(.netns == $inode) | .inserts")" "$((m + count))"
fi
expect lost_events "$(summary .lost_events)" 0
for key in confirm_unpaired chain_walk_truncated recursion; do
	expect "probe_misses.$key" "$(summary ".probe_misses.$key")" 0
done
finish
