// SPDX-License-Identifier: Apache-2.0
// doctor's timeout rules by protocol: tcp_timeout_established, udp_timeout, stateless_udp, icmp_timeout
// and generic_timeout.
#include <doctest/doctest.h>

#include "test_core_doctor_fixture.h"

using namespace ctbpf::core;
using namespace doctor_fixture;

TEST_CASE("tcp_timeout_established: 5 days against the lifetimes seen") {
  auto in = healthy();
  in.sysctls["tcp_timeout_established"] = 432000;
  auto d = diagnose(in);
  auto* f = find(d, "tcp_timeout_established");
  REQUIRE(f);
  CHECK(f->severity == Severity::info);  // no pressure on the table
  CHECK(f->evidence["proposed_s"] == 10800);
  CHECK(f->evidence["tcp_lifetime_p99_ms"].is_null());  // no TCP entry ended
  CHECK(f->fix_now == std::vector<std::string>{"sysctl -w net.netfilter.nf_conntrack_tcp_timeout_established=10800"});

  // Connections that live ~9.3 h (log2 slot 25: up to 33554431 ms): twice that, in whole hours.
  in.window.totals.detail->lifetime[CTBPF_PROTO_TCP] = lifetime_of(25, 10);
  d = diagnose(in);
  f = find(d, "tcp_timeout_established");
  REQUIRE(f);
  CHECK(f->evidence["proposed_s"] == 68400);  // 2 × 33555 s = 67110 s → 19 h
  CHECK(f->evidence["tcp_lifetime_p99_ms"] == 33554431);

  in.window.table.count = 60000;  // the table is under pressure: now a warning
  d = diagnose(in);
  REQUIRE(find(d, "tcp_timeout_established"));
  CHECK(find(d, "tcp_timeout_established")->severity == Severity::warning);

  in.sysctls["tcp_timeout_established"] = 86400;  // a day: not far beyond 19 h
  d = diagnose(in);
  CHECK(find(d, "tcp_timeout_established") == nullptr);
  in.sysctls.erase("tcp_timeout_established");  // unreadable
  d = diagnose(in);
  CHECK(find(d, "tcp_timeout_established") == nullptr);
}

TEST_CASE("UDP dominating inserts: udp_timeout and stateless_udp with the full nft rules") {
  auto in = healthy();
  auto& detail = *in.window.totals.detail;
  detail.inserts_by_proto[CTBPF_PROTO_UDP] = 20000;  // 2000/s × 30 s ≈ 60000 entries held
  detail.inserts_by_proto[CTBPF_PROTO_TCP] = 100;
  auto d = diagnose(in);
  auto* timeout = find(d, "udp_timeout");
  REQUIRE(timeout);
  CHECK(timeout->evidence["entries_held_estimate"].get<double>() == doctest::Approx(60000.0));
  CHECK(timeout->fix_now == std::vector<std::string>{"sysctl -w net.netfilter.nf_conntrack_udp_timeout=10"});
  auto* notrack = find(d, "stateless_udp");
  REQUIRE(notrack);
  CHECK(notrack->evidence["udp_share"].get<double>() == doctest::Approx(20000.0 / 20100));
  CHECK(notrack->evidence["top_ports"].is_null());  // not measured (tracepoint mode), and it says so
  CHECK(notrack->measured.find("not measured") != std::string::npos);
  CHECK(has_line(notrack->fix_now,
                 "nft add chain inet no_conntrack prerouting '{ type filter hook prerouting priority raw; policy accept; }'"));
  CHECK(has_line(notrack->fix_now, "nft add rule inet no_conntrack output udp dport 53 notrack"));
  CHECK(notrack->fix_now.front() == "nft add table inet no_conntrack");  // "notrack" is an nft keyword
  CHECK(has_line(notrack->fix_persistent, "/etc/nftables.conf"));

  // Measured ports: the rules name the busy ones (a tenth of UDP inserts or more), not a trickle.
  in.top_ports = std::vector<PortCount>{{17, 5353, 15000}, {6, 443, 100}, {17, 514, 4000}, {17, 123, 900}};
  d = diagnose(in);
  notrack = find(d, "stateless_udp");
  REQUIRE(notrack);
  CHECK(has_line(notrack->fix_now, "nft add rule inet no_conntrack output udp dport { 5353, 514 } notrack"));
  CHECK(notrack->evidence["top_ports"].size() == 2);
  CHECK(notrack->evidence["top_ports"][0]["port"] == 5353);
  CHECK(notrack->measured.find("5353 (15000 inserts), 514 (4000 inserts)") != std::string::npos);
  in.top_ports.reset();

  // A trickle of UDP (a few DNS lookups) is not worth a rule.
  detail.inserts_by_proto[CTBPF_PROTO_UDP] = 30;
  d = diagnose(in);
  CHECK(find(d, "udp_timeout") == nullptr);
  CHECK(find(d, "stateless_udp") == nullptr);
  // Mostly TCP: no NOTRACK advice even when UDP is heavy.
  detail.inserts_by_proto[CTBPF_PROTO_UDP] = 20000;
  detail.inserts_by_proto[CTBPF_PROTO_TCP] = 30000;
  d = diagnose(in);
  CHECK(find(d, "udp_timeout") != nullptr);
  CHECK(find(d, "stateless_udp") == nullptr);
}

