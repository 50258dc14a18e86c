// SPDX-License-Identifier: Apache-2.0
#include "kernel/system.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ctbpf::kernel {

std::optional<uint64_t> read_number(const std::string& path) {
  std::ifstream in(path);
  uint64_t value = 0;
  if (in >> value) return value;
  return std::nullopt;
}

std::string kernel_release() {
  utsname u{};
  if (uname(&u) != 0) return "unknown";
  return u.release;
}

core::TableGauge read_table_gauge() {
  const std::string dir = "/proc/sys/net/netfilter/";
  return {read_number(dir + "nf_conntrack_count"), read_number(dir + "nf_conntrack_max"),
          read_number(dir + "nf_conntrack_buckets")};
}

std::map<std::string, uint64_t> read_conntrack_sysctls() {
  std::map<std::string, uint64_t> out;
  const std::string dir = "/proc/sys/net/netfilter/", prefix = "nf_conntrack_";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    auto name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    std::ifstream in(entry.path());
    std::string text, rest;
    uint64_t value = 0;
    if (!std::getline(in, text)) continue;
    std::istringstream fields(text);
    if (fields >> value && !(fields >> rest)) out[name.substr(prefix.size())] = value;
  }
  return out;
}

bool conntrack_present() {
  // The sysctl directory is nf_conntrack's own (built in or module): a stat, not a kallsyms read.
  std::error_code ec;
  if (!std::filesystem::exists("/proc/sys/net/netfilter/nf_conntrack_max", ec)) return false;
  // A module's sysctls appear during its init, while a fentry attach to it still fails (its BTF is
  // not live until init returns): a module counts once it is "live". Built in: no initstate.
  std::ifstream state("/sys/module/nf_conntrack/initstate");
  std::string word;
  return !(state >> word) || word == "live";
}

