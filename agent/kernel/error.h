/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
#include <stdexcept>
#include <string>

namespace ctbpf {

/// Exit codes of the CLI contract (docs/json.md).
enum ExitCode : int { kExitOk = 0, kExitFailure = 1, kExitUsage = 2, kExitUnsupported = 3 };

/// An error with the exit code it deserves and a one-line message that says what to do.
class Error : public std::runtime_error {
public:
  Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ExitCode code() const { return code_; }

private:
  ExitCode code_;
};

}  // namespace ctbpf
