#include "core/doctor.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <sstream>

#include <linux/netfilter/nf_conntrack_tcp.h>

#include <fmt/format.h>

#include "core/render.h"

namespace ctbpf::core {

using nlohmann::json;

std::string to_string(Severity severity) {
  switch (severity) {
    case Severity::critical: return "critical";
    case Severity::warning: return "warning";
    case Severity::info: return "info";
  }
  return "?";
}

std::string to_string(ConntrackBuild build) {
  switch (build) {
    case ConntrackBuild::module: return "module";
    case ConntrackBuild::builtin: return "builtin";
    case ConntrackBuild::unknown: return "unknown";
  }
  return "?";
}

uint64_t next_power_of_two(uint64_t value) {
  uint64_t p = 1;
  while (p < value && p < (uint64_t{1} << 63)) p <<= 1;
  return p;
}

uint64_t recommend_buckets(uint64_t max_entries, uint64_t current) {
  constexpr uint64_t kKernelMinBuckets = 1024;  // nf_conntrack_init_start()'s floor
  return std::max({next_power_of_two(max_entries), kKernelMinBuckets, current});
}

uint64_t table_memory_bytes(uint64_t max_entries, uint64_t buckets, uint64_t slab_object_size) {
  constexpr uint64_t kBucketBytes = 8;  // struct hlist_nulls_head: one pointer
  return max_entries * slab_object_size + buckets * kBucketBytes;
}

double retransmission_give_up_s(uint64_t retries) {
  double total = 0, rto = 0.2;
  for (uint64_t i = 0; i <= retries; ++i) {
    total += rto;
    rto = std::min(rto * 2, 120.0);
  }
  return total;
}

uint64_t retransmissions_within(double seconds) {
  double at = 0, rto = 0.2;
  uint64_t n = 0;
  while (at + rto <= seconds && n < 64) {
    at += rto;
    rto = std::min(rto * 2, 120.0);
    ++n;
  }
  return n;
}

std::optional<uint64_t> parse_slabinfo_object_size(const std::string& slabinfo, const std::string& cache) {
  // "name <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables ..."
  std::istringstream lines(slabinfo);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string name;
    uint64_t active = 0, total = 0, objsize = 0;
    if (!(fields >> name) || name != cache) continue;
    if (fields >> active >> total >> objsize) return objsize;
    return std::nullopt;
  }
  return std::nullopt;
}

std::optional<uint64_t> parse_meminfo_total(const std::string& meminfo) {
  std::istringstream lines(meminfo);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string key, unit;
    uint64_t value = 0;
    if (!(fields >> key) || key != "MemTotal:") continue;
    if (!(fields >> value)) return std::nullopt;
    fields >> unit;
    return unit == "kB" ? value * 1024 : value;
  }
  return std::nullopt;
}

namespace {

// 5.15, commit d7e7747ac5c2 ("netfilter: refuse insertion if chain has grown too large"): an insert is
// refused when either bucket it goes into holds more than a random limit in [50, 79] entries.
constexpr uint64_t kChainLimitFloor = 50;
// Before 5.15 the kernel's default max was 4 × buckets (8 × when hashsize was given): with every entry
// hashed twice, 8 to 16 nodes per chain on a full table. Longer than that is longer than any default.
constexpr double kLongChain = 16;
constexpr double kHighFill = 0.8;
constexpr double kSoonFull_s = 3600;
// Conntrack memory is unswappable kernel memory: proposals stay under this share of RAM.
constexpr double kRamShareCap = 0.25;
constexpr uint64_t kEstablishedFloor_s = 10800;  // 3 h: above the default TCP keepalive idle (7200 s)
constexpr uint64_t kLongEstablished_s = 86400;
constexpr uint64_t kUdpTimeoutProposal_s = 10;
// Live entries idle beyond the proposed timeout that make the timeout a warning on their own.
constexpr double kStaleTableShare = 0.25;

// ---- formatting -----------------------------------------------------------------------------------

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  std::size_t u = 0;
  while (bytes >= 1024 && u + 1 < std::size(units)) {
    bytes /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.1f} {}", bytes, units[u]);
}

std::string human_seconds(double s) {
  if (s < 120) return fmt::format("{:.0f} s", s);
  if (s < 7200) return fmt::format("{:.0f} min", s / 60);
  if (s < 2 * 86400) return fmt::format("{:.1f} h", s / 3600);
  return fmt::format("{:.1f} days", s / 86400);
}


double ratio(uint64_t a, uint64_t b) { return static_cast<double>(a) / static_cast<double>(b); }

// "n p50 ≤ 4 s, p99 ≤ 6 s, max 6 s": percentiles are log2 slot bounds clamped to the max, min and max exact.
std::string idle_text(const IdleStats& s) {
  auto h = s.histogram();
  auto sec = [](uint64_t ms) { return human_seconds(static_cast<double>(ms) / 1000); };
  return fmt::format("{} p50 ≤ {}, p99 ≤ {}, max {}", h.count(), sec(h.percentile(0.5)), sec(h.percentile(0.99)),
                     sec(s.max_ms));
}

// Entries idle longer than threshold_ms, counted from whole log2 slots above it ([2^(k-1), 2^k - 1]
// ms): a lower bound, never more than there are.
uint64_t idle_beyond(const IdleStats& s, uint64_t threshold_ms) {
  uint64_t n = 0;
  for (std::size_t k = 1; k < s.slots.size(); ++k)
    if ((uint64_t{1} << (k - 1)) > threshold_ms) n += s.slots[k];
  return n;
}

// ---- commands -------------------------------------------------------------------------------------

const char* const kSysctlFile = "/etc/sysctl.d/90-conntrack.conf";

std::string sysctl_now(const std::string& name, uint64_t value) {
  return fmt::format("sysctl -w net.netfilter.nf_conntrack_{}={}", name, value);
}

// Sysctls for boot. Where conntrack is a module, systemd-sysctl runs before anything loads it and
// the nf_conntrack_* lines fail ("cannot stat"): loading it from modules-load.d first fixes that.
std::vector<std::string> sysctl_persistent(const std::vector<std::pair<std::string, uint64_t>>& settings,
                                           ConntrackBuild build) {
  std::vector<std::string> out;
  if (build != ConntrackBuild::builtin)
    out.push_back(
        "echo nf_conntrack > /etc/modules-load.d/nf_conntrack.conf  # loaded before /etc/sysctl.d is "
        "applied at boot");
  for (const auto& [name, value] : settings)
    out.push_back(fmt::format("echo 'net.netfilter.nf_conntrack_{} = {}' >> {}", name, value, kSysctlFile));
  return out;
}

std::string hashsize_now(uint64_t buckets) {
  return fmt::format(
      "echo {} > /sys/module/nf_conntrack/parameters/hashsize  # from the initial network namespace",
      buckets);
}

std::vector<std::string> hashsize_persistent(uint64_t buckets, ConntrackBuild build) {
  auto modprobe = fmt::format("echo 'options nf_conntrack hashsize={}' > /etc/modprobe.d/nf_conntrack.conf",
                              buckets);
  auto grub = fmt::format(
      "sed -i 's/^GRUB_CMDLINE_LINUX=\"/&nf_conntrack.hashsize={} /' /etc/default/grub && update-grub"
      "  # Debian/Ubuntu",
      buckets);
  auto grubby =
      fmt::format("grubby --update-kernel=ALL --args=nf_conntrack.hashsize={}  # Fedora/RHEL", buckets);
  switch (build) {
    case ConntrackBuild::module: return {modprobe};
    case ConntrackBuild::builtin: return {grub, grubby};
    case ConntrackBuild::unknown: break;
  }
  return {modprobe + "  # if nf_conntrack is a module", grub + ", if built in", grubby + ", if built in"};
}

// ---- the numbers every rule shares ----------------------------------------------------------------

struct Proposal {
  uint64_t max = 0, buckets = 0, wanted = 0;
  std::optional<uint64_t> memory_bytes;  // table_memory_bytes(max, buckets, slab object size)
  bool capped_by_ram = false;
};

struct Facts {
  double duration = 0;
  Count count_start, count_end, max, buckets;
  uint64_t peak = 0;
  std::optional<double> fill, growth_per_s, time_to_full_s;
  Count table_full;  // probe count, or the kernel's `drop` counter in tracepoint mode
  bool table_full_from_kernel_drop = false;
  Count early_drop, chaintoolong;
  bool pressure = false;  // the table is at or near its limit
  std::optional<Proposal> proposal;
  const ProbeDetail* detail = nullptr;  // null without conntrack probes
};

bool positive(const Count& c) { return c && *c > 0; }

std::optional<uint64_t> sysctl(const DoctorInput& in, const std::string& name) {
  auto it = in.sysctls.find(name);
  if (it == in.sysctls.end()) return std::nullopt;
  return it->second;
}

