// SPDX-License-Identifier: Apache-2.0
// doctor's fixes: the exact commands that change a sysctl or the hash size now and across reboots.
#include <fmt/format.h>

#include "core/doctor_rules.h"

namespace ctbpf::core::doctor_rules {

using nlohmann::json;

const char* const kSysctlFile = "/etc/sysctl.d/90-conntrack.conf";

std::string sysctl_now(const std::string& name, uint64_t value) {
  // The table's size is global: in any netns but the initial one the kernel makes these read-only
  // (nf_conntrack_standalone.c), so a doctor run inside a container's netns must not suggest otherwise.
  const bool global = name == "max" || name == "buckets" || name == "expect_max";
  return fmt::format("sysctl -w net.netfilter.nf_conntrack_{}={}{}", name, value,
                     global ? "  # from the initial network namespace" : "");
}

// Sysctls for boot. Where conntrack is a module, systemd-sysctl runs before anything loads it and
// the nf_conntrack_* lines fail ("cannot stat"): loading it from modules-load.d first fixes that.
std::vector<std::string> sysctl_persistent(const std::vector<std::pair<std::string, uint64_t>>& settings,
                                           ConntrackBuild build) {
  std::vector<std::string> out;
  if (build != ConntrackBuild::builtin)
    out.push_back(
        "echo nf_conntrack > /etc/modules-load.d/nf_conntrack.conf  # loaded before /etc/sysctl.d is "
        "applied at boot");
  for (const auto& [name, value] : settings)
    out.push_back(fmt::format("echo 'net.netfilter.nf_conntrack_{} = {}' >> {}", name, value, kSysctlFile));
  return out;
}

std::string hashsize_now(uint64_t buckets) {
  return fmt::format(
      "echo {} > /sys/module/nf_conntrack/parameters/hashsize  # from the initial network namespace",
      buckets);
}

std::vector<std::string> hashsize_persistent(uint64_t buckets, ConntrackBuild build) {
  auto modprobe = fmt::format("echo 'options nf_conntrack hashsize={}' > /etc/modprobe.d/nf_conntrack.conf",
                              buckets);
  auto grub = fmt::format(
      "sed -i 's/^GRUB_CMDLINE_LINUX=\"/&nf_conntrack.hashsize={} /' /etc/default/grub && update-grub"
      "  # Debian/Ubuntu",
      buckets);
  auto grubby =
      fmt::format("grubby --update-kernel=ALL --args=nf_conntrack.hashsize={}  # Fedora/RHEL", buckets);
  switch (build) {
    case ConntrackBuild::module: return {modprobe};
    case ConntrackBuild::builtin: return {grub, grubby};
    case ConntrackBuild::unknown: break;
  }
  return {modprobe + "  # if nf_conntrack is a module", grub + ", if built in", grubby + ", if built in"};
}

// The commands that apply a proposal (max, and buckets when they grow).
void add_proposal_fixes(const Facts& f, ConntrackBuild build, Finding& finding) {
  const auto& p = *f.proposal;
  finding.fix_now.push_back(sysctl_now("max", p.max));
  const bool grow_buckets = p.buckets > f.buckets.value_or(0);
  if (grow_buckets) finding.fix_now.push_back(hashsize_now(p.buckets));
  finding.fix_persistent = sysctl_persistent({{"max", p.max}}, build);
  if (grow_buckets)
    for (auto& line : hashsize_persistent(p.buckets, build)) finding.fix_persistent.push_back(line);
}

json proposal_json(const std::optional<Proposal>& p) {
  if (!p) return nullptr;
  return {{"max", p->max},
          {"buckets", p->buckets},
          {"memory_bytes", value(p->memory_bytes)},
          {"wanted_entries", p->wanted},
          {"basis", to_string(p->basis)},
          {"target", p->target},
          {"rounded", p->rounded},
          {"capped_by_ram", p->capped_by_ram}};
}

}  // namespace ctbpf::core::doctor_rules
