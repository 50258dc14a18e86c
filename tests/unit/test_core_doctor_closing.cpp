// SPDX-License-Identifier: Apache-2.0
// doctor's timeout rule by TCP state: tcp_closing_states.
#include <doctest/doctest.h>

#include "test_core_doctor_fixture.h"

using namespace ctbpf::core;
using namespace doctor_fixture;

TEST_CASE("tcp_closing_states: a table of TIME_WAIT entries, the time_wait cure computed from idle times") {
  auto in = edge_gateway();
  auto d = diagnose(in);
  auto* f = find(d, "tcp_closing_states");
  REQUIRE(f);
  CHECK(f->severity == Severity::info);  // no pressure, nothing cut
  CHECK(f->evidence["closing_live"] == 2000);
  CHECK(f->evidence["entries"] == 2100);
  CHECK(f->evidence["closing_share"].get<double>() == doctest::Approx(2000.0 / 2100));
  CHECK(f->evidence["fired_by_table_share"] == true);
  CHECK(f->evidence["fired_by_growth_share"] == false);
  CHECK(f->evidence["growth"].is_null());  // no dump at the window's start
  const auto& tw = f->evidence["states"]["TIME_WAIT"];
  CHECK(tw["live"] == 2000);
  CHECK(tw["nat"] == 0);
  CHECK(tw["timeout_s"] == 120);
  CHECK(tw["proposed_s"] == 30);
  CHECK(tw["would_free"] == 800);  // exactly those idle 30 s or more
  CHECK(tw["would_cut"] == 0);     // closed connections: nothing in use to cut
  CHECK(tw["withheld"] == false);
  CHECK(tw["idle"]["count"] == 2000);
  CHECK(tw["idle"]["max"] == 50000);
  CHECK(tw["deaths_in_window"] == 0);  // fentry: measured, none died
  CHECK(tw["held_at_proposed_at_most"].is_null());
  // Every state has its keys, live or not.
  CHECK(f->evidence["states"]["CLOSE_WAIT"]["live"] == 0);
  CHECK(f->evidence["states"]["CLOSE_WAIT"]["proposed_s"].is_null());
  CHECK(f->evidence["states"].size() == 6);
  CHECK(f->evidence["would_free"] == 800);
  CHECK(f->evidence["proposed"] == nlohmann::json{{"tcp_timeout_time_wait", 30}});
  CHECK(f->evidence["tcp_timestamps"] == 1);
  CHECK(f->fix_now == std::vector<std::string>{"sysctl -w net.netfilter.nf_conntrack_tcp_timeout_time_wait=30"});
  CHECK(has_line(f->fix_persistent, "echo 'net.netfilter.nf_conntrack_tcp_timeout_time_wait = 30' >> "
                                    "/etc/sysctl.d/90-conntrack.conf"));
  CHECK(has_line(f->fix_persistent, "/etc/modules-load.d/nf_conntrack.conf"));
  CHECK(f->title.find("95% of the table is in closing TCP states (2000 of 2100 entries)") != std::string::npos);
  CHECK(f->title.find("would free 800") != std::string::npos);
  CHECK(f->measured.find("TIME_WAIT 2000 (95.2%), timeout 120 s") != std::string::npos);
  CHECK(f->measured.find("800 idle 30 s or more") != std::string::npos);
  CHECK(f->why.find("2 MSL") != std::string::npos);
  CHECK(f->why.find("PAWS") != std::string::npos);
  CHECK(f->why.find("tcp_tw_reuse (= 2)") != std::string::npos);
  CHECK(f->why.find("None of these entries is NAT'd") != std::string::npos);
  // Only the states present explain themselves.
  CHECK(f->why.find("CLOSE_WAIT:") == std::string::npos);
}

