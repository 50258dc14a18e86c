#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# image.sh DEB|IMAGE_TAR MODE [N]: the container image (packaging/image/build.sh) run as the DaemonSet
# says; MODE is the family serve must pick by itself here (the manifest gives no --mode).
#   1. The image is built from DEB (or IMAGE_TAR is build.sh's archive, already built: in a guest,
#      which has no network); its config has the entrypoint `ctbpf serve` and the OCI labels
#      (licences, version).
#   2. A containerd of the test's own (its own root, state and socket under the test's directory)
#      imports the archive (`ctr images import`) under the name the manifest's `image:` gives.
#   3. ctr runs it with the manifest's container as packaging/kubernetes/ctbpf.yaml says it
#      (read from the file, not copied here): its args with NODE_IP, every capability but the
#      manifest's dropped, its read-only root, containerd's default seccomp profile (RuntimeDefault),
#      its host mounts with their read-only flag and propagation, the node's network namespace
#      (hostNetwork; outside a guest, a netns of the test's own stands for it, so that its port and
#      traffic are the test's) and the node's PID namespace (hostPID; skipped, and said, where this
#      process cannot name PID 1's namespace). ctr has no flag for allowPrivilegeEscalation: the
#      process's NoNewPrivs is printed, not held.
#      Then: serve answers /healthz; ctbpf_build_info says MODE; ctbpf_privilege_missing is all 0; the
#      container's bounding set holds no capability the manifest does not add; its peak RSS is within
#      the manifest's memory request (and so its limit); in fentry and kprobe
#      modes, N flows in the test netns make N inserts in its series, as conntrack -C grows by N.
#   4. The same with CAP_NET_ADMIN removed: serve says what it lost, in its log and as
#      ctbpf_privilege_missing{capability="CAP_NET_ADMIN"} 1.
# Needs mmdebstrap, umoci and the network to Debian's mirror (or MIRROR) to build, containerd (ctr).
# In the 6.1 guest, with an archive built on the host:
#   tests/vm/vmrun -- tests/e2e/image.sh IMAGE_TAR fentry 1000
source "$(dirname "$0")/lib.sh"
input=${1:?usage: image.sh DEB|IMAGE_TAR MODE [N]}
mode=${2:?usage: image.sh DEB|IMAGE_TAR MODE|auto [N]}
n=${3:-1000}
here=$(cd "$(dirname "$0")" && pwd)
manifest=$here/../../packaging/kubernetes/ctbpf.yaml
for tool in mmdebstrap umoci containerd ctr; do
	command -v "$tool" >/dev/null || { echo "e2e: no $tool (apt-get install mmdebstrap umoci containerd)" >&2; exit 1; }
done
load_modules
# auto (the host test): serve picks its family by itself, so the expected one is the cheapest this
# kernel allows (fentry on a stock Debian 12, tracepoint on a kernel that refuses the probes).
[ "$mode" = auto ] && mode=$(mode_auto_should_pick)
skip_unless_kernel_allows "$mode"
make_netns
make_quiet_netns
keep_udp_entries

# 1. The image.
if [[ $input == *.deb ]]; then
	version=$(dpkg-deb -f "$input" Version)
	"$here/../../packaging/image/build.sh" "$input" "$WORK/image.tar" 2>&1 | tail -n 1
else
	version=$(sed -n 's/^project(ctbpf VERSION \([0-9.]*\).*/\1/p' "$here/../../CMakeLists.txt")
	cp "$input" "$WORK/image.tar"
fi
mkdir "$WORK/oci"
tar -xf "$WORK/image.tar" -C "$WORK/oci"
blob() { cat "$WORK/oci/blobs/${1/://}"; }
image_manifest=$(blob "$(jq -r '.manifests[0].digest' "$WORK/oci/index.json")")
config=$(blob "$(jq -r .config.digest <<<"$image_manifest")")
expect "entrypoint" "$(jq -c .config.Entrypoint <<<"$config")" '["/usr/sbin/ctbpf","serve"]'
expect "label licences" "$(jq -r '.config.Labels["org.opencontainers.image.licenses"]' <<<"$config")" \
	"Apache-2.0 AND (GPL-2.0-only OR BSD-2-Clause)"
