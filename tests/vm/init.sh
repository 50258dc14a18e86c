#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# /init of the vmrun guest (see tests/vm/vmrun), run by busybox sh as PID 1
# from a tiny initramfs holding only a static busybox, this script and the
# kernel modules needed for 9p and overlayfs (flat in /lib/mods, load order
# in /lib/mods/order).
#
# Stage 1 (in the initramfs) builds the command's root on /newroot:
#   9p "hostroot" (the host's /, read-only)  = lower layer of an overlayfs
#   tmpfs                                    = its upper layer
#   fresh proc, sys, dev, dev/pts, dev/shm, run, bpffs, tracefs, debugfs,
#   cgroup2 inside it, and 9p "vmrunmods" (the kernel package's lib/modules)
#   on lib/modules
# then moves it onto / and chroots PID 1 into it (switch_root by hand).
# Stage 2 (PID 1 again, now a copy of busybox in /run/vmrun of the new root)
# runs the command script with the host's bash and powers off. With
# vmrun.init=systemd on the kernel command line (vmrun --systemd), PID 1
# becomes the host's systemd instead, and stage 2 runs as its only wanted
# unit, vmrun-command.service.
#
# Protocol with vmrun, through the 9p "vmrunout" folder (/run/vmrun/out in
# the guest):
#   cmd.sh   (from host)  the command script: environment, cd, exec CMD
#   started  (from guest) created just before the command starts
#   stdout, stderr        the command's output
#   rc       (from guest) the command's exit status, written last
#   timing                guest uptime at command start and end
# A setup failure prints "vmrun-init: FATAL: ..." on the console (ttyS0) and
# powers off without writing rc; vmrun reports that line.

B=/run/vmrun   # stage 2's home in the new root
O=$B/out       # the output folder, once moved into the new root

fatal() {
	echo "vmrun-init: FATAL: $*"
	sync
	poweroff -f
	sleep 5 # poweroff -f does not return; just in case
	exit 1
}

stage2() {
	export PATH=$B/bin
	if ! { mkdir -p $B/bin && $B/busybox --install -s $B/bin; }; then
		echo "vmrun-init: FATAL: busybox --install in $B"
		$B/busybox poweroff -f
	fi
	# shellcheck disable=SC3045 # busybox sh has ulimit -l
	ulimit -l unlimited # for BPF loaders that still raise RLIMIT_MEMLOCK
	cat /proc/uptime >$O/timing
	: >$O/started
	# env -i: the command gets exactly the environment cmd.sh exports, not
	# the kernel's defaults for init (TERM=linux, HOME=/).
	env -i /bin/bash $O/cmd.sh </dev/null >$O/stdout 2>$O/stderr
	rc=$?
	cat /proc/uptime >>$O/timing
	echo "$rc" >$O/rc.tmp && mv $O/rc.tmp $O/rc
	sync
	poweroff -f
}

if [ "${1:-}" = stage2 ]; then
	stage2
	exit 1 # not reached
fi

# ---------------------------------------------------------------- stage 1
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc || fatal "mount /proc"
mount -t sysfs sysfs /sys || fatal "mount /sys"
mount -t devtmpfs devtmpfs /dev || fatal "mount /dev"

# Kernel modules for virtio-pci, 9p and overlayfs, in dependency order.
while read -r ko; do
	insmod "/lib/mods/$ko" || fatal "insmod $ko"
done </lib/mods/order

# The 9p devices appear once virtio_pci and 9pnet_virtio have probed; that is
# normally synchronous, but retry briefly rather than fail on a slow probe.
mount_9p() { # TAG DIR EXTRA_OPTIONS
	n=0
	until mount -t 9p -o "trans=virtio,version=9p2000.L,msize=512000$3" "$1" "$2" 2>/dev/null; do
		n=$((n + 1))
		[ "$n" -lt 50 ] || fatal "cannot mount 9p tag $1 on $2"
		sleep 0.1
	done
}

mkdir -p /host /upper /newroot /out
# cache=loose: the host root is read-only for the guest and is not expected to
# change under a test, so caching dentries and pages is correct, and much
# faster than cache=none for exec-heavy work.
mount_9p hostroot /host ",ro,cache=loose"
mount_9p vmrunout /out ""

