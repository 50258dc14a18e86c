// SPDX-License-Identifier: Apache-2.0
#include <doctest/doctest.h>

#include "core/recorder.h"
#include "core/snapshot.h"
#include "test_core_snapshot_fixture.h"

using namespace ctbpf::core;

namespace {

// Feeds every sample of `samples` as trace does; returns the recordings, including finish()'s.
std::vector<Recording> run(const std::vector<Sample>& samples, const RecorderOptions& options) {
  Recorder recorder(options);
  Aggregator agg(Mode::fentry, fixture::full_probes());
  std::vector<Recording> out;
  for (const auto& s : samples)
    if (auto r = recorder.add(s, agg.add(s))) out.push_back(*r);
  if (auto r = recorder.finish()) out.push_back(*r);
  return out;
}

RecorderOptions options(std::size_t before, std::size_t after, double quiet_s) {
  RecorderOptions o;
  o.before = before;
  o.after = after;
  o.quiet_s = quiet_s;
  return o;
}

// Appends `quiet` quiet and `burst` burst intervals (1 s each) after the series' last sample.
void extend(std::vector<Sample>& s, int quiet, int burst) {
  for (int i = 0; i < quiet + burst; ++i) {
    const auto& last = s.back();
    uint64_t inserts = last.counters[CTBPF_CNT_INSERT] + 100;
    uint64_t refused = last.counters[CTBPF_CNT_CHAINTOOLONG] + (i >= quiet ? 50 : 0);
    s.push_back(fixture::sample(last.t_s + 1, inserts, refused));
  }
}

}  // namespace

TEST_CASE("no drop cause, no recording") {
  CHECK(run(fixture::series(50, 0), options(10, 2, 5)).empty());
}

TEST_CASE("a burst fires once, with the intervals before it and `after` more") {
  auto recordings = run(fixture::series(4, 3, 5), options(120, 2, 60));
  REQUIRE(recordings.size() == 1);
  const auto& r = recordings[0];
  CHECK(r.causes == std::vector<std::string>{"insert_failed", "chaintoolong"});
  CHECK(r.starts_at_load);
  // 4 quiet + the one that fired + 2 after = 7 intervals = 8 boundaries.
  CHECK(r.samples.size() == 8);
  CHECK(r.trigger_interval == 4);

  auto doc = make_snapshot(fixture::meta(), r.samples, r.starts_at_load);
  for (std::size_t i = 0; i < 4; ++i) CHECK(doc["intervals"][i]["drops"]["chaintoolong"] == 0);
  CHECK(doc["intervals"][4]["drops"]["chaintoolong"] == 50);
  CHECK(doc["summary"]["drops"]["chaintoolong"] == 150);
}

TEST_CASE("the ring is bounded: only `before` intervals precede the trigger") {
  auto recordings = run(fixture::series(100, 1, 10), options(5, 3, 60));
  REQUIRE(recordings.size() == 1);
  CHECK(recordings[0].samples.size() == 5 + 1 + 3 + 1);
  CHECK(recordings[0].trigger_interval == 5);
  CHECK_FALSE(recordings[0].starts_at_load);
}

TEST_CASE("rate limit: one recording per burst; a new burst needs quiet_s without drops first") {
  SUBCASE("a long burst") { CHECK(run(fixture::series(3, 40, 3), options(10, 2, 5)).size() == 1); }
  SUBCASE("a second burst after a short gap belongs to the first") {
    auto s = fixture::series(3, 3);
    extend(s, 4, 3);  // 4 s quiet < 5 s
    extend(s, 3, 0);
    CHECK(run(s, options(10, 2, 5)).size() == 1);
  }
  SUBCASE("a second burst after a long enough gap gets its own") {
    auto s = fixture::series(3, 3);
    extend(s, 5, 3);  // 5 s quiet >= 5 s
    extend(s, 3, 0);
    auto recordings = run(s, options(10, 2, 5));
    REQUIRE(recordings.size() == 2);
    CHECK(recordings[1].trigger_interval == 10);  // the ring's 10 intervals before it
  }
}

TEST_CASE("a recording still waiting for its `after` intervals is written, shorter, at the end") {
  auto recordings = run(fixture::series(2, 1), options(10, 5, 60));
  REQUIRE(recordings.size() == 1);
  CHECK(recordings[0].samples.size() == 4);
  CHECK(recordings[0].trigger_interval == 2);
}

TEST_CASE("after = 0 writes in the interval that fired") {
  auto recordings = run(fixture::series(2, 1, 5), options(10, 0, 60));
  REQUIRE(recordings.size() == 1);
  CHECK(recordings[0].trigger_interval == 2);
  CHECK(recordings[0].samples.size() == 4);
}

TEST_CASE("clash_resolve and invalid do not fire the recorder; early_drop and table_full do") {
  Report r;
  r.totals.drops.clash_resolve = 9;
  r.totals.drops.invalid = 9;
  r.totals.drops.table_full = 0;
  CHECK(firing_causes(r).empty());
  r.totals.drops.early_drop = 1;
  r.totals.drops.table_full = 2;
  CHECK(firing_causes(r) == std::vector<std::string>{"table_full", "early_drop"});
}

TEST_CASE("retention: newest keep_files, none older than max_age_s, nothing that is not ours") {
  RecorderOptions o;
  o.keep_files = 2;
  o.max_age_s = 100;
  const double now = 10000;
  std::vector<RecordedFile> files = {
      {recording_file_name(now - 10, {"chaintoolong"}), now - 10},
      {recording_file_name(now - 20, {"table_full"}), now - 20},
      {recording_file_name(now - 30, {"table_full"}), now - 30},
      {"notes.txt", now - 5000},
      {"ctbpf-manual.json.bak", now - 5000},
  };
  CHECK(expired_recordings(files, now, o) == std::vector<std::string>{files[2].name});
  o.keep_files = 10;
  o.max_age_s = 15;
  CHECK(expired_recordings(files, now, o) == std::vector<std::string>{files[1].name, files[2].name});
}

TEST_CASE("recording file names sort by time and say why") {
  CHECK(recording_file_name(1714979289.123, {"insert_failed", "chaintoolong"}) ==
        "ctbpf-20240506T070809.123Z-insert_failed+chaintoolong.json");
  CHECK(is_recording_file("ctbpf-20240506T070809.123Z-table_full.json"));
  CHECK_FALSE(is_recording_file(".ctbpf-20240506T070809.123Z-table_full.json.tmp.abc123"));
  CHECK_FALSE(is_recording_file("snapshot.json"));
}
