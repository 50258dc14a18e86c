#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# table_full_live.sh MODE [M] [K] [KEEP_DIR]: a real "nf_conntrack: table full, dropping packet" (the
# table_full.sh scenario: nf_conntrack_max = M, filled with M ASSURED TCP entries, then K new UDP flows
# refused), watched at once by `ctbpf trace --json --events drop`, `ctbpf serve` and `ctbpf snapshot`,
# all in the test netns. Every view must show the kernel's own `drop` delta (K) as table_full:
#  - trace: per interval (every interval non-null, their sum = the delta, some interval > 0) and in
#    the summary, with kernel_stats.drop = the delta and the scope stated; in a mode without events,
#    one stderr line and summary.events.unavailable say `--events` gives nothing;
#  - serve: ctbpf_conntrack_drops_total{cause="table_full"} = the delta;
#  - snapshot: the same per interval, and its HTML report has a table_full timeline whose bars sum to
#    the delta (and passes report_html.sh: Chromium, no console message, bars per chart, screenshot).
# nf_conntrack_max is global (writable from the initial netns only): so this runs in a guest only,
# restored as soon as the flood is measured, and on exit.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}
m=${2:-300}
k=${3:-2000}
keep=${4:-}
port=9000 # TCP: outside the nft input chain's UDP drop range
metrics_port=9652

load_modules
make_netns
fill_with_assured "$m" "$port"
held=$HELD
count_before=$(ct_count)

start_trace "$mode" -i 0.5 --events drop
ip netns exec "$NS" "$CTBPF_BIN" serve --mode "$mode" --listen "127.0.0.1:$metrics_port" -i 0.5 \
	--ready-file "$WORK/serve.ready" 2>"$WORK/serve.err" &
serve_pid=$!
BG_PIDS+=($serve_pid)
ip netns exec "$NS" "$CTBPF_BIN" snapshot --mode "$mode" -d 600 -i 0.5 -o "$WORK/snapshot.json" \
	--ready-file "$WORK/snapshot.ready" 2>"$WORK/snapshot.err" &
snapshot_pid=$!
BG_PIDS+=($snapshot_pid)
wait_file "$WORK/serve.ready" "$serve_pid" "ctbpf serve"
wait_file "$WORK/snapshot.ready" "$snapshot_pid" "ctbpf snapshot"

drop0=$(ct_stat drop)
read -r sent refused <<<"$(udp_flood 20000 "$k")"
drop=$(($(ct_stat drop) - drop0))
count=$(ct_count)
dropped=$(nft_drop_packets)
# Serve renders its page once per interval (0.5 s): let one pass after the flood.
sleep 1.5
kill -TERM "$snapshot_pid"
stop_trace TERM
wait "$snapshot_pid" || { cat "$WORK/snapshot.err" >&2; exit 1; }
# The scrape's own TCP connection needs room in the table: the global goes back first.
restore_globals
metrics=$(in_ns curl -sf "http://127.0.0.1:$metrics_port/metrics")
kill -TERM "$serve_pid"
wait "$serve_pid" || { cat "$WORK/serve.err" >&2; exit 1; }
log "held $held; sent $sent, refused $refused; kernel: count $count, drop +$drop"

# The scenario itself.
expect "connections held" "$held" "$m"
expect "conntrack -C before the flood" "$count_before" "$m"
expect "datagrams refused" "$refused" "$k"
expect "kernel drop" "$drop" "$k"
expect "conntrack -C after the flood" "$count" "$m"

