#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# serve_http.sh MODE: `ctbpf serve` is read-only and robust: unknown paths 404, every method but GET
# and HEAD 405 (with or without a body), oversized headers 431, many idle connections never stop
# /metrics from being served, and a second serve on the same port exits 2 with one line.
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
expect "HEAD /metrics" "$(status -I $base/metrics)" 200
expect "POST /metrics" "$(status -X POST -d x $base/metrics)" 405
expect "POST /metrics without a body" "$(status -X POST $base/metrics)" 405
expect "POST / without a body" "$(status -X POST $base/)" 405
expect "POST /nope" "$(status -X POST $base/nope)" 405
expect "PUT /metrics" "$(status -X PUT -d x $base/metrics)" 405
expect "PUT /metrics without a body" "$(status -X PUT $base/metrics)" 405
expect "PATCH /metrics" "$(status -X PATCH -d x $base/metrics)" 405
expect "DELETE /metrics" "$(status -X DELETE $base/metrics)" 405
expect "OPTIONS /metrics" "$(status -X OPTIONS $base/metrics)" 405
expect "405 says what is allowed" \
	"$(in_ns curl -s -o /dev/null -D - -X POST $base/metrics | tr -d '\r' | grep -i '^allow:')" "Allow: GET, HEAD"
# A 100 KiB body the server never wants: refused all the same, and the server still answers after.
expect "POST with a 100 KiB body" "$(head -c 102400 /dev/zero | status -X POST --data-binary @- $base/metrics)" 405
expect "GET /metrics after the refused body" "$(status $base/metrics)" 200
big=$(head -c 65536 /dev/zero | tr '\0' a)
# 431 Request Header Fields Too Large (RFC 6585): serve holds 8 KiB of headers per connection.
expect "oversized header" "$(status -H "X-Big: $big" $base/metrics)" 431

# A second serve on the same port: refused (no SO_REUSEPORT), exit 2, one line naming the holder.
rc=0
in_ns "$CTBPF_BIN" serve --mode "$mode" --listen "127.0.0.1:$port" -i 0.5 >"$WORK/second.out" 2>"$WORK/second.err" || rc=$?
expect "second serve on a taken port: exit code" "$rc" 2
expect "second serve: one line on stderr" "$(wc -l <"$WORK/second.err")" 1
expect "second serve: nothing on stdout" "$(wc -c <"$WORK/second.out")" 0
expect "second serve names the holder" \
	"$(grep -c "address in use by pid ${BG_PIDS[0]} (ctbpf)" "$WORK/second.err")" 1
log "second serve said: $(cat "$WORK/second.err")"
expect "one listener on the port" "$(in_ns ss -Htln "sport = :$port" | wc -l)" 1
# [::]:PORT overlaps 127.0.0.1:PORT (IPv6 with IPv4 mapped): refused as well.
rc=0
in_ns "$CTBPF_BIN" serve --mode "$mode" --listen ":$port" -i 0.5 2>"$WORK/second.err" || rc=$?
expect "second serve on every address of a taken port: exit code" "$rc" 2
expect "GET /metrics after the second serves" "$(status $base/metrics)" 200

# 64 connections that never send a byte, held open while a scrape must still succeed.
ip netns exec "$NS" bash -c "
	for i in \$(seq 64); do exec {fd}<>/dev/tcp/127.0.0.1/$port; done
	sleep 20" &
BG_PIDS+=($!)
sleep 1
expect "GET /metrics with 64 idle connections" "$(status $base/metrics)" 200
expect "serve still running" "$(kill -0 "${BG_PIDS[0]}" && echo yes)" yes
finish
