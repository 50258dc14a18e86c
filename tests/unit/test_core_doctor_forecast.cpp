// SPDX-License-Identifier: Apache-2.0
// doctor's time-to-full forecast (issue 34): only from growth that outlives the timeout of the entries
// that grew, with its confidence; tcp_timeout_established without ESTABLISHED entries; the proposed
// max's arithmetic in the words that describe it. Expected values come from each scenario's own
// arithmetic (rates × seconds, the kernel's default timeouts), not from the code under test.
#include <doctest/doctest.h>

#include <cmath>

#include "test_core_doctor_fixture.h"

using namespace ctbpf::core;
using namespace doctor_fixture;

namespace {

constexpr uint8_t kUdp = 17;

// The count sampled once a second for `seconds`, from count(t).
template <typename F>
std::vector<CountAt> counts_over(uint64_t seconds, F count) {
  std::vector<CountAt> out;
  for (uint64_t t = 0; t <= seconds; ++t) out.push_back({static_cast<double>(t), static_cast<uint64_t>(count(t))});
  return out;
}

// A dump that read the whole table: ok, not stopped.
IdleSummary dump_of() {
  IdleSummary s;
  s.dump.ok = true;
  return s;
}

// The fresh netns, tracepoint mode: 600 UDP datagrams (one new unanswered flow each) in a
// `doctor -d 5`, 120 a second into an empty table of max 262144, the kernel's default timeouts.
DoctorInput netns_burst() {
  auto in = tracepoint(healthy());
  default_timeouts(in.sysctls);
  in.sysctls["tcp_timeout_established"] = 432000;
  in.sysctls["max"] = 262144;
  in.window.end_s = 5;
  in.table_start = {0, 262144, 262144};
  in.window.table = {600, 262144, 262144};
  in.peak_count = 600;
  in.counts = counts_over(5, [](uint64_t t) { return 120 * t; });
  in.idle_start = dump_of();
  auto end = dump_of();
  add_entries(end, in.sysctls, kUdp, 0, 600, 2, 0);  // unanswered: udp_timeout, not the stream's
  in.idle = end;
  return in;
}

std::string text_of(const Finding& f) { return f.title + "\n" + f.measured + "\n" + f.why; }

}  // namespace

TEST_CASE("forecast: a 5 s burst of UDP into a fresh netns is no time to full (issue 34)") {
  auto in = netns_burst();
  auto d = diagnose(in);
  auto* f = find(d, "table_fill");
  REQUIRE(f);
  // On main: "[WARNING] table_fill: table 0.2% full, time to full: 36 min" and max=524288 proposed.
  CHECK(f->severity == Severity::info);
  CHECK(f->evidence["time_to_full_s"].is_null());
  CHECK(f->evidence["net_growth_per_s"].get<double>() == doctest::Approx(120.0));  // measured, still said
  auto fc = f->evidence["forecast"];
  CHECK(fc["basis"] == "window_too_short");
  CHECK(fc["confidence"] == "none");
  CHECK(fc["timeout_s"] == 30);  // the unanswered UDP entries' udp_timeout
  CHECK(fc["timeout_sysctl"] == "udp_timeout");
  CHECK(fc["needed_window_s"].get<double>() == doctest::Approx(60.0));
  REQUIRE(fc["grown"].size() == 1);
  CHECK(fc["grown"][0]["class"] == "udp");
  CHECK(fc["grown"][0]["start"] == 0);
  CHECK(fc["grown"][0]["end"] == 600);
  CHECK(f->evidence["proposed"].is_null());
  CHECK(f->fix_now.empty());
  CHECK(f->title.find("time to full: 36 min") == std::string::npos);
  CHECK(f->measured.find("doctor -d 60") != std::string::npos);  // how to get a forecast

  // The same evidence in doctor's JSON inputs.
  auto j = doctor_json(in, d);
  CHECK(j["inputs"]["table"]["time_to_full_s"].is_null());
  CHECK(j["inputs"]["table"]["forecast"]["basis"] == "window_too_short");

  // No TCP entry in the table: tcp_timeout_established is no warning (it was, through the forecast).
  auto* e = find(d, "tcp_timeout_established");
  REQUIRE(e);
  CHECK(e->severity == Severity::info);
  CHECK(e->evidence["established_entries"] == 0);
}

