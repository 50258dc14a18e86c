// SPDX-License-Identifier: Apache-2.0
// doctor's facts: the numbers every rule starts from, the arithmetic behind the recommendations,
// the parsers of /proc, the sysctl lookups and the formatting the findings share.
#include <algorithm>
#include <sstream>

#include <fmt/format.h>

#include "core/doctor.h"
#include "core/doctor_rules.h"
#include "core/idle.h"
#include "core/render.h"

namespace ctbpf::core {

using nlohmann::json;

std::string to_string(Severity severity) {
  switch (severity) {
    case Severity::critical: return "critical";
    case Severity::warning: return "warning";
    case Severity::info: return "info";
  }
  return "?";
}

std::string to_string(ConntrackBuild build) {
  switch (build) {
    case ConntrackBuild::module: return "module";
    case ConntrackBuild::builtin: return "builtin";
    case ConntrackBuild::unknown: return "unknown";
  }
  return "?";
}

uint64_t next_power_of_two(uint64_t value) {
  uint64_t p = 1;
  while (p < value && p < (uint64_t{1} << 63)) p <<= 1;
  return p;
}

uint64_t recommend_buckets(uint64_t max_entries, uint64_t current) {
  constexpr uint64_t kKernelMinBuckets = 1024;  // nf_conntrack_init_start()'s floor
  return std::max({next_power_of_two(max_entries), kKernelMinBuckets, current});
}

uint64_t table_memory_bytes(uint64_t max_entries, uint64_t buckets, uint64_t slab_object_size) {
  constexpr uint64_t kBucketBytes = 8;  // struct hlist_nulls_head: one pointer
  return max_entries * slab_object_size + buckets * kBucketBytes;
}

double retransmission_give_up_s(uint64_t retries) {
  double total = 0, rto = 0.2;
  for (uint64_t i = 0; i <= retries; ++i) {
    total += rto;
    rto = std::min(rto * 2, 120.0);
  }
  return total;
}

uint64_t retransmissions_within(double seconds) {
  double at = 0, rto = 0.2;
  uint64_t n = 0;
  while (at + rto <= seconds && n < 64) {
    at += rto;
    rto = std::min(rto * 2, 120.0);
    ++n;
  }
  return n;
}

std::optional<uint64_t> parse_slabinfo_object_size(const std::string& slabinfo, const std::string& cache) {
  // "name <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables ..."
  std::istringstream lines(slabinfo);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string name;
    uint64_t active = 0, total = 0, objsize = 0;
    if (!(fields >> name) || name != cache) continue;
    if (fields >> active >> total >> objsize) return objsize;
    return std::nullopt;
  }
  return std::nullopt;
}

std::optional<uint64_t> parse_meminfo_total(const std::string& meminfo) {
  std::istringstream lines(meminfo);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string key, unit;
    uint64_t value = 0;
    if (!(fields >> key) || key != "MemTotal:") continue;
    if (!(fields >> value)) return std::nullopt;
    fields >> unit;
    return unit == "kB" ? value * 1024 : value;
  }
  return std::nullopt;
}

}  // namespace ctbpf::core

namespace ctbpf::core::doctor_rules {

constexpr double kHighFill = 0.8;
constexpr double kSoonFull_s = 3600;

// ---- formatting -----------------------------------------------------------------------------------

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  std::size_t u = 0;
  while (bytes >= 1024 && u + 1 < std::size(units)) {
    bytes /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.1f} {}", bytes, units[u]);
}

std::string human_seconds(double s) {
  if (s < 120) return fmt::format("{:.0f} s", s);
  if (s < 7200) return fmt::format("{:.0f} min", s / 60);
  if (s < 2 * 86400) return fmt::format("{:.1f} h", s / 3600);
  return fmt::format("{:.1f} days", s / 86400);
}


double ratio(uint64_t a, uint64_t b) { return static_cast<double>(a) / static_cast<double>(b); }

// "n p50 ≤ 4 s, p99 ≤ 6 s, max 6 s": percentiles are log2 slot bounds clamped to the max, min and max exact.
std::string idle_text(const IdleStats& s) {
  auto h = s.histogram();
  auto sec = [](uint64_t ms) { return human_seconds(static_cast<double>(ms) / 1000); };
  return fmt::format("{} p50 ≤ {}, p99 ≤ {}, max {}", h.count(), sec(h.percentile(0.5)), sec(h.percentile(0.99)),
                     sec(s.max_ms));
}

