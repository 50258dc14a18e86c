/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// Who fills the table: live entries and inserts per network namespace and per source address. Pure:
// the kernel layer supplies cumulative per-source counts (BPF) and, once at start, a dump of the
// entries that already existed, so "live" is right from the first second.
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/sample.h"

namespace ctbpf::core {

struct SourceKey {
  uint32_t netns = 0;
  uint8_t l3 = 0;  // AF_INET / AF_INET6
  std::array<uint8_t, 16> addr{};
  auto operator<=>(const SourceKey&) const = default;
};

using BySource = std::map<SourceKey, NetnsCounts>;

/// Live entries by source from one ctnetlink dump (counts in NetnsCounts::inserts), aggregated as
/// it is read. At most kDumpSourcesMax distinct sources are kept, the bound of the kernel's own
/// source map: a table of a million entries from a million addresses costs no more memory than one
/// from a few; entries of the sources beyond it are counted, not kept.
struct DumpedSources {
  static constexpr std::size_t kDumpSourcesMax = CTBPF_SOURCES_MAX;
  BySource by_source;
  uint64_t unattributed = 0;  // entries of sources beyond the bound
  void add(const SourceKey& key);
};

/// "10.0.0.1" / "fd00::1".
std::string address_text(const SourceKey& key);

/// A container or pod named by a process's /proc/PID/cgroup content (docker, containerd, CRI-O,
/// kubepods layouts), e.g. "docker:3f2a1c9b8e7d", "pod:1234-abcd/containerd:9f8e..."; empty if none.
std::optional<std::string> container_from_cgroup(const std::string& cgroup_file);

struct TopRow {
  SourceKey key;       // for netns rows only key.netns is set
  int64_t live = 0;    // entries now: seed + inserts - destroys
  uint64_t inserts = 0, destroys = 0;  // since start
  double inserts_per_s = 0;            // over the last interval
  int64_t growth = 0;                  // live now - live at the previous update
  double growth_per_s = 0;             // growth over the last interval
  bool inserts_seen = true;            // false from dumps alone: inserts and destroys are unknown (null)
  bool growth_seen = true;             // false when either dump stopped early: growth is unknown (null)
};

/// The first n rows in one order, and the rest summed, so any number of sources or namespaces shows
/// as at most n + 1 rows.
struct TopList {
  std::vector<TopRow> rows;
  std::optional<TopRow> other;  // empty when nothing is left over; its key is meaningless
};

enum class TopOrder { live, inserts };

/// Names of netns inodes (`ip netns` name, container, or process), as kernel::NetnsNamer gives them.
using NetnsNames = std::map<uint32_t, std::string>;

class Attribution {
public:
  /// Entries that existed at start, by source (from a ctnetlink dump of the netns ctbpf runs in).
  void seed(const BySource& existing);
  /// Cumulative per-source counts since start, and the seconds since the previous call.
  void update(const BySource& cumulative, double interval_s);
  /// Without conntrack probes (tracepoint mode): the live entries by source of a fresh dump (counts in
  /// NetnsCounts::inserts) replace the last ones, `interval_s` after them. Inserts and destroys are
  /// then unknown; growth is the change between dumps, a net figure (entries made and gone between
  /// two dumps never show). A dump that stopped early (`whole` false) holds some of the table: the
  /// change from or to it says nothing, so growth is unknown until two whole dumps follow each other.
  void replace_live(const BySource& dumped, double interval_s, bool whole = true);

  TopList top_sources(std::size_t n, TopOrder order = TopOrder::live) const;
  TopList top_netns(std::size_t n) const;

private:
  std::vector<TopRow> rows(bool by_netns, TopOrder order) const;
  std::map<SourceKey, int64_t> live() const;
  BySource seed_, now_, previous_;
  std::map<SourceKey, int64_t> previous_live_;  // per source, at the previous update
  bool have_previous_ = false;
  bool dumps_only_ = false;
  bool last_dump_whole_ = true, growth_seen_ = true;
  double interval_s_ = 0;
};

}  // namespace ctbpf::core
