// SPDX-License-Identifier: Apache-2.0
// doctor's facts: the numbers every rule starts from, the arithmetic behind the recommendations,
// the parsers of /proc, the sysctl lookups and the formatting the findings share.
#include <algorithm>
#include <sstream>

#include <fmt/format.h>

#include "core/doctor.h"
#include "core/doctor_rules.h"

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
  if (f.count_end && f.max && *f.max > 0) {
    f.fill = ratio(*f.count_end, *f.max);
    if (*f.count_end >= *f.max)
      f.time_to_full_s = 0.0;
    else if (f.growth_per_s && *f.growth_per_s > 0)
      f.time_to_full_s = static_cast<double>(*f.max - *f.count_end) / *f.growth_per_s;
  }
  f.pressure = positive(f.table_full) || positive(f.early_drop) || (f.fill && *f.fill >= kHighFill) ||
               (f.time_to_full_s && *f.time_to_full_s < kSoonFull_s);

  // A bigger max is proposed when the table is under pressure, or to put a bound on an unlimited one.
  const bool unlimited = f.max && *f.max == 0;
  if (f.max && f.buckets && (f.pressure || unlimited)) {
    Proposal p;
    // Entries this window wanted: the most it held, plus each refused new flow, plus each evicted one.
    p.wanted = f.peak + f.table_full.value_or(0) + f.early_drop.value_or(0);
    // Twice that, so the table runs at most half full; at least double a limit that was hit.
    p.max = next_power_of_two(std::max<uint64_t>(2 * p.wanted, 2 * *f.max));
    if (unlimited) p.max = std::max(p.max, *f.buckets);
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
