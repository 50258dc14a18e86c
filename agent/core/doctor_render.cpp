// SPDX-License-Identifier: Apache-2.0
// doctor's output: the JSON document and the text report of a diagnosis.
#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "core/doctor.h"
#include "core/doctor_rules.h"
#include "core/readings.h"
#include "core/render.h"

namespace ctbpf::core {

using nlohmann::json;
using namespace doctor_rules;

json doctor_json(const DoctorInput& in, const Diagnosis& diagnosis) {
  const auto f = derive_facts(in);
  json sysctls = json::object();
  for (const auto& [name, v] : in.sysctls) sysctls[name] = v;
  json findings = json::array();
  for (const auto& x : diagnosis.findings)
    findings.push_back({{"id", x.id},
                        {"severity", to_string(x.severity)},
                        {"title", x.title},
                        {"measured", x.measured},
                        {"evidence", x.evidence},
                        {"why", x.why},
                        {"fix_now", x.fix_now},
                        {"fix_persistent", x.fix_persistent}});
  json unmeasured = json::array();
  for (const auto& u : diagnosis.unmeasured) unmeasured.push_back({{"what", u.what}, {"why", u.why}});
  // Next to lifetime_ms: how long the live entries have gone without a packet.
  json summary = summary_json(in.window, in.mode, in.obs);
  summary["idle_ms"] = in.idle ? idle_json(*in.idle) : json(nullptr);
  summary["own_netns"] = own_netns_json(in.own_netns);
  return {{"type", "doctor"},
          {"mode", to_string(in.mode)},
          {"duration_s", f.duration},
          {"inputs",
           {{"table",
             {{"count_start", value(f.count_start)},
              {"count", value(f.count_end)},
              {"peak_count", f.peak},
              {"max", value(f.max)},
              {"buckets", value(f.buckets)},
              {"fill", value(f.fill)},
              {"net_growth_per_s", value(f.growth_per_s)},
              {"time_to_full_s", value(f.time_to_full_s)},
              {"forecast", forecast_json(f.forecast)}}},
            {"memory",
             {{"slab_object_size", value(in.system.slab_object_size)},
              {"slab_object_size_source", in.system.slab_object_size_source},
              {"ram_bytes", value(in.system.ram_bytes)},
              {"conntrack", to_string(in.system.build)}}},
            {"kernel_drop", value(in.kernel_drop)},
            // The ctnetlink dumps behind idle_ms, at the window's start and end: entries read, time,
            // and whether a bound stopped them before the end of the table.
            {"dumps",
             {{"start", in.idle_start ? dump_json(in.idle_start->dump) : json(nullptr)},
              {"end", in.idle ? dump_json(in.idle->dump) : json(nullptr)}}},
            {"sysctls", sysctls}}},
          {"summary", summary},
          {"unmeasured", unmeasured},
          {"findings", findings}};
}

std::string doctor_text(const DoctorInput& in, const Diagnosis& diagnosis) {
  const auto f = derive_facts(in);
  std::string out = fmt::format("ctbpf doctor: {:.1f} s observed in {} mode (read-only: nothing was changed)\n",
                                f.duration, to_string(in.mode));
  out += fmt::format("  table {} / max {}, {} buckets, net growth {:+.1f}/s", text(f.count_end), text(f.max),
                     text(f.buckets), f.growth_per_s.value_or(0));
  if (auto r = in.window.rate(in.window.totals.inserts)) out += fmt::format(", {:.0f} inserts/s", *r);
  out += "\n";
  // The table, its count, the kernel's statistics and the dumps are this netns's: named.
  if (auto netns = netns_label(own_netns_json(in.own_netns)); !netns.empty())
    out += "  table, kernel stats and dumps: " + netns + "\n";
  // A dump cut short changes what the idle and per-state figures below mean: said before them.
  if (in.idle && in.idle->capped()) out += "  " + dump_stopped_text(in.idle->dump, f.count_end) + "\n";
  if (f.detail) {
    uint64_t all = 0;
    for (auto n : f.detail->inserts_by_proto) all += n;
    if (all) {
      out += "  inserts by protocol:";
      for (std::size_t i = 0; i < CTBPF_PROTO_MAX; ++i)
        if (f.detail->inserts_by_proto[i])
          out += fmt::format(" {} {:.0f}%", proto_class_name(i), 100 * ratio(f.detail->inserts_by_proto[i], all));
      out += "\n";
    }
  }
  if (in.idle && in.idle->entries) {
    const auto& idle = *in.idle;
    out += fmt::format("  idle since the last packet ({} live entries{}):", idle.entries,
                       idle.capped() ? ", the dump stopped early" : "");
    std::string sep = " ";
    for (std::size_t i = 0; i < CTBPF_PROTO_MAX; ++i)
      if (idle.by_proto[i].count()) {
        out += sep + proto_class_name(i) + " " + idle_text(idle.by_proto[i]);
        sep = "; ";
      }
    out += "\n";
    sep = "  idle by TCP state: ";
    for (std::size_t i = 0; i < CTBPF_TCP_STATES; ++i)
      if (idle.by_tcp_state[i].count()) {
        out += sep + tcp_state_name(i) + " " + idle_text(idle.by_tcp_state[i]);
        sep = "; ";
      }
    if (sep == "; ") out += "\n";
  }
  out += fmt::format("  entry {} ({}), RAM {}, nf_conntrack {}\n",
                     in.system.slab_object_size ? fmt::format("{} bytes", *in.system.slab_object_size) : "-",
                     in.system.slab_object_size_source.empty() ? "unread" : in.system.slab_object_size_source,
                     in.system.ram_bytes ? human_bytes(static_cast<double>(*in.system.ram_bytes)) : "-",
                     in.system.build == ConntrackBuild::module    ? "is a module"
                     : in.system.build == ConntrackBuild::builtin ? "is built in"
                                                                  : "build unknown");
  if (diagnosis.findings.empty()) out += "\nNo findings.\n";
  // Prose within 100 columns; a command stays on its own line, whole, to be copied as it is.
  out = wrap_lines(out);
  for (const auto& x : diagnosis.findings) {
    std::string severity = to_string(x.severity);
    std::transform(severity.begin(), severity.end(), severity.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    out += wrap_lines(
        fmt::format("\n[{}] {}: {}\n  measured: {}\n  why: {}\n", severity, x.id, x.title, x.measured, x.why));
    if (!x.fix_now.empty()) {
      out += "  fix now:\n";
      for (const auto& c : x.fix_now) out += "    " + c + "\n";
    }
    if (!x.fix_persistent.empty()) {
      out += "  fix persistently:\n";
      for (const auto& c : x.fix_persistent) out += "    " + c + "\n";
    }
  }
  if (!diagnosis.unmeasured.empty()) {
    std::string unmeasured = "\nNot measured here:\n";
    for (const auto& u : diagnosis.unmeasured) unmeasured += fmt::format("  {}: {}\n", u.what, u.why);
    out += wrap_lines(unmeasured);
  }
  return out;
}

}  // namespace ctbpf::core
