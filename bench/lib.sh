# SPDX-License-Identifier: Apache-2.0
# Shared by the bench scripts (sourced): the flood's netns and starting a tracer. Needs NS and WORK.

# flood_netns: netns $NS with loopback up and conntrack on (a ct expression is what enables it in a
# netns); its input drops the flood's UDP, so each datagram is one new entry and nothing answers.
flood_netns() {
	for m in nf_conntrack nf_tables nft_ct nf_conntrack_netlink; do
		[ -d /sys/module/$m ] || modprobe $m 2>/dev/null || true
	done
	ip netns add "$NS"
	ip -n "$NS" link set lo up
	ip netns exec "$NS" nft -f - <<'NFT'
table inet bench {
	chain out { type filter hook output priority 0; ct state new counter; }
	chain in { type filter hook input priority 0; udp dport 20000-59999 drop; }
}
NFT
}

# start_ctbpf CONFIG PORT: runs ctbpf as CONFIG says ("serve,--mode,fentry"; serve listens on PORT)
# and waits until every program is attached; its pid is in $pid.
start_ctbpf() {
	local args
	IFS=, read -r -a args <<<"$1"
	[ "${args[0]}" = serve ] && args+=(--listen "127.0.0.1:$2")
	rm -f "$WORK/ready"
	"$CTBPF_BIN" "${args[@]}" --ready-file "$WORK/ready" >/dev/null 2>"$WORK/err" &
	pid=$!
	while [ ! -e "$WORK/ready" ]; do
		kill -0 $pid 2>/dev/null || { cat "$WORK/err" >&2; exit 1; }
		sleep 0.1
	done
}

# stop_tracer PID: SIGINT, then up to 10 s for PID to exit (SIGKILL after that), then reap it. A plain
# `wait` after the SIGINT hung for half an hour in the guest, three times, after a bpftrace flood,
# although bpftrace had exited within 0.3 s: its exit is polled instead.
stop_tracer() {
	kill -INT "$1" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# The big table of issue 18: nf_conntrack_max 2097152 and 262144 buckets. Both are global:
# big_table_sizes saves them (in $WORK) and sets them, big_table_restore puts them back (after the
# entries' netns is gone: a hashsize change rehashes every entry left).
readonly BIG_MAX=2097152 BIG_BUCKETS=262144 FILL_PER_SOURCE=40000
big_table_sizes() {
	cat /proc/sys/net/netfilter/nf_conntrack_max >"$WORK/saved_max"
	cat /sys/module/nf_conntrack/parameters/hashsize >"$WORK/saved_hashsize"
	echo $BIG_MAX >/proc/sys/net/netfilter/nf_conntrack_max
	echo $BIG_BUCKETS >/sys/module/nf_conntrack/parameters/hashsize
}
big_table_restore() {
	[ ! -s "$WORK/saved_max" ] || cat "$WORK/saved_max" >/proc/sys/net/netfilter/nf_conntrack_max
	[ ! -s "$WORK/saved_hashsize" ] || cat "$WORK/saved_hashsize" >/sys/module/nf_conntrack/parameters/hashsize
}

# fill_to NETNS N: live entries 0..N-1 exist in NETNS (a flood_netns one, with a long UDP timeout):
# entry i is a datagram from 127.0.0.(2 + i / 40000) to port 20000 + i % 40000, so each is a distinct
# tuple. $made counts what exists; appends the seconds it took to $WORK/fill_s.
made=0
fill_to() {
	local s first count sent refused t0
	t0=$(date +%s.%N)
	while ((made < $2)); do
		s=$((made / FILL_PER_SOURCE)) first=$((made % FILL_PER_SOURCE))
		count=$((FILL_PER_SOURCE - first))
		((made + count <= $2)) || count=$(($2 - made))
		# A here-string, not <(...): the guest has no /dev/fd.
		read -r sent refused <<<"$(ip netns exec "$1" "$CTBPF_FLOWGEN" udp --src "127.0.$((s / 250)).$((2 + s % 250))" \
			--port $((20000 + first)) --count "$count" 2>/dev/null)"
		[ "$refused" = 0 ] || { echo "fill_to: $refused datagrams refused (table full?)" >&2; exit 1; }
		made=$((made + sent))
	done
	echo "$(date +%s.%N) - $t0" | bc -l >>"$WORK/fill_s"
}

# profile_setup: the flood's netns and the kernel's BPF statistics on, both undone at exit (with any
# tracer left and $WORK).
profile_setup() {
	stats_before=$(sysctl -n kernel.bpf_stats_enabled)
	trap 'sysctl -qw kernel.bpf_stats_enabled=$stats_before; pkill -f "ready-file $WORK" 2>/dev/null || true;
		ip netns del $NS 2>/dev/null || true; rm -rf "$WORK"' EXIT
	flood_netns
	sysctl -qw kernel.bpf_stats_enabled=1
}

# stats PID: "name run_cnt run_time_ns" of every program the process holds, one a line, sorted by name
# (kernel.bpf_stats_enabled must be 1 for the run figures).
stats() {
	local ids
	ids=$(sed -n 's/^prog_id:[[:space:]]*//p' /proc/"$1"/fdinfo/* 2>/dev/null | sort -un | tr '\n' ' ')
	"${BPFTOOL:-/usr/sbin/bpftool}" prog show --json | jq -r --arg ids "$ids" '($ids | split(" ") | map(select(. != "") | tonumber)) as $held
		| .[] | select(.id as $id | $held | index($id)) | "\(.name) \(.run_cnt // 0) \(.run_time_ns // 0)"' | sort
}
