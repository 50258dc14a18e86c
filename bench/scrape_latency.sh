#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scrape_latency.sh [SCRAPES]: `ctbpf serve`'s scrape latency (curl's time_total for GET /metrics, a
# fresh connection each, 20 a second) with 0, 100 and 1,000 idle connections held open by
# tests/tools/http_clients.py (reopened when serve closes them), and 1,000 idle + 200 slow ones (a
# header line a second); p50, p99 and max of SCRAPES (200) each, side by side, with serve's RSS and
# CPU. One serve for every row, in a netns of its own (loopback only), tracepoint mode (the HTTP side
# is the same in every mode). No assertion: tests/e2e/serve_siege.sh holds the bound.
set -euo pipefail
: "${CTBPF_BIN:?}"
scrapes=${1:-200}
root=$(cd "$(dirname "$0")/.." && pwd)
clients=$root/tests/tools/http_clients.py
port=9649
ulimit -n 4096
for m in nf_conntrack nf_conntrack_netlink; do [ -d /sys/module/$m ] || modprobe $m 2>/dev/null || true; done
NS=ctbpf-bench-scrape-$$
WORK=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
in_ns() { ip netns exec "$NS" "$@"; }

# ip netns exec execs in place: $! is serve itself (its RSS and CPU are read below).
ip netns exec "$NS" "$CTBPF_BIN" serve --mode tracepoint --listen "127.0.0.1:$port" -i 2 --ready-file "$WORK/ready" 2>"$WORK/err" &
serve=$!
pids+=("$serve")
while [ ! -e "$WORK/ready" ]; do kill -0 "$serve" || { cat "$WORK/err" >&2; exit 1; }; sleep 0.1; done
url=http://127.0.0.1:$port/metrics
in_ns curl -s -o /dev/null "$url"
ticks() { awk '{print $14 + $15}' "/proc/$serve/stat"; }
pct() { sort -n "$WORK/t" | awk -v p="$1" '{v[NR] = $1}
	END {r = int(NR * p / 100); if (r < NR * p / 100) r++; if (r < 1) r = 1; printf "%.2f", v[r]}'; }

echo "Linux $(uname -r), $(nproc) CPUs; $scrapes scrapes per row, 20 a second, each on a new connection;"
echo "page $(in_ns curl -s "$url" | wc -c) bytes; times are curl's time_total."
echo
printf '| %-28s | %8s | %8s | %8s | %8s | %12s | %14s |\n' "clients held open" "scrapes" "p50 (ms)" "p99 (ms)" \
	"max (ms)" "serve RSS MB" "serve CPU (%)"
echo "|------------------------------|----------|----------|----------|----------|--------------|----------------|"
for row in "0 0" "100 0" "1000 0" "1000 200"; do
	read -r idle slow <<<"$row"
	rm -f "$WORK/clients.ready"
	if ((idle + slow > 0)); then
		ip netns exec "$NS" python3 "$clients" --port "$port" --idle "$idle" --slow "$slow" --seconds 600 --warmup 0 \
			--ready-file "$WORK/clients.ready" >/dev/null 2>"$WORK/clients.err" &
		cpid=$!
		pids+=("$cpid")
		while [ ! -e "$WORK/clients.ready" ]; do kill -0 "$cpid" || { cat "$WORK/clients.err" >&2; exit 1; }; sleep 0.1; done
		sleep 1
	fi
	: >"$WORK/t"
	t0=$(date +%s.%N)
	k0=$(ticks)
	for ((i = 0; i < scrapes; i++)); do
		in_ns curl -s -o /dev/null -w '%{time_total}\n' --max-time 15 "$url" | awk '{print $1 * 1000}' >>"$WORK/t"
		sleep 0.05
	done
	k1=$(ticks)
	t1=$(date +%s.%N)
	rss=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$serve/status")
	cpu=$(awk -v a="$k0" -v b="$k1" -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" \
		'BEGIN {printf "%.1f", 100 * (b - a) / hz / (t1 - t0)}')
	label="$idle idle"
	((slow > 0)) && label="$label + $slow slow"
	printf '| %-28s | %8d | %8s | %8s | %8s | %12s | %14s |\n' "$label" "$(wc -l <"$WORK/t")" "$(pct 50)" "$(pct 99)" \
		"$(pct 100)" "$rss" "$cpu"
	if ((idle + slow > 0)); then
		kill -TERM "$cpid" 2>/dev/null || true
		wait "$cpid" 2>/dev/null || true
		sleep 1
	fi
done