namespace {

// The kernel functions ctbpf attaches to (the sections of bpf/conntrack.bpf.c). Only these are kept
// from kallsyms: the whole table is ~150k symbols, megabytes an always-on agent has no use for.
const std::set<std::string, std::less<>> kProbedFunctions = {
    "early_drop", "nf_ct_delete", "__nf_conntrack_confirm", "nf_ct_resolve_clash",
    "nf_conntrack_free", "nf_conntrack_hash_check_insert"};

// base name -> every kallsyms text name that is it or a piece of it (clones, parts, fragments), loaded
// once. Lines are split by hand: an istringstream per line cost ~1 s of start-up in the qemu TCG guest
// (6.1, ~150k lines).
const std::unordered_map<std::string, std::vector<std::string>>& text_symbols() {
  static const auto symbols = [] {
    std::unordered_map<std::string, std::vector<std::string>> map;
    std::ifstream in("/proc/kallsyms");
    std::string line;
    while (std::getline(in, line)) {
      auto name = core::kallsyms_text_name(line);
      if (!name) continue;
      // Every piece keeps its base name before the first dot: early_drop.isra.0 -> early_drop.
      auto probed = kProbedFunctions.find(name->substr(0, name->find('.')));
      if (probed != kProbedFunctions.end()) map[*probed].emplace_back(*name);
    }
    return map;
  }();
  return symbols;
}

/*
 * Split functions whose part ctbpf may attach to, because its arguments and meaning were checked
 * against the kernel's code. Debian's 5.10 nf_conntrack.ko (GCC 10) splits nf_ct_delete(): the
 * wrapper does only test_and_set_bit(IPS_DYING_BIT) and tail-calls nf_ct_delete.part.0(ct, portid,
 * report) with the same registers; flush (nf_ct_iterate_cleanup), early_drop, gc_worker,
 * nf_ct_gc_expired.part.0 and nf_ct_kill_acct inline that test and call the part directly. So the
 * part sees every delete that wins the DYING bit, with nf_ct_delete()'s arguments, and returns what
 * nf_ct_delete() returns (true once the entry is unlinked); at its entry the bit is already set.
 */
const std::set<std::string, std::less<>> kPartVerified = {"nf_ct_delete"};

struct BtfDeleter {
  void operator()(btf* b) const { btf__free(b); }
};
using BtfPtr = std::unique_ptr<btf, BtfDeleter>;

struct BtfRef {
  btf* owner;
  uint32_t id;
  const btf_type* type;
};

// Parsed BTF is megabytes: kept only while ctbpf starts up, then release_btf() frees it.
BtfPtr g_vmlinux, g_conntrack_module;
bool g_btf_loaded = false;
// The names every start-up asks about, found in one pass over the types when BTF is loaded: libbpf's
// lookup by name is a linear scan, and ~20 of them over 6.1's ~120k types took ~0.25 s under TCG.
const std::set<std::string, std::less<>> kIndexedNames = [] {
  auto names = kProbedFunctions;
  names.insert({"ip_conntrack_stat", "skb_drop_reason"});
  return names;
}();
std::map<std::pair<std::string, uint32_t>, BtfRef> g_index;

void index_types(btf* b, uint32_t first_id) {
  for (uint32_t id = first_id; id < btf__type_cnt(b); ++id) {
    const btf_type* t = btf__type_by_id(b, id);
    auto found = kIndexedNames.find(std::string_view(btf__name_by_offset(b, t->name_off)));
    if (found != kIndexedNames.end()) g_index.emplace(std::pair(*found, btf_kind(t)), BtfRef{b, id, t});
  }
}

void load_btf() {
  if (g_btf_loaded) return;
  g_btf_loaded = true;
  g_vmlinux.reset(btf__load_vmlinux_btf());
  if (!g_vmlinux) return;
  index_types(g_vmlinux.get(), 1);
  g_conntrack_module.reset(btf__load_module_btf("nf_conntrack", g_vmlinux.get()));
  if (g_conntrack_module) index_types(g_conntrack_module.get(), btf__type_cnt(g_vmlinux.get()));
}

// The first (vmlinux before the module) type named `name` of `kind`.
std::optional<BtfRef> find_type(const std::string& name, uint32_t kind) {
  load_btf();
  if (kIndexedNames.count(name)) {
    auto it = g_index.find({name, kind});
    if (it == g_index.end()) return std::nullopt;
    return it->second;
  }
  for (btf* b : {g_vmlinux.get(), g_conntrack_module.get()}) {
    if (!b) continue;
    int id = btf__find_by_name_kind(b, name.c_str(), kind);
    if (id > 0) return BtfRef{b, static_cast<uint32_t>(id), btf__type_by_id(b, static_cast<uint32_t>(id))};
  }
  return std::nullopt;
}

}  // namespace

void release_btf() {
  g_index.clear();
  g_conntrack_module.reset();
  g_vmlinux.reset();
  g_btf_loaded = false;
}

core::SymbolChoice kprobe_target(const std::string& function) {
  const auto& symbols = text_symbols();
  auto it = symbols.find(function);
  static const std::vector<std::string> none;
  return core::choose_kprobe_symbol(function, it == symbols.end() ? none : it->second,
                                    kPartVerified.count(function) > 0);
}

std::optional<std::string> resolve_kernel_function(const std::string& function) {
  return kprobe_target(function).symbol;
}

std::optional<BtfFunction> btf_function(const std::string& function) {
  auto found = find_type(function, BTF_KIND_FUNC);
  if (!found) return std::nullopt;
  return BtfFunction{found->id, found->owner == g_conntrack_module.get()};
}

bool btf_has_function(const std::string& function) { return btf_function(function).has_value(); }

int open_conntrack_module_btf() {
  uint32_t id = 0;
  while (bpf_btf_get_next_id(id, &id) == 0) {
    int fd = bpf_btf_get_fd_by_id(id);
    if (fd < 0) continue;
    char name[64] = {};
    bpf_btf_info info{};
    info.name = reinterpret_cast<uintptr_t>(name);
    info.name_len = sizeof(name);
    uint32_t length = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &length) == 0 && std::string_view(name) == "nf_conntrack") return fd;
    close(fd);
  }
  return -1;
}

bool btf_has_member(const std::string& type, const std::string& member) {
  auto found = find_type(type, BTF_KIND_STRUCT);
  if (!found) return false;
  const btf_member* m = btf_members(found->type);
  for (uint16_t i = 0; i < btf_vlen(found->type); ++i, ++m)
    if (member == btf__name_by_offset(found->owner, m->name_off)) return true;
  return false;
}

