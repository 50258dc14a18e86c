#include <doctest/doctest.h>

#include <algorithm>

#include "core/doctor.h"

using namespace ctbpf::core;

namespace {

Observability full_probes() {
  Observability o;
  o.conntrack_points = o.early_drop = o.resolve_clash = o.kernel_has_chaintoolong = true;
  o.netfilter_drop_reason = true;
  return o;
}

Drops no_drops() { return {0, 0, 0, 0, 0, 0, 0}; }

// A healthy fentry-mode window of 10 s: 1000 → 1000 entries of max 65536 in 65536 buckets, no drops.
DoctorInput healthy() {
  DoctorInput in;
  in.mode = Mode::fentry;
  in.obs = full_probes();
  in.window.end_s = 10;
  in.window.totals.inserts = 500;
  in.window.totals.drops = no_drops();
  in.window.totals.chain = Histogram(SlotKind::chain);
  in.window.totals.chain_max = 0;
  in.window.totals.detail = ProbeDetail{};
  in.window.table = {1000, 65536, 65536};
  in.table_start = {1000, 65536, 65536};
  in.peak_count = 1000;
  in.kernel_drop = 0;
  in.sysctls = {{"max", 65536},        {"buckets", 65536},       {"count", 1000},
                {"udp_timeout", 30},   {"udp_timeout_stream", 120}, {"tcp_timeout_established", 7200}};
  in.system.slab_object_size = 256;
  in.system.slab_object_size_source = "/proc/slabinfo";
  in.system.ram_bytes = uint64_t{2} << 30;
  in.system.build = ConntrackBuild::module;
  return in;
}

// Tracepoint mode: no conntrack probes, drop causes from the kernel's counters.
DoctorInput tracepoint(DoctorInput in) {
  in.mode = Mode::tracepoint;
  in.obs = Observability{};
  in.obs.netfilter_drop_reason = true;
  in.obs.kernel_has_chaintoolong = true;
  auto& t = in.window.totals;
  t.inserts.reset();
  t.chain.reset();
  t.chain_max.reset();
  t.detail.reset();
  t.drops.table_full.reset();
  t.drops.alloc_failed.reset();
  return in;
}

Histogram chain_of(std::initializer_list<std::pair<std::size_t, uint64_t>> slots) {
  std::vector<uint64_t> v(slot_count(SlotKind::chain), 0);
  uint64_t sum = 0;
  for (auto [slot, n] : slots) {
    v[slot] += n;
    sum += n * slot_upper_bound(SlotKind::chain, slot);
  }
  return Histogram(SlotKind::chain, v, sum);
}

Histogram lifetime_of(std::size_t slot, uint64_t n) {
  std::vector<uint64_t> v(slot_count(SlotKind::log2), 0);
  v[slot] = n;
  return Histogram(SlotKind::log2, v, n * slot_upper_bound(SlotKind::log2, slot));
}

const Finding* find(const Diagnosis& d, const std::string& id) {
  for (const auto& f : d.findings)
    if (f.id == id) return &f;
  return nullptr;
}

bool unmeasured(const Diagnosis& d, const std::string& what) {
  return std::any_of(d.unmeasured.begin(), d.unmeasured.end(),
                     [&](const Unmeasured& u) { return u.what.find(what) != std::string::npos; });
}

bool has_line(const std::vector<std::string>& lines, const std::string& part) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const std::string& l) { return l.find(part) != std::string::npos; });
}

}  // namespace

TEST_CASE("parsers of /proc/slabinfo and /proc/meminfo") {
  const std::string slabinfo =
      "slabinfo - version: 2.1\n"
      "# name            <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables ...\n"
      "nf_conntrack_expect      0      0    208   19    1 : tunables    0    0    0 : slabdata 0 0 0\n"
      "nf_conntrack         112    176    256   16    1 : tunables    0    0    0 : slabdata     11     11      0\n";
  CHECK(parse_slabinfo_object_size(slabinfo, "nf_conntrack") == 256);
  CHECK(parse_slabinfo_object_size(slabinfo, "nf_conntrack_expect") == 208);
  CHECK_FALSE(parse_slabinfo_object_size(slabinfo, "ip_conntrack").has_value());
  CHECK_FALSE(parse_slabinfo_object_size("", "nf_conntrack").has_value());
  CHECK(parse_meminfo_total("MemTotal:        2014280 kB\nMemFree: 1 kB\n") == uint64_t{2014280} * 1024);
  CHECK_FALSE(parse_meminfo_total("MemFree: 1 kB\n").has_value());
}

TEST_CASE("the arithmetic: powers of two, bucket recommendation, memory of a full table") {
  CHECK(next_power_of_two(0) == 1);
  CHECK(next_power_of_two(1) == 1);
  CHECK(next_power_of_two(4600) == 8192);
  CHECK(next_power_of_two(65536) == 65536);
  CHECK(recommend_buckets(65536, 512) == 65536);
  CHECK(recommend_buckets(100, 512) == 1024);          // the kernel's floor
  CHECK(recommend_buckets(8192, 262144) == 262144);    // never fewer than now
  CHECK(table_memory_bytes(8192, 65536, 256) == 8192 * 256 + 65536 * 8);
}

TEST_CASE("table_fill: a healthy table is one info finding without fixes") {
  auto d = diagnose(healthy());
  auto* f = find(d, "table_fill");
  REQUIRE(f);
  CHECK(f->severity == Severity::info);
  CHECK(f->fix_now.empty());
  CHECK(f->evidence["fill"].get<double>() == doctest::Approx(1000.0 / 65536));
  CHECK(f->evidence["time_to_full_s"].is_null());  // not growing
  CHECK(f->evidence["proposed"].is_null());
  for (const char* id : {"chain_length", "drop_table_full", "udp_timeout", "stateless_udp"})
    CHECK_MESSAGE(find(d, id) == nullptr, id);
}

TEST_CASE("table_fill: time to full at the measured net growth") {
  auto in = healthy();
  in.table_start.count = 1000;
  in.window.table.count = 2000;  // +100/s over 10 s
  in.sysctls["max"] = 10000;
  in.window.table.max = in.table_start.max = 10000;
  auto d = diagnose(in);
  auto* f = find(d, "table_fill");
  REQUIRE(f);
  CHECK(f->evidence["net_growth_per_s"].get<double>() == doctest::Approx(100.0));
  CHECK(f->evidence["time_to_full_s"].get<double>() == doctest::Approx(80.0));
  CHECK(f->severity == Severity::warning);  // full within 80 s, but a forecast: not critical

  in.window.table.max = 400000;  // 3980 s away: more than an hour, and 0.5% full
  d = diagnose(in);
  f = find(d, "table_fill");
  REQUIRE(f);
  CHECK(f->severity == Severity::info);
  in.window.table.max = 300000;  // 2980 s: under an hour
  d = diagnose(in);
  f = find(d, "table_fill");
  REQUIRE(f);
  CHECK(f->severity == Severity::warning);
  CHECK_FALSE(f->evidence["proposed"].is_null());
}

