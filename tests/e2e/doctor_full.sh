#!/usr/bin/env bash
# doctor_full.sh MODE [M] [K]: the table_full.sh scenario under `ctbpf doctor`: nf_conntrack_max = M,
# filled with M established TCP connections (ASSURED: early_drop never evicts them), then K new UDP
# flows, each dropped ("table full, dropping packet").
# Every mode: drop_table_full's count = the kernel's `drop` delta (K); table_fill is critical, full now
# (time_to_full_s 0); a bigger max is proposed: the next power of two >= 2 × (M + K), with its memory
# cost = proposed max × the slab object size (read here from the file doctor names) + proposed
# buckets × 8. tracepoint: the table_full count comes from the kernel's `drop` counter, and says so.
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

source_file=$(jq -r .inputs.memory.slab_object_size_source <<<"$DOCTOR")
object_size=$(slab_object_size "$source_file")
proposed_max=$(finding memory .evidence.proposed.max)
proposed_buckets=$(finding memory .evidence.proposed.buckets)
log "slab object size $object_size from $source_file; proposed max $proposed_max, buckets $proposed_buckets"
expect "slab object size (from $source_file)" "$(finding memory .evidence.slab_object_size)" "$object_size"
expect "proposed max" "$proposed_max" "$(next_pow2 $((2 * (m + k))))"
expect "proposed buckets" "$proposed_buckets" "$(( $(next_pow2 "$proposed_max") > buckets ? $(next_pow2 "$proposed_max") : buckets ))"
expect "proposed memory = max × object size + buckets × 8" "$(finding memory .evidence.proposed.memory_bytes)" \
	"$((proposed_max * object_size + proposed_buckets * 8))"
expect "table_fill proposes the same max" "$(finding table_fill .evidence.proposed.max)" "$proposed_max"
expect "fix now" "$(finding table_fill .fix_now[0])" "\"sysctl -w net.netfilter.nf_conntrack_max=$proposed_max\""
expect "fix persistently" \
	"$(finding table_fill "[.fix_persistent[] | select(contains(\"net.netfilter.nf_conntrack_max = $proposed_max\"))] | length")" 1
finish
