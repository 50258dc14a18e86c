#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# schema_check.sh JSON_FIXTURES OUTDIR: the documents the pure core renders (tests/unit/json_fixtures.cpp)
# against docs/schema/ctbpf.schema.json, through tests/tools/validate_json.py.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
validate=$here/../tools/validate_json.py
gen=${1:?usage: schema_check.sh JSON_FIXTURES OUTDIR}
out=${2:?usage: schema_check.sh JSON_FIXTURES OUTDIR}
rm -rf "$out"
mkdir -p "$out"
"$gen" "$out"
"$validate" "$out"/snapshot-fentry.json "$out"/snapshot-tracepoint.json "$out"/diff.json \
	"$out"/doctor-fentry.json "$out"/doctor-tracepoint.json
# Events as the core makes them; trace adds "time" (the e2e tests check those lines).
"$validate" --as event_body "$out"/events.ndjson
# The current fuzz seed (tests/fuzz/make-tracepoint-seed.sh; the older seeds predate the schema, see
# tests/fuzz/make-corpus.sh).
"$validate" "$here/../fuzz/corpus/snapshot-tracepoint.json"
