# SPDX-License-Identifier: Apache-2.0
# A NAT gateway for the e2e scenarios (sourced after nothing else: it sources lib.sh). Shared by
# gateway.sh, clash_storm.sh and whatever else must see conntrack where gateways run it: forwarded,
# NAT'd, in softirq, often with the idle task current, on every CPU at once.
#
#   client 1 (GW_C1) ─┐                      ┌─ server (GW_S)
#   10.77.1.2         ├── router (GW_R = NS) ┤  10.77.9.2, fd00:77:9::2
#   fd00:77:1::2      │   forwards, masquerades on the way to the server, and is the ONLY netns
#   client 2 (GW_C2) ─┘   with conntrack (an nft `ct state new` rule needs it)
#   10.77.2.2, fd00:77:2::2
#
# The router is lib.sh's test netns ($NS): start_trace runs ctbpf there (its ctnetlink stats, hence
# `invalid` and the table gauges, are the router's), and ct_stat, ct_count and in_ns read the router.
# gateway_up's options make the kernel do a gateway's real work:
#   --netem DELAY  netem on both clients' egress (and the server's): packets leave from the qdisc's
#                  timer, so the router's conntrack runs in softirq, often on an idle CPU (pid 0)
#   --rps          RPS over every CPU on the router's receive queues: one link's flows are confirmed on
#                  all CPUs at once
# Without them (clash_storm.sh), a sender's packet crosses the router in its own thread's softirq, so
# two threads on two CPUs reach conntrack at the same instant.
# Every namespace, veth, qdisc and RPS mask goes with the namespaces on exit; globals are restored.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GW_C1=ctbpf-gw-c1-$$
GW_C2=ctbpf-gw-c2-$$
GW_S=ctbpf-gw-s-$$
GW_R=ctbpf-gw-r-$$
NS=$GW_R
GW_CLIENTS=("$GW_C1" "$GW_C2")
# The server as each client reaches it; the router's address on the server link (the masquerade).
GW_SERVER4=10.77.9.2
GW_SERVER6=fd00:77:9::2
GW_ROUTER_OUT4=10.77.9.1
GW_ROUTER_OUT6=fd00:77:9::1
# The server drops these UDP ports (no socket, no ICMP error back through the router: one entry, one
# packet per flow); its TCP listeners (gateway_tcp_serve) are on GW_TCP_PORT.
GW_UDP_PORTS=20000-59999
GW_TCP_PORT=8080

gateway_down() {
	local n
	for n in "$GW_C1" "$GW_C2" "$GW_S"; do ip netns del "$n" 2>/dev/null || true; done
}
trap 'gateway_down; cleanup' EXIT

