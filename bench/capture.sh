#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# capture.sh [FLOWS] [ROUNDS]: under a flood of FLOWS new UDP flows, how many of the kernel's new
# entries each event tool delivers, and what it costs the flood: ctbpf trace --events insert (in the
# fentry mode it picks by itself on 6.1, and in kprobe mode, like for like with bpftrace's kretprobe),
# conntrack -E (ctnetlink events) and an equivalent bpftrace script. Medians over ROUNDS. Run where
# kprobes work: tests/vm/vmrun -- bench/capture.sh
set -euo pipefail
: "${CTBPF_BIN:?}" "${CTBPF_FLOWGEN:?}"
flows=${1:-20000} rounds=${2:-3}
NS=ctbpf-cap-$$
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; ip netns del $NS 2>/dev/null || true; rm -rf "$WORK"' EXIT
source "$(dirname "$0")/lib.sh"
flood_netns
cat >"$WORK/inserts.bt" <<'BT'
kretprobe:__nf_conntrack_confirm /retval == 1/ { printf("insert\n"); }
BT

# run TOOL: one flood under TOOL; appends "received rate" to $WORK/TOOL.
run() {
	local tool=$1 pid= received rate
	ip netns exec "$NS" conntrack -F >/dev/null 2>&1 || true
	rm -f "$WORK/ready" "$WORK/out"
	case $tool in
	none) ;;
	ctbpf-*)
		ip netns exec "$NS" "$CTBPF_BIN" trace --json --mode "${tool#ctbpf-}" --events insert --events-rate 0 \
			--ready-file "$WORK/ready" >"$WORK/out" 2>/dev/null &
		pid=$!
		while [ ! -e "$WORK/ready" ]; do sleep 0.1; done ;;
	conntrack-E)
		ip netns exec "$NS" conntrack -E -e NEW >"$WORK/out" 2>/dev/null &
		pid=$!
		sleep 2 ;;
	bpftrace)
		bpftrace "$WORK/inserts.bt" >"$WORK/out" 2>/dev/null &
		pid=$!
		for _ in $(seq 300); do grep -q Attaching "$WORK/out" 2>/dev/null && break; sleep 0.1; done ;;
	esac
	rate=$(ip netns exec "$NS" "$CTBPF_FLOWGEN" udp --port 20000 --count "$flows" 2>&1 >/dev/null |
		sed -E 's/.*\(([0-9]+)\/s\).*/\1/')
	sleep 2
	[ -n "$pid" ] && stop_tracer $pid
	case $tool in
	none) received=$flows ;;
	ctbpf-*) received=$(grep -c '"type":"event"' "$WORK/out" || true) ;;
	conntrack-E) received=$(grep -c NEW "$WORK/out" || true) ;;
	bpftrace) received=$(grep -c '^insert$' "$WORK/out" || true) ;;
	esac
	echo "$received $rate" >>"$WORK/$tool"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
tools=(none ctbpf-fentry ctbpf-kprobe conntrack-E)
command -v bpftrace >/dev/null && tools+=(bpftrace)
for ((r = 1; r <= rounds; r++)); do for t in "${tools[@]}"; do run "$t"; done; done

base=$(cut -d' ' -f2 "$WORK/none" | median)
echo "kernel $(uname -r), $rounds interleaved rounds of $flows new UDP flows (the kernel inserts $flows)"
printf '| %-42s | %12s | %9s | %14s | %8s |\n' tool "received" "captured" "flood flows/s" "ratio"
echo "|--------------------------------------------|--------------|-----------|----------------|----------|"
for t in "${tools[@]}"; do
	rec=$(cut -d' ' -f1 "$WORK/$t" | median)
	rate=$(cut -d' ' -f2 "$WORK/$t" | median)
	case $t in
	none) name="no tool (baseline)" ;;
	ctbpf-*) name="ctbpf trace --mode ${t#ctbpf-} --events insert" ;;
	conntrack-E) name="conntrack -E -e NEW" ;;
	bpftrace) name="bpftrace kretprobe printf" ;;
	esac
	printf '| %-42s | %12.0f | %8.1f%% | %14.0f | %8.3f |\n' "$name" "$rec" "$(echo "100 * $rec / $flows" | bc -l)" "$rate" "$(echo "$rate / $base" | bc -l)"
done
