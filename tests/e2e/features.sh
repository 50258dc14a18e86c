#!/usr/bin/env bash
# features.sh FENTRY KPROBE MODE: `ctbpf features --json` reports what a real trial found.
# On the host (no kprobes, fentry refused): false false tracepoint. In the 6.1 VM: true true fentry.
source "$(dirname "$0")/lib.sh"
want_fentry=${1:?} want_kprobe=${2:?} want_mode=${3:?}

load_modules
SUMMARY=$("$CTBPF_BIN" features --json)
log "features: $SUMMARY"
expect "families.fentry.usable" "$(summary .families.fentry.usable)" "$want_fentry"
expect "families.kprobe.usable" "$(summary .families.kprobe.usable)" "$want_kprobe"
expect "families.tracepoint.usable" "$(summary .families.tracepoint.usable)" true
expect "mode" "$(summary .mode)" "\"$want_mode\""
for family in fentry kprobe; do
	# An unusable family must say why (the trial's error), never an empty reason.
	expect "families.$family.reason non-empty" "$(summary ".families.$family.reason | length > 0")" true
done
finish
