// SPDX-License-Identifier: Apache-2.0
// The chart model of a snapshot and its terminal view. Everything here reads a document that
// read_snapshot() validated, so every field it touches exists with the right type.
#include "core/report.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/aggregator.h"
#include "core/readings.h"
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
  // A file written before percentiles were clamped may hold a p99 (a slot's bound) above the max.
  auto at_most_max = [&](const json& p) {
    if (p.is_number_unsigned() && h["max"].is_number_unsigned())
      return num(std::min(p.get<uint64_t>(), h["max"].get<uint64_t>()));
    return num(p);
  };
  return fmt::format("{}: n {}  mean {:.1f}  p50 {}  p99 {}  max {}", name, num(h["count"]),
                     h["mean"].get<double>(), at_most_max(h["p50"]), at_most_max(h["p99"]), num(h["max"]));
}

std::string growth_text(const json& table) {
  const json growth = table.value("growth", json()), rate = table.value("growth_per_s", json());
  if (!growth.is_number_integer()) return "-";
  return fmt::format("{:+} ({})", growth.get<int64_t>(),
                     rate.is_number() ? fmt::format("{:+.0f}/s", rate.get<double>()) : "-");
}

std::string kernel_stats_line(const json& stats) {
  std::string out;
  for (const auto& [name, v] : stats.items()) {
    if (v.is_null()) continue;
    out += (out.empty() ? "" : "  ") + name + " " + num(v);
  }
  return out.empty() ? "-" : out;
}

std::string drops_note(const json& doc) {
  const auto& drops = doc["summary"]["drops"];
  std::string seen;
  for (const char* cause : drop_cause_keys()) {
    const auto& v = drops[cause];
    if (v.is_number_unsigned() && v.get<uint64_t>() > 0) return {};
    if (!v.is_null()) seen += (seen.empty() ? "" : ", ") + std::string(cause);
  }
  if (seen.empty()) return "drops by cause: - (not observable in this mode)";
  return "no drops in this window (watched: " + seen + ")";
}

std::string unit_of(const std::string& sysctl) {
  if (sysctl.find("timeout") != std::string::npos) return "s";
  if (sysctl == "max" || sysctl == "count" || sysctl == "expect_max") return "entries";
  if (sysctl == "buckets") return "buckets";
  return "";
}

const std::vector<std::string>& key_sysctls() {
  // What decides whether the table fills: its size, its hash, and the timeouts that hold most entries.
  static const std::vector<std::string> keys = {
      "max", "count", "buckets", "tcp_timeout_established", "tcp_timeout_time_wait", "tcp_timeout_close_wait",
      "tcp_timeout_syn_sent", "tcp_timeout_unacknowledged", "udp_timeout", "udp_timeout_stream", "icmp_timeout",
      "generic_timeout", "tcp_loose", "tcp_be_liberal"};
  return keys;
}

std::string sysctl_value(const std::string& name, const json& value) {
  auto unit = unit_of(name);
  std::string v = num(value);
  if (unit == "s" && value.is_number_unsigned()) {
    auto secs = value.get<uint64_t>();
    if (secs >= 86400 && secs % 3600 == 0) return fmt::format("{} s ({:g} d)", v, static_cast<double>(secs) / 86400);
    if (secs >= 3600 && secs % 60 == 0) return fmt::format("{} s ({:g} h)", v, static_cast<double>(secs) / 3600);
  }
  return unit.empty() ? v : v + " " + unit;
}

std::string window_line(const json& doc) {
  const auto& w = doc["window"];
  return fmt::format("window {} to {}: {:.1f} s, {} intervals of {:g} s", w["start"].get<std::string>(),
                     w["end"].get<std::string>(), w["duration_s"].get<double>(), doc["intervals"].size(),
                     doc["interval_s"].get<double>());
}

