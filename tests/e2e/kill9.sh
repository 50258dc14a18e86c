#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# kill9.sh MODE: ctbpf killed with SIGKILL leaves nothing in the kernel. Its links are never pinned, so
# closing its file descriptors (which the kernel does for a dead process) detaches and frees every
# program, link and map it made. While ctbpf runs, the programs it holds (prog_id in its fdinfo) must
# include the MODE's programs; within 5 s of its death, none of the programs, links and maps it held
# may still exist (teardown after process death is asynchronous: trampolines, RCU, workqueues).
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}
skip_unless_kernel_allows "$mode"
BPFTOOL=${BPFTOOL:-/usr/sbin/bpftool}

# Program names in bpf/conntrack.bpf.c; the kernel keeps 15 characters of a name (BPF_OBJ_NAME_LEN).
case $mode in
fentry) want=(fentry_early_drop fexit_early_drop fexit_delete
	fentry_resolve_clash fexit_confirm fexit_check_insert fentry_free tp_kfree_skb) ;;
kprobe) want=(kprobe_early_drop kretprobe_early_drop kprobe_delete kretprobe_delete
	kprobe_confirm kprobe_resolve_clash kretprobe_confirm kprobe_check_insert kretprobe_check_insert
	kprobe_free tp_kfree_skb) ;;
tracepoint) want=(tp_kfree_skb) ;;
*) echo "kill9.sh: unknown mode $mode" >&2; exit 2 ;;
esac

load_modules
make_netns
start_trace "$mode"
# (Arrays by word splitting: the VM guest has no /dev/fd for process substitution.)
read -ra progs <<<"$(held "$TRACE_PID" prog | tr '\n' ' ')"
read -ra links <<<"$(held "$TRACE_PID" link | tr '\n' ' ')"
read -ra maps <<<"$(held "$TRACE_PID" map | tr '\n' ' ')"
names=$("$BPFTOOL" prog show --json | jq -r --arg ids "${progs[*]}" '($ids | split(" ") | map(tonumber)) as $held
	| .[] | select(.id as $id | $held | index($id)) | .name[:15]' | sort -u)
log "ctbpf holds programs ${progs[*]} (${names//$'\n'/ }), links ${links[*]}, maps ${maps[*]}"

kill -KILL "$TRACE_PID"
wait "$TRACE_PID" 2>/dev/null || true
TRACE_PID=
# From the moment the process is reaped (its descriptors are closed by then): up to 5 s.
killed=$(date +%s%N)
checks=0
while :; do
	checks=$((checks + 1))
	left_progs=$(alive prog "${progs[@]}")
	left_links=$(alive link "${links[@]}")
	left_maps=$(alive map "${maps[@]}")
	elapsed_ms=$((($(date +%s%N) - killed) / 1000000))
	[ -n "$left_progs$left_links$left_maps" ] && [ "$elapsed_ms" -lt 5000 ] || break
	sleep 0.1
done
log "after ctbpf was reaped: $checks checks, the last at $elapsed_ms ms"

# While it ran: the mode's programs were loaded, and attached through links.
for name in "${want[@]}"; do
	expect "program ${name:0:15} loaded" "$(grep -cx "${name:0:15}" <<<"$names")" 1
done
expect "links held > 0" "$((${#links[@]} > 0))" 1
# After the kill: nothing left.
left() { echo "${1:-none}" | paste -sd' '; }
expect "programs left" "$(left "$left_progs")" none
expect "links left" "$(left "$left_links")" none
expect "maps left" "$(left "$left_maps")" none
finish
