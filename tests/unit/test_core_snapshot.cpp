// SPDX-License-Identifier: Apache-2.0
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/render.h"
#include "core/report.h"
#include "core/snapshot.h"
#include "test_core_snapshot_fixture.h"

using namespace ctbpf::core;
using nlohmann::json;

namespace {

// The message read_snapshot() throws for these bytes, or "" when it accepts them.
std::string error_of_bytes(const std::string& bytes) {
  try {
    read_snapshot(bytes, "x.json");
  } catch (const SnapshotError& e) {
    return e.what();
  }
  return "";
}

std::string error_of(const json& doc) { return error_of_bytes(doc.dump()); }

json with(json doc, const std::string& pointer, json value) {
  doc[json::json_pointer(pointer)] = std::move(value);
  return doc;
}

}  // namespace

TEST_CASE("snapshot -> read -> write gives the same bytes") {
  auto bytes = snapshot_bytes(fixture::document());
  auto doc = read_snapshot(bytes, "x.json");
  CHECK(snapshot_bytes(doc) == bytes);
  CHECK(bytes.back() == '\n');
}

#ifdef CTBPF_FUZZ_CORPUS
TEST_CASE("the committed snapshots (written by the real binary) read back byte for byte") {
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(CTBPF_FUZZ_CORPUS)) {
    if (entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    CAPTURE(entry.path().string());
    auto doc = read_snapshot(bytes.str(), entry.path().string());
    CHECK(snapshot_bytes(doc) == bytes.str());
    ++files;
  }
  CHECK(files >= 1);
}
#endif

