// SPDX-License-Identifier: Apache-2.0
// serve's labelled netns under pod churn (core::NetnsLabels): the busiest live netns hold the labels,
// a dead one's series ends and its counts move to other, and at every refresh the series plus other add
// up to the global counters, however many namespaces come and go. The kernel side is modelled as
// conntrack.bpf.c keeps it: counts per inode and identity, a dead netns's counts kept until its inode
// is reused (the kernel hands out the lowest free number), then moved to CTBPF_NETNS_OTHER.
#include <doctest/doctest.h>

#include <map>
#include <random>
#include <set>
#include <sstream>

#include "core/aggregator.h"
#include "core/prometheus.h"
#include "ctbpf/abi.h"
#include "test_core_event_fixture.h"

using namespace ctbpf::core;

namespace {

// The kernel's per-netns counts and the live namespaces, as serve sees them at each refresh.
class Node {
public:
  // A new netns on the lowest free inode (from 1000 up); returns the inode.
  uint32_t create() {
    uint32_t inode = 1000;
    while (live_.count(inode)) ++inode;
    live_.insert(inode);
    auto& c = counts_[inode];
    if (c.inserts || c.destroys) {  // a dead one's counts: the kernel moves them to other on reuse
      counts_[CTBPF_NETNS_OTHER].inserts += c.inserts;
      counts_[CTBPF_NETNS_OTHER].destroys += c.destroys;
    }
    c = {0, 0, ++identity_};
    return inode;
  }
  void destroy(uint32_t inode) { live_.erase(inode); }  // its counts stay until the inode is reused
  void insert(uint32_t inode, uint64_t n) {
    counts_.at(inode).inserts += n;
    inserts_ += n;
  }
  void free(uint32_t inode, uint64_t n) {
    counts_.at(inode).destroys += n;
    destroys_ += n;
  }
  // As the aggregator's summary hands it over: a netns that never counted is absent.
  ByNetns by_netns() const {
    ByNetns out;
    for (const auto& [inode, c] : counts_)
      if (c.inserts || c.destroys) out[inode] = c;
    return out;
  }
  const std::set<uint32_t>& live() const { return live_; }
  uint64_t inserts() const { return inserts_; }
  uint64_t destroys() const { return destroys_; }

private:
  std::set<uint32_t> live_;
  ByNetns counts_;
  uint32_t identity_ = 0;
  uint64_t inserts_ = 0, destroys_ = 0;
};

// The page's invariants after one refresh: bounded, only live netns, and exact sums.
void check_page(const NetnsLabels& labels, const Node& node) {
  CHECK(labels.series().size() <= labels.max_labels());
  NetnsLabels::Series sum = labels.other();
  for (const auto& [netns, s] : labels.series()) {
    CHECK(node.live().count(netns) == 1);  // no dead netns keeps a series
    sum.inserts += s.inserts;
    sum.destroys += s.destroys;
  }
  CHECK(sum.inserts == node.inserts());
  CHECK(sum.destroys == node.destroys());
}

void refresh(NetnsLabels& labels, const Node& node, NetnsSeriesCounts* events = nullptr) {
  std::map<uint32_t, uint64_t> drops;
  if (events) drops = events->take_recent();
  labels.update(node.by_netns(), node.inserts(), node.destroys(), node.live(), drops, 2.0, events);
}

}  // namespace