# trace --json: per interval and summary.
intervals=$(jq -s -c '[.[] | select(.type == "interval")]' "$WORK/trace.out")
expect "trace: intervals with table_full null" "$(jq '[.[] | select(.drops.table_full == null)] | length' <<<"$intervals")" 0
expect "trace: sum of table_full over intervals" "$(jq '[.[].drops.table_full] | add' <<<"$intervals")" "$drop"
expect "trace: some interval saw table_full" "$(jq '[.[] | select(.drops.table_full > 0)] | length > 0' <<<"$intervals")" true
expect "trace: sum of kernel_stats.drop over intervals" "$(jq '[.[].kernel_stats.drop] | add' <<<"$intervals")" "$drop"
expect "trace: intervals with table.growth null" "$(jq '[.[] | select(.table.growth == null)] | length' <<<"$intervals")" 0
expect "trace: sum of netfilter_drops over intervals" "$(jq '[.[].netfilter_drops] | add' <<<"$intervals")" "$((drop + dropped))"
expect "trace: summary drops.table_full" "$(summary .drops.table_full)" "$drop"
expect "trace: summary kernel_stats.drop" "$(summary .kernel_stats.drop)" "$drop"
expect "trace: summary table.count" "$(summary .table.count)" "$count"
expect "trace: summary netfilter_drops" "$(summary .netfilter_drops)" "$((drop + dropped))"
expect "trace: scope of netfilter_drops" "$(summary .scope.netfilter_drops)" '"all_netns"'
expect "trace: scope of table" "$(summary .scope.table)" '"own_netns"'
if [ "$mode" = tracepoint ]; then
	expect "trace: scope of table_full" "$(summary .scope.drops.table_full)" '"own_netns"'
	expect "trace: --events refused in the summary" "$(summary '.events.unavailable | type')" '"string"'
	expect "trace: --events refused on stderr, one line" "$(grep -c -- '^ctbpf: --events: no event lines in tracepoint mode' "$WORK/trace.err")" 1
	expect "trace: event lines" "$(jq -s '[.[] | select(.type == "event")] | length' "$WORK/trace.out")" 0
fi

# serve's /metrics.
log "metrics: $(grep -E 'drops_total|kernel_stats_total\{stat="drop"' <<<"$metrics" | tr '\n' ' ')"
expect "serve: drops_total{cause=table_full}" \
	"$(awk '$1 == "ctbpf_conntrack_drops_total{cause=\"table_full\"}" {print $2}' <<<"$metrics")" "$drop"
expect "serve: kernel_stats_total{stat=drop}" \
	"$(awk '$1 == "ctbpf_conntrack_kernel_stats_total{stat=\"drop\"}" {print $2}' <<<"$metrics")" "$drop"

# The snapshot and its HTML report.
snapshot=$WORK/snapshot.json
expect "snapshot: summary drops.table_full" "$(jq .summary.drops.table_full "$snapshot")" "$drop"
expect "snapshot: sum of table_full over intervals" "$(jq '[.intervals[].drops.table_full] | add' "$snapshot")" "$drop"
"$CTBPF_BIN" report "$snapshot" --html "$WORK/report.html"
"$CTBPF_BIN" report "$snapshot" >"$WORK/report.txt"
# Each bar's <title> is "END_TIME: VALUE": the bars of the table_full timeline sum to the drops.
svg_of() { tr -d '\n' <"$WORK/report.html" | sed 's/<svg /\n<svg /g; s#</svg>#</svg>\n#g' | grep "^<svg id=\"chart-$1\""; }
bars_sum() { svg_of "$1" | grep -oE '<title>[^<]*</title>' | sed -E 's/.*: ([0-9]+).*/\1/' | awk '{s += $1} END {print s + 0}'; }
expect "report: table_full timeline bars" "$(svg_of drops_table_full | grep -o '<rect class="bar"' | wc -l)" \
	"$(jq '.intervals | length' "$snapshot")"
expect "report: table_full timeline sum" "$(bars_sum drops_table_full)" "$drop"
expect "report: table count timeline" "$(svg_of table_count | grep -c '<rect class="bar"')" 1
expect "report: text has the table_full timeline" "$(grep -c '^table_full per interval' "$WORK/report.txt")" 1
# Chromium under the guest's emulation takes 8 minutes: the report's rendering in a browser is
# host_report_html's (the same report code, from committed snapshots); here, its numbers.
if in_guest; then
	log "report_html.sh (Chromium) skipped in the guest: host_report_html renders reports in a browser"
elif "$(dirname "$0")/report_html.sh" "$snapshot" "$keep"; then
	expect "report_html.sh on this snapshot" ok ok
else
	expect "report_html.sh on this snapshot" failed ok
fi
[ -z "$keep" ] || cp "$snapshot" "$keep/"
finish
