// SPDX-License-Identifier: Apache-2.0
// `ctbpf report` and `ctbpf diff`: read snapshots (validated in full before anything is printed, so a
// bad file never yields half a report) and render them.
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/report.h"
#include "core/snapshot.h"
#include "kernel/error.h"
#include "kernel/snapshot_files.h"

namespace ctbpf::cli {

namespace {

struct ReportOptions {
  std::string file;
  std::string html;  // write the HTML page here instead of the terminal report
  bool json = false;
};

struct DiffOptions {
  std::string a, b;
  bool json = false;
};

// The report's charts for programs, with what identifies the snapshot and its summary.
nlohmann::json report_json(const nlohmann::json& doc, const std::string& file) {
  nlohmann::json charts = nlohmann::json::array();
  for (const auto& c : core::report_charts(doc)) {
    nlohmann::json bars = nlohmann::json::array();
    for (const auto& b : c.bars) bars.push_back({{"label", b.label}, {"value", b.value}, {"text", b.text}});
    const char* kind = c.kind == core::Chart::Kind::histogram  ? "histogram"
                       : c.kind == core::Chart::Kind::timeline ? "timeline"
                                                               : "causes";
    charts.push_back({{"id", c.id}, {"title", c.title}, {"kind", kind}, {"bars", bars}});
  }
  return {{"type", "report"}, {"file", file},       {"host", doc["host"]},       {"kernel", doc["kernel"]},
          {"mode", doc["mode"]}, {"window", doc["window"]}, {"summary", core::summary_as_now(doc["summary"])}, {"charts", charts}};
}

nlohmann::json load_snapshot(const std::string& path) {
  auto bytes = kernel::read_file_capped(path, core::kSnapshotMaxBytes);
  try {
    return core::read_snapshot(bytes, path);
  } catch (const core::SnapshotError& e) {
    throw Error(kExitUsage, e.what());
  }
}

int terminal_width() {
  winsize ws{};
  return isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col ? ws.ws_col : 100;
}

/// Renders a snapshot in the terminal, or as one self-contained HTML page.
int run_report(const ReportOptions& options) {
  if (!options.html.empty()) check_output_file(options.html, "--html");
  auto doc = load_snapshot(options.file);
  if (options.json) {
    std::puts(report_json(doc, options.file).dump().c_str());
    return kExitOk;
  }
  if (!options.html.empty()) {
    kernel::write_file_atomically(options.html, core::report_html(doc));
    std::fprintf(stderr, "ctbpf: wrote %s\n", options.html.c_str());
    return kExitOk;
  }
  std::fputs(core::report_text(doc, terminal_width()).c_str(), stdout);
  return kExitOk;
}

/// What changed between two snapshots. Exit codes as diff(1)'s: 0 the same, 1 changed, 2 trouble.
int run_diff(const DiffOptions& options) {
  auto a = load_snapshot(options.a);
  auto b = load_snapshot(options.b);
  auto diff = core::diff_snapshots(a, options.a, b, options.b);
  std::fputs(options.json ? (diff.json.dump() + "\n").c_str() : diff.text.c_str(), stdout);
  return diff.changed ? kExitFailure : kExitOk;
}

}  // namespace

Command add_report(CLI::App& parent) {
  auto o = std::make_shared<ReportOptions>();
  auto* cmd = parent.add_subcommand(
      "report", "Render a snapshot: summary, drops by cause, histograms, rate timeline (or --html)");
  cmd->add_option("FILE", o->file, "A snapshot written by ctbpf snapshot or trace --record")->required();
  cmd->add_option("--html", o->html, "Write one self-contained HTML page (inline SVG) here");
  cmd->add_flag("--json", o->json, "One JSON object: the snapshot's identity and summary, and the report's charts");
  cmd->footer("Examples:\n"
             "  ctbpf report before.json                 # summary, drops, histograms, timelines\n"
             "  ctbpf report before.json --html r.html  # one page, inline SVG, no script");
  return {cmd, [o] { return run_report(*o); }};
}

Command add_diff(CLI::App& parent) {
  auto o = std::make_shared<DiffOptions>();
  auto* cmd = parent.add_subcommand(
      "diff", "What changed between two snapshots: rates, percentiles, drop causes, table, sysctls");
  cmd->add_option("A", o->a, "The earlier snapshot")->required();
  cmd->add_option("B", o->b, "The later snapshot")->required();
  cmd->add_flag("--json", o->json, "One JSON object: each section's changes, values as the text prints them");
  cmd->footer("Exit status: 0 no change, 1 something changed, 2 bad input (as diff(1)).\n\n"
             "Examples:\n"
             "  ctbpf diff before.json after.json         # what changed, section by section\n"
             "  ctbpf diff --json before.json after.json  # the same, as one JSON object");
  return {cmd, [o] {
            // diff(1)'s convention: 1 means "changed", so any trouble must be 2, never 1.
            try {
              return run_diff(*o);
            } catch (const Error& e) {
              throw Error(kExitUsage, e.what());
            } catch (const std::exception& e) {
              throw Error(kExitUsage, e.what());
            }
          }};
}
}  // namespace ctbpf::cli
