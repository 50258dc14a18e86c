#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# top_tracepoint.sh: `ctbpf top --mode tracepoint --json` with no conntrack probes, from ctnetlink dumps
# of its own netns. Sources 127.0.0.2..4 make known flows (127.0.0.5's before ctbpf starts): live
# entries per source and for the netns equal `conntrack -L` / `-C`; the growth of the netns row summed
# over every refresh equals the count at the end minus the count at the first dump; inserts and
# destroys are null, the scope and what it cannot see are stated (JSON and one stderr line).
source "$(dirname "$0")/lib.sh"

load_modules
make_netns
# Unreplied UDP entries expire after 30 s: keep them for the whole test (this netns's own sysctl).
in_ns sh -c 'echo 600 >/proc/sys/net/netfilter/nf_conntrack_udp_timeout'
in_ns "$CTBPF_FLOWGEN" udp --src 127.0.0.5 --port 30000 --count 50 >/dev/null 2>&1

ip netns exec "$NS" "$CTBPF_BIN" top --json --mode tracepoint -n 50 -i 0.5 --ready-file "$WORK/ready" \
	>"$WORK/top.out" 2>"$WORK/trace.err" &
TRACE_PID=$!
wait_file "$WORK/ready" "$TRACE_PID" "ctbpf top"
sleep 1 # a refresh before the flows: growth must come from the dumps, not from the seed
for i in 2 3 4; do
	in_ns "$CTBPF_FLOWGEN" udp --src "127.0.0.$i" --port 20000 --count $((i * 100)) >/dev/null 2>&1
done
sleep 1.5
kill -TERM "$TRACE_PID"
rc=0
wait "$TRACE_PID" || rc=$?
TRACE_PID=
expect "top exit code" "$rc" 0
final=$(tail -n 1 "$WORK/top.out")
log "top: $final"
inode=$(stat -L -c %i "/run/netns/$NS")

in_ns conntrack -L 2>/dev/null | sed -E 's/^[^=]* src=([^ ]+) .*/\1/' | sort | uniq -c >"$WORK/by_src"
log "conntrack -L by source: $(tr -s ' \n' ' ' <"$WORK/by_src")"
expect "final" "$(jq .final <<<"$final")" true
expect "mode" "$(jq -r .mode <<<"$final")" tracepoint
expect "scope" "$(jq -r .scope <<<"$final")" own_netns
expect "unobservable names other namespaces" "$(jq '.unobservable | index("other namespaces") != null' <<<"$final")" true
expect "stderr says what top cannot see, one line" "$(grep -c 'inserts, destroys, other netns not visible' "$WORK/trace.err")" 1
for i in 2 3 4 5; do
	want=$(awk -v a="127.0.0.$i" '$2 == a {print $1}' "$WORK/by_src")
	row=$(jq -c --argjson n "$inode" --arg a "127.0.0.$i" '.sources[] | select(.netns == $n and .src == $a)' <<<"$final")
	expect "source 127.0.0.$i: live = conntrack -L count" "$(jq .live <<<"$row")" "${want:-0}"
	expect "source 127.0.0.$i: inserts null" "$(jq .inserts <<<"$row")" null
done
expect "rows in other namespaces" "$(jq --argjson n "$inode" '[.sources[], .netns[] | select(.netns != $n)] | length' <<<"$final")" 0
netns_row=$(jq -c --argjson n "$inode" '.netns[] | select(.netns == $n)' <<<"$final")
expect "netns live = conntrack -C" "$(jq .live <<<"$netns_row")" "$(ct_count)"
# Growth is counted from the first dump (at start: 127.0.0.5's 50 entries): its sum over every
# refresh is the net change since then.
first_live=$(head -n 1 "$WORK/top.out" | jq --argjson n "$inode" '[.netns[] | select(.netns == $n) | .live] | add // 0')
first_growth=$(head -n 1 "$WORK/top.out" | jq --argjson n "$inode" '[.netns[] | select(.netns == $n) | .growth] | add // 0')
growth=$(jq -s --argjson n "$inode" '[.[].netns[] | select(.netns == $n) | .growth] | add' "$WORK/top.out")
expect "sum of the netns's growth after the first refresh = live now - live then" \
	"$((growth - first_growth))" "$(($(ct_count) - first_live))"
expect "growth over the window = the flows made (900)" "$((growth - first_growth))" 900
finish