TEST_CASE("a snapshot holds the summary and every interval: the fixture's arithmetic") {
  auto samples = fixture::series(4, 3, 3);
  Aggregator agg(Mode::fentry, fixture::full_probes());
  std::vector<Report> intervals;
  for (const auto& s : samples)
    if (auto r = agg.add(s)) intervals.push_back(*r);
  auto doc = make_snapshot(fixture::meta(), agg.summary(), intervals);
  REQUIRE(doc["intervals"].size() == 10);

  // Expected values: the fixture's arithmetic, by hand (test_core_snapshot_fixture.h). Samples at
  // t = 100..110 s; sample k has 1000 + 100k inserts, refused 50 for each burst interval (4, 5, 6)
  // before it; DESTROY = refused + inserts/4; chains: inserts/2 of length 3, the rest 40 ([32, 63]);
  // UDP lifetimes: inserts/4 in [1024, 2047] ms, each 1500 ms; table count = inserts - inserts/4.
  // The window: inserts 1000 -> 2000, refused 0 -> 150.
  const auto& s = doc["summary"];
  CHECK(s["type"] == "summary");
  CHECK(s["mode"] == "fentry");
  CHECK(s["duration_s"] == 10.0);
  CHECK(s["inserts"] == 1000);
  CHECK(s["allocs"] == 1150);             // inserts + freed uninserted (150 refused)
  CHECK(s["destroys"] == 400);            // (150 + 500) - (0 + 250)
  CHECK(s["deletes"] == 0);
  CHECK(s["netfilter_drops"] == 150);
  CHECK(s["lost_events"] == 0);
  CHECK(s["drops"] == json{{"table_full", 0}, {"early_drop", 0}, {"insert_failed", 150}, {"chaintoolong", 150},
                           {"clash_resolve", 0}, {"invalid", 0}, {"alloc_failed", nullptr}});
  // Chains: 2000/2 - 1000/2 = 500 of length 3, as many in [32, 63]: 33 buckets, up to le 63.
  const auto& chain = s["chain_length"];
  CHECK(chain["count"] == 1000);
  CHECK(chain["mean"] == 21.5);  // (3 × 500 + 40 × 500) / 1000
  CHECK(chain["p50"] == 3);      // the 500th of 1000 is a 3
  CHECK(chain["p99"] == 40);     // in [32, 63], clamped to the longest chain, 40
  CHECK(chain["max"] == 40);
  REQUIRE(chain["buckets"].size() == 33);
  for (std::size_t i = 0; i < 32; ++i) {
    CAPTURE(i);
    CHECK(chain["buckets"][i] == json{{"le", i}, {"count", i == 3 ? 500 : 0}});
  }
  CHECK(chain["buckets"][32] == json{{"le", 63}, {"count", 500}});
  // Lifetimes: 500 - 250 = 250 UDP entries of 1500 ms, in the log2 slot [1024, 2047] (the 12th).
  const auto& life = s["lifetime_ms"];
  CHECK(life["count"] == 250);
  CHECK(life["mean"] == 1500.0);
  CHECK(life["p50"] == 2047);
  CHECK(life["p99"] == 2047);
  CHECK(life["max"] == 2047);
  REQUIRE(life["buckets"].size() == 12);
  CHECK(life["buckets"][11] == json{{"le", 2047}, {"count", 250}});
  CHECK(life["buckets"][10] == json{{"le", 1023}, {"count", 0}});
  CHECK(life["by_proto"].size() == 1);
  CHECK(life["by_proto"]["udp"]["count"] == 250);
  CHECK(s["by_proto"]["udp"] == json{{"inserts", 1000}, {"destroys", 250}});
  CHECK(s["by_proto"]["tcp"] == json{{"inserts", 0}, {"destroys", 0}});
  REQUIRE(s["by_netns"].size() == 1);
  CHECK(s["by_netns"][0]["netns"] == 4026532000);
  CHECK(s["by_netns"][0]["inserts"] == 1000);
  CHECK(s["by_netns"][0]["destroys"] == 250);
  // Table: 1500 entries at the end (2000 - 500), 750 at the start (1000 - 250).
  CHECK(s["table"]["count"] == 1500);
  CHECK(s["table"]["max"] == 65536);
  CHECK(s["table"]["buckets"] == 512);
  CHECK(s["table"]["fill"] == 1500.0 / 65536);
  CHECK(s["table"]["growth"] == 750);
  CHECK(s["table"]["growth_per_s"] == 75.0);

  // Interval 5: samples 5 (t 105: 1500 inserts, 50 refused) to 6 (t 106: 1600 inserts, 100 refused).
  const auto& r = doc["intervals"][5];
  CHECK(r["type"] == "interval");
  CHECK(r["t"] == 6.0);
  CHECK(r["interval_s"] == 1.0);
  CHECK(r["inserts"] == 100);
  CHECK(r["allocs"] == 150);
  CHECK(r["destroys"] == 75);  // (100 + 400) - (50 + 375)
  CHECK(r["drops"]["chaintoolong"] == 50);
  CHECK(r["drops"]["insert_failed"] == 50);
  CHECK(r["netfilter_drops"] == 50);
  CHECK(r["rates"] == json{{"allocs_per_s", 150.0}, {"inserts_per_s", 100.0}, {"destroys_per_s", 75.0}});
  CHECK(r["chain_length"]["count"] == 100);
  CHECK(r["chain_length"]["mean"] == 21.5);
  CHECK(r["chain_length"]["max"] == 40);
  CHECK(r["chain_length"]["buckets"][3]["count"] == 50);
  CHECK(r["chain_length"]["buckets"][32]["count"] == 50);
  CHECK(r["lifetime_ms"]["count"] == 25);  // 400 - 375
  CHECK(r["by_proto"]["udp"] == json{{"inserts", 100}, {"destroys", 25}});
  CHECK(r["table"]["count"] == 1200);  // 1600 - 400
  CHECK(r["table"]["growth"] == 75);   // 1200 - (1500 - 375)
  CHECK(doc["schema_version"] == 1);
  CHECK(doc["type"] == "snapshot");
  CHECK(doc["host"] == "gw-1");
  CHECK(doc["mode"] == "fentry");
  CHECK(doc["window"]["start"] == "2024-05-06T07:08:09.123Z");
  CHECK(doc["window"]["end"] == "2024-05-06T07:08:19.123Z");
  CHECK(doc["window"]["duration_s"] == 10.0);
  CHECK(doc["sysctls"]["tcp_timeout_established"] == 432000);
  CHECK(doc["trigger"].is_null());

  SUBCASE("replayed from samples it is the same document") {
    CHECK(make_snapshot(fixture::meta(), samples, true) == doc);
  }
  SUBCASE("a window that does not start at load bounds the longest chain by its histogram") {
    auto later = make_snapshot(fixture::meta(), samples, false);
    // The slot's bound (63), clamped to the longest chain since load (40): the window's are among those.
    CHECK(later["summary"]["chain_length"]["max"] == 40);
    CHECK(doc["summary"]["chain_length"]["max"] == 40);
  }
}

