/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// Readers of the memory facts doctor needs: what one conntrack entry really costs (its slab object),
// total RAM, and whether nf_conntrack is a module (which decides where a persistent hashsize goes).
#include "core/doctor.h"

namespace ctbpf::kernel {

/// Slab object size of nf_conntrack (/proc/slabinfo's objsize, else SLUB's
/// /sys/kernel/slab/nf_conntrack/slab_size), MemTotal, and the build of nf_conntrack.
core::SystemFacts read_system_facts();

}  // namespace ctbpf::kernel
