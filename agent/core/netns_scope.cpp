// SPDX-License-Identifier: Apache-2.0
#include "core/netns_scope.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/render.h"

namespace ctbpf::core {

using nlohmann::json;

json own_netns_json(const std::optional<OwnNetns>& netns) {
  if (!netns || (!netns->inode && netns->name.empty())) return nullptr;
  return {{"inode", netns->inode ? json(*netns->inode) : json(nullptr)},
          {"name", netns->name.empty() ? json(nullptr) : json(printable(netns->name))}};
}

json other_netns_json(const std::optional<std::vector<NetnsTable>>& others) {
  if (!others) return nullptr;
  json out = json::array();
  for (const auto& t : *others)
    out.push_back(
        {{"name", printable(t.name)}, {"inode", t.inode}, {"count", t.count ? json(*t.count) : json(nullptr)}});
  return out;
}

std::string netns_label(const json& own) {
  // Read back from files too: only what has the expected type is used.
  if (!own.is_object()) return "";
  const json none;
  const json& inode = own.contains("inode") ? own["inode"] : none;
  const json& name = own.contains("name") ? own["name"] : none;
  const std::string at = inode.is_number_unsigned() ? fmt::format(" (inode {})", inode.get<uint64_t>()) : "";
  if (name.is_string() && name.get<std::string>() == "host") return "host netns" + at;
  if (name.is_string()) return "netns " + printable(name.get<std::string>(), 64) + at;
  return at.empty() ? "" : "unnamed netns" + at;
}

std::string other_netns_hint(const std::vector<NetnsTable>& others, std::optional<uint64_t> own_count,
                             const std::string& command) {
  std::vector<const NetnsTable*> holding;
  uint64_t total = 0;
  for (const auto& t : others)
    if (t.count && *t.count > 0) {
      holding.push_back(&t);
      total += *t.count;
    }
  if (holding.empty()) return "";
  std::stable_sort(holding.begin(), holding.end(),
                   [](const NetnsTable* a, const NetnsTable* b) { return *a->count > *b->count; });
  std::string which;
  for (std::size_t i = 0; i < holding.size() && i < 3; ++i)
    which += fmt::format("{}{} {}", i ? ", " : "", printable(holding[i]->name, 64), *holding[i]->count);
  if (holding.size() > 3) which += fmt::format(", {} more", holding.size() - 3);
  const std::string here = own_count && *own_count == 0 ? "this netns's table is empty, but " : "";
  return fmt::format("{}{} other named netns {} {} {} ({}); to see one: ip netns exec {} ctbpf {}", here,
                     holding.size(), holding.size() == 1 ? "holds" : "hold", total, total == 1 ? "entry" : "entries",
                     which, printable(holding[0]->name, 64), command);
}

std::string other_netns_hint_json(const json& others, const json& own_count, const std::string& command) {
  if (!others.is_array()) return "";
  std::vector<NetnsTable> tables;
  for (const auto& row : others) {
    if (!row.is_object() || !row.contains("name") || !row["name"].is_string()) continue;
    NetnsTable t{row["name"].get<std::string>(), 0, std::nullopt};
    if (row.contains("count") && row["count"].is_number_integer() && row["count"].get<int64_t>() >= 0)
      t.count = row["count"].get<uint64_t>();
    tables.push_back(std::move(t));
  }
  std::optional<uint64_t> own;
  if (own_count.is_number_integer() && own_count.get<int64_t>() >= 0) own = own_count.get<uint64_t>();
  return other_netns_hint(tables, own, command);
}

std::string netns_mismatch(const json& summary_a, const json& summary_b) {
  auto own = [](const json& s) { return s.is_object() && s.contains("own_netns") ? s["own_netns"] : json(); };
  const json a = own(summary_a), b = own(summary_b);
  const std::string la = netns_label(a), lb = netns_label(b);
  if (la.empty() || lb.empty() || la == lb) return "";
  // A name says which namespace it is across runs and hosts (the initial one is "host" everywhere),
  // where an inode is handed out again; an inode is compared only between two unnamed ones.
  const json name_a = a.value("name", json()), name_b = b.value("name", json());
  if (name_a.is_string() && name_a == name_b) return "";
  // Short, to stay one line: the "netns" row of the setup section repeats it.
  return fmt::format("warning: A from {}, B from {}", la, lb);
}

}  // namespace ctbpf::core
