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

struct Proposal {
  uint64_t max = 0, buckets = 0, wanted = 0;
  std::optional<uint64_t> memory_bytes;  // table_memory_bytes(max, buckets, slab object size)
  bool capped_by_ram = false;
};

struct Facts {
  double duration = 0;
  Count count_start, count_end, max, buckets;
  uint64_t peak = 0;
  std::optional<double> fill, growth_per_s, time_to_full_s;
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

}  // namespace ctbpf::core::doctor_rules
