#include "core/render.h"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

namespace ctbpf::core {

using nlohmann::json;

namespace {

json value(const Count& c) { return c ? json(*c) : json(nullptr); }
json value(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

json drops_json(const Drops& d) {
  return {{"table_full", value(d.table_full)},       {"early_drop", value(d.early_drop)},
          {"insert_failed", value(d.insert_failed)}, {"chaintoolong", value(d.chaintoolong)},
          {"clash_resolve", value(d.clash_resolve)}, {"invalid", value(d.invalid)},
          {"alloc_failed", value(d.alloc_failed)}};
}

json histogram_json(const std::optional<Histogram>& h, const Count& max) {
  if (!h) {
    return {{"count", nullptr}, {"mean", nullptr}, {"p50", nullptr}, {"p99", nullptr},
            {"max", nullptr},   {"buckets", nullptr}};
  }
  json buckets = json::array();
  const auto& slots = h->slots();
  // Buckets up to the highest non-empty one: le is the slot's inclusive upper bound.
  std::size_t last = slots.size();
  while (last > 0 && slots[last - 1] == 0) --last;
  for (std::size_t i = 0; i < last; ++i)
    buckets.push_back({{"le", slot_upper_bound(h->kind(), i)}, {"count", slots[i]}});
  return {{"count", h->count()}, {"mean", h->mean()},      {"p50", h->percentile(0.50)},
          {"p99", h->percentile(0.99)}, {"max", value(max)}, {"buckets", buckets}};
}

json lifetime_json(const std::optional<ProbeDetail>& d, uint32_t one_in) {
  if (!d) return histogram_json(std::nullopt, std::nullopt);
  auto all = d->lifetime_all();
  json j = histogram_json(all, all.max_bound());
  json by_proto = json::object();
  for (std::size_t i = 0; i < CTBPF_PROTO_MAX; ++i)
    if (d->lifetime[i].count())
      by_proto[proto_class_name(i)] = histogram_json(d->lifetime[i], d->lifetime[i].max_bound());
  j["by_proto"] = by_proto;
  j["sampled_one_in"] = one_in;
  j["untracked"] = d->lifetime_untracked;
  return j;
}

json by_proto_json(const std::optional<ProbeDetail>& d) {
  if (!d) return nullptr;
  json j = json::object();
  for (std::size_t i = 0; i < CTBPF_PROTO_MAX; ++i)
    j[proto_class_name(i)] = {{"inserts", d->inserts_by_proto[i]},
                              {"destroys", d->destroys_by_proto[i]}};
  return j;
}

// The busiest namespaces by inserts; the rest (and the kernel's own overflow bucket) as "other".
json by_netns_json(const std::optional<ProbeDetail>& d, std::size_t top = 10) {
  if (!d) return nullptr;
  std::vector<std::pair<uint32_t, NetnsCounts>> rows;
  NetnsCounts other;
  for (const auto& [netns, counts] : d->by_netns) {
    if (netns == CTBPF_NETNS_OTHER) {
      other.inserts += counts.inserts;
      other.destroys += counts.destroys;
    } else {
      rows.emplace_back(netns, counts);
    }
  }
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return a.second.inserts != b.second.inserts ? a.second.inserts > b.second.inserts : a.first < b.first;
  });
  json j = json::array();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (i < top) {
      j.push_back({{"netns", rows[i].first}, {"inserts", rows[i].second.inserts},
                   {"destroys", rows[i].second.destroys}});
    } else {
      other.inserts += rows[i].second.inserts;
      other.destroys += rows[i].second.destroys;
    }
  }
  if (other.inserts || other.destroys)
    j.push_back({{"netns", "other"}, {"inserts", other.inserts}, {"destroys", other.destroys}});
  return j;
}

json tcp_states_json(const std::optional<ProbeDetail>& d) {
  if (!d) return nullptr;
  json j = json::object();
  for (std::size_t i = 0; i < CTBPF_TCP_STATES; ++i)
    if (d->tcp_deaths_by_state[i]) j[tcp_state_name(i)] = d->tcp_deaths_by_state[i];
  return j;
}

json table_json(const TableGauge& t) {
  json fill = nullptr;
  if (t.count && t.max && *t.max > 0)
    fill = static_cast<double>(*t.count) / static_cast<double>(*t.max);
  return {{"count", value(t.count)}, {"max", value(t.max)}, {"buckets", value(t.buckets)},
          {"fill", fill}};
}

