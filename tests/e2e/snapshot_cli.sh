#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# snapshot_cli.sh SNAPSHOT: `ctbpf report` and `ctbpf diff` on bad files, and the snapshot and
# recorder options, through the real binary. Bad input: exit 2, one stderr line naming the file and
# the field or byte, and nothing on stdout (never half a report). SNAPSHOT is a good file (a seed).
set -euo pipefail
: "${CTBPF_BIN:?set CTBPF_BIN to the ctbpf binary}"
good=${1:?snapshot file}
command -v jq >/dev/null || { echo "snapshot_cli: jq is missing (apt-get install jq)" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FAILED=0

expect() {
	if [ "$2" = "$3" ]; then
		echo "ok   $1 = $2"
	else
		echo "FAIL $1 = $2, expected $3"
		FAILED=1
	fi
}

# refused WHAT STDERR_PATTERN ARGS...: exit 2, one stderr line matching the pattern, empty stdout.
refused() {
	local what=$1 pattern=$2 rc=0
	shift 2
	"$CTBPF_BIN" "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
	expect "$what: exit code" "$rc" 2
	expect "$what: stderr lines" "$(wc -l <"$WORK/err")" 1
	expect "$what: stderr names it" "$(grep -cE "$pattern" "$WORK/err")" 1
	expect "$what: stdout bytes" "$(wc -c <"$WORK/out")" 0
	echo "     $(cat "$WORK/err")"
}

head -c 4096 /dev/urandom >"$WORK/random.json"
refused "random bytes" "^ctbpf: $WORK/random.json: byte [0-9]+: not valid JSON" report "$WORK/random.json"
head -c "$(($(stat -c %s "$good") / 2))" "$good" >"$WORK/truncated.json"
refused "truncated" "^ctbpf: $WORK/truncated.json: byte [0-9]+: not valid JSON" report "$WORK/truncated.json"
jq '.schema_version = 99' "$good" >"$WORK/v99.json"
refused "schema_version 99" "^ctbpf: $WORK/v99.json: /schema_version: version 99 is not supported" \
	report "$WORK/v99.json"
jq '.intervals[1].drops.chaintoolong = "lots"' "$good" >"$WORK/type.json"
refused "wrong type" "^ctbpf: $WORK/type.json: /intervals/1/drops/chaintoolong: expected an unsigned" \
	report "$WORK/type.json" --html "$WORK/never.html"
expect "no HTML written for a bad file" "$(test -e "$WORK/never.html" && echo yes || echo no)" no
jq '.summary.chain_length.buckets = [range(1000000) | {le: ., count: 0}]' "$good" >"$WORK/buckets.json"
refused "a million buckets" "^ctbpf: $WORK/buckets.json: /summary/chain_length/buckets: 1000000 elements" \
	report "$WORK/buckets.json"
truncate -s 10G "$WORK/huge.json"
refused "a 10 GB file" "^ctbpf: $WORK/huge.json: 10737418240 bytes, more than" report "$WORK/huge.json"
refused "a missing file" "^ctbpf: $WORK/missing.json: No such file" report "$WORK/missing.json"
refused "diff with one bad file" "^ctbpf: $WORK/random.json: byte" diff "$good" "$WORK/random.json"

rc=0
"$CTBPF_BIN" diff "$good" "$good" >"$WORK/out" 2>"$WORK/err" || rc=$?
expect "diff with itself: exit code" "$rc" 0
expect "diff with itself: last line" "$(tail -n 1 "$WORK/out")" "no change"
rc=0
"$CTBPF_BIN" report "$good" >"$WORK/out" 2>"$WORK/err" || rc=$?
expect "report of a good file: exit code" "$rc" 0
expect "report of a good file: first line" "$(head -c 16 "$WORK/out")" "ctbpf snapshot: "

# Options are checked before anything is loaded (these need no privileges).
refused "snapshot -o into a missing directory" "^ctbpf: -o $WORK/no/such/x.json: directory" \
	snapshot -d 1 -o "$WORK/no/such/x.json"
refused "snapshot of too many intervals" "more than the 3600 intervals" snapshot -d 100000 -o "$WORK/x.json"
refused "snapshot without -o" "output" snapshot -d 1
refused "--record-keep 0" "record-keep" trace --record "$WORK/rec" --record-keep 0
touch "$WORK/file"
refused "--record into a file" "is not a directory" trace --record "$WORK/file"

# A snapshot this ctbpf writes (tracepoint mode: this host), its report and a diff keep the JSON
# contract (docs/schema/ctbpf.schema.json): every promised key, null where the mode cannot see it.
source "$(dirname "$0")/schema.sh"
rc=0
"$CTBPF_BIN" snapshot --mode tracepoint -d 1 -i 0.5 -o "$WORK/fresh.json" 2>"$WORK/err" || rc=$?
expect "snapshot --mode tracepoint: exit code" "$rc" 0
validate_records "$WORK/fresh.json"
"$CTBPF_BIN" report --json "$WORK/fresh.json" >"$WORK/report.json"
validate_records "$WORK/report.json"
rc=0
"$CTBPF_BIN" diff --json "$WORK/fresh.json" "$good" >"$WORK/diff.json" || rc=$?
expect "diff of a fresh snapshot and the seed: exit code" "$rc" 1
validate_records "$WORK/diff.json"
exit "$FAILED"
