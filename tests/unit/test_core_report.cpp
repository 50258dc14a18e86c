// SPDX-License-Identifier: Apache-2.0
#include <doctest/doctest.h>

#include <regex>

#include "core/report.h"
#include "core/snapshot.h"
#include "test_core_snapshot_fixture.h"

using namespace ctbpf::core;
using nlohmann::json;

namespace {

const Chart* find(const std::vector<Chart>& charts, const std::string& id) {
  for (const auto& c : charts)
    if (c.id == id) return &c;
  return nullptr;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The <svg> element of one chart in the HTML page.
std::string svg_of(const std::string& html, const std::string& id) {
  auto start = html.find("<svg id=\"chart-" + id + "\"");
  if (start == std::string::npos) return "";
  return html.substr(start, html.find("</svg>", start) - start);
}

// The rows the text report prints under a chart's title, up to the blank line.
std::vector<std::string> rows_under(const std::string& text, const std::string& title) {
  std::vector<std::string> rows;
  auto at = text.find("\n" + title + "\n");
  if (at == std::string::npos) return rows;
  at += title.size() + 2;
  while (at < text.size() && text[at] != '\n') {
    auto end = text.find('\n', at);
    rows.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  return rows;
}

json tracepoint_document() {
  auto m = fixture::meta(Mode::tracepoint);
  m.obs = Observability{};
  m.obs.netfilter_drop_reason = true;
  return make_snapshot(m, fixture::series(3, 2), true);
}

}  // namespace

TEST_CASE("charts: one bar per bucket, per interval, per observable cause") {
  const auto doc = fixture::document();
  auto charts = report_charts(doc);
  std::vector<std::string> ids;
  for (const auto& c : charts) ids.push_back(c.id);
  CHECK(ids == std::vector<std::string>{"drops_by_cause", "chain_length", "lifetime_udp", "table_count",
                                        "inserts_per_s", "drops_insert_failed", "drops_chaintoolong",
                                        "netfilter_drops"});
  CHECK(find(charts, "drops_by_cause")->bars.size() == 6);  // every cause but alloc_failed (observed in no mode)
  // Buckets up to the highest non-empty one: chain slots 0..32, lifetime slots 0..11.
  CHECK(find(charts, "chain_length")->bars.size() == 33);
  CHECK(find(charts, "chain_length")->bars[3].value == 500);
  CHECK(find(charts, "chain_length")->bars[32].label == "63");
  CHECK(find(charts, "lifetime_udp")->bars.size() == 12);
  CHECK(find(charts, "inserts_per_s")->bars.size() == 10);
  CHECK(find(charts, "inserts_per_s")->bars[0].text == "100/s");
  const auto* drops = find(charts, "drops_chaintoolong");
  REQUIRE(drops->bars.size() == 10);
  CHECK(drops->bars[3].value == 0);
  CHECK(drops->bars[4].value == 50);

  SUBCASE("tracepoint mode: no chain, lifetime or insert charts; the table, its growth, the drops") {
    auto tp = report_charts(tracepoint_document());
    std::vector<std::string> tp_ids;
    for (const auto& c : tp) tp_ids.push_back(c.id);
    // The fixture's kernel stats have only "invalid", at 0: no cause chart, a note instead.
    CHECK(tp_ids == std::vector<std::string>{"table_count", "growth_per_s", "netfilter_drops"});
    CHECK(report_text(tracepoint_document(), 100).find("\nno drops in this window (watched: invalid)\n") !=
          std::string::npos);
  }
}

TEST_CASE("text report: the summary's numbers and one row per bar") {
  const auto doc = fixture::document();
  auto text = report_text(doc, 100);
  CHECK(text.find("ctbpf snapshot: host gw-1, kernel 6.1.0-test, fentry mode\n") == 0);
  CHECK(text.find("  allocs 1150  inserts 1000 (100/s)  destroys 400 (40/s)  deletes 0\n") != std::string::npos);
  // p99's slot is [32, 63]; the kernel's exact longest chain (40) bounds it.
  CHECK(text.find("  chain length: n 1000  mean 21.5  p50 3  p99 40  max 40\n") != std::string::npos);
  auto sampled = doc;
  sampled["summary"]["chain_length"]["sampled_one_in"] = 16;
  CHECK(report_text(sampled, 100).find("max 40  (1 insert in 16 per CPU walked)\n") != std::string::npos);
  auto chain_rows = rows_under(text, report_charts(doc)[1].title);
  CHECK(chain_rows.size() == 33);
  CHECK(chain_rows[3].find(" 3 500 |#") != std::string::npos);
  auto causes = rows_under(text, "Drops by cause (whole window)");
  REQUIRE(causes.size() == 6);
  CHECK(std::regex_search(causes[3], std::regex("^ +chaintoolong 150 \\|#+$")));
  CHECK(rows_under(text, "inserts_per_s").empty());
  CHECK(rows_under(text, "Inserts per second, per interval (end time in s)").size() == 10);
  CHECK(text.find("  tcp_timeout_established      432000 s (5 d)\n") != std::string::npos);
  for (const auto& line : rows_under(text, "Drops by cause (whole window)")) CHECK(line.size() <= 100);

  SUBCASE("long series are grouped to at most 30 rows") {
    auto big = make_snapshot(fixture::meta(), fixture::series(100, 20, 0), true);
    auto rows = rows_under(report_text(big, 80), "Inserts per second, per interval (end time in s)");
    CHECK(rows.size() == 31);  // "(4 intervals per row)" and 30 rows
    CHECK(rows[0] == "  (4 intervals per row)");
  }
}

TEST_CASE("HTML report: self-contained, one <rect class=\"bar\"> per bar, escaped") {
  auto doc = fixture::document();
  doc["host"] = "gw<1>&\"x\"";
  auto html = report_html(doc);
  for (const auto& c : report_charts(doc)) {
    CAPTURE(c.id);
    CHECK(count(svg_of(html, c.id), "<rect class=\"bar\"") == c.bars.size());
  }
  CHECK(count(svg_of(html, "chain_length"), "<rect class=\"bar\"") == 33);
  CHECK(count(svg_of(html, "inserts_per_s"), "<rect class=\"bar\"") == 10);
  CHECK(count(html, "<svg id=\"chart-") == 8);
  // Nothing to fetch, nothing to run.
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("src=") == std::string::npos);
  CHECK(html.find("href=") == std::string::npos);
  CHECK(html.find("url(") == std::string::npos);
  CHECK(html.find("default-src 'none'") != std::string::npos);
  CHECK(html.find("gw&lt;1&gt;&amp;&quot;x&quot;") != std::string::npos);
  CHECK(html.find("gw<1>") == std::string::npos);
}

TEST_CASE("diff: a snapshot with itself is no change; changes are listed by section") {
  const auto a = fixture::document();
  auto same = diff_snapshots(a, "a.json", a, "a.json");
  CHECK_FALSE(same.changed);
  CHECK(same.text.find("\nno change\n") != std::string::npos);

  auto b = make_snapshot(fixture::meta(), fixture::series(4, 6, 0), true);
  b["sysctls"]["buckets"] = 65536u;
  b["sysctls"].erase("tcp_timeout_established");
  auto d = diff_snapshots(a, "a.json", b, "b.json");
  CHECK(d.changed);
  CHECK(d.text.find("no change") == std::string::npos);
  CHECK(std::regex_search(d.text, std::regex("\n  chaintoolong +150 \\(15/s\\) -> 300 \\(30/s\\)\n")));
  CHECK(std::regex_search(d.text, std::regex("\n  buckets +512 -> 65536\n")));
  CHECK(std::regex_search(d.text, std::regex("\n  tcp_timeout_established +432000 -> absent\n")));
  // Same insert rate (100/s) in both windows: not a change.
  CHECK(d.text.find("inserts/s") == std::string::npos);
}

// Issue 34: the report keeps to 100 columns, however wide the terminal (it was up to 167).
TEST_CASE("report: every line within 100 columns") {
  for (const auto& doc : {fixture::document(), tracepoint_document()})
    for (int width : {80, 100, 200}) {
      CAPTURE(width);
      const auto text = report_text(doc, width);
      std::size_t widest = 0;
      for (std::size_t at = 0, end = 0; at < text.size(); at = end + 1) {
        end = std::min(text.find('\n', at), text.size());
        widest = std::max(widest, end - at);
      }
      CHECK(widest <= 100);
    }
}

// Issue 34: diff shows the table's net growth, the one rate tracepoint mode has.
TEST_CASE("diff: net growth per second is compared") {
  const auto a = tracepoint_document();
  auto b = a;
  b["summary"]["table"]["growth"] = 600;
  b["summary"]["table"]["growth_per_s"] = 60.0;
  auto d = diff_snapshots(a, "a.json", b, "b.json");
  CHECK(d.changed);
  CHECK(std::regex_search(d.text, std::regex("\n  net growth/s +\\S+ -> \\+60/s\n")));
  CHECK_FALSE(diff_snapshots(a, "a.json", a, "a.json").changed);
}

// Issue 29: a key the mode cannot observe is null, never absent (docs/json.md). In tracepoint mode the
// chain and lifetime histograms are unobserved: every key they have in fentry mode is there, null, in
// each interval and the summary; the report reads those nulls (it threw on sampled_one_in null).
TEST_CASE("tracepoint mode: chain_length and lifetime_ms keep every key, null") {
  const auto doc = tracepoint_document();
  const auto full = fixture::document();
  auto check_nulls = [&](const json& record, const json& observed) {
    for (const char* histogram : {"chain_length", "lifetime_ms"}) {
      CAPTURE(histogram);
      REQUIRE(record[histogram].is_object());
      for (const auto& item : observed[histogram].items()) {
        const std::string key = item.key();
        CAPTURE(key);
        CHECK(record[histogram].contains(key));
        CHECK(record[histogram].value(key, json(0)).is_null());
      }
    }
  };
  check_nulls(doc["summary"], full["summary"]);
  for (const auto& interval : doc["intervals"]) check_nulls(interval, full["intervals"][0]);
  // The keys compared: sampled_one_in in both, by_proto and untracked in lifetime_ms.
  CHECK(full["summary"]["chain_length"].contains("sampled_one_in"));
  CHECK(full["summary"]["lifetime_ms"].contains("untracked"));

  auto text = report_text(doc, 100);
  CHECK(text.find("  chain length: - (not observable in this mode)\n") != std::string::npos);
  CHECK(text.find("  lifetime ms: - (not observable in this mode)\n") != std::string::npos);
  CHECK(text.find("sampled") == std::string::npos);
  // A file written before the keys were null (absent) still reads the same.
  auto old = doc;
  old["summary"]["chain_length"].erase("sampled_one_in");
  for (const char* key : {"by_proto", "sampled_one_in", "untracked"}) old["summary"]["lifetime_ms"].erase(key);
  CHECK(report_text(old, 100) == text);
}