Facts derive_facts(const DoctorInput& in) {
  Facts f;
  const auto& t = in.window.totals;
  f.duration = in.window.duration();
  f.count_start = in.table_start.count;
  f.count_end = in.window.table.count;
  f.max = in.window.table.max;
  f.buckets = in.window.table.buckets;
  f.peak = std::max({in.peak_count.value_or(0), f.count_start.value_or(0), f.count_end.value_or(0)});
  f.early_drop = t.drops.early_drop;
  f.chaintoolong = t.drops.chaintoolong;
  f.table_full = t.drops.table_full;
  // Without conntrack probes, derive() itself reads table_full from the kernel's `drop` counter.
  f.table_full_from_kernel_drop = f.table_full && !in.obs.conntrack_points;
  if (!f.table_full && in.kernel_drop) {
    f.table_full = in.kernel_drop;
    f.table_full_from_kernel_drop = true;
  }
  if (t.detail) f.detail = &*t.detail;

  if (f.count_start && f.count_end && f.duration > 0)
    f.growth_per_s = (static_cast<double>(*f.count_end) - static_cast<double>(*f.count_start)) / f.duration;
  if (f.count_end && f.max && *f.max > 0) {
    f.fill = ratio(*f.count_end, *f.max);
    if (*f.count_end >= *f.max)
      f.time_to_full_s = 0.0;
    else if (f.growth_per_s && *f.growth_per_s > 0)
      f.time_to_full_s = static_cast<double>(*f.max - *f.count_end) / *f.growth_per_s;
  }
  f.pressure = positive(f.table_full) || positive(f.early_drop) || (f.fill && *f.fill >= kHighFill) ||
               (f.time_to_full_s && *f.time_to_full_s < kSoonFull_s);

  // A bigger max is proposed when the table is under pressure, or to put a bound on an unlimited one.
  const bool unlimited = f.max && *f.max == 0;
  if (f.max && f.buckets && (f.pressure || unlimited)) {
    Proposal p;
    // Entries this window wanted: the most it held, plus each refused new flow, plus each evicted one.
    p.wanted = f.peak + f.table_full.value_or(0) + f.early_drop.value_or(0);
    // Twice that, so the table runs at most half full; at least double a limit that was hit.
    p.max = next_power_of_two(std::max<uint64_t>(2 * p.wanted, 2 * *f.max));
    if (unlimited) p.max = std::max(p.max, *f.buckets);
    const auto& sys = in.system;
    if (sys.slab_object_size && sys.ram_bytes) {
      auto cap = static_cast<double>(*sys.ram_bytes) * kRamShareCap;
      auto cost = [&](uint64_t m) {
        return static_cast<double>(table_memory_bytes(m, recommend_buckets(m, *f.buckets), *sys.slab_object_size));
      };
      while (cost(p.max) > cap && p.max / 2 > *f.max) {
        p.max /= 2;
        p.capped_by_ram = true;
      }
    }
    p.buckets = recommend_buckets(p.max, *f.buckets);
    if (sys.slab_object_size) p.memory_bytes = table_memory_bytes(p.max, p.buckets, *sys.slab_object_size);
    f.proposal = p;
  }
  return f;
}

// The commands that apply a proposal (max, and buckets when they grow).
void add_proposal_fixes(const Facts& f, ConntrackBuild build, Finding& finding) {
  const auto& p = *f.proposal;
  finding.fix_now.push_back(sysctl_now("max", p.max));
  const bool grow_buckets = p.buckets > f.buckets.value_or(0);
  if (grow_buckets) finding.fix_now.push_back(hashsize_now(p.buckets));
  finding.fix_persistent = sysctl_persistent({{"max", p.max}}, build);
  if (grow_buckets)
    for (auto& line : hashsize_persistent(p.buckets, build)) finding.fix_persistent.push_back(line);
}

json proposal_json(const std::optional<Proposal>& p) {
  if (!p) return nullptr;
  return {{"max", p->max},
          {"buckets", p->buckets},
          {"memory_bytes", value(p->memory_bytes)},
          {"wanted_entries", p->wanted},
          {"capped_by_ram", p->capped_by_ram}};
}

// ---- rules ----------------------------------------------------------------------------------------

void rule_table_fill(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  if (!f.count_end || !f.max) return;
  Finding x;
  x.id = "table_fill";
  const bool unlimited = *f.max == 0;
  std::string ttf = "not growing";
  if (f.time_to_full_s) ttf = *f.time_to_full_s == 0 ? "full now" : human_seconds(*f.time_to_full_s);
  if (unlimited) {
    x.severity = Severity::warning;
    x.title = "nf_conntrack_max = 0: the table has no limit";
    x.measured = fmt::format("count {} with no limit, net growth {:+.1f} entries/s over {:.1f} s",
                             *f.count_end, f.growth_per_s.value_or(0), f.duration);
    x.why =
        "With nf_conntrack_max = 0 the kernel never refuses or evicts an entry: a flood or a leak grows "
        "the table until kernel memory runs out, instead of dropping new flows at a known bound.";
  } else {
    const bool full = *f.count_end >= *f.max;
    // Critical only for what was seen; a time to full is a forecast from one window.
    if (full || positive(f.table_full))
      x.severity = Severity::critical;
    else if (f.pressure)
      x.severity = Severity::warning;
    x.title = full ? fmt::format("table full: {} of {} entries", *f.count_end, *f.max)
                   : fmt::format("table {:.1f}% full, time to full: {}", 100 * *f.fill, ttf);
    x.measured = fmt::format(
        "count {} (this network namespace: max applies to each) of max {} ({:.1f}%) at the end of the "
        "{:.1f} s window ({} at its start, peak {}); net "
        "growth {:+.1f} entries/s; time to full: {}",
        *f.count_end, *f.max, 100 * *f.fill, f.duration, text(f.count_start), f.peak,
        f.growth_per_s.value_or(0), ttf);
    x.why =
        "At nf_conntrack_max, a new flow gets an entry only if early_drop can evict one that never saw a "
        "reply; otherwise its packet is dropped (\"nf_conntrack: table full, dropping packet\"): new "
        "connections fail while established ones keep working. Time to full extrapolates the window's "
        "net growth (inserts minus expiries), which levels off once expiries catch up.";
  }
  if (f.proposal) {
    const auto& p = *f.proposal;
    x.why += fmt::format(
        " Proposed max {}: twice the {} entries this window wanted (peak {} + {} refused + {} evicted), "
        "rounded up to a power of two so the table runs at most half full{}; its memory is in the "
        "`memory` finding.",
        p.max, p.wanted, f.peak, f.table_full.value_or(0), f.early_drop.value_or(0),
        p.capped_by_ram ? ", but capped so a full table stays under a quarter of RAM" : "");
    add_proposal_fixes(f, in.system.build, x);
  }
  x.evidence = {{"count", *f.count_end},
                {"count_start", value(f.count_start)},
                {"peak_count", f.peak},
                {"max", *f.max},
                {"fill", value(f.fill)},
                {"net_growth_per_s", value(f.growth_per_s)},
                {"time_to_full_s", value(f.time_to_full_s)},
                {"table_full_drops", value(f.table_full)},
                {"proposed", proposal_json(f.proposal)}};
  d.findings.push_back(std::move(x));
}