TEST_CASE("tcp_closing_states: does not fire on a small table, a small share, or without a dump") {
  auto in = healthy();
  default_timeouts(in.sysctls);
  IdleSummary idle;
  add_entries(idle, in.sysctls, kTcp, kTimeWait, 99, 50);  // all closing, but fewer than 100
  in.idle = idle;
  CHECK_FALSE(find(diagnose(in), "tcp_closing_states"));

  in.idle = IdleSummary{};
  add_entries(*in.idle, in.sysctls, kTcp, kTimeWait, 400, 50);
  add_entries(*in.idle, in.sysctls, kTcp, kEstablished, 401, 5);  // closing below half
  CHECK_FALSE(find(diagnose(in), "tcp_closing_states"));

  in.idle.reset();
  auto d = diagnose(in);
  CHECK_FALSE(find(d, "tcp_closing_states"));
  CHECK(unmeasured(d, "live entries per TCP state and protocol"));
}

TEST_CASE("tcp_closing_states: fires on the share of the growth, from the dump at the window's start") {
  auto in = healthy();
  default_timeouts(in.sysctls);
  IdleSummary start, end;
  add_entries(start, in.sysctls, kTcp, kEstablished, 1000, 5);
  add_entries(end, in.sysctls, kTcp, kEstablished, 1050, 5);
  add_entries(end, in.sysctls, kTcp, kFinWait, 150, 40);  // the growth: 200, 150 of it closing
  in.idle_start = start;
  in.idle = end;
  auto d = diagnose(in);
  auto* f = find(d, "tcp_closing_states");
  REQUIRE(f);
  CHECK(f->evidence["fired_by_table_share"] == false);
  CHECK(f->evidence["fired_by_growth_share"] == true);
  CHECK(f->evidence["growth"] == 200);
  CHECK(f->evidence["closing_growth"] == 150);
  CHECK(f->evidence["closing_growth_share"].get<double>() == doctest::Approx(0.75));
  CHECK(f->measured.find("grew by +200 entries in the window, closing states by +150 (75%)") != std::string::npos);
  // FIN_WAIT may still carry data one way: its idle entries are connections that would be cut.
  const auto& fw = f->evidence["states"]["FIN_WAIT"];
  CHECK(fw["would_free"] == 150);
  CHECK(fw["would_cut"] == 150);
  CHECK(fw["withheld"] == true);
  CHECK(fw["proposed_s"].is_null());
  CHECK(f->fix_now.empty());
  CHECK(f->fix_persistent.empty());
  CHECK(f->severity == Severity::warning);
  CHECK(f->why.find("tcp_retries2 = 15 times, giving up after 924.6 s; 30 s covers 7 retransmissions") !=
        std::string::npos);

  // A growth under 100 entries, or a capped dump at either end, says nothing.
  in.idle_start->dump.stopped = DumpStop::max_seconds;
  CHECK_FALSE(find(diagnose(in), "tcp_closing_states"));
  in.idle_start->dump.stopped = DumpStop::none;
  in.idle_start = IdleSummary{};
  add_entries(*in.idle_start, in.sysctls, kTcp, kEstablished, 1050, 5);
  add_entries(*in.idle_start, in.sysctls, kTcp, kFinWait, 60, 40);  // growth 90
  CHECK_FALSE(find(diagnose(in), "tcp_closing_states"));
}

