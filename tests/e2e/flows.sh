#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# flows.sh MODE N: exactly N new UDP flows in a fresh netns while `ctbpf trace --mode MODE` runs.
# fentry/kprobe: allocs = inserts = N = `conntrack -C`; after `conntrack -F`, destroys = deletes = N.
# trace's default walks the chain of 1 insert in 16 per CPU: chain_length.count is in (N/16 - CPUs, N/16].
# tracepoint: those counts are null (unobservable), never a made-up 0.
# Every mode: netfilter_drops = the nft drop rule's counter (N), and lost_events = 0. Those drops are of
# entries that are not NAT'd: nat_blackholes and dns_races have no row (null where unobservable).
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}
skip_unless_kernel_allows "$mode"
n=${2:-3000}

load_modules
make_netns
start_trace "$mode"
read -r sent refused <<<"$(udp_flood 20000 "$n")"
count=$(ct_count)
in_ns conntrack -F 2>/dev/null
sleep 1
dropped=$(nft_drop_packets)
stop_trace TERM

expect "datagrams sent" "$sent" "$n"
expect "datagrams refused" "$refused" 0
expect "conntrack -C" "$count" "$n"
expect "mode" "$(summary .mode)" "\"$mode\""
if [ "$mode" = tracepoint ]; then
	for key in allocs inserts destroys deletes; do expect "$key" "$(summary ".$key")" null; done
else
	expect_global allocs "$n"
	expect_global inserts "$count"
	expect_global destroys "$n"
	expect_global deletes "$n"
	expect_netns inserts "$count"
	expect_netns destroys "$n"
	expect "chain_length.sampled_one_in" "$(summary .chain_length.sampled_one_in)" 16
	if in_guest; then
		expect "chain_length.count, 1 in 16 per CPU: above N/16 - CPUs and at most N/16" \
			"$(summary ".chain_length.count | . > ($n / 16 - $(nproc)) and . <= ($n / 16)")" true
	else
		expect "chain_length.count, 1 in 16 per CPU: above N/16 - CPUs (a shared host adds its own)" \
			"$(summary ".chain_length.count > ($n / 16 - $(nproc))")" true
	fi
fi
expect "nft drop counter" "$dropped" "$n"
expect_netfilter_drops "$dropped"
expect_nat_drops_none "$mode"
expect lost_events "$(summary .lost_events)" 0
expect "probe misses" "$(summary '.probe_misses | add')" 0
# Every record (intervals, summary) against docs/schema/ctbpf.schema.json: a key this mode cannot
# observe is null, never absent (plain jq reads both as null).
validate_records "$WORK/trace.out"
finish