bool btf_has_enum_value(const std::string& type, const std::string& value) {
  auto found = find_type(type, BTF_KIND_ENUM);
  if (!found) return false;
  const struct btf_enum* e = btf_enum(found->type);
  for (uint16_t i = 0; i < btf_vlen(found->type); ++i, ++e)
    if (value == btf__name_by_offset(found->owner, e->name_off)) return true;
  return false;
}

std::map<uint32_t, std::string> btf_enum_names(const std::string& type, const std::string& prefix) {
  std::map<uint32_t, std::string> out;
  auto found = find_type(type, BTF_KIND_ENUM);
  if (!found) return out;
  const struct btf_enum* e = btf_enum(found->type);
  for (uint16_t i = 0; i < btf_vlen(found->type); ++i, ++e) {
    std::string name = btf__name_by_offset(found->owner, e->name_off);
    if (name.rfind(prefix, 0) == 0) name.erase(0, prefix.size());
    out.emplace(static_cast<uint32_t>(e->val), name);
  }
  return out;
}

namespace {

bool has_nested_member(const btf* b, const btf_type* t, const std::string& member, int depth) {
  if (depth > 6 || !(btf_is_struct(t) || btf_is_union(t))) return false;
  const btf_member* m = btf_members(t);
  for (uint16_t i = 0; i < btf_vlen(t); ++i, ++m) {
    if (member == btf__name_by_offset(b, m->name_off)) return true;
    const btf_type* inner = btf__type_by_id(b, btf__resolve_type(b, m->type) > 0
                                                   ? static_cast<uint32_t>(btf__resolve_type(b, m->type))
                                                   : m->type);
    if (inner && has_nested_member(b, inner, member, depth + 1)) return true;
  }
  return false;
}

}  // namespace

bool btf_has_nested_member(const std::string& type, const std::string& member) {
  for (uint32_t kind : {BTF_KIND_STRUCT, BTF_KIND_UNION}) {
    auto found = find_type(type, kind);
    if (found && has_nested_member(found->owner, found->type, member, 0)) return true;
  }
  return false;
}

namespace {

constexpr int kCapNetAdmin = 12, kCapSysPtrace = 19, kCapSysAdmin = 21, kCapPerfmon = 38, kCapBpf = 39;

bool has_capability(int cap) {
  std::ifstream in("/proc/self/status");
  std::string line;
  uint64_t effective = 0;
  while (std::getline(in, line))
    if (line.rfind("CapEff:", 0) == 0) effective = std::stoull(line.substr(7), nullptr, 16);
  return (effective >> cap) & 1;
}

}  // namespace

bool conntrack_is_module() {
  // Only a loadable module has an initstate; a built-in one with parameters has /sys/module/X too.
  // Not loaded at all: it can only come as a module.
  std::error_code ec;
  return !conntrack_present() || std::filesystem::exists("/sys/module/nf_conntrack/initstate", ec);
}

/*
 * Measured against 6.1's kernel/bpf/syscall.c: BPF_PROG_LOAD of tracing/kprobe programs, map
 * creation and BPF_BTF_LOAD need CAP_BPF (+ CAP_PERFMON for tracing programs), but
 * BPF_BTF_GET_FD_BY_ID and BPF_BTF_GET_NEXT_ID need CAP_SYS_ADMIN. A fentry program on a module
 * function names the module's BTF object by descriptor (attach_btf_obj_fd; without one the kernel
 * looks the id up in vmlinux), and that descriptor comes only from BPF_BTF_GET_FD_BY_ID: a user BTF
 * from BPF_BTF_LOAD is refused (btf_is_kernel()), BTF objects cannot be pinned, and
 * /sys/kernel/btf/<module> is raw data, not an object. CO-RE needs no descriptor: libbpf reads BTF
 * by path. nfnetlink refuses every ctnetlink request without CAP_NET_ADMIN (nfnetlink_rcv), and
 * /proc/PID/ns/net of another user's (or a more privileged) process needs ptrace access.
 */
