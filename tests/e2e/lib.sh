# Shared by the e2e scenarios (sourced, not run). A scenario makes its own netns and rules, runs the
# real ctbpf binary, makes a known amount of traffic on loopback, and compares ctbpf's JSON summary
# with the kernel's own counters. Everything it creates is removed on exit.
set -euo pipefail

: "${CTBPF_BIN:?set CTBPF_BIN to the ctbpf binary}"
: "${CTBPF_FLOWGEN:?set CTBPF_FLOWGEN to the flowgen binary}"
command -v jq >/dev/null || { echo "e2e: jq is missing (apt-get install jq)" >&2; exit 1; }

NS=ctbpf-e2e-$$
WORK=$(mktemp -d)
TRACE_PID=
FAILED=0
SUMMARY=

cleanup() {
	if [ -n "$TRACE_PID" ] && kill -0 "$TRACE_PID" 2>/dev/null; then kill -KILL "$TRACE_PID" || true; fi
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "[$(date +%T)] $*" >&2; }

# On kernels where conntrack and friends are modules (the VM), load them; built in elsewhere.
load_modules() {
	local m
	for m in nf_conntrack nf_tables nft_ct nf_conntrack_netlink veth; do
		[ -d "/sys/module/$m" ] || modprobe "$m" 2>/dev/null || true
	done
}

# A netns whose output chain needs conntrack (so it tracks at all) and whose input chain drops the
# test's UDP ports with a counter: no socket answers, no ICMP, one entry per datagram.
make_netns() {
	ip netns add "$NS"
	ip -n "$NS" link set lo up
	ip netns exec "$NS" nft -f - <<-'NFT'
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

# start_trace MODE [ctbpf trace options...]: ctbpf runs inside the test netns (its ctnetlink stats are
# that netns's); its BPF programs see every netns.
start_trace() {
	local mode=$1
	shift
	# ip netns exec execs ctbpf in place (a shell function here would fork): $! is ctbpf itself.
	ip netns exec "$NS" "$CTBPF_BIN" trace --json --mode "$mode" --ready-file "$WORK/ready" "$@" \
		>"$WORK/trace.out" 2>"$WORK/trace.err" &
	TRACE_PID=$!
	local waited=0
	while [ ! -e "$WORK/ready" ]; do
		if ! kill -0 "$TRACE_PID" 2>/dev/null; then
			echo "e2e: ctbpf exited before it was ready:" >&2
			cat "$WORK/trace.err" >&2
			exit 1
		fi
		sleep 0.2
		waited=$((waited + 1))
		[ "$waited" -lt 600 ] || { echo "e2e: ctbpf not ready after 120 s" >&2; exit 1; }
	done
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

# The kernel's own counters, for the test netns.
ct_count() { in_ns conntrack -C; }
ct_stat() { in_ns conntrack -S | grep -o "$1=[0-9]*" | cut -d= -f2 | awk '{s+=$1} END {print s+0}'; }
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
