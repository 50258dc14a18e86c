#!/usr/bin/env bash
# serve_prometheus.sh MODE N: a real Prometheus (Debian's package) scrapes `ctbpf serve` while the
# test makes N new flows; through Prometheus's HTTP API, the inserts counter reads N (= conntrack -C),
# so does the series labelled with the test netns's inode, and the chain-length histogram's count.
# promtool finds no problem in the exposition. Serve, Prometheus and the queries live in a netns
# without conntrack, so their own TCP connections are not counted.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode} n=${2:-2000}
command -v prometheus >/dev/null || { echo "e2e: prometheus is missing (apt-get install prometheus)" >&2; exit 1; }

load_modules
make_netns
make_quiet_netns
ip netns exec "$QUIET_NS" "$CTBPF_BIN" serve --mode "$mode" --listen 127.0.0.1:9640 -i 0.5 \
	--ready-file "$WORK/serve.ready" 2>"$WORK/trace.err" &
BG_PIDS+=($!)
wait_file "$WORK/serve.ready" "${BG_PIDS[-1]}" "ctbpf serve"

cat >"$WORK/prometheus.yml" <<-YML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: ctbpf
    static_configs:
      - targets: ['127.0.0.1:9640']
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
page=$(in_quiet curl -sf http://127.0.0.1:9640/metrics)
promtool_out=$(promtool check metrics <<<"$page" 2>&1) && promtool_rc=0 || promtool_rc=$?

expect "datagrams sent" "$sent" "$n"
expect "conntrack -C" "$count" "$n"
expect "prometheus: sum(ctbpf_conntrack_inserts_total)" "$inserts" "$count"
expect "prometheus: ctbpf_conntrack_chain_length_count" "$chain_count" "$count"
expect "prometheus: netns_inserts_total of the test netns" "$netns_inserts" "$count"
expect "prometheus: ctbpf_netns_info name of the test netns" "$netns_name" "$NS"
expect "promtool check metrics exit code" "$promtool_rc" 0
expect "promtool complaints" "$promtool_out" ""
finish
