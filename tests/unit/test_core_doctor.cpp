// SPDX-License-Identifier: Apache-2.0
// doctor: the /proc parsers and the arithmetic behind the recommendations, the severity order, what is
// listed as unmeasured, and the JSON and text output.
#include <doctest/doctest.h>

#include "test_core_doctor_fixture.h"

using namespace ctbpf::core;
using namespace doctor_fixture;

TEST_CASE("parsers of /proc/slabinfo and /proc/meminfo") {
  const std::string slabinfo =
      "slabinfo - version: 2.1\n"
      "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables ...\n"
      "nf_conntrack_expect      0      0    208   19    1 : tunables    0    0    0 : slabdata 0 0 0\n"
      "nf_conntrack         112    176    256   16    1 : tunables    0    0    0 : slabdata     11     11      0\n";
  CHECK(parse_slabinfo_object_size(slabinfo, "nf_conntrack") == 256);
  CHECK(parse_slabinfo_object_size(slabinfo, "nf_conntrack_expect") == 208);
  CHECK_FALSE(parse_slabinfo_object_size(slabinfo, "ip_conntrack").has_value());
  CHECK_FALSE(parse_slabinfo_object_size("", "nf_conntrack").has_value());
  CHECK(parse_meminfo_total("MemTotal:        2014280 kB\nMemFree: 1 kB\n") == uint64_t{2014280} * 1024);
  CHECK_FALSE(parse_meminfo_total("MemFree: 1 kB\n").has_value());
}

TEST_CASE("the arithmetic: powers of two, bucket recommendation, memory of a full table") {
  CHECK(next_power_of_two(0) == 1);
  CHECK(next_power_of_two(1) == 1);
  CHECK(next_power_of_two(4600) == 8192);
  CHECK(next_power_of_two(65536) == 65536);
  CHECK(recommend_buckets(65536, 512) == 65536);
  CHECK(recommend_buckets(100, 512) == 1024);          // the kernel's floor
  CHECK(recommend_buckets(8192, 262144) == 262144);    // never fewer than now
  CHECK(table_memory_bytes(8192, 65536, 256) == 8192 * 256 + 65536 * 8);
}

TEST_CASE("severity order: critical, then warning, then info; rule order within each") {
  auto in = healthy();
  in.window.table = {300, 300, 65536};
  in.table_start = in.window.table;
  in.window.totals.drops.table_full = 10;
  in.window.totals.drops.early_drop = 4;
  in.window.totals.drops.clash_resolve = 1;
  in.sysctls["tcp_timeout_established"] = 432000;
  auto d = diagnose(in);
  std::vector<std::string> ids;
  for (const auto& f : d.findings) ids.push_back(f.id);
  CHECK(ids == std::vector<std::string>{"table_fill", "drop_table_full", "drop_early_drop",
                                        "tcp_timeout_established", "drop_clash_resolve", "memory"});
  CHECK(std::is_sorted(d.findings.begin(), d.findings.end(),
                       [](const Finding& a, const Finding& b) { return a.severity < b.severity; }));
}

TEST_CASE("doctor_json: inputs, the trace summary, unmeasured, findings with stable keys") {
  auto in = healthy();
  in.window.totals.chain = chain_of({{3, 10}});
  auto d = diagnose(in);
  auto j = doctor_json(in, d);
  CHECK(j["type"] == "doctor");
  CHECK(j["mode"] == "fentry");
  CHECK(j["inputs"]["table"]["max"] == 65536);
  CHECK(j["inputs"]["memory"]["slab_object_size"] == 256);
  CHECK(j["inputs"]["memory"]["conntrack"] == "module");
  CHECK(j["inputs"]["sysctls"]["udp_timeout"] == 30);
  CHECK(j["summary"]["type"] == "summary");
  CHECK(j["summary"]["chain_length"]["p99"] == 3);
  REQUIRE(j["findings"].is_array());
  REQUIRE(j["findings"].size() == d.findings.size());
  for (const auto& f : j["findings"]) {
    for (const char* key : {"id", "severity", "title", "measured", "evidence", "why", "fix_now", "fix_persistent"})
      CHECK_MESSAGE(f.contains(key), key);
  }
  CHECK(j["findings"][0]["severity"] == "info");
  CHECK(j["unmeasured"].is_array());

  auto text = doctor_text(in, d);
  CHECK(text.find("[INFO] table_fill") != std::string::npos);
  CHECK(text.find("nothing was changed") != std::string::npos);
}

TEST_CASE("idle time: capped dumps and unestimated entries are listed as unmeasured") {
  auto in = healthy();
  IdleSummary idle;
  idle.dump = {.ok = true, .entries = 4, .seconds = 0.5, .stopped = DumpStop::max_entries, .limit = {4, 2}};
  add_established(idle, in.sysctls, 3, 7000);  // idle 200 s of healthy()'s 7200
  DumpedEntry sctp;
  sctp.l4 = 132;
  sctp.timeout_s = 10;
  add_idle(idle, sctp, in.sysctls);
  in.idle = idle;
  auto d = diagnose(in);
  CHECK(unmeasured(d, "idle time of every entry"));
  CHECK(unmeasured(d, "idle time of 1 entries"));
  CHECK_FALSE(unmeasured(d, "idle time per protocol"));
  // Said in the text before the figures it qualifies, and in JSON for both dumps.
  CHECK(doctor_text(in, d).find("\n  the ctnetlink dump stopped early: 4 of 1000 entries read in 0.5 s "
                                "(--dump-max-entries 4)\n") != std::string::npos);
  auto j = doctor_json(in, d);
  CHECK(j["inputs"]["dumps"]["end"]["stopped_early"] == true);
  CHECK(j["inputs"]["dumps"]["end"]["entries"] == 4);
  CHECK(j["inputs"]["dumps"]["start"].is_null());
  CHECK(j["summary"]["idle_ms"]["capped"] == true);
  CHECK(j["summary"]["idle_ms"]["cap"] == 4);
  // A whole dump: no such line.
  in.idle->dump.stopped = DumpStop::none;
  CHECK(doctor_text(in, diagnose(in)).find("stopped early") == std::string::npos);
}

