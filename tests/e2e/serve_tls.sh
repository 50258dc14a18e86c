#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# serve_tls.sh MODE N: `ctbpf serve --web-config` as a fleet runs it, HTTPS and basic auth in
# exporter-toolkit's file format, the certificate made by openssl and the bcrypt hash by Apache's
# htpasswd (neither shares code with ctbpf's libmicrohttpd, GnuTLS and libxcrypt).
# - Bad files: a misspelled key, a plain-text password, a key that is not the certificate's, a file
#   that does not exist: exit 2, one line naming what is wrong.
# - curl: the right password 200; a wrong one, an unknown user, none: 401 with a Basic challenge;
#   plain HTTP to the TLS port fails cleanly (no reply) and serve goes on serving.
# - 60 different wrong passwords at once: each gets 401 or 503 (the bcrypt queue is full), every scrape
#   with the right password meanwhile gets 200, and serve logs one line per interval whose counts add
#   up to the 401s curl received, not a line per request.
# - A real Prometheus scrapes over TLS with basic_auth: up is 1 and the series read N, the flows the
#   test made (conntrack -C; serve's and Prometheus's own TCP is not tracked); with a wrong password up
#   is 0.
# - A certificate renewed on disk (new serial, new key, written key last) is served from the next
#   connection without a restart; a half-written renewal (new certificate, old key) is refused with a
#   line and the old pair goes on serving.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode} n=${2:-500}
port=9643
for tool in prometheus openssl htpasswd; do
	command -v "$tool" >/dev/null || { echo "e2e: $tool is missing (.ci/install-deps)" >&2; exit 1; }
done

load_modules
make_netns
# serve, Prometheus and curl live in the test netns (in tracepoint mode serve's counters are its own
# netns's), with their own TCP untracked: conntrack -C counts the test's flows only.
in_ns nft -f - <<-NFT
table inet ctbpf_e2e_web {
	chain pre { type filter hook prerouting priority raw; tcp dport { $port, 9090 } notrack; tcp sport { $port, 9090 } notrack; }
	chain out { type filter hook output priority raw; tcp dport { $port, 9090 } notrack; tcp sport { $port, 9090 } notrack; }
}
NFT

# A CA, and a server certificate for 127.0.0.1 that it signs (serial given, to tell renewals apart).
tls=$WORK/tls
mkdir -p "$tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=ctbpf-test-ca \
	-keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
# issue NAME SERIAL: NAME.key and NAME.crt, signed by the CA.
issue() {
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost \
		-keyout "$tls/$1.key" -out "$tls/$1.csr" 2>/dev/null
	openssl x509 -req -in "$tls/$1.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -set_serial "$2" -days 2 \
		-extfile <(echo "subjectAltName=IP:127.0.0.1") -out "$tls/$1.crt" 2>/dev/null
}
issue first 1001
issue renewed 1002
cp "$tls/first.crt" "$tls/server.crt"
cp "$tls/first.key" "$tls/server.key"
hash=$(htpasswd -nbBC 10 alice right-horse | cut -d: -f2-)
# Relative paths: from the file's directory, as exporter-toolkit reads them.
cat >"$tls/web.yml" <<-YML
tls_server_config:
  cert_file: server.crt
  key_file: server.key
basic_auth_users:
  alice: '$hash'
YML

# refused NAME FILE-TEXT PATTERN: serve exits 2 with one line matching PATTERN.
refused() {
	printf '%s\n' "$2" >"$tls/bad.yml"
	local err rc=0
	err=$(in_ns "$CTBPF_BIN" serve --mode "$mode" --listen 127.0.0.1:9699 --web-config "$tls/bad.yml" 2>&1) || rc=$?
	expect "bad web config, $1: exit code" "$rc" 2
	expect "bad web config, $1: one line" "$(wc -l <<<"$err")" 1
	expect "bad web config, $1: says $3" "$(grep -cE "$3" <<<"$err")" 1
}
refused "misspelled key" "$(sed 's/cert_file/certfile/' "$tls/web.yml")" "unknown key tls_server_config.certfile"
refused "plain password" "$(printf 'basic_auth_users:\n  alice: right-horse')" "basic_auth_users.alice: not a bcrypt hash"
refused "another key" "$(sed 's/server.key/renewed.key/' "$tls/web.yml")" "does not match the certificate"
refused "client certificates" "$(printf 'tls_server_config:\n  client_ca_file: ca.crt')" "client_ca_file is not implemented"
rc=0
err=$(in_ns "$CTBPF_BIN" serve --listen 127.0.0.1:9699 --web-config "$tls/none.yml" 2>&1) || rc=$?
expect "missing web config: exit code" "$rc" 2
expect "missing web config: one line" "$(wc -l <<<"$err")" 1

ip netns exec "$NS" "$CTBPF_BIN" serve --mode "$mode" --listen "127.0.0.1:$port" -i 0.5 --web-config "$tls/web.yml" \
	--ready-file "$WORK/serve.ready" 2>"$WORK/trace.err" &
BG_PIDS+=($!)
wait_file "$WORK/serve.ready" "${BG_PIDS[-1]}" "ctbpf serve --web-config"

