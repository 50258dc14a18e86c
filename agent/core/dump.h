/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// How much of a ctnetlink dump `top` and `doctor` read. A dump walks the whole conntrack table: with a
// million entries it takes seconds and, kept, hundreds of megabytes. So every dump is read under a
// bound on entries and one on time, whichever comes first, aggregated as it is read (no entry is
// kept), and what was read is reported with it: a partial dump is said, never passed off as the table.
// Pure: the kernel layer supplies the clock readings.
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace ctbpf::core {

/// The bounds of one dump; 0 = no bound.
struct DumpLimit {
  /// Doctor's idle sample had this bound before it was an option: a quarter of a million entries
  /// read in well under a second on a server, and its per-source map stays small.
  static constexpr uint64_t kDefaultEntries = 262144;
  /// A refresh of `top` (1 s by default) or a doctor window should not wait longer on one dump.
  static constexpr double kDefaultSeconds = 2.0;
  uint64_t max_entries = kDefaultEntries;
  double max_seconds = kDefaultSeconds;
};

enum class DumpStop { none, max_entries, max_seconds };

/// What one dump read.
struct DumpRead {
  bool ok = false;       // ctnetlink answered (false: no CAP_NET_ADMIN, no nf_conntrack_netlink)
  uint64_t entries = 0;  // entries read (and aggregated)
  double seconds = 0;    // from the request to the last entry read
  DumpStop stopped = DumpStop::none;  // why it stopped before the end of the table; none: it read it all
  DumpLimit limit;
  bool stopped_early() const { return stopped != DumpStop::none; }
};

/// Decides, entry by entry, whether a dump reads on.
class DumpBudget {
public:
  explicit DumpBudget(DumpLimit limit) : read_{.limit = limit} {}
  /// Before each entry, with the seconds since the dump was asked for: true to read it; false to
  /// stop here (the entry is not read; why is recorded).
  bool admit(double elapsed_s);
  /// The dump's account, `ok` as ctnetlink answered, `elapsed_s` at its end.
  DumpRead finish(bool ok, double elapsed_s) const;

private:
  DumpRead read_;
};

/// "max_entries" / "max_seconds"; null when the dump read the whole table.
nlohmann::json dump_stop_json(DumpStop stop);

/// {"ok", "entries", "seconds", "stopped_early", "stopped_by", "max_entries", "max_seconds"} (a bound
/// of 0 is null: none).
nlohmann::json dump_json(const DumpRead& read);

/// One line for people when the dump stopped early, empty when it read the whole table: what it read,
/// which bound stopped it and the option that moves it, and the table's count when known (`count`,
/// the same netns's nf_conntrack_count), e.g. "the ctnetlink dump stopped early: 262144 of 1000000
/// entries read in 1.31 s (--dump-max-entries 262144)".
std::string dump_stopped_text(const DumpRead& read, std::optional<uint64_t> count);

}  // namespace ctbpf::core
