#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# systemd_service.sh DEB N: the Debian package run as a fleet runs it, under a real systemd as
# PID 1 (the guest of `tests/vm/vmrun --systemd`), so the unit's whole sandbox applies: dynamic user,
# capability bounding set, NoNewPrivileges, seccomp filters, read-only system. `dpkg -i DEB` (made by
# tests/e2e/package.sh on the host: cpack under TCG takes minutes), `systemctl start ctbpf`; N new UDP flows in a test netns; /metrics says mode
# fentry and inserts N (= conntrack -C), the service's process runs as a non-root user with
# CAP_SYS_ADMIN given up after attaching; `systemctl reload` writes a snapshot holding the N inserts;
# `systemctl stop` ends it cleanly and leaves none of its programs or links in the kernel.
source "$(dirname "$0")/lib.sh"
deb=${1:?the .deb} n=${2:-1000}
BPFTOOL=${BPFTOOL:-/usr/sbin/bpftool}
[ "$(cat /proc/1/comm)" = systemd ] ||
	{ echo "systemd_service.sh: PID 1 is not systemd (run it in tests/vm/vmrun --systemd)" >&2; exit 2; }
! dpkg-query -W ctbpf >/dev/null 2>&1 ||
	{ echo "systemd_service.sh: a ctbpf package is installed already; this test installs and purges its own" >&2; exit 2; }
remove_package() {
	systemctl stop ctbpf 2>/dev/null || true
	dpkg --purge ctbpf >/dev/null 2>&1 || true
	cleanup
}
trap remove_package EXIT

load_modules
make_netns
keep_udp_entries

log "dpkg -i $deb"
dpkg -i "$deb" >"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log" >&2; exit 1; }
expect "dpkg status" "$(dpkg-query -W -f '${Status}' ctbpf)" "install ok installed"

# metrics: the page, or nothing while the agent is not up. sample NAME: the sum of NAME's series.
metrics() { curl -sf http://127.0.0.1:9640/metrics 2>/dev/null || true; }
sample() { metrics | awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2; n++ } END { print n ? s : "none" }'; }

systemctl start ctbpf
for _ in $(seq 360); do
	[ "$(sample ctbpf_attached)" = 1 ] && break
	systemctl -q is-active ctbpf || break
	sleep 0.5
done
pid=$(systemctl show -p MainPID --value ctbpf)
log "ctbpf.service: $(systemctl is-active ctbpf), main pid $pid"
expect "ctbpf_attached" "$(sample ctbpf_attached)" 1
expect "mode" "$(metrics | grep -o '^ctbpf_build_info{[^}]*mode="[a-z]*"' | sed 's/.*mode="//; s/"//')" fentry
# The one capability the unit withholds on purpose (packaging/ctbpf.service says why).
expect "privileges missing" "$(metrics | awk '/^ctbpf_privilege_missing\{/ && $2 == 1' | grep -o 'capability="[A-Z_]*"' | paste -sd' ')" \
	'capability="CAP_SYS_PTRACE"'

# The sandbox, as the kernel applies it to the running process.
status=$(cat "/proc/$pid/status")
field() { awk -v f="$1:" '$1 == f { print $2 }' <<<"$status"; }
expect "runs as a non-root (dynamic) user" "$(($(field Uid) != 0))" 1
expect "NoNewPrivs" "$(field NoNewPrivs)" 1
expect "seccomp filter mode" "$(field Seccomp)" 2
# CAP_SYS_ADMIN is bit 21: granted for attaching, given up once attached.
expect "CAP_SYS_ADMIN effective after attach" "$(((0x$(field CapEff) >> 21) & 1))" 0
expect "CAP_SYS_ADMIN permitted after attach" "$(((0x$(field CapPrm) >> 21) & 1))" 0
expect "start-up says it gave CAP_SYS_ADMIN up" \
	"$(journalctl -u ctbpf -o cat --no-pager | grep -c 'CAP_SYS_ADMIN given up')" 1
links=$(held "$pid" link | paste -sd' ')
progs=$(held "$pid" prog | paste -sd' ')
log "ctbpf holds links $links, programs $progs"
expect "links held > 0" "$([ -n "$links" ] && echo yes)" yes

read -r sent refused <<<"$(udp_flood 20000 "$n")"
log "sent $sent, refused $refused"
count=$(ct_count)
inode=$(stat -L -c %i "/run/netns/$NS")
# serve sums per-CPU counters at each scrape: wait (bounded) for the page to include every flow.
for _ in $(seq 60); do
	[ "$(sample ctbpf_conntrack_inserts_total)" = "$n" ] && break
	sleep 0.5
done
expect "conntrack -C" "$count" "$n"
expect "inserts" "$(sample ctbpf_conntrack_inserts_total)" "$n"
expect "inserts of the test netns" "$(sample "ctbpf_conntrack_netns_inserts_total{netns=\"$inode\"}")" "$n"

# systemctl reload: SIGHUP, and the rolling recorder writes the window so far at once.
state=/var/lib/ctbpf
before=$(find "$state"/ -name 'ctbpf-*.json' | wc -l)
systemctl reload ctbpf
for _ in $(seq 60); do
	[ "$(find "$state"/ -name 'ctbpf-*.json' | wc -l)" -gt "$before" ] && break
	sleep 0.5
done
snapshot=$(find "$state"/ -name 'ctbpf-*.json' | sort | tail -n 1)
log "snapshot after reload: ${snapshot:-none}"
expect "snapshots written by reload" "$(($(find "$state"/ -name 'ctbpf-*.json' | wc -l) - before))" 1
expect "snapshot's inserts" "$(jq .summary.inserts "$snapshot" 2>/dev/null)" "$n"
expect "snapshot readable by ctbpf report" "$(ctbpf report --json "$snapshot" | jq .summary.inserts)" "$n"

systemctl stop ctbpf
expect "after stop: state" "$(systemctl is-active ctbpf || true)" inactive
expect "after stop: result" "$(systemctl show -p Result --value ctbpf)" success
# Links and programs go with the process's descriptors; the kernel frees them asynchronously.
for _ in $(seq 50); do
	# shellcheck disable=SC2086 # one id a word
	left=$(alive link $links | paste -sd' ')
	[ -z "$left" ] && break
	sleep 0.1
done
expect "ctbpf's links left after stop" "${left:-none}" none
expect "links left in the kernel after stop" "$("$BPFTOOL" link show --json | jq length)" 0
# shellcheck disable=SC2086 # one id a word
left_progs=$(alive prog $progs | paste -sd' ')
expect "ctbpf's programs left after stop" "${left_progs:-none}" none
if [ "$FAILED" -ne 0 ]; then journalctl -u ctbpf -o cat --no-pager >&2 || true; fi
finish
