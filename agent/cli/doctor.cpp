// SPDX-License-Identifier: Apache-2.0
// ctbpf doctor: observe conntrack for a window with the real tracer, read the sysctls and memory
// facts, and print the core's findings. Read-only: it loads BPF programs and reads files, nothing else.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <set>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/trace_loop.h"
#include "core/aggregator.h"
#include "core/doctor.h"
#include "core/idle.h"
#include "kernel/attribution_sources.h"
#include "kernel/error.h"
#include "kernel/memory.h"
#include "kernel/system.h"
#include "kernel/tracer.h"

namespace ctbpf::cli {

namespace {

struct DoctorOptions {
  double duration_s = 10.0;
  bool json = false;
  std::string mode = "auto";
  std::string ready_file;
  core::DumpLimit dump;
};

core::Count delta(const std::optional<core::KernelStats>& before, const std::optional<core::KernelStats>& after,
            core::Count core::KernelStats::*field) {
  if (!before || !after || !((*before).*field) || !((*after).*field)) return std::nullopt;
  auto b = *((*before).*field), a = *((*after).*field);
  return a >= b ? a - b : 0;
}

// Idle times of this netns's live entries: one ctnetlink dump. On a huge table it stops at the
// --dump-max-* bounds (bounded time and no memory per entry) and says so; the dump goes in hash order,
// which has nothing to do with age, so the first entries are a fair sample.
std::optional<core::IdleSummary> read_idle(const std::map<std::string, uint64_t>& sysctls,
                                           const core::DumpLimit& limit, core::UnansweredNat* unanswered = nullptr) {
  core::IdleSummary idle;
  idle.dump = kernel::dump_table(limit, [&](const core::DumpedEntry& e) {
    core::add_idle(idle, e, sysctls);
    if (unanswered) core::add_unanswered(*unanswered, e);
  });
  if (!idle.dump.ok) return std::nullopt;
  return idle;
}

// The netns where NAT'd traffic died or raced: named, with how to run the fix there.
void name_nat_netns(core::DoctorInput& in) {
  std::set<uint32_t> netns;
  if (in.window.totals.nat_blackholes)
    for (const auto& f : *in.window.totals.nat_blackholes) netns.insert(f.netns);
  if (in.window.totals.dns_races)
    for (const auto& r : *in.window.totals.dns_races) netns.insert(r.netns);
  kernel::NetnsNamer namer;
  for (auto inode : netns) {
    if (auto name = namer.name(inode); !name.empty()) in.netns_names[inode] = name;
    if (auto prefix = kernel::enter_netns_prefix(inode)) in.netns_enter[inode] = *prefix;
  }
}

/// Observes for duration_s, then prints findings with the commands to fix them. Changes nothing.
int run_doctor(const DoctorOptions& options) {
  kernel::Tracer::Options topts;
  topts.track_ports = true;
  auto tracer = start_tracer(options.mode, topts);
  core::Aggregator aggregator(tracer->mode(), tracer->observability());
  // The table per protocol and TCP state at the window's start: what it grows by, next to the end's.
  const auto idle_start = read_idle(kernel::read_conntrack_sysctls(), options.dump);
  const auto first = tracer->sample();
  aggregator.add(first);
  write_ready_file(options.ready_file, tracer->mode());
  if (!options.json)
    std::fprintf(stderr, "ctbpf: doctor observing conntrack for %.0f s in %s mode (Ctrl-C ends it early)\n",
                 options.duration_s, core::to_string(tracer->mode()).c_str());

  // One sample a second: the peak count needs more than the two ends.
  // The counts over time: the time-to-full forecast uses only their part after the entries' timeout.
  std::optional<uint64_t> peak = first.table.count;
  std::vector<core::CountAt> counts;
  if (first.table.count) counts.push_back({0.0, *first.table.count});
  core::Sample last = first;
  run_sample_loop(*tracer, aggregator, 1.0, options.duration_s, [](std::span<const std::byte>) {},
                  [&](const core::Report&, const core::Sample& s, bool) {
                    if (s.table.count) {
                      peak = std::max(peak.value_or(0), *s.table.count);
                      counts.push_back({s.t_s - first.t_s, *s.table.count});
                    }
                    last = s;
                  });

  core::DoctorInput in;
  in.mode = tracer->mode();
  in.obs = tracer->observability();
  in.window = aggregator.summary();
  name_nat_netns(in);
  in.table_start = first.table;
  in.peak_count = peak;
  in.counts = std::move(counts);
  in.kernel_drop = delta(first.stats, last.stats, &core::KernelStats::drop);
  in.sysctls = kernel::read_conntrack_sysctls();
  in.own_netns = kernel::own_netns();
  core::UnansweredNat unanswered;
  in.idle = read_idle(in.sysctls, options.dump, &unanswered);
  if (in.idle) in.unanswered_nat = unanswered;
  in.idle_start = idle_start;
  for (const char* name : {"tcp_timestamps", "tcp_tw_reuse", "tcp_retries2"})
    if (auto v = kernel::read_number(std::string("/proc/sys/net/ipv4/") + name)) in.tcp_sysctls[name] = *v;
  in.system = kernel::read_system_facts();
  if (tracer->observability().conntrack_points) {
    // The map starts empty at load, so its totals are the window's; busiest first.
    std::vector<core::PortCount> ports;
    for (const auto& [key, inserts] : tracer->ports()) ports.push_back({key.first, key.second, inserts});
    std::sort(ports.begin(), ports.end(), [](const auto& a, const auto& b) { return a.inserts > b.inserts; });
    if (ports.size() > 20) ports.resize(20);
    in.top_ports = ports;
  }
  auto diagnosis = core::diagnose(in);

  if (options.json) {
    std::puts(core::doctor_json(in, diagnosis).dump().c_str());
  } else {
    std::fputs(core::doctor_text(in, diagnosis).c_str(), stdout);
  }
  std::fflush(stdout);
  return kExitOk;
}

}  // namespace

Command add_doctor(CLI::App& parent) {
  auto o = std::make_shared<DoctorOptions>();
  auto* cmd = parent.add_subcommand(
      "doctor",
      "Observe conntrack for a while (-d), then print findings: table fill and time to full, chain\n"
      "length, drop causes, timeouts, memory, stateless traffic; each with the commands to fix it.\n"
      "Read-only: it changes nothing.");
  cmd->add_option("-d,--duration", o->duration_s, "Seconds to observe")
      ->check(bounded(core::kDurationSeconds))->default_val(10.0);
  cmd->add_flag("--json", o->json, "One JSON object: inputs, the trace summary, findings");
  add_mode_option(*cmd, o->mode);
  add_dump_options(*cmd, o->dump,
                   "doctor dumps it at the\n"
                   "window's start and end for idle times and live entries per protocol and TCP\n"
                   "state; past the bound they are those of the entries read (a fair sample: the\n"
                   "dump goes in hash order, not by age).");
  add_ready_file_option(*cmd, o->ready_file, "Write this file once every program is attached (for scripts and tests)");
  cmd->footer("Examples:\n"
             "  ctbpf doctor                     # watch 10 s, then findings and the commands that fix them\n"
             "  ctbpf doctor -d 60 --json        # a minute, as one JSON object\n"
             "  ip netns exec NAME ctbpf doctor  # the table of netns NAME");
  return {cmd, [o] { return run_doctor(*o); }};
}
}  // namespace ctbpf::cli
