// SPDX-License-Identifier: Apache-2.0
#include "core/histogram.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "ctbpf/slots.h"

namespace ctbpf::core {

std::size_t slot_count(SlotKind kind) {
  return kind == SlotKind::log2 ? CTBPF_LOG2_SLOTS : CTBPF_CHAIN_SLOTS;
}

uint64_t slot_upper_bound(SlotKind kind, std::size_t slot) {
  if (kind == SlotKind::chain) {
    if (slot < CTBPF_CHAIN_LINEAR) return slot;
    // First log2 slot is [32, 63].
    return (uint64_t{1} << (slot - CTBPF_CHAIN_LINEAR + 6)) - 1;
  }
  if (slot == 0) return 0;
  return (uint64_t{1} << slot) - 1;
}

Histogram::Histogram(SlotKind kind) : kind_(kind), slots_(slot_count(kind), 0) {}

Histogram::Histogram(SlotKind kind, std::span<const uint64_t> slots, uint64_t sum)
    : kind_(kind), slots_(slot_count(kind), 0), sum_(sum) {
  if (slots.size() != slots_.size()) throw std::invalid_argument("histogram: wrong slot count");
  std::copy(slots.begin(), slots.end(), slots_.begin());
}

uint64_t Histogram::count() const {
  uint64_t n = 0;
  for (auto v : slots_) n += v;
  return n;
}

double Histogram::mean() const {
  auto n = count();
  return n ? static_cast<double>(sum_) / static_cast<double>(n) : 0.0;
}

uint64_t Histogram::percentile(double p) const {
  auto n = count();
  if (n == 0) return 0;
  // The rank of the p-quantile, 1-based: the smallest value with at least p*n values at or below it.
  auto rank = static_cast<uint64_t>(std::ceil(p * static_cast<double>(n)));
  rank = std::clamp<uint64_t>(rank, 1, n);
  auto clamp = [&](uint64_t bound) { return exact_max_ ? std::min(bound, *exact_max_) : bound; };
  uint64_t seen = 0;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    seen += slots_[i];
    if (seen >= rank) return clamp(slot_upper_bound(kind_, i));
  }
  return clamp(slot_upper_bound(kind_, slots_.size() - 1));
}

uint64_t Histogram::max_bound() const {
  for (std::size_t i = slots_.size(); i-- > 0;)
    if (slots_[i]) return exact_max_ ? std::min(slot_upper_bound(kind_, i), *exact_max_) : slot_upper_bound(kind_, i);
  return 0;
}

void Histogram::merge(const Histogram& other) {
  if (other.kind_ != kind_) throw std::invalid_argument("histogram: merging different kinds");
  if (other.count() == 0) return;
  if (count() == 0)
    exact_max_ = other.exact_max_;
  else if (exact_max_ && other.exact_max_)
    exact_max_ = std::max(*exact_max_, *other.exact_max_);
  else
    exact_max_.reset();
  for (std::size_t i = 0; i < slots_.size(); ++i) slots_[i] += other.slots_[i];
  sum_ += other.sum_;
}

Histogram Histogram::minus(const Histogram& earlier) const {
  Histogram out(kind_);
  for (std::size_t i = 0; i < slots_.size(); ++i)
    out.slots_[i] = slots_[i] >= earlier.slots_[i] ? slots_[i] - earlier.slots_[i] : 0;
  out.sum_ = sum_ >= earlier.sum_ ? sum_ - earlier.sum_ : 0;
  out.exact_max_ = exact_max_;
  return out;
}

}  // namespace ctbpf::core
