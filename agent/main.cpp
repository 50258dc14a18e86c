// SPDX-License-Identifier: Apache-2.0
// ctbpf: conntrack observability with eBPF. This file only registers the subcommands: each one's
// options and handler live together in agent/cli/<name>.cpp.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/options.h"
#include "kernel/error.h"
#include "kernel/tracer.h"

namespace {

// The first word ctbpf does not know, when no subcommand was parsed: an unknown option, or an unknown
// subcommand (the first word that is not an option). `fallback` when every word is known.
template <std::size_t N>
std::string top_level_error(int argc, char** argv, const ctbpf::cli::Command (&commands)[N],
                            const std::string& fallback) {
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word == "-v" || word == "--verbose" || word == "-vv" || word == "-vvv") continue;
    if (word.size() > 1 && word[0] == '-') return "unknown option " + word;
    std::string names;
    for (const auto& command : commands) names += (names.empty() ? "" : ", ") + command.app->get_name();
    return "unknown subcommand " + word + " (the subcommands: " + names + ")";
  }
  return fallback == "A subcommand is required" ? "a subcommand is required: ctbpf trace, for a start" : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ctbpf::cli;
  // Named here, so "Usage:" says ctbpf rather than the path the binary was run from.
  CLI::App app{"ctbpf: live conntrack insight (insert rate, chain lengths, drop causes) with eBPF", "ctbpf"};
  app.require_subcommand(1);
  app.formatter(help_formatter());  // subcommands made below take it too
  app.footer("Examples:\n"
             "  ctbpf features  # what this kernel lets ctbpf see, by trial\n"
             "  ctbpf trace     # live until Ctrl-C, then a summary\n"
             "  ctbpf doctor    # 10 s of measurements, then tuning advice\n"
             "`ctbpf SUBCOMMAND --help` has each one's options and examples.");
  app.set_version_flag("--version", std::string("ctbpf ") + CTBPF_VERSION);
  // Subcommands inherit this: `ctbpf trace -v` works as `ctbpf -v trace` does.
  app.fallthrough();
  int verbose = 0;
  app.add_flag("-v,--verbose", verbose,
               "-v: libbpf's messages (attach errors) and start-up phases; -vv: also libbpf's debug\n"
               "messages and the verifier's logs and statistics (thousands of lines)");
  const Command commands[] = {add_trace(app), add_features(app), add_serve(app),  add_doctor(app),
                              add_snapshot(app), add_report(app), add_diff(app), add_top(app)};

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Point at the help of the subcommand the error is about, when one was named.
    std::string help = "ctbpf --help";
    bool named = false;
    for (const auto& command : commands)
      if (command.app->parsed()) {
        help = "ctbpf " + command.app->get_name() + " --help";
        named = true;
      }
    // Without a subcommand CLI11 says "A subcommand is required" for a typo in an option and in a
    // subcommand's name alike: say which of the two it was.
    std::string what = e.what();
    if (!named) what = top_level_error(argc, argv, commands, what);
    std::fprintf(stderr, "ctbpf: %s (see %s)\n", what.c_str(), help.c_str());
    return ctbpf::kExitUsage;
  }

  ctbpf::kernel::Tracer::set_verbose(verbose);
  try {
    for (const auto& command : commands)
      if (*command.app) return command.run();
  } catch (const ctbpf::Error& e) {
    std::fprintf(stderr, "ctbpf: %s\n", e.what());
    return e.code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ctbpf: %s\n", e.what());
    return ctbpf::kExitFailure;
  }
  return ctbpf::kExitUsage;
}
