/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// The fields that come in families, each described once: the kernel's own conntrack statistics and
// the drop causes. The netlink reader, the aggregator, the JSON and text renderers, the Prometheus
// page, the snapshot reader, the screen and the flight recorder walk these tables; none lists a
// family itself. Adding a kernel counter is a member and a row here, and the netlink attribute that
// carries it (kernel/netlink_stats.cpp). tests/unit/test_core_fields.cpp proves that every row
// reaches every output that shows its family, and that docs/json.md and the schema name it.
//
// How an unobservable value looks is decided here too: null in JSON ("null, never absent",
// docs/json.md), "-" in text, no series in Prometheus (prometheus.cpp skips it).
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace ctbpf::core {

/// A count that may be unobservable (empty): this mode, this kernel or this privilege cannot see it.
using Count = std::optional<uint64_t>;

/// "insert: entries added through ctnetlink ..." for each kernel counter that has a note, one a line,
/// each line starting with `indent`; empty when none has.
std::string kernel_counter_notes(const std::string& indent);

/// JSON for a count or measurement: null when unobservable.
nlohmann::json value(const Count& c);
nlohmann::json value(const std::optional<double>& v);
/// Text for a count: "-" when unobservable.
std::string text(const Count& c);

/// The kernel's own per-netns conntrack statistics (ctnetlink CTA_STATS_*, as `conntrack -S` and
/// /proc/net/stat/nf_conntrack name them), summed over CPUs. Empty: this kernel lacks the counter.
struct KernelStats {
  Count found, invalid, insert, insert_failed, drop, early_drop, error, search_restart, clash_resolve,
      chaintoolong, expect_new, expect_create, expect_delete;
};

struct KernelCounterField {
  const char* key;  // JSON key, text label, Prometheus stat="..." label: the kernel's own name
  Count KernelStats::*member;
  bool on_screen;  // one of the dashboard's few kernel rows (the rest are in the summary and JSON)
  // What the counter counts when its name says otherwise: shown next to it wherever it is shown
  // (summary, report, screen), so a 0 is not read as a measurement of what the name suggests.
  const char* note = nullptr;
  const char* screen_note = nullptr;  // the same, short enough for the dashboard's column
};

inline constexpr KernelCounterField kKernelCounters[] = {
    {"found", &KernelStats::found, true},
    {"invalid", &KernelStats::invalid, false},
    // `insert` no longer counts the entries packets make: an upstream change between 4.8 and 5.2
    // (commit not pinned down: the upstream history was not at hand; the sources were) dropped its
    // increment from __nf_conntrack_confirm(), the packet path: 4.8's source still counts it there,
    // 6.1's does not. What is left, read in Debian's 6.1 source (net/netfilter/nf_conntrack_core.c): the one
    // NF_CT_STAT_INC(net, insert) is in nf_conntrack_hash_check_insert(), whose only caller is
    // ctnetlink_create_conntrack() (nf_conntrack_netlink.c): entries created with `conntrack -I` or
    // another ctnetlink client. ctbpf's own `inserts` counts the packets' entries (fentry/kprobe).
    {"insert", &KernelStats::insert, true,
     "entries added through ctnetlink (conntrack -I) only; the kernel does not count packets' entries in it",
     "ctnetlink's (conntrack -I) only, not packets'"},
    {"insert_failed", &KernelStats::insert_failed, false},
    {"drop", &KernelStats::drop, true},
    {"early_drop", &KernelStats::early_drop, false},
    {"error", &KernelStats::error, true},
    {"search_restart", &KernelStats::search_restart, true},
    {"clash_resolve", &KernelStats::clash_resolve, false},
    {"chaintoolong", &KernelStats::chaintoolong, false},
    // The expectation table's (conntrack helpers': FTP, SIP...), named as /proc/net/stat/nf_conntrack
    // names them: created by a helper, matched by a new connection, removed.
    {"expect_create", &KernelStats::expect_create, false},
    {"expect_new", &KernelStats::expect_new, false},
    {"expect_delete", &KernelStats::expect_delete, false},
};

/// Why conntrack lost a packet or an entry, one count per cause (the contract's "drops").
struct Drops {
  Count table_full, early_drop, insert_failed, chaintoolong, clash_resolve, invalid, alloc_failed;
};

struct DropCauseField {
  const char* key;  // JSON key, text label, Prometheus cause="..." label
  Count Drops::*member;
  /// A packet was dropped or an entry evicted because the table could not take it: a flight-recorder
  /// trigger. Not clash_resolve (the kernel resolved the clash; the packet went through) nor invalid
  /// (packets conntrack could not parse or place: a steady trickle on any busy host).
  bool table_trouble;
  /// Counted beside the table and early_drop columns of the interval table ("OTHER"); clash_resolve
  /// is not a drop.
  bool in_other_column;
  /// Which namespaces the count covers when the conntrack probes are attached: every netns, or
  /// (invalid, which has no probe and is always the kernel's counter) ctbpf's own.
  bool own_netns_only;
  /// No mode observes it (alloc_failed: docs/json.md says why); null everywhere.
  bool never_observed;
};

inline constexpr DropCauseField kDropCauses[] = {
    {"table_full", &Drops::table_full, true, false, false, false},
    {"early_drop", &Drops::early_drop, true, false, false, false},
    {"insert_failed", &Drops::insert_failed, true, true, false, false},
    {"chaintoolong", &Drops::chaintoolong, true, true, false, false},
    {"clash_resolve", &Drops::clash_resolve, false, false, false, false},
    {"invalid", &Drops::invalid, false, true, true, false},
    {"alloc_failed", &Drops::alloc_failed, true, true, false, true},
};

/// The row of a drop cause by its key; null when there is none.
const DropCauseField* drop_cause(std::string_view key);
/// The causes' keys in the contract's order, for walks over JSON read back from a file.
std::array<const char*, std::size(kDropCauses)> drop_cause_keys();

}  // namespace ctbpf::core
