// SPDX-License-Identifier: Apache-2.0
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/events.h"
#include "core/interval_table.h"
#include "core/snapshot.h"
#include "core/screen.h"

using namespace ctbpf::core;

namespace {
ctbpf_event udp_drop() {
  ctbpf_event e{};
  e.kind = CTBPF_EV_DROP;
  e.cause = CTBPF_CNT_CHAINTOOLONG;
  e.l3 = AF_INET;
  e.l4 = 17;
  inet_pton(AF_INET, "10.1.2.3", e.saddr);
  inet_pton(AF_INET, "127.0.0.1", e.daddr);
  e.sport = 5353;
  e.dport = 53;
  e.netns = 4026531840;
  return e;
}
}  // namespace

TEST_CASE("decode_event accepts exactly the ABI size") {
  auto e = udp_drop();
  std::vector<std::byte> raw(sizeof(e));
  std::memcpy(raw.data(), &e, sizeof(e));
  auto back = decode_event(raw);
  REQUIRE(back);
  CHECK(back->dport == 53);
  CHECK_FALSE(decode_event(std::span(raw).first(sizeof(e) - 1)));
  raw.push_back(std::byte{0});
  CHECK_FALSE(decode_event(raw));
}

TEST_CASE("event JSON names the tuple and the cause") {
  auto j = event_json(udp_drop(), 1.5);
  CHECK(j["type"] == "event");
  CHECK(j["kind"] == "drop");
  CHECK(j["cause"] == "chaintoolong");
  CHECK(j["src"] == "10.1.2.3");
  CHECK(j["dst"] == "127.0.0.1");
  CHECK(j["proto"] == "udp");
  CHECK(j["dport"] == 53);
  CHECK(event_line(udp_drop(), 1.5).find("10.1.2.3:5353 -> 127.0.0.1:53") != std::string::npos);
  ctbpf_event full{};
  full.kind = CTBPF_EV_DROP;
  full.cause = CTBPF_CNT_TABLE_FULL;
  full.netns = 4026531840U;
  CHECK(event_line(full, 2.0) == "t=2.000s drop (flow not seen) netns=4026531840 cause=table_full");
}

TEST_CASE("event kinds parse, unknown ones are an error") {
  std::string error;
  CHECK(event_mask_from_list("drop", error) == (1U << CTBPF_EV_DROP));
  CHECK(event_mask_from_list("insert,destroy", error) == ((1U << CTBPF_EV_INSERT) | (1U << CTBPF_EV_DESTROY)));
  CHECK_FALSE(event_mask_from_list("drop,nonsense", error));
  CHECK(error.find("nonsense") != std::string::npos);
}

TEST_CASE("the limiter admits per_second a second and counts the rest") {
  EventLimiter limit(3);
  int admitted = 0;
  for (int i = 0; i < 10; ++i) admitted += limit.admit(0.1 * i / 10);
  CHECK(admitted == 3);
  CHECK(limit.suppressed() == 7);
  CHECK(limit.admit(1.2));  // a new second
  EventLimiter unlimited(0);
  for (int i = 0; i < 100; ++i) CHECK(unlimited.admit(0));
  CHECK(unlimited.delivered() == 100);
}

TEST_CASE("the live screen shows fill, drops and histogram bars") {
  Observability obs;
  obs.conntrack_points = obs.early_drop = obs.resolve_clash = obs.kernel_has_chaintoolong = true;
  Aggregator agg(Mode::fentry, obs);
  Sample a, b;
  b.t_s = 1;
  b.counters[CTBPF_CNT_INSERT] = 100;
  b.counters[CTBPF_CNT_CHAINTOOLONG] = 7;
  b.chain = Histogram(SlotKind::chain);
  std::vector<uint64_t> slots(slot_count(SlotKind::chain), 0);
  slots[3] = 60;
  slots[40] = 40;
  b.chain = Histogram(SlotKind::chain, slots, 0);
  b.table = {500, 1000, 512};
  agg.add(a);
  auto iv = agg.add(b);
  auto total = agg.summary();
  auto frame = render_screen({Mode::fentry, &*iv, &total, 0, 100});
  CHECK(frame.rfind("\x1b[H\x1b[2J", 0) == 0);
  CHECK(frame.find(" 50.0%") != std::string::npos);
  CHECK(frame.find("chaintoolong") != std::string::npos);
  CHECK(frame.find("inserts 100/s") != std::string::npos);
  CHECK(frame.find("chain length at insert (total)") != std::string::npos);
  CHECK(render_screen({Mode::fentry, &*iv, &total, 0, 100, 16}).find("(total, 1 insert in 16 per CPU)") != std::string::npos);
  CHECK(bar(0.5, 10) == "#####.....");
}

