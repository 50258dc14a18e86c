#include "cli/options.h"

namespace ctbpf::cli {

const CLI::Validator kPositiveSeconds(
    [](std::string& text) -> std::string {
      try {
        if (std::stod(text) > 0) return {};
      } catch (const std::exception&) {
      }
      return "must be a positive number of seconds, got '" + text + "'";
    },
    "SECONDS>0");

void add_mode_option(CLI::App& cmd, std::string& mode) {
  cmd.add_option("--mode", mode, "Attach family: auto tries fentry, then kprobe, then tracepoint")
      ->check(CLI::IsMember({"auto", "fentry", "kprobe", "tracepoint"}))
      ->default_val("auto");
}

void add_ready_file_option(CLI::App& cmd, std::string& path, const std::string& what) {
  cmd.add_option("--ready-file", path, what);
}

}  // namespace ctbpf::cli
