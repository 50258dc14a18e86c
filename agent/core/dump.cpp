// SPDX-License-Identifier: Apache-2.0
#include "core/dump.h"

#include <fmt/format.h>

namespace ctbpf::core {

bool DumpBudget::admit(double elapsed_s) {
  if (read_.stopped_early()) return false;
  // An entry beyond a bound is one the table still had: the dump stopped early. A table of exactly
  // max_entries entries ends without another entry offered, so it is read whole.
  if (read_.limit.max_entries && read_.entries >= read_.limit.max_entries)
    read_.stopped = DumpStop::max_entries;
  else if (read_.limit.max_seconds > 0 && elapsed_s >= read_.limit.max_seconds)
    read_.stopped = DumpStop::max_seconds;
  else
    ++read_.entries;
  return !read_.stopped_early();
}

DumpRead DumpBudget::finish(bool ok, double elapsed_s) const {
  DumpRead r = read_;
  r.ok = ok;
  r.seconds = elapsed_s;
  return r;
}

nlohmann::json dump_stop_json(DumpStop stop) {
  switch (stop) {
    case DumpStop::max_entries: return "max_entries";
    case DumpStop::max_seconds: return "max_seconds";
    case DumpStop::none: break;
  }
  return nullptr;
}

nlohmann::json dump_json(const DumpRead& r) {
  using nlohmann::json;
  return {{"ok", r.ok},
          {"entries", r.entries},
          {"seconds", r.seconds},
          {"stopped_early", r.stopped_early()},
          {"stopped_by", dump_stop_json(r.stopped)},
          {"max_entries", r.limit.max_entries ? json(r.limit.max_entries) : json(nullptr)},
          {"max_seconds", r.limit.max_seconds > 0 ? json(r.limit.max_seconds) : json(nullptr)}};
}

std::string dump_stopped_text(const DumpRead& r, std::optional<uint64_t> count) {
  if (!r.stopped_early()) return {};
  const std::string of = count ? fmt::format(" of {}", *count) : "";
  const std::string bound = r.stopped == DumpStop::max_entries
                                ? fmt::format("--dump-max-entries {}", r.limit.max_entries)
                                : fmt::format("--dump-max-seconds {:g}", r.limit.max_seconds);
  return fmt::format("the ctnetlink dump stopped early: {}{} entries read in {:.3g} s ({})", r.entries, of,
                     r.seconds, bound);
}

}  // namespace ctbpf::core