TEST_CASE("rfc3339_utc") {
  CHECK(rfc3339_utc(0) == "1970-01-01T00:00:00.000Z");
  CHECK(rfc3339_utc(951782400.5) == "2000-02-29T00:00:00.500Z");
  CHECK(rfc3339_utc(1714979289.1234) == "2024-05-06T07:08:09.123Z");
}

TEST_CASE("reading refuses what it cannot use, naming the file and the field or byte") {
  const auto doc = fixture::document();
  REQUIRE(error_of(doc) == "");

  CHECK(error_of(with(doc, "/schema_version", 2)) ==
        "x.json: /schema_version: version 2 is not supported (this ctbpf reads version 1)");
  auto unversioned = doc;
  unversioned.erase("schema_version");
  CHECK(error_of(unversioned) == "x.json: /schema_version: missing");
  CHECK(error_of(with(doc, "/schema_version", "1")) ==
        "x.json: /schema_version: expected an unsigned integer, got a string");
  CHECK(error_of(json::array()) == "x.json: /: expected an object, got an array");
  CHECK(error_of(with(doc, "/type", "summary")) == "x.json: /type: expected \"snapshot\"");

  // Wrong types, deep inside.
  CHECK(error_of(with(doc, "/summary/inserts", "many")) ==
        "x.json: /summary/inserts: expected an unsigned integer or null, got a string");
  CHECK(error_of(with(doc, "/summary/drops/chaintoolong", -1)) ==
        "x.json: /summary/drops/chaintoolong: expected an unsigned integer or null, got a negative number");
  CHECK(error_of(with(doc, "/intervals/7/rates/inserts_per_s", true)) ==
        "x.json: /intervals/7/rates/inserts_per_s: expected a number, got a boolean");
  CHECK(error_of(with(doc, "/summary/chain_length/buckets/0/le", 1.5)) ==
        "x.json: /summary/chain_length/buckets/0/le: expected an unsigned integer, got a fraction");
  CHECK(error_of(with(doc, "/window/start", "yesterday")) ==
        "x.json: /window/start: expected a UTC time like 2024-05-06T07:08:09.123Z");
  CHECK(error_of(with(doc, "/mode", "xdp")) == "x.json: /mode: expected fentry, kprobe or tracepoint");
  CHECK(error_of(with(doc, "/summary/mode", "kprobe")) == "x.json: /summary/mode: differs from /mode");
  CHECK(error_of(with(doc, "/host", "a\x1b[2Jb")) == "x.json: /host: holds characters other than printable ASCII");
  CHECK(error_of(with(doc, "/sysctls/max", -3)) ==
        "x.json: /sysctls/max: expected an unsigned integer, got a negative number");
  auto odd_sysctl = doc;
  odd_sysctl["sysctls"]["a~/b"] = 1;
  CHECK(error_of(odd_sysctl) == "x.json: /sysctls/a~0~1b: not a sysctl name");
  CHECK(error_of(with(doc, "/summary/lifetime_ms/by_proto/sctp", doc["summary"]["lifetime_ms"])) ==
        "x.json: /summary/lifetime_ms/by_proto/sctp: not a protocol class");
  auto missing = doc;
  missing["intervals"][2].erase("drops");
  CHECK(error_of(missing) == "x.json: /intervals/2/drops: missing");

  // Histograms that do not add up or are absurdly large.
  CHECK(error_of(with(doc, "/summary/chain_length/count", 7)) ==
        "x.json: /summary/chain_length/count: 7, but the buckets hold 1000");
  json huge = json::array();
  for (int i = 0; i < 1000000; ++i) huge.push_back({{"le", i}, {"count", 0}});
  CHECK(error_of(with(doc, "/summary/chain_length/buckets", huge)) ==
        "x.json: /summary/chain_length/buckets: 1000000 elements, more than the 48 a snapshot may have");
  CHECK(error_of(with(doc, "/summary/chain_length/buckets/1/le", 0)) ==
        "x.json: /summary/chain_length/buckets/1/le: bucket bounds must rise");
  CHECK(error_of(with(doc, "/summary/chain_length/mean", nullptr)) ==
        "x.json: /summary/chain_length/mean: expected a number, got null");

  // The recorder's trigger must point into the series.
  CHECK(error_of(with(doc, "/trigger", {{"causes", {"chaintoolong"}}, {"interval", 10}})) ==
        "x.json: /trigger/interval: past the last interval");
  CHECK(error_of(with(doc, "/trigger", {{"causes", {"boredom"}}, {"interval", 1}})) ==
        "x.json: /trigger/causes/0: not a drop cause");
  CHECK(error_of(with(doc, "/trigger", {{"causes", {"chaintoolong"}}, {"interval", 9}})) == "");
}

