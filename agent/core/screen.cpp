// SPDX-License-Identifier: Apache-2.0
#include "core/screen.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "core/readings.h"

namespace ctbpf::core {

namespace {


std::string per_s(const Report& r, const Count& c) {
  auto v = r.rate(c);
  return v ? fmt::format("{:.0f}/s", *v) : "-";
}

void histogram_rows(std::string& out, const Histogram& h, int bar_width, std::size_t max_rows) {
  const auto& slots = h.slots();
  uint64_t peak = *std::max_element(slots.begin(), slots.end());
  if (peak == 0) return;
  std::size_t first = 0, last = slots.size();
  while (first < last && slots[first] == 0) ++first;
  while (last > first && slots[last - 1] == 0) --last;
  // Keep the tail (long chains, long lives) when there are more rows than room.
  if (last - first > max_rows) first = last - max_rows;
  for (std::size_t i = first; i < last; ++i) {
    out += fmt::format("  {:>8} |{:<{}}| {}\n", slot_upper_bound(h.kind(), i),
                       bar(static_cast<double>(slots[i]) / static_cast<double>(peak), bar_width),
                       bar_width, slots[i]);
  }
}

}  // namespace

std::string bar(double fraction, int width) {
  fraction = std::clamp(fraction, 0.0, 1.0);
  auto filled = static_cast<int>(std::lround(fraction * width));
  std::string s;
  for (int i = 0; i < width; ++i) s += i < filled ? "#" : ".";
  return s;
}

std::string render_screen(const ScreenInput& in) {
  std::string out = "\x1b[H\x1b[2J";
  const Report& iv = *in.interval;
  const Report& all = *in.total;
  const int bar_width = std::max(10, std::min(50, in.width - 40));

  out += fmt::format("ctbpf - conntrack live, {} mode, {:.0f} s (Ctrl-C: summary)\n",
                     to_string(in.mode), all.end_s);
  if (in.mode == Mode::tracepoint)
    out += "note: no fentry or kprobe here: inserts, chains and lifetimes are unobservable (-); table,\n"
           "      growth and drop causes: the kernel's counters for this netns; netfilter drops: every netns\n";
  // Whose table: a netns with no entries looks like an idle host unless it is named.
  const auto& netns = in.netns.empty() ? std::string("this netns") : in.netns;
  out += wrap_lines(fmt::format("netns   table and kernel stats: {}\n", netns), 80, 8);
  if (!in.elsewhere.empty()) out += wrap_lines("        at start: " + in.elsewhere + "\n", 80, 0);
  out += "\n";

  const auto& t = iv.table;
  double fill = (t.count && t.max && *t.max) ? static_cast<double>(*t.count) / static_cast<double>(*t.max) : 0;
  out += fmt::format("table   [{}] {:5.1f}%  {} / {}  buckets {}\n", bar(fill, bar_width), 100 * fill,
                     text(t.count), text(t.max), text(t.buckets));
  auto growth = iv.growth_per_s();
  out += fmt::format("rates   inserts {}  destroys {}  allocs {}  net growth {}\n", per_s(iv, iv.totals.inserts),
                     per_s(iv, iv.totals.destroys), per_s(iv, iv.totals.allocs),
                     growth ? fmt::format("{:+.0f}/s", *growth) : "-");
  if (iv.totals.detail) {
    out += "        ";
    for (std::size_t p = 0; p < CTBPF_PROTO_MAX; ++p)
      out += fmt::format("{} {}  ", proto_class_name(p),
                         per_s(iv, Count{iv.totals.detail->inserts_by_proto[p]}));
    out += "\n";
  }

  // Drops on the left, the kernel's statistics beside them on the right: 78 columns, 9 lines.
  std::vector<std::string> left, right;
  left.push_back(fmt::format("{:<17} {:>9} {:>10}", "drops", "interval", "total"));
  auto drop_row = [&](const char* name, const Count& a, const Count& b) {
    left.push_back(fmt::format("  {:<15} {:>9} {:>10}", name, text(a), text(b)));
  };
  const auto &di = iv.totals.drops, &da = all.totals.drops;
  for (const auto& cause : kDropCauses) drop_row(cause.key, di.*cause.member, da.*cause.member);
  drop_row("netfilter (all)", iv.totals.netfilter_drops, all.totals.netfilter_drops);
  if (all.totals.kernel) {
    const auto &ki = iv.totals.kernel, &ka = all.totals.kernel;
    right.push_back(fmt::format("{:<17} {:>9} {:>10}", "ctnetlink stats", "interval", "total"));
    for (const auto& counter : kKernelCounters)
      if (counter.on_screen)
        right.push_back(fmt::format("  {:<15} {:>9} {:>10}", counter.key, text(ki ? (*ki).*counter.member : Count{}),
                                    text((*ka).*counter.member)));
    // What a counter counts when its name says otherwise, in the column's spare rows.
    for (const auto& counter : kKernelCounters)
      if (counter.on_screen && counter.screen_note) {
        auto lines = wrap_lines(fmt::format("  {}: {}", counter.key, counter.screen_note), 38, 2);
        for (std::size_t at = 0; at < lines.size();) {
          auto end = std::min(lines.find('\n', at), lines.size());
          right.push_back(lines.substr(at, end - at));
          at = end + 1;
        }
      }
  }
  out += "\n";
  for (std::size_t i = 0; i < std::max(left.size(), right.size()); ++i)
    out += i < right.size() ? fmt::format("{:<38}  {}\n", i < left.size() ? left[i] : "", right[i]) : left[i] + "\n";

  // Where NAT'd traffic died this interval, at most 3 lines (taken from the histograms' height).
  out += wrap_lines(nat_drops_text(iv.totals.nat_blackholes, iv.totals.dns_races, iv.duration(), {}, "! ", 3),
                    static_cast<std::size_t>(std::max(40, in.width)), 4);

  // What is left of the height goes to the histograms, shared; each keeps its header and longest rows.
  const int histograms = (all.totals.chain ? 1 : 0) + (all.totals.detail ? 1 : 0);
  const int used = static_cast<int>(std::count(out.begin(), out.end(), '\n')) + 2 + 2 * histograms;
  const auto rows = static_cast<std::size_t>(histograms ? std::max(1, (in.height - 1 - used) / histograms) : 0);

  if (all.totals.chain) {
    const auto& c = *all.totals.chain;
    out += fmt::format("\nchain length at insert (total{})  n {}  mean {:.1f}  p50 {}  p99 {}  max {}\n",
                       in.chain_one_in > 1 ? fmt::format(", 1 insert in {} per CPU", in.chain_one_in) : "",
                       c.count(), c.mean(), c.percentile(0.5), c.percentile(0.99), text(all.totals.chain_max));
    histogram_rows(out, c, bar_width, std::min<std::size_t>(10, rows));
  }
  if (all.totals.detail) {
    auto life = all.totals.detail->lifetime_all();
    out += fmt::format("\nlifetime ms (total, confirmed entries)  n {}  p50 <= {}  p99 <= {}\n", life.count(),
                       life.percentile(0.5), life.percentile(0.99));
    histogram_rows(out, life, bar_width, std::min<std::size_t>(8, rows));
  }
  out += fmt::format("\nlost events {}  events suppressed {}\n", text(all.totals.lost_events),
                     in.events_suppressed);
  return out;
}

}  // namespace ctbpf::core
