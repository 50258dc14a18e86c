// SPDX-License-Identifier: Apache-2.0
#include <doctest/doctest.h>

#include <sstream>

#include "core/readings.h"

using namespace ctbpf::core;

TEST_CASE("readings: an EPERM for a privileged ctbpf is read as the kernel's policy, in 100 columns") {
  const std::string eperm = "attaching fentry/nf_conntrack_confirm failed: Operation not permitted";
  const auto reading = family_failure_reading(Mode::fentry, eperm, true);
  CHECK(reading.find("fentry") != std::string::npos);
  CHECK(reading.find("lockdown") != std::string::npos);
  CHECK(reading.find("not a missing capability") != std::string::npos);
  std::istringstream lines(reading);
  for (std::string line; std::getline(lines, line);) CHECK(12 + line.size() <= 100);
  // Without the privileges the EPERM is the missing capability, which the reason already names.
  CHECK(family_failure_reading(Mode::fentry, eperm, false).empty());
  // A reason that speaks for itself gets no reading.
  CHECK(family_failure_reading(Mode::kprobe, "kernel function nf_ct_delete not found", true).empty());
}

TEST_CASE("wrap_lines: lines over the width break at a space, indented under their own") {
  CHECK(wrap_lines("short\n", 100) == "short\n");
  CHECK(wrap_lines("  aaa bbb ccc\nx", 9) == "  aaa bbb\n    ccc\nx");
  CHECK(wrap_lines("abcdefghijk", 5) == "abcdefghijk");  // one word: kept whole
  const auto long_line = "  kernel stats: " + std::string(40, 'x') + " " + std::string(40, 'y') + " " +
                         std::string(40, 'z') + "\n";
  const auto wrapped = wrap_lines(long_line, 100);
  CHECK(wrapped.find('\n') < 100);
  CHECK(wrapped.find("\n    " + std::string(40, 'z')) != std::string::npos);
}
