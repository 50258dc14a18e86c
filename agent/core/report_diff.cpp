// SPDX-License-Identifier: Apache-2.0
// `ctbpf diff A B`: what changed between two validated snapshots. Windows differ in length, so counts
// are shown with their per-second rates; a value counts as changed when it prints differently.
#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "core/aggregator.h"
#include "core/readings.h"
#include "core/report.h"
#include "core/report_detail.h"
#include "core/snapshot.h"

namespace ctbpf::core {

using nlohmann::json;
using namespace report_detail;

namespace {

struct Section {
  std::string title;
  std::vector<std::array<std::string, 3>> rows;  // name, before, after

  void compare(std::string name, std::string a, std::string b) {
    if (a != b) rows.push_back({std::move(name), std::move(a), std::move(b)});
  }
};

std::string count_and_rate(const json& count, double duration_s) {
  return count.is_null() ? "-" : fmt::format("{} ({})", num(count), per_s(count, duration_s));
}

void compare_histogram(Section& s, const std::string& prefix, const json& a, const json& b) {
  for (const char* key : {"count", "mean", "p50", "p99", "max"}) {
    auto value = [&](const json& h) { return h.is_object() && h.contains(key) ? num(h[key]) : "-"; };
    s.compare(prefix + key, value(a), value(b));
  }
}

std::string header(const std::string& tag, const std::string& name, const json& doc) {
  return fmt::format("{}: {}  host {}, kernel {}, {} mode, {}, {:.1f} s\n", tag, name,
                     doc["host"].get<std::string>(), doc["kernel"].get<std::string>(),
                     doc["mode"].get<std::string>(), doc["window"]["start"].get<std::string>(),
                     doc["window"]["duration_s"].get<double>());
}

Section rates_section(const json& sa, double da, const json& sb, double db) {
  Section rates{"rates (per second of each window)", {}};
  for (const char* key : {"allocs", "inserts", "destroys", "deletes"})
    rates.compare(fmt::format("{}/s", key), per_s(sa[key], da), per_s(sb[key], db));
  // The table's net growth: in tracepoint mode the one rate there is.
  auto growth_rate = [](const json& summary) {
    const json rate = summary["table"].value("growth_per_s", json());
    return rate.is_number() ? fmt::format("{:+.0f}/s", rate.get<double>()) : std::string("-");
  };
  rates.compare("net growth/s", growth_rate(sa), growth_rate(sb));
  return rates;
}

Section lifetime_section(const json& sa, const json& sb) {
  Section life{"lifetime ms", {}};
  compare_histogram(life, "", sa["lifetime_ms"], sb["lifetime_ms"]);
  for (std::size_t p = 0; p < CTBPF_PROTO_MAX; ++p) {
    const char* proto = proto_class_name(p);
    auto of = [&](const json& s) {
      const auto& l = s["lifetime_ms"];
      return l.contains("by_proto") && l["by_proto"].contains(proto) ? l["by_proto"][proto] : json();
    };
    compare_histogram(life, fmt::format("{} ", proto), of(sa), of(sb));
  }
  return life;
}

Section drops_section(const json& sa, double da, const json& sb, double db) {
  Section drops{"drops: count (per second)", {}};
  for (const char* cause : drop_cause_keys())
    drops.compare(cause, count_and_rate(sa["drops"][cause], da), count_and_rate(sb["drops"][cause], db));
  drops.compare("netfilter_drops", count_and_rate(sa["netfilter_drops"], da),
                count_and_rate(sb["netfilter_drops"], db));
  drops.compare("lost_events", num(sa["lost_events"]), num(sb["lost_events"]));
  return drops;
}

Section sysctls_section(const json& a, const json& b) {
  Section sysctls{"sysctls", {}};
  std::set<std::string> names;
  for (const auto& [name, v] : a["sysctls"].items()) names.insert(name);
  for (const auto& [name, v] : b["sysctls"].items()) names.insert(name);
  for (const auto& name : names) {
    auto value = [&](const json& doc) {
      return doc["sysctls"].contains(name) ? num(doc["sysctls"][name]) : std::string("absent");
    };
    sysctls.compare(name, value(a), value(b));
  }
  return sysctls;
}

// Every section, in the order the text shows them; a section without a change is left out later.
std::vector<Section> compare_sections(const json& a, const json& b) {
  const auto &sa = a["summary"], &sb = b["summary"];
  const double da = sa["duration_s"].get<double>(), db = sb["duration_s"].get<double>();
  std::vector<Section> sections;
  Section setup{"setup", {}};
  for (const char* key : {"host", "kernel", "mode"})
    setup.compare(key, a[key].get<std::string>(), b[key].get<std::string>());
  setup.compare("interval_s", num(a["interval_s"]), num(b["interval_s"]));
  // The netns whose table and kernel stats each file holds (absent from older files: not compared).
  const auto netns = [](const json& summary) { return netns_label(summary.value("own_netns", json())); };
  if (!netns_mismatch(sa, sb).empty()) setup.compare("netns", netns(sa), netns(sb));
  sections.push_back(std::move(setup));
  sections.push_back(rates_section(sa, da, sb, db));
  Section chain{"chain length at insert", {}};
  compare_histogram(chain, "", sa["chain_length"], sb["chain_length"]);
  sections.push_back(std::move(chain));
  sections.push_back(lifetime_section(sa, sb));
  sections.push_back(drops_section(sa, da, sb, db));
  Section table{"table at the end of the window", {}};
  table.compare("table", table_line(sa["table"]).substr(6), table_line(sb["table"]).substr(6));
  sections.push_back(std::move(table));
  sections.push_back(sysctls_section(a, b));
  return sections;
}

json side_json(const std::string& name, const json& doc) {
  return json{{"file", name},
              {"host", doc["host"]},
              {"kernel", doc["kernel"]},
              {"mode", doc["mode"]},
              {"start", doc["window"]["start"]},
              {"duration_s", doc["window"]["duration_s"]}};
}

// One section's changes, in text (columns aligned) and JSON.
void add_section(const Section& s, SnapshotDiff& out) {
  json changes = json::array();
  for (const auto& r : s.rows) changes.push_back({{"name", r[0]}, {"a", r[1]}, {"b", r[2]}});
  out.json["sections"].push_back({{"title", s.title}, {"changes", changes}});
  std::size_t w0 = 0, w1 = 0;
  for (const auto& r : s.rows) {
    w0 = std::max(w0, r[0].size());
    w1 = std::max(w1, r[1].size());
  }
  out.text += "\n" + s.title + "\n";
  for (const auto& r : s.rows) out.text += fmt::format("  {:<{}}  {:>{}} -> {}\n", r[0], w0, r[1], w1, r[2]);
}

}  // namespace

SnapshotDiff diff_snapshots(const json& a, const std::string& name_a, const json& b, const std::string& name_b) {
  SnapshotDiff out;
  out.text = header("A", name_a, a) + header("B", name_b, b);
  // Different namespaces' tables side by side read as a change of load: said before any number.
  if (auto warning = netns_mismatch(a["summary"], b["summary"]); !warning.empty()) out.text += warning + "\n";
  out.json = {{"type", "diff"}, {"a", side_json(name_a, a)}, {"b", side_json(name_b, b)}, {"sections", json::array()}};
  for (const auto& s : compare_sections(a, b)) {
    if (s.rows.empty()) continue;
    out.changed = true;
    add_section(s, out);
  }
  if (!out.changed) out.text += "\nno change\n";
  out.text = wrap_lines(out.text);  // within 100 columns (the headers name files and windows)
  out.json["changed"] = out.changed;
  return out;
}

}  // namespace ctbpf::core