TEST_CASE("table full of assured entries: table_full drops, a proposed max and its memory cost") {
  auto in = healthy();
  in.window.table = {300, 300, 65536};
  in.table_start = {300, 300, 65536};
  in.peak_count = 300;
  in.window.totals.drops.table_full = 2000;
  auto d = diagnose(in);

  auto* fill = find(d, "table_fill");
  REQUIRE(fill);
  CHECK(fill->severity == Severity::critical);
  CHECK(fill->evidence["time_to_full_s"].get<double>() == 0.0);  // full now
  // Wanted: 300 held + 2000 refused; twice that, rounded up to a power of two.
  CHECK(fill->evidence["proposed"]["max"] == 8192);
  CHECK(fill->evidence["proposed"]["buckets"] == 65536);  // never fewer buckets than now
  CHECK(fill->fix_now.front() == "sysctl -w net.netfilter.nf_conntrack_max=8192");
  CHECK(has_line(fill->fix_persistent, "net.netfilter.nf_conntrack_max = 8192"));
  CHECK(has_line(fill->fix_persistent, "/etc/modules-load.d/nf_conntrack.conf"));  // a module

  auto* drop = find(d, "drop_table_full");
  REQUIRE(drop);
  CHECK(drop->severity == Severity::critical);
  CHECK(drop->evidence["count"] == 2000);
  CHECK(drop->evidence["source"] == "probe");

  auto* mem = find(d, "memory");
  REQUIRE(mem);
  CHECK(mem->evidence["proposed"]["memory_bytes"] == uint64_t{8192} * 256 + 65536 * 8);
  CHECK(mem->evidence["slab_object_size"] == 256);
}

TEST_CASE("a proposal stays under a quarter of RAM") {
  auto in = healthy();
  in.system.ram_bytes = uint64_t{64} << 20;  // 64 MiB: 16 MiB for conntrack at most
  in.window.table = {30000, 30000, 65536};
  in.table_start = in.window.table;
  in.window.totals.drops.table_full = 100000;
  auto d = diagnose(in);
  auto* f = find(d, "table_fill");
  REQUIRE(f);
  auto proposed = f->evidence["proposed"];
  CHECK(proposed["capped_by_ram"] == true);
  CHECK(proposed["max"].get<uint64_t>() > 30000);
  CHECK(proposed["memory_bytes"].get<uint64_t>() <= (uint64_t{16} << 20));
}

TEST_CASE("max = 0 means unlimited: no fill, no time to full, a bound is proposed") {
  auto in = healthy();
  in.window.table.max = in.table_start.max = 0;
  in.sysctls["max"] = 0;
  auto d = diagnose(in);
  auto* f = find(d, "table_fill");
  REQUIRE(f);
  CHECK(f->severity == Severity::warning);
  CHECK(f->evidence["fill"].is_null());
  CHECK(f->evidence["time_to_full_s"].is_null());
  CHECK(f->evidence["proposed"]["max"] == 65536);  // at least the bucket count
  auto* mem = find(d, "memory");
  REQUIRE(mem);
  CHECK(mem->severity == Severity::warning);
  CHECK(mem->evidence["memory_at_max_bytes"].is_null());
  CHECK(find(d, "chain_length") == nullptr);  // 1000 entries in 65536 buckets
}

TEST_CASE("buckets > max: short chains, nothing to recommend") {
  auto in = healthy();
  in.window.table = {1000, 4096, 262144};
  in.table_start = in.window.table;
  in.window.totals.chain = chain_of({{1, 900}, {2, 100}});
  auto d = diagnose(in);
  CHECK(find(d, "chain_length") == nullptr);
  auto* f = find(d, "table_fill");
  REQUIRE(f);
  CHECK(f->severity == Severity::info);
}

TEST_CASE("chain_length: chains near the chaintoolong limit on a 512-bucket table") {
  auto in = healthy();
  in.window.table = {16457, 65536, 512};
  in.table_start = {16457, 65536, 512};  // steady: no time to full, no bigger max proposed
  in.peak_count = 16457;
  in.window.totals.inserts = 16457;
  in.window.totals.chain = chain_of({{10, 5000}, {31, 6000}, {32, 5457}});  // slot 32 is [32, 63]
  in.window.totals.chain_max = 77;
  in.window.totals.drops.chaintoolong = 2231;
  in.window.totals.drops.insert_failed = 2231;
  auto d = diagnose(in);
  auto* f = find(d, "chain_length");
  REQUIRE(f);
  CHECK(f->severity == Severity::critical);
  CHECK(f->evidence["chain_p99"] == in.window.totals.chain->percentile(0.99));
  CHECK(f->evidence["chain_p99"] == 63);
  CHECK(f->evidence["chain_max"] == 77);
  CHECK(f->evidence["expected_when_full"].get<double>() == doctest::Approx(256.0));
  CHECK(f->evidence["expected_at_insert"].get<double>() == doctest::Approx(1 + 2 * 16457.0 / 512));
  CHECK(f->evidence["recommended_buckets"] == 65536);
  CHECK(f->fix_now == std::vector<std::string>{
                          "echo 65536 > /sys/module/nf_conntrack/parameters/hashsize  # from the initial network "
                          "namespace"});
  CHECK(f->fix_persistent ==
        std::vector<std::string>{"echo 'options nf_conntrack hashsize=65536' > /etc/modprobe.d/nf_conntrack.conf"});

  auto* refused = find(d, "drop_chaintoolong");
  REQUIRE(refused);
  CHECK(refused->evidence["count"] == 2231);
  // insert_failed counts the chaintoolong refusals too: no separate finding for them.
  CHECK(find(d, "drop_insert_failed") == nullptr);
}

TEST_CASE("chain_length: built-in conntrack persists hashsize on the kernel command line") {
  auto in = healthy();
  in.system.build = ConntrackBuild::builtin;
  in.window.table = {5000, 65536, 1024};
  in.table_start = in.window.table;
  auto d = diagnose(in);
  auto* f = find(d, "chain_length");
  REQUIRE(f);
  CHECK(f->severity == Severity::warning);  // 128 per chain when full, though nothing measured is long
  CHECK(has_line(f->fix_persistent, "nf_conntrack.hashsize=65536"));
  CHECK_FALSE(has_line(f->fix_persistent, "modprobe.d"));
}

TEST_CASE("chain_length: longer than this namespace's count implies (other namespaces share the table)") {
  auto in = healthy();  // 1000 entries in 65536 buckets: expected about 1
  in.window.totals.chain = chain_of({{8, 1000}});
  auto d = diagnose(in);
  auto* f = find(d, "chain_length");
  REQUIRE(f);
  CHECK(f->severity == Severity::info);
  CHECK(f->why.find("every network namespace") != std::string::npos);
  CHECK(f->fix_now.empty());  // buckets already >= max
}

