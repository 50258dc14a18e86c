/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// The OS side of attribution: names for netns inodes, and the ctnetlink dump of existing entries
// (it seeds top's live counts and gives doctor its idle times).
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/attribution.h"
#include "core/dump.h"
#include "core/idle.h"

namespace ctbpf::kernel {

/// Inode of this process's network namespace.
uint32_t own_netns_inode();

/// The entries of this netns's conntrack table (one ctnetlink dump, all families and zones), as plain
/// facts, each to `visit`, until the table ends or `limit` stops the dump. Nothing is kept: the
/// visitor aggregates. What was read is returned (ok false when ctnetlink cannot be asked).
core::DumpRead dump_table(const core::DumpLimit& limit, const std::function<void(const core::DumpedEntry&)>& visit);

/// Entries in this netns's conntrack table now, counted by original source address (one dump under
/// `limit`), and what the dump read.
struct SourcesDump {
  core::DumpedSources sources;
  core::DumpRead read;
};
SourcesDump dump_sources(const core::DumpLimit& limit);

/// Names netns inodes: the `ip netns` name (/run/netns), else the container or pod of a process
/// living in it, else that process (pid, comm). Cached; rescans (at most once a second) when asked
/// about an inode it has not seen.
class NetnsNamer {
public:
  std::string name(uint32_t inode);
  /// Forgets the name of each inode in `counts` that a later netns now holds (core::NetnsCounts::
  /// identity; 0 is unknown), so that name() asks again. Returns those inodes.
  std::vector<uint32_t> forget_reused(const core::ByNetns& counts);
  /// Adds to `known` the names of the namespaces in `counts` it lacks (the kernel's "other" bucket
  /// aside), renaming reused inodes. Called every interval, so a namespace gone by the end of a trace
  /// keeps its name.
  void name_new(const core::ByNetns& counts, core::NetnsNames& known);

private:
  void rescan();
  std::map<uint32_t, std::string> names_;
  std::map<uint32_t, uint32_t> identities_;  // inode -> the netns named for it
  std::chrono::steady_clock::time_point last_scan_{};
};

}  // namespace ctbpf::kernel
