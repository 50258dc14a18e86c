#pragma once
// Views of a Report: NDJSON objects (the contract in DESIGN.md) and plain text. Rendering returns
// strings; only the CLI edge prints them.
#include <string>

#include <nlohmann/json.hpp>

#include "core/aggregator.h"

namespace ctbpf::core {

nlohmann::json interval_json(const Report& r, const Observability& obs);
nlohmann::json summary_json(const Report& r, Mode mode, const Observability& obs);

/// One line per interval, for pipes and logs.
std::string interval_line(const Report& r);
/// A short multi-line block for people, printed at the end.
std::string summary_text(const Report& r, Mode mode);

}  // namespace ctbpf::core
