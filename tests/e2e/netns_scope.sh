#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# netns_scope.sh: in tracepoint mode ctbpf sees the table of the netns it runs in, so it names that
# netns (issue 34): trace's start line, summary and JSON, doctor, snapshots and top; diff warns when two
# snapshots are of different namespaces; and from an empty netns it points to the named ones that
# hold entries, with their counts. The expected names and inodes come from `ip netns` and stat, the
# counts from `conntrack -C` inside each netns.
source "$(dirname "$0")/lib.sh"

load_modules
make_netns
keep_udp_entries
make_quiet_netns
in_ns "$CTBPF_FLOWGEN" udp --src 127.0.0.2 --port 20000 --count 200 >/dev/null 2>&1
inode=$(ns_inode)
quiet_inode=$(ns_inode "$QUIET_NS")
host_inode=$(stat -L -c %i /proc/self/ns/net)
label="netns $NS (inode $inode)"
words() { tr -s ' \n' '  ' <"$1"; } # wrapped lines joined again

# Inside the test netns: named in the start line, the summary's scope line and the JSON summary.
in_ns "$CTBPF_BIN" trace --mode tracepoint 0.5 1 >"$WORK/out" 2>"$WORK/trace.err"
expect "trace names the netns at start" "$(grep -c "^ctbpf: table and kernel stats: $label$" "$WORK/trace.err")" 1
expect "trace summary's scope names the netns" "$(words "$WORK/out" | grep -c "kernel stats: this netns, $label (ctnetlink)")" 1
in_ns "$CTBPF_BIN" trace --json --mode tracepoint 0.5 1 >"$WORK/ns.ndjson" 2>>"$WORK/trace.err"
summary=$(tail -n 1 "$WORK/ns.ndjson")
expect "trace --json: own_netns.name" "$(jq -r .own_netns.name <<<"$summary")" "$NS"
expect "trace --json: own_netns.inode" "$(jq .own_netns.inode <<<"$summary")" "$inode"
expect "trace --json: its table is the netns's (conntrack -C)" "$(jq .table.count <<<"$summary")" "$(ct_count)"
validate_records "$WORK/ns.ndjson"

in_ns "$CTBPF_BIN" doctor --json --mode tracepoint -d 1 >"$WORK/doctor.json" 2>>"$WORK/trace.err"
expect "doctor --json: summary.own_netns" "$(jq -c .summary.own_netns "$WORK/doctor.json")" "{\"inode\":$inode,\"name\":\"$NS\"}"

# Snapshots record it; diff of one from the host and one from the netns warns, in one line.
in_ns "$CTBPF_BIN" snapshot --mode tracepoint -d 0.5 -o "$WORK/ns.json" >/dev/null 2>>"$WORK/trace.err"
"$CTBPF_BIN" snapshot --mode tracepoint -d 0.5 -o "$WORK/host.json" >/dev/null 2>>"$WORK/trace.err"
expect "snapshot in the netns: own_netns" "$(jq -c '.summary.own_netns' "$WORK/ns.json")" "{\"inode\":$inode,\"name\":\"$NS\"}"
expect "snapshot on the host: its inode" "$(jq '.summary.own_netns.inode' "$WORK/host.json")" "$host_inode"
# pid 1's netns is the initial one where pid 1 may be read (not in every sandbox: then unchecked).
if init_inode=$(stat -L -c %i /proc/1/ns/net 2>/dev/null) && [ "$init_inode" = "$host_inode" ]; then
	expect "snapshot on the host: named host" "$(jq -r '.summary.own_netns.name' "$WORK/host.json")" host
fi
validate_records "$WORK/ns.json" "$WORK/host.json"
expect "report names the netns" "$("$CTBPF_BIN" report "$WORK/ns.json" | grep -c "^table and kernel stats: $label$")" 1
rc=0
"$CTBPF_BIN" diff "$WORK/host.json" "$WORK/ns.json" >"$WORK/diff.out" || rc=$?
expect "diff across namespaces: changed (exit 1)" "$rc" 1
expect "diff across namespaces: one warning line" "$(grep -c "^warning: A from .*(inode $host_inode), B from $label$" "$WORK/diff.out")" 1
"$CTBPF_BIN" diff "$WORK/ns.json" "$WORK/ns.json" >"$WORK/diff.out" || true
expect "diff of one netns with itself: no warning" "$(grep -c '^warning' "$WORK/diff.out" || true)" 0

# From an empty netns: its table is empty, and the named netns holding entries are said, with
# their counts and how to see one.
in_quiet "$CTBPF_BIN" trace --json --mode tracepoint 0.5 1 >"$WORK/quiet.ndjson" 2>>"$WORK/trace.err"
summary=$(tail -n 1 "$WORK/quiet.ndjson")
expect "empty netns: own_netns.inode" "$(jq .own_netns.inode <<<"$summary")" "$quiet_inode"
expect "empty netns: other_netns has the test netns with its count (conntrack -C)" \
	"$(jq --arg n "$NS" '.other_netns[] | select(.name == $n) | .count' <<<"$summary")" "$(ct_count)"
expect "empty netns: other_netns leaves itself out" \
	"$(jq --arg n "$QUIET_NS" '[.other_netns[] | select(.name == $n)] | length' <<<"$summary")" 0
in_quiet "$CTBPF_BIN" trace --mode tracepoint 0.5 1 >"$WORK/out" 2>"$WORK/quiet.err"
expect "empty netns: the hint on stderr at start" \
	"$(words "$WORK/quiet.err" | grep -c "ctbpf: this netns's table is empty, but [0-9]* other named netns holds*")" 1
expect "empty netns: the hint says how to see one" "$(words "$WORK/out" | grep -c "to see one: ip netns exec [^ ]* ctbpf trace")" 1
in_quiet "$CTBPF_BIN" top --mode tracepoint 0.5 1 >"$WORK/out" 2>>"$WORK/trace.err"
expect "top of an empty netns names it" \
	"$(words "$WORK/out" | grep -c "(no entries in this netns's table, netns $QUIET_NS (inode $quiet_inode); at start: [0-9]* other named netns holds* [0-9]* entries")" 1
finish
