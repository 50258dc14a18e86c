#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# table_full.sh MODE [M] [K]: a real "nf_conntrack: table full, dropping packet". nf_conntrack_max = M,
# and the table is filled with M established TCP connections to a listener in the netns: ASSURED
# entries, which early_drop() never evicts. Then K new UDP flows: each allocation finds the table
# full and no victim, the kernel counts `drop` and drops the datagram on the way out (sendto fails
# with EPERM). The dmesg line is rate limited: the counter is the oracle. Last, `conntrack -F` ends the M
# established entries while ctbpf watches.
# Every mode: netfilter_drops = the kernel's drop delta (K) + the nft drop rule's counter (0).
# fentry/kprobe: drops.table_full = the kernel's drop delta = K; drops.early_drop = 0 = the kernel's
# early_drop delta; inserts = 0; destroys = the kernel's ESTABLISHED entries before the flush (M), all
# in tcp_state_at_death.ESTABLISHED. tracepoint: table_full is the kernel's own `drop` counter (K);
# inserts and destroys are null. (table_full_live.sh adds serve, a snapshot and its report.)
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}
m=${2:-300}
k=${3:-2000}
port=9000 # TCP: outside the nft input chain's UDP drop range

load_modules
make_netns
fill_with_assured "$m" "$port"
held=$HELD
# Every connection is ASSURED once the handshake's last ACK is seen: no unreplied entry is left.
count_before=$(ct_count)
assured=$(in_ns conntrack -L -p tcp --status ASSURED 2>/dev/null | wc -l)

start_trace "$mode"
drop0=$(ct_stat drop)
early_drop0=$(ct_stat early_drop)
read -r sent refused <<<"$(udp_flood 20000 "$k")"
drop=$(($(ct_stat drop) - drop0))
early_drop=$(($(ct_stat early_drop) - early_drop0))
count=$(ct_count)
dropped=$(nft_drop_packets)
established=$(in_ns conntrack -L -p tcp --state ESTABLISHED 2>/dev/null | wc -l)
in_ns conntrack -F 2>/dev/null
sleep 1
stop_trace TERM
restore_globals
log "held $held, assured $assured; sent $sent, refused $refused; kernel: count $count, drop +$drop, early_drop +$early_drop"

# The scenario itself: a full table of ASSURED entries that refused every new flow.
expect "connections held" "$held" "$m"
expect "conntrack -C before the flood" "$count_before" "$m"
expect "ASSURED entries" "$assured" "$m"
expect "datagrams refused" "$refused" "$k"
expect "kernel drop" "$drop" "$k"
expect "kernel early_drop" "$early_drop" 0
expect "conntrack -C after the flood" "$count" "$m"
expect "nft drop counter" "$dropped" 0
expect "ESTABLISHED entries before the flush" "$established" "$m"

expect "mode" "$(summary .mode)" "\"$mode\""
if [ "$mode" = tracepoint ]; then
	for key in inserts destroys drops.alloc_failed; do expect "$key" "$(summary ".$key")" null; done
	expect drops.table_full "$(summary .drops.table_full)" "$drop"
	expect kernel_stats.drop "$(summary .kernel_stats.drop)" "$drop"
else
	expect drops.table_full "$(summary .drops.table_full)" "$drop"
	expect drops.early_drop "$(summary .drops.early_drop)" "$early_drop"
	expect drops.alloc_failed "$(summary .drops.alloc_failed)" null # observed in no mode
	expect inserts "$(summary .inserts)" 0
	expect destroys "$(summary .destroys)" "$established"
	expect "tcp_state_at_death.ESTABLISHED" "$(summary .tcp_state_at_death.ESTABLISHED)" "$established"
	expect "TCP deaths in any state" "$(summary '.tcp_state_at_death | add')" "$established"
fi
expect_netfilter_drops "$((drop + dropped))"
expect lost_events "$(summary .lost_events)" 0
finish