void rule_memory(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  const auto& sys = in.system;
  if (!sys.slab_object_size || !f.max || !f.buckets) return;
  const uint64_t object = *sys.slab_object_size;
  Finding x;
  x.id = "memory";
  auto share = [&](uint64_t bytes) -> std::optional<double> {
    if (!sys.ram_bytes || *sys.ram_bytes == 0) return std::nullopt;
    return ratio(bytes, *sys.ram_bytes);
  };
  auto share_text = [&](uint64_t bytes) {
    auto s = share(bytes);
    return s ? fmt::format(" ({:.1f}% of RAM)", 100 * *s) : std::string();
  };
  const uint64_t buckets_bytes = table_memory_bytes(0, *f.buckets, object);
  std::optional<uint64_t> at_max;
  if (*f.max > 0) at_max = table_memory_bytes(*f.max, *f.buckets, object);
  x.title = f.proposal && f.proposal->memory_bytes
                ? fmt::format("max {} would cost {} of kernel memory when full", f.proposal->max,
                              human_bytes(static_cast<double>(*f.proposal->memory_bytes)))
                : fmt::format("a full table costs {} of kernel memory",
                              at_max ? human_bytes(static_cast<double>(*at_max)) : "an unbounded amount");
  x.measured = fmt::format("{} bytes per entry ({}), {} buckets × 8 bytes = {}; now: {} entries = {}", object,
                           sys.slab_object_size_source, *f.buckets, human_bytes(static_cast<double>(buckets_bytes)),
                           text(f.count_end),
                           human_bytes(static_cast<double>(f.count_end.value_or(0) * object)));
  if (at_max)
    x.measured += fmt::format("; full at max {}: {}{}", *f.max, human_bytes(static_cast<double>(*at_max)),
                              share_text(*at_max));
  if (f.proposal && f.proposal->memory_bytes)
    x.measured += fmt::format("; proposed max {} with {} buckets: {} × {} + {} × 8 = {} bytes ({}){}",
                              f.proposal->max, f.proposal->buckets, f.proposal->max, object,
                              f.proposal->buckets, *f.proposal->memory_bytes,
                              human_bytes(static_cast<double>(*f.proposal->memory_bytes)),
                              share_text(*f.proposal->memory_bytes));
  x.why =
      "Every entry is one object of the nf_conntrack slab and the hash table is one 8-byte head per "
      "bucket: kernel memory that cannot be swapped. This is a floor: extensions (NAT, accounting, "
      "timestamps, labels) are allocated separately per entry.";
  if (*f.max == 0) {
    x.severity = Severity::warning;
    x.why += " With nf_conntrack_max = 0 nothing bounds it.";
  } else if (auto s = share(*at_max); s && *s > kRamShareCap) {
    x.severity = Severity::warning;
    x.why += " A full table at the current max would take more than a quarter of RAM.";
  }
  x.evidence = {{"slab_object_size", object},
                {"slab_object_size_source", sys.slab_object_size_source},
                {"ram_bytes", value(sys.ram_bytes)},
                {"buckets", *f.buckets},
                {"max", *f.max},
                {"memory_at_max_bytes", value(at_max)},
                {"proposed", proposal_json(f.proposal)}};
  d.findings.push_back(std::move(x));
}

void rule_chain_length(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  if (!f.buckets || *f.buckets == 0) return;
  const auto& t = in.window.totals;
  const auto buckets = static_cast<double>(*f.buckets);
  std::optional<Histogram> chain;
  if (t.chain && t.chain->count()) chain = t.chain;
  // Each entry is hashed twice (original and reply direction), and the walk at insert counts the new
  // entry itself: uniform hashing gives 1 + 2 × count / buckets.
  std::optional<double> expected_now, expected_full;
  if (f.count_start && f.count_end)
    expected_now = 1 + 2 * (static_cast<double>(*f.count_start + *f.count_end) / 2) / buckets;
  if (f.max && *f.max > 0) expected_full = 2 * static_cast<double>(*f.max) / buckets;

  const bool limit_exists = in.obs.kernel_has_chaintoolong;
  Severity severity = Severity::info;
  bool fire = false;
  // Critical when inserts are refused, or are about to be: the measured p99, or at the current count
  // the average chain, at the limit's floor.
  if (positive(f.chaintoolong) ||
      (limit_exists && chain && chain->percentile(0.99) >= kChainLimitFloor) ||
      (limit_exists && expected_now && *expected_now >= kChainLimitFloor)) {
    severity = Severity::critical;
    fire = true;
  } else if ((chain && static_cast<double>(chain->percentile(0.99)) > kLongChain) ||
             (expected_full && *expected_full > kLongChain)) {
    severity = Severity::warning;
    fire = true;
  } else if (chain && expected_now && chain->mean() > 2 * *expected_now + 2) {
    fire = true;  // longer than this netns's count implies: other namespaces share the table
  }
  if (!fire) return;

  uint64_t target_max = f.proposal ? f.proposal->max : f.max.value_or(0);
  if (target_max == 0) target_max = f.peak;  // unlimited: size for what it held
  const uint64_t recommended = recommend_buckets(target_max, *f.buckets);

  Finding x;
  x.id = "chain_length";
  x.severity = severity;
  if (chain)
    x.title = fmt::format("hash chains p99 ≤ {} at insert with {} buckets (expected about {:.1f})",
                          chain->percentile(0.99), *f.buckets, expected_now.value_or(0));
  else
    x.title = fmt::format("{} buckets for max {}: a full table averages {:.0f} entries per chain", *f.buckets,
                          text(f.max), expected_full.value_or(0));
  std::string measured;
  if (chain)
    // Percentiles are histogram slot bounds (exact below 32, then [32, 63], [64, 127], ...).
    measured = fmt::format("chain length at insert over {} inserts: mean {:.1f}, p50 ≤ {}, p99 ≤ {}, max {}; ",
                           chain->count(), chain->mean(), chain->percentile(0.5), chain->percentile(0.99),
                           text(t.chain_max));
  else if (!in.obs.conntrack_points)
    measured = fmt::format("chain lengths not measured ({} mode has no insert probe); ", to_string(in.mode));
  else
    measured = "no insert in the window, so no chain length measured; ";
  measured += fmt::format("count {} in {} buckets implies about {:.1f} at insert", text(f.count_end), *f.buckets,
                          expected_now.value_or(0));
  if (expected_full) measured += fmt::format(", {:.1f} when full at max {}", *expected_full, *f.max);
  if (f.chaintoolong) measured += fmt::format("; inserts refused for chain length: {}", *f.chaintoolong);
  x.measured = measured;
  x.why = fmt::format(
      "Every packet's lookup walks its bucket's chain, and each entry sits in two buckets (original and "
      "reply direction). {}Recommended {} buckets: the next power of two at or above max {}, the "
      "kernel's own default ratio since 5.15 (commit d532bcd0b269, \"netfilter: conntrack: sanitize "
      "table size default settings\"), which keeps a full table near 2 entries per chain; it costs {} "
      "of kernel memory. Resizing rehashes every entry under the table lock: a short stall, best "
      "done off-peak.",
      limit_exists ? "Since 5.15 (commit d7e7747ac5c2) an insert into a chain longer than a random "
                     "limit in [50, 79] is refused and its packet dropped (chaintoolong). "
                   : "",
      recommended, target_max, human_bytes(static_cast<double>(table_memory_bytes(0, recommended, 0))));
  if (chain && expected_now && chain->mean() > 2 * *expected_now + 2)
    x.why += " Chains are longer than this namespace's count implies: the hash table is shared by every "
             "network namespace, so entries elsewhere lengthen these chains too.";
  if (recommended > *f.buckets) {
    x.fix_now.push_back(hashsize_now(recommended));
    x.fix_persistent = hashsize_persistent(recommended, in.system.build);
  }
  x.evidence = {{"chain_p50", chain ? json(chain->percentile(0.5)) : json(nullptr)},
                {"chain_p99", chain ? json(chain->percentile(0.99)) : json(nullptr)},
                {"chain_mean", chain ? json(chain->mean()) : json(nullptr)},
                {"chain_max", chain ? value(t.chain_max) : json(nullptr)},
                {"expected_at_insert", value(expected_now)},
                {"expected_when_full", value(expected_full)},
                {"chaintoolong", value(f.chaintoolong)},
                {"buckets", *f.buckets},
                {"max", value(f.max)},
                {"recommended_buckets", recommended}};
  d.findings.push_back(std::move(x));
}

struct DropCause {
  const char* id;
  Severity severity;
  const char* title;
  const char* why;
};

