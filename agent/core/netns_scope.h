/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// Which network namespace ctbpf's own-netns readings come from (the table, its count, the kernel's
// statistics, every ctnetlink dump), said by name wherever they are shown, and where other
// namespaces hold entries this one does not see. Pure: the kernel side finds the facts
// (kernel/attribution_sources.h).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ctbpf::core {

/// The netns ctbpf runs in.
struct OwnNetns {
  std::optional<uint32_t> inode;  // empty: /proc/self/ns/net unreadable
  std::string name;               // "host" (the initial netns), an `ip netns` name, else empty
};

/// A named (`ip netns`) namespace other than ctbpf's, and the entries of its table.
struct NetnsTable {
  std::string name;
  uint32_t inode = 0;
  std::optional<uint64_t> count;  // its nf_conntrack_count; empty when it could not be read
};

/// {"inode":N|null, "name":S|null}; null when not known at all.
nlohmann::json own_netns_json(const std::optional<OwnNetns>& netns);
/// [{"name":S, "inode":N, "count":N|null}, ...]; null when not looked at.
nlohmann::json other_netns_json(const std::optional<std::vector<NetnsTable>>& others);

/// For people, from own_netns_json()'s object (a snapshot's too: anything else gives ""):
/// "host netns (inode N)", "netns NAME (inode N)", "unnamed netns (inode N)".
std::string netns_label(const nlohmann::json& own);

/// When other named namespaces hold entries: how many, in which (the busiest three), and the command
/// that shows one ("ip netns exec NAME ctbpf COMMAND"); one line, "" when none does. `own_count`
/// (this netns's entries) words it as the reason an empty table here is not the whole story.
std::string other_netns_hint(const std::vector<NetnsTable>& others, std::optional<uint64_t> own_count,
                             const std::string& command);
/// The same from other_netns_json()'s array (a summary's "other_netns").
std::string other_netns_hint_json(const nlohmann::json& others, const nlohmann::json& own_count,
                             const std::string& command);

/// One line ("warning: A from ..., B from ...") when two summaries (a snapshot's, each with
/// "own_netns") come from different network namespaces, whose tables and kernel statistics then do
/// not compare; "" when the same or unknown.
std::string netns_mismatch(const nlohmann::json& summary_a, const nlohmann::json& summary_b);

}  // namespace ctbpf::core
