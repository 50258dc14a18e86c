#pragma once
// The OS side of attribution: names for netns inodes, and the ctnetlink dump of existing entries
// (it seeds top's live counts and gives doctor its idle times).
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "core/attribution.h"
#include "core/idle.h"

namespace ctbpf::kernel {

/// Inode of this process's network namespace.
uint32_t own_netns_inode();

/// Every entry of this netns's conntrack table (one ctnetlink dump, all families and zones), as plain
/// facts, until `visit` returns false. False when ctnetlink cannot be asked.
bool dump_table(const std::function<bool(const core::DumpedEntry&)>& visit);

/// Entries in this netns's conntrack table now, counted by original source address (ctnetlink dump).
/// Empty when ctnetlink cannot be asked.
core::BySource dump_sources();

/// Names netns inodes: the `ip netns` name (/run/netns), else the container or pod of a process
/// living in it, else that process (pid, comm). Cached; rescans (at most once a second) when asked
/// about an inode it has not seen.
class NetnsNamer {
public:
  std::string name(uint32_t inode);
  /// Adds to `known` the names of the namespaces in `counts` it lacks (the kernel's "other" bucket
  /// aside). Called every interval, so a namespace gone by the end of a trace keeps its name.
  void name_new(const core::ByNetns& counts, core::NetnsNames& known);

private:
  void rescan();
  std::map<uint32_t, std::string> names_;
  std::chrono::steady_clock::time_point last_scan_{};
};

}  // namespace ctbpf::kernel
