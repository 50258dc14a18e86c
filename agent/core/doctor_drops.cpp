// SPDX-License-Identifier: Apache-2.0
// doctor's rules on drops and hash chains: what was lost, why, and how long the chains run.
#include <algorithm>

#include <fmt/format.h>

#include "core/doctor_rules.h"
#include "core/render.h"

namespace ctbpf::core::doctor_rules {

using nlohmann::json;

namespace {

// 5.15, commit d7e7747ac5c2 ("netfilter: refuse insertion if chain has grown too large"): an insert is
// refused when either bucket it goes into holds more than a random limit in [50, 79] entries.
constexpr uint64_t kChainLimitFloor = 50;
// Before 5.15 the kernel's default max was 4 × buckets (8 × when hashsize was given): with every entry
// hashed twice, 8 to 16 nodes per chain on a full table. Longer than that is longer than any default.
constexpr double kLongChain = 16;

}  // namespace

void rule_chain_length(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  if (!f.buckets || *f.buckets == 0) return;
  const auto& t = in.window.totals;
  const auto buckets = static_cast<double>(*f.buckets);
  std::optional<Histogram> chain;
  if (t.chain && t.chain->count()) chain = t.chain;
  // Each entry is hashed twice (original and reply direction), and the walk at insert counts the new
  // entry itself: uniform hashing gives 1 + 2 × count / buckets.
  std::optional<double> expected_now, expected_full;
  if (f.count_start && f.count_end)
    expected_now = 1 + 2 * (static_cast<double>(*f.count_start + *f.count_end) / 2) / buckets;
  if (f.max && *f.max > 0) expected_full = 2 * static_cast<double>(*f.max) / buckets;

  const bool limit_exists = in.obs.kernel_has_chaintoolong;
  Severity severity = Severity::info;
  bool fire = false;
  // Critical when inserts are refused, or are about to be: the measured p99, or at the current count
  // the average chain, at the limit's floor.
  if (positive(f.chaintoolong) ||
      (limit_exists && chain && chain->percentile(0.99) >= kChainLimitFloor) ||
      (limit_exists && expected_now && *expected_now >= kChainLimitFloor)) {
    severity = Severity::critical;
    fire = true;
  } else if ((chain && static_cast<double>(chain->percentile(0.99)) > kLongChain) ||
             (expected_full && *expected_full > kLongChain)) {
    severity = Severity::warning;
    fire = true;
  } else if (chain && expected_now && chain->mean() > 2 * *expected_now + 2) {
    fire = true;  // longer than this netns's count implies: other namespaces share the table
  }
  if (!fire) return;

  uint64_t target_max = f.proposal ? f.proposal->max : f.max.value_or(0);
  if (target_max == 0) target_max = f.peak;  // unlimited: size for what it held
  const uint64_t recommended = recommend_buckets(target_max, *f.buckets);

  Finding x;
  x.id = "chain_length";
  x.severity = severity;
  if (chain)
    x.title = fmt::format("hash chains p99 ≤ {} at insert with {} buckets (expected about {:.1f})",
                          chain->percentile(0.99), *f.buckets, expected_now.value_or(0));
  else
    x.title = fmt::format("{} buckets for max {}: a full table averages {:.0f} entries per chain", *f.buckets,
                          text(f.max), expected_full.value_or(0));
  std::string measured;
  if (chain)
    // Percentiles are histogram slot bounds (exact below 32, then [32, 63], [64, 127], ...).
    measured = fmt::format("chain length at insert over {} inserts: mean {:.1f}, p50 ≤ {}, p99 ≤ {}, max {}; ",
                           chain->count(), chain->mean(), chain->percentile(0.5), chain->percentile(0.99),
                           text(t.chain_max));
  else if (!in.obs.conntrack_points)
    measured = fmt::format("chain lengths not measured ({} mode has no insert probe); ", to_string(in.mode));
  else
    measured = "no insert in the window, so no chain length measured; ";
  measured += fmt::format("count {} in {} buckets implies about {:.1f} at insert", text(f.count_end), *f.buckets,
                          expected_now.value_or(0));
  if (expected_full) measured += fmt::format(", {:.1f} when full at max {}", *expected_full, *f.max);
  if (f.chaintoolong) measured += fmt::format("; inserts refused for chain length: {}", *f.chaintoolong);
  x.measured = measured;
  x.why = fmt::format(
      "Every packet's lookup walks its bucket's chain, and each entry sits in two buckets (original and "
      "reply direction). {}Recommended {} buckets: the next power of two at or above max {}, the "
      "kernel's own default ratio since 5.15 (commit d532bcd0b269, \"netfilter: conntrack: sanitize "
      "table size default settings\"), which keeps a full table near 2 entries per chain; it costs {} "
      "of kernel memory. Resizing rehashes every entry under the table lock: a short stall, best "
      "done off-peak.",
      limit_exists ? "Since 5.15 (commit d7e7747ac5c2) an insert into a chain longer than a random "
                     "limit in [50, 79] is refused and its packet dropped (chaintoolong). "
                   : "",
      recommended, target_max, human_bytes(static_cast<double>(table_memory_bytes(0, recommended, 0))));
  if (chain && expected_now && chain->mean() > 2 * *expected_now + 2)
    x.why += " Chains are longer than this namespace's count implies: the hash table is shared by every "
             "network namespace, so entries elsewhere lengthen these chains too.";
  if (recommended > *f.buckets) {
    x.fix_now.push_back(hashsize_now(recommended));
    x.fix_persistent = hashsize_persistent(recommended, in.system.build);
  }
  x.evidence = {{"chain_p50", chain ? json(chain->percentile(0.5)) : json(nullptr)},
                {"chain_p99", chain ? json(chain->percentile(0.99)) : json(nullptr)},
                {"chain_mean", chain ? json(chain->mean()) : json(nullptr)},
                {"chain_max", chain ? value(t.chain_max) : json(nullptr)},
                {"expected_at_insert", value(expected_now)},
                {"expected_when_full", value(expected_full)},
                {"chaintoolong", value(f.chaintoolong)},
                {"buckets", *f.buckets},
                {"max", value(f.max)},
                {"recommended_buckets", recommended}};
  d.findings.push_back(std::move(x));
}

struct DropCause {
  const char* id;
  Severity severity;
  const char* title;
  const char* why;
};

void rule_drops(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  const auto& drops = in.window.totals.drops;
  // insert_failed also counts chaintoolong refusals: only the remainder is a cause of its own.
  Count other_insert_failed;
  if (drops.insert_failed)
    other_insert_failed = *drops.insert_failed - std::min(*drops.insert_failed, f.chaintoolong.value_or(0));
  const std::pair<DropCause, Count> causes[] = {
      {{"drop_table_full", Severity::critical, "new flows dropped: table full",
        "The table was at nf_conntrack_max and early_drop found no entry to evict (they were all "
        "ASSURED: replied, established): the first packet of each new flow was dropped. Raise the max "
        "(table_fill), shorten timeouts, or NOTRACK stateless traffic."},
       f.table_full},
      {{"drop_alloc_failed", Severity::critical, "entry allocations failed (not table full)",
        "The slab allocation of a new entry failed: kernel memory pressure. The packet was dropped."},
       drops.alloc_failed},
      {{"drop_chaintoolong", Severity::critical, "inserts refused: hash chain too long",
        "Since 5.15 the kernel refuses an insert into a chain longer than a random limit in [50, 79] "
        "and drops the packet: too few buckets for the entries (see chain_length)."},
       f.chaintoolong},
      {{"drop_early_drop", Severity::warning, "entries evicted to make room (early_drop)",
        "The table reached nf_conntrack_max and the kernel evicted entries that never saw a reply to "
        "admit new flows: the table is at its limit and half-open flows (unanswered UDP, SYNs) are "
        "lost first. Raise the max (table_fill)."},
       f.early_drop},
      {{"drop_insert_failed", Severity::warning, "inserts failed (races, not chain length)",
        "Confirming an entry failed for a reason other than chain length: a clash with an entry another "
        "CPU inserted for the same tuple that could not be resolved, or an entry that died first. "
        "Typical for parallel UDP from one socket (DNS A and AAAA queries) through NAT; the packet is "
        "dropped and the application retries."},
       other_insert_failed},
      {{"drop_clash_resolve", Severity::info, "insert clashes resolved (packets kept)",
        "Two CPUs created an entry for the same flow at once and the kernel kept the packet by merging "
        "them: harmless, a sign of parallel UDP on one tuple."},
       drops.clash_resolve},
      {{"drop_invalid", Severity::info, "packets conntrack could not classify (invalid)",
        "Packets conntrack could not parse or that fell outside the TCP window; they are dropped only "
        "where a rule drops `ct state invalid`. To see them in dmesg: `sysctl -w "
        "net.netfilter.nf_conntrack_log_invalid=255` (set it back to 0 afterwards)."},
       drops.invalid},
  };
  for (const auto& [cause, count] : causes) {
    if (!positive(count)) continue;
    Finding x;
    x.id = cause.id;
    x.severity = cause.severity;
    auto rate = in.window.rate(count);
    x.title = fmt::format("{}: {}", cause.title, *count);
    x.measured = fmt::format("{} in {:.1f} s ({:.1f}/s)", *count, f.duration, rate.value_or(0));
    std::string source = "probe";
    if (std::string(cause.id) == "drop_table_full" && f.table_full_from_kernel_drop) {
      source = "kernel drop counter";
      x.measured += " from the kernel's `drop` counter (table full, or an allocation failure)";
    } else if (!in.obs.conntrack_points) {
      source = "kernel statistics";
      x.measured += " from the kernel's statistics for this network namespace";
    }
    x.why = cause.why;
    const std::string id = cause.id;
    if ((id == "drop_table_full" || id == "drop_early_drop") && f.proposal)
      add_proposal_fixes(f, in.system.build, x);
    x.evidence = {{"count", *count}, {"per_s", value(rate)}, {"source", source}};
    d.findings.push_back(std::move(x));
  }
}

}  // namespace ctbpf::core::doctor_rules
