#pragma once
// Option definitions more than one subcommand shares, so they read and check the same everywhere.
#include <string>

#include <CLI/CLI.hpp>

namespace ctbpf::cli {

/// CLI::PositiveNumber prints the whole double range in its error; this says it plainly.
extern const CLI::Validator kPositiveSeconds;

/// --mode auto|fentry|kprobe|tracepoint.
void add_mode_option(CLI::App& cmd, std::string& mode);

/// --ready-file PATH, with what it waits for.
void add_ready_file_option(CLI::App& cmd, std::string& path, const std::string& what);

}  // namespace ctbpf::cli
