// SPDX-License-Identifier: Apache-2.0
// Where NAT'd traffic dies (issue 32): what grew between two readings of the kernel's maps, the
// conntrack command that removes one stuck flow, the JSON and text, serve's series and doctor's rules.
#include <doctest/doctest.h>

#include "core/aggregator.h"
#include "core/nat_drops.h"
#include "core/prometheus.h"
#include "test_core_doctor_fixture.h"

using namespace ctbpf::core;

namespace {

constexpr uint8_t kInet = 2, kInet6 = 10, kUdp = 17, kTcp = 6, kIcmp = 1;

std::array<uint8_t, 16> v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) { return {a, b, c, d}; }

// 10.0.1.2:40000 > 10.96.0.10:53, DNAT'd to 10.0.2.2:53, dropped for no route.
BlackholeFlow stuck(uint64_t packets, uint32_t reason = 7) {
  BlackholeFlow f;
  f.netns = 4026532001;
  f.l3 = kInet;
  f.l4 = kUdp;
  f.src = v4(10, 0, 1, 2);
  f.dst = v4(10, 96, 0, 10);
  f.sport = 40000;
  f.dport = 53;
  f.reply_src = v4(10, 0, 2, 2);
  f.reply_dst = v4(10, 0, 1, 2);
  f.reply_sport = 53;
  f.reply_dport = 40000;
  f.status = 1u << 5;  // IPS_DST_NAT
  f.reason = reason;
  f.reason_name = "IP_INNOROUTES";
  f.packets = packets;
  return f;
}

DnsRace race(uint8_t resolver_last, uint64_t failed, uint64_t resolved) {
  DnsRace r;
  r.netns = 4026532001;
  r.l3 = kInet;
  r.service = v4(10, 96, 0, 10);
  r.resolver = v4(10, 0, 3, resolver_last);
  r.insert_failed = failed;
  r.clash_resolve = resolved;
  return r;
}

}  // namespace

TEST_CASE("nat blackholes: what grew, flow by flow") {
  auto other = stuck(5, 8);  // the same flow, another reason: a row of its own
  auto g = grown({stuck(150), other}, {stuck(100), other});
  REQUIRE(g.size() == 1);
  CHECK(g[0].packets == 50);
  CHECK(g[0].reason == 7);
  // New since the last reading: all of it.
  CHECK(grown({stuck(30)}, {}).at(0).packets == 30);
  // Evicted from the kernel's LRU and back with a count below the last reading: all of it is new.
  CHECK(grown({stuck(20)}, {stuck(100)}).at(0).packets == 20);
  // Gone from the map, or not grown: nothing.
  CHECK(grown({}, {stuck(100)}).empty());
  CHECK(grown({stuck(100)}, {stuck(100)}).empty());
}

TEST_CASE("dns races: what grew per netns, service and resolver") {
  auto g = grown({race(1, 2, 10), race(2, 0, 7)}, {race(1, 1, 4)});
  REQUIRE(g.size() == 2);
  CHECK(g[0].insert_failed == 1);
  CHECK(g[0].clash_resolve == 6);
  CHECK(g[1].clash_resolve == 7);
  CHECK(grown({race(1, 2, 10)}, {race(1, 2, 10)}).empty());
}

TEST_CASE("nat blackholes: the command removes exactly the flow's entry") {
  auto f = stuck(1);
  CHECK(conntrack_delete_command(f, "") ==
        "conntrack -D -f ipv4 -p udp -s 10.0.1.2 -d 10.96.0.10 --sport 40000 --dport 53");
  f.zone = 7;
  CHECK(conntrack_delete_command(f, "ip netns exec router ") ==
        "ip netns exec router conntrack -D -f ipv4 -p udp -s 10.0.1.2 -d 10.96.0.10 --sport 40000 --dport 53 -w 7");
  BlackholeFlow v6 = stuck(1);
  v6.l3 = kInet6;
  v6.l4 = kTcp;
  v6.src = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  v6.dst = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};
  CHECK(conntrack_delete_command(v6, "") == "conntrack -D -f ipv6 -p tcp -s fd00::2 -d fd00::10 --sport 40000 --dport 53");
  BlackholeFlow icmp = stuck(1);
  icmp.l4 = kIcmp;  // no ports in the tuple: none in the command
  CHECK(conntrack_delete_command(icmp, "") == "conntrack -D -f ipv4 -p icmp -s 10.0.1.2 -d 10.96.0.10");
}

