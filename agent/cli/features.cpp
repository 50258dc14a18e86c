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

int run_features(const FeaturesOptions& options) {
  if (auto missing = kernel::missing_bpf_privileges()) throw Error(kExitUnsupported, *missing);
  using nlohmann::json;
  const bool conntrack = kernel::conntrack_present();

  json families = json::object();
  std::string mode, why;
  for (auto family : {core::Mode::fentry, core::Mode::kprobe, core::Mode::tracepoint}) {
    kernel::FamilyTrial trial{false, "nf_conntrack is not in the running kernel (modprobe nf_conntrack)"};
    if (conntrack) trial = kernel::Tracer::trial(family);
    families[core::to_string(family)] = {{"usable", trial.usable}, {"reason", trial.reason}};
    if (!conntrack) {
      // Not tried (ctbpf never loads the module): what should work once something loads it.
      auto [expected, why_expected] = kernel::family_once_loaded(family);
      families[core::to_string(family)]["once_loaded"] = {{"expected", expected}, {"reason", why_expected}};
    }
    if (trial.usable && mode.empty()) mode = core::to_string(family);
    if (!trial.usable) why += fmt::format("{} unusable: {}; ", core::to_string(family), trial.reason);
  }
  why += mode.empty() ? "no family works" : fmt::format("auto picks {}", mode);

  json causes = {
      {"table_full", kernel::btf_has_function("early_drop") || kernel::resolve_kernel_function("early_drop").has_value()},
      {"early_drop", kernel::resolve_kernel_function("early_drop").has_value()},
      {"chaintoolong", kernel::btf_has_member("ip_conntrack_stat", "chaintoolong")},
      {"clash_resolve", kernel::btf_has_member("ip_conntrack_stat", "clash_resolve")},
      {"netfilter_drop_reason",
       kernel::btf_has_enum_value("skb_drop_reason", "SKB_DROP_REASON_NETFILTER_DROP")},
  };
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
    for (auto& [name, f] : families.items()) {
      std::printf("%-11s %s\n", name.c_str(),
                  f["usable"].get<bool>() ? "usable"
                                          : ("unusable: " + f["reason"].get<std::string>()).c_str());
      if (f.contains("once_loaded"))
        std::printf("%-11s once nf_conntrack is loaded: %s (%s)\n", "",
                    f["once_loaded"]["expected"].get<bool>() ? "expected to work" : "not expected to work",
                    f["once_loaded"]["reason"].get<std::string>().c_str());
    }
    std::printf("mode        %s\n", mode.empty() ? "none" : mode.c_str());
    for (auto& [name, present] : causes.items())
      std::printf("cause %-22s %s\n", name.c_str(), present.get<bool>() ? "observable" : "absent");
  }
  return mode.empty() ? kExitUnsupported : kExitOk;
}

}  // namespace ctbpf::cli
