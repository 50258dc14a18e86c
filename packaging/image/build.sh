#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# build.sh CTBPF_DEB [OUT_TAR]: the container image of `ctbpf serve`, from Debian's packages only: no
# base image, no registry, no Dockerfile. mmdebstrap puts the .deb that CPack makes (`cpack -G DEB`
# in the build tree, tests/e2e/package.sh) and only its run-time libraries into an empty root (no
# shell, no dpkg, no apt in the image), with the packages' copyright files and the rest of
# /usr/share/doc, man pages and locales left out. umoci makes that tree one layer of an OCI image
# whose entrypoint is `ctbpf serve`, with the OCI labels (licences, version, revision, source).
# Writes OUT_TAR (default ctbpf-image-VERSION.tar): an OCI archive (index.json, oci-layout, blobs/)
# that also carries docker's manifest.json, so that
#   podman load -i OUT_TAR        ctr -n k8s.io images import OUT_TAR        docker load -i OUT_TAR
# load it as docker.io/library/ctbpf:VERSION (podman and ctr tried; docker not tried here).
#
# Needs root (the packages' files keep their owners) and: apt-get install mmdebstrap umoci jq.
# Packages come from MIRROR (default: Debian's bookworm and bookworm-security on deb.debian.org); set
# it to a local mirror or a file:// one to build without the network. SOURCE_DATE_EPOCH, when set, is
# the image's creation time and no file is newer (mmdebstrap honours it too): a step towards a
# reproducible build, not checked.
set -euo pipefail
deb=${1:?usage: build.sh CTBPF_DEB [OUT_TAR]}
deb=$(realpath "$deb")
version=$(dpkg-deb -f "$deb" Version)
out=${2:-ctbpf-image-$version.tar}
out=$(realpath -m "$out")
suite=${SUITE:-bookworm}
name=ctbpf:$version
here=$(cd "$(dirname "$0")" && pwd)
# Where the source is published (org.opencontainers.image.source): CTBPF_SOURCE_URL, or this
# checkout's origin when that is an https URL; the commit it was built from, when in a checkout.
source_url=${CTBPF_SOURCE_URL:-$(git -C "$here" remote get-url origin 2>/dev/null | grep '^https://' || true)}
revision=$(git -C "$here" rev-parse HEAD 2>/dev/null || true)
for tool in mmdebstrap umoci jq dpkg-deb; do
	command -v "$tool" >/dev/null || { echo "build.sh: needs $tool (apt-get install mmdebstrap umoci jq)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "build.sh: run as root (the packages' files keep their owners)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/deb"
cp "$deb" "$work/deb/"
created=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%dT%H:%M:%SZ)

# The root file system: the .deb and what it Depends on (libc, libbpf, libmicrohttpd and theirs),
# extracted (--variant=extract: no maintainer script runs; these are libraries and one binary), with
# base-files for /etc/os-release and the usual directories. mmdebstrap wants the .deb at the same
# path inside the new root, so a setup hook puts a copy there.
mirrors=()
if [ -n "${MIRROR:-}" ]; then
	mirrors=("$MIRROR")
else
	mirrors=("deb http://deb.debian.org/debian $suite main"
		"deb http://deb.debian.org/debian-security $suite-security main")
fi
layout=$work/oci
umoci init --layout "$layout"
umoci new --image "$layout:$version"
umoci unpack --image "$layout:$version" "$work/bundle" >/dev/null
root=$work/bundle/rootfs
mmdebstrap --quiet --variant=extract --format=directory --skip=cleanup/apt/cache \
	--include=base-files --include="$work/deb/$(basename "$deb")" \
	--setup-hook='mkdir -p "$1'"$work"'/deb" && cp '"$(printf %q "$deb")"' "$1'"$work"'/deb/"' \
	"$suite" "$root" "${mirrors[@]}"

# Each package recorded in /var/lib/dpkg/status, so that `dpkg --root` and image scanners see what
# the image holds and at which version. Then left out: the build machine's /etc/hostname and
# /etc/resolv.conf (mmdebstrap copies them in; the runtime gives the container its own), apt's
# sources and caches and the .debs, documentation but the copyright files, man pages, locales, info,
# gdb's helpers, the systemd unit (systemd does not run in the image) and iconv's modules (gconv:
# charsets other than UTF-8, ASCII and Latin-1, which libc has built in; nothing in ctbpf converts
# charsets).
for f in "$root"/var/cache/apt/archives/*.deb "$deb"; do
	echo "Package: $(dpkg-deb -f "$f" Package)"
	echo "Status: install ok installed"
	dpkg-deb -f "$f" Priority Section Installed-Size Maintainer Architecture Multi-Arch Source Version \
		Replaces Provides Depends Pre-Depends Breaks Conflicts Description Homepage
	echo
done >"$root/var/lib/dpkg/status"
rm -rf "${root:?}$work" "$root"/etc/{hostname,resolv.conf,apt} "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* \
	"$root"/var/log/* "$root"/usr/share/{man,locale,lintian,info,gdb} "$root"/lib/systemd/system \
	"$root"/usr/lib/x86_64-linux-gnu/gconv
find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$root/usr/share/doc" "$root/lib" "$root/tmp" -mindepth 1 -type d -empty -delete
chmod 1777 "$root/tmp"
ldconfig -r "$root"
if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
	find "$root" -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
fi

# One layer, the entrypoint and the labels.
umoci repack --image "$layout:$version" --history.created "$created" \
	--history.created_by "packaging/image/build.sh $(basename "$deb")" "$work/bundle"
labels=(
	org.opencontainers.image.title=ctbpf
	"org.opencontainers.image.description=conntrack observability with eBPF: ctbpf serve, the Prometheus agent"
	org.opencontainers.image.version="$version"
	org.opencontainers.image.created="$created"
	# user space Apache-2.0; the BPF programs (bpf/) and their ABI header GPL-2.0-only OR BSD-2-Clause.
	"org.opencontainers.image.licenses=Apache-2.0 AND (GPL-2.0-only OR BSD-2-Clause)"
	org.opencontainers.image.base.name=scratch
)
[ -n "$source_url" ] && labels+=(org.opencontainers.image.source="$source_url")
[ -n "$revision" ] && labels+=(org.opencontainers.image.revision="$revision")
[ -n "$source_url" ] || echo "build.sh: no org.opencontainers.image.source label: set CTBPF_SOURCE_URL" >&2
config_args=(--no-history --image "$layout:$version" --created "$created" --author "ctbpf"
	--config.entrypoint /usr/sbin/ctbpf --config.entrypoint serve
	--config.cmd --listen --config.cmd :9640
	--config.exposedports 9640/tcp --config.workingdir / --config.user 0:0
	--config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin)
for label in "${labels[@]}"; do
	config_args+=(--config.label "$label" --manifest.annotation "$label")
done
umoci config "${config_args[@]}"
umoci gc --layout "$layout"

# index.json names the image for each loader: the OCI tag (podman), containerd's own annotation
# (ctr images import); manifest.json is docker's (docker load before version 25 reads only that).
manifest=$(jq -r '.manifests[0].digest' "$layout/index.json")
manifest_blob=$layout/blobs/${manifest/://}
config=$(jq -r '.config.digest' "$manifest_blob")
mapfile -t layers < <(jq -r '.layers[].digest' "$manifest_blob")
jq --arg name "$name" --arg full "docker.io/library/$name" \
	'.manifests[0].annotations = {"org.opencontainers.image.ref.name": $name, "io.containerd.image.name": $full}' \
	"$layout/index.json" >"$work/index.json"
mv "$work/index.json" "$layout/index.json"
jq -n --arg config "blobs/${config/://}" --arg name "$name" \
	'[{Config: $config, RepoTags: [$name], Layers: [$ARGS.positional[] | "blobs/" + sub(":"; "/")]}]' \
	--args "${layers[@]}" >"$layout/manifest.json"

# The archive: sorted names, fixed owners and times.
(cd "$layout" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
	tar --no-recursion --owner=0 --group=0 --numeric-owner --mode=go+rX --mtime="@${SOURCE_DATE_EPOCH:-0}" \
		-cf "$out" -T -)
layer_bytes=$(jq '[.layers[].size] | add' "$manifest_blob")
unpacked_bytes=$(du -sb --apparent-size "$work/bundle/rootfs" | cut -f1)
echo "build.sh: $out: $name, layer $((layer_bytes / 1024)) KiB compressed," \
	"$((unpacked_bytes / 1024)) KiB unpacked, archive $(($(stat -c %s "$out") / 1024)) KiB"
