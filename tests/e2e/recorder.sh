#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# recorder.sh MODE N: the flight recorder. `ctbpf trace --record DIR -i 0.5` watches a quiet table for
# 2 s, then two chaintoolong floods (chaintoolong.sh's, N flows each into 512 buckets) a second apart:
# one burst for a 30 s --record-quiet, so exactly one snapshot file, written 4 intervals after the
# one that fired. It holds the quiet intervals before the trigger (every drop cause 0), the trigger
# interval (chaintoolong > 0), and reads back with `ctbpf report`.
# CTBPF_EXPORT_SNAPSHOT=1 also prints the file, base64, after a "=== recorder MODE" line.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}
n=${2:-12000}

load_modules
make_netns
set_global /sys/module/nf_conntrack/parameters/hashsize 1
start_trace "$mode" -i 0.5 --record "$WORK/rec" --record-after 4 --record-quiet 30
sleep 2
chaintoolong0=$(ct_stat chaintoolong)
read -r sent1 refused1 <<<"$(udp_flood 20000 "$n")"
sleep 1
read -r sent2 refused2 <<<"$(udp_flood 40000 "$n")"
chaintoolong=$(($(ct_stat chaintoolong) - chaintoolong0))
sleep 3 # the 4 intervals after the trigger, and then some
stop_trace TERM
restore_globals
log "refused $refused1 then $refused2 (sent $sent1, $sent2); kernel chaintoolong +$chaintoolong"
log "recorded: $(ls -A "$WORK/rec")"

expect "kernel chaintoolong > 0" "$((chaintoolong > 0))" 1
expect "trace drops.chaintoolong" "$(summary .drops.chaintoolong)" "$chaintoolong"
expect "files in the record directory" "$(ls -A "$WORK/rec" | wc -l)" 1
file=$(ls "$WORK"/rec/ctbpf-*-*chaintoolong*.json 2>/dev/null | head -n 1)
[ -n "$file" ] || { echo "FAIL no ctbpf-*chaintoolong*.json in the record directory"; exit 1; }
rec() { jq -c "$1" "$file"; }

trigger=$(rec .trigger.interval)
expect "trigger causes include chaintoolong" "$(rec '.trigger.causes | index("chaintoolong") != null')" true
expect "intervals before the trigger >= 3" "$((trigger >= 3))" 1
expect "drops before the trigger" "$(rec "[.intervals[:$trigger][] | .drops[] // 0] | add")" 0
expect "chaintoolong in the trigger interval > 0" "$(rec ".intervals[$trigger].drops.chaintoolong > 0")" true
expect "intervals after the trigger" "$(rec ".intervals | length - $trigger - 1")" 4
expect "recorded chaintoolong <= the kernel's" "$(rec ".summary.drops.chaintoolong <= $chaintoolong")" true
expect "mode" "$(rec .mode)" "\"$mode\""

"$CTBPF_BIN" report "$file" >"$WORK/report.txt"
expect "report names the trigger" \
	"$(grep -c "^recorded because of .*chaintoolong.* in interval $trigger " "$WORK/report.txt")" 1

if [ -n "${CTBPF_EXPORT_SNAPSHOT:-}" ]; then
	echo "=== recorder $mode"
	base64 -w 0 "$file"
	echo
fi
finish