TEST_CASE("tracepoint mode: chain length from the sysctls only, said out loud") {
  auto in = tracepoint(healthy());
  in.window.table = {16457, 65536, 512};
  in.table_start = in.window.table;
  in.window.totals.drops.chaintoolong = 2231;
  in.window.totals.drops.insert_failed = 2231;
  auto d = diagnose(in);
  auto* f = find(d, "chain_length");
  REQUIRE(f);
  CHECK(f->severity == Severity::critical);  // the kernel's own chaintoolong counter moved
  CHECK(f->evidence["chain_p99"].is_null());
  CHECK(f->evidence["recommended_buckets"] == 65536);
  CHECK(f->measured.find("not measured") != std::string::npos);
  CHECK(find(d, "drop_chaintoolong")->evidence["source"] == "kernel statistics");
  CHECK(unmeasured(d, "chain length"));
  CHECK(unmeasured(d, "lifetimes"));
  CHECK(unmeasured(d, "drops.alloc_failed"));
  CHECK(unmeasured(d, "top ports"));
}

TEST_CASE("tracepoint mode: table_full comes from the kernel's drop counter, labelled as such") {
  auto in = tracepoint(healthy());
  in.window.table = {300, 300, 65536};
  in.table_start = in.window.table;
  in.kernel_drop = 2000;
  auto d = diagnose(in);
  auto* f = find(d, "drop_table_full");
  REQUIRE(f);
  CHECK(f->evidence["count"] == 2000);
  CHECK(f->evidence["source"] == "kernel drop counter");
  CHECK(unmeasured(d, "drops.table_full"));
  CHECK(find(d, "table_fill")->evidence["proposed"]["max"] == 8192);

  in.kernel_drop.reset();  // no ctnetlink answer either
  d = diagnose(in);
  CHECK(find(d, "drop_table_full") == nullptr);
  CHECK(unmeasured(d, "drops.table_full"));
}

TEST_CASE("drop causes: each present cause is a finding with its severity; absent counters are listed") {
  auto in = healthy();
  auto& drops = in.window.totals.drops;
  drops.early_drop = 7;
  drops.insert_failed = 5;  // none of them chaintoolong
  drops.clash_resolve = 3;
  drops.invalid = 2;
  drops.alloc_failed = 1;
  auto d = diagnose(in);
  CHECK(find(d, "drop_early_drop")->severity == Severity::warning);
  CHECK(find(d, "drop_insert_failed")->severity == Severity::warning);
  CHECK(find(d, "drop_insert_failed")->evidence["count"] == 5);
  CHECK(find(d, "drop_clash_resolve")->severity == Severity::info);
  CHECK(find(d, "drop_invalid")->severity == Severity::info);
  CHECK(find(d, "drop_alloc_failed")->severity == Severity::critical);
  CHECK(find(d, "drop_early_drop")->evidence["per_s"].get<double>() == doctest::Approx(0.7));
  // early_drop means the table hit its max: a bigger one is proposed with the eviction count.
  CHECK(find(d, "table_fill")->evidence["proposed"]["wanted_entries"] == 1007);

  // Old kernel: no chaintoolong (before 5.15) nor clash_resolve (before 5.10) counters.
  in = healthy();
  in.obs.kernel_has_chaintoolong = false;
  in.window.totals.drops.chaintoolong.reset();
  in.window.totals.drops.clash_resolve.reset();
  d = diagnose(in);
  CHECK(find(d, "drop_chaintoolong") == nullptr);
  CHECK(unmeasured(d, "drops.chaintoolong"));
  CHECK(unmeasured(d, "drops.clash_resolve"));
  for (const auto& u : d.unmeasured)
    if (u.what == "drops.chaintoolong") CHECK(u.why.find("before 5.15") != std::string::npos);
}

TEST_CASE("tcp_timeout_established: 5 days against the lifetimes seen") {
  auto in = healthy();
  in.sysctls["tcp_timeout_established"] = 432000;
  auto d = diagnose(in);
  auto* f = find(d, "tcp_timeout_established");
  REQUIRE(f);
  CHECK(f->severity == Severity::info);  // no pressure on the table
  CHECK(f->evidence["proposed_s"] == 10800);
  CHECK(f->evidence["tcp_lifetime_p99_ms"].is_null());  // no TCP entry ended
  CHECK(f->fix_now == std::vector<std::string>{"sysctl -w net.netfilter.nf_conntrack_tcp_timeout_established=10800"});

  // Connections that live ~9.3 h (log2 slot 25: up to 33554431 ms): twice that, in whole hours.
  in.window.totals.detail->lifetime[CTBPF_PROTO_TCP] = lifetime_of(25, 10);
  d = diagnose(in);
  f = find(d, "tcp_timeout_established");
  REQUIRE(f);
  CHECK(f->evidence["proposed_s"] == 68400);  // 2 × 33555 s = 67110 s → 19 h
  CHECK(f->evidence["tcp_lifetime_p99_ms"] == 33554431);

  in.window.table.count = 60000;  // the table is under pressure: now a warning
  d = diagnose(in);
  REQUIRE(find(d, "tcp_timeout_established"));
  CHECK(find(d, "tcp_timeout_established")->severity == Severity::warning);

  in.sysctls["tcp_timeout_established"] = 86400;  // a day: not far beyond 19 h
  d = diagnose(in);
  CHECK(find(d, "tcp_timeout_established") == nullptr);
  in.sysctls.erase("tcp_timeout_established");  // unreadable
  d = diagnose(in);
  CHECK(find(d, "tcp_timeout_established") == nullptr);
}

TEST_CASE("UDP dominating inserts: udp_timeout and stateless_udp with the full nft rules") {
  auto in = healthy();
  auto& detail = *in.window.totals.detail;
  detail.inserts_by_proto[CTBPF_PROTO_UDP] = 20000;  // 2000/s × 30 s ≈ 60000 entries held
  detail.inserts_by_proto[CTBPF_PROTO_TCP] = 100;
  auto d = diagnose(in);
  auto* timeout = find(d, "udp_timeout");
  REQUIRE(timeout);
  CHECK(timeout->evidence["entries_held_estimate"].get<double>() == doctest::Approx(60000.0));
  CHECK(timeout->fix_now == std::vector<std::string>{"sysctl -w net.netfilter.nf_conntrack_udp_timeout=10"});
  auto* notrack = find(d, "stateless_udp");
  REQUIRE(notrack);
  CHECK(notrack->evidence["udp_share"].get<double>() == doctest::Approx(20000.0 / 20100));
  CHECK(notrack->evidence["top_ports"].is_null());  // not measured (tracepoint mode), and it says so
  CHECK(notrack->measured.find("not measured") != std::string::npos);
  CHECK(has_line(notrack->fix_now,
                 "nft add chain inet no_conntrack prerouting '{ type filter hook prerouting priority raw; policy accept; }'"));
  CHECK(has_line(notrack->fix_now, "nft add rule inet no_conntrack output udp dport 53 notrack"));
  CHECK(notrack->fix_now.front() == "nft add table inet no_conntrack");  // "notrack" is an nft keyword
  CHECK(has_line(notrack->fix_persistent, "/etc/nftables.conf"));

  // Measured ports: the rules name the busy ones (a tenth of UDP inserts or more), not a trickle.
  in.top_ports = std::vector<PortCount>{{17, 5353, 15000}, {6, 443, 100}, {17, 514, 4000}, {17, 123, 900}};
  d = diagnose(in);
  notrack = find(d, "stateless_udp");
  REQUIRE(notrack);
  CHECK(has_line(notrack->fix_now, "nft add rule inet no_conntrack output udp dport { 5353, 514 } notrack"));
  CHECK(notrack->evidence["top_ports"].size() == 2);
  CHECK(notrack->evidence["top_ports"][0]["port"] == 5353);
  CHECK(notrack->measured.find("5353 (15000 inserts), 514 (4000 inserts)") != std::string::npos);
  in.top_ports.reset();

  // A trickle of UDP (a few DNS lookups) is not worth a rule.
  detail.inserts_by_proto[CTBPF_PROTO_UDP] = 30;
  d = diagnose(in);
  CHECK(find(d, "udp_timeout") == nullptr);
  CHECK(find(d, "stateless_udp") == nullptr);
  // Mostly TCP: no NOTRACK advice even when UDP is heavy.
  detail.inserts_by_proto[CTBPF_PROTO_UDP] = 20000;
  detail.inserts_by_proto[CTBPF_PROTO_TCP] = 30000;
  d = diagnose(in);
  CHECK(find(d, "udp_timeout") != nullptr);
  CHECK(find(d, "stateless_udp") == nullptr);
}

