// SPDX-License-Identifier: Apache-2.0
#include <doctest/doctest.h>

#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <netinet/in.h>

#include "core/idle.h"

using namespace ctbpf::core;

namespace {

// The kernel's defaults (6.1), as read_conntrack_sysctls() names them.
std::map<std::string, uint64_t> defaults() {
  return {{"tcp_timeout_syn_sent", 120},       {"tcp_timeout_syn_recv", 60},  {"tcp_timeout_established", 432000},
          {"tcp_timeout_fin_wait", 120},       {"tcp_timeout_close_wait", 60}, {"tcp_timeout_last_ack", 30},
          {"tcp_timeout_time_wait", 120},      {"tcp_timeout_close", 10},     {"tcp_timeout_max_retrans", 300},
          {"tcp_timeout_unacknowledged", 300}, {"udp_timeout", 30},           {"udp_timeout_stream", 120},
          {"icmp_timeout", 30},                {"icmpv6_timeout", 30},        {"generic_timeout", 600}};
}

DumpedEntry tcp(uint8_t state, uint32_t remaining_s) {
  DumpedEntry e;
  e.l4 = IPPROTO_TCP;
  e.tcp_state = state;
  e.status = IPS_ASSURED | IPS_CONFIRMED;
  e.timeout_s = remaining_s;
  return e;
}

DumpedEntry other(uint8_t l4, uint32_t remaining_s, uint32_t status = IPS_CONFIRMED) {
  DumpedEntry e;
  e.l4 = l4;
  e.status = status;
  e.timeout_s = remaining_s;
  return e;
}

}  // namespace

TEST_CASE("configured timeout: the sysctl the kernel refreshed the entry with") {
  const auto s = defaults();
  CHECK(configured_timeout_s(tcp(TCP_CONNTRACK_ESTABLISHED, 0), s) == 432000);
  CHECK(configured_timeout_s(tcp(TCP_CONNTRACK_TIME_WAIT, 0), s) == 120);
  CHECK(configured_timeout_s(tcp(TCP_CONNTRACK_CLOSE, 0), s) == 10);
  // UDP: udp_timeout until ASSURED, udp_timeout_stream after.
  CHECK(configured_timeout_s(other(IPPROTO_UDP, 0), s) == 30);
  CHECK(configured_timeout_s(other(IPPROTO_UDP, 0, IPS_ASSURED | IPS_SEEN_REPLY), s) == 120);
  CHECK(configured_timeout_s(other(IPPROTO_UDPLITE, 0), s) == 30);
  CHECK(configured_timeout_s(other(IPPROTO_ICMP, 0), s) == 30);
  CHECK(configured_timeout_s(other(IPPROTO_ICMPV6, 0), s) == 30);
  CHECK(configured_timeout_s(other(IPPROTO_ESP, 0), s) == 600);  // no tracker of its own: generic
  // Per-state timeouts ctbpf does not model: unknown, not generic.
  CHECK_FALSE(configured_timeout_s(other(IPPROTO_SCTP, 0), s).has_value());
  CHECK_FALSE(configured_timeout_s(other(IPPROTO_GRE, 0), s).has_value());
  // Unknown TCP states: NONE, SYN_SENT2 (no sysctl), and past the enum.
  CHECK_FALSE(configured_timeout_s(tcp(TCP_CONNTRACK_NONE, 0), s).has_value());
  CHECK_FALSE(configured_timeout_s(tcp(TCP_CONNTRACK_SYN_SENT2, 0), s).has_value());
  CHECK_FALSE(configured_timeout_s(tcp(200, 0), s).has_value());
  // The sysctl absent (an older kernel, or a tracker module not loaded).
  CHECK_FALSE(configured_timeout_s(tcp(TCP_CONNTRACK_ESTABLISHED, 0), {}).has_value());
}

