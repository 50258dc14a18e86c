/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// Views of a Report: NDJSON objects (the contract in docs/json.md) and plain text. Rendering returns
// strings; only the CLI edge prints them.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/aggregator.h"
#include "core/attribution.h"
#include "core/dump.h"
#include "core/netns_scope.h"

namespace ctbpf::core {

/// Who filled the table, beyond the per-netns counts every report has: a name for each "by_netns"
/// row and, when asked for (`--top N`), the busiest source addresses ("by_source", summaries only).
struct WhoFills {
  NetnsNames netns_names;
  std::size_t top = 0;                 // 0: sources not asked for, no "by_source" key
  std::optional<Attribution> sources;  // empty with top > 0: this mode cannot see inserts (null)
  uint64_t sources_untracked = 0;      // inserts/destroys the kernel's bounded source map could not keep
  std::optional<DumpRead> seed_dump;   // the ctnetlink dump that seeded the live counts ("seed_dump")
  uint64_t seed_unattributed = 0;      // its entries of sources beyond DumpedSources' bound
  std::optional<OwnNetns> own_netns;   // the netns of the table and kernel stats ("own_netns")
  std::optional<std::vector<NetnsTable>> other_netns;  // the named others' tables; empty: not read
};

/// `s` cut to `max` bytes, every byte outside printable ASCII made '?': names come from the system
/// (comm, /run/netns) and go to JSON (which needs valid UTF-8), snapshot files and terminals.
std::string printable(std::string_view s, std::size_t max = 255);

/// Which namespaces each field counts: "all_netns" (the probes and the kfree_skb tracepoint see
/// every netns), "own_netns" (ctnetlink and the count sysctl answer for ctbpf's netns only), null
/// when unobservable. In every summary as "scope".
nlohmann::json scope_json(const Observability& obs);
/// The same in one line for people; `netns` (netns_label()) names the own netns when known.
std::string scope_text(Mode mode, const std::string& netns = "");
/// The ctnetlink statistics as "found N invalid N ... chaintoolong N" ("-" for a counter the kernel lacks).
std::string kernel_stats_text(const KernelStats& k);

/// What each contract field of a summary holds in this mode: true where trace, serve, snapshots and
/// reports show a value, false where they show null / "-". Found by running `probe` (a sample read
/// from this kernel: its ctnetlink counters and table gauges) through the same derive and render path
/// as every view, so `ctbpf features` can never promise more than the others deliver.
nlohmann::json observable_json(const Sample& probe, Mode mode, const Observability& obs);

nlohmann::json interval_json(const Report& r, const Observability& obs, const WhoFills* who = nullptr);
nlohmann::json summary_json(const Report& r, Mode mode, const Observability& obs, const WhoFills* who = nullptr);

/// One row of `ctbpf top` and of "by_source": netns, name (null when unknown), counts, and the source
/// address when `with_source`.
nlohmann::json top_row_json(const TopRow& r, const NetnsNames& names, bool with_source);
/// A TopList as rows, the rest last as one "other" row (netns and src "other").
nlohmann::json top_list_json(const TopList& top, const NetnsNames& names, bool with_source);

/// One line per interval, for pipes and logs.
std::string interval_line(const Report& r);
/// A short multi-line block for people, printed at the end.
/// `chain_one_in` > 1: chains were walked for 1 insert in that many per CPU, which the block says.
std::string summary_text(const Report& r, Mode mode, const WhoFills* who = nullptr, uint32_t chain_one_in = 1);
/// The "inserts by netns" and top-source lines of a summary_json object (or a snapshot's summary);
/// empty when it has neither.
std::string attribution_text(const nlohmann::json& summary);

}  // namespace ctbpf::core
