// SPDX-License-Identifier: Apache-2.0
// doctor's table rules: table_fill and memory (the proposed max, its memory, the RAM cap).
#include <doctest/doctest.h>

#include "test_core_doctor_fixture.h"

using namespace ctbpf::core;
using namespace doctor_fixture;

TEST_CASE("table_fill: a healthy table is one info finding without fixes") {
  auto d = diagnose(healthy());
  auto* f = find(d, "table_fill");
  REQUIRE(f);
  CHECK(f->severity == Severity::info);
  CHECK(f->fix_now.empty());
  CHECK(f->evidence["fill"].get<double>() == doctest::Approx(1000.0 / 65536));
  CHECK(f->evidence["time_to_full_s"].is_null());  // not growing
  CHECK(f->evidence["proposed"].is_null());
  for (const char* id : {"chain_length", "drop_table_full", "udp_timeout", "stateless_udp"})
    CHECK_MESSAGE(find(d, id) == nullptr, id);
}

TEST_CASE("table_fill: growth between the window's ends alone is no time to full") {
  // +100/s over 10 s, without the dumps that say which entries grew: the net growth is measured and
  // said, but whether timeouts undo it is unknown, so there is no forecast, no warning, no proposal
  // (test_core_doctor_forecast.cpp has the forecasts).
  auto in = healthy();
  in.table_start.count = 1000;
  in.window.table.count = 2000;
  in.sysctls["max"] = 10000;
  in.window.table.max = in.table_start.max = 10000;
  auto d = diagnose(in);
  auto* f = find(d, "table_fill");
  REQUIRE(f);
  CHECK(f->evidence["net_growth_per_s"].get<double>() == doctest::Approx(100.0));
  CHECK(f->evidence["time_to_full_s"].is_null());
  CHECK(f->evidence["forecast"]["basis"] == "no_dumps");
  CHECK(f->severity == Severity::info);
  CHECK(f->evidence["proposed"].is_null());
}

TEST_CASE("table full of assured entries: table_full drops, a proposed max and its memory cost") {
  auto in = healthy();
  in.window.table = {300, 300, 65536};
  in.table_start = {300, 300, 65536};
  in.peak_count = 300;
  in.window.totals.drops.table_full = 2000;
  auto d = diagnose(in);

  auto* fill = find(d, "table_fill");
  REQUIRE(fill);
  CHECK(fill->severity == Severity::critical);
  CHECK(fill->evidence["time_to_full_s"].get<double>() == 0.0);  // full now
  // Wanted: 300 held + 2000 refused; twice that, 4600, rounded up to a power of two.
  CHECK(fill->evidence["proposed"]["max"] == 8192);
  CHECK(fill->evidence["proposed"]["buckets"] == 65536);  // never fewer buckets than now
  CHECK(fill->fix_now.front() == "sysctl -w net.netfilter.nf_conntrack_max=8192  # from the initial network namespace");
  CHECK(has_line(fill->fix_persistent, "net.netfilter.nf_conntrack_max = 8192"));
  CHECK(has_line(fill->fix_persistent, "/etc/modules-load.d/nf_conntrack.conf"));  // a module

  auto* drop = find(d, "drop_table_full");
  REQUIRE(drop);
  CHECK(drop->severity == Severity::critical);
  CHECK(drop->evidence["count"] == 2000);
  CHECK(drop->evidence["source"] == "probe");

  auto* mem = find(d, "memory");
  REQUIRE(mem);
  CHECK(mem->evidence["proposed"]["memory_bytes"] == uint64_t{8192} * 256 + 65536 * 8);
  CHECK(mem->evidence["slab_object_size"] == 256);
}

TEST_CASE("a proposal stays under a quarter of RAM") {
  auto in = healthy();
  in.system.ram_bytes = uint64_t{64} << 20;  // 64 MiB: 16 MiB for conntrack at most
  in.window.table = {30000, 30000, 65536};
  in.table_start = in.window.table;
  in.window.totals.drops.table_full = 100000;
  auto d = diagnose(in);
  auto* f = find(d, "table_fill");
  REQUIRE(f);
  auto proposed = f->evidence["proposed"];
  CHECK(proposed["capped_by_ram"] == true);
  CHECK(proposed["max"].get<uint64_t>() > 30000);
  CHECK(proposed["memory_bytes"].get<uint64_t>() <= (uint64_t{16} << 20));
}

TEST_CASE("max = 0 means unlimited: no fill, no time to full, a bound is proposed") {
  auto in = healthy();
  in.window.table.max = in.table_start.max = 0;
  in.sysctls["max"] = 0;
  auto d = diagnose(in);
  auto* f = find(d, "table_fill");
  REQUIRE(f);
  CHECK(f->severity == Severity::warning);
  CHECK(f->evidence["fill"].is_null());
  CHECK(f->evidence["time_to_full_s"].is_null());
  CHECK(f->evidence["proposed"]["max"] == 65536);  // at least the bucket count
  auto* mem = find(d, "memory");
  REQUIRE(mem);
  CHECK(mem->severity == Severity::warning);
  CHECK(mem->evidence["memory_at_max_bytes"].is_null());
  CHECK(find(d, "chain_length") == nullptr);  // 1000 entries in 65536 buckets
}
