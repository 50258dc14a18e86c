/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// The Prometheus text exposition (and OpenMetrics) of ctbpf's totals since start. Pure: the serve
// command hands it a Report and gets the page. Label sets have a hard bound: at most
// kMaxNetnsLabels namespaces get their own series, the rest share netns="other".
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/aggregator.h"
#include "ctbpf/abi.h"

namespace ctbpf::core {

/// Netns inodes that own a label, fixed at first sight: once labelled, a netns keeps its series (a
/// counter never moves between series, so it never appears to reset); later ones go to "other".
class NetnsLabels {
public:
  explicit NetnsLabels(std::size_t max_labels) : max_(max_labels) {}
  /// Admits the busiest namespaces of `counts` (most inserts first) while there is room.
  void admit(const ByNetns& counts);
  /// Admits one netns (e.g. one that only drops) while there is room; true when it has a label.
  bool admit_one(uint32_t netns);
  bool labelled(uint32_t netns) const { return labelled_.count(netns) != 0; }
  const std::set<uint32_t>& all() const { return labelled_; }

private:
  std::size_t max_;
  std::set<uint32_t> labelled_;
};

inline constexpr std::size_t kMaxNetnsLabels = 20;

/// Drop events read from the ring, per (cause, netns), for attribution. They are a sample: the kernel
/// lets at most --drop-events-rate per CPU per second through and counts the rest
/// (Totals::drop_events_suppressed); a full ring counts lost_events. So events + suppressed + lost =
/// the drops the probes counted (insert_failed's events name it insert_failed or chaintoolong).
/// Bounded: causes x (labelled netns + "other") series; a netns without a label counts as "other".
class DropEventCounts {
public:
  /// Counts `e` when it is a drop event, giving its netns a label while `labels` has room.
  void add(const ctbpf_event& e, NetnsLabels& labels);
  /// (cause as enum ctbpf_counter, netns inode or CTBPF_NETNS_OTHER) -> events.
  const std::map<std::pair<uint32_t, uint32_t>, uint64_t>& counts() const { return counts_; }

private:
  std::map<std::pair<uint32_t, uint32_t>, uint64_t> counts_;
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
  const DropEventCounts* drop_events = nullptr;  // serve's sampled drop events; null: none read
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
