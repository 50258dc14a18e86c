// SPDX-License-Identifier: Apache-2.0
#include "core/prometheus.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <iterator>
#include <mutex>
#include <string_view>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include "core/events.h"

namespace ctbpf::core {

NetnsLabels::NetnsLabels(std::size_t max_labels, double half_life_s)
    : max_(max_labels), half_life_s_(half_life_s) {}

std::set<uint32_t> NetnsLabels::all() const {
  std::set<uint32_t> out;
  for (const auto& [netns, label] : labelled_) out.insert(netns);
  return out;
}

namespace {
// Identity 0 is "not known" (a netns seen only in drop events, or counts read back from a file).
bool same_netns(uint32_t a, uint32_t b) { return a == 0 || b == 0 || a == b; }
uint64_t growth(uint64_t now, uint64_t before) { return now > before ? now - before : 0; }
}  // namespace

void NetnsLabels::update(const ByNetns& counts, uint64_t inserts, uint64_t destroys,
                         const std::optional<std::set<uint32_t>>& live, const std::map<uint32_t, uint64_t>& drops,
                         double elapsed_s, NetnsSeriesCounts* events) {
  const double decay = half_life_s_ > 0 && elapsed_s > 0 ? std::exp2(-elapsed_s / half_life_s_) : 1.0;
  auto alive = [&](uint32_t netns) { return netns != CTBPF_NETNS_OTHER && (!live || live->count(netns) != 0); };

  // The ranking: every live netns the kernel counts or that dropped, and nothing else (a dead one is
  // forgotten here, so churn leaves no state behind). `before`: its counts at the previous update, what
  // other holds of it while it has no label.
  std::map<uint32_t, Known> known;
  std::map<uint32_t, Series> before;
  for (const auto& [netns, c] : counts) {
    if (!alive(netns)) continue;
    Known k{c.identity, {c.inserts, c.destroys}, 0};
    Series prior;  // first seen, or a later netns on a reused inode: none of it is in other yet
    if (auto it = known_.find(netns); it != known_.end() && same_netns(it->second.identity, c.identity)) {
      prior = it->second.last;
      k.score = it->second.score * decay;
      if (!k.identity) k.identity = it->second.identity;
    }
    k.score += static_cast<double>(growth(c.inserts, prior.inserts));
    before[netns] = prior;
    known[netns] = k;
  }
  for (const auto& [netns, n] : drops) {
    if (!alive(netns)) continue;
    auto [it, added] = known.try_emplace(netns);
    if (added) {
      if (auto old = known_.find(netns); old != known_.end()) {
        it->second = old->second;
        it->second.score *= decay;
      }
      before[netns] = it->second.last;
    }
    it->second.score += static_cast<double>(n);
  }
  // A labelled netns the kernel has no counts of this time (it only dropped before) keeps its rank.
  for (const auto& [netns, label] : labelled_) {
    auto old = known_.find(netns);
    if (alive(netns) && !known.count(netns) && old != known_.end() && !counts.count(netns)) {
      known[netns] = old->second;
      known[netns].score *= decay;
      before[netns] = old->second.last;
    }
  }
  auto score = [&](uint32_t netns) {
    auto it = known.find(netns);
    return it == known.end() ? 0.0 : it->second.score;
  };

  // A dead netns's series ends: no process or /run/netns entry holds its inode any more, or a later
  // netns does (the kernel's identity changed). What it showed is released into other.
  Series released;
  std::set<uint32_t> ended;  // a series ended here gives its drop events to other, even if its inode
                             // takes a label again below (a later netns on it starts from zero)
  auto release = [&](std::map<uint32_t, Label>::iterator it) {
    ended.insert(it->first);
    const auto shown = series_[it->first];
    released.inserts += shown.inserts;
    released.destroys += shown.destroys;
    series_.erase(it->first);
    return labelled_.erase(it);
  };
  for (auto it = labelled_.begin(); it != labelled_.end();) {
    auto c = counts.find(it->first);
    const bool reused = c != counts.end() && !same_netns(c->second.identity, it->second.identity);
    if (!alive(it->first) || reused)
      it = release(it);
    else
      ++it;
  }

  // Free labels go to the busiest unlabelled live netns; a full set gives up its least busy label to
  // one kDisplaceFactor times busier.
  std::vector<std::pair<double, uint32_t>> candidates;
  for (const auto& [netns, k] : known)
    if (!labelled(netns) && k.score > 0) candidates.emplace_back(k.score, netns);
  std::sort(candidates.begin(), candidates.end(),
            [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  for (const auto& [busy, netns] : candidates) {
    if (max_ == 0) break;
    if (labelled_.size() >= max_) {
      auto least = labelled_.begin();
      for (auto it = labelled_.begin(); it != labelled_.end(); ++it)
        if (score(it->first) < score(least->first)) least = it;
      if (!(busy > kDisplaceFactor * score(least->first))) break;  // the rest are no busier
      release(least);
    }
    labelled_[netns] = {known[netns].identity, before[netns]};
    series_[netns] = {};
  }

  // Each series shows its netns's counts since it took the label, growing by no more than the global
  // counters did (plus what ended series released): other never decreases, and the sum is exact.
  Series budget{growth(inserts, global_.inserts) + released.inserts,
                growth(destroys, global_.destroys) + released.destroys};
  Series shown_sum;
  for (auto& [netns, label] : labelled_) {
    if (!label.identity && known.count(netns)) label.identity = known[netns].identity;
    auto& shown = series_[netns];
    if (auto c = counts.find(netns); c != counts.end()) {
      uint64_t want_inserts = std::max(shown.inserts, growth(c->second.inserts, label.baseline.inserts));
      uint64_t want_destroys = std::max(shown.destroys, growth(c->second.destroys, label.baseline.destroys));
      uint64_t more_inserts = std::min(want_inserts - shown.inserts, budget.inserts);
      uint64_t more_destroys = std::min(want_destroys - shown.destroys, budget.destroys);
      shown.inserts += more_inserts;
      shown.destroys += more_destroys;
      budget.inserts -= more_inserts;
      budget.destroys -= more_destroys;
    }
    shown_sum.inserts += shown.inserts;
    shown_sum.destroys += shown.destroys;
  }
  global_ = {inserts, destroys};
  other_ = {growth(inserts, shown_sum.inserts), growth(destroys, shown_sum.destroys)};
  known_ = std::move(known);
  if (events) {
    auto keep = all();
    for (auto netns : ended) keep.erase(netns);
    events->keep_only(keep);
  }
}

void NetnsSeriesCounts::add(const ctbpf_event& e, const NetnsLabels& labels) {
  if (e.kind != CTBPF_EV_DROP) return;
  // A cause the kernel should never send still counts, in one bucket: the series stay bounded.
  auto cause = cause_view(e.cause);
  add(fmt::format("cause=\"{}\"", cause.empty() ? "unknown" : cause), e.netns, 1, labels);
}

void NetnsSeriesCounts::add(const std::string& label_text, uint32_t netns, uint64_t n, const NetnsLabels& labels) {
  counts_[{label_text, labels.labelled(netns) ? netns : uint32_t{CTBPF_NETNS_OTHER}}] += n;
  if (netns == CTBPF_NETNS_OTHER) return;
  if (auto it = recent_.find(netns); it != recent_.end())
    it->second += n;
  else if (recent_.size() < kRecentMax)
    recent_[netns] = n;
}

std::map<uint32_t, uint64_t> NetnsSeriesCounts::take_recent() { return std::exchange(recent_, {}); }

void NetnsSeriesCounts::keep_only(const std::set<uint32_t>& keep) {
  for (auto it = counts_.begin(); it != counts_.end();) {
    const auto& [label_text, netns] = it->first;
    if (netns == CTBPF_NETNS_OTHER || keep.count(netns)) {
      ++it;
      continue;
    }
    const uint64_t n = it->second;
    const std::string moved = label_text;
    it = counts_.erase(it);
    counts_[{moved, uint32_t{CTBPF_NETNS_OTHER}}] += n;  // (label, 0) sorts before: `it` stays valid
  }
}

const char* exposition_content_type(bool openmetrics) {
  return openmetrics ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                     : "text/plain; version=0.0.4; charset=utf-8";
}

bool wants_openmetrics(const std::string& accept_header) {
  return accept_header.find("application/openmetrics-text") != std::string::npos;
}

namespace {

// A histogram kind's bucket bounds (times `scale`) as text, formatted once: fmt's shortest-double
// formatting of every bound on every page was most of the page's cost.
const std::vector<std::string>& bucket_bounds(SlotKind kind, double scale) {
  static std::mutex mutex;
  static std::map<std::pair<SlotKind, double>, std::vector<std::string>> formatted;
  std::lock_guard lock(mutex);
  auto& bounds = formatted[{kind, scale}];
  if (bounds.empty()) {
    for (std::size_t i = 0; i < slot_count(kind); ++i)
      bounds.push_back(fmt::format("{}", scale * static_cast<double>(slot_upper_bound(kind, i))));
  }
  return bounds;  // never changed once filled; map nodes do not move
}

class Page {
public:
  explicit Page(bool openmetrics) : openmetrics_(openmetrics) {}

  // A counter family: OpenMetrics names the family without _total; the text format names it with.
  void counter(const std::string& name, const std::string& help) {
    header(openmetrics_ ? name : name + "_total", "counter", help);
  }
  void gauge(const std::string& name, const std::string& help) { header(name, "gauge", help); }
  void histogram(const std::string& name, const std::string& help) { header(name, "histogram", help); }
  // An info family: OpenMetrics types it "info" and names it without the _info suffix.
  void info(const std::string& name, const std::string& help) {
    if (openmetrics_)
      header(name, "info", help);
    else
      header(name + "_info", "gauge", help);
  }

  // Appended in place: temporary strings were most of a page's cost.
  template <typename Value>
  void sample(std::string_view name, std::string_view labels, Value value) {
    static_assert(std::is_same_v<Value, double> || std::is_same_v<Value, uint64_t>);
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    fmt::format_to(std::back_inserter(out_), " {}\n", value);
  }

  // buckets with inclusive upper bounds `scale * slot_upper_bound`, then +Inf, _sum and _count.
  void histogram_samples(const std::string& name, const std::string& labels, const Histogram& h,
                         double scale, double sum) {
    const std::string bucket = name + "_bucket", prefix = labels.empty() ? "" : labels + ",";
    const auto& bounds = bucket_bounds(h.kind(), scale);
    uint64_t cumulative = 0;
    const auto& slots = h.slots();
    std::string le;
    // Every slot but the last (it holds everything above: that is +Inf), so the series set is the
    // same from the first scrape on and histogram_quantile() sees consistent buckets.
    for (std::size_t i = 0; i + 1 < slots.size(); ++i) {
      cumulative += slots[i];
      le = prefix;
      le += "le=\"";
      le += bounds.at(i);
      le += '"';
      sample(bucket, le, cumulative);
    }
    sample(bucket, prefix + "le=\"+Inf\"", h.count());
    sample(name + "_sum", labels, sum);
    sample(name + "_count", labels, h.count());
  }

  std::string finish() {
    if (openmetrics_) out_ += "# EOF\n";
    return std::move(out_);
  }

private:
  void header(const std::string& name, const char* type, const std::string& help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }

  bool openmetrics_;
  std::string out_;
};

}  // namespace

namespace {

void netns_series(Page& page, const std::string& name, const NetnsSeriesCounts& counts) {
  for (const auto& [key, n] : counts.counts())
    page.sample(name,
                fmt::format("{},netns=\"{}\"", key.first,
                            key.second == CTBPF_NETNS_OTHER ? std::string("other") : std::to_string(key.second)),
                n);
}

}  // namespace

std::string render_exposition(const ExpositionInput& in) {
  Page page(in.openmetrics);
  const std::string p = "ctbpf_conntrack_";

  page.info("ctbpf_build", "ctbpf version and the attach mode in use (none until attached)");
  page.sample("ctbpf_build_info",
              fmt::format("version=\"{}\",mode=\"{}\"", in.version, in.attached ? to_string(in.mode) : "none"),
              uint64_t{1});
  page.gauge("ctbpf_attached", "1 once ctbpf's programs are attached; 0 while nf_conntrack is not loaded");
  page.sample("ctbpf_attached", "", uint64_t{in.attached});
  if (!in.privileges.empty()) {
    page.gauge("ctbpf_privilege_missing",
               "1 when ctbpf runs without this capability and so cannot provide this feature (start-up says why)");
    for (const auto& need : in.privileges)
      page.sample("ctbpf_privilege_missing",
                  fmt::format("capability=\"{}\",feature=\"{}\"", need.capability, need.feature),
                  uint64_t{need.missing});
  }
  if (!in.attached) return page.finish();
  const auto& t = in.total->totals;
  const auto& table = in.total->table;

  auto counter = [&](const std::string& name, const std::string& help, const Count& value) {
    if (!value) return;  // unobservable in this mode: no series rather than a made-up 0
    page.counter(p + name, help);
    page.sample(p + name + "_total", "", *value);
  };
  counter("allocations", "Conntrack entries allocated", t.allocs);
  counter("deletes", "Entries removed from the table (timeout, flush, RST, eviction)", t.deletes);

  if (t.detail) {
    page.counter(p + "inserts", "Entries inserted into the conntrack table (confirmed)");
    for (std::size_t i = 0; i < CTBPF_PROTO_MAX; ++i)
      page.sample(p + "inserts_total", fmt::format("proto=\"{}\"", proto_class_name(i)),
                  t.detail->inserts_by_proto[i]);
    page.counter(p + "destroys", "Confirmed entries freed");
    for (std::size_t i = 0; i < CTBPF_PROTO_MAX; ++i)
      page.sample(p + "destroys_total", fmt::format("proto=\"{}\"", proto_class_name(i)),
                  t.detail->destroys_by_proto[i]);

    // The labelled netns's series and other, as NetnsLabels::update decided them; without labels,
    // everything is other.
    static const std::map<uint32_t, NetnsLabels::Series> none;
    const auto& labelled = in.netns ? in.netns->series() : none;
    NetnsLabels::Series other;
    if (in.netns) {
      other = in.netns->other();
    } else {
      for (std::size_t i = 0; i < CTBPF_PROTO_MAX; ++i) {
        other.inserts += t.detail->inserts_by_proto[i];
        other.destroys += t.detail->destroys_by_proto[i];
      }
    }
    const std::string bound = in.netns ? std::to_string(in.netns->max_labels()) : "0";
    const std::string which = " per network namespace (inode) since it took its label: the busiest live ones, "
                              "at most " + bound + " (--netns-labels); the rest, and dead ones, in other";
    page.counter(p + "netns_inserts", "Inserts" + which);
    for (const auto& [netns, c] : labelled)
      page.sample(p + "netns_inserts_total", fmt::format("netns=\"{}\"", netns), c.inserts);
    page.sample(p + "netns_inserts_total", "netns=\"other\"", other.inserts);
    // Names live in their own info series (join on netns): a name may change, a counter's labels must not.
    page.info("ctbpf_netns", "What each labelled netns inode is: ip netns name, container or process");
    for (const auto& [netns, c] : labelled) {
      auto it = in.netns_names.find(netns);
      std::string name = it == in.netns_names.end() ? "" : it->second;
      std::string escaped;
      for (char ch : name) {
        if (ch == '\\' || ch == '"') escaped += '\\';
        if (ch == '\n') { escaped += "\\n"; continue; }
        escaped += ch;
      }
      page.sample("ctbpf_netns_info", fmt::format("netns=\"{}\",name=\"{}\"", netns, escaped), uint64_t{1});
    }
    page.counter(p + "netns_destroys", "Destroys" + which);
    for (const auto& [netns, c] : labelled)
      page.sample(p + "netns_destroys_total", fmt::format("netns=\"{}\"", netns), c.destroys);
    page.sample(p + "netns_destroys_total", "netns=\"other\"", other.destroys);
  }

  page.counter(p + "drops",
               in.obs && !in.obs->conntrack_points
                   ? "Packets or entries lost to each conntrack cause (the kernel's ctnetlink counters, ctbpf's netns; "
                     "table_full is its drop counter)"
                   : "Packets or entries lost to each conntrack cause (every netns; invalid: ctbpf's netns)");
  auto drop = [&](const char* cause, const Count& value) {
    if (value) page.sample(p + "drops_total", fmt::format("cause=\"{}\"", cause), *value);
  };
  for (const auto& cause : kDropCauses) drop(cause.key, t.drops.*cause.member);
  if (in.drop_events) {
    page.counter(p + "drop_events",
                 "Drop events per cause and netns (inode; bounded, rest in other), for attribution. Sampled: "
                 "the kernel rate-limits them per CPU and counts the rest in "
                 "ctbpf_drop_events_suppressed_total, a full ring in ctbpf_lost_events_total: nothing is lost unseen");
    netns_series(page, p + "drop_events_total", *in.drop_events);
    page.counter("ctbpf_drop_events_suppressed", "Drop events over the kernel's per-CPU rate limit, not sent");
    page.sample("ctbpf_drop_events_suppressed_total", "", t.drop_events_suppressed);
  }
  if (in.nat_blackholes) {
    page.counter(p + "nat_blackholed_packets",
                 "Packets of NAT'd entries dropped on this machine after the NAT (a stale entry to a gone "
                 "backend: ctbpf trace and doctor name the flow), per drop reason and netns (bounded, rest in other)");
    netns_series(page, p + "nat_blackholed_packets_total", *in.nat_blackholes);
  }
  if (in.dns_races) {
    page.counter(p + "dns_races",
                 "UDP port 53 entries refused (insert_failed: the query dropped) or merged (clash_resolve: kept) "
                 "at confirm, per resolver (the NAT's target) and netns (bounded, rest in other)");
    netns_series(page, p + "dns_races_total", *in.dns_races);
  }
  if (t.netfilter_drops) {
    page.counter("ctbpf_netfilter_drops", "Packets freed with SKB_DROP_REASON_NETFILTER_DROP, in every netns");
    page.sample("ctbpf_netfilter_drops_total", "", *t.netfilter_drops);
  }

  if (t.kernel) {
    page.counter(p + "kernel_stats",
                 "The kernel's own conntrack statistics (ctnetlink, as conntrack -S), ctbpf's netns, since start");
    for (const auto& stat : kKernelCounters)
      if (const auto& v = (*t.kernel).*stat.member)
        page.sample(p + "kernel_stats_total", fmt::format("stat=\"{}\"", stat.key), *v);
  }

  if (t.chain) {
    const uint32_t one_in = in.obs ? in.obs->chain_one_in : 1;
    page.histogram(p + "chain_length", one_in > 1 ? fmt::format("Hash-chain length of the bucket an entry was "
                                                                "inserted into, 1 insert in {} per CPU",
                                                                one_in)
                                                  : "Hash-chain length of the bucket an entry was inserted into");
    page.histogram_samples(p + "chain_length", "", *t.chain, 1.0, static_cast<double>(t.chain->sum()));
  }
  if (t.detail) {
    page.histogram(p + "lifetime_seconds", "Insert-to-free time of entries (sampled)");
    for (std::size_t i = 0; i < CTBPF_PROTO_MAX; ++i) {
      const auto& h = t.detail->lifetime[i];
      page.histogram_samples(p + "lifetime_seconds", fmt::format("proto=\"{}\"", proto_class_name(i)), h,
                             0.001, static_cast<double>(h.sum()) / 1000.0);
    }
  }

  auto gauge = [&](const std::string& name, const std::string& help, const Count& value) {
    if (!value) return;
    page.gauge(p + name, help);
    page.sample(p + name, "", *value);
  };
  gauge("entries", "Entries in the table (netns of ctbpf)", table.count);
  gauge("max_entries", "nf_conntrack_max", table.max);
  gauge("buckets", "Hash table buckets (nf_conntrack_buckets)", table.buckets);
  if (table.count && table.max && *table.max) {
    page.gauge(p + "fill_ratio", "entries / max_entries");
    page.sample(p + "fill_ratio", "", static_cast<double>(*table.count) / static_cast<double>(*table.max));
  }

  if (t.lost_events) {
    page.counter("ctbpf_lost_events", "Ring-buffer records the kernel could not reserve");
    page.sample("ctbpf_lost_events_total", "", *t.lost_events);
  }
  page.counter("ctbpf_probe_misses", "Probe runs or pairings ctbpf missed");
  // Absent, not 0, where the probe does not exist (tracepoint mode) or the kernel does not say
  // (kprobe family before 6.7).
  for (const auto& [kind, count] : {std::pair{"confirm_unpaired", t.misses.confirm_unpaired},
                                    std::pair{"chain_walk_truncated", t.misses.chain_truncated},
                                    std::pair{"recursion", t.misses.recursion}, std::pair{"kprobe", t.misses.kprobe}})
    if (count) page.sample("ctbpf_probe_misses_total", fmt::format("kind=\"{}\"", kind), *count);
  return page.finish();
}

}  // namespace ctbpf::core
