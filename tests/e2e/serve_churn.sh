#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# serve_churn.sh MODE [NETNS [SECONDS [FIRST]]]: serve's per-netns series follow the live pods (issue 31).
# NETNS (60) namespaces are made over about SECONDS (20), each making a known number of UDP flows
# (conntrack -C in it says the kernel made them), and deleted a few seconds later, as pods come and go;
# serve runs with --netns-labels 4 and is scraped once a second. Every scrape: the netns series plus
# netns="other" add up to the global inserts and destroys, and at most 4 netns have series. At the end
# the global inserts are the flows made, the 4 busiest live netns (the last made, far busier than the
# rest) hold the labels, no deleted netns is named, and serve's RSS grew by at most 2 MiB after the
# first FIRST (10) namespaces. bench/netns_churn.sh runs it with 1,000 netns over 5 minutes. In tracepoint mode (the host) serve has no per-netns families: the churn must
# then cost nothing, which the scrapes and the RSS bound check.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}
total=${2:-60}
seconds=${3:-20}
first=${4:-10}
bound=4
keep=6  # netns alive at once
port=9651
prefix=ctbpf-churn-$$
skip_unless_kernel_allows "$mode"

made=()
cleanup_churn() {
	local name
	for name in "${made[@]}"; do ip netns del "$name" 2>/dev/null || true; done
	cleanup
}
trap cleanup_churn EXIT

load_modules
make_quiet_netns
# ip netns exec execs serve in place: $! is serve itself (its RSS is read below).
ip netns exec "$QUIET_NS" "$CTBPF_BIN" serve --mode "$mode" --listen "127.0.0.1:$port" -i 0.5 \
	--netns-labels "$bound" --ready-file "$WORK/serve.ready" >/dev/null 2>"$WORK/trace.err" &
serve_pid=$!
BG_PIDS+=("$serve_pid")
wait_file "$WORK/serve.ready" "$serve_pid" "ctbpf serve"
rss_kib() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$serve_pid/status"; }
scrape() { in_quiet curl -sf --max-time 10 "http://127.0.0.1:$port/metrics"; }

# Once a second until told to stop: each page to a file of its own.
mkdir "$WORK/pages"
(
	i=0
	while [ ! -e "$WORK/stop" ]; do
		scrape >"$WORK/pages/$(printf %04d $i)" 2>/dev/null || echo "scrape failed" >"$WORK/pages/$(printf %04d $i)"
		i=$((i + 1))
		sleep 1
	done
) &
scraper=$!
BG_PIDS+=("$scraper")

# flows_of I: light namespaces make 10-50 flows; the last $bound made make 300-450, far busier.
flows_of() {
	local i=$1
	if ((i > total - bound)); then echo $((300 + (i - total + bound - 1) * 50)); else echo $((10 + (i % 5) * 10)); fi
}

