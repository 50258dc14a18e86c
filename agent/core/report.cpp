// The chart model of a snapshot and its terminal view. Everything here reads a document that
// read_snapshot() validated, so every field it touches exists with the right type.
#include "core/report.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/aggregator.h"
#include "core/render.h"
#include "core/report_detail.h"
#include "core/screen.h"
#include "core/snapshot.h"

namespace ctbpf::core {

using nlohmann::json;

namespace report_detail {

std::string num(const json& v) {
  if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number()) return fmt::format("{:.1f}", v.get<double>());
  return "-";
}

std::string per_s(const json& count, double duration_s) {
  if (!count.is_number_unsigned() || duration_s <= 0) return "-";
  return fmt::format("{:.0f}/s", static_cast<double>(count.get<uint64_t>()) / duration_s);
}

std::string table_line(const json& table) {
  std::string s = fmt::format("table {}/{}", num(table["count"]), num(table["max"]));
  if (table["fill"].is_number()) s += fmt::format(" ({:.1f}%)", 100 * table["fill"].get<double>());
  return s + fmt::format("  buckets {}", num(table["buckets"]));
}

std::string histogram_line(const char* name, const json& h) {
  if (h["count"].is_null()) return fmt::format("{}: - (not observable in this mode)", name);
  return fmt::format("{}: n {}  mean {:.1f}  p50 {}  p99 {}  max {}", name, num(h["count"]),
                     h["mean"].get<double>(), num(h["p50"]), num(h["p99"]), num(h["max"]));
}

std::string window_line(const json& doc) {
  const auto& w = doc["window"];
  return fmt::format("window {} to {}: {:.1f} s, {} intervals of {:g} s", w["start"].get<std::string>(),
                     w["end"].get<std::string>(), w["duration_s"].get<double>(), doc["intervals"].size(),
                     doc["interval_s"].get<double>());
}

std::string trigger_line(const json& doc) {
  const auto& t = doc["trigger"];
  if (t.is_null()) return {};
  std::string causes;
  for (const auto& c : t["causes"]) causes += (causes.empty() ? "" : ", ") + c.get<std::string>();
  auto i = t["interval"].get<std::size_t>();
  return fmt::format("recorded because of {} in interval {} (t {:.1f} s)", causes, i,
                     doc["intervals"][i]["t"].get<double>());
}

}  // namespace report_detail

using namespace report_detail;

namespace {

Chart histogram_chart(std::string id, std::string title, const json& h) {
  Chart c{std::move(id), std::move(title), Chart::Kind::histogram, {}};
  for (const auto& b : h["buckets"]) {
    auto n = b["count"].get<uint64_t>();
    c.bars.push_back({std::to_string(b["le"].get<uint64_t>()), static_cast<double>(n), std::to_string(n)});
  }
  return c;
}

std::string time_label(const json& interval) { return fmt::format("{:.1f}", interval["t"].get<double>()); }

}  // namespace

std::vector<Chart> report_charts(const json& doc) {
  std::vector<Chart> charts;
  const auto& s = doc["summary"];
  const auto& intervals = doc["intervals"];

  Chart causes{"drops_by_cause", "Drops by cause (whole window)", Chart::Kind::causes, {}};
  for (const char* cause : kDropCauses) {
    const auto& v = s["drops"][cause];
    if (v.is_null()) continue;
    causes.bars.push_back({cause, static_cast<double>(v.get<uint64_t>()), num(v)});
  }
  if (!causes.bars.empty()) charts.push_back(std::move(causes));

  const auto& chain = s["chain_length"];
  if (!chain["count"].is_null() && !chain["buckets"].empty())
    charts.push_back(histogram_chart("chain_length",
                                     fmt::format("Chain length at insert, entries per bucket upper bound "
                                                 "(n {}, p99 {})",
                                                 num(chain["count"]), num(chain["p99"])),
                                     chain));

  const auto& life = s["lifetime_ms"];
  if (!life["count"].is_null()) {
    for (std::size_t p = 0; p < CTBPF_PROTO_MAX; ++p) {
      auto it = life["by_proto"].find(proto_class_name(p));
      if (it == life["by_proto"].end() || it->at("buckets").empty()) continue;
      charts.push_back(histogram_chart(fmt::format("lifetime_{}", proto_class_name(p)),
                                       fmt::format("Lifetime of {} entries, ms per bucket upper bound "
                                                   "(n {}, p50 {}, p99 {})",
                                                   proto_class_name(p), num(it->at("count")),
                                                   num(it->at("p50")), num(it->at("p99"))),
                                       *it));
    }
  }

  Chart inserts{"inserts_per_s", "Inserts per second, per interval (end time in s)", Chart::Kind::timeline, {}};
  bool observable = false;
  for (const auto& r : intervals) {
    const auto& v = r["rates"]["inserts_per_s"];
    observable = observable || !v.is_null();
    inserts.bars.push_back({time_label(r), v.is_null() ? 0.0 : v.get<double>(),
                            v.is_null() ? "-" : fmt::format("{:.0f}/s", v.get<double>())});
  }
  if (observable) charts.push_back(std::move(inserts));

  for (const char* cause : kDropCauses) {
    Chart c{fmt::format("drops_{}", cause), fmt::format("{} per interval (end time in s)", cause),
            Chart::Kind::timeline, {}};
    bool fired = false;
    for (const auto& r : intervals) {
      const auto& v = r["drops"][cause];
      uint64_t n = v.is_number_unsigned() ? v.get<uint64_t>() : 0;
      fired = fired || n > 0;
      c.bars.push_back({time_label(r), static_cast<double>(n), num(v)});
    }
    if (fired) charts.push_back(std::move(c));
  }
  return charts;
}

