# SPDX-License-Identifier: Apache-2.0
# schema.sh (sourced by lib.sh, or on its own): validate_records [--as DEF] FILE... checks ctbpf's JSON
# (trace/top --json lines, a snapshot, doctor/features/report/diff --json) against
# docs/schema/ctbpf.schema.json with tests/tools/validate_json.py: every key the contract promises is
# present (null where the mode cannot observe it), with its type. One "ok" line, or "FAIL" and one
# line per violation (JSON pointer and reason, at most 40); a failure sets FAILED=1 like expect().
SCHEMA_VALIDATOR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tools" && pwd)/validate_json.py

validate_records() {
	local rc=0 out
	out=$("$SCHEMA_VALIDATOR" "$@" 2>&1) || rc=$?
	if [ "$rc" -eq 0 ]; then
		echo "ok   schema: $(tail -n 1 <<<"$out" | sed 's/^validate_json: //') in $*"
	else
		echo "FAIL schema (exit $rc) of $*:"
		head -n 40 <<<"$out" | sed 's/^/     /'
		[ "$(wc -l <<<"$out")" -le 40 ] || echo "     ... $(($(wc -l <<<"$out") - 40)) more lines"
		FAILED=1
	fi
}
