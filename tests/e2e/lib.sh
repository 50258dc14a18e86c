# SPDX-License-Identifier: Apache-2.0
# Shared by the e2e scenarios (sourced, not run). A scenario makes its own netns and rules, runs the
# real ctbpf binary, makes a known amount of traffic on loopback, and compares ctbpf's JSON summary
# with the kernel's own counters. Everything it creates is removed on exit.
set -euo pipefail

: "${CTBPF_BIN:?set CTBPF_BIN to the ctbpf binary}"
: "${CTBPF_FLOWGEN:?set CTBPF_FLOWGEN to the flowgen binary}"
command -v jq >/dev/null || { echo "e2e: jq is missing (apt-get install jq)" >&2; exit 1; }
# validate_records FILE...: the JSON contract, checked against docs/schema/ctbpf.schema.json.
source "$(dirname "${BASH_SOURCE[0]}")/schema.sh"

NS=ctbpf-e2e-$$
# A second netns with no rules, so no conntrack: where observers (serve, Prometheus, curl) live,
# out of the counts they observe. Made on demand by make_quiet_netns.
QUIET_NS=ctbpf-quiet-$$
WORK=$(mktemp -d)
TRACE_PID=
FAILED=0
SUMMARY=
BG_PIDS=()  # background helpers (flowgen tcp-listen, tcp-hold): killed on exit
GLOBALS=()  # PATH VALUE pairs saved by set_global, restored by restore_globals

# in_guest: this script runs in a tests/vm/vmrun guest, whose kernel nobody else uses. Outside one
# (a user's workstation, a CI runner) the kernel is shared with real traffic.
in_guest() { [ "${VMRUN_GUEST:-0}" = 1 ]; }

# set_global PATH VALUE: write a global kernel knob (e.g. nf_conntrack's hashsize, which every netns
# shares) after saving its current value; restore_globals (also run on exit) puts them back. Only in a
# guest: on a shared host a smaller table or hash drops real traffic while the test runs.
set_global() {
	local old
	in_guest || { echo "e2e: refusing to set the global $1 outside a tests/vm/vmrun guest" >&2; exit 1; }
	old=$(cat "$1")
	GLOBALS+=("$1" "$old")
	echo "$2" >"$1"
	log "set $1 = $2 (was $old)"
}

