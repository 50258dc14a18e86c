#!/usr/bin/env bash
# doctor_chains.sh MODE [N]: a misconfigured box, 512 buckets for nf_conntrack_max 65536 (a full table
# would average 256 entries per chain), under a flood of N new UDP flows while `ctbpf doctor` watches.
# Since 5.15 the kernel refuses inserts into chains past [50, 79] (chaintoolong).
# Every mode: doctor names chain_length (critical) and recommends a power-of-two bucket count of at
# least max, with the matching hashsize commands (modprobe.d where conntrack is a module); its
# drop_chaintoolong count = the kernel's delta; the table inputs = the sysctls.
# fentry/kprobe: the evidence chain_p99 = the chain_length.p99 of the summary doctor prints (and it is
# past the limit's floor); UDP dominates the inserts, so stateless_udp gives nft NOTRACK commands, which
# the test runs in its own netns to prove they are valid. tracepoint: chain_p99 is null and "chain
# length at insert" is listed as not measured.
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
read -r sent refused <<<"$(udp_flood 20000 "$n")"
chaintoolong=$(($(ct_stat chaintoolong) - chaintoolong0))
stop_doctor
restore_globals
log "sent $sent, refused $refused; kernel chaintoolong +$chaintoolong"

# The scenario: the kernel refused inserts for chain length.
expect "nf_conntrack_buckets" "$buckets" 512
expect "kernel chaintoolong > 0" "$((chaintoolong > 0))" 1

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
	p99=$(doctor .summary.chain_length.p99)
	expect "evidence.chain_p99 = summary chain_length.p99" "$(finding chain_length .evidence.chain_p99)" "$p99"
	expect "chain p99 >= 50 (the limit's floor)" "$((p99 >= 50))" 1
	expect "stateless_udp found" "$(finding stateless_udp .id)" '"stateless_udp"'
	# The NOTRACK commands doctor prints must be valid nft: run them in this test's own netns.
	# (A here-string, not process substitution: the VM guest has no /dev/fd.)
	while IFS= read -r cmd; do
		in_ns sh -c "$cmd" || { echo "FAIL nft command: $cmd"; FAILED=1; }
	done <<<"$(finding stateless_udp '.fix_now[]' | jq -r .)"
	expect "notrack rules in place" "$(in_ns nft list table inet no_conntrack | grep -c 'udp [ds]port 53 notrack')" 4
fi
finish