TEST_CASE("severity order: critical, then warning, then info; rule order within each") {
  auto in = healthy();
  in.window.table = {300, 300, 65536};
  in.table_start = in.window.table;
  in.window.totals.drops.table_full = 10;
  in.window.totals.drops.early_drop = 4;
  in.window.totals.drops.clash_resolve = 1;
  in.sysctls["tcp_timeout_established"] = 432000;
  auto d = diagnose(in);
  std::vector<std::string> ids;
  for (const auto& f : d.findings) ids.push_back(f.id);
  CHECK(ids == std::vector<std::string>{"table_fill", "drop_table_full", "drop_early_drop",
                                        "tcp_timeout_established", "drop_clash_resolve", "memory"});
  CHECK(std::is_sorted(d.findings.begin(), d.findings.end(),
                       [](const Finding& a, const Finding& b) { return a.severity < b.severity; }));
}

TEST_CASE("doctor_json: inputs, the trace summary, unmeasured, findings with stable keys") {
  auto in = healthy();
  in.window.totals.chain = chain_of({{3, 10}});
  auto d = diagnose(in);
  auto j = doctor_json(in, d);
  CHECK(j["type"] == "doctor");
  CHECK(j["mode"] == "fentry");
  CHECK(j["inputs"]["table"]["max"] == 65536);
  CHECK(j["inputs"]["memory"]["slab_object_size"] == 256);
  CHECK(j["inputs"]["memory"]["conntrack"] == "module");
  CHECK(j["inputs"]["sysctls"]["udp_timeout"] == 30);
  CHECK(j["summary"]["type"] == "summary");
  CHECK(j["summary"]["chain_length"]["p99"] == 3);
  REQUIRE(j["findings"].is_array());
  REQUIRE(j["findings"].size() == d.findings.size());
  for (const auto& f : j["findings"]) {
    for (const char* key : {"id", "severity", "title", "measured", "evidence", "why", "fix_now", "fix_persistent"})
      CHECK_MESSAGE(f.contains(key), key);
  }
  CHECK(j["findings"][0]["severity"] == "info");
  CHECK(j["unmeasured"].is_array());

  auto text = doctor_text(in, d);
  CHECK(text.find("[INFO] table_fill") != std::string::npos);
  CHECK(text.find("nothing was changed") != std::string::npos);
}

TEST_CASE("chain_length: a count whose average chain is at the limit is critical before any refusal") {
  auto in = healthy();
  in.window.table = {17020, 65536, 512};  // 1 + 2 × 17020 / 512 ≈ 67.5 per chain at insert
  in.table_start = in.window.table;
  auto d = diagnose(in);
  auto* f = find(d, "chain_length");
  REQUIRE(f);
  CHECK(f->severity == Severity::critical);
  CHECK(f->measured.find("no insert in the window") != std::string::npos);  // probes on, nothing seen
  in.obs.kernel_has_chaintoolong = false;  // before 5.15 nothing is refused: slow, not dropping
  d = diagnose(in);
  REQUIRE(find(d, "chain_length"));
  CHECK(find(d, "chain_length")->severity == Severity::warning);
}

namespace {

// n live ESTABLISHED entries with `remaining_s` of a 432000 s timeout left, as a dump would give them.
void add_established(IdleSummary& idle, const std::map<std::string, uint64_t>& sysctls, uint64_t n,
                     uint32_t remaining_s) {
  DumpedEntry e;
  e.l4 = 6;         // IPPROTO_TCP
  e.tcp_state = 3;  // TCP_CONNTRACK_ESTABLISHED
  e.status = 1 << 2;  // IPS_ASSURED
  e.timeout_s = remaining_s;
  for (uint64_t i = 0; i < n; ++i) add_idle(idle, e, sysctls);
}

}  // namespace

TEST_CASE("tcp_timeout_established: idle times of the live entries are its evidence") {
  auto in = healthy();
  in.sysctls["tcp_timeout_established"] = 432000;
  IdleSummary idle;
  add_established(idle, in.sysctls, 600, 432000 - 60);       // busy: idle a minute
  add_established(idle, in.sysctls, 400, 432000 - 2 * 86400);  // silent for two days
  in.idle = idle;
  auto d = diagnose(in);
  auto* f = find(d, "tcp_timeout_established");
  REQUIRE(f);
  CHECK(f->evidence["proposed_s"] == 10800);
  CHECK(f->evidence["established_live"] == 1000);
  CHECK(f->evidence["established_idle_beyond_proposed"] == 400);
  CHECK(f->evidence["established_idle_max_ms"] == uint64_t{2} * 86400 * 1000);
  CHECK(f->evidence["established_idle_p50_ms"] == 65535);  // slot [32768, 65535] ms
  CHECK(f->title.find("400 live ones idle over 3.0 h") != std::string::npos);
  CHECK(f->measured.find("at least 400 (40%) idle longer than the proposed 10800 s") != std::string::npos);
  // 400 stale entries are over a quarter of the table's 1000: a warning without other pressure.
  CHECK(f->severity == Severity::warning);

  // A few stale entries in a big table: still info.
  in.window.table.count = 20000;
  in.table_start.count = 20000;
  in.peak_count = 20000;
  d = diagnose(in);
  REQUIRE(find(d, "tcp_timeout_established"));
  CHECK(find(d, "tcp_timeout_established")->severity == Severity::info);

  // Nobody idle beyond the proposal: no count in the title, 0 in the evidence.
  in.idle = IdleSummary{};
  add_established(*in.idle, in.sysctls, 10, 432000 - 5);
  d = diagnose(in);
  f = find(d, "tcp_timeout_established");
  REQUIRE(f);
  CHECK(f->evidence["established_idle_beyond_proposed"] == 0);
  CHECK(f->title.find("live ones") == std::string::npos);

  // An empty table: measured, nothing live.
  in.idle = IdleSummary{};
  d = diagnose(in);
  f = find(d, "tcp_timeout_established");
  REQUIRE(f);
  CHECK(f->evidence["established_live"] == 0);
  CHECK(f->evidence["established_idle_p99_ms"].is_null());
  CHECK(f->measured.find("no live ESTABLISHED entry") != std::string::npos);
  CHECK_FALSE(unmeasured(d, "idle time"));

  // No dump (ctnetlink refused): null evidence, and said so.
  in.idle.reset();
  d = diagnose(in);
  f = find(d, "tcp_timeout_established");
  REQUIRE(f);
  CHECK(f->evidence["established_live"].is_null());
  CHECK(f->evidence["established_idle_beyond_proposed"].is_null());
  CHECK(unmeasured(d, "idle time per protocol and TCP state"));
}

