#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# attribution.sh MODE: `ctbpf top` answers "who fills the table", checked against the kernel.
#  1. Three netns named with `ip netns add`, making 300, 600 and 900 flows at the same time: each
#     one's inserts equal its own `conntrack -C`, under its `ip netns` name.
#  2. Sources 127.0.0.2..4 with known flow counts (and 127.0.0.5's entries made BEFORE ctbpf starts,
#     which only the seeding dump can know): live entries per source equal `conntrack -L` per source.
#  3. A netns with no name (unshare -n) is named by the pid and comm of the process living in it.
# `ctbpf trace --json --top 10` runs alongside: its summary must say the same (names next to the
# inodes in by_netns, live entries per source in by_source).
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}

load_modules
make_netns
names=(ctbpf-a-$$ ctbpf-b-$$ ctbpf-c-$$)
counts=(300 600 900)
cleanup_named() { for n in "${names[@]}"; do ip netns del "$n" 2>/dev/null || true; done; cleanup; }
trap cleanup_named EXIT
for n in "${names[@]}"; do
	ip netns add "$n"
	ip -n "$n" link set lo up
	ip netns exec "$n" nft add table inet t
	ip netns exec "$n" nft add chain inet t out '{ type filter hook output priority 0; }'
	ip netns exec "$n" nft add rule inet t out ct state new counter
done
# Unreplied UDP entries expire after 30 s, and BPF loads and checks under TCG take about that long:
# keep them for the whole test (each netns's own sysctl, nothing global).
for n in "$NS" "${names[@]}"; do
	ip netns exec "$n" sh -c 'echo 600 >/proc/sys/net/netfilter/nf_conntrack_udp_timeout'
done
# Entries that exist before ctbpf starts: only the seeding dump (of ctbpf's own netns) knows them.
in_ns "$CTBPF_FLOWGEN" udp --src 127.0.0.5 --port 30000 --count 50 >/dev/null 2>&1

ip netns exec "$NS" "$CTBPF_BIN" top --json --mode "$mode" -n 50 -i 0.5 --ready-file "$WORK/ready" \
	>"$WORK/top.out" 2>"$WORK/trace.err" &
TRACE_PID=$!
ip netns exec "$NS" "$CTBPF_BIN" trace --json --mode "$mode" --top 10 -i 0.5 --ready-file "$WORK/trace.ready" \
	>"$WORK/trace.out" 2>"$WORK/trace2.err" &
trace_pid=$!
BG_PIDS+=($trace_pid)
wait_file "$WORK/ready" "$TRACE_PID" "ctbpf top"
wait_file "$WORK/trace.ready" "$trace_pid" "ctbpf trace"

# 1: three named netns at once.
pids=()
for i in 0 1 2; do
	ip netns exec "${names[i]}" "$CTBPF_FLOWGEN" udp --port 20000 --count "${counts[i]}" >/dev/null 2>&1 &
	pids+=($!)
done
# 2: known flows per source address in the test netns.
for i in 2 3 4; do
	in_ns "$CTBPF_FLOWGEN" udp --src "127.0.0.$i" --port 20000 --count $((i * 100)) >/dev/null 2>&1
done
wait "${pids[@]}"
# 3: an unnamed netns with one process in it.
unshare -n sh -c '
	ip link set lo up
	nft add table inet t && nft add chain inet t out "{ type filter hook output priority 0; }" &&
	nft add rule inet t out ct state new counter
	"$0" udp --port 20000 --count 70 >/dev/null 2>&1
	exec sleep 600' "$CTBPF_FLOWGEN" &
unnamed_pid=$!
BG_PIDS+=($unnamed_pid)
sleep 3
stop_trace_and "$trace_pid" "$WORK/trace2.err"
final=$(tail -n 1 "$WORK/top.out")
log "top: $final"
SUMMARY=$(tail -n 1 "$WORK/trace.out")
log "trace summary by_netns: $(summary .by_netns)"

for i in 0 1 2; do
	inode=$(stat -L -c %i "/run/netns/${names[i]}")
	row=$(jq -c --argjson n "$inode" '.netns[] | select(.netns == $n)' <<<"$final")
	expect "${names[i]}: inserts = its conntrack -C" "$(jq .inserts <<<"$row")" "$(ip netns exec "${names[i]}" conntrack -C)"
	expect "${names[i]}: name" "$(jq -r .name <<<"$row")" "${names[i]}"
	row=$(summary ".by_netns[] | select(.netns == $inode)")
	expect "trace summary: ${names[i]} inserts = its conntrack -C" "$(jq .inserts <<<"$row")" "$(ip netns exec "${names[i]}" conntrack -C)"
	expect "trace summary: ${names[i]} name" "$(jq -r .name <<<"$row")" "${names[i]}"
done

inode=$(stat -L -c %i "/run/netns/$NS")
# The first src= of each entry is its original source.
in_ns conntrack -L 2>/dev/null | sed -E 's/^[^=]* src=([^ ]+) .*/\1/' | sort | uniq -c >"$WORK/by_src"
log "conntrack -L by source: $(tr -s ' \n' ' ' <"$WORK/by_src")"
for i in 2 3 4 5; do
	want=$(awk -v a="127.0.0.$i" '$2 == a {print $1}' "$WORK/by_src")
	got=$(jq --argjson n "$inode" --arg a "127.0.0.$i" '.sources[] | select(.netns == $n and .src == $a) | .live' <<<"$final")
	expect "source 127.0.0.$i: live = conntrack -L count" "$got" "${want:-0}"
	got=$(summary ".by_source.by_live[] | select(.netns == $inode and .src == \"127.0.0.$i\") | .live")
	expect "trace summary: source 127.0.0.$i live = conntrack -L count" "$got" "${want:-0}"
done
expect "trace summary: the test netns's name" "$(summary ".by_netns[] | select(.netns == $inode) | .name")" "\"$NS\""

unnamed_inode=$(stat -L -c %i "/proc/$unnamed_pid/ns/net")
name=$(jq -r --argjson n "$unnamed_inode" '.netns[] | select(.netns == $n) | .name' <<<"$final")
expect "unnamed netns named by its process" "$(grep -c "^pid $unnamed_pid (" <<<"$name")" 1
name=$(summary ".by_netns[] | select(.netns == $unnamed_inode) | .name")
expect "trace summary: unnamed netns named by its process" "$(grep -c "^\"pid $unnamed_pid (" <<<"$name")" 1
log "unnamed netns: $name"
finish