// Entries idle longer than threshold_ms, counted from whole log2 slots above it ([2^(k-1), 2^k - 1]
// ms): a lower bound, never more than there are.
uint64_t idle_beyond(const IdleStats& s, uint64_t threshold_ms) {
  uint64_t n = 0;
  for (std::size_t k = 1; k < s.slots.size(); ++k)
    if ((uint64_t{1} << (k - 1)) > threshold_ms) n += s.slots[k];
  return n;
}

// ---- the numbers every rule shares ----------------------------------------------------------------

bool positive(const Count& c) { return c && *c > 0; }

std::optional<uint64_t> sysctl(const DoctorInput& in, const std::string& name) {
  auto it = in.sysctls.find(name);
  if (it == in.sysctls.end()) return std::nullopt;
  return it->second;
}

std::optional<uint64_t> tcp_sysctl(const DoctorInput& in, const std::string& name) {
  auto it = in.tcp_sysctls.find(name);
  if (it == in.tcp_sysctls.end()) return std::nullopt;
  return it->second;
}

std::string to_string(ProposalBasis basis) {
  switch (basis) {
    case ProposalBasis::twice_wanted: return "twice_wanted";
    case ProposalBasis::twice_max: return "twice_max";
    case ProposalBasis::buckets: return "buckets";
  }
  return "?";
}

std::string to_string(ForecastBasis basis) {
  switch (basis) {
    case ForecastBasis::unlimited: return "unlimited";
    case ForecastBasis::full_now: return "full_now";
    case ForecastBasis::not_growing: return "not_growing";
    case ForecastBasis::settled: return "settled";
    case ForecastBasis::no_dumps: return "no_dumps";
    case ForecastBasis::no_timeout: return "no_timeout";
    case ForecastBasis::window_too_short: return "window_too_short";
    case ForecastBasis::no_samples: return "no_samples";
  }
  return "?";
}

std::string to_string(Confidence confidence) {
  switch (confidence) {
    case Confidence::none: return "none";
    case Confidence::low: return "low";
    case Confidence::medium: return "medium";
    case Confidence::measured: return "measured";
  }
  return "?";
}

namespace {

// The table's entries by protocol and TCP state in one dump, each with its timeout sysctl.
std::vector<GrownClass> classes_of(const DoctorInput& in, const IdleSummary& s) {
  std::vector<GrownClass> out;
  auto add = [&](std::string name, std::string sysctl_name, uint64_t n) {
    GrownClass c;
    c.name = std::move(name);
    c.sysctl = std::move(sysctl_name);
    if (!c.sysctl.empty()) c.timeout_s = sysctl(in, c.sysctl);
    c.end = n;
    out.push_back(std::move(c));
  };
  for (std::size_t i = 0; i < CTBPF_TCP_STATES; ++i)
    add(std::string("tcp ") + tcp_state_name(i), tcp_state_timeout_sysctl(static_cast<uint8_t>(i)).value_or(""),
        s.live_by_tcp_state[i]);
  const uint64_t udp = s.live_by_proto[CTBPF_PROTO_UDP];
  add("udp", "udp_timeout", udp - std::min(udp, s.live_udp_assured));
  add("udp_stream", "udp_timeout_stream", std::min(udp, s.live_udp_assured));
  add("icmp", "icmp_timeout", s.live_by_proto[CTBPF_PROTO_ICMP]);
  add("generic", "generic_timeout", s.live_generic);
  // SCTP, DCCP, GRE, UDP-Lite: per-state timeouts ctbpf does not model.
  const uint64_t other = s.live_by_proto[CTBPF_PROTO_OTHER];
  add("other", "", other - std::min(other, s.live_generic));
  return out;
}

}  // namespace

