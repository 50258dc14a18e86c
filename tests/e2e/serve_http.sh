#!/usr/bin/env bash
# serve_http.sh MODE: `ctbpf serve` is read-only and robust: unknown paths 404, other methods 405,
# oversized headers 400, and many idle connections never stop /metrics from being served.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}
port=9641

load_modules
make_netns
ip netns exec "$NS" "$CTBPF_BIN" serve --mode "$mode" --listen "127.0.0.1:$port" -i 0.5 \
	--ready-file "$WORK/serve.ready" 2>"$WORK/trace.err" &
BG_PIDS+=($!)
wait_file "$WORK/serve.ready" "${BG_PIDS[-1]}" "ctbpf serve"

status() { in_ns curl -s -o /dev/null -w '%{http_code}' --max-time 30 "$@"; }
base=http://127.0.0.1:$port

expect "GET /metrics" "$(status $base/metrics)" 200
expect "GET /healthz" "$(status $base/healthz)" 200
expect "GET /nope" "$(status $base/nope)" 404
expect "POST /metrics" "$(status -X POST -d x $base/metrics)" 405
expect "PUT /metrics" "$(status -X PUT -d x $base/metrics)" 405
expect "DELETE /metrics" "$(status -X DELETE $base/metrics)" 405
big=$(head -c 65536 /dev/zero | tr '\0' a)
expect "oversized header" "$(status -H "X-Big: $big" $base/metrics)" 400

# 64 connections that never send a byte, held open while a scrape must still succeed.
ip netns exec "$NS" bash -c "
	for i in \$(seq 64); do exec {fd}<>/dev/tcp/127.0.0.1/$port; done
	sleep 20" &
BG_PIDS+=($!)
sleep 1
expect "GET /metrics with 64 idle connections" "$(status $base/metrics)" 200
expect "serve still running" "$(kill -0 "${BG_PIDS[0]}" && echo yes)" yes
finish
