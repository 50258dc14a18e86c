#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# serve_prometheus.sh MODE N: a real Prometheus (Debian's package) scrapes `ctbpf serve` while the
# test makes N new flows; through Prometheus's HTTP API, the inserts counter reads N (= conntrack -C),
# so does the series labelled with the test netns's inode, and so does the chain-length histogram's
# count of the serve that walks every chain (--chain-sample 1); the default serve walks 1 insert in 64
# on each CPU (every 64th of that CPU's inserts): its count is the sum over CPUs of floor(inserts/64),
# between N/64 - CPUs (exclusive) and N/64, and its HELP says "1 insert in 64".
# Then the table is filled with M ASSURED entries and K more flows are refused ("table full"): for
# serve at the default --drop-events-rate and for a second one at 1 event/s per CPU, the sampled
# drop events (all table_full, all in the test netns) + suppressed + lost = the kernel's `drop`
# delta, and the low-rate one suppressed some. promtool finds no problem in the exposition.
# Prometheus evaluates the packaged alert rules (for: cut to 1s): the table-full drop alert fires;
# every panel query of the packaged dashboard succeeds with at least one series, and every metric the
# dashboard, the rules or their promtool tests name is on serve's /metrics page. Serve,
# Prometheus and the queries live in a netns without conntrack, so their own TCP connections are not
# counted.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode} n=${2:-2000}
m=300 k=2000 port=9000 # the table_full.sh scenario; TCP port outside the nft drop range
command -v prometheus >/dev/null || { echo "e2e: prometheus is missing (apt-get install prometheus)" >&2; exit 1; }

load_modules
make_netns
make_quiet_netns
drop0=$(ct_stat drop)
# start_serve PORT [serve options...]: ctbpf serve in the quiet netns, returning once it is attached.
start_serve() {
	local port=$1
	shift
	ip netns exec "$QUIET_NS" "$CTBPF_BIN" serve --mode "$mode" --listen "127.0.0.1:$port" -i 0.5 \
		--ready-file "$WORK/serve-$port.ready" "$@" 2>>"$WORK/trace.err" &
	BG_PIDS+=($!)
	wait_file "$WORK/serve-$port.ready" "${BG_PIDS[-1]}" "ctbpf serve on port $port"
}
start_serve 9640
start_serve 9641 --drop-events-rate 1 --chain-sample 1

# The packaged alert rules, with every `for:` cut to 1s so that a short flood can fire them.
sed -E 's/^( *)for: .*/\1for: 1s/' "$(dirname "$0")/../../packaging/prometheus/ctbpf-rules.yml" >"$WORK/rules.yml"
cat >"$WORK/prometheus.yml" <<-YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $WORK/rules.yml
scrape_configs:
  - job_name: ctbpf
    static_configs:
      - targets: ['127.0.0.1:9640']
  - job_name: ctbpf_low
    static_configs:
      - targets: ['127.0.0.1:9641']
YML
start_prometheus "$QUIET_NS" "$WORK/prometheus.yml"

read -r sent refused <<<"$(udp_flood 20000 "$n")"
count=$(ct_count)
# Wait (bounded) until Prometheus has scraped a page that includes every flow.
inserts=none
for _ in $(seq 60); do
	inserts=$(prom_query 'sum(ctbpf_conntrack_inserts_total{job="ctbpf"})')
	[ "$inserts" = "$n" ] && break
	sleep 1