Forecast forecast_fill(const DoctorInput& in, double duration, Count count_start, Count count_end, Count max) {
  Forecast fc;
  if (!count_end || !max) return fc;
  if (*max == 0) {
    fc.basis = ForecastBasis::unlimited;
    return fc;
  }
  if (*count_end >= *max) {
    fc.basis = ForecastBasis::full_now;
    fc.confidence = Confidence::measured;
    fc.time_to_full_s = 0.0;
    return fc;
  }
  if (!count_start || *count_end <= *count_start) return fc;  // not growing
  if (!in.idle_start || !in.idle) {
    fc.basis = ForecastBasis::no_dumps;
    return fc;
  }
  // Which entries grew. A dump stopped by its bound counts a sample of the table, which says what the
  // table holds but not what grew: then every class present at the end is taken to have grown (so
  // the longest timeout among them applies). Likewise when no class grew between the two dumps
  // though the count did (they ran a moment apart from the samples).
  auto at_start = classes_of(in, *in.idle_start), at_end = classes_of(in, *in.idle);
  for (std::size_t i = 0; i < at_end.size(); ++i) at_end[i].start = at_start[i].end;
  const bool sampled = in.idle_start->capped() || in.idle->capped();
  for (const auto& c : at_end)
    if (sampled ? c.end > 0 : c.end > c.start) fc.grown.push_back(c);
  if (fc.grown.empty())
    for (const auto& c : at_end)
      if (c.end > 0) fc.grown.push_back(c);
  if (fc.grown.empty()) {
    fc.basis = ForecastBasis::no_dumps;  // the end's dump read nothing: nothing says what grew
    return fc;
  }
  for (const auto& c : fc.grown) {
    if (!c.timeout_s) {
      fc.basis = ForecastBasis::no_timeout;
      fc.timeout_of = c.name;
      return fc;
    }
    if (!fc.timeout_s || *c.timeout_s > *fc.timeout_s) {
      fc.timeout_s = c.timeout_s;
      fc.timeout_sysctl = c.sysctl;
      fc.timeout_of = c.name;
    }
  }
  const auto timeout = static_cast<double>(*fc.timeout_s);
  // The end: the end dump's count of live entries when it read the whole table; otherwise the last
  // sampled count, which may hold expired entries not reaped yet, so the start waits a collector's
  // period more (see ForecastBasis).
  constexpr double kReapPeriod_s = 60;  // 6.1's GC_SCAN_INTERVAL_MAX
  const bool end_from_dump = !in.idle->capped();
  const double settle = timeout + (end_from_dump ? 0 : kReapPeriod_s);
  // Twice that: one for the entries of the window's start to expire, one to measure over.
  fc.needed_window_s = 2 * settle;
  if (duration <= settle) {
    fc.basis = ForecastBasis::window_too_short;
    return fc;
  }
  // The growth from the first sample at least `settle` into the window to the window's end.
  const CountAt* from = nullptr;
  for (const auto& c : in.counts)
    if (c.at_s >= settle) {
      from = &c;
      break;
    }
  const double end_s = end_from_dump ? duration : (in.counts.empty() ? 0 : in.counts.back().at_s);
  if (!from || end_s <= from->at_s) {
    fc.basis = ForecastBasis::no_samples;
    return fc;
  }
  fc.basis = ForecastBasis::settled;
  fc.settled_from_s = from->at_s;
  fc.settled_from_count = from->count;
  fc.settled_end_count = end_from_dump ? in.idle->entries : in.counts.back().count;
  fc.settled_end_source = end_from_dump ? "dump" : "count";
  fc.settled_span_s = end_s - from->at_s;
  fc.settled_growth_per_s =
      (static_cast<double>(*fc.settled_end_count) - static_cast<double>(from->count)) / *fc.settled_span_s;
  fc.confidence = *fc.settled_span_s >= timeout && end_from_dump ? Confidence::medium : Confidence::low;
  if (*fc.settled_growth_per_s > 0)
    fc.time_to_full_s = static_cast<double>(*max - *count_end) / *fc.settled_growth_per_s;
  return fc;
}