TEST_CASE("10,000 netns of churn: series within the bound, exact sums, no dead name, bounded memory") {
  const std::size_t bound = 20;
  NetnsLabels labels(bound);
  NetnsSeriesCounts events;
  Node node;
  std::mt19937 random(31);
  std::vector<uint32_t> alive;
  uint64_t made = 0, drop_events = 0;
  NetnsLabels::Series other_before;
  std::map<uint32_t, NetnsLabels::Series> series_before;
  std::size_t max_tracked = 0;
  // 10,000 netns over 2,000 refreshes, about 50 alive at once; each makes flows for as long as it lives.
  for (int step = 0; step < 2000; ++step) {
    for (int i = 0; i < 5; ++i, ++made) alive.push_back(node.create());
    while (alive.size() > 50) {
      auto at = random() % alive.size();
      node.destroy(alive[at]);
      alive.erase(alive.begin() + static_cast<long>(at));
    }
    for (auto netns : alive) {
      uint64_t n = random() % (netns % 7 == 0 ? 200 : 20);  // some namespaces far busier
      node.insert(netns, n);
      node.free(netns, n / 2);
      if (random() % 10 == 0) {
        events.add(drop_event(CTBPF_CNT_TABLE_FULL, netns), labels);
        ++drop_events;
      }
    }
    refresh(labels, node, &events);
    check_page(labels, node);
    // Counters: other never decreases, and a series that stays never decreases either.
    CHECK(labels.other().inserts >= other_before.inserts);
    CHECK(labels.other().destroys >= other_before.destroys);
    for (const auto& [netns, s] : labels.series()) {
      auto it = series_before.find(netns);
      if (it == series_before.end()) continue;
      CHECK(s.inserts >= it->second.inserts);
      CHECK(s.destroys >= it->second.destroys);
    }
    other_before = labels.other();
    series_before = labels.series();
    // Drop events: per cause, the series add up to the events, under labelled netns or other only.
    uint64_t sum = 0;
    for (const auto& [key, n] : events.counts()) {
      sum += n;
      CHECK((key.second == CTBPF_NETNS_OTHER || labels.labelled(key.second)));
    }
    CHECK(sum == drop_events);
    CHECK(events.counts().size() <= bound + 1);
    max_tracked = std::max(max_tracked, labels.tracked());
  }
  CHECK(made == 10000);
  CHECK(labels.series().size() == bound);
  // State is kept for live netns only: never more than are alive at once, however many have died.
  CHECK(max_tracked <= 55);
  CHECK(labels.tracked() <= alive.size());
}

TEST_CASE("the busiest live netns hold the labels") {
  NetnsLabels labels(3);
  Node node;
  std::vector<uint32_t> ns;
  for (int i = 0; i < 5; ++i) ns.push_back(node.create());
  // Rates 10, 20, 30, 40, 50 per refresh.
  auto tick = [&](const std::map<uint32_t, uint64_t>& rates) {
    for (const auto& [netns, n] : rates) node.insert(netns, n);
    refresh(labels, node);
    check_page(labels, node);
  };
  std::map<uint32_t, uint64_t> rates;
  for (int i = 0; i < 5; ++i) rates[ns[i]] = 10 * (i + 1);
  for (int i = 0; i < 3; ++i) tick(rates);
  CHECK(labels.all() == std::set<uint32_t>{ns[2], ns[3], ns[4]});

  SUBCASE("one dies: its series ends, the next busiest takes the label") {
    node.destroy(ns[4]);
    rates.erase(ns[4]);
    tick(rates);
    CHECK(labels.all() == std::set<uint32_t>{ns[1], ns[2], ns[3]});
  }
  SUBCASE("a netns twice as busy as the least labelled one takes its label; a bit busier does not") {
    auto busy = node.create();
    rates[busy] = 40;  // 30's label is not worth a new series for 40
    for (int i = 0; i < 3; ++i) tick(rates);
    CHECK(labels.all() == std::set<uint32_t>{ns[2], ns[3], ns[4]});
    rates[busy] = 500;
    tick(rates);
    CHECK(labels.all() == std::set<uint32_t>{ns[3], ns[4], busy});
  }
  SUBCASE("busy now beats busy long ago: activity decays") {
    for (auto& [netns, n] : rates) n = netns == ns[0] ? 100 : 0;  // the quietest becomes the busiest
    for (int i = 0; i < 200; ++i) tick(rates);                    // 400 s of 2 s refreshes
    CHECK(labels.labelled(ns[0]));
  }
}

