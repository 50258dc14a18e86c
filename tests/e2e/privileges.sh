#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# privileges.sh: ctbpf run with fewer capabilities says, one line each, what it cannot do and why,
# and serve exports the same as ctbpf_privilege_missing. Facts of this kernel decide which lines
# are due: a fentry line where nf_conntrack is a module (its BTF object's descriptor needs
# CAP_SYS_ADMIN), a kprobe line where kernel.perf_event_paranoid > 2 (Debian's default 3: then
# perf_event_open() needs CAP_SYS_ADMIN).
#   1. CAP_BPF + CAP_PERFMON only: trace runs (exit 0) in the family those allow here (fentry on a
#      built-in conntrack the kernel lets fentry attach to, else kprobe where the kernel has kprobes
#      and perf_event_paranoid <= 2, else tracepoint: lib.sh kernel_allows's trials), and warns about
#      CAP_NET_ADMIN (ctnetlink statistics: the kernel's drop counters are null) and CAP_SYS_PTRACE.
#   2. (where conntrack is a module) + CAP_SYS_ADMIN + CAP_NET_ADMIN: fentry, no line.
#   3. (in a guest, where kprobes exist: the knob is global) kernel.perf_event_paranoid = 2, CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN:
#      the kprobe family works without CAP_SYS_ADMIN, inserts = conntrack -C.
source "$(dirname "$0")/lib.sh"
n=500

load_modules
make_netns
module=no
[ -e /sys/module/nf_conntrack/initstate ] && module=yes
paranoid=$(cat /proc/sys/kernel/perf_event_paranoid)
log "nf_conntrack module: $module, perf_event_paranoid: $paranoid"
if [ "$module" = no ] && kernel_allows fentry; then
	family=fentry
elif [ "$paranoid" -le 2 ] && kernel_allows kprobe; then
	family=kprobe
else
	family=tracepoint
fi

# limited CAPS [trace options...]: ctbpf trace in the test netns with only CAPS (setpriv bounding
# set, as root), N flows, then its summary in SUMMARY and its stderr in $WORK/trace.err.
limited() {
	local caps=$1
	shift
	ip netns exec "$NS" setpriv --bounding-set=-all,"$caps" -- "$CTBPF_BIN" trace --json \
		--ready-file "$WORK/ready" "$@" >"$WORK/trace.out" 2>"$WORK/trace.err" &
	TRACE_PID=$!
	wait_file "$WORK/ready" "$TRACE_PID" ctbpf
	rm -f "$WORK/ready"
	read -r _ _ <<<"$(udp_flood 20000 "$n")"
	stop_trace TERM
	log "stderr: $(cat "$WORK/trace.err")"
}
lines() { grep -c "^ctbpf: without $1: $2" "$WORK/trace.err" || true; }

# 1. CAP_BPF and CAP_PERFMON only.
limited +bpf,+perfmon
want_fentry=0 want_kprobe=0
[ "$module" = yes ] && want_fentry=1
[ "$paranoid" -gt 2 ] && want_kprobe=1
expect "1: mode" "$(summary .mode)" "\"$family\""
expect "1: fentry line" "$(lines CAP_SYS_ADMIN 'no fentry family: nf_conntrack is a module')" "$want_fentry"
expect "1: kprobe line" "$(lines CAP_SYS_ADMIN "no kprobe family: kernel.perf_event_paranoid is $paranoid")" "$want_kprobe"
expect "1: CAP_NET_ADMIN line" "$(lines CAP_NET_ADMIN "the kernel's conntrack statistics (ctnetlink) are unreadable")" 1
expect "1: CAP_SYS_PTRACE line" "$(lines CAP_SYS_PTRACE 'namespaces are named only by their ip netns name')" 1
expect "1: lines in all" "$(grep -c '^ctbpf: without ' "$WORK/trace.err")" $((want_fentry + want_kprobe + 2))
# Without ctnetlink, the kernel's own counters are null, never 0.
expect "1: drop causes with a number" "$(summary '[.drops[] | select(. != null)] | length')" 0

# The same facts as metrics, from serve with the same capabilities.
ip netns exec "$NS" setpriv --bounding-set=-all,+bpf,+perfmon -- "$CTBPF_BIN" serve --listen 127.0.0.1:9650 \
	--ready-file "$WORK/serve.ready" 2>"$WORK/serve.err" &
BG_PIDS+=($!)
wait_file "$WORK/serve.ready" "${BG_PIDS[-1]}" "ctbpf serve"
page=$(in_ns curl -sf http://127.0.0.1:9650/metrics)
metric() { grep -c "^ctbpf_privilege_missing{capability=\"$1\",feature=\"$2\"} $3\$" <<<"$page" || true; }
expect "serve: CAP_NET_ADMIN missing" "$(metric CAP_NET_ADMIN kernel_stats 1)" 1
expect "serve: CAP_SYS_PTRACE missing" "$(metric CAP_SYS_PTRACE netns_names 1)" 1
expect "serve: fentry need" "$(metric CAP_SYS_ADMIN fentry 1)" "$want_fentry"
expect "serve: kprobe need" "$(metric CAP_SYS_ADMIN kprobe 1)" "$want_kprobe"
expect "serve: attached" "$(grep -c '^ctbpf_attached 1$' <<<"$page")" 1
expect "serve: start-up lines = trace's" "$(grep '^ctbpf: without ' "$WORK/serve.err" | sort)" \
	"$(grep '^ctbpf: without ' "$WORK/trace.err" | sort)"
kill -TERM "${BG_PIDS[-1]}"

if [ "$module" = yes ] && kernel_allows fentry; then
	# 2. With CAP_SYS_ADMIN (and CAP_NET_ADMIN): fentry, nothing to say but CAP_SYS_PTRACE.
	limited +bpf,+perfmon,+sys_admin,+net_admin
	expect "2: mode" "$(summary .mode)" '"fentry"'
	expect "2: lines" "$(grep '^ctbpf: without ' "$WORK/trace.err" | cut -d: -f2)" " without CAP_SYS_PTRACE"
	expect_global inserts "$n"
fi
if in_guest && [ "$paranoid" -gt 2 ] && [ "$module" = yes ] && kernel_allows kprobe; then
	# 3. Where perf_event_open() is not restricted, kprobes need no CAP_SYS_ADMIN: CO-RE reads module
	# BTF by path. (A global knob: set here, in the VM only, and restored on exit.)
	set_global /proc/sys/kernel/perf_event_paranoid 2
	in_ns conntrack -F 2>/dev/null || true
	limited +bpf,+perfmon,+net_admin
	count=$(ct_count)
	expect "3: mode" "$(summary .mode)" '"kprobe"'
	expect "3: fentry line" "$(lines CAP_SYS_ADMIN 'no fentry family')" 1
	expect "3: kprobe line" "$(lines CAP_SYS_ADMIN 'no kprobe family')" 0
	expect "3: inserts = conntrack -C" "$(summary .inserts)" "$count"
	expect "3: conntrack -C" "$count" "$n"
	restore_globals
fi
finish
