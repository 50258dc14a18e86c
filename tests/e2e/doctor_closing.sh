#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# doctor_closing.sh MODE [N]: the field notes' edge gateway, whose table fills with closing TCP
# connections. Phase 1: N short connections (connect, request, response, close; no keep-alive; two
# clients in parallel, each connection from its own source port, so no new connection reuses a closed
# one's tuple, which would replace its TIME_WAIT entry) to servers in the test netns, inside doctor's
# window, with time_wait at its default (120 s): the table is TIME_WAIT entries. `ctbpf doctor` must
# report tcp_closing_states with per-state live counts equal to `conntrack -L` (taken just before and
# just after doctor's end-of-window dump; the two must agree, so nothing expired or appeared in between),
# propose time_wait with its commands, and say it frees as many entries as `conntrack -L` shows idle past
# the proposal: at least the count before its dump, at most the count after, and no more than the
# TIME_WAIT entries. No connection is in use: nothing is cut.
# Phase 2: H connections half-closed by their clients (FIN sent, the server never closes: CLOSE_WAIT,
# close_wait raised to 600 s so none expires however slow the guest), left idle past the proposal:
# doctor must warn that they would be cut and not propose close_wait.
# Timing: the whole of phase 1, from the first connection to the last `conntrack -L`, must take less
# than time_wait (120 s); under qemu TCG on a loaded host that bounds N.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}
n=${2:-2000}
h=200
serve_port=9100 # and 9101
hold_port=9200
proposal=30   # what doctor considers for time_wait and close_wait (no NAT here)

