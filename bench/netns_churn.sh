#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# netns_churn.sh [MODE [NETNS [SECONDS]]]: issue 31's churn, at scale: NETNS (1000) namespaces made,
# each making a known number of flows, and deleted over at least SECONDS (300) while serve runs with
# --netns-labels 4, scraped once a second. It is tests/e2e/serve_churn.sh with these sizes (that
# script checks every scrape's sums, the bound, the busiest live netns labelled, no dead name, and RSS
# at the end within 2 MiB of RSS after the first 100 netns); this prints its verdicts and numbers.
# MODE: fentry (default; the 6.1 guest: tests/vm/vmrun --timeout 1800 -- bench/netns_churn.sh) or
# tracepoint (any kernel; serve then has no per-netns series, so only RSS and the scrapes mean anything).
set -euo pipefail
: "${CTBPF_BIN:?set CTBPF_BIN to the ctbpf binary}" "${CTBPF_FLOWGEN:?set CTBPF_FLOWGEN to flowgen}"
mode=${1:-fentry} total=${2:-1000} seconds=${3:-300}
start=$(date +%s)
rc=0
"$(dirname "$0")/../tests/e2e/serve_churn.sh" "$mode" "$total" "$seconds" 100 || rc=$?
echo "netns_churn: mode $mode, $total netns over $(($(date +%s) - start)) s, verdict $([ $rc = 0 ] && echo pass || echo "FAIL ($rc)")"
exit $rc
