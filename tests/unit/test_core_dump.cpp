// SPDX-License-Identifier: Apache-2.0
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include "core/attribution.h"
#include "core/dump.h"
#include "core/render.h"

using namespace ctbpf::core;

namespace {
// Offers `n` entries to a budget, each `step_s` after the previous one; returns what it read.
DumpRead offer(DumpLimit limit, uint64_t n, double step_s = 0) {
  DumpBudget b(limit);
  double t = 0;
  for (uint64_t i = 0; i < n; ++i, t += step_s)
    if (!b.admit(t)) break;
  return b.finish(true, t);
}

SourceKey v4(uint32_t n) {
  SourceKey k;
  k.netns = 7;
  k.l3 = AF_INET;
  const uint32_t be = htonl(0x0a000000 + n);
  std::memcpy(k.addr.data(), &be, 4);
  return k;
}
}  // namespace

TEST_CASE("a dump reads up to max_entries and stops early only when the table has more") {
  const DumpLimit ten{10, 0};
  SUBCASE("fewer entries than the bound: the whole table") {
    auto r = offer(ten, 7);
    CHECK(r.entries == 7);
    CHECK_FALSE(r.stopped_early());
  }
  SUBCASE("exactly the bound: still the whole table (no entry was refused)") {
    auto r = offer(ten, 10);
    CHECK(r.entries == 10);
    CHECK_FALSE(r.stopped_early());
  }
  SUBCASE("one more: stopped at the bound, the refused entry not counted") {
    auto r = offer(ten, 11);
    CHECK(r.entries == 10);
    CHECK(r.stopped == DumpStop::max_entries);
  }
  SUBCASE("once stopped, it stays stopped") {
    DumpBudget b(ten);
    for (int i = 0; i < 10; ++i) CHECK(b.admit(0));
    CHECK_FALSE(b.admit(0));
    CHECK_FALSE(b.admit(0));
    CHECK(b.finish(true, 0).entries == 10);
  }
  SUBCASE("0 = no bound: a million entries") {
    auto r = offer({0, 0}, 1'000'000);
    CHECK(r.entries == 1'000'000);
    CHECK_FALSE(r.stopped_early());
  }
}

TEST_CASE("a dump stops at max_seconds, whichever bound comes first") {
  SUBCASE("time first: entries offered every 0.1 s against a 1 s budget") {
    auto r = offer({1000, 1.0}, 100, 0.1);
    CHECK(r.stopped == DumpStop::max_seconds);
    // Offered at 0.0, 0.1, ... 0.9 (10 entries; float steps may land the 11th just under 1.0).
    CHECK(r.entries >= 10);
    CHECK(r.entries <= 11);
  }
  SUBCASE("entries first") {
    auto r = offer({5, 1.0}, 100, 0.1);
    CHECK(r.stopped == DumpStop::max_entries);
    CHECK(r.entries == 5);
  }
  SUBCASE("a slow dump that ends before another entry is offered read the whole table") {
    DumpBudget b({0, 1.0});
    CHECK(b.admit(0.5));
    auto r = b.finish(true, 3.0);
    CHECK_FALSE(r.stopped_early());
    CHECK(r.seconds == 3.0);
  }
}

