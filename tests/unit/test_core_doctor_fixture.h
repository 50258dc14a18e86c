/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// The doctor tests' shared inputs (tests/unit/test_core_doctor*.cpp): a healthy fentry window, its
// tracepoint-mode variant, histograms, dumped entries, and lookups into a diagnosis.
#include <doctest/doctest.h>

#include <algorithm>
#include <initializer_list>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/doctor.h"
#include "test_core_snapshot_fixture.h"

namespace doctor_fixture {

using namespace ctbpf::core;

using fixture::full_probes;

inline Drops no_drops() { return {0, 0, 0, 0, 0, 0, 0}; }

// A healthy fentry-mode window of 10 s: 1000 → 1000 entries of max 65536 in 65536 buckets, no drops.
inline DoctorInput healthy() {
  DoctorInput in;
  in.mode = Mode::fentry;
  in.obs = full_probes();
  in.window.end_s = 10;
  in.window.totals.inserts = 500;
  in.window.totals.drops = no_drops();
  in.window.totals.chain = Histogram(SlotKind::chain);
  in.window.totals.chain_max = 0;
  in.window.totals.detail = ProbeDetail{};
  in.window.table = {1000, 65536, 65536};
  in.table_start = {1000, 65536, 65536};
  in.peak_count = 1000;
  in.kernel_drop = 0;
  in.sysctls = {{"max", 65536},        {"buckets", 65536},       {"count", 1000},
                {"udp_timeout", 30},   {"udp_timeout_stream", 120}, {"tcp_timeout_established", 7200}};
  in.system.slab_object_size = 256;
  in.system.slab_object_size_source = "/proc/slabinfo";
  in.system.ram_bytes = uint64_t{2} << 30;
  in.system.build = ConntrackBuild::module;
  return in;
}

// Tracepoint mode: no conntrack probes, drop causes from the kernel's counters.
inline DoctorInput tracepoint(DoctorInput in) {
  in.mode = Mode::tracepoint;
  in.obs = Observability{};
  in.obs.netfilter_drop_reason = true;
  in.obs.kernel_has_chaintoolong = true;
  auto& t = in.window.totals;
  t.inserts.reset();
  t.chain.reset();
  t.chain_max.reset();
  t.detail.reset();
  t.drops.table_full.reset();
  t.drops.alloc_failed.reset();
  return in;
}

inline Histogram chain_of(std::initializer_list<std::pair<std::size_t, uint64_t>> slots) {
  std::vector<uint64_t> v(slot_count(SlotKind::chain), 0);
  uint64_t sum = 0;
  for (auto [slot, n] : slots) {
    v[slot] += n;
    sum += n * slot_upper_bound(SlotKind::chain, slot);
  }
  return Histogram(SlotKind::chain, v, sum);
}

inline Histogram lifetime_of(std::size_t slot, uint64_t n) {
  std::vector<uint64_t> v(slot_count(SlotKind::log2), 0);
  v[slot] = n;
  return Histogram(SlotKind::log2, v, n * slot_upper_bound(SlotKind::log2, slot));
}

inline const Finding* find(const Diagnosis& d, const std::string& id) {
  for (const auto& f : d.findings)
    if (f.id == id) return &f;
  return nullptr;
}

inline bool unmeasured(const Diagnosis& d, const std::string& what) {
  return std::any_of(d.unmeasured.begin(), d.unmeasured.end(),
                     [&](const Unmeasured& u) { return u.what.find(what) != std::string::npos; });
}

inline bool has_line(const std::vector<std::string>& lines, const std::string& part) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const std::string& l) { return l.find(part) != std::string::npos; });
}

// n live ESTABLISHED entries with `remaining_s` of a 432000 s timeout left, as a dump would give them.
inline void add_established(IdleSummary& idle, const std::map<std::string, uint64_t>& sysctls, uint64_t n,
                            uint32_t remaining_s) {
  DumpedEntry e;
  e.l4 = 6;         // IPPROTO_TCP
  e.tcp_state = 3;  // TCP_CONNTRACK_ESTABLISHED
  e.status = 1 << 2;  // IPS_ASSURED
  e.timeout_s = remaining_s;
  for (uint64_t i = 0; i < n; ++i) add_idle(idle, e, sysctls);
}

// The kernel's default timeouts (6.1) that the closing-state and protocol rules read.
inline void default_timeouts(std::map<std::string, uint64_t>& s) {
  s.insert({{"tcp_timeout_syn_sent", 120}, {"tcp_timeout_syn_recv", 60},   {"tcp_timeout_fin_wait", 120},
            {"tcp_timeout_close_wait", 60}, {"tcp_timeout_last_ack", 30},  {"tcp_timeout_time_wait", 120},
            {"tcp_timeout_close", 10},      {"icmp_timeout", 30},          {"icmpv6_timeout", 30},
            {"generic_timeout", 600}});
}

// n entries of protocol l4 (TCP in `state`) idle `idle_s` seconds under the sysctls' timeouts.
inline void add_entries(IdleSummary& idle, const std::map<std::string, uint64_t>& sysctls, uint8_t l4,
                        uint8_t state, uint64_t n, uint64_t idle_s, uint32_t status = 1 << 2 /* IPS_ASSURED */) {
  DumpedEntry e;
  e.l4 = l4;
  e.tcp_state = state;
  e.status = status;
  auto configured = configured_timeout_s(e, sysctls);
  REQUIRE(configured);
  REQUIRE(*configured >= idle_s);
  e.timeout_s = static_cast<uint32_t>(*configured - idle_s);
  for (uint64_t i = 0; i < n; ++i) add_idle(idle, e, sysctls);
}

inline constexpr uint8_t kTcp = 6, kIcmp = 1, kEsp = 50;
inline constexpr uint8_t kSynSent = 1, kSynRecv = 2, kEstablished = 3, kFinWait = 4, kCloseWait = 5,
                         kLastAck = 6, kTimeWait = 7;
inline constexpr uint32_t kSrcNat = 1 << 4;  // IPS_SRC_NAT

// The field notes' edge gateway: 2000 TIME_WAIT entries (1200 idle 10 s, 800 idle 50 s) and 100
// ESTABLISHED ones, in a window of 10 s.
inline DoctorInput edge_gateway() {
  auto in = healthy();
  default_timeouts(in.sysctls);
  in.tcp_sysctls = {{"tcp_timestamps", 1}, {"tcp_tw_reuse", 2}, {"tcp_retries2", 15}};
  IdleSummary idle;
  add_entries(idle, in.sysctls, kTcp, kTimeWait, 1200, 10);
  add_entries(idle, in.sysctls, kTcp, kTimeWait, 800, 50);
  add_entries(idle, in.sysctls, kTcp, kEstablished, 100, 5);
  in.idle = idle;
  in.window.table = {2100, 65536, 65536};
  in.table_start = {2100, 65536, 65536};
  return in;
}

}  // namespace doctor_fixture
