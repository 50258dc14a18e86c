#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# cli.sh: bad usage gets one line and exit 2; no privileges gets exit 3 naming what is missing.
source "$(dirname "$0")/lib.sh"
# A host where nothing has loaded conntrack yet (a fresh guest; a machine without a stateful
# firewall) would exit 3 below: the modules first, as every scenario does.
load_modules

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
expect "an unknown option is called one" "$(grep -c 'unknown option --no-such-flag' "$WORK/err")" 1
run_ctbpf 2 trace --no-such-flag
run_ctbpf 2 trace -i 0
run_ctbpf 2 trace --mode nonsense
run_ctbpf 2 no-such-command
expect "an unknown subcommand is called one, with the subcommands" \
	"$(grep -c 'unknown subcommand no-such-command (the subcommands: trace, ' "$WORK/err")" 1
run_ctbpf 2 -v frobnicate
expect "-v then an unknown subcommand" "$(grep -c 'unknown subcommand frobnicate' "$WORK/err")" 1
run_ctbpf 2
expect "no subcommand at all" "$(grep -c 'a subcommand is required' "$WORK/err")" 1

# Bounds (core/bounds.h): non-finite and absurd durations, intervals and counts stop at once with
# exit 2 and one line, before anything is loaded (these once busy-looped or ended at once with exit 0).
for args in "trace -i 1e10 -d 1" "trace -i 1e12 -d 2" "trace -i 0.01" "trace -d 1e10" "trace -d inf" \
	"trace -d nan" "trace -d -1" "doctor -d 1e12" "doctor -d inf" "top -i inf" "top -d 1e10" "top -n 0" \
	"snapshot -o x.json -d inf" "snapshot -o x.json -i nan" "serve -i 1e10" "serve --record-every inf" \
	"serve --record-keep 0" "serve --record-max-age 1e300" "serve --drop-events-rate -1" "trace --top 2.5" \
	"trace --events-rate 1e99" "trace --ring-size 1e10" "trace --lifetime-sample inf" "trace --lifetime-sample 3" \
	"serve --lifetime-sample 12" "serve --chain-sample 3" "trace --chain-sample 0" "snapshot -o x.json --lifetime-sample 6" \
	"trace --record-quiet nan" "trace --record-before 1e6"; do
	# shellcheck disable=SC2086 # word splitting wanted: one string per command line
	run_ctbpf 2 $args
	expect "ctbpf $args says the range" "$(grep -c 'must be a .* from .* to .*, got' "$WORK/err")" 1
done
expect "--help shows the interval's range" "$("$CTBPF_BIN" trace --help | grep -c -- '-i,--interval FLOAT:0.1..3600 s')" 1

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

# ---- CLI habits -----------------------------------------------------------------------------------
# Errors name the help of the subcommand they are about; "Usage:" names ctbpf, not the binary's path.
run_ctbpf 2 trace --no-such-flag
expect "a trace error names trace's help" "$(grep -c '(see ctbpf trace --help)$' "$WORK/err")" 1
run_ctbpf 2 --no-such-flag
expect "a top-level error names ctbpf --help" "$(grep -c '(see ctbpf --help)$' "$WORK/err")" 1
"$CTBPF_BIN" trace --help >"$WORK/out"
expect "Usage: without the binary's path" "$(grep -c '^Usage: ctbpf trace ' "$WORK/out")" 1
run_ctbpf 2 trace -i 1 2 3
expect "the interval given twice" "$(grep -c 'given twice' "$WORK/err")" 1
run_ctbpf 2 trace 1 3 -d 5
expect "COUNT with -d" "$(grep -c 'COUNT and -d' "$WORK/err")" 1
run_ctbpf 2 trace 1 0
run_ctbpf 2 top inf
run_ctbpf 2 trace 1 2 3

