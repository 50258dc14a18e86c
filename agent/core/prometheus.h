/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// The Prometheus text exposition (and OpenMetrics) of ctbpf's totals since start. Pure: the serve
// command hands it a Report and gets the page. Label sets have a hard bound: at most
// NetnsLabels::max_labels() namespaces (the busiest live ones) get their own series, the rest share
// netns="other".
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/aggregator.h"
#include "ctbpf/abi.h"

namespace ctbpf::core {

class NetnsSeriesCounts;

/// Which netns get their own series, and the values those series and netns="other" show. The labelled
/// netns are the busiest live ones, at most `max_labels`: a netns that dies (its inode held by no
/// process or /run/netns entry any more, or by a later netns: NetnsCounts::identity) loses its series,
/// and what it showed moves into other. A busier live netns takes a label when one is free, or from
/// the least busy labelled one when it is kDisplaceFactor times busier (no flapping between near
/// equals). Busy: inserts plus drop events, decayed with a half-life, so a pod busy now beats one that
/// was busy an hour ago.
///
/// Prometheus counters only ever grow within a series, so a series counts from the refresh its netns
/// took the label: what the netns did before was already in other, and stays there. A netns first seen
/// in this refresh keeps everything it did: none of it was in other yet. Then, at every refresh,
/// for inserts and for destroys:
///   sum(labelled series) + other == the global counter (the sum over protocols),
/// and other never decreases. A labelled series that would grow faster than the global counter (the
/// kernel's per-CPU counts are read one after another, not at one instant) lags by the difference
/// until a later refresh.
class NetnsLabels {
public:
  struct Series {
    uint64_t inserts = 0, destroys = 0;
    bool operator==(const Series&) const = default;
  };

  explicit NetnsLabels(std::size_t max_labels, double half_life_s = kHalfLifeS);

  /// One refresh. `counts`: cumulative since serve started, per netns (Report's by_netns); `inserts`
  /// and `destroys`: the global counters of the same report; `live`: the netns inodes alive now, or
  /// empty when that could not be read (then only a reused inode ends a series); `drops`: drop events
  /// per netns since the last update (NetnsSeriesCounts::take_recent()); `elapsed_s`: since the last
  /// update. A NetnsSeriesCounts given as `events` loses the series this update ends (into other).
  void update(const ByNetns& counts, uint64_t inserts, uint64_t destroys,
              const std::optional<std::set<uint32_t>>& live, const std::map<uint32_t, uint64_t>& drops,
              double elapsed_s, NetnsSeriesCounts* events = nullptr);

  bool labelled(uint32_t netns) const { return labelled_.count(netns) != 0; }
  /// The labelled inodes.
  std::set<uint32_t> all() const;
  /// What each labelled netns's series shows now.
  const std::map<uint32_t, Series>& series() const { return series_; }
  /// netns="other": the global counters less every labelled series.
  Series other() const { return other_; }
  std::size_t max_labels() const { return max_; }
  /// Netns the ranking keeps state for (live ones the kernel counts): bounded by the kernel's slots.
  std::size_t tracked() const { return known_.size(); }

  static constexpr double kDisplaceFactor = 2.0;
  static constexpr double kHalfLifeS = 120;

private:
  struct Known {
    uint32_t identity = 0;
    Series last;       // counts at the previous update (what other already held, if unlabelled)
    double score = 0;  // decayed inserts + drop events
  };
  struct Label {
    uint32_t identity = 0;
    Series baseline;  // the netns's counts that other kept when it took the label
  };
  std::size_t max_;
  double half_life_s_;
  std::map<uint32_t, Known> known_;
  std::map<uint32_t, Label> labelled_;
  std::map<uint32_t, Series> series_;
  Series global_, other_;
};

/// serve's default bound on labelled netns (--netns-labels).
inline constexpr std::size_t kMaxNetnsLabels = 20;

/// Counters by (labels, netns) whose netns series follow NetnsLabels: drop events per cause, NAT'd
/// flows' dropped packets per drop reason, DNS races per cause and resolver. `labels` is the series's
/// label text but netns (`cause="table_full"`). Bounded: label texts x (labelled netns + "other"); a
/// netns without a label counts as "other", and a netns that loses its label (NetnsLabels::update)
/// gives its counts to "other": per label text, the series always add up to what was counted.
///
/// Drop events are a sample: the kernel lets at most --drop-events-rate per CPU per second through
/// and counts the rest (Totals::drop_events_suppressed); a full ring counts lost_events. So events +
/// suppressed + lost = the drops the probes counted (insert_failed's events name it insert_failed or
/// chaintoolong).
class NetnsSeriesCounts {
public:
  /// Counts `e` when it is a drop event (cause="..."): under its netns when that has a label, else other.
  void add(const ctbpf_event& e, const NetnsLabels& labels);
  /// Counts `n` under `label_text` and the netns (or other).
  void add(const std::string& label_text, uint32_t netns, uint64_t n, const NetnsLabels& labels);
  /// (label text, netns inode or CTBPF_NETNS_OTHER) -> count.
  const std::map<std::pair<std::string, uint32_t>, uint64_t>& counts() const { return counts_; }
  /// Counts per netns since the last call, for NetnsLabels's ranking (at most kRecentMax netns).
  std::map<uint32_t, uint64_t> take_recent();
  /// Moves the counts of every netns but those in `keep` into other.
  void keep_only(const std::set<uint32_t>& keep);

  static constexpr std::size_t kRecentMax = 4096;

private:
  std::map<std::pair<std::string, uint32_t>, uint64_t> counts_;
  std::map<uint32_t, uint64_t> recent_;
};

/// A capability ctbpf runs without (kernel::privilege_needs()), as ctbpf_privilege_missing.
struct PrivilegeState {
  std::string capability, feature;
  bool missing = false;
};

struct ExpositionInput {
  Mode mode = Mode::tracepoint;
  const Observability* obs = nullptr;
  const Report* total = nullptr;  // since serve started
  const NetnsLabels* netns = nullptr;
  std::string version;
  bool openmetrics = false;
  std::map<uint32_t, std::string> netns_names;  // for labelled netns: ip netns / container / process
  const NetnsSeriesCounts* drop_events = nullptr;  // serve's sampled drop events; null: none read
  const NetnsSeriesCounts* nat_blackholes = nullptr;  // packets of NAT'd flows dropped; null: unobservable
  const NetnsSeriesCounts* dns_races = nullptr;       // UDP port 53 clashes; null: unobservable
  std::vector<PrivilegeState> privileges{};
  /// False while serve waits for nf_conntrack: the page then holds only build_info (mode "none"),
  /// ctbpf_attached 0 and the privileges; total may be null.
  bool attached = true;
};

std::string render_exposition(const ExpositionInput& in);

/// Content-Type for the chosen format.
const char* exposition_content_type(bool openmetrics);
/// True when an HTTP Accept header asks for OpenMetrics.
bool wants_openmetrics(const std::string& accept_header);

}  // namespace ctbpf::core
