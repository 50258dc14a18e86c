#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# doctor_tracepoint.sh [N]: `ctbpf doctor --mode tracepoint` (every kernel allows it; on some, such as
# microVMs, it is the only family), changing nothing global: a netns holding N established TCP connections. Doctor must run, say
# what tracepoint mode cannot measure (chain lengths, lifetimes, inserts by protocol) instead of
# guessing, and report the table and sysctls exactly as the kernel shows them. Bad usage exits 2.
source "$(dirname "$0")/lib.sh"
n=${1:-20}
port=9000

# run_ctbpf EXPECTED_CODE ARGS...: the exit code, and one line on stderr.
run_ctbpf() {
	local want=$1 rc=0
	shift
	"$CTBPF_BIN" "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
	expect "exit code of ctbpf $*" "$rc" "$want"
	expect "stderr lines of ctbpf $*" "$(wc -l <"$WORK/err")" 1
}
run_ctbpf 2 doctor -d 0
run_ctbpf 2 doctor --mode nonsense
run_ctbpf 2 doctor --no-such-flag

load_modules
make_netns
in_ns_bg "$CTBPF_FLOWGEN" tcp-listen --addr 127.0.0.1 --port "$port" --ready "$WORK/listen.ready"
wait_file "$WORK/listen.ready" "${BG_PIDS[-1]}" "flowgen tcp-listen"
in_ns_bg "$CTBPF_FLOWGEN" tcp-hold --dst 127.0.0.1 --port "$port" --count "$n" --ready "$WORK/hold.ready"
wait_file "$WORK/hold.ready" "${BG_PIDS[-1]}" "flowgen tcp-hold"

start_doctor tracepoint
sleep 1
stop_doctor
sysctl_value() { in_ns cat "/proc/sys/net/netfilter/nf_conntrack_$1"; }

expect mode "$(doctor .mode)" '"tracepoint"'
expect inputs.table.count "$(doctor .inputs.table.count)" "$(sysctl_value count)"
expect "table count = connections held" "$(doctor .inputs.table.count)" "$n"
expect inputs.table.max "$(doctor .inputs.table.max)" "$(sysctl_value max)"
expect inputs.table.buckets "$(doctor .inputs.table.buckets)" "$(sysctl_value buckets)"
for name in tcp_timeout_established udp_timeout udp_timeout_stream; do
	expect "inputs.sysctls.$name" "$(doctor ".inputs.sysctls.$name")" "$(sysctl_value "$name")"
done
expect "table_fill count" "$(finding table_fill .evidence.count)" "$n"
expect "table_fill max" "$(finding table_fill .evidence.max)" "$(sysctl_value max)"
source_file=$(jq -r .inputs.memory.slab_object_size_source <<<"$DOCTOR")
expect "slab object size (from $source_file)" "$(doctor .inputs.memory.slab_object_size)" \
	"$(slab_object_size "$source_file")"
build=unknown
if [ -e /sys/module/nf_conntrack/initstate ]; then build=module; elif [ -d /sys/module/nf_conntrack ]; then build=builtin; fi
expect inputs.memory.conntrack "$(doctor .inputs.memory.conntrack)" "\"$build\""

# Honest about what this mode cannot see.
expect summary.inserts "$(doctor .summary.inserts)" null
expect summary.chain_length.p99 "$(doctor .summary.chain_length.p99)" null
for what in "inserts per second and by protocol" "chain length at insert" "entry lifetimes and TCP state at death" \
	"top ports by inserts"; do
	expect "not measured: $what" "$(doctor "[.unmeasured[].what] | index(\"$what\") != null")" true
done
expect "no chain evidence made up" "$(doctor '[.findings[] | select(.id == "chain_length") | .evidence.chain_p99 | select(. != null)] | length')" 0
expect "no lifetime evidence made up" \
	"$(doctor '[.findings[] | .evidence.tcp_lifetime_p99_ms? // empty] | length')" 0
expect "findings sorted by severity" \
	"$(doctor '[.findings[].severity | {"critical": 0, "warning": 1, "info": 2}[.]] | . == sort')" true

# Issue 34: a burst of new UDP flows in a window shorter than udp_timeout is no time to full: each
# entry expires udp_timeout after its datagram, so the window's growth says nothing of a trend. No
# warning, no proposed max; the forecast says why (the timeout of the entries that grew).
start_doctor tracepoint
in_ns "$CTBPF_FLOWGEN" udp --dst 127.0.0.1 --port 20000 --count 600 >/dev/null
sleep 1
stop_doctor
udp_live=$(in_ns conntrack -L -p udp 2>/dev/null | grep -c '^udp' || true)
expect "burst: the table grew (conntrack -L: $udp_live UDP entries)" \
	"$(jq '.inputs.table.count > .inputs.table.count_start' <<<"$DOCTOR")" true
expect "burst: no time to full" "$(finding table_fill .evidence.time_to_full_s)" null
expect "burst: forecast basis" "$(finding table_fill .evidence.forecast.basis)" '"window_too_short"'
expect "burst: the grown entries' timeout" "$(finding table_fill .evidence.forecast.timeout_s)" \
	"$(sysctl_value udp_timeout)"
expect "burst: table_fill severity" "$(finding table_fill .severity)" '"info"'
expect "burst: no proposed max" "$(finding table_fill .evidence.proposed)" null
expect "burst: tcp_timeout_established severity" "$(finding tcp_timeout_established .severity)" '"info"'

# The text view runs too and says the same.
rc=0
in_ns "$CTBPF_BIN" doctor -d 1 --mode tracepoint >"$WORK/text" 2>"$WORK/err" || rc=$?
expect "text exit code" "$rc" 0
expect "text names what it could not measure" "$(grep -c '^Not measured here:' "$WORK/text")" 1
expect "text says it changed nothing" "$(grep -c 'nothing was changed' "$WORK/text")" 1
finish
