// SPDX-License-Identifier: Apache-2.0
// doctor's room for where NAT'd traffic dies: stale entries that send a flow to a backend that is gone
// (nat_blackhole), and the DNS race (dns_race).
#include <algorithm>

#include <fmt/format.h>

#include "core/address.h"
#include "core/doctor_rules.h"
#include "core/nat_drops.h"

namespace ctbpf::core::doctor_rules {
namespace {

constexpr std::size_t kMaxFlowsListed = 10;

std::string netns_words(const DoctorInput& in, uint32_t netns) {
  auto it = in.netns_names.find(netns);
  return it != in.netns_names.end() && !it->second.empty() ? fmt::format("netns {} ({})", it->second, netns)
                                                           : fmt::format("netns {}", netns);
}

// How to run a command in the flow's netns, or empty when ctbpf does not know (then the command is
// given as it runs in that netns).
std::string enter_prefix(const DoctorInput& in, uint32_t netns) {
  auto it = in.netns_enter.find(netns);
  return it == in.netns_enter.end() ? "" : it->second;
}

}  // namespace

void rule_nat_blackholes(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  if (!in.window.totals.nat_blackholes || in.window.totals.nat_blackholes->empty()) return;
  auto flows = *in.window.totals.nat_blackholes;
  sort_busiest_first(flows);
  const double window = std::max(f.duration, 1e-9);
  Finding x;
  x.id = "nat_blackhole";
  x.severity = Severity::warning;
  const auto& top = flows.front();
  x.title = fmt::format("{} NAT'd flow{} dropped after the NAT: {} ({}, {:.0f}/s)", flows.size(),
                        flows.size() == 1 ? "" : "s", flow_text(top), top.reason_name,
                        static_cast<double>(top.packets) / window);
  x.evidence = nlohmann::json::array();
  for (std::size_t i = 0; i < flows.size(); ++i) {
    const auto& flow = flows[i];
    const std::string command = conntrack_delete_command(flow, enter_prefix(in, flow.netns));
    auto e = blackhole_json(flow, window);
    e["netns_name"] = in.netns_names.count(flow.netns) ? nlohmann::json(in.netns_names.at(flow.netns)) : nullptr;
    e["delete_command"] = command;
    x.evidence.push_back(e);
    if (i >= kMaxFlowsListed) continue;
    x.measured += fmt::format("{}{}: {} packets dropped in the window ({:.0f}/s), reason {}{}, {}", x.measured.empty() ? "" : "; ",
                              flow_text(flow), flow.packets, static_cast<double>(flow.packets) / window,
                              flow.reason_name, flow.reply ? " (reply direction)" : "", netns_words(in, flow.netns));
    x.fix_now.push_back(command);
  }
  if (flows.size() > kMaxFlowsListed)
    x.measured += fmt::format("; {} more in the JSON evidence", flows.size() - kMaxFlowsListed);
  x.why =
      "Each packet of such a flow finds its conntrack entry and refreshes it, so the entry never times out, and "
      "the entry's NAT keeps sending the flow where it was first sent: to a backend that is gone (a Service "
      "endpoint removed, a pod deleted), where every packet dies. Changing the DNAT rule does not help an "
      "existing entry. Deleting just this entry (the command) makes the client's next packet create a new "
      "one, NAT'd by the rules in force now. To stop it recurring, delete the entries NAT'd to a backend when "
      "the backend goes away (conntrack -D --reply-src ADDRESS, as kube-proxy does for UDP Services on "
      "endpoint removal), or have clients change source port on errors. ctbpf sees drops on this machine "
      "only: packets that leave it and die on another host (a backend on another node) are not counted.";
  d.findings.push_back(std::move(x));
}

void rule_nat_unanswered(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  if (!in.unanswered_nat || !in.unanswered_nat->flows) return;
  const auto& u = *in.unanswered_nat;
  auto flows = u.busiest;
  sort_busiest_first(flows);
  Finding x;
  x.id = "nat_unanswered";
  x.severity = Severity::info;
  x.title = fmt::format("{} NAT'd UDP flow{} sent {} packets or more and never got a reply: {} ({} packets)", u.flows,
                        u.flows == 1 ? "" : "s", UnansweredNat::kMinPackets, flow_text(flows.front()),
                        flows.front().packets);
  x.evidence = {{"flows", u.flows}, {"min_packets", UnansweredNat::kMinPackets}, {"busiest", nlohmann::json::array()}};
  for (const auto& flow : flows) {
    auto e = blackhole_json(flow, f.duration);
    e.erase("packets_per_s");
    e.erase("first_drop_t");
    e.erase("last_drop_t");
    e.erase("reason");
    e["delete_command"] = conntrack_delete_command(flow, "");
    x.fix_now.push_back(e["delete_command"]);
    x.evidence["busiest"].push_back(std::move(e));
    x.measured += fmt::format("{}{}: {} packets sent, none back", x.measured.empty() ? "" : "; ", flow_text(flow),
                              flow.packets);
  }
  x.why = "nf_conntrack_acct counts each entry's packets per direction: these NAT'd flows kept sending and "
          "nothing came back. Where the NAT's target is gone on another host (a backend on another node), "
          "its packets die there, out of ctbpf's sight (nat_blackhole sees drops on this machine only), and "
          "the entry, refreshed by every packet, keeps sending them there; the command removes one so the "
          "next packet is NAT'd by the rules in force. A one-way protocol (syslog, statsd, NetFlow) looks "
          "the same and needs nothing. From the window's end dump of this netns.";
  d.findings.push_back(std::move(x));
}

void rule_dns_race(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  (void)f;
  if (!in.window.totals.dns_races || in.window.totals.dns_races->empty()) return;
  auto races = *in.window.totals.dns_races;
  std::sort(races.begin(), races.end(), [](const auto& a, const auto& b) {
    return a.insert_failed + a.clash_resolve > b.insert_failed + b.clash_resolve;
  });
  uint64_t failed = 0, resolved = 0;
  for (const auto& r : races) {
    failed += r.insert_failed;
    resolved += r.clash_resolve;
  }
  const auto& top = races.front();
  Finding x;
  x.id = "dns_race";
  x.severity = failed ? Severity::warning : Severity::info;
  x.title = fmt::format("DNS race: {} port 53 quer{} dropped (insert_failed), {} kept by clash resolution; most in {}",
                        failed, failed == 1 ? "y" : "ies", resolved, netns_words(in, top.netns));
  x.evidence = nlohmann::json::array();
  for (const auto& r : races) {
    auto e = dns_race_json(r);
    e["netns_name"] = in.netns_names.count(r.netns) ? nlohmann::json(in.netns_names.at(r.netns)) : nullptr;
    x.evidence.push_back(e);
    const auto service = address_text(r.l3, r.service.data()), resolver = address_text(r.l3, r.resolver.data());
    x.measured += fmt::format("{}{}: queries to {}{}: insert_failed {} (dropped), clash_resolve {} (kept)",
                              x.measured.empty() ? "" : "; ", netns_words(in, r.netns), service,
                              service == resolver ? "" : " answered by " + resolver, r.insert_failed, r.clash_resolve);
  }
  x.why = fmt::format(
      "Two UDP queries sent at once from one socket (glibc's parallel A and AAAA lookups) have the same tuple: "
      "both create a conntrack entry, and the second to be confirmed clashes with the first. {} "
      "Mitigations, with their trade-offs: `options single-request-reopen` in resolv.conf (a pod's "
      "dnsConfig.options) sends the second query from a new socket, at the cost of a socket per lookup; "
      "`options single-request` serialises the two queries, one round trip more per lookup; a node-local "
      "DNS cache (NodeLocal DNSCache) answers on a local address without DNAT, one more daemon per node; "
      "DNS over TCP (`options use-vc`) has no clash, but costs a handshake per lookup and every resolver "
      "must serve TCP.",
      failed ? "Where the kernel could not resolve the clash (the two entries were NAT'd to different "
               "resolvers), it dropped the query: the application waits for its timeout (5 s by default) "
               "and retries."
             : "The kernel resolved every clash here (the same NAT mapping, or the loser inserted in the "
               "reply direction only): no query was lost, but the race is there, and a DNAT to several "
               "resolvers turns it into dropped queries.");
  d.findings.push_back(std::move(x));
}

}  // namespace ctbpf::core::doctor_rules
