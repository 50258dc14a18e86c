#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# clash_storm.sh MODE [N]: the DNS case on a NAT gateway (gateway_lib.sh). A client sends N new UDP
# flows to the server through the router's masquerade, each begun by two datagrams sent from ONE
# socket by two threads on two CPUs at the same instant (a resolver's parallel A and AAAA queries):
# client 1 in IPv4, then client 2 in IPv6. No netem, no RPS: each datagram crosses the router in its
# sender's softirq, so both reach the router's conntrack at once. When both are unconfirmed together,
# the later confirm finds the tuple taken and nf_ct_resolve_clash() resolves it: merged into the entry
# in the table when both got the same NAT mapping, else (the first was confirmed before the second's
# NAT) the loser is hashed in the reply direction only for a second (IPS_NAT_CLASH, "clash harder":
# counted in conntrack -C, invisible to conntrack -L), or the packet is dropped (insert_failed).
# The race must have happened: a run without one clash exercised nothing and fails.
# Oracles, the router's: allocations = the nft counter of unconfirmed `ct state new` packets =
# flows + clash_resolve + insert_failed (every allocation is an insert, a resolved loser or a drop);
# inserts = conntrack -L = N per family = conntrack -C once the NAT-clash entries expired (2 s later a
# dump evicts them); conntrack -S deltas; datagrams at the server = sent - insert_failed.
# fentry/kprobe: inserts, clash_resolve, insert_failed, allocs EQUAL those; after the flush destroys
# = allocs and deletes covers every inserted entry plus at most one per clash (the NAT-clash ones).
# tracepoint: probe counts null; clash_resolve and insert_failed are the router's counters.
source "$(dirname "$0")/gateway_lib.sh"
mode=${1:?mode}
n=${2:-2000}

gateway_up
gateway_flush
start_trace "$mode" -i 1
causes=(insert_failed drop early_drop chaintoolong clash_resolve invalid)
declare -A stat0 kern
ct_stats_read stat0 "${causes[@]}"
entries0=$(gateway_new_entries)
server0=$(gateway_server_udp)

read -r sent4 refused4 <<<"$(in_client 1 timeout 300 "$CTBPF_FLOWGEN" udp-pairs --dst "$GW_SERVER4" --port 20000 --count "$n")"
read -r sent6 refused6 <<<"$(in_client 2 timeout 300 "$CTBPF_FLOWGEN" udp-pairs --dst "$GW_SERVER6" --port 20000 --count "$n")"
count_now=$(ct_count)
# NAT-clash entries time out after a second; a dump evicts the expired entries it meets.
sleep 2
listed=$(in_ns conntrack -L 2>/dev/null | wc -l)
count=$(ct_count)
entries=$(($(gateway_new_entries) - entries0))
server_udp=$(($(gateway_server_udp) - server0))
ct_stats_since kern stat0 "${causes[@]}"
gateway_flush
sleep 1
stop_trace TERM
log "router: allocated $entries, conntrack -C $count_now right after, $count after the NAT-clash entries expired," \
	"-L $listed; stats $(for c in "${causes[@]}"; do printf '%s=%s ' "$c" "${kern[$c]}"; done)"

expect "datagrams sent" "$((sent4 + sent6))" "$((4 * n))"
expect "datagrams refused" "$((refused4 + refused6))" 0
expect "kernel clash_resolve > 0 (the race happened)" "$((kern[clash_resolve] > 0))" 1
expect "router: conntrack -L" "$listed" "$((2 * n))"
expect "router: conntrack -C" "$count" "$((2 * n))"
expect "router: allocations = flows + clash_resolve + insert_failed" "$entries" \
	"$((2 * n + kern[clash_resolve] + kern[insert_failed]))"
expect "datagrams at the server" "$server_udp" "$((4 * n - kern[insert_failed]))"

expect mode "$(summary .mode)" "\"$mode\""
for c in insert_failed chaintoolong early_drop invalid; do expect_drop "$c" "${kern[$c]}"; done
if [ "$mode" = tracepoint ]; then
	expect drops.clash_resolve "$(summary .drops.clash_resolve)" "${kern[clash_resolve]}"
else
	expect drops.clash_resolve "$(summary .drops.clash_resolve)" "${kern[clash_resolve]}"
fi
if [ "$mode" = tracepoint ]; then
	for key in allocs inserts destroys deletes; do expect "$key" "$(summary ".$key")" null; done
else
	expect drops.table_full "$(summary .drops.table_full)" "${kern[drop]}"
	expect allocs "$(summary .allocs)" "$entries"
	expect inserts "$(summary .inserts)" "$count"
	expect destroys "$(summary .destroys)" "$entries"
	deletes=$(summary .deletes)
	expect "deletes in [inserts, inserts + clash_resolve] ($deletes)" \
		"$((deletes >= count && deletes <= count + kern[clash_resolve]))" 1
	inode=$(gateway_router_inode)
	expect "by_netns[router $inode].inserts" "$(summary ".by_netns[] | select(.netns == $inode) | .inserts")" \
		"$count"
fi
expect lost_events "$(summary .lost_events)" 0
for key in chain_walk_truncated recursion confirm_unpaired; do
	expect "probe_misses.$key" "$(summary ".probe_misses.$key")" 0
done
finish