TEST_CASE("a netns first seen keeps all it did; one labelled later counts from its label") {
  NetnsLabels labels(1);
  Node node;
  auto a = node.create();
  node.insert(a, 100);
  refresh(labels, node);
  CHECK(labels.series().at(a).inserts == 100);  // none of it was ever in other
  CHECK(labels.other().inserts == 0);
  auto b = node.create();
  node.insert(b, 50);
  refresh(labels, node);
  CHECK(labels.other().inserts == 50);
  // a dies; b takes the label, and counts from there: its first 50 stay in other.
  node.destroy(a);
  node.insert(b, 7);
  refresh(labels, node);
  CHECK(labels.all() == std::set<uint32_t>{b});
  CHECK(labels.series().at(b).inserts == 7);
  CHECK(labels.other().inserts == 150);
  check_page(labels, node);
}

TEST_CASE("a reused inode: the new netns counts from zero under the label, the dead one's in other") {
  NetnsLabels labels(5);
  Node node;
  auto old = node.create();
  node.insert(old, 300);
  node.free(old, 300);
  refresh(labels, node);
  CHECK(labels.series().at(old).inserts == 300);
  node.destroy(old);
  auto reused = node.create();  // the kernel hands out the lowest free inode: the dead one's
  REQUIRE(reused == old);
  node.insert(reused, 200);
  refresh(labels, node);
  CHECK(labels.series().at(reused).inserts == 200);
  CHECK(labels.series().at(reused).destroys == 0);
  CHECK(labels.other().inserts == 300);
  CHECK(labels.other().destroys == 300);
  check_page(labels, node);
}

TEST_CASE("a reused inode's new netns does not inherit the dead one's drop events") {
  NetnsLabels labels(5);
  NetnsSeriesCounts events;
  Node node;
  auto old = node.create();
  node.insert(old, 10);
  refresh(labels, node, &events);
  REQUIRE(labels.labelled(old));
  for (int i = 0; i < 3; ++i) events.add(drop_event(CTBPF_CNT_TABLE_FULL, old), labels);
  CHECK(events.counts().at({"cause=\"table_full\"", old}) == 3);
  node.destroy(old);
  auto reused = node.create();
  REQUIRE(reused == old);
  node.insert(reused, 5);
  refresh(labels, node, &events);  // the old netns's series ends and the new one's starts, same label
  REQUIRE(labels.labelled(reused));
  CHECK(events.counts().count({"cause=\"table_full\"", reused}) == 0);
  CHECK(events.counts().at({"cause=\"table_full\"", CTBPF_NETNS_OTHER}) == 3);
  events.add(drop_event(CTBPF_CNT_TABLE_FULL, reused), labels);
  CHECK(events.counts().at({"cause=\"table_full\"", reused}) == 1);
}

TEST_CASE("a series that runs ahead of the global counter waits for it: other never decreases") {
  // The kernel's per-CPU counts are read one after another: a netns's count may include an insert
  // that the global counter, read a moment before, does not yet.
  NetnsLabels labels(2);
  ByNetns counts;
  counts[11] = {10, 0, 1};
  labels.update(counts, 10, 0, std::set<uint32_t>{11}, {}, 2);
  CHECK(labels.series().at(11).inserts == 10);
  counts[11].inserts = 15;
  labels.update(counts, 13, 0, std::set<uint32_t>{11}, {}, 2);  // global lags by 2
  CHECK(labels.series().at(11).inserts == 13);
  CHECK(labels.other().inserts == 0);
  labels.update(counts, 15, 0, std::set<uint32_t>{11}, {}, 2);  // caught up
  CHECK(labels.series().at(11).inserts == 15);
  CHECK(labels.other().inserts == 0);
}

TEST_CASE("when the live netns cannot be read, only a reused inode ends a series") {
  NetnsLabels labels(2);
  ByNetns counts;
  counts[11] = {10, 0, 1};
  counts[12] = {5, 0, 2};
  labels.update(counts, 15, 0, std::set<uint32_t>{11, 12}, {}, 2);
  CHECK(labels.all() == std::set<uint32_t>{11, 12});
  labels.update(counts, 15, 0, std::nullopt, {}, 2);
  CHECK(labels.all() == std::set<uint32_t>{11, 12});
  counts[CTBPF_NETNS_OTHER] = {5, 0, 0};
  counts[12] = {1, 0, 3};  // a later netns on inode 12
  labels.update(counts, 16, 0, std::nullopt, {}, 2);
  CHECK(labels.series().at(12).inserts == 1);
  CHECK(labels.other().inserts == 5);
}

