#include "cli/options.h"

#include "kernel/error.h"

namespace ctbpf::cli {

CLI::Validator bounded(const core::Bound& bound) {
  return CLI::Validator([bound](std::string& text) { return core::check_bound(text, bound); },
                        core::bound_text(bound));
}

void add_mode_option(CLI::App& cmd, std::string& mode) {
  cmd.add_option("--mode", mode, "Attach family: auto tries fentry, then kprobe, then tracepoint")
      ->check(CLI::IsMember({"auto", "fentry", "kprobe", "tracepoint"}))
      ->default_val("auto");
}

void add_interval_count(CLI::App& cmd, IntervalCount& positional) {
  cmd.add_option("interval", positional.interval, "Seconds between intervals, as -i")
      ->check(bounded(core::kIntervalSeconds));
  cmd.add_option("count", positional.count, "Stop after this many intervals (instead of -d)")
      ->check(bounded(core::kIntervalCount));
}

uint64_t resolve_interval_count(const CLI::App& cmd, const IntervalCount& positional, double& interval_s,
                                const std::optional<double>& duration_s) {
  if (positional.interval) {
    if (cmd.count("--interval"))
      throw Error(kExitUsage, "the interval is given twice (-i and INTERVAL): give one");
    interval_s = *positional.interval;
  }
  if (positional.count && duration_s) throw Error(kExitUsage, "COUNT and -d both say when to stop: give one");
  return positional.count.value_or(0);
}

void add_ready_file_option(CLI::App& cmd, std::string& path, const std::string& what) {
  cmd.add_option("--ready-file", path, what);
}

}  // namespace ctbpf::cli
