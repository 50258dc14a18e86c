#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# host_globals.sh save|check FILE: the host tests' proof that they change nothing global. `save`
# (before the first host test) records `sysctl net.netfilter` of the initial netns, conntrack's
# module parameters and kernel.perf_event_paranoid; `check` (after the last) compares, line by line.
# nf_conntrack_count moves with the machine's own traffic: it is left out. Loading conntrack's
# modules is the one change the host tests make (save does it first).
set -euo pipefail
action=${1:?save or check} file=${2:?file}

globals() {
	sysctl -a 2>/dev/null | grep -E '^net\.netfilter\.' | grep -v '^net\.netfilter\.nf_conntrack_count ' || true
	local p
	for p in /sys/module/nf_conntrack/parameters/*; do
		[ -r "$p" ] && echo "$p = $(cat "$p")"
	done
	sysctl kernel.perf_event_paranoid
}

case "$action" in
save)
	# The host tests load conntrack's modules (lib.sh load_modules), as any stateful firewall does:
	# loaded first, so that their sysctls are in the record and only a changed value is a change.
	modprobe -a nf_conntrack nf_tables nft_ct nf_conntrack_netlink veth 2>/dev/null || true
	modprobe nf_conntrack_ftp 2>/dev/null || true # expect_stats.sh; absent from some kernels
	globals >"$file"
	echo "host_globals: $(wc -l <"$file") settings saved"
	;;
check)
	[ -s "$file" ] || { echo "host_globals: no saved settings in $file (host_globals_save did not run)" >&2; exit 1; }
	now=$(mktemp)
	trap 'rm -f "$now"' EXIT
	globals >"$now" # a file, not <(...): a guest's minimal /dev may have no /dev/fd
	if diff -u "$file" "$now"; then
		echo "host_globals: all $(wc -l <"$file") settings as before the host tests"
	else
		echo "FAIL host_globals: the host tests changed global settings (above: - before, + after)"
		exit 1
	fi
	;;
*) echo "host_globals.sh: unknown action $action (save or check)" >&2; exit 2 ;;
esac