TEST_CASE("tcp_timeout_established: idle times of the live entries are its evidence") {
  auto in = healthy();
  in.sysctls["tcp_timeout_established"] = 432000;
  IdleSummary idle;
  add_established(idle, in.sysctls, 600, 432000 - 60);       // busy: idle a minute
  add_established(idle, in.sysctls, 400, 432000 - 2 * 86400);  // silent for two days
  in.idle = idle;
  auto d = diagnose(in);
  auto* f = find(d, "tcp_timeout_established");
  REQUIRE(f);
  CHECK(f->evidence["proposed_s"] == 10800);
  CHECK(f->evidence["established_live"] == 1000);
  CHECK(f->evidence["established_idle_beyond_proposed"] == 400);
  CHECK(f->evidence["established_idle_max_ms"] == uint64_t{2} * 86400 * 1000);
  CHECK(f->evidence["established_idle_p50_ms"] == 65535);  // slot [32768, 65535] ms
  CHECK(f->title.find("400 live ones idle over 3.0 h") != std::string::npos);
  CHECK(f->measured.find("at least 400 (40%) idle longer than the proposed 10800 s") != std::string::npos);
  // 400 stale entries are over a quarter of the table's 1000: a warning without other pressure.
  CHECK(f->severity == Severity::warning);

  // A few stale entries in a big table: still info.
  in.window.table.count = 20000;
  in.table_start.count = 20000;
  in.peak_count = 20000;
  d = diagnose(in);
  REQUIRE(find(d, "tcp_timeout_established"));
  CHECK(find(d, "tcp_timeout_established")->severity == Severity::info);

  // Nobody idle beyond the proposal: no count in the title, 0 in the evidence.
  in.idle = IdleSummary{};
  add_established(*in.idle, in.sysctls, 10, 432000 - 5);
  d = diagnose(in);
  f = find(d, "tcp_timeout_established");
  REQUIRE(f);
  CHECK(f->evidence["established_idle_beyond_proposed"] == 0);
  CHECK(f->title.find("live ones") == std::string::npos);

  // An empty table: measured, nothing live.
  in.idle = IdleSummary{};
  d = diagnose(in);
  f = find(d, "tcp_timeout_established");
  REQUIRE(f);
  CHECK(f->evidence["established_live"] == 0);
  CHECK(f->evidence["established_idle_p99_ms"].is_null());
  CHECK(f->measured.find("no live ESTABLISHED entry") != std::string::npos);
  CHECK_FALSE(unmeasured(d, "idle time"));

  // No dump (ctnetlink refused): null evidence, and said so.
  in.idle.reset();
  d = diagnose(in);
  f = find(d, "tcp_timeout_established");
  REQUIRE(f);
  CHECK(f->evidence["established_live"].is_null());
  CHECK(f->evidence["established_idle_beyond_proposed"].is_null());
  CHECK(unmeasured(d, "idle time per protocol and TCP state"));
}

