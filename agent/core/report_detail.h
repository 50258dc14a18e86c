/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// Formatting shared by the text, HTML and diff views of a validated snapshot (internal to report*.cpp).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ctbpf::core::report_detail {

/// A count as printed: the integer, a number with one decimal, or "-" for null (not observable).
std::string num(const nlohmann::json& v);
/// count / duration as "N/s", or "-".
std::string per_s(const nlohmann::json& count, double duration_s);
/// "table COUNT/MAX (FILL%)  buckets N" from a summary's "table".
std::string table_line(const nlohmann::json& table);
/// "NAME: n N  mean M  p50 A  p99 B  max C" from a histogram object.
std::string histogram_line(const char* name, const nlohmann::json& h);
/// "window START to END: D s, N intervals of I s".
std::string window_line(const nlohmann::json& doc);
/// "+12 (+2/s)" from a "table" object's growth and growth_per_s, "-" when absent (older files) or null.
std::string growth_text(const nlohmann::json& table);
/// "found N  insert N ..." from a "kernel_stats" object, counters the kernel lacks left out.
std::string kernel_stats_line(const nlohmann::json& stats);
/// "  nat blackholes: ..." and "  dns races: ..." with a line per row (at most 10 each).
std::string nat_drops_report_lines(const nlohmann::json& summary);
/// "no drops in this window (watched: ...)" when every observable cause is 0, "- (not observable in
/// this mode)" when none is observable; empty when something was dropped (a chart shows it).
std::string drops_note(const nlohmann::json& doc);
/// The sysctls that decide whether the table fills (size, hash, the main timeouts), in this order.
const std::vector<std::string>& key_sysctls();
/// A sysctl's value with its unit: "432000 s (5 d)", "65536 entries".
std::string sysctl_value(const std::string& name, const nlohmann::json& value);
/// "table and kernel stats: netns NAME (inode N)" from a summary's "own_netns", then, when other
/// named namespaces held entries, where ("other_netns"); lines without their newline, none for a file
/// older than them.
std::vector<std::string> netns_lines(const nlohmann::json& summary);
/// Why the flight recorder wrote it, or empty.
std::string trigger_line(const nlohmann::json& doc);

}  // namespace ctbpf::core::report_detail
