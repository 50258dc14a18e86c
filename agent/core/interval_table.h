/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// `ctbpf trace`'s text interval lines: a header and one row per interval that fit 100 columns, like
// vmstat. Every field, on one longer key=value line, is core::interval_line (trace -w).
#include <string>

#include "core/aggregator.h"

namespace ctbpf::core {

/// The width no row or header exceeds.
inline constexpr std::size_t kIntervalTableWidth = 100;

/// The column names; `clock` names the first column TIME (wall clock) instead of T (seconds from start).
std::string interval_table_header(bool clock);

/// One row: `time` is the first column as printed (core::clock_text or the end of the interval in
/// seconds); counts per interval, rates per second, "-" for what this mode cannot see.
std::string interval_table_row(const Report& r, const std::string& time);

/// One line that says which columns of this row are "-" and why (what `mode` cannot observe), for
/// the reader of a pipe or a file, where the live screen's note is not; empty when none is.
std::string interval_table_note(const Report& r, const std::string& mode);

/// "HH:MM:SS" in UTC, for -T.
std::string clock_text(double epoch_s);

}  // namespace ctbpf::core
