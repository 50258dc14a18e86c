/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// What the kernel layer hands the pure core: cumulative counters read at one instant. The core never
// asks the OS for anything; every number it prints comes from these structs, so all of it is testable.
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/fields.h"
#include "core/histogram.h"
#include "core/nat_drops.h"
#include "ctbpf/abi.h"

namespace ctbpf::core {

enum class Mode { fentry, kprobe, tracepoint };
std::string to_string(Mode mode);
std::optional<Mode> mode_from_string(const std::string& text);

/// Table gauges from the sysctls (count is per netns, max and buckets are global).
struct TableGauge {
  std::optional<uint64_t> count, max, buckets;
};

/// Which probe points are attached, decided once at start by the kernel layer.
struct Observability {
  bool conntrack_points = false;       // alloc, confirm, free, delete (fentry or kprobe family)
  bool early_drop = false;             // early_drop() probed: table_full and early_drop countable
  bool resolve_clash = false;          // nf_ct_resolve_clash() probed: clash drops told from chaintoolong
  bool kernel_has_chaintoolong = false;  // 5.15+: the cause exists at all
  bool netfilter_drop_reason = false;  // kfree_skb reports SKB_DROP_REASON_NETFILTER_DROP
  bool drop_reasons = false;           // kfree_skb gives a drop reason (5.17+): NAT'd flows' drops are seen
  uint32_t lifetime_one_in = 1;        // lifetimes are kept for 1 entry in this many (by hash)
  uint32_t chain_one_in = 1;           // chains are walked for 1 insert in this many (per CPU)
};

using PerProto = std::array<uint64_t, CTBPF_PROTO_MAX>;

struct NetnsCounts {
  uint64_t inserts = 0, destroys = 0;
  /// Which netns holds the inode (struct ctbpf_netns_slot): a change means a new netns on a reused
  /// inode, counting from zero, and the dead one's counts moved to CTBPF_NETNS_OTHER. Never in
  /// JSON: a report read back from a file has 0.
  uint32_t identity = 0;
};
/// Keyed by netns inode; CTBPF_NETNS_OTHER holds the namespaces beyond the kernel map's bound, and
/// dead namespaces whose inode a later one holds.
using ByNetns = std::map<uint32_t, NetnsCounts>;
using LifetimeByProto = std::array<Histogram, CTBPF_PROTO_MAX>;

/// "tcp", "udp", "icmp", "other" for enum ctbpf_proto_class.
const char* proto_class_name(std::size_t cls);
/// The kernel's enum tcp_conntrack names (stable since 2.6): "ESTABLISHED", "TIME_WAIT", ...
std::string tcp_state_name(std::size_t state);

inline LifetimeByProto empty_lifetimes() {
  return {Histogram(SlotKind::log2), Histogram(SlotKind::log2), Histogram(SlotKind::log2),
          Histogram(SlotKind::log2)};
}

struct Sample {
  double t_s = 0;  // monotonic seconds
  std::array<uint64_t, CTBPF_CNT_MAX> counters{};
  uint64_t chain_max = 0;
  PerProto inserts_by_proto{}, destroys_by_proto{};
  std::array<uint64_t, CTBPF_TCP_STATES> tcp_deaths_by_state{};
  ByNetns by_netns;
  uint64_t recursion_misses = 0;  // program runs the kernel skipped (bpf_prog_info.recursion_misses)
  // kprobe/kretprobe hits the kernel skipped (6.7+: perf link info `missed`); empty where the kernel
  // does not say (kprobe family before 6.7), 0 where ctbpf has no kprobes.
  std::optional<uint64_t> kprobe_misses = 0;
  Histogram chain{SlotKind::chain};
  LifetimeByProto lifetime = empty_lifetimes();
  std::optional<KernelStats> stats;
  TableGauge table;
  // Cumulative since load, with times in this struct's clock (t_s): NAT'd flows dropped after the NAT
  // (with drop_reasons), and the DNS race's refused and merged entries (with conntrack_points).
  std::vector<BlackholeFlow> nat_blackholes;
  std::vector<DnsRace> dns_races;
};

}  // namespace ctbpf::core
