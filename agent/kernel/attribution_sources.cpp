// SPDX-License-Identifier: Apache-2.0
#include "kernel/attribution_sources.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace ctbpf::kernel {

namespace {

std::optional<uint32_t> inode_of(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return std::nullopt;
  return static_cast<uint32_t>(st.st_ino);
}

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// What the dump's callback needs: the visitor, the budget, and when the dump was asked for.
struct DumpState {
  const std::function<void(const core::DumpedEntry&)>& visit;
  core::DumpBudget budget;
  std::chrono::steady_clock::time_point start;
  double elapsed() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); }
};

// One entry of the dump, as plain facts, to the visitor, while the budget admits it; a stop ends the
// read, and what is left of the dump goes with the socket.
int visit_entry(enum nf_conntrack_msg_type, struct nf_conntrack* ct, void* data) {
  auto& state = *static_cast<DumpState*>(data);
  if (!state.budget.admit(state.elapsed())) return NFCT_CB_STOP;
  core::DumpedEntry e;
  e.l3 = nfct_get_attr_u8(ct, ATTR_L3PROTO);
  auto address = [&](std::array<uint8_t, 16>& to, nf_conntrack_attr v4_attr, nf_conntrack_attr v6_attr) {
    if (e.l3 == AF_INET) {
      uint32_t v4 = nfct_get_attr_u32(ct, v4_attr);
      std::memcpy(to.data(), &v4, sizeof(v4));
    } else if (e.l3 == AF_INET6) {
      std::memcpy(to.data(), nfct_get_attr(ct, v6_attr), 16);
    }
  };
  address(e.src, ATTR_IPV4_SRC, ATTR_IPV6_SRC);
  address(e.dst, ATTR_IPV4_DST, ATTR_IPV6_DST);
  address(e.reply_src, ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV6_SRC);
  e.sport = ntohs(nfct_get_attr_u16(ct, ATTR_PORT_SRC));
  e.dport = ntohs(nfct_get_attr_u16(ct, ATTR_PORT_DST));
  e.reply_sport = ntohs(nfct_get_attr_u16(ct, ATTR_REPL_PORT_SRC));
  if (nfct_attr_is_set(ct, ATTR_ZONE) > 0) e.zone = nfct_get_attr_u16(ct, ATTR_ZONE);
  if (nfct_attr_is_set(ct, ATTR_ORIG_COUNTER_PACKETS) > 0) e.orig_packets = nfct_get_attr_u64(ct, ATTR_ORIG_COUNTER_PACKETS);
  if (nfct_attr_is_set(ct, ATTR_REPL_COUNTER_PACKETS) > 0) e.reply_packets = nfct_get_attr_u64(ct, ATTR_REPL_COUNTER_PACKETS);
  e.l4 = nfct_get_attr_u8(ct, ATTR_L4PROTO);
  if (nfct_attr_is_set(ct, ATTR_TCP_STATE) > 0) e.tcp_state = nfct_get_attr_u8(ct, ATTR_TCP_STATE);
  if (nfct_attr_is_set(ct, ATTR_STATUS) > 0) e.status = nfct_get_attr_u32(ct, ATTR_STATUS);
  if (nfct_attr_is_set(ct, ATTR_TIMEOUT) > 0) e.timeout_s = nfct_get_attr_u32(ct, ATTR_TIMEOUT);
  state.visit(e);
  return NFCT_CB_CONTINUE;
}

}  // namespace

uint32_t own_netns_inode() {
  static const uint32_t inode = inode_of("/proc/self/ns/net").value_or(0);
  return inode;
}

core::DumpRead dump_table(const core::DumpLimit& limit, const std::function<void(const core::DumpedEntry&)>& visit) {
  DumpState state{visit, core::DumpBudget(limit), std::chrono::steady_clock::now()};
  nfct_handle* h = nfct_open(CONNTRACK, 0);
  if (!h) return state.budget.finish(false, state.elapsed());
  nfct_callback_register(h, NFCT_T_ALL, visit_entry, &state);
  uint32_t family = AF_UNSPEC;
  // A stop from the callback makes nfct_query return 0, as a whole dump does.
  const bool ok = nfct_query(h, NFCT_Q_DUMP, &family) >= 0;
  nfct_close(h);
  return state.budget.finish(ok, state.elapsed());
}

