// SPDX-License-Identifier: Apache-2.0
// The kernel counts into slots with include/ctbpf/slots.h; user space labels slots with
// slot_upper_bound(). These must agree for every slot, or every printed bucket would lie.
#include <doctest/doctest.h>

#include "core/histogram.h"
#include "ctbpf/slots.h"

using namespace ctbpf::core;

namespace {
uint64_t slot_of(SlotKind kind, uint64_t v) {
  return kind == SlotKind::log2 ? ctbpf_log2_slot(v) : ctbpf_chain_slot(v);
}
}  // namespace

TEST_CASE("slot labels match the shared slot math") {
  for (auto kind : {SlotKind::log2, SlotKind::chain}) {
    CAPTURE(static_cast<int>(kind));
    const auto n = slot_count(kind);
    for (std::size_t slot = 0; slot + 1 < n; ++slot) {
      CAPTURE(slot);
      const uint64_t le = slot_upper_bound(kind, slot);
      CHECK(slot_of(kind, le) == slot);          // the bound is inside its slot
      CHECK(slot_of(kind, le + 1) == slot + 1);  // and the next value starts the next slot
    }
    CHECK(slot_of(kind, ~uint64_t{0}) == n - 1);  // everything larger lands in the last slot
  }
}

TEST_CASE("ilog2 is exact at powers of two and between them") {
  CHECK(ctbpf_ilog2(1) == 0);
  for (unsigned k = 1; k < 64; ++k) {
    CAPTURE(k);
    CHECK(ctbpf_ilog2(uint64_t{1} << k) == k);
    CHECK(ctbpf_ilog2((uint64_t{1} << k) - 1) == k - 1);
  }
}

TEST_CASE("chain slots are exact for short chains") {
  for (uint64_t len = 0; len < CTBPF_CHAIN_LINEAR; ++len) CHECK(ctbpf_chain_slot(len) == len);
  CHECK(ctbpf_chain_slot(32) == CTBPF_CHAIN_LINEAR);
  CHECK(ctbpf_chain_slot(63) == CTBPF_CHAIN_LINEAR);
  CHECK(ctbpf_chain_slot(64) == CTBPF_CHAIN_LINEAR + 1);
}
