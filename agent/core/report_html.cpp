// SPDX-License-Identifier: Apache-2.0
// The HTML report: one page, inline CSS and SVG, nothing fetched and nothing run. Every string that
// came from the file is escaped, although the reader already allows only printable ASCII in them.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/fields.h"
#include "core/report.h"
#include "core/report_detail.h"

namespace ctbpf::core {

using nlohmann::json;
using namespace report_detail;

namespace {

std::string esc(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// Axis numbers: 1234567 -> 1.2M, so a label never runs into the plot.
std::string short_number(double v) {
  if (v >= 1e9) return fmt::format("{:.1f}G", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.1f}M", v / 1e6);
  if (v >= 1e4) return fmt::format("{:.1f}k", v / 1e3);
  if (v >= 100) return fmt::format("{:.0f}", v);
  return fmt::format("{:g}", std::round(v * 10) / 10);
}

std::string svg_chart(const Chart& c) {
  constexpr double kWidth = 760, kHeight = 230, kLeft = 56, kRight = 12, kTop = 12, kBottom = 44;
  constexpr double kPlotW = kWidth - kLeft - kRight, kPlotH = kHeight - kTop - kBottom;
  const std::size_t n = c.bars.size();
  // The zero line sits at the bottom unless some value is negative (net growth can be).
  double peak = 0, low = 0;
  for (const auto& b : c.bars) {
    peak = std::max(peak, b.value);
    low = std::min(low, b.value);
  }
  const double span = peak - low;
  auto y_of = [&](double v) { return kTop + (span > 0 ? (peak - v) / span * kPlotH : kPlotH); };
  const double zero_y = y_of(0);
  const double slot = kPlotW / static_cast<double>(std::max<std::size_t>(n, 1));
  const double bar_w = std::max(slot * (n > 200 ? 1.0 : 0.8), 0.2);

  std::string svg = fmt::format(
      "<svg id=\"chart-{}\" class=\"chart {}\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {}\" "
      "width=\"{}\" height=\"{}\" role=\"img\" aria-label=\"{}\">\n",
      esc(c.id), c.id.rfind("drops", 0) == 0 || c.id == "netfilter_drops" ? "drops" : "counts", kWidth, kHeight,
      kWidth, kHeight, esc(c.title));
  // Axes, with the peak (and the lowest value, when negative) marked on the y axis.
  svg += fmt::format("<line class=\"axis\" x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\"/>\n", kLeft, kTop,
                     kTop + kPlotH);
  svg += fmt::format("<line class=\"axis\" x1=\"{0}\" y1=\"{1:.2f}\" x2=\"{2}\" y2=\"{1:.2f}\"/>\n", kLeft, zero_y,
                     kLeft + kPlotW);
  svg += fmt::format("<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", kLeft - 4,
                     kTop + 8, esc(short_number(peak)));
  svg += fmt::format("<text class=\"tick\" x=\"{}\" y=\"{:.2f}\" text-anchor=\"end\">0</text>\n", kLeft - 4,
                     low < 0 ? zero_y + 4 : zero_y);
  if (low < 0)
    svg += fmt::format("<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">-{}</text>\n", kLeft - 4,
                       kTop + kPlotH, esc(short_number(-low)));

  for (std::size_t i = 0; i < n; ++i) {
    const auto& b = c.bars[i];
    const double top = y_of(std::max(b.value, 0.0)), bottom = y_of(std::min(b.value, 0.0));
    const double x = kLeft + static_cast<double>(i) * slot + (slot - bar_w) / 2;
    svg += fmt::format("<rect class=\"bar\" x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\">"
                       "<title>{}: {}</title></rect>\n",
                       x, top, bar_w, bottom - top, esc(b.label), esc(b.text));
  }
  // X labels: every bar when they fit, else about ten evenly spaced.
  const std::size_t every = c.kind == Chart::Kind::causes ? 1 : std::max<std::size_t>(1, (n + 9) / 10);
  for (std::size_t i = 0; i < n; i += every)
    svg += fmt::format("<text class=\"tick\" x=\"{:.2f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                       kLeft + (static_cast<double>(i) + 0.5) * slot, kTop + kPlotH + 14, esc(c.bars[i].label));
  const char* x_title = c.kind == Chart::Kind::histogram ? "bucket upper bound (le)"
                        : c.kind == Chart::Kind::timeline ? "interval end (s)"
                                                          : "";
  svg += fmt::format("<text class=\"axis-title\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                     kLeft + kPlotW / 2, kHeight - 8, x_title);
  return svg + "</svg>\n";
}

std::string row(const std::string& key, const std::string& value) {
  return fmt::format("<tr><th>{}</th><td>{}</td></tr>\n", esc(key), esc(value));
}

constexpr const char* kStyle = R"(
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px auto; max-width: 800px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
table { border-collapse: collapse; } th, td { padding: 2px 12px 2px 0; text-align: left; vertical-align: top; }
th { font-weight: 600; } td { font-variant-numeric: tabular-nums; }
.note { color: #555; }
svg.chart { display: block; max-width: 100%; height: auto; }
svg.chart .axis { stroke: #444; stroke-width: 1; }
svg.chart .tick, svg.chart .axis-title { font-size: 10px; fill: #444; }
svg.counts rect.bar { fill: #3b75af; }
svg.drops rect.bar { fill: #c0392b; }
)";

}  // namespace

std::string report_html(const json& doc) {
  const auto& s = doc["summary"];
  const double duration = s["duration_s"].get<double>();
  const std::string host = doc["host"].get<std::string>();
  std::string out =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      // Nothing may load or run: the page is a file to keep with a postmortem.
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n";
  out += fmt::format("<title>ctbpf snapshot: {} at {}</title>\n<style>{}</style>\n</head>\n<body>\n",
                     esc(host), esc(doc["window"]["start"].get<std::string>()), kStyle);
  out += fmt::format("<h1>ctbpf snapshot: {}</h1>\n<p>kernel {}, {} mode<br>{}", esc(host),
                     esc(doc["kernel"].get<std::string>()), esc(doc["mode"].get<std::string>()),
                     esc(window_line(doc)));
  for (const auto& line : netns_lines(s)) out += "<br>" + esc(line);
  if (auto t = trigger_line(doc); !t.empty()) out += "<br><strong>" + esc(t) + "</strong>";
  out += "</p>\n";

  out += "<h2>Summary</h2>\n<table class=\"summary\">\n";
  out += row("allocs", num(s["allocs"]));
  out += row("inserts", fmt::format("{} ({})", num(s["inserts"]), per_s(s["inserts"], duration)));
  out += row("destroys", fmt::format("{} ({})", num(s["destroys"]), per_s(s["destroys"], duration)));
  out += row("deletes", num(s["deletes"]));
  out += row("table", table_line(s["table"]).substr(6));
  out += row("chain length", histogram_line("", s["chain_length"]).substr(2));
  out += row("lifetime ms", histogram_line("", s["lifetime_ms"]).substr(2));
  out += row("table growth", growth_text(s["table"]));
  out += row("netfilter drops", num(s["netfilter_drops"]) + (s["netfilter_drops"].is_null() ? "" : " (every netns)"));
  if (s.contains("kernel_stats") && s["kernel_stats"].is_object()) {
    out += row("kernel stats (this netns)", kernel_stats_line(s["kernel_stats"]));
    for (const auto& counter : kKernelCounters)
      if (counter.note) out += row(std::string("kernel stat ") + counter.key, counter.note);
  }
  out += row("lost events", num(s["lost_events"]));
  // One row per line: "nat blackholes: 1 flows", then each flow, then the same for DNS races.
  std::string lines = nat_drops_report_lines(s);
  for (std::size_t at = 0, end; at < lines.size(); at = end + 1) {
    end = lines.find('\n', at);
    auto line = lines.substr(at, end - at);
    auto colon = line.find(": ");
    if (line.rfind("  nat", 0) == 0 || line.rfind("  dns", 0) == 0)
      out += row(line.substr(2, colon - 2), line.substr(colon + 2));
    else
      out += row("", line.substr(4));
  }
  out += "</table>\n";
  out += "<p class=\"note\">- means the attach mode cannot observe the value; it is never a made-up 0.</p>\n";

  auto charts = report_charts(doc);
  if (auto note = drops_note(doc); !note.empty())
    out += fmt::format("<h2>Drops</h2>\n<p class=\"note\" id=\"drops-note\">{}</p>\n", esc(note));
  for (const auto& c : charts) {
    out += fmt::format("<h2>{}</h2>\n", esc(c.title));
    out += svg_chart(c);
  }
  if (charts.empty()) out += "<p class=\"note\">Nothing to chart in this window.</p>\n";

  // The few that decide whether the table fills, with units; the rest folded away.
  const auto& sysctls = doc["sysctls"];
  out += "<h2>Sysctls (net.netfilter.nf_conntrack_*)</h2>\n<table class=\"sysctls\">\n";
  for (const auto& name : key_sysctls())
    if (auto it = sysctls.find(name); it != sysctls.end()) out += row(name, sysctl_value(name, *it));
  out += "</table>\n";
  std::string rest;
  std::size_t others = 0;
  for (const auto& [name, value] : sysctls.items()) {
    if (std::find(key_sysctls().begin(), key_sysctls().end(), name) != key_sysctls().end()) continue;
    rest += row(name, sysctl_value(name, value));
    ++others;
  }
  if (others)
    out += fmt::format("<details><summary>{} other sysctls</summary>\n<table class=\"sysctls-other\">\n{}</table>\n"
                       "</details>\n",
                       others, rest);
  out += "</body>\n</html>\n";
  return out;
}

}  // namespace ctbpf::core
