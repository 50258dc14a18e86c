/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// The flight recorder of `trace --record DIR`: keeps the samples of the last intervals, decides when a
// burst of drops deserves a snapshot, and which old snapshot files to delete. Pure: the caller feeds
// samples and writes (and deletes) files; every decision is here and unit-tested.
//
// Trigger causes: the drop causes that say the table could not take a packet or an entry
// (fields.h: DropCauseField::table_trouble, which says why the others are left out).
#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "core/aggregator.h"

namespace ctbpf::core {

struct RecorderOptions {
  std::size_t before = 120;         // intervals kept before the one that fired
  std::size_t after = 10;           // intervals after it, waited for before writing
  double quiet_s = 60;              // drops must stop this long before another snapshot may fire
  std::size_t keep_files = 50;      // newest snapshot files kept in DIR
  double max_age_s = 7 * 86400.0;   // older files are deleted
};

/// A snapshot to write: the samples at the interval boundaries (samples.size() - 1 intervals).
struct Recording {
  std::vector<Sample> samples;
  bool starts_at_load = false;    // samples[0] is the run's baseline
  std::vector<std::string> causes;
  std::size_t trigger_interval = 0;  // index of the interval that fired, among the recording's
};

/// The table_trouble causes with a non-zero count in this interval.
std::vector<std::string> firing_causes(const Report& interval);

class Recorder {
public:
  explicit Recorder(const RecorderOptions& options);

  /// Feeds the next sample and the interval it closes (none for the baseline, which must come
  /// first). Returns a recording when one is complete: its trigger plus `after` intervals.
  std::optional<Recording> add(const Sample& sample, const std::optional<Report>& interval);
  /// At the end of the run: a fired recording still waiting for its `after` intervals, cut short.
  std::optional<Recording> finish();

private:
  Recording cut();

  RecorderOptions options_;
  std::deque<Sample> ring_;         // at most before + 1 + after + 1 boundary samples
  bool ring_has_baseline_ = false;  // ring_.front() is the run's first sample
  std::optional<double> last_drop_t_;  // end time of the last interval with a firing cause
  std::optional<double> last_fire_t_;  // end time of the interval that fired the last recording
  // A fired recording waiting for its `after` intervals.
  std::optional<std::vector<std::string>> pending_causes_;
  std::size_t pending_after_ = 0;        // intervals still to wait for
  std::size_t pending_trigger_age_ = 0;  // intervals since the one that fired
};

/// A snapshot file in the record directory.
struct RecordedFile {
  std::string name;
  double mtime_epoch_s = 0;
};

/// "ctbpf-20240506T070809.123Z-chaintoolong.json": sorts by time, says why at a glance.
std::string recording_file_name(double epoch_s, const std::vector<std::string>& causes);
/// True for names recording_file_name() makes: retention never touches anything else in DIR.
bool is_recording_file(const std::string& name);
/// Which of `files` retention deletes: those older than max_age_s, and all but the newest keep_files.
std::vector<std::string> expired_recordings(std::vector<RecordedFile> files, double now_epoch_s,
                                            const RecorderOptions& options);

}  // namespace ctbpf::core