namespace {

// A histogram or cause chart: one row per bar.
void bar_rows(std::string& out, const Chart& c, int width) {
  std::size_t label_w = 2, text_w = 1;
  double peak = 0;
  for (const auto& b : c.bars) {
    label_w = std::max(label_w, b.label.size());
    text_w = std::max(text_w, b.text.size());
    peak = std::max(peak, b.value);
  }
  const int bar_w = std::max(10, width - static_cast<int>(label_w + text_w) - 8);
  for (const auto& b : c.bars)
    out += fmt::format("  {:>{}} {:>{}} |{}\n", b.label, label_w, b.text, text_w,
                       bar(peak > 0 ? b.value / peak : 0, bar_w));
}

// A timeline: one row per interval, or per run of consecutive intervals when there are more than
// fit on a screen (rates are averaged, counts summed).
void timeline_rows(std::string& out, const Chart& c, int width, bool is_rate) {
  constexpr std::size_t kMaxRows = 30;
  const std::size_t group = std::max<std::size_t>(1, (c.bars.size() + kMaxRows - 1) / kMaxRows);
  std::vector<Bar> rows;
  for (std::size_t i = 0; i < c.bars.size(); i += group) {
    std::size_t end = std::min(c.bars.size(), i + group);
    double total = 0;
    for (std::size_t j = i; j < end; ++j) total += c.bars[j].value;
    double value = is_rate ? total / static_cast<double>(end - i) : total;
    std::string label = group == 1 ? c.bars[i].label : c.bars[i].label + ".." + c.bars[end - 1].label;
    rows.push_back({"t " + label, value,
                    is_rate ? fmt::format("{:.0f}/s", value) : fmt::format("{:.0f}", value)});
  }
  if (group > 1) out += fmt::format("  ({} intervals per row)\n", group);
  bar_rows(out, {c.id, c.title, c.kind, rows}, width);
}

}  // namespace

std::string report_text(const json& doc, int width) {
  width = std::max(width, 40);
  const auto& s = doc["summary"];
  const double duration = s["duration_s"].get<double>();
  std::string out = fmt::format("ctbpf snapshot: host {}, kernel {}, {} mode\n", doc["host"].get<std::string>(),
                                doc["kernel"].get<std::string>(), doc["mode"].get<std::string>());
  out += window_line(doc) + "\n";
  if (auto t = trigger_line(doc); !t.empty()) out += t + "\n";

  out += "\nsummary\n";
  out += fmt::format("  allocs {}  inserts {} ({})  destroys {} ({})  deletes {}\n", num(s["allocs"]),
                     num(s["inserts"]), per_s(s["inserts"], duration), num(s["destroys"]),
                     per_s(s["destroys"], duration), num(s["deletes"]));
  out += "  " + table_line(s["table"]) + "\n";
  out += "  " + histogram_line("chain length", s["chain_length"]) + "\n";
  out += "  " + histogram_line("lifetime ms", s["lifetime_ms"]);
  if (s["lifetime_ms"].contains("sampled_one_in"))
    out += fmt::format("  (1 entry in {} sampled)", num(s["lifetime_ms"]["sampled_one_in"]));
  out += "\n";
  if (s["by_proto"].is_object()) {
    out += "  inserts by protocol:";
    for (std::size_t p = 0; p < CTBPF_PROTO_MAX; ++p)
      out += fmt::format(" {} {}", proto_class_name(p), num(s["by_proto"][proto_class_name(p)]["inserts"]));
    out += "\n";
  }
  out += attribution_text(s);
  if (s["tcp_state_at_death"].is_object() && !s["tcp_state_at_death"].empty()) {
    out += "  tcp state at death:";
    for (const auto& [state, n] : s["tcp_state_at_death"].items()) out += fmt::format(" {} {}", state, num(n));
    out += "\n";
  }
  out += fmt::format("  netfilter drops {}  lost events {}\n", num(s["netfilter_drops"]), num(s["lost_events"]));
  const auto& m = s["probe_misses"];
  if (m["confirm_unpaired"] != 0 || m["chain_walk_truncated"] != 0 || m["recursion"] != 0)
    out += fmt::format("  probe misses: unpaired confirms {}, truncated chain walks {}, skipped runs {}\n",
                       num(m["confirm_unpaired"]), num(m["chain_walk_truncated"]), num(m["recursion"]));

  auto charts = report_charts(doc);
  if (std::none_of(charts.begin(), charts.end(), [](const Chart& c) { return c.id == "drops_by_cause"; }))
    out += "\ndrops by cause: - (not observable in this mode)\n";
  for (const auto& c : charts) {
    out += "\n" + c.title + "\n";
    if (c.kind == Chart::Kind::timeline) timeline_rows(out, c, width, c.id == "inserts_per_s");
    else bar_rows(out, c, width);
  }

  out += "\nsysctls (net.netfilter.nf_conntrack_*)\n";
  std::string line;
  for (const auto& [name, value] : doc["sysctls"].items()) {
    auto item = fmt::format("{} {}", name, num(value));
    if (!line.empty() && static_cast<int>(line.size() + item.size()) + 4 > width) {
      out += "  " + line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : "  ") + item;
  }
  if (!line.empty()) out += "  " + line + "\n";
  return out;
}

}  // namespace ctbpf::core
