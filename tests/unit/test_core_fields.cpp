// SPDX-License-Identifier: Apache-2.0
// The field tables (agent/core/fields.h) are the only lists of the kernel's statistics and of the
// drop causes: every row must reach every output that shows its family, with its own value, and the
// contract's documents must name it. A row added to the table and missed by an output fails here.
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/aggregator.h"
#include "core/prometheus.h"
#include "core/render.h"
#include "core/screen.h"

using namespace ctbpf::core;
using nlohmann::json;

namespace {

// Distinct values, so that a row showing its neighbour's value fails.
uint64_t kernel_value(std::size_t i) { return 1000 + 7 * i; }
uint64_t drop_value(std::size_t i) { return 2000 + 11 * i; }

// One second of tracepoint mode whose kernel statistics moved by kernel_value(i), and whose drops
// are drop_value(i) for every cause (set on the totals: derive() decides which are observable, and
// test_core_tracepoint/aggregator test that).
Report report() {
  Aggregator aggregator(Mode::tracepoint, {});
  Sample s;
  s.stats = KernelStats{};
  for (const auto& counter : kKernelCounters) (*s.stats).*counter.member = 0;
  aggregator.add(s);
  s.t_s = 1;
  for (std::size_t i = 0; i < std::size(kKernelCounters); ++i)
    (*s.stats).*kKernelCounters[i].member = kernel_value(i);
  aggregator.add(s);
  Report r = aggregator.summary();
  for (std::size_t i = 0; i < std::size(kDropCauses); ++i) r.totals.drops.*kDropCauses[i].member = drop_value(i);
  return r;
}

std::string read(const std::string& repo_path) {
  std::ifstream in(std::string(CTBPF_SOURCE_DIR) + "/" + repo_path);
  REQUIRE_MESSAGE(in, repo_path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::set<std::string> keys(const json& list) {
  std::set<std::string> out;
  for (const auto& k : list) out.insert(k.get<std::string>());
  return out;
}

}  // namespace

TEST_CASE("every kernel counter reaches JSON, text, Prometheus and the screen with its own value") {
  const Report r = report();
  const Observability obs;
  const json summary = summary_json(r, Mode::tracepoint, obs);
  const json interval = interval_json(r, obs);
  const std::string text = summary_text(r, Mode::tracepoint);
  ExpositionInput in{Mode::tracepoint, &obs, &r, nullptr, "test", false, {}};
  const std::string page = render_exposition(in);
  const std::string screen = render_screen({Mode::tracepoint, &r, &r});
  CHECK(summary["kernel_stats"].size() == std::size(kKernelCounters));
  for (std::size_t i = 0; i < std::size(kKernelCounters); ++i) {
    const auto& counter = kKernelCounters[i];
    const uint64_t v = kernel_value(i);
    CAPTURE(std::string(counter.key));
    CHECK(summary["kernel_stats"][counter.key] == v);
    CHECK(interval["kernel_stats"][counter.key] == v);
    CHECK(contains(text, fmt::format(" {} {}", counter.key, v)));
    CHECK(contains(page, fmt::format("ctbpf_conntrack_kernel_stats_total{{stat=\"{}\"}} {}\n", counter.key, v)));
    if (counter.on_screen) CHECK(contains(screen, fmt::format("  {:<15} {:>9} {:>10}", counter.key, v, v)));
  }
}

TEST_CASE("a kernel counter whose name misleads says what it counts where it is shown (issue 34)") {
  // The kernel's `insert` moves only for ctnetlink's inserts (nf_conntrack_hash_check_insert()), not
  // for packets': a 0 next to ctbpf's `inserts` must not read as "nothing was inserted".
  const Report r = report();
  const std::string text = summary_text(r, Mode::tracepoint);
  const std::string screen = render_screen({Mode::tracepoint, &r, &r});
  std::size_t notes = 0;
  for (const auto& counter : kKernelCounters) {
    if (!counter.note) continue;
    ++notes;
    CAPTURE(std::string(counter.key));
    CHECK(contains(text, fmt::format("\n    {}: ", counter.key)));
    if (counter.on_screen) {
      REQUIRE(counter.screen_note);
      CHECK(contains(screen, fmt::format("  {}: ", counter.key)));
    }
  }
  CHECK(notes == 1);
  CHECK(contains(text, "    insert: entries added through ctnetlink (conntrack -I) only; the kernel does not count"));
  CHECK(contains(screen, "  insert: ctnetlink's (conntrack -I)"));
  CHECK(contains(kernel_counter_notes("  "), "  insert: entries added through ctnetlink"));
  // The note keeps the dashboard within 100 columns.
  std::size_t widest = 0, at = 0;
  while (at < screen.size()) {
    auto end = std::min(screen.find('\n', at), screen.size());
    widest = std::max(widest, end - at);
    at = end + 1;
  }
  CHECK(widest <= 100);
}

TEST_CASE("every drop cause reaches JSON, text, Prometheus and the screen with its own value") {
  const Report r = report();
  const Observability obs;
  const json summary = summary_json(r, Mode::tracepoint, obs);
  const std::string text = summary_text(r, Mode::tracepoint);
  ExpositionInput in{Mode::tracepoint, &obs, &r, nullptr, "test", false, {}};
  const std::string page = render_exposition(in);
  const std::string screen = render_screen({Mode::tracepoint, &r, &r});
  CHECK(summary["drops"].size() == std::size(kDropCauses));
  CHECK(summary["scope"]["drops"].size() == std::size(kDropCauses));
  for (std::size_t i = 0; i < std::size(kDropCauses); ++i) {
    const auto& cause = kDropCauses[i];
    const uint64_t v = drop_value(i);
    CAPTURE(std::string(cause.key));
    CHECK(summary["drops"][cause.key] == v);
    CHECK(contains(text, fmt::format(" {} {}", cause.key, v)));
    CHECK(contains(page, fmt::format("ctbpf_conntrack_drops_total{{cause=\"{}\"}} {}\n", cause.key, v)));
    CHECK(contains(screen, fmt::format("  {:<15} {:>9} {:>10}", cause.key, v, v)));
    CHECK(drop_cause(cause.key) == &cause);
    CHECK(summary["scope"]["drops"][cause.key].is_null() == cause.never_observed);
  }
  CHECK(drop_cause("no_such_cause") == nullptr);
}

TEST_CASE("the contract's documents name every row of the tables, and no other") {
  const json schema = json::parse(read("docs/schema/ctbpf.schema.json"));
  const auto& defs = schema["$defs"];
  std::set<std::string> kernel, drops;
  for (const auto& c : kKernelCounters) kernel.insert(c.key);
  for (const auto& c : kDropCauses) drops.insert(c.key);
  CHECK(keys(defs["kernel_stats"]["oneOf"][1]["required"]) == kernel);
  CHECK(keys(defs["drops"]["required"]) == drops);

  const std::string json_md = read("docs/json.md");
  const std::string tracepoint_md = read("docs/tracepoint.md");
  const std::string metrics_md = read("docs/metrics.md");
  for (const auto& c : kDropCauses) {
    CAPTURE(std::string(c.key));
    CHECK(contains(json_md, fmt::format("\"{}\":N", c.key)));
    CHECK(contains(metrics_md, fmt::format("cause=\"{}\"", c.key)));
  }
  for (const auto& c : kKernelCounters) {
    CAPTURE(std::string(c.key));
    CHECK(contains(tracepoint_md, fmt::format("`{}`", c.key)));
    CHECK(contains(metrics_md, fmt::format("| `{}` |", c.key)));  // its conntrack -S column
  }
}
