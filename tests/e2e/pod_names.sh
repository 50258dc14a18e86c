#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# pod_names.sh MODE: a netns is named `namespace/pod` from what containerd's CRI plugin records for the
# pod's sandbox (its OCI spec in the task's bundle: the pod's annotations, the netns's path), read from
# the node itself (issue 31). No containerd runs here: in a mount namespace of the test's own, a tmpfs
# on /run/containerd holds one bundle shaped as containerd writes it (tests/unit/fixtures/runtimes),
# its netns path pointing at the test's netns, and `ctbpf top` in that netns names its row by the pod.
# Then the runtime's directory is made unreadable (a file where a directory should be): top says so
# once, however many refreshes, and falls back to the `ip netns` name.
source "$(dirname "$0")/lib.sh"
mode=${1:?mode}
skip_unless_kernel_allows "$mode"
command -v unshare >/dev/null || { echo "skip: unshare is missing"; exit 77; }
fixture=$(dirname "$0")/../unit/fixtures/runtimes/containerd-sandbox.json
pod=e2e-pod-$$

load_modules
make_netns
keep_udp_entries
in_ns "$CTBPF_FLOWGEN" udp --port 20000 --count 20 >/dev/null 2>&1
expect "conntrack -C in the test netns" "$(ct_count)" 20
inode=$(ns_inode)

# The mount point must exist on the host; made (empty) only if it is not there, and removed after.
made_dir=
if [ ! -d /run/containerd ]; then
	mkdir /run/containerd
	made_dir=1
fi
cleanup_pods() {
	[ -z "$made_dir" ] || rmdir /run/containerd 2>/dev/null || true
	cleanup
}
trap cleanup_pods EXIT

# run_top SETUP: in a private mount namespace, SETUP (shell) with $1 = the tasks directory, then one
# top --json refresh in the test netns; top's stdout to $WORK/top.json, its stderr to $WORK/top.err.
run_top() {
	unshare -m --propagation private bash -s "$1" "$NS" "$CTBPF_BIN" "$fixture" "$pod" "$mode" "$WORK" <<-'SH'
	set -eu
	setup=$1 ns=$2 bin=$3 fixture=$4 pod=$5 mode=$6 work=$7
	mount -t tmpfs tmpfs /run/containerd
	tasks=/run/containerd/io.containerd.runtime.v2.task/k8s.io
	eval "$setup"
	ip netns exec "$ns" "$bin" top --mode "$mode" --json 0.5 3 >"$work/top.json" 2>"$work/top.err"
	SH
}
name_of_row() { jq -r --argjson n "$inode" 'select(.final) | .netns[] | select(.netns == $n) | .name' "$WORK/top.json"; }

# A sandbox's spec, as containerd keeps it: the test's pod name and namespace, the test netns's pin.
run_top 'mkdir -p "$tasks/4b1f0c3e9a7d"
	sed -e "s|/var/run/netns/cni-2d1c7a5e-3b4f-6a8d-9c0e-1f2a3b4c5d6e|/run/netns/$ns|" \
		-e "s|coredns-5d78c9869d-7xk2p|$pod|g" -e "s|kube-system|e2e-ns|g" "$fixture" >"$tasks/4b1f0c3e9a7d/config.json"'
log "top's row: $(jq -c 'select(.final) | .netns' "$WORK/top.json")"
expect "the netns named by its pod" "$(name_of_row)" "e2e-ns/$pod"
expect "no runtime said to be unreadable" "$(grep -c "cannot read" "$WORK/top.err" || true)" 0

# containerd's tasks cannot be listed: said once (3 refreshes), and the ip netns name instead.
run_top 'mkdir -p "$(dirname "$tasks")"; echo not-a-directory >"$tasks"'
log "top's stderr: $(cat "$WORK/top.err")"
expect "the unreadable runtime said once" "$(grep -c "cannot read containerd's containers" "$WORK/top.err")" 1
expect "the netns named by ip netns instead" "$(name_of_row)" "$NS"
finish
