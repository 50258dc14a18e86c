#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# serve_record.sh MODE: `ctbpf serve --record DIR` writes rolling snapshots that `ctbpf report`
# reads back; SIGHUP writes one at once; SIGTERM writes the last partial window; retention keeps
# the newest --record-keep files and never touches other files in DIR; each file names serve's netns,
# and with the probes the namespaces in its rows.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}

load_modules
make_netns
mkdir -p "$WORK/rec"
touch "$WORK/rec/not-ours.json"
ip netns exec "$NS" "$CTBPF_BIN" serve --mode "$mode" --listen 127.0.0.1:9642 -i 0.25 \
	--record "$WORK/rec" --record-every 1 --record-keep 3 --ready-file "$WORK/serve.ready" 2>"$WORK/trace.err" &
pid=$!
BG_PIDS+=($pid)
wait_file "$WORK/serve.ready" "$pid" "ctbpf serve"
udp_flood 20000 100 >/dev/null
sleep 5.5
udp_flood 30000 10 >/dev/null
kill -HUP "$pid"
sleep 0.5
kill -TERM "$pid"
wait "$pid" || { echo "serve exited non-zero" >&2; FAILED=1; }

files=($(cd "$WORK/rec" && ls ctbpf-*-rolling.json)) # no /dev/fd in the VM guest
expect "rolling snapshots kept (--record-keep 3)" "${#files[@]}" 3
expect "other files untouched" "$(ls "$WORK/rec/not-ours.json" 2>/dev/null | wc -l)" 1
for f in "${files[@]}"; do
	rc=0
	"$CTBPF_BIN" report "$WORK/rec/$f" >/dev/null 2>"$WORK/report.err" || rc=$?
	expect "ctbpf report $f" "$rc" 0
	expect "$f: mode" "$(jq -r .mode "$WORK/rec/$f")" "$mode"
	expect "$f: has intervals" "$(jq '.intervals | length > 0' "$WORK/rec/$f")" true
	# The netns whose table and kernel stats it holds: serve's (issue 34).
	expect "$f: own_netns" "$(jq -r '.summary.own_netns | "\(.name) \(.inode)"' "$WORK/rec/$f")" "$NS $(ns_inode)"
done
# With the probes, each file names the namespaces in its rows: this test's by its `ip netns` name
# (flows just before SIGHUP, so a kept file has a row for it).
if [ "$mode" != tracepoint ]; then
	inode=$(stat -L -c %i "/run/netns/$NS")
	names=$(cd "$WORK/rec" && jq -r --argjson n "$inode" '(.summary.by_netns // [])[] | select(.netns == $n) | .name' \
		"${files[@]}" | sort -u | tr '\n' ' ')
	expect "names of the flood's netns in the kept files" "$names" "$NS "
fi
finish
