/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// The OS side of attribution: names for netns inodes, and the ctnetlink dump of existing entries
// (it seeds top's live counts and gives doctor its idle times).
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/attribution.h"
#include "core/dump.h"
#include "core/idle.h"
#include "core/netns_scope.h"
#include "core/pods.h"

namespace ctbpf::kernel {

/// Inode of this process's network namespace.
uint32_t own_netns_inode();
/// How to run a command in the netns `inode` from ctbpf's: "" in ctbpf's own, "ip netns exec NAME " for
/// a named one, "nsenter --net=/proc/PID/ns/net " for one a process is in; empty when none is found.
std::optional<std::string> enter_netns_prefix(uint32_t inode);

/// This process's network namespace, named: "host" when it is the initial one (the one where the
/// kernel lets nf_conntrack_buckets be written), else its `ip netns` name (/run/netns), else docker's
/// pin name, else no name.
core::OwnNetns own_netns();

/// Each `ip netns` namespace (/run/netns) other than this process's, with the entries of its table:
/// nf_conntrack_count, read by a short-lived thread that enters each one (setns, CAP_SYS_ADMIN; the
/// count is empty where that fails). At most `max` namespaces, the rest unread once `budget` is spent.
std::vector<core::NetnsTable> named_netns_tables(std::size_t max = 64,
                                                 std::chrono::milliseconds budget = std::chrono::milliseconds(300));

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

/// The pods and containers the container runtimes on this node record, by the netns they run in:
/// containerd's CRI tasks (/run/containerd/io.containerd.runtime.v2.task/k8s.io/ID/config.json),
/// CRI-O's containers (/run/containers/storage/overlay-containers/ID/userdata/config.json) and
/// docker's (/var/lib/docker/containers/ID/config.v2.json). Each file is parsed once (again when it
/// changes) and forgotten with its container. A runtime whose files cannot be read is named once on
/// stderr; its pods then keep the names their processes' cgroups give (pod UID, container id).
class RuntimeNames {
public:
  /// netns inode -> "namespace/pod" (or "docker:NAME"), reading until `deadline` (what was read by
  /// then is returned; the rest is read next time).
  std::map<uint32_t, std::string> scan(std::chrono::steady_clock::time_point deadline);
  /// True when any runtime's state directory exists here.
  bool present();

private:
  struct Known {
    int64_t mtime_ns = 0;
    std::optional<core::RuntimeContainer> container;
  };
  std::map<std::string, Known> files_;  // config file -> what it said when last read
  std::set<std::string> warned_;        // runtimes already said to be unreadable
  std::optional<bool> present_;
};

/// Names netns inodes: the pod or container a runtime records for it (RuntimeNames), else the
/// `ip netns` name (/run/netns), else the container or pod of a process living in it, else that
/// process (pid, comm). Cached; rescans (at most once a second) when asked about an inode it has not
/// seen.
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
  /// Rescans now: every netns a process lives in or a /run/netns (or docker's) entry holds, and the
  /// initial one, named afresh (a reused inode gets its new holder's name). Returns those inodes, the
  /// live ones; empty when /proc could not be walked within `budget` (then the names are kept as they
  /// were, and nothing may be declared dead). serve calls it once per interval.
  std::optional<std::set<uint32_t>> live(std::chrono::milliseconds budget = std::chrono::milliseconds(500));

private:
  /// False when the walk did not finish by `deadline` (names then unchanged).
  bool rescan(std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max());
  std::map<uint32_t, std::string> names_;
  std::map<uint32_t, uint32_t> identities_;  // inode -> the netns named for it
  RuntimeNames runtimes_;
  std::chrono::steady_clock::time_point last_scan_{};
};

}  // namespace ctbpf::kernel
