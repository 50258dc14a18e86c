#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# report_html.sh SNAPSHOT [KEEP_DIR]: `ctbpf report SNAPSHOT --html` in headless Chromium. The page loads
# without a console message (the same check must catch a page that has one: a CSP-blocked script and
# image), holds no script and no external reference, every bar Chromium drew shows the snapshot's own
# number (a histogram bucket, a drop counter, an interval's value: read here from the JSON), the charts
# the data calls for are there (each stored histogram, each cause that counted), at least one timeline
# has a bar above zero, the sysctls beyond the main ones are folded, and a screenshot is taken. The
# page and the screenshot are kept in KEEP_DIR when given.
set -euo pipefail
: "${CTBPF_BIN:?set CTBPF_BIN to the ctbpf binary}"
snapshot=${1:?snapshot file}
keep=${2:-}
command -v chromium >/dev/null || { echo "report_html: chromium is missing (apt-get install chromium)" >&2; exit 1; }
command -v jq >/dev/null || { echo "report_html: jq is missing (apt-get install jq)" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FAILED=0

expect() {
	if [ "$2" = "$3" ]; then
		echo "ok   $1 = $2"
	else
		echo "FAIL $1 = $2, expected $3"
		FAILED=1
	fi
}

# chromium ARGS... URL: headless, offline, a fresh profile; its log (console messages included) on stderr.
chromium_run() {
	chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir="$(mktemp -d -p "$WORK")" --enable-logging=stderr --v=0 "$@"
}
# Chromium logs every console message (errors, CSP violations) as a CONSOLE line.
console_lines() { grep -c ':CONSOLE' "$1" || true; }

"$CTBPF_BIN" report "$snapshot" --html "$WORK/report.html"
chromium_run --dump-dom "file://$WORK/report.html" >"$WORK/dom.html" 2>"$WORK/dom.err"
chromium_run --hide-scrollbars --window-size=900,3600 --screenshot="$WORK/report.png" \
	"file://$WORK/report.html" >/dev/null 2>"$WORK/shot.err"

# The check itself must be able to fail.
cat >"$WORK/bad.html" <<'HTML'
<!DOCTYPE html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'"></head>
<body><img src="http://127.0.0.1:9/x.png"><script>console.error("boom")</script></body></html>
HTML
chromium_run --dump-dom "file://$WORK/bad.html" >/dev/null 2>"$WORK/bad.err"
expect "console messages of a page with an error > 0" "$(($(console_lines "$WORK/bad.err") > 0))" 1

expect "console messages (dump-dom)" "$(console_lines "$WORK/dom.err")" 0
expect "console messages (screenshot)" "$(console_lines "$WORK/shot.err")" 0
expect "scripts in the DOM" "$(grep -c '<script' "$WORK/dom.html" || true)" 0
expect "src= or href= in the DOM" "$(grep -cE '(src|href)=' "$WORK/dom.html" || true)" 0
expect "screenshot is a PNG" "$(head -c 8 "$WORK/report.png" | od -An -tx1 | tr -d ' \n')" 89504e470d0a1a0a
expect "screenshot > 20 kB" "$(($(stat -c %s "$WORK/report.png") > 20000))" 1

# Every bar in Chromium's DOM, "ID<TAB>INDEX<TAB>LABEL<TAB>TEXT": one <svg id="chart-ID"> per chart,
# one <rect class="bar"> per bar, its <title> "LABEL: TEXT" (report.h's contract).
tr -d '\n' <"$WORK/dom.html" | sed 's/<svg /\n<svg /g; s#</svg>#</svg>\n#g' | grep '^<svg id="chart-' |
	while read -r svg; do
		id=$(sed -E 's/^<svg id="chart-([a-z_]+)".*/\1/' <<<"$svg")
		grep -oE '<rect class="bar"[^>]*><title>[^<]*</title>' <<<"$svg" | sed -E 's/.*<title>(.*): (.*)<\/title>$/\1\t\2/' |
			awk -v id="$id" -F'\t' '{ printf "%s\t%d\t%s\t%s\n", id, NR - 1, $1, $2 }'
	done >"$WORK/bars"
jq -R -s 'split("\n") | map(select(length > 0) | split("\t") | {id: .[0], i: (.[1] | tonumber), label: .[2], text: .[3]})' \
	"$WORK/bars" >"$WORK/bars.json"
ids=$(jq -r 'map(.id) | unique | join(" ")' "$WORK/bars.json")
log_ids=$(jq -r 'group_by(.id)[] | "\(.[0].id) \(length)"' "$WORK/bars.json" | tr '\n' ' ')
echo "charts drawn (bars): $log_ids"

# Each bar against the snapshot's raw numbers, by what the chart shows (no selection rule repeated):
# a histogram bar is one stored bucket (le: count), a cause bar one summary.drops counter, a timeline
# bar interval i's stored value at its end time t. Rates are printed rounded to units, times to 0.1 s.
# One line per mismatch.
jq -r --slurpfile bars "$WORK/bars.json" '
	. as $snap | .intervals as $iv |
	def shown: gsub("[ (].*$"; "") | gsub("/s$"; "") | ltrimstr("+") | tonumber;
	def near($a; $b; $tol): (($a - $b) | fabs) <= $tol;
	def timeline(f): . as $b | $iv[$b.i] as $r |
		if $r == null then "\($b.id) bar \($b.i): no interval \($b.i)"
		elif (near($b.label | tonumber; $r.t; 0.05) | not) then "\($b.id) bar \($b.i): label \($b.label), interval t \($r.t)"
		elif ($r | f) == null then (if $b.text == "-" then empty else "\($b.id) bar \($b.i): \($b.text), stored null" end)
		elif (near($b.text | shown; $r | f; 0.5) | not) then "\($b.id) bar \($b.i): \($b.text), stored \($r | f)"
		else empty end;
	def histogram($h): . as $b | $h.buckets[$b.i] as $k |
		if $k == null then "\($b.id) bar \($b.i): no stored bucket \($b.i)"
		elif $b.label != ($k.le | tostring) or $b.text != ($k.count | tostring) then
			"\($b.id) bar \($b.i): \($b.label): \($b.text), stored le \($k.le) count \($k.count)"
		else empty end;
	($bars[0] | group_by(.id)[] | . as $chart | $chart[0].id as $id |
		# Histograms and timelines: as many bars as stored buckets or intervals.
		(if $id == "chain_length" and ($chart | length) != ($snap.summary.chain_length.buckets | length) then
			"chain_length: \($chart | length) bars, \($snap.summary.chain_length.buckets | length) stored buckets"
		 elif ($id | startswith("lifetime_")) and ($chart | length) != ($snap.summary.lifetime_ms.by_proto[$id | ltrimstr("lifetime_")].buckets | length) then
			"\($id): \($chart | length) bars, not one per stored bucket"
		 elif ($id | test("^(table_count|inserts_per_s|growth_per_s|netfilter_drops)$") or
			(($id | startswith("drops_")) and $id != "drops_by_cause")) and ($chart | length) != ($iv | length) then
			"\($id): \($chart | length) bars, \($iv | length) intervals"
		 else empty end),
		($chart[] |
			if .id == "chain_length" then histogram($snap.summary.chain_length)
			elif (.id | startswith("lifetime_")) then histogram($snap.summary.lifetime_ms.by_proto[.id | ltrimstr("lifetime_")] // {buckets: []})
			elif .id == "drops_by_cause" then . as $b | $snap.summary.drops[$b.label] as $v |
				if $v == null or ($b.text != ($v | tostring)) then "drops_by_cause \($b.label): \($b.text), stored \($v)" else empty end
			elif .id == "table_count" then timeline(.table.count)
			elif .id == "inserts_per_s" then timeline(.rates.inserts_per_s)
			elif .id == "growth_per_s" then timeline(.table.growth_per_s)
			elif .id == "netfilter_drops" then timeline(.netfilter_drops)
			elif (.id | startswith("drops_")) then (.id | ltrimstr("drops_")) as $c | timeline(.drops[$c])
			else "\(.id): a chart this test does not know" end))
' "$snapshot" >"$WORK/mismatches"
expect "bars that differ from the snapshot's numbers" "$(wc -l <"$WORK/mismatches")" 0
head -n 20 "$WORK/mismatches"

# The charts the snapshot's data calls for are there: each histogram it stores, the causes when a
# drop was counted, each cause's timeline when that cause counted, the table when it held entries.
has() { [[ " $ids " == *" $1 "* ]] && echo 1 || echo 0; }
if [ "$(jq '.summary.chain_length.count // 0 > 0' "$snapshot")" = true ]; then
	expect "chain_length chart" "$(has chain_length)" 1
fi
for proto in $(jq -r '(.summary.lifetime_ms.by_proto // {}) | to_entries[] | select((.value.count // 0) > 0) | .key' "$snapshot"); do
	expect "lifetime_$proto chart" "$(has "lifetime_$proto")" 1
done
for cause in $(jq -r '.summary.drops | to_entries[] | select((.value // 0) > 0) | .key' "$snapshot"); do
	expect "drops_by_cause chart ($cause counted)" "$(has drops_by_cause)" 1
	expect "drops_$cause chart" "$(has "drops_$cause")" 1
done
if [ "$(jq 'any(.intervals[]; (.table.count // 0) > 0)' "$snapshot")" = true ]; then
	expect "table_count chart" "$(has table_count)" 1
fi
if [ "$(jq 'any(.intervals[]; (.netfilter_drops // 0) > 0)' "$snapshot")" = true ]; then
	expect "netfilter_drops chart" "$(has netfilter_drops)" 1
fi
if [ "$(jq 'any(.intervals[]; .rates.inserts_per_s != null)' "$snapshot")" = true ]; then
	expect "inserts_per_s chart" "$(has inserts_per_s)" 1
fi
# A timeline with at least one bar of non-zero height: never an empty chart.
nonempty=0
for id in $ids; do
	[[ $id =~ ^(table_count|growth_per_s|inserts_per_s|netfilter_drops|drops_[a-z_]+)$ && $id != drops_by_cause ]] || continue
	tr -d '\n' <"$WORK/dom.html" | sed 's/<svg /\n<svg /g; s#</svg>#</svg>\n#g' | grep "^<svg id=\"chart-$id\"" |
		grep -qE '<rect class="bar"[^>]* height="([1-9][0-9]*|0\.[0-9]*[1-9][0-9]*)(\.[0-9]+)?"' && nonempty=$((nonempty + 1))
done
expect "timelines with a non-empty bar > 0" "$((nonempty > 0))" 1
# Where no cause dropped anything, the page says so in words instead of an empty chart.
if [ "$(jq '[.summary.drops[] | select(. != null and . > 0)] | length' "$snapshot")" = 0 ]; then
	expect "\"no drops in this window\" note" "$(grep -c 'no drops in this window' "$WORK/dom.html")" 1
fi
expect "other sysctls folded in <details>" "$(grep -c '<details><summary>[0-9]* other sysctls</summary>' "$WORK/dom.html")" 1

if [ -n "$keep" ]; then
	mkdir -p "$keep"
	cp "$WORK/report.html" "$WORK/report.png" "$keep/"
	echo "kept $keep/report.html and $keep/report.png"
fi
exit "$FAILED"