std::vector<std::string> netns_lines(const json& summary) {
  std::vector<std::string> out;
  const json none;
  auto at = [&](const char* key) -> const json& { return summary.contains(key) ? summary[key] : none; };
  if (auto label = netns_label(at("own_netns")); !label.empty()) out.push_back("table and kernel stats: " + label);
  const json& table = at("table");
  const json count = table.is_object() && table.contains("count") ? table["count"] : json();
  if (auto hint = other_netns_hint_json(at("other_netns"), count, "snapshot"); !hint.empty()) out.push_back(hint);
  return out;
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

void bars_push(Chart& c, std::string label, double value, std::string text) {
  c.bars.push_back({std::move(label), value, std::move(text)});
}

// The whole window's distributions: drops by cause, chain lengths, lifetimes by protocol.
void add_window_charts(const json& s, std::vector<Chart>& charts) {
  // Only when something was dropped: an all-zero chart says nothing a line of text does not
  // (drops_note() says "no drops in this window" instead).
  Chart causes{"drops_by_cause", "Drops by cause (whole window)", Chart::Kind::causes, {}};
  bool dropped = false;
  for (const char* cause : drop_cause_keys()) {
    const auto& v = s["drops"][cause];
    if (v.is_null()) continue;
    dropped = dropped || v.get<uint64_t>() > 0;
    causes.bars.push_back({cause, static_cast<double>(v.get<uint64_t>()), num(v)});
  }
  if (dropped) charts.push_back(std::move(causes));

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
}

// The table over time: its count, and how fast it fills.
void add_fill_charts(const json& s, const json& intervals, std::vector<Chart>& charts) {
  // The table over time: every interval stores its count, in every mode. A chart of zeros (an empty
  // table, a flat one) says nothing the summary's line does not: left out, like the drops below.
  Chart table{"table_count",
              fmt::format("Entries in the table at each interval's end, this netns (max {}; end time in s)",
                          num(s["table"]["max"])),
              Chart::Kind::timeline,
              {}};
  bool counted = false;
  for (const auto& r : intervals) {
    const auto& v = r["table"]["count"];
    counted = counted || (v.is_number_unsigned() && v.get<uint64_t>() > 0);
    std::string text = num(v);
    if (r["table"]["fill"].is_number()) text += fmt::format(" ({:.1f}%)", 100 * r["table"]["fill"].get<double>());
    bars_push(table, time_label(r), v.is_null() ? 0.0 : v.get<double>(), text);
  }
  if (counted) charts.push_back(std::move(table));

  // How fast it fills: inserts when the probes see them, else the net growth of the count.
  Chart inserts{"inserts_per_s", "Inserts per second, per interval (end time in s)", Chart::Kind::timeline, {}};
  bool observable = false;
  for (const auto& r : intervals) {
    const auto& v = r["rates"]["inserts_per_s"];
    observable = observable || !v.is_null();
    bars_push(inserts, time_label(r), v.is_null() ? 0.0 : v.get<double>(),
              v.is_null() ? "-" : fmt::format("{:.0f}/s", v.get<double>()));
  }
  if (observable) {
    charts.push_back(std::move(inserts));
  } else {
    Chart growth{"growth_per_s",
                 "Net growth of the table, entries per second, this netns (inserts are unobservable in this "
                 "mode; end time in s)",
                 Chart::Kind::timeline,
                 {}};
    bool known = false;
    for (const auto& r : intervals) {
      const json v = r["table"].value("growth_per_s", json());
      known = known || (v.is_number() && v.get<double>() != 0);
      bars_push(growth, time_label(r), v.is_number() ? v.get<double>() : 0.0,
                v.is_number() ? fmt::format("{:+.0f}/s", v.get<double>()) : "-");
    }
    if (known) charts.push_back(std::move(growth));
  }
}

// Drops per interval, one chart per cause that fired, and netfilter's.
void add_drop_timelines(const json& intervals, std::vector<Chart>& charts) {
  for (const char* cause : drop_cause_keys()) {
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

  Chart netfilter{"netfilter_drops", "Netfilter drops per interval, every netns (end time in s)",
                  Chart::Kind::timeline, {}};
  bool fired = false;
  for (const auto& r : intervals) {
    const auto& v = r["netfilter_drops"];
    uint64_t n = v.is_number_unsigned() ? v.get<uint64_t>() : 0;
    fired = fired || n > 0;
    netfilter.bars.push_back({time_label(r), static_cast<double>(n), num(v)});
  }
  if (fired) charts.push_back(std::move(netfilter));
}

}  // namespace

std::vector<Chart> report_charts(const json& doc) {
  std::vector<Chart> charts;
  add_window_charts(doc["summary"], charts);
  add_fill_charts(doc["summary"], doc["intervals"], charts);
  add_drop_timelines(doc["intervals"], charts);
  return charts;
}

namespace {

// Rates and gauges are averaged when rows are grouped; counts are summed.
bool averaged(const Chart& c) { return c.id == "inserts_per_s" || c.id == "growth_per_s" || c.id == "table_count"; }

// A histogram or cause chart: one row per bar, '#' in proportion to the largest (|value|), '-' for
// a negative one, nothing at all for 0.
void bar_rows(std::string& out, const Chart& c, int width) {
  std::size_t label_w = 2, text_w = 1;
  double peak = 0;
  for (const auto& b : c.bars) {
    label_w = std::max(label_w, b.label.size());
    text_w = std::max(text_w, b.text.size());
    peak = std::max(peak, std::abs(b.value));
  }
  const int bar_w = std::max(10, width - static_cast<int>(label_w + text_w) - 8);
  for (const auto& b : c.bars) {
    std::size_t n = 0;
    if (peak > 0 && b.value != 0)
      n = std::max<std::size_t>(1, static_cast<std::size_t>(std::lround(std::abs(b.value) / peak * bar_w)));
    std::string line = fmt::format("  {:>{}} {:>{}} |{}", b.label, label_w, b.text, text_w,
                                   std::string(n, b.value < 0 ? '-' : '#'));
    out += line + "\n";
  }
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
    std::string text = fmt::format("{:.0f}", value);
    if (group == 1) text = c.bars[i].text;  // as stored: "-", "300 (100.0%)", "+12/s"
    else if (is_rate && c.id != "table_count") text += "/s";
    rows.push_back({"t " + label, value, text});
  }
  if (group > 1) out += fmt::format("  ({} intervals per row)\n", group);
  bar_rows(out, {c.id, c.title, c.kind, rows}, width);
}

}  // namespace

