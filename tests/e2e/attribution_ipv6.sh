#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# attribution_ipv6.sh MODE: who fills the table, for IPv6 sources, checked against the kernel.
#  Sources fd00::1..3 on lo of the test netns send UDP flows to fd00::10, and fd00::10 holds TCP
#  connections to itself; fd00::1's first 250 flows are made BEFORE ctbpf starts (only the seeding
#  dump knows them). While `ctbpf top --json` and `ctbpf snapshot --top 2` run: 100, 200 and 300 new
#  flows from fd00::1..3, 20 TCP connections, and 30 IPv4 flows from 127.0.0.2 alongside.
#  - top: live entries per source = `conntrack -L` counted per source (IPv6 and IPv4).
#  - the snapshot's summary: the netns row carries its `ip netns` name and inserts = the flows made
#    while it ran; its top 2 by live entries (fd00::1 350, fd00::3 300) and by inserts (fd00::3 300,
#    fd00::2 200) are exact, and "other" holds the rest; `ctbpf report` reads the file back.
# CTBPF_EXPORT_SNAPSHOT=1 also prints the snapshot, base64, after a "=== attribution MODE" line (a
# fuzz seed with names and sources: tests/fuzz/make-corpus.sh).
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}

load_modules
make_netns
for a in fd00::1 fd00::2 fd00::3 fd00::10; do ip -n "$NS" addr add "$a/128" dev lo nodad; done
# Unreplied UDP entries expire after 30 s, and loading BPF under TCG can take about that long: keep
# them for the whole test (this netns's own sysctl, nothing global).
in_ns sh -c 'echo 600 >/proc/sys/net/netfilter/nf_conntrack_udp_timeout'
udp6() { in_ns "$CTBPF_FLOWGEN" udp --dst fd00::10 --src "$1" --port "$2" --count "$3" >/dev/null 2>&1; }
udp6 fd00::1 30000 250

ip netns exec "$NS" "$CTBPF_BIN" top --json --mode "$mode" -n 50 -i 0.5 --ready-file "$WORK/ready" \
	>"$WORK/top.out" 2>"$WORK/trace.err" &
TRACE_PID=$!
ip netns exec "$NS" "$CTBPF_BIN" snapshot --mode "$mode" --top 2 -d 600 -i 0.5 -o "$WORK/snap.json" \
	--ready-file "$WORK/snap.ready" 2>"$WORK/snap.err" &
snap_pid=$!
BG_PIDS+=($snap_pid)
wait_file "$WORK/ready" "$TRACE_PID" "ctbpf top"
wait_file "$WORK/snap.ready" "$snap_pid" "ctbpf snapshot"

udp6 fd00::1 20000 100
udp6 fd00::2 20000 200
udp6 fd00::3 20000 300
in_ns_bg "$CTBPF_FLOWGEN" tcp-listen --addr fd00::10 --port 8080 --ready "$WORK/listen.ready"
wait_file "$WORK/listen.ready" "${BG_PIDS[-1]}" "flowgen tcp-listen"
in_ns_bg "$CTBPF_FLOWGEN" tcp-hold --dst fd00::10 --port 8080 --count 20 --ready "$WORK/hold.ready"
wait_file "$WORK/hold.ready" "${BG_PIDS[-1]}" "flowgen tcp-hold"
in_ns "$CTBPF_FLOWGEN" udp --dst 127.0.0.1 --src 127.0.0.2 --port 20000 --count 30 >/dev/null 2>&1
sleep 2 # an interval or more after the last flow

stop_trace_and "$snap_pid" "$WORK/snap.err"
final=$(tail -n 1 "$WORK/top.out")
log "top: $final"

# The first src= of each entry is its original source.
in_ns conntrack -L 2>/dev/null | sed -E 's/^[^=]* src=([^ ]+) .*/\1/' | sort | uniq -c >"$WORK/by_src"
log "conntrack -L by source: $(tr -s ' \n' ' ' <"$WORK/by_src")"
count_of() { awk -v a="$1" '$2 == a {print $1}' "$WORK/by_src"; }
# The test's own flows, as the kernel holds them (else the checks below would prove nothing).
expect "conntrack -L -f ipv6: entries" "$(in_ns conntrack -L -f ipv6 2>/dev/null | wc -l)" 870
for want in "fd00::1 350" "fd00::2 200" "fd00::3 300" "fd00::10 20" "127.0.0.2 30"; do
	set -- $want
	expect "conntrack: $1 holds" "$(count_of "$1")" "$2"
done

inode=$(stat -L -c %i "/run/netns/$NS")
for src in fd00::1 fd00::2 fd00::3 fd00::10 127.0.0.2; do
	got=$(jq --argjson n "$inode" --arg a "$src" '.sources[] | select(.netns == $n and .src == $a) | .live' <<<"$final")
	expect "top: $src live = conntrack -L count" "$got" "$(count_of "$src")"
done

s=$(jq -c .summary "$WORK/snap.json")
row=$(jq -c --argjson n "$inode" '.by_netns[] | select(.netns == $n)' <<<"$s")
expect "snapshot: netns name" "$(jq -r .name <<<"$row")" "$NS"
expect "snapshot: netns inserts = conntrack -C - the 250 from before" "$(jq .inserts <<<"$row")" \
	"$(($(ct_count) - 250))"
rows() { jq -c --arg k "$1" '[.by_source[$k][] | [.src, .live, .inserts, .name]]' <<<"$s"; }
other_live=$(($(ct_count) - $(count_of fd00::1) - $(count_of fd00::3)))
expect "snapshot: top 2 by live" "$(rows by_live)" \
	"[[\"fd00::1\",$(count_of fd00::1),100,\"$NS\"],[\"fd00::3\",$(count_of fd00::3),300,\"$NS\"],[\"other\",$other_live,250,null]]"
expect "snapshot: top 2 by inserts" "$(rows by_inserts)" \
	"[[\"fd00::3\",300,300,\"$NS\"],[\"fd00::2\",200,200,\"$NS\"],[\"other\",$((other_live + 350 - 200)),150,null]]"
expect "snapshot: source map losses" "$(jq .by_source.untracked <<<"$s")" 0
"$CTBPF_BIN" report "$WORK/snap.json" >"$WORK/report.txt"
expect "report: fd00::1 under its netns name" "$(grep -c "  fd00::1  netns $NS\$" "$WORK/report.txt")" 1

if [ -n "${CTBPF_EXPORT_SNAPSHOT:-}" ]; then
	echo "=== attribution $mode"
	base64 -w 0 "$WORK/snap.json"
	echo
fi
finish