void rule_drops(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  const auto& drops = in.window.totals.drops;
  // insert_failed also counts chaintoolong refusals: only the remainder is a cause of its own.
  Count other_insert_failed;
  if (drops.insert_failed)
    other_insert_failed = *drops.insert_failed - std::min(*drops.insert_failed, f.chaintoolong.value_or(0));
  const std::pair<DropCause, Count> causes[] = {
      {{"drop_table_full", Severity::critical, "new flows dropped: table full",
        "The table was at nf_conntrack_max and early_drop found no entry to evict (they were all "
        "ASSURED: replied, established): the first packet of each new flow was dropped. Raise the max "
        "(table_fill), shorten timeouts, or NOTRACK stateless traffic."},
       f.table_full},
      {{"drop_alloc_failed", Severity::critical, "entry allocations failed (not table full)",
        "The slab allocation of a new entry failed: kernel memory pressure. The packet was dropped."},
       drops.alloc_failed},
      {{"drop_chaintoolong", Severity::critical, "inserts refused: hash chain too long",
        "Since 5.15 the kernel refuses an insert into a chain longer than a random limit in [50, 79] "
        "and drops the packet: too few buckets for the entries (see chain_length)."},
       f.chaintoolong},
      {{"drop_early_drop", Severity::warning, "entries evicted to make room (early_drop)",
        "The table reached nf_conntrack_max and the kernel evicted entries that never saw a reply to "
        "admit new flows: the table is at its limit and half-open flows (unanswered UDP, SYNs) are "
        "lost first. Raise the max (table_fill)."},
       f.early_drop},
      {{"drop_insert_failed", Severity::warning, "inserts failed (races, not chain length)",
        "Confirming an entry failed for a reason other than chain length: a clash with an entry another "
        "CPU inserted for the same tuple that could not be resolved, or an entry that died first. "
        "Typical for parallel UDP from one socket (DNS A and AAAA queries) through NAT; the packet is "
        "dropped and the application retries."},
       other_insert_failed},
      {{"drop_clash_resolve", Severity::info, "insert clashes resolved (packets kept)",
        "Two CPUs created an entry for the same flow at once and the kernel kept the packet by merging "
        "them: harmless, a sign of parallel UDP on one tuple."},
       drops.clash_resolve},
      {{"drop_invalid", Severity::info, "packets conntrack could not classify (invalid)",
        "Packets conntrack could not parse or that fell outside the TCP window; they are dropped only "
        "where a rule drops `ct state invalid`. To see them in dmesg: `sysctl -w "
        "net.netfilter.nf_conntrack_log_invalid=255` (set it back to 0 afterwards)."},
       drops.invalid},
  };
  for (const auto& [cause, count] : causes) {
    if (!positive(count)) continue;
    Finding x;
    x.id = cause.id;
    x.severity = cause.severity;
    auto rate = in.window.rate(count);
    x.title = fmt::format("{}: {}", cause.title, *count);
    x.measured = fmt::format("{} in {:.1f} s ({:.1f}/s)", *count, f.duration, rate.value_or(0));
    std::string source = "probe";
    if (std::string(cause.id) == "drop_table_full" && f.table_full_from_kernel_drop) {
      source = "kernel drop counter";
      x.measured += " from the kernel's `drop` counter (table full, or an allocation failure)";
    } else if (!in.obs.conntrack_points) {
      source = "kernel statistics";
      x.measured += " from the kernel's statistics for this network namespace";
    }
    x.why = cause.why;
    const std::string id = cause.id;
    if ((id == "drop_table_full" || id == "drop_early_drop") && f.proposal)
      add_proposal_fixes(f, in.system.build, x);
    x.evidence = {{"count", *count}, {"per_s", value(rate)}, {"source", source}};
    d.findings.push_back(std::move(x));
  }
}

void rule_tcp_established_timeout(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  auto timeout = sysctl(in, "tcp_timeout_established");
  if (!timeout || *timeout < kLongEstablished_s) return;
  std::optional<Histogram> tcp_life;
  if (f.detail && f.detail->lifetime[CTBPF_PROTO_TCP].count()) tcp_life = f.detail->lifetime[CTBPF_PROTO_TCP];
  uint64_t proposal = kEstablishedFloor_s;
  if (tcp_life) {
    // Twice the longest observed connection life (p99), in whole hours: the timeout is idle time, so
    // this keeps every connection seen here tracked with room to spare.
    uint64_t p99_s = (tcp_life->percentile(0.99) + 999) / 1000;
    proposal = std::max(proposal, (2 * p99_s + 3599) / 3600 * 3600);
  }
  if (*timeout <= 4 * proposal) return;

  // The live ESTABLISHED entries and how long each has gone without a packet (the dump at the window's
  // end): those idle beyond the proposal are slots this timeout alone keeps, whatever lifetimes say.
  const IdleStats* idle = nullptr;
  if (in.idle) idle = &in.idle->by_tcp_state[TCP_CONNTRACK_ESTABLISHED];
  const uint64_t live = idle ? idle->count() : 0;
  const uint64_t stale = idle ? idle_beyond(*idle, proposal * 1000) : 0;
  const bool stale_fills =
      stale > 0 && f.count_end && static_cast<double>(stale) >= kStaleTableShare * static_cast<double>(*f.count_end);

  Finding x;
  x.id = "tcp_timeout_established";
  x.severity = f.pressure || stale_fills ? Severity::warning : Severity::info;
  x.title = fmt::format("an idle established TCP entry is kept {} ({} s)", human_seconds(static_cast<double>(*timeout)),
                        *timeout);
  if (stale)
    x.title += fmt::format(": at least {} live ones idle over {}", stale, human_seconds(static_cast<double>(proposal)));
  Count established_deaths;
  if (f.detail) established_deaths = f.detail->tcp_deaths_by_state[TCP_CONNTRACK_ESTABLISHED];
  if (tcp_life)
    x.measured = fmt::format(
        "nf_conntrack_tcp_timeout_established = {} s; TCP entries that ended in the window lived p50 {} "
        "ms, p99 {} ms ({} sampled); {} died while still ESTABLISHED",
        *timeout, tcp_life->percentile(0.5), tcp_life->percentile(0.99), tcp_life->count(),
        text(established_deaths));
  else
    x.measured = fmt::format("nf_conntrack_tcp_timeout_established = {} s; {}", *timeout,
                             f.detail ? "no TCP entry ended in the window"
                                      : "lifetimes not measured (tracepoint mode has no destroy probe)");
  if (!in.idle)
    x.measured += "; idle times not measured (no ctnetlink dump)";
  else if (!live)
    x.measured += "; no live ESTABLISHED entry with a measurable idle time";
  else
    x.measured += fmt::format("; live ESTABLISHED entries idle (time since their last packet): {}; at least {} "
                              "({:.0f}%) idle longer than the proposed {} s",
                              idle_text(*idle), stale, 100 * ratio(stale, live), proposal);
  x.why = fmt::format(
      "The timeout is how long an ESTABLISHED entry survives without a packet: a peer that vanished "
      "without FIN or RST (crash, mobile client, a NAT box upstream forgetting it) holds its slot that "
      "long. Proposed {} s: at least 3 h, above Linux's default TCP keepalive idle time (7200 s) so "
      "idle connections that keep alive stay tracked{}. Lifetimes only cover connections that ended in "
      "the window; idle times (the timeout minus the time an entry has left, from a ctnetlink dump at "
      "the window's end) show the live entries sitting silent, and those idle beyond the proposal are "
      "what it would free now. With NAT, keep it above your longest idle connection that must survive: "
      "an expired entry breaks it.",
      proposal, tcp_life ? ", and at least twice the longest connection life seen here" : "");
  x.fix_now = {sysctl_now("tcp_timeout_established", proposal)};
  x.fix_persistent = sysctl_persistent({{"tcp_timeout_established", proposal}}, in.system.build);
  x.evidence = {{"timeout_s", *timeout},
                {"proposed_s", proposal},
                {"tcp_lifetime_p50_ms", tcp_life ? json(tcp_life->percentile(0.5)) : json(nullptr)},
                {"tcp_lifetime_p99_ms", tcp_life ? json(tcp_life->percentile(0.99)) : json(nullptr)},
                {"tcp_deaths_established", value(established_deaths)},
                {"established_live", in.idle ? json(live) : json(nullptr)},
                {"established_idle_p50_ms", live ? json(idle->histogram().percentile(0.5)) : json(nullptr)},
                {"established_idle_p99_ms", live ? json(idle->histogram().percentile(0.99)) : json(nullptr)},
                {"established_idle_max_ms", live ? json(idle->max_ms) : json(nullptr)},
                {"established_idle_beyond_proposed", in.idle ? json(stale) : json(nullptr)}};
  d.findings.push_back(std::move(x));
}

// New UDP flows per second and the entries they hold by waiting out udp_timeout (Little's law:
// entries = arrival rate × time each stays, and every entry stays at least the timeout).
struct UdpLoad {
  uint64_t inserts = 0, all_inserts = 0;
  double per_s = 0, share = 0, held = 0;
};

std::optional<UdpLoad> udp_load(const DoctorInput& in, const Facts& f) {
  auto timeout = sysctl(in, "udp_timeout");
  if (!f.detail || !timeout || f.duration <= 0) return std::nullopt;
  UdpLoad u;
  u.inserts = f.detail->inserts_by_proto[CTBPF_PROTO_UDP];
  for (auto n : f.detail->inserts_by_proto) u.all_inserts += n;
  if (u.all_inserts == 0) return std::nullopt;
  u.per_s = static_cast<double>(u.inserts) / f.duration;
  u.share = ratio(u.inserts, u.all_inserts);
  u.held = u.per_s * static_cast<double>(*timeout);
  return u;
}

// The table's capacity the UDP entries are compared with (the count when unlimited).
double capacity(const Facts& f) {
  if (f.max && *f.max > 0) return static_cast<double>(*f.max);
  return static_cast<double>(std::max<uint64_t>(f.peak, 1));
}

