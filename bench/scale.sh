#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scale.sh [ENTRIES] [SMALL]: ctbpf's cost with a big conntrack table (issue 18's "Scale"). In a netns
# it makes, with nf_conntrack_max 2097152 and 262144 buckets (both global: saved and restored) and a
# one-hour UDP timeout (the netns's own), it makes SMALL (10000) and then ENTRIES (1000000) live
# entries from unreplied UDP flows (flowgen udp: one datagram per port, 40000 ports per source address
# 127.0.0.2, .3, ...: distinct tuples), and measures for serve, trace, top, doctor and snapshot in
# fentry mode, at each size:
#   - the kernel memory of the process's BPF maps: the sum of bytes_memlock (`bpftool map show`) of
#     the maps its file descriptors hold;
#   - its RSS once attached and settled (VmRSS) and its peak RSS over its whole run (GNU time's
#     maximum resident set: start-up, dumps and shutdown included);
#   - for top and doctor, their ctnetlink dumps: entries read, seconds, stopped early or not.
# serve and trace run during the fill from SMALL to ENTRIES: their insert counts for the netns must
# equal the flows made and the kernel's own count (conntrack -C) growth. Prints markdown tables.
# Needs a kernel with fentry (the 6.1 guest) and memory for the entries (~0.5 GB per million), e.g.:
#   tests/vm/vmrun --mem 4096 --timeout 1800 -- bench/scale.sh
set -euo pipefail
: "${CTBPF_BIN:?set CTBPF_BIN to the ctbpf binary}" "${CTBPF_FLOWGEN:?set CTBPF_FLOWGEN to flowgen}"
big=${1:-1000000} small=${2:-10000}
BPFTOOL=${BPFTOOL:-/usr/sbin/bpftool}
source "$(dirname "$0")/lib.sh"
((big <= 250 * FILL_PER_SOURCE && small < big)) || { echo "scale.sh: need SMALL < ENTRIES <= $((250 * FILL_PER_SOURCE))" >&2; exit 2; }
start_s=$(date +%s)

NS=ctbpf-scale-$$
QUIET=ctbpf-scale-quiet-$$ # no rules, so no conntrack: serve and the scraper live here, out of the counts
WORK=$(mktemp -d)
TIME_PIDS=()
cleanup() {
	local p
	for p in "${TIME_PIDS[@]}"; do kill -KILL "$(children "$p")" "$p" 2>/dev/null || true; done
	# Deleting the netns frees its million entries; the global sizes go back after that (a hashsize
	# change rehashes every entry left).
	ip netns del "$NS" 2>/dev/null || true
	ip netns del "$QUIET" 2>/dev/null || true
	big_table_restore
	rm -rf "$WORK"
}
trap cleanup EXIT
children() { cat "/proc/$1/task/$1/children" 2>/dev/null || true; }

flood_netns # loads the modules; NS with loopback up, conntrack on, the flood's UDP dropped on input
ip netns add "$QUIET"
ip -n "$QUIET" link set lo up
big_table_sizes
ip netns exec "$NS" sh -c 'echo 3600 >/proc/sys/net/netfilter/nf_conntrack_udp_timeout'
inode=$(stat -L -c %i "/run/netns/$NS")
ct_count() { ip netns exec "$NS" conntrack -C; }

# start NAME NETNS ARGS...: ctbpf ARGS in NETNS under GNU time (for its peak RSS), until every program
# is attached. ip netns exec execs time in place: $! is time, its one child is ctbpf ($pid).
start() {
	local name=$1 netns=$2 waited=0
	shift 2
	rm -f "$WORK/$name.ready" # a name runs more than once
	ip netns exec "$netns" /usr/bin/time -f %M -o "$WORK/$name.maxrss" "$CTBPF_BIN" "$@" \
		--ready-file "$WORK/$name.ready" >"$WORK/$name.out" 2>"$WORK/$name.err" &
	TIME_PIDS+=($!)
	eval "time_$name=$!"
	while [ ! -e "$WORK/$name.ready" ]; do
		kill -0 $! 2>/dev/null || { echo "scale.sh: $name exited:" >&2; cat "$WORK/$name.err" >&2; exit 1; }
		sleep 0.2
		((++waited < 1500)) || { echo "scale.sh: $name not ready after 300 s" >&2; exit 1; }
	done
	eval "pid_$name=$(children $!)"
}