mount -t tmpfs -o mode=0755 tmpfs /upper || fatal "mount overlay upper tmpfs"
mkdir -p /upper/upper /upper/work
mount -t overlay -o lowerdir=/host,upperdir=/upper/upper,workdir=/upper/work overlay /newroot ||
	fatal "mount overlay root"

R=/newroot
mount -t proc proc $R/proc || fatal "mount proc"
mount -t sysfs sysfs $R/sys || fatal "mount sys"
mount -t devtmpfs devtmpfs $R/dev || fatal "mount dev"
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts $R/dev/pts || fatal "mount devpts"
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm || fatal "mount dev/shm"
# /run must be a fresh tmpfs: the host's /run holds the host's state, and
# "ip netns" bind-mounts namespaces under /run/netns.
mount -t tmpfs -o mode=0755 tmpfs $R/run || fatal "mount run"
mount -t bpf -o mode=0700 bpf $R/sys/fs/bpf || fatal "mount bpffs"
mount -t tracefs tracefs $R/sys/kernel/tracing || fatal "mount tracefs"
mount -t debugfs debugfs $R/sys/kernel/debug || fatal "mount debugfs"
# The host has cgroup v1 mounts under /sys/fs/cgroup; the guest gets plain v2.
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup || fatal "mount cgroup2"
# /lib is a relative symlink to usr/lib on the host, so this lands on
# $R/usr/lib/modules; the tmpfs upper layer makes the mkdir possible.
mkdir -p $R/lib/modules || fatal "mkdir lib/modules"
mount_9p vmrunmods $R/lib/modules ",ro"
# /tmp is deliberately NOT a fresh tmpfs: it stays the overlay view of the
# host's /tmp (writes go to the tmpfs upper layer), so a checkout or build tree
# that lives under /tmp is visible in the guest at the same path.

ip link set lo up || fatal "ip link set lo up"
hostname vmrun

# Stage 2 lives in the new root: a copy of busybox and of this script, and the
# output folder beside them.
mkdir -p $R$O || fatal "mkdir $B"
cp /bin/busybox /init $R$B/ || fatal "copy busybox to $B"
mount --move /out $R$O || fatal "move the output folder"

# switch_root by hand (mount --move + chroot, as busybox switch_root does, but
# keeping the initramfs). PID 1 itself must chroot: kernel threads share its
# fs_struct, and the kernel runs /sbin/modprobe for module autoloading (e.g.
# "ip link add type veth") from their root. It also makes the new root the
# mount namespace's root, so the command is not "chrooted" in the kernel's
# eyes and may create user namespaces.
if grep -q 'vmrun.init=systemd' /proc/cmdline; then
	# The host's fstab describes the host's disks: none of them is here.
	: >$R/etc/fstab || fatal "empty /etc/fstab"
	# systemd-tmpfiles-setup (pulled in by any unit the command starts) would empty /tmp ("D /tmp" in
	# tmp.conf), hiding the host's /tmp, where a CI checkout and its build tree may live.
	mkdir -p $R/etc/tmpfiles.d || fatal "mkdir /etc/tmpfiles.d"
	echo "d /tmp 1777 root root -" >$R/etc/tmpfiles.d/tmp.conf || fatal "write /etc/tmpfiles.d/tmp.conf"
	mkdir -p $R/etc/systemd/system || fatal "mkdir /etc/systemd/system"
	# DefaultDependencies=no: the boot starts this unit alone; whatever the
	# command starts with systemctl pulls in its own dependencies.
	cat >$R/etc/systemd/system/vmrun-command.service <<-EOF || fatal "write vmrun-command.service"
		[Unit]
		Description=vmrun: the command
		DefaultDependencies=no
		[Service]
		Type=oneshot
		TimeoutStartSec=infinity
		ExecStart=$B/busybox sh $B/init stage2
	EOF
	init="/lib/systemd/systemd --unit=vmrun-command.service"
	[ -x $R/lib/systemd/systemd ] || fatal "vmrun --systemd: no /lib/systemd/systemd on the host"
else
	init="$B/busybox sh $B/init stage2"
fi

cd $R || fatal "cd $R"
mount --move . / || fatal "mount --move $R /"
# shellcheck disable=SC2086 # $init is a command line
exec chroot . $init
