// SPDX-License-Identifier: Apache-2.0
// ctbpf top: who fills the table, refreshed like top(1): the namespaces and source addresses holding
// the most live entries, with their insert rates.
#include <algorithm>
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
#include "core/dump.h"
#include "core/netns_scope.h"
#include "core/readings.h"
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
  core::DumpLimit dump;
};

// The ctnetlink dump behind the live counts: the seed at start (probe modes) or the latest refresh's
// (tracepoint mode), and how much of the table it read.
struct DumpState {
  bool every_refresh = false;
  core::DumpRead read;
  uint64_t unattributed = 0;       // entries of sources beyond the dump's bound on distinct sources
  std::optional<uint64_t> count;   // nf_conntrack_count of this netns when the dump was made
};

// The lines that say a dump did not cover the table, and what that does to the counts; empty when
// it did.
std::string dump_lines(const DumpState& d) {
  std::string out;
  if (auto stopped = core::dump_stopped_text(d.read, d.count); !stopped.empty())
    out += d.every_refresh ? fmt::format("{}: live counts are those of the entries read\n", stopped)
                           : fmt::format("at start, {}: live counts leave out the entries not read (their "
                                         "destroys still count)\n",
                                         stopped);
  if (d.unattributed)
    out += fmt::format("{} dumped entries of sources beyond the first {} were not attributed\n", d.unattributed,
                       core::DumpedSources::kDumpSourcesMax);
  if (!d.read.ok) out += "the ctnetlink dump failed (needs CAP_NET_ADMIN and nf_conntrack_netlink)\n";
  return out;
}

nlohmann::json dump_json(const DumpState& d) {
  auto j = core::dump_json(d.read);
  j["kind"] = d.every_refresh ? "every_refresh" : "seed";
  j["unattributed"] = d.unattributed;
  j["table_count"] = d.count ? nlohmann::json(*d.count) : nlohmann::json(nullptr);
  return j;
}

// Names of the namespaces in these rows: the namer scans /proc only for an inode it has not seen.
core::NetnsNames names_of(const core::TopList& netns, const core::TopList& sources, kernel::NetnsNamer& namer) {
  core::NetnsNames names;
  for (const auto* list : {&netns, &sources})
    for (const auto& r : list->rows) names[r.key.netns] = namer.name(r.key.netns);
  return names;
}

// The screen is 100 columns: a name longer than what its row leaves is cut, and says so ("...").
constexpr std::size_t kScreenColumns = 100;

std::string name_text(const core::NetnsNames& names, uint32_t netns, std::size_t row_so_far) {
  auto it = names.find(netns);
  if (it == names.end()) return "";
  auto name = core::printable(it->second);
  const std::size_t room = kScreenColumns > row_so_far + 3 ? kScreenColumns - row_so_far : 3;
  return name.size() <= room ? name : name.substr(0, room - 3) + "...";
}

// The counts of a row: INSERTS and INS/S, or "-" when only dumps were seen; then GROWTH/S, or "-"
// next to a dump that stopped early.
std::string counts(const core::TopRow& r) {
  const auto growth = r.growth_seen ? fmt::format("{:>+9.0f}", r.growth_per_s) : fmt::format("{:>9}", "-");
  if (!r.inserts_seen) return fmt::format("{:>10} {:>10} {:>10} {}", r.live, "-", "-", growth);
  return fmt::format("{:>10} {:>10} {:>10.0f} {}", r.live, r.inserts, r.inserts_per_s, growth);
}