expect "label version" "$(jq -r '.config.Labels["org.opencontainers.image.version"]' <<<"$config")" "$version"
log "image: $(jq '[.layers[].size] | add' <<<"$image_manifest") bytes compressed"

# The manifest's container, as shell-readable lines (python3-yaml reads the manifest).
spec=$(/usr/bin/python3 - "$manifest" "$WORK" <<'PY'
import json, os, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
pod = next(d for d in docs if d["kind"] == "DaemonSet")["spec"]["template"]["spec"]
c = pod["containers"][0]
sc = c.get("securityContext", {})
volumes = {v["name"]: v for v in pod.get("volumes", [])}
mounts = []
for m in c.get("volumeMounts", []):
    v = volumes[m["name"]]
    assert "hostPath" in v, f"volume {m['name']} is not a hostPath: translate it here"
    opts = ["rbind", "ro" if m.get("readOnly") else "rw"]
    opts.append({"HostToContainer": "rslave", "Bidirectional": "rshared"}.get(m.get("mountPropagation"), "rprivate"))
    src = v["hostPath"]["path"]
    # DirectoryOrCreate: the kubelet makes a missing directory. Here an empty one of the test's own
    # stands in for it (what the container would see), so the host's /run is left as it was.
    if v["hostPath"].get("type") == "DirectoryOrCreate" and not os.path.isdir(src):
        src = os.path.join(sys.argv[2], "hostpath-" + m["name"])
        os.makedirs(src, exist_ok=True)
    mounts.append(f"type=bind,src={src},dst={m['mountPath']},options={':'.join(opts)}")
print(json.dumps({
    "image": c["image"], "args": c.get("args", []),
    "env": {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c.get("env", []) if "valueFrom" in e},
    "add": ["CAP_" + x for x in sc.get("capabilities", {}).get("add", [])],
    "drop_all": "ALL" in sc.get("capabilities", {}).get("drop", []),
    "read_only": sc.get("readOnlyRootFilesystem", False),
    "seccomp": sc.get("seccompProfile", {}).get("type"),
    "privileged": sc.get("privileged", False),
    "host_network": pod.get("hostNetwork", False), "host_pid": pod.get("hostPID", False),
    "memory_limit_kib": int(c["resources"]["limits"]["memory"].removesuffix("Mi")) * 1024,
    "memory_request_kib": int(c["resources"]["requests"]["memory"].removesuffix("Mi")) * 1024,
    "mounts": mounts}))
PY
)
log "the manifest's container: $spec"
expect "the manifest's image is the archive's name" "$(jq -r .image <<<"$spec")" "docker.io/library/ctbpf:$version"
expect "the manifest drops every capability first" "$(jq .drop_all <<<"$spec")" true
expect "the manifest's container is not privileged" "$(jq .privileged <<<"$spec")" false

# 2. A containerd of the test's own.
ctd=$WORK/ctd
mkdir -p "$ctd"
cat >"$ctd/config.toml" <<EOF
version = 2
root = "$ctd/root"
state = "$ctd/state"
[grpc]
  address = "$ctd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