TEST_CASE("udp_timeout: live UDP idle times next to the lifetimes") {
  auto in = healthy();
  auto& detail = *in.window.totals.detail;
  detail.inserts_by_proto[CTBPF_PROTO_UDP] = 20000;
  IdleSummary idle;
  DumpedEntry udp;
  udp.l4 = 17;
  udp.timeout_s = 2;  // 28 s of 30 idle
  add_idle(idle, udp, in.sysctls);
  in.idle = idle;
  auto d = diagnose(in);
  auto* f = find(d, "udp_timeout");
  REQUIRE(f);
  CHECK(f->evidence["udp_idle_p99_ms"] == 28000);  // slot bound 32767, clamped to the one value seen
  CHECK(f->measured.find("live UDP entries idle") != std::string::npos);
}

TEST_CASE("icmp_timeout and generic_timeout: a measurable share, the entries a shorter timeout frees") {
  auto in = healthy();
  default_timeouts(in.sysctls);
  IdleSummary idle;
  add_entries(idle, in.sysctls, kIcmp, 0, 150, 20);
  add_entries(idle, in.sysctls, kIcmp, 0, 50, 2);
  add_entries(idle, in.sysctls, kEsp, 0, 100, 300);
  add_entries(idle, in.sysctls, kEsp, 0, 20, 30);
  add_entries(idle, in.sysctls, kTcp, kEstablished, 1000, 5);
  in.idle = idle;
  auto d = diagnose(in);
  auto* icmp = find(d, "icmp_timeout");
  REQUIRE(icmp);
  CHECK(icmp->severity == Severity::info);
  CHECK(icmp->evidence["live"] == 200);
  CHECK(icmp->evidence["would_free"] == 150);
  CHECK(icmp->evidence["timeouts_s"]["icmp_timeout"] == 30);
  CHECK(icmp->evidence["proposed"] == nlohmann::json{{"icmp_timeout", 10}, {"icmpv6_timeout", 10}});
  CHECK(icmp->fix_now == std::vector<std::string>{"sysctl -w net.netfilter.nf_conntrack_icmp_timeout=10",
                                                  "sysctl -w net.netfilter.nf_conntrack_icmpv6_timeout=10"});
  CHECK(has_line(icmp->fix_persistent, "nf_conntrack_icmpv6_timeout = 10"));
  CHECK(icmp->why.find("RELATED") != std::string::npos);
  auto* generic = find(d, "generic_timeout");
  REQUIRE(generic);
  CHECK(generic->evidence["live"] == 120);
  CHECK(generic->evidence["would_free"] == 100);
  CHECK(generic->fix_now == std::vector<std::string>{"sysctl -w net.netfilter.nf_conntrack_generic_timeout=120"});
  CHECK(generic->why.find("cut") != std::string::npos);
  CHECK_FALSE(find(d, "tcp_closing_states"));

  // Timeouts already short: the finding stays, without commands.
  in.sysctls["icmp_timeout"] = 10;
  in.sysctls["icmpv6_timeout"] = 5;
  icmp = find(d = diagnose(in), "icmp_timeout");
  REQUIRE(icmp);
  CHECK(icmp->fix_now.empty());
  CHECK(icmp->evidence["would_free"] == 0);
  // Nobody idle past the proposal: nothing to free, no command.
  in = healthy();
  default_timeouts(in.sysctls);
  in.idle = IdleSummary{};
  add_entries(*in.idle, in.sysctls, kIcmp, 0, 200, 3);
  icmp = find(d = diagnose(in), "icmp_timeout");
  REQUIRE(icmp);
  CHECK(icmp->fix_now.empty());
  CHECK(icmp->evidence["idle"]["max"] == 3000);
  // Under 5% of the table, or under 100 entries: no finding.
  add_entries(*in.idle, in.sysctls, kTcp, kEstablished, 4000, 5);
  CHECK_FALSE(find(diagnose(in), "icmp_timeout"));
  in.idle = IdleSummary{};
  add_entries(*in.idle, in.sysctls, kIcmp, 0, 99, 20);
  CHECK_FALSE(find(diagnose(in), "icmp_timeout"));
  // A full table makes it a warning.
  in.idle = IdleSummary{};
  add_entries(*in.idle, in.sysctls, kIcmp, 0, 200, 20);
  in.window.table = {65536, 65536, 65536};
  CHECK(find(diagnose(in), "icmp_timeout")->severity == Severity::warning);
}
