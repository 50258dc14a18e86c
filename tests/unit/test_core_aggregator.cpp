// SPDX-License-Identifier: Apache-2.0
#include <doctest/doctest.h>

#include "core/aggregator.h"
#include "core/render.h"
#include "test_core_snapshot_fixture.h"

using namespace ctbpf::core;

namespace {

using fixture::full_probes;

Sample at(double t, uint64_t inserts) {
  Sample s;
  s.t_s = t;
  s.counters[CTBPF_CNT_FREED_UNINSERTED] = 2;
  s.counters[CTBPF_CNT_INSERT] = inserts;
  s.table = {inserts, 65536, 512};
  return s;
}

}  // namespace

TEST_CASE("the first sample is the baseline; intervals carry deltas and rates") {
  Aggregator agg(Mode::fentry, full_probes());
  CHECK_FALSE(agg.add(at(100.0, 10)).has_value());
  auto r = agg.add(at(102.0, 410));
  REQUIRE(r.has_value());
  CHECK(r->duration() == doctest::Approx(2.0));
  CHECK(*r->totals.inserts == 400);
  CHECK(*r->rate(r->totals.inserts) == doctest::Approx(200.0));
  auto s = agg.summary();
  CHECK(*s.totals.inserts == 400);
  CHECK(*s.totals.allocs == 400);
  CHECK(*s.table.count == 410);
}

TEST_CASE("tracepoint mode: probe-only counts are null, causes come from the kernel's stats") {
  Observability o;  // nothing attached but kfree_skb
  o.netfilter_drop_reason = true;
  Aggregator agg(Mode::tracepoint, o);
  Sample a, b;
  a.t_s = 0;
  b.t_s = 1;
  a.stats = KernelStats{};
  a.stats->early_drop = 5;
  a.stats->chaintoolong = 1;
  b.stats = a.stats;
  b.stats->early_drop = 12;
  b.counters[CTBPF_CNT_INSERT] = 99;  // ignored: no probe could have counted it
  agg.add(a);
  agg.add(b);
  auto s = agg.summary();
  CHECK_FALSE(s.totals.inserts.has_value());
  CHECK_FALSE(s.totals.drops.table_full.has_value());
  CHECK(*s.totals.drops.early_drop == 7);
  CHECK(*s.totals.drops.chaintoolong == 0);
  CHECK_FALSE(s.totals.drops.clash_resolve.has_value());  // kernel without that counter
  auto j = summary_json(s, Mode::tracepoint, o);
  CHECK(j["inserts"].is_null());
  CHECK(j["drops"]["early_drop"] == 7);
  CHECK(j["mode"] == "tracepoint");
}

TEST_CASE("allocs are inserts plus entries freed uninserted; alloc_failed is never observed") {
  Aggregator agg(Mode::kprobe, full_probes());
  Sample a, b;
  b.t_s = 1;
  b.counters[CTBPF_CNT_INSERT] = 10;
  b.counters[CTBPF_CNT_FREED_UNINSERTED] = 3;
  b.counters[CTBPF_CNT_TABLE_FULL] = 7;
  agg.add(a);
  agg.add(b);
  auto s = agg.summary();
  CHECK(*s.totals.allocs == 13);
  CHECK(*s.totals.drops.table_full == 7);
  CHECK_FALSE(s.totals.drops.alloc_failed.has_value());
}

TEST_CASE("without early_drop and resolve_clash probes their causes are null") {
  auto o = full_probes();
  o.early_drop = o.resolve_clash = false;
  Aggregator agg(Mode::kprobe, o);
  agg.add(Sample{});
  auto s = agg.summary();
  CHECK_FALSE(s.totals.drops.table_full.has_value());
  CHECK_FALSE(s.totals.drops.early_drop.has_value());
  CHECK_FALSE(s.totals.drops.alloc_failed.has_value());
  CHECK_FALSE(s.totals.drops.chaintoolong.has_value());
  CHECK(s.totals.drops.insert_failed.has_value());
}