TEST_CASE("forecast: a constant rate from a cold start levels off; only the growth after the timeout counts") {
  // 120 new unanswered UDP flows a second for 90 s: the table reaches 120 × 30 = 3600 at 30 s and stays.
  // Its two ends say +40/s (3600 in 90 s), and a time to full of (262144 - 3600) / 40 s.
  auto in = netns_burst();
  in.window.end_s = 90;
  in.window.table.count = 3600;
  in.peak_count = 3600;
  in.counts = counts_over(90, [](uint64_t t) { return 120 * std::min<uint64_t>(t, 30); });
  auto end = dump_of();
  add_entries(end, in.sysctls, kUdp, 0, 3600, 10, 0);
  in.idle = end;
  auto d = diagnose(in);
  auto* f = find(d, "table_fill");
  REQUIRE(f);
  CHECK(f->evidence["net_growth_per_s"].get<double>() == doctest::Approx(40.0));
  auto fc = f->evidence["forecast"];
  CHECK(fc["basis"] == "settled");
  CHECK(fc["settled_from_s"].get<double>() == doctest::Approx(30.0));
  CHECK(fc["settled_span_s"].get<double>() == doctest::Approx(60.0));
  CHECK(fc["settled_growth_per_s"].get<double>() == doctest::Approx(0.0));
  CHECK(fc["confidence"] == "medium");  // measured over 60 s, two timeouts
  CHECK(f->evidence["time_to_full_s"].is_null());
  CHECK(f->severity == Severity::info);
}

TEST_CASE("forecast: expired entries the kernel has not reaped yet are no growth") {
  // A host run: 20 new unanswered UDP flows a second for 64 s. The kernel's count kept climbing after
  // 30 s (600 at 30 s, 780 at 64 s): its garbage collector reaps expired entries up to 60 s late. The
  // end dump, which skips expired entries, read 580 live ones: fewer than at 30 s, not growth.
  auto in = netns_burst();
  in.window.end_s = 64;
  in.counts = counts_over(64, [](uint64_t t) { return t <= 30 ? 20 * t : 600 + (180 * (t - 30)) / 34; });
  in.window.table.count = 780;
  in.peak_count = 780;
  auto end = dump_of();
  add_entries(end, in.sysctls, kUdp, 0, 580, 10, 0);
  in.idle = end;
  auto d = diagnose(in);
  auto* f = find(d, "table_fill");
  REQUIRE(f);
  auto fc = f->evidence["forecast"];
  CHECK(fc["basis"] == "settled");
  CHECK(fc["settled_end_source"] == "dump");
  CHECK(fc["settled_from_count"] == 600);
  CHECK(fc["settled_end_count"] == 580);
  CHECK(fc["settled_growth_per_s"].get<double>() == doctest::Approx(-20.0 / 34));
  CHECK(f->evidence["time_to_full_s"].is_null());

  // The end dump stopped at its bound: the last sampled count ends the growth, so its start waits a
  // collector's period (60 s) after the timeout: 64 s is too short, 180 s would do.
  end.dump.stopped = DumpStop::max_entries;
  in.idle = end;
  d = diagnose(in);
  f = find(d, "table_fill");
  REQUIRE(f);
  CHECK(f->evidence["forecast"]["basis"] == "window_too_short");
  CHECK(f->evidence["forecast"]["needed_window_s"].get<double>() == doctest::Approx(180.0));
}

