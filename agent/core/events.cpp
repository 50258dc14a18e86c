// SPDX-License-Identifier: Apache-2.0
#include "core/events.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>
#include <sstream>

#include <fmt/format.h>

#include "core/sample.h"

namespace ctbpf::core {

namespace {

const char* kind_name(uint32_t kind) {
  switch (kind) {
    case CTBPF_EV_INSERT: return "insert";
    case CTBPF_EV_DESTROY: return "destroy";
    case CTBPF_EV_DROP: return "drop";
  }
  return "unknown";
}

std::string address(uint8_t l3, const uint8_t (&bytes)[16]) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (l3 == AF_INET) inet_ntop(AF_INET, bytes, text, sizeof(text));
  if (l3 == AF_INET6) inet_ntop(AF_INET6, bytes, text, sizeof(text));
  return text;
}

std::string l4_name(uint8_t l4) {
  switch (l4) {
    case 6: return "tcp";
    case 17: return "udp";
    case 1: return "icmp";
    case 58: return "icmpv6";
    case 132: return "sctp";
    case 47: return "gre";
  }
  return std::to_string(l4);
}

}  // namespace

std::string cause_name(uint32_t cause) {
  switch (cause) {
    case CTBPF_CNT_TABLE_FULL: return "table_full";
    case CTBPF_CNT_EARLY_DROP: return "early_drop";
    case CTBPF_CNT_INSERT_FAILED: return "insert_failed";
    case CTBPF_CNT_CHAINTOOLONG: return "chaintoolong";
    case CTBPF_CNT_CLASH_RESOLVE: return "clash_resolve";
  }
  return "";
}

std::optional<uint32_t> event_mask_from_list(const std::string& comma_list, std::string& error) {
  uint32_t mask = 0;
  std::stringstream in(comma_list);
  std::string kind;
  while (std::getline(in, kind, ',')) {
    if (kind == "drop" || kind == "drops") mask |= 1U << CTBPF_EV_DROP;
    else if (kind == "insert" || kind == "inserts") mask |= 1U << CTBPF_EV_INSERT;
    else if (kind == "destroy" || kind == "destroys") mask |= 1U << CTBPF_EV_DESTROY;
    else if (kind == "all") mask |= (1U << CTBPF_EV_DROP) | (1U << CTBPF_EV_INSERT) | (1U << CTBPF_EV_DESTROY);
    else {
      error = fmt::format("unknown event kind '{}' (expected drop, insert, destroy or all)", kind);
      return std::nullopt;
    }
  }
  return mask;
}

std::optional<std::string> events_unavailable(uint32_t asked, Mode mode, const Observability& obs) {
  if (!asked || obs.conntrack_points) return std::nullopt;
  return fmt::format(
      "--events: no event lines in {} mode (they need fentry or kprobe); drops: per interval",
      to_string(mode));
}

std::optional<ctbpf_event> decode_event(std::span<const std::byte> raw) {
  if (raw.size() != sizeof(ctbpf_event)) return std::nullopt;
  ctbpf_event e;
  std::memcpy(&e, raw.data(), sizeof(e));
  return e;
}

nlohmann::json event_json(const ctbpf_event& e, double t_s) {
  nlohmann::json j = {{"type", "event"},
                      {"t", t_s},
                      {"kind", kind_name(e.kind)},
                      {"proto", l4_name(e.l4)},
                      {"src", address(e.l3, e.saddr)},
                      {"sport", e.sport},
                      {"dst", address(e.l3, e.daddr)},
                      {"dport", e.dport},
                      {"netns", e.netns},
                      {"zone", e.zone}};
  if (e.kind == CTBPF_EV_DROP) j["cause"] = cause_name(e.cause);
  if (e.kind == CTBPF_EV_INSERT) j["chain_length"] = e.value;
  if (e.kind == CTBPF_EV_DESTROY) j["lifetime_ms"] = e.value;
  return j;
}

std::string event_json_line(const ctbpf_event& e, double t_s) {
  // Keys in nlohmann's (sorted) order, so the line equals event_json(e, t_s).dump(). Every string
  // here is ours (names, addresses, digits): nothing needs escaping.
  std::string extra;
  if (e.kind == CTBPF_EV_DROP) extra = fmt::format("\"cause\":\"{}\",", cause_name(e.cause));
  if (e.kind == CTBPF_EV_INSERT) extra = fmt::format("\"chain_length\":{},", e.value);
  std::string lifetime;
  if (e.kind == CTBPF_EV_DESTROY) lifetime = fmt::format("\"lifetime_ms\":{},", e.value);
  return fmt::format(
      "{{{}\"dport\":{},\"dst\":\"{}\",\"kind\":\"{}\",{}\"netns\":{},\"proto\":\"{}\",\"sport\":{},"
      "\"src\":\"{}\",\"t\":{},\"type\":\"event\",\"zone\":{}}}",
      extra, e.dport, address(e.l3, e.daddr), kind_name(e.kind), lifetime, e.netns, l4_name(e.l4), e.sport,
      address(e.l3, e.saddr), nlohmann::json(t_s).dump(), e.zone);
}

std::string event_line(const ctbpf_event& e, double t_s) {
  std::string extra;
  if (e.kind == CTBPF_EV_DROP) extra = " cause=" + cause_name(e.cause);
  if (e.kind == CTBPF_EV_INSERT) extra = fmt::format(" chain={}", e.value);
  if (e.kind == CTBPF_EV_DESTROY) extra = fmt::format(" lifetime={}ms", e.value);
  // A table_full drop has no tuple: the full table refuses the flow before anything ctbpf hooks sees it.
  if (e.l3 == 0)
    return fmt::format("t={:.3f}s {} (flow not seen) netns={}{}", t_s, kind_name(e.kind), e.netns, extra);
  return fmt::format("t={:.3f}s {} {} {}:{} -> {}:{} netns={} zone={}{}", t_s, kind_name(e.kind),
                     l4_name(e.l4), address(e.l3, e.saddr), e.sport, address(e.l3, e.daddr), e.dport,
                     e.netns, e.zone, extra);
}

bool EventLimiter::admit(double now_s) {
  if (per_second_ == 0) {
    ++delivered_;
    return true;
  }
  if (window_start_ < 0 || now_s - window_start_ >= 1.0) {
    window_start_ = now_s;
    in_window_ = 0;
  }
  if (in_window_ >= per_second_) {
    ++suppressed_;
    return false;
  }
  ++in_window_;
  ++delivered_;
  return true;
}

}  // namespace ctbpf::core
