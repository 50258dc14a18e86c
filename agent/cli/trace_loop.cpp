// SPDX-License-Identifier: Apache-2.0
// The sampling loop and its signals, shared by trace, snapshot, top and doctor (see trace_loop.h).
#include "cli/trace_loop.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>

#include <fmt/format.h>

#include "kernel/error.h"

namespace ctbpf::cli {

namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_stop_signal(int) { g_stop = 1; }

}  // namespace

bool stop_requested() { return g_stop != 0; }

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

std::unique_ptr<kernel::Tracer> start_tracer(const std::string& mode, kernel::Tracer::Options options) {
  if (mode != "auto") options.forced = core::mode_from_string(mode);
  install_stop_handlers();
  return kernel::Tracer::start(options);
}

void write_ready_file(const std::string& path, core::Mode mode) {
  if (path.empty()) return;
  // Written to a temporary name and renamed, so a waiter never reads a half-written file.
  auto tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << core::to_string(mode) << '\n';
    if (!out) throw Error(kExitFailure, fmt::format("cannot write ready file {}", path));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error(kExitFailure, fmt::format("cannot write ready file {}", path));
}

void run_sample_loop(kernel::Tracer& tracer, core::Aggregator& aggregator, double interval_s,
                     std::optional<double> duration_s, const kernel::Tracer::EventHandler& on_event,
                     const IntervalHandler& on_interval, uint64_t count) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const auto interval = std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(interval_s));
  auto next_tick = start + interval;
  std::optional<clock::time_point> end;
  if (duration_s)
    end = start + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(*duration_s));
  // The same integer arithmetic as next_tick: the count-th tick is the end exactly, so the loop stops
  // there (the end is checked first) and the count-th interval is the tail.
  if (count) end = std::min(end.value_or(clock::time_point::max()), start + interval * static_cast<int64_t>(count));

  while (!stop_requested()) {
    auto now = clock::now();
    if (end && now >= *end) break;
    if (now >= next_tick) {
      auto sample = tracer.sample();
      if (auto r = aggregator.add(sample)) on_interval(*r, sample, false);
      next_tick += interval;
      continue;
    }
    auto wake = end ? std::min(next_tick, *end) : next_tick;
    // Short waits: a stop signal is noticed within 50 ms even without events.
    auto wait = std::min<clock::duration>(wake - now, std::chrono::milliseconds(50));
    tracer.poll_events(static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(wait).count()) + 1,
                       on_event);
    std::fflush(stdout);
  }

  // The tail since the last tick belongs to the summary (and to a last, shorter interval); events
  // still in the ring are delivered before it, so "delivered + lost" covers the whole run.
  auto sample = tracer.sample();
  auto last = aggregator.add(sample);
  tracer.drain_events(on_event);
  if (last) on_interval(*last, sample, true);
}

}  // namespace ctbpf::cli
