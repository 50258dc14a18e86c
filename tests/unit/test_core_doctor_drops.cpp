// SPDX-License-Identifier: Apache-2.0
// doctor's drops and chains rules: chain_length and the drop causes, in fentry and tracepoint mode.
#include <doctest/doctest.h>

#include "test_core_doctor_fixture.h"

using namespace ctbpf::core;
using namespace doctor_fixture;

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