# trace INTERVAL COUNT (vmstat, bcc): a header, exactly COUNT rows that fit 100 columns, a summary.
# -v after the subcommand is accepted, and without the verifier's logs (those need -vv).
rc=0
"$CTBPF_BIN" trace --mode tracepoint 0.5 3 -v >"$WORK/out" 2>"$WORK/err" || rc=$?
expect "trace 0.5 3 -v: exit code" "$rc" 0
expect "trace 0.5 3: first line is the header" "$(head -n 1 "$WORK/out" | awk '{print $1, $2}')" "T INSERT/S"
expect "trace 0.5 3: interval rows" "$(grep -cE '^ *[0-9]+\.[0-9] ' "$WORK/out")" 3
expect "trace 0.5 3: rows are lines 2-4, then the summary" "$(sed -n 5p "$WORK/out" | cut -c1-13)" "ctbpf summary"
expect "trace 0.5 3: header and rows within 100 columns" "$(head -n 4 "$WORK/out" | awk 'length > 100' | wc -l)" 0
expect "trace -v: no verifier log" "$(grep -c 'PROG LOAD LOG\|processed [0-9]* insns' "$WORK/err")" 0
log "trace 0.5 3 -v: $(wc -l <"$WORK/err") lines on stderr"
head -n 4 "$WORK/out" >&2

# -T: the rows start with the UTC wall-clock time; -w: every field on one key=value line.
"$CTBPF_BIN" trace --mode tracepoint -T 0.5 1 >"$WORK/out" 2>/dev/null
expect "trace -T: header says TIME" "$(head -n 1 "$WORK/out" | awk '{print $1}')" TIME
expect "trace -T: the row starts with HH:MM:SS" "$(sed -n 2p "$WORK/out" | grep -cE '^ *[0-2][0-9]:[0-5][0-9]:[0-5][0-9] ')" 1
"$CTBPF_BIN" trace --mode tracepoint -w 0.5 1 >"$WORK/out" 2>/dev/null
expect "trace -w: no header, the key=value line" "$(head -n 1 "$WORK/out" | grep -c '^t=.* drops: table_full ')" 1

# NDJSON: every record has "time", RFC 3339 in UTC; COUNT holds with --json too.
rfc3339='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$'
"$CTBPF_BIN" trace --mode tracepoint --json 0.5 2 >"$WORK/out" 2>/dev/null
expect "trace --json 0.5 2: intervals" "$(jq -s '[.[] | select(.type == "interval")] | length' "$WORK/out")" 2
expect "trace --json 0.5 2: summaries" "$(jq -s '[.[] | select(.type == "summary")] | length' "$WORK/out")" 1
expect "trace --json: every record has an RFC 3339 UTC time" \
	"$(jq -r '.time' "$WORK/out" | grep -cE "$rfc3339")" 3
expect "trace --json: t kept next to time" "$(jq -s '[.[] | select(.type == "interval" and (.t | type) == "number")] | length' "$WORK/out")" 2
# The JSON contract (docs/schema/ctbpf.schema.json): every promised key present, null where this
# mode cannot observe it; also with --top (by_source null in tracepoint mode), top, doctor and features.
validate_records "$WORK/out"
"$CTBPF_BIN" trace --mode tracepoint --json --top 3 0.5 1 >"$WORK/trace-top.json" 2>/dev/null
validate_records "$WORK/trace-top.json"
"$CTBPF_BIN" top --mode tracepoint --json 0.5 2 >"$WORK/top.json" 2>/dev/null
validate_records "$WORK/top.json"
"$CTBPF_BIN" doctor --mode tracepoint --json -d 1 >"$WORK/doctor.json" 2>/dev/null
validate_records "$WORK/doctor.json"
"$CTBPF_BIN" features --json >"$WORK/features.json" 2>/dev/null
validate_records "$WORK/features.json"

# report --json, diff --json; diff exits as diff(1): 0 the same, 1 changed, 2 bad input.
snap=$(dirname "$0")/../fuzz/corpus/snapshot-tracepoint.json
jq '.sysctls.max += 1' "$snap" >"$WORK/changed.json"
rc=0
"$CTBPF_BIN" report --json "$snap" >"$WORK/out" || rc=$?
expect "report --json: exit code" "$rc" 0
expect "report --json: type and charts" "$(jq -r '.type, (.charts | type)' "$WORK/out" | tr '\n' ' ')" "report array "
validate_records "$WORK/out"
rc=0
"$CTBPF_BIN" diff "$snap" "$snap" >"$WORK/out" || rc=$?
expect "diff of the same snapshot: exit code" "$rc" 0
rc=0
"$CTBPF_BIN" diff --json "$snap" "$snap" >"$WORK/out" || rc=$?
expect "diff --json of the same snapshot" "$rc $(jq -c '[.changed, (.sections | length)]' "$WORK/out")" "0 [false,0]"
validate_records "$WORK/out"
rc=0
"$CTBPF_BIN" diff "$snap" "$WORK/changed.json" >"$WORK/out" || rc=$?
expect "diff of a changed snapshot: exit code" "$rc" 1
rc=0
"$CTBPF_BIN" diff --json "$snap" "$WORK/changed.json" >"$WORK/out" || rc=$?
expect "diff --json of a changed snapshot" \
	"$rc $(jq -c '[.changed, ([.sections[] | select(.title == "sysctls") | .changes[].name] | index("max") != null)]' "$WORK/out")" \
	'1 [true,true]'
