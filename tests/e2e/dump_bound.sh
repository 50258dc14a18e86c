#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# dump_bound.sh MODE: the ctnetlink dumps of `top`, `doctor` and `trace --top` stop at
# --dump-max-entries and say so, with the exact count. 300 live UDP entries from 127.0.0.2..4 in the
# test netns; a bound of 100 entries (no time bound, so the count cannot depend on the machine's speed)
# reads exactly 100 and reports stopped_early/stopped_by and the table's 300; a bound equal to the
# table, or none, reads it whole and says nothing.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}

load_modules
make_netns
keep_udp_entries
for i in 2 3 4; do in_ns "$CTBPF_FLOWGEN" udp --src "127.0.0.$i" --port 20000 --count 100 >/dev/null 2>&1; done
expect "entries in the test netns" "$(ct_count)" 300
inode=$(stat -L -c %i "/run/netns/$NS")

# run_ctbpf NAME ARGS...: ctbpf in the test netns, stdout in $WORK/NAME.out; fails the test on a non-zero exit.
run_ctbpf() {
	local name=$1 rc=0
	shift
	ip netns exec "$NS" "$CTBPF_BIN" "$@" >"$WORK/$name.out" 2>"$WORK/trace.err" || rc=$?
	expect "$name exit code" "$rc" 0
	log "$name stderr: $(tr '\n' ' ' <"$WORK/trace.err")"
}
bound=(--dump-max-entries 100 --dump-max-seconds 0)

# top: in tracepoint mode every refresh dumps; in the probe modes the dump seeds the live counts.
run_ctbpf top-json top --json --mode "$mode" -n 5 "${bound[@]}" 0.5 2
final=$(tail -n 1 "$WORK/top-json.out")
log "top: $(jq -c .dump <<<"$final")"
expect "top dump.entries" "$(jq .dump.entries <<<"$final")" 100
expect "top dump.stopped_early" "$(jq .dump.stopped_early <<<"$final")" true
expect "top dump.stopped_by" "$(jq -r .dump.stopped_by <<<"$final")" max_entries
expect "top dump.table_count" "$(jq .dump.table_count <<<"$final")" 300
expect "top dump.kind" "$(jq -r .dump.kind <<<"$final")" "$([ "$mode" = tracepoint ] && echo every_refresh || echo seed)"
if [ "$mode" = tracepoint ]; then
	# The live counts are those of the entries read: 100, not the table's 300.
	expect "top netns live = the entries read" \
		"$(jq --argjson n "$inode" '[.netns[] | select(.netns == $n) | .live] | add' <<<"$final")" 100
	# Between two partial dumps growth is unknown, not the difference of two samples.
	expect "top netns growth next to a cut dump" \
		"$(jq -c --argjson n "$inode" '[.netns[] | select(.netns == $n) | .growth, .growth_per_s]' <<<"$final")" '[null,null]'
fi
expect "top says it once on stderr" "$(grep -c 'the ctnetlink dump stopped early: 100 of 300 entries read' "$WORK/trace.err")" 1

run_ctbpf top-text top --mode "$mode" "${bound[@]}" 0.5 1
expect "top text says the dump stopped early" \
	"$(grep -c 'the ctnetlink dump stopped early: 100 of 300 entries read in .* s (--dump-max-entries 100)' "$WORK/top-text.out")" 1

run_ctbpf top-whole top --json --mode "$mode" --dump-max-entries 300 0.5 1
expect "top, a bound equal to the table: dump.entries" "$(jq .dump.entries "$WORK/top-whole.out")" 300
expect "top, a bound equal to the table: stopped_early" "$(jq .dump.stopped_early "$WORK/top-whole.out")" false

# doctor: both dumps (the window's start and end) stop at the bound; idle times cover the entries read.
run_ctbpf doctor-json doctor --json -d 1 --mode "$mode" "${bound[@]}"
DOCTOR=$(cat "$WORK/doctor-json.out")
log "doctor: $(doctor .inputs.dumps)"
for end in start end; do
	expect "doctor dumps.$end.entries" "$(doctor ".inputs.dumps.$end.entries")" 100
	expect "doctor dumps.$end.stopped_by" "$(doctor ".inputs.dumps.$end.stopped_by")" '"max_entries"'
done
expect "doctor idle_ms.entries" "$(doctor .summary.idle_ms.entries)" 100
expect "doctor idle_ms.capped" "$(doctor .summary.idle_ms.capped)" true
expect "doctor lists every entry's idle time as unmeasured" \
	"$(doctor '[.unmeasured[] | select(.what == "idle time of every entry")] | length')" 1

run_ctbpf doctor-text doctor -d 1 --mode "$mode" "${bound[@]}"
expect "doctor text says the dump stopped early" \
	"$(grep -c '^  the ctnetlink dump stopped early: 100 of 300 entries read in .* s (--dump-max-entries 100)$' "$WORK/doctor-text.out")" 1

run_ctbpf doctor-whole doctor --json -d 1 --mode "$mode" --dump-max-entries 0
DOCTOR=$(cat "$WORK/doctor-whole.out")
expect "doctor, no bound: idle_ms.entries" "$(doctor .summary.idle_ms.entries)" 300
expect "doctor, no bound: stopped_early" "$(doctor .inputs.dumps.end.stopped_early)" false

# trace --top seeds its live counts from a dump (probe modes only: tracepoint mode has no by_source).
if [ "$mode" != tracepoint ]; then
	run_ctbpf trace-top trace --json -d 1 --top 5 --mode "$mode" "${bound[@]}"
	seed=$(tail -n 1 "$WORK/trace-top.out" | jq -c .by_source.seed_dump)
	expect "trace --top seed_dump.entries" "$(jq .entries <<<"$seed")" 100
	expect "trace --top seed_dump.stopped_early" "$(jq .stopped_early <<<"$seed")" true
fi
finish
