#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# serve_not_loaded.sh MODE N: on a kernel where nf_conntrack is a module not loaded yet (the VM guest),
# trace, doctor and top exit 3 naming the fix, features says which families should work once it is
# loaded (as root here: all three); serve starts anyway and exports ctbpf_attached 0
# (no conntrack series, and no ready file); then the test loads the modules, makes a netns with a
# ct rule and N flows, and serve - without a restart - attaches in MODE and counts the netns's inserts
# equal to its `conntrack -C`. The netns's own series, not the total: load_modules' warm-up inserts and
# deletes one ctnetlink entry in the initial netns right after the module loads, which serve counts
# when it attaches first (a race of start-up times). ctbpf never loads the module itself: it is still
# absent after the exits above.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode} n=${2:-1000}
port=9660

if [ -e /proc/sys/net/netfilter/nf_conntrack_max ]; then
	echo "e2e: nf_conntrack is loaded already; this scenario needs a kernel where it is a module not loaded" >&2
	exit 1
fi
for cmd in "trace -d 1" "doctor -d 1" "top -d 1"; do
	rc=0
	# shellcheck disable=SC2086 # the subcommand and its option
	"$CTBPF_BIN" $cmd >/dev/null 2>"$WORK/cmd.err" || rc=$?
	expect "$cmd exit code" "$rc" 3
	expect "$cmd names the fix" "$(grep -c 'modprobe nf_conntrack' "$WORK/cmd.err")" 1
done
# features tries nothing it cannot (there is nothing to attach to) and says what to expect once
# the module is loaded; serve below then shows the expectation held for MODE.
rc=0
SUMMARY=$("$CTBPF_BIN" features --json 2>"$WORK/cmd.err") || rc=$?
log "features: $SUMMARY"
expect "features exit code" "$rc" 3
expect "features: conntrack" "$(summary .conntrack)" false
for family in fentry kprobe tracepoint; do
	expect "features: $family usable now" "$(summary ".families.$family.usable")" false
	expect "features: $family expected once loaded" "$(summary ".families.$family.once_loaded.expected")" true
done
expect "nf_conntrack still not loaded" "$([ -e /sys/module/nf_conntrack ] && echo loaded || echo absent)" absent

make_quiet_netns
ip netns exec "$QUIET_NS" "$CTBPF_BIN" serve --mode "$mode" --listen "127.0.0.1:$port" -i 0.5 \
	--ready-file "$WORK/serve.ready" 2>"$WORK/trace.err" &
BG_PIDS+=($!)
scrape() { in_quiet curl -sf "http://127.0.0.1:$port/metrics"; }
page=
for _ in $(seq 300); do
	page=$(scrape) && break
	kill -0 "${BG_PIDS[-1]}" || { cat "$WORK/trace.err" >&2; exit 1; }
	sleep 0.2
done
log "not attached: $(grep -v '^#' <<<"$page" | tr '\n' ' ')"
expect "before: lines ctbpf_attached 0" "$(grep -c '^ctbpf_attached 0$' <<<"$page")" 1
expect "before: mode" "$(grep -c '^ctbpf_build_info{.*mode="none"} 1$' <<<"$page")" 1
expect "before: conntrack series" "$(grep -c '^ctbpf_conntrack_' <<<"$page" || true)" 0
expect "before: ready file" "$([ -e "$WORK/serve.ready" ] && echo yes || echo no)" no
expect "before: says it waits" "$(grep -c 'nf_conntrack is not loaded: serving ctbpf_attached 0' "$WORK/trace.err")" 1

load_modules
make_netns
wait_file "$WORK/serve.ready" "${BG_PIDS[-1]}" "ctbpf serve"
read -r sent _ <<<"$(udp_flood 20000 "$n")"
count=$(ct_count)
inode=$(stat -L -c %i "/run/netns/$NS")
inserts=none
for _ in $(seq 100); do
	page=$(scrape)
	inserts=$(awk -v series="ctbpf_conntrack_netns_inserts_total{netns=\"$inode\"}" '$1 == series {print $2}' <<<"$page")
	[ "$inserts" = "$count" ] && break
	sleep 0.2
done
expect "datagrams sent" "$sent" "$n"
expect "conntrack -C" "$count" "$n"
expect "after: the netns's inserts = its conntrack -C" "$inserts" "$count"
expect "after: lines ctbpf_attached 1" "$(grep -c '^ctbpf_attached 1$' <<<"$page")" 1
expect "after: mode" "$(grep -c "^ctbpf_build_info{.*mode=\"$mode\"} 1\$" <<<"$page")" 1
expect "serve still the first process" "$(kill -0 "${BG_PIDS[-1]}" && echo running)" running
finish
