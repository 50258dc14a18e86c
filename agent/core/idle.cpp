// SPDX-License-Identifier: Apache-2.0
#include "core/idle.h"

#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <netinet/in.h>

#include <algorithm>

#include "core/aggregator.h"

namespace ctbpf::core {

using nlohmann::json;

uint64_t IdleStats::count() const {
  uint64_t n = 0;
  for (auto v : slots) n += v;
  return n;
}

Histogram IdleStats::histogram() const {
  Histogram h(SlotKind::log2, slots, sum_ms);
  if (count()) h.set_exact_max(max_ms);  // the dump saw every value: p99 never above it
  return h;
}

void IdleStats::add(uint64_t ms) {
  min_ms = count() ? std::min(min_ms, ms) : ms;
  max_ms = std::max(max_ms, ms);
  slots[ctbpf_log2_slot(ms)]++;
  by_second[std::min(ms / 1000, kExactIdle_s)]++;
  sum_ms += ms;
}

std::optional<uint64_t> IdleStats::at_least_s(uint64_t s) const {
  if (s > kExactIdle_s) return std::nullopt;
  uint64_t n = 0;
  for (auto i = s; i <= kExactIdle_s; ++i) n += by_second[i];
  return n;
}

std::size_t proto_class_of(uint8_t l4) {
  switch (l4) {
    case IPPROTO_TCP: return CTBPF_PROTO_TCP;
    case IPPROTO_UDP: return CTBPF_PROTO_UDP;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6: return CTBPF_PROTO_ICMP;
    default: return CTBPF_PROTO_OTHER;
  }
}

namespace {

std::optional<uint64_t> lookup(const std::map<std::string, uint64_t>& sysctls, const std::string& name) {
  auto it = sysctls.find(name);
  if (it == sysctls.end()) return std::nullopt;
  return it->second;
}

// tcp_packet() (6.1) puts an entry on a shorter timeout than its state's when data is unacknowledged,
// after max_retrans retransmissions, on a zero window, or for a picked-up connection without a reply:
// timeouts[TCP_CONNTRACK_UNACK] or [TCP_CONNTRACK_RETRANS], when shorter. With a remaining time within
// the longest of those, the entry may be on either timeout: its idle time is unknown. Kernel default
// for both: 5 min.
bool maybe_short_tcp_timeout(const std::map<std::string, uint64_t>& sysctls, uint64_t configured,
                             uint64_t remaining) {
  constexpr uint64_t kKernelDefault_s = 300;
  for (const char* name : {"tcp_timeout_unacknowledged", "tcp_timeout_max_retrans"}) {
    auto shorter = lookup(sysctls, name).value_or(kKernelDefault_s);
    if (shorter < configured && remaining <= shorter) return true;
  }
  return false;
}

}  // namespace

// The sysctl of each TCP state's timeout (nf_conntrack_standalone.c). NONE is never a confirmed
// entry's state and SYN_SENT2 (simultaneous open) has a timeout but no sysctl: both stay unestimated.
std::optional<std::string> tcp_state_timeout_sysctl(uint8_t state) {
  switch (state) {
    case TCP_CONNTRACK_SYN_SENT: return "tcp_timeout_syn_sent";
    case TCP_CONNTRACK_SYN_RECV: return "tcp_timeout_syn_recv";
    case TCP_CONNTRACK_ESTABLISHED: return "tcp_timeout_established";
    case TCP_CONNTRACK_FIN_WAIT: return "tcp_timeout_fin_wait";
    case TCP_CONNTRACK_CLOSE_WAIT: return "tcp_timeout_close_wait";
    case TCP_CONNTRACK_LAST_ACK: return "tcp_timeout_last_ack";
    case TCP_CONNTRACK_TIME_WAIT: return "tcp_timeout_time_wait";
    case TCP_CONNTRACK_CLOSE: return "tcp_timeout_close";
    default: return std::nullopt;
  }
}

bool uses_generic_timeout(uint8_t l4) {
  switch (l4) {
    case IPPROTO_TCP:
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
    case IPPROTO_SCTP:
    case IPPROTO_DCCP:
    case IPPROTO_GRE: return false;
    default: return true;
  }
}

std::optional<uint64_t> configured_timeout_s(const DumpedEntry& e, const std::map<std::string, uint64_t>& sysctls) {
  switch (e.l4) {
    case IPPROTO_TCP: {
      auto name = tcp_state_timeout_sysctl(e.tcp_state);
      return name ? lookup(sysctls, *name) : std::nullopt;
    }
    case IPPROTO_UDP:
    case IPPROTO_UDPLITE:
      // udp_packet(): udp_timeout until the entry is ASSURED (a reply, and still active 2 s after
      // its first packet), udp_timeout_stream after. (An IPS_NAT_CLASH entry is never ASSURED yet
      // can get the stream timeout: its idle time reads too high.)
      return lookup(sysctls, e.status & IPS_ASSURED ? "udp_timeout_stream" : "udp_timeout");
    case IPPROTO_ICMP: return lookup(sysctls, "icmp_timeout");
    case IPPROTO_ICMPV6: return lookup(sysctls, "icmpv6_timeout");
    // Per-state timeouts of their own (some without sysctls when the tracker is a module not loaded).
    case IPPROTO_SCTP:
    case IPPROTO_DCCP:
    case IPPROTO_GRE: return std::nullopt;
    default: return lookup(sysctls, "generic_timeout");
  }
}

// Limits, each counted instead of guessed:
// - a timeout other than the (proto, state)'s sysctl: TCP's shorter unacknowledged/retrans timeouts
//   (short_timeout), a cttimeout policy attached by an nft/iptables rule (ctnetlink does not say which;
//   idle reads wrong by the difference, clamped at 0 when the policy's timeout is longer), or a sysctl
//   changed since the entry's last packet (the same);
// - flowtable-offloaded and fixed-timeout entries are not refreshed by packets (not_refreshed);
// - a SYN_SENT entry's retransmitted SYN does not renew its timeout: idle counts from the first SYN;
// - CTA_TIMEOUT is rounded down to a second, so idle reads up to 1 s high.
void add_idle(IdleSummary& summary, const DumpedEntry& e, const std::map<std::string, uint64_t>& sysctls) {
  summary.entries++;
  summary.live_by_proto[proto_class_of(e.l4)]++;
  if (e.l4 == IPPROTO_TCP && e.tcp_state < CTBPF_TCP_STATES) {
    summary.live_by_tcp_state[e.tcp_state]++;
    if (e.status & IPS_NAT_MASK) summary.nat_by_tcp_state[e.tcp_state]++;
  }
  if (uses_generic_timeout(e.l4)) summary.live_generic++;
  if (e.l4 == IPPROTO_UDP && (e.status & IPS_ASSURED)) summary.live_udp_assured++;
  if (e.status & (IPS_OFFLOAD | IPS_HW_OFFLOAD | IPS_FIXED_TIMEOUT)) {
    summary.not_refreshed++;
    return;
  }
  auto configured = configured_timeout_s(e, sysctls);
  if (!configured || !e.timeout_s) {
    summary.no_timeout++;
    return;
  }
  const uint64_t remaining = *e.timeout_s;
  if (e.l4 == IPPROTO_TCP && maybe_short_tcp_timeout(sysctls, *configured, remaining)) {
    summary.short_timeout++;
    return;
  }
  uint64_t idle_s = 0;
  if (remaining > *configured)
    summary.clamped++;
  else
    idle_s = *configured - remaining;
  summary.by_proto[proto_class_of(e.l4)].add(idle_s * 1000);
  if (e.l4 == IPPROTO_TCP && e.tcp_state < CTBPF_TCP_STATES) summary.by_tcp_state[e.tcp_state].add(idle_s * 1000);
  if (uses_generic_timeout(e.l4)) summary.generic.add(idle_s * 1000);
}

json idle_stats_json(const IdleStats& stats) {
  auto h = stats.histogram();
  json buckets = json::array();
  std::size_t last = stats.slots.size();
  while (last > 0 && stats.slots[last - 1] == 0) --last;
  for (std::size_t i = 0; i < last; ++i)
    buckets.push_back({{"le", slot_upper_bound(SlotKind::log2, i)}, {"count", stats.slots[i]}});
  // min and max are exact; p50 and p99 are slot upper bounds, as for lifetimes, clamped to the max.
  return {{"count", h.count()},
          {"min", stats.min_ms},
          {"p50", h.percentile(0.5)},
          {"p99", h.percentile(0.99)},
          {"max", stats.max_ms},
          {"buckets", buckets}};
}

json idle_json(const IdleSummary& s) {
  json by_proto = json::object(), by_state = json::object();
  for (std::size_t i = 0; i < CTBPF_PROTO_MAX; ++i)
    if (s.by_proto[i].count()) by_proto[proto_class_name(i)] = idle_stats_json(s.by_proto[i]);
  for (std::size_t i = 0; i < CTBPF_TCP_STATES; ++i)
    if (s.by_tcp_state[i].count()) by_state[tcp_state_name(i)] = idle_stats_json(s.by_tcp_state[i]);
  json live_proto = json::object(), live_state = json::object();
  for (std::size_t i = 0; i < CTBPF_PROTO_MAX; ++i)
    if (s.live_by_proto[i]) live_proto[proto_class_name(i)] = s.live_by_proto[i];
  for (std::size_t i = 0; i < CTBPF_TCP_STATES; ++i)
    if (s.live_by_tcp_state[i]) live_state[tcp_state_name(i)] = s.live_by_tcp_state[i];
  return {{"entries", s.entries},
          {"capped", s.capped()},
          {"cap", s.dump.limit.max_entries ? json(s.dump.limit.max_entries) : json(nullptr)},
          {"dump", dump_json(s.dump)},
          {"clamped_to_zero", s.clamped},
          {"not_estimated",
           {{"no_timeout_sysctl", s.no_timeout},
            {"maybe_short_tcp_timeout", s.short_timeout},
            {"not_refreshed_by_packets", s.not_refreshed}}},
          {"by_proto", by_proto},
          {"by_tcp_state", by_state},
          {"live_by_proto", live_proto},
          {"live_by_tcp_state", live_state}};
}

}  // namespace ctbpf::core