TEST_CASE("idle time: capped dumps and unestimated entries are listed as unmeasured") {
  auto in = healthy();
  IdleSummary idle;
  idle.dump = {.ok = true, .entries = 4, .seconds = 0.5, .stopped = DumpStop::max_entries, .limit = {4, 2}};
  add_established(idle, in.sysctls, 3, 7000);  // idle 200 s of healthy()'s 7200
  DumpedEntry sctp;
  sctp.l4 = 132;
  sctp.timeout_s = 10;
  add_idle(idle, sctp, in.sysctls);
  in.idle = idle;
  auto d = diagnose(in);
  CHECK(unmeasured(d, "idle time of every entry"));
  CHECK(unmeasured(d, "idle time of 1 entries"));
  CHECK_FALSE(unmeasured(d, "idle time per protocol"));
  // Said in the text before the figures it qualifies, and in JSON for both dumps.
  CHECK(doctor_text(in, d).find("\n  the ctnetlink dump stopped early: 4 of 1000 entries read in 0.5 s "
                                "(--dump-max-entries 4)\n") != std::string::npos);
  auto j = doctor_json(in, d);
  CHECK(j["inputs"]["dumps"]["end"]["stopped_early"] == true);
  CHECK(j["inputs"]["dumps"]["end"]["entries"] == 4);
  CHECK(j["inputs"]["dumps"]["start"].is_null());
  CHECK(j["summary"]["idle_ms"]["capped"] == true);
  CHECK(j["summary"]["idle_ms"]["cap"] == 4);
  // A whole dump: no such line.
  in.idle->dump.stopped = DumpStop::none;
  CHECK(doctor_text(in, diagnose(in)).find("stopped early") == std::string::npos);
}

TEST_CASE("idle time in doctor_json (summary.idle_ms) and doctor_text, in tracepoint mode too") {
  auto in = tracepoint(healthy());
  in.sysctls["tcp_timeout_established"] = 432000;
  IdleSummary idle;
  add_established(idle, in.sysctls, 20, 432000 - 6);
  in.idle = idle;
  auto d = diagnose(in);
  auto j = doctor_json(in, d);
  CHECK(j["summary"]["type"] == "summary");  // the trace summary's keys unchanged
  CHECK(j["summary"].contains("lifetime_ms"));
  CHECK(j["summary"]["idle_ms"]["entries"] == 20);
  CHECK(j["summary"]["idle_ms"]["by_tcp_state"]["ESTABLISHED"]["count"] == 20);
  CHECK(j["summary"]["idle_ms"]["by_tcp_state"]["ESTABLISHED"]["min"] == 6000);
  CHECK(j["summary"]["idle_ms"]["by_proto"]["tcp"]["max"] == 6000);
  CHECK_FALSE(unmeasured(d, "idle"));  // tracepoint mode measures it: ctnetlink and sysctls only
  auto* f = find(d, "tcp_timeout_established");
  REQUIRE(f);
  CHECK(f->evidence["established_live"] == 20);
  auto text = doctor_text(in, d);
  // Percentiles are slot bounds clamped to the exact max: never "p99 ≤ 8 s, max 6 s".
  CHECK(text.find("idle since the last packet (20 live entries): tcp 20 p50 ≤ 6 s, p99 ≤ 6 s, max 6 s") !=
        std::string::npos);
  CHECK(text.find("idle by TCP state: ESTABLISHED 20") != std::string::npos);

  in.idle.reset();
  j = doctor_json(in, diagnose(in));
  CHECK(j["summary"]["idle_ms"].is_null());
}

TEST_CASE("udp_timeout: live UDP idle times next to the lifetimes") {
  auto in = healthy();
  auto& detail = *in.window.totals.detail;
  detail.inserts_by_proto[CTBPF_PROTO_UDP] = 20000;
  IdleSummary idle;
  DumpedEntry udp;
  udp.l4 = 17;
  udp.timeout_s = 2;  // 28 s of 30 idle
  add_idle(idle, udp, in.sysctls);
  in.idle = idle;
  auto d = diagnose(in);
  auto* f = find(d, "udp_timeout");
  REQUIRE(f);
  CHECK(f->evidence["udp_idle_p99_ms"] == 28000);  // slot bound 32767, clamped to the one value seen
  CHECK(f->measured.find("live UDP entries idle") != std::string::npos);
}

namespace {

// The kernel's default timeouts (6.1) that the closing-state and protocol rules read.
void default_timeouts(std::map<std::string, uint64_t>& s) {
  s.insert({{"tcp_timeout_syn_sent", 120}, {"tcp_timeout_syn_recv", 60},   {"tcp_timeout_fin_wait", 120},
            {"tcp_timeout_close_wait", 60}, {"tcp_timeout_last_ack", 30},  {"tcp_timeout_time_wait", 120},
            {"tcp_timeout_close", 10},      {"icmp_timeout", 30},          {"icmpv6_timeout", 30},
            {"generic_timeout", 600}});
}

// n entries of protocol l4 (TCP in `state`) idle `idle_s` seconds under the sysctls' timeouts.
void add_entries(IdleSummary& idle, const std::map<std::string, uint64_t>& sysctls, uint8_t l4, uint8_t state,
                 uint64_t n, uint64_t idle_s, uint32_t status = 1 << 2 /* IPS_ASSURED */) {
  DumpedEntry e;
  e.l4 = l4;
  e.tcp_state = state;
  e.status = status;
  auto configured = configured_timeout_s(e, sysctls);
  REQUIRE(configured);
  REQUIRE(*configured >= idle_s);
  e.timeout_s = static_cast<uint32_t>(*configured - idle_s);
  for (uint64_t i = 0; i < n; ++i) add_idle(idle, e, sysctls);
}

constexpr uint8_t kTcp = 6, kIcmp = 1, kEsp = 50;
constexpr uint8_t kSynSent = 1, kSynRecv = 2, kEstablished = 3, kFinWait = 4, kCloseWait = 5, kLastAck = 6,
                  kTimeWait = 7;
constexpr uint32_t kSrcNat = 1 << 4;  // IPS_SRC_NAT

// The field notes' edge gateway: 2000 TIME_WAIT entries (1200 idle 10 s, 800 idle 50 s) and 100
// ESTABLISHED ones, in a window of 10 s.
DoctorInput edge_gateway() {
  auto in = healthy();
  default_timeouts(in.sysctls);
  in.tcp_sysctls = {{"tcp_timestamps", 1}, {"tcp_tw_reuse", 2}, {"tcp_retries2", 15}};
  IdleSummary idle;
  add_entries(idle, in.sysctls, kTcp, kTimeWait, 1200, 10);
  add_entries(idle, in.sysctls, kTcp, kTimeWait, 800, 50);
  add_entries(idle, in.sysctls, kTcp, kEstablished, 100, 5);
  in.idle = idle;
  in.window.table = {2100, 65536, 65536};
  in.table_start = {2100, 65536, 65536};
  return in;
}

}  // namespace