# restore_globals: last saved first, so a knob set twice ends at its original value. Scenarios call
# it as soon as they have measured, to keep other users of the machine out of the narrow window.
restore_globals() {
	local i
	for ((i = ${#GLOBALS[@]} - 2; i >= 0; i -= 2)); do
		echo "${GLOBALS[i + 1]}" >"${GLOBALS[i]}" || echo "e2e: cannot restore ${GLOBALS[i]} to ${GLOBALS[i + 1]}" >&2
	done
	GLOBALS=()
}

cleanup() {
	local pid
	if [ -n "$TRACE_PID" ] && kill -0 "$TRACE_PID" 2>/dev/null; then kill -KILL "$TRACE_PID" || true; fi
	for pid in "${BG_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true # reaped quietly: no "Killed" job notice
	done
	ip netns del "$NS" 2>/dev/null || true
	ip netns del "$QUIET_NS" 2>/dev/null || true
	restore_globals
	rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "[$(date +%T)] $*" >&2; }

# On kernels where conntrack and friends are modules (the VM), load them; built in elsewhere.
# Conntrack's first hash (hash_conntrack_raw's get_random_once) makes a workqueue rewrite a static
# branch with int3-based text patching. Under qemu TCG a vCPU running that code during the rewrite
# can trap on a stale int3 and panic the guest (seen once, 6.12, "Fatal exception in interrupt" at
# hash_conntrack_raw+0x41). So a freshly loaded conntrack hashes once, over ctnetlink, and settles
# before any ctbpf or traffic runs.
load_modules() {
	local m fresh=
	[ -d /sys/module/nf_conntrack ] || fresh=1
	local missing=()
	for m in nf_conntrack nf_tables nft_ct nf_conntrack_netlink veth; do
		[ -d "/sys/module/$m" ] || missing+=("$m")
	done
	# One modprobe for all: each run costs a second or two under the guest's emulation.
	[ ${#missing[@]} -eq 0 ] || modprobe -a "${missing[@]}" 2>/dev/null || true
	if [ -n "$fresh" ] && [ -d /sys/module/nf_conntrack ]; then
		local entry=(-p udp -s 192.0.2.1 -d 192.0.2.2 --sport 9 --dport 9)
		conntrack -I "${entry[@]}" -t 5 >/dev/null 2>&1 || true
		conntrack -D "${entry[@]}" >/dev/null 2>&1 || true
		sleep 0.3
	fi
}

# kernel_allows FAMILY: this kernel attaches that probe family to conntrack, found by a trial that owes
# nothing to ctbpf (bpftrace on __nf_conntrack_confirm). fentry on a module needs the module's BTF
# (/sys/kernel/btf/nf_conntrack, 5.11+): without it the answer is no, and no trial is needed.
# Answers are cached for the script's life.
declare -A KERNEL_ALLOWS=()
kernel_allows() {
	local family=$1 probe
	case "$family" in
	tracepoint) return 0 ;;
	fentry) probe=kfunc ;;
	kprobe) probe=kprobe ;;
	*) echo "e2e: no probe family $family" >&2; exit 2 ;;
	esac
	if [ -z "${KERNEL_ALLOWS[$family]:-}" ]; then
		KERNEL_ALLOWS[$family]=no
		if [ "$family" = fentry ] && { [ ! -e /sys/kernel/btf/vmlinux ] ||
			{ [ -e /sys/module/nf_conntrack/initstate ] && [ ! -e /sys/kernel/btf/nf_conntrack ]; }; }; then
			:
		elif timeout 120 bpftrace -e "$probe:__nf_conntrack_confirm { exit(); } interval:ms:100 { exit(); }" \
			>/dev/null 2>&1; then
			KERNEL_ALLOWS[$family]=yes
		fi
		log "kernel_allows $family: ${KERNEL_ALLOWS[$family]} (bpftrace trial)"
	fi
	[ "${KERNEL_ALLOWS[$family]}" = yes ]
}

# mode_auto_should_pick: the family `--mode auto` must pick here: the cheapest one the kernel allows.
mode_auto_should_pick() {
	if kernel_allows fentry; then echo fentry; elif kernel_allows kprobe; then echo kprobe; else echo tracepoint; fi
}

# skip_unless_kernel_allows FAMILY: outside a guest, a scenario in a family this kernel does not allow
# skips (exit 77, ctest's SKIP_RETURN_CODE). In a guest the test list names what each kernel allows, so
# a refusal there is a failure, never a skip.
skip_unless_kernel_allows() {
	in_guest || kernel_allows "$1" || { echo "skip: this kernel does not allow the $1 family"; exit 77; }
}

# make_netns [NAME]: a netns (the test netns, $NS, unless named) whose output chain needs conntrack
# (so it tracks at all) and whose input chain drops the test's UDP ports with a counter: no socket
# answers, no ICMP, one entry per datagram.
make_netns() {
	local name=${1:-$NS}
	ip netns add "$name"
	ip -n "$name" link set lo up
	ip netns exec "$name" nft -f - <<-'NFT'
	table inet ctbpf_e2e {
		chain out {
			type filter hook output priority 0;
			ct state new counter
		}
		chain in {
			type filter hook input priority 0;
			udp dport 20000-59999 counter drop
		}
	}
	NFT
}

in_ns() { ip netns exec "$NS" "$@"; }
# ns_inode [NAME]: the netns's inode, as BPF sees it (events' "netns").
ns_inode() { stat -L -c %i "/run/netns/${1:-$NS}"; }

# keep_udp_entries: the test netns's UDP entries live 600 s instead of 30 (a per-netns sysctl), for
# scenarios whose counts assume that nothing expires during the flood, however slow the machine is.
keep_udp_entries() { in_ns sh -c 'echo 600 >/proc/sys/net/netfilter/nf_conntrack_udp_timeout'; }

make_quiet_netns() {
	ip netns add "$QUIET_NS"
	ip -n "$QUIET_NS" link set lo up
}
in_quiet() { ip netns exec "$QUIET_NS" "$@"; }

# in_ns_bg CMD...: CMD in the test netns, in the background, killed on exit. ip netns exec execs CMD in
# place, so $! is CMD itself.
in_ns_bg() {
	ip netns exec "$NS" "$@" &
	BG_PIDS+=($!)
}

# wait_file FILE PID WHAT: until FILE exists (PID's readiness signal), failing if PID dies or 180 s pass
# (loading BPF under qemu TCG takes 5-8 s, much more on a loaded machine).
wait_file() {
	local waited=0
	while [ ! -s "$1" ]; do
		if ! kill -0 "$2" 2>/dev/null; then
			echo "e2e: $3 exited before it was ready" >&2
			cat "$WORK/trace.err" >&2 2>/dev/null || true
			exit 1
		fi
		sleep 0.2
		waited=$((waited + 1))
		[ "$waited" -lt 900 ] || { echo "e2e: $3 not ready after 180 s" >&2; exit 1; }
	done
}

# fill_with_assured M PORT: nf_conntrack_max = M (global, restored on exit; writable from the initial
# netns, where scenarios run) and M established TCP connections to a listener on PORT in the test
# netns: M ASSURED entries, so early_drop finds no victim. Sets HELD to the connections opened.
fill_with_assured() {
	set_global /proc/sys/net/netfilter/nf_conntrack_max "$1"
	in_ns_bg "$CTBPF_FLOWGEN" tcp-listen --addr 127.0.0.1 --port "$2" --ready "$WORK/listen.ready"
	wait_file "$WORK/listen.ready" "${BG_PIDS[-1]}" "flowgen tcp-listen"
	in_ns_bg "$CTBPF_FLOWGEN" tcp-hold --dst 127.0.0.1 --port "$2" --count "$1" --ready "$WORK/hold.ready"
	wait_file "$WORK/hold.ready" "${BG_PIDS[-1]}" "flowgen tcp-hold"
	HELD=$(cat "$WORK/hold.ready")
}

# udp_flood FIRST N: one 1-byte datagram from one socket to each of N ports of 127.0.0.1 from FIRST,
# inside the test netns; prints "SENT REFUSED" (REFUSED: dropped by conntrack on the way out, EPERM).
udp_flood() {
	in_ns "$CTBPF_FLOWGEN" udp --dst 127.0.0.1 --port "$1" --count "$2" 2>/dev/null
}

# start_trace MODE [ctbpf trace options...]: ctbpf runs inside the test netns (its ctnetlink stats are
# that netns's); its BPF programs see every netns.
start_trace() {
	local mode=$1
	shift
	skip_unless_kernel_allows "$mode"
	rm -f "$WORK/ready" # a test's second trace must not take the first one's file for its own
	# ip netns exec execs ctbpf in place (a shell function here would fork): $! is ctbpf itself.
	ip netns exec "$NS" "$CTBPF_BIN" trace --json --mode "$mode" --ready-file "$WORK/ready" "$@" \
		>"$WORK/trace.out" 2>"$WORK/trace.err" &
	TRACE_PID=$!
	wait_file "$WORK/ready" "$TRACE_PID" ctbpf
	log "ctbpf ready in $(cat "$WORK/ready") mode"
}

# stop_trace [SIGNAL]: stops ctbpf, checks it exited 0 and that its last line is the summary.
stop_trace() {
	kill -"${1:-TERM}" "$TRACE_PID"
	local rc=0
	wait "$TRACE_PID" || rc=$?
	TRACE_PID=
	if [ "$rc" -ne 0 ]; then
		echo "e2e: ctbpf exited with $rc:" >&2
		cat "$WORK/trace.err" >&2
		exit 1
	fi
	SUMMARY=$(tail -n 1 "$WORK/trace.out")
	[ "$(jq -r .type <<<"$SUMMARY")" = summary ] || { echo "e2e: last line is not a summary: $SUMMARY" >&2; exit 1; }
	log "summary: $SUMMARY"
}

# stop_trace_and PID ERR_FILE: stops ctbpf trace and another ctbpf process (PID; its stderr in
# ERR_FILE) at the same instant, so both cover the same window; either exiting non-zero fails the test.
stop_trace_and() {
	kill -TERM "$TRACE_PID" "$1"
	wait "$TRACE_PID" || { cat "$WORK/trace.err" >&2; exit 1; }
	TRACE_PID=
	wait "$1" || { cat "$2" >&2; exit 1; }
}

summary() { jq -c "$1" <<<"$SUMMARY"; }

# expect NAME ACTUAL EXPECTED: equal, not close.
expect() {
	if [ "$2" = "$3" ]; then
		echo "ok   $1 = $2"
	else
		echo "FAIL $1 = $2, expected $3"
		FAILED=1
	fi
}

# expect_global KEY EXPECTED: a machine-wide count in the summary (allocs, inserts, drops...). In a
# guest nothing else runs: equal. On a shared host every other netns adds its own traffic: at least
# EXPECTED, and the test netns's own by_netns row (expect_netns) is held exactly.
expect_global() {
	if in_guest; then
		expect "$1" "$(summary ".$1")" "$2"
	else
		expect "$1 >= $2 (a shared host: other netns count too)" "$(summary ".$1 >= $2")" true
	fi
}

# expect_netns KEY EXPECTED: the test netns's by_netns row (inserts, destroys), exact on any kernel.
expect_netns() {
	expect "by_netns[$NS].$1" "$(summary "[.by_netns[]? | select(.name == \"$NS\") | .$1][0]")" "$2"
}

# The kernel's own counters, for the test netns.
ct_count() { in_ns conntrack -C; }
# ct_stat FIELD: summed over the per-CPU lines; whole field names only ("drop" is not "early_drop").
# Fails naming the field when the kernel has no such counter (chaintoolong before 5.15).
ct_stat() {
	local lines
	lines=$(in_ns conntrack -S)
	grep -qE "(^|[[:space:]])$1=[0-9]+" <<<"$lines" || { echo "e2e: conntrack -S has no $1 counter" >&2; return 1; }
	grep -oE "(^|[[:space:]])$1=[0-9]+" <<<"$lines" | cut -d= -f2 | awk '{s+=$1} END {print s+0}'
}

# kernel_counts_chaintoolong: the kernel has the chain limit and its counter (5.15, commit
# d7e7747ac5c2); its own conntrack -S says so.
kernel_counts_chaintoolong() { in_ns conntrack -S | grep -qE "(^|[[:space:]])chaintoolong="; }

# ct_stat_or_null FIELD: ct_stat FIELD, or null where the kernel predates that counter: chaintoolong
# before 5.15 (commit d7e7747ac5c2). Any other missing counter still fails.
ct_stat_or_null() {
	if [ "$1" = chaintoolong ] && ! kernel_counts_chaintoolong; then echo null; else ct_stat "$1"; fi
}

# ct_stats_read ARRAY FIELD...: ARRAY[FIELD] = ct_stat_or_null FIELD, for each FIELD (ARRAY: declare -A).
ct_stats_read() {
	local -n _ct_to=$1
	local f
	shift
	for f; do _ct_to[$f]=$(ct_stat_or_null "$f"); done
}

# ct_stats_since ARRAY BEFORE FIELD...: ARRAY[FIELD] = the growth of FIELD since ct_stats_read BEFORE
# (null where the kernel has no such counter).
ct_stats_since() {
	local -n _ct_to=$1 _ct_from=$2
	local f now
	shift 2
	for f; do
		now=$(ct_stat_or_null "$f")
		if [ "$now" = null ] || [ "${_ct_from[$f]}" = null ]; then _ct_to[$f]=null; else _ct_to[$f]=$((now - _ct_from[$f])); fi
	done
}

# expect_drop CAUSE KERNEL: ctbpf's drops.CAUSE equals KERNEL, the kernel's own delta; where the kernel
# predates the counter (KERNEL null: chaintoolong before 5.15) ctbpf must say null, not a made-up 0.
expect_drop() {
	if [ "$2" = null ]; then
		expect "drops.$1 (no such kernel counter before 5.15)" "$(summary ".drops.$1")" null
	else
		expect "drops.$1" "$(summary ".drops.$1")" "$2"
	fi
}

# held PID KIND: the KIND ids (prog, link, map) that PID's file descriptors refer to, one a line.
held() { cat /proc/"$1"/fdinfo/* 2>/dev/null | sed -n "s/^$2_id:[[:space:]]*//p" | sort -un; }

# alive KIND IDS...: those of IDS that the kernel still has, one a line (one bpftool run: it is slow
# under the VM's emulation).
alive() {
	local kind=$1
	shift
	"${BPFTOOL:-/usr/sbin/bpftool}" "$kind" show --json | jq -r --arg ids "$*" '($ids | split(" ") | map(tonumber)) as $held
		| .[] | select(.id as $id | $held | index($id)) | .id'
}

# kernel_has_netfilter_drop_reason: kfree_skb reports SKB_DROP_REASON_NETFILTER_DROP (upstream 5.18,
# commit 2df3041ba3be "net: netfilter: use kfree_drop_reason() for NF_DROP"; stable series may carry
# it), read from the name in the kernel's own BTF, not from ctbpf.
kernel_has_netfilter_drop_reason() { grep -qa SKB_DROP_REASON_NETFILTER_DROP /sys/kernel/btf/vmlinux; }

# expect_netfilter_drops EXPECTED: equal where the kernel reports netfilter drops; before that ctbpf
# cannot tell them from other frees, so netfilter_drops must be null, never a made-up number.
expect_netfilter_drops() {
	if kernel_has_netfilter_drop_reason; then
		expect_global netfilter_drops "$1"
	else
		expect "netfilter_drops (no NETFILTER_DROP drop reason before 5.18)" "$(summary .netfilter_drops)" null
	fi
}

# expect_nat_drops_none MODE: a scenario whose drops are of entries that are not NAT'd, with no UDP port
# 53: no nat_blackholes row and no dns_races row (of the test netns; of any netns in a guest), or null
# where the kernel cannot say: kfree_skb has a drop reason from 5.17 (the enum in the kernel's own BTF),
# and dns_races needs the conntrack probes.
expect_nat_drops_none() {
	local mine="select(.netns == $(ns_inode))"
	if ! grep -qa SKB_DROP_REASON_NOT_SPECIFIED /sys/kernel/btf/vmlinux; then
		expect "nat_blackholes (no drop reason before 5.17)" "$(summary .nat_blackholes)" null
	elif in_guest; then
		expect "nat_blackholes (drops of entries not NAT'd)" "$(summary .nat_blackholes)" '[]'
	else
		expect "nat_blackholes of the test netns" "$(summary "[.nat_blackholes[] | $mine] | length")" 0
	fi
	if [ "$1" = tracepoint ]; then
		expect "dns_races (no conntrack probes)" "$(summary .dns_races)" null
	elif in_guest; then
		expect "dns_races (no port 53)" "$(summary .dns_races)" '[]'
	else
		expect "dns_races of the test netns" "$(summary "[.dns_races[] | $mine] | length")" 0
	fi
}

nft_drop_packets() {
	in_ns nft -j list chain inet ctbpf_e2e in |
		jq '[.nftables[] | select(.rule) | .rule.expr[] | select(.counter) | .counter.packets] | add'
}

finish() {
	if [ "$FAILED" -ne 0 ]; then
		echo "--- ctbpf stderr" >&2
		cat "$WORK/trace.err" >&2 || true
	fi
	exit "$FAILED"
}

# ---- a real Prometheus (serve_*.sh) ----------------------------------------------------------------
PROM_NS=

# start_prometheus NETNS CONFIG: Debian's Prometheus in NETNS on 127.0.0.1:9090, its data in
# $WORK/tsdb, killed on exit; returns once it is ready (at most 60 s). Then prom_query asks it.
start_prometheus() {
	PROM_NS=$1
	ip netns exec "$1" prometheus --config.file="$2" --storage.tsdb.path="$WORK/tsdb" \
		--web.listen-address=127.0.0.1:9090 --log.level=warn &
	BG_PIDS+=($!)
	for _ in $(seq 120); do
		ip netns exec "$1" curl -sf http://127.0.0.1:9090/-/ready >/dev/null 2>&1 && return 0
		sleep 0.5
	done
}

# prom_query PROMQL: the value of a one-element instant vector, or "none".
prom_query() {
	ip netns exec "$PROM_NS" curl -sf --get http://127.0.0.1:9090/api/v1/query --data-urlencode "query=$1" |
		jq -r '.data.result[0].value[1] // "none"'
}

# ---- ctbpf doctor (doctor_*.sh) --------------------------------------------------------------------
DOCTOR=

# start_doctor MODE [ctbpf doctor options...]: `ctbpf doctor --json` in the test netns, in the
# background, its window open until stop_doctor (-d is only a bound); returns once it is attached.
start_doctor() {
	local mode=$1
	shift
	skip_unless_kernel_allows "$mode"
	rm -f "$WORK/doctor.ready"  # a second window in the same test must not find the first one's
	# ip netns exec execs ctbpf in place: $! is ctbpf itself. stderr goes where finish() looks.
	ip netns exec "$NS" "$CTBPF_BIN" doctor --json -d 600 --mode "$mode" --ready-file "$WORK/doctor.ready" "$@" \
		>"$WORK/doctor.out" 2>"$WORK/trace.err" &
	TRACE_PID=$!
	wait_file "$WORK/doctor.ready" "$TRACE_PID" "ctbpf doctor"
	log "ctbpf doctor ready in $(cat "$WORK/doctor.ready") mode"
}

# stop_doctor: SIGTERM closes the window; checks the exit code and that stdout is one doctor object.
stop_doctor() {
	kill -TERM "$TRACE_PID"
	local rc=0
	wait "$TRACE_PID" || rc=$?
	TRACE_PID=
	if [ "$rc" -ne 0 ]; then
		echo "e2e: ctbpf doctor exited with $rc:" >&2
		cat "$WORK/trace.err" >&2
		exit 1
	fi
	DOCTOR=$(cat "$WORK/doctor.out")
	[ "$(jq -r .type <<<"$DOCTOR")" = doctor ] || { echo "e2e: not a doctor object: $DOCTOR" >&2; exit 1; }
	log "doctor findings: $(jq -c '[.findings[] | [.severity, .id, .title]]' <<<"$DOCTOR")"
}

# doctor FILTER: jq over the doctor object. finding ID FILTER: jq over one finding ("null" if absent).
doctor() { jq -c "$1" <<<"$DOCTOR"; }
finding() { jq -c --arg id "$1" "[.findings[] | select(.id == \$id)][0] | $2" <<<"$DOCTOR"; }

# slab_object_size SOURCE: the nf_conntrack slab object size, read the way doctor says it read it.
slab_object_size() {
	case "$1" in
	/proc/slabinfo) awk '$1 == "nf_conntrack" { print $4 }' /proc/slabinfo ;;
	*) cat "$1" ;;
	esac
}

# next_pow2 N: the smallest power of two >= N.
next_pow2() {
	local p=1
	while [ "$p" -lt "$1" ]; do p=$((p * 2)); done
	echo "$p"
}