std::vector<PrivilegeNeed> privilege_needs() {
  std::vector<PrivilegeNeed> needs;
  const bool admin = has_capability(kCapSysAdmin);
  if (conntrack_is_module())
    needs.push_back({"CAP_SYS_ADMIN", "fentry",
                     "no fentry family: nf_conntrack is a module, and a fentry program on a module names "
                     "its BTF object by a descriptor only BPF_BTF_GET_FD_BY_ID gives",
                     !admin});
  // Debian's kernels (CONFIG_SECURITY_PERF_EVENTS_RESTRICT) default to 3, where perf_event_open(),
  // the only way libbpf attaches a kprobe here (no kprobe.multi), needs CAP_SYS_ADMIN: CAP_PERFMON
  // is not asked (6.1 kernel/events/core.c, perf_event_open()).
  if (auto paranoid = read_number("/proc/sys/kernel/perf_event_paranoid"); paranoid && *paranoid > 2)
    needs.push_back({"CAP_SYS_ADMIN", "kprobe",
                     fmt::format("no kprobe family: kernel.perf_event_paranoid is {} (above 2), so perf_event_open() "
                                 "needs CAP_SYS_ADMIN",
                                 *paranoid),
                     !admin});
  needs.push_back({"CAP_NET_ADMIN", "kernel_stats",
                   "the kernel's conntrack statistics (ctnetlink) are unreadable: the kernel's own drop "
                   "counters (every drop cause in tracepoint mode) show as null, and top and doctor "
                   "cannot list live entries",
                   !has_capability(kCapNetAdmin)});
  needs.push_back({"CAP_SYS_PTRACE", "netns_names",
                   "namespaces are named only by their ip netns name: another process's /proc/PID/ns/net "
                   "(container and process names) needs ptrace access",
                   !has_capability(kCapSysPtrace)});
  return needs;
}

void warn_missing_privileges(std::optional<core::Mode> forced) {
  for (const auto& need : privilege_needs()) {
    bool family = need.feature == "fentry" || need.feature == "kprobe";
    if (need.missing && (!family || !forced || need.feature == core::to_string(*forced)))
      std::fprintf(stderr, "ctbpf: without %s: %s\n", need.capability.c_str(), need.cost.c_str());
  }
}

std::pair<bool, std::string> family_once_loaded(core::Mode family) {
  std::error_code ec;
  if (family == core::Mode::tracepoint)
    return {std::filesystem::exists("/sys/kernel/btf/vmlinux", ec), "tp_btf/kfree_skb needs vmlinux BTF only"};
  std::string missing;
  for (const auto& need : privilege_needs())
    if (need.missing && need.feature == core::to_string(family)) missing = "; but without " + need.capability;
  if (family == core::Mode::kprobe) {
    bool pmu = std::filesystem::exists("/sys/bus/event_source/devices/kprobe", ec);
    return {pmu && missing.empty(), std::string(pmu ? "kprobes (CONFIG_KPROBES)" : "no kprobe PMU (CONFIG_KPROBES)") + missing};
  }
  // fentry on a module's functions needs that module's BTF: other modules' BTF in /sys/kernel/btf
  // says CONFIG_DEBUG_INFO_BTF_MODULES (5.11+) is on, so nf_conntrack's will come with it.
  bool module_btf = false;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/kernel/btf", ec))
    module_btf |= entry.path().filename() != "vmlinux";
  return {module_btf && missing.empty(),
          std::string(module_btf ? "module BTF (CONFIG_DEBUG_INFO_BTF_MODULES)" : "no module BTF in /sys/kernel/btf") +
              missing};
}

bool drop_sys_admin() {
  if (!has_capability(kCapSysAdmin)) return false;
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, kCapSysAdmin, 0, 0);
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &header, data) != 0) return false;
  const uint32_t bit = 1U << kCapSysAdmin;  // capability 21: in the first word
  data[0].effective &= ~bit;
  data[0].permitted &= ~bit;
  data[0].inheritable &= ~bit;
  return syscall(SYS_capset, &header, data) == 0;
}

std::optional<std::string> missing_bpf_privileges() {
  auto has = has_capability;
  if (has(kCapSysAdmin) || (has(kCapBpf) && has(kCapPerfmon))) return std::nullopt;
  return std::string("needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) to load its BPF programs: "
                     "run it as root");
}

}  // namespace ctbpf::kernel
