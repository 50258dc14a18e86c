#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "cli/commands.h"
#include "core/aggregator.h"
#include "core/render.h"
#include "kernel/error.h"
#include "kernel/tracer.h"

namespace ctbpf::cli {

namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_stop_signal(int) { g_stop = 1; }

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
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

void print(const std::string& line) {
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

}  // namespace

int run_trace(const TraceOptions& options) {
  kernel::Tracer::Options tracer_options;
  if (options.mode != "auto") tracer_options.forced = core::mode_from_string(options.mode);
  install_stop_handlers();

  auto tracer = kernel::Tracer::start(tracer_options);
  core::Aggregator aggregator(tracer->mode(), tracer->observability());
  aggregator.add(tracer->sample());
  write_ready_file(options.ready_file, tracer->mode());
  if (!options.json)
    std::fprintf(stderr, "ctbpf: tracing conntrack in %s mode; Ctrl-C prints the summary\n",
                 core::to_string(tracer->mode()).c_str());

  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const auto interval = std::chrono::duration<double>(options.interval_s);
  auto next_tick = start + std::chrono::duration_cast<clock::duration>(interval);
  std::optional<clock::time_point> end;
  if (options.duration_s)
    end = start + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(*options.duration_s));

  auto emit = [&](const core::Report& r) {
    print(options.json ? core::interval_json(r).dump() : core::interval_line(r));
  };

  while (!g_stop) {
    auto now = clock::now();
    if (end && now >= *end) break;
    if (now >= next_tick) {
      if (auto r = aggregator.add(tracer->sample())) emit(*r);
      next_tick += std::chrono::duration_cast<clock::duration>(interval);
      continue;
    }
    auto wake = end ? std::min(next_tick, *end) : next_tick;
    // Short naps: a stop signal is noticed within 50 ms.
    std::this_thread::sleep_for(std::min<clock::duration>(wake - now, std::chrono::milliseconds(50)));
  }

  // The tail since the last tick belongs to the summary (and to a last, shorter interval).
  if (auto r = aggregator.add(tracer->sample()); r && r->duration() > 0.05) emit(*r);
  auto summary = aggregator.summary();
  if (options.json)
    print(core::summary_json(summary, tracer->mode()).dump());
  else
    std::fputs(core::summary_text(summary, tracer->mode()).c_str(), stdout);
  return kExitOk;
}

}  // namespace ctbpf::cli