SourcesDump dump_sources(const core::DumpLimit& limit) {
  SourcesDump out;
  out.read = dump_table(limit, [&](const core::DumpedEntry& e) { out.sources.add({own_netns_inode(), e.l3, e.src}); });
  return out;
}

namespace {
// `ip netns` names (bind mounts in /run/netns) into `names`, over what they hold.
void add_ip_netns_names(std::map<uint32_t, std::string>& names) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/run/netns", ec)) {
    if (auto inode = inode_of(entry.path().string())) names[*inode] = entry.path().filename().string();
  }
}
// Docker pins each container's netns here (named by sandbox id); a process is normally in it too.
void add_docker_netns(std::map<uint32_t, std::string>& names) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/run/docker/netns", ec)) {
    if (auto inode = inode_of(entry.path().string()); inode && !names.count(*inode))
      names[*inode] = "docker-netns:" + entry.path().filename().string();
  }
}
}  // namespace

std::optional<std::string> enter_netns_prefix(uint32_t inode) {
  if (inode == own_netns_inode()) return "";
  std::map<uint32_t, std::string> named;
  add_ip_netns_names(named);
  if (auto it = named.find(inode); it != named.end()) return "ip netns exec " + it->second + " ";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const auto pid = entry.path().filename().string();
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (inode_of(entry.path().string() + "/ns/net") == inode) return "nsenter --net=/proc/" + pid + "/ns/net ";
  }
  return std::nullopt;
}

namespace {
// The initial pid namespace's inode: fixed by the kernel (PROC_PID_INIT_INO, include/linux/proc_ns.h).
constexpr uint32_t kInitialPidNamespaceInode = 0xEFFFFFFCU;

// The first line of `path` as a number, read by the calling thread (a netns sysctl answers for the
// reading thread's namespace).
std::optional<uint64_t> read_number(const char* path) {
  std::ifstream in(path);
  uint64_t v = 0;
  if (in >> v) return v;
  return std::nullopt;
}
}  // namespace

core::OwnNetns own_netns() {
  core::OwnNetns out;
  if (const auto inode = own_netns_inode()) out.inode = inode;
  if (!out.inode) return out;
  // The kernel makes nf_conntrack_buckets (a global: the hash size) read-only in every netns but the
  // initial one; that answers without reading pid 1 (which needs ptrace rights, and in a container
  // is the container's). Else pid 1's netns, where this process sees the initial pid namespace.
  struct stat st {};
  const bool initial =
      stat("/proc/sys/net/netfilter/nf_conntrack_buckets", &st) == 0
          ? (st.st_mode & S_IWUSR) != 0
          : inode_of("/proc/self/ns/pid") == kInitialPidNamespaceInode && inode_of("/proc/1/ns/net") == out.inode;
  if (initial) {
    out.name = "host";
    return out;
  }
  std::map<uint32_t, std::string> names;
  add_ip_netns_names(names);
  add_docker_netns(names);
  if (auto it = names.find(*out.inode); it != names.end()) out.name = it->second;
  return out;
}

std::vector<core::NetnsTable> named_netns_tables(std::size_t max, std::chrono::milliseconds budget) {
  std::vector<std::pair<std::string, uint32_t>> pins;  // name, inode: one per namespace, this one aside
  std::set<uint32_t> seen{own_netns_inode()};
  std::error_code ec;
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator("/run/netns", ec)) paths.push_back(entry.path());
  std::sort(paths.begin(), paths.end());
  for (const auto& path : paths) {
    if (pins.size() >= max) break;
    auto inode = inode_of(path.string());
    if (inode && seen.insert(*inode).second) pins.emplace_back(path.string(), *inode);
  }
  std::vector<core::NetnsTable> out;
  for (const auto& [path, inode] : pins)
    out.push_back({std::filesystem::path(path).filename().string(), inode, std::nullopt});
  if (out.empty()) return out;
  // setns() moves the calling thread only: a thread of its own enters each namespace in turn, reads
  // its count and ends, so no other thread of ctbpf ever leaves this netns.
  const auto deadline = std::chrono::steady_clock::now() + budget;
  std::thread reader([&] {
    for (std::size_t i = 0; i < pins.size() && std::chrono::steady_clock::now() < deadline; ++i) {
      const int fd = open(pins[i].first.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      const bool entered = setns(fd, CLONE_NEWNET) == 0;
      close(fd);
      if (!entered) break;  // no privilege: none of the others would work either
      out[i].count = read_number("/proc/sys/net/netfilter/nf_conntrack_count");
    }
  });
  reader.join();
  return out;
}