// Where NAT'd traffic died, from a summary's rows (checked by the snapshot reader): at most 10 of each.
std::string report_detail::nat_drops_report_lines(const json& s) {
  auto rows = [&](const char* key) { return s.contains(key) && s[key].is_array() ? &s[key] : nullptr; };
  std::string out;
  if (const json* flows = rows("nat_blackholes")) {
    out += fmt::format("  nat blackholes: {}\n", flows->empty() ? "none" : fmt::format("{} flows", flows->size()));
    for (std::size_t i = 0; i < flows->size() && i < 10; ++i) {
      const auto& f = (*flows)[i];
      auto end = [](const json& addr, const json& port) {
        return port.is_null() ? addr.get<std::string>() : fmt::format("{}:{}", addr.get<std::string>(), num(port));
      };
      out += fmt::format("    {} {} > {}{}{} {}, {} packets, netns {}\n", f["proto"].get<std::string>(),
                         end(f["src"], f["sport"]), end(f["dst"], f["dport"]),
                         f["dnat_to"].is_string() ? " dnat to " + f["dnat_to"].get<std::string>() : "",
                         f["snat_to"].is_string() ? " snat to " + f["snat_to"].get<std::string>() : "",
                         f["reason"].get<std::string>(), num(f["packets"]), num(f["netns"]));
    }
  } else {
    out += "  nat blackholes: - (kfree_skb gives no drop reason before 5.17)\n";
  }
  if (const json* races = rows("dns_races")) {
    out += fmt::format("  dns races: {}\n", races->empty() ? "none" : fmt::format("{}", races->size()));
    for (std::size_t i = 0; i < races->size() && i < 10; ++i) {
      const auto& r = (*races)[i];
      out += fmt::format("    netns {} {} via {}: insert_failed {} (dropped), clash_resolve {} (kept)\n", num(r["netns"]),
                         r["service"].get<std::string>(), r["resolver"].get<std::string>(), num(r["insert_failed"]),
                         num(r["clash_resolve"]));
    }
  } else {
    out += "  dns races: - (needs the fentry or kprobe family)\n";
  }
  return out;
}

