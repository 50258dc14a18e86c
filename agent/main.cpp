// ctbpf: conntrack observability with eBPF. This file only registers the subcommands: each one's
// options and handler live together in agent/cli/<name>.cpp.
#include <cstdio>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "kernel/error.h"
#include "kernel/tracer.h"

int main(int argc, char** argv) {
  using namespace ctbpf::cli;
  CLI::App app{"ctbpf: live conntrack insight (insert rate, chain lengths, drop causes) with eBPF"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("ctbpf ") + CTBPF_VERSION);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose,
               "Print libbpf's messages (verifier logs and counts, attach errors) and start-up phases");
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
    std::fprintf(stderr, "ctbpf: %s (see ctbpf --help)\n", e.what());
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
