// SPDX-License-Identifier: Apache-2.0
// doctor's rules on the table itself: how full it is and what it costs in memory.
#include <fmt/format.h>

#include "core/doctor_rules.h"
#include "core/bounds.h"
#include "core/render.h"

namespace ctbpf::core::doctor_rules {

using nlohmann::json;

namespace {

// "udp +600, tcp TIME_WAIT +12": the classes that grew and by how much.
std::string grown_text(const Forecast& fc) {
  std::string out;
  for (const auto& c : fc.grown)
    out += fmt::format("{}{} {:+d}", out.empty() ? "" : ", ", c.name,
                       static_cast<int64_t>(c.end) - static_cast<int64_t>(c.start));
  return out;
}

// The forecast in a few words, for the title.
std::string forecast_title(const Forecast& fc) {
  switch (fc.basis) {
    case ForecastBasis::unlimited: return "no limit";
    case ForecastBasis::full_now: return "full now";
    case ForecastBasis::not_growing: return "not growing";
    case ForecastBasis::settled:
      if (!fc.time_to_full_s) return "not growing once the timeouts caught up";
      return fmt::format("time to full: {} ({} confidence)", human_seconds(*fc.time_to_full_s),
                         to_string(fc.confidence));
    case ForecastBasis::no_dumps:
    case ForecastBasis::no_timeout:
    case ForecastBasis::window_too_short:
    case ForecastBasis::no_samples: return "growing, no time to full yet";
  }
  return "?";
}

// The forecast and what it rests on, for `measured`.
std::string forecast_text(const Forecast& fc, double duration) {
  const auto timeout = fc.timeout_s ? fmt::format("{} s {}", *fc.timeout_s, fc.timeout_sysctl) : std::string();
  switch (fc.basis) {
    case ForecastBasis::unlimited: return "no time to full: the table has no limit";
    case ForecastBasis::full_now: return "time to full: full now";
    case ForecastBasis::not_growing: return "time to full: not growing";
    case ForecastBasis::settled:
      if (!fc.time_to_full_s)
        return fmt::format("time to full: not growing once the {} of the entries that grew ({}) had passed: "
                           "{:+.1f} entries/s from {:.0f} s into the window to its end",
                           timeout, grown_text(fc), *fc.settled_growth_per_s, *fc.settled_from_s);
      return fmt::format("time to full: {} ({} confidence), at {:+.1f} entries/s measured over the last {:.0f} s "
                         "of the window, after the {} of the entries that grew ({})",
                         human_seconds(*fc.time_to_full_s), to_string(fc.confidence), *fc.settled_growth_per_s,
                         *fc.settled_span_s, timeout, grown_text(fc));
    case ForecastBasis::no_dumps:
      return "no time to full: without the ctnetlink dumps at the window's two ends, which entries grew is "
             "unknown, and so is whether their timeouts undo the growth";
    case ForecastBasis::no_timeout:
      return fmt::format("no time to full: entries that grew ({}) have no timeout sysctl ctbpf reads ({})",
                         grown_text(fc), fc.timeout_of);
    case ForecastBasis::window_too_short: {
      auto needed = *fc.needed_window_s;
      auto run = needed <= kDurationSeconds.max
                     ? fmt::format("`ctbpf doctor -d {:.0f}` can forecast", needed)
                     : fmt::format("a forecast needs {} of watching (`ctbpf trace`), longer than doctor's limit",
                                   human_seconds(needed));
      return fmt::format("no time to full yet: the entries that grew ({}) stay up to the {} without a "
                         "packet, longer than this {:.1f} s window, so its growth may be undone by those "
                         "timeouts; {}",
                         grown_text(fc), timeout, duration, run);
    }
    case ForecastBasis::no_samples:
      return fmt::format("no time to full: no count was sampled after the {} of the entries that grew ({})",
                         timeout, grown_text(fc));
  }
  return "?";
}

// How the proposed max was computed, in the words of that computation.
std::string proposal_why(const Proposal& p, const Facts& f) {
  const auto parts = fmt::format("peak {} + {} refused + {} evicted", f.peak, f.table_full.value_or(0),
                                 f.early_drop.value_or(0));
  std::string out;
  switch (p.basis) {
    case ProposalBasis::twice_wanted:
      out = fmt::format(" Proposed max {}: twice the {} entries this window wanted ({}) is {}", p.max, p.wanted,
                        parts, p.target);
      break;
    case ProposalBasis::twice_max:
      out = fmt::format(" Proposed max {}: twice the current max {} is {} (more than 2 × {} = {}, the entries this "
                        "window wanted: {})",
                        p.max, f.max.value_or(0), p.target, p.wanted, 2 * p.wanted, parts);
      break;
    case ProposalBasis::buckets:
      out = fmt::format(" Proposed max {}: the bucket count, {} (more than 2 × {} = {}, the entries this window "
                        "wanted: {})",
                        p.max, p.target, p.wanted, 2 * p.wanted, parts);
      break;
  }
  out += p.rounded == p.target ? ", a power of two already"
                               : fmt::format(", rounded up to a power of two ({})", p.rounded);
  out += "; at least twice what the table held, so it runs at most half full";
  if (p.capped_by_ram) out += fmt::format(", then halved to {} so a full table stays under a quarter of RAM", p.max);
  return out + ". Its memory is in the `memory` finding.";
}

}  // namespace

void rule_table_fill(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  if (!f.count_end || !f.max) return;
  Finding x;
  x.id = "table_fill";
  const bool unlimited = *f.max == 0;
  const auto& fc = f.forecast;
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
    // Critical only for what was seen; a time to full is a forecast from one window (a warning when
    // of medium confidence, see derive_facts).
    if (full || positive(f.table_full))
      x.severity = Severity::critical;
    else if (f.pressure)
      x.severity = Severity::warning;
    x.title = full ? fmt::format("table full: {} of {} entries", *f.count_end, *f.max)
                   : fmt::format("table {:.1f}% full, {}", 100 * *f.fill, forecast_title(fc));
    x.measured = fmt::format(
        "count {} (this network namespace: max applies to each) of max {} ({:.1f}%) at the end of the "
        "{:.1f} s window ({} at its start, peak {}); net growth between the window's ends {:+.1f} "
        "entries/s; {}",
        *f.count_end, *f.max, 100 * *f.fill, f.duration, text(f.count_start), f.peak,
        f.growth_per_s.value_or(0), forecast_text(fc, f.duration));
    x.why =
        "At nf_conntrack_max, a new flow gets an entry only if early_drop can evict one that never saw a "
        "reply; otherwise its packet is dropped (\"nf_conntrack: table full, dropping packet\"): new "
        "connections fail while established ones keep working. An entry leaves the table only when its "
        "timeout runs out (or its connection closes), so a window shorter than the timeout of the "
        "entries that grew cannot tell lasting growth from a burst those timeouts undo: time to full "
        "extrapolates only the growth measured after that timeout has passed within the window. It "
        "assumes that trend goes on; one window cannot say for how long (low confidence when measured "
        "over less than one timeout, medium otherwise; a low one raises no warning).";
  }
  if (f.proposal) {
    x.why += proposal_why(*f.proposal, f);
    add_proposal_fixes(f, in.system.build, x);
  }
  x.evidence = {{"count", *f.count_end},
                {"count_start", value(f.count_start)},
                {"peak_count", f.peak},
                {"max", *f.max},
                {"fill", value(f.fill)},
                {"net_growth_per_s", value(f.growth_per_s)},
                {"time_to_full_s", value(f.time_to_full_s)},
                {"forecast", forecast_json(fc)},
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
