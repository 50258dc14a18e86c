#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# netns_reuse.sh MODE: a netns dies and the next one made gets its inode (the kernel hands out the
# lowest free number), as pods come and go on a Kubernetes node. Under that inode the new netns counts
# from zero, with its own name, in trace's summary and in serve's metrics; the dead one's counts move
# to "other". Nothing is inherited and nothing is lost: the rows add up to the inserts and destroys.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}
old=ctbpf-old-$$
new=ctbpf-new-$$
cleanup_reuse() { ip netns del "$old" 2>/dev/null || true; ip netns del "$new" 2>/dev/null || true; cleanup; }
trap cleanup_reuse EXIT

# tracking_netns NAME: lib.sh's netns, its UDP entries kept 600 s.
tracking_netns() {
	make_netns "$1"
	ip netns exec "$1" sh -c 'echo 600 >/proc/sys/net/netfilter/nf_conntrack_udp_timeout'
}

load_modules
make_quiet_netns
# Both observers live in the quiet netns (no conntrack there), out of what they count.
ip netns exec "$QUIET_NS" "$CTBPF_BIN" trace --json --mode "$mode" -i 0.5 --ready-file "$WORK/ready" \
	>"$WORK/trace.out" 2>"$WORK/trace.err" &
TRACE_PID=$!
ip netns exec "$QUIET_NS" "$CTBPF_BIN" serve --mode "$mode" --listen 127.0.0.1:9650 -i 0.5 \
	--ready-file "$WORK/serve.ready" 2>"$WORK/serve.err" &
serve_pid=$!
BG_PIDS+=($serve_pid)
wait_file "$WORK/ready" "$TRACE_PID" "ctbpf trace"
wait_file "$WORK/serve.ready" "$serve_pid" "ctbpf serve"
metric() {
	in_quiet curl -sf http://127.0.0.1:9650/metrics |
		awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2; n++ } END { print n ? s : "none" }'
}

tracking_netns "$old"
inode=$(stat -L -c %i "/run/netns/$old")
ip netns exec "$old" "$CTBPF_FLOWGEN" udp --port 20000 --count 300 >/dev/null 2>&1
expect "the dead-to-be netns's conntrack -C" "$(ip netns exec "$old" conntrack -C)" 300
# Until serve has counted and named it (its names are asked for while a netns lives).
for _ in $(seq 60); do
	[ "$(metric "ctbpf_netns_info{netns=\"$inode\",name=\"$old\"}")" = 1 ] && break
	sleep 0.5
done
expect "serve named inode $inode $old" "$(metric "ctbpf_netns_info{netns=\"$inode\",name=\"$old\"}")" 1

# The netns dies in a kernel worker after `ip netns del`; its entries are destroyed before its inode is
# freed. Until then a new netns gets another number: delete it and ask again.
ip netns del "$old"
for try in $(seq 60); do
	tracking_netns "$new"
	[ "$(stat -L -c %i "/run/netns/$new")" = "$inode" ] && break
	ip netns del "$new"
	sleep 0.5
done
expect "the new netns got the dead one's inode (try $try)" "$(stat -L -c %i "/run/netns/$new")" "$inode"
ip netns exec "$new" "$CTBPF_FLOWGEN" udp --port 20000 --count 200 >/dev/null 2>&1
expect "the new netns's conntrack -C" "$(ip netns exec "$new" conntrack -C)" 200
for _ in $(seq 60); do
	[ "$(metric ctbpf_conntrack_inserts_total)" = 500 ] &&
		[ "$(metric "ctbpf_netns_info{netns=\"$inode\",name=\"$new\"}")" = 1 ] && break
	sleep 0.5
done
expect "serve: inserts" "$(metric ctbpf_conntrack_inserts_total)" 500
expect "serve: inserts of inode $inode (the new netns's)" "$(metric "ctbpf_conntrack_netns_inserts_total{netns=\"$inode\"}")" 200
expect "serve: destroys of inode $inode" "$(metric "ctbpf_conntrack_netns_destroys_total{netns=\"$inode\"}")" 0
expect "serve: inserts of other (the dead netns's)" "$(metric 'ctbpf_conntrack_netns_inserts_total{netns="other"}')" 300
expect "serve: destroys of other" "$(metric 'ctbpf_conntrack_netns_destroys_total{netns="other"}')" 300
expect "serve: inode $inode named $new" "$(metric "ctbpf_netns_info{netns=\"$inode\",name=\"$new\"}")" 1
expect "serve: inode $inode no longer named $old" "$(metric "ctbpf_netns_info{netns=\"$inode\",name=\"$old\"}")" none

stop_trace
row() { summary ".by_netns[] | select(.netns == $1) | $2"; }
expect "trace: inserts" "$(summary .inserts)" 500
expect "trace: destroys" "$(summary .destroys)" 300
expect "trace: inserts of inode $inode" "$(row "$inode" .inserts)" 200
expect "trace: destroys of inode $inode" "$(row "$inode" .destroys)" 0
expect "trace: name of inode $inode" "$(row "$inode" .name)" "\"$new\""
expect "trace: inserts of other" "$(row '"other"' .inserts)" 300
expect "trace: destroys of other" "$(row '"other"' .destroys)" 300
expect "trace: by_netns inserts add up" "$(summary '[.by_netns[].inserts] | add')" 500
expect "trace: by_netns destroys add up" "$(summary '[.by_netns[].destroys] | add')" 300
finish