json forecast_json(const Forecast& f) {
  json grown = json::array();
  for (const auto& c : f.grown)
    grown.push_back({{"class", c.name},
                     {"timeout_sysctl", c.sysctl.empty() ? json(nullptr) : json(c.sysctl)},
                     {"timeout_s", value(c.timeout_s)},
                     {"start", c.start},
                     {"end", c.end}});
  return {{"basis", to_string(f.basis)},
          {"confidence", to_string(f.confidence)},
          {"grown", grown},
          {"timeout_s", value(f.timeout_s)},
          {"timeout_sysctl", f.timeout_sysctl.empty() ? json(nullptr) : json(f.timeout_sysctl)},
          {"settled_from_s", value(f.settled_from_s)},
          {"settled_from_count", value(f.settled_from_count)},
          {"settled_end_count", value(f.settled_end_count)},
          {"settled_end_source", f.settled_end_source.empty() ? json(nullptr) : json(f.settled_end_source)},
          {"settled_span_s", value(f.settled_span_s)},
          {"settled_growth_per_s", value(f.settled_growth_per_s)},
          {"time_to_full_s", value(f.time_to_full_s)},
          {"needed_window_s", value(f.needed_window_s)}};
}

Facts derive_facts(const DoctorInput& in) {
  Facts f;
  const auto& t = in.window.totals;
  f.duration = in.window.duration();
  f.count_start = in.table_start.count;
  f.count_end = in.window.table.count;
  f.max = in.window.table.max;
  f.buckets = in.window.table.buckets;
  f.peak = std::max({in.peak_count.value_or(0), f.count_start.value_or(0), f.count_end.value_or(0)});
  f.early_drop = t.drops.early_drop;
  f.chaintoolong = t.drops.chaintoolong;
  f.table_full = t.drops.table_full;
  // Without conntrack probes, derive() itself reads table_full from the kernel's `drop` counter.
  f.table_full_from_kernel_drop = f.table_full && !in.obs.conntrack_points;
  if (!f.table_full && in.kernel_drop) {
    f.table_full = in.kernel_drop;
    f.table_full_from_kernel_drop = true;
  }
  if (t.detail) f.detail = &*t.detail;

  if (f.count_start && f.count_end && f.duration > 0)
    f.growth_per_s = (static_cast<double>(*f.count_end) - static_cast<double>(*f.count_start)) / f.duration;
  if (f.count_end && f.max && *f.max > 0) f.fill = ratio(*f.count_end, *f.max);
  f.forecast = forecast_fill(in, f.duration, f.count_start, f.count_end, f.max);
  f.time_to_full_s = f.forecast.time_to_full_s;
  // A forecast of low confidence is reported, but is no pressure: it proposes nothing.
  const bool soon_full = f.time_to_full_s && *f.time_to_full_s < kSoonFull_s &&
                         (f.forecast.confidence == Confidence::medium || f.forecast.confidence == Confidence::measured);
  f.pressure = positive(f.table_full) || positive(f.early_drop) || (f.fill && *f.fill >= kHighFill) || soon_full;

  // A bigger max is proposed when the table is under pressure, or to put a bound on an unlimited one.
  const bool unlimited = f.max && *f.max == 0;
  if (f.max && f.buckets && (f.pressure || unlimited)) {
    Proposal p;
    // Entries this window wanted: the most it held, plus each refused new flow, plus each evicted one.
    p.wanted = f.peak + f.table_full.value_or(0) + f.early_drop.value_or(0);
    // Twice that, so the table runs at most half full; at least double a limit that was hit; an
    // unlimited table gets at least its bucket count.
    p.basis = ProposalBasis::twice_wanted;
    p.target = 2 * p.wanted;
    if (2 * *f.max > p.target) {
      p.basis = ProposalBasis::twice_max;
      p.target = 2 * *f.max;
    }
    if (unlimited && *f.buckets > p.target) {
      p.basis = ProposalBasis::buckets;
      p.target = *f.buckets;
    }
    p.rounded = next_power_of_two(p.target);
    p.max = p.rounded;
    const auto& sys = in.system;
    if (sys.slab_object_size && sys.ram_bytes) {
      auto cap = static_cast<double>(*sys.ram_bytes) * kRamShareCap;
      auto cost = [&](uint64_t m) {
        return static_cast<double>(table_memory_bytes(m, recommend_buckets(m, *f.buckets), *sys.slab_object_size));
      };
      while (cost(p.max) > cap && p.max / 2 > *f.max) {
        p.max /= 2;
        p.capped_by_ram = true;
      }
    }
    p.buckets = recommend_buckets(p.max, *f.buckets);
    if (sys.slab_object_size) p.memory_bytes = table_memory_bytes(p.max, p.buckets, *sys.slab_object_size);
    f.proposal = p;
  }
  return f;
}

}  // namespace ctbpf::core::doctor_rules
