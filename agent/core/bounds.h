/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// The one check for every number on the command line (durations, intervals, counts): finite, in
// range, whole when it counts something. Pure, so every bound has a unit test.
#include <string>
#include <string_view>

namespace ctbpf::core {

struct Bound {
  double min;              // the smallest value allowed
  double max;              // the largest value allowed
  bool integer = false;    // a count: no fraction, no exponent games
  const char* unit = "";   // "s" for seconds, "" for counts
  bool min_exclusive = false;  // (min, max] rather than [min, max]
  bool power_of_two = false;   // a 1-in-N sampling rate the kernel side applies as a bit mask
};

/// Seconds between two samples: below 0.1 s the loop does little but sample, above an hour it is
/// no longer "live".
inline constexpr Bound kIntervalSeconds{0.1, 3600, false, "s"};
/// Seconds to run or observe: a week at most (a longer watch is `serve`'s job).
inline constexpr Bound kDurationSeconds{0, 7 * 86400, false, "s", true};
/// The positional count of `trace INTERVAL COUNT` and `top INTERVAL COUNT`.
inline constexpr Bound kIntervalCount{1, 1'000'000, true};
/// Rows of a top-N list (trace/snapshot --top, top -n).
inline constexpr Bound kTopRows{1, 1000, true};
/// serve --record-every: one snapshot a day at the least often.
inline constexpr Bound kRecordEverySeconds{1, 86400, false, "s"};
/// --record-max-age: a year.
inline constexpr Bound kRecordMaxAgeSeconds{1, 366 * 86400, false, "s"};
/// --record-quiet: a day.
inline constexpr Bound kRecordQuietSeconds{0, 86400, false, "s"};
/// --record-keep: files kept in the directory.
inline constexpr Bound kRecordKeepFiles{1, 100'000, true};
/// --record-before / --record-after: intervals (their sum is also held below a snapshot's limit).
inline constexpr Bound kRecordIntervals{0, 3600, true};
/// --events-rate and --drop-events-rate: per second, 0 = no limit.
inline constexpr Bound kEventsPerSecond{0, 100'000'000, true};
/// --ring-size: bytes (a power of two, checked where the page size is known).
inline constexpr Bound kRingBytes{4096, 1 << 30, true};
/// --lifetime-sample and --chain-sample: 1 in N, N a power of two (the kernel side masks with N - 1).
inline constexpr Bound kSampleOneIn{1, 65536, true, "", false, true};

/// serve --netns-labels: netns with series of their own (each costs a few series per scrape).
inline constexpr Bound kNetnsLabels{0, 10'000, true};

/// --dump-max-entries: entries read per ctnetlink dump, 0 = no bound (nf_conntrack_max rarely exceeds
/// a few million; a hundred million is far beyond any table).
inline constexpr Bound kDumpEntries{0, 100'000'000, true};
/// --dump-max-seconds: time one dump may take, 0 = no bound.
inline constexpr Bound kDumpSeconds{0, 3600, false, "s"};

/// Empty when `text` is a number within `bound`, else why not, for a one-line error
/// (e.g. "must be a number of seconds from 0.1 to 3600, got 'inf'").
std::string check_bound(std::string_view text, const Bound& bound);

/// What `bound` allows, for --help: "0.1..3600 s", "1..1000".
std::string bound_text(const Bound& bound);

}  // namespace ctbpf::core
