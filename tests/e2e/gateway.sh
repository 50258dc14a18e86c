#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# gateway.sh MODE [UDP] [TCP] [NETEM] [BURST] [GAP]: ctbpf on a NAT gateway (gateway_lib.sh), where conntrack runs in
# softirq on every CPU, often with the idle task current. Both clients at once, each in IPv4 and IPv6:
# UDP new flows (UDP datagrams to as many ports, 500) and whole TCP connections (TCP of them, 100:
# handshake, a byte, FIN both ways) through the router, which masquerades them to the server. netem
# (NETEM, 5ms) on the clients' and the server's egress and RPS over every CPU on the router's
# receive queues: the router's conntrack works from qdisc timers and RPS IPIs on both vCPUs. The UDP
# senders pause GAP ms (1) after every BURST datagrams (1), and the TCP clients mostly wait: the CPUs
# are idle when the timers fire, and each softirq has little to do, so it runs on irq exit with the
# idle task (pid 0) current rather than in ksoftirqd (a pid per CPU): both CPUs confirm as pid 0,
# which bpftrace checks (gateway_lib.sh's idle_confirms_check).
# ctbpf runs in the router's netns. Then the router's table is flushed.
# Oracles, all the router's: allocations = the nft counter of unconfirmed `ct state new` packets in
# prerouting = the flows the generators made; conntrack -C before the flush; conntrack -S deltas.
# fentry/kprobe: allocs, inserts, deletes, destroys and every drop cause EQUAL those (chaintoolong is
# null before 5.15, which has no such counter); by_netns has one row, the router's inode, with those
# inserts and destroys; lost_events and probe_misses are 0.
# tracepoint: the probe counts are null, drop causes are the router's own counters.
source "$(dirname "$0")/gateway_lib.sh"
mode=${1:?mode}
udp=${2:-500}
tcp=${3:-100}
netem=${4:-5ms}
burst=${5:-1}
gap=${6:-1}

gateway_up --netem "$netem" --rps
gateway_tcp_serve
gateway_flush
inode=$(gateway_router_inode)
start_trace "$mode" -i 1
idle_confirms_start
causes=(insert_failed drop early_drop chaintoolong clash_resolve invalid)
declare -A stat0 kern
ct_stats_read stat0 "${causes[@]}"
entries0=$(gateway_new_entries)
packets0=$(gateway_new_packets)
server0=$(gateway_server_udp)

# Every generator at once: 2 clients x 2 families x (UDP, TCP).
started=$(date +%s)
gens=()
for i in 1 2; do
	for dst in "$GW_SERVER4" "$GW_SERVER6"; do
		in_client "$i" timeout 300 "$CTBPF_FLOWGEN" udp --dst "$dst" --port 20000 --count "$udp" \
			--burst "$burst" --gap-ms "$gap" >"$WORK/gen.udp.$i.$dst" 2>/dev/null &
		gens+=($!)
		in_client "$i" timeout 300 "$CTBPF_FLOWGEN" tcp-connect --dst "$dst" --port "$GW_TCP_PORT" \
			--count "$tcp" --threads 4 >"$WORK/gen.tcp.$i.$dst" &
		gens+=($!)
	done
done
for pid in "${gens[@]}"; do wait "$pid" || { echo "e2e: a generator failed (or ran past 300 s)" >&2; exit 1; }; done
log "traffic: $(($(date +%s) - started)) s"
# netem holds the last packets for NETEM: let them land.
sleep 1
idle_confirms_check
read -r udp_sent udp_refused <<<"$(cat "$WORK"/gen.udp.* | awk '{s+=$1; r+=$2} END {print s+0, r+0}')"
read -r tcp_done tcp_failed <<<"$(cat "$WORK"/gen.tcp.* | awk '{s+=$1; f+=$2} END {print s+0, f+0}')"
flows=$((udp_sent + tcp_done))
entries=$(($(gateway_new_entries) - entries0))
packets=$(($(gateway_new_packets) - packets0))
server_udp=$(($(gateway_server_udp) - server0))
ct_stats_since kern stat0 "${causes[@]}"
count=$(ct_count)
gateway_flush
sleep 1
stop_trace TERM
log "flows $flows (udp $udp_sent, tcp $tcp_done); router: new entries $entries, new packets $packets, count $count," \
	"stats $(for c in "${causes[@]}"; do printf '%s=%s ' "$c" "${kern[$c]}"; done)"

# The scenario itself: every flow made, crossed the router and was tracked there once.
expect "UDP datagrams sent" "$udp_sent" "$((4 * udp))"
expect "UDP datagrams refused" "$udp_refused" 0
expect "UDP datagrams at the server" "$server_udp" "$udp_sent"
expect "TCP connections completed" "$tcp_done" "$((4 * tcp))"
expect "TCP connections failed" "$tcp_failed" 0
expect "router: entries allocated (unconfirmed ct state new)" "$entries" "$flows"
expect "router: conntrack -C before the flush" "$count" "$flows"

expect mode "$(summary .mode)" "\"$mode\""
for c in insert_failed chaintoolong clash_resolve early_drop invalid; do expect_drop "$c" "${kern[$c]}"; done
if [ "$mode" = tracepoint ]; then
	for key in allocs inserts destroys deletes by_netns; do expect "$key" "$(summary ".$key")" null; done
else
	expect drops.table_full "$(summary .drops.table_full)" "${kern[drop]}"
	expect drops.alloc_failed "$(summary .drops.alloc_failed)" null # observed in no mode
	expect allocs "$(summary .allocs)" "$entries"
	expect inserts "$(summary .inserts)" "$count"
	expect deletes "$(summary .deletes)" "$count"
	expect destroys "$(summary .destroys)" "$entries"
	expect "by_netns rows" "$(summary '.by_netns | length')" 1
	expect "by_netns[router $inode].inserts" "$(summary ".by_netns[] | select(.netns == $inode) | .inserts")" "$count"
	expect "by_netns[router $inode].destroys" "$(summary ".by_netns[] | select(.netns == $inode) | .destroys")" "$entries"
fi
expect lost_events "$(summary .lost_events)" 0
for k in chain_walk_truncated recursion confirm_unpaired; do
	expect "probe_misses.$k" "$(summary ".probe_misses.$k")" 0
done
finish