TEST_CASE("tcp_closing_states: idle half-closed connections are a warning, not a blind proposal") {
  auto in = edge_gateway();
  add_entries(*in.idle, in.sysctls, kTcp, kCloseWait, 300, 45);  // idle past 30 s: leaks, or in use
  add_entries(*in.idle, in.sysctls, kTcp, kCloseWait, 100, 5);
  auto d = diagnose(in);
  auto* f = find(d, "tcp_closing_states");
  REQUIRE(f);
  CHECK(f->severity == Severity::warning);
  const auto& cw = f->evidence["states"]["CLOSE_WAIT"];
  CHECK(cw["live"] == 400);
  CHECK(cw["would_free"] == 300);
  CHECK(cw["would_cut"] == 300);
  CHECK(cw["withheld"] == true);
  CHECK(cw["proposed_s"].is_null());
  CHECK(cw["considered_s"] == 30);
  CHECK(f->evidence["would_cut"] == 300);
  CHECK(f->evidence["would_free"] == 800);  // TIME_WAIT's only: close_wait is not proposed
  // TIME_WAIT's proposal stands; close_wait's command is only in the warning.
  CHECK(f->fix_now == std::vector<std::string>{"sysctl -w net.netfilter.nf_conntrack_tcp_timeout_time_wait=30"});
  CHECK_FALSE(has_line(f->fix_persistent, "close_wait"));
  CHECK(f->title.find("300 idle half-open connections would be cut") != std::string::npos);
  CHECK(f->why.find("CLOSE_WAIT: 300 live entries idle 30 s or more (max 45 s) would be gone under 30 s") !=
        std::string::npos);
  CHECK(f->why.find("long-poll") != std::string::npos);
  CHECK(f->why.find("ss -tan state close-wait") != std::string::npos);
  CHECK(f->why.find("sysctl -w net.netfilter.nf_conntrack_tcp_timeout_close_wait=30") != std::string::npos);

  // All of them recently active: nothing to free, nothing cut, nothing proposed for close_wait.
  in = edge_gateway();
  add_entries(*in.idle, in.sysctls, kTcp, kCloseWait, 300, 5);
  f = find(d = diagnose(in), "tcp_closing_states");
  REQUIRE(f);
  CHECK(f->severity == Severity::info);
  CHECK(f->evidence["states"]["CLOSE_WAIT"]["would_free"] == 0);
  CHECK(f->evidence["states"]["CLOSE_WAIT"]["withheld"] == false);
  CHECK(f->evidence["states"]["CLOSE_WAIT"]["proposed_s"].is_null());
  CHECK(f->fix_now.size() == 1);
}

TEST_CASE("tcp_closing_states: every state's why, and a timeout already at the proposal") {
  auto in = edge_gateway();
  in.sysctls["tcp_timeout_last_ack"] = 120;  // raised: 30 s is then a proposal
  in.sysctls["tcp_timeout_time_wait"] = 30;  // already there: nothing to propose
  in.idle = IdleSummary{};
  add_entries(*in.idle, in.sysctls, kTcp, kSynSent, 100, 5);
  add_entries(*in.idle, in.sysctls, kTcp, kSynRecv, 100, 5);
  add_entries(*in.idle, in.sysctls, kTcp, kFinWait, 100, 5);
  add_entries(*in.idle, in.sysctls, kTcp, kCloseWait, 100, 5);
  add_entries(*in.idle, in.sysctls, kTcp, kLastAck, 100, 100);
  add_entries(*in.idle, in.sysctls, kTcp, kTimeWait, 100, 25);
  auto d = diagnose(in);
  auto* f = find(d, "tcp_closing_states");
  REQUIRE(f);
  for (const char* s : {"SYN_SENT: a SYN not answered", "SYN_RECV: a SYN answered", "FIN_WAIT: a FIN not",
                        "CLOSE_WAIT: one side sent its FIN", "LAST_ACK: both FINs sent", "TIME_WAIT: both sides"})
    CHECK_MESSAGE(f->why.find(s) != std::string::npos, s);
  CHECK(f->why.find("up to tcp_retries2 = 15 times (924.6 s), 7 within 30 s") != std::string::npos);
  // LAST_ACK carries no data: its idle entries are freed, not cut.
  CHECK(f->evidence["states"]["LAST_ACK"]["would_free"] == 100);
  CHECK(f->evidence["states"]["LAST_ACK"]["would_cut"] == 0);
  CHECK(f->evidence["states"]["TIME_WAIT"]["would_free"] == 0);
  CHECK(f->evidence["states"]["TIME_WAIT"]["proposed_s"].is_null());
  CHECK(f->fix_now == std::vector<std::string>{"sysctl -w net.netfilter.nf_conntrack_tcp_timeout_last_ack=30"});
  CHECK(f->evidence["would_cut"] == 0);
}

