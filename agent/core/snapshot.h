/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// Snapshots: one self-describing JSON document per window, written by `ctbpf snapshot` and by the
// flight recorder, read by `report` and `diff`. Writing builds it from Reports with the same views
// `trace --json` prints; reading trusts nothing (size, depth, every field report and diff use) and
// keeps the parsed document itself as the model, so read -> write gives back the same bytes.
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/aggregator.h"
#include "core/render.h"

namespace ctbpf::core {

inline constexpr uint64_t kSnapshotSchemaVersion = 1;
/// Most rows per order in a summary's "by_source" (`--top`), "other" not counted.
inline constexpr std::size_t kSnapshotMaxTopSources = 1000;
/// Bounds a reader enforces and a writer stays under: the largest snapshot ctbpf writes (3600
/// intervals, every histogram full) is about 40 MB. They stop absurd input before it costs memory.
inline constexpr std::size_t kSnapshotMaxBytes = std::size_t{64} << 20;
inline constexpr std::size_t kSnapshotMaxIntervals = 3600;  // an hour at -i 1, a day at -i 24
inline constexpr std::size_t kSnapshotMaxDepth = 32;

/// Why the flight recorder wrote a snapshot: which causes fired, in which of its intervals.
struct SnapshotTrigger {
  std::vector<std::string> causes;
  std::size_t interval = 0;  // index into "intervals"
};

/// Everything a snapshot says about where and when it was taken.
struct SnapshotMeta {
  std::string host, kernel;
  Mode mode = Mode::tracepoint;
  Observability obs;
  double start_epoch_s = 0, end_epoch_s = 0;  // wall clock (UTC) of the window's first and last sample
  double interval_s = 1;                      // the interval asked for (the last one may be shorter)
  std::map<std::string, uint64_t> sysctls;    // kernel::read_conntrack_sysctls()
  std::optional<SnapshotTrigger> trigger;     // only for the flight recorder
  std::optional<WhoFills> who;                // netns names (and --top sources) when the writer has them
};

/// The document: the summary exactly as `trace --json` prints it (core::summary_json) and one
/// core::interval_json object per interval.
nlohmann::json make_snapshot(const SnapshotMeta& meta, const Report& summary,
                             const std::vector<Report>& intervals);

/// The same, from the samples at the window's interval boundaries (at least two), replayed through
/// an Aggregator. `starts_at_load`: the first sample is the run's baseline, so the exact longest
/// chain since the programs loaded is the window's; otherwise the histogram's bound stands in.
nlohmann::json make_snapshot(const SnapshotMeta& meta, const std::vector<Sample>& samples,
                             bool starts_at_load);

/// The bytes written to a file: deterministic (sorted keys, fixed indentation), newline-terminated.
std::string snapshot_bytes(const nlohmann::json& doc);

/// A snapshot that cannot be used; what() is one printable line naming the file and the field
/// (JSON pointer) or byte offset.
class SnapshotError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// A summary read from a snapshot, with the kernel counters newer than the file (absent from it)
/// as null: what the contract promises of a record ctbpf writes (fields.h, "null, never absent").
nlohmann::json summary_as_now(const nlohmann::json& summary);

/// Parses and validates a snapshot; `name` (the file) prefixes every error message.
nlohmann::json read_snapshot(std::string_view bytes, const std::string& name);

/// "2024-05-06T07:08:09.123Z".
std::string rfc3339_utc(double epoch_s);

}  // namespace ctbpf::core