TEST_CASE("idle time in doctor_json (summary.idle_ms) and doctor_text, in tracepoint mode too") {
  auto in = tracepoint(healthy());
  in.sysctls["tcp_timeout_established"] = 432000;
  IdleSummary idle;
  add_established(idle, in.sysctls, 20, 432000 - 6);
  in.idle = idle;
  auto d = diagnose(in);
  auto j = doctor_json(in, d);
  CHECK(j["summary"]["type"] == "summary");  // the trace summary's keys unchanged
  CHECK(j["summary"].contains("lifetime_ms"));
  CHECK(j["summary"]["idle_ms"]["entries"] == 20);
  CHECK(j["summary"]["idle_ms"]["by_tcp_state"]["ESTABLISHED"]["count"] == 20);
  CHECK(j["summary"]["idle_ms"]["by_tcp_state"]["ESTABLISHED"]["min"] == 6000);
  CHECK(j["summary"]["idle_ms"]["by_proto"]["tcp"]["max"] == 6000);
  CHECK_FALSE(unmeasured(d, "idle"));  // tracepoint mode measures it: ctnetlink and sysctls only
  auto* f = find(d, "tcp_timeout_established");
  REQUIRE(f);
  CHECK(f->evidence["established_live"] == 20);
  auto text = doctor_text(in, d);
  // Percentiles are slot bounds clamped to the exact max: never "p99 ≤ 8 s, max 6 s".
  CHECK(text.find("idle since the last packet (20 live entries): tcp 20 p50 ≤ 6 s, p99 ≤ 6 s, max 6 s") !=
        std::string::npos);
  CHECK(text.find("idle by TCP state: ESTABLISHED 20") != std::string::npos);

  in.idle.reset();
  j = doctor_json(in, diagnose(in));
  CHECK(j["summary"]["idle_ms"].is_null());
}

TEST_CASE("retransmission arithmetic: tcp_retries2 = 15 gives up after 924.6 s; 7 within 30 s") {
  CHECK(retransmission_give_up_s(15) == doctest::Approx(924.6));
  CHECK(retransmission_give_up_s(0) == doctest::Approx(0.2));
  CHECK(retransmissions_within(30) == 7);  // sent at 0.2, 0.6, 1.4, 3.0, 6.2, 12.6, 25.4 s
  CHECK(retransmissions_within(25.5) == 7);
  CHECK(retransmissions_within(25.3) == 6);
  CHECK(retransmissions_within(0.1) == 0);
}

// Issue 34: doctor's text keeps to 100 columns (it had lines of up to 699): prose is wrapped, each
// command stays whole on its own line, to be copied as it is.
TEST_CASE("doctor text: prose within 100 columns, commands whole") {
  auto in = doctor_fixture::healthy();
  auto d = diagnose(in);
  Finding x;
  x.id = "long_one";
  x.severity = Severity::warning;
  x.title = std::string(30, 't') + " " + std::string(30, 't') + " " + std::string(50, 't');
  x.measured = "";
  x.why = "";
  for (int i = 0; i < 60; ++i) {
    x.measured += "measured ";
    x.why += "because ";
  }
  const std::string command = "nft add chain inet no_conntrack prerouting '{ type filter hook prerouting priority "
                              "raw; policy accept; }' && echo a command longer than a hundred columns";
  x.fix_now = {command};
  x.fix_persistent = {"echo short"};
  d.findings.push_back(x);
  d.unmeasured.push_back({"something", std::string(20, 'w') + " " + [] {
                            std::string s;
                            for (int i = 0; i < 40; ++i) s += "unmeasured ";
                            return s;
                          }()});
  const auto text = doctor_text(in, d);
  CHECK(text.find("\n    " + command + "\n") != std::string::npos);
  CHECK(text.find("\n    echo short\n") != std::string::npos);
  CHECK(text.find("[WARNING] long_one:") != std::string::npos);
  std::size_t widest = 0;
  for (std::size_t at = 0, end = 0; at < text.size(); at = end + 1) {
    end = std::min(text.find('\n', at), text.size());
    const auto line = text.substr(at, end - at);
    if (line != "    " + command) widest = std::max(widest, line.size());
  }
  CHECK(widest <= 100);
}

// Issue 34: doctor names the netns whose table, statistics and dumps it read (text and JSON).
TEST_CASE("doctor: names the netns of the table") {
  auto in = doctor_fixture::healthy();
  const auto d = diagnose(in);
  CHECK(doctor_text(in, d).find("table, kernel stats and dumps:") == std::string::npos);
  CHECK(doctor_json(in, d)["summary"]["own_netns"].is_null());
  in.own_netns = OwnNetns{4026532288, "ctns1"};
  CHECK(doctor_text(in, d).find("\n  table, kernel stats and dumps: netns ctns1 (inode 4026532288)\n") !=
        std::string::npos);
  CHECK(doctor_json(in, d)["summary"]["own_netns"] == nlohmann::json{{"inode", 4026532288u}, {"name", "ctns1"}});
}
