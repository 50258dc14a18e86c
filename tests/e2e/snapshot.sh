#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# snapshot.sh MODE N: `ctbpf snapshot` taken during chaintoolong.sh's flood (N new UDP flows into a
# table of 512 buckets), while `ctbpf trace --json` watches the same window. Before the flood, 20 TCP
# connections; after it, `conntrack -F` ends every entry, so the window also has lifetimes.
# The snapshot must hold the kernel's numbers (drops.chaintoolong = the kernel's delta; fentry/kprobe:
# inserts = `conntrack -C` before the flush) and the trace's: its summary equals trace's field for
# field (chain histogram buckets included; lifetimes by count), its intervals add up to its summary,
# and `ctbpf report` prints the same numbers. The file reads back (report; diff with itself: no change).
# CTBPF_EXPORT_SNAPSHOT=1 also prints the file, base64, after a "=== snapshot MODE" line (for
# tests/fuzz/make-corpus.sh: results leave the VM only through stdout).
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}
n=${2:-20000}
tcp=20
port=9000 # TCP: outside the nft input chain's UDP drop range

load_modules
make_netns
set_global /sys/module/nf_conntrack/parameters/hashsize 1

ip netns exec "$NS" "$CTBPF_BIN" snapshot --mode "$mode" -d 900 -i 1 --lifetime-sample 1 \
	-o "$WORK/snap.json" --ready-file "$WORK/snap.ready" 2>"$WORK/snap.err" &
snap_pid=$!
BG_PIDS+=("$snap_pid")
wait_file "$WORK/snap.ready" "$snap_pid" "ctbpf snapshot"
start_trace "$mode" --lifetime-sample 1 --chain-sample 1 # every chain, as snapshot walks them

in_ns_bg "$CTBPF_FLOWGEN" tcp-listen --addr 127.0.0.1 --port "$port" --ready "$WORK/listen.ready"
wait_file "$WORK/listen.ready" "${BG_PIDS[-1]}" "flowgen tcp-listen"
in_ns_bg "$CTBPF_FLOWGEN" tcp-hold --dst 127.0.0.1 --port "$port" --count "$tcp" --ready "$WORK/hold.ready"
hold_pid=${BG_PIDS[-1]}
wait_file "$WORK/hold.ready" "$hold_pid" "flowgen tcp-hold"

chaintoolong0=$(ct_stat chaintoolong)
read -r sent refused <<<"$(udp_flood 20000 "$n")"
chaintoolong=$(($(ct_stat chaintoolong) - chaintoolong0))
count=$(ct_count)
kill -TERM "$hold_pid"
wait "$hold_pid" 2>/dev/null || true
in_ns conntrack -F 2>/dev/null
sleep 1.5 # at least one whole interval after the flush

stop_trace TERM
kill -TERM "$snap_pid"
rc=0
wait "$snap_pid" || rc=$?
restore_globals
log "sent $sent, refused $refused; kernel: count $count, chaintoolong +$chaintoolong; $(cat "$WORK/snap.err")"
expect "ctbpf snapshot exit code" "$rc" 0
[ -s "$WORK/snap.json" ] || { echo "FAIL no snapshot written"; cat "$WORK/snap.err"; exit 1; }
snap() { jq -c "$1" "$WORK/snap.json"; }

# The scenario itself.
expect "kernel chaintoolong > 0" "$((chaintoolong > 0))" 1
expect "conntrack -C" "$count" "$((sent + tcp))"

# The document.
expect schema_version "$(snap .schema_version)" 1
expect mode "$(snap .mode)" "\"$mode\""
expect "summary.mode" "$(snap .summary.mode)" "\"$mode\""
expect "kernel" "$(snap .kernel)" "\"$(uname -r)\""
expect "sysctls.buckets" "$(snap .sysctls.buckets)" 512
expect "sysctls.max" "$(snap .sysctls.max)" "$(cat /proc/sys/net/netfilter/nf_conntrack_max)"
expect "sysctls.tcp_timeout_established" "$(snap .sysctls.tcp_timeout_established)" \
	"$(cat /proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established)"
expect "window start < end" "$(snap '.window.start < .window.end')" true
expect "intervals > 3" "$(snap '.intervals | length > 3')" true

# The kernel's numbers.
expect drops.chaintoolong "$(snap .summary.drops.chaintoolong)" "$chaintoolong"
if [ "$mode" = tracepoint ]; then
	expect inserts "$(snap .summary.inserts)" null
	expect chain_length.count "$(snap .summary.chain_length.count)" null
else
	expect inserts "$(snap .summary.inserts)" "$count"
	expect chain_length.count "$(snap .summary.chain_length.count)" "$count"
	expect "lifetime_ms.by_proto.tcp.count" "$(snap .summary.lifetime_ms.by_proto.tcp.count)" "$tcp"
	expect "lifetime_ms.by_proto.udp.count" "$(snap .summary.lifetime_ms.by_proto.udp.count)" "$sent"
fi

# The trace's numbers: the same flood in both windows, so the same summary (histograms included).
# Lifetimes only by count: each tracer's programs stamp births and deaths themselves, microseconds
# apart (and the trace's NDJSON record carries its wall-clock "time"), so a life near a bucket bound can land in the next bucket in one of them.
same='del(.duration_s, .events, .time) | .lifetime_ms |= {count, untracked, by_proto: ((.by_proto // {}) | map_values(.count))}'
expect "summary = trace's summary" "$(snap ".summary | $same")" "$(summary "$same")"
# The series adds up to the summary.
sum() { snap "[.intervals[] | $1] | if all(. == null) then null else add end"; }
for key in inserts destroys allocs drops.chaintoolong drops.insert_failed chain_length.count lifetime_ms.count; do
	expect "sum of intervals' $key" "$(sum ".$key")" "$(snap ".summary.$key")"
done

# Report and diff read it back and print the same numbers.
"$CTBPF_BIN" report "$WORK/snap.json" >"$WORK/report.txt"
expect "report: chaintoolong row" "$(grep -cE "^ +chaintoolong $chaintoolong \|" "$WORK/report.txt")" 1
if [ "$mode" = tracepoint ]; then
	expect "report: inserts" "$(grep -cE "^  allocs - +inserts - " "$WORK/report.txt")" 1
else
	expect "report: inserts" "$(grep -cE "^  allocs [0-9]+ +inserts $count " "$WORK/report.txt")" 1
	expect "report: chain length" "$(grep -cE "^  chain length: n $count " "$WORK/report.txt")" 1
	# One row per bucket of the chain histogram.
	buckets=$(snap '.summary.chain_length.buckets | length')
	rows=$(awk '/^Chain length at insert/ {on = 1; next} on && /^$/ {exit} on' "$WORK/report.txt" | wc -l)
	expect "report: chain length rows" "$rows" "$buckets"
fi
"$CTBPF_BIN" diff "$WORK/snap.json" "$WORK/snap.json" >"$WORK/diff.txt"
expect "diff with itself" "$(tail -n 1 "$WORK/diff.txt")" "no change"

if [ -n "${CTBPF_EXPORT_SNAPSHOT:-}" ]; then
	echo "=== snapshot $mode"
	base64 -w 0 "$WORK/snap.json"
	echo
fi
finish