TEST_CASE("idle = configured timeout - remaining, per protocol and TCP state, in ms") {
  const auto s = defaults();
  IdleSummary idle;
  add_idle(idle, tcp(TCP_CONNTRACK_ESTABLISHED, 431990), s);  // idle 10 s
  add_idle(idle, tcp(TCP_CONNTRACK_ESTABLISHED, 432000 - 7), s);
  add_idle(idle, tcp(TCP_CONNTRACK_TIME_WAIT, 100), s);        // 20 s: under the short timeouts already
  add_idle(idle, other(IPPROTO_UDP, 25), s);                   // 5 s
  add_idle(idle, other(IPPROTO_UDP, 100, IPS_ASSURED), s);     // 20 s on the stream timeout
  CHECK(idle.entries == 5);
  const auto& est = idle.by_tcp_state[TCP_CONNTRACK_ESTABLISHED];
  CHECK(est.count() == 2);
  CHECK(est.min_ms == 7000);
  CHECK(est.max_ms == 10000);
  CHECK(est.sum_ms == 17000);
  CHECK(est.histogram().percentile(0.99) == 10000);  // log2 slot [8192, 16383] ms, clamped to the max
  CHECK(idle.by_tcp_state[TCP_CONNTRACK_TIME_WAIT].max_ms == 20000);
  CHECK(idle.by_proto[CTBPF_PROTO_TCP].count() == 3);
  CHECK(idle.by_proto[CTBPF_PROTO_UDP].count() == 2);
  CHECK(idle.by_proto[CTBPF_PROTO_UDP].min_ms == 5000);
  CHECK(idle.by_proto[CTBPF_PROTO_UDP].max_ms == 20000);
  CHECK(idle.clamped + idle.no_timeout + idle.short_timeout + idle.not_refreshed == 0);

  auto j = idle_json(idle);
  CHECK(j["entries"] == 5);
  CHECK(j["by_tcp_state"]["ESTABLISHED"]["count"] == 2);
  CHECK(j["by_tcp_state"]["ESTABLISHED"]["min"] == 7000);
  CHECK(j["by_tcp_state"]["ESTABLISHED"]["max"] == 10000);
  CHECK(j["by_tcp_state"]["ESTABLISHED"]["p50"] == 8191);
  CHECK(j["by_proto"]["udp"]["count"] == 2);
  CHECK_FALSE(j["by_proto"].contains("icmp"));  // empty groups left out
}

TEST_CASE("idle edge cases: each unestimated entry counted by reason, never guessed") {
  auto s = defaults();
  SUBCASE("empty table") {
    IdleSummary idle;
    auto j = idle_json(idle);
    CHECK(j["entries"] == 0);
    CHECK(j["by_proto"].empty());
    CHECK(j["by_tcp_state"].empty());
    CHECK(j["capped"] == false);
  }
  SUBCASE("timeout sysctl absent") {
    s.erase("tcp_timeout_established");
    IdleSummary idle;
    add_idle(idle, tcp(TCP_CONNTRACK_ESTABLISHED, 431990), s);
    CHECK(idle.entries == 1);
    CHECK(idle.no_timeout == 1);
    CHECK(idle.by_proto[CTBPF_PROTO_TCP].count() == 0);
  }
  SUBCASE("remaining > configured (a longer cttimeout policy, a sysctl lowered since): clamped to 0") {
    IdleSummary idle;
    add_idle(idle, other(IPPROTO_UDP, 600), s);
    CHECK(idle.clamped == 1);
    CHECK(idle.by_proto[CTBPF_PROTO_UDP].count() == 1);
    CHECK(idle.by_proto[CTBPF_PROTO_UDP].max_ms == 0);
  }
  SUBCASE("unknown TCP state") {
    IdleSummary idle;
    add_idle(idle, tcp(200, 10), s);
    add_idle(idle, tcp(TCP_CONNTRACK_SYN_SENT2, 10), s);
    CHECK(idle.no_timeout == 2);
    CHECK(idle.by_proto[CTBPF_PROTO_TCP].count() == 0);
  }
  SUBCASE("no CTA_TIMEOUT in the dump") {
    IdleSummary idle;
    auto e = tcp(TCP_CONNTRACK_ESTABLISHED, 0);
    e.timeout_s.reset();
    add_idle(idle, e, s);
    CHECK(idle.no_timeout == 1);
  }
  SUBCASE("TCP possibly on the shorter unacknowledged/retransmission timeout") {
    IdleSummary idle;
    add_idle(idle, tcp(TCP_CONNTRACK_ESTABLISHED, 300), s);  // 5 min left of 5 days, or of 5 min?
    add_idle(idle, tcp(TCP_CONNTRACK_ESTABLISHED, 301), s);  // only the state's timeout leaves 301 s
    CHECK(idle.short_timeout == 1);
    CHECK(idle.by_tcp_state[TCP_CONNTRACK_ESTABLISHED].count() == 1);
    CHECK(idle.by_tcp_state[TCP_CONNTRACK_ESTABLISHED].min_ms == (432000 - 301) * uint64_t{1000});
    s["tcp_timeout_unacknowledged"] = 600;  // the longer of the two bounds counts
    add_idle(idle, tcp(TCP_CONNTRACK_ESTABLISHED, 500), s);
    CHECK(idle.short_timeout == 2);
  }
  SUBCASE("offloaded or fixed-timeout entries are not refreshed by packets") {
    IdleSummary idle;
    add_idle(idle, other(IPPROTO_UDP, 10, IPS_OFFLOAD), s);
    add_idle(idle, other(IPPROTO_UDP, 10, IPS_FIXED_TIMEOUT), s);
    CHECK(idle.not_refreshed == 2);
    CHECK(idle.by_proto[CTBPF_PROTO_UDP].count() == 0);
  }
}

