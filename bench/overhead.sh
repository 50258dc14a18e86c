#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# overhead.sh [ROUNDS] [FLOWS] [CONFIG...]: the new-flow rate of a UDP flood (flowgen, one process,
# new conntrack entry per datagram) with no tracer and under each CONFIG, interleaved round by round
# (rotated each round) so drift hits all alike; prints median rates and the median per-round ratio to
# the baseline.
# A CONFIG is a ctbpf command and its arguments joined by commas, e.g. "trace,--mode,fentry",
# "trace,--mode,kprobe,--events,all" or "serve,--mode,fentry"; or "floor": bpftrace with EMPTY programs
# on the points ctbpf's fentry family hooks per new flow of this flood (fexit on __nf_conntrack_confirm;
# the kfree_skb tracepoint, as the flood's datagrams are dropped and bpftrace 0.17 has no raw
# tracepoints): what the attach mechanism alone costs, the least a tracer of these points can cost; or
# "oneliner": the peer an SRE
# would reach for first, bpftrace counting inserts (`kretprobe:__nf_conntrack_confirm { @n = count(); }`),
# the cheapest useful tracer of conntrack there is. Also printed per CONFIG: the tracer's
# peak RSS (VmHWM: start-up, while libbpf parses the kernel's BTF), its RSS once the flood is done
# (VmRSS: what it holds while it runs) and its user+system CPU seconds per 100k flows (medians).
# With CTBPF_BENCH_LIVE_ENTRIES=N, N live entries (unreplied UDP flows, one-hour timeout) sit in a
# netns of their own through every round, in issue 18's big table (nf_conntrack_max 2097152, 262144
# buckets; restored at exit): the flood's inserts then meet the chains a big table has.
# With CTBPF_BENCH_FLOOD=blackhole the flood is instead one UDP flow whose every datagram is DNAT'd and
# then dropped (the stale entry to a dead backend, issue 32): no new flow after the first, so the rate
# is what a tracer costs per dropped NAT'd packet (ctbpf's kfree_skb program counts it against its flow).
# Run it where the attach families work, e.g.: tests/vm/vmrun -- bench/overhead.sh 7 20000 --mode,fentry
# (a million live entries need ~1 GB more guest memory: vmrun --mem 4096).
set -euo pipefail
: "${CTBPF_BIN:?set CTBPF_BIN to the ctbpf binary}" "${CTBPF_FLOWGEN:?set CTBPF_FLOWGEN to flowgen}"
rounds=${1:-7} flows=${2:-20000}
shift 2 || true
configs=("none" "${@:-trace,--mode,fentry}")

NS=ctbpf-bench-$$
FILL=ctbpf-bench-fill-$$
WORK=$(mktemp -d)
source "$(dirname "$0")/lib.sh"
trap 'pkill -f "ready-file $WORK" 2>/dev/null || true; ip netns del $NS 2>/dev/null || true
	ip netns del $FILL 2>/dev/null || true; big_table_restore; rm -rf "$WORK"' EXIT
flood_netns
if [ "${CTBPF_BENCH_FLOOD:-}" = blackhole ]; then
	ip netns exec "$NS" nft -f - <<'NFT'
table ip bench_nat {
	chain out {
		type nat hook output priority -100;
		udp dport 20000 dnat to 127.0.0.1:20001
	}
}
NFT
fi
if [ -n "${CTBPF_BENCH_LIVE_ENTRIES:-}" ]; then
	big_table_sizes
	NS=$FILL flood_netns
	ip netns exec "$FILL" sh -c 'echo 3600 >/proc/sys/net/netfilter/nf_conntrack_udp_timeout'
	fill_to "$FILL" "$CTBPF_BENCH_LIVE_ENTRIES"
fi

