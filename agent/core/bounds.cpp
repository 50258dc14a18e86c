// SPDX-License-Identifier: Apache-2.0
#include "core/bounds.h"

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include <fmt/format.h>

namespace ctbpf::core {

std::string bound_text(const Bound& b) {
  return fmt::format("{}{}..{}{}{}", b.min_exclusive ? ">" : "", b.min, b.max, *b.unit ? " " : "", b.unit);
}

std::string check_bound(std::string_view text, const Bound& b) {
  const std::string s(text);
  const char* what = b.integer ? "a whole number" : *b.unit ? "a number of seconds" : "a number";
  auto why = [&] {
    return fmt::format("must be {} from {}{} to {}, got '{}'", what, b.min_exclusive ? "above " : "", b.min, b.max,
                       s);
  };
  if (s.empty()) return why();
  char* end = nullptr;
  errno = 0;
  // strtod reads "inf", "nan" and "1e999" (HUGE_VAL, ERANGE): all refused below.
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || errno == ERANGE || !std::isfinite(v)) return why();
  if (b.integer && (v != std::floor(v) || s.find_first_of(".eExXpP") != std::string::npos)) return why();
  if (b.min_exclusive ? v <= b.min : v < b.min) return why();
  if (v > b.max) return why();
  const auto whole = static_cast<uint64_t>(v);
  if (b.power_of_two && (whole & (whole - 1)))
    return fmt::format("must be a power of two from {} to {}, got '{}'", b.min, b.max, s);
  return {};
}

}  // namespace ctbpf::core
