#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# serve_siege.sh MODE [SECONDS]: bad clients never starve a scrape (issue 33). For SECONDS (60), one
# process holds 1,000 idle connections (never a byte) and 200 slow ones (a request line, then a header
# line every second, never finished), each opened again as soon as serve closes it, against
# `ctbpf serve`, while curl scrapes /metrics once a second. Every scrape answers 200, the 99th
# percentile of curl's own time_total is under 100 ms, serve's peak RSS stays under a bound (below),
# and its CPU during the attack is reported. All on the loopback of a netns of the test's own.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}
seconds=${2:-60}
port=9642
idle=1000
slow=200
clients=$(dirname "$0")/../tools/http_clients.py

# The attacker's 1,200 sockets and serve's are file descriptors: this test's own soft limit only.
ulimit -n 4096 2>/dev/null || { echo "skip: the hard RLIMIT_NOFILE ($(ulimit -Hn)) is below 4096"; exit 77; }

load_modules
# No rules in the quiet netns, so no conntrack there: the attack's connections cost the kernel's
# table nothing; serve still reads the kernel's counters (tracepoint mode runs on any kernel).
make_quiet_netns
# ip netns exec execs serve in place: $! is serve itself (its RSS and CPU are read below).
ip netns exec "$QUIET_NS" "$CTBPF_BIN" serve --mode "$mode" --listen "127.0.0.1:$port" -i 1 \
	--ready-file "$WORK/serve.ready" >/dev/null 2>"$WORK/trace.err" &
serve_pid=$!
BG_PIDS+=("$serve_pid")
wait_file "$WORK/serve.ready" "$serve_pid" "ctbpf serve"
url=http://127.0.0.1:$port/metrics
expect "GET /metrics before the attack" "$(in_quiet curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$url")" 200
rss_kib() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$serve_pid/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$serve_pid/stat"; }
rss_before=$(rss_kib)

ip netns exec "$QUIET_NS" python3 "$clients" --port "$port" --idle "$idle" --slow "$slow" --seconds "$((seconds + 5))" \
	--ready-file "$WORK/clients.ready" >"$WORK/clients.json" 2>"$WORK/clients.err" &
clients_pid=$!
BG_PIDS+=("$clients_pid")
wait_file "$WORK/clients.ready" "$clients_pid" "the attacking clients"
log "all $((idle + slow)) attacking connections open after $(cat "$WORK/clients.ready") s"

ticks0=$(cpu_ticks)
t0=$(date +%s.%N)
rss_max=0
: >"$WORK/scrapes"
for ((i = 0; i < seconds; i++)); do
	# time_total is curl's own clock from start to the last byte: a fresh connection each time.
	in_quiet curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --max-time 15 "$url" >>"$WORK/scrapes" ||
		echo "000 15" >>"$WORK/scrapes"
	rss=$(rss_kib)
	((rss > rss_max)) && rss_max=$rss
	sleep 1
done
ticks1=$(cpu_ticks)
t1=$(date +%s.%N)
wait "$clients_pid" || true
held=$(cat "$WORK/clients.json")
log "attacking clients: $held"

scrapes=$(wc -l <"$WORK/scrapes")
ok=$(grep -c '^200 ' "$WORK/scrapes" || true)
# Nearest-rank percentiles of the scrape times, in ms.
pct() { awk '{print $2 * 1000}' "$WORK/scrapes" | sort -n | awk -v p="$1" '{v[NR] = $1}
	END {r = int(NR * p / 100); if (r < NR * p / 100) r++; if (r < 1) r = 1; printf "%.1f", v[r]}'; }
p50=$(pct 50)
p99=$(pct 99)
cpu=$(awk -v a="$ticks0" -v b="$ticks1" -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" \
	'BEGIN {printf "%.1f", 100 * (b - a) / hz / (t1 - t0)}')
hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$serve_pid/status")
echo "scrapes: $ok of $scrapes answered 200; p50 ${p50} ms, p99 ${p99} ms, max $(pct 100) ms"
echo "serve: RSS ${rss_before} KiB before, at most ${rss_max} KiB during (peak VmHWM ${hwm} KiB); CPU ${cpu}% of one core during the attack"

expect "scrapes during the attack" "$scrapes" "$seconds"
expect "scrapes answered 200" "$ok" "$scrapes"
expect "p99 scrape time under 100 ms" "$(awk -v p="$p99" 'BEGIN {print (p < 100) ? "yes" : "no (" p " ms)"}')" yes
# The load was real: the attacker held (median of its per-second counts) nearly all of its connections.
expect "idle connections held (median >= 95%)" \
	"$(jq --argjson n "$idle" '.open_idle.median >= 0.95 * $n' <<<"$held")" true
expect "slow connections held (median >= 95%)" \
	"$(jq --argjson n "$slow" '.open_slow.median >= 0.95 * $n' <<<"$held")" true
# serve cuts a request that has not arrived in 10 s: every slow client was cut and came back.
expect "slow clients cut by serve (reconnects >= slow)" \
	"$(jq --argjson n "$slow" '.reconnects.slow >= $n' <<<"$held")" true
# RSS bound, absolute: 48 MiB. serve alone is ~13 MiB (21 at its start-up peak, BENCHMARKS.md
# section 4); each connection holds at most libmicrohttpd's 8 KiB pool (its request's and response's
# headers) and ~1 KiB of state: 1,200 x 9 KiB = 11 MiB, and the page's copy in flight ~0.1 MiB; 48 MiB
# leaves room for the allocator and stays under packaging/ctbpf.service's MemoryMax=64M.
bound=$((48 * 1024))
expect "peak RSS under ${bound} KiB" "$(((hwm < bound)) && echo yes || echo "no (${hwm} KiB)")" yes
expect "serve still running" "$(kill -0 "$serve_pid" && echo yes)" yes
finish
