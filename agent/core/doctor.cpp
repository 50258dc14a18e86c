// SPDX-License-Identifier: Apache-2.0
#include "core/doctor.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/doctor_rules.h"
#include "core/render.h"

namespace ctbpf::core {

using namespace doctor_rules;

namespace {

// The rules in the order their findings are listed within a severity.
constexpr Rule kRules[] = {
    rule_table_fill,
    rule_drops,
    rule_nat_blackholes,
    rule_nat_unanswered,
    rule_dns_race,
    rule_chain_length,
    rule_memory,
    rule_tcp_established_timeout,
    rule_udp_timeout,
    rule_stateless_udp,
    rule_tcp_closing_states,
    rule_icmp_timeout,
    rule_generic_timeout,
};

void list_unmeasured(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  const auto& drops = in.window.totals.drops;
  if (!in.obs.conntrack_points) {
    const std::string why = fmt::format("{} mode has no conntrack probes (fentry and kprobe are unavailable here)",
                                        to_string(in.mode));
    d.unmeasured.push_back({"inserts per second and by protocol", why});
    d.unmeasured.push_back({"chain length at insert", why + "; chain_length is judged from the sysctls only"});
    d.unmeasured.push_back({"entry lifetimes and TCP state at death", why});
    d.unmeasured.push_back({"stateless traffic (stateless_udp, udp_timeout)", why});
  }
  if (f.table_full_from_kernel_drop)
    d.unmeasured.push_back({"drops.table_full, exactly",
                            "read from the kernel's `drop` counter, which also counts allocation failures"});
  else if (!f.table_full)
    d.unmeasured.push_back({"drops.table_full", "neither the early_drop probe nor the kernel's counters answered"});
  const std::pair<const char*, Count> causes[] = {{"drops.early_drop", drops.early_drop},
                                                  {"drops.insert_failed", drops.insert_failed},
                                                  {"drops.chaintoolong", drops.chaintoolong},
                                                  {"drops.clash_resolve", drops.clash_resolve},
                                                  {"drops.invalid", drops.invalid},
                                                  {"drops.alloc_failed", drops.alloc_failed}};
  for (const auto& [name, count] : causes)
    if (!count)
      d.unmeasured.push_back({name, std::string(name) == "drops.chaintoolong" && !in.obs.kernel_has_chaintoolong
                                        ? "this kernel has no chain limit (before 5.15)"
                                        : "this kernel or mode does not count it"});
  if (!in.system.slab_object_size)
    d.unmeasured.push_back({"memory per entry", "/proc/slabinfo and /sys/kernel/slab/nf_conntrack are unreadable"});
  if (!in.system.ram_bytes) d.unmeasured.push_back({"total RAM", "/proc/meminfo is unreadable"});
  if (!in.top_ports)
    d.unmeasured.push_back({"top ports by inserts", "needs the fentry or kprobe family"});
  if (!in.window.totals.nat_blackholes)
    d.unmeasured.push_back({"NAT'd flows dropped after the NAT (nat_blackhole)",
                            "this kernel's kfree_skb gives no drop reason (5.17 and later do)"});
  if (in.unanswered_nat && !in.unanswered_nat->counters_seen) {
    const auto acct = sysctl(in, "acct");
    d.unmeasured.push_back({"NAT'd UDP flows that never got a reply (nat_unanswered)",
                            acct && *acct == 0 ? "nf_conntrack_acct is off in this netns (sysctl -w "
                                                 "net.netfilter.nf_conntrack_acct=1 counts packets per direction "
                                                 "for entries made after it)"
                                               : "no entry in the dump carried packet counters"});
  }
  if (!in.window.totals.dns_races)
    d.unmeasured.push_back({"the DNS race per netns and resolver (dns_race)", "needs the fentry or kprobe family"});
  if (!in.idle) {
    d.unmeasured.push_back({"idle time per protocol and TCP state", "the ctnetlink dump of this network namespace's "
                                                                    "table failed (needs CAP_NET_ADMIN)"});
    d.unmeasured.push_back({"live entries per TCP state and protocol (tcp_closing_states, icmp_timeout, "
                            "generic_timeout)",
                            "the same dump"});
  } else {
    const auto& idle = *in.idle;
    if (idle.capped())
      d.unmeasured.push_back({"idle time of every entry",
                              fmt::format("{} (a bound on the work): the idle times and live counts per state are "
                                          "those of the first {} in hash order",
                                          dump_stopped_text(idle.dump, f.count_end), idle.entries)});
    if (auto n = idle.no_timeout + idle.short_timeout + idle.not_refreshed)
      d.unmeasured.push_back(
          {fmt::format("idle time of {} entries", n),
           fmt::format("{} with no timeout sysctl for their protocol or state (SCTP, DCCP, GRE, SYN_SENT2), {} "
                       "TCP with a time left within the unacknowledged/retransmission timeouts (it may run on "
                       "those), {} offloaded or on a fixed timeout (packets do not refresh it)",
                       idle.no_timeout, idle.short_timeout, idle.not_refreshed)});
  }
}

}  // namespace

Diagnosis diagnose(const DoctorInput& in) {
  Diagnosis d;
  const auto f = derive_facts(in);
  for (const auto rule : kRules) rule(in, f, d);
  list_unmeasured(in, f, d);
  // Most severe first; within a severity, the rule order of kRules (stable).
  std::stable_sort(d.findings.begin(), d.findings.end(),
                   [](const Finding& a, const Finding& b) { return a.severity < b.severity; });
  return d;
}

}  // namespace ctbpf::core
