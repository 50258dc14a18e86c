// SPDX-License-Identifier: Apache-2.0
#pragma once
// Ring-buffer records as the BPF side writes them, for the unit tests of what reads them.
#include <cstdint>

#include "ctbpf/abi.h"

/// A drop event of `cause` (enum ctbpf_counter) in netns `netns`, without a tuple (as table_full's).
inline ctbpf_event drop_event(uint32_t cause, uint32_t netns) {
  ctbpf_event e{};
  e.kind = CTBPF_EV_DROP;
  e.cause = cause;
  e.netns = netns;
  return e;
}
