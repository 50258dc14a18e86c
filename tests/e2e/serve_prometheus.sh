#!/usr/bin/env bash
# serve_prometheus.sh MODE N: a real Prometheus (Debian's package) scrapes `ctbpf serve` while the
# test makes N new flows; through Prometheus's HTTP API, the inserts counter reads N (= conntrack -C),
# so does the series labelled with the test netns's inode, and the chain-length histogram's count.
# Then the table is filled with M ASSURED entries and K more flows are refused ("table full"): for
# serve at the default --drop-events-rate and for a second one at 1 event/s per CPU, the sampled
# drop events (all table_full, all in the test netns) + suppressed + lost = the kernel's `drop`
# delta, and the low-rate one suppressed some. promtool finds no problem in the exposition. Serve,
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
start_serve 9641 --drop-events-rate 1

cat >"$WORK/prometheus.yml" <<-YML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: ctbpf
    static_configs:
      - targets: ['127.0.0.1:9640']
  - job_name: ctbpf_low
    static_configs:
      - targets: ['127.0.0.1:9641']
YML
ip netns exec "$QUIET_NS" prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
	--web.listen-address=127.0.0.1:9090 --log.level=warn &
BG_PIDS+=($!)
for _ in $(seq 120); do
	in_quiet curl -sf http://127.0.0.1:9090/-/ready >/dev/null 2>&1 && break
	sleep 0.5
done

# query PROMQL: the value of a one-element instant vector, or "none".
query() {
	in_quiet curl -sf --get http://127.0.0.1:9090/api/v1/query --data-urlencode "query=$1" |
		jq -r '.data.result[0].value[1] // "none"'
}

read -r sent refused <<<"$(udp_flood 20000 "$n")"
count=$(ct_count)
# Wait (bounded) until Prometheus has scraped a page that includes every flow.
inserts=none
for _ in $(seq 60); do
	inserts=$(query 'sum(ctbpf_conntrack_inserts_total{job="ctbpf"})')
	[ "$inserts" = "$n" ] && break
	sleep 1
done
chain_count=$(query 'ctbpf_conntrack_chain_length_count{job="ctbpf"}')
inode=$(stat -L -c %i "/run/netns/$NS")
netns_inserts=$(query "ctbpf_conntrack_netns_inserts_total{job=\"ctbpf\",netns=\"$inode\"}")
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
	query "sum(ctbpf_conntrack_drop_events_total{job=\"$1\",cause=\"table_full\"}) +
		sum(ctbpf_drop_events_suppressed_total{job=\"$1\"}) + sum(ctbpf_lost_events_total{job=\"$1\"})"
}
declare -A events_all events_netns suppressed lost drops_total total
for job in ctbpf ctbpf_low; do
	for _ in $(seq 60); do
		total[$job]=$(accounted "$job")
		[ "${total[$job]}" = "$drop" ] && break
		sleep 1
	done
	events_all[$job]=$(query "sum(ctbpf_conntrack_drop_events_total{job=\"$job\"})")
	events_netns[$job]=$(query "sum(ctbpf_conntrack_drop_events_total{job=\"$job\",cause=\"table_full\",netns=\"$inode\"})")
	suppressed[$job]=$(query "ctbpf_drop_events_suppressed_total{job=\"$job\"}")
	lost[$job]=$(query "ctbpf_lost_events_total{job=\"$job\"}")
	drops_total[$job]=$(query "ctbpf_conntrack_drops_total{job=\"$job\",cause=\"table_full\"}")
	log "$job: events ${events_all[$job]} (test netns ${events_netns[$job]}), suppressed ${suppressed[$job]}, lost ${lost[$job]}"
done

page=$(in_quiet curl -sf http://127.0.0.1:9640/metrics)
promtool_out=$(promtool check metrics <<<"$page" 2>&1) && promtool_rc=0 || promtool_rc=$?

expect "datagrams sent" "$sent" "$n"
expect "conntrack -C" "$count" "$n"
expect "prometheus: sum(ctbpf_conntrack_inserts_total)" "$inserts" "$count"
expect "prometheus: ctbpf_conntrack_chain_length_count" "$chain_count" "$count"
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
expect "promtool check metrics exit code" "$promtool_rc" 0
expect "promtool complaints" "$promtool_out" ""
finish
