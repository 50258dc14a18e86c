#!/usr/bin/env bash
# report_html.sh SNAPSHOT [KEEP_DIR]: `ctbpf report SNAPSHOT --html` in headless Chromium. The page loads
# without a console message (the same check must catch a page that has one: a CSP-blocked script and
# image), holds no script and no external reference, each chart has the bars the snapshot implies
# (counted here with jq from the JSON, and in the DOM Chromium built), at least one timeline has a bar
# above zero, the sysctls beyond the main ones are folded, and a screenshot is taken. The
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

# Expected bars per chart, from the JSON (the same rules as core::report_charts, written again in jq).
jq -r '
	.summary as $s | (.intervals | length) as $n |
	([$s.drops | to_entries[] | select(.value != null)] as $seen
	 | if any($seen[]; .value > 0) then "drops_by_cause \($seen | length)" else empty end),
	(if $s.chain_length.count != null and ($s.chain_length.buckets | length) > 0
	 then "chain_length \($s.chain_length.buckets | length)" else empty end),
	(($s.lifetime_ms.by_proto // {}) | to_entries[] | select(.value.buckets | length > 0)
	 | "lifetime_\(.key) \(.value.buckets | length)"),
	(if any(.intervals[]; (.table.count // 0) > 0) then "table_count \($n)" else empty end),
	(if any(.intervals[]; .rates.inserts_per_s != null) then "inserts_per_s \($n)"
	 elif any(.intervals[]; (.table.growth_per_s // 0) != 0) then "growth_per_s \($n)" else empty end),
	([.intervals[].drops | to_entries[] | select((.value // 0) > 0) | .key] | unique[] | "drops_\(.) \($n)"),
	(if any(.intervals[]; (.netfilter_drops // 0) > 0) then "netfilter_drops \($n)" else empty end)
' "$snapshot" | sort >"$WORK/expected"
# Bars per chart in Chromium's DOM: one <svg id="chart-ID"> per chart, <rect class="bar"> per bar.
tr -d '\n' <"$WORK/dom.html" | sed 's/<svg /\n<svg /g; s#</svg>#</svg>\n#g' | grep '^<svg id="chart-' |
	while read -r svg; do
		id=$(sed -E 's/^<svg id="chart-([a-z_]+)".*/\1/' <<<"$svg")
		echo "$id $(grep -o '<rect class="bar"' <<<"$svg" | wc -l)"
	done | sort >"$WORK/actual"
expect "charts" "$(wc -l <"$WORK/actual")" "$(wc -l <"$WORK/expected")"
# A timeline (one bar per interval) with at least one bar of non-zero height: never an empty chart.
timelines=$(awk '$1 ~ /^(table_count|growth_per_s|inserts_per_s|netfilter_drops|drops_[a-z_]+)$/ && $1 != "drops_by_cause" {print $1}' "$WORK/expected")
nonempty=0
for id in $timelines; do
	tr -d '\n' <"$WORK/dom.html" | sed 's/<svg /\n<svg /g; s#</svg>#</svg>\n#g' | grep "^<svg id=\"chart-$id\"" |
		grep -qE '<rect class="bar"[^>]* height="([1-9][0-9]*|0\.[0-9]*[1-9][0-9]*)(\.[0-9]+)?"' && nonempty=$((nonempty + 1))
done
expect "timelines with a non-empty bar > 0" "$((nonempty > 0))" 1
# Where no cause dropped anything, the page says so in words instead of an empty chart.
if [ "$(jq '[.summary.drops[] | select(. != null and . > 0)] | length' "$snapshot")" = 0 ]; then
	expect "\"no drops in this window\" note" "$(grep -c 'no drops in this window' "$WORK/dom.html")" 1
fi
expect "other sysctls folded in <details>" "$(grep -c '<details><summary>[0-9]* other sysctls</summary>' "$WORK/dom.html")" 1
while read -r id bars; do
	expect "bars in chart $id" "$(awk -v id="$id" '$1 == id {print $2}' "$WORK/actual")" "$bars"
done <"$WORK/expected"

if [ -n "$keep" ]; then
	mkdir -p "$keep"
	cp "$WORK/report.html" "$WORK/report.png" "$keep/"
	echo "kept $keep/report.html and $keep/report.png"
fi
exit "$FAILED"
