/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// What an error the kernel gave means for the user, where its errno alone does not say it. Pure.
#include <string>

#include "core/sample.h"

namespace ctbpf::core {

/// A reading of why `family` is unusable, from the reason its trial gave (kernel::Tracer::trial), for
/// a process that has the privileges ctbpf asks for (`privileged`); empty when the reason speaks for
/// itself.
std::string family_failure_reading(Mode family, const std::string& reason, bool privileged);

/// `text` with every line longer than `width` broken at its last space that fits, the rest indented
/// by the line's own indentation plus `hang`; a word longer than the width stays whole.
std::string wrap_lines(const std::string& text, std::size_t width = 100, std::size_t hang = 2);

}  // namespace ctbpf::core
