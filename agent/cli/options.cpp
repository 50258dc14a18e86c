// SPDX-License-Identifier: Apache-2.0
#include "cli/options.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>

#include <fmt/format.h>

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

void check_output_file(const std::string& path, const std::string& option) {
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, std::max<std::size_t>(slash, 1));
  if (path.empty() || path.back() == '/') throw Error(kExitUsage, option + " needs a file name");
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw Error(kExitUsage, fmt::format("{} {}: directory {}: {}", option, path, dir, std::strerror(errno)));
}

namespace {

// Words of `text` (its line breaks taken as spaces) in lines of at most `width` characters.
std::string reflow(const std::string& text, std::size_t width) {
  std::string out, line, word;
  auto flush_word = [&] {
    if (word.empty()) return;
    if (!line.empty() && line.size() + 1 + word.size() > width) {
      out += line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
    word.clear();
  };
  for (char c : text) {
    if (c == ' ' || c == '\n') flush_word();
    else word += c;
  }
  flush_word();
  return out + line;
}

constexpr std::size_t kHelpWidth = 100;

class HelpFormatter : public CLI::Formatter {
public:
  std::string make_option_desc(const CLI::Option* opt) const override {
    return reflow(CLI::Formatter::make_option_desc(opt), kHelpWidth - get_column_width());
  }
  std::string make_subcommand(const CLI::App* sub) const override {
    std::stringstream out;
    CLI::detail::format_help(out, sub->get_display_name(true),
                             reflow(sub->get_description(), kHelpWidth - get_column_width()), get_column_width());
    return out.str();
  }
  std::string make_description(const CLI::App* app) const override {
    auto description = CLI::Formatter::make_description(app);
    return description.empty() ? description : reflow(description, kHelpWidth) + "\n";
  }
};

}  // namespace

std::shared_ptr<CLI::Formatter> help_formatter() { return std::make_shared<HelpFormatter>(); }

void add_ready_file_option(CLI::App& cmd, std::string& path, const std::string& what) {
  cmd.add_option("--ready-file", path, what);
}

}  // namespace ctbpf::cli
