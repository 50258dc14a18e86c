// ctbpf: conntrack observability with eBPF. This file only wires subcommands to their handlers.
#include <cstdio>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "kernel/error.h"
#include "kernel/tracer.h"

namespace {

// CLI::PositiveNumber prints the whole double range in its error; say it plainly instead.
const CLI::Validator kPositiveSeconds(
    [](std::string& text) -> std::string {
      try {
        if (std::stod(text) > 0) return {};
      } catch (const std::exception&) {
      }
      return "must be a positive number of seconds, got '" + text + "'";
    },
    "SECONDS>0");

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ctbpf: live conntrack insight (insert rate, chain lengths, drop causes) with eBPF"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("ctbpf ") + CTBPF_VERSION);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose,
               "Print libbpf's messages (verifier logs and counts, attach errors) and start-up phases");

  ctbpf::cli::TraceOptions trace;
  auto* trace_cmd = app.add_subcommand(
      "trace",
      "Trace conntrack until Ctrl-C (or -d): insert/destroy rates, chain lengths, drop causes.\n"
      "Ctrl-C, SIGTERM and the end of -d print a summary.");
  trace_cmd->add_option("-i,--interval", trace.interval_s, "Seconds between interval reports")
      ->check(kPositiveSeconds)
      ->default_val(1.0);
  trace_cmd->add_option("-d,--duration", trace.duration_s, "Stop after this many seconds")
      ->check(kPositiveSeconds);
  trace_cmd->add_flag("--json", trace.json,
                      "NDJSON on stdout: one \"interval\" object per interval, then a \"summary\"");
  trace_cmd->add_option("--mode", trace.mode,
                        "Attach family: auto tries fentry, then kprobe, then tracepoint")
      ->check(CLI::IsMember({"auto", "fentry", "kprobe", "tracepoint"}))
      ->default_val("auto");
  trace_cmd->add_option("--ready-file", trace.ready_file,
                        "Write this file once every program is attached (for scripts and tests)");
  trace_cmd
      ->add_option("--events", trace.events,
                   "Stream one line per event: drop (default), insert, destroy or all, comma-separated;\n"
                   "read in batches, so a line can be up to about 50 ms late")
      ->expected(0, 1)
      ->default_str("drop");
  trace_cmd->add_option("--events-rate", trace.events_rate,
                        "At most this many event lines per second (0: no limit); the rest are counted")
      ->default_val(1000);
  trace_cmd->add_option("--ring-size", trace.ring_bytes,
                        "Ring buffer bytes for --events (power of two); a full ring counts lost_events")
      ->default_val(1 << 20);
  trace_cmd->add_option("--lifetime-sample", trace.lifetime_one_in,
                        "Keep lifetimes for 1 entry in N (power of two), chosen at random")
      ->default_val(8);
  trace_cmd->add_option("--top", trace.top,
                        "Also count entries per source address (kernel work on every insert) and put the\n"
                        "busiest N, by live entries and by inserts, in the summary (\"by_source\")")
      ->check(CLI::Range(1, 1000));
  trace_cmd->add_option("--record", trace.record_dir,
                        "Flight recorder: when a drop cause (table_full, early_drop, insert_failed,\n"
                        "chaintoolong, alloc_failed) fires, write a snapshot of the intervals around it here")
      ->type_name("DIR");
  trace_cmd->add_option("--record-before", trace.record.before, "Intervals kept before the one that fires")
      ->default_val(trace.record.before);
  trace_cmd->add_option("--record-after", trace.record.after, "Intervals after it, waited for before writing")
      ->default_val(trace.record.after);
  trace_cmd->add_option("--record-quiet", trace.record.quiet_s,
                        "Seconds without drops before another burst gets its own snapshot")
      ->default_val(trace.record.quiet_s);
  trace_cmd->add_option("--record-keep", trace.record.keep_files, "Newest snapshot files kept in the directory")
      ->default_val(trace.record.keep_files);
  trace_cmd->add_option("--record-max-age", trace.record.max_age_s, "Seconds after which a snapshot file is deleted")
      ->default_val(trace.record.max_age_s);

  ctbpf::cli::FeaturesOptions features;
  auto* features_cmd = app.add_subcommand(
      "features", "What this kernel offers: BTF, ring buffer, which attach families work (by trial)");
  features_cmd->add_flag("--json", features.json, "One JSON object on stdout");

  ctbpf::cli::ServeOptions serve;
  auto* serve_cmd = app.add_subcommand(
      "serve",
      "Always-on: in-kernel aggregation only, exposed as Prometheus metrics on GET /metrics\n"
      "(OpenMetrics when the scraper asks for it) and GET /healthz. SIGTERM stops it cleanly.");
  serve_cmd->add_option("--listen", serve.listen,
                        "HOST:PORT to listen on; loopback unless you name another address")
      ->default_val("127.0.0.1:9640");
  serve_cmd->add_option("-i,--interval", serve.interval_s, "Seconds between reads of the kernel's counters")
      ->check(kPositiveSeconds)
      ->default_val(2.0);
  serve_cmd->add_option("--mode", serve.mode, "Attach family: auto tries fentry, then kprobe, then tracepoint")
      ->check(CLI::IsMember({"auto", "fentry", "kprobe", "tracepoint"}))
      ->default_val("auto");
  serve_cmd->add_option("--ready-file", serve.ready_file, "Write this file once listening and attached");
  serve_cmd->add_option("--lifetime-sample", serve.lifetime_one_in,
                        "Keep lifetimes for 1 entry in N (power of two), chosen at random; serve's 64\n"
                        "(trace: 8) costs new flows an eighth of trace's birth records and lets the\n"
                        "65536-slot births map cover a 4M-entry table")
      ->default_val(64);
  serve_cmd->add_option("--drop-events-rate", serve.drop_events_rate,
                        "Drop events (cause, netns) per second per CPU the kernel puts in the ring for\n"
                        "ctbpf_conntrack_drop_events_total; the rest are only counted (suppressed). Limited\n"
                        "in the kernel so a drop storm costs no ring space or user-space work per packet;\n"
                        "drops_total stays exact. 0: no limit")
      ->default_val(serve.drop_events_rate);
  serve_cmd->add_option("--record", serve.record_dir,
                        "Rolling snapshots (the `ctbpf snapshot` format) in DIR; SIGHUP writes one now");
  serve_cmd->add_option("--record-every", serve.record_every_s, "Seconds per rolling snapshot")
      ->check(kPositiveSeconds)
      ->default_val(300);
  serve_cmd->add_option("--record-keep", serve.record_retention.keep_files, "Newest snapshot files kept")
      ->check(CLI::PositiveNumber)
      ->default_val(288);
  serve_cmd->add_option("--record-max-age", serve.record_retention.max_age_s,
                        "Seconds after which snapshot files are deleted")
      ->check(kPositiveSeconds)
      ->default_val(7 * 86400);

  ctbpf::cli::DoctorOptions doctor;
  auto* doctor_cmd = app.add_subcommand(
      "doctor",
      "Observe conntrack for a while (-d), then print findings: table fill and time to full, chain\n"
      "length, drop causes, timeouts, memory, stateless traffic; each with the commands to fix it.\n"
      "Read-only: it changes nothing.");
  doctor_cmd->add_option("-d,--duration", doctor.duration_s, "Seconds to observe")
      ->check(kPositiveSeconds)
      ->default_val(10.0);
  doctor_cmd->add_flag("--json", doctor.json, "One JSON object: inputs, the trace summary, findings");
  doctor_cmd->add_option("--mode", doctor.mode, "Attach family: auto tries fentry, then kprobe, then tracepoint")
      ->check(CLI::IsMember({"auto", "fentry", "kprobe", "tracepoint"}))
      ->default_val("auto");
  doctor_cmd->add_option("--ready-file", doctor.ready_file,
                         "Write this file once every program is attached (for scripts and tests)");

  ctbpf::cli::SnapshotOptions snapshot;
  auto* snapshot_cmd = app.add_subcommand(
      "snapshot",
      "Trace for -d seconds (Ctrl-C ends it early), then write one JSON document: host, kernel, sysctls,\n"
      "the trace summary with full histograms, and every interval. Written atomically.");
  snapshot_cmd->add_option("-d,--duration", snapshot.duration_s, "Seconds to trace")
      ->check(kPositiveSeconds)
      ->default_val(10.0);
  snapshot_cmd->add_option("-i,--interval", snapshot.interval_s, "Seconds per interval of the series")
      ->check(kPositiveSeconds)
      ->default_val(1.0);
  snapshot_cmd->add_option("-o,--output", snapshot.output, "The JSON file to write")->required();
  snapshot_cmd->add_option("--mode", snapshot.mode, "Attach family: auto tries fentry, then kprobe, then tracepoint")
      ->check(CLI::IsMember({"auto", "fentry", "kprobe", "tracepoint"}))
      ->default_val("auto");
  snapshot_cmd->add_option("--top", snapshot.top,
                           "Also count entries per source address and keep the busiest N in the summary")
      ->check(CLI::Range(1, 1000));
  snapshot_cmd->add_option("--ready-file", snapshot.ready_file,
                           "Write this file once every program is attached (for scripts and tests)");
  snapshot_cmd->add_option("--lifetime-sample", snapshot.lifetime_one_in,
                           "Keep lifetimes for 1 entry in N (power of two), chosen at random")
      ->default_val(8);

  ctbpf::cli::ReportOptions report;
  auto* report_cmd = app.add_subcommand(
      "report", "Render a snapshot: summary, drops by cause, histograms, rate timeline (or --html)");
  report_cmd->add_option("FILE", report.file, "A snapshot written by ctbpf snapshot or trace --record")
      ->required();
  report_cmd->add_option("--html", report.html, "Write one self-contained HTML page (inline SVG) here");

  ctbpf::cli::DiffOptions diff;
  auto* diff_cmd = app.add_subcommand(
      "diff", "What changed between two snapshots: rates, percentiles, drop causes, table, sysctls");
  diff_cmd->add_option("A", diff.a, "The earlier snapshot")->required();
  diff_cmd->add_option("B", diff.b, "The later snapshot")->required();

  ctbpf::cli::TopOptions top;
  auto* top_cmd = app.add_subcommand(
      "top", "Who fills the table: the namespaces and source addresses holding the most entries, live");
  top_cmd->add_option("-i,--interval", top.interval_s, "Seconds between refreshes")
      ->check(kPositiveSeconds)
      ->default_val(1.0);
  top_cmd->add_option("-d,--duration", top.duration_s, "Stop after this many seconds")->check(kPositiveSeconds);
  top_cmd->add_option("-n,--top", top.top, "Rows per table")->check(CLI::Range(1, 1000))->default_val(10);
  top_cmd->add_flag("--json", top.json, "One JSON object per refresh (\"type\":\"top\"), the last with \"final\":true");
  top_cmd->add_option("--mode", top.mode, "Attach family: auto, fentry or kprobe")
      ->check(CLI::IsMember({"auto", "fentry", "kprobe", "tracepoint"}))
      ->default_val("auto");
  top_cmd->add_option("--ready-file", top.ready_file, "Write this file once every program is attached");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "ctbpf: %s (see ctbpf --help)\n", e.what());
    return ctbpf::kExitUsage;
  }

  ctbpf::kernel::Tracer::set_verbose(verbose);
  try {
    if (*trace_cmd) return ctbpf::cli::run_trace(trace);
    if (*features_cmd) return ctbpf::cli::run_features(features);
    if (*snapshot_cmd) return ctbpf::cli::run_snapshot(snapshot);
    if (*report_cmd) return ctbpf::cli::run_report(report);
    if (*diff_cmd) return ctbpf::cli::run_diff(diff);
    if (*doctor_cmd) return ctbpf::cli::run_doctor(doctor);
    if (*serve_cmd) return ctbpf::cli::run_serve(serve);
    if (*top_cmd) return ctbpf::cli::run_top(top);
  } catch (const ctbpf::Error& e) {
    std::fprintf(stderr, "ctbpf: %s\n", e.what());
    return e.code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ctbpf: %s\n", e.what());
    return ctbpf::kExitFailure;
  }
  return ctbpf::kExitUsage;
}
