#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nat_blackhole.sh MODE: the stale NAT entry, end to end (issue 32). A client sends one UDP flow from a
# fixed port at RATE/s to a service address; the router ($NS) DNATs it to backend A. Then backend A
# goes away (its netns is deleted, so the router's route to it goes too) and the DNAT is repointed to
# backend B: the flow's entry keeps refreshing and keeps sending every packet to A, where the router
# drops it (no route). The topology, in netns:
#
#   client 10.79.1.2 ── router 10.79.1.1 | 10.79.2.1 ── backend A 10.79.2.2
#   (sport 40000)        DNAT 10.79.100.1:5300 -> A | 10.79.3.1 ── backend B 10.79.3.2
#
# Oracles, the kernel's: the router's nft counter of packets to A that find no route (`fib daddr oif
# missing`, after the DNAT) = the packets that died; backends' nft input counters = what arrived.
#   - healthy (A up, never answering): doctor gives no nat_blackhole finding, and in the router's netns
#     (nf_conntrack_acct on there) nat_unanswered names the flow that conntrack -L shows [UNREPLIED];
#   - within 2 intervals of the deletion trace --json names the flow: its tuple, dnat_to A, reason
#     IP_INNOROUTES, packets_per_s within 10% of RATE in a whole interval (the second that shows it);
#   - serve's ctbpf_conntrack_nat_blackholed_packets_total rises during the incident;
#   - doctor's nat_blackhole finding gives a conntrack -D command; run, B receives the flow, and serve's
#     counter stops rising;
#   - the summary's packets for the flow = the router's no-route counter, exactly.
# Kernels whose kfree_skb has no drop reason (before 5.17): nat_blackholes is null everywhere.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}
RATE=100
VIP=10.79.100.1
PORT=5300
SPORT=40000
A=10.79.2.2
B=10.79.3.2
flow="select(.src == \"10.79.1.2\" and .sport == $SPORT and .dst == \"$VIP\" and .dport == $PORT)"
NB_C=ctbpf-nb-c-$$
NB_A=ctbpf-nb-a-$$
NB_B=ctbpf-nb-b-$$
trap 'for n in "$NB_C" "$NB_A" "$NB_B"; do ip netns del "$n" 2>/dev/null || true; done; cleanup' EXIT
skip_unless_kernel_allows "$mode"
load_modules
for m in nf_nat nft_nat nft_chain_nat nft_fib nft_fib_ipv4; do
	[ -d "/sys/module/$m" ] || modprobe "$m" 2>/dev/null || true
done

# ---- the topology -------------------------------------------------------------------------------------
for n in "$NS" "$NB_C" "$NB_A" "$NB_B"; do
	ip netns add "$n"
	ip -n "$n" link set lo up
done
# acct counts each entry's packets per direction (per netns): backend A never answers, so doctor in the
# router's netns sees the flow as NAT'd and unanswered (nat_unanswered) even while A is there.
ip netns exec "$NS" sysctl -qw net.ipv4.ip_forward=1 net.netfilter.nf_conntrack_acct=1
link() { # link NETNS ROUTER_DEV SUBNET
	ip link add "$2" netns "$NS" type veth peer name eth0 netns "$1"
	ip -n "$NS" addr add "10.79.$3.1/24" dev "$2"
	ip -n "$1" addr add "10.79.$3.2/24" dev eth0
	ip -n "$NS" link set "$2" up
	ip -n "$1" link set eth0 up
	ip -n "$1" route add default via "10.79.$3.1"
}
link "$NB_C" cli 1
link "$NB_A" bka 2
link "$NB_B" bkb 3
ip netns exec "$NS" nft -f - <<NFT
table ip ctbpf_nb {
	counter no_route {}
	chain to_backend {
		type nat hook prerouting priority -100;
		ip daddr $VIP udp dport $PORT dnat to $A
	}
	chain after_dnat {
		type filter hook prerouting priority 0;
		ip daddr $A udp dport $PORT fib daddr oif missing counter name no_route
	}
}
NFT
for n in "$NB_A" "$NB_B"; do # no conntrack there (no ct or nat rule): a counter of what arrived
	ip netns exec "$n" nft -f - <<NFT
table ip ctbpf_nb {
	counter got {}
	chain in {
		type filter hook input priority 0;
		udp dport $PORT counter name got drop
	}
}
NFT
done
got() { ip netns exec "$1" nft -j list counter ip ctbpf_nb got 2>/dev/null | jq '[.nftables[].counter? | select(.) | .packets][0] // 0'; }
no_route() { in_ns nft -j list counter ip ctbpf_nb no_route | jq '[.nftables[].counter? | select(.) | .packets][0]'; }

