#!/usr/bin/env bash
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

# serve --listen :PORT (every address) and a host name, in a netns of our own.
make_quiet_netns
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