TEST_CASE("no labels at all: everything in other") {
  NetnsLabels labels(0);
  Node node;
  auto a = node.create();
  node.insert(a, 9);
  refresh(labels, node);
  CHECK(labels.series().empty());
  CHECK(labels.other().inserts == 9);
}

TEST_CASE("a dead netns's series ends even when no other netns wants its label") {
  NetnsLabels labels(3);
  Node node;
  auto a = node.create(), b = node.create();
  node.insert(a, 40);
  node.free(a, 40);
  node.insert(b, 2);
  refresh(labels, node);
  CHECK(labels.all() == std::set<uint32_t>{a, b});
  node.destroy(a);  // its inode is not reused: the kernel still has its counts
  refresh(labels, node);
  CHECK(labels.all() == std::set<uint32_t>{b});
  CHECK(labels.other().inserts == 40);
  CHECK(labels.other().destroys == 40);
  check_page(labels, node);
}

TEST_CASE("the page: each scrape's netns series plus other add up to the global counters") {
  // Through the aggregator and the exposition, as serve does it: cumulative samples from the kernel
  // side, a summary since the first, NetnsLabels updated from it, the page rendered.
  Observability obs;
  obs.conntrack_points = true;
  Aggregator aggregator(Mode::fentry, obs);
  Node node;
  Sample s;
  aggregator.add(s);
  NetnsLabels labels(2);
  std::vector<uint32_t> alive;
  auto sum_of = [](const std::string& page, const std::string& metric) {
    uint64_t sum = 0;
    std::size_t series = 0;
    std::istringstream lines(page);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(metric + "{", 0) != 0) continue;
      sum += std::stoull(line.substr(line.rfind(' ') + 1));
      ++series;
    }
    return std::pair{sum, series};
  };
  for (int step = 1; step <= 30; ++step) {
    alive.push_back(node.create());
    if (alive.size() > 4) {
      node.destroy(alive.front());
      alive.erase(alive.begin());
    }
    for (std::size_t i = 0; i < alive.size(); ++i) {
      node.insert(alive[i], 10 * (i + 1) + static_cast<uint64_t>(step));
      node.free(alive[i], 5);
    }
    s.t_s = step;
    s.by_netns = node.by_netns();
    s.counters[CTBPF_CNT_INSERT] = node.inserts();
    s.counters[CTBPF_CNT_DESTROY] = node.destroys();
    s.inserts_by_proto = {node.inserts(), 0, 0, 0};  // all UDP, say
    s.destroys_by_proto = {node.destroys(), 0, 0, 0};
    aggregator.add(s);
    auto total = aggregator.summary();
    const auto& detail = *total.totals.detail;
    labels.update(detail.by_netns, detail.inserts_by_proto[0], detail.destroys_by_proto[0], node.live(), {}, 1);
    ExpositionInput in{Mode::fentry, &obs, &total, &labels, "test", false, {}};
    const auto page = render_exposition(in);
    auto [inserts, proto_series] = sum_of(page, "ctbpf_conntrack_inserts_total");
    auto [netns_inserts, netns_series] = sum_of(page, "ctbpf_conntrack_netns_inserts_total");
    auto [destroys, unused] = sum_of(page, "ctbpf_conntrack_destroys_total");
    auto [netns_destroys, unused2] = sum_of(page, "ctbpf_conntrack_netns_destroys_total");
    CHECK(inserts == node.inserts());
    CHECK(netns_inserts == inserts);
    CHECK(netns_destroys == destroys);
    CHECK(netns_series <= 2 + 1);  // the bound, and other
    CHECK(page.find("at most 2 (--netns-labels)") != std::string::npos);
    if (step > 1) CHECK(netns_series == 3);  // two live netns labelled from the second step on
  }
}
