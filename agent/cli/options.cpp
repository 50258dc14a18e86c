#include "cli/options.h"

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

void add_ready_file_option(CLI::App& cmd, std::string& path, const std::string& what) {
  cmd.add_option("--ready-file", path, what);
}

}  // namespace ctbpf::cli
