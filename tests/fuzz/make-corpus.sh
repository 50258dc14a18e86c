#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make-corpus.sh BUILD_DIR: regenerates the fuzz seeds in tests/fuzz/corpus with the real binary. Runs
# the snapshot and recorder scenarios in the VM (tests/vm/vmrun) with CTBPF_EXPORT_SNAPSHOT=1, which
# print their snapshot base64 after a "=== KIND MODE" line (files written in the VM stay there), and
# keeps each as corpus/KIND-MODE.json. Root, like the vm tests. The unit tests read these files back
# byte for byte, and host_report_html renders snapshot-fentry.json.
# The seeds here are of two ages. snapshot-tracepoint.json is current (make-tracepoint-seed.sh, on the
# host) and passes docs/schema/ctbpf.schema.json. The fentry seeds and
# snapshot-tracepoint-v1-keys-absent.json were written before "scope", "kernel_stats", table growth,
# probe_misses.kprobe and chain_length.sampled_one_in existed, with drops.alloc_failed 0 and (tracepoint)
# chain/lifetime keys absent instead of null: they fail the schema, and stay as the evidence that such
# files still read (the reader accepts them; report, diff and the HTML page render them). Making the
# fentry seeds again takes this script's four VM runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:?usage: make-corpus.sh BUILD_DIR}" && pwd)
export CTBPF_BIN=$build/agent/ctbpf CTBPF_FLOWGEN=$build/tests/flowgen CTBPF_EXPORT_SNAPSHOT=1
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# run SCENARIO ARGS...: runs it in the VM and keeps the snapshots it printed.
run() {
	"$here/../vm/vmrun" -- "$here/../e2e/$1" "${@:2}" >"$out" || {
		echo "make-corpus: $* failed:" >&2
		grep -E '^FAIL' "$out" >&2 || tail -n 20 "$out" >&2
		exit 1
	}
	awk '/^=== / {name = $2 "-" $3; getline; print name, $0}' "$out" | while read -r name data; do
		base64 -d <<<"$data" >"$here/corpus/$name.json"
		echo "wrote corpus/$name.json"
	done
}

mkdir -p "$here/corpus"
run snapshot.sh fentry 20000
run snapshot.sh tracepoint 20000
run recorder.sh fentry 12000
run attribution_ipv6.sh fentry  # netns names and IPv6/IPv4 sources (snapshot --top)
