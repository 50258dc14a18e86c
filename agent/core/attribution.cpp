// SPDX-License-Identifier: Apache-2.0
#include "core/attribution.h"

#include <algorithm>
#include <regex>
#include <set>
#include <sstream>

#include "core/address.h"

namespace ctbpf::core {

std::string address_text(const SourceKey& key) { return address_text(key.l3, key.addr.data()); }

std::optional<std::string> container_from_cgroup(const std::string& cgroup_file) {
  // Layouts seen in the field (cgroup v1 and v2, cgroupfs and systemd drivers):
  //   /docker/<64 hex>                       /system.slice/docker-<64 hex>.scope
  //   /kubepods/burstable/pod<uid>/<64 hex>  /kubepods.slice/.../kubepods-besteffort-pod<uid_with_underscores>.slice/cri-containerd-<64 hex>.scope
  //   .../crio-<64 hex>.scope                /system.slice/containerd.service/... (containerd without k8s)
  static const std::regex pod(R"(pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}))");
  static const std::regex runtime(R"((docker|cri-containerd|crio|containerd)[-/:]([0-9a-f]{64}))");
  static const std::regex bare(R"(/([0-9a-f]{64})(\.scope)?$)");
  std::istringstream lines(cgroup_file);
  std::string line;
  while (std::getline(lines, line)) {
    std::smatch m;
    std::string pod_uid, container;
    if (std::regex_search(line, m, pod)) {
      pod_uid = m[1].str();
      std::replace(pod_uid.begin(), pod_uid.end(), '_', '-');
    }
    if (std::regex_search(line, m, runtime)) {
      std::string engine = m[1].str() == "cri-containerd" ? "containerd" : m[1].str();
      container = engine + ":" + m[2].str().substr(0, 12);
    } else if (std::regex_search(line, m, bare)) {
      container = (pod_uid.empty() ? "docker:" : "container:") + m[1].str().substr(0, 12);
    }
    if (!pod_uid.empty()) return "pod:" + pod_uid + (container.empty() ? "" : "/" + container);
    if (!container.empty()) return container;
  }
  return std::nullopt;
}

void DumpedSources::add(const SourceKey& key) {
  if (auto it = by_source.find(key); it != by_source.end())
    ++it->second.inserts;
  else if (by_source.size() < kDumpSourcesMax)
    by_source[key].inserts = 1;
  else
    ++unattributed;
}

void Attribution::seed(const BySource& existing) { seed_ = existing; }

void Attribution::update(const BySource& cumulative, double interval_s) {
  previous_live_ = live();
  have_previous_ = true;
  previous_ = std::move(now_);
  now_ = cumulative;
  interval_s_ = interval_s;
}

void Attribution::replace_live(const BySource& dumped, double interval_s, bool whole) {
  growth_seen_ = whole && last_dump_whole_;
  last_dump_whole_ = whole;
  previous_live_ = live();
  have_previous_ = dumps_only_;  // the first dump has nothing to grow from
  dumps_only_ = true;
  seed_ = dumped;
  now_.clear();
  previous_.clear();
  interval_s_ = interval_s;
}

std::map<SourceKey, int64_t> Attribution::live() const {
  std::map<SourceKey, int64_t> out;
  for (const auto& [k, counts] : seed_) out[k] += static_cast<int64_t>(counts.inserts);
  for (const auto& [k, counts] : now_)
    out[k] += static_cast<int64_t>(counts.inserts) - static_cast<int64_t>(counts.destroys);
  return out;
}

std::vector<TopRow> Attribution::rows(bool by_netns, TopOrder order) const {
  std::map<SourceKey, TopRow> rows;
  auto key_of = [&](SourceKey k) {
    if (by_netns) k = SourceKey{k.netns, 0, {}};
    return k;
  };
  for (const auto& [k, counts] : seed_) rows[key_of(k)].live += static_cast<int64_t>(counts.inserts);
  for (const auto& [k, counts] : now_) {
    auto& row = rows[key_of(k)];
    row.inserts += counts.inserts;
    row.destroys += counts.destroys;
    row.live += static_cast<int64_t>(counts.inserts) - static_cast<int64_t>(counts.destroys);
    auto before = previous_.find(k);
    uint64_t earlier = before == previous_.end() ? 0 : before->second.inserts;
    if (interval_s_ > 0 && counts.inserts >= earlier)
      row.inserts_per_s += static_cast<double>(counts.inserts - earlier) / interval_s_;
  }
  if (have_previous_ && growth_seen_) {
    // A source gone since the previous update still shows its loss in its netns's row.
    for (const auto& [k, before] : previous_live_) {
      auto& row = rows[key_of(k)];
      row.growth -= before;
    }
    for (auto& [k, row] : rows) row.growth += row.live;
  }
  std::vector<TopRow> out;
  for (auto& [k, row] : rows) {
    row.key = k;
    row.inserts_seen = !dumps_only_;
    row.growth_seen = growth_seen_;
    if (interval_s_ > 0) row.growth_per_s = static_cast<double>(row.growth) / interval_s_;
    // A source with nothing live, no inserts and no change is noise (a dump forgot it).
    if (dumps_only_ && row.live == 0 && row.growth == 0) continue;
    out.push_back(row);
  }
  // Most live entries (or inserts) first; ties by the other, then by key for a stable order.
  std::sort(out.begin(), out.end(), [order](const TopRow& a, const TopRow& b) {
    if (order == TopOrder::inserts && a.inserts != b.inserts) return a.inserts > b.inserts;
    if (a.live != b.live) return a.live > b.live;
    if (a.inserts != b.inserts) return a.inserts > b.inserts;
    return a.key < b.key;
  });
  return out;
}

namespace {

TopList first(std::vector<TopRow> all, std::size_t n) {
  TopList top;
  for (std::size_t i = n; i < all.size(); ++i) {
    if (!top.other) top.other.emplace();
    top.other->live += all[i].live;
    top.other->inserts += all[i].inserts;
    top.other->destroys += all[i].destroys;
    top.other->inserts_per_s += all[i].inserts_per_s;
    top.other->growth += all[i].growth;
    top.other->growth_per_s += all[i].growth_per_s;
    top.other->inserts_seen = all[i].inserts_seen;
    top.other->growth_seen = all[i].growth_seen;
  }
  if (all.size() > n) all.resize(n);
  top.rows = std::move(all);
  return top;
}

}  // namespace

TopList Attribution::top_sources(std::size_t n, TopOrder order) const { return first(rows(false, order), n); }

TopList Attribution::top_netns(std::size_t n) const { return first(rows(true, TopOrder::live), n); }

}  // namespace ctbpf::core