expected=0
oracle_bad=0
live=()
rss_first=
t0=$(date +%s.%N)
for ((i = 1; i <= total; i++)); do
	name=$prefix-$i
	make_netns "$name"
	made+=("$name")
	ip netns exec "$name" sh -c 'echo 600 >/proc/sys/net/netfilter/nf_conntrack_udp_timeout'
	n=$(flows_of "$i")
	ip netns exec "$name" "$CTBPF_FLOWGEN" udp --port 20000 --count "$n" >/dev/null 2>&1
	# The kernel's own count of what this netns made: the expected value, never ctbpf's.
	counted=$(ip netns exec "$name" conntrack -C)
	[ "$counted" = "$n" ] || { log "netns $i: conntrack -C $counted, made $n"; oracle_bad=1; }
	expected=$((expected + counted))
	live+=("$name")
	if ((${#live[@]} > keep)); then
		ip netns del "${live[0]}"
		live=("${live[@]:1}")
	fi
	((i == first)) && rss_first=$(rss_kib)
	# Paced over $seconds; a slow machine (a TCG guest) just takes longer.
	sleep "$(awk -v t0="$t0" -v now="$(date +%s.%N)" -v i="$i" -v n="$total" -v s="$seconds" \
		'BEGIN {d = t0 + i * s / n - now; print (d > 0 ? d : 0)}')"
done
expect "every netns's conntrack -C is the flows it made" "$oracle_bad" 0
log "made $total netns, $expected flows; live at the end: ${live[*]}"

# page_facts FILE: "FAMILY GLOBAL_INSERTS NETNS_INSERTS GLOBAL_DESTROYS NETNS_DESTROYS SERIES": whether
# the per-netns families are there, the global counters (sums over protocols), the sums of the netns
# series with other, and how many netns have series of their own.
page_facts() {
	awk '/^ctbpf_conntrack_inserts_total\{/ {gi += $2}
		/^ctbpf_conntrack_destroys_total\{/ {gd += $2}
		/^ctbpf_conntrack_netns_inserts_total\{/ {fam = 1; ni += $2; if ($1 !~ /netns="other"/) series++}
		/^ctbpf_conntrack_netns_destroys_total\{/ {nd += $2}
		END {print fam + 0, gi + 0, ni + 0, gd + 0, nd + 0, series + 0}' "$1"
}

if [ "$mode" != tracepoint ]; then
	# Until serve's page has every flow (it reads the kernel every 0.5 s).
	for _ in $(seq 40); do
		scrape >"$WORK/final" || true
		read -r _ gi _ _ _ _ <<<"$(page_facts "$WORK/final")"
		((gi >= expected)) && break
		sleep 0.5
	done
fi
sleep 1.5 # one more scrape by the scraper after the last refresh
touch "$WORK/stop"
wait "$scraper" 2>/dev/null || true
scrape >"$WORK/final"
rss_end=$(rss_kib)

pages=0
bad_pages=0
failed_scrapes=0
for page in "$WORK"/pages/* "$WORK/final"; do
	pages=$((pages + 1))
	if grep -q '^scrape failed' "$page"; then
		failed_scrapes=$((failed_scrapes + 1))
		continue
	fi
	read -r fam gi ni gd nd series <<<"$(page_facts "$page")"
	if [ "$mode" = tracepoint ]; then
		[ "$fam" = 0 ] || { log "$(basename "$page"): per-netns series in tracepoint mode"; bad_pages=$((bad_pages + 1)); }
	elif [ "$fam" != 1 ] || [ "$gi" != "$ni" ] || [ "$gd" != "$nd" ] || ((series > bound)); then
		log "$(basename "$page"): family $fam, inserts $gi vs netns $ni, destroys $gd vs netns $nd, $series series"
		bad_pages=$((bad_pages + 1))
	fi
done
log "$pages scrapes checked"
expect "scrapes that failed" "$failed_scrapes" 0
if [ "$mode" = tracepoint ]; then
	expect "scrapes with per-netns series (tracepoint mode has none)" "$bad_pages" 0
else
	expect "scrapes where a netns sum is not the global counter, or more than $bound series" "$bad_pages" 0
	read -r _ gi _ _ _ series <<<"$(page_facts "$WORK/final")"
	if in_guest; then
		expect "global inserts = the flows every netns's conntrack -C counted" "$gi" "$expected"
	else
		# A shared host: other namespaces add their own.
		expect "global inserts >= the flows every netns's conntrack -C counted" "$((gi >= expected))" 1
	fi
	expect "netns with series of their own at the end" "$series" "$bound"
	# The busiest live ones: the last $bound made.
	want=$(for ((i = total - bound + 1; i <= total; i++)); do ns_inode "$prefix-$i"; done | sort -n | paste -sd' ')
	got=$(sed -n 's/^ctbpf_conntrack_netns_inserts_total{netns="\([0-9]*\)"}.*/\1/p' "$WORK/final" | sort -n | paste -sd' ')
	expect "the labelled netns are the $bound busiest live ones" "$got" "$want"
	names=$(sed -n 's/^ctbpf_netns_info{netns="[0-9]*",name="\([^"]*\)"}.*/\1/p' "$WORK/final" | sort | paste -sd' ')
	want_names=$(for ((i = total - bound + 1; i <= total; i++)); do echo "$prefix-$i"; done | sort | paste -sd' ')
	expect "the names on the final page" "$names" "$want_names"
	dead_named=0
	for ((i = 1; i <= total - keep; i++)); do
		grep -q "name=\"$prefix-$i\"" "$WORK/final" && dead_named=$((dead_named + 1))
	done
	expect "deleted netns named on the final page" "$dead_named" 0
fi
log "serve RSS: ${rss_first} KiB after $first netns, ${rss_end} KiB at the end"
echo "serve: $total netns, $expected flows, $pages scrapes; RSS ${rss_first} KiB after $first netns, ${rss_end} KiB at the end"
expect "RSS growth after the first $first netns within 2 MiB" "$((rss_end - rss_first <= 2048))" 1
expect "serve still running" "$(kill -0 "$serve_pid" 2>/dev/null && echo yes)" yes
log "took $(awk -v t0="$t0" -v now="$(date +%s.%N)" 'BEGIN {printf "%.1f", now - t0}') s"
finish
