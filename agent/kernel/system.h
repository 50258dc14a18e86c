/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// Small readers of the running system: sysctls, kallsyms, capabilities, BTF presence.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/kallsyms.h"
#include "core/sample.h"

namespace ctbpf::kernel {

std::optional<uint64_t> read_number(const std::string& path);
std::string kernel_release();

/// nf_conntrack's sysctls: count (this netns), max, buckets.
core::TableGauge read_table_gauge();
/// Every net.netfilter.nf_conntrack_* sysctl of this netns (count, max, buckets, each timeout, ...),
/// by name without the prefix ("max", "tcp_timeout_established"), as the number it holds. Sysctls
/// that do not hold one number are left out.
std::map<std::string, uint64_t> read_conntrack_sysctls();

/// True when the nf_conntrack core is in the running kernel (built in, or a module done loading).
bool conntrack_present();

/// Where a kprobe on `function` sees every call (core/kallsyms.h): itself, its one whole clone
/// (`.isra.N`, `.constprop.N`), or its verified `.part.N`; else why nowhere.
core::SymbolChoice kprobe_target(const std::string& function);
/// kprobe_target(function).symbol. Empty when absent, inlined, ambiguous or split unsafely.
std::optional<std::string> resolve_kernel_function(const std::string& function);

/// True when the running kernel's BTF (vmlinux or the nf_conntrack module) describes `function`.
bool btf_has_function(const std::string& function);
/// Where that BTF describes `function`: the type id a fentry/fexit program names as its target.
struct BtfFunction {
  uint32_t id = 0;
  bool in_conntrack_module = false;  // else in vmlinux
};
std::optional<BtfFunction> btf_function(const std::string& function);
/// A new descriptor of the kernel's BTF object for the nf_conntrack module, or -1 (built in, absent,
/// or errno EPERM: it needs CAP_SYS_ADMIN).
int open_conntrack_module_btf();
/// Frees the parsed BTF the btf_has_* queries keep; the next query loads it again.
void release_btf();
/// True when struct `type` has member `member` in vmlinux BTF.
bool btf_has_member(const std::string& type, const std::string& member);
/// True when enum `type` has enumerator `value` in vmlinux BTF.
bool btf_has_enum_value(const std::string& type, const std::string& value);
/// Every enumerator of enum `type` in vmlinux BTF, by value, with `prefix` taken off its name.
std::map<uint32_t, std::string> btf_enum_names(const std::string& type, const std::string& prefix);
/// Whether `type` (a struct or union in BTF) has a member named `member` at any depth (through nested
/// and anonymous members): how a uapi field that only a newer kernel fills is told apart.
bool btf_has_nested_member(const std::string& type, const std::string& member);

/// Empty when this process may load and attach BPF programs, else what is missing.
std::optional<std::string> missing_bpf_privileges();

/// True when nf_conntrack is a loadable module (loaded or not) rather than built into the kernel.
bool conntrack_is_module();

/// One capability beyond CAP_BPF and CAP_PERFMON that a part of ctbpf needs, and whether this
/// process runs without it. Start-up prints one line per missing one; serve exports each as
/// ctbpf_privilege_missing{capability,feature}.
struct PrivilegeNeed {
  std::string capability;  // "CAP_NET_ADMIN"
  std::string feature;     // stable metric label: "fentry", "kprobe", "kernel_stats", "netns_names"
  std::string cost;        // what ctbpf cannot do without it, and why
  bool missing = false;
};
/// Every such need on this kernel (fentry's only where conntrack is a module), missing or not.
std::vector<PrivilegeNeed> privilege_needs();
/// While nf_conntrack is not loaded: whether `family` should work once it is, and why, judged from
/// what the kernel shows without it (BTF for modules, kprobe PMU, perf_event_paranoid, privileges).
/// Nothing is loaded: ctbpf never loads the module, and there is nothing to attach to yet.
std::pair<bool, std::string> family_once_loaded(core::Mode family);
/// Gives up CAP_SYS_ADMIN for good (effective, permitted, inheritable, ambient): true when it was
/// held and is gone. Only attaching needs it (module BTF, perf_event_open); an agent keeps nothing more.
bool drop_sys_admin();
/// Start-up's one line per missing capability on stderr ("ctbpf: without CAP_...: ..."); a family's
/// need only when that family may be tried (auto, or forced to it).
void warn_missing_privileges(std::optional<core::Mode> forced);

}  // namespace ctbpf::kernel
