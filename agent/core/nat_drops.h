// SPDX-License-Identifier: Apache-2.0
#pragma once
// Where NAT'd traffic dies on this machine: flows whose packets are dropped after the NAT (the stale
// entry to a dead backend), and the DNS race's refused and merged entries on UDP port 53. The kernel
// layer reads both maps as cumulative counts (Sample); this file turns them into what grew, and into
// JSON, text and the conntrack command that removes a stuck flow.
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/idle.h"

namespace ctbpf::core {

/// One NAT'd flow and one drop reason (struct ctbpf_blackhole_key and its value): cumulative in a
/// Sample, what grew in a Report.
struct BlackholeFlow {
  uint32_t netns = 0;
  uint16_t zone = 0;
  uint8_t l3 = 0, l4 = 0;
  bool reply = false;  // the dropped packets went the reply way
  std::array<uint8_t, 16> src{}, dst{};  // the original tuple
  uint16_t sport = 0, dport = 0;
  std::array<uint8_t, 16> reply_src{}, reply_dst{};  // the reply tuple: a DNAT's target is its source
  uint16_t reply_sport = 0, reply_dport = 0;
  uint32_t status = 0;  // IPS_* bits
  uint32_t reason = 0;  // enum skb_drop_reason, the running kernel's number
  std::string reason_name;  // "IP_INNOROUTES"; the number when the kernel's BTF has no name for it
  uint64_t packets = 0;
  double first_s = 0, last_s = 0;  // the first and latest drop (a Report's clock: seconds from its baseline)

  bool dnat() const { return status & (1u << 5); }  // IPS_DST_NAT
  bool snat() const { return status & (1u << 4); }  // IPS_SRC_NAT
  auto key() const { return std::tie(netns, zone, l3, l4, reply, src, dst, sport, dport, reason); }
};

/// The DNS race at one (netns, address asked, address that answers): entries of UDP port 53 flows that
/// confirm refused (insert_failed, chaintoolong: the packet dropped) or merged (clash_resolve: kept).
struct DnsRace {
  uint32_t netns = 0;
  uint8_t l3 = 0;
  std::array<uint8_t, 16> service{}, resolver{};  // original destination, reply source
  uint64_t insert_failed = 0, clash_resolve = 0;

  auto key() const { return std::tie(netns, l3, service, resolver); }
};

/// now - before, flow by flow: the flows that grew, with the growth. A flow whose count went down was
/// evicted from the kernel's LRU map and came back: its count since then is all growth.
std::vector<BlackholeFlow> grown(const std::vector<BlackholeFlow>& now, const std::vector<BlackholeFlow>& before);
std::vector<DnsRace> grown(const std::vector<DnsRace>& now, const std::vector<DnsRace>& before);

/// Most packets first: the order every list of flows is shown in.
void sort_busiest_first(std::vector<BlackholeFlow>& flows);

/// A flow in JSON: tuple, NAT targets, reason, packets, packets_per_s over `duration_s`, first and
/// last drop times (a Report's clock).
nlohmann::json blackhole_json(const BlackholeFlow& f, double duration_s);
nlohmann::json dns_race_json(const DnsRace& r);

/// "udp 10.0.1.2:40000 > 10.96.0.10:53 dnat to 10.0.2.2:53" (the original direction's view).
std::string flow_text(const BlackholeFlow& f);
/// Where the NAT sends the flow: "dnat to 10.0.2.2:53", "snat to ...", both, or "".
std::string nat_target_text(const BlackholeFlow& f);

/// `conntrack -D` with the flow's original tuple and zone: it removes this flow's entry and nothing
/// else (the next packet makes a new entry, NAT'd by the rules in force). `enter_prefix` runs it in the
/// flow's netns ("ip netns exec NAME "), or is "" in ctbpf's own.
std::string conntrack_delete_command(const BlackholeFlow& f, const std::string& enter_prefix);

/// The text lines of what grew over `duration_s`, each starting with `indent`, at most `max_lines`
/// (then "... and N more"): "nat blackhole  udp 10.0.1.2:40000 > 10.96.0.10:53 dnat to 10.0.2.2:53
/// IP_INNOROUTES 200/s netns router" and "dns race  netns router  10.96.0.10 via 10.0.3.2: insert_failed
/// 3 (dropped), clash_resolve 40 (kept)". Empty when nothing grew or nothing is observable.
std::string nat_drops_text(const std::optional<std::vector<BlackholeFlow>>& flows,
                           const std::optional<std::vector<DnsRace>>& races, double duration_s,
                           const std::map<uint32_t, std::string>& netns_names, const std::string& indent,
                           std::size_t max_lines = 10);

/// NAT'd UDP flows that sent and never got a reply, from a ctnetlink dump with nf_conntrack_acct's
/// per-direction counters: a backend that is gone where ctbpf cannot see the drop (on another host), or
/// a one-way protocol (syslog, statsd). Entries without counters (acct off when they were made) are
/// not judged.
struct UnansweredNat {
  static constexpr uint64_t kMinPackets = 10;  // original-direction packets: more than a retry or two
  static constexpr std::size_t kMaxListed = 10;
  bool counters_seen = false;  // some entry carried counters: acct was on for it
  uint64_t flows = 0;          // NAT'd UDP entries with >= kMinPackets sent and no reply
  std::vector<BlackholeFlow> busiest;  // the kMaxListed with most packets sent (packets: those)
};
void add_unanswered(UnansweredNat& u, const DumpedEntry& e);

/// A netns's name for text: its name when known, else "netns <inode>".
std::string netns_text(uint32_t netns, const std::map<uint32_t, std::string>& names);

}  // namespace ctbpf::core
