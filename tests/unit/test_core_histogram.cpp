// SPDX-License-Identifier: Apache-2.0
#include <doctest/doctest.h>

#include <vector>

#include "core/histogram.h"
#include "ctbpf/slots.h"

using namespace ctbpf::core;

namespace {
Histogram chain_of(const std::vector<uint64_t>& lengths) {
  std::vector<uint64_t> slots(slot_count(SlotKind::chain), 0);
  uint64_t sum = 0;
  for (auto len : lengths) {
    slots[ctbpf_chain_slot(len)]++;
    sum += len;
  }
  return Histogram(SlotKind::chain, slots, sum);
}
}  // namespace

TEST_CASE("percentiles pick the slot holding the rank") {
  auto h = chain_of({1, 1, 1, 1, 1, 1, 1, 1, 1, 2});  // 90% ones
  CHECK(h.count() == 10);
  CHECK(h.percentile(0.5) == 1);
  CHECK(h.percentile(0.9) == 1);
  CHECK(h.percentile(0.91) == 2);
  CHECK(h.percentile(0.99) == 2);
  CHECK(h.max_bound() == 2);
  CHECK(h.mean() == doctest::Approx(1.1));
}

TEST_CASE("an empty histogram answers zeros") {
  Histogram h(SlotKind::log2);
  CHECK(h.count() == 0);
  CHECK(h.percentile(0.99) == 0);
  CHECK(h.max_bound() == 0);
  CHECK(h.mean() == 0.0);
}

TEST_CASE("log2 percentiles report the slot's upper bound") {
  std::vector<uint64_t> slots(slot_count(SlotKind::log2), 0);
  slots[ctbpf_log2_slot(1500)] = 3;  // [1024, 2047]
  Histogram h(SlotKind::log2, slots, 4500);
  CHECK(h.percentile(0.5) == 2047);
}

TEST_CASE("per-CPU merge adds slot by slot, minus undoes it") {
  auto cpu0 = chain_of({1, 2, 3});
  auto cpu1 = chain_of({3, 40, 70});
  Histogram total(SlotKind::chain);
  total.merge(cpu0);
  total.merge(cpu1);
  CHECK(total.count() == 6);
  CHECK(total.sum() == 119);
  CHECK(total.max_bound() == 127);
  auto back = total.minus(cpu1);
  CHECK(back.slots() == cpu0.slots());
  CHECK(back.sum() == cpu0.sum());
  CHECK_THROWS(total.merge(Histogram(SlotKind::log2)));
}

TEST_CASE("minus clamps counters that went backwards") {
  auto later = chain_of({1});
  auto earlier = chain_of({1, 1});
  CHECK(later.minus(earlier).count() == 0);
}