# gateway_up [--netem DELAY] [--rps]: builds the topology above; returns once every path works.
gateway_up() {
	local netem= rps=0 i n
	while [ $# -gt 0 ]; do
		case $1 in
		--netem) netem=$2; shift 2 ;;
		--rps) rps=1; shift ;;
		*) echo "gateway_up: unknown option $1" >&2; exit 2 ;;
		esac
	done
	load_modules
	for n in nf_nat nft_nat nft_masq nft_chain_nat sch_netem; do
		[ -d "/sys/module/$n" ] || modprobe "$n" 2>/dev/null || true
	done
	for n in "$GW_R" "$GW_C1" "$GW_C2" "$GW_S"; do
		ip netns add "$n"
		ip -n "$n" link set lo up
	done
	ip netns exec "$GW_R" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	# The router's link to each client: c1, c2 there, eth0 in the client (nodad: usable at once).
	for i in 1 2; do
		n=${GW_CLIENTS[i - 1]}
		ip link add "c$i" netns "$GW_R" type veth peer name eth0 netns "$n"
		ip -n "$GW_R" addr add "10.77.$i.1/24" dev "c$i"
		ip -n "$GW_R" addr add "fd00:77:$i::1/64" dev "c$i" nodad
		ip -n "$n" addr add "10.77.$i.2/24" dev eth0
		ip -n "$n" addr add "fd00:77:$i::2/64" dev eth0 nodad
		ip -n "$GW_R" link set "c$i" up
		ip -n "$n" link set eth0 up
		ip -n "$n" route add default via "10.77.$i.1"
		ip -n "$n" -6 route add default via "fd00:77:$i::1"
	done
	ip link add srv netns "$GW_R" type veth peer name eth0 netns "$GW_S"
	ip -n "$GW_R" addr add "$GW_ROUTER_OUT4/24" dev srv
	ip -n "$GW_R" addr add "$GW_ROUTER_OUT6/64" dev srv nodad
	ip -n "$GW_S" addr add "$GW_SERVER4/24" dev eth0
	ip -n "$GW_S" addr add "$GW_SERVER6/64" dev eth0 nodad
	ip -n "$GW_R" link set srv up
	ip -n "$GW_S" link set eth0 up
	# Entries must stay in the table until the test flushes it (a run under TCG can take minutes):
	# the router's own timeouts (per netns, nothing global).
	ip netns exec "$GW_R" sh -c 'cd /proc/sys/net/netfilter &&
		for t in udp_timeout udp_timeout_stream tcp_timeout_time_wait tcp_timeout_close \
			tcp_timeout_close_wait tcp_timeout_fin_wait tcp_timeout_last_ack tcp_timeout_syn_sent \
			tcp_timeout_syn_recv; do echo 600 >nf_conntrack_$t; done'
	# prerouting sees every packet that enters the router, after conntrack (-200) and before
	# confirm: `ct state new` counts the packets of flows not yet answered; the unconfirmed ones are
	# those that allocated an entry here (a TCP SYN retransmitted after its entry's insert is new,
	# but confirmed: it allocated nothing).
	ip netns exec "$GW_R" nft -f - <<-NFT
	table inet ctbpf_gw {
		chain pre {
			type filter hook prerouting priority 0;
			ct state new counter
			ct state new ct status & confirmed == 0 counter
		}
		chain nat {
			type nat hook postrouting priority 100;
			oifname "srv" masquerade
		}
	}
	NFT
	# The server: no conntrack (no ct or nat rule), the test's UDP ports dropped with a counter.
	ip netns exec "$GW_S" nft -f - <<-NFT
	table inet ctbpf_gw_server {
		chain in {
			type filter hook input priority 0;
			udp dport $GW_UDP_PORTS counter drop
		}
	}
	NFT
	if [ -n "$netem" ]; then
		# A limit far above what the flows put in flight: netem's own drops would be silent losses.
		for n in "${GW_CLIENTS[@]}" "$GW_S"; do
			ip netns exec "$n" tc qdisc add dev eth0 root netem delay "$netem" limit 100000
		done
	fi
	if [ "$rps" = 1 ]; then
		local mask
		mask=$(printf '%x' $(((1 << $(nproc)) - 1)))
		for n in c1 c2 srv; do
			ip netns exec "$GW_R" sh -c "echo $mask >/sys/class/net/$n/queues/rx-0/rps_cpus"
		done
		log "gateway: RPS mask $mask on the router's c1, c2 and srv"
	fi
	# Each CPU's backlog (where netif_rx and RPS queue a veth's packets) holds netdev_max_backlog
	# packets and drops the rest silently: a burst released by one netem timer must fit (global, VM).
	set_global /proc/sys/net/core/netdev_max_backlog 100000
	gateway_check
	log "gateway up: clients $GW_C1 $GW_C2, router $GW_R (netns inode $(gateway_router_inode)), server $GW_S${netem:+, netem $netem}"
}

# gateway_check: one UDP datagram per client and family to the server; fails the test unless all four
# arrive within 10 s (neighbour resolution holds the first ones back). They make entries too: the
# caller flushes them (gateway_flush) before it measures.
gateway_check() {
	local before i dst waited=0
	before=$(gateway_server_udp)
	for i in 1 2; do
		for dst in "$GW_SERVER4" "$GW_SERVER6"; do
			in_client "$i" "$CTBPF_FLOWGEN" udp --dst "$dst" --port 20000 --count 1 >/dev/null 2>&1
		done
	done
	while [ "$(($(gateway_server_udp) - before))" -lt 4 ]; do
		sleep 0.5
		waited=$((waited + 1))
		[ "$waited" -lt 20 ] || { echo "e2e: gateway: $(($(gateway_server_udp) - before)) of 4 datagrams reached the server" >&2; exit 1; }
	done
}

# gateway_router_inode: the router netns's inode, as by_netns names it.
gateway_router_inode() { stat -L -c %i "/run/netns/$GW_R"; }

# gateway_flush: empties the router's table (conntrack -F) and checks it is empty.
gateway_flush() {
	in_ns conntrack -F 2>/dev/null
	local left
	left=$(ct_count)
	[ "$left" = 0 ] || { echo "e2e: gateway: $left entries left in the router after conntrack -F" >&2; exit 1; }
}

