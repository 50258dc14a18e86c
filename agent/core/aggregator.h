/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// Turns cumulative samples into what ctbpf prints: per-interval deltas and rates, and the summary since
// the first sample. Which source feeds each contract field (BPF probe or the kernel's own statistics) is
// decided here, from Observability; an unobservable field stays empty and renders as null.
#include <cstdint>
#include <optional>
#include <vector>

#include "core/sample.h"

namespace ctbpf::core {

/// Counts that only the conntrack probes see; empty as a whole in tracepoint mode.
struct ProbeDetail {
  PerProto inserts_by_proto{}, destroys_by_proto{};
  std::array<uint64_t, CTBPF_TCP_STATES> tcp_deaths_by_state{};
  ByNetns by_netns;
  LifetimeByProto lifetime = empty_lifetimes();  // ms, confirmed entries whose birth was sampled
  uint64_t lifetime_untracked = 0;               // sampled births the bounded map could not keep
  Histogram lifetime_all() const;                // every protocol merged
};

/// Where ctbpf itself may have missed something: shown, never hidden. Empty where it cannot happen
/// because the probe does not exist (tracepoint mode has no conntrack probes, so nothing to pair or
/// walk, and no kprobes) or where the kernel does not say: null, like every unobservable field.
struct ProbeMisses {
  Count confirm_unpaired;  // a confirm exit that could not be matched with its entry
  Count chain_truncated;   // chain walks that hit their bound
  Count recursion;         // program runs the kernel skipped to avoid recursion (every mode's programs)
  Count kprobe;            // kprobe hits the kernel skipped; empty: no conntrack probes, or the kernel does not say
};

struct Totals {
  Count allocs, inserts, destroys, deletes;
  ProbeMisses misses;
  Drops drops;
  Count netfilter_drops;  // every netns: the kfree_skb tracepoint is not per namespace
  Count lost_events;
  uint64_t drop_events_suppressed = 0;  // drop events over the kernel's per-CPU budget (serve)
  std::optional<Histogram> chain;  // chain length at insertion
  Count chain_max;                 // exact longest chain (summary); the histogram's bound per interval
  std::optional<ProbeDetail> detail;
  /// NAT'd flows whose packets died after the NAT, with what grew (times: the Report's clock); empty
  /// where the kernel gives no drop reason.
  std::optional<std::vector<BlackholeFlow>> nat_blackholes;
  /// UDP port 53 entries refused or merged at confirm; empty without the conntrack probes.
  std::optional<std::vector<DnsRace>> dns_races;
  /// The kernel's own ctnetlink statistics (ctbpf's netns), every counter it has; empty when
  /// ctnetlink did not answer.
  std::optional<KernelStats> kernel;
};

/// Maps one cumulative sample onto the contract's fields.
Totals derive(const Sample& sample, const Observability& obs);
/// now - before, field by field; empty stays empty.
Totals minus(const Totals& now, const Totals& before);

struct Report {
  double start_s = 0, end_s = 0;  // relative to the first sample
  Totals totals;
  TableGauge table;
  /// table.count at the end minus at the start (ctbpf's netns): net growth, negative when the table
  /// shrank; the one rate of change left when inserts and destroys are unobservable.
  std::optional<int64_t> growth;
  double duration() const { return end_s - start_s; }
  /// count / duration, empty when either is.
  std::optional<double> rate(const Count& count) const;
  /// growth / duration, empty when either is.
  std::optional<double> growth_per_s() const;
};

class Aggregator {
public:
  Aggregator(Mode mode, Observability obs) : mode_(mode), obs_(obs) {}

  /// Feeds the next sample. The first one is the baseline and yields no interval.
  std::optional<Report> add(const Sample& sample);
  /// Everything since the baseline; requires at least one sample.
  Report summary() const;

  Mode mode() const { return mode_; }
  const Observability& observability() const { return obs_; }

private:
  Mode mode_;
  Observability obs_;
  std::optional<Sample> first_, last_;
  // The Report's clock: NAT'd flows' drop times in seconds from the baseline.
  void to_report_clock(Totals& t) const;
};

}  // namespace ctbpf::core
