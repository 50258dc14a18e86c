#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# startup.sh [RUNS] [MODE...]: seconds from exec to "every program attached" (the --ready-file) and
# the peak RSS (VmHWM) and the RSS it keeps (VmRSS) 0.3 s later, per attach mode; medians of RUNS.
set -euo pipefail
: "${CTBPF_BIN:?}"
runs=${1:-5}
shift || true
modes=("${@:-fentry kprobe tracepoint}")
[ $# -eq 0 ] && modes=(fentry kprobe tracepoint)
for m in nf_conntrack nf_conntrack_netlink; do [ -d /sys/module/$m ] || modprobe $m 2>/dev/null || true; done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
echo "kernel $(uname -r), median of $runs runs"
printf '| %-28s | %18s | %16s | %16s |\n' command "load+attach (s)" "peak RSS (MB)" "RSS after (MB)"
echo "|------------------------------|--------------------|------------------|------------------|"
# The floor: exec to exit of a ctbpf that loads nothing (dynamic linking, page-ins; in the guest every
# page comes over 9p from the host, which is most of this).
: >"$WORK/t"
for ((i = 0; i < runs; i++)); do
	start=$(date +%s%N)
	"$CTBPF_BIN" --version >/dev/null
	echo "($(date +%s%N) - $start) / 1000000000" | bc -l >>"$WORK/t"
done
printf '| %-28s | %18.3f | %16s | %16s |\n' "ctbpf --version (no BPF)" "$(median <"$WORK/t")" - -
for cmd in trace serve; do
	for mode in "${modes[@]}"; do
		: >"$WORK/t"
		: >"$WORK/rss"
		: >"$WORK/now"
		for ((i = 0; i < runs; i++)); do
			rm -f "$WORK/ready"
			extra=()
			[ $cmd = serve ] && extra=(--listen 127.0.0.1:9648)
			start=$(date +%s%N)
			"$CTBPF_BIN" $cmd --mode "$mode" "${extra[@]}" --ready-file "$WORK/ready" >/dev/null 2>&1 &
			pid=$!
			while [ ! -e "$WORK/ready" ]; do sleep 0.005; done
			echo "($(date +%s%N) - $start) / 1000000000" | bc -l >>"$WORK/t"
			sleep 0.3
			awk '/VmHWM/ {print $2 / 1024}' /proc/$pid/status >>"$WORK/rss"
			awk '/VmRSS/ {print $2 / 1024}' /proc/$pid/status >>"$WORK/now"
			kill -TERM $pid
			wait $pid || true
		done
		printf '| %-28s | %18.3f | %16.1f | %16.1f |\n' "ctbpf $cmd --mode $mode" "$(median <"$WORK/t")" \
			"$(median <"$WORK/rss")" "$(median <"$WORK/now")"
	done
done
# Where the time goes: one run per mode with --verbose, whose last line per family is its phases.
echo
for mode in "${modes[@]}"; do
	"$CTBPF_BIN" -v trace --mode "$mode" -d 1 2>&1 >/dev/null | sed -n 's/^ctbpf: start-up /- trace --mode '"$mode"': /p'
done
