/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// Option definitions more than one subcommand shares, so they read and check the same everywhere.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "core/bounds.h"
#include "core/dump.h"

namespace ctbpf::cli {

/// Checks a number against its bound (core/bounds.h) before CLI11 converts it: non-finite, absurd
/// or fractional-count values stop with exit 2 and one line; --help shows the range.
CLI::Validator bounded(const core::Bound& bound);

/// --mode auto|fentry|kprobe|tracepoint.
void add_mode_option(CLI::App& cmd, std::string& mode);

/// The positional `[interval [count]]` of bcc tools and vmstat (`ctbpf trace 1 3`), next to -i and -d.
struct IntervalCount {
  std::optional<double> interval;
  std::optional<uint64_t> count;
};
void add_interval_count(CLI::App& cmd, IntervalCount& positional);
/// Puts the positional interval into interval_s (refusing it when -i was given too) and returns the
/// count (0: none), refusing a count with -d. Throws ctbpf::Error with exit 2.
uint64_t resolve_interval_count(const CLI::App& cmd, const IntervalCount& positional, double& interval_s,
                                const std::optional<double>& duration_s);

/// --dump-max-entries N and --dump-max-seconds S: the bounds of each ctnetlink dump the subcommand
/// makes; `what` says what its dumps are for, so --help teaches what a smaller bound costs.
void add_dump_options(CLI::App& cmd, core::DumpLimit& limit, const std::string& what);

/// Fails (exit 2, as any bad input) unless `path` names a file whose directory takes a new file:
/// before minutes of tracing or rendering, not after. `option` names it in the message ("-o").
void check_output_file(const std::string& path, const std::string& option);

/// The --help layout of every subcommand: descriptions reflowed so that no line passes 100 columns.
std::shared_ptr<CLI::Formatter> help_formatter();

/// --ready-file PATH, with what it waits for.
void add_ready_file_option(CLI::App& cmd, std::string& path, const std::string& what);

}  // namespace ctbpf::cli
