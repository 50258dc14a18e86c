/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// The subcommands. Each agent/cli/<name>.cpp defines its own options next to its handler (like git's
// builtin/); main.cpp only registers them. Handlers return an exit code (kernel/error.h) and throw
// ctbpf::Error for the rest.
#include <functional>
#include <memory>

#include <CLI/CLI.hpp>

namespace ctbpf::cli {

/// A registered subcommand: run() is its handler, called once parsing chose it.
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Command add_trace(CLI::App& parent);
Command add_features(CLI::App& parent);
Command add_serve(CLI::App& parent);
Command add_doctor(CLI::App& parent);
Command add_snapshot(CLI::App& parent);
Command add_report(CLI::App& parent);
Command add_diff(CLI::App& parent);
Command add_top(CLI::App& parent);

}  // namespace ctbpf::cli
