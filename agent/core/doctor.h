/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// ctbpf doctor's rules: the field's manual conntrack tuning, driven by one measured window instead of
// guesses. Input: what the window measured (an Aggregator summary), the sysctls and the memory facts.
// Output: findings that each say what was measured, why it matters and the exact commands to change
// it now and across reboots. Pure: the CLI gathers the inputs and never changes the system.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/aggregator.h"
#include "core/idle.h"
#include "core/nat_drops.h"
#include "core/netns_scope.h"

namespace ctbpf::core {

enum class Severity { critical, warning, info };  // output order: most severe first
std::string to_string(Severity severity);

/// Decides where a persistent hashsize goes: /etc/modprobe.d for a module, the kernel command line
/// when built in.
enum class ConntrackBuild { unknown, module, builtin };
std::string to_string(ConntrackBuild build);

struct SystemFacts {
  std::optional<uint64_t> slab_object_size;  // bytes one entry takes in the nf_conntrack slab
  std::string slab_object_size_source;       // the file it was read from
  std::optional<uint64_t> ram_bytes;         // MemTotal
  ConntrackBuild build = ConntrackBuild::unknown;
};

/// Inserts to one destination port during the window.
struct PortCount {
  uint8_t l4 = 0;  // IPPROTO_*
  uint16_t port = 0;
  uint64_t inserts = 0;
};

/// The table's count at one moment of the window.
struct CountAt {
  double at_s = 0;  // seconds since the window's start
  uint64_t count = 0;
};

struct DoctorInput {
  Mode mode = Mode::tracepoint;
  Observability obs;
  Report window;                            // Aggregator::summary(); window.table is at its end
  TableGauge table_start;                   // at the window's start
  std::optional<uint64_t> peak_count;       // highest count sampled during the window
  std::vector<CountAt> counts;              // the count sampled through the window (once a second), in order
  Count kernel_drop;                        // the kernel's `drop` counter over the window (this netns)
  std::map<std::string, uint64_t> sysctls;  // kernel::read_conntrack_sysctls(): "max", "udp_timeout", ...
  SystemFacts system;
  std::optional<std::vector<PortCount>> top_ports;  // busiest first; empty optional: not measured
  std::optional<IdleSummary> idle;  // live entries at the window's end (ctnetlink); empty: not measured
  std::optional<IdleSummary> idle_start;  // the same at the window's start: what the table grew by, per state
  // This host's TCP stack, /proc/sys/net/ipv4/<name>: "tcp_timestamps" (PAWS), "tcp_tw_reuse",
  // "tcp_retries2"; absent when unread.
  std::map<std::string, uint64_t> tcp_sysctls;
  // The netns that NAT'd-flow drops and DNS races came from: their names, and how to run a command in
  // each ("ip netns exec NAME ", "nsenter --net=/proc/PID/ns/net ", "" for ctbpf's own).
  std::map<uint32_t, std::string> netns_names;
  std::map<uint32_t, std::string> netns_enter;
  // NAT'd UDP flows without a reply in the window's end dump (ctbpf's netns); empty: no dump.
  std::optional<UnansweredNat> unanswered_nat;
  std::optional<OwnNetns> own_netns;  // whose table, count, kernel stats and dumps these are
};

struct Finding {
  std::string id;  // stable: scripts and tests key on it
  Severity severity = Severity::info;
  std::string title;
  std::string measured;     // the numbers, for people
  nlohmann::json evidence;  // the same numbers, for machines (null where unmeasured)
  std::string why;
  std::vector<std::string> fix_now;         // shell commands; effective at once, gone at reboot
  std::vector<std::string> fix_persistent;  // shell commands that make it survive a reboot
};

/// Something doctor could not measure here, and why: said out loud instead of guessed.
struct Unmeasured {
  std::string what, why;
};

struct Diagnosis {
  std::vector<Finding> findings;  // critical, then warning, then info; rule order within a severity
  std::vector<Unmeasured> unmeasured;
};

Diagnosis diagnose(const DoctorInput& in);

/// {"type":"doctor", "inputs":{...}, "summary":{trace's summary, plus "idle_ms"}, "unmeasured":[...],
/// "findings":[...]}
nlohmann::json doctor_json(const DoctorInput& in, const Diagnosis& diagnosis);
std::string doctor_text(const DoctorInput& in, const Diagnosis& diagnosis);

// The arithmetic behind the recommendations, exposed for tests.

/// Smallest power of two >= value (1 for 0).
uint64_t next_power_of_two(uint64_t value);
/// Buckets for a table of max_entries: the next power of two >= max_entries (the kernel's own default
/// since 5.15 is buckets = max), never fewer than 1024 (the kernel's floor) nor than `current`.
uint64_t recommend_buckets(uint64_t max_entries, uint64_t current);
/// Kernel memory of a full table: max × slab object size + buckets × 8 (one hlist_nulls_head each).
uint64_t table_memory_bytes(uint64_t max_entries, uint64_t buckets, uint64_t slab_object_size);

/// Seconds a TCP endpoint retransmits before it gives up after `retries` retransmissions (tcp_retries2):
/// the retransmission timeout starts at TCP_RTO_MIN (200 ms) and doubles up to TCP_RTO_MAX (120 s).
double retransmission_give_up_s(uint64_t retries);
/// Retransmissions sent within `seconds` of the first transmission, with that doubling timeout.
uint64_t retransmissions_within(double seconds);

/// `objsize` of `cache` in /proc/slabinfo's text; empty when the cache is not listed.
std::optional<uint64_t> parse_slabinfo_object_size(const std::string& slabinfo, const std::string& cache);
/// MemTotal in bytes from /proc/meminfo's text.
std::optional<uint64_t> parse_meminfo_total(const std::string& meminfo);

}  // namespace ctbpf::core
