// SPDX-License-Identifier: Apache-2.0
#include "core/events.h"

#include <cmath>
#include <cstring>
#include <iterator>
#include <sstream>

#include <fmt/format.h>

#include "core/address.h"
#include "core/interval_table.h"
#include "core/snapshot.h"
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

// A protocol's name, or its number written into `number` (no allocation either way).
std::string_view l4_name(uint8_t l4, char (&number)[4]) {
  switch (l4) {
    case 6: return "tcp";
    case 17: return "udp";
    case 1: return "icmp";
    case 58: return "icmpv6";
    case 132: return "sctp";
    case 47: return "gre";
  }
  auto end = fmt::format_to(number, "{}", l4);
  return {number, static_cast<std::size_t>(end - number)};
}


// The shortest text that reads back as t_s, exactly as nlohmann's dump() writes a double (its own
// to_chars: "1.5", "2.0"), so the direct JSON line equals event_json(e, t_s).dump().
std::string_view json_number(double t_s, char (&buf)[64]) {
  char* end = nlohmann::detail::to_chars(buf, buf + sizeof buf, t_s);
  return {buf, static_cast<std::size_t>(end - buf)};
}

}  // namespace

std::string cause_name(uint32_t cause) { return std::string(cause_view(cause)); }

std::string l4_name(uint8_t l4) {
  char number[4];
  return std::string(l4_name(l4, number));
}


std::string_view cause_view(uint32_t cause) {
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
                      {"src", address_text(e.l3, e.saddr)},
                      {"sport", e.sport},
                      {"dst", address_text(e.l3, e.daddr)},
                      {"dport", e.dport},
                      {"netns", e.netns},
                      {"zone", e.zone}};
  if (e.kind == CTBPF_EV_DROP) j["cause"] = cause_name(e.cause);
  if (e.kind == CTBPF_EV_INSERT) j["chain_length"] = e.value;
  if (e.kind == CTBPF_EV_DESTROY) j["lifetime_ms"] = e.value;
  return j;
}

void append_event_json(std::string& out, const ctbpf_event& e, double t_s, std::string_view time) {
  // Keys in nlohmann's (sorted) order, so the line equals event_json(e, t_s).dump() (with "time" after
  // "t" when given). Every string here is ours (names, addresses, digits): nothing needs escaping.
  auto to = std::back_inserter(out);
  AddressText src, dst;
  char l4[4], t[64];
  out += '{';
  if (e.kind == CTBPF_EV_DROP) fmt::format_to(to, "\"cause\":\"{}\",", cause_view(e.cause));
  if (e.kind == CTBPF_EV_INSERT) fmt::format_to(to, "\"chain_length\":{},", e.value);
  fmt::format_to(to, "\"dport\":{},\"dst\":\"{}\",\"kind\":\"{}\",", e.dport, address_view(e.l3, e.daddr, dst),
                 kind_name(e.kind));
  if (e.kind == CTBPF_EV_DESTROY) fmt::format_to(to, "\"lifetime_ms\":{},", e.value);
  fmt::format_to(to, "\"netns\":{},\"proto\":\"{}\",\"sport\":{},\"src\":\"{}\",\"t\":{}", e.netns,
                 l4_name(e.l4, l4), e.sport, address_view(e.l3, e.saddr, src), json_number(t_s, t));
  if (!time.empty()) fmt::format_to(to, ",\"time\":\"{}\"", time);
  fmt::format_to(to, ",\"type\":\"event\",\"zone\":{}}}", e.zone);
}

std::string event_json_line(const ctbpf_event& e, double t_s) {
  std::string line;
  append_event_json(line, e, t_s, {});
  return line;
}

void append_event_line(std::string& out, const ctbpf_event& e, double t_s) {
  auto to = std::back_inserter(out);
  // A table_full drop has no tuple: the full table refuses the flow before anything ctbpf hooks sees it.
  if (e.l3 == 0) {
    fmt::format_to(to, "t={:.3f}s {} (flow not seen) netns={}", t_s, kind_name(e.kind), e.netns);
  } else {
    AddressText src, dst;
    char l4[4];
    fmt::format_to(to, "t={:.3f}s {} {} {}:{} -> {}:{} netns={} zone={}", t_s, kind_name(e.kind), l4_name(e.l4, l4),
                   address_view(e.l3, e.saddr, src), e.sport, address_view(e.l3, e.daddr, dst), e.dport, e.netns,
                   e.zone);
  }
  if (e.kind == CTBPF_EV_DROP) fmt::format_to(to, " cause={}", cause_view(e.cause));
  if (e.kind == CTBPF_EV_INSERT) fmt::format_to(to, " chain={}", e.value);
  if (e.kind == CTBPF_EV_DESTROY) fmt::format_to(to, " lifetime={}ms", e.value);
}

std::string event_line(const ctbpf_event& e, double t_s) {
  std::string line;
  append_event_line(line, e, t_s);
  return line;
}

std::string_view SecondsText::rfc3339(double epoch_s) {
  // Rounded to the millisecond first, as rfc3339_utc() does, then split.
  const long long ms = std::llround(epoch_s * 1000.0);
  const long long second = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
  if (second != rfc3339_second_) {
    rfc3339_second_ = second;
    rfc3339_ = rfc3339_utc(static_cast<double>(second));  // "YYYY-MM-DDTHH:MM:SS.000Z"
  }
  rfc3339_.resize(rfc3339_.size() - 4);  // the milliseconds and "Z", written again below
  fmt::format_to(std::back_inserter(rfc3339_), "{:03}Z", ms - second * 1000);
  return rfc3339_;
}

std::string_view SecondsText::clock(double epoch_s) {
  const auto second = static_cast<long long>(std::floor(epoch_s));
  if (second != clock_second_) {
    clock_second_ = second;
    clock_ = clock_text(static_cast<double>(second));
  }
  return clock_;
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