# ---- ctbpf: trace (router netns), serve (a quiet netns), and the client's flow ----------------------
start_trace "$mode" -i 1
make_quiet_netns
port=$((20000 + $$ % 10000))
ip netns exec "$QUIET_NS" "$CTBPF_BIN" serve --mode "$mode" --listen "127.0.0.1:$port" -i 0.5 \
	--ready-file "$WORK/serve.ready" >/dev/null 2>"$WORK/serve.err" &
serve_pid=$!
BG_PIDS+=("$serve_pid")
wait_file "$WORK/serve.ready" "$serve_pid" "ctbpf serve"
blackholed() { # serve's counter, summed over its series; "absent" without the family
	in_quiet curl -sf "http://127.0.0.1:$port/metrics" |
		awk '/^ctbpf_conntrack_nat_blackholed_packets_total/ {s += $2; n++} END {print n ? s : "absent"}'
}
ip netns exec "$NB_C" "$CTBPF_FLOWGEN" udp-stream --dst "$VIP" --port "$PORT" --sport "$SPORT" --rate "$RATE" \
	--count $((RATE * 600)) >/dev/null &
BG_PIDS+=($!)
for _ in $(seq 60); do [ "$(got "$NB_A")" -gt 0 ] && break; sleep 0.5; done
expect "backend A receives the flow" "$(($(got "$NB_A") > 0))" 1

# run_doctor SECONDS [NETNS]: ctbpf doctor from the root netns (where it runs on a node), or in NETNS:
# its JSON in $DOCTOR.
run_doctor() {
	DOCTOR=$(${2:+ip netns exec "$2"} "$CTBPF_BIN" doctor --json --mode "$mode" -d "$1" 2>>"$WORK/trace.err")
	log "doctor: $(jq -c '[.findings[] | [.severity, .id, .title]]' <<<"$DOCTOR")"
}
drop_reasons=0
grep -qa SKB_DROP_REASON_NOT_SPECIFIED /sys/kernel/btf/vmlinux && drop_reasons=1

run_doctor 2 "$NS"
expect "healthy backend: no nat_blackhole finding" "$(finding nat_blackhole .id)" null
# The kernel's own view: the entry has no reply ([UNREPLIED] in conntrack -L), NAT'd to A.
unreplied=$(in_ns conntrack -L -p udp --orig-src 10.79.1.2 --sport "$SPORT" 2>/dev/null | grep -c "UNREPLIED.*src=$A " || true)
expect "the router: the flow's entry is unreplied and NAT'd to A" "$unreplied" 1
expect "doctor in the router's netns: nat_unanswered names the flow" \
	"$(finding nat_unanswered "[.evidence.busiest[] | $flow | select(.dnat_to == \"$A:$PORT\" and .packets >= 10)] | length")" 1

# ---- the incident -----------------------------------------------------------------------------------
ip netns del "$NB_A"
gone=$(date +%s.%N)
in_ns nft -f - <<NFT
flush chain ip ctbpf_nb to_backend
add rule ip ctbpf_nb to_backend ip daddr $VIP udp dport $PORT dnat to $B
NFT
log "backend A deleted, the DNAT repointed to B"
# A snapshot of the incident (its 2 s are also the wait for serve's first reading of it). Reports read
# the same JSON in every mode: the host's tracepoint run checks them, a guest's boot saves the load.
if [ "$mode" = tracepoint ]; then
	"$CTBPF_BIN" snapshot --mode "$mode" -d 2 -o "$WORK/incident.json" 2>>"$WORK/trace.err"
else
	sleep 3.5
fi
serve_during=$(blackholed)
sleep 1.5
serve_later=$(blackholed)
b_before=$(got "$NB_B")

if [ "$drop_reasons" = 0 ]; then
	run_doctor 1
	expect "no drop reasons: doctor says nat_blackhole is unmeasured" \
		"$(doctor '[.unmeasured[] | select(.what | test("nat_blackhole"))] | length')" 1
	expect "no drop reasons: serve has no nat_blackholed family" "$serve_during" absent
	stop_trace
	expect "no drop reasons: summary nat_blackholes" "$(summary .nat_blackholes)" null
	expect "no drop reasons: interval nat_blackholes" \
		"$(jq -s '[.[] | select(.type == "interval") | .nat_blackholes] | unique' "$WORK/trace.out")" '[
  null
]'
	finish
fi