now() { date +%s.%N; }
# sleep_until T: until the epoch time T (at once when past).
sleep_until() { sleep "$(awk -v t="$1" -v n="$(now)" 'BEGIN { d = t - n; printf "%.3f", (d > 0 ? d : 0) }')"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# ct_snapshot FILE: `conntrack -L` of the test netns (stderr has the count line).
ct_snapshot() { in_ns conntrack -L >"$1" 2>/dev/null; }
# ct_state FILE STATE: entries in STATE. ct_idle FILE STATE TIMEOUT: those idle PROPOSAL s or more,
# i.e. with at most TIMEOUT - PROPOSAL s left (the time left is the 3rd field).
ct_state() { awk -v s="$2" '$1 == "tcp" && $4 == s' "$1" | wc -l; }
ct_idle() { awk -v s="$2" -v m="$(($3 - proposal))" '$1 == "tcp" && $4 == s && $3 <= m' "$1" | wc -l; }
states=(SYN_SENT SYN_RECV FIN_WAIT CLOSE_WAIT LAST_ACK TIME_WAIT ESTABLISHED CLOSE)

load_modules
make_netns
tw_timeout=$(in_ns sysctl -n net.netfilter.nf_conntrack_tcp_timeout_time_wait)
expect "time_wait left at its default" "$tw_timeout" 120
for port in "$serve_port" "$((serve_port + 1))"; do
	in_ns_bg "$CTBPF_FLOWGEN" http-serve --addr 127.0.0.1 --port "$port" --ready "$WORK/serve.$port"
	wait_file "$WORK/serve.$port" "${BG_PIDS[-1]}" "flowgen http-serve"
done

# ---- phase 1: short connections, the table mostly TIME_WAIT ----------------------------------------
start_doctor "$mode"
half=$((n / 2))
t0=$(now)
# Two clients, two servers: the guest's two CPUs. Source ports 30000.. and 30000+N/2..
in_ns "$CTBPF_FLOWGEN" tcp-requests --dst 127.0.0.1 --port "$serve_port" --count "$half" --sport 30000 \
	>"$WORK/requests.0" &
client=$!
in_ns "$CTBPF_FLOWGEN" tcp-requests --dst 127.0.0.1 --port "$((serve_port + 1))" --count "$((n - half))" \
	--sport "$((30000 + half))" >"$WORK/requests.1"
wait "$client"
t1=$(now)
expect "connections made" "$(($(cat "$WORK/requests.0") + $(cat "$WORK/requests.1")))" "$n"
log "phase 1: $n connections in $(since "$t0") s"
# The first connections idle past the proposal; the last ones too when the batch took less than it.
sleep_until "$(awk -v a="$t0" -v b="$t1" -v p="$proposal" 'BEGIN { t = a + p + 2; if (b + 2 > t) t = b + 2; printf "%.3f", t }')"
ct_snapshot "$WORK/ct1.before"
stop_doctor
ct_snapshot "$WORK/ct1.after"
log "phase 1: the last conntrack -L $(since "$t0") s after the first connection (time_wait: $tw_timeout s)"

for s in "${states[@]}"; do
	before=$(ct_state "$WORK/ct1.before" "$s")
	expect "conntrack -L $s: before doctor's dump = after it" "$(ct_state "$WORK/ct1.after" "$s")" "$before"
	expect "doctor live $s = conntrack -L" "$(doctor ".summary.idle_ms.live_by_tcp_state.$s // 0")" "$before"
done
total=$(wc -l <"$WORK/ct1.before")
tw=$(ct_state "$WORK/ct1.before" TIME_WAIT)
expect "doctor entries dumped = conntrack -L" "$(doctor .summary.idle_ms.entries)" "$total"
# Mostly TIME_WAIT: every connection but a rare one whose entry is gone already (seen in the guest: 3
# of 2000, none left in another state; an entry reset to CLOSE lives 10 s).
log "phase 1: $tw TIME_WAIT entries for $n connections"
expect "TIME_WAIT holds the connections (at least 99%, at most all)" "$((tw <= n && 100 * tw >= 99 * n))" 1
cs=.evidence.states
expect "tcp_closing_states reported" "$(finding tcp_closing_states .id)" '"tcp_closing_states"'
for s in SYN_SENT SYN_RECV FIN_WAIT CLOSE_WAIT LAST_ACK TIME_WAIT; do
	expect "tcp_closing_states $s live = conntrack -L" "$(finding tcp_closing_states "$cs.$s.live")" \
		"$(ct_state "$WORK/ct1.before" "$s")"
done
expect "closing entries" "$(finding tcp_closing_states .evidence.closing_live)" "$tw"
expect "fired by its share of the table" "$(finding tcp_closing_states .evidence.fired_by_table_share)" true
expect "fired by its share of the growth (the connections were made in the window)" \
	"$(finding tcp_closing_states .evidence.fired_by_growth_share)" true
expect "the growth: the TIME_WAIT entries (from an empty table)" "$(finding tcp_closing_states .evidence.closing_growth)" "$tw"
expect "TIME_WAIT timeout read" "$(finding tcp_closing_states "$cs.TIME_WAIT.timeout_s")" 120
expect "time_wait proposed" "$(finding tcp_closing_states "$cs.TIME_WAIT.proposed_s")" "$proposal"
expect "time_wait's command now" \
	"$(finding tcp_closing_states "[.fix_now[] | select(. == \"sysctl -w net.netfilter.nf_conntrack_tcp_timeout_time_wait=$proposal\")] | length")" 1
expect "time_wait's command across reboots" \
	"$(finding tcp_closing_states "[.fix_persistent[] | select(contains(\"nf_conntrack_tcp_timeout_time_wait = $proposal' >> /etc/sysctl.d/\"))] | length")" 1
freed=$(finding tcp_closing_states "$cs.TIME_WAIT.would_free")
low=$(ct_idle "$WORK/ct1.before" TIME_WAIT "$tw_timeout")
high=$(ct_idle "$WORK/ct1.after" TIME_WAIT "$tw_timeout")
log "time_wait=$proposal would free $freed; conntrack -L idle >= $proposal s: $low before the dump, $high after"
expect "would free >= conntrack -L's idle entries before the dump" "$((freed >= low))" 1
expect "would free <= conntrack -L's idle entries after the dump" "$((freed <= high))" 1
expect "would free <= conntrack -L's TIME_WAIT entries" "$((freed <= tw))" 1
expect "would free some (the first connections are idle past the proposal)" "$((freed > 0))" 1
expect "would free = the finding's total" "$(finding tcp_closing_states .evidence.would_free)" "$freed"
expect "no connection in use would be cut" "$(finding tcp_closing_states .evidence.would_cut)" 0
expect "nothing withheld" "$(finding tcp_closing_states "[$cs[] | select(.withheld)] | length")" 0
# Nothing cut: a warning only when the table is under pressure, as table_fill says.
pressure=$(finding table_fill '.severity != "info"')
expect "nothing cut: info, or a warning under pressure ($pressure)" "$(finding tcp_closing_states .severity)" \
	"$([ "$pressure" = true ] && echo '"warning"' || echo '"info"')"
expect "why: 2 MSL and PAWS" "$(finding tcp_closing_states '.why | contains("2 MSL") and contains("PAWS")')" true
if [ "$mode" = tracepoint ]; then
	expect "deaths not seen in tracepoint mode: null" "$(finding tcp_closing_states "$cs.TIME_WAIT.deaths_in_window")" null
else
	expect "no TIME_WAIT entry died in the window" "$(finding tcp_closing_states "$cs.TIME_WAIT.deaths_in_window")" 0
fi

# ---- phase 2: half-closed connections left open and idle ------------------------------------------
# close_wait is per netns: raised here only, so the entries outlive a slow guest.
in_ns sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_close_wait=600
cw_timeout=$(in_ns sysctl -n net.netfilter.nf_conntrack_tcp_timeout_close_wait)
expect "close_wait raised in the test netns" "$cw_timeout" 600
in_ns_bg "$CTBPF_FLOWGEN" tcp-listen --addr 127.0.0.1 --port "$hold_port" --ready "$WORK/listen.ready"
wait_file "$WORK/listen.ready" "${BG_PIDS[-1]}" "flowgen tcp-listen"
in_ns_bg "$CTBPF_FLOWGEN" tcp-half-close --dst 127.0.0.1 --port "$hold_port" --count "$h" --ready "$WORK/half.ready"
wait_file "$WORK/half.ready" "${BG_PIDS[-1]}" "flowgen tcp-half-close"
t_h=$(now)
expect "half-closed connections held" "$(cat "$WORK/half.ready")" "$h"
rm -f "$WORK/doctor.ready"
start_doctor "$mode"
# Idle past the proposal (the FIN's ACK may come a delayed-ACK later), well within close_wait.
sleep_until "$(awk -v a="$t_h" -v p="$proposal" 'BEGIN { printf "%.3f", a + p + 2 }')"
ct_snapshot "$WORK/ct2.before"
stop_doctor
ct_snapshot "$WORK/ct2.after"
log "phase 2: the last conntrack -L $(since "$t_h") s after the half-closes"

# A FIN the client retransmits (its ACK delayed past the retransmission timeout: a slow guest) moves
# conntrack's entry from CLOSE_WAIT to LAST_ACK, and the server's ACK to TIME_WAIT: every half-closed
# connection is in one of those, most in CLOSE_WAIT.
cw=$(ct_state "$WORK/ct2.before" CLOSE_WAIT)
# (Phase 1's TIME_WAIT entries may still be there: count those to the half-closes' port only.)
to_hold() { awk -v s="$2" -v p=" dport=$hold_port " '$1 == "tcp" && $4 == s && index($0, p)' "$1" | wc -l; }
moved=$(($(to_hold "$WORK/ct2.before" LAST_ACK) + $(to_hold "$WORK/ct2.before" TIME_WAIT)))
log "phase 2: conntrack -L: $cw CLOSE_WAIT, $moved LAST_ACK or TIME_WAIT (a retransmitted FIN)"
expect "conntrack -L: every half-closed connection is there" "$((cw + moved))" "$h"
expect "conntrack -L: most in CLOSE_WAIT" "$((2 * cw > h))" 1
expect "conntrack -L CLOSE_WAIT: before doctor's dump = after it" "$(ct_state "$WORK/ct2.after" CLOSE_WAIT)" "$cw"
expect "doctor CLOSE_WAIT live = conntrack -L" "$(finding tcp_closing_states "$cs.CLOSE_WAIT.live")" "$cw"
cut=$(finding tcp_closing_states "$cs.CLOSE_WAIT.would_cut")
expect "would cut >= conntrack -L's CLOSE_WAIT idle past the proposal before the dump" \
	"$((cut >= $(ct_idle "$WORK/ct2.before" CLOSE_WAIT "$cw_timeout")))" 1
expect "would cut every CLOSE_WAIT connection (all idle past the proposal)" "$cut" "$cw"
expect "close_wait withheld" "$(finding tcp_closing_states "$cs.CLOSE_WAIT.withheld")" true
expect "close_wait read" "$(finding tcp_closing_states "$cs.CLOSE_WAIT.timeout_s")" "$cw_timeout"
expect "close_wait not proposed" "$(finding tcp_closing_states "$cs.CLOSE_WAIT.proposed_s")" null
expect "no close_wait command" "$(finding tcp_closing_states '[(.fix_now + .fix_persistent)[] | select(contains("close_wait"))] | length')" 0
expect "the warning names the connections that would be cut" \
	"$(finding tcp_closing_states ".why | contains(\"CLOSE_WAIT: $cw live entries idle $proposal s or more\") and contains(\"would be cut\")")" true
expect "the title says so" "$(finding tcp_closing_states ".title | contains(\"$cw idle half-open connections would be cut\")")" true
expect "a warning" "$(finding tcp_closing_states .severity)" '"warning"'
expect "CLOSE_WAIT idle min >= the proposal" "$(finding tcp_closing_states "$cs.CLOSE_WAIT.idle.min >= $proposal * 1000")" true
finish