EOF
containerd --config "$ctd/config.toml" >"$ctd/containerd.log" 2>&1 &
CTD_PID=$!
ctr_() { ctr -a "$ctd/containerd.sock" -n k8s.io "$@"; }
# Stop whatever of it is left: its tasks, the shims it started, then containerd; unmount its root.
stop_containerd() {
	local pid c
	for c in $(ctr_ task ls -q 2>/dev/null); do ctr_ task kill -s KILL "$c" >/dev/null 2>&1 || true; done
	sleep 0.5
	for pid in /proc/[0-9]*; do
		pid=${pid#/proc/}
		tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "-address $ctd/containerd.sock" &&
			kill -KILL "$pid" 2>/dev/null
	done
	kill -TERM "$CTD_PID" 2>/dev/null && wait "$CTD_PID" 2>/dev/null
	grep -oF " $ctd/" /proc/mounts >/dev/null && awk -v d="$ctd/" 'index($2, d) == 1 {print $2}' /proc/mounts |
		sort -r | xargs -r -n1 umount -l
	return 0
}
trap 'stop_containerd; cleanup' EXIT
for _ in $(seq 100); do [ -S "$ctd/containerd.sock" ] && ctr_ version >/dev/null 2>&1 && break; sleep 0.1; done
ctr_ images import "$WORK/image.tar" >/dev/null
expect "imported as the manifest's image" "$(ctr_ images ls -q | grep -cxF "$(jq -r .image <<<"$spec")")" 1

# 3. Run as the manifest says. run_as_manifest NAME CAPS_REMOVED...: in the background; the log in
# $WORK/NAME.log. ALL_CAPS: every capability, in capability.h's order (a name's index is its bit).
ALL_CAPS=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE
	NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT
	SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE
	AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ
	PERFMON BPF CHECKPOINT_RESTORE)
node_ip=127.0.0.1
if in_guest; then node_net=(--net-host); else node_net=(--with-ns "network:/run/netns/$QUIET_NS"); fi
node_pid=()
if [ "$(jq .host_pid <<<"$spec")" = true ]; then
	if readlink /proc/1/ns/pid >/dev/null 2>&1; then
		node_pid=(--with-ns pid:/proc/1/ns/pid)
	else
		log "hostPID not translated: this process cannot name PID 1's pid namespace here"
	fi
fi
run_as_manifest() {
	local name=$1 cap flags=()
	shift
	local removed=" $* "
	mapfile -t add < <(jq -r '.add[]' <<<"$spec")
	for cap in "${ALL_CAPS[@]}"; do
		[[ " ${add[*]} " == *" CAP_$cap "* && $removed != *" CAP_$cap "* ]] || flags+=(--cap-drop "CAP_$cap")
	done
	for cap in "${add[@]}"; do [[ $removed == *" $cap "* ]] || flags+=(--cap-add "$cap"); done
	[ "$(jq .read_only <<<"$spec")" = true ] && flags+=(--read-only)
	[ "$(jq -r .seccomp <<<"$spec")" = RuntimeDefault ] && flags+=(--seccomp)
	[ "$(jq .host_network <<<"$spec")" = true ] && flags+=("${node_net[@]}")
	flags+=("${node_pid[@]}")
	while read -r m; do flags+=(--mount "$m"); done < <(jq -r '.mounts[]' <<<"$spec")
	flags+=(--env "NODE_IP=$node_ip")
	mapfile -t args < <(jq -r '.args[]' <<<"$spec" | sed "s/\$(NODE_IP)/$node_ip/g")
	mapfile -t entry < <(jq -r '.config.Entrypoint[]' <<<"$config")
	log "ctr run ${flags[*]} $(jq -r .image <<<"$spec") $name ${entry[*]} ${args[*]}"
	ctr_ run --rm "${flags[@]}" "$(jq -r .image <<<"$spec")" "$name" "${entry[@]}" "${args[@]}" \
		>"$WORK/$name.log" 2>&1 &
	RUN_PID=$!
}
port=$(jq -r '.args[]' <<<"$spec" | sed -n 's/.*:\([0-9]*\)$/\1/p')
node() { if in_guest; then "$@"; else in_quiet "$@"; fi; }
scrape() { node curl -s --max-time 5 "http://$node_ip:$port$1"; }
# wait_metrics NAME: until serve says it is attached (ctbpf_attached 1).
wait_metrics() {
	local _
	for _ in $(seq 300); do
		scrape /metrics 2>/dev/null | grep -qx 'ctbpf_attached 1' && return 0
		kill -0 "$RUN_PID" 2>/dev/null || break
		sleep 0.2
	done
	echo "FAIL serve never served its metrics:"
	cat "$WORK/$1.log"
	exit 1
}
stop_run() {
	ctr_ task kill -s TERM "$1" >/dev/null 2>&1 || true
	wait "$RUN_PID" || true
}

