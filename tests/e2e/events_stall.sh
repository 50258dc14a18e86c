#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# events_stall.sh MODE [N]: deletes whose destroy event cannot be delivered, as on a gateway whose
# conntrackd falls behind. A ctnetlink listener asks for reliable delivery and never reads (flowgen
# ct-events-stall); `conntrack -F` deletes N entries, and once the listener's buffer is full the kernel
# parks the rest, unlinked but not freed, until the listener goes (nf_ct_delete() returns false for
# them). ctbpf's deletes and destroys must both be N. Kernels from 5.19 (core_fixes.bpf.h's
# ct_delete_undelivered() says why not before).
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}
n=${2:-300}

load_modules
make_netns
keep_udp_entries
# The listener first: entries get the event extension only while a listener exists (nf_conntrack_events=2).
in_ns_bg "$CTBPF_FLOWGEN" ct-events-stall --ready "$WORK/stall.ready"
stall_pid=${BG_PIDS[-1]}
wait_file "$WORK/stall.ready" "$stall_pid" "flowgen ct-events-stall"
start_trace "$mode"

read -r sent refused <<<"$(udp_flood 20000 "$n")"
expect "datagrams sent" "$sent" "$n"
expect "conntrack -C" "$(ct_count)" "$n"
in_ns conntrack -F 2>/dev/null
expect "conntrack -L after the flush" "$(in_ns conntrack -L 2>/dev/null | wc -l)" 0
parked=$(ct_count) # unlinked, not freed: their destroy events wait for the listener
log "entries parked for undelivered destroy events: $parked of $n"
expect "entries parked for undelivered destroy events" "$([ "$parked" -gt 0 ] && echo some || echo none)" some
kill -TERM "$stall_pid"
for _ in $(seq 150); do
	[ "$(ct_count)" = 0 ] && break
	sleep 0.2
done
expect "conntrack -C once the listener is gone" "$(ct_count)" 0
sleep 1
stop_trace
expect inserts "$(summary .inserts)" "$n"
expect deletes "$(summary .deletes)" "$n"
expect destroys "$(summary .destroys)" "$n"
finish
