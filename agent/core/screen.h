/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// The live terminal view of `ctbpf trace`, redrawn in place like top(1). Pure: returns the frame.
#include <string>

#include "core/aggregator.h"

namespace ctbpf::core {

struct ScreenInput {
  Mode mode = Mode::tracepoint;
  const Report* interval = nullptr;  // the last interval
  const Report* total = nullptr;     // since start
  uint64_t events_suppressed = 0;
  int width = 100;
  uint32_t chain_one_in = 1;  // chains walked for 1 insert in this many per CPU
  int height = 24;            // the terminal's rows: the frame keeps to one fewer, so its title stays
  std::string netns{};        // netns_label() of the netns whose table is shown; "" unknown
  std::string elsewhere{};    // other_netns_hint() at start; "" when no other named netns holds entries
};

/// The frame, starting with the escape codes that home the cursor and clear the screen; at most
/// in.height - 1 lines (histograms give up their shortest rows first), each within 80 columns but
/// for the bars, which follow in.width.
std::string render_screen(const ScreenInput& in);

/// A bar of `width` cells, `fraction` (0..1) of them filled.
std::string bar(double fraction, int width);

}  // namespace ctbpf::core
