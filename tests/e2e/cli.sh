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
