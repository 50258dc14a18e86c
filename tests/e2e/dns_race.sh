#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# dns_race.sh MODE [N]: the DNS race through a Service's DNAT (issue 32). On the NAT gateway
# (gateway_lib.sh) the router DNATs the service address 10.77.53.53:53 to two resolvers (the server's
# 10.77.9.2 and 10.77.9.3, in turn: numgen). Client 1 sends N queries, each as two datagrams from one
# new socket sent by two threads on two CPUs at once (glibc's parallel A and AAAA): both create an
# entry, and the later confirm clashes with the earlier. The two entries may hold different NAT
# mappings (the other resolver): the kernel then resolves the clash by inserting the loser in the reply
# direction only (clash_resolve), or drops the query (insert_failed).
# Oracles, the router's own: conntrack -S deltas of insert_failed and clash_resolve (the only UDP port
# 53 traffic there). ctbpf's dns_races rows of the router's netns add up to them exactly, name the
# service and only the two resolvers; doctor's dns_race finding names the router's netns and the
# resolvers. The race must have happened: a run without one clash exercised nothing and fails.
# tracepoint: dns_races null (no conntrack probes), and doctor says so.
source "$(dirname "$0")/gateway_lib.sh"
mode=${1:?mode}
n=${2:-300}
VIP=10.77.53.53
R1=10.77.9.2
R2=10.77.9.3

gateway_up
ip -n "$GW_S" addr add "$R2/24" dev eth0
ip netns exec "$GW_S" nft add rule inet ctbpf_gw_server in udp dport 53 counter drop
in_ns nft -f - <<NFT
table ip ctbpf_dns {
	chain to_resolvers {
		type nat hook prerouting priority -100;
		ip daddr $VIP udp dport 53 dnat to numgen inc mod 2 map { 0 : $R1, 1 : $R2 }
	}
}
NFT
gateway_flush
start_trace "$mode" -i 1
start_doctor_bg() { # doctor in the root netns, as on a node; its window covers the storm
	skip_unless_kernel_allows "$mode"
	"$CTBPF_BIN" doctor --json -d 600 --mode "$mode" --ready-file "$WORK/doctor.ready" \
		>"$WORK/doctor.out" 2>>"$WORK/trace.err" &
	doctor_pid=$!
	wait_file "$WORK/doctor.ready" "$doctor_pid" "ctbpf doctor"
}
start_doctor_bg
causes=(insert_failed clash_resolve)
declare -A stat0 kern
ct_stats_read stat0 "${causes[@]}"
read -r sent refused <<<"$(in_client 1 timeout 300 "$CTBPF_FLOWGEN" udp-pairs --dst "$VIP" --port 53 --sport 30000 --count "$n")"
sleep 1.5 # a whole interval after the storm: its counts are in trace's and doctor's last read
ct_stats_since kern stat0 "${causes[@]}"
kill -TERM "$doctor_pid"
wait "$doctor_pid" || { echo "e2e: ctbpf doctor failed" >&2; cat "$WORK/trace.err" >&2; exit 1; }
DOCTOR=$(cat "$WORK/doctor.out")
gateway_flush
stop_trace
log "router: insert_failed ${kern[insert_failed]}, clash_resolve ${kern[clash_resolve]}; doctor:" \
	"$(jq -c '[.findings[] | [.severity, .id, .title]]' <<<"$DOCTOR")"

expect "datagrams sent" "$((sent + refused))" "$((2 * n))"
expect "kernel clash_resolve + insert_failed > 0 (the race happened)" \
	"$((kern[clash_resolve] + kern[insert_failed] > 0))" 1
inode=$(gateway_router_inode)
mine="select(.netns == $inode)"
if [ "$mode" = tracepoint ]; then
	expect dns_races "$(summary .dns_races)" null
	expect "doctor: dns_race unmeasured" "$(doctor '[.unmeasured[] | select(.what | test("dns_race"))] | length')" 1
	finish
fi
for c in insert_failed clash_resolve; do
	expect "dns_races[router].$c = the router's $c" "$(summary "[.dns_races[] | $mine | .$c] | add")" "${kern[$c]}"
	expect "doctor evidence: $c = the router's" "$(finding dns_race "[.evidence[] | $mine | .$c] | add")" "${kern[$c]}"
done
expect "dns_races: the service" "$(summary "[.dns_races[] | $mine | .service] | unique")" "[\"$VIP\"]"
expect "dns_races: the resolvers are the DNAT's" \
	"$(summary "[.dns_races[] | $mine | .resolver] - [\"$R1\", \"$R2\"] | length")" 0
expect "doctor: dns_race names the router's netns" "$(finding dns_race .title | grep -c "$NS")" 1
expect "doctor: dns_race is a warning exactly when queries were dropped" "$(finding dns_race .severity)" \
	"$([ "${kern[insert_failed]}" -gt 0 ] && echo '"warning"' || echo '"info"')"
validate_records "$WORK/trace.out"
finish
