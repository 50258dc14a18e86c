// SPDX-License-Identifier: Apache-2.0
#include "core/interval_table.h"

#include <chrono>
#include <cmath>

#include <fmt/format.h>

namespace ctbpf::core {

namespace {

// Columns: the first (time) and then the numbers, right-aligned.
constexpr const char* kFormat = "{:>10} {:>8} {:>8} {:>9} {:>6} {:>7} {:>6} {:>7} {:>7} {:>7} {:>7} {:>6}";

std::string rate(const Report& r, const Count& c) {
  auto v = r.rate(c);
  return v ? fmt::format("{:.0f}", *v) : "-";
}

// The causes without a column of their own (fields.h: in_other_column). "-" only when none of them
// is observable.
Count other_drops(const Drops& d) {
  Count sum;
  for (const auto& cause : kDropCauses)
    if (const auto& c = d.*cause.member; cause.in_other_column && c) sum = sum.value_or(0) + *c;
  return sum;
}

}  // namespace

std::string interval_table_header(bool clock) {
  return fmt::format(fmt::runtime(kFormat), clock ? "TIME" : "T", "INSERT/S", "DESTR/S", "TABLE", "FILL%",
                     "CHAIN99", "GROW/S", "FULL", "EARLY", "OTHER", "NF_DROP", "LOST");
}

std::string interval_table_row(const Report& r, const std::string& time) {
  const auto& t = r.totals;
  std::string fill = "-";
  if (r.table.count && r.table.max && *r.table.max)
    fill = fmt::format("{:.1f}", 100.0 * static_cast<double>(*r.table.count) / static_cast<double>(*r.table.max));
  std::string p99 = "-", growth = "-";
  if (t.chain && t.chain->count()) p99 = fmt::format("{}", t.chain->percentile(0.99));
  // Net growth of the table (ctbpf's netns): in tracepoint mode, the one rate there is.
  if (auto g = r.growth_per_s()) growth = fmt::format("{:+.0f}", *g);
  return fmt::format(fmt::runtime(kFormat), time, rate(r, t.inserts), rate(r, t.destroys), text(r.table.count),
                     fill, p99, growth, text(t.drops.table_full), text(t.drops.early_drop),
                     text(other_drops(t.drops)), text(t.netfilter_drops), text(t.lost_events));
}

std::string interval_table_note(const Report& r, const std::string& mode) {
  const auto& t = r.totals;
  std::string blank;
  auto add = [&](const char* column, bool unseen) {
    if (unseen) blank += std::string(blank.empty() ? "" : ", ") + column;
  };
  add("INSERT/S", !t.inserts);
  add("DESTR/S", !t.destroys);
  add("TABLE", !r.table.count);
  add("FILL%", !r.table.count || !r.table.max);
  add("CHAIN99", !t.chain);
  add("GROW/S", !r.growth);
  add("FULL", !t.drops.table_full);
  add("EARLY", !t.drops.early_drop);
  add("OTHER", !other_drops(t.drops));
  add("NF_DROP", !t.netfilter_drops);
  add("LOST", !t.lost_events);
  if (blank.empty()) return "";
  return fmt::format("note: - is what {} mode cannot observe (not a 0): {}", mode, blank);
}

std::string clock_text(double epoch_s) {
  using namespace std::chrono;
  const sys_seconds t{seconds{static_cast<long long>(std::floor(epoch_s))}};
  const hh_mm_ss hms{t - floor<days>(t)};
  return fmt::format("{:02}:{:02}:{:02}", hms.hours().count(), hms.minutes().count(), hms.seconds().count());
}

}  // namespace ctbpf::core
