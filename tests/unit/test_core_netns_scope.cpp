// SPDX-License-Identifier: Apache-2.0
// Issue 34, item 1: the netns whose table ctbpf shows is named wherever its scope matters (summary,
// JSON, screen, snapshot, report, diff), and other named namespaces holding entries are pointed to.
#include <doctest/doctest.h>

#include <algorithm>

#include "core/netns_scope.h"
#include "core/report.h"
#include "core/screen.h"
#include "core/snapshot.h"
#include "test_core_snapshot_fixture.h"

using namespace ctbpf::core;
using nlohmann::json;

namespace {

bool has(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

OwnNetns named(const std::string& name, uint32_t inode) { return OwnNetns{inode, name}; }

// A tracepoint-mode snapshot taken in `own`, with `others` as the named namespaces seen at its end.
json snapshot_in(const std::optional<OwnNetns>& own, std::optional<std::vector<NetnsTable>> others = std::nullopt) {
  auto m = fixture::meta(Mode::tracepoint);
  m.obs = Observability{};
  m.who.emplace().own_netns = own;
  m.who->other_netns = std::move(others);
  return make_snapshot(m, fixture::series(3, 2), true);
}

}  // namespace

TEST_CASE("netns label: host, ip netns name, unnamed, unknown; a crafted value is no label") {
  CHECK(own_netns_json(named("host", 4026531840)) == json{{"inode", 4026531840u}, {"name", "host"}});
  CHECK(netns_label(own_netns_json(named("host", 4026531840))) == "host netns (inode 4026531840)");
  CHECK(netns_label(own_netns_json(named("ctns1", 4026532288))) == "netns ctns1 (inode 4026532288)");
  CHECK(netns_label(own_netns_json(named("", 4026532288))) == "unnamed netns (inode 4026532288)");
  CHECK(own_netns_json(std::nullopt).is_null());
  CHECK(own_netns_json(OwnNetns{}).is_null());
  CHECK(netns_label(json()) == "");
  CHECK(netns_label(json{{"inode", "x"}, {"name", 3}}) == "");
  CHECK(netns_label(json::array()) == "");
  // Names come from /run/netns: made printable.
  CHECK(netns_label(own_netns_json(named("a\x1b[2Jb", 7))) == "netns a?[2Jb (inode 7)");
}

TEST_CASE("other netns hint: only namespaces holding entries, busiest first, with the command") {
  CHECK(other_netns_hint({}, 0, "trace") == "");
  CHECK(other_netns_hint({{"idle", 1, 0}, {"unread", 2, std::nullopt}}, 0, "trace") == "");
  const std::vector<NetnsTable> others{{"a", 1, 5}, {"b", 2, 1010}, {"c", 3, 0}, {"d", 4, 7}, {"e", 5, 3}};
  const auto hint = other_netns_hint(others, 0, "trace");
  CHECK(hint ==
        "this netns's table is empty, but 4 other named netns hold 1025 entries (b 1010, d 7, a 5, 1 more); to see "
        "one: ip netns exec b ctbpf trace");
  CHECK(other_netns_hint(others, 12, "top").rfind("4 other named netns hold 1025 entries", 0) == 0);
  CHECK(has(other_netns_hint(others, std::nullopt, "top"), "ip netns exec b ctbpf top"));
  CHECK(other_netns_hint({{"x", 1, 1}}, 5, "top") == "1 other named netns holds 1 entry (x 1); to see one: ip netns exec x ctbpf top");
  // From a summary's JSON: the same, and nothing from a crafted value.
  CHECK(other_netns_hint_json(other_netns_json(others), json(0), "trace") == hint);
  CHECK(other_netns_hint_json(json{{"x", 1}}, json(0), "trace") == "");
  CHECK(other_netns_hint_json(json::array({json{{"name", "z"}, {"count", "many"}}}), json(0), "trace") == "");
}

TEST_CASE("summary: JSON and text name the netns of the table, and where other entries are") {
  Aggregator agg(Mode::tracepoint, Observability{});
  Sample a, b;
  b.t_s = 1;
  a.table = b.table = {0, 262144, 65536};
  agg.add(a);
  agg.add(b);
  WhoFills who;
  who.own_netns = named("host", 4026531840);
  who.other_netns = std::vector<NetnsTable>{{"ctns1", 4026532288, 1010}};
  const auto j = summary_json(agg.summary(), Mode::tracepoint, Observability{}, &who);
  CHECK(j["own_netns"] == json{{"inode", 4026531840u}, {"name", "host"}});
  CHECK(j["other_netns"] == json::array({json{{"name", "ctns1"}, {"inode", 4026532288u}, {"count", 1010}}}));
  const auto text = summary_text(agg.summary(), Mode::tracepoint, &who);
  CHECK(has(text, "kernel stats: this netns, host netns (inode 4026531840) (ctnetlink)"));
  CHECK(has(text, "this netns's table is empty, but 1 other named netns holds 1010 entries (ctns1 1010); to see"));
  CHECK(has(text, "ip netns exec ctns1 ctbpf trace"));
  // Without who (doctor's summary): null, never absent.
  const auto bare = summary_json(agg.summary(), Mode::tracepoint, Observability{});
  CHECK(bare.contains("own_netns"));
  CHECK(bare["own_netns"].is_null());
  CHECK(bare["other_netns"].is_null());
  CHECK(scope_text(Mode::fentry, "netns x (inode 1)").find("table and kernel stats: this netns, netns x (inode 1);") !=
        std::string::npos);
}

TEST_CASE("screen: names the table's netns, and the others' entries when there are some") {
  Aggregator agg(Mode::tracepoint, Observability{});
  Sample a, b;
  b.t_s = 1;
  a.table = b.table = {0, 262144, 65536};
  agg.add(a);
  auto iv = agg.add(b);
  auto total = agg.summary();
  ScreenInput in{Mode::tracepoint, &*iv, &total, 0, 100, 1, 24};
  in.netns = "netns ctns1 (inode 4026532288)";
  in.elsewhere = other_netns_hint({{"ctns2", 9, 1010}}, 0, "trace");
  const auto frame = render_screen(in);
  CHECK(has(frame, "\nnetns   table and kernel stats: netns ctns1 (inode 4026532288)\n"));
  std::string joined;  // the hint is wrapped within 80 columns: its words joined again
  for (char c : frame)
    if (!((c == ' ' || c == '\n') && !joined.empty() && joined.back() == ' ')) joined += c == '\n' ? ' ' : c;
  CHECK(has(joined, "at start: this netns's table is empty, but 1 other named netns holds 1010 entries (ctns2 "));
  CHECK(std::count(frame.begin(), frame.end(), '\n') <= 23);
  for (std::size_t at = frame.find("\nnetns ") + 1, end = 0; at < frame.find("\ntable "); at = end + 1) {
    end = std::min(frame.find('\n', at), frame.size());
    CHECK(end - at <= 80);
  }
}

TEST_CASE("snapshot and report: the netns is recorded and shown; an older file still reads") {
  const auto doc = snapshot_in(named("ctns1", 4026532288), std::vector<NetnsTable>{{"busy", 5, 300}});
  CHECK(doc["summary"]["own_netns"] == json{{"inode", 4026532288u}, {"name", "ctns1"}});
  const auto back = read_snapshot(snapshot_bytes(doc), "s.json");
  CHECK(snapshot_bytes(back) == snapshot_bytes(doc));
  const auto text = report_text(back, 100);
  CHECK(has(text, "\ntable and kernel stats: netns ctns1 (inode 4026532288)\n"));
  CHECK(has(text, "1 other named netns holds 300 entries (busy 300); to see one: ip netns exec busy ctbpf snapshot"));
  CHECK(has(report_html(back), "<br>table and kernel stats: netns ctns1 (inode 4026532288)"));
  auto old = doc;
  old["summary"].erase("own_netns");
  old["summary"].erase("other_netns");
  CHECK_FALSE(has(report_text(read_snapshot(snapshot_bytes(old), "old.json"), 100), "table and kernel stats:"));
  CHECK(summary_as_now(old["summary"])["own_netns"].is_null());
}

TEST_CASE("diff: warns in one line when the two snapshots are of different namespaces") {
  const auto host = snapshot_in(named("host", 4026531840));
  const auto ns = snapshot_in(named("ctns1", 4026532288));
  const auto d = diff_snapshots(host, "host.json", ns, "ns.json");
  CHECK(has(d.text, "\nwarning: A from host netns (inode 4026531840), B from netns ctns1 (inode 4026532288)\n"));
  CHECK(d.changed);
  CHECK(has(d.text, "\n  netns  host netns (inode 4026531840) -> netns ctns1 (inode 4026532288)\n"));
  CHECK(d.json["sections"][0]["changes"][0]["name"] == "netns");
  // The same netns, or one not recorded (an older file): no warning, no change.
  CHECK_FALSE(has(diff_snapshots(ns, "a", ns, "b").text, "warning"));
  CHECK_FALSE(diff_snapshots(ns, "a", ns, "b").changed);
  auto old = ns;
  old["summary"].erase("own_netns");
  CHECK_FALSE(has(diff_snapshots(host, "a", old, "b").text, "warning"));
  // The same name on another inode (a netns made again, or another host's initial one): the same place.
  CHECK_FALSE(has(diff_snapshots(ns, "a", snapshot_in(named("ctns1", 4026532999)), "b").text, "warning"));
  CHECK(has(diff_snapshots(snapshot_in(named("", 1)), "a", snapshot_in(named("", 2)), "b").text,
            "warning: A from unnamed netns (inode 1), B from unnamed netns (inode 2)\n"));
}