std::string screen(const core::TopList& netns, const core::TopList& sources, const core::NetnsNames& names,
                   double t, uint64_t untracked, const std::string& note, const DumpState& dump,
                   const std::string& empty) {
  std::string out = fmt::format("\x1b[H\x1b[2Jctbpf top - who fills the conntrack table, {:.0f} s\n", t);
  if (!note.empty()) out += note + "\n";
  out += dump_lines(dump) + "\n";
  out += fmt::format("{:>10} {:>10} {:>10} {:>9}  {:<12} {}\n", "LIVE", "INSERTS", "INS/S", "GROWTH/S", "NETNS",
                     "NAME");
  for (const auto& r : netns.rows) {
    auto row = fmt::format("{}  {:<12} ", counts(r), r.key.netns);
    out += row + name_text(names, r.key.netns, row.size()) + "\n";
  }
  if (const auto& o = netns.other) out += fmt::format("{}  {:<12}\n", counts(*o), "other");
  // Headers over nothing read as a failure: say that the table is empty, and where to look.
  if (netns.rows.empty() && !netns.other) out += empty + "\n";
  // SOURCE as wide as its longest address (an IPv4 one's 15 columns, up to IPv6's 39), so the NETNS
  // names after it have what is left of 100 columns.
  std::size_t source_width = 15;
  for (const auto& r : sources.rows) source_width = std::max(source_width, core::address_text(r.key).size());
  out += fmt::format("\n{:>10} {:>10} {:>10} {:>9}  {:<{}} {}\n", "LIVE", "INSERTS", "INS/S", "GROWTH/S", "SOURCE",
                     source_width, "NETNS");
  for (const auto& r : sources.rows) {
    auto row = fmt::format("{}  {:<{}} ", counts(r), core::address_text(r.key), source_width);
    out += row + name_text(names, r.key.netns, row.size()) + "\n";
  }
  if (const auto& o = sources.other) out += fmt::format("{}  {:<{}}\n", counts(*o), "other", source_width);
  if (sources.rows.empty() && !sources.other) out += "(no entries)\n";
  if (untracked) out += fmt::format("\n{} inserts/destroys beyond the source map's bound were not attributed\n", untracked);
  return out;
}

// One refresh as a JSON object, but for its time fields. Bounded: top rows per table, then one "other"
// row for the rest.
nlohmann::json top_json(core::Mode mode, bool dumps_only, const core::TopList& netns, const core::TopList& sources,
                        const core::NetnsNames& names, const DumpState& dump, const nlohmann::json& own) {
  nlohmann::json j = {{"type", "top"}, {"mode", core::to_string(mode)}, {"scope", dumps_only ? "own_netns" : "all_netns"}};
  j["own_netns"] = own;  // the dumps' netns
  if (dumps_only) j["unobservable"] = {"other namespaces", "inserts", "destroys", "inserts_per_s"};
  j["dump"] = dump_json(dump);
  j["netns"] = core::top_list_json(netns, names, false);
  j["sources"] = core::top_list_json(sources, names, true);
  return j;
}

