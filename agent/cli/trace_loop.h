/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// What `trace`, `snapshot`, `top`, `doctor` and `serve` share (cli/trace_loop.cpp): stop signals, the ready file, and the one
// sampling loop, so a snapshot's intervals are exactly the ones `trace --json` would print.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "core/aggregator.h"
#include "kernel/tracer.h"

namespace ctbpf::cli {

/// Ctrl-C and SIGTERM end run_sample_loop; what was measured is still printed or written.
void install_stop_handlers();
/// True once Ctrl-C or SIGTERM arrived (for loops of their own, like serve's).
bool stop_requested();

/// The start-up every tracing command shares: `mode` (--mode, checked by add_mode_option) forced
/// unless "auto", the stop handlers installed, and the programs loaded and attached, with the
/// privilege and degradation messages Tracer::start gives.
std::unique_ptr<kernel::Tracer> start_tracer(const std::string& mode, kernel::Tracer::Options options);

/// Writes the mode to `path` (atomically) once every program is attached; no-op when empty.
void write_ready_file(const std::string& path, core::Mode mode);

/// Called with each closed interval and the sample that closed it; `tail` marks the last one, from
/// the last tick to the stop (shorter than the others).
using IntervalHandler = std::function<void(const core::Report& interval, const core::Sample& sample, bool tail)>;

/// Samples every interval_s until a stop signal, duration_s or `count` intervals (0: no count),
/// delivering ring-buffer events to on_event in between. With a count, the last interval is the
/// tail and is a full one. The aggregator must have its baseline sample already.
void run_sample_loop(kernel::Tracer& tracer, core::Aggregator& aggregator, double interval_s,
                     std::optional<double> duration_s, const kernel::Tracer::EventHandler& on_event,
                     const IntervalHandler& on_interval, uint64_t count = 0);

}  // namespace ctbpf::cli