namespace {

struct RuntimeLayout {
  const char* runtime;   // as said on stderr
  const char* dir;       // one entry per container
  const char* config;    // the container's file, under its entry
  const char* pid_file;  // its first process's pid, under its entry ("" for none)
  bool docker;           // config.v2.json rather than an OCI spec
};
constexpr RuntimeLayout kRuntimes[] = {
    {"containerd", "/run/containerd/io.containerd.runtime.v2.task/k8s.io", "config.json", "init.pid", false},
    {"CRI-O", "/run/containers/storage/overlay-containers", "userdata/config.json", "userdata/pidfile", false},
    {"docker", "/var/lib/docker/containers", "config.v2.json", "", true},
};
constexpr std::size_t kRuntimeFileMax = 4 << 20;  // a spec is tens of KiB; anything far larger is not one

std::optional<uint32_t> netns_of_pid(int pid) {
  if (pid <= 0) return std::nullopt;
  return inode_of("/proc/" + std::to_string(pid) + "/ns/net");
}

}  // namespace

bool RuntimeNames::present() {
  if (!present_) {
    present_ = false;
    for (const auto& layout : kRuntimes) {
      struct stat st {};
      if (stat(layout.dir, &st) == 0) present_ = true;
    }
  }
  return *present_;
}

std::map<uint32_t, std::string> RuntimeNames::scan(std::chrono::steady_clock::time_point deadline) {
  std::map<uint32_t, std::vector<core::RuntimeContainer>> by_netns;
  std::map<std::string, Known> seen;
  for (const auto& layout : kRuntimes) {
    std::error_code ec;
    std::filesystem::directory_iterator dir(layout.dir, ec);
    auto unreadable = [&](const std::string& why) {
      if (warned_.insert(layout.runtime).second)
        std::fprintf(stderr, "ctbpf: cannot read %s's containers (%s): their pods are named by UID\n", layout.runtime,
                     why.c_str());
    };
    if (ec) {
      if (ec != std::errc::no_such_file_or_directory) unreadable(std::string(layout.dir) + ": " + ec.message());
      continue;
    }
    for (const auto& entry : dir) {
      if (std::chrono::steady_clock::now() > deadline) break;
      const std::string base = entry.path().string() + "/";
      const std::string path = base + layout.config;
      struct stat st {};
      if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;  // not started yet, or gone
      const int64_t mtime_ns = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
      Known known;
      if (auto it = files_.find(path); it != files_.end() && it->second.mtime_ns == mtime_ns) {
        known = it->second;
      } else {
        known.mtime_ns = mtime_ns;
        if (static_cast<std::size_t>(st.st_size) <= kRuntimeFileMax) {
          std::ifstream in(path);
          if (!in) {
            unreadable(path + ": " + std::strerror(errno));
            continue;
          }
          std::stringstream text;
          text << in.rdbuf();
          known.container = layout.docker ? core::container_from_docker_config(text.str())
                                          : core::container_from_oci_spec(text.str());
        }
      }
      seen[path] = known;
      if (!known.container || known.container->host_network) continue;
      // Its netns: the path the spec gives (a pin, or the sandbox's /proc/PID/ns/net), else its pid's.
      std::optional<uint32_t> inode;
      if (!known.container->netns_path.empty()) inode = inode_of(known.container->netns_path);
      if (!inode && known.container->pid) inode = netns_of_pid(known.container->pid);
      if (!inode && *layout.pid_file) {
        std::ifstream pid_in(base + layout.pid_file);
        int pid = 0;
        if (pid_in >> pid) inode = netns_of_pid(pid);
      }
      if (inode) by_netns[*inode].push_back(*known.container);
    }
  }
  // What was not listed this time is gone (or not reached before the deadline: read again next time).
  files_ = std::move(seen);
  std::map<uint32_t, std::string> names;
  for (auto& [inode, containers] : by_netns)
    if (auto name = core::netns_name_from(std::move(containers)); !name.empty()) names[inode] = name;
  return names;
}

