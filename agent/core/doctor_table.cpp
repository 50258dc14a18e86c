// SPDX-License-Identifier: Apache-2.0
// doctor's rules on the table itself: how full it is and what it costs in memory.
#include <fmt/format.h>

#include "core/doctor_rules.h"
#include "core/render.h"

namespace ctbpf::core::doctor_rules {

using nlohmann::json;

void rule_table_fill(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  if (!f.count_end || !f.max) return;
  Finding x;
  x.id = "table_fill";
  const bool unlimited = *f.max == 0;
  std::string ttf = "not growing";
  if (f.time_to_full_s) ttf = *f.time_to_full_s == 0 ? "full now" : human_seconds(*f.time_to_full_s);
  if (unlimited) {
    x.severity = Severity::warning;
    x.title = "nf_conntrack_max = 0: the table has no limit";
    x.measured = fmt::format("count {} with no limit, net growth {:+.1f} entries/s over {:.1f} s",
                             *f.count_end, f.growth_per_s.value_or(0), f.duration);
    x.why =
        "With nf_conntrack_max = 0 the kernel never refuses or evicts an entry: a flood or a leak grows "
        "the table until kernel memory runs out, instead of dropping new flows at a known bound.";
  } else {
    const bool full = *f.count_end >= *f.max;
    // Critical only for what was seen; a time to full is a forecast from one window.
    if (full || positive(f.table_full))
      x.severity = Severity::critical;
    else if (f.pressure)
      x.severity = Severity::warning;
    x.title = full ? fmt::format("table full: {} of {} entries", *f.count_end, *f.max)
                   : fmt::format("table {:.1f}% full, time to full: {}", 100 * *f.fill, ttf);
    x.measured = fmt::format(
        "count {} (this network namespace: max applies to each) of max {} ({:.1f}%) at the end of the "
        "{:.1f} s window ({} at its start, peak {}); net "
        "growth {:+.1f} entries/s; time to full: {}",
        *f.count_end, *f.max, 100 * *f.fill, f.duration, text(f.count_start), f.peak,
        f.growth_per_s.value_or(0), ttf);
    x.why =
        "At nf_conntrack_max, a new flow gets an entry only if early_drop can evict one that never saw a "
        "reply; otherwise its packet is dropped (\"nf_conntrack: table full, dropping packet\"): new "
        "connections fail while established ones keep working. Time to full extrapolates the window's "
        "net growth (inserts minus expiries), which levels off once expiries catch up.";
  }
  if (f.proposal) {
    const auto& p = *f.proposal;
    x.why += fmt::format(
        " Proposed max {}: twice the {} entries this window wanted (peak {} + {} refused + {} evicted), "
        "rounded up to a power of two so the table runs at most half full{}; its memory is in the "
        "`memory` finding.",
        p.max, p.wanted, f.peak, f.table_full.value_or(0), f.early_drop.value_or(0),
        p.capped_by_ram ? ", but capped so a full table stays under a quarter of RAM" : "");
    add_proposal_fixes(f, in.system.build, x);
  }
  x.evidence = {{"count", *f.count_end},
                {"count_start", value(f.count_start)},
                {"peak_count", f.peak},
                {"max", *f.max},
                {"fill", value(f.fill)},
                {"net_growth_per_s", value(f.growth_per_s)},
                {"time_to_full_s", value(f.time_to_full_s)},
                {"table_full_drops", value(f.table_full)},
                {"proposed", proposal_json(f.proposal)}};
  d.findings.push_back(std::move(x));
}

void rule_memory(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  const auto& sys = in.system;
  if (!sys.slab_object_size || !f.max || !f.buckets) return;
  const uint64_t object = *sys.slab_object_size;
  Finding x;
  x.id = "memory";
  auto share = [&](uint64_t bytes) -> std::optional<double> {
    if (!sys.ram_bytes || *sys.ram_bytes == 0) return std::nullopt;
    return ratio(bytes, *sys.ram_bytes);
  };
  auto share_text = [&](uint64_t bytes) {
    auto s = share(bytes);
    return s ? fmt::format(" ({:.1f}% of RAM)", 100 * *s) : std::string();
  };
  const uint64_t buckets_bytes = table_memory_bytes(0, *f.buckets, object);
  std::optional<uint64_t> at_max;
  if (*f.max > 0) at_max = table_memory_bytes(*f.max, *f.buckets, object);
  x.title = f.proposal && f.proposal->memory_bytes
                ? fmt::format("max {} would cost {} of kernel memory when full", f.proposal->max,
                              human_bytes(static_cast<double>(*f.proposal->memory_bytes)))
                : fmt::format("a full table costs {} of kernel memory",
                              at_max ? human_bytes(static_cast<double>(*at_max)) : "an unbounded amount");
  x.measured = fmt::format("{} bytes per entry ({}), {} buckets × 8 bytes = {}; now: {} entries = {}", object,
                           sys.slab_object_size_source, *f.buckets, human_bytes(static_cast<double>(buckets_bytes)),
                           text(f.count_end),
                           human_bytes(static_cast<double>(f.count_end.value_or(0) * object)));
  if (at_max)
    x.measured += fmt::format("; full at max {}: {}{}", *f.max, human_bytes(static_cast<double>(*at_max)),
                              share_text(*at_max));
  if (f.proposal && f.proposal->memory_bytes)
    x.measured += fmt::format("; proposed max {} with {} buckets: {} × {} + {} × 8 = {} bytes ({}){}",
                              f.proposal->max, f.proposal->buckets, f.proposal->max, object,
                              f.proposal->buckets, *f.proposal->memory_bytes,
                              human_bytes(static_cast<double>(*f.proposal->memory_bytes)),
                              share_text(*f.proposal->memory_bytes));
  x.why =
      "Every entry is one object of the nf_conntrack slab and the hash table is one 8-byte head per "
      "bucket: kernel memory that cannot be swapped. This is a floor: extensions (NAT, accounting, "
      "timestamps, labels) are allocated separately per entry.";
  if (*f.max == 0) {
    x.severity = Severity::warning;
    x.why += " With nf_conntrack_max = 0 nothing bounds it.";
  } else if (auto s = share(*at_max); s && *s > kRamShareCap) {
    x.severity = Severity::warning;
    x.why += " A full table at the current max would take more than a quarter of RAM.";
  }
  x.evidence = {{"slab_object_size", object},
                {"slab_object_size_source", sys.slab_object_size_source},
                {"ram_bytes", value(sys.ram_bytes)},
                {"buckets", *f.buckets},
                {"max", *f.max},
                {"memory_at_max_bytes", value(at_max)},
                {"proposed", proposal_json(f.proposal)}};
  d.findings.push_back(std::move(x));
}

}  // namespace ctbpf::core::doctor_rules