# measure NAME: its RSS now (kB), and the maps its fds hold: count and the sum of bytes_memlock.
measure() {
	local pid ids
	eval "pid=\$pid_$1"
	awk '/^VmRSS/ {print $2}' "/proc/$pid/status" >"$WORK/$1.rss"
	ids=$(cat /proc/"$pid"/fdinfo/* 2>/dev/null | sed -n 's/^map_id:[[:space:]]*//p' | sort -un | tr '\n' ' ')
	"$BPFTOOL" map show --json | jq --arg ids "$ids" '($ids | split(" ") | map(select(. != "") | tonumber)) as $held
		| [.[] | select(.id as $id | $held | index($id))] | "\(length) \(map(.bytes_memlock) | add)"' -r >"$WORK/$1.maps"
}

# stop NAME: SIGTERM (ends trace, top, doctor's window, snapshot early; serve), then its exit, up to
# 10 minutes (an unbounded dump of a million entries under TCG takes a while).
stop() {
	local pid tpid
	eval "pid=\$pid_$1 tpid=\$time_$1"
	kill -TERM "$pid"
	for _ in $(seq 3000); do kill -0 "$tpid" 2>/dev/null || break; sleep 0.2; done
	wait "$tpid" || { echo "scale.sh: $1 failed:" >&2; cat "$WORK/$1.err" >&2; exit 1; }
}

# run NAME NETNS ARGS...: start, 3 s of intervals, measure, stop.
run() {
	start "$@"
	sleep 3
	measure "$1"
	stop "$1"
}

# dump_of NAME SIZE: "ENTRIES in S s, whole table | stopped: BOUND" of the last dump NAME made (top:
# the seed or the last refresh's; doctor: the window's end), from its JSON output at SIZE; "-" for
# the commands that make none.
dump_of() {
	local filter
	case $1 in
	top*) filter='.dump' ;;
	doctor*) filter='.inputs.dumps.end' ;;
	*) echo -; return ;;
	esac
	tail -n 1 "$WORK/$1.out.$2" | jq -r "$filter"' | "\(.entries) in \(.seconds * 100 | round / 100) s"
		+ (if .stopped_early then ", stopped: \(.stopped_by)" else ", whole table" end)'
}

# The tools, each run alone at each size (serve and trace: see the fill below). Every process is in
# the test netns but serve (which needs no netns: its probes see all) and its scraper.
declare -A args=(
	[serve]="serve --mode fentry -i 1 --listen 127.0.0.1:9650"
	[trace]="trace --mode fentry --json -i 1"
	[top]="top --mode fentry --json -i 1"
	[top_tp]="top --mode tracepoint --json -i 1"
	[doctor]="doctor --mode fentry --json -d 3600"
	[snapshot]="snapshot --mode fentry -i 1 -d 600 -o $WORK/snapshot.json"
	[doctor_all]="doctor --mode fentry --json -d 3600 --dump-max-entries 0 --dump-max-seconds 0"
)
netns_of() { [ "$1" = serve ] && echo "$QUIET" || echo "$NS"; }
label() {
	case $1 in
	top_tp) echo "top --mode tracepoint" ;;
	doctor_all) echo "doctor, no dump bounds" ;;
	*) echo "$1 --mode fentry" ;;
	esac
}
save() { for f in rss maps maxrss out; do cp "$WORK/$1.$f" "$WORK/$1.$f.$2" 2>/dev/null || true; done; }

# 1. SMALL entries.
fill_to "$NS" "$small"
for name in serve trace top top_tp doctor snapshot; do
	# shellcheck disable=SC2086 # args are words
	run "$name" "$(netns_of $name)" ${args[$name]}
	save "$name" small
done

