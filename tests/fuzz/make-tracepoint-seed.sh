#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make-tracepoint-seed.sh BUILD_DIR: regenerates corpus/snapshot-tracepoint.json on this machine, where
# tracepoint mode works without the VM: `ctbpf snapshot --mode tracepoint` in a netns of its own while
# three bursts of UDP datagrams make entries there (no global knob is touched, so no drops: the VM's
# snapshot.sh floods a small hash table for those). The file must pass docs/schema/ctbpf.schema.json
# before it replaces the seed. Root, like the host tests. make-corpus.sh makes the VM seeds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: make-tracepoint-seed.sh BUILD_DIR}" && pwd)
export CTBPF_BIN=$build/agent/ctbpf CTBPF_FLOWGEN=$build/tests/flowgen
source "$here/../e2e/lib.sh"

make_netns
keep_udp_entries
ip netns exec "$NS" "$CTBPF_BIN" snapshot --mode tracepoint -d 6 -i 1 --ready-file "$WORK/ready" \
	-o "$WORK/snapshot.json" 2>"$WORK/trace.err" &
TRACE_PID=$!
wait_file "$WORK/ready" "$TRACE_PID" "ctbpf snapshot"
for burst in 1 2 3; do
	udp_flood $((20000 + burst * 1000)) 300 >/dev/null
	sleep 1
done
wait "$TRACE_PID" || { cat "$WORK/trace.err" >&2; exit 1; }
TRACE_PID=
validate_records "$WORK/snapshot.json"
[ "$FAILED" = 0 ] || exit 1
cp "$WORK/snapshot.json" "$here/corpus/snapshot-tracepoint.json"
echo "wrote corpus/snapshot-tracepoint.json"
