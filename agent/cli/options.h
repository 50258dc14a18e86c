#pragma once
// Option definitions more than one subcommand shares, so they read and check the same everywhere.
#include <string>

#include <CLI/CLI.hpp>

#include "core/bounds.h"

namespace ctbpf::cli {

/// Checks a number against its bound (core/bounds.h) before CLI11 converts it: non-finite, absurd
/// or fractional-count values stop with exit 2 and one line; --help shows the range.
CLI::Validator bounded(const core::Bound& bound);

/// --mode auto|fentry|kprobe|tracepoint.
void add_mode_option(CLI::App& cmd, std::string& mode);

/// --ready-file PATH, with what it waits for.
void add_ready_file_option(CLI::App& cmd, std::string& path, const std::string& what);

}  // namespace ctbpf::cli