/// The namespaces and source addresses holding the most conntrack entries, live.
// About 80 lines, on purpose: the refresh closure shares the dump state, the attribution and the clocks
// with the set-up above it, and split apart they would travel as a struct of references.
int run_top(const TopOptions& options) {
  kernel::Tracer::Options topts;
  topts.track_sources = true;
  auto tracer = start_tracer(options.mode, topts);
  // Without conntrack probes (tracepoint mode) a ctnetlink dump every interval is the only source:
  // live entries of ctbpf's own netns, and their change between dumps.
  const bool dumps_only = !tracer->observability().conntrack_points;
  const std::string note =
      dumps_only ? fmt::format("note: {} mode: dumps of this netns only; inserts, destroys, other netns not "
                               "visible: -",
                               core::to_string(tracer->mode()))
                 : "";
  const auto first = tracer->sample();
  // An empty table here says nothing of the others: named, with where entries are when a named
  // netns holds some (read once, at start).
  const auto own = core::own_netns_json(kernel::own_netns());
  const auto label = core::netns_label(own);
  std::string empty = "(no entries yet)";
  if (dumps_only) {
    // The line says this table is empty already: the hint without its own "is empty".
    const auto elsewhere = core::other_netns_hint(kernel::named_netns_tables(), std::nullopt, "top");
    empty = core::wrap_lines(
        fmt::format("(no entries in this netns's table{}; {})", label.empty() ? "" : ", " + label,
                    elsewhere.empty() ? "another netns's: ip netns exec NAME ctbpf top" : "at start: " + elsewhere));
  }
  if (dumps_only) std::fprintf(stderr, "ctbpf: top: %s\n", note.substr(6).c_str());
  core::Attribution attribution;
  // Entries that already exist, so "live" is right from the first second (this netns only: a dump
  // cannot see into others; theirs count from the start). Bounded: on a huge table the dump stops
  // early and every refresh says so.
  DumpState dump;
  dump.every_refresh = dumps_only;
  auto take_dump = [&](std::optional<uint64_t> count) {
    auto d = kernel::dump_sources(options.dump);
    const bool first_stop = d.read.stopped_early() && !dump.read.stopped_early();
    dump.read = d.read;
    dump.unattributed = d.sources.unattributed;
    dump.count = count;
    // Once on stderr too, for --json readers who watch only the objects' counts.
    if (first_stop) std::fprintf(stderr, "ctbpf: top: %s\n", core::dump_stopped_text(d.read, count).c_str());
    return std::move(d.sources.by_source);
  };
  // take_dump() first, then what it read (not both in one call: argument order is unspecified).
  auto seeded = take_dump(first.table.count);
  if (dumps_only)
    attribution.replace_live(seeded, 0, !dump.read.stopped_early());
  else
    attribution.seed(seeded);
  kernel::NetnsNamer namer;
  core::Aggregator aggregator(tracer->mode(), tracer->observability());
  aggregator.add(first);
  write_ready_file(options.ready_file, tracer->mode());
  const bool live = !options.json && isatty(STDOUT_FILENO);

  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const double wall_at_start = kernel::wall_clock_s();
  auto last = start;
  auto emit = [&](bool final, const core::Sample& sample) {
    auto now = clock::now();
    const double since_last = std::chrono::duration<double>(now - last).count();
    if (dumps_only) {
      auto dumped = take_dump(sample.table.count);
      attribution.replace_live(dumped, since_last, !dump.read.stopped_early());
    } else {
      attribution.update(tracer->sources(), since_last);
    }
    last = now;
    const double t = std::chrono::duration<double>(now - start).count();
    const uint64_t untracked = sample.counters[CTBPF_CNT_SOURCE_UNTRACKED];
    const auto netns = attribution.top_netns(options.top);
    const auto sources = attribution.top_sources(options.top);
    const auto names = names_of(netns, sources, namer);
    if (options.json) {
      auto j = top_json(tracer->mode(), dumps_only, netns, sources, names, dump, own);
      j["t"] = t;
      j["final"] = final;
      j["untracked"] = untracked;
      j["time"] = core::rfc3339_utc(wall_at_start + t);
      std::puts(j.dump().c_str());
    } else {
      // The note once: on stderr at start, and on a screen that is redrawn; not in every refresh of a pipe.
      auto text = screen(netns, sources, names, t, untracked, live && !final ? note : "", dump, empty);
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
  add_dump_options(*cmd, o->dump,
                   "top dumps it at start to seed\n"
                   "the live counts, and every refresh in tracepoint mode (its only source there).");
  add_ready_file_option(*cmd, o->ready_file, "Write this file once every program is attached");
  cmd->footer("Examples:\n"
             "  ctbpf top                     # namespaces and sources by live entries, every second\n"
             "  ctbpf top 2 5                 # five refreshes, two seconds apart\n"
             "  ip netns exec NAME ctbpf top  # the entries of netns NAME");
  return {cmd, [o, positional, cmd] {
            o->count = resolve_interval_count(*cmd, *positional, o->interval_s, o->duration_s);
            return run_top(*o);
          }};
}
}  // namespace ctbpf::cli
