#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# schema_bites.sh JSON_FIXTURES OUTDIR: the schema check can fail. A valid document with a required key
# removed, a null where an integer belongs made a string, and an event line without "time" are each
# refused with exit 1 and a line naming the JSON pointer; the untouched documents pass.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
validate=$here/../tools/validate_json.py
gen=${1:?usage: schema_bites.sh JSON_FIXTURES OUTDIR}
out=${2:?usage: schema_bites.sh JSON_FIXTURES OUTDIR}
rm -rf "$out"
mkdir -p "$out"
"$gen" "$out"
failed=0

# refused NAME FILE POINTER_AND_REASON: validate_json.py exits 1 on FILE and prints that line.
refused() {
	local rc=0 output
	output=$("$validate" "$2" 2>&1) || rc=$?
	if [ "$rc" = 1 ] && grep -qF -- "$3" <<<"$output"; then
		echo "ok   $1: exit 1, \"$3\""
	else
		echo "FAIL $1: exit $rc, expected 1 and a line with \"$3\"; got:"
		sed 's/^/     /' <<<"$output"
		failed=1
	fi
}

# mutate IN OUT PYTHON: OUT is IN (a JSON document, or JSON lines with LINES=1) after PYTHON ran on `doc`.
mutate() {
	/usr/bin/python3 - "$1" "$2" "$3" <<'PY'
import json, sys
src, dst, code = sys.argv[1:]
doc = json.load(open(src))
exec(code)
json.dump(doc, open(dst, "w"))
PY
}

for f in snapshot-fentry snapshot-tracepoint doctor-tracepoint; do
	if "$validate" -q "$out/$f.json"; then echo "ok   $f.json as rendered: valid"; else echo "FAIL $f.json as rendered"; failed=1; fi
done

# "null when unobserved" keys removed: what a plain jq path would read as null all the same.
mutate "$out/snapshot-tracepoint.json" "$out/no-sampled.json" 'del(doc["summary"]["lifetime_ms"]["sampled_one_in"])'
refused "tracepoint lifetime_ms.sampled_one_in removed" "$out/no-sampled.json" \
	"/summary/lifetime_ms/sampled_one_in: missing"
mutate "$out/snapshot-tracepoint.json" "$out/no-inserts.json" 'del(doc["intervals"][2]["inserts"])'
refused "an interval's inserts removed" "$out/no-inserts.json" "/intervals/2/inserts: missing"
mutate "$out/doctor-tracepoint.json" "$out/no-kernel-stats.json" 'del(doc["summary"]["kernel_stats"])'
refused "doctor summary.kernel_stats removed" "$out/no-kernel-stats.json" "/summary/kernel_stats: missing"

# Wrong types.
mutate "$out/snapshot-tracepoint.json" "$out/string-netns.json" 'doc["summary"]["own_netns"]["inode"] = "4026532000"'
refused "summary.own_netns.inode a string" "$out/string-netns.json" "/summary/own_netns"
mutate "$out/snapshot-fentry.json" "$out/string-count.json" 'doc["summary"]["inserts"] = str(doc["summary"]["inserts"])'
refused "summary.inserts a string" "$out/string-count.json" "/summary/inserts: expected integer or null"
mutate "$out/snapshot-fentry.json" "$out/float-p99.json" 'doc["summary"]["chain_length"]["p99"] = 2.5'
refused "chain_length.p99 a float" "$out/float-p99.json" "/summary/chain_length/p99: expected integer"
mutate "$out/snapshot-fentry.json" "$out/zero-alloc-failed.json" 'doc["summary"]["drops"]["alloc_failed"] = 0'
refused "drops.alloc_failed 0 (null in every mode)" "$out/zero-alloc-failed.json" "/summary/drops/alloc_failed: expected null"
mutate "$out/snapshot-tracepoint.json" "$out/half-null.json" 'doc["summary"]["chain_length"]["sampled_one_in"] = 16'
refused "chain_length unobserved but sampled_one_in 16" "$out/half-null.json" "/summary/chain_length/sampled_one_in: expected null"

# JSON lines: an event of trace without "time" (line 2), and a line that is not JSON (line 3).
head -n 1 "$out/events.ndjson" | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); d["time"]="2026-11-30T14:30:00.123Z"; print(json.dumps(d))' >"$out/trace.ndjson"
head -n 1 "$out/events.ndjson" >>"$out/trace.ndjson"
echo '{"type":"event",' >>"$out/trace.ndjson"
refused "an event line without time" "$out/trace.ndjson" "trace.ndjson:2: /time: missing"
refused "a line that is not JSON" "$out/trace.ndjson" "trace.ndjson:3: : not JSON"
: >"$out/empty.ndjson"
refused "no records at all" "$out/empty.ndjson" "no JSON records"

exit "$failed"
