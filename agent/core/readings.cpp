// SPDX-License-Identifier: Apache-2.0
#include "core/readings.h"

#include <algorithm>

namespace ctbpf::core {

std::string family_failure_reading(Mode family, const std::string& reason, bool privileged) {
  const bool refused = reason.find("Operation not permitted") != std::string::npos;
  if (!refused || !privileged) return "";
  // ctbpf checked the capabilities it needs before the trial: an EPERM past that check is a policy
  // of this kernel or of what runs it, not a missing privilege.
  std::string what = family == Mode::fentry   ? "BPF trampolines (fentry) on conntrack's functions"
                     : family == Mode::kprobe ? "kprobes on conntrack's functions"
                                              : "BPF programs on conntrack's tracepoints";
  return "means: the kernel refuses " + what +
         "\nalthough ctbpf has the privileges it needs: a policy of this kernel or of what runs it,\n"
         "not a missing capability. Kernel lockdown (Secure Boot; see\n"
         "/sys/kernel/security/lockdown), a security module (SELinux, AppArmor, BPF LSM), or a\n"
         "container's or VM's sandbox";
}

std::string wrap_lines(const std::string& text, std::size_t width, std::size_t hang) {
  std::string out;
  for (std::size_t at = 0; at < text.size();) {
    auto end = text.find('\n', at);
    const bool newline = end != std::string::npos;
    std::string line = text.substr(at, (newline ? end : text.size()) - at);
    at = newline ? end + 1 : text.size();
    const auto indent = std::string(std::min(line.find_first_not_of(' '), line.size()) + hang, ' ');
    while (line.size() > width) {
      auto cut = line.rfind(' ', width);
      if (cut == std::string::npos || cut < indent.size()) break;
      out += line.substr(0, cut) + "\n";
      line = indent + line.substr(line.find_first_not_of(' ', cut));
    }
    out += line;
    if (newline) out += '\n';
  }
  return out;
}

}  // namespace ctbpf::core