url=https://127.0.0.1:$port/metrics
status() { in_ns curl -s -o /dev/null -w '%{http_code}' --max-time 30 --cacert "$tls/ca.crt" "$@"; }
expect "right password" "$(status -u alice:right-horse "$url")" 200
expect "wrong password" "$(status -u alice:wrong "$url")" 401
expect "unknown user" "$(status -u mallory:right-horse "$url")" 401
expect "no credentials" "$(status "$url")" 401
expect "401 challenge" "$(in_ns curl -s -D - -o /dev/null --cacert "$tls/ca.crt" "$url" | grep -ci '^WWW-Authenticate: Basic')" 1
rc=0
in_ns curl -s -o /dev/null --max-time 10 "http://127.0.0.1:$port/metrics" || rc=$?
# curl: 52 empty reply, 56 connection reset: refused at the TLS handshake, nothing served in clear.
expect "plain HTTP to the TLS port: no reply" "$([[ $rc =~ ^(52|56)$ ]] && echo refused || echo "curl exit $rc")" refused
expect "right password, after plain HTTP" "$(status -u alice:right-horse "$url")" 200

# 60 wrong passwords at once, while scraping with the right one.
for i in $(seq 60); do
	status -u "alice:wrong-$i" "$url" >"$WORK/flood.$i" &
done
good=0
for _ in $(seq 5); do
	[ "$(status -u alice:right-horse "$url")" = 200 ] && good=$((good + 1))
done
wait_flood=0
for i in $(seq 60); do
	while [ ! -s "$WORK/flood.$i" ] && [ "$wait_flood" -lt 600 ]; do sleep 0.1; wait_flood=$((wait_flood + 1)); done
done
flood_401=$(cat "$WORK"/flood.* | grep -o 401 | wc -l)
flood_503=$(cat "$WORK"/flood.* | grep -o 503 | wc -l)
sleep 1.5 # the next interval's log line
refusals_401=$((3 + 1 + flood_401)) # the wrong password, unknown user and no credentials above, the challenge's
log_lines=$(grep -c '^ctbpf: refused ' "$WORK/trace.err" || true)
logged=$(sed -nE 's/^ctbpf: refused ([0-9]+) request.*/\1/p' "$WORK/trace.err" | awk '{s += $1} END {print s + 0}')

# Prometheus over TLS: one job with the right password, one with a wrong one.
cat >"$WORK/prometheus.yml" <<-YML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: right
    scheme: https
    tls_config: {ca_file: $tls/ca.crt}
    basic_auth: {username: alice, password: right-horse}
    static_configs: [{targets: ['127.0.0.1:$port']}]
  - job_name: wrong
    scheme: https
    tls_config: {ca_file: $tls/ca.crt}
    basic_auth: {username: alice, password: not-the-one}
    static_configs: [{targets: ['127.0.0.1:$port']}]
YML
start_prometheus "$NS" "$WORK/prometheus.yml"
read -r sent _ <<<"$(udp_flood 20000 "$n")"
count=$(ct_count)
inode=$(ns_inode)
# Tracepoint mode has no insert counter: the entries of serve's netns, the test netns, read N.
series="ctbpf_conntrack_netns_inserts_total{job=\"right\",netns=\"$inode\"}"
[ "$mode" = tracepoint ] && series='ctbpf_conntrack_entries{job="right"}'
inserts=none
for _ in $(seq 60); do
	inserts=$(prom_query "$series")
	[ "$inserts" = "$count" ] && break
	sleep 1
done
up_right=$(prom_query 'up{job="right"}')
up_wrong=none
for _ in $(seq 20); do
	up_wrong=$(prom_query 'up{job="wrong"}')
	[ "$up_wrong" != none ] && break
	sleep 1
done

# Renewal, as a careless script does it: the certificate first (a handshake now would pair it with the
# old key: refused, the old pair serves on), then the key.
serial() {
	in_ns openssl s_client -connect "127.0.0.1:$port" -CAfile "$tls/ca.crt" </dev/null 2>/dev/null |
		openssl x509 -noout -serial | cut -d= -f2
}
serial_before=$(serial)
cp "$tls/renewed.crt" "$tls/server.crt"
sleep 1.2 # serve looks at the files at most once a second
serial_half=$(serial)
cp "$tls/renewed.key" "$tls/server.key"
sleep 1.2
serial_after=$(serial)
expect "right password, after the renewal" "$(status -u alice:right-horse "$url")" 200
up_after=none
for _ in $(seq 20); do
	sleep 1
	up_after=$(prom_query 'up{job="right"}')
	[ "$up_after" = 1 ] && break
done

expect "scrapes with the right password during the flood" "$good" 5
expect "flood: every request 401 or 503" "$((flood_401 + flood_503))" 60
expect "flood: 401s > 0" "$((flood_401 > 0))" 1
expect "refusals logged (sum of the log lines' counts) = 401s curl received" "$logged" "$refusals_401"
expect "refusal log lines fewer than refusals" "$((log_lines < refusals_401))" 1
expect "datagrams sent" "$sent" "$n"
expect "conntrack -C" "$count" "$n"
expect "prometheus over TLS: $series" "$inserts" "$count"
expect "prometheus: up, right password" "$up_right" 1
expect "prometheus: up, wrong password" "$up_wrong" 0
expect "certificate serial before renewal" "$serial_before" "$(printf '%X' 1001 | sed 's/^/0/')"
expect "certificate serial with the renewal half written" "$serial_half" "$(printf '%X' 1001 | sed 's/^/0/')"
expect "certificate serial after renewal" "$serial_after" "$(printf '%X' 1002 | sed 's/^/0/')"
expect "half-written renewal refused with a line" "$(grep -c 'does not match the certificate.*still serving the previous' "$WORK/trace.err")" 1
expect "prometheus: up after renewal" "$up_after" 1
finish
