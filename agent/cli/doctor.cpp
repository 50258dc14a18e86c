// ctbpf doctor: observe conntrack for a window with the real tracer, read the sysctls and memory
// facts, and print the core's findings. Read-only: it loads BPF programs and reads files, nothing else.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "cli/commands.h"
#include "core/aggregator.h"
#include "core/doctor.h"
#include "kernel/error.h"
#include "kernel/memory.h"
#include "kernel/system.h"
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

// Same protocol as trace's: written under a temporary name and renamed, never seen half-written.
void write_ready_file(const std::string& path, core::Mode mode) {
  if (path.empty()) return;
  auto tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << core::to_string(mode) << '\n';
    if (!out) throw Error(kExitFailure, fmt::format("cannot write ready file {}", path));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error(kExitFailure, fmt::format("cannot write ready file {}", path));
}

core::Count delta(const std::optional<core::KernelStats>& before, const std::optional<core::KernelStats>& after,
            core::Count core::KernelStats::*field) {
  if (!before || !after || !((*before).*field) || !((*after).*field)) return std::nullopt;
  auto b = *((*before).*field), a = *((*after).*field);
  return a >= b ? a - b : 0;
}

}  // namespace

int run_doctor(const DoctorOptions& options) {
  kernel::Tracer::Options topts;
  if (options.mode != "auto") {
    topts.forced = core::mode_from_string(options.mode);
    if (!topts.forced) throw Error(kExitUsage, fmt::format("--mode: unknown mode '{}'", options.mode));
  }
  install_stop_handlers();

  auto tracer = kernel::Tracer::start(topts);
  core::Aggregator aggregator(tracer->mode(), tracer->observability());
  const auto first = tracer->sample();
  aggregator.add(first);
  write_ready_file(options.ready_file, tracer->mode());
  if (!options.json)
    std::fprintf(stderr, "ctbpf: doctor observing conntrack for %.0f s in %s mode (Ctrl-C ends it early)\n",
                 options.duration_s, core::to_string(tracer->mode()).c_str());

  // One sample a second: the peak count needs more than the two ends.
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const auto end = start + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(options.duration_s));
  auto next_tick = start + std::chrono::seconds(1);
  std::optional<uint64_t> peak = first.table.count;
  auto note_peak = [&](const core::Sample& s) {
    if (s.table.count) peak = std::max(peak.value_or(0), *s.table.count);
  };
  while (!g_stop && clock::now() < end) {
    if (clock::now() >= next_tick) {
      auto s = tracer->sample();
      note_peak(s);
      aggregator.add(s);
      next_tick += std::chrono::seconds(1);
    }
    // Short sleeps: a stop signal is noticed within 50 ms.
    std::this_thread::sleep_for(std::min<clock::duration>(std::chrono::milliseconds(50), end - clock::now()));
  }
  const auto last = tracer->sample();
  note_peak(last);
  aggregator.add(last);

  core::DoctorInput in;
  in.mode = tracer->mode();
  in.obs = tracer->observability();
  in.window = aggregator.summary();
  in.table_start = first.table;
  in.peak_count = peak;
  in.kernel_drop = delta(first.stats, last.stats, &core::KernelStats::drop);
  in.sysctls = kernel::read_conntrack_sysctls();
  in.system = kernel::read_system_facts();
  auto diagnosis = core::diagnose(in);

  if (options.json) {
    std::puts(core::doctor_json(in, diagnosis).dump().c_str());
  } else {
    std::fputs(core::doctor_text(in, diagnosis).c_str(), stdout);
  }
  std::fflush(stdout);
  return kExitOk;
}

}  // namespace ctbpf::cli
