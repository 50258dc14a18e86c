#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# profile.sh [FLOWS] [CONFIG...]: where a tracer's kernel-side cost goes. For each CONFIG (as in
# overhead.sh, e.g. "serve,--mode,fentry"), the kernel's own BPF statistics (kernel.bpf_stats_enabled:
# run count and run time of every program) over one flood of FLOWS new UDP flows, then over the flush
# that destroys them: runs per flow and nanoseconds per run of each ctbpf program. Run time is the
# program body only; what a run costs around it (trampoline or kprobe, and the stats themselves) is the
# rest of the flood-rate loss that overhead.sh measures.
# Run it where the attach families work, e.g.: tests/vm/vmrun -- bench/profile.sh 20000 serve,--mode,fentry
set -euo pipefail
: "${CTBPF_BIN:?set CTBPF_BIN to the ctbpf binary}" "${CTBPF_FLOWGEN:?set CTBPF_FLOWGEN to flowgen}"
flows=${1:-20000}
shift || true
configs=("${@:-serve,--mode,fentry}")

NS=ctbpf-prof-$$
WORK=$(mktemp -d)
source "$(dirname "$0")/lib.sh"
profile_setup

# table TITLE BEFORE AFTER: per program, runs and ns per flow between two stats files (the guest has
# no /dev/fd, so no process substitution).
table() {
	echo "$1"
	echo
	echo "| program | runs per flow | ns per run | ns per flow |"
	echo "|---|---:|---:|---:|"
	join "$2" "$3" | awk -v flows="$flows" '{
		runs = $4 - $2; ns = $5 - $3; if (runs == 0) next
		printf "| %s | %.2f | %.0f | %.0f |\n", $1, runs / flows, ns / runs, ns / flows; total += ns / flows }
		END { printf "| **all programs** | | | **%.0f** |\n", total }'
	echo
}

for config in "${configs[@]}"; do
	ip netns exec "$NS" conntrack -F >/dev/null 2>&1 || true
	start_ctbpf "$config" 9648
	stats $pid >"$WORK/s0"
	rate=$(ip netns exec "$NS" "$CTBPF_FLOWGEN" udp --port 20000 --count "$flows" 2>&1 >/dev/null |
		sed -E 's/.*\(([0-9]+)\/s\).*/\1/')
	stats $pid >"$WORK/s1"
	ip netns exec "$NS" conntrack -F >/dev/null 2>&1
	sleep 1 # frees run after an RCU grace period
	stats $pid >"$WORK/s2"
	table "ctbpf ${config//,/ }: $flows new flows ($rate flows/s with stats on)" "$WORK/s0" "$WORK/s1"
	table "ctbpf ${config//,/ }: the flush that destroys them" "$WORK/s1" "$WORK/s2"
	kill -TERM $pid
	wait $pid || true
done
