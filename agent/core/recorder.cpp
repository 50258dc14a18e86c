// SPDX-License-Identifier: Apache-2.0
#include "core/recorder.h"

#include <algorithm>

#include "core/snapshot.h"

namespace ctbpf::core {

std::vector<std::string> firing_causes(const Report& interval) {
  std::vector<std::string> out;
  for (const auto& cause : kDropCauses)
    if (const auto& n = interval.totals.drops.*cause.member; cause.table_trouble && n && *n > 0)
      out.emplace_back(cause.key);
  return out;
}

Recorder::Recorder(const RecorderOptions& options) : options_(options) {}

std::optional<Recording> Recorder::add(const Sample& sample, const std::optional<Report>& interval) {
  ring_.push_back(sample);
  if (!interval) {
    ring_has_baseline_ = ring_.size() == 1;
    return std::nullopt;
  }
  // Enough boundaries for `before` intervals, the one that fires and `after` more.
  while (ring_.size() > options_.before + options_.after + 2) {
    ring_.pop_front();
    ring_has_baseline_ = false;
  }

  auto causes = firing_causes(*interval);
  const bool quiet_long_enough =
      !last_drop_t_ || interval->start_s - *last_drop_t_ >= options_.quiet_s;
  if (!causes.empty()) last_drop_t_ = interval->end_s;

  if (pending_causes_) {
    ++pending_trigger_age_;
    if (--pending_after_ == 0) return cut();
    return std::nullopt;
  }
  // One recording per burst: a burst ends only when its causes have been quiet for quiet_s.
  if (causes.empty() || (last_fire_t_ && !quiet_long_enough)) return std::nullopt;
  last_fire_t_ = interval->end_s;
  pending_causes_ = std::move(causes);
  pending_after_ = options_.after;
  pending_trigger_age_ = 0;
  if (pending_after_ == 0) return cut();
  return std::nullopt;
}

std::optional<Recording> Recorder::finish() {
  if (!pending_causes_ || ring_.size() < 2) return std::nullopt;
  return cut();
}

Recording Recorder::cut() {
  Recording r;
  r.samples.assign(ring_.begin(), ring_.end());
  r.starts_at_load = ring_has_baseline_;
  r.causes = std::move(*pending_causes_);
  // The last interval is samples.size() - 2; the one that fired is pending_trigger_age_ before it.
  r.trigger_interval = r.samples.size() - 2 - pending_trigger_age_;
  pending_causes_.reset();
  return r;
}

std::string recording_file_name(double epoch_s, const std::vector<std::string>& causes) {
  // 2024-05-06T07:08:09.123Z -> 20240506T070809.123Z: no ':' (awkward in file names and scp).
  std::string time;
  for (char c : rfc3339_utc(epoch_s))
    if (c != '-' && c != ':') time += c;
  std::string why;
  for (const auto& c : causes) why += (why.empty() ? "" : "+") + c;
  return "ctbpf-" + time + "-" + (why.empty() ? "drops" : why) + ".json";
}

bool is_recording_file(const std::string& name) {
  const std::string prefix = "ctbpf-", suffix = ".json";
  return name.size() > prefix.size() + suffix.size() && name.rfind(prefix, 0) == 0 &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
         name.find('/') == std::string::npos;
}

std::vector<std::string> expired_recordings(std::vector<RecordedFile> files, double now_epoch_s,
                                            const RecorderOptions& options) {
  std::erase_if(files, [](const RecordedFile& f) { return !is_recording_file(f.name); });
  // Newest first; names (which start with the time) break ties.
  std::sort(files.begin(), files.end(), [](const RecordedFile& a, const RecordedFile& b) {
    return a.mtime_epoch_s != b.mtime_epoch_s ? a.mtime_epoch_s > b.mtime_epoch_s : a.name > b.name;
  });
  std::vector<std::string> out;
  for (std::size_t i = 0; i < files.size(); ++i)
    if (i >= options.keep_files || now_epoch_s - files[i].mtime_epoch_s > options.max_age_s)
      out.push_back(files[i].name);
  return out;
}

}  // namespace ctbpf::core
