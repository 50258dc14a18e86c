#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# early_drop.sh MODE N MAX: N new UDP flows with nf_conntrack_max = MAX < N. Past MAX, every new entry
# makes the kernel's early_drop() evict the unreplied (never ASSURED) entries of a bucket near the new
# one: the table stays full, nothing is refused ("table full" needs a bucket range without victims).
# The table is shrunk to 512 buckets so that no 8 neighbouring buckets are ever all empty: with the
# default size early_drop() would often find no victim and drop packets instead.
# Every mode: drops.early_drop = the kernel's early_drop delta (> 0); netfilter_drops = the nft drop
# rule's counter (N: nothing is dropped on the way out).
# fentry/kprobe: drops.table_full = 0 = the kernel's drop delta; allocs = inserts = N; deletes =
# destroys = early_drop (evictions are the only removals). tracepoint: table_full is the kernel's drop
# delta (0) too; inserts and alloc_failed are null.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}
n=${2:-12000}
max=${3:-2000}

load_modules
make_netns
keep_udp_entries
# Both are global (every netns shares them) and restored on exit; nf_conntrack_max is writable from
# the initial netns only, which is where this script runs.
set_global /sys/module/nf_conntrack/parameters/hashsize 1
set_global /proc/sys/net/netfilter/nf_conntrack_max "$max"
buckets=$(cat /proc/sys/net/netfilter/nf_conntrack_buckets)
start_trace "$mode"
early_drop0=$(ct_stat early_drop)
drop0=$(ct_stat drop)
read -r sent refused <<<"$(udp_flood 20000 "$n")"
early_drop=$(($(ct_stat early_drop) - early_drop0))
drop=$(($(ct_stat drop) - drop0))
count=$(ct_count)
dropped=$(nft_drop_packets)
sleep 1 # evicted entries are freed once their last reference goes
stop_trace TERM
restore_globals
log "sent $sent, refused $refused; kernel: count $count, early_drop +$early_drop, drop +$drop"

# The scenario itself: the table filled up and stayed full by eviction alone.
expect "nf_conntrack_buckets" "$buckets" 512
expect "datagrams sent" "$sent" "$n"
expect "refused datagrams" "$refused" 0
expect "kernel drop" "$drop" 0
expect "kernel early_drop > 0" "$((early_drop > 0))" 1
expect "conntrack -C + kernel early_drop" "$((count + early_drop))" "$n"
expect "nft drop counter" "$dropped" "$n"

expect "mode" "$(summary .mode)" "\"$mode\""
expect drops.early_drop "$(summary .drops.early_drop)" "$early_drop"
# Every mode: no table-full drop (early_drop always finds a victim); tracepoint reads it from `drop`.
expect drops.table_full "$(summary .drops.table_full)" "$drop"
if [ "$mode" = tracepoint ]; then
	for key in inserts drops.alloc_failed; do expect "$key" "$(summary ".$key")" null; done
else
	expect drops.alloc_failed "$(summary .drops.alloc_failed)" null # observed in no mode
	expect allocs "$(summary .allocs)" "$n"
	expect inserts "$(summary .inserts)" "$n"
	expect deletes "$(summary .deletes)" "$early_drop"
	expect destroys "$(summary .destroys)" "$early_drop"
fi
expect_netfilter_drops "$dropped"
expect lost_events "$(summary .lost_events)" 0
finish