# flood I: one flood under configs[I]; appends flows/s, and the tracer's peak and current RSS (kB)
# and CPU seconds per 100k flows, to $WORK/{rates,rss,now,cpu}.I.
flood() {
	local i=$1 config=${configs[$1]} pid= rate
	ip netns exec "$NS" conntrack -F >/dev/null 2>&1 || true
	if [ "$config" = floor ] || [ "$config" = oneliner ]; then
		if [ "$config" = floor ]; then
			bpftrace -e 'kretfunc:nf_conntrack:__nf_conntrack_confirm {} tracepoint:skb:kfree_skb {}' \
				>"$WORK/bt.out" 2>&1 &
		else
			bpftrace -e 'kretprobe:__nf_conntrack_confirm { @n = count(); }' >"$WORK/bt.out" 2>&1 &
		fi
		pid=$!
		# bpftrace prints this just before it attaches; attaching two trampolines takes well under 2 s.
		until grep -q Attaching "$WORK/bt.out"; do
			kill -0 $pid 2>/dev/null || { cat "$WORK/bt.out" >&2; exit 1; }
			sleep 0.1
		done
		sleep 2
	elif [ "$config" != none ]; then
		start_ctbpf "$config" 9649
		read -r -a before <<<"$(cut -d' ' -f14,15 /proc/$pid/stat)"
	fi
	# Attaching and detaching trampolines leaves RCU-tasks and freeing work behind on the other vCPU:
	# let it finish before the flood (the previous config's teardown included), whatever the config.
	sleep 1
	local gen=(udp --port 20000 --count "$flows")
	[ "${CTBPF_BENCH_FLOOD:-}" != blackhole ] ||
		gen=(udp-stream --dst 127.0.0.1 --port 20000 --sport 40000 --rate 1000000000 --count "$flows")
	rate=$(ip netns exec "$NS" "$CTBPF_FLOWGEN" "${gen[@]}" 2>&1 >/dev/null | sed -E 's/.*\(([0-9]+)\/s\).*/\1/')
	echo "$rate" >>"$WORK/rates.$i"
	if [ "$config" = floor ] || [ "$config" = oneliner ]; then
		stop_tracer $pid
	elif [ -n "$pid" ]; then
		sleep 0.5 # a last interval, so the tracer's own work for this flood is counted
		read -r -a after <<<"$(cut -d' ' -f14,15 /proc/$pid/stat)"
		awk '/VmHWM/ {print $2}' /proc/$pid/status >>"$WORK/rss.$i"
		awk '/VmRSS/ {print $2}' /proc/$pid/status >>"$WORK/now.$i"
		echo "(${after[0]} + ${after[1]} - ${before[0]} - ${before[1]}) / $(getconf CLK_TCK) * 100000 / $flows" |
			bc -l >>"$WORK/cpu.$i"
		kill -TERM $pid
		wait $pid || true
	fi
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# Each round starts one config later (A B C, B C A, C A B, ...): no config always follows the same one,
# so the teardown of one tracer (trampolines, RCU work) does not always land on the same neighbour.
for ((r = 1; r <= rounds; r++)); do
	for ((k = 0; k < ${#configs[@]}; k++)); do flood $(((k + r) % ${#configs[@]})); done
done

# A config's ratio is the median over rounds of its rate over the same round's baseline: TCG timing
# drifts between rounds, and a ratio within one round cancels that drift. min-max shows the spread.
base=$(median <"$WORK/rates.0")
ratios() { paste "$WORK/rates.$1" "$WORK/rates.${2:-0}" | awk '{print $1 / $2}'; }
# With the peer in the run, each config's rate over the peer's in the same round (median): the
# comparison issue 18 asks for, paired within rounds like the baseline ratio, not a difference of two
# medians whose spreads overlap.
peer=
for i in "${!configs[@]}"; do [ "${configs[$i]}" != oneliner ] || peer=$i; done
what="new UDP flows"
[ "${CTBPF_BENCH_FLOOD:-}" != blackhole ] || what="datagrams of one DNAT'd UDP flow, each dropped after the NAT"
echo "kernel $(uname -r), $(nproc) CPUs, $rounds interleaved rounds of $flows $what${CTBPF_BENCH_LIVE_ENTRIES:+, with $CTBPF_BENCH_LIVE_ENTRIES live entries in $BIG_BUCKETS buckets (filled in $(printf %.0f "$(cat "$WORK/fill_s")") s)}"
printf '| %-44s | %14s | %6s | %13s | %8s | %13s | %14s | %17s |\n' "tracer" "median flows/s" "ratio" "round ratios" \
	"vs peer" "peak RSS (MB)" "RSS after (MB)" "CPU s / 100k flows"
echo "|----------------------------------------------|----------------|--------|---------------|----------|---------------|----------------|-------------------|"
for i in "${!configs[@]}"; do
	m=$(median <"$WORK/rates.$i")
	name=${configs[$i]//,/ }
	rss=- now=- cpu=-
	if [ "$name" = none ]; then
		name="no tracer"
	elif [ "$name" = floor ]; then
		name="floor: bpftrace, the same hooks, empty"
	elif [ "$name" = oneliner ]; then
		name="peer: bpftrace one-liner counting inserts"
	else
		name="ctbpf $name"
		rss=$(printf '%.1f' "$(echo "$(median <"$WORK/rss.$i") / 1024" | bc -l)")
		now=$(printf '%.1f' "$(echo "$(median <"$WORK/now.$i") / 1024" | bc -l)")
		cpu=$(printf '%.3f' "$(median <"$WORK/cpu.$i")")
	fi
	spread=$(ratios "$i" | sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.2f-%.2f", lo, hi}')
	vs_peer=-
	[ -z "$peer" ] || vs_peer=$(printf '%.3f' "$(ratios "$i" "$peer" | median)")
	printf '| %-44s | %14.0f | %6.3f | %13s | %8s | %13s | %14s | %17s |\n' "$name" "$m" "$(ratios "$i" | median)" "$spread" \
		"$vs_peer" "$rss" "$now" "$cpu"
done
