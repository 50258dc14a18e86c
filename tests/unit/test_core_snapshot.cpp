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

TEST_CASE("a snapshot holds the summary exactly as trace --json prints it, and every interval") {
  auto samples = fixture::series(4, 3, 3);
  Aggregator agg(Mode::fentry, fixture::full_probes());
  std::vector<Report> intervals;
  for (const auto& s : samples)
    if (auto r = agg.add(s)) intervals.push_back(*r);
  auto doc = make_snapshot(fixture::meta(), agg.summary(), intervals);
  CHECK(doc["summary"] == summary_json(agg.summary(), Mode::fentry, fixture::full_probes()));
  REQUIRE(doc["intervals"].size() == 10);
  CHECK(doc["intervals"][5] == interval_json(intervals[5], fixture::full_probes()));
  CHECK(doc["schema_version"] == 1);
  CHECK(doc["type"] == "snapshot");
  CHECK(doc["host"] == "gw-1");
  CHECK(doc["mode"] == "fentry");
  CHECK(doc["window"]["start"] == "2024-05-06T07:08:09.123Z");
  CHECK(doc["window"]["end"] == "2024-05-06T07:08:19.123Z");
  CHECK(doc["window"]["duration_s"] == 10.0);
  CHECK(doc["sysctls"]["tcp_timeout_established"] == 432000);
  CHECK(doc["trigger"].is_null());
  CHECK(doc["summary"]["drops"]["chaintoolong"] == 150);
  CHECK(doc["summary"]["chain_length"]["count"] == 1000);

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