void rule_udp_timeout(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  auto u = udp_load(in, f);
  auto timeout = sysctl(in, "udp_timeout");
  if (!u || !timeout || *timeout <= kUdpTimeoutProposal_s || u->held < 0.1 * capacity(f)) return;
  std::optional<Histogram> udp_life;
  if (f.detail->lifetime[CTBPF_PROTO_UDP].count()) udp_life = f.detail->lifetime[CTBPF_PROTO_UDP];
  Finding x;
  x.id = "udp_timeout";
  x.severity = f.pressure ? Severity::warning : Severity::info;
  x.title = fmt::format("unanswered UDP entries wait {} s: about {:.0f} entries at {:.0f} new UDP flows/s",
                        *timeout, u->held, u->per_s);
  x.measured = fmt::format("{} UDP inserts in {:.1f} s ({:.0f}/s) × nf_conntrack_udp_timeout {} s ≈ {:.0f} "
                           "entries, {:.0f}% of {}",
                           u->inserts, f.duration, u->per_s, *timeout, u->held, 100 * u->held / capacity(f),
                           f.max && *f.max ? fmt::format("max {}", *f.max) : "the table");
  if (udp_life)
    x.measured += fmt::format("; UDP entries that ended lived p50 {} ms, p99 {} ms", udp_life->percentile(0.5),
                              udp_life->percentile(0.99));
  const IdleStats* udp_idle = nullptr;
  if (in.idle && in.idle->by_proto[CTBPF_PROTO_UDP].count()) udp_idle = &in.idle->by_proto[CTBPF_PROTO_UDP];
  if (udp_idle) x.measured += "; live UDP entries idle (time since their last packet): " + idle_text(*udp_idle);
  x.why = fmt::format(
      "A UDP entry stays nf_conntrack_udp_timeout seconds after its last packet while it has seen no "
      "reply (nf_conntrack_udp_timeout_stream once it has): one-shot request/response traffic such as "
      "DNS is idle for almost all of that. {} s still covers a retry; a UDP flow silent for longer loses "
      "its entry (and its NAT mapping).",
      kUdpTimeoutProposal_s);
  x.fix_now = {sysctl_now("udp_timeout", kUdpTimeoutProposal_s)};
  x.fix_persistent = sysctl_persistent({{"udp_timeout", kUdpTimeoutProposal_s}}, in.system.build);
  x.evidence = {{"udp_timeout_s", *timeout},
                {"proposed_s", kUdpTimeoutProposal_s},
                {"udp_inserts", u->inserts},
                {"udp_inserts_per_s", u->per_s},
                {"entries_held_estimate", u->held},
                {"udp_lifetime_p50_ms", udp_life ? json(udp_life->percentile(0.5)) : json(nullptr)},
                {"udp_idle_p50_ms", udp_idle ? json(udp_idle->histogram().percentile(0.5)) : json(nullptr)},
                {"udp_idle_p99_ms", udp_idle ? json(udp_idle->histogram().percentile(0.99)) : json(nullptr)}};
  d.findings.push_back(std::move(x));
}

// The UDP destination ports that made at least a tenth of UDP inserts (at most five), busiest first.
std::vector<PortCount> busy_udp_ports(const DoctorInput& in) {
  std::vector<PortCount> udp;
  uint64_t total = 0;
  if (in.top_ports)
    for (const auto& p : *in.top_ports)
      if (p.l4 == 17) {
        udp.push_back(p);
        total += p.inserts;
      }
  std::erase_if(udp, [&](const PortCount& p) { return p.inserts * 10 < total; });
  if (udp.size() > 5) udp.resize(5);
  return udp;
}

void rule_stateless_udp(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  auto u = udp_load(in, f);
  if (!u || u->share < 0.5 || u->held < 0.05 * capacity(f)) return;
  const auto ports = busy_udp_ports(in);
  Finding x;
  x.id = "stateless_udp";
  x.severity = f.pressure || positive(f.chaintoolong) ? Severity::warning : Severity::info;
  x.title = fmt::format("UDP makes {:.0f}% of new entries: stateless traffic could skip conntrack",
                        100 * u->share);
  std::string port_list;
  for (const auto& p : ports) port_list += fmt::format("{}{} ({} inserts)", port_list.empty() ? "" : ", ", p.port, p.inserts);
  x.measured = fmt::format("{} of {} inserts were UDP ({:.0f}/s); busiest UDP destination ports: {}.", u->inserts,
                           u->all_inserts, u->per_s, port_list.empty() ? "not measured" : port_list);
  x.why =
      "Request/response UDP (DNS, NTP, syslog, statsd) needs no connection state unless it is NATed or "
      "matched by ct state rules: NOTRACK in a raw-priority chain (before conntrack, priority -300) "
      "keeps it out of the table entirely. The commands below do it for DNS (port 53), both directions "
      "and both hooks, for the busiest measured ports (53 when none were measured). Untracked packets "
      "skip NAT and match `ct state untracked`, not `established`: a stateful input filter needs `ct "
      "state untracked accept`.";
  std::string set = "53";
  if (!ports.empty()) {
    set.clear();
    for (const auto& p : ports) set += (set.empty() ? "" : ", ") + std::to_string(p.port);
    if (ports.size() > 1) set = "{ " + set + " }";
  }
  x.fix_now = {
      "nft add table inet no_conntrack",
      "nft add chain inet no_conntrack prerouting '{ type filter hook prerouting priority raw; policy accept; }'",
      "nft add chain inet no_conntrack output '{ type filter hook output priority raw; policy accept; }'",
      fmt::format("nft add rule inet no_conntrack prerouting udp dport {} notrack", set),
      fmt::format("nft add rule inet no_conntrack prerouting udp sport {} notrack", set),
      fmt::format("nft add rule inet no_conntrack output udp dport {} notrack", set),
      fmt::format("nft add rule inet no_conntrack output udp sport {} notrack", set),
  };
  x.fix_persistent = {
      "nft list table inet no_conntrack >> /etc/nftables.conf && systemctl enable nftables  # loaded at boot"};
  x.evidence = {{"udp_inserts", u->inserts},
                {"inserts", u->all_inserts},
                {"udp_share", u->share},
                {"udp_inserts_per_s", u->per_s},
                {"top_ports", nullptr}};
  if (in.top_ports) {
    x.evidence["top_ports"] = json::array();
    for (const auto& p : ports) x.evidence["top_ports"].push_back({{"port", p.port}, {"inserts", p.inserts}});
  }
  d.findings.push_back(std::move(x));
}

// ---- closing TCP states, ICMP and the generic timeout ------------------------------------------------

// Below this many live entries a share says nothing about the table.
constexpr uint64_t kMinEntries = 100;
// The closing (and opening) states fire the rule when they hold this share of the table or its growth.
constexpr double kClosingShare = 0.5;
// ICMP and generic entries are worth a finding from this share of the table on.
constexpr double kMeasurableShare = 0.05;
// Linux's own TIME_WAIT (TCP_TIMEWAIT_LEN, include/net/tcp.h): a translated tuple freed sooner may meet
// a server socket still in TIME_WAIT for it.
constexpr uint64_t kTimeWaitBehindNat_s = 60;

// One state of the rule. open_half: a connection in it may still carry data one way, so an entry that
// expires while it is idle can cut a connection in use, not only a finished one.
struct ClosingState {
  uint8_t state;
  const char* sysctl;
  uint64_t proposal_s;
  bool open_half;
};

constexpr ClosingState kClosingStates[] = {
    {TCP_CONNTRACK_SYN_SENT, "tcp_timeout_syn_sent", 30, true},
    {TCP_CONNTRACK_SYN_RECV, "tcp_timeout_syn_recv", 30, true},
    {TCP_CONNTRACK_FIN_WAIT, "tcp_timeout_fin_wait", 30, true},
    {TCP_CONNTRACK_CLOSE_WAIT, "tcp_timeout_close_wait", 30, true},
    {TCP_CONNTRACK_LAST_ACK, "tcp_timeout_last_ack", 30, false},
    {TCP_CONNTRACK_TIME_WAIT, "tcp_timeout_time_wait", 30, false},
};

std::optional<uint64_t> tcp_sysctl(const DoctorInput& in, const std::string& name) {
  auto it = in.tcp_sysctls.find(name);
  if (it == in.tcp_sysctls.end()) return std::nullopt;
  return it->second;
}

