#pragma once
// Small readers of the running system: sysctls, kallsyms, capabilities, BTF presence.
#include <cstdint>
#include <map>
#include <optional>
#include <string>

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

/// True when the nf_conntrack core is in the running kernel (built in or module loaded).
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
/// A new descriptor of the kernel's BTF object for the nf_conntrack module, or -1 (built in, or absent).
int open_conntrack_module_btf();
/// Frees the parsed BTF the btf_has_* queries keep; the next query loads it again.
void release_btf();
/// True when struct `type` has member `member` in vmlinux BTF.
bool btf_has_member(const std::string& type, const std::string& member);
/// True when enum `type` has enumerator `value` in vmlinux BTF.
bool btf_has_enum_value(const std::string& type, const std::string& value);

/// Empty when this process may load and attach BPF programs, else what is missing.
std::optional<std::string> missing_bpf_privileges();

}  // namespace ctbpf::kernel
