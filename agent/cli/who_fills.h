/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// Who filled the table, for `trace` and `snapshot`: the names of the namespaces seen (asked each
// interval, while they still exist) and, with --top N, the busiest source addresses at the end.
// Naming is cheap enough to be always on: /proc is scanned only when a namespace without a name is
// active, at most once a second. Sources are not: they cost a hash update per insert and destroy
// in the kernel, so only --top turns them on.
#include <cstddef>
#include <cstdio>

#include "core/render.h"
#include "kernel/attribution_sources.h"
#include "kernel/tracer.h"

namespace ctbpf::cli {

class WhoFillsTracker {
public:
  /// The tracer must run with track_sources = (top > 0). Sources are seeded from a dump of this
  /// netns's table, so "live" is right from the start there (other namespaces count from the start).
  /// The seed dump reads under `limit`; a dump cut short is said in "by_source.seed_dump".
  WhoFillsTracker(std::size_t top, const kernel::Tracer& tracer, const core::DumpLimit& limit) : tracer_(tracer) {
    who_.top = top;
    who_.own_netns = kernel::own_netns();
    // --top without per-source counts: said at start-up, not only in the summary at the end.
    if (top && !tracer.observability().conntrack_points)
      std::fprintf(stderr, "ctbpf: --top: no per-source counts in %s mode (they need fentry or kprobe); see "
                           "ctbpf top\n",
                   core::to_string(tracer.mode()).c_str());
    if (top && tracer.observability().conntrack_points) {
      auto seed = kernel::dump_sources(limit);
      who_.sources.emplace();
      who_.sources->seed(seed.sources.by_source);
      who_.seed_dump = seed.read;
      who_.seed_unattributed = seed.sources.unattributed;
    }
  }

  /// Each closed interval: names its active namespaces; notes the source map's losses.
  void saw(const core::Report& interval, const core::Sample& sample) {
    if (interval.totals.detail) namer_.name_new(interval.totals.detail->by_netns, who_.netns_names);
    // Where NAT'd traffic died is named while the netns still exists, as the busy ones are.
    core::ByNetns dying;
    if (interval.totals.nat_blackholes)
      for (const auto& f : *interval.totals.nat_blackholes) dying[f.netns];
    if (interval.totals.dns_races)
      for (const auto& r : *interval.totals.dns_races) dying[r.netns];
    if (!dying.empty()) namer_.name_new(dying, who_.netns_names);
    who_.sources_untracked = sample.counters[CTBPF_CNT_SOURCE_UNTRACKED];
  }

  /// What saw() gathered so far: names only, sources come with finish().
  const core::WhoFills& names() const { return who_; }

  /// At the end: the sources since start (their rate averaged over the window) and their namespaces' names.
  const core::WhoFills& finish(const core::Report& summary) {
    core::ByNetns active;
    if (summary.totals.detail) active = summary.totals.detail->by_netns;
    if (who_.sources) {
      auto cumulative = tracer_.sources();
      for (const auto& [key, counts] : cumulative) active[key.netns] = counts;
      active[kernel::own_netns_inode()];  // the seeded entries' netns
      who_.sources->update(cumulative, summary.duration());
    }
    namer_.name_new(active, who_.netns_names);
    who_.other_netns = kernel::named_netns_tables();  // where the entries this netns lacks may be
    return who_;
  }

private:
  const kernel::Tracer& tracer_;
  kernel::NetnsNamer namer_;
  core::WhoFills who_;
};

}  // namespace ctbpf::cli