// Why each state's entry lives as long as it does, and what its proposal keeps.
std::string closing_why(const ClosingState& c, uint64_t proposal, const DoctorInput& in) {
  const auto retries2 = tcp_sysctl(in, "tcp_retries2").value_or(15);
  const auto within = retransmissions_within(static_cast<double>(proposal));
  switch (c.state) {
    case TCP_CONNTRACK_SYN_SENT:
      return fmt::format(
          "SYN_SENT: a SYN not answered yet. Linux resends it after 1, 3, 7, 15, 31 and 63 s "
          "(tcp_syn_retries 6); an answer arriving more than {} s after the SYN that made the entry finds "
          "none (a later SYN makes a new one). Entries idle here are mostly unanswered probes or dead "
          "destinations.",
          proposal);
    case TCP_CONNTRACK_SYN_RECV:
      return fmt::format(
          "SYN_RECV: a SYN answered, the handshake's last ACK not seen yet: half-open connections (a SYN "
          "flood, a client that vanished). Linux resends a SYN-ACK after 1, 3, 7, 15 and 31 s "
          "(tcp_synack_retries 5); {} s covers the first four.",
          proposal);
    case TCP_CONNTRACK_FIN_WAIT:
      return fmt::format(
          "FIN_WAIT: a FIN not acknowledged yet. The endpoint retransmits it with a doubling timeout (200 ms "
          "first) up to tcp_retries2 = {} times, giving up after {:.1f} s; {} s covers {} retransmissions, "
          "so an entry idle longer waits for a peer that is gone. The other direction may still send data.",
          retries2, retransmission_give_up_s(retries2), proposal, within);
    case TCP_CONNTRACK_CLOSE_WAIT:
      return "CLOSE_WAIT: one side sent its FIN, the other has not: a program that never closes its socket "
             "(it never sends its FIN) holds the entry until the timeout. But a half-closed connection may "
             "still carry data the other way: a long-poll client that shut down its sending side waits "
             "here for its answer.";
    case TCP_CONNTRACK_LAST_ACK:
      return fmt::format(
          "LAST_ACK: both FINs sent, the last ACK missing; the FIN is retransmitted up to tcp_retries2 = {} "
          "times ({:.1f} s), {} within {} s. No data can flow any more.",
          retries2, retransmission_give_up_s(retries2), within, proposal);
    case TCP_CONNTRACK_TIME_WAIT:
      return fmt::format(
          "TIME_WAIT: both sides closed; the entry waits 2 MSL (Linux's MSL is 60 s) so a late segment or a "
          "retransmitted FIN of the old connection still finds it. PAWS (TCP timestamps, "
          "net.ipv4.tcp_timestamps = {}) makes the endpoints drop old segments and tcp_tw_reuse (= {}) lets "
          "them reuse the tuple, and a new SYN on the tuple replaces a TIME_WAIT entry at once: the entry "
          "need not outlive the endpoints' own TIME_WAIT (60 s). No data can flow any more (but a FIN retransmitted "
          "in CLOSE_WAIT moves a half-closed connection here too).",
          text(tcp_sysctl(in, "tcp_timestamps")), text(tcp_sysctl(in, "tcp_tw_reuse")));
  }
  return "";
}

void rule_tcp_closing_states(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  if (!in.idle || in.idle->entries == 0) return;
  const auto& idle = *in.idle;
  uint64_t closing = 0;
  for (const auto& c : kClosingStates) closing += idle.live_by_tcp_state[c.state];
  const double share = ratio(closing, idle.entries);

  // Growth: the same dump at the window's start, when neither dump stopped at its cap.
  std::optional<int64_t> growth, closing_growth;
  std::optional<double> growth_share;
  if (in.idle_start && !in.idle_start->capped() && !idle.capped()) {
    growth = static_cast<int64_t>(idle.entries) - static_cast<int64_t>(in.idle_start->entries);
    closing_growth = 0;
    for (const auto& c : kClosingStates)
      *closing_growth += static_cast<int64_t>(idle.live_by_tcp_state[c.state]) -
                         static_cast<int64_t>(in.idle_start->live_by_tcp_state[c.state]);
    if (*growth > 0) growth_share = static_cast<double>(*closing_growth) / static_cast<double>(*growth);
  }
  const bool by_table = closing >= kMinEntries && share >= kClosingShare;
  const bool by_growth = growth && *growth >= static_cast<int64_t>(kMinEntries) && growth_share &&
                         *growth_share >= kClosingShare;
  if (!by_table && !by_growth) return;

  const bool nat_time_wait = idle.nat_by_tcp_state[TCP_CONNTRACK_TIME_WAIT] > 0;
  const auto timestamps = tcp_sysctl(in, "tcp_timestamps");
  const bool no_paws = timestamps && *timestamps == 0;
  std::optional<Histogram> tcp_life;
  if (f.detail && f.detail->lifetime[CTBPF_PROTO_TCP].count()) tcp_life = f.detail->lifetime[CTBPF_PROTO_TCP];

  Finding x;
  x.id = "tcp_closing_states";
  std::vector<std::pair<std::string, uint64_t>> settings;
  std::string per_state, warnings, whys;
  uint64_t free_total = 0, cut_total = 0, nat_total = 0;
  json states = json::object();
  for (const auto& c : kClosingStates) {
    const std::string name = tcp_state_name(c.state);
    const uint64_t live = idle.live_by_tcp_state[c.state];
    const uint64_t nat = idle.nat_by_tcp_state[c.state];
    nat_total += nat;
    const IdleStats& stats = idle.by_tcp_state[c.state];
    const auto timeout = sysctl(in, c.sysctl);
    uint64_t proposal = c.proposal_s;
    if (c.state == TCP_CONNTRACK_TIME_WAIT && nat_time_wait) proposal = kTimeWaitBehindNat_s;
    // What the proposal would not hold: the live entries idle at least that long (exact per second).
    uint64_t would_free = 0, would_cut = 0;
    const bool shorter = timeout && *timeout > proposal;
    if (shorter) would_free = stats.at_least_s(proposal).value_or(idle_beyond(stats, proposal * 1000));
    if (c.open_half) would_cut = would_free;
    std::string withheld;
    if (would_cut > 0)
      withheld = fmt::format(
          "{}: {} live entries idle {} s or more (max {} s) would be gone under {} s, and a connection in "
          "{} may still be in use: if they are (a half-closed long-poll waiting for its answer, a slow "
          "peer), they would be cut, through NAT or a rule dropping `ct state invalid`. Not proposed; if "
          "they are leaks (`ss -tan state {}` on the endpoint names the program), fix the program, or set "
          "it knowing it cuts them: {}.",
          name, would_cut, proposal, stats.max_ms / 1000, proposal, name,
          c.state == TCP_CONNTRACK_CLOSE_WAIT ? "close-wait"
          : c.state == TCP_CONNTRACK_FIN_WAIT ? "fin-wait-1"
          : c.state == TCP_CONNTRACK_SYN_RECV ? "syn-recv"
                                              : "syn-sent",
          sysctl_now(c.sysctl, proposal));
    else if (c.state == TCP_CONNTRACK_TIME_WAIT && would_free > 0 && nat_time_wait && no_paws)
      withheld = fmt::format(
          "TIME_WAIT: {} of these entries are NAT'd and this host has no PAWS (net.ipv4.tcp_timestamps = 0): "
          "a translated tuple freed early can be handed to a new connection while a server still holds the "
          "old one in TIME_WAIT, and without timestamps it refuses the new SYN. Not proposed.",
          nat);
    const bool propose = would_free > 0 && withheld.empty();
    if (propose) {
      settings.emplace_back(c.sysctl, proposal);
      free_total += would_free;
    }
    cut_total += would_cut;
    if (!withheld.empty()) warnings += " " + withheld;
    if (live) {
      per_state += fmt::format("{}{} {} ({:.1f}%{}), timeout {} s, idle {}", per_state.empty() ? "" : "; ", name,
                               live, 100 * ratio(live, idle.entries), nat ? fmt::format(", {} NAT'd", nat) : "",
                               text(timeout), stats.count() ? idle_text(stats) : "not estimated");
      if (shorter) per_state += fmt::format(", {} idle {} s or more", would_free, proposal);
      whys += " " + closing_why(c, proposal, in);
    }
    Count deaths;
    if (f.detail) deaths = f.detail->tcp_deaths_by_state[c.state];
    // Little's law: entries held = rate into the state × time in it; the entries that left the state by
    // dying in it (timeout or a new SYN on the tuple) stay at most the proposal each.
    json held_at_proposed = nullptr;
    if (deaths && *deaths > 0 && f.duration > 0)
      held_at_proposed = static_cast<double>(*deaths) / f.duration * static_cast<double>(proposal);
    states[name] = {{"live", live},
                    {"share", ratio(live, idle.entries)},
                    {"nat", nat},
                    {"timeout_s", value(timeout)},
                    {"proposed_s", propose ? json(proposal) : json(nullptr)},
                    {"considered_s", proposal},
                    {"would_free", would_free},
                    {"would_cut", would_cut},
                    {"withheld", !withheld.empty()},
                    {"idle", stats.count() ? idle_stats_json(stats) : json(nullptr)},
                    {"deaths_in_window", value(deaths)},
                    {"held_at_proposed_at_most", held_at_proposed}};
  }

  x.severity = f.pressure || cut_total > 0 ? Severity::warning : Severity::info;
  x.title = fmt::format("{:.0f}% of the table is in closing TCP states ({} of {} entries)", 100 * share, closing,
                        idle.entries);
  if (free_total) x.title += fmt::format(": shorter timeouts would free {}", free_total);
  if (cut_total) x.title += fmt::format("; {} idle half-open connections would be cut", cut_total);
  x.measured = fmt::format("live entries at the window's end (ctnetlink{}): {}", 
                           idle.capped() ? fmt::format(", the first {} only", idle.entries) : "", per_state);
  if (growth)
    x.measured += fmt::format("; the table grew by {:+} entries in the window, closing states by {:+}{}", *growth,
                              *closing_growth,
                              growth_share ? fmt::format(" ({:.0f}%)", 100 * *growth_share) : std::string());
  if (tcp_life)
    x.measured += fmt::format("; TCP entries that ended in the window lived p50 {} ms, p99 {} ms",
                              tcp_life->percentile(0.5), tcp_life->percentile(0.99));
  x.why =
      "Each state's entry stays its timeout after its last packet; shortening it frees the entries idle "
      "longer than the new value. Would-free counts are the live entries idle at least that long now (a "
      "timeout change applies from each entry's next packet: existing ones keep the expiry their last "
      "packet set, so the table shrinks within the old timeout). Idle reads up to 1 s high (ctnetlink "
      "rounds the time left down)." +
      whys;
  if (nat_total)
    x.why += fmt::format(
        " {} of these entries are NAT'd: an entry that expires frees its translated tuple for another "
        "connection, and a server still in TIME_WAIT for it (60 s on Linux) accepts the new SYN only through "
        "PAWS (timestamps on both ends); TIME_WAIT is considered at {} s here, not {} s.",
        nat_total, kTimeWaitBehindNat_s, kClosingStates[5].proposal_s);
  else
    x.why += " None of these entries is NAT'd here; on a NAT gateway, TIME_WAIT stays at least 60 s (a freed "
             "translated tuple may meet a server still in TIME_WAIT, refused without PAWS), and a NAT'd "
             "long-poll that half-closes is cut by a short close_wait.";
  x.why += warnings;
  for (const auto& [name, v] : settings) x.fix_now.push_back(sysctl_now(name, v));
  if (!settings.empty()) x.fix_persistent = sysctl_persistent(settings, in.system.build);
  json proposed = json::object();
  for (const auto& [name, v] : settings) proposed[name] = v;
  x.evidence = {{"entries", idle.entries},
                {"capped", idle.capped()},
                {"closing_live", closing},
                {"closing_share", share},
                {"fired_by_table_share", by_table},
                {"fired_by_growth_share", by_growth},
                {"growth", growth ? json(*growth) : json(nullptr)},
                {"closing_growth", closing_growth ? json(*closing_growth) : json(nullptr)},
                {"closing_growth_share", value(growth_share)},
                {"states", states},
                {"proposed", proposed},
                {"would_free", free_total},
                {"would_cut", cut_total},
                {"tcp_timestamps", value(tcp_sysctl(in, "tcp_timestamps"))},
                {"tcp_tw_reuse", value(tcp_sysctl(in, "tcp_tw_reuse"))},
                {"tcp_retries2", value(tcp_sysctl(in, "tcp_retries2"))},
                {"tcp_lifetime_p50_ms", tcp_life ? json(tcp_life->percentile(0.5)) : json(nullptr)},
                {"tcp_lifetime_p99_ms", tcp_life ? json(tcp_life->percentile(0.99)) : json(nullptr)}};
  d.findings.push_back(std::move(x));
}

