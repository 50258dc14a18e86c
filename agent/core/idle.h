/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// Idle time of live conntrack entries: how long each has gone without a packet, as opposed to its
// lifetime. The kernel refreshes an entry's timeout on every packet to now + the timeout of its
// (protocol, state), so idle = that configured timeout - the remaining timeout ctnetlink reports.
// Pure: the facts come from a ctnetlink dump (kernel::dump_table), the timeouts from the sysctls.
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dump.h"
#include "core/histogram.h"
#include "ctbpf/abi.h"

namespace ctbpf::core {

/// One entry of a ctnetlink dump: the plain facts, undecoded.
struct DumpedEntry {
  uint8_t l3 = 0;                 // AF_INET / AF_INET6
  std::array<uint8_t, 16> src{};  // original-direction source address (4 bytes used for IPv4)
  uint8_t l4 = 0;                 // IPPROTO_*
  uint8_t tcp_state = 0;          // enum tcp_conntrack; TCP only
  uint32_t status = 0;            // IPS_* bits (CTA_STATUS)
  std::optional<uint32_t> timeout_s;  // CTA_TIMEOUT: whole seconds until it expires without a packet
  // The rest of the tuple, for the NAT'd flows doctor names (nat_unanswered).
  std::array<uint8_t, 16> dst{}, reply_src{};  // original destination; reply source (a DNAT's target)
  uint16_t sport = 0, dport = 0, reply_sport = 0;  // host byte order
  uint16_t zone = 0;
  // CTA_COUNTERS, per direction: present only with net.netfilter.nf_conntrack_acct=1 (when the entry was made).
  std::optional<uint64_t> orig_packets, reply_packets;
};

/// Idle times are counted per whole second up to this bound (the closing TCP states', ICMP's and the
/// generic timeouts are below it by default): what a shorter timeout would not hold is then counted
/// exactly instead of bounded by log2 slots.
constexpr uint64_t kExactIdle_s = 600;

/// Idle times of one group of entries: a log2 histogram in ms (like lifetimes; the kernel reports
/// whole seconds, so values are multiples of 1000), the exact extremes, and per-second counts.
struct IdleStats {
  std::vector<uint64_t> slots = std::vector<uint64_t>(CTBPF_LOG2_SLOTS, 0);
  std::vector<uint64_t> by_second = std::vector<uint64_t>(kExactIdle_s + 1, 0);  // last: that many s or more
  uint64_t sum_ms = 0, min_ms = 0, max_ms = 0;
  uint64_t count() const;
  Histogram histogram() const;
  void add(uint64_t ms);
  /// Entries idle `s` seconds or more, exactly; empty above kExactIdle_s.
  std::optional<uint64_t> at_least_s(uint64_t s) const;
};

/// The idle times of one dump, per protocol class and per TCP state, and every entry it could not
/// estimate, by reason (never a guessed value).
struct IdleSummary {
  uint64_t entries = 0;  // entries looked at
  DumpRead dump;         // the dump's account: stopped early, the rest of the table was not read
  bool capped() const { return dump.stopped_early(); }
  std::array<IdleStats, CTBPF_PROTO_MAX> by_proto{};
  std::array<IdleStats, CTBPF_TCP_STATES> by_tcp_state{};
  uint64_t clamped = 0;              // remaining > configured: counted as idle 0
  uint64_t no_timeout = 0;           // no sysctl for its (proto, state), or no CTA_TIMEOUT
  uint64_t short_timeout = 0;        // TCP that may run on the unacknowledged/retrans timeout
  uint64_t not_refreshed = 0;        // offloaded to a flowtable or fixed timeout: no packet refresh
  // Every entry looked at, idle time estimated or not: live counts to compare with `conntrack -L`.
  std::array<uint64_t, CTBPF_PROTO_MAX> live_by_proto{};
  std::array<uint64_t, CTBPF_TCP_STATES> live_by_tcp_state{};
  std::array<uint64_t, CTBPF_TCP_STATES> nat_by_tcp_state{};  // of those, source or destination NAT'd
  uint64_t live_generic = 0;  // protocols without a tracker of their own (generic_timeout: ESP, ...)
  uint64_t live_udp_assured = 0;  // UDP entries that are ASSURED (on udp_timeout_stream, not udp_timeout)
  IdleStats generic;          // their idle times (by_proto's "other" also holds UDP-Lite)
};

/// True for protocols conntrack tracks with generic_timeout (no tracker of their own).
bool uses_generic_timeout(uint8_t l4);

/// The sysctl of a TCP state's timeout ("tcp_timeout_established"); empty for states without one
/// (NONE, SYN_SENT2, ...).
std::optional<std::string> tcp_state_timeout_sysctl(uint8_t state);

/// Protocol class of an IPPROTO_* number (CTBPF_PROTO_*).
std::size_t proto_class_of(uint8_t l4);

/// The timeout (seconds) the kernel set at the entry's last packet, from the sysctls map
/// (kernel::read_conntrack_sysctls keys: "tcp_timeout_established", "udp_timeout", ...); empty when
/// the sysctl is absent or the protocol keeps per-state timeouts ctbpf does not model (SCTP, DCCP, GRE).
std::optional<uint64_t> configured_timeout_s(const DumpedEntry& e, const std::map<std::string, uint64_t>& sysctls);

/// Adds one dumped entry to the summary.
void add_idle(IdleSummary& summary, const DumpedEntry& e, const std::map<std::string, uint64_t>& sysctls);

/// {"entries", "capped", "cap" (the dump's entry bound, null: none), "dump" (core::dump_json), "not_estimated":{...}, "by_proto":{"tcp":{count,min,p50,p99,max,buckets}},
///  "by_tcp_state":{"ESTABLISHED":{...}}, "live_by_proto":{"tcp":N}, "live_by_tcp_state":{"TIME_WAIT":N}};
/// empty groups are left out.
nlohmann::json idle_json(const IdleSummary& summary);
nlohmann::json idle_stats_json(const IdleStats& stats);

}  // namespace ctbpf::core
