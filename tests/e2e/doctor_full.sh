#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# doctor_full.sh MODE [M] [K]: the table_full.sh scenario under `ctbpf doctor`: nf_conntrack_max = M,
# filled with M established TCP connections (ASSURED: early_drop never evicts them), then K new UDP
# flows, each dropped ("table full, dropping packet").
# Every mode: drop_table_full's count = the kernel's `drop` delta (K); table_fill is critical, full now
# (time_to_full_s 0); a bigger max is proposed, checked against its own words (twice the M + K entries
# wanted, rounded up to a power of two) and the kernel's facts (memory = max × the kernel's nf_conntrack
# object size + buckets × 8); then doctor's fix_now commands are applied and the K flows sent again:
# the kernel's drop counter must stay put. tracepoint: the table_full count comes from the kernel's
# `drop` counter, and says so.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}
m=${2:-300}
k=${3:-2000}
port=9000 # TCP: outside the nft input chain's UDP drop range

load_modules
make_netns
fill_with_assured "$m" "$port"
held=$HELD
buckets=$(cat /proc/sys/net/netfilter/nf_conntrack_buckets)

start_doctor "$mode"
drop0=$(ct_stat drop)
read -r sent refused <<<"$(udp_flood 20000 "$k")"
drop=$(($(ct_stat drop) - drop0))
count=$(ct_count)
stop_doctor
restore_globals
log "held $held; sent $sent, refused $refused; kernel: count $count, drop +$drop"

# The scenario: a full table of ASSURED entries that refused every new flow.
expect "connections held" "$held" "$m"
expect "kernel drop" "$drop" "$k"
expect "conntrack -C" "$count" "$m"

expect mode "$(doctor .mode)" "\"$mode\""
expect "drop_table_full severity" "$(finding drop_table_full .severity)" '"critical"'
expect "drop_table_full count" "$(finding drop_table_full .evidence.count)" "$drop"
if [ "$mode" = tracepoint ]; then
	expect "drop_table_full source" "$(finding drop_table_full .evidence.source)" '"kernel drop counter"'
else
	expect "drop_table_full source" "$(finding drop_table_full .evidence.source)" '"probe"'
	expect "summary drops.table_full" "$(doctor .summary.drops.table_full)" "$drop"
fi
expect "table_fill severity" "$(finding table_fill .severity)" '"critical"'
expect "table_fill count" "$(finding table_fill .evidence.count)" "$m"
expect "table_fill time_to_full_s" "$(finding table_fill .evidence.time_to_full_s)" 0

# The proposal against its own words and the kernel's facts, not against doctor's formulas: the table
# this window wanted M + K entries (held + refused: the scenario's arithmetic), and table_fill's text
# says the proposed max is twice that rounded up to a power of two.
wanted=$((m + k))
proposed_max=$(finding table_fill .evidence.proposed.max)
proposed_buckets=$(finding memory .evidence.proposed.buckets)
expect "table_fill says the window wanted M + K entries" \
	"$(finding table_fill ".why | contains(\"twice the $wanted entries this window wanted\")")" true
expect "table_fill names its max in the text" "$(finding table_fill ".why | contains(\"Proposed max $proposed_max:\")")" true
expect "proposed max is a power of two in [2 × $wanted, 4 × $wanted)" \
	"$(((proposed_max & (proposed_max - 1)) == 0 && proposed_max >= 2 * wanted && proposed_max < 4 * wanted))" 1
expect "memory proposes the same max" "$(finding memory .evidence.proposed.max)" "$proposed_max"
expect "proposed buckets hold the proposed max (a power of two, >= max)" \
	"$(((proposed_buckets & (proposed_buckets - 1)) == 0 && proposed_buckets >= proposed_max))" 1
# The kernel's own size of an nf_conntrack object (SLUB's s->size: slabinfo's objsize = slab_size),
# read here whichever source doctor used; where both are readable they agree.
kernel_object_size() {
	local a b
	a=$(awk '$1 == "nf_conntrack" { print $4 }' /proc/slabinfo 2>/dev/null || true)
	b=$(cat /sys/kernel/slab/nf_conntrack/slab_size 2>/dev/null || true)
	if [ -n "$a" ] && [ -n "$b" ] && [ "$a" != "$b" ]; then
		echo "e2e: /proc/slabinfo says $a, slab_size says $b" >&2
	fi
	echo "${a:-$b}"
}
object_size=$(kernel_object_size)
log "kernel nf_conntrack object size $object_size; proposed max $proposed_max, buckets $proposed_buckets"
expect "slab object size (the kernel's)" "$(finding memory .evidence.slab_object_size)" "$object_size"
memory=$((proposed_max * object_size + proposed_buckets * 8))
expect "proposed memory = max × the kernel's object size + buckets × 8-byte heads" \
	"$(finding memory .evidence.proposed.memory_bytes)" "$memory"
expect "memory's text shows that sum" "$(finding memory ".measured | contains(\"= $memory bytes\")")" true
expect "fix now" "$(finding table_fill .fix_now[0])" "\"sysctl -w net.netfilter.nf_conntrack_max=$proposed_max  # from the initial network namespace\""
expect "fix persistently" \
	"$(finding table_fill "[.fix_persistent[] | select(contains(\"net.netfilter.nf_conntrack_max = $proposed_max\"))] | length")" 1

# The proof the advice works: the same table (M held, max M again), doctor's fix_now commands applied
# as printed, then the same K new flows to fresh ports: the kernel must refuse none of them.
set_global /proc/sys/net/netfilter/nf_conntrack_max "$m"
set_global /sys/module/nf_conntrack/parameters/hashsize "$(cat /sys/module/nf_conntrack/parameters/hashsize)"
expect "connections still held (conntrack -C)" "$(ct_count)" "$m"
while IFS= read -r cmd; do
	log "applying: $cmd"
	sh -c "$cmd" >/dev/null || { echo "FAIL fix command: $cmd"; FAILED=1; }
done <<<"$(finding table_fill '.fix_now[]' | jq -r .)"
drop0=$(ct_stat drop)
read -r sent2 refused2 <<<"$(udp_flood $((20000 + k)) "$k")"
drop2=$(($(ct_stat drop) - drop0))
count2=$(ct_count)
restore_globals
log "after the fix: sent $sent2, refused $refused2; kernel: count $count2, drop +$drop2"
expect "after the fix: kernel drop" "$drop2" 0
expect "after the fix: refused" "$refused2" 0
expect "after the fix: conntrack -C = M + K" "$count2" "$((m + k))"
finish
