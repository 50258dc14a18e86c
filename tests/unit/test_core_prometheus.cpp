// SPDX-License-Identifier: Apache-2.0
// serve's drop-event attribution: the kernel's per-CPU budget (include/ctbpf/abi.h, the same code
// the BPF side runs), its accounting (every event is delivered or counted as suppressed), and the
// bounded Prometheus family built from the delivered ones.
#include <doctest/doctest.h>

#include <string>

#include "core/aggregator.h"
#include "core/prometheus.h"
#include "ctbpf/abi.h"
#include "test_core_event_fixture.h"

using namespace ctbpf::core;

namespace {

constexpr uint64_t kSecond = 1000000000ULL;

// A report whose counters are `counters` since a zero baseline, in fentry mode.
Report report_with(const std::array<uint64_t, CTBPF_CNT_MAX>& counters) {
  Observability obs;
  obs.conntrack_points = obs.early_drop = obs.resolve_clash = true;
  Aggregator aggregator(Mode::fentry, obs);
  Sample s;
  aggregator.add(s);
  s.t_s = 1;
  s.counters = counters;
  aggregator.add(s);
  return aggregator.summary();
}

std::string render(const Report& total, const NetnsLabels& labels, const NetnsSeriesCounts* events, bool om = false) {
  Observability obs;
  ExpositionInput in{Mode::fentry, &obs, &total, &labels, "test", om, {}};
  in.drop_events = events;
  return render_exposition(in);
}

bool has_line(const std::string& page, const std::string& line) {
  return page.find("\n" + line + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("the kernel's drop-event budget admits per_s per one-second window") {
  ctbpf_event_budget b{};
  const uint64_t t0 = 5 * kSecond;
  for (int i = 0; i < 3; ++i) CHECK(ctbpf_budget_admit(&b, t0 + static_cast<uint64_t>(i), 3) == 1);
  CHECK(ctbpf_budget_admit(&b, t0 + 10, 3) == 0);
  CHECK(ctbpf_budget_admit(&b, t0 + kSecond - 1, 3) == 0);  // the window is a full second
  CHECK(ctbpf_budget_admit(&b, t0 + kSecond, 3) == 1);      // then a fresh budget
  CHECK(b.window_start_ns == t0 + kSecond);
  CHECK(b.used == 1);
  // A zeroed budget (the map's initial value) starts a window at the first event after boot.
  ctbpf_event_budget fresh{};
  CHECK(ctbpf_budget_admit(&fresh, 2 * kSecond, 1) == 1);
  CHECK(ctbpf_budget_admit(&fresh, 2 * kSecond + 1, 1) == 0);
}

TEST_CASE("every drop event is either delivered or counted as suppressed") {
  // The kernel side in miniature: 1000 drops over 2.5 s on one CPU, 40 per second let through.
  ctbpf_event_budget b{};
  NetnsLabels labels(kMaxNetnsLabels);
  NetnsSeriesCounts delivered;
  std::array<uint64_t, CTBPF_CNT_MAX> counters{};
  const uint64_t n = 1000, t0 = 100 * kSecond;
  for (uint64_t i = 0; i < n; ++i) {
    counters[CTBPF_CNT_TABLE_FULL]++;
    if (ctbpf_budget_admit(&b, t0 + i * (5 * kSecond / 2) / n, 40))
      delivered.add(drop_event(CTBPF_CNT_TABLE_FULL, 4026532000U), labels);
    else
      counters[CTBPF_CNT_DROP_EVENTS_SUPPRESSED]++;
  }
  auto total = report_with(counters);
  REQUIRE(delivered.counts().size() == 1);
  const uint64_t events = delivered.counts().begin()->second;
  CHECK(events == 3 * 40);  // windows starting at 0 s, 1 s and 2 s
  CHECK(total.totals.drop_events_suppressed == n - events);
  CHECK(events + total.totals.drop_events_suppressed + *total.totals.lost_events == *total.totals.drops.table_full);
}

TEST_CASE("drop events per cause and netns: bounded labels, the rest in other") {
  NetnsLabels labels(2);
  NetnsSeriesCounts events;
  // Before any refresh nothing has a label: every event counts in other, and ranks its netns.
  events.add(drop_event(CTBPF_CNT_TABLE_FULL, 111), labels);
  events.add(drop_event(CTBPF_CNT_TABLE_FULL, 111), labels);
  events.add(drop_event(CTBPF_CNT_TABLE_FULL, 111), labels);
  events.add(drop_event(CTBPF_CNT_CHAINTOOLONG, 222), labels);
  events.add(drop_event(CTBPF_CNT_CHAINTOOLONG, 222), labels);
  events.add(drop_event(CTBPF_CNT_CHAINTOOLONG, 333), labels);
  CHECK(events.counts().at({"cause=\"table_full\"", CTBPF_NETNS_OTHER}) == 3);
  // The two busiest live droppers take the labels; their series count from here.
  labels.update({}, 0, 0, std::set<uint32_t>{111, 222, 333}, events.take_recent(), 1, &events);
  CHECK(labels.all() == std::set<uint32_t>{111, 222});
  events.add(drop_event(CTBPF_CNT_TABLE_FULL, 111), labels);
  events.add(drop_event(CTBPF_CNT_TABLE_FULL, 111), labels);
  events.add(drop_event(CTBPF_CNT_CHAINTOOLONG, 222), labels);
  events.add(drop_event(CTBPF_CNT_CHAINTOOLONG, 333), labels);  // no label: other
  events.add(drop_event(CTBPF_CNT_EARLY_DROP, 0), labels);      // unknown netns (kprobe without the call)
  events.add(drop_event(CTBPF_CNT_INSERT, 111), labels);        // not a drop cause: one "unknown" bucket
  events.add(drop_event(CTBPF_CNT_DESTROY, 111), labels);
  auto insert = drop_event(CTBPF_CNT_TABLE_FULL, 444);
  insert.kind = CTBPF_EV_INSERT;  // not a drop event at all: ignored
  events.add(insert, labels);
  CHECK(labels.all() == std::set<uint32_t>{111, 222});

  std::array<uint64_t, CTBPF_CNT_MAX> counters{};
  counters[CTBPF_CNT_DROP_EVENTS_SUPPRESSED] = 7;
  counters[CTBPF_CNT_LOST_EVENTS] = 1;
  auto total = report_with(counters);
  auto page = render(total, labels, &events);
  const std::string m = "ctbpf_conntrack_drop_events_total";
  CHECK(has_line(page, m + "{cause=\"table_full\",netns=\"111\"} 2"));
  CHECK(has_line(page, m + "{cause=\"chaintoolong\",netns=\"222\"} 1"));
  CHECK(has_line(page, m + "{cause=\"chaintoolong\",netns=\"other\"} 4"));
  CHECK(has_line(page, m + "{cause=\"table_full\",netns=\"other\"} 3"));
  CHECK(has_line(page, m + "{cause=\"early_drop\",netns=\"other\"} 1"));
  CHECK(has_line(page, m + "{cause=\"unknown\",netns=\"111\"} 2"));
  CHECK(page.find("netns=\"444\"") == std::string::npos);
  CHECK(has_line(page, "# TYPE ctbpf_conntrack_drop_events_total counter"));
  CHECK(page.find("# HELP ctbpf_conntrack_drop_events_total Drop events per cause and netns") != std::string::npos);
  CHECK(page.find("Sampled: the kernel rate-limits them per CPU") != std::string::npos);
  CHECK(has_line(page, "ctbpf_drop_events_suppressed_total 7"));
  CHECK(has_line(page, "ctbpf_lost_events_total 1"));

  auto om = render(total, labels, &events, true);
  CHECK(has_line(om, "# TYPE ctbpf_conntrack_drop_events counter"));
  CHECK(has_line(om, "# TYPE ctbpf_drop_events_suppressed counter"));
  CHECK(has_line(om, m + "{cause=\"table_full\",netns=\"111\"} 2"));
}

TEST_CASE("series stay bounded however many namespaces drop") {
  NetnsLabels labels(kMaxNetnsLabels);
  NetnsSeriesCounts events;
  std::set<uint32_t> live;
  for (uint32_t netns = 1; netns <= 10000; ++netns) {
    events.add(drop_event(CTBPF_CNT_TABLE_FULL, netns), labels);
    live.insert(netns);
    if (netns % 100 == 0) labels.update({}, 0, 0, live, events.take_recent(), 1, &events);
  }
  CHECK(labels.all().size() == kMaxNetnsLabels);
  CHECK(events.counts().size() <= kMaxNetnsLabels + 1);
  uint64_t sum = 0;
  for (const auto& [key, n] : events.counts()) sum += n;
  CHECK(sum == 10000);
  // All of them die: every series ends, its events in other.
  labels.update({}, 0, 0, std::set<uint32_t>{}, events.take_recent(), 1, &events);
  CHECK(labels.all().empty());
  CHECK(events.counts().size() == 1);
  CHECK(events.counts().at({"cause=\"table_full\"", CTBPF_NETNS_OTHER}) == 10000);
  CHECK(labels.tracked() == 0);
}

TEST_CASE("without drop events read, the family is absent") {
  NetnsLabels labels(kMaxNetnsLabels);
  auto page = render(report_with({}), labels, nullptr);
  CHECK(page.find("drop_events") == std::string::npos);
}

TEST_CASE("attached, and every capability need as 0 or 1") {
  NetnsLabels labels(kMaxNetnsLabels);
  Observability obs;
  auto total = report_with({});
  ExpositionInput in{Mode::kprobe, &obs, &total, &labels, "test", false, {}};
  in.privileges = {{"CAP_SYS_ADMIN", "fentry", true}, {"CAP_NET_ADMIN", "kernel_stats", false}};
  auto page = render_exposition(in);
  CHECK(has_line(page, "ctbpf_attached 1"));
  CHECK(has_line(page, "ctbpf_build_info{version=\"test\",mode=\"kprobe\"} 1"));
  CHECK(has_line(page, "ctbpf_privilege_missing{capability=\"CAP_SYS_ADMIN\",feature=\"fentry\"} 1"));
  CHECK(has_line(page, "ctbpf_privilege_missing{capability=\"CAP_NET_ADMIN\",feature=\"kernel_stats\"} 0"));
  CHECK(has_line(page, "# TYPE ctbpf_privilege_missing gauge"));
}

TEST_CASE("not attached yet: build info, attached 0 and privileges only") {
  ExpositionInput in;
  in.version = "test";
  in.attached = false;
  in.privileges = {{"CAP_NET_ADMIN", "kernel_stats", true}};
  for (bool om : {false, true}) {
    in.openmetrics = om;
    auto page = render_exposition(in);
    CHECK(has_line(page, "ctbpf_attached 0"));
    CHECK(has_line(page, "ctbpf_build_info{version=\"test\",mode=\"none\"} 1"));
    CHECK(has_line(page, "ctbpf_privilege_missing{capability=\"CAP_NET_ADMIN\",feature=\"kernel_stats\"} 1"));
    CHECK(page.find("ctbpf_conntrack_") == std::string::npos);
    CHECK((page.find("# EOF") != std::string::npos) == om);
  }
}

TEST_CASE("histograms: cumulative buckets at each slot's upper bound, then +Inf, _sum and _count") {
  Observability obs;
  obs.conntrack_points = true;
  Aggregator aggregator(Mode::fentry, obs);
  Sample s;
  aggregator.add(s);
  s.t_s = 1;
  std::vector<uint64_t> chain(slot_count(SlotKind::chain), 0);
  chain[0] = 3, chain[2] = 2, chain.back() = 1;  // the last slot only counts in +Inf
  s.chain = Histogram(SlotKind::chain, chain, 1000);
  std::vector<uint64_t> udp(slot_count(SlotKind::log2), 0);
  udp[2] = 4;  // [2, 3] ms
  s.lifetime[1] = Histogram(SlotKind::log2, udp, 10);
  aggregator.add(s);
  auto total = aggregator.summary();
  NetnsLabels labels(kMaxNetnsLabels);
  ExpositionInput in{Mode::fentry, &obs, &total, &labels, "test", false, {}};
  auto page = render_exposition(in);
  const std::string c = "ctbpf_conntrack_chain_length";
  CHECK(has_line(page, c + "_bucket{le=\"0\"} 3"));
  CHECK(has_line(page, c + "_bucket{le=\"1\"} 3"));
  CHECK(has_line(page, c + "_bucket{le=\"2\"} 5"));
  CHECK(has_line(page, c + "_bucket{le=\"+Inf\"} 6"));
  CHECK(has_line(page, c + "_sum 1000"));
  CHECK(has_line(page, c + "_count 6"));
  const std::string l = "ctbpf_conntrack_lifetime_seconds";
  CHECK(has_line(page, l + "_bucket{proto=\"udp\",le=\"0.001\"} 0"));
  CHECK(has_line(page, l + "_bucket{proto=\"udp\",le=\"0.003\"} 4"));
  CHECK(has_line(page, l + "_bucket{proto=\"udp\",le=\"+Inf\"} 4"));
  CHECK(has_line(page, l + "_sum{proto=\"udp\"} 0.01"));
  CHECK(has_line(page, l + "_count{proto=\"udp\"} 4"));
}