# gateway_nft_counter CHAIN INDEX: packets of the INDEXth counter (0-based) of the router's CHAIN.
gateway_nft_counter() {
	in_ns nft -j list chain inet ctbpf_gw "$1" |
		jq --argjson i "$2" '[.nftables[] | select(.rule) | .rule.expr[] | select(.counter) | .counter.packets][$i]'
}
# gateway_new_packets: `ct state new` packets; gateway_new_entries: those that allocated an entry.
gateway_new_packets() { gateway_nft_counter pre 0; }
gateway_new_entries() { gateway_nft_counter pre 1; }
# gateway_server_udp: UDP datagrams that reached the server (through the router).
gateway_server_udp() {
	ip netns exec "$GW_S" nft -j list chain inet ctbpf_gw_server in |
		jq '[.nftables[] | select(.rule) | .rule.expr[] | select(.counter) | .counter.packets] | add'
}

# gateway_tcp_serve: flowgen tcp-serve on the server, IPv4 and IPv6, in the background.
gateway_tcp_serve() {
	local addr i=0
	for addr in "$GW_SERVER4" "$GW_SERVER6"; do
		ip netns exec "$GW_S" "$CTBPF_FLOWGEN" tcp-serve --addr "$addr" --port "$GW_TCP_PORT" \
			--ready "$WORK/serve$i.ready" &
		BG_PIDS+=($!)
		wait_file "$WORK/serve$i.ready" "${BG_PIDS[-1]}" "flowgen tcp-serve $addr"
		i=$((i + 1))
	done
}

# in_client N CMD...: CMD in client N (1 or 2).
in_client() {
	local n=${GW_CLIENTS[$1 - 1]}
	shift
	ip netns exec "$n" "$@"
}

# No slack for confirm returns left unpaired. In kprobe mode the kernel skips a kprobe program while
# the CPU's bpf_prog_active is held (a map syscall's copy, or another kprobe program that a softirq
# interrupted), and ctbpf counts such a skipped entry in probe_misses.confirm_unpaired. Taking that
# count back into the comparison would let ctbpf excuse any loss it reports itself; in these guest
# scenarios it has been 0 in every run, so the scenarios hold every family to the kernel exactly,
# with confirm_unpaired = 0.

# idle_confirms_start / idle_confirms_check: the scenario's premise, checked by an oracle of its own.
# bpftrace counts, per CPU, the runs of conntrack's confirm hook, nf_confirm() (it calls
# __nf_conntrack_confirm() for a new entry), with the idle task current (pid 0: a softirq on irq exit
# from idle); the check fails unless every CPU had some. fentry where the kernel has module BTF, a
# kprobe on 5.10: either returns before the confirm, so it never holds bpf_prog_active while ctbpf's
# kprobes run. Not on __nf_conntrack_confirm() itself, where ctbpf's kprobe family has its kprobe and
# kretprobe: bpftrace's trampoline attaching to that shared ftrace site oopsed a 6.12 guest once in CI
# (net_rx_action() found a NULL on its IRQ stack, on a kernel already tainted by a warning), and its
# detach from it hung bpftrace for over 120 s in a 6.1 guest in the same run.
idle_confirms_start() {
	local probe=kprobe:nf_confirm
	[ ! -e /sys/kernel/btf/nf_conntrack ] || probe=kfunc:nf_conntrack:nf_confirm
	bpftrace -e "$probe /pid == 0/ { @idle[cpu] = count(); }" >"$WORK/idle.out" 2>&1 &
	IDLE_PID=$!
	BG_PIDS+=($IDLE_PID)
	wait_file "$WORK/idle.out" "$IDLE_PID" "bpftrace ($probe)"
	grep -q '^Attaching' "$WORK/idle.out" || { cat "$WORK/idle.out" >&2; exit 1; }
}
idle_confirms_check() {
	local cpu n
	# bpftrace prints its map at SIGINT, on its way out; its exit is polled (bench/lib.sh's stop_tracer
	# says why). 10 s was too short once in CI (a loaded host, a TCG guest, bpftrace detaching a
	# trampoline): the map was not printed yet and every CPU read as "none".
	local deadline=$((SECONDS + 120))
	kill -INT "$IDLE_PID"
	while kill -0 "$IDLE_PID" 2>/dev/null; do
		[ "$SECONDS" -lt "$deadline" ] || { echo "e2e: bpftrace ($IDLE_PID) still running 120 s after SIGINT" >&2; cat "$WORK/idle.out" >&2; exit 1; }
		sleep 0.2
	done
	log "confirm hook runs with the idle task current, per CPU: $(grep '^@idle' "$WORK/idle.out" | tr '\n' ' ')"
	for ((cpu = 0; cpu < $(nproc); cpu++)); do
		n=$(sed -n "s/^@idle\[$cpu\]: //p" "$WORK/idle.out")
		expect "confirm hook runs in softirq with the idle task current on CPU $cpu" "$([ "${n:-0}" -gt 0 ] && echo some || echo none)" some
	done
	grep -q '^@idle' "$WORK/idle.out" || cat "$WORK/idle.out" >&2
}