run_doctor 2
command=$(finding nat_blackhole '.evidence[0].delete_command' | jq -r .)
log "doctor's command: $command"
expect "doctor: nat_blackhole is a warning" "$(finding nat_blackhole .severity)" '"warning"'
expect "doctor: the flow's dnat_to" "$(finding nat_blackhole '.evidence[0].dnat_to')" "\"$A:$PORT\""
expect "doctor: the command enters the router's netns" "$(grep -c "^ip netns exec $NS conntrack -D " <<<"$command")" 1

# ---- the fix: doctor's command ----------------------------------------------------------------------
sh -c "$command" >/dev/null 2>&1 || true
for _ in $(seq 40); do [ "$(got "$NB_B")" -gt "$((b_before + RATE))" ] && break; sleep 0.25; done
expect "after doctor's command, backend B receives the flow" "$(($(got "$NB_B") > b_before + RATE))" 1
sleep 1.5 # serve reads every 0.5 s: its last read after the fix
serve_fixed=$(blackholed)
sleep 2
serve_after=$(blackholed)
stop_trace
no_route_total=$(no_route)
log "serve's counter: $serve_during during, $serve_later later, $serve_fixed after the fix, $serve_after 2 s on;" \
	"the router's no-route counter: $no_route_total"

if [ "$mode" = tracepoint ]; then
	# The snapshot and its report: the flow, where its NAT sends it, why it dies.
	snap_row=$(jq -c "[.summary.nat_blackholes[]? | $flow] | first" "$WORK/incident.json")
	expect "snapshot: the flow's dnat_to" "$(jq -r '.dnat_to' <<<"$snap_row")" "$A:$PORT"
	"$CTBPF_BIN" report "$WORK/incident.json" >"$WORK/report.txt"
	"$CTBPF_BIN" report "$WORK/incident.json" --html "$WORK/report.html"
	expect "report: the flow's line" \
		"$(grep -c "udp 10.79.1.2:$SPORT > $VIP:$PORT dnat to $A:$PORT $(jq -r .reason <<<"$snap_row")" "$WORK/report.txt")" 1
	expect "report --html: the flow's row" "$(grep -c "dnat to $A:$PORT" "$WORK/report.html")" 1
fi
expect "serve's counter rises during the incident" "$((serve_later > serve_during && serve_during > 0))" 1
expect "serve's counter stops rising after the fix" "$serve_after" "$serve_fixed"

# trace --json: the first intervals that end after the deletion; the flow in one of the first two.
epoch='(.time | capture("^(?<s>[^.]*)(?<f>\\.[0-9]+)?Z$") | (.s + "Z" | fromdate) + ((.f // "0") | tonumber))'
jq -c --argjson gone "$gone" "select(.type == \"interval\" and $epoch > \$gone)" "$WORK/trace.out" >"$WORK/after.ndjson"
first=$(jq -s "[.[] | [.nat_blackholes[]? | $flow] | length > 0] | index(true)" "$WORK/after.ndjson")
log "the flow first shows in interval $first after the deletion"
expect "trace names the flow within 2 intervals" "$([ "$first" != null ] && [ "$first" -le 1 ] && echo yes)" yes
# The second interval that shows the flow is a whole one. A packet or two of the flow may die first as
# the deleted backend's device goes (QDISC_DROP): rows of their own, logged, in serve's counter too.
log "the flow's drop reasons: $(jq -s -c "[.[] | .nat_blackholes[]? | $flow | .reason] | unique" "$WORK/after.ndjson")"
row=$(jq -s -c "[.[] | [.nat_blackholes[]? | $flow | select(.reason == \"IP_INNOROUTES\")] | select(length > 0)][1][0]" \
	"$WORK/after.ndjson")
log "a whole interval's row: $row"
expect "row: dnat_to" "$(jq -r .dnat_to <<<"$row")" "$A:$PORT"
expect "row: reason" "$(jq -r .reason <<<"$row")" IP_INNOROUTES
expect "row: packets_per_s within 10% of $RATE" \
	"$(jq --argjson r "$RATE" '.packets_per_s >= 0.9 * $r and .packets_per_s <= 1.1 * $r' <<<"$row")" true
expect "summary: the flow's IP_INNOROUTES packets = the router's no-route counter" \
	"$(summary "[.nat_blackholes[] | $flow | select(.reason == \"IP_INNOROUTES\") | .packets] | add")" "$no_route_total"
expect "summary: the flow is in the router's netns" \
	"$(summary "[.nat_blackholes[] | $flow | .netns] | unique")" "[$(ns_inode)]"
validate_records "$WORK/trace.out"
finish
