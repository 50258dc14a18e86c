#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# doctor_chains.sh MODE [N]: a misconfigured box, 512 buckets for nf_conntrack_max 65536 (a full table
# would average 256 entries per chain), under a flood of N new UDP flows while `ctbpf doctor` watches:
# N/2 to N/2 distinct ports, then N/2 to one busy port, 20053, each from its own source port.
# Since 5.15 the kernel refuses inserts into chains past [50, 79] (chaintoolong).
# Every mode: doctor names chain_length (critical) and recommends a power-of-two bucket count of at
# least max, with the matching hashsize commands (modprobe.d where conntrack is a module); its
# drop_chaintoolong count = the kernel's delta; the table inputs = the sysctls.
# fentry/kprobe: the chain length p99 and max lie in [50, 81], the kernel's own arithmetic (see below);
# UDP dominates the inserts, so stateless_udp gives nft NOTRACK commands, which the test runs in its own
# netns to prove they are valid, and which must name exactly the busy port the kernel's table shows
# (20053, not the fallback 53). tracepoint: chain_p99 is null and "chain length at insert" is listed as
# not measured.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}
n=${2:-20000}

load_modules
make_netns
# Global knobs, restored on exit. hashsize 1 rounds up to a page of buckets: 512.
set_global /sys/module/nf_conntrack/parameters/hashsize 1
set_global /proc/sys/net/netfilter/nf_conntrack_max 65536
buckets=$(cat /proc/sys/net/netfilter/nf_conntrack_buckets)
start_doctor "$mode"
chaintoolong0=$(ct_stat chaintoolong)
# Ports 30000.. and 20053 are in make_netns's UDP drop range (20000-59999): no socket, no ICMP.
busy=20053
read -r sent1 refused1 <<<"$(udp_flood 30000 $((n / 2)))"
read -r sent2 refused2 <<<"$(in_ns "$CTBPF_FLOWGEN" udp --dst 127.0.0.1 --port "$busy" --count 1 \
	--src-count $((n / 2)) --sport 10000 2>/dev/null)"
chaintoolong=$(($(ct_stat chaintoolong) - chaintoolong0))
# The kernel's own table, in one listing (UDP entries live 30 s: two listings would see different
# tables): its UDP entries, and those whose original direction goes to the busy port.
in_ns conntrack -L -p udp >"$WORK/udp_entries" 2>/dev/null
udp_entries=$(wc -l <"$WORK/udp_entries")
busy_entries=$(grep -c " dport=$busy " "$WORK/udp_entries" || true)
stop_doctor
restore_globals
log "sent $sent1 + $sent2, refused $refused1 + $refused2; kernel chaintoolong +$chaintoolong;" \
	"entries to port $busy: $busy_entries of $udp_entries UDP"

# The scenario: the kernel refused inserts for chain length.
expect "nf_conntrack_buckets" "$buckets" 512
expect "kernel chaintoolong > 0" "$((chaintoolong > 0))" 1
expect "flows to the busy port" "$((sent2 + refused2))" "$((n / 2))"
# Every other port has one entry at most: the busy port holds a good share of the table.
expect "kernel: port $busy holds at least a tenth of the UDP entries" "$((busy_entries * 10 >= udp_entries && busy_entries > 1))" 1

expect mode "$(doctor .mode)" "\"$mode\""
expect inputs.table.buckets "$(doctor .inputs.table.buckets)" 512
expect inputs.table.max "$(doctor .inputs.table.max)" 65536
expect "chain_length severity" "$(finding chain_length .severity)" '"critical"'
expect "drop_chaintoolong count" "$(finding drop_chaintoolong .evidence.count)" "$chaintoolong"
recommended=$(finding chain_length .evidence.recommended_buckets)
expect "recommended buckets is a power of two >= max" \
	"$(((recommended & (recommended - 1)) == 0 && recommended >= 65536))" 1
expect "fix now resizes to it" \
	"$(finding chain_length ".fix_now[0] | startswith(\"echo $recommended > /sys/module/nf_conntrack/parameters/hashsize\")")" true
if [ -e /sys/module/nf_conntrack/initstate ]; then
	expect "persistent hashsize (module)" "$(finding chain_length .fix_persistent)" \
		"[\"echo 'options nf_conntrack hashsize=$recommended' > /etc/modprobe.d/nf_conntrack.conf\"]"
fi

if [ "$mode" = tracepoint ]; then
	expect "evidence.chain_p99" "$(finding chain_length .evidence.chain_p99)" null
	expect "chain length listed as not measured" \
		"$(doctor '[.unmeasured[].what] | index("chain length at insert") != null')" true
else
	# The kernel's arithmetic (6.1 net/netfilter/nf_conntrack_core.c, __nf_conntrack_confirm):
	# max_chainlen = MIN_CHAINLEN (50) + a random number below MAX_CHAINLEN (80 - 50), so [50, 79];
	# the walk refuses the insert when `chainlen++ > max_chainlen`, so a chain of L entries takes one
	# more only while L <= max_chainlen + 1 <= 80: after it, at most 81. The flood overfills the chains
	# (chaintoolong > 0 above) and ends with about 2 × N / 512 nodes a bucket, far past 50, so the 99th
	# percentile is at the limit: p99 and max both lie in [50, 81].
	p99=$(finding chain_length .evidence.chain_p99)
	max=$(doctor .summary.chain_length.max)
	expect "evidence.chain_p99 in [50, 81] (the kernel's chain limit)" "$((p99 >= 50 && p99 <= 81))" 1
	expect "summary chain_length.p99 in [50, 81]" "$(doctor '.summary.chain_length.p99 | . >= 50 and . <= 81')" true
	expect "summary chain_length.max in [50, 81]" "$((max >= 50 && max <= 81))" 1
	expect "stateless_udp found" "$(finding stateless_udp .id)" '"stateless_udp"'
	# The NOTRACK commands doctor prints must be valid nft: run them in this test's own netns.
	# (A here-string, not process substitution: the VM guest has no /dev/fd.)
	while IFS= read -r cmd; do
		in_ns sh -c "$cmd" || { echo "FAIL nft command: $cmd"; FAILED=1; }
	done <<<"$(finding stateless_udp '.fix_now[]' | jq -r .)"
	rules=$(in_ns nft list table inet no_conntrack)
	expect "notrack rules in place" "$(grep -c 'udp [ds]port .* notrack' <<<"$rules")" 4
	# The ports they name: exactly the busy one, not the fallback 53.
	expect "notrack rules name port $busy only" \
		"$(sed -nE 's/.*udp [ds]port (.*) notrack.*/\1/p' <<<"$rules" | sort -u | tr '\n' ' ')" "$busy "
fi
finish