json common(const Report& r, uint32_t lifetime_one_in) {
  const auto& t = r.totals;
  return {{"allocs", value(t.allocs)},
          {"inserts", value(t.inserts)},
          {"destroys", value(t.destroys)},
          {"deletes", value(t.deletes)},
          {"drops", drops_json(t.drops)},
          {"netfilter_drops", value(t.netfilter_drops)},
          {"chain_length", histogram_json(t.chain, t.chain_max)},
          {"lifetime_ms", lifetime_json(t.detail, lifetime_one_in)},
          {"by_proto", by_proto_json(t.detail)},
          {"by_netns", by_netns_json(t.detail)},
          {"tcp_state_at_death", tcp_states_json(t.detail)},
          {"lost_events", value(t.lost_events)},
          {"probe_misses",
           {{"confirm_unpaired", t.misses.confirm_unpaired},
            {"chain_walk_truncated", t.misses.chain_truncated},
            {"recursion", t.misses.recursion}}},
          {"table", table_json(r.table)}};
}

std::string text(const Count& c) { return c ? fmt::format("{}", *c) : "-"; }

std::string rate_text(const Report& r, const Count& c) {
  auto v = r.rate(c);
  return v ? fmt::format("{:.0f}/s", *v) : "-";
}

std::string table_text(const TableGauge& t) {
  std::string s = fmt::format("{}/{}", text(t.count), text(t.max));
  if (t.count && t.max && *t.max)
    s += fmt::format(" ({:.1f}%)", 100.0 * static_cast<double>(*t.count) / static_cast<double>(*t.max));
  return s;
}

std::string drops_text(const Drops& d) {
  return fmt::format(
      "table_full {} early_drop {} insert_failed {} chaintoolong {} clash_resolve {} invalid {} "
      "alloc_failed {}",
      text(d.table_full), text(d.early_drop), text(d.insert_failed), text(d.chaintoolong),
      text(d.clash_resolve), text(d.invalid), text(d.alloc_failed));
}

}  // namespace

json interval_json(const Report& r, const Observability& obs) {
  json j = {{"type", "interval"}, {"t", r.end_s}, {"interval_s", r.duration()}};
  j.update(common(r, obs.lifetime_one_in));
  j["rates"] = {{"allocs_per_s", value(r.rate(r.totals.allocs))},
                {"inserts_per_s", value(r.rate(r.totals.inserts))},
                {"destroys_per_s", value(r.rate(r.totals.destroys))}};
  return j;
}

json summary_json(const Report& r, Mode mode, const Observability& obs) {
  json j = {{"type", "summary"}, {"mode", to_string(mode)}, {"duration_s", r.duration()}};
  j.update(common(r, obs.lifetime_one_in));
  return j;
}

std::string interval_line(const Report& r) {
  const auto& t = r.totals;
  std::string chain = "-";
  if (t.chain && t.chain->count())
    chain = fmt::format("p50 {} p99 {} max {}", t.chain->percentile(0.5), t.chain->percentile(0.99),
                        text(t.chain_max));
  return fmt::format("t={:.1f}s inserts {} destroys {} table {} chain {} drops: {} lost {}", r.end_s,
                     rate_text(r, t.inserts), rate_text(r, t.destroys), table_text(r.table), chain,
                     drops_text(t.drops), text(t.lost_events));
}

std::string summary_text(const Report& r, Mode mode) {
  const auto& t = r.totals;
  std::string out = fmt::format("ctbpf summary ({} mode, {:.1f} s)\n", to_string(mode), r.duration());
  out += fmt::format("  allocs {}  inserts {} ({})  destroys {} ({})  deletes {}\n", text(t.allocs),
                     text(t.inserts), rate_text(r, t.inserts), text(t.destroys),
                     rate_text(r, t.destroys), text(t.deletes));
  out += fmt::format("  table {} buckets {}\n", table_text(r.table), text(r.table.buckets));
  if (t.chain && t.chain->count())
    out += fmt::format("  chain length: n {} mean {:.1f} p50 {} p99 {} max {}\n", t.chain->count(),
                       t.chain->mean(), t.chain->percentile(0.5), t.chain->percentile(0.99),
                       text(t.chain_max));
  if (t.detail) {
    auto all = t.detail->lifetime_all();
    if (all.count())
      out += fmt::format("  lifetime ms: n {} p50 {} p99 {} max {}\n", all.count(), all.percentile(0.5),
                         all.percentile(0.99), all.max_bound());
  }
  out += fmt::format("  drops: {}\n", drops_text(t.drops));
  out += fmt::format("  netfilter drops {}  lost events {}\n", text(t.netfilter_drops),
                     text(t.lost_events));
  const auto& m = t.misses;
  if (m.confirm_unpaired || m.chain_truncated || m.recursion)
    out += fmt::format("  probe misses: unpaired confirms {}, truncated chain walks {}, skipped runs {}\n",
                       m.confirm_unpaired, m.chain_truncated, m.recursion);
  return out;
}

}  // namespace ctbpf::core