TEST_CASE("tcp_closing_states: NAT'd TIME_WAIT waits the endpoints' 60 s; without PAWS it is not shortened") {
  auto in = edge_gateway();
  in.idle = IdleSummary{};
  add_entries(*in.idle, in.sysctls, kTcp, kTimeWait, 500, 40, (1 << 2) | kSrcNat);
  add_entries(*in.idle, in.sysctls, kTcp, kTimeWait, 300, 90, (1 << 2) | kSrcNat);
  auto d = diagnose(in);
  auto* f = find(d, "tcp_closing_states");
  REQUIRE(f);
  const auto& tw = f->evidence["states"]["TIME_WAIT"];
  CHECK(tw["nat"] == 800);
  CHECK(tw["considered_s"] == 60);
  CHECK(tw["would_free"] == 300);  // idle 60 s or more
  CHECK(tw["proposed_s"] == 60);
  CHECK(f->fix_now == std::vector<std::string>{"sysctl -w net.netfilter.nf_conntrack_tcp_timeout_time_wait=60"});
  CHECK(f->measured.find("800 NAT'd") != std::string::npos);
  CHECK(f->why.find("800 of these entries are NAT'd") != std::string::npos);
  CHECK(f->why.find("considered at 60 s here, not 30 s") != std::string::npos);

  in.tcp_sysctls["tcp_timestamps"] = 0;
  f = find(d = diagnose(in), "tcp_closing_states");
  REQUIRE(f);
  CHECK(f->evidence["states"]["TIME_WAIT"]["withheld"] == true);
  CHECK(f->evidence["states"]["TIME_WAIT"]["proposed_s"].is_null());
  CHECK(f->evidence["states"]["TIME_WAIT"]["would_cut"] == 0);
  CHECK(f->fix_now.empty());
  CHECK(f->why.find("no PAWS (net.ipv4.tcp_timestamps = 0)") != std::string::npos);
}

TEST_CASE("tcp_closing_states: pressure makes it a warning; deaths bound what the proposal holds") {
  auto in = edge_gateway();
  in.window.table = {60000, 65536, 65536};  // 92% full
  in.window.totals.detail->tcp_deaths_by_state[kTimeWait] = 100;  // 10/s over the 10 s window
  auto d = diagnose(in);
  auto* f = find(d, "tcp_closing_states");
  REQUIRE(f);
  CHECK(f->severity == Severity::warning);
  CHECK(f->evidence["states"]["TIME_WAIT"]["deaths_in_window"] == 100);
  CHECK(f->evidence["states"]["TIME_WAIT"]["held_at_proposed_at_most"].get<double>() == doctest::Approx(300));

  // Tracepoint mode sees no deaths: null, not 0; the rule still works from the dump.
  auto tp = tracepoint(edge_gateway());
  f = find(d = diagnose(tp), "tcp_closing_states");
  REQUIRE(f);
  CHECK(f->evidence["states"]["TIME_WAIT"]["deaths_in_window"].is_null());
  CHECK(f->evidence["tcp_lifetime_p99_ms"].is_null());
  CHECK(f->evidence["states"]["TIME_WAIT"]["would_free"] == 800);
}

TEST_CASE("tcp_closing_states in doctor_json and doctor_text") {
  auto in = edge_gateway();
  auto d = diagnose(in);
  auto j = doctor_json(in, d);

  bool found = false;
  for (const auto& x : j["findings"])
    if (x["id"] == "tcp_closing_states") {
      found = true;
      CHECK(x["evidence"]["states"]["TIME_WAIT"]["live"] == 2000);
      CHECK(x["fix_now"].size() == 1);
    }
  CHECK(found);
  CHECK(j["summary"]["idle_ms"]["live_by_tcp_state"]["TIME_WAIT"] == 2000);
  CHECK(j["summary"]["idle_ms"]["live_by_proto"]["tcp"] == 2100);
  auto text = doctor_text(in, d);
  CHECK(text.find("tcp_closing_states: 95% of the table is in closing TCP states") != std::string::npos);
  CHECK(text.find("sysctl -w net.netfilter.nf_conntrack_tcp_timeout_time_wait=30") != std::string::npos);
}
