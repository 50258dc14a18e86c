// ctbpf: conntrack observability with eBPF. This file only registers the subcommands: each one's
// options and handler live together in agent/cli/<name>.cpp.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "kernel/error.h"
#include "kernel/tracer.h"

int main(int argc, char** argv) {
  using namespace ctbpf::cli;
  // Named here, so "Usage:" says ctbpf rather than the path the binary was run from.
  CLI::App app{"ctbpf: live conntrack insight (insert rate, chain lengths, drop causes) with eBPF", "ctbpf"};
  app.require_subcommand(1);
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
    for (const auto& command : commands)
      if (command.app->parsed()) help = "ctbpf " + command.app->get_name() + " --help";
    std::fprintf(stderr, "ctbpf: %s (see %s)\n", e.what(), help.c_str());
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
