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