TEST_CASE("forecast: growth that outlives the timeout is forecast, with its confidence") {
  // The rate of new flows keeps rising: the count goes 1000 + 100 t for 90 s, to 10000 of max 20000.
  auto in = netns_burst();
  in.sysctls["max"] = 20000;
  in.window.end_s = 90;
  in.table_start = {1000, 20000, 65536};
  in.window.table = {10000, 20000, 65536};
  in.peak_count = 10000;
  in.counts = counts_over(90, [](uint64_t t) { return 1000 + 100 * t; });
  auto start = dump_of(), end = dump_of();
  add_entries(start, in.sysctls, kUdp, 0, 1000, 1, 0);
  add_entries(end, in.sysctls, kUdp, 0, 10000, 1, 0);
  in.idle_start = start;
  in.idle = end;
  auto d = diagnose(in);
  auto* f = find(d, "table_fill");
  REQUIRE(f);
  auto fc = f->evidence["forecast"];
  CHECK(fc["basis"] == "settled");
  // From 30 s (4000) to 90 s (10000): +100/s; (20000 - 10000) / 100 = 100 s to full.
  CHECK(fc["settled_growth_per_s"].get<double>() == doctest::Approx(100.0));
  CHECK(fc["confidence"] == "medium");
  CHECK(fc["settled_end_source"] == "dump");
  CHECK(f->evidence["time_to_full_s"].get<double>() == doctest::Approx(100.0));
  CHECK(f->severity == Severity::warning);
  CHECK(f->title.find("medium confidence") != std::string::npos);
  CHECK_FALSE(f->evidence["proposed"].is_null());

  // The same growth in a window of 40 s: measured over 10 s after the 30 s timeout, less than one
  // timeout: low confidence, said, and no warning nor proposal on its strength.
  in.window.end_s = 40;
  in.window.table.count = 5000;
  in.peak_count = 5000;
  in.counts = counts_over(40, [](uint64_t t) { return 1000 + 100 * t; });
  end = dump_of();
  add_entries(end, in.sysctls, kUdp, 0, 5000, 1, 0);
  in.idle = end;
  d = diagnose(in);
  f = find(d, "table_fill");
  REQUIRE(f);
  CHECK(f->evidence["forecast"]["confidence"] == "low");
  CHECK(f->evidence["time_to_full_s"].get<double>() == doctest::Approx(150.0));  // 15000 / 100
  CHECK(f->severity == Severity::info);
  CHECK(f->evidence["proposed"].is_null());
  CHECK(f->title.find("low confidence") != std::string::npos);
}

TEST_CASE("forecast: what it cannot tell, it says") {
  // ESTABLISHED entries that grew stay up to 5 days: no window of doctor (7 days at most) is twice that.
  auto in = netns_burst();
  in.window.end_s = 60;
  in.counts = counts_over(60, [](uint64_t t) { return 10 * t; });
  in.window.table.count = 600;
  auto end = dump_of();
  add_entries(end, in.sysctls, kTcp, kEstablished, 600, 5);
  in.idle = end;
  auto d = diagnose(in);
  auto* f = find(d, "table_fill");
  REQUIRE(f);
  CHECK(f->evidence["forecast"]["basis"] == "window_too_short");
  CHECK(f->evidence["forecast"]["timeout_sysctl"] == "tcp_timeout_established");
  CHECK(f->evidence["forecast"]["needed_window_s"].get<double>() == doctest::Approx(864000.0));
  CHECK(f->measured.find("longer than doctor's limit") != std::string::npos);
  CHECK(f->evidence["time_to_full_s"].is_null());

  // Without the dumps, which entries grew is unknown.
  in.idle.reset();
  d = diagnose(in);
  f = find(d, "table_fill");
  REQUIRE(f);
  CHECK(f->evidence["forecast"]["basis"] == "no_dumps");
  CHECK(f->evidence["time_to_full_s"].is_null());

  // Full is measured, not forecast.
  in = netns_burst();
  in.window.table.count = 262144;
  d = diagnose(in);
  f = find(d, "table_fill");
  REQUIRE(f);
  CHECK(f->evidence["forecast"]["basis"] == "full_now");
  CHECK(f->evidence["forecast"]["confidence"] == "measured");
  CHECK(f->evidence["time_to_full_s"].get<double>() == 0.0);
}

