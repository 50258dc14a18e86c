// SPDX-License-Identifier: Apache-2.0
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/readings.h"
#include "core/render.h"
#include "kernel/attribution_sources.h"
#include "kernel/netlink_stats.h"
#include "kernel/error.h"
#include "kernel/system.h"
#include "kernel/tracer.h"

namespace ctbpf::cli {

namespace {

struct FeaturesOptions {
  bool json = false;
};

// The text view of the report: what it says, read back from the JSON so the two never differ.
void print_families(const nlohmann::json& families) {
  // Whether this process lacks a capability that `family` needs (then an EPERM is that, not policy).
  const auto needs = kernel::privilege_needs();
  auto privileged_for = [&](const std::string& family) {
    for (const auto& need : needs)
      if (need.feature == family && need.missing) return false;
    return true;
  };
  for (auto& [name, f] : families.items()) {
    std::fputs(core::wrap_lines(fmt::format("{:<11} {}\n", name,
                                            f["usable"].get<bool>() ? "usable"
                                                                    : "unusable: " + f["reason"].get<std::string>()),
                                100, 12)
                   .c_str(),
               stdout);
    if (!f["usable"].get<bool>()) {
      auto reading = core::family_failure_reading(*core::mode_from_string(name), f["reason"].get<std::string>(),
                                                  privileged_for(name));
      for (std::size_t at = 0, end = 0; at < reading.size(); at = end + 1) {
        end = std::min(reading.find('\n', at), reading.size());
        std::printf("%-11s %s\n", "", reading.substr(at, end - at).c_str());
      }
    }
    if (f.contains("once_loaded"))
      std::printf("%-11s once nf_conntrack is loaded: %s (%s)\n", "",
                  f["once_loaded"]["expected"].get<bool>() ? "expected to work" : "not expected to work",
                  f["once_loaded"]["reason"].get<std::string>().c_str());
  }
}

void print_text(const nlohmann::json& report, const std::string& mode, bool picked) {
  const auto& causes = report["causes"];
  const auto& observable = report["observable"];
  std::printf("kernel      %s\n", report["kernel"].get<std::string>().c_str());
  std::printf("btf         %s\n", report["btf"].get<bool>() ? "yes" : "no");
  std::printf("ringbuf     %s\n", report["ringbuf"].get<bool>() ? "yes" : "no");
  std::printf("conntrack   %s\n", report["conntrack"].get<bool>() ? "yes" : "no (modprobe nf_conntrack)");
  print_families(report["families"]);
  std::printf("mode        %s\n", mode.empty() ? "none" : mode.c_str());
  for (auto& [name, present] : causes.items())
    std::printf("cause %-22s %s\n", name.c_str(),
                present.get<bool>() ? "observable" : fmt::format("not observable in {} mode", mode).c_str());
  if (picked) {
    std::string shown, hidden;
    for (const char* key : {"allocs", "inserts", "destroys", "deletes", "chain_length", "lifetime_ms",
                            "nat_blackholes", "dns_races"})
      (observable[key].get<bool>() ? shown : hidden) += std::string(" ") + key;
    (observable["table"]["growth"].get<bool>() ? shown : hidden) += " table_growth";
    (observable["kernel_stats"]["drop"].get<bool>() ? shown : hidden) += " kernel_stats";
    std::printf("shows      %s\n", shown.empty() ? " -" : shown.c_str());
    if (!hidden.empty()) std::printf("not shown  %s (null / -)\n", hidden.c_str());
    const auto netns = core::netns_label(core::own_netns_json(kernel::own_netns()));
    std::fputs(core::wrap_lines(core::scope_text(*core::mode_from_string(mode), netns) + "\n").c_str(), stdout);
  }
  // What only the probe families show: under their own heading when the mode used here is tracepoint.
  const bool probe_lines_apply = mode != "tracepoint";
  if (!probe_lines_apply) std::printf("only with fentry or kprobe (not in %s mode):\n", mode.c_str());
  const char* indent = probe_lines_apply ? "" : "  ";
  std::printf("%sskipped kprobe hits  %s\n", indent, report["kprobe_misses_reported"].get<bool>()
                                               ? "counted (probe_misses.kprobe)"
                                               : "not reported by this kernel (6.7+): probe_misses.kprobe is null");
  const nlohmann::json& undelivered = report["undelivered_deletes_counted"];
  std::printf("%sundelivered deletes  %s\n", indent,
              undelivered.is_null() ? "unknown until nf_conntrack is loaded"
              : undelivered.get<bool>()
                  ? "counted in deletes, also when the destroy event waits for conntrackd"
                  : "not told apart before 5.19: with conntrackd listening, deletes may fall short\n"
                    "                     of destroys");
}

int run_features(const FeaturesOptions& options) {
  if (auto missing = kernel::missing_bpf_privileges()) throw Error(kExitUnsupported, *missing);
  using nlohmann::json;
  const bool conntrack = kernel::conntrack_present();

  json families = json::object();
  std::string mode, why;
  std::optional<core::Observability> picked;
  // The kernel's own counters as they answer now: what each family would show is run through the same
  // path as trace, serve and snapshots (core::observable_json).
  core::Sample probe;
  if (conntrack) {
    probe.stats = kernel::read_kernel_stats();
    probe.table = kernel::read_table_gauge();
  }
  auto causes_of = [&](core::Mode family, const core::Observability& obs) {
    json shown = core::observable_json(probe, family, obs);
    json causes = shown["drops"];
    causes["netfilter_drop_reason"] = shown["netfilter_drops"];
    return causes;
  };
  for (auto family : {core::Mode::fentry, core::Mode::kprobe, core::Mode::tracepoint}) {
    kernel::FamilyTrial trial{false, "nf_conntrack is not in the running kernel (modprobe nf_conntrack)", {}};
    if (conntrack) trial = kernel::Tracer::trial(family);
    families[core::to_string(family)] = {{"usable", trial.usable},
                                         {"reason", trial.reason},
                                         {"causes", trial.usable ? causes_of(family, trial.obs) : json(nullptr)}};
    if (!conntrack) {
      // Not tried (ctbpf never loads the module): what should work once something loads it.
      auto [expected, why_expected] = kernel::family_once_loaded(family);
      families[core::to_string(family)]["once_loaded"] = {{"expected", expected}, {"reason", why_expected}};
    }
    if (trial.usable && mode.empty()) {
      mode = core::to_string(family);
      picked = trial.obs;
    }
    if (!trial.usable) why += fmt::format("{} unusable: {}; ", core::to_string(family), trial.reason);
  }
  why += mode.empty() ? "no family works" : fmt::format("auto picks {}", mode);

  // What the mode auto picks shows, field by field.
  json observable = nullptr;
  json causes = json::object();
  if (picked) {
    observable = core::observable_json(probe, *core::mode_from_string(mode), *picked);
    causes = causes_of(*core::mode_from_string(mode), *picked);
  }
  json report = {
      {"kernel", kernel::kernel_release()},
      {"btf", access("/sys/kernel/btf/vmlinux", R_OK) == 0},
      {"ringbuf", libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr) == 1},
      {"conntrack", conntrack},
      {"families", families},
      {"mode", mode.empty() ? json(nullptr) : json(mode)},
      {"why", why},
      {"causes", causes},
      {"observable", observable},
      // Skipped program runs: fentry and tracepoint programs' are always counted (probe_misses.recursion);
      // kprobe hits the kernel skips are reported from 6.7 on (probe_misses.kprobe), unknown before.
      {"kprobe_misses_reported", kernel::btf_has_nested_member("bpf_link_info", "missed")},
      // A delete whose destroy event a reliable ctnetlink listener (conntrackd) could not take at once
      // is told from a lost race from 5.19 on, where netns_ct lost its per-CPU lists (core_fixes.bpf.h,
      // ct_delete_undelivered()); null until nf_conntrack is loaded.
      {"undelivered_deletes_counted",
       conntrack ? json(!kernel::btf_has_member("netns_ct", "pcpu_lists")) : json(nullptr)},
  };

  if (options.json)
    std::puts(report.dump().c_str());
  else
    print_text(report, mode, picked.has_value());
  return mode.empty() ? kExitUnsupported : kExitOk;
}

}  // namespace

Command add_features(CLI::App& parent) {
  auto o = std::make_shared<FeaturesOptions>();
  auto* cmd = parent.add_subcommand(
      "features", "What this kernel offers: BTF, ring buffer, which attach families work (by trial)");
  cmd->add_flag("--json", o->json, "One JSON object on stdout");
  cmd->footer("Examples:\n"
             "  ctbpf features                    # which attach families work here, and what each shows\n"
             "  ctbpf features --json | jq .mode  # the family trace and serve would pick");
  return {cmd, [o] { return run_features(*o); }};
}
}  // namespace ctbpf::cli