TEST_CASE("netns names and the busiest sources: summary and intervals, read back byte for byte") {
  auto meta = fixture::meta();
  meta.who = fixture::who();
  auto doc = make_snapshot(meta, fixture::series(4, 3, 3), true);
  CHECK(doc["summary"]["by_netns"][0] == json{{"netns", 4026532000}, {"name", "ctbpf-a"}, {"inserts", 1000}, {"destroys", 250}});
  CHECK(doc["intervals"][0]["by_netns"][0]["name"] == "ctbpf-a");
  CHECK_FALSE(doc["intervals"][0].contains("by_source"));  // sources: the window's end only
  const auto& s = doc["summary"]["by_source"];
  CHECK(s["top"] == 1);
  CHECK(s["untracked"] == 3);
  REQUIRE(s["by_live"].size() == 2);
  CHECK(s["by_live"][0] == json{{"netns", 4026532000}, {"name", "ctbpf-a"}, {"src", "fd00::1"}, {"live", 250},
                                {"inserts", 250}, {"destroys", 0}, {"inserts_per_s", 25.0}});
  CHECK(s["by_live"][1] == json{{"netns", "other"}, {"name", nullptr}, {"src", "other"}, {"live", 205},
                                {"inserts", 305}, {"destroys", 100}, {"inserts_per_s", 30.5}});
  REQUIRE(s["by_inserts"].size() == 2);
  CHECK(s["by_inserts"][0]["src"] == "127.0.0.2");
  CHECK(s["by_inserts"][1]["inserts"] == 255);

  auto bytes = snapshot_bytes(doc);
  CHECK(snapshot_bytes(read_snapshot(bytes, "x.json")) == bytes);

  SUBCASE("an unknown netns has a null name; odd bytes in a name are made printable") {
    auto who = fixture::who();
    who.top = 5;
    who.netns_names[4026532000] = "a\x1b[2J\xc3\xa9";
    meta.who = who;
    auto named = make_snapshot(meta, fixture::series(1, 0), true);
    CHECK(named["summary"]["by_netns"][0]["name"] == "a?[2J??");
    CHECK(named["summary"]["by_source"]["by_live"].size() == 4);  // all four, no other row
    CHECK(named["summary"]["by_source"]["by_live"][3]["src"] == "10.1.2.3");
    CHECK(named["summary"]["by_source"]["by_live"][3]["name"].is_null());
    CHECK(error_of(named) == "");
  }
  SUBCASE("not observable (tracepoint mode) is null; not asked for (no --top) is absent, as in older files") {
    auto who = fixture::who();
    who.sources.reset();
    meta.who = who;
    CHECK(make_snapshot(meta, fixture::series(1, 0), true)["summary"]["by_source"].is_null());
    who.top = 0;
    meta.who = who;
    CHECK_FALSE(make_snapshot(meta, fixture::series(1, 0), true)["summary"].contains("by_source"));
    CHECK_FALSE(fixture::document()["summary"]["by_netns"][0].contains("name"));
  }
  SUBCASE("report shows the names and both top lists") {
    auto text = report_text(doc, 100);
    CHECK(text.find("  inserts by netns:\n          1000  ctbpf-a (4026532000)\n") != std::string::npos);
    CHECK(text.find("  top sources by live entries:\n"
                    "           250 live        250 inserts  fd00::1  netns ctbpf-a\n"
                    "           205 live        305 inserts  other\n") != std::string::npos);
    CHECK(text.find("  top sources by inserts:\n"
                    "           200 live        300 inserts  127.0.0.2  netns ctbpf-a\n") != std::string::npos);
    CHECK(text.find("3 inserts/destroys beyond the source map's bound were not attributed") != std::string::npos);
  }
}

