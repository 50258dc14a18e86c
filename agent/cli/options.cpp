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

void add_dump_options(CLI::App& cmd, core::DumpLimit& limit, const std::string& what) {
  cmd.add_option("--dump-max-entries", limit.max_entries,
                 "Read at most this many entries of each ctnetlink dump of this netns's\n"
                 "conntrack table (0: all). " + what + "\n"
                 "A dump is aggregated as it is read: this bounds its time and memory on a huge\n"
                 "table. A dump cut short is said in the output (\"dump\" in --json)")
      ->check(bounded(core::kDumpEntries))
      ->default_val(core::DumpLimit::kDefaultEntries);
  cmd.add_option("--dump-max-seconds", limit.max_seconds,
                 "Stop each ctnetlink dump after this many seconds (0: no bound); whichever\n"
                 "bound comes first stops it, and the output says which")
      ->check(bounded(core::kDumpSeconds))
      ->default_val(core::DumpLimit::kDefaultSeconds);
}

void add_ready_file_option(CLI::App& cmd, std::string& path, const std::string& what) {
  cmd.add_option("--ready-file", path, what);
}

}  // namespace ctbpf::cli
