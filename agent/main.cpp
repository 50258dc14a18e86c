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
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Print libbpf's messages (verifier logs, attach errors)");

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
                   "Stream one line per event: drop (default), insert, destroy or all, comma-separated")
      ->expected(0, 1)
      ->default_str("drop");
  trace_cmd->add_option("--events-rate", trace.events_rate,
                        "At most this many event lines per second (0: no limit); the rest are counted")
      ->default_val(1000);
  trace_cmd->add_option("--ring-size", trace.ring_bytes,
                        "Ring buffer bytes for --events (power of two); a full ring counts lost_events")
      ->default_val(1 << 20);
  trace_cmd->add_option("--lifetime-sample", trace.lifetime_one_in,
                        "Keep lifetimes for 1 entry in N (power of two), chosen by hash")
      ->default_val(8);

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
                        "Keep lifetimes for 1 entry in N (power of two), chosen at random")
      ->default_val(8);

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
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "ctbpf: %s (see ctbpf --help)\n", e.what());
    return ctbpf::kExitUsage;
  }

  ctbpf::kernel::Tracer::set_verbose(verbose);
  try {
    if (*trace_cmd) return ctbpf::cli::run_trace(trace);
    if (*features_cmd) return ctbpf::cli::run_features(features);
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