TEST_CASE("nat blackholes: JSON and text name where the NAT sends the flow") {
  auto f = stuck(300);
  auto j = blackhole_json(f, 3.0);
  CHECK(j["dnat_to"] == "10.0.2.2:53");
  CHECK(j["snat_to"].is_null());
  CHECK(j["packets_per_s"] == 100.0);
  CHECK(j["src"] == "10.0.1.2");
  CHECK(j["direction"] == "original");
  f.status |= 1u << 4;  // SNAT too: the reply's destination is the address it leaves as
  f.reply_dst = v4(192, 0, 2, 1);
  f.reply_dport = 61000;
  CHECK(blackhole_json(f, 3.0)["snat_to"] == "192.0.2.1:61000");
  CHECK(flow_text(f) == "udp 10.0.1.2:40000 > 10.96.0.10:53 dnat to 10.0.2.2:53, snat to 192.0.2.1:61000");

  const NetnsNames names{{4026532001, "router"}};
  auto text = nat_drops_text(std::vector{stuck(300)}, std::vector{race(1, 2, 10)}, 3.0, names, "  ");
  CHECK(text == "  nat blackhole  udp 10.0.1.2:40000 > 10.96.0.10:53 dnat to 10.0.2.2:53  IP_INNOROUTES  100/s  "
                "netns router\n"
                "  dns race  netns router  10.96.0.10 via 10.0.3.1: insert_failed 2 (dropped), clash_resolve 10 "
                "(kept)\n");
  std::vector<BlackholeFlow> many(12, stuck(1));
  for (uint16_t i = 0; i < many.size(); ++i) many[i].sport = 40000 + i;
  auto capped = nat_drops_text(many, std::nullopt, 1.0, {}, "");
  CHECK(capped.find("... and 2 more\n") != std::string::npos);
  CHECK(nat_drops_text(std::nullopt, std::nullopt, 1.0, {}, "").empty());
}

TEST_CASE("nat blackholes: null without drop reasons; drop times on the report's clock") {
  Observability obs;  // tracepoint mode on a kernel whose kfree_skb has no reason
  Aggregator none(Mode::tracepoint, obs);
  Sample s;
  s.t_s = 1000;
  none.add(s);
  s.t_s = 1001;
  s.nat_blackholes = {stuck(10)};
  CHECK_FALSE(none.add(s)->totals.nat_blackholes);
  CHECK_FALSE(none.summary().totals.dns_races);

  obs.drop_reasons = true;
  Aggregator agg(Mode::tracepoint, obs);
  Sample first;
  first.t_s = 1000;
  agg.add(first);
  Sample later = first;
  later.t_s = 1002;
  auto f = stuck(40);
  f.first_s = 1000.5;  // monotonic seconds, as the kernel stamps them
  f.last_s = 1001.75;
  later.nat_blackholes = {f};
  auto r = agg.add(later);
  REQUIRE(r->totals.nat_blackholes);
  REQUIRE(r->totals.nat_blackholes->size() == 1);
  CHECK(r->totals.nat_blackholes->at(0).first_s == 0.5);
  CHECK(r->totals.nat_blackholes->at(0).last_s == 1.75);
  CHECK(agg.summary().totals.nat_blackholes->at(0).packets == 40);
}

TEST_CASE("serve: NAT'd-flow drops and DNS races per netns label, the rest in other") {
  NetnsLabels labels(1);
  NetnsSeriesCounts blackholes, races;
  blackholes.add("reason=\"IP_INNOROUTES\"", 111, 5, labels);
  races.add("cause=\"insert_failed\",resolver=\"10.0.3.1\"", 111, 2, labels);
  Report total;
  total.totals.drops = doctor_fixture::no_drops();
  Observability obs;
  obs.drop_reasons = true;
  ExpositionInput in;
  in.obs = &obs;
  in.total = &total;
  in.netns = &labels;
  in.nat_blackholes = &blackholes;
  in.dns_races = &races;
  auto page = render_exposition(in);
  CHECK(page.find("\nctbpf_conntrack_nat_blackholed_packets_total{reason=\"IP_INNOROUTES\",netns=\"other\"} 5\n") !=
        std::string::npos);
  CHECK(page.find("\nctbpf_conntrack_dns_races_total{cause=\"insert_failed\",resolver=\"10.0.3.1\",netns=\"other\"} "
                  "2\n") != std::string::npos);
  in.nat_blackholes = nullptr;  // unobservable: no family at all, not a made-up 0
  in.dns_races = nullptr;
  page = render_exposition(in);
  CHECK(page.find("nat_blackholed") == std::string::npos);
  CHECK(page.find("dns_races") == std::string::npos);
}

