// SPDX-License-Identifier: Apache-2.0
// Tracepoint mode shows what the kernel itself knows: its ctnetlink statistics per interval (table_full
// from `drop`), the table's net growth, netfilter drops with their scope; and every view agrees.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <regex>

#include "core/aggregator.h"
#include "core/attribution.h"
#include "core/events.h"
#include "core/idle.h"
#include "core/prometheus.h"
#include "core/render.h"
#include "core/report.h"
#include "core/snapshot.h"
#include "test_core_snapshot_fixture.h"

using namespace ctbpf::core;
using nlohmann::json;

namespace {

Observability tracepoint_obs() {
  Observability o;  // only kfree_skb attached
  o.netfilter_drop_reason = true;
  o.kernel_has_chaintoolong = true;
  return o;
}

// The kernel's counters at t: `drop` table-full drops so far, `count` entries, every ctnetlink
// statistic present (a 6.x kernel), netfilter drops = drop.
Sample tp_sample(double t, uint64_t drop, uint64_t count, uint64_t early_drop = 0) {
  Sample s;
  s.t_s = t;
  s.stats = KernelStats{};
  auto& k = *s.stats;
  k.found = k.insert = k.error = k.search_restart = k.clash_resolve = k.chaintoolong = k.insert_failed = 0;
  k.invalid = 3;
  k.drop = drop;
  k.early_drop = early_drop;
  k.found = 10 + drop;  // moves too: each counter is its own delta
  s.counters[CTBPF_CNT_NETFILTER_DROP] = drop;
  s.table = {count, 300, 1024};
  return s;
}

const Chart* find(const std::vector<Chart>& charts, const std::string& id) {
  for (const auto& c : charts)
    if (c.id == id) return &c;
  return nullptr;
}

std::vector<std::string> ids(const std::vector<Chart>& charts) {
  std::vector<std::string> out;
  for (const auto& c : charts) out.push_back(c.id);
  return out;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

SnapshotMeta tp_meta() {
  auto m = fixture::meta(Mode::tracepoint);
  m.obs = tracepoint_obs();
  m.sysctls = {{"max", 300},          {"count", 300},       {"buckets", 1024},      {"tcp_timeout_established", 432000},
               {"udp_timeout", 30},   {"dccp_loose", 1},    {"sctp_timeout_closed", 10}};
  return m;
}

// A full table: 300 entries, then 3 intervals refusing 500, 0 and 1500 new flows.
std::vector<Sample> full_table() {
  return {tp_sample(0, 7, 250), tp_sample(1, 7, 300), tp_sample(2, 507, 300), tp_sample(3, 507, 300),
          tp_sample(4, 2007, 300)};
}

}  // namespace

TEST_CASE("tracepoint mode: table_full and every kernel statistic per interval, summing to the summary") {
  Aggregator agg(Mode::tracepoint, tracepoint_obs());
  std::vector<Report> intervals;
  for (const auto& s : full_table())
    if (auto r = agg.add(s)) intervals.push_back(*r);
  REQUIRE(intervals.size() == 4);
  const uint64_t want[] = {0, 500, 0, 1500};
  uint64_t sum = 0;
  for (std::size_t i = 0; i < intervals.size(); ++i) {
    CAPTURE(i);
    const auto& t = intervals[i].totals;
    REQUIRE(t.drops.table_full.has_value());
    CHECK(*t.drops.table_full == want[i]);
    REQUIRE(t.kernel.has_value());
    CHECK(*t.kernel->drop == want[i]);
    CHECK(*t.kernel->found == want[i]);
    CHECK(*t.kernel->invalid == 0);
    CHECK(*t.netfilter_drops == want[i]);
    sum += *t.drops.table_full;
    auto j = interval_json(intervals[i], tracepoint_obs());
    CHECK(j["drops"]["table_full"] == want[i]);
    CHECK(j["kernel_stats"]["drop"] == want[i]);
    CHECK(j["kernel_stats"]["search_restart"] == 0);
    CHECK(j["netfilter_drops"] == want[i]);
    CHECK(j["drops"]["alloc_failed"].is_null());  // no probe tells allocation failures apart
    CHECK(j["inserts"].is_null());
  }
  auto s = agg.summary();
  CHECK(*s.totals.drops.table_full == sum);
  auto j = summary_json(s, Mode::tracepoint, tracepoint_obs());
  CHECK(j["drops"]["table_full"] == 2000);
  CHECK(j["scope"]["drops"]["table_full"] == "own_netns");
  CHECK(j["scope"]["table"] == "own_netns");
  CHECK(j["scope"]["netfilter_drops"] == "all_netns");
  CHECK(j["scope"]["inserts"].is_null());
  CHECK(interval_line(intervals[3]).find("table_full 1500") != std::string::npos);
  CHECK(interval_line(intervals[3]).find("netfilter 1500") != std::string::npos);
  CHECK(summary_text(s, Mode::tracepoint).find("netfilter drops: every netns") != std::string::npos);
  // Issue 34: the summary keeps to 100 columns (its kernel stats line was 134), in every mode.
  for (auto mode : {Mode::tracepoint, Mode::fentry}) {
    const auto text = summary_text(s, mode);
    for (std::size_t at = 0, end = 0; at < text.size(); at = end + 1) {
      end = std::min(text.find('\n', at), text.size());
      CHECK_MESSAGE(end - at <= 100, text.substr(at, end - at));
    }
  }

  SUBCASE("probe modes keep the probe's table_full and say the drops are every netns's") {
    auto probes = fixture::full_probes();
    Aggregator p(Mode::fentry, probes);
    auto a = tp_sample(0, 0, 10), b = tp_sample(1, 40, 10);
    b.counters[CTBPF_CNT_TABLE_FULL] = 39;
    p.add(a);
    p.add(b);
    CHECK(*p.summary().totals.drops.table_full == 39);
    CHECK(*p.summary().totals.kernel->drop == 40);
    CHECK(summary_json(p.summary(), Mode::fentry, probes)["scope"]["drops"]["table_full"] == "all_netns");
  }
  SUBCASE("a kernel without a counter leaves it null") {
    Aggregator old(Mode::tracepoint, tracepoint_obs());
    auto a = tp_sample(0, 0, 10), b = tp_sample(1, 5, 10);
    a.stats->chaintoolong.reset();
    b.stats->chaintoolong.reset();
    old.add(a);
    old.add(b);
    auto k = summary_json(old.summary(), Mode::tracepoint, tracepoint_obs());
    CHECK(k["drops"]["chaintoolong"].is_null());
    CHECK(k["kernel_stats"]["chaintoolong"].is_null());
    CHECK(k["kernel_stats"]["drop"] == 5);
  }
}

TEST_CASE("net growth of the table: per interval and over the window, negative when it shrinks") {
  Aggregator agg(Mode::tracepoint, tracepoint_obs());
  agg.add(tp_sample(0, 0, 930));
  auto up = agg.add(tp_sample(5, 0, 2100));
  auto down = agg.add(tp_sample(7, 0, 2000));
  REQUIRE(up);
  REQUIRE(down);
  CHECK(*up->growth == 1170);
  CHECK(*up->growth_per_s() == doctest::Approx(234.0));
  CHECK(*down->growth == -100);
  CHECK(*down->growth_per_s() == doctest::Approx(-50.0));
  auto s = agg.summary();
  CHECK(*s.growth == 1070);
  auto j = interval_json(*up, tracepoint_obs());
  CHECK(j["table"]["growth"] == 1170);
  CHECK(j["table"]["growth_per_s"].get<double>() == doctest::Approx(234.0));
  CHECK(interval_line(*up).find("growth +234/s") != std::string::npos);
  CHECK(interval_line(*down).find("growth -50/s") != std::string::npos);

  SUBCASE("no count, no growth: null, never 0") {
    Aggregator none(Mode::tracepoint, tracepoint_obs());
    Sample a, b;
    b.t_s = 1;
    none.add(a);
    auto r = none.add(b);
    CHECK_FALSE(r->growth.has_value());
    CHECK(interval_json(*r, tracepoint_obs())["table"]["growth"].is_null());
    CHECK(interval_json(*r, tracepoint_obs())["kernel_stats"].is_null());
  }
}

// The documented contract, written out: docs/tracepoint.md's table (what tracepoint mode shows) and
// its "Not shown" list; docs/json.md: drops.alloc_failed is null in every mode; the probes' full set
// (fentry with every probe attached) shows every count, histogram and cause but that one.
TEST_CASE("features' observable map is the documented contract, field by field") {
  const auto probe = tp_sample(0, 0, 10);
  SUBCASE("tracepoint: the kernel's own counters, nothing the probes count") {
    auto o = observable_json(probe, Mode::tracepoint, tracepoint_obs());
    for (const char* cause : {"table_full", "early_drop", "insert_failed", "chaintoolong", "clash_resolve", "invalid"}) {
      CAPTURE(cause);
      CHECK(o["drops"][cause] == true);
    }
    for (const char* stat : {"found", "invalid", "insert", "insert_failed", "drop", "early_drop", "error",
                             "search_restart", "clash_resolve", "chaintoolong"}) {
      CAPTURE(stat);
      CHECK(o["kernel_stats"][stat] == true);
    }
    CHECK(o["table"]["count"] == true);
    CHECK(o["table"]["growth"] == true);
    CHECK(o["netfilter_drops"] == true);
    for (const char* key : {"allocs", "inserts", "destroys", "deletes", "chain_length", "lifetime_ms", "by_netns"}) {
      CAPTURE(key);
      CHECK(o[key] == false);
    }
    CHECK(o["drops"]["alloc_failed"] == false);
  }
  SUBCASE("fentry with every probe: every count, histogram and cause but alloc_failed") {
    auto o = observable_json(probe, Mode::fentry, fixture::full_probes());
    for (const char* key : {"allocs", "inserts", "destroys", "deletes", "netfilter_drops", "chain_length", "lifetime_ms",
                            "by_netns"}) {
      CAPTURE(key);
      CHECK(o[key] == true);
    }
    for (const char* cause : {"table_full", "early_drop", "insert_failed", "chaintoolong", "clash_resolve", "invalid"}) {
      CAPTURE(cause);
      CHECK(o["drops"][cause] == true);
    }
    CHECK(o["drops"]["alloc_failed"] == false);
    CHECK(o["table"]["count"] == true);
    CHECK(o["table"]["growth"] == true);
  }
  SUBCASE("ctnetlink did not answer: nothing from it is promised") {
    Sample no_netlink;
    auto bare = observable_json(no_netlink, Mode::tracepoint, tracepoint_obs());
    CHECK(bare["drops"]["table_full"] == false);
    CHECK(bare["kernel_stats"]["drop"] == false);
    CHECK(bare["table"]["count"] == false);
  }
}

TEST_CASE("--events in a mode without events says so") {
  const uint32_t drops = 1U << CTBPF_EV_DROP;
  auto why = events_unavailable(drops, Mode::tracepoint, tracepoint_obs());
  REQUIRE(why.has_value());
  CHECK(why->find("tracepoint mode") != std::string::npos);
  CHECK(why->find('\n') == std::string::npos);
  CHECK(std::string("ctbpf: ").size() + why->size() <= 100);  // as trace prints it (it was 201 columns)
  CHECK_FALSE(events_unavailable(0, Mode::tracepoint, tracepoint_obs()).has_value());
  CHECK_FALSE(events_unavailable(drops, Mode::fentry, fixture::full_probes()).has_value());
}

TEST_CASE("Prometheus in tracepoint mode: table_full and the kernel's statistics") {
  Aggregator agg(Mode::tracepoint, tracepoint_obs());
  for (const auto& s : full_table()) agg.add(s);
  auto total = agg.summary();
  NetnsLabels labels(kMaxNetnsLabels);
  auto obs = tracepoint_obs();
  ExpositionInput in{Mode::tracepoint, &obs, &total, &labels, "test", false, {}, nullptr};
  auto page = render_exposition(in);
  CHECK(page.find("ctbpf_conntrack_drops_total{cause=\"table_full\"} 2000\n") != std::string::npos);
  CHECK(page.find("ctbpf_conntrack_drops_total{cause=\"alloc_failed\"}") == std::string::npos);
  CHECK(page.find("ctbpf_conntrack_kernel_stats_total{stat=\"drop\"} 2000\n") != std::string::npos);
  CHECK(page.find("ctbpf_conntrack_kernel_stats_total{stat=\"search_restart\"} 0\n") != std::string::npos);
  CHECK(page.find("ctbpf_netfilter_drops_total 2000\n") != std::string::npos);
}

TEST_CASE("percentiles never above the max") {
  // Idle times of 1 s .. 30 s: log2 slots of ms put 30 s in [16.4 s, 32.8 s); the p99 slot's bound
  // (32767 ms) is above the exact max the dump saw (30000 ms).
  IdleStats idle;
  for (uint64_t s = 1; s <= 30; ++s) idle.add(s * 1000);
  auto h = idle.histogram();
  CHECK(h.percentile(0.99) == 30000);
  CHECK(h.percentile(0.5) == 16383);  // below the max: unchanged
  CHECK(h.max_bound() == 30000);
  CHECK(idle_stats_json(idle)["p99"] == 30000);

  Histogram plain(SlotKind::log2);
  plain.merge(h);
  CHECK(plain.percentile(0.99) == 30000);  // merging into an empty one keeps the exact max
  Histogram unknown(SlotKind::log2, std::vector<uint64_t>(CTBPF_LOG2_SLOTS, 1), 0);
  auto merged = h;
  merged.merge(unknown);
  CHECK_FALSE(merged.exact_max().has_value());  // one side's max unknown: only slot bounds remain
  CHECK(h.minus(Histogram(SlotKind::log2)).percentile(0.99) == 30000);

  // The kernel's exact longest chain bounds the chain histogram in every view.
  Aggregator agg(Mode::fentry, fixture::full_probes());
  agg.add(fixture::sample(0, 0, 0));
  agg.add(fixture::sample(1, 1000, 0));  // chains of 3 and 40 ([32, 63]), exact max 40
  auto s = agg.summary();
  CHECK(s.totals.chain->percentile(0.99) == 40);
  auto j = summary_json(s, Mode::fentry, fixture::full_probes());
  CHECK(j["chain_length"]["p99"] == 40);
  CHECK(j["chain_length"]["max"] == 40);
  CHECK(summary_text(s, Mode::fentry).find("p99 40 max 40") != std::string::npos);
  // Sampled walks are said wherever the histogram is shown; every walk is not.
  CHECK(summary_text(s, Mode::fentry, nullptr, 16).find("chain length (1 insert in 16 per CPU): n") != std::string::npos);
  CHECK(summary_text(s, Mode::fentry).find("chain length: n") != std::string::npos);
}

TEST_CASE("report of a tracepoint snapshot: timelines of the table, its growth and the drops") {
  const auto doc = make_snapshot(tp_meta(), full_table(), true);
  read_snapshot(snapshot_bytes(doc), "tp.json");  // what it writes, it reads
  auto charts = report_charts(doc);
  CHECK(ids(charts) == std::vector<std::string>{"drops_by_cause", "table_count", "growth_per_s",
                                                "drops_table_full", "netfilter_drops"});
  const auto* table = find(charts, "table_count");
  REQUIRE(table->bars.size() == 4);
  CHECK(table->bars[0].value == 300);
  CHECK(table->bars[0].text == "300 (100.0%)");
  const auto* growth = find(charts, "growth_per_s");
  CHECK(growth->bars[0].value == doctest::Approx(50.0));
  CHECK(growth->bars[1].value == 0);
  const auto* full = find(charts, "drops_table_full");
  double sum = 0;
  for (const auto& b : full->bars) sum += b.value;
  CHECK(sum == 2000);
  CHECK(full->bars[3].value == 1500);

  auto html = report_html(doc);
  CHECK(count(html, "<svg id=\"chart-") == 5);
  CHECK(html.find("id=\"drops-note\"") == std::string::npos);
  // Sysctls: the ones that matter with units, the rest folded.
  CHECK(html.find("<tr><th>tcp_timeout_established</th><td>432000 s (5 d)</td></tr>") != std::string::npos);
  CHECK(html.find("<tr><th>max</th><td>300 entries</td></tr>") != std::string::npos);
  auto details = html.find("<details><summary>2 other sysctls</summary>");
  REQUIRE(details != std::string::npos);
  CHECK(html.find("dccp_loose", details) != std::string::npos);
  CHECK(html.find("dccp_loose") > details);

  auto text = report_text(doc, 100);
  CHECK(text.find("Entries in the table") != std::string::npos);
  CHECK(text.find("kernel stats (ctnetlink, this netns): ") != std::string::npos);
  // Issue 34: the kernel's `insert` is said to count ctnetlink's inserts only, in text and HTML.
  CHECK(text.find("    insert: entries added through ctnetlink (conntrack -I) only;") != std::string::npos);
  CHECK(html.find("<tr><th>kernel stat insert</th><td>entries added through ctnetlink (conntrack -I) only;") !=
        std::string::npos);
  CHECK(text.find("netfilter drops 2000 (every netns)") != std::string::npos);
  CHECK(text.find("  tcp_timeout_established      432000 s (5 d)\n") != std::string::npos);
  // A count of 0 draws no bar at all (no row of dots), a count above 0 at least one '#'.
  CHECK(text.find("....") == std::string::npos);
  CHECK(std::regex_search(text, std::regex("\n +t 3\\.0 +0 \\|\n")));
  CHECK(std::regex_search(text, std::regex("\n +t 4\\.0 +1500 \\|#+\n")));
}

TEST_CASE("report with no drops: a note, not an empty chart") {
  std::vector<Sample> quiet = {tp_sample(0, 7, 100), tp_sample(1, 7, 120), tp_sample(2, 7, 110)};
  const auto doc = make_snapshot(tp_meta(), quiet, true);
  auto charts = report_charts(doc);
  CHECK(ids(charts) == std::vector<std::string>{"table_count", "growth_per_s"});
  CHECK(find(charts, "growth_per_s")->bars[1].value == doctest::Approx(-10.0));
  auto html = report_html(doc);
  CHECK(html.find("<p class=\"note\" id=\"drops-note\">no drops in this window (watched: table_full, early_drop, "
                  "insert_failed, chaintoolong, clash_resolve, invalid)</p>") != std::string::npos);
  CHECK(html.find("chart-drops_by_cause") == std::string::npos);
  // A negative bar hangs below the zero line: every height stays positive.
  CHECK(html.find("height=\"-") == std::string::npos);
  CHECK(report_text(doc, 100).find("\nno drops in this window") != std::string::npos);
}

TEST_CASE("top from dumps alone: live by source, growth between dumps, inserts unknown") {
  auto key = [](const char* text) {
    SourceKey k;
    k.netns = 7;
    k.l3 = AF_INET;
    inet_pton(AF_INET, text, k.addr.data());
    return k;
  };
  Attribution a;
  a.replace_live({{key("10.0.0.1"), {100, 0}}, {key("10.0.0.2"), {5, 0}}}, 0);
  auto first = a.top_sources(10);
  REQUIRE(first.rows.size() == 2);
  CHECK(first.rows[0].live == 100);
  CHECK(first.rows[0].growth == 0);  // nothing to grow from yet
  CHECK_FALSE(first.rows[0].inserts_seen);
  a.replace_live({{key("10.0.0.1"), {160, 0}}, {key("10.0.0.3"), {1, 0}}}, 2.0);
  auto second = a.top_sources(10);
  REQUIRE(second.rows.size() == 3);
  CHECK(second.rows[0].live == 160);
  CHECK(second.rows[0].growth == 60);
  CHECK(second.rows[0].growth_per_s == doctest::Approx(30.0));
  CHECK(second.rows[2].live == 0);  // 10.0.0.2 is gone: its loss shows
  CHECK(second.rows[2].growth == -5);
  auto netns = a.top_netns(10);
  REQUIRE(netns.rows.size() == 1);
  CHECK(netns.rows[0].live == 161);
  CHECK(netns.rows[0].growth == 56);
  auto j = top_row_json(second.rows[0], {}, true);
  CHECK(j["inserts"].is_null());
  CHECK(j["inserts_per_s"].is_null());
  CHECK(j["live"] == 160);
  CHECK(j["growth"] == 60);

  // A dump that stopped early holds part of the table: the growth to it, and from it to the next
  // whole one, is unknown (null, "-"), not the difference of two different samples.
  a.replace_live({{key("10.0.0.1"), {40, 0}}}, 1.0, false);
  auto partial = a.top_sources(10);
  REQUIRE(partial.rows.size() >= 1);
  CHECK(partial.rows[0].live == 40);
  CHECK_FALSE(partial.rows[0].growth_seen);
  CHECK(partial.rows[0].growth == 0);
  CHECK(top_row_json(partial.rows[0], {}, true)["growth"].is_null());
  CHECK(top_row_json(partial.rows[0], {}, true)["growth_per_s"].is_null());
  CHECK_FALSE(a.top_netns(10).rows[0].growth_seen);
  a.replace_live({{key("10.0.0.1"), {170, 0}}}, 1.0);
  CHECK_FALSE(a.top_sources(10).rows[0].growth_seen);
  a.replace_live({{key("10.0.0.1"), {175, 0}}}, 1.0);  // two whole dumps in a row again
  CHECK(a.top_sources(10).rows[0].growth_seen);
  CHECK(a.top_sources(10).rows[0].growth == 5);
}

TEST_CASE("tracepoint mode: the conntrack probes' misses are null, not a measured 0; recursion is counted") {
  // No conntrack probes and no kprobes in this mode: nothing can be unpaired, truncated or skipped,
  // and saying 0 would read as a measurement (issue: "zeros that read as measurements").
  Aggregator aggregator(Mode::tracepoint, {});
  Sample s;
  s.kprobe_misses = 0;  // what the kernel layer hands over where ctbpf has no kprobes
  aggregator.add(s);
  s.t_s = 1;
  s.recursion_misses = 3;
  aggregator.add(s);
  const auto summary = summary_json(aggregator.summary(), Mode::tracepoint, {});
  CHECK(summary["probe_misses"]["confirm_unpaired"].is_null());
  CHECK(summary["probe_misses"]["chain_walk_truncated"].is_null());
  CHECK(summary["probe_misses"]["kprobe"].is_null());
  CHECK(summary["probe_misses"]["recursion"] == 3);
  const Report r = aggregator.summary();
  const Observability obs;
  ExpositionInput in{Mode::tracepoint, &obs, &r, nullptr, "test", false, {}};
  const std::string page = render_exposition(in);
  CHECK(page.find("ctbpf_probe_misses_total{kind=\"recursion\"} 3\n") != std::string::npos);
  for (const char* kind : {"confirm_unpaired", "chain_walk_truncated", "kprobe"})
    CHECK(page.find(std::string("kind=\"") + kind + "\"") == std::string::npos);
}
