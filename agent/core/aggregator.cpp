// SPDX-License-Identifier: Apache-2.0
#include "core/aggregator.h"

#include <stdexcept>

namespace ctbpf::core {

std::string to_string(Mode mode) {
  switch (mode) {
    case Mode::fentry: return "fentry";
    case Mode::kprobe: return "kprobe";
    case Mode::tracepoint: return "tracepoint";
  }
  return "?";
}

const char* proto_class_name(std::size_t cls) {
  static const char* const names[CTBPF_PROTO_MAX] = {"tcp", "udp", "icmp", "other"};
  return cls < CTBPF_PROTO_MAX ? names[cls] : "other";
}

std::string tcp_state_name(std::size_t state) {
  static const char* const names[] = {"NONE",      "SYN_SENT",   "SYN_RECV", "ESTABLISHED",
                                      "FIN_WAIT",  "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT",
                                      "CLOSE",     "SYN_SENT2"};
  if (state < std::size(names)) return names[state];
  return "STATE_" + std::to_string(state);
}

Histogram ProbeDetail::lifetime_all() const {
  Histogram all(SlotKind::log2);
  for (const auto& h : lifetime) all.merge(h);
  return all;
}

std::optional<Mode> mode_from_string(const std::string& text) {
  if (text == "fentry") return Mode::fentry;
  if (text == "kprobe") return Mode::kprobe;
  if (text == "tracepoint") return Mode::tracepoint;
  return std::nullopt;
}

namespace {

Count when(bool observable, uint64_t value) { return observable ? Count{value} : Count{}; }

Count stat(const Sample& s, Count KernelStats::*field) {
  if (!s.stats) return {};
  return (*s.stats).*field;
}

Count minus(const Count& now, const Count& before) {
  if (!now || !before) return {};
  return *now >= *before ? *now - *before : 0;
}

std::optional<int64_t> growth(const TableGauge& now, const TableGauge& before) {
  if (!now.count || !before.count) return std::nullopt;
  return static_cast<int64_t>(*now.count) - static_cast<int64_t>(*before.count);
}

KernelStats minus(const KernelStats& now, const KernelStats& before) {
  KernelStats d;
  for (const auto& counter : kKernelCounters)
    d.*counter.member = minus(now.*counter.member, before.*counter.member);
  return d;
}

}  // namespace

Totals derive(const Sample& s, const Observability& obs) {
  const auto& c = s.counters;
  const bool bpf = obs.conntrack_points;
  Totals t;
  // Every allocated entry is either inserted or freed without ever being in the table (conntrack.bpf.c
  // counts each once); one still between alloc and confirm is counted once it gets to either.
  t.allocs = when(bpf, c[CTBPF_CNT_INSERT] + c[CTBPF_CNT_FREED_UNINSERTED]);
  t.inserts = when(bpf, c[CTBPF_CNT_INSERT]);
  t.destroys = when(bpf, c[CTBPF_CNT_DESTROY]);
  t.deletes = when(bpf, c[CTBPF_CNT_DELETE]);
  t.lost_events = c[CTBPF_CNT_LOST_EVENTS];
  t.drop_events_suppressed = c[CTBPF_CNT_DROP_EVENTS_SUPPRESSED];
  t.misses = {when(bpf, c[CTBPF_CNT_CONFIRM_UNPAIRED]), when(bpf, c[CTBPF_CNT_CHAIN_TRUNCATED]),
              s.recursion_misses, bpf ? s.kprobe_misses : Count{}};
  t.netfilter_drops = when(obs.netfilter_drop_reason, c[CTBPF_CNT_NETFILTER_DROP]);

  if (bpf) {
    t.drops.insert_failed = c[CTBPF_CNT_INSERT_FAILED];
    t.drops.clash_resolve = c[CTBPF_CNT_CLASH_RESOLVE];
    t.drops.chaintoolong =
        when(obs.resolve_clash && obs.kernel_has_chaintoolong, c[CTBPF_CNT_CHAINTOOLONG]);
    t.drops.table_full = when(obs.early_drop, c[CTBPF_CNT_TABLE_FULL]);
    t.drops.early_drop = when(obs.early_drop, c[CTBPF_CNT_EARLY_DROP]);
    // alloc_failed stays null: an allocation refused by the slab (not a full table) is seen only by a
    // program on every allocation, which ctbpf does not run (one program per new flow, BENCHMARKS.md).
    t.chain = s.chain;
    t.chain_max = s.chain_max;
    // The kernel side keeps the exact longest chain since load: no percentile may exceed it.
    if (s.chain.count()) t.chain->set_exact_max(s.chain_max);
    ProbeDetail d;
    d.inserts_by_proto = s.inserts_by_proto;
    d.destroys_by_proto = s.destroys_by_proto;
    d.tcp_deaths_by_state = s.tcp_deaths_by_state;
    d.by_netns = s.by_netns;
    d.lifetime = s.lifetime;
    d.lifetime_untracked = c[CTBPF_CNT_LIFETIME_UNTRACKED];
    t.detail = d;
  } else {
    // Without conntrack probes, the kernel's own counters are the source (for the netns ctbpf runs in).
    // `drop` counts a new flow refused by a full table with no early_drop victim (nf_conntrack_in's
    // "table full, dropping packet"), and also the rarer drops of an unresolvable clash (counted in
    // insert_failed too) and of a failed sequence adjustment: every packet conntrack itself dropped.
    t.drops.table_full = stat(s, &KernelStats::drop);
    t.drops.insert_failed = stat(s, &KernelStats::insert_failed);
    t.drops.clash_resolve = stat(s, &KernelStats::clash_resolve);
    t.drops.chaintoolong = stat(s, &KernelStats::chaintoolong);
    t.drops.early_drop = stat(s, &KernelStats::early_drop);
  }
  if (obs.drop_reasons) t.nat_blackholes = s.nat_blackholes;
  if (bpf) t.dns_races = s.dns_races;
  // Packet-path "invalid" has no probe of its own yet: always the kernel's counter.
  t.drops.invalid = stat(s, &KernelStats::invalid);
  t.kernel = s.stats;
  return t;
}

Totals minus(const Totals& now, const Totals& before) {
  Totals d;
  d.allocs = minus(now.allocs, before.allocs);
  d.inserts = minus(now.inserts, before.inserts);
  d.destroys = minus(now.destroys, before.destroys);
  d.deletes = minus(now.deletes, before.deletes);
  d.netfilter_drops = minus(now.netfilter_drops, before.netfilter_drops);
  d.lost_events = minus(now.lost_events, before.lost_events);
  auto sub = [](uint64_t x, uint64_t y) { return x >= y ? x - y : 0; };
  d.drop_events_suppressed = sub(now.drop_events_suppressed, before.drop_events_suppressed);
  d.misses = {minus(now.misses.confirm_unpaired, before.misses.confirm_unpaired),
              minus(now.misses.chain_truncated, before.misses.chain_truncated),
              minus(now.misses.recursion, before.misses.recursion), minus(now.misses.kprobe, before.misses.kprobe)};
  for (const auto& cause : kDropCauses)
    d.drops.*cause.member = minus(now.drops.*cause.member, before.drops.*cause.member);
  if (now.kernel && before.kernel) d.kernel = minus(*now.kernel, *before.kernel);
  if (now.nat_blackholes && before.nat_blackholes) d.nat_blackholes = grown(*now.nat_blackholes, *before.nat_blackholes);
  if (now.dns_races && before.dns_races) d.dns_races = grown(*now.dns_races, *before.dns_races);
  if (now.chain && before.chain) {
    d.chain = now.chain->minus(*before.chain);
    d.chain_max = d.chain->max_bound();
  }
  if (now.detail && before.detail) {
    const auto &a = *now.detail, &b = *before.detail;
    ProbeDetail out;
    for (std::size_t i = 0; i < CTBPF_PROTO_MAX; ++i) {
      out.inserts_by_proto[i] = sub(a.inserts_by_proto[i], b.inserts_by_proto[i]);
      out.destroys_by_proto[i] = sub(a.destroys_by_proto[i], b.destroys_by_proto[i]);
      out.lifetime[i] = a.lifetime[i].minus(b.lifetime[i]);
    }
    for (std::size_t i = 0; i < CTBPF_TCP_STATES; ++i)
      out.tcp_deaths_by_state[i] = sub(a.tcp_deaths_by_state[i], b.tcp_deaths_by_state[i]);
    out.lifetime_untracked = sub(a.lifetime_untracked, b.lifetime_untracked);
    // A netns on a reused inode counts from zero, and the dead one's earlier counts moved to other
    // (struct NetnsCounts): those are not other's growth in this window.
    ByNetns earlier = b.by_netns;
    for (const auto& [netns, counts] : a.by_netns) {
      auto it = earlier.find(netns);
      if (netns == CTBPF_NETNS_OTHER || it == earlier.end() || it->second.identity == counts.identity) continue;
      earlier[CTBPF_NETNS_OTHER].inserts += it->second.inserts;
      earlier[CTBPF_NETNS_OTHER].destroys += it->second.destroys;
      earlier.erase(it);
    }
    for (const auto& [netns, counts] : a.by_netns) {
      auto it = earlier.find(netns);
      NetnsCounts before_counts = it == earlier.end() ? NetnsCounts{} : it->second;
      NetnsCounts delta{sub(counts.inserts, before_counts.inserts), sub(counts.destroys, before_counts.destroys),
                        counts.identity};
      if (delta.inserts || delta.destroys) out.by_netns[netns] = delta;
    }
    d.detail = out;
  }
  return d;
}

std::optional<double> Report::rate(const Count& count) const {
  if (!count || duration() <= 0) return std::nullopt;
  return static_cast<double>(*count) / duration();
}

std::optional<double> Report::growth_per_s() const {
  if (!growth || duration() <= 0) return std::nullopt;
  return static_cast<double>(*growth) / duration();
}

std::optional<Report> Aggregator::add(const Sample& sample) {
  if (!first_) {
    first_ = sample;
    last_ = sample;
    return std::nullopt;
  }
  Report r;
  r.start_s = last_->t_s - first_->t_s;
  r.end_s = sample.t_s - first_->t_s;
  r.totals = minus(derive(sample, obs_), derive(*last_, obs_));
  r.table = sample.table;
  r.growth = growth(sample.table, last_->table);
  to_report_clock(r.totals);
  last_ = sample;
  return r;
}

Report Aggregator::summary() const {
  if (!first_) throw std::logic_error("summary before any sample");
  Report r;
  r.end_s = last_->t_s - first_->t_s;
  auto now = derive(*last_, obs_);
  r.totals = minus(now, derive(*first_, obs_));
  // The maps start empty when the programs load, so the exact maximum holds for the whole run.
  r.totals.chain_max = now.chain_max;
  r.table = last_->table;
  r.growth = growth(last_->table, first_->table);
  to_report_clock(r.totals);
  return r;
}

void Aggregator::to_report_clock(Totals& t) const {
  if (!t.nat_blackholes) return;
  for (auto& f : *t.nat_blackholes) {
    f.first_s -= first_->t_s;
    f.last_s -= first_->t_s;
  }
}

}  // namespace ctbpf::core
