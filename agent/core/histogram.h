#pragma once
// Histograms with the kernel's slot layout (include/ctbpf/slots.h): counts per slot, the upper bound of
// each slot as its label, percentiles answered with the upper bound of the slot that holds them.
#include <cstdint>
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
  /// Upper bound of the slot holding the p-quantile (0 < p <= 1); 0 when empty.
  uint64_t percentile(double p) const;
  /// Upper bound of the highest non-empty slot; 0 when empty.
  uint64_t max_bound() const;

  /// Adds another histogram of the same kind (per-CPU merge).
  void merge(const Histogram& other);
  /// this - earlier, slot by slot (counters only grow; a smaller value is clamped to 0).
  Histogram minus(const Histogram& earlier) const;

private:
  SlotKind kind_;
  std::vector<uint64_t> slots_;
  uint64_t sum_ = 0;
};

}  // namespace ctbpf::core
