// SPDX-License-Identifier: Apache-2.0
#include "core/fields.h"

#include <fmt/format.h>

namespace ctbpf::core {

nlohmann::json value(const Count& c) { return c ? nlohmann::json(*c) : nlohmann::json(nullptr); }
nlohmann::json value(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }
std::string text(const Count& c) { return c ? fmt::format("{}", *c) : "-"; }

std::string kernel_counter_notes(const std::string& indent) {
  std::string out;
  for (const auto& counter : kKernelCounters)
    if (counter.note) out += fmt::format("{}{}: {}\n", indent, counter.key, counter.note);
  return out;
}

const DropCauseField* drop_cause(std::string_view key) {
  for (const auto& cause : kDropCauses)
    if (key == cause.key) return &cause;
  return nullptr;
}

std::array<const char*, std::size(kDropCauses)> drop_cause_keys() {
  std::array<const char*, std::size(kDropCauses)> keys{};
  for (std::size_t i = 0; i < keys.size(); ++i) keys[i] = kDropCauses[i].key;
  return keys;
}

}  // namespace ctbpf::core