validate_records "$WORK/out"
echo '{' >"$WORK/bad.json"
run_ctbpf 2 diff "$snap" "$WORK/bad.json"

# ---- issue 34: the first ten minutes -------------------------------------------------------------
# A family forced by --mode that this kernel refuses: that family is named, and the one that works.
for family in fentry kprobe; do
	kernel_allows "$family" && continue
	run_ctbpf 3 trace --mode "$family" -d 0.2
	expect "--mode $family refused: says $family is not available" \
		"$(grep -c "^ctbpf: $family mode is not available on this kernel (" "$WORK/err")" 1
	expect "--mode $family refused: names a mode that works" "$(grep -cE ' mode works: --mode (fentry|kprobe|tracepoint)' "$WORK/err")" 1
	expect "--mode $family refused: not 'no attach family works'" "$(grep -c 'no attach family works' "$WORK/err")" 0
done

# features: an unusable family's EPERM gets a reading; in tracepoint mode the lines only fentry and
# kprobe concern sit under their own heading.
"$CTBPF_BIN" features >"$WORK/features.txt" 2>/dev/null || true
if grep -q '^fentry .*unusable: .*Operation not permitted' "$WORK/features.txt"; then
	expect "features: fentry's EPERM is read" "$(sed -n '/^fentry /,/^kprobe /p' "$WORK/features.txt" | grep -c '^  *means: the kernel refuses')" 1
fi
if grep -q '^mode        tracepoint$' "$WORK/features.txt"; then
	expect "features in tracepoint mode: the probe-only lines have a heading" \
		"$(grep -c '^only with fentry or kprobe (not in tracepoint mode):$' "$WORK/features.txt")" 1
	expect "features in tracepoint mode: no probe-only line at the margin" \
		"$(grep -c '^skipped kprobe hits\|^undelivered deletes' "$WORK/features.txt")" 0
fi

# An output file in a missing directory is bad input (exit 2) for report --html and snapshot -o alike.
snap=$(dirname "$0")/../fuzz/corpus/snapshot-tracepoint.json
run_ctbpf 2 report --html "$WORK/no-such-dir/r.html" "$snap"
run_ctbpf 2 snapshot --mode tracepoint -d 1 -o "$WORK/no-such-dir/s.json"

# -T, -w and COUNT print rows at a terminal too (script(1) gives ctbpf one), and so does --plain.
for args in "-T 0.5 1" "-w 0.5 1" "0.5 1" "--plain -d 1"; do
	# shellcheck disable=SC2086 # word splitting wanted
	script -qec "$CTBPF_BIN trace --mode tracepoint $args" /dev/null >"$WORK/tty.out" 2>/dev/null </dev/null || true
	expect "trace $args at a terminal: no live screen" "$(grep -c $'\x1b\\[2J' "$WORK/tty.out")" 0
	expect "trace $args at a terminal: the summary" "$(grep -c '^ctbpf summary' "$WORK/tty.out")" 1
done
script -qec "$CTBPF_BIN trace --mode tracepoint -T 0.5 1" /dev/null >"$WORK/tty.out" 2>/dev/null </dev/null || true
expect "trace -T at a terminal: the TIME header" "$(grep -c '^ *TIME  *INSERT/S' "$WORK/tty.out")" 1
# In a pipe, the "-" columns are explained once (stderr, as the start line); --top's absence in
# tracepoint mode is said at start-up.
"$CTBPF_BIN" trace --mode tracepoint --top 3 0.5 2 >"$WORK/out" 2>"$WORK/err"
expect "piped rows: one note on what - means" "$(grep -c '^ctbpf: note: - is what tracepoint mode cannot observe (not a 0): ' "$WORK/err")" 1
expect "piped rows: the note names INSERT/S" "$(grep '^ctbpf: note:' "$WORK/err" | grep -c 'INSERT/S')" 1
expect "--top in tracepoint mode: said at start-up" "$(head -n 3 "$WORK/err" | grep -c '^ctbpf: --top: no per-source counts in tracepoint mode')" 1

# The docs say the defaults the binary has: --chain-sample (trace 16, serve 64) and --record's causes.
src=$(dirname "$0")/../..
serve_chain=$("$CTBPF_BIN" serve --help | sed -n 's/^ *--chain-sample [^ ]*=\([0-9]*\)$/\1/p')
expect "serve --chain-sample default" "$serve_chain" 64
expect "serve --help: one default" "$("$CTBPF_BIN" serve --help | grep -c 'what trace does')" 0
expect "docs/json.md: serve's default" "$(grep -c "serve's $serve_chain, snapshot's and doctor's 1" "$src/docs/json.md")" 1
expect "README: serve's default" "$(grep -c "1 insert in \`--chain-sample\` ($serve_chain)" "$src/README.md")" 1
expect "trace --help: default 16" "$("$CTBPF_BIN" trace --help | grep -c 'Default 16,')" 1
expect "docs/json.md: trace's default" "$(grep -c "trace's default is 16" "$src/docs/json.md")" 1
expect "README: trace's default" "$(grep -c "\`--chain-sample\` (16)" "$src/README.md")" 1
expect "--record's help names no cause that is null in every mode" \
	"$("$CTBPF_BIN" trace --help | sed -n '/--record DIR/,/--record-before/p' | grep -c alloc_failed)" 0
expect "README: --top's absence said at start-up" "$(grep -c 'no (said at start-up)' "$src/README.md")" 1

# The README opens with what ctbpf shows (a captured trace, whose header is the binary's), then the
# two commands; kernel internals are in docs/internals.md.
expect "README: what you see, before the two commands" \
	"$(grep -n '^## ' "$src/README.md" | sed -n '1,2p' | cut -d' ' -f2- | tr '\n' '|')" "What you see|Two commands (Debian 12, as root)|"
"$CTBPF_BIN" trace --mode tracepoint -T 0.5 1 >"$WORK/out" 2>/dev/null
head -n 1 "$WORK/out" >"$WORK/header"
expect "README: the captured header is the binary's" "$(grep -cxF -f "$WORK/header" "$src/README.md")" 1
expect "README: a doctor finding from a guest run, before the two commands" \
	"$(sed -n '/^## What you see/,/^## Two commands/p' "$src/README.md" | grep -c '^\[WARNING\] nat_blackhole: \|in fentry mode (read-only')" 2
expect "README: no kernel internals" "$(grep -c 'softirq\|idle task\|bpf_prog_active' "$src/README.md")" 0
expect "docs/internals.md has them" "$(grep -o 'softirq\|idle task\|bpf_prog_active' "$src/docs/internals.md" | sort -u | wc -l)" 3

# Every --help fits 100 columns and ends with examples (two or three).
for cmd in "" trace features serve doctor snapshot report diff top; do
	# shellcheck disable=SC2086 # no subcommand: the top-level help
	"$CTBPF_BIN" $cmd --help >"$WORK/help.txt"
	expect "ctbpf $cmd --help: within 100 columns" "$(awk 'length > 100' "$WORK/help.txt" | wc -l)" 0
	examples=$(sed -n '/^Examples:$/,$p' "$WORK/help.txt" | grep -cE '^  (ctbpf|curl|ip netns exec) ' || true)
	expect "ctbpf $cmd --help: two or three examples" "$((examples >= 2 && examples <= 3))" 1
done

# Every command's text output that this host can give fits 100 columns (doctor's findings are
# checked where they are rendered too: tests/unit/test_core_doctor.cpp).
wide() { awk 'length > 100' "$@" | wc -l; }
"$CTBPF_BIN" trace --mode tracepoint -d 1 >"$WORK/out" 2>"$WORK/err"
expect "trace -d 1: stdout and stderr within 100 columns" "$(wide "$WORK/out" "$WORK/err")" 0
"$CTBPF_BIN" trace --mode tracepoint --events drop -d 0.5 >"$WORK/out" 2>"$WORK/err"
expect "trace --events in tracepoint mode: within 100 columns" "$(wide "$WORK/out" "$WORK/err")" 0
"$CTBPF_BIN" trace --mode tracepoint 0.5 1 --top 3 >"$WORK/out" 2>"$WORK/err"
expect "trace --top: within 100 columns" "$(wide "$WORK/out" "$WORK/err")" 0
expect "features: within 100 columns" "$(wide "$WORK/features.txt")" 0
"$CTBPF_BIN" top --mode tracepoint 0.5 2 >"$WORK/out" 2>"$WORK/err"
expect "top: within 100 columns" "$(wide "$WORK/out" "$WORK/err")" 0
for f in "$snap" "$(dirname "$0")/../fuzz/corpus/snapshot-fentry.json"; do
	"$CTBPF_BIN" report "$f" >"$WORK/out"
	expect "report $(basename "$f"): within 100 columns" "$(wide "$WORK/out")" 0
	"$CTBPF_BIN" diff "$snap" "$f" >"$WORK/out" || true
	expect "diff with $(basename "$f"): within 100 columns" "$(wide "$WORK/out")" 0
done
"$CTBPF_BIN" snapshot --mode tracepoint --top 3 -d 1 -o "$WORK/s.json" >"$WORK/out" 2>"$WORK/err"
expect "snapshot --top in tracepoint mode: said at start-up" "$(grep -c '^ctbpf: --top: no per-source counts in tracepoint mode' "$WORK/err")" 1
expect "snapshot: within 100 columns" "$(wide "$WORK/out" "$WORK/err")" 0
# doctor: its prose too; a command (the lines under "fix now:" and "fix persistently:") stays whole.
"$CTBPF_BIN" doctor --mode tracepoint -d 1 >"$WORK/out" 2>"$WORK/err"
prose_wide() { awk '/^  fix (now|persistently):$/ {cmd = 1; next} cmd && /^    / {next} {cmd = 0} length > 100' "$@" | wc -l; }
expect "doctor: prose within 100 columns" "$(prose_wide "$WORK/out" "$WORK/err")" 0

# serve --listen :PORT (every address) and a host name, in a netns of our own.
make_quiet_netns
# top over an empty table says so, rather than printing bare headers.
in_quiet "$CTBPF_BIN" top --mode tracepoint 0.5 1 >"$WORK/out" 2>"$WORK/err"
expect "top of an empty netns: a no-entries line" "$(grep -c "^(no entries in this netns's table" "$WORK/out")" 1
expect "top in a pipe: its note on stderr only, once" "$(grep -c 'not visible' "$WORK/out") $(grep -c 'not visible' "$WORK/err")" "0 1"
port=$((20000 + $$ % 10000))
for listen in ":$port" "localhost:$port"; do
	rm -f "$WORK/ready"
	# ip netns exec execs ctbpf in place: $! is ctbpf itself (a shell function would fork, and the
	# kill below would leave serve running, holding ctest's output pipe open).
	ip netns exec "$QUIET_NS" "$CTBPF_BIN" serve --mode tracepoint --listen "$listen" --ready-file "$WORK/ready" \
		2>"$WORK/serve.err" &
	serve_pid=$!
	for _ in $(seq 100); do [ -e "$WORK/ready" ] && break; sleep 0.1; done
	expect "serve --listen $listen: ready" "$(cat "$WORK/ready" 2>/dev/null)" tracepoint
	expect "serve --listen $listen: 127.0.0.1 answers" "$(in_quiet curl -s "http://127.0.0.1:$port/healthz")" ok
	if [ "${listen:0:1}" = ":" ]; then
		expect "serve --listen $listen: ::1 answers" "$(in_quiet curl -s "http://[::1]:$port/healthz")" ok
	fi
	kill -TERM "$serve_pid"
	wait "$serve_pid" || true
done
run_ctbpf 2 serve --listen no-such-host.invalid:9640
expect "an unknown host is named" "$(grep -c 'cannot resolve' "$WORK/err")" 1
finish
