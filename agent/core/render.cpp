// SPDX-License-Identifier: Apache-2.0
#include "core/render.h"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "core/readings.h"

namespace ctbpf::core {

using nlohmann::json;

namespace {

json drops_json(const Drops& d) {
  json j = json::object();
  for (const auto& cause : kDropCauses) j[cause.key] = value(d.*cause.member);
  return j;
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

// Not observable (tracepoint mode): every key of the observed form, null (docs/json.md: "null, never
// absent"; docs/schema/ctbpf.schema.json requires them).
json lifetime_json(const std::optional<ProbeDetail>& d, uint32_t one_in) {
  if (!d) {
    json j = histogram_json(std::nullopt, std::nullopt);
    j["by_proto"] = nullptr;
    j["sampled_one_in"] = nullptr;
    j["untracked"] = nullptr;
    return j;
  }
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

json name_json(uint32_t netns, const NetnsNames& names) {
  auto it = names.find(netns);
  return it == names.end() || it->second.empty() ? json(nullptr) : json(printable(it->second));
}

// The busiest namespaces by inserts; the rest (and the kernel's own overflow bucket) as "other".
// With names, each row gets "name" (null when unknown; the "other" row always null).
json by_netns_json(const std::optional<ProbeDetail>& d, const NetnsNames* names, std::size_t top = 10) {
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
      if (names) j.back()["name"] = name_json(rows[i].first, *names);
    } else {
      other.inserts += rows[i].second.inserts;
      other.destroys += rows[i].second.destroys;
    }
  }
  if (other.inserts || other.destroys) {
    j.push_back({{"netns", "other"}, {"inserts", other.inserts}, {"destroys", other.destroys}});
    if (names) j.back()["name"] = nullptr;
  }
  return j;
}

// The busiest sources by live entries and by inserts, each bounded to `top` rows plus "other".
json by_source_json(const WhoFills& who) {
  if (!who.sources) return nullptr;
  // A summary's rows cover the window: the growth since the previous refresh is top's, not theirs.
  auto rows = [&](TopOrder order) {
    json list = top_list_json(who.sources->top_sources(who.top, order), who.netns_names, true);
    for (auto& row : list) {
      row.erase("growth");
      row.erase("growth_per_s");
    }
    return list;
  };
  json j = {{"top", who.top},
            {"by_live", rows(TopOrder::live)},
            {"by_inserts", rows(TopOrder::inserts)},
            {"untracked", who.sources_untracked}};
  if (who.seed_dump) {
    j["seed_dump"] = dump_json(*who.seed_dump);
    j["seed_dump"]["unattributed"] = who.seed_unattributed;
  }
  return j;
}

json tcp_states_json(const std::optional<ProbeDetail>& d) {
  if (!d) return nullptr;
  json j = json::object();
  for (std::size_t i = 0; i < CTBPF_TCP_STATES; ++i)
    if (d->tcp_deaths_by_state[i]) j[tcp_state_name(i)] = d->tcp_deaths_by_state[i];
  return j;
}

json table_json(const Report& r) {
  const auto& t = r.table;
  json fill = nullptr;
  if (t.count && t.max && *t.max > 0)
    fill = static_cast<double>(*t.count) / static_cast<double>(*t.max);
  return {{"count", value(t.count)},
          {"max", value(t.max)},
          {"buckets", value(t.buckets)},
          {"fill", fill},
          {"growth", r.growth ? json(*r.growth) : json(nullptr)},
          {"growth_per_s", value(r.growth_per_s())}};
}

json kernel_stats_json(const std::optional<KernelStats>& k) {
  if (!k) return nullptr;
  json j = json::object();
  for (const auto& counter : kKernelCounters) j[counter.key] = value((*k).*counter.member);
  return j;
}

json nat_blackholes_json(const Report& r) {
  if (!r.totals.nat_blackholes) return nullptr;
  json out = json::array();
  for (const auto& f : *r.totals.nat_blackholes) out.push_back(blackhole_json(f, r.duration()));
  return out;
}

json dns_races_json(const std::optional<std::vector<DnsRace>>& races) {
  if (!races) return nullptr;
  json out = json::array();
  for (const auto& race : *races) out.push_back(dns_race_json(race));
  return out;
}

json common(const Report& r, const Observability& obs, const WhoFills* who) {
  const auto& t = r.totals;
  json chain = histogram_json(t.chain, t.chain_max);
  chain["sampled_one_in"] = t.chain ? json(obs.chain_one_in) : json(nullptr);
  return {{"allocs", value(t.allocs)},
          {"inserts", value(t.inserts)},
          {"destroys", value(t.destroys)},
          {"deletes", value(t.deletes)},
          {"drops", drops_json(t.drops)},
          {"netfilter_drops", value(t.netfilter_drops)},
          {"chain_length", chain},
          {"lifetime_ms", lifetime_json(t.detail, obs.lifetime_one_in)},
          {"by_proto", by_proto_json(t.detail)},
          {"by_netns", by_netns_json(t.detail, who ? &who->netns_names : nullptr)},
          {"tcp_state_at_death", tcp_states_json(t.detail)},
          {"lost_events", value(t.lost_events)},
          {"probe_misses",
           {{"confirm_unpaired", value(t.misses.confirm_unpaired)},
            {"chain_walk_truncated", value(t.misses.chain_truncated)},
            {"recursion", value(t.misses.recursion)},
            {"kprobe", value(t.misses.kprobe)}}},
          {"table", table_json(r)},
          {"kernel_stats", kernel_stats_json(t.kernel)},
          {"nat_blackholes", nat_blackholes_json(r)},
          {"dns_races", dns_races_json(t.dns_races)}};
}

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

std::string growth_text(const Report& r) {
  auto v = r.growth_per_s();
  return v ? fmt::format("{:+.0f}/s", *v) : "-";
}

std::string drops_text(const Drops& d) {
  std::string out;
  for (const auto& cause : kDropCauses)
    out += fmt::format("{}{} {}", out.empty() ? "" : " ", cause.key, text(d.*cause.member));
  return out;
}

}  // namespace

json scope_json(const Observability& obs) {
  // The kfree_skb tracepoint and the conntrack probes fire for every namespace; ctnetlink and the
  // count sysctl answer for the namespace of the asking process only.
  const char* own = "own_netns";
  const char* all = "all_netns";
  const json probes = obs.conntrack_points ? json(all) : json(nullptr);
  json drops = json::object();
  for (const auto& cause : kDropCauses)
    drops[cause.key] = cause.never_observed                              ? json(nullptr)
                       : obs.conntrack_points && !cause.own_netns_only ? json(all)
                                                                       : json(own);
  return {{"allocs", probes},          {"inserts", probes}, {"destroys", probes}, {"deletes", probes},
          {"drops", drops},            {"table", own},      {"kernel_stats", own},
          {"netfilter_drops", obs.netfilter_drop_reason ? json(all) : json(nullptr)}};
}

std::string scope_text(Mode mode, const std::string& netns) {
  const std::string own = netns.empty() ? "this netns" : "this netns, " + netns;
  if (mode != Mode::tracepoint)
    return "scope: counts and drop causes from every netns (invalid: this netns); table and kernel stats: " +
           own + "; netfilter drops: every netns";
  return "scope: table, drop causes and kernel stats: " + own + " (ctnetlink); netfilter drops: every netns";
}

json observable_json(const Sample& probe, Mode mode, const Observability& obs) {
  Aggregator aggregator(mode, obs);
  aggregator.add(probe);
  Sample later = probe;
  later.t_s += 1;
  aggregator.add(later);
  const json s = summary_json(aggregator.summary(), mode, obs);
  auto present = [](const json& v) { return !v.is_null(); };
  json out = json::object();
  for (const char* key : {"allocs", "inserts", "destroys", "deletes", "netfilter_drops", "lost_events",
                          "by_proto", "by_netns", "tcp_state_at_death", "nat_blackholes", "dns_races"})
    out[key] = present(s[key]);
  for (const auto& [cause, v] : s["drops"].items()) out["drops"][cause] = present(v);
  out["chain_length"] = present(s["chain_length"]["count"]);
  out["lifetime_ms"] = present(s["lifetime_ms"]["count"]);
  for (const char* key : {"count", "max", "buckets", "growth"}) out["table"][key] = present(s["table"][key]);
  for (const auto& counter : kKernelCounters)
    out["kernel_stats"][counter.key] = s["kernel_stats"].is_object() && present(s["kernel_stats"][counter.key]);
  return out;
}

json interval_json(const Report& r, const Observability& obs, const WhoFills* who) {
  json j = {{"type", "interval"}, {"t", r.end_s}, {"interval_s", r.duration()}};
  j.update(common(r, obs, who));
  j["rates"] = {{"allocs_per_s", value(r.rate(r.totals.allocs))},
                {"inserts_per_s", value(r.rate(r.totals.inserts))},
                {"destroys_per_s", value(r.rate(r.totals.destroys))}};
  return j;
}

json summary_json(const Report& r, Mode mode, const Observability& obs, const WhoFills* who) {
  json j = {{"type", "summary"}, {"mode", to_string(mode)}, {"duration_s", r.duration()}};
  j.update(common(r, obs, who));
  j["scope"] = scope_json(obs);
  j["own_netns"] = own_netns_json(who ? who->own_netns : std::nullopt);
  j["other_netns"] = other_netns_json(who ? who->other_netns : std::nullopt);
  if (who && who->top) j["by_source"] = by_source_json(*who);
  return j;
}

std::string printable(std::string_view s, std::size_t max) {
  std::string out(s.substr(0, max));
  for (auto& c : out)
    if (c < 0x20 || c >= 0x7f) c = '?';
  return out;
}

json top_row_json(const TopRow& r, const NetnsNames& names, bool with_source) {
  auto seen = [&](auto v) { return r.inserts_seen ? json(v) : json(nullptr); };
  json j = {{"netns", r.key.netns},
            {"name", name_json(r.key.netns, names)},
            {"live", r.live},
            {"inserts", seen(r.inserts)},
            {"destroys", seen(r.destroys)},
            {"inserts_per_s", seen(r.inserts_per_s)},
            {"growth", r.growth_seen ? json(r.growth) : json(nullptr)},
            {"growth_per_s", r.growth_seen ? json(r.growth_per_s) : json(nullptr)}};
  if (with_source) j["src"] = address_text(r.key);
  return j;
}

json top_list_json(const TopList& top, const NetnsNames& names, bool with_source) {
  json rows = json::array();
  for (const auto& r : top.rows) rows.push_back(top_row_json(r, names, with_source));
  if (top.other) {
    json other = top_row_json(*top.other, names, false);
    other["netns"] = "other";
    other["name"] = nullptr;
    if (with_source) other["src"] = "other";
    rows.push_back(other);
  }
  return rows;
}

std::string interval_line(const Report& r) {
  const auto& t = r.totals;
  std::string chain = "-";
  if (t.chain && t.chain->count())
    chain = fmt::format("p50 {} p99 {} max {}", t.chain->percentile(0.5), t.chain->percentile(0.99),
                        text(t.chain_max));
  return fmt::format("t={:.1f}s inserts {} destroys {} table {} growth {} chain {} drops: {} netfilter {} lost {}",
                     r.end_s, rate_text(r, t.inserts), rate_text(r, t.destroys), table_text(r.table),
                     growth_text(r), chain, drops_text(t.drops), text(t.netfilter_drops), text(t.lost_events));
}

std::string kernel_stats_text(const KernelStats& k) {
  std::string out;
  for (const auto& counter : kKernelCounters)
    out += fmt::format("{}{} {}", out.empty() ? "" : " ", counter.key, text(k.*counter.member));
  return out;
}

std::string nat_drops_summary_text(const Report& r, Mode mode, const NetnsNames& names) {
  const auto& t = r.totals;
  auto count = [](const auto& v) { return v->empty() ? std::string("none") : fmt::format("{}", v->size()); };
  std::string out = fmt::format(
      "  nat blackholes {}  dns races {}\n",
      t.nat_blackholes ? count(t.nat_blackholes) : "- (this kernel's kfree_skb gives no drop reason: 5.17+)",
      t.dns_races ? count(t.dns_races) : fmt::format("- (no conntrack probes in {} mode)", to_string(mode)));
  return out + nat_drops_text(t.nat_blackholes, t.dns_races, r.duration(), names, "    ");
}

std::string summary_text(const Report& r, Mode mode, const WhoFills* who, uint32_t chain_one_in) {
  const auto& t = r.totals;
  std::string out = fmt::format("ctbpf summary ({} mode, {:.1f} s)\n", to_string(mode), r.duration());
  const auto own = own_netns_json(who ? who->own_netns : std::nullopt);
  out += "  " + scope_text(mode, netns_label(own)) + "\n";
  if (who && who->other_netns)
    if (auto hint = other_netns_hint(*who->other_netns, r.table.count, "trace"); !hint.empty())
      out += "  " + hint + "\n";
  out += fmt::format("  allocs {}  inserts {} ({})  destroys {} ({})  deletes {}\n", text(t.allocs),
                     text(t.inserts), rate_text(r, t.inserts), text(t.destroys),
                     rate_text(r, t.destroys), text(t.deletes));
  out += fmt::format("  table {} buckets {}  growth {} ({})\n", table_text(r.table), text(r.table.buckets),
                     r.growth ? fmt::format("{:+}", *r.growth) : "-", growth_text(r));
  if (t.chain && t.chain->count())
    out += fmt::format("  chain length{}: n {} mean {:.1f} p50 {} p99 {} max {}\n",
                       chain_one_in > 1 ? fmt::format(" (1 insert in {} per CPU)", chain_one_in) : "",
                       t.chain->count(), t.chain->mean(), t.chain->percentile(0.5), t.chain->percentile(0.99),
                       text(t.chain_max));
  if (t.detail) {
    auto all = t.detail->lifetime_all();
    if (all.count())
      out += fmt::format("  lifetime ms: n {} p50 {} p99 {} max {}\n", all.count(), all.percentile(0.5),
                         all.percentile(0.99), all.max_bound());
  }
  out += fmt::format("  drops: {}\n", drops_text(t.drops));
  if (t.kernel) out += "  kernel stats: " + kernel_stats_text(*t.kernel) + "\n" + kernel_counter_notes("    ");
  out += fmt::format("  netfilter drops {}  lost events {}\n", text(t.netfilter_drops),
                     text(t.lost_events));
  out += nat_drops_summary_text(r, mode, who ? who->netns_names : NetnsNames{});
  const auto& m = t.misses;
  // Said when something was missed, or when the kernel will not say whether its kprobes were.
  auto missed = [](const Count& c) { return c && *c > 0; };
  const bool kprobe_unknown = mode == Mode::kprobe && !m.kprobe;  // the kernel before 6.7 does not say
  if (missed(m.confirm_unpaired) || missed(m.chain_truncated) || missed(m.recursion) || missed(m.kprobe) ||
      kprobe_unknown)
    out += fmt::format("  probe misses: unpaired confirms {}, truncated chain walks {}, skipped runs {}, "
                       "skipped kprobe hits {}\n",
                       text(m.confirm_unpaired), text(m.chain_truncated), text(m.recursion),
                       kprobe_unknown ? "unknown (kernel before 6.7)" : text(m.kprobe));
  json attribution = {{"by_netns", by_netns_json(t.detail, who ? &who->netns_names : nullptr)}};
  if (who && who->top) attribution["by_source"] = by_source_json(*who);
  return wrap_lines(out + attribution_text(attribution));  // within 100 columns
}

std::string attribution_text(const json& s) {
  // The row's name, else its inode (or "other").
  auto netns_label = [](const json& row) {
    const json& name = row.value("name", json());
    if (name.is_string()) return name.get<std::string>();
    return row["netns"].is_string() ? row["netns"].get<std::string>() : row["netns"].dump();
  };
  std::string out;
  const json& by_netns = s.value("by_netns", json());
  if (by_netns.is_array() && !by_netns.empty()) {
    out += "  inserts by netns:\n";
    for (const auto& row : by_netns) {
      std::string inode = row.contains("name") && row["netns"].is_number() ? " (" + row["netns"].dump() + ")" : "";
      out += fmt::format("    {:>10}  {}{}\n", row["inserts"].dump(), netns_label(row), inode);
    }
  }
  if (!s.contains("by_source")) return out;
  const json& sources = s["by_source"];
  if (!sources.is_object()) return out + "  top sources: - (not observable in this mode)\n";
  for (const auto& [key, title] : {std::pair{"by_live", "live entries"}, std::pair{"by_inserts", "inserts"}}) {
    out += fmt::format("  top sources by {}:\n", title);
    for (const auto& row : sources[key]) {
      std::string where = row["netns"].is_string() ? "" : "  netns " + netns_label(row);
      out += fmt::format("    {:>10} live {:>10} inserts  {}{}\n", row["live"].dump(), row["inserts"].dump(),
                         row["src"].get<std::string>(), where);
    }
  }
  if (sources["untracked"] != 0)
    out += fmt::format("  ({} inserts/destroys beyond the source map's bound were not attributed)\n",
                       sources["untracked"].dump());
  // Read back from JSON (a snapshot file too, which the reader does not check this deep): only
  // comparisons and dump(), which take any type, so a crafted file cannot throw here.
  const json none;
  auto at = [&none](const json& j, const char* key) -> const json& { return j.contains(key) ? j[key] : none; };
  const json& seed = at(sources, "seed_dump");
  if (seed.is_object() && at(seed, "stopped_early") == true) {
    const bool by_entries = at(seed, "stopped_by") == "max_entries";
    out += fmt::format("  (live counts seeded from a ctnetlink dump that stopped early: {} entries read, {} {}; "
                       "this netns's other entries are not in them)\n",
                       at(seed, "entries").dump(), by_entries ? "--dump-max-entries" : "--dump-max-seconds",
                       at(seed, by_entries ? "max_entries" : "max_seconds").dump());
  }
  if (seed.is_object() && at(seed, "unattributed").is_number() && at(seed, "unattributed") != 0)
    out += fmt::format("  ({} seeded entries of sources beyond the dump's bound were not attributed)\n",
                       at(seed, "unattributed").dump());
  return out;
}

}  // namespace ctbpf::core
