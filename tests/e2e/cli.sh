#!/usr/bin/env bash
# cli.sh: bad usage gets one line and exit 2; no privileges gets exit 3 naming what is missing.
source "$(dirname "$0")/lib.sh"

# run_ctbpf EXPECTED_CODE ARGS...: checks the exit code and that stderr is exactly one line.
run_ctbpf() {
	local want=$1
	shift
	local rc=0
	"$CTBPF_BIN" "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
	expect "exit code of ctbpf $*" "$rc" "$want"
	expect "stderr lines of ctbpf $*" "$(wc -l <"$WORK/err")" 1
	log "ctbpf $*: $(cat "$WORK/err")"
}

run_ctbpf 2 --no-such-flag
run_ctbpf 2 trace --no-such-flag
run_ctbpf 2 trace -i 0
run_ctbpf 2 trace --mode nonsense
run_ctbpf 2 no-such-command
run_ctbpf 2

# Bounds (core/bounds.h): non-finite and absurd durations, intervals and counts stop at once with
# exit 2 and one line, before anything is loaded (these once busy-looped or ended at once with exit 0).
for args in "trace -i 1e10 -d 1" "trace -i 1e12 -d 2" "trace -i 0.01" "trace -d 1e10" "trace -d inf" \
	"trace -d nan" "trace -d -1" "doctor -d 1e12" "doctor -d inf" "top -i inf" "top -d 1e10" "top -n 0" \
	"snapshot -o x.json -d inf" "snapshot -o x.json -i nan" "serve -i 1e10" "serve --record-every inf" \
	"serve --record-keep 0" "serve --record-max-age 1e300" "serve --drop-events-rate -1" "trace --top 2.5" \
	"trace --events-rate 1e99" "trace --ring-size 1e10" "trace --lifetime-sample inf" \
	"trace --record-quiet nan" "trace --record-before 1e6"; do
	# shellcheck disable=SC2086 # word splitting wanted: one string per command line
	run_ctbpf 2 $args
	expect "ctbpf $args says the range" "$(grep -c 'must be a .* from .* to .*, got' "$WORK/err")" 1
done
expect "--help shows the interval's range" "$("$CTBPF_BIN" trace --help | grep -c '0.1..3600 s')" 1

rc=0
setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all "$CTBPF_BIN" trace -d 1 \
	>"$WORK/out" 2>"$WORK/err" || rc=$?
expect "exit code without privileges" "$rc" 3
expect "message names CAP_BPF" "$(grep -c CAP_BPF "$WORK/err")" 1
log "unprivileged: $(cat "$WORK/err")"

"$CTBPF_BIN" --version >"$WORK/out"
expect "--version" "$(cat "$WORK/out")" "ctbpf $(sed -n 's/^project(ctbpf VERSION \([0-9.]*\).*/\1/p' "$(dirname "$0")/../../CMakeLists.txt")"

"$CTBPF_BIN" --help >"$WORK/out"
expect "--help names trace" "$(grep -c '^  trace' "$WORK/out")" 1
finish
