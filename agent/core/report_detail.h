#pragma once
// Formatting shared by the text, HTML and diff views of a validated snapshot (internal to report*.cpp).
#include <string>

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
/// Why the flight recorder wrote it, or empty.
std::string trigger_line(const nlohmann::json& doc);

}  // namespace ctbpf::core::report_detail
