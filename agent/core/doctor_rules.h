/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// What doctor's rooms share (internal to doctor*.cpp): the facts every rule starts from, the
// formatting and sysctl helpers, the commands that apply a proposal, and the rules themselves.
// The public API is core/doctor.h.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/doctor.h"

namespace ctbpf::core::doctor_rules {

// Conntrack memory is unswappable kernel memory: proposals stay under this share of RAM.
constexpr double kRamShareCap = 0.25;

// How a proposed max was computed, step by step, so the words can say exactly that.
enum class ProposalBasis {
  twice_wanted,  // 2 × the entries the window wanted, the larger term
  twice_max,     // 2 × the current max, the larger term (the window wanted less than the max)
  buckets,       // an unlimited table: the bucket count, larger than 2 × wanted
};
std::string to_string(ProposalBasis basis);

struct Proposal {
  uint64_t max = 0, buckets = 0, wanted = 0;
  ProposalBasis basis = ProposalBasis::twice_wanted;
  uint64_t target = 0;   // the larger term before rounding: 2 × wanted, 2 × max, or the bucket count
  uint64_t rounded = 0;  // next_power_of_two(target): max unless capped_by_ram halved it
  std::optional<uint64_t> memory_bytes;  // table_memory_bytes(max, buckets, slab object size)
  bool capped_by_ram = false;
};

// A time to full extrapolates the window's growth. Entries leave the table when their timeout runs
// out, and not before: in a window shorter than that timeout, every entry the window added is still
// there at its end, whether or not it will be refreshed. A burst of 600 UDP datagrams into an empty
// table in 5 s reads +120/s though the table levels off at 600 once udp_timeout (30 s) has passed.
// Even the window's two ends are not enough: from a cold start, a constant rate of new flows r fills
// the table to r × timeout and then stays there, yet count_end - count_start = r × timeout over a
// window of any length. So the forecast (forecast_fill) uses only the growth measured after the
// longest timeout among the entries that grew (by protocol and TCP state, from the dumps at the
// window's two ends) has passed within the window: from then on, each entry the window's traffic
// added at its start has had its chance to expire, and a constant rate of new flows no longer adds to
// the count. What still grows is growth the timeouts do not undo: a rising rate of new flows, or
// entries kept alive.
// The kernel's count (nf_conntrack_count) also holds entries that expired but that its garbage
// collector has not reaped yet: on 6.1 it rescans the table at most 60 s apart (GC_SCAN_INTERVAL_MAX),
// older kernels take longer. So the growth ends at the end dump's entry count, which is exact: a
// ctnetlink dump skips (and reaps) expired entries (ctnetlink_dump_table()). Its start, a sampled
// count, may still include some: that can only understate the growth, never invent it. When the end
// dump stopped at its bound, the growth ends at the last sampled count and starts a collector's
// period (60 s) later, and its confidence is low at most. Growth of entries with a long timeout (TCP ESTABLISHED: 5 days) cannot be
// forecast from one window: the forecast says so instead of guessing.
enum class ForecastBasis {
  unlimited,         // max = 0: nothing to fill
  full_now,          // count >= max: measured, not forecast
  not_growing,       // the window's ends: the table did not grow
  settled,           // from the growth after the timeout of the entries that grew
  no_dumps,          // which entries grew is unknown: a ctnetlink dump is missing
  no_timeout,        // entries that grew have no timeout sysctl ctbpf knows (SCTP, DCCP, GRE, SYN_SENT2)
  window_too_short,  // the window is not longer than the timeout of the entries that grew
  no_samples,        // no count was sampled after that timeout
};
std::string to_string(ForecastBasis basis);

// How sure a forecast is. medium: the growth was measured over at least one timeout after the first;
// low: over less, so a one-off rise in traffic still reads as growth. Never high: one window cannot
// tell how long a trend lasts. none: no forecast; measured: full now.
enum class Confidence { none, low, medium, measured };
std::string to_string(Confidence confidence);

// Entries of one protocol or TCP state, at the window's start and end, and their timeout.
struct GrownClass {
  std::string name;     // "udp", "udp_stream", "tcp ESTABLISHED", "icmp", "generic", "other"
  std::string sysctl;   // the timeout's sysctl ("udp_timeout"); empty when there is none
  std::optional<uint64_t> timeout_s;
  uint64_t start = 0, end = 0;
};

struct Forecast {
  ForecastBasis basis = ForecastBasis::not_growing;
  Confidence confidence = Confidence::none;
  std::vector<GrownClass> grown;          // the classes that grew (end > start)
  std::optional<uint64_t> timeout_s;      // the longest timeout among them
  std::string timeout_sysctl;             // its sysctl
  std::string timeout_of;                 // its class
  std::optional<double> settled_from_s;   // the first sample at or after timeout_s into the window
  std::optional<uint64_t> settled_from_count;  // the count sampled then
  std::optional<uint64_t> settled_end_count;   // live entries at the end: the end dump's, or the last count
  std::string settled_end_source;              // "dump" or "count"
  std::optional<double> settled_span_s;   // from there to the window's end
  std::optional<double> settled_growth_per_s;
  std::optional<double> time_to_full_s;
  std::optional<double> needed_window_s;  // a window this long could forecast (twice the timeout)
};
Forecast forecast_fill(const DoctorInput& in, double duration, Count count_start, Count count_end, Count max);
nlohmann::json forecast_json(const Forecast& f);

struct Facts {
  double duration = 0;
  Count count_start, count_end, max, buckets;
  uint64_t peak = 0;
  std::optional<double> fill, growth_per_s, time_to_full_s;  // growth: the window's two ends
  Forecast forecast;  // time_to_full_s is forecast.time_to_full_s
  Count table_full;  // probe count, or the kernel's `drop` counter in tracepoint mode
  bool table_full_from_kernel_drop = false;
  Count early_drop, chaintoolong;
  bool pressure = false;  // the table is at or near its limit
  std::optional<Proposal> proposal;
  const ProbeDetail* detail = nullptr;  // null without conntrack probes
};

// ---- facts (doctor_facts.cpp) -----------------------------------------------------------------------

Facts derive_facts(const DoctorInput& in);
bool positive(const Count& c);
double ratio(uint64_t a, uint64_t b);
/// A conntrack sysctl (in.sysctls) by its short name ("max", "udp_timeout"); empty when unread.
std::optional<uint64_t> sysctl(const DoctorInput& in, const std::string& name);
/// A TCP stack sysctl (in.tcp_sysctls); empty when unread.
std::optional<uint64_t> tcp_sysctl(const DoctorInput& in, const std::string& name);
std::string human_bytes(double bytes);
std::string human_seconds(double s);
/// "n p50 ≤ 4 s, p99 ≤ 6 s, max 6 s".
std::string idle_text(const IdleStats& s);
/// Entries idle longer than threshold_ms: a lower bound.
uint64_t idle_beyond(const IdleStats& s, uint64_t threshold_ms);

// ---- fixes (doctor_fixes.cpp) -----------------------------------------------------------------------

std::string sysctl_now(const std::string& name, uint64_t value);
std::vector<std::string> sysctl_persistent(const std::vector<std::pair<std::string, uint64_t>>& settings,
                                           ConntrackBuild build);
std::string hashsize_now(uint64_t buckets);
std::vector<std::string> hashsize_persistent(uint64_t buckets, ConntrackBuild build);
/// The commands that apply f.proposal (max, and buckets when they grow).
void add_proposal_fixes(const Facts& f, ConntrackBuild build, Finding& finding);
nlohmann::json proposal_json(const std::optional<Proposal>& p);

// ---- rules: each adds its findings to d --------------------------------------------------------------

using Rule = void (*)(const DoctorInput& in, const Facts& f, Diagnosis& d);

// Table and memory (doctor_table.cpp).
void rule_table_fill(const DoctorInput& in, const Facts& f, Diagnosis& d);
void rule_memory(const DoctorInput& in, const Facts& f, Diagnosis& d);
// Drops and chains (doctor_drops.cpp).
void rule_chain_length(const DoctorInput& in, const Facts& f, Diagnosis& d);
void rule_drops(const DoctorInput& in, const Facts& f, Diagnosis& d);
// Timeouts by protocol and TCP state (doctor_timeouts.cpp).
void rule_tcp_established_timeout(const DoctorInput& in, const Facts& f, Diagnosis& d);
void rule_udp_timeout(const DoctorInput& in, const Facts& f, Diagnosis& d);
void rule_stateless_udp(const DoctorInput& in, const Facts& f, Diagnosis& d);
void rule_tcp_closing_states(const DoctorInput& in, const Facts& f, Diagnosis& d);
void rule_icmp_timeout(const DoctorInput& in, const Facts& f, Diagnosis& d);
void rule_generic_timeout(const DoctorInput& in, const Facts& f, Diagnosis& d);
// Where NAT'd traffic dies (doctor_nat.cpp).
void rule_nat_blackholes(const DoctorInput& in, const Facts& f, Diagnosis& d);
void rule_nat_unanswered(const DoctorInput& in, const Facts& f, Diagnosis& d);
void rule_dns_race(const DoctorInput& in, const Facts& f, Diagnosis& d);

}  // namespace ctbpf::core::doctor_rules
