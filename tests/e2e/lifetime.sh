#!/usr/bin/env bash
# lifetime.sh MODE N SECONDS: N UDP flows live SECONDS, then `conntrack -F` ends them all. The test
# brackets each life with its own clocks (shortest: end of creation to start of flush; longest: start
# of creation to end of flush): destroys = N, lifetime count = N, and the p50 lifetime is the upper
# bound of the log2 bucket that holds both brackets.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode} n=${2:-1000} life=${3:-4.6}

now_ms() { date +%s%3N; }
# Upper bound of the log2 bucket holding $1 ms (slots.h: slot k holds [2^(k-1), 2^k - 1]).
bucket_le() { local v=$1 le=0; while [ "$le" -lt "$v" ]; do le=$((le * 2 + 1)); done; echo "$le"; }

load_modules
make_netns
start_trace "$mode" --lifetime-sample 1
t0=$(now_ms)
udp_flood 20000 "$n" >/dev/null
t1=$(now_ms)
sleep "$life"
t2=$(now_ms)
in_ns conntrack -F 2>/dev/null
t3=$(now_ms)
sleep 0.5
stop_trace TERM

shortest=$((t2 - t1)) longest=$((t3 - t0))
log "lives between $shortest and $longest ms"
le=$(bucket_le "$shortest")
if [ "$(bucket_le "$longest")" != "$le" ]; then
	echo "FAIL the lives ($shortest..$longest ms) straddle a bucket bound: pick another SECONDS"
	FAILED=1
fi
expect destroys "$(summary .destroys)" "$n"
expect "lifetime_ms.count" "$(summary .lifetime_ms.count)" "$n"
expect "lifetime_ms.by_proto.udp.count" "$(summary .lifetime_ms.by_proto.udp.count)" "$n"
expect "lifetime_ms.p50" "$(summary .lifetime_ms.p50)" "$le"
expect "lifetime_ms.untracked" "$(summary .lifetime_ms.untracked)" 0
finish