TEST_CASE("retransmission arithmetic: tcp_retries2 = 15 gives up after 924.6 s; 7 within 30 s") {
  CHECK(retransmission_give_up_s(15) == doctest::Approx(924.6));
  CHECK(retransmission_give_up_s(0) == doctest::Approx(0.2));
  CHECK(retransmissions_within(30) == 7);  // sent at 0.2, 0.6, 1.4, 3.0, 6.2, 12.6, 25.4 s
  CHECK(retransmissions_within(25.5) == 7);
  CHECK(retransmissions_within(25.3) == 6);
  CHECK(retransmissions_within(0.1) == 0);
}

TEST_CASE("tcp_closing_states: a table of TIME_WAIT entries, the time_wait cure computed from idle times") {
  auto in = edge_gateway();
  auto d = diagnose(in);
  auto* f = find(d, "tcp_closing_states");
  REQUIRE(f);
  CHECK(f->severity == Severity::info);  // no pressure, nothing cut
  CHECK(f->evidence["closing_live"] == 2000);
  CHECK(f->evidence["entries"] == 2100);
  CHECK(f->evidence["closing_share"].get<double>() == doctest::Approx(2000.0 / 2100));
  CHECK(f->evidence["fired_by_table_share"] == true);
  CHECK(f->evidence["fired_by_growth_share"] == false);
  CHECK(f->evidence["growth"].is_null());  // no dump at the window's start
  const auto& tw = f->evidence["states"]["TIME_WAIT"];
  CHECK(tw["live"] == 2000);
  CHECK(tw["nat"] == 0);
  CHECK(tw["timeout_s"] == 120);
  CHECK(tw["proposed_s"] == 30);
  CHECK(tw["would_free"] == 800);  // exactly those idle 30 s or more
  CHECK(tw["would_cut"] == 0);     // closed connections: nothing in use to cut
  CHECK(tw["withheld"] == false);
  CHECK(tw["idle"]["count"] == 2000);
  CHECK(tw["idle"]["max"] == 50000);
  CHECK(tw["deaths_in_window"] == 0);  // fentry: measured, none died
  CHECK(tw["held_at_proposed_at_most"].is_null());
  // Every state has its keys, live or not.
  CHECK(f->evidence["states"]["CLOSE_WAIT"]["live"] == 0);
  CHECK(f->evidence["states"]["CLOSE_WAIT"]["proposed_s"].is_null());
  CHECK(f->evidence["states"].size() == 6);
  CHECK(f->evidence["would_free"] == 800);
  CHECK(f->evidence["proposed"] == nlohmann::json{{"tcp_timeout_time_wait", 30}});
  CHECK(f->evidence["tcp_timestamps"] == 1);
  CHECK(f->fix_now == std::vector<std::string>{"sysctl -w net.netfilter.nf_conntrack_tcp_timeout_time_wait=30"});
  CHECK(has_line(f->fix_persistent, "echo 'net.netfilter.nf_conntrack_tcp_timeout_time_wait = 30' >> "
                                    "/etc/sysctl.d/90-conntrack.conf"));
  CHECK(has_line(f->fix_persistent, "/etc/modules-load.d/nf_conntrack.conf"));
  CHECK(f->title.find("95% of the table is in closing TCP states (2000 of 2100 entries)") != std::string::npos);
  CHECK(f->title.find("would free 800") != std::string::npos);
  CHECK(f->measured.find("TIME_WAIT 2000 (95.2%), timeout 120 s") != std::string::npos);
  CHECK(f->measured.find("800 idle 30 s or more") != std::string::npos);
  CHECK(f->why.find("2 MSL") != std::string::npos);
  CHECK(f->why.find("PAWS") != std::string::npos);
  CHECK(f->why.find("tcp_tw_reuse (= 2)") != std::string::npos);
  CHECK(f->why.find("None of these entries is NAT'd") != std::string::npos);
  // Only the states present explain themselves.
  CHECK(f->why.find("CLOSE_WAIT:") == std::string::npos);
}

TEST_CASE("tcp_closing_states: does not fire on a small table, a small share, or without a dump") {
  auto in = healthy();
  default_timeouts(in.sysctls);
  IdleSummary idle;
  add_entries(idle, in.sysctls, kTcp, kTimeWait, 99, 50);  // all closing, but fewer than 100
  in.idle = idle;
  CHECK_FALSE(find(diagnose(in), "tcp_closing_states"));

  in.idle = IdleSummary{};
  add_entries(*in.idle, in.sysctls, kTcp, kTimeWait, 400, 50);
  add_entries(*in.idle, in.sysctls, kTcp, kEstablished, 401, 5);  // closing below half
  CHECK_FALSE(find(diagnose(in), "tcp_closing_states"));

  in.idle.reset();
  auto d = diagnose(in);
  CHECK_FALSE(find(d, "tcp_closing_states"));
  CHECK(unmeasured(d, "live entries per TCP state and protocol"));
}

