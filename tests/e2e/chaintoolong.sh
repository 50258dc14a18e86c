#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# chaintoolong.sh MODE N: N new UDP flows into a table shrunk to 512 buckets, more than its chains can
# hold: since 5.15 (commit d7e7747ac5c2) the kernel refuses an insert when a chain is longer than a
# random limit in [50, 79], counting chaintoolong and insert_failed and dropping the packet (sendto
# fails with EPERM). ctbpf's counts must equal the kernel's deltas over the flood.
# Every mode: drops.chaintoolong and drops.insert_failed = the kernel's deltas (> 0); netfilter_drops
# = those refused datagrams + the nft drop rule's counter (the inserted ones).
# fentry/kprobe: allocs = N, inserts = `conntrack -C`, inserts + chaintoolong = N, destroys =
# chaintoolong, chain_length.count = inserts (--chain-sample 1: every chain walked), chain_length.max >= 49 (an insert is refused only past a
# chain of 50). tracepoint: inserts and chain_length are null.
# Before 5.15 there is no chain limit and no counter: the same flood is all inserted, and
# drops.chaintoolong must be null while everything else still equals the kernel's.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}
n=${2:-20000}

load_modules
make_netns
keep_udp_entries
# hashsize is global (every netns shares the table): restored on exit. 1 rounds up to a page: 512.
set_global /sys/module/nf_conntrack/parameters/hashsize 1
buckets=$(cat /proc/sys/net/netfilter/nf_conntrack_buckets)
limit=1
kernel_counts_chaintoolong || limit=0
[ "$limit" = 1 ] || log "$(uname -r) predates the chain limit (5.15): no chaintoolong counter"
start_trace "$mode" --chain-sample 1
chaintoolong0=0
[ "$limit" = 0 ] || chaintoolong0=$(ct_stat chaintoolong)
insert_failed0=$(ct_stat insert_failed)
read -r sent refused <<<"$(udp_flood 20000 "$n")"
chaintoolong=0
[ "$limit" = 0 ] || chaintoolong=$(($(ct_stat chaintoolong) - chaintoolong0))
insert_failed=$(($(ct_stat insert_failed) - insert_failed0))
count=$(ct_count)
dropped=$(nft_drop_packets)
stop_trace TERM
restore_globals
log "sent $sent, refused $refused; kernel: count $count, chaintoolong +$chaintoolong, insert_failed +$insert_failed"

# The scenario itself: the kernel refused some inserts, and only for the chain limit.
expect "nf_conntrack_buckets" "$buckets" 512
expect "datagrams sent + refused" "$((sent + refused))" "$n"
[ "$limit" = 0 ] || expect "kernel chaintoolong > 0" "$((chaintoolong > 0))" 1
expect "refused datagrams" "$refused" "$chaintoolong"
expect "conntrack -C" "$count" "$sent"
expect "nft drop counter" "$dropped" "$sent"

expect "mode" "$(summary .mode)" "\"$mode\""
if [ "$limit" = 1 ]; then
	expect drops.chaintoolong "$(summary .drops.chaintoolong)" "$chaintoolong"
else
	expect "drops.chaintoolong (no chain limit before 5.15)" "$(summary .drops.chaintoolong)" null
fi
expect drops.insert_failed "$(summary .drops.insert_failed)" "$insert_failed"
if [ "$mode" = tracepoint ]; then
	expect inserts "$(summary .inserts)" null
	expect chain_length.count "$(summary .chain_length.count)" null
else
	inserts=$(summary .inserts)
	expect allocs "$(summary .allocs)" "$n"
	expect inserts "$inserts" "$count"
	# A refused entry is freed at once; nothing else leaves the table during the flood.
	expect destroys "$(summary .destroys)" "$chaintoolong"
	expect "inserts + drops.chaintoolong" "$(summary '.inserts + .drops.chaintoolong')" "$n"
	expect chain_length.count "$(summary .chain_length.count)" "$inserts"
	expect "chain_length.max >= 49" "$(summary '.chain_length.max >= 49')" true
fi
expect_netfilter_drops "$((dropped + chaintoolong))"
expect lost_events "$(summary .lost_events)" 0
finish