TEST_CASE("doctor: nat_blackhole gives each stuck flow's command; dns_race says whether queries were lost") {
  using namespace doctor_fixture;
  auto in = healthy();
  CHECK(find(diagnose(in), "nat_blackhole") == nullptr);
  in.window.totals.nat_blackholes = std::vector<BlackholeFlow>{};
  CHECK(find(diagnose(in), "nat_blackhole") == nullptr);  // observable, nothing dropped
  in.window.totals.nat_blackholes = std::vector{stuck(1000)};
  in.netns_names[4026532001] = "router";
  in.netns_enter[4026532001] = "ip netns exec router ";
  auto d = diagnose(in);
  auto* f = find(d, "nat_blackhole");
  REQUIRE(f);
  CHECK(f->severity == Severity::warning);
  CHECK(f->fix_now == std::vector<std::string>{"ip netns exec router conntrack -D -f ipv4 -p udp -s 10.0.1.2 -d "
                                               "10.96.0.10 --sport 40000 --dport 53"});
  CHECK(f->evidence[0]["packets_per_s"] == 100.0);  // 1000 in the 10 s window
  CHECK(f->evidence[0]["netns_name"] == "router");

  in.window.totals.dns_races = std::vector{race(1, 0, 10)};
  f = find(d = diagnose(in), "dns_race");
  REQUIRE(f);
  CHECK(f->severity == Severity::info);  // every clash resolved: no query lost
  in.window.totals.dns_races = std::vector{race(1, 3, 10), race(2, 0, 4)};
  f = find(d = diagnose(in), "dns_race");
  REQUIRE(f);
  CHECK(f->severity == Severity::warning);
  CHECK(f->title.find("3 port 53 queries dropped") != std::string::npos);
  CHECK(f->title.find("router") != std::string::npos);
  CHECK(f->evidence.size() == 2);
}

TEST_CASE("nat_unanswered: NAT'd UDP flows that sent and got nothing back, from acct's counters") {
  auto entry = [](uint64_t sent, uint64_t back, uint32_t status = 1u << 5, uint8_t l4 = kUdp) {
    DumpedEntry e;
    e.l3 = kInet;
    e.l4 = l4;
    e.src = v4(10, 0, 1, 2);
    e.dst = v4(10, 96, 0, 10);
    e.sport = 40000;
    e.dport = 53;
    e.reply_src = v4(10, 0, 2, 2);
    e.reply_sport = 53;
    e.status = status;
    e.orig_packets = sent;
    e.reply_packets = back;
    return e;
  };
  UnansweredNat u;
  DumpedEntry no_counters = entry(100, 0);
  no_counters.orig_packets.reset();
  no_counters.reply_packets.reset();
  add_unanswered(u, no_counters);  // acct off when it was made: not judged
  CHECK_FALSE(u.counters_seen);
  add_unanswered(u, entry(100, 1));            // answered
  add_unanswered(u, entry(9, 0));              // fewer than 10 sent
  add_unanswered(u, entry(100, 0, 0));         // not NAT'd
  add_unanswered(u, entry(100, 0, 1u << 5, kTcp));  // not UDP
  CHECK(u.counters_seen);
  CHECK(u.flows == 0);
  for (uint64_t sent = 10; sent < 22; ++sent) add_unanswered(u, entry(sent, 0));
  CHECK(u.flows == 12);
  REQUIRE(u.busiest.size() == 10);  // the 10 that sent most: 12..21
  CHECK(std::min_element(u.busiest.begin(), u.busiest.end(), [](auto& a, auto& b) { return a.packets < b.packets; })
            ->packets == 12);
  CHECK(nat_target_text(u.busiest[0]) == "dnat to 10.0.2.2:53");

  using namespace doctor_fixture;
  auto in = healthy();
  in.unanswered_nat = UnansweredNat{};
  in.sysctls["acct"] = 0;
  auto d = diagnose(in);
  CHECK(find(d, "nat_unanswered") == nullptr);
  CHECK(std::count_if(d.unmeasured.begin(), d.unmeasured.end(),
                      [](const auto& m) { return m.why.find("nf_conntrack_acct is off") != std::string::npos; }) == 1);
  in.unanswered_nat = u;
  d = diagnose(in);
  auto* f = find(d, "nat_unanswered");
  REQUIRE(f);
  CHECK(f->severity == Severity::info);
  CHECK(f->evidence["flows"] == 12);
  CHECK(f->fix_now.size() == 10);
  CHECK(f->fix_now[0] == "conntrack -D -f ipv4 -p udp -s 10.0.1.2 -d 10.96.0.10 --sport 40000 --dport 53");
}
