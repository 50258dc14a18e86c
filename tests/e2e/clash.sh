#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# clash.sh MODE N: N new UDP flows, each begun by two datagrams sent from one socket by two threads on
# two CPUs at the same instant. When both are still unconfirmed at once, both allocate an entry and the
# later confirm finds the tuple taken: nf_ct_resolve_clash() gives its packet the entry already in the
# table (no NAT here, so the two merge) and frees the loser. The kernel counts that as clash_resolve.
# The race needs no luck to be frequent (thousands per 5000 pairs on the host), but a run without one
# clash exercised nothing and fails.
# Every mode: drops.clash_resolve = the kernel's clash_resolve delta (> 0); conntrack -C = N;
# netfilter_drops = the nft drop rule's counter (2N).
# fentry/kprobe: inserts = N, allocs = N + clashes (each loser was allocated), one drop event of cause
# clash_resolve per clash; after `conntrack -F`, deletes = N and destroys = N + clashes (losers are
# freed too), and with every birth kept (--lifetime-sample 1) exactly the N inserted entries have a
# lifetime: a loser's birth goes with it. tracepoint: the probe counts are null and clash_resolve is the
# kernel's own counter.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}
skip_unless_kernel_allows "$mode"
n=${2:-2000}

load_modules
make_netns
if [ "$mode" = tracepoint ]; then start_trace "$mode"; else start_trace "$mode" --events drop --events-rate 0 --lifetime-sample 1; fi
clash0=$(ct_stat clash_resolve)
read -r sent refused <<<"$(in_ns "$CTBPF_FLOWGEN" udp-pairs --dst 127.0.0.1 --port 20000 --count "$n")"
clashes=$(($(ct_stat clash_resolve) - clash0))
count=$(ct_count)
log "$clashes clashes in $n pairs"
in_ns conntrack -F 2>/dev/null
sleep 1
dropped=$(nft_drop_packets)
stop_trace TERM

expect "datagrams sent" "$sent" "$((2 * n))"
expect "datagrams refused" "$refused" 0
expect "conntrack -C" "$count" "$n"
expect "kernel clash_resolve > 0 (the race happened)" "$((clashes > 0))" 1
expect_global drops.clash_resolve "$clashes"
if [ "$mode" = tracepoint ]; then
	for key in allocs inserts destroys deletes; do expect "$key" "$(summary ".$key")" null; done
else
	expect_global inserts "$n"
	expect_global allocs "$((n + clashes))"
	expect_global deletes "$n"
	expect_global destroys "$((n + clashes))"
	expect_netns inserts "$n"
	# A netns's row counts the entries its table held (conntrack -C = n, all flushed), not the
	# clash losers, which were freed before they were ever inserted.
	expect_netns destroys "$n"
	expect_global lifetime_ms.count "$n"
	expect lifetime_ms.untracked "$(summary .lifetime_ms.untracked)" 0
	# The test netns's insert_failed is the kernel's own (conntrack -S in the netns), not a literal.
	expect_global drops.insert_failed "$(ct_stat insert_failed)"
	expect "clash_resolve drop events in the test netns" \
		"$(grep '"type":"event"' "$WORK/trace.out" | grep '"cause":"clash_resolve"' | grep -c "\"netns\":$(ns_inode)," || true)" "$clashes"
fi
expect "nft drop counter" "$dropped" "$((2 * n))"
expect_netfilter_drops "$dropped"
expect lost_events "$(summary .lost_events)" 0
expect "probe misses" "$(summary '.probe_misses | add')" 0
finish
