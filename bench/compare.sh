#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# compare.sh ROUNDS FLOWS BIN_A BIN_B [CONFIG]: two builds of ctbpf, both attached through the same
# floods, each program's body time in each (kernel.bpf_stats_enabled). Under TCG one profile's figure
# moves 2x between identical runs (BENCHMARKS.md), so a change is judged here, in pairs: each round
# floods FLOWS new UDP flows with A and B attached at once (CONFIG, default "serve,--mode,fentry", as
# in overhead.sh), then flushes them; the attach order alternates round by round, as the program a
# trampoline runs second measured up to 30% dearer. Prints each round's ns per run of each program,
# then per program the geometric mean over rounds of B / A.
# Run it where the attach families work, e.g.:
#   tests/vm/vmrun -- bench/compare.sh 10 20000 old/ctbpf build/agent/ctbpf
set -euo pipefail
: "${CTBPF_FLOWGEN:?set CTBPF_FLOWGEN to flowgen}"
rounds=${1:?rounds} flows=${2:?flows} bin_a=${3:?binary A} bin_b=${4:?binary B} config=${5:-serve,--mode,fentry}

NS=ctbpf-cmp-$$
WORK=$(mktemp -d)
source "$(dirname "$0")/lib.sh"
profile_setup

# per_run ROUND BUILD PHASE BEFORE AFTER: "round build phase program ns_per_run", one line a program.
per_run() {
	join "$4" "$5" | awk -v r="$1" -v b="$2" -v p="$3" '$4 > $2 { printf "%d %s %s %s %.0f\n", r, b, p, $1, ($5 - $3) / ($4 - $2) }'
}

for round in $(seq "$rounds"); do
	ip netns exec "$NS" conntrack -F >/dev/null 2>&1 || true
	if ((round % 2)); then order=(a b); else order=(b a); fi
	for build in "${order[@]}"; do
		if [ "$build" = a ]; then CTBPF_BIN=$bin_a start_ctbpf "$config" 9601; pid_a=$pid
		else CTBPF_BIN=$bin_b start_ctbpf "$config" 9602; pid_b=$pid; fi
	done
	for build in a b; do eval "stats \$pid_$build" >"$WORK/$build.0"; done
	ip netns exec "$NS" "$CTBPF_FLOWGEN" udp --port 20000 --count "$flows" >/dev/null 2>&1
	for build in a b; do eval "stats \$pid_$build" >"$WORK/$build.1"; done
	ip netns exec "$NS" conntrack -F >/dev/null 2>&1
	sleep 1 # frees run after an RCU grace period
	for build in a b; do
		eval "stats \$pid_$build" >"$WORK/$build.2"
		per_run "$round" "$build" flood "$WORK/$build.0" "$WORK/$build.1"
		per_run "$round" "$build" flush "$WORK/$build.1" "$WORK/$build.2"
	done
	stop_tracer "$pid_a"
	stop_tracer "$pid_b"
done >"$WORK/runs"

echo "ns per run, round by round (A attached first in odd rounds):"
sort -k3,3 -k4,4 -k1,1n -k2,2 "$WORK/runs"
echo
echo "| program | phase | rounds | A: median ns per run | B: median ns per run | B / A (geometric mean of rounds) |"
echo "|---|---|---:|---:|---:|---:|"
awk '{ key = $4 " " $3; ns[key, $1, $2] = $5; keys[key] = 1; if ($1 > last) last = $1 }
	function median(arr, n,   i, j, t) {
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
		return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
	}
	END {
		for (key in keys) {
			n = 0; logsum = 0; delete a; delete b
			for (r = 1; r <= last; r++) {
				if (!((key, r, "a") in ns) || !((key, r, "b") in ns) || ns[key, r, "a"] == 0) continue
				n++; a[n] = ns[key, r, "a"]; b[n] = ns[key, r, "b"]; logsum += log(b[n] / a[n])
			}
			if (n == 0) continue
			split(key, k, " ")
			printf "| %s | %s | %d | %.0f | %.0f | %.3f |\n", k[1], k[2], n, median(a, n), median(b, n), exp(logsum / n)
		}
	}' "$WORK/runs" | sort