// ICMP and the protocols on generic_timeout: entries of one timeout each, proposed shorter when they hold
// a measurable share of the table and some are idle past the proposal.
struct ProtoTimeout {
  const char* id;
  const char* name;
  std::vector<std::string> sysctls;
  uint64_t proposal_s;
  const char* why;
};

void rule_proto_timeout(const DoctorInput& in, const Facts& f, Diagnosis& d, const ProtoTimeout& p, uint64_t live,
                        const IdleStats& stats) {
  if (!in.idle || in.idle->entries == 0) return;
  const double share = ratio(live, in.idle->entries);
  if (live < kMinEntries || share < kMeasurableShare) return;
  std::vector<std::pair<std::string, uint64_t>> settings;
  json timeouts = json::object();
  std::string timeout_text;
  for (const auto& name : p.sysctls) {
    auto t = sysctl(in, name);
    timeouts[name] = value(t);
    timeout_text += fmt::format("{}{} {} s", timeout_text.empty() ? "" : ", ", name, text(t));
    if (t && *t > p.proposal_s) settings.emplace_back(name, p.proposal_s);
  }
  const uint64_t would_free =
      settings.empty() ? 0 : stats.at_least_s(p.proposal_s).value_or(idle_beyond(stats, p.proposal_s * 1000));
  if (would_free == 0) settings.clear();
  Finding x;
  x.id = p.id;
  x.severity = f.pressure ? Severity::warning : Severity::info;
  x.title = fmt::format("{} entries are {:.0f}% of the table ({} of {})", p.name, 100 * share, live,
                        in.idle->entries);
  if (would_free) x.title += fmt::format(": {} s timeouts would free {}", p.proposal_s, would_free);
  x.measured = fmt::format("live {} entries at the window's end: {} ({:.1f}%); {}; idle {}", p.name, live,
                           100 * share, timeout_text, stats.count() ? idle_text(stats) : "not estimated");
  if (!settings.empty())
    x.measured += fmt::format("; {} idle {} s or more", would_free, p.proposal_s);
  x.why = p.why;
  for (const auto& [name, v] : settings) x.fix_now.push_back(sysctl_now(name, v));
  if (!settings.empty()) x.fix_persistent = sysctl_persistent(settings, in.system.build);
  json proposed = json::object();
  for (const auto& [name, v] : settings) proposed[name] = v;
  x.evidence = {{"live", live},
                {"entries", in.idle->entries},
                {"share", share},
                {"timeouts_s", timeouts},
                {"considered_s", p.proposal_s},
                {"proposed", proposed},
                {"would_free", would_free},
                {"idle", stats.count() ? idle_stats_json(stats) : json(nullptr)}};
  d.findings.push_back(std::move(x));
}

void rule_icmp_timeout(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  if (!in.idle) return;
  static const ProtoTimeout icmp{
      "icmp_timeout", "ICMP", {"icmp_timeout", "icmpv6_timeout"}, 10,
      "An ICMP entry (echo and other query/reply pairs) stays icmp_timeout (icmpv6_timeout) after its last "
      "packet, 30 s by default, while a reply comes within a round trip: an entry idle for seconds is a "
      "finished exchange. 10 s still covers a slow reply; a ping whose interval is longer starts a new entry "
      "per echo, which is harmless. ICMP errors (unreachable, TTL exceeded) belong to the connection they "
      "report on (RELATED), not to these entries, and are not affected."};
  rule_proto_timeout(in, f, d, icmp, in.idle->live_by_proto[CTBPF_PROTO_ICMP], in.idle->by_proto[CTBPF_PROTO_ICMP]);
}

void rule_generic_timeout(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  if (!in.idle) return;
  static const ProtoTimeout generic{
      "generic_timeout", "generic-timeout (no tracker of their own: ESP, AH, OSPF, PIM, ...)", {"generic_timeout"},
      120,
      "Protocols conntrack has no tracker for share one timeout, generic_timeout (600 s by default), after "
      "their last packet. 120 s frees the finished ones sooner, but such a flow silent for longer loses its "
      "entry, and through NAT its mapping, and is cut: keep it above the longest silence of any of these "
      "protocols that must pass (an IPsec SA without traffic or dead-peer detection; routing hellos are "
      "seconds apart)."};
  rule_proto_timeout(in, f, d, generic, in.idle->live_generic, in.idle->generic);
}