std::string report_text(const json& doc, int width) {
  width = std::clamp(width, 40, 100);  // a wider terminal gets the same 100 columns: reports are read, not scanned
  const auto& s = doc["summary"];
  const double duration = s["duration_s"].get<double>();
  std::string out = fmt::format("ctbpf snapshot: host {}, kernel {}, {} mode\n", doc["host"].get<std::string>(),
                                doc["kernel"].get<std::string>(), doc["mode"].get<std::string>());
  out += window_line(doc) + "\n";
  for (const auto& line : netns_lines(s)) out += line + "\n";
  if (auto t = trigger_line(doc); !t.empty()) out += t + "\n";

  out += "\nsummary\n";
  out += fmt::format("  allocs {}  inserts {} ({})  destroys {} ({})  deletes {}\n", num(s["allocs"]),
                     num(s["inserts"]), per_s(s["inserts"], duration), num(s["destroys"]),
                     per_s(s["destroys"], duration), num(s["deletes"]));
  out += "  " + table_line(s["table"]) + "  growth " + growth_text(s["table"]) + "\n";
  out += "  " + histogram_line("chain length", s["chain_length"]);
  // sampled_one_in: null where the mode walks no chains and sees no frees (tracepoint), absent in
  // files older than it; only a number is printed.
  const auto one_in = [](const json& h) {
    return h.contains("sampled_one_in") && h["sampled_one_in"].is_number_integer()
               ? std::max<int64_t>(h["sampled_one_in"].get<int64_t>(), 0)
               : int64_t{0};
  };
  if (one_in(s["chain_length"]) > 1)
    out += fmt::format("  (1 insert in {} per CPU walked)", one_in(s["chain_length"]));
  out += "\n";
  out += "  " + histogram_line("lifetime ms", s["lifetime_ms"]);
  if (one_in(s["lifetime_ms"]) > 0)
    out += fmt::format("  (1 entry in {} sampled)", one_in(s["lifetime_ms"]));
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
  if (s.contains("kernel_stats") && s["kernel_stats"].is_object())
    out += "  kernel stats (ctnetlink, this netns): " + kernel_stats_line(s["kernel_stats"]) + "\n" +
           kernel_counter_notes("    ");
  out += fmt::format("  netfilter drops {}{}  lost events {}\n", num(s["netfilter_drops"]),
                     s["netfilter_drops"].is_null() ? "" : " (every netns)", num(s["lost_events"]));
  out += nat_drops_report_lines(s);
  const auto& m = s["probe_misses"];
  if (m["confirm_unpaired"] != 0 || m["chain_walk_truncated"] != 0 || m["recursion"] != 0)
    out += fmt::format("  probe misses: unpaired confirms {}, truncated chain walks {}, skipped runs {}\n",
                       num(m["confirm_unpaired"]), num(m["chain_walk_truncated"]), num(m["recursion"]));

  auto charts = report_charts(doc);
  if (auto note = drops_note(doc); !note.empty()) out += "\n" + note + "\n";
  for (const auto& c : charts) {
    out += "\n" + c.title + "\n";
    if (c.kind == Chart::Kind::timeline) timeline_rows(out, c, width, averaged(c));
    else bar_rows(out, c, width);
  }

  out += "\nsysctls (net.netfilter.nf_conntrack_*)\n";
  const auto& sysctls = doc["sysctls"];
  for (const auto& name : key_sysctls())
    if (auto it = sysctls.find(name); it != sysctls.end())
      out += fmt::format("  {:<28} {}\n", name, sysctl_value(name, *it));
  out += "  others:\n";
  std::string line;
  for (const auto& [name, value] : sysctls.items()) {
    if (std::find(key_sysctls().begin(), key_sysctls().end(), name) != key_sysctls().end()) continue;
    auto item = fmt::format("{} {}", name, num(value));
    if (!line.empty() && static_cast<int>(line.size() + item.size()) + 4 > width) {
      out += "  " + line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : "  ") + item;
  }
  if (!line.empty()) out += "  " + line + "\n";
  return wrap_lines(out, static_cast<std::size_t>(width));  // a long line of values breaks at a space
}

}  // namespace ctbpf::core
