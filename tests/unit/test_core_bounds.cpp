// SPDX-License-Identifier: Apache-2.0
#include <doctest/doctest.h>

#include <string>

#include "core/bounds.h"

using namespace ctbpf::core;

namespace {
bool ok(const char* text, const Bound& b) { return check_bound(text, b).empty(); }

// What every bound refuses, whatever its range: not a number, not finite, overflow.
void refuses_non_numbers(const Bound& b) {
  for (const char* bad : {"", " ", "x", "1x", "nan", "NaN", "inf", "-inf", "infinity", "1e999", "-1e999", "0x", "--1"})
    CHECK_MESSAGE(!ok(bad, b), "accepted '", bad, "'");
}
}  // namespace

TEST_CASE("check_bound: the message says the range and repeats the input") {
  auto why = check_bound("inf", kIntervalSeconds);
  CHECK(why == "must be a number of seconds from 0.1 to 3600, got 'inf'");
  CHECK(check_bound("0", kDurationSeconds) == "must be a number of seconds from above 0 to 604800, got '0'");
  CHECK(check_bound("2.5", kIntervalCount) == "must be a whole number from 1 to 1000000, got '2.5'");
  CHECK(bound_text(kIntervalSeconds) == "0.1..3600 s");
  CHECK(bound_text(kDurationSeconds) == ">0..604800 s");
  CHECK(bound_text(kTopRows) == "1..1000");
}

TEST_CASE("check_bound: every bound") {
  SUBCASE("interval seconds (trace, top, snapshot, serve -i)") {
    refuses_non_numbers(kIntervalSeconds);
    CHECK(ok("0.1", kIntervalSeconds));
    CHECK(ok("1", kIntervalSeconds));
    CHECK(ok("3600", kIntervalSeconds));
    CHECK(!ok("0", kIntervalSeconds));
    CHECK(!ok("0.05", kIntervalSeconds));
    CHECK(!ok("-1", kIntervalSeconds));
    CHECK(!ok("3600.5", kIntervalSeconds));
    CHECK(!ok("1e10", kIntervalSeconds));
    CHECK(!ok("1e12", kIntervalSeconds));
  }
  SUBCASE("duration seconds (trace, top, doctor, snapshot -d)") {
    refuses_non_numbers(kDurationSeconds);
    CHECK(ok("0.5", kDurationSeconds));
    CHECK(ok("604800", kDurationSeconds));
    CHECK(!ok("0", kDurationSeconds));
    CHECK(!ok("-0", kDurationSeconds));
    CHECK(!ok("604801", kDurationSeconds));
    CHECK(!ok("1e10", kDurationSeconds));
    CHECK(!ok("1e12", kDurationSeconds));
  }
  SUBCASE("interval count (trace INTERVAL COUNT, top INTERVAL COUNT)") {
    refuses_non_numbers(kIntervalCount);
    CHECK(ok("1", kIntervalCount));
    CHECK(ok("1000000", kIntervalCount));
    CHECK(!ok("0", kIntervalCount));
    CHECK(!ok("-3", kIntervalCount));
    CHECK(!ok("1.5", kIntervalCount));
    CHECK(!ok("1e3", kIntervalCount));  // a count is written as digits
    CHECK(!ok("1000001", kIntervalCount));
    CHECK(!ok("99999999999999999999", kIntervalCount));
  }
  SUBCASE("top rows (--top, top -n)") {
    refuses_non_numbers(kTopRows);
    CHECK(ok("1", kTopRows));
    CHECK(ok("1000", kTopRows));
    CHECK(!ok("0", kTopRows));
    CHECK(!ok("1001", kTopRows));
  }
  SUBCASE("serve --record-every") {
    refuses_non_numbers(kRecordEverySeconds);
    CHECK(ok("1", kRecordEverySeconds));
    CHECK(ok("86400", kRecordEverySeconds));
    CHECK(!ok("0.5", kRecordEverySeconds));
    CHECK(!ok("86401", kRecordEverySeconds));
  }
  SUBCASE("--record-max-age") {
    refuses_non_numbers(kRecordMaxAgeSeconds);
    CHECK(ok("604800", kRecordMaxAgeSeconds));
    CHECK(ok("31622400", kRecordMaxAgeSeconds));
    CHECK(!ok("0", kRecordMaxAgeSeconds));
    CHECK(!ok("31622401", kRecordMaxAgeSeconds));
  }
  SUBCASE("--record-quiet") {
    refuses_non_numbers(kRecordQuietSeconds);
    CHECK(ok("0", kRecordQuietSeconds));
    CHECK(ok("86400", kRecordQuietSeconds));
    CHECK(!ok("-1", kRecordQuietSeconds));
    CHECK(!ok("86401", kRecordQuietSeconds));
  }
  SUBCASE("--record-keep") {
    refuses_non_numbers(kRecordKeepFiles);
    CHECK(ok("1", kRecordKeepFiles));
    CHECK(ok("100000", kRecordKeepFiles));
    CHECK(!ok("0", kRecordKeepFiles));
    CHECK(!ok("100001", kRecordKeepFiles));
  }
  SUBCASE("--record-before, --record-after") {
    refuses_non_numbers(kRecordIntervals);
    CHECK(ok("0", kRecordIntervals));
    CHECK(ok("3600", kRecordIntervals));
    CHECK(!ok("-1", kRecordIntervals));
    CHECK(!ok("3601", kRecordIntervals));
  }
  SUBCASE("--events-rate, --drop-events-rate") {
    refuses_non_numbers(kEventsPerSecond);
    CHECK(ok("0", kEventsPerSecond));
    CHECK(ok("100000000", kEventsPerSecond));
    CHECK(!ok("-1", kEventsPerSecond));
    CHECK(!ok("100000001", kEventsPerSecond));
  }
  SUBCASE("--ring-size") {
    refuses_non_numbers(kRingBytes);
    CHECK(ok("4096", kRingBytes));
    CHECK(ok("1073741824", kRingBytes));
    CHECK(!ok("4095", kRingBytes));
    CHECK(!ok("2147483648", kRingBytes));
  }
  SUBCASE("--dump-max-entries, --dump-max-seconds (0: no bound)") {
    refuses_non_numbers(kDumpEntries);
    refuses_non_numbers(kDumpSeconds);
    CHECK(ok("0", kDumpEntries));
    CHECK(ok("262144", kDumpEntries));
    CHECK(ok("100000000", kDumpEntries));
    CHECK(!ok("100000001", kDumpEntries));
    CHECK(!ok("1.5", kDumpEntries));
    CHECK(!ok("-1", kDumpEntries));
    CHECK(ok("0", kDumpSeconds));
    CHECK(ok("0.25", kDumpSeconds));
    CHECK(ok("3600", kDumpSeconds));
    CHECK(!ok("-0.1", kDumpSeconds));
    CHECK(!ok("3601", kDumpSeconds));
  }
  SUBCASE("--lifetime-sample, --chain-sample") {
    refuses_non_numbers(kSampleOneIn);
    CHECK(ok("1", kSampleOneIn));
    CHECK(ok("16", kSampleOneIn));
    CHECK(ok("65536", kSampleOneIn));
    CHECK(!ok("0", kSampleOneIn));
    CHECK(!ok("3", kSampleOneIn));
    CHECK(!ok("48", kSampleOneIn));
    CHECK(check_bound("3", kSampleOneIn) == "must be a power of two from 1 to 65536, got '3'");
    CHECK(!ok("131072", kSampleOneIn));
  }
}