void list_unmeasured(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  const auto& drops = in.window.totals.drops;
  if (!in.obs.conntrack_points) {
    const std::string why = fmt::format("{} mode has no conntrack probes (fentry and kprobe are unavailable here)",
                                        to_string(in.mode));
    d.unmeasured.push_back({"inserts per second and by protocol", why});
    d.unmeasured.push_back({"chain length at insert", why + "; chain_length is judged from the sysctls only"});
    d.unmeasured.push_back({"entry lifetimes and TCP state at death", why});
    d.unmeasured.push_back({"stateless traffic (stateless_udp, udp_timeout)", why});
  }
  if (f.table_full_from_kernel_drop)
    d.unmeasured.push_back({"drops.table_full, exactly",
                            "read from the kernel's `drop` counter, which also counts allocation failures"});
  else if (!f.table_full)
    d.unmeasured.push_back({"drops.table_full", "neither the early_drop probe nor the kernel's counters answered"});
  const std::pair<const char*, Count> causes[] = {{"drops.early_drop", drops.early_drop},
                                                  {"drops.insert_failed", drops.insert_failed},
                                                  {"drops.chaintoolong", drops.chaintoolong},
                                                  {"drops.clash_resolve", drops.clash_resolve},
                                                  {"drops.invalid", drops.invalid},
                                                  {"drops.alloc_failed", drops.alloc_failed}};
  for (const auto& [name, count] : causes)
    if (!count)
      d.unmeasured.push_back({name, std::string(name) == "drops.chaintoolong" && !in.obs.kernel_has_chaintoolong
                                        ? "this kernel has no chain limit (before 5.15)"
                                        : "this kernel or mode does not count it"});
  if (!in.system.slab_object_size)
    d.unmeasured.push_back({"memory per entry", "/proc/slabinfo and /sys/kernel/slab/nf_conntrack are unreadable"});
  if (!in.system.ram_bytes) d.unmeasured.push_back({"total RAM", "/proc/meminfo is unreadable"});
  if (!in.top_ports)
    d.unmeasured.push_back({"top ports by inserts", "needs the fentry or kprobe family"});
  if (!in.idle) {
    d.unmeasured.push_back({"idle time per protocol and TCP state", "the ctnetlink dump of this network namespace's "
                                                                    "table failed (needs CAP_NET_ADMIN)"});
    d.unmeasured.push_back({"live entries per TCP state and protocol (tcp_closing_states, icmp_timeout, "
                            "generic_timeout)",
                            "the same dump"});
  } else {
    const auto& idle = *in.idle;
    if (idle.capped())
      d.unmeasured.push_back({"idle time of every entry",
                              fmt::format("{} (a bound on the work): the idle times and live counts per state are "
                                          "those of the first {} in hash order",
                                          dump_stopped_text(idle.dump, f.count_end), idle.entries)});
    if (auto n = idle.no_timeout + idle.short_timeout + idle.not_refreshed)
      d.unmeasured.push_back(
          {fmt::format("idle time of {} entries", n),
           fmt::format("{} with no timeout sysctl for their protocol or state (SCTP, DCCP, GRE, SYN_SENT2), {} "
                       "TCP with a time left within the unacknowledged/retransmission timeouts (it may run on "
                       "those), {} offloaded or on a fixed timeout (packets do not refresh it)",
                       idle.no_timeout, idle.short_timeout, idle.not_refreshed)});
  }
}

}  // namespace

Diagnosis diagnose(const DoctorInput& in) {
  Diagnosis d;
  const auto f = derive_facts(in);
  rule_table_fill(in, f, d);
  rule_drops(in, f, d);
  rule_chain_length(in, f, d);
  rule_memory(in, f, d);
  rule_tcp_established_timeout(in, f, d);
  rule_udp_timeout(in, f, d);
  rule_stateless_udp(in, f, d);
  rule_tcp_closing_states(in, f, d);
  rule_icmp_timeout(in, f, d);
  rule_generic_timeout(in, f, d);
  list_unmeasured(in, f, d);
  // Most severe first; within a severity, the rule order above (stable).
  std::stable_sort(d.findings.begin(), d.findings.end(),
                   [](const Finding& a, const Finding& b) { return a.severity < b.severity; });
  return d;
}

json doctor_json(const DoctorInput& in, const Diagnosis& diagnosis) {
  const auto f = derive_facts(in);
  json sysctls = json::object();
  for (const auto& [name, v] : in.sysctls) sysctls[name] = v;
  json findings = json::array();
  for (const auto& x : diagnosis.findings)
    findings.push_back({{"id", x.id},
                        {"severity", to_string(x.severity)},
                        {"title", x.title},
                        {"measured", x.measured},
                        {"evidence", x.evidence},
                        {"why", x.why},
                        {"fix_now", x.fix_now},
                        {"fix_persistent", x.fix_persistent}});
  json unmeasured = json::array();
  for (const auto& u : diagnosis.unmeasured) unmeasured.push_back({{"what", u.what}, {"why", u.why}});
  // Next to lifetime_ms: how long the live entries have gone without a packet.
  json summary = summary_json(in.window, in.mode, in.obs);
  summary["idle_ms"] = in.idle ? idle_json(*in.idle) : json(nullptr);
  return {{"type", "doctor"},
          {"mode", to_string(in.mode)},
          {"duration_s", f.duration},
          {"inputs",
           {{"table",
             {{"count_start", value(f.count_start)},
              {"count", value(f.count_end)},
              {"peak_count", f.peak},
              {"max", value(f.max)},
              {"buckets", value(f.buckets)},
              {"fill", value(f.fill)},
              {"net_growth_per_s", value(f.growth_per_s)},
              {"time_to_full_s", value(f.time_to_full_s)}}},
            {"memory",
             {{"slab_object_size", value(in.system.slab_object_size)},
              {"slab_object_size_source", in.system.slab_object_size_source},
              {"ram_bytes", value(in.system.ram_bytes)},
              {"conntrack", to_string(in.system.build)}}},
            {"kernel_drop", value(in.kernel_drop)},
            // The ctnetlink dumps behind idle_ms, at the window's start and end: entries read, time,
            // and whether a bound stopped them before the end of the table.
            {"dumps",
             {{"start", in.idle_start ? dump_json(in.idle_start->dump) : json(nullptr)},
              {"end", in.idle ? dump_json(in.idle->dump) : json(nullptr)}}},
            {"sysctls", sysctls}}},
          {"summary", summary},
          {"unmeasured", unmeasured},
          {"findings", findings}};
}

std::string doctor_text(const DoctorInput& in, const Diagnosis& diagnosis) {
  const auto f = derive_facts(in);
  std::string out = fmt::format("ctbpf doctor: {:.1f} s observed in {} mode (read-only: nothing was changed)\n",
                                f.duration, to_string(in.mode));
  out += fmt::format("  table {} / max {}, {} buckets, net growth {:+.1f}/s", text(f.count_end), text(f.max),
                     text(f.buckets), f.growth_per_s.value_or(0));
  if (auto r = in.window.rate(in.window.totals.inserts)) out += fmt::format(", {:.0f} inserts/s", *r);
  out += "\n";
  // A dump cut short changes what the idle and per-state figures below mean: said before them.
  if (in.idle && in.idle->capped()) out += "  " + dump_stopped_text(in.idle->dump, f.count_end) + "\n";
  if (f.detail) {
    uint64_t all = 0;
    for (auto n : f.detail->inserts_by_proto) all += n;
    if (all) {
      out += "  inserts by protocol:";
      for (std::size_t i = 0; i < CTBPF_PROTO_MAX; ++i)
        if (f.detail->inserts_by_proto[i])
          out += fmt::format(" {} {:.0f}%", proto_class_name(i), 100 * ratio(f.detail->inserts_by_proto[i], all));
      out += "\n";
    }
  }
  if (in.idle && in.idle->entries) {
    const auto& idle = *in.idle;
    out += fmt::format("  idle since the last packet ({} live entries{}):", idle.entries,
                       idle.capped() ? ", the dump stopped early" : "");
    std::string sep = " ";
    for (std::size_t i = 0; i < CTBPF_PROTO_MAX; ++i)
      if (idle.by_proto[i].count()) {
        out += sep + proto_class_name(i) + " " + idle_text(idle.by_proto[i]);
        sep = "; ";
      }
    out += "\n";
    sep = "  idle by TCP state: ";
    for (std::size_t i = 0; i < CTBPF_TCP_STATES; ++i)
      if (idle.by_tcp_state[i].count()) {
        out += sep + tcp_state_name(i) + " " + idle_text(idle.by_tcp_state[i]);
        sep = "; ";
      }
    if (sep == "; ") out += "\n";
  }
  out += fmt::format("  entry {} ({}), RAM {}, nf_conntrack {}\n",
                     in.system.slab_object_size ? fmt::format("{} bytes", *in.system.slab_object_size) : "-",
                     in.system.slab_object_size_source.empty() ? "unread" : in.system.slab_object_size_source,
                     in.system.ram_bytes ? human_bytes(static_cast<double>(*in.system.ram_bytes)) : "-",
                     in.system.build == ConntrackBuild::module    ? "is a module"
                     : in.system.build == ConntrackBuild::builtin ? "is built in"
                                                                  : "build unknown");
  if (diagnosis.findings.empty()) out += "\nNo findings.\n";
  for (const auto& x : diagnosis.findings) {
    std::string severity = to_string(x.severity);
    std::transform(severity.begin(), severity.end(), severity.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    out += fmt::format("\n[{}] {}: {}\n  measured: {}\n  why: {}\n", severity, x.id, x.title, x.measured, x.why);
    if (!x.fix_now.empty()) {
      out += "  fix now:\n";
      for (const auto& c : x.fix_now) out += "    " + c + "\n";
    }
    if (!x.fix_persistent.empty()) {
      out += "  fix persistently:\n";
      for (const auto& c : x.fix_persistent) out += "    " + c + "\n";
    }
  }
  if (!diagnosis.unmeasured.empty()) {
    out += "\nNot measured here:\n";
    for (const auto& u : diagnosis.unmeasured) out += fmt::format("  {}: {}\n", u.what, u.why);
  }
  return out;
}

}  // namespace ctbpf::core