// Issue 34: a 24-line terminal keeps the title (the frame has at most 23 lines), in every mode.
TEST_CASE("the live screen fits the terminal's height") {
  Observability probes;
  probes.conntrack_points = probes.early_drop = probes.resolve_clash = probes.kernel_has_chaintoolong = true;
  for (auto [mode, obs] : {std::pair{Mode::fentry, probes}, std::pair{Mode::tracepoint, Observability{}}}) {
    CAPTURE(to_string(mode));
    Aggregator agg(mode, obs);
    Sample a, b;
    b.t_s = 1;
    b.counters[CTBPF_CNT_INSERT] = 100;
    std::vector<uint64_t> slots(slot_count(SlotKind::chain), 0);
    for (std::size_t i = 0; i < 12; ++i) slots[i] = 10 + i;
    if (mode == Mode::fentry) b.chain = Histogram(SlotKind::chain, slots, 0);
    b.table = {500, 1000, 512};
    b.stats = KernelStats{};
    b.stats->insert = b.stats->found = b.stats->drop = 0;
    agg.add(a);
    auto iv = agg.add(b);
    auto total = agg.summary();
    for (int height : {24, 40}) {
      const auto frame = render_screen({mode, &*iv, &total, 0, 100, 1, height});
      const auto lines = std::count(frame.begin(), frame.end(), '\n');
      CHECK(lines <= height - 1);
      CHECK(frame.find("ctbpf - conntrack live") != std::string::npos);
      std::size_t widest = 0;
      for (std::size_t at = 0, end = 0; at < frame.size(); at = end + 1) {
        end = std::min(frame.find('\n', at), frame.size());
        widest = std::max(widest, end - at);
      }
      CHECK(widest <= 100 + 7);  // the escape codes that home and clear sit on the title's line
    }
  }
}

TEST_CASE("the fast JSON line is the same object as event_json") {
  for (uint32_t kind : {CTBPF_EV_INSERT, CTBPF_EV_DESTROY, CTBPF_EV_DROP}) {
    auto e = udp_drop();
    e.kind = kind;
    e.value = 42;
    CHECK(event_json_line(e, 1.25) == event_json(e, 1.25).dump());
    CHECK(event_json_line(e, 0.123456789) == event_json(e, 0.123456789).dump());
  }
}

TEST_CASE("the per-event path: appended lines equal the allocating ones, times equal rfc3339_utc") {
  std::string out;
  for (auto e : {udp_drop(), [] {
                   auto i = udp_drop();
                   i.kind = CTBPF_EV_INSERT;
                   i.l4 = 200;  // a protocol without a name: its number
                   return i;
                 }()}) {
    out.clear();
    append_event_line(out, e, 1.5);
    CHECK(out == event_line(e, 1.5));
    out.clear();
    append_event_json(out, e, 0.123456789, "2026-12-07T20:05:29.781Z");
    auto parsed = nlohmann::json::parse(out);
    auto expected = event_json(e, 0.123456789);
    expected["time"] = "2026-12-07T20:05:29.781Z";
    CHECK(parsed == expected);
    CHECK(out == expected.dump());  // sorted keys, "time" after "t", the double as nlohmann writes it
  }
  ctbpf::core::SecondsText clock;
  // Within one second, across seconds, rounding up into the next second, and backwards.
  for (double t : {1796673929.7814, 1796673929.9, 1796673929.9996, 1796673930.0004, 1796673931.25, 1796673929.5}) {
    CHECK(std::string(clock.rfc3339(t)) == ctbpf::core::rfc3339_utc(t));
    CHECK(std::string(clock.clock(t)) == ctbpf::core::clock_text(t));
  }
}