TEST_CASE("protocol classes of IPPROTO numbers") {
  CHECK(proto_class_of(IPPROTO_TCP) == CTBPF_PROTO_TCP);
  CHECK(proto_class_of(IPPROTO_UDP) == CTBPF_PROTO_UDP);
  CHECK(proto_class_of(IPPROTO_ICMP) == CTBPF_PROTO_ICMP);
  CHECK(proto_class_of(IPPROTO_ICMPV6) == CTBPF_PROTO_ICMP);
  CHECK(proto_class_of(IPPROTO_SCTP) == CTBPF_PROTO_OTHER);
}

TEST_CASE("live counts per TCP state and protocol include entries whose idle time is unknown") {
  const auto s = defaults();
  IdleSummary idle;
  add_idle(idle, tcp(TCP_CONNTRACK_TIME_WAIT, 100), s);                     // idle 20 s
  add_idle(idle, tcp(TCP_CONNTRACK_TIME_WAIT, 89), s);                      // idle 31 s
  auto natted = tcp(TCP_CONNTRACK_TIME_WAIT, 120);
  natted.status |= IPS_SRC_NAT;
  add_idle(idle, natted, s);                                                // idle 0 s, NAT'd
  add_idle(idle, tcp(TCP_CONNTRACK_ESTABLISHED, 100), s);                   // maybe on a short timeout
  add_idle(idle, tcp(TCP_CONNTRACK_SYN_SENT2, 100), s);                     // no sysctl
  add_idle(idle, other(IPPROTO_ESP, 500), s);                               // generic, idle 100 s
  add_idle(idle, other(IPPROTO_GRE, 500), s);                               // own tracker: not generic
  add_idle(idle, other(IPPROTO_ICMP, 25), s);                               // idle 5 s
  CHECK(idle.entries == 8);
  CHECK(idle.live_by_tcp_state[TCP_CONNTRACK_TIME_WAIT] == 3);
  CHECK(idle.live_by_tcp_state[TCP_CONNTRACK_ESTABLISHED] == 1);
  CHECK(idle.live_by_tcp_state[TCP_CONNTRACK_SYN_SENT2] == 1);
  CHECK(idle.nat_by_tcp_state[TCP_CONNTRACK_TIME_WAIT] == 1);
  CHECK(idle.by_tcp_state[TCP_CONNTRACK_ESTABLISHED].count() == 0);  // live, but its idle time unknown
  CHECK(idle.live_by_proto[CTBPF_PROTO_TCP] == 5);
  CHECK(idle.live_by_proto[CTBPF_PROTO_ICMP] == 1);
  CHECK(idle.live_by_proto[CTBPF_PROTO_OTHER] == 2);
  CHECK(idle.live_generic == 1);
  CHECK(idle.generic.count() == 1);
  CHECK(idle.generic.max_ms == 100000);
  // Exact per-second counts: what a 30 s or a 31 s timeout would not hold.
  const auto& tw = idle.by_tcp_state[TCP_CONNTRACK_TIME_WAIT];
  CHECK(tw.at_least_s(0) == 3);
  CHECK(tw.at_least_s(20) == 2);
  CHECK(tw.at_least_s(21) == 1);
  CHECK(tw.at_least_s(31) == 1);
  CHECK(tw.at_least_s(32) == 0);
  CHECK(tw.at_least_s(kExactIdle_s) == 0);
  CHECK_FALSE(tw.at_least_s(kExactIdle_s + 1).has_value());
  IdleStats long_idle;
  long_idle.add(1000 * 1000);  // beyond the exact range: counted in the last second
  CHECK(long_idle.at_least_s(kExactIdle_s) == 1);
  auto j = idle_json(idle);
  CHECK(j["live_by_tcp_state"]["TIME_WAIT"] == 3);
  CHECK(j["live_by_tcp_state"].size() == 3);
  CHECK(j["live_by_proto"]["other"] == 2);
}
