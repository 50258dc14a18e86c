/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
#include <optional>

#include "core/sample.h"

namespace ctbpf::kernel {

/// The kernel's conntrack statistics for this process's netns over ctnetlink (what `conntrack -S`
/// prints), summed over CPUs. Empty when ctnetlink does not answer (module absent, no permission).
std::optional<core::KernelStats> read_kernel_stats();

}  // namespace ctbpf::kernel
