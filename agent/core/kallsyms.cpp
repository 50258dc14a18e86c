// SPDX-License-Identifier: Apache-2.0
#include "core/kallsyms.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

namespace ctbpf::core {

namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

std::optional<SymbolKind> symbol_kind(std::string_view name, std::string_view base) {
  if (name.substr(0, base.size()) != base) return std::nullopt;
  std::string_view rest = name.substr(base.size());
  if (rest.empty()) return SymbolKind::exact;
  if (rest[0] != '.') return std::nullopt;  // early_drop_x is another function
  // ".tag.N" groups; GCC writes ".cold" with no number (older GCC ".cold.N").
  std::vector<std::string_view> words;
  for (rest.remove_prefix(1);; ) {
    auto dot = rest.find('.');
    words.push_back(rest.substr(0, dot));
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  bool part = false;
  for (size_t i = 0; i < words.size(); i += 2) {
    bool numbered = i + 1 < words.size() && all_digits(words[i + 1]);
    if (!numbered) return SymbolKind::fragment;  // .cold, or a tag with no number
    if (words[i] == "part") part = true;
    else if (words[i] != "isra" && words[i] != "constprop") return SymbolKind::fragment;  // .cold.N, .lto_priv.N
  }
  return part ? SymbolKind::part : SymbolKind::clone;
}

std::optional<std::string_view> kallsyms_text_name(std::string_view line) {
  auto type_at = line.find(' ');
  if (type_at == std::string_view::npos || type_at + 3 >= line.size() || line[type_at + 2] != ' ')
    return std::nullopt;
  char type = line[type_at + 1];
  if (type != 't' && type != 'T') return std::nullopt;
  line.remove_prefix(type_at + 3);
  auto name = line.substr(0, line.find_first_of(" \t"));
  if (name.empty()) return std::nullopt;
  return name;
}

SymbolChoice choose_kprobe_symbol(std::string_view base, const std::vector<std::string>& names,
                                  bool part_verified) {
  std::vector<std::string> exact, clones, parts;
  for (const auto& name : names) {
    auto kind = symbol_kind(name, base);
    if (!kind) continue;
    if (*kind == SymbolKind::exact) exact.push_back(name);
    if (*kind == SymbolKind::clone) clones.push_back(name);
    if (*kind == SymbolKind::part) parts.push_back(name);
  }
  SymbolChoice out;
  out.split = !parts.empty();
  if (out.split) {
    if (!part_verified) {
      out.why = fmt::format("{} is split by the compiler ({}), whose callers call the part directly: a kprobe "
                            "on {} would miss them",
                            base, join(parts), base);
    } else if (parts.size() > 1) {
      out.why = fmt::format("{} is split into several parts ({})", base, join(parts));
    } else {
      out.symbol = parts.front();
      out.part = true;
    }
    return out;
  }
  const auto& whole = exact.empty() ? clones : exact;
  if (whole.size() == 1) {
    out.symbol = whole.front();
  } else if (whole.size() > 1) {
    out.why = fmt::format("{} is ambiguous in kallsyms ({})", base, join(whole));
  } else {
    out.why = fmt::format("{} not in kallsyms (inlined, or not in this kernel)", base);
  }
  return out;
}

}  // namespace ctbpf::core
