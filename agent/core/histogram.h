/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// Histograms with the kernel's slot layout (include/ctbpf/slots.h): counts per slot, the upper bound of
// each slot as its label, percentiles answered with the upper bound of the slot that holds them.
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace ctbpf::core {

enum class SlotKind { log2, chain };

/// Inclusive upper bound of a slot: the value printed as "le".
uint64_t slot_upper_bound(SlotKind kind, std::size_t slot);
/// Number of slots the kernel keeps for this kind.
std::size_t slot_count(SlotKind kind);

class Histogram {
public:
  explicit Histogram(SlotKind kind);
  Histogram(SlotKind kind, std::span<const uint64_t> slots, uint64_t sum);

  SlotKind kind() const { return kind_; }
  const std::vector<uint64_t>& slots() const { return slots_; }
  uint64_t sum() const { return sum_; }
  uint64_t count() const;
  double mean() const;
  /// Upper bound of the slot holding the p-quantile (0 < p <= 1), never above exact_max(); 0 when empty.
  uint64_t percentile(double p) const;
  /// Upper bound of the highest non-empty slot, never above exact_max(); 0 when empty.
  uint64_t max_bound() const;
  /// The largest value counted, when its source knows it exactly (the kernel's longest chain, the
  /// longest idle time of a dump). A slot's upper bound can lie above it (a log2 slot [16 s, 32 s)
  /// holding a 30 s maximum); percentiles are clamped to it, so no view prints p99 above max.
  void set_exact_max(uint64_t max) { exact_max_ = max; }
  const std::optional<uint64_t>& exact_max() const { return exact_max_; }

  /// Adds another histogram of the same kind (per-CPU merge); the exact max survives only when
  /// both sides know theirs (or one is empty).
  void merge(const Histogram& other);
  /// this - earlier, slot by slot (counters only grow; a smaller value is clamped to 0). The exact max
  /// stays: a window's values are among those counted, so it still bounds them.
  Histogram minus(const Histogram& earlier) const;

private:
  SlotKind kind_;
  std::vector<uint64_t> slots_;
  uint64_t sum_ = 0;
  std::optional<uint64_t> exact_max_;
};

}  // namespace ctbpf::core
