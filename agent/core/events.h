/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// Per-event records from the ring buffer: decoding (never trusting the size), rendering, and the
// rate limit that keeps a flood from drowning a terminal — suppressed events are counted, not hidden.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/sample.h"
#include "ctbpf/abi.h"

namespace ctbpf::core {

/// Kinds `--events` can ask for, as the BPF side's event_mask.
std::optional<uint32_t> event_mask_from_list(const std::string& comma_list, std::string& error);

/// Why the asked-for event kinds (event_mask bits) cannot be delivered in this mode, in one line, or
/// empty when they can: every event comes from a conntrack probe, which tracepoint mode lacks.
std::optional<std::string> events_unavailable(uint32_t asked, Mode mode, const Observability& obs);

/// A raw record, or empty when its size is not the ABI's.
std::optional<ctbpf_event> decode_event(std::span<const std::byte> raw);

nlohmann::json event_json(const ctbpf_event& e, double t_s);
/// The same object as event_json(e, t_s).dump(), written directly: the hot path of --events --json.
/// Appended to `out` (no newline), with "time" when given: once `out` has grown, no allocation.
void append_event_json(std::string& out, const ctbpf_event& e, double t_s, std::string_view time);
std::string event_json_line(const ctbpf_event& e, double t_s);
/// "t=1.500s insert udp 10.0.0.1:5353 -> ...", appended to `out` (no newline), without allocating.
void append_event_line(std::string& out, const ctbpf_event& e, double t_s);
std::string event_line(const ctbpf_event& e, double t_s);
/// The JSON name of a drop cause (enum ctbpf_counter): "table_full", "chaintoolong", ...
std::string cause_name(uint32_t cause);
/// "tcp", "udp", "icmp", "icmpv6", "sctp", "gre", or the protocol number.
std::string l4_name(uint8_t l4);
std::string_view cause_view(uint32_t cause);

/// rfc3339_utc() and clock_text() for a stream of times close together (one per event): the date and
/// the second are formatted once per second, the milliseconds per call. Views valid until the next call.
class SecondsText {
public:
  std::string_view rfc3339(double epoch_s);
  std::string_view clock(double epoch_s);

private:
  long long rfc3339_second_ = -1LL << 62, clock_second_ = -1LL << 62;
  std::string rfc3339_, clock_;
};

/// At most `per_second` events pass per wall-clock second; 0 means no limit.
class EventLimiter {
public:
  explicit EventLimiter(uint64_t per_second) : per_second_(per_second) {}
  bool admit(double now_s);
  uint64_t suppressed() const { return suppressed_; }
  uint64_t delivered() const { return delivered_; }

private:
  uint64_t per_second_;
  double window_start_ = -1;
  uint64_t in_window_ = 0, suppressed_ = 0, delivered_ = 0;
};

}  // namespace ctbpf::core
