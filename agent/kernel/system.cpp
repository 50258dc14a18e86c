#include "kernel/system.h"

#include <sys/utsname.h>

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <unordered_map>

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

bool conntrack_present() { return resolve_kernel_function("__nf_conntrack_confirm").has_value(); }

namespace {

// The kernel functions ctbpf attaches to (the sections of bpf/conntrack.bpf.c). Only these are kept
// from kallsyms: the whole table is ~150k symbols, megabytes an always-on agent has no use for.
const std::set<std::string> kProbedFunctions = {"__nf_conntrack_alloc", "early_drop", "nf_ct_delete",
                                                "__nf_conntrack_confirm", "nf_ct_resolve_clash",
                                                "nf_conntrack_free"};

// base name -> kallsyms name (the base itself, or a compiler clone of it), loaded once.
const std::unordered_map<std::string, std::string>& text_symbols() {
  static const auto symbols = [] {
    std::unordered_map<std::string, std::string> map;
    std::ifstream in("/proc/kallsyms");
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string address, type, name;
      if (!(fields >> address >> type >> name)) continue;
      if (type != "t" && type != "T") continue;
      // A clone keeps its base name before the first dot: early_drop.isra.0 -> early_drop.
      auto base = name.substr(0, name.find('.'));
      if (!kProbedFunctions.count(base)) continue;
      auto it = map.find(base);
      if (it == map.end() || name == base) map[base] = name;
    }
    return map;
  }();
  return symbols;
}

struct BtfDeleter {
  void operator()(btf* b) const { btf__free(b); }
};
using BtfPtr = std::unique_ptr<btf, BtfDeleter>;

// Parsed BTF is megabytes: kept only while ctbpf starts up, then release_btf() frees it.
BtfPtr g_vmlinux, g_conntrack_module;
bool g_btf_loaded = false;

void load_btf() {
  if (g_btf_loaded) return;
  g_btf_loaded = true;
  g_vmlinux.reset(btf__load_vmlinux_btf());
  if (g_vmlinux) g_conntrack_module.reset(btf__load_module_btf("nf_conntrack", g_vmlinux.get()));
}

btf* vmlinux_btf() {
  load_btf();
  return g_vmlinux.get();
}

btf* conntrack_module_btf() {
  load_btf();
  return g_conntrack_module.get();
}

const btf_type* find_type(const std::string& name, uint32_t kind) {
  for (btf* b : {vmlinux_btf(), conntrack_module_btf()}) {
    if (!b) continue;
    int id = btf__find_by_name_kind(b, name.c_str(), kind);
    if (id > 0) return btf__type_by_id(b, static_cast<uint32_t>(id));
  }
  return nullptr;
}

btf* owner_of(const std::string& name, uint32_t kind) {
  for (btf* b : {vmlinux_btf(), conntrack_module_btf()})
    if (b && btf__find_by_name_kind(b, name.c_str(), kind) > 0) return b;
  return nullptr;
}

}  // namespace

void release_btf() {
  g_conntrack_module.reset();
  g_vmlinux.reset();
  g_btf_loaded = false;
}

std::optional<std::string> resolve_kernel_function(const std::string& function) {
  const auto& symbols = text_symbols();
  auto it = symbols.find(function);
  if (it == symbols.end()) return std::nullopt;
  return it->second;
}

bool btf_has_function(const std::string& function) {
  return find_type(function, BTF_KIND_FUNC) != nullptr;
}

bool btf_has_member(const std::string& type, const std::string& member) {
  const btf_type* t = find_type(type, BTF_KIND_STRUCT);
  btf* b = owner_of(type, BTF_KIND_STRUCT);
  if (!t || !b) return false;
  const btf_member* m = btf_members(t);
  for (uint16_t i = 0; i < btf_vlen(t); ++i, ++m)
    if (member == btf__name_by_offset(b, m->name_off)) return true;
  return false;
}

bool btf_has_enum_value(const std::string& type, const std::string& value) {
  const btf_type* t = find_type(type, BTF_KIND_ENUM);
  btf* b = owner_of(type, BTF_KIND_ENUM);
  if (!t || !b) return false;
  const struct btf_enum* e = btf_enum(t);
  for (uint16_t i = 0; i < btf_vlen(t); ++i, ++e)
    if (value == btf__name_by_offset(b, e->name_off)) return true;
  return false;
}

std::optional<std::string> missing_bpf_privileges() {
  std::ifstream in("/proc/self/status");
  std::string line;
  uint64_t effective = 0;
  while (std::getline(in, line))
    if (line.rfind("CapEff:", 0) == 0) effective = std::stoull(line.substr(7), nullptr, 16);
  auto has = [&](int cap) { return (effective >> cap) & 1; };
  constexpr int kCapSysAdmin = 21, kCapPerfmon = 38, kCapBpf = 39;
  if (has(kCapSysAdmin) || (has(kCapBpf) && has(kCapPerfmon))) return std::nullopt;
  return std::string("needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) to load its BPF programs: "
                     "run it as root");
}

}  // namespace ctbpf::kernel
