#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# doctor_idle.sh MODE [K] [S] [W]: idle time is the time since an entry's last packet, not its age.
# K TCP connections in the test netns, opened, then after W seconds one byte on each (their last
# packets: the byte and its ACK), then left idle for S seconds; `ctbpf doctor` dumps the table at the
# end of its window. Its ESTABLISHED idle count must equal `conntrack -L`'s ESTABLISHED entries in the
# netns (and K), and every idle value (exact min and max) must lie in [S, the time from the first byte
# to doctor's exit], measured here: below the connections' age (W + S and more), so ages would fail.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}
k=${2:-40}
s=${3:-3}
w=${4:-10}
port=9000 # TCP: outside the nft input chain's UDP drop range

now() { date +%s.%N; }

load_modules
make_netns
in_ns_bg "$CTBPF_FLOWGEN" tcp-listen --addr 127.0.0.1 --port "$port" --ready "$WORK/listen.ready"
wait_file "$WORK/listen.ready" "${BG_PIDS[-1]}" "flowgen tcp-listen"
start_doctor "$mode"

# bash's /dev/tcp keeps the sockets in one process that can write on them later (flowgen's tcp-hold
# cannot). The listener never reads: a byte is ACKed by the kernel and nothing follows it.
in_ns_bg bash -c '
	k=$1 port=$2 w=$3 out=$4
	fds=()
	for ((i = 0; i < k; i++)); do
		exec {fd}<>"/dev/tcp/127.0.0.1/$port" || exit 1
		fds+=("$fd")
	done
	sleep "$w"
	date +%s.%N >"$out.start"
	for fd in "${fds[@]}"; do printf x >&"$fd" || exit 1; done
	date +%s.%N >"$out.tmp" && mv "$out.tmp" "$out"
	while :; do sleep 1; done' idle "$k" "$port" "$w" "$WORK/data"
wait_file "$WORK/data" "${BG_PIDS[-1]}" "the connections' writer"
data_start=$(cat "$WORK/data.start")
data_done=$(cat "$WORK/data")
# S seconds idle, plus the longest delayed ACK (TCP_DELACK_MAX, 200 ms) that may follow a byte.
sleep "$(awk -v d="$data_done" -v n="$(now)" -v s="$s" 'BEGIN { t = d + s + 0.2 - n; print (t > 0 ? t : 0) }')"

established=$(in_ns conntrack -L -p tcp --state ESTABLISHED 2>/dev/null | wc -l)
stop_doctor
t_end=$(now)
# Upper bound: from before the first byte to after doctor's dump, plus a jiffy (the kernel's clock,
# HZ >= 100), rounded up: ctnetlink rounds the time left down to a second, so doctor's idle is the true
# idle rounded up.
upper_s=$(awk -v a="$data_start" -v b="$t_end" 'BEGIN { x = b - a + 0.01; c = int(x); if (c < x) c++; print c }')
age_s=$(awk -v a="$data_start" -v w="$w" -v s="$s" 'BEGIN { print w + s }')
log "K $k, S $s s, W $w s; conntrack -L ESTABLISHED: $established; idle bound [$s, $upper_s] s (ages over $age_s s)"

idle='.summary.idle_ms.by_tcp_state.ESTABLISHED'
log "doctor idle: $(doctor .summary.idle_ms)"
expect "conntrack -L ESTABLISHED = connections opened" "$established" "$k"
expect "doctor ESTABLISHED idle count = conntrack -L ESTABLISHED" "$(doctor "$idle.count")" "$established"
expect "doctor tcp idle count" "$(doctor .summary.idle_ms.by_proto.tcp.count)" "$established"
expect "entries dumped" "$(doctor .summary.idle_ms.entries)" "$established"
expect "entries not estimated" "$(doctor '[.summary.idle_ms.not_estimated[]] | add')" 0
expect "idle clamped to 0" "$(doctor .summary.idle_ms.clamped_to_zero)" 0
expect "min idle >= ${s} s" "$(doctor "$idle.min >= $s * 1000")" true
expect "max idle <= ${upper_s} s (measured bound)" "$(doctor "$idle.max <= $upper_s * 1000")" true
expect "the bound is below the connections' age (the test tells idle from age)" \
	"$(awk -v u="$upper_s" -v a="$age_s" 'BEGIN { print (u < a) ? "true" : "false" }')" true
# The timeout finding carries the same numbers (the 5-day default is far beyond a 3 h proposal).
expect "tcp_timeout_established established_live" "$(finding tcp_timeout_established .evidence.established_live)" \
	"$established"
expect "tcp_timeout_established idle max" "$(finding tcp_timeout_established .evidence.established_idle_max_ms)" \
	"$(doctor "$idle.max")"
expect "idle not listed as unmeasured" "$(doctor '[.unmeasured[].what | select(startswith("idle"))] | length')" 0
finish
