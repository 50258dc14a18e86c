#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# loss.sh MODE N: a one-page ring buffer with --events insert under a flood of N new flows loses
# events, and says so: lost_events > 0 and delivered event lines + lost_events = inserts = N.
# ctbpf is stopped (SIGSTOP) during the flood, so the ring surely overflows: a fast consumer would
# otherwise make the loss depend on scheduling.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode} n=${2:-20000}

load_modules
make_netns
start_trace "$mode" --events insert --events-rate 0 --ring-size 4096
kill -STOP "$TRACE_PID"
udp_flood 20000 "$n" >/dev/null
kill -CONT "$TRACE_PID"
count=$(ct_count)
sleep 0.5
stop_trace TERM

lines=$(grep -c '"type":"event"' "$WORK/trace.out" || true)
lost=$(summary .lost_events)
inserts=$(summary .inserts)
expect "conntrack -C" "$count" "$n"
expect inserts "$inserts" "$n"
expect "lost_events > 0" "$((lost > 0))" 1
expect "event lines + lost_events" "$((lines + lost))" "$inserts"
expect "events.delivered" "$(summary .events.delivered)" "$lines"
finish