TEST_CASE("summary JSON has every contract key") {
  Aggregator agg(Mode::fentry, full_probes());
  agg.add(at(0, 0));
  auto b = at(1, 3);
  b.chain = Histogram(SlotKind::chain);
  agg.add(b);
  auto j = summary_json(agg.summary(), Mode::fentry, full_probes());
  for (auto key : {"type", "mode", "duration_s", "allocs", "inserts", "destroys", "deletes", "drops",
                   "chain_length", "lifetime_ms", "lost_events", "table"})
    CHECK_MESSAGE(j.contains(key), key);
  for (auto key : {"table_full", "early_drop", "insert_failed", "chaintoolong", "clash_resolve",
                   "invalid", "alloc_failed"})
    CHECK_MESSAGE(j["drops"].contains(key), key);
  for (auto key : {"count", "mean", "p50", "p99", "max", "buckets"})
    CHECK_MESSAGE(j["chain_length"].contains(key), key);
  for (auto key : {"count", "max", "buckets"}) CHECK_MESSAGE(j["table"].contains(key), key);
  CHECK(j["type"] == "summary");
  CHECK(j["inserts"] == 3);
}

TEST_CASE("interval line and summary text render without nulls as zeros") {
  Observability o;
  Aggregator agg(Mode::tracepoint, o);
  agg.add(at(0, 0));
  auto r = agg.add(at(1, 5));
  REQUIRE(r);
  auto line = interval_line(*r);
  CHECK(line.find("inserts -") != std::string::npos);  // unobservable: a dash, never a made-up 0
  CHECK(summary_text(agg.summary(), Mode::tracepoint).find("tracepoint mode") != std::string::npos);
}

TEST_CASE("per-netns counts: deltas per namespace, top N then other") {
  Aggregator agg(Mode::fentry, full_probes());
  Sample a, b;
  b.t_s = 1;
  a.by_netns[111] = {10, 0};
  b.by_netns[111] = {15, 2};
  b.by_netns[222] = {40, 0};
  b.by_netns[CTBPF_NETNS_OTHER] = {3, 1};  // the kernel map's overflow bucket
  agg.add(a);
  auto iv = agg.add(b);
  REQUIRE(iv);
  const auto& d = iv->totals.detail->by_netns;
  CHECK(d.at(111).inserts == 5);
  CHECK(d.at(111).destroys == 2);
  CHECK(d.at(222).inserts == 40);
  auto j = interval_json(*iv, full_probes());
  REQUIRE(j["by_netns"].size() == 3);
  CHECK(j["by_netns"][0]["netns"] == 222);  // busiest first
  CHECK(j["by_netns"][1]["netns"] == 111);
  CHECK(j["by_netns"][2]["netns"] == "other");
  CHECK(j["by_netns"][2]["inserts"] == 3);
}

TEST_CASE("per-netns counts: a new netns on a reused inode counts from zero, the dead one's in other") {
  Aggregator agg(Mode::fentry, full_probes());
  Sample a, b;
  b.t_s = 1;
  a.by_netns[111] = {300, 0, 7};  // netns 7 holds inode 111
  a.by_netns[CTBPF_NETNS_OTHER] = {4, 4};
  // Netns 7 made 10 more and died (its 310 inserts and 310 destroys went to other); netns 9 got
  // inode 111 and made 20.
  b.by_netns[111] = {20, 0, 9};
  b.by_netns[CTBPF_NETNS_OTHER] = {4 + 310, 4 + 310};
  agg.add(a);
  auto iv = agg.add(b);
  REQUIRE(iv);
  const auto& d = iv->totals.detail->by_netns;
  CHECK(d.at(111).inserts == 20);  // not 0 (20 - 300, floored), nor the dead netns's 320
  CHECK(d.at(111).destroys == 0);
  CHECK(d.at(CTBPF_NETNS_OTHER).inserts == 10);  // the dead netns's inserts in this window
  CHECK(d.at(CTBPF_NETNS_OTHER).destroys == 310);
}

TEST_CASE("probe misses are carried and rendered, never dropped") {
  Aggregator agg(Mode::kprobe, full_probes());
  Sample a, b;
  b.t_s = 1;
  b.counters[CTBPF_CNT_CONFIRM_UNPAIRED] = 2;
  b.recursion_misses = 5;
  agg.add(a);
  agg.add(b);
  auto s = agg.summary();
  CHECK(s.totals.misses.confirm_unpaired == 2);
  CHECK(s.totals.misses.recursion == 5);
  CHECK(summary_json(s, Mode::kprobe, full_probes())["probe_misses"]["recursion"] == 5);
  CHECK(summary_text(s, Mode::kprobe).find("skipped runs 5") != std::string::npos);
}
