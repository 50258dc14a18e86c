/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// Views of a validated snapshot (core::read_snapshot): the terminal report, the self-contained HTML
// page and the diff of two snapshots. Pure: each returns a string; the CLI writes it.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ctbpf::core {

struct Bar {
  std::string label;  // x axis: a bucket's upper bound, an interval's end time, a cause
  double value = 0;   // height
  std::string text;   // the value as printed: "120", "1800/s", "-" (not observable)
};

/// One chart of a report; the text and HTML views draw the same list.
struct Chart {
  enum class Kind { histogram, timeline, causes };
  std::string id;  // chain_length, lifetime_<proto>, inserts_per_s, drops_<cause>, drops_by_cause
  std::string title;
  Kind kind = Kind::histogram;
  std::vector<Bar> bars;
};

/// drops_by_cause (causes the mode observes), chain_length (one bar per bucket), lifetime_<proto>
/// (per bucket, for each protocol with lifetimes), inserts_per_s (per interval, unless unobservable),
/// drops_<cause> (per interval, for each cause that is non-zero in some interval).
std::vector<Chart> report_charts(const nlohmann::json& snapshot);

/// The terminal report: header, summary, the charts as rows of '#', sysctls. `width` >= 40.
std::string report_text(const nlohmann::json& snapshot, int width);

/// One HTML page with inline CSS and SVG: no script, no external asset, a CSP that forbids both.
/// Each chart is <svg id="chart-ID" class="chart"> with one <rect class="bar"> per bar.
std::string report_html(const nlohmann::json& snapshot);

struct SnapshotDiff {
  bool changed = false;
  std::string text;  // header, then only what differs (or "no change")
  /// The same for programs: {"type":"diff","a":{"file","host","kernel","mode","start","duration_s"},
  /// "b":{...},"changed":B,"sections":[{"title":S,"changes":[{"name":S,"a":S,"b":S}]}]}, values as printed.
  nlohmann::json json;
};

/// What changed from `a` to `b`: rates, percentiles, drop causes, table and sysctls. Values are
/// compared as printed, so a difference below the printed precision is no change.
SnapshotDiff diff_snapshots(const nlohmann::json& a, const std::string& name_a, const nlohmann::json& b,
                            const std::string& name_b);

}  // namespace ctbpf::core
