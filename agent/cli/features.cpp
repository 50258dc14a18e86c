#include <bpf/libbpf.h>
#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "kernel/error.h"
#include "kernel/system.h"
#include "kernel/tracer.h"

namespace ctbpf::cli {

namespace {

// The drop causes a run of `family` reports as numbers, from what its trial attached (a cause is null
// in trace/serve exactly when false here; core::derive). The probe families count from their own
// probes; tracepoint reads the kernel's counters, which exist only on kernels that count the cause.
nlohmann::json observable_causes(core::Mode family, const core::Observability& obs) {
  if (family != core::Mode::tracepoint)
    return {{"table_full", obs.early_drop},
            {"early_drop", obs.early_drop},
            {"chaintoolong", obs.resolve_clash && obs.kernel_has_chaintoolong},
            {"clash_resolve", obs.resolve_clash},
            {"netfilter_drop_reason", obs.netfilter_drop_reason}};
  return {{"table_full", false},
          {"early_drop", true},
          {"chaintoolong", obs.kernel_has_chaintoolong},
          {"clash_resolve", kernel::btf_has_member("ip_conntrack_stat", "clash_resolve")},
          {"netfilter_drop_reason", obs.netfilter_drop_reason}};
}

}  // namespace

int run_features(const FeaturesOptions& options) {
  if (auto missing = kernel::missing_bpf_privileges()) throw Error(kExitUnsupported, *missing);
  using nlohmann::json;
  const bool conntrack = kernel::conntrack_present();

  json families = json::object();
  json causes = observable_causes(core::Mode::tracepoint, {});
  for (auto& [name, present] : causes.items()) present = false;
  std::string mode, why;
  for (auto family : {core::Mode::fentry, core::Mode::kprobe, core::Mode::tracepoint}) {
    kernel::FamilyTrial trial{false, "nf_conntrack is not in the running kernel (modprobe nf_conntrack)", {}};
    if (conntrack) trial = kernel::Tracer::trial(family);
    auto family_causes = trial.usable ? observable_causes(family, trial.observable) : json(nullptr);
    families[core::to_string(family)] = {{"usable", trial.usable}, {"reason", trial.reason}, {"causes", family_causes}};
    if (trial.usable && mode.empty()) {
      mode = core::to_string(family);
      causes = family_causes;
    }
    if (!trial.usable) why += fmt::format("{} unusable: {}; ", core::to_string(family), trial.reason);
  }
  why += mode.empty() ? "no family works" : fmt::format("auto picks {}", mode);

  json report = {
      {"kernel", kernel::kernel_release()},
      {"btf", access("/sys/kernel/btf/vmlinux", R_OK) == 0},
      {"ringbuf", libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr) == 1},
      {"conntrack", conntrack},
      {"families", families},
      {"mode", mode.empty() ? json(nullptr) : json(mode)},
      {"why", why},
      {"causes", causes},
  };

  if (options.json) {
    std::puts(report.dump().c_str());
  } else {
    std::printf("kernel      %s\n", kernel::kernel_release().c_str());
    std::printf("btf         %s\n", report["btf"].get<bool>() ? "yes" : "no");
    std::printf("ringbuf     %s\n", report["ringbuf"].get<bool>() ? "yes" : "no");
    std::printf("conntrack   %s\n", conntrack ? "yes" : "no (modprobe nf_conntrack)");
    for (auto& [name, f] : families.items())
      std::printf("%-11s %s\n", name.c_str(),
                  f["usable"].get<bool>() ? "usable"
                                          : ("unusable: " + f["reason"].get<std::string>()).c_str());
    std::printf("mode        %s\n", mode.empty() ? "none" : mode.c_str());
    // Observable in the mode auto picks, then every usable family that observes the cause.
    for (auto& [name, present] : causes.items()) {
      std::string in;
      for (auto& [family, f] : families.items())
        if (f["causes"].is_object() && f["causes"][name].get<bool>()) in += (in.empty() ? "" : " ") + family;
      std::printf("cause %-22s %s%s\n", name.c_str(), present.get<bool>() ? "observable" : "absent",
                  in.empty() ? "" : (" (families: " + in + ")").c_str());
    }
  }
  return mode.empty() ? kExitUnsupported : kExitOk;
}

}  // namespace ctbpf::cli