std::string NetnsNamer::name(uint32_t inode) {
  auto it = names_.find(inode);
  if (it != names_.end()) return it->second;
  // A name from `ip netns` wins over processes anyway (rescan()), and listing /run/netns costs a few
  // stats where walking every /proc/PID costs milliseconds: a named namespace needs no walk. Where a
  // container runtime runs, its pods' netns are pinned there under meaningless names (cni-UUID): the
  // rescan names them by pod.
  std::map<uint32_t, std::string> named;
  add_ip_netns_names(named);
  auto pinned = named.find(inode);
  if (pinned != named.end() && !runtimes_.present()) return names_[inode] = pinned->second;
  if (std::chrono::steady_clock::now() - last_scan_ > std::chrono::seconds(1)) {
    rescan();
    it = names_.find(inode);
  }
  if (it != names_.end()) return it->second;
  return pinned == named.end() ? "" : pinned->second;
}

std::vector<uint32_t> NetnsNamer::forget_reused(const core::ByNetns& counts) {
  std::vector<uint32_t> reused;
  for (const auto& [inode, c] : counts) {
    if (inode == CTBPF_NETNS_OTHER || !c.identity) continue;
    auto [held, first] = identities_.try_emplace(inode, c.identity);
    if (first || held->second == c.identity) continue;
    held->second = c.identity;
    names_.erase(inode);
    reused.push_back(inode);
  }
  return reused;
}

void NetnsNamer::name_new(const core::ByNetns& counts, core::NetnsNames& known) {
  for (auto inode : forget_reused(counts)) known.erase(inode);
  for (const auto& [inode, c] : counts) {
    if (inode == CTBPF_NETNS_OTHER || known.count(inode)) continue;
    // Unknown now (no process in it yet): asked again next time, rescans stay at most one a second.
    if (auto n = name(inode); !n.empty()) known[inode] = n;
  }
}

std::optional<std::set<uint32_t>> NetnsNamer::live(std::chrono::milliseconds budget) {
  if (!rescan(std::chrono::steady_clock::now() + budget)) return std::nullopt;
  std::set<uint32_t> inodes;
  for (const auto& [inode, name] : names_) inodes.insert(inode);
  inodes.insert(own_netns_inode());
  return inodes;
}

bool NetnsNamer::rescan(std::chrono::steady_clock::time_point deadline) {
  last_scan_ = std::chrono::steady_clock::now();
  std::map<uint32_t, std::string> names;
  std::error_code ec;
  // Processes first, lowest pid wins; `ip netns` names and the initial netns override them.
  std::map<uint32_t, int> first_pid;
  std::filesystem::directory_iterator proc("/proc", ec);
  if (ec) return false;
  for (const auto& entry : proc) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    const auto pid_text = entry.path().filename().string();
    if (pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
    auto inode = inode_of(entry.path().string() + "/ns/net");
    if (!inode) continue;
    int pid = std::stoi(pid_text);
    auto [slot, added] = first_pid.emplace(*inode, pid);
    if (!added && pid < slot->second) slot->second = pid;
  }
  for (const auto& [inode, pid] : first_pid) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    auto base = "/proc/" + std::to_string(pid);
    auto comm = read_all(base + "/comm");
    while (!comm.empty() && comm.back() == '\n') comm.pop_back();
    auto process = "pid " + std::to_string(pid) + " (" + comm + ")";
    auto container = core::container_from_cgroup(read_all(base + "/cgroup"));
    names[inode] = container ? *container + " " + process : process;
  }
  const auto init = inode_of("/proc/1/ns/net");
  if (init) names[*init] = "host";
  add_ip_netns_names(names);
  add_docker_netns(names);
  // Pods and containers by the runtimes' records win over the pins' names and over processes (not
  // over "host": host-network pods have no netns of their own, and are not looked for).
  for (auto& [inode, name] : runtimes_.scan(deadline))
    if (inode != init) names[inode] = std::move(name);
  names_ = std::move(names);
  return true;
}

}  // namespace ctbpf::kernel
