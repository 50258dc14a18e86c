#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# package.sh BUILD_DIR [OUT_DIR]: `cpack -G DEB` in the build tree makes ctbpf_<version>_amd64.deb with
# the binary in /usr/sbin, the unit in /lib/systemd/system, a man page, the README, the alert rules and
# the dashboard under /usr/share/ctbpf, and the machine-readable copyright file; Depends from
# dpkg-shlibdeps; lintian reports no error. The package is left in OUT_DIR when given (for the VM test
# that installs it under systemd).
set -euo pipefail
build=${1:?build dir}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=${2:-$work}
mkdir -p "$out"
rm -f "$out"/ctbpf_*.deb
failed=0
expect() {
	if [ "$2" = "$3" ]; then echo "ok   $1 = $2"; else echo "FAIL $1 = $2, expected $3"; failed=1; fi
}
version=$(sed -n 's/^project(ctbpf VERSION \([0-9.]*\).*/\1/p' "$(dirname "$0")/../../CMakeLists.txt")
(cd "$build" && cpack -G DEB -B "$work" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log"; exit 1; }
deb=$work/ctbpf_${version}_amd64.deb
expect "package file" "$(ls "$work"/*.deb)" "$deb"
[ "$out" = "$work" ] || cp "$deb" "$out/"
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for path in ./usr/sbin/ctbpf ./lib/systemd/system/ctbpf.service ./usr/share/man/man8/ctbpf.8.gz \
	./usr/share/doc/ctbpf/README.md ./usr/share/doc/ctbpf/copyright ./usr/share/doc/ctbpf/changelog.gz \
	./usr/share/ctbpf/prometheus/ctbpf-rules.yml ./usr/share/ctbpf/grafana/ctbpf-dashboard.json; do
	expect "contains $path" "$(grep -cx "$path" <<<"$contents")" 1
done
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for lib in libbpf1 libc6 libfmt9 libmnl0 libnetfilter-conntrack3 libmicrohttpd12; do
	expect "depends on $lib" "$(grep -c "$lib" <<<"$depends")" 1
done
dpkg-deb -x "$deb" "$work/root"
expect "packaged binary" "$("$work/root/usr/sbin/ctbpf" --version)" "ctbpf $version"
# The copyright file is Debian's machine-readable format (DEP-5): every file's licence named.
copyright=$work/root/usr/share/doc/ctbpf/copyright
expect "copyright format" "$(head -1 "$copyright")" "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
expect "copyright licences" "$(sed -n 's/^License: //p' "$copyright" | sort -u | paste -sd,)" \
	"Apache-2.0,BSD-2-clause,GPL-2,GPL-2 or BSD-2-clause"
expect "man page NAME" "$(zcat "$work/root/usr/share/man/man8/ctbpf.8.gz" | grep -c '^ctbpf \\- ')" 1
lintian_out=$(lintian "$deb" 2>&1 | grep -v 'running with root privileges' || true)
echo "lintian: ${lintian_out:-clean}"
expect "lintian errors" "$(grep -c '^E: ' <<<"$lintian_out" || true)" 0
exit "$failed"