TEST_CASE("tcp_closing_states: fires on the share of the growth, from the dump at the window's start") {
  auto in = healthy();
  default_timeouts(in.sysctls);
  IdleSummary start, end;
  add_entries(start, in.sysctls, kTcp, kEstablished, 1000, 5);
  add_entries(end, in.sysctls, kTcp, kEstablished, 1050, 5);
  add_entries(end, in.sysctls, kTcp, kFinWait, 150, 40);  // the growth: 200, 150 of it closing
  in.idle_start = start;
  in.idle = end;
  auto d = diagnose(in);
  auto* f = find(d, "tcp_closing_states");
  REQUIRE(f);
  CHECK(f->evidence["fired_by_table_share"] == false);
  CHECK(f->evidence["fired_by_growth_share"] == true);
  CHECK(f->evidence["growth"] == 200);
  CHECK(f->evidence["closing_growth"] == 150);
  CHECK(f->evidence["closing_growth_share"].get<double>() == doctest::Approx(0.75));
  CHECK(f->measured.find("grew by +200 entries in the window, closing states by +150 (75%)") != std::string::npos);
  // FIN_WAIT may still carry data one way: its idle entries are connections that would be cut.
  const auto& fw = f->evidence["states"]["FIN_WAIT"];
  CHECK(fw["would_free"] == 150);
  CHECK(fw["would_cut"] == 150);
  CHECK(fw["withheld"] == true);
  CHECK(fw["proposed_s"].is_null());
  CHECK(f->fix_now.empty());
  CHECK(f->fix_persistent.empty());
  CHECK(f->severity == Severity::warning);
  CHECK(f->why.find("tcp_retries2 = 15 times, giving up after 924.6 s; 30 s covers 7 retransmissions") !=
        std::string::npos);

  // A growth under 100 entries, or a capped dump at either end, says nothing.
  in.idle_start->dump.stopped = DumpStop::max_seconds;
  CHECK_FALSE(find(diagnose(in), "tcp_closing_states"));
  in.idle_start->dump.stopped = DumpStop::none;
  in.idle_start = IdleSummary{};
  add_entries(*in.idle_start, in.sysctls, kTcp, kEstablished, 1050, 5);
  add_entries(*in.idle_start, in.sysctls, kTcp, kFinWait, 60, 40);  // growth 90
  CHECK_FALSE(find(diagnose(in), "tcp_closing_states"));
}

TEST_CASE("tcp_closing_states: idle half-closed connections are a warning, not a blind proposal") {
  auto in = edge_gateway();
  add_entries(*in.idle, in.sysctls, kTcp, kCloseWait, 300, 45);  // idle past 30 s: leaks, or in use
  add_entries(*in.idle, in.sysctls, kTcp, kCloseWait, 100, 5);
  auto d = diagnose(in);
  auto* f = find(d, "tcp_closing_states");
  REQUIRE(f);
  CHECK(f->severity == Severity::warning);
  const auto& cw = f->evidence["states"]["CLOSE_WAIT"];
  CHECK(cw["live"] == 400);
  CHECK(cw["would_free"] == 300);
  CHECK(cw["would_cut"] == 300);
  CHECK(cw["withheld"] == true);
  CHECK(cw["proposed_s"].is_null());
  CHECK(cw["considered_s"] == 30);
  CHECK(f->evidence["would_cut"] == 300);
  CHECK(f->evidence["would_free"] == 800);  // TIME_WAIT's only: close_wait is not proposed
  // TIME_WAIT's proposal stands; close_wait's command is only in the warning.
  CHECK(f->fix_now == std::vector<std::string>{"sysctl -w net.netfilter.nf_conntrack_tcp_timeout_time_wait=30"});
  CHECK_FALSE(has_line(f->fix_persistent, "close_wait"));
  CHECK(f->title.find("300 idle half-open connections would be cut") != std::string::npos);
  CHECK(f->why.find("CLOSE_WAIT: 300 live entries idle 30 s or more (max 45 s) would be gone under 30 s") !=
        std::string::npos);
  CHECK(f->why.find("long-poll") != std::string::npos);
  CHECK(f->why.find("ss -tan state close-wait") != std::string::npos);
  CHECK(f->why.find("sysctl -w net.netfilter.nf_conntrack_tcp_timeout_close_wait=30") != std::string::npos);

  // All of them recently active: nothing to free, nothing cut, nothing proposed for close_wait.
  in = edge_gateway();
  add_entries(*in.idle, in.sysctls, kTcp, kCloseWait, 300, 5);
  f = find(d = diagnose(in), "tcp_closing_states");
  REQUIRE(f);
  CHECK(f->severity == Severity::info);
  CHECK(f->evidence["states"]["CLOSE_WAIT"]["would_free"] == 0);
  CHECK(f->evidence["states"]["CLOSE_WAIT"]["withheld"] == false);
  CHECK(f->evidence["states"]["CLOSE_WAIT"]["proposed_s"].is_null());
  CHECK(f->fix_now.size() == 1);
}

TEST_CASE("tcp_closing_states: every state's why, and a timeout already at the proposal") {
  auto in = edge_gateway();
  in.sysctls["tcp_timeout_last_ack"] = 120;  // raised: 30 s is then a proposal
  in.sysctls["tcp_timeout_time_wait"] = 30;  // already there: nothing to propose
  in.idle = IdleSummary{};
  add_entries(*in.idle, in.sysctls, kTcp, kSynSent, 100, 5);
  add_entries(*in.idle, in.sysctls, kTcp, kSynRecv, 100, 5);
  add_entries(*in.idle, in.sysctls, kTcp, kFinWait, 100, 5);
  add_entries(*in.idle, in.sysctls, kTcp, kCloseWait, 100, 5);
  add_entries(*in.idle, in.sysctls, kTcp, kLastAck, 100, 100);
  add_entries(*in.idle, in.sysctls, kTcp, kTimeWait, 100, 25);
  auto d = diagnose(in);
  auto* f = find(d, "tcp_closing_states");
  REQUIRE(f);
  for (const char* s : {"SYN_SENT: a SYN not answered", "SYN_RECV: a SYN answered", "FIN_WAIT: a FIN not",
                        "CLOSE_WAIT: one side sent its FIN", "LAST_ACK: both FINs sent", "TIME_WAIT: both sides"})
    CHECK_MESSAGE(f->why.find(s) != std::string::npos, s);
  CHECK(f->why.find("up to tcp_retries2 = 15 times (924.6 s), 7 within 30 s") != std::string::npos);
  // LAST_ACK carries no data: its idle entries are freed, not cut.
  CHECK(f->evidence["states"]["LAST_ACK"]["would_free"] == 100);
  CHECK(f->evidence["states"]["LAST_ACK"]["would_cut"] == 0);
  CHECK(f->evidence["states"]["TIME_WAIT"]["would_free"] == 0);
  CHECK(f->evidence["states"]["TIME_WAIT"]["proposed_s"].is_null());
  CHECK(f->fix_now == std::vector<std::string>{"sysctl -w net.netfilter.nf_conntrack_tcp_timeout_last_ack=30"});
  CHECK(f->evidence["would_cut"] == 0);
}