done
chain_count=$(prom_query 'ctbpf_conntrack_chain_length_count{job="ctbpf"}')
chain_count_all=$(prom_query 'ctbpf_conntrack_chain_length_count{job="ctbpf_low"}')
chain_help=$(in_quiet curl -sf http://127.0.0.1:9640/metrics | grep -c '^# HELP ctbpf_conntrack_chain_length .*1 insert in 64 per CPU$' || true)
inode=$(stat -L -c %i "/run/netns/$NS")
netns_inserts=$(prom_query "ctbpf_conntrack_netns_inserts_total{job=\"ctbpf\",netns=\"$inode\"}")
netns_name=$(in_quiet curl -sf --get http://127.0.0.1:9090/api/v1/query \
	--data-urlencode "query=ctbpf_netns_info{job=\"ctbpf\",netns=\"$inode\"}" | jq -r '.data.result[0].metric.name // "none"')

# Table full: every one of the K allocations finds M ASSURED entries and no victim.
in_ns conntrack -F 2>/dev/null
flushed=$(ct_count)
fill_with_assured "$m" "$port"
read -r sent_full refused <<<"$(udp_flood 20000 "$k")"
drop=$(($(ct_stat drop) - drop0))
restore_globals
log "held $HELD; sent $sent_full, refused $refused; kernel drop +$drop"
# accounted JOB: sampled table_full events + suppressed + lost, as Prometheus last scraped them.
accounted() {
	prom_query "sum(ctbpf_conntrack_drop_events_total{job=\"$1\",cause=\"table_full\"}) +
		sum(ctbpf_drop_events_suppressed_total{job=\"$1\"}) + sum(ctbpf_lost_events_total{job=\"$1\"})"
}
declare -A events_all events_netns suppressed lost drops_total total
for job in ctbpf ctbpf_low; do
	for _ in $(seq 60); do
		total[$job]=$(accounted "$job")
		[ "${total[$job]}" = "$drop" ] && break
		sleep 1
	done
	events_all[$job]=$(prom_query "sum(ctbpf_conntrack_drop_events_total{job=\"$job\"})")
	events_netns[$job]=$(prom_query "sum(ctbpf_conntrack_drop_events_total{job=\"$job\",cause=\"table_full\",netns=\"$inode\"})")
	suppressed[$job]=$(prom_query "ctbpf_drop_events_suppressed_total{job=\"$job\"}")
	lost[$job]=$(prom_query "ctbpf_lost_events_total{job=\"$job\"}")
	drops_total[$job]=$(prom_query "ctbpf_conntrack_drops_total{job=\"$job\",cause=\"table_full\"}")
	log "$job: events ${events_all[$job]} (test netns ${events_netns[$job]}), suppressed ${suppressed[$job]}, lost ${lost[$job]}"
done

# The table-full alert: CtbpfConntrackPacketDrops for cause table_full, from a real Prometheus
# evaluating the packaged rules. (CtbpfConntrackTableNearlyFull reads the fill of serve's own netns,
# which is the quiet one here: it cannot fire in this setup, and is checked by promtool's unit tests.)
alert=none
for _ in $(seq 60); do
	alert=$(prom_query 'ALERTS{alertname="CtbpfConntrackPacketDrops",alertstate="firing",cause="table_full",job="ctbpf"}')
	[ "$alert" = 1 ] && break
	sleep 1
done
not_attached=$(prom_query 'count(ALERTS{alertname="CtbpfNotAttached"}) or vector(0)')

page=$(in_quiet curl -sf http://127.0.0.1:9640/metrics)
# Every panel query of the packaged dashboard, through Prometheus's HTTP API ($instance: all,
# $__rate_interval: the whole test): success and at least one series, from the real Prometheus: the
# scenario above makes every series they read (flows in and out, drops, drop events, lifetimes).
dashboard=$(dirname "$0")/../../packaging/grafana/ctbpf-dashboard.json
declare -a panel_query panel_status panel_series
while IFS= read -r expr; do
	q=${expr//\$__rate_interval/5m}
	q=${q//\$instance/.*}
	resp=$(in_quiet curl -s --get http://127.0.0.1:9090/api/v1/query --data-urlencode "query=$q")
	status=$(jq -r '.status // "no answer"' <<<"$resp" 2>/dev/null || echo "not JSON")
	series=$(jq '.data.result | length' <<<"$resp" 2>/dev/null || echo 0)
	log "dashboard query ($status, $series series): $q"
	panel_query+=("$q")
	panel_status+=("$status")
	panel_series+=("$series")
done <<<"$(jq -r '.panels[].targets[].expr' "$dashboard")"
# Every metric the dashboard, the packaged alert rules and their promtool tests name: on serve's page.
named_metrics=$(cat "$dashboard" "$(dirname "$0")/../../packaging/prometheus/ctbpf-rules.yml" \
	"$(dirname "$0")/../prometheus/ctbpf-rules.test.yml" | grep -oE '\bctbpf_[a-z0-9_]+' | sort -u)
promtool_out=$(promtool check metrics <<<"$page" 2>&1) && promtool_rc=0 || promtool_rc=$?

expect "datagrams sent" "$sent" "$n"
expect "conntrack -C" "$count" "$n"
expect "prometheus: sum(ctbpf_conntrack_inserts_total)" "$inserts" "$count"
expect "prometheus: ctbpf_conntrack_chain_length_count, --chain-sample 1" "$chain_count_all" "$count"
cpus=$(nproc)
expect "prometheus: ctbpf_conntrack_chain_length_count, 1 in 64: above N/64 - CPUs and at most N/64" \
	"$((chain_count * 64 > count - 64 * cpus && chain_count * 64 <= count))" 1
expect "serve's chain_length HELP names the sampling" "$chain_help" 1
expect "prometheus: netns_inserts_total of the test netns" "$netns_inserts" "$count"
expect "prometheus: ctbpf_netns_info name of the test netns" "$netns_name" "$NS"

expect "conntrack -C after conntrack -F" "$flushed" 0
expect "connections held" "$HELD" "$m"
expect "datagrams refused" "$refused" "$k"
expect "kernel drop" "$drop" "$k"
for job in ctbpf ctbpf_low; do
	expect "$job: drop_events{table_full} + suppressed + lost" "${total[$job]}" "$drop"
	expect "$job: ctbpf_conntrack_drops_total{table_full}" "${drops_total[$job]}" "$drop"
	# Attribution: every event is a table_full one, in the test netns (so the sum above is all of them).
	expect "$job: drop_events of every cause = table_full events of the test netns" \
		"${events_all[$job]}" "${events_netns[$job]}"
done
expect "ctbpf_low (1 event/s per CPU): suppressed > 0" "$([[ ${suppressed[ctbpf_low]} =~ ^[1-9][0-9]*$ ]] && echo yes)" yes
expect "alert CtbpfConntrackPacketDrops{cause=table_full} firing" "$alert" 1
expect "alert CtbpfNotAttached" "$not_attached" 0
expect "dashboard queries" "${#panel_status[@]}" "$(jq '[.panels[].targets[]] | length' "$dashboard")"
for i in "${!panel_status[@]}"; do
	expect "dashboard query $((i + 1)) status" "${panel_status[i]}" success
	expect "dashboard query $((i + 1)) has a series (${panel_query[i]})" "$((panel_series[i] > 0))" 1
done
expect "metrics named by the dashboard and the rules > 0" "$(($(wc -w <<<"$named_metrics") > 0))" 1
for metric in $named_metrics; do
	expect "$metric on /metrics" "$(grep -qE "^$metric[{ ]" <<<"$page" && echo present || echo absent)" present
done
expect "promtool check metrics exit code" "$promtool_rc" 0
expect "promtool complaints" "$promtool_out" ""
finish
