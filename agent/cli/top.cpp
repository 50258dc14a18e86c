// ctbpf top: who fills the table, refreshed like top(1): the namespaces and source addresses holding
// the most live entries, with their insert rates.
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/trace_loop.h"
#include "core/aggregator.h"
#include "core/attribution.h"
#include "kernel/attribution_sources.h"
#include "kernel/error.h"
#include "kernel/tracer.h"

namespace ctbpf::cli {

namespace {

nlohmann::json row_json(const core::TopRow& r, kernel::NetnsNamer& names, bool with_source) {
  nlohmann::json j = {{"netns", r.key.netns},        {"name", names.name(r.key.netns)},
                      {"live", r.live},              {"inserts", r.inserts},
                      {"destroys", r.destroys},      {"inserts_per_s", r.inserts_per_s}};
  if (with_source) j["src"] = core::address_text(r.key);
  return j;
}

std::string screen(const core::Attribution& a, kernel::NetnsNamer& names, std::size_t n, double t,
                   uint64_t untracked) {
  std::string out = fmt::format("\x1b[H\x1b[2Jctbpf top - who fills the conntrack table, {:.0f} s\n\n", t);
  out += fmt::format("{:>10} {:>10} {:>10}  {:<12} {}\n", "LIVE", "INSERTS", "INS/S", "NETNS", "NAME");
  for (const auto& r : a.top_netns(n))
    out += fmt::format("{:>10} {:>10} {:>10.0f}  {:<12} {}\n", r.live, r.inserts, r.inserts_per_s,
                       r.key.netns, names.name(r.key.netns));
  out += fmt::format("\n{:>10} {:>10} {:>10}  {:<40} {}\n", "LIVE", "INSERTS", "INS/S", "SOURCE", "NETNS");
  for (const auto& r : a.top_sources(n))
    out += fmt::format("{:>10} {:>10} {:>10.0f}  {:<40} {}\n", r.live, r.inserts, r.inserts_per_s,
                       core::address_text(r.key), names.name(r.key.netns));
  if (untracked) out += fmt::format("\n{} inserts/destroys beyond the source map's bound were not attributed\n", untracked);
  return out;
}

}  // namespace

int run_top(const TopOptions& options) {
  kernel::Tracer::Options topts;
  if (options.mode != "auto") topts.forced = core::mode_from_string(options.mode);
  topts.track_sources = true;
  install_stop_handlers();

  auto tracer = kernel::Tracer::start(topts);
  if (!tracer->observability().conntrack_points)
    throw Error(kExitUnsupported,
                "ctbpf top needs the fentry or kprobe family (see ctbpf features); this kernel only "
                "allows tracepoints, which cannot see inserts");
  core::Attribution attribution;
  // Entries that already exist, so "live" is right from the first second (this netns only: a dump
  // cannot see into others; theirs count from the start).
  attribution.seed(kernel::dump_sources());
  kernel::NetnsNamer names;
  core::Aggregator aggregator(tracer->mode(), tracer->observability());
  aggregator.add(tracer->sample());
  write_ready_file(options.ready_file, tracer->mode());
  const bool live = !options.json && isatty(STDOUT_FILENO);

  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  auto last = start;
  auto emit = [&](bool final, const core::Sample& sample) {
    auto now = clock::now();
    attribution.update(tracer->sources(), std::chrono::duration<double>(now - last).count());
    last = now;
    const double t = std::chrono::duration<double>(now - start).count();
    const uint64_t untracked = sample.counters[CTBPF_CNT_SOURCE_UNTRACKED];
    if (live && !final) {
      std::fputs(screen(attribution, names, options.top, t, untracked).c_str(), stdout);
    } else if (options.json) {
      nlohmann::json j = {{"type", "top"}, {"t", t}, {"final", final}, {"untracked", untracked}};
      j["netns"] = nlohmann::json::array();
      for (const auto& r : attribution.top_netns(options.top)) j["netns"].push_back(row_json(r, names, false));
      j["sources"] = nlohmann::json::array();
      for (const auto& r : attribution.top_sources(options.top)) j["sources"].push_back(row_json(r, names, true));
      std::puts(j.dump().c_str());
    } else {
      auto text = screen(attribution, names, options.top, t, untracked);
      std::fputs(text.substr(text.find("ctbpf top")).c_str(), stdout);
    }
    std::fflush(stdout);
  };

  run_sample_loop(*tracer, aggregator, options.interval_s, options.duration_s, [](std::span<const std::byte>) {},
                  [&](const core::Report&, const core::Sample& sample, bool tail) { emit(tail, sample); });
  return kExitOk;
}

}  // namespace ctbpf::cli
