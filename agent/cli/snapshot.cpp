// SPDX-License-Identifier: Apache-2.0
// `ctbpf snapshot`: trace for a window with the same loop as `trace`, then write one document.
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <vector>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/trace_loop.h"
#include "cli/who_fills.h"
#include "core/snapshot.h"
#include "kernel/error.h"
#include "kernel/snapshot_files.h"
#include "kernel/system.h"
#include "kernel/tracer.h"

namespace ctbpf::cli {

namespace {

struct SnapshotOptions {
  double duration_s = 10.0;
  double interval_s = 1.0;
  std::string output;  // the JSON file, written atomically
  std::string mode = "auto";
  std::string ready_file;
  uint32_t lifetime_one_in = 8;
  std::size_t top = 0;  // --top: the busiest N sources in the summary; 0 = not tracked
  core::DumpLimit dump;  // --dump-max-*: the dump that seeds --top's live counts
};

/// Traces for duration_s (or until Ctrl-C / SIGTERM) and writes one snapshot document.
int run_snapshot(const SnapshotOptions& options) {
  check_output_file(options.output, "-o");
  // Every interval but the tail is full; the tail may add one.
  const double most_intervals = std::ceil(options.duration_s / options.interval_s) + 1;
  if (most_intervals > static_cast<double>(core::kSnapshotMaxIntervals))
    throw Error(kExitUsage, fmt::format("-d {} / -i {} makes more than the {} intervals a snapshot holds; "
                                        "use a longer -i",
                                        options.duration_s, options.interval_s, core::kSnapshotMaxIntervals));
  kernel::Tracer::Options topts;
  topts.lifetime_one_in = options.lifetime_one_in;
  // Per-source counts cost kernel work on every insert and destroy: only with --top (as in trace).
  topts.track_sources = options.top > 0;
  auto tracer = start_tracer(options.mode, topts);
  WhoFillsTracker who(options.top, *tracer, options.dump);
  core::Aggregator aggregator(tracer->mode(), tracer->observability());
  const double wall_at_baseline = kernel::wall_clock_s();
  const auto baseline = tracer->sample();
  aggregator.add(baseline);
  write_ready_file(options.ready_file, tracer->mode());
  std::fprintf(stderr, "ctbpf: snapshot of %g s in %s mode; Ctrl-C ends it early\n", options.duration_s,
               core::to_string(tracer->mode()).c_str());

  std::vector<core::Report> intervals;
  double last_t = baseline.t_s;
  run_sample_loop(*tracer, aggregator, options.interval_s, options.duration_s, {},
                  [&](const core::Report& r, const core::Sample& sample, bool) {
                    who.saw(r, sample);
                    intervals.push_back(r);
                    last_t = sample.t_s;
                  });

  core::SnapshotMeta meta;
  meta.host = kernel::host_name();
  meta.kernel = kernel::kernel_release();
  meta.mode = tracer->mode();
  meta.obs = tracer->observability();
  meta.start_epoch_s = wall_at_baseline;
  meta.end_epoch_s = wall_at_baseline + (last_t - baseline.t_s);
  meta.interval_s = options.interval_s;
  meta.sysctls = kernel::read_conntrack_sysctls();
  const auto summary = aggregator.summary();
  meta.who = who.finish(summary);
  auto doc = core::make_snapshot(meta, summary, intervals);
  kernel::write_file_atomically(options.output, core::snapshot_bytes(doc));
  std::fprintf(stderr, "ctbpf: wrote %s: %zu intervals, %.1f s\n", options.output.c_str(), intervals.size(),
               doc["window"]["duration_s"].get<double>());
  return kExitOk;
}

}  // namespace

Command add_snapshot(CLI::App& parent) {
  auto o = std::make_shared<SnapshotOptions>();
  auto* cmd = parent.add_subcommand(
      "snapshot",
      "Trace for -d seconds (Ctrl-C ends it early), then write one JSON document: host, kernel, sysctls,\n"
      "the trace summary with full histograms, and every interval. Written atomically.");
  cmd->add_option("-d,--duration", o->duration_s, "Seconds to trace")
      ->check(bounded(core::kDurationSeconds))->default_val(10.0);
  cmd->add_option("-i,--interval", o->interval_s, "Seconds per interval of the series")
      ->check(bounded(core::kIntervalSeconds))
      ->default_val(1.0);
  cmd->add_option("-o,--output", o->output, "The JSON file to write")->required();
  add_mode_option(*cmd, o->mode);
  cmd->add_option("--top", o->top, "Also count entries per source address and keep the busiest N in the summary")
      ->check(bounded(core::kTopRows));
  add_dump_options(*cmd, o->dump,
                   "With --top, snapshot\n"
                   "dumps it at start to seed the live counts of its netns.");
  add_ready_file_option(*cmd, o->ready_file, "Write this file once every program is attached (for scripts and tests)");
  cmd->add_option("--lifetime-sample", o->lifetime_one_in,
                  "Keep lifetimes for 1 entry in N (power of two), picked by a hash of its tuple\n"
                  "and the CPU's insert count")
      ->check(bounded(core::kSampleOneIn))
      ->default_val(8);
  cmd->footer("Examples:\n"
             "  ctbpf snapshot -d 60 -o before.json  # a minute of intervals in one file\n"
             "  ctbpf report before.json             # read it back");
  return {cmd, [o] { return run_snapshot(*o); }};
}
}  // namespace ctbpf::cli
