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
#include "cli/options.h"
#include "cli/trace_loop.h"
#include "core/aggregator.h"
#include "core/attribution.h"
#include "core/render.h"
#include "kernel/attribution_sources.h"
#include "core/snapshot.h"
#include "kernel/error.h"
#include "kernel/snapshot_files.h"
#include "kernel/tracer.h"

namespace ctbpf::cli {

namespace {

struct TopOptions {
  double interval_s = 1.0;
  std::optional<double> duration_s;
  bool json = false;
  std::size_t top = 10;
  std::string mode = "auto";
  std::string ready_file;
  uint64_t count = 0;  // COUNT: stop after this many refreshes; 0 = no count
};

// Names of the namespaces in these rows: the namer scans /proc only for an inode it has not seen.
core::NetnsNames names_of(const core::TopList& netns, const core::TopList& sources, kernel::NetnsNamer& namer) {
  core::NetnsNames names;
  for (const auto* list : {&netns, &sources})
    for (const auto& r : list->rows) names[r.key.netns] = namer.name(r.key.netns);
  return names;
}

std::string name_text(const core::NetnsNames& names, uint32_t netns) {
  auto it = names.find(netns);
  return it == names.end() ? "" : core::printable(it->second);
}

std::string screen(const core::TopList& netns, const core::TopList& sources, const core::NetnsNames& names,
                   double t, uint64_t untracked) {
  std::string out = fmt::format("\x1b[H\x1b[2Jctbpf top - who fills the conntrack table, {:.0f} s\n\n", t);
  out += fmt::format("{:>10} {:>10} {:>10}  {:<12} {}\n", "LIVE", "INSERTS", "INS/S", "NETNS", "NAME");
  for (const auto& r : netns.rows)
    out += fmt::format("{:>10} {:>10} {:>10.0f}  {:<12} {}\n", r.live, r.inserts, r.inserts_per_s,
                       r.key.netns, name_text(names, r.key.netns));
  if (const auto& o = netns.other)
    out += fmt::format("{:>10} {:>10} {:>10.0f}  {:<12}\n", o->live, o->inserts, o->inserts_per_s, "other");
  out += fmt::format("\n{:>10} {:>10} {:>10}  {:<40} {}\n", "LIVE", "INSERTS", "INS/S", "SOURCE", "NETNS");
  for (const auto& r : sources.rows)
    out += fmt::format("{:>10} {:>10} {:>10.0f}  {:<40} {}\n", r.live, r.inserts, r.inserts_per_s,
                       core::address_text(r.key), name_text(names, r.key.netns));
  if (const auto& o = sources.other)
    out += fmt::format("{:>10} {:>10} {:>10.0f}  {:<40}\n", o->live, o->inserts, o->inserts_per_s, "other");
  if (untracked) out += fmt::format("\n{} inserts/destroys beyond the source map's bound were not attributed\n", untracked);
  return out;
}

/// The namespaces and source addresses holding the most conntrack entries, live.
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
  kernel::NetnsNamer namer;
  core::Aggregator aggregator(tracer->mode(), tracer->observability());
  aggregator.add(tracer->sample());
  write_ready_file(options.ready_file, tracer->mode());
  const bool live = !options.json && isatty(STDOUT_FILENO);

  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const double wall_at_start = kernel::wall_clock_s();
  auto last = start;
  auto emit = [&](bool final, const core::Sample& sample) {
    auto now = clock::now();
    attribution.update(tracer->sources(), std::chrono::duration<double>(now - last).count());
    last = now;
    const double t = std::chrono::duration<double>(now - start).count();
    const uint64_t untracked = sample.counters[CTBPF_CNT_SOURCE_UNTRACKED];
    const auto netns = attribution.top_netns(options.top);
    const auto sources = attribution.top_sources(options.top);
    const auto names = names_of(netns, sources, namer);
    if (options.json) {
      // Bounded: top rows per table, then one "other" row for the rest.
      nlohmann::json j = {{"type", "top"}, {"t", t}, {"final", final}, {"untracked", untracked}};
      j["netns"] = core::top_list_json(netns, names, false);
      j["sources"] = core::top_list_json(sources, names, true);
      j["time"] = core::rfc3339_utc(wall_at_start + t);
      std::puts(j.dump().c_str());
    } else {
      auto text = screen(netns, sources, names, t, untracked);
      // Not a terminal, or the last refresh: no clear-screen codes.
      std::fputs((live && !final ? text : text.substr(text.find("ctbpf top"))).c_str(), stdout);
    }
    std::fflush(stdout);
  };

  run_sample_loop(*tracer, aggregator, options.interval_s, options.duration_s, [](std::span<const std::byte>) {},
                  [&](const core::Report&, const core::Sample& sample, bool tail) { emit(tail, sample); }, options.count);
  return kExitOk;
}

}  // namespace

Command add_top(CLI::App& parent) {
  auto o = std::make_shared<TopOptions>();
  auto positional = std::make_shared<IntervalCount>();
  auto* cmd = parent.add_subcommand(
      "top", "Who fills the table: the namespaces and source addresses holding the most entries, live");
  add_interval_count(*cmd, *positional);
  cmd->add_option("-i,--interval", o->interval_s, "Seconds between refreshes")
      ->check(bounded(core::kIntervalSeconds))
      ->default_val(1.0);
  cmd->add_option("-d,--duration", o->duration_s, "Stop after this many seconds")
      ->check(bounded(core::kDurationSeconds));
  cmd->add_option("-n,--top", o->top, "Rows per table")->check(bounded(core::kTopRows))->default_val(10);
  cmd->add_flag("--json", o->json,
                "One JSON object per refresh (\"type\":\"top\", \"time\" in UTC), the last with \"final\":true");
  add_mode_option(*cmd, o->mode);
  add_ready_file_option(*cmd, o->ready_file, "Write this file once every program is attached");
  return {cmd, [o, positional, cmd] {
            o->count = resolve_interval_count(*cmd, *positional, o->interval_s, o->duration_s);
            return run_top(*o);
          }};
}
}  // namespace ctbpf::cli
