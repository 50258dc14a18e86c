// SPDX-License-Identifier: Apache-2.0
#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/trace_loop.h"
#include "cli/who_fills.h"
#include "core/aggregator.h"
#include "core/events.h"
#include "core/interval_table.h"
#include "core/netns_scope.h"
#include "core/readings.h"
#include "core/recorder.h"
#include "core/render.h"
#include "core/screen.h"
#include "core/snapshot.h"
#include "kernel/attribution_sources.h"
#include "kernel/error.h"
#include "kernel/snapshot_files.h"
#include "kernel/system.h"
#include "kernel/tracer.h"

namespace ctbpf::cli {

namespace {

struct TraceOptions {
  double interval_s = 1.0;
  std::optional<double> duration_s;
  bool json = false;
  std::string mode = "auto";
  std::string ready_file;
  std::string events;           // comma list of drop,insert,destroy,all; empty = no event lines
  uint32_t ring_bytes = 1 << 20;
  uint64_t events_rate = 1000;  // event lines per second at most; 0 = unlimited
  uint32_t lifetime_one_in = 8;
  std::optional<uint32_t> chain_one_in;  // --chain-sample; unset: 16, or 1 with insert events
  std::string record_dir;        // --record: the flight recorder writes snapshots here; empty = off
  core::RecorderOptions record;  // its limits (--record-before, --record-after, ...)
  std::size_t top = 0;           // --top: the busiest N sources in the summary; 0 = not tracked
  core::DumpLimit dump;          // --dump-max-*: the dump that seeds --top's live counts
  uint64_t count = 0;            // COUNT: stop after this many intervals; 0 = no count
  bool timestamp = false;        // -T: text lines start with the wall-clock time
  bool wide = false;             // -w: every field on one key=value line
  bool plain = false;            // --plain: interval rows at a terminal too, no live screen
};

// The wall-clock time of a record, as "time" in NDJSON (every record has one) and -T in text.
class WallClock {
public:
  WallClock() : at_start_(kernel::wall_clock_s()) {}
  /// `t_s`: seconds since this object was made.
  double epoch(double t_s) const { return at_start_ + t_s; }

private:
  double at_start_;
};

void print(const std::string& line) {
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

int terminal_width() {
  winsize ws{};
  return ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col ? ws.ws_col : 100;
}

int terminal_height() {
  winsize ws{};
  return ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row ? ws.ws_row : 24;
}

bool is_power_of_two(uint64_t v) { return v && !(v & (v - 1)); }

kernel::Tracer::Options tracer_options(const TraceOptions& options) {
  kernel::Tracer::Options o;
  if (!options.events.empty()) {
    std::string error;
    auto mask = core::event_mask_from_list(options.events, error);
    if (!mask) throw Error(kExitUsage, "--events: " + error);
    o.event_mask = *mask;
  }
  if (!is_power_of_two(options.ring_bytes) || options.ring_bytes < static_cast<uint32_t>(getpagesize()))
    throw Error(kExitUsage, fmt::format("--ring-size must be a power of two of at least {} bytes, got {}",
                                        getpagesize(), options.ring_bytes));
  o.ring_bytes = options.ring_bytes;
  o.lifetime_one_in = options.lifetime_one_in;
  // An insert event carries its chain's length, so asking for them walks every chain unless told not to.
  o.chain_one_in = options.chain_one_in.value_or((o.event_mask & (1u << CTBPF_EV_INSERT)) ? 1 : 16);
  // Per-source counts cost a hash update per insert and destroy in the kernel: only when asked.
  o.track_sources = options.top > 0;
  return o;
}

// Each option has its own bound (cli/options.h); their sum has one more.
void check_record_options(const core::RecorderOptions& r) {
  if (r.before + 1 + r.after > core::kSnapshotMaxIntervals)
    throw Error(kExitUsage, fmt::format("--record-before + --record-after must stay below {} intervals",
                                        core::kSnapshotMaxIntervals));
}

// The file side of `trace --record DIR`: core::Recorder decides, this writes and prunes. A file that
// cannot be written is reported and tracing goes on: the trace matters more than one snapshot.
class FlightRecorder {
public:
  FlightRecorder(const TraceOptions& options, const kernel::Tracer& tracer, const WhoFillsTracker& who)
      : dir_(options.record_dir), options_(options.record), recorder_(options.record), tracer_(tracer),
        who_(who), interval_s_(options.interval_s) {}

  void start(const core::Sample& baseline) {
    wall_at_baseline_ = kernel::wall_clock_s();
    baseline_t_ = baseline.t_s;
    recorder_.add(baseline, std::nullopt);
    prune();
  }

  void add(const core::Report& interval, const core::Sample& sample) {
    if (auto recording = recorder_.add(sample, interval)) write(*recording);
  }

  void finish() {
    if (auto recording = recorder_.finish()) write(*recording);
  }

private:
  double epoch(double t_s) const { return wall_at_baseline_ + (t_s - baseline_t_); }

  void write(const core::Recording& r) {
    core::SnapshotMeta meta;
    meta.host = kernel::host_name();
    meta.kernel = kernel::kernel_release();
    meta.mode = tracer_.mode();
    meta.obs = tracer_.observability();
    meta.start_epoch_s = epoch(r.samples.front().t_s);
    meta.end_epoch_s = epoch(r.samples.back().t_s);
    meta.interval_s = interval_s_;
    meta.sysctls = kernel::read_conntrack_sysctls();
    meta.trigger = core::SnapshotTrigger{r.causes, r.trigger_interval};
    // Names only: the source counts run from load, not from this window's start.
    meta.who.emplace().netns_names = who_.names().netns_names;
    meta.who->own_netns = who_.names().own_netns;
    meta.who->other_netns = kernel::named_netns_tables();
    auto name = core::recording_file_name(epoch(r.samples[r.trigger_interval + 1].t_s), r.causes);
    try {
      auto doc = core::make_snapshot(meta, r.samples, r.starts_at_load);
      kernel::write_file_atomically(dir_ + "/" + name, core::snapshot_bytes(doc));
      std::fprintf(stderr, "ctbpf: recorded %s/%s\n", dir_.c_str(), name.c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ctbpf: flight recorder: %s\n", e.what());
    }
    prune();
  }

  void prune() {
    for (const auto& name : core::expired_recordings(kernel::list_files(dir_), kernel::wall_clock_s(), options_))
      if (!kernel::remove_file(dir_, name))
        std::fprintf(stderr, "ctbpf: flight recorder: cannot remove %s/%s\n", dir_.c_str(), name.c_str());
  }

  std::string dir_;
  core::RecorderOptions options_;
  core::Recorder recorder_;
  const kernel::Tracer& tracer_;
  const WhoFillsTracker& who_;
  double interval_s_;
  double wall_at_baseline_ = 0, baseline_t_ = 0;
};

// One interval as trace shows it: the live screen, a JSON line, a wide line or a table row.
// Each stuck NAT'd flow's first drop as a wall-clock time.
void add_since(nlohmann::json& j, const WallClock& wall) {
  if (!j["nat_blackholes"].is_array()) return;
  for (auto& f : j["nat_blackholes"]) f["since"] = core::rfc3339_utc(wall.epoch(f["first_drop_t"].get<double>()));
}

struct IntervalView {
  const TraceOptions& options;
  const kernel::Tracer& tracer;
  const core::Aggregator& aggregator;
  const core::EventLimiter& limiter;
  const WhoFillsTracker& who;
  const WallClock& wall;
  bool live;
  const std::string& netns;      // netns_label() of the table's netns
  const std::string& elsewhere;  // other_netns_hint() at start, "" when none
  bool header_due = true;

  void show(const core::Report& r) {
    const auto& obs = tracer.observability();
    if (live) {
      auto total = aggregator.summary();
      core::ScreenInput in{tracer.mode(),   &r, &total, limiter.suppressed(), terminal_width(), obs.chain_one_in,
                           terminal_height(), netns, elsewhere};
      std::fputs(core::render_screen(in).c_str(), stdout);
      std::fflush(stdout);
    } else if (options.json) {
      auto j = core::interval_json(r, obs, &who.names());
      j["events_suppressed"] = limiter.suppressed();
      j["time"] = core::rfc3339_utc(wall.epoch(r.end_s));
      add_since(j, wall);
      print(j.dump());
      return;
    } else if (options.wide) {
      print((options.timestamp ? core::clock_text(wall.epoch(r.end_s)) + " " : "") + core::interval_line(r));
    } else {
      if (header_due) {
        // What the "-" columns are, once, on stderr (as the start line): a screen's note, for a pipe.
        if (auto note = core::interval_table_note(r, core::to_string(tracer.mode())); !note.empty())
          std::fprintf(stderr, "ctbpf: %s\n", note.c_str());
        print(core::interval_table_header(options.timestamp));
      }
      header_due = false;
      print(core::interval_table_row(
          r, options.timestamp ? core::clock_text(wall.epoch(r.end_s)) : fmt::format("{:.1f}", r.end_s)));
    }
    // Where NAT'd traffic died this interval: a line per stuck flow under the row.
    if (!live)
      std::fputs(core::wrap_lines(core::nat_drops_text(r.totals.nat_blackholes, r.totals.dns_races, r.duration(),
                                                       who.names().netns_names, "  ! "),
                                  100, 6)
                     .c_str(),
                 stdout);
  }
};

// The summary at the end: JSON, or text with what became of the events.
void print_summary(const TraceOptions& options, const kernel::Tracer& tracer, const core::Report& summary,
                   const core::WhoFills& attribution, const core::EventLimiter& limiter, bool events_asked,
                   uint64_t malformed_events, const std::optional<std::string>& no_events, const WallClock& wall) {
  const auto& obs = tracer.observability();
  if (options.json) {
    auto j = core::summary_json(summary, tracer.mode(), obs, &attribution);
    j["time"] = core::rfc3339_utc(wall.epoch(summary.end_s));
    add_since(j, wall);
    j["events"] = {{"delivered", limiter.delivered()},
                   {"suppressed", limiter.suppressed()},
                   {"malformed", malformed_events},
                   {"unavailable", no_events ? nlohmann::json(*no_events) : nlohmann::json(nullptr)}};
    print(j.dump());
    return;
  }
  std::fputs(core::summary_text(summary, tracer.mode(), &attribution, obs.chain_one_in).c_str(), stdout);
  if (no_events)
    std::fputs(core::wrap_lines(fmt::format("  events: none ({})\n", *no_events)).c_str(), stdout);
  else if (events_asked)
    std::printf("  events delivered %llu, suppressed by --events-rate %llu\n",
                static_cast<unsigned long long>(limiter.delivered()),
                static_cast<unsigned long long>(limiter.suppressed()));
}

int run_trace(const TraceOptions& options) {
  auto topts = tracer_options(options);
  if (!options.record_dir.empty()) {
    check_record_options(options.record);
    kernel::ensure_writable_dir(options.record_dir);
  }
  auto tracer = start_tracer(options.mode, topts);
  WhoFillsTracker who(options.top, *tracer, options.dump);
  const auto& obs = tracer->observability();
  core::Aggregator aggregator(tracer->mode(), obs);
  auto baseline = tracer->sample();
  const WallClock wall;  // at the baseline: interval times (Report::end_s) count from it
  aggregator.add(baseline);
  std::optional<FlightRecorder> recorder;
  if (!options.record_dir.empty()) {
    recorder.emplace(options, *tracer, who);
    recorder->start(baseline);
  }
  // Never a silent nothing: events asked for in a mode that has none are refused in one line here
  // and in the summary's "events".
  const auto no_events = core::events_unavailable(topts.event_mask, tracer->mode(), obs);
  if (no_events) std::fprintf(stderr, "ctbpf: %s\n", no_events->c_str());
  write_ready_file(options.ready_file, tracer->mode());

  // A terminal gets the live screen; pipes, files and --json get one line per interval, and so does
  // a terminal when asked for rows: --plain, or what only rows have (-T, -w, a COUNT as vmstat's).
  const bool rows_asked = options.plain || options.timestamp || options.wide || options.count;
  const bool live = !options.json && topts.event_mask == 0 && !rows_asked && isatty(STDOUT_FILENO);
  // The table, its growth and the kernel's statistics are this netns's: named from the start, with
  // where else entries are when other namespaces hold them.
  const auto netns = core::netns_label(core::own_netns_json(who.names().own_netns));
  const auto elsewhere = options.json ? std::string()
                                      : core::other_netns_hint(kernel::named_netns_tables(), baseline.table.count,
                                                               "trace");
  if (!options.json && !live) {
    std::fputs(core::wrap_lines(fmt::format("ctbpf: tracing conntrack in {} mode; Ctrl-C prints the summary\n"
                                            "ctbpf: table and kernel stats: {}\n",
                                            core::to_string(tracer->mode()), netns.empty() ? "this netns" : netns))
                   .c_str(),
               stderr);
    if (!elsewhere.empty()) std::fputs(core::wrap_lines("ctbpf: " + elsewhere + "\n").c_str(), stderr);
  }

  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const WallClock wall_at_start;
  auto since_start = [&] { return std::chrono::duration<double>(clock::now() - start).count(); };

  core::EventLimiter limiter(options.events_rate);
  uint64_t malformed_events = 0;
  std::string line;
  core::SecondsText times;
  const kernel::Tracer::EventHandler on_event = [&](std::span<const std::byte> raw) {
    auto event = core::decode_event(raw);
    if (!event) {
      ++malformed_events;
      return;
    }
    double t = since_start();
    if (!limiter.admit(t)) return;
    // No flush per event: a flood would pay a write() each; the loop flushes after every poll. No
    // allocation either: one line buffer, reused, and the date formatted once per second.
    line.clear();
    if (options.json) {
      core::append_event_json(line, *event, t, times.rfc3339(wall_at_start.epoch(t)));
    } else {
      if (options.timestamp) line.append(times.clock(wall_at_start.epoch(t))) += ' ';
      core::append_event_line(line, *event, t);
    }
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
  };

  IntervalView view{options, *tracer, aggregator, limiter, who, wall, live, netns, elsewhere};
  auto emit = [&](const core::Report& r) { view.show(r); };

  run_sample_loop(*tracer, aggregator, options.interval_s, options.duration_s, on_event,
                  [&](const core::Report& r, const core::Sample& sample, bool tail) {
                    who.saw(r, sample);
                    if (recorder) recorder->add(r, sample);
                    // A tail of a few ms is noise on a screen or in a log; it still counts in the summary.
                    // With a COUNT the tail is the count-th full interval.
                    if (!tail || options.count || (r.duration() > 0.05 && !live)) emit(r);
                  },
                  options.count);
  if (recorder) recorder->finish();

  auto summary = aggregator.summary();
  print_summary(options, *tracer, summary, who.finish(summary), limiter, topts.event_mask != 0, malformed_events,
                no_events, wall);
  return kExitOk;
}

}  // namespace

// Long on purpose: one declaration per option with its --help text, in the order --help shows them.
Command add_trace(CLI::App& parent) {
  auto o = std::make_shared<TraceOptions>();
  auto positional = std::make_shared<IntervalCount>();
  auto* cmd = parent.add_subcommand(
      "trace",
      "Trace conntrack until Ctrl-C (or -d, or COUNT intervals): insert/destroy rates, chain lengths,\n"
      "drop causes. Ctrl-C, SIGTERM, the end of -d and the last of COUNT print a summary.");
  add_interval_count(*cmd, *positional);
  cmd->add_option("-i,--interval", o->interval_s, "Seconds between interval reports")
      ->check(bounded(core::kIntervalSeconds))
      ->default_val(1.0);
  cmd->add_option("-d,--duration", o->duration_s, "Stop after this many seconds")
      ->check(bounded(core::kDurationSeconds));
  cmd->add_flag("--json", o->json,
                "NDJSON on stdout: one \"interval\" object per interval, then a \"summary\"; each with\n"
                "\"time\", the UTC wall-clock time (RFC 3339) at its end");
  cmd->add_flag("--plain", o->plain,
                "Text: one row per interval at a terminal too, instead of the live screen (-T, -w and\n"
                "COUNT imply it; pipes and files always get rows)");
  cmd->add_flag("-T,--timestamp", o->timestamp, "Text: start interval and event lines with the UTC time (HH:MM:SS)");
  cmd->add_flag("-w,--wide", o->wide,
                "Text: every field of an interval (each drop cause) on one key=value line, wider than\n"
                "the 100 columns of the default table");
  add_mode_option(*cmd, o->mode);
  add_ready_file_option(*cmd, o->ready_file, "Write this file once every program is attached (for scripts and tests)");
  cmd->add_option("--events", o->events,
                  "Stream one line per event: drop (default), insert, destroy or all, comma-separated;\n"
                  "read in batches, so a line can be up to about 50 ms late")
      ->expected(0, 1)
      ->default_str("drop");
  cmd->add_option("--events-rate", o->events_rate,
                  "At most this many event lines per second (0: no limit); the rest are counted")
      ->check(bounded(core::kEventsPerSecond))
      ->default_val(1000);
  cmd->add_option("--ring-size", o->ring_bytes,
                  "Ring buffer bytes for --events (power of two); a full ring counts lost_events")
      ->check(bounded(core::kRingBytes))
      ->default_val(1 << 20);
  cmd->add_option("--lifetime-sample", o->lifetime_one_in,
                  "Keep lifetimes for 1 entry in N (power of two), picked by a hash of its tuple\n"
                  "and the CPU's insert count")
      ->check(bounded(core::kSampleOneIn))
      ->default_val(8);
  cmd->add_option("--chain-sample", o->chain_one_in,
                  "Walk the hash chain of 1 insert in N (power of two) on each CPU for the chain-length\n"
                  "histogram: the walk is the costliest part of an insert's program (a read per node).\n"
                  "Counts and drops stay exact; the summary says when chains are sampled. Default 16,\n"
                  "or 1 with --events insert (each insert line carries its chain's length)")
      ->check(bounded(core::kSampleOneIn));
  cmd->add_option("--top", o->top,
                  "Also count entries per source address (kernel work on every insert) and put the\n"
                  "busiest N, by live entries and by inserts, in the summary (\"by_source\")")
      ->check(bounded(core::kTopRows));
  add_dump_options(*cmd, o->dump,
                   "With --top, trace\n"
                   "dumps it at start to seed the live counts of its netns.");
  cmd->add_option("--record", o->record_dir,
                  "Flight recorder: when a drop cause (table_full, early_drop, insert_failed,\n"
                  "chaintoolong) fires, write a snapshot of the intervals around it here")
      ->type_name("DIR");
  cmd->add_option("--record-before", o->record.before, "Intervals kept before the one that fires")
      ->check(bounded(core::kRecordIntervals))
      ->default_val(o->record.before);
  cmd->add_option("--record-after", o->record.after, "Intervals after it, waited for before writing")
      ->check(bounded(core::kRecordIntervals))
      ->default_val(o->record.after);
  cmd->add_option("--record-quiet", o->record.quiet_s,
                  "Seconds without drops before another burst gets its own snapshot")
      ->check(bounded(core::kRecordQuietSeconds))
      ->default_val(o->record.quiet_s);
  cmd->add_option("--record-keep", o->record.keep_files, "Newest snapshot files kept in the directory")
      ->check(bounded(core::kRecordKeepFiles))
      ->default_val(o->record.keep_files);
  cmd->add_option("--record-max-age", o->record.max_age_s, "Seconds after which a snapshot file is deleted")
      ->check(bounded(core::kRecordMaxAgeSeconds))
      ->default_val(o->record.max_age_s);
  cmd->footer("Examples:\n"
             "  ctbpf trace 1 10 -T                 # ten one-second rows with the UTC time, then the summary\n"
             "  ctbpf trace -d 30 --json >t.ndjson  # 30 s of NDJSON: an object per interval, a summary\n"
             "  ctbpf trace --events drop           # one line per dropped packet: tuple, netns, cause");
  return {cmd, [o, positional, cmd] {
            o->count = resolve_interval_count(*cmd, *positional, o->interval_s, o->duration_s);
            return run_trace(*o);
          }};
}

}  // namespace ctbpf::cli
