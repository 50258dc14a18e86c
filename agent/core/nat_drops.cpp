// SPDX-License-Identifier: Apache-2.0
#include "core/nat_drops.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "core/address.h"
#include "core/events.h"

namespace ctbpf::core {
namespace {

constexpr uint8_t kAfInet6 = 10;

template <class T, class Grow>
std::vector<T> grown_by_key(const std::vector<T>& now, const std::vector<T>& before, Grow grow) {
  std::map<decltype(std::declval<const T&>().key()), const T*> earlier;
  for (const auto& b : before) earlier.emplace(b.key(), &b);
  std::vector<T> out;
  for (const auto& n : now) {
    auto it = earlier.find(n.key());
    T d = n;
    if (grow(d, it == earlier.end() ? nullptr : it->second)) out.push_back(std::move(d));
  }
  return out;
}

// a - b, or all of a when it went down (an evicted element that came back).
uint64_t since(uint64_t a, uint64_t b) { return a >= b ? a - b : a; }

std::string endpoint(uint8_t l3, const std::array<uint8_t, 16>& addr, uint16_t port, bool with_port) {
  std::string a = address_text(l3, addr.data());
  if (!with_port) return a;
  return l3 == kAfInet6 ? fmt::format("[{}]:{}", a, port) : fmt::format("{}:{}", a, port);
}

// Protocols whose tuple has ports (conntrack --sport/--dport).
bool has_ports(uint8_t l4) { return l4 == 6 || l4 == 17 || l4 == 132 || l4 == 33 || l4 == 136; }

}  // namespace

std::vector<BlackholeFlow> grown(const std::vector<BlackholeFlow>& now, const std::vector<BlackholeFlow>& before) {
  return grown_by_key(now, before, [](BlackholeFlow& d, const BlackholeFlow* b) {
    d.packets = b ? since(d.packets, b->packets) : d.packets;
    return d.packets > 0;
  });
}

std::vector<DnsRace> grown(const std::vector<DnsRace>& now, const std::vector<DnsRace>& before) {
  return grown_by_key(now, before, [](DnsRace& d, const DnsRace* b) {
    if (b) {
      d.insert_failed = since(d.insert_failed, b->insert_failed);
      d.clash_resolve = since(d.clash_resolve, b->clash_resolve);
    }
    return d.insert_failed + d.clash_resolve > 0;
  });
}

void sort_busiest_first(std::vector<BlackholeFlow>& flows) {
  std::sort(flows.begin(), flows.end(), [](const auto& a, const auto& b) { return a.packets > b.packets; });
}

std::string nat_target_text(const BlackholeFlow& f) {
  const bool ports = has_ports(f.l4);
  std::string out;
  if (f.dnat()) out = "dnat to " + endpoint(f.l3, f.reply_src, f.reply_sport, ports);
  if (f.snat()) out += (out.empty() ? "" : ", ") + std::string("snat to ") + endpoint(f.l3, f.reply_dst, f.reply_dport, ports);
  return out;
}

std::string flow_text(const BlackholeFlow& f) {
  const bool ports = has_ports(f.l4);
  return fmt::format("{} {} > {} {}", l4_name(f.l4), endpoint(f.l3, f.src, f.sport, ports),
                     endpoint(f.l3, f.dst, f.dport, ports), nat_target_text(f));
}

nlohmann::json blackhole_json(const BlackholeFlow& f, double duration_s) {
  using nlohmann::json;
  const bool ports = has_ports(f.l4);
  auto port = [&](uint16_t p) { return ports ? json(p) : json(nullptr); };
  return {{"netns", f.netns},
          {"zone", f.zone},
          {"family", f.l3 == kAfInet6 ? "ipv6" : "ipv4"},
          {"proto", l4_name(f.l4)},
          {"direction", f.reply ? "reply" : "original"},
          {"src", address_text(f.l3, f.src.data())},
          {"sport", port(f.sport)},
          {"dst", address_text(f.l3, f.dst.data())},
          {"dport", port(f.dport)},
          {"dnat_to", f.dnat() ? json(endpoint(f.l3, f.reply_src, f.reply_sport, ports)) : json(nullptr)},
          {"snat_to", f.snat() ? json(endpoint(f.l3, f.reply_dst, f.reply_dport, ports)) : json(nullptr)},
          {"reason", f.reason_name},
          {"packets", f.packets},
          {"packets_per_s", duration_s > 0 ? json(static_cast<double>(f.packets) / duration_s) : json(nullptr)},
          {"first_drop_t", f.first_s},
          {"last_drop_t", f.last_s}};
}

nlohmann::json dns_race_json(const DnsRace& r) {
  return {{"netns", r.netns},
          {"family", r.l3 == kAfInet6 ? "ipv6" : "ipv4"},
          {"service", address_text(r.l3, r.service.data())},
          {"resolver", address_text(r.l3, r.resolver.data())},
          {"insert_failed", r.insert_failed},
          {"clash_resolve", r.clash_resolve}};
}

std::string conntrack_delete_command(const BlackholeFlow& f, const std::string& enter_prefix) {
  std::string cmd = enter_prefix;
  cmd += fmt::format("conntrack -D -f {} -p {} -s {} -d {}", f.l3 == kAfInet6 ? "ipv6" : "ipv4", l4_name(f.l4),
                     address_text(f.l3, f.src.data()), address_text(f.l3, f.dst.data()));
  if (has_ports(f.l4)) cmd += fmt::format(" --sport {} --dport {}", f.sport, f.dport);
  if (f.zone) cmd += fmt::format(" -w {}", f.zone);
  return cmd;
}

void add_unanswered(UnansweredNat& u, const DumpedEntry& e) {
  if (!e.orig_packets || !e.reply_packets) return;
  u.counters_seen = true;
  constexpr uint32_t kNat = 3u << 4;  // IPS_SRC_NAT | IPS_DST_NAT
  if (e.l4 != 17 || !(e.status & kNat) || *e.reply_packets || *e.orig_packets < UnansweredNat::kMinPackets) return;
  ++u.flows;
  BlackholeFlow f;
  f.zone = e.zone;
  f.l3 = e.l3;
  f.l4 = e.l4;
  f.src = e.src;
  f.dst = e.dst;
  f.sport = e.sport;
  f.dport = e.dport;
  f.reply_src = e.reply_src;
  f.reply_sport = e.reply_sport;
  f.status = e.status & (1u << 5);  // the DNAT's target only: the reply's destination is not dumped here
  f.reason_name = "no reply";
  f.packets = *e.orig_packets;
  auto fewest = std::min_element(u.busiest.begin(), u.busiest.end(),
                                 [](const auto& a, const auto& b) { return a.packets < b.packets; });
  if (u.busiest.size() < UnansweredNat::kMaxListed) u.busiest.push_back(std::move(f));
  else if (fewest->packets < f.packets) *fewest = std::move(f);
}

std::string netns_text(uint32_t netns, const std::map<uint32_t, std::string>& names) {
  auto it = names.find(netns);
  return it != names.end() && !it->second.empty() ? "netns " + it->second : fmt::format("netns {}", netns);
}

std::string nat_drops_text(const std::optional<std::vector<BlackholeFlow>>& flows,
                           const std::optional<std::vector<DnsRace>>& races, double duration_s,
                           const std::map<uint32_t, std::string>& netns_names, const std::string& indent,
                           std::size_t max_lines) {
  std::vector<std::string> lines;
  if (flows) {
    auto sorted = *flows;
    sort_busiest_first(sorted);
    for (const auto& f : sorted)
      lines.push_back(fmt::format("nat blackhole  {}  {}{}  {}  {}", flow_text(f), f.reason_name,
                                  f.reply ? " (replies)" : "",
                                  duration_s > 0 ? fmt::format("{:.0f}/s", static_cast<double>(f.packets) / duration_s)
                                                 : fmt::format("{} packets", f.packets),
                                  netns_text(f.netns, netns_names)));
  }
  if (races)
    for (const auto& r : *races)
      lines.push_back(fmt::format("dns race  {}  {}{}: insert_failed {} (dropped), clash_resolve {} (kept)",
                                  netns_text(r.netns, netns_names), address_text(r.l3, r.service.data()),
                                  r.service == r.resolver ? "" : " via " + address_text(r.l3, r.resolver.data()),
                                  r.insert_failed, r.clash_resolve));
  std::string out;
  for (std::size_t i = 0; i < lines.size() && i < max_lines; ++i) out += indent + lines[i] + "\n";
  if (lines.size() > max_lines) out += fmt::format("{}... and {} more\n", indent, lines.size() - max_lines);
  return out;
}

}  // namespace ctbpf::core