TEST_CASE("tcp_timeout_established: table pressure without ESTABLISHED entries is no warning (issue 34)") {
  // The host run's evidence: a table under pressure (over 80% full), the dump finds no ESTABLISHED entry.
  auto in = netns_burst();
  in.window.table.count = 240000;
  in.table_start.count = 240000;
  in.peak_count = 240000;
  in.counts = counts_over(5, [](uint64_t) { return 240000; });
  auto end = dump_of();
  add_entries(end, in.sysctls, kUdp, 0, 100, 2, 0);
  in.idle = end;
  auto d = diagnose(in);
  REQUIRE(find(d, "table_fill"));
  CHECK(find(d, "table_fill")->severity == Severity::warning);  // the pressure is real
  auto* e = find(d, "tcp_timeout_established");
  REQUIRE(e);
  CHECK(e->severity == Severity::info);
  CHECK(e->evidence["established_entries"] == 0);

  // With ESTABLISHED entries in the table, the same pressure makes it a warning.
  add_established(end, in.sysctls, 50, 431990);
  in.idle = end;
  d = diagnose(in);
  e = find(d, "tcp_timeout_established");
  REQUIRE(e);
  CHECK(e->evidence["established_entries"] == 50);
  CHECK(e->severity == Severity::warning);

  // Without a dump, whether there are any is unknown: pressure keeps it a warning.
  in.idle.reset();
  d = diagnose(in);
  e = find(d, "tcp_timeout_established");
  REQUIRE(e);
  CHECK(e->evidence["established_entries"].is_null());
  CHECK(e->severity == Severity::warning);
}

TEST_CASE("proposed max: the number is what the words compute") {
  // 850 of max 1000 (85%): wanted 850, twice that 1700; twice the max, 2000, is larger;
  // the next power of two of 2000 is 2048.
  auto in = healthy();
  in.window.table = {850, 1000, 1024};
  in.table_start = in.window.table;
  in.peak_count = 850;
  auto d = diagnose(in);
  auto* f = find(d, "table_fill");
  REQUIRE(f);
  auto p = f->evidence["proposed"];
  CHECK(p["wanted_entries"] == 850);
  CHECK(p["basis"] == "twice_max");
  CHECK(p["target"] == 2000);
  CHECK(p["rounded"] == 2048);
  CHECK(p["max"] == 2048);
  CHECK(f->fix_now.front() == "sysctl -w net.netfilter.nf_conntrack_max=2048  # from the initial network namespace");
  CHECK(f->why.find("twice the current max 1000 is 2000") != std::string::npos);
  CHECK(f->why.find("rounded up to a power of two (2048)") != std::string::npos);
  CHECK(text_of(*f).find("twice the 850 entries") == std::string::npos);  // not what was computed

  // Full of 300 with 2000 refused: wanted 2300, twice that 4600 beats twice the max (600); 8192.
  in.window.table = {300, 300, 65536};
  in.table_start = in.window.table;
  in.peak_count = 300;
  in.window.totals.drops.table_full = 2000;
  d = diagnose(in);
  f = find(d, "table_fill");
  REQUIRE(f);
  p = f->evidence["proposed"];
  CHECK(p["basis"] == "twice_wanted");
  CHECK(p["target"] == 4600);
  CHECK(p["rounded"] == 8192);
  CHECK(p["max"] == 8192);
  CHECK(f->why.find("twice the 2300 entries this window wanted (peak 300 + 2000 refused + 0 evicted) is 4600, "
                    "rounded up to a power of two (8192)") != std::string::npos);
}