TEST_CASE("tcp_closing_states: NAT'd TIME_WAIT waits the endpoints' 60 s; without PAWS it is not shortened") {
  auto in = edge_gateway();
  in.idle = IdleSummary{};
  add_entries(*in.idle, in.sysctls, kTcp, kTimeWait, 500, 40, (1 << 2) | kSrcNat);
  add_entries(*in.idle, in.sysctls, kTcp, kTimeWait, 300, 90, (1 << 2) | kSrcNat);
  auto d = diagnose(in);
  auto* f = find(d, "tcp_closing_states");
  REQUIRE(f);
  const auto& tw = f->evidence["states"]["TIME_WAIT"];
  CHECK(tw["nat"] == 800);
  CHECK(tw["considered_s"] == 60);
  CHECK(tw["would_free"] == 300);  // idle 60 s or more
  CHECK(tw["proposed_s"] == 60);
  CHECK(f->fix_now == std::vector<std::string>{"sysctl -w net.netfilter.nf_conntrack_tcp_timeout_time_wait=60"});
  CHECK(f->measured.find("800 NAT'd") != std::string::npos);
  CHECK(f->why.find("800 of these entries are NAT'd") != std::string::npos);
  CHECK(f->why.find("considered at 60 s here, not 30 s") != std::string::npos);

  in.tcp_sysctls["tcp_timestamps"] = 0;
  f = find(d = diagnose(in), "tcp_closing_states");
  REQUIRE(f);
  CHECK(f->evidence["states"]["TIME_WAIT"]["withheld"] == true);
  CHECK(f->evidence["states"]["TIME_WAIT"]["proposed_s"].is_null());
  CHECK(f->evidence["states"]["TIME_WAIT"]["would_cut"] == 0);
  CHECK(f->fix_now.empty());
  CHECK(f->why.find("no PAWS (net.ipv4.tcp_timestamps = 0)") != std::string::npos);
}

TEST_CASE("tcp_closing_states: pressure makes it a warning; deaths bound what the proposal holds") {
  auto in = edge_gateway();
  in.window.table = {60000, 65536, 65536};  // 92% full
  in.window.totals.detail->tcp_deaths_by_state[kTimeWait] = 100;  // 10/s over the 10 s window
  auto d = diagnose(in);
  auto* f = find(d, "tcp_closing_states");
  REQUIRE(f);
  CHECK(f->severity == Severity::warning);
  CHECK(f->evidence["states"]["TIME_WAIT"]["deaths_in_window"] == 100);
  CHECK(f->evidence["states"]["TIME_WAIT"]["held_at_proposed_at_most"].get<double>() == doctest::Approx(300));

  // Tracepoint mode sees no deaths: null, not 0; the rule still works from the dump.
  auto tp = tracepoint(edge_gateway());
  f = find(d = diagnose(tp), "tcp_closing_states");
  REQUIRE(f);
  CHECK(f->evidence["states"]["TIME_WAIT"]["deaths_in_window"].is_null());
  CHECK(f->evidence["tcp_lifetime_p99_ms"].is_null());
  CHECK(f->evidence["states"]["TIME_WAIT"]["would_free"] == 800);
}

TEST_CASE("icmp_timeout and generic_timeout: a measurable share, the entries a shorter timeout frees") {
  auto in = healthy();
  default_timeouts(in.sysctls);
  IdleSummary idle;
  add_entries(idle, in.sysctls, kIcmp, 0, 150, 20);
  add_entries(idle, in.sysctls, kIcmp, 0, 50, 2);
  add_entries(idle, in.sysctls, kEsp, 0, 100, 300);
  add_entries(idle, in.sysctls, kEsp, 0, 20, 30);
  add_entries(idle, in.sysctls, kTcp, kEstablished, 1000, 5);
  in.idle = idle;
  auto d = diagnose(in);
  auto* icmp = find(d, "icmp_timeout");
  REQUIRE(icmp);
  CHECK(icmp->severity == Severity::info);
  CHECK(icmp->evidence["live"] == 200);
  CHECK(icmp->evidence["would_free"] == 150);
  CHECK(icmp->evidence["timeouts_s"]["icmp_timeout"] == 30);
  CHECK(icmp->evidence["proposed"] == nlohmann::json{{"icmp_timeout", 10}, {"icmpv6_timeout", 10}});
  CHECK(icmp->fix_now == std::vector<std::string>{"sysctl -w net.netfilter.nf_conntrack_icmp_timeout=10",
                                                  "sysctl -w net.netfilter.nf_conntrack_icmpv6_timeout=10"});
  CHECK(has_line(icmp->fix_persistent, "nf_conntrack_icmpv6_timeout = 10"));
  CHECK(icmp->why.find("RELATED") != std::string::npos);
  auto* generic = find(d, "generic_timeout");
  REQUIRE(generic);
  CHECK(generic->evidence["live"] == 120);
  CHECK(generic->evidence["would_free"] == 100);
  CHECK(generic->fix_now == std::vector<std::string>{"sysctl -w net.netfilter.nf_conntrack_generic_timeout=120"});
  CHECK(generic->why.find("cut") != std::string::npos);
  CHECK_FALSE(find(d, "tcp_closing_states"));

  // Timeouts already short: the finding stays, without commands.
  in.sysctls["icmp_timeout"] = 10;
  in.sysctls["icmpv6_timeout"] = 5;
  icmp = find(d = diagnose(in), "icmp_timeout");
  REQUIRE(icmp);
  CHECK(icmp->fix_now.empty());
  CHECK(icmp->evidence["would_free"] == 0);
  // Nobody idle past the proposal: nothing to free, no command.
  in = healthy();
  default_timeouts(in.sysctls);
  in.idle = IdleSummary{};
  add_entries(*in.idle, in.sysctls, kIcmp, 0, 200, 3);
  icmp = find(d = diagnose(in), "icmp_timeout");
  REQUIRE(icmp);
  CHECK(icmp->fix_now.empty());
  CHECK(icmp->evidence["idle"]["max"] == 3000);
  // Under 5% of the table, or under 100 entries: no finding.
  add_entries(*in.idle, in.sysctls, kTcp, kEstablished, 4000, 5);
  CHECK_FALSE(find(diagnose(in), "icmp_timeout"));
  in.idle = IdleSummary{};
  add_entries(*in.idle, in.sysctls, kIcmp, 0, 99, 20);
  CHECK_FALSE(find(diagnose(in), "icmp_timeout"));
  // A full table makes it a warning.
  in.idle = IdleSummary{};
  add_entries(*in.idle, in.sysctls, kIcmp, 0, 200, 20);
  in.window.table = {65536, 65536, 65536};
  CHECK(find(diagnose(in), "icmp_timeout")->severity == Severity::warning);
}

TEST_CASE("tcp_closing_states in doctor_json and doctor_text") {
  auto in = edge_gateway();
  auto d = diagnose(in);
  auto j = doctor_json(in, d);

  bool found = false;
  for (const auto& x : j["findings"])
    if (x["id"] == "tcp_closing_states") {
      found = true;
      CHECK(x["evidence"]["states"]["TIME_WAIT"]["live"] == 2000);
      CHECK(x["fix_now"].size() == 1);
    }
  CHECK(found);
  CHECK(j["summary"]["idle_ms"]["live_by_tcp_state"]["TIME_WAIT"] == 2000);
  CHECK(j["summary"]["idle_ms"]["live_by_proto"]["tcp"] == 2100);
  auto text = doctor_text(in, d);
  CHECK(text.find("tcp_closing_states: 95% of the table is in closing TCP states") != std::string::npos);
  CHECK(text.find("sysctl -w net.netfilter.nf_conntrack_tcp_timeout_time_wait=30") != std::string::npos);
}