TEST_CASE("a dump's account in JSON and text") {
  SUBCASE("whole table: no text, stopped_by null") {
    auto r = offer({}, 3);
    CHECK(dump_stopped_text(r, 3).empty());
    auto j = dump_json(r);
    CHECK(j["ok"] == true);
    CHECK(j["entries"] == 3);
    CHECK(j["stopped_early"] == false);
    CHECK(j["stopped_by"].is_null());
    CHECK(j["max_entries"] == DumpLimit::kDefaultEntries);
    CHECK(j["max_seconds"] == DumpLimit::kDefaultSeconds);
  }
  SUBCASE("stopped by entries, with the table's count") {
    DumpBudget b({262144, 0});
    for (int i = 0; i < 262145; ++i) b.admit(0);
    auto r = b.finish(true, 1.25);
    CHECK(dump_stopped_text(r, 1000000) ==
          "the ctnetlink dump stopped early: 262144 of 1000000 entries read in 1.25 s (--dump-max-entries 262144)");
    CHECK(dump_stopped_text(r, std::nullopt) ==
          "the ctnetlink dump stopped early: 262144 entries read in 1.25 s (--dump-max-entries 262144)");
    auto j = dump_json(r);
    CHECK(j["stopped_early"] == true);
    CHECK(j["stopped_by"] == "max_entries");
    CHECK(j["max_seconds"].is_null());  // 0: no bound
  }
  SUBCASE("stopped by time") {
    auto r = offer({0, 0.5}, 100, 0.25);
    CHECK(dump_stopped_text(r, std::nullopt).find("(--dump-max-seconds 0.5)") != std::string::npos);
    CHECK(dump_json(r)["stopped_by"] == "max_seconds");
    CHECK(dump_json(r)["max_entries"].is_null());
  }
  SUBCASE("ctnetlink refused") {
    CHECK(dump_json(DumpBudget({}).finish(false, 0))["ok"] == false);
  }
}

TEST_CASE("dumped sources: aggregated as read, distinct sources bounded, the rest counted") {
  DumpedSources d;
  d.add(v4(1));
  d.add(v4(1));
  d.add(v4(2));
  CHECK(d.by_source.size() == 2);
  CHECK(d.by_source[v4(1)].inserts == 2);
  const uint32_t max = DumpedSources::kDumpSourcesMax;
  for (uint32_t i = 3; i <= max; ++i) d.add(v4(i));  // sources 1..max: all kept
  CHECK(d.by_source.size() == max);
  CHECK(d.unattributed == 0);
  d.add(v4(max + 1));
  d.add(v4(max + 2));
  d.add(v4(max + 1));  // an entry of a source not kept is counted again
  CHECK(d.by_source.size() == max);
  CHECK(d.unattributed == 3);
  // A source already kept keeps counting past the bound.
  d.add(v4(2));
  CHECK(d.by_source[v4(2)].inserts == 2);
  CHECK(d.unattributed == 3);
}

TEST_CASE("trace/snapshot --top: a seed dump cut short is in by_source and its text") {
  WhoFills who;
  who.top = 3;
  who.sources.emplace();
  DumpBudget b({2, 0});
  for (int i = 0; i < 5; ++i) b.admit(0);
  who.seed_dump = b.finish(true, 0.5);
  who.seed_unattributed = 4;
  Report r;
  r.end_s = 1;
  auto j = summary_json(r, Mode::fentry, Observability{.conntrack_points = true}, &who);
  const auto& seed = j["by_source"]["seed_dump"];
  CHECK(seed["stopped_early"] == true);
  CHECK(seed["entries"] == 2);
  CHECK(seed["unattributed"] == 4);
  auto text = attribution_text(j);
  CHECK(text.find("seeded from a ctnetlink dump that stopped early: 2 entries read, --dump-max-entries 2") !=
        std::string::npos);
  CHECK(text.find("4 seeded entries of sources beyond the dump's bound") != std::string::npos);
  // From a file: wrong types are rendered as they are, never thrown on.
  auto odd = j;
  odd["by_source"]["seed_dump"] = {{"stopped_early", true}, {"entries", "x"}, {"unattributed", "y"}};
  CHECK(attribution_text(odd).find("stopped early: \"x\" entries read, --dump-max-seconds null") != std::string::npos);
  odd["by_source"]["seed_dump"] = 5;
  CHECK(attribution_text(odd).find("seeded") == std::string::npos);
  // A whole dump: nothing said.
  who.seed_dump = DumpBudget({}).finish(true, 0);
  who.seed_unattributed = 0;
  CHECK(attribution_text(summary_json(r, Mode::fentry, Observability{.conntrack_points = true}, &who))
            .find("seeded") == std::string::npos);
}
