#!/usr/bin/env bash
# overhead.sh [ROUNDS] [FLOWS] [CONFIG...]: the new-flow rate of a UDP flood (flowgen, one process,
# new conntrack entry per datagram) with no tracer and under each CONFIG, interleaved round by round
# (A B C A B C ...) so drift hits all alike; prints medians and the ratio to the baseline.
# A CONFIG is ctbpf trace arguments joined by commas, e.g. "--mode,fentry" or "--mode,kprobe,--events,all".
# Run it where the attach families work, e.g.: tests/vm/vmrun -- bench/overhead.sh 7 20000 --mode,fentry
set -euo pipefail
: "${CTBPF_BIN:?set CTBPF_BIN to the ctbpf binary}" "${CTBPF_FLOWGEN:?set CTBPF_FLOWGEN to flowgen}"
rounds=${1:-7} flows=${2:-20000}
shift 2 || true
configs=("none" "${@:---mode,fentry}")

NS=ctbpf-bench-$$
WORK=$(mktemp -d)
trap 'pkill -f "ready-file $WORK" 2>/dev/null || true; ip netns del $NS 2>/dev/null || true; rm -rf "$WORK"' EXIT
for m in nf_conntrack nf_tables nft_ct nf_conntrack_netlink; do
	[ -d /sys/module/$m ] || modprobe $m 2>/dev/null || true
done
ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" nft -f - <<'NFT'
table inet bench {
	chain out { type filter hook output priority 0; ct state new counter; }
	chain in { type filter hook input priority 0; udp dport 20000-59999 drop; }
}
NFT

# flood CONFIG: one flood under CONFIG; prints flows/s.
flood() {
	local config=$1 pid=
	ip netns exec "$NS" conntrack -F >/dev/null 2>&1 || true
	if [ "$config" != none ]; then
		IFS=, read -r -a args <<<"$config"
		rm -f "$WORK/ready"
		"$CTBPF_BIN" trace --json "${args[@]}" --ready-file "$WORK/ready" >/dev/null 2>"$WORK/err" &
		pid=$!
		while [ ! -e "$WORK/ready" ]; do
			kill -0 $pid 2>/dev/null || { cat "$WORK/err" >&2; exit 1; }
			sleep 0.1
		done
	fi
	ip netns exec "$NS" "$CTBPF_FLOWGEN" udp --port 20000 --count "$flows" 2>&1 >/dev/null |
		sed -E 's/.*\(([0-9]+)\/s\).*/\1/'
	if [ -n "$pid" ]; then kill -TERM $pid; wait $pid || true; fi
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

for ((r = 1; r <= rounds; r++)); do
	for i in "${!configs[@]}"; do flood "${configs[$i]}" >>"$WORK/rates.$i"; done
done

base=$(median <"$WORK/rates.0")
echo "kernel $(uname -r), $(nproc) CPUs, $rounds interleaved rounds of $flows new UDP flows"
printf '| %-40s | %14s | %8s |\n' "tracer" "median flows/s" "ratio"
printf '|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..42})" "$(printf -- '-%.0s' {1..16})" "$(printf -- '-%.0s' {1..10})"
for i in "${!configs[@]}"; do
	m=$(median <"$WORK/rates.$i")
	name=${configs[$i]//,/ }
	[ "$name" = none ] && name="no tracer" || name="ctbpf trace $name"
	printf '| %-40s | %14.0f | %8.3f |\n' "$name" "$m" "$(echo "$m / $base" | bc -l)"
done