# 2. The fill to ENTRIES under serve and trace: their counts against the kernel's.
# shellcheck disable=SC2086
start serve "$QUIET" ${args[serve]}
# shellcheck disable=SC2086
start trace "$NS" ${args[trace]}
count_before=$(ct_count)
fill_to "$NS" "$big"
count_after=$(ct_count)
sleep 2.5 # serve's page is rendered every interval (-i 1): one after the last flow
metrics=$(ip netns exec "$QUIET" curl -s http://127.0.0.1:9650/metrics)
sample() { awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2; n++ } END { print n ? s : "none" }' <<<"$metrics"; }
serve_inserts=$(sample "ctbpf_conntrack_netns_inserts_total{netns=\"$inode\"}")
serve_drops=$(sample ctbpf_conntrack_drops_total)
measure serve
measure trace
stop trace
stop serve
save serve big
save trace big
summary=$(tail -n 1 "$WORK/trace.out")
trace_inserts=$(jq --argjson n "$inode" '[.by_netns[] | select(.netns == $n) | .inserts] | add' <<<"$summary")
trace_drops=$(jq '[.drops[] | numbers] | add' <<<"$summary")
trace_lifetime_lost=$(jq '.lifetime_ms.untracked' <<<"$summary")
fill_rate=$(tail -n 1 "$WORK/fill_s" | awk -v n=$((big - small)) '{printf "%.0f", n / $1}')

# 3. ENTRIES: the others, started on the big table.
for name in top top_tp doctor snapshot doctor_all; do
	# shellcheck disable=SC2086
	run "$name" "$NS" ${args[$name]}
	save "$name" big
done
final_count=$(ct_count)

mb() { [ -s "$1" ] && awk '{printf "%.1f", $1 / 1024}' "$1" || echo -; }
field() { [ -s "$1" ] && cut -d' ' -f"$2" "$1" || echo -; }
kib() { [ "$1" = - ] && echo - || awk -v b="$1" 'BEGIN {printf "%.0f", b / 1024}'; }
echo "kernel $(uname -r), $(nproc) CPUs; nf_conntrack_max $BIG_MAX, $BIG_BUCKETS buckets; $small then $big live UDP entries"
echo "(the fill to $big made $fill_rate entries/s with serve and trace attached)"
echo
echo "| command | BPF maps | map KiB, $small | map KiB, $big | RSS MB, $small | RSS MB, $big | peak RSS MB, $small | peak RSS MB, $big | ctnetlink dump, $small | ctnetlink dump, $big |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"
for name in serve trace top top_tp doctor snapshot doctor_all; do
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(label $name)" \
		"$(field "$WORK/$name.maps.big" 1)" \
		"$(kib "$(field "$WORK/$name.maps.small" 2)")" "$(kib "$(field "$WORK/$name.maps.big" 2)")" \
		"$(mb "$WORK/$name.rss.small")" "$(mb "$WORK/$name.rss.big")" \
		"$(mb "$WORK/$name.maxrss.small")" "$(mb "$WORK/$name.maxrss.big")" \
		"$([ -e "$WORK/$name.out.small" ] && dump_of "$name" small || echo -)" "$(dump_of "$name" big)"
done
echo
echo "Counts during the fill from $small to $big entries (serve and trace attached throughout):"
echo
echo "| count | value |"
echo "|---|---:|"
echo "| flows made (flowgen: datagrams sent, none refused) | $((big - small)) |"
echo "| the kernel's count growth (conntrack -C in the netns) | $((count_after - count_before)) |"
echo "| serve: ctbpf_conntrack_netns_inserts_total of the netns | $serve_inserts |"
echo "| trace: inserts of the netns (summary by_netns) | $trace_inserts |"
echo "| drops counted (serve / trace) | $serve_drops / $trace_drops |"
echo "| trace: sampled lifetimes (1 in 8) the 65536-slot births map could not keep | $trace_lifetime_lost |"
echo "| live entries at the end (conntrack -C) | $final_count |"
echo
echo "Whole run: $(($(date +%s) - start_s)) s."
