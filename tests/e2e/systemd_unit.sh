#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# systemd_unit.sh: packaging/ctbpf.service passes `systemd-analyze verify` (with ExecStart pointed
# at the built binary, since verify checks that the command exists).
source "$(dirname "$0")/lib.sh"
unit_src="$(dirname "$0")/../../packaging/ctbpf.service"
mkdir -p "$WORK/units"
sed "s|/usr/sbin/ctbpf|$CTBPF_BIN|" "$unit_src" >"$WORK/units/ctbpf.service"
rc=0
out=$(systemd-analyze verify "$WORK/units/ctbpf.service" 2>&1) || rc=$?
log "systemd-analyze: ${out:-no complaints}"
expect "systemd-analyze verify exit code" "$rc" 0
expect "systemd-analyze complaints" "$(grep -c 'ctbpf.service' <<<"$out" || true)" 0
finish