TEST_CASE("names and sources are checked like every other field") {
  auto meta = fixture::meta();
  meta.who = fixture::who();
  const auto doc = make_snapshot(meta, fixture::series(4, 3, 3), true);
  REQUIRE(error_of(doc) == "");
  CHECK(error_of(with(doc, "/summary/by_netns/0/name", 7)) ==
        "x.json: /summary/by_netns/0/name: expected a string, got an unsigned integer");
  CHECK(error_of(with(doc, "/intervals/3/by_netns/0/name", std::string(256, 'n'))) ==
        "x.json: /intervals/3/by_netns/0/name: 256 bytes, more than 255");
  CHECK(error_of(with(doc, "/summary/by_netns/0/name", "a\nb")) ==
        "x.json: /summary/by_netns/0/name: holds characters other than printable ASCII");
  CHECK(error_of(with(doc, "/summary/by_source", json::array())) ==
        "x.json: /summary/by_source: expected an object or null, got an array");
  CHECK(error_of(with(doc, "/summary/by_source/top", 0)) == "x.json: /summary/by_source/top: 0 is not between 1 and 1000");
  CHECK(error_of(with(doc, "/summary/by_source/top", 1001)) ==
        "x.json: /summary/by_source/top: 1001 is not between 1 and 1000");
  auto rows = doc["summary"]["by_source"]["by_live"];
  rows.insert(rows.begin(), rows[0]);
  CHECK(error_of(with(doc, "/summary/by_source/by_live", rows)) ==
        "x.json: /summary/by_source/by_live: 3 elements, more than the 2 a snapshot may have");
  CHECK(error_of(with(doc, "/summary/by_source/by_inserts/0/src", "999.1.1.1")) ==
        "x.json: /summary/by_source/by_inserts/0/src: expected an IPv4 or IPv6 address");
  CHECK(error_of(with(doc, "/summary/by_source/by_inserts/1/src", "10.0.0.1")) ==
        "x.json: /summary/by_source/by_inserts/1/src: expected \"other\" (the netns is \"other\")");
  CHECK(error_of(with(doc, "/summary/by_source/by_live/0/netns", "other")) ==
        "x.json: /summary/by_source/by_live/0/netns: the \"other\" row must be the last");
  CHECK(error_of(with(doc, "/summary/by_source/by_live/0/live", 1.5)) ==
        "x.json: /summary/by_source/by_live/0/live: expected an integer, got a fraction");
  CHECK(error_of(with(doc, "/summary/by_source/by_live/0/live", -4)) == "");  // destroys of entries from before the start
  CHECK(error_of(with(doc, "/summary/by_source/by_live/0/inserts_per_s", -1)) ==
        "x.json: /summary/by_source/by_live/0/inserts_per_s: -1 is out of range");
  auto nameless = doc;
  nameless["summary"]["by_source"]["by_live"][0].erase("name");
  CHECK(error_of(nameless) == "x.json: /summary/by_source/by_live/0/name: missing");
  CHECK(error_of(with(doc, "/summary/by_source", nullptr)) == "");
}

TEST_CASE("bytes that are not a snapshot: truncated, random, nested, too big") {
  const auto bytes = snapshot_bytes(fixture::document());
  auto truncated = bytes.substr(0, bytes.size() / 2);
  CHECK(error_of_bytes(truncated).rfind(fmt::format("x.json: byte {}: not valid JSON (", truncated.size() + 1), 0) == 0);
  CHECK(error_of_bytes("") == "x.json: byte 1: not valid JSON (syntax error while parsing value - unexpected end of input; expected '[', '{', or a literal)");
  CHECK(error_of_bytes("\x89PNG\r\n\x1a\n\x01\xff") ==
        "x.json: byte 1: not valid JSON (syntax error while parsing value - invalid literal)");
  CHECK(error_of_bytes(std::string(100000, '[')) == "x.json: byte 33: nested deeper than 32 levels");
  CHECK(error_of_bytes("{\"a\": \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}") == "x.json: /schema_version: missing");
  CHECK(error_of_bytes(std::string(kSnapshotMaxBytes + 1, ' ')) ==
        fmt::format("x.json: {} bytes, more than the {} a snapshot may have", kSnapshotMaxBytes + 1,
                    kSnapshotMaxBytes));
  CHECK(error_of_bytes("1e400") == "x.json: not valid JSON (number overflow parsing '1e400')");
  // Every message is one line, whatever the bytes.
  for (const char* junk : {"{\"schema_version\":1,\"\n\":", "\"\x01\x02\"", "{\"\xc3\x28\": 1}", "nul\n\nl"})
    CHECK(error_of_bytes(junk).find('\n') == std::string::npos);
}
