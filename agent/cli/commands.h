#pragma once
// The subcommands. Each returns an exit code (kernel/error.h); errors are thrown as ctbpf::Error.
#include <cstdint>
#include <optional>
#include <string>

#include "core/recorder.h"

namespace ctbpf::cli {

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
  std::string record_dir;        // --record: the flight recorder writes snapshots here; empty = off
  core::RecorderOptions record;  // its limits (--record-before, --record-after, ...)
  std::size_t top = 0;           // --top: the busiest N sources in the summary; 0 = not tracked
};

int run_trace(const TraceOptions& options);

struct FeaturesOptions {
  bool json = false;
};

int run_features(const FeaturesOptions& options);

}  // namespace ctbpf::cli

namespace ctbpf::cli {

struct ServeOptions {
  std::string listen = "127.0.0.1:9640";
  double interval_s = 2.0;
  std::string mode = "auto";
  std::string ready_file;
  uint32_t lifetime_one_in = 64;       // always-on: cheaper sampling (see --help)
  uint32_t drop_events_rate = 100;     // drop events per second per CPU into the ring; 0 = no limit
  std::string record_dir;              // rolling snapshots here; empty = off
  double record_every_s = 300;         // one snapshot per this many seconds
  core::RecorderOptions record_retention;  // keep_files and max_age_s apply
};

int run_serve(const ServeOptions& options);

}  // namespace ctbpf::cli

namespace ctbpf::cli {

struct DoctorOptions {
  double duration_s = 10.0;
  bool json = false;
  std::string mode = "auto";
  std::string ready_file;
};

/// Observes for duration_s, then prints findings with the commands to fix them. Changes nothing.
int run_doctor(const DoctorOptions& options);

}  // namespace ctbpf::cli

namespace ctbpf::cli {

struct SnapshotOptions {
  double duration_s = 10.0;
  double interval_s = 1.0;
  std::string output;  // the JSON file, written atomically
  std::string mode = "auto";
  std::string ready_file;
  uint32_t lifetime_one_in = 8;
  std::size_t top = 0;  // --top: the busiest N sources in the summary; 0 = not tracked
};

/// Traces for duration_s (or until Ctrl-C / SIGTERM) and writes one snapshot document.
int run_snapshot(const SnapshotOptions& options);

struct ReportOptions {
  std::string file;
  std::string html;  // write the HTML page here instead of the terminal report
};

/// Renders a snapshot in the terminal, or as one self-contained HTML page.
int run_report(const ReportOptions& options);

struct DiffOptions {
  std::string a, b;
};

/// What changed between two snapshots; exit 0 whether or not anything did.
int run_diff(const DiffOptions& options);

}  // namespace ctbpf::cli

namespace ctbpf::cli {

struct TopOptions {
  double interval_s = 1.0;
  std::optional<double> duration_s;
  bool json = false;
  std::size_t top = 10;
  std::string mode = "auto";
  std::string ready_file;
};

/// The namespaces and source addresses holding the most conntrack entries, live.
int run_top(const TopOptions& options);

}  // namespace ctbpf::cli
