// `ctbpf report` and `ctbpf diff`: read snapshots (validated in full before anything is printed, so a
// bad file never yields half a report) and render them.
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>

#include "cli/commands.h"
#include "core/report.h"
#include "core/snapshot.h"
#include "kernel/error.h"
#include "kernel/snapshot_files.h"

namespace ctbpf::cli {

namespace {

struct ReportOptions {
  std::string file;
  std::string html;  // write the HTML page here instead of the terminal report
};

struct DiffOptions {
  std::string a, b;
};

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
  auto doc = load_snapshot(options.file);
  if (!options.html.empty()) {
    kernel::write_file_atomically(options.html, core::report_html(doc));
    std::fprintf(stderr, "ctbpf: wrote %s\n", options.html.c_str());
    return kExitOk;
  }
  std::fputs(core::report_text(doc, terminal_width()).c_str(), stdout);
  return kExitOk;
}

/// What changed between two snapshots; exit 0 whether or not anything did.
int run_diff(const DiffOptions& options) {
  auto a = load_snapshot(options.a);
  auto b = load_snapshot(options.b);
  std::fputs(core::diff_snapshots(a, options.a, b, options.b).text.c_str(), stdout);
  return kExitOk;
}

}  // namespace

Command add_report(CLI::App& parent) {
  auto o = std::make_shared<ReportOptions>();
  auto* cmd = parent.add_subcommand(
      "report", "Render a snapshot: summary, drops by cause, histograms, rate timeline (or --html)");
  cmd->add_option("FILE", o->file, "A snapshot written by ctbpf snapshot or trace --record")->required();
  cmd->add_option("--html", o->html, "Write one self-contained HTML page (inline SVG) here");
  return {cmd, [o] { return run_report(*o); }};
}

Command add_diff(CLI::App& parent) {
  auto o = std::make_shared<DiffOptions>();
  auto* cmd = parent.add_subcommand(
      "diff", "What changed between two snapshots: rates, percentiles, drop causes, table, sysctls");
  cmd->add_option("A", o->a, "The earlier snapshot")->required();
  cmd->add_option("B", o->b, "The later snapshot")->required();
  return {cmd, [o] { return run_diff(*o); }};
}
}  // namespace ctbpf::cli