run_as_manifest ctbpf-node
wait_metrics ctbpf-node
expect "GET /healthz" "$(scrape /healthz)" ok
metrics=$(scrape /metrics)
expect "mode" "$(grep -c "^ctbpf_build_info{version=\"$version\",mode=\"$mode\"} 1" <<<"$metrics")" 1
expect "ctbpf_privilege_missing all 0" "$(grep '^ctbpf_privilege_missing{' <<<"$metrics" | grep -vc ' 0$')" 0
task_pid=$(ctr_ task ls | awk '$1 == "ctbpf-node" {print $2}')
bounding=$(sed -n 's/^CapBnd:\t//p' "/proc/$task_pid/status")
log "the container's process $task_pid: CapBnd $bounding, NoNewPrivs $(sed -n 's/^NoNewPrivs:\t//p' "/proc/$task_pid/status")"
extra=$(/usr/bin/python3 - "$bounding" "$(jq -r '.add | join(",")' <<<"$spec")" "${ALL_CAPS[@]}" <<'PY'
import sys
# ALL_CAPS is in capability.h's order: a name's index is its bit.
bits, allowed, names = int(sys.argv[1], 16), set(sys.argv[2].split(",")), sys.argv[3:]
print(" ".join("CAP_" + n for i, n in enumerate(names) if bits >> i & 1 and "CAP_" + n not in allowed))
PY
)
expect "capabilities beyond the manifest's in the bounding set" "${extra:-none}" none
# The manifest's memory request and limit against the container's own peak (start-up included).
peak_kib=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$task_pid/status")
rss_kib=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$task_pid/status")
log "serve in the container: VmRSS $rss_kib KiB, VmHWM (peak) $peak_kib KiB"
expect "peak RSS within the manifest's memory request" "$((peak_kib <= $(jq .memory_request_kib <<<"$spec")))" 1
if [ "$mode" != tracepoint ]; then
	inode=$(ns_inode)
	series() { scrape /metrics | sed -n "s/^ctbpf_conntrack_netns_inserts_total{netns=\"$inode\"} //p"; }
	before_ct=$(ct_count)
	udp_flood 20000 "$n" >/dev/null
	after_ct=$(ct_count)
	sleep 3 # one interval (-i 2) and a little
	expect "conntrack -C growth" "$((after_ct - before_ct))" "$n"
	expect "inserts of the test netns" "$(series)" "$n"
fi
stop_run ctbpf-node
grep -q 'CAP_SYS_ADMIN given up' "$WORK/ctbpf-node.log" && echo "ok   log: CAP_SYS_ADMIN given up" ||
	{ echo "FAIL log lacks 'CAP_SYS_ADMIN given up'"; FAILED=1; }

# 4. One capability removed.
run_as_manifest ctbpf-node-less CAP_NET_ADMIN
wait_metrics ctbpf-node-less
expect "ctbpf_privilege_missing CAP_NET_ADMIN" \
	"$(scrape /metrics | grep -c '^ctbpf_privilege_missing{capability="CAP_NET_ADMIN",feature="kernel_stats"} 1$')" 1
stop_run ctbpf-node-less
expect "log: without CAP_NET_ADMIN" "$(grep -c '^ctbpf: without CAP_NET_ADMIN: ' "$WORK/ctbpf-node-less.log")" 1
[ "$FAILED" = 0 ] || cat "$WORK/ctbpf-node.log" "$WORK/ctbpf-node-less.log" >&2
exit "$FAILED"
