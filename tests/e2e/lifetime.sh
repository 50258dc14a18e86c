#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# lifetime.sh MODE N: N UDP flows live a few seconds, then `conntrack -F` ends them all. The test
# brackets each life with its own clocks (shortest: end of creation to start of flush; longest: start
# of creation to end of flush): destroys = N, lifetime count = N, and the p50 lifetime is the upper
# bound of the log2 bucket that holds both brackets.
# The lives must not straddle a bucket bound, however slow the guest (the 5.10 guest under TCG on a
# loaded machine took 6-11 s for what takes 1 s when it is idle): the flood is timed, and the flows
# live from the start of a bucket [2^(k-1), 2^k) at least 4096 ms long whose first half leaves room for
# twice the flood and the flush (taken to cost what the flood did) plus 1 s for the sleep's overshoot.
# Then the sample: with --lifetime-sample 8, N more flows and their flush give lifetimes to about N/8
# of them (the kernel side decides from the tuple and each CPU's insert count): within 5 standard
# deviations of N/8, which only a broken sample (none, all, or a skewed hash) falls outside.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode} n=${2:-1000}

# Milliseconds from bash's own clock: no fork between the events the brackets time.
now_ms() { local us=${EPOCHREALTIME/./}; echo $((us / 1000)); }
# Upper bound of the log2 bucket holding $1 ms (slots.h: slot k holds [2^(k-1), 2^k - 1]).
bucket_le() { local v=$1 le=0; while [ "$le" -lt "$v" ]; do le=$((le * 2 + 1)); done; echo "$le"; }

load_modules
make_netns
start_trace "$mode" --lifetime-sample 1
t0=$(now_ms)
udp_flood 20000 "$n" >/dev/null
t1=$(now_ms)
flood=$((t1 - t0))
# The bucket's lower bound: the lives start there and have its first half to end in.
low=4096
while [ "$low" -lt $((4 * flood + 1000)) ]; do low=$((low * 2)); done
log "flood took $flood ms: the flows live from $low ms"
wait_ms=$((t1 + low - $(now_ms)))
sleep "$((wait_ms / 1000)).$(printf %03d $((wait_ms % 1000)))"
t2=$(now_ms)
in_ns conntrack -F 2>/dev/null
t3=$(now_ms)
sleep 0.5
stop_trace TERM

shortest=$((t2 - t1)) longest=$((t3 - t0))
log "lives between $shortest and $longest ms (flush $((t3 - t2)) ms)"
le=$(bucket_le "$shortest")
if [ "$(bucket_le "$longest")" != "$le" ]; then
	echo "FAIL the lives ($shortest..$longest ms) straddle a bucket bound: the flush took longer than the budget"
	FAILED=1
fi
expect destroys "$(summary .destroys)" "$n"
expect "lifetime_ms.count" "$(summary .lifetime_ms.count)" "$n"
expect "lifetime_ms.by_proto.udp.count" "$(summary .lifetime_ms.by_proto.udp.count)" "$n"
expect "lifetime_ms.p50" "$(summary .lifetime_ms.p50)" "$le"
expect "lifetime_ms.untracked" "$(summary .lifetime_ms.untracked)" 0

start_trace "$mode" --lifetime-sample 8
udp_flood 30000 "$n" >/dev/null
in_ns conntrack -F 2>/dev/null
sleep 0.5
stop_trace TERM
sampled=$(summary .lifetime_ms.count)
# Binomial(n, 1/8): sd = sqrt(n * 7/64); bounds in integer arithmetic.
sd=$(awk -v n="$n" 'BEGIN { printf "%d", sqrt(n * 7 / 64) + 1 }')
low=$((n / 8 - 5 * sd)) high=$((n / 8 + 5 * sd))
expect destroys "$(summary .destroys)" "$n"
expect "lifetime_ms.sampled_one_in" "$(summary .lifetime_ms.sampled_one_in)" 8
if [ "$sampled" -ge "$low" ] && [ "$sampled" -le "$high" ]; then
	echo "ok   lifetime_ms.count = $sampled, within $low..$high (1 in 8 of $n)"
else
	echo "FAIL lifetime_ms.count = $sampled, expected $low..$high (1 in 8 of $n)"
	FAILED=1
fi
finish
