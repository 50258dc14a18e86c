// SPDX-License-Identifier: Apache-2.0
#include "core/snapshot.h"


#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "core/address.h"
#include "core/render.h"

namespace ctbpf::core {

using nlohmann::json;

namespace {

bool printable_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}


bool sysctl_name(std::string_view s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool digits(std::string_view s, std::size_t at, std::size_t n, unsigned lo, unsigned hi) {
  if (at + n > s.size()) return false;
  unsigned v = 0;
  for (std::size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + static_cast<unsigned>(s[i] - '0');
  }
  return v >= lo && v <= hi;
}

// YYYY-MM-DDTHH:MM:SS[.fraction]Z, as rfc3339_utc writes it.
bool rfc3339(std::string_view s) {
  if (s.size() < 20 || s.size() > 40) return false;
  if (!digits(s, 0, 4, 0, 9999) || s[4] != '-' || !digits(s, 5, 2, 1, 12) || s[7] != '-' ||
      !digits(s, 8, 2, 1, 31) || s[10] != 'T' || !digits(s, 11, 2, 0, 23) || s[13] != ':' ||
      !digits(s, 14, 2, 0, 59) || s[16] != ':' || !digits(s, 17, 2, 0, 60))
    return false;
  std::size_t i = 19;
  if (s[i] == '.') {
    std::size_t first = ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == first) return false;
  }
  return i + 1 == s.size() && s[i] == 'Z';
}

std::string kind_of(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_unsigned: return "an unsigned integer";
    case json::value_t::number_integer: return "a negative number";
    case json::value_t::number_float: return "a fraction";
    default: return "a non-JSON value";
  }
}

// A JSON pointer step (RFC 6901); keys from the file are shortened and made printable, so a message
// stays one short line whatever the file holds.
std::string step(std::string_view key) {
  std::string out = "/";
  for (char c : printable(key, 40)) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

std::string step(std::size_t index) { return "/" + std::to_string(index); }

// Every check the reader makes. Each failure names the file and the JSON pointer of the field.
class Checker {
public:
  explicit Checker(std::string name) : name_(std::move(name)) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw SnapshotError(fmt::format("{}: {}: {}", name_, path.empty() ? "/" : path, what));
  }

  void type(const json& v, const std::string& path, json::value_t want, const char* want_text) const {
    if (v.type() != want) fail(path, fmt::format("expected {}, got {}", want_text, kind_of(v)));
  }

  const json& member(const json& obj, const std::string& path, const char* key) const {
    auto it = obj.find(key);
    if (it == obj.end()) fail(path + step(key), "missing");
    return *it;
  }

  const json& object(const json& obj, const std::string& path, const char* key) const {
    const json& v = member(obj, path, key);
    type(v, path + step(key), json::value_t::object, "an object");
    return v;
  }

  const json& array(const json& obj, const std::string& path, const char* key, std::size_t max) const {
    const json& v = member(obj, path, key);
    type(v, path + step(key), json::value_t::array, "an array");
    if (v.size() > max)
      fail(path + step(key), fmt::format("{} elements, more than the {} a snapshot may have", v.size(), max));
    return v;
  }

  uint64_t uint(const json& v, const std::string& path) const {
    type(v, path, json::value_t::number_unsigned, "an unsigned integer");
    return v.get<uint64_t>();
  }
  uint64_t uint(const json& obj, const std::string& path, const char* key) const {
    return uint(member(obj, path, key), path + step(key));
  }

  void count(const json& obj, const std::string& path, const char* key) const {
    const json& v = member(obj, path, key);
    if (!v.is_null() && !v.is_number_unsigned())
      fail(path + step(key), "expected an unsigned integer or null, got " + kind_of(v));
  }

  double number(const json& obj, const std::string& path, const char* key, double min) const {
    const json& v = member(obj, path, key);
    if (!v.is_number()) fail(path + step(key), "expected a number, got " + kind_of(v));
    auto d = v.get<double>();
    if (!std::isfinite(d) || d < min) fail(path + step(key), fmt::format("{} is out of range", d));
    return d;
  }

  void number_or_null(const json& obj, const std::string& path, const char* key, double min) const {
    if (!member(obj, path, key).is_null()) number(obj, path, key, min);
  }

  std::string text(const json& obj, const std::string& path, const char* key, std::size_t max) const {
    const json& v = member(obj, path, key);
    type(v, path + step(key), json::value_t::string, "a string");
    const auto& s = v.get_ref<const std::string&>();
    if (s.size() > max) fail(path + step(key), fmt::format("{} bytes, more than {}", s.size(), max));
    if (!printable_ascii(s)) fail(path + step(key), "holds characters other than printable ASCII");
    return s;
  }

  // histogram_json(): either every field null (not observable), or counts with buckets whose sum is
  // the count and whose bounds rise.
  void histogram(const json& h, const std::string& path, SlotKind kind) const {
    type(h, path, json::value_t::object, "an object");
    if (member(h, path, "count").is_null()) {
      for (const char* key : {"mean", "p50", "p99", "max", "buckets"})
        if (!member(h, path, key).is_null())
          fail(path + step(key), "expected null (the count is null), got " + kind_of(h[key]));
      return;
    }
    uint64_t count = uint(h, path, "count");
    number(h, path, "mean", 0);
    uint(h, path, "p50");
    uint(h, path, "p99");
    this->count(h, path, "max");
    const json& buckets = array(h, path, "buckets", slot_count(kind));
    uint64_t sum = 0;
    std::optional<uint64_t> previous_le;
    for (std::size_t i = 0; i < buckets.size(); ++i) {
      auto at = path + "/buckets" + step(i);
      type(buckets[i], at, json::value_t::object, "an object");
      uint64_t le = uint(buckets[i], at, "le");
      if (previous_le && le <= *previous_le) fail(at + "/le", "bucket bounds must rise");
      previous_le = le;
      uint64_t n = uint(buckets[i], at, "count");
      if (n > UINT64_MAX - sum) fail(at + "/count", "the bucket counts overflow");
      sum += n;
    }
    if (sum != count) fail(path + "/count", fmt::format("{}, but the buckets hold {}", count, sum));
  }

  void lifetime(const json& obj, const std::string& path) const {
    const json& h = member(obj, path, "lifetime_ms");
    auto at = path + "/lifetime_ms";
    histogram(h, at, SlotKind::log2);
    if (h["count"].is_null()) return;
    const json& by_proto = object(h, at, "by_proto");
    for (const auto& [proto, histogram_of_proto] : by_proto.items()) {
      if (!known_proto(proto)) fail(at + "/by_proto" + step(proto), "not a protocol class");
      histogram(histogram_of_proto, at + "/by_proto" + step(proto), SlotKind::log2);
    }
    uint(h, at, "sampled_one_in");
    uint(h, at, "untracked");
  }

  static bool known_proto(std::string_view name) {
    for (std::size_t i = 0; i < CTBPF_PROTO_MAX; ++i)
      if (name == proto_class_name(i)) return true;
    return false;
  }

  // The fields summary_json() and interval_json() share (render.cpp: common()).
  void common(const json& r, const std::string& path) const {
    for (const char* key : {"allocs", "inserts", "destroys", "deletes", "netfilter_drops", "lost_events"})
      count(r, path, key);
    const json& drops = object(r, path, "drops");
    for (const auto& cause : kDropCauses) count(drops, path + "/drops", cause.key);
    histogram(member(r, path, "chain_length"), path + "/chain_length", SlotKind::chain);
    lifetime(r, path);

    const json& by_proto = member(r, path, "by_proto");
    if (!by_proto.is_null()) {
      type(by_proto, path + "/by_proto", json::value_t::object, "an object or null");
      for (std::size_t i = 0; i < CTBPF_PROTO_MAX; ++i) {
        auto at = path + "/by_proto" + step(proto_class_name(i));
        const json& p = object(by_proto, path + "/by_proto", proto_class_name(i));
        uint(p, at, "inserts");
        uint(p, at, "destroys");
      }
    }
    const json& by_netns = member(r, path, "by_netns");
    if (!by_netns.is_null()) {
      const json& rows = array(r, path, "by_netns", 64);
      for (std::size_t i = 0; i < rows.size(); ++i) {
        auto at = path + "/by_netns" + step(i);
        type(rows[i], at, json::value_t::object, "an object");
        const json& netns = member(rows[i], at, "netns");
        if (!netns.is_number_unsigned() && netns != "other")
          fail(at + "/netns", "expected a netns inode or \"other\", got " + kind_of(netns));
        uint(rows[i], at, "inserts");
        uint(rows[i], at, "destroys");
        if (rows[i].contains("name")) name(rows[i], at);  // older files have no names
      }
    }
    nat_drops(r, path);
    const json& states = member(r, path, "tcp_state_at_death");
    if (!states.is_null()) {
      type(states, path + "/tcp_state_at_death", json::value_t::object, "an object or null");
      if (states.size() > 32) fail(path + "/tcp_state_at_death", "more than 32 TCP states");
      for (const auto& [state, n] : states.items()) {
        auto at = path + "/tcp_state_at_death" + step(state);
        if (state.empty() || state.size() > 32 || !printable_ascii(state)) fail(at, "not a TCP state name");
        uint(n, at);
      }
    }
    const json& misses = object(r, path, "probe_misses");
    // Counts, or null where the probe does not exist (files before that was said hold 0).
    for (const char* key : {"confirm_unpaired", "chain_walk_truncated", "recursion"})
      count(misses, path + "/probe_misses", key);
    const json& table = object(r, path, "table");
    for (const char* key : {"count", "max", "buckets"}) count(table, path + "/table", key);
    number_or_null(table, path + "/table", "fill", 0);
    // Net growth and the kernel's own statistics: absent from files older than them.
    if (table.contains("growth")) {
      const json& growth = table["growth"];
      if (!growth.is_null() && !growth.is_number_integer())
        fail(path + "/table/growth", "expected an integer or null, got " + kind_of(growth));
      number_or_null(table, path + "/table", "growth_per_s", -std::numeric_limits<double>::max());
    }
    if (r.contains("kernel_stats") && !r["kernel_stats"].is_null()) {
      const json& stats = object(r, path, "kernel_stats");
      // Counters newer than the file may be absent from it; a key that is none of them is refused.
      for (const auto& item : stats.items()) {
        const std::string& key = item.key();
        if (std::none_of(std::begin(kKernelCounters), std::end(kKernelCounters),
                         [&](const auto& counter) { return key == counter.key; }))
          fail(path + "/kernel_stats" + step(key), "not one of the kernel's statistics");
        count(stats, path + "/kernel_stats", key.c_str());
      }
    }
  }

  // A netns name (render.cpp: name_json): null when unknown.
  // "nat_blackholes" and "dns_races": absent in files before them, null where unobservable, else at
  // most their kernel map's bound of rows, each with the fields the reports print.
  void nat_drops(const json& r, const std::string& path) const {
    if (r.contains("nat_blackholes") && !r["nat_blackholes"].is_null()) {
      const json& rows = array(r, path, "nat_blackholes", CTBPF_BLACKHOLES_MAX);
      for (std::size_t i = 0; i < rows.size(); ++i) {
        auto at = path + "/nat_blackholes" + step(i);
        type(rows[i], at, json::value_t::object, "an object");
        for (const char* key : {"proto", "src", "dst", "reason"}) text(rows[i], at, key, 64);
        for (const char* key : {"sport", "dport", "dnat_to", "snat_to"})
          if (!member(rows[i], at, key).is_null()) {
            if (rows[i][key].is_string()) text(rows[i], at, key, 64);
            else uint(rows[i], at, key);
          }
        uint(rows[i], at, "netns");
        uint(rows[i], at, "packets");
      }
    }
    if (r.contains("dns_races") && !r["dns_races"].is_null()) {
      const json& rows = array(r, path, "dns_races", CTBPF_DNS_RACES_MAX);
      for (std::size_t i = 0; i < rows.size(); ++i) {
        auto at = path + "/dns_races" + step(i);
        type(rows[i], at, json::value_t::object, "an object");
        for (const char* key : {"service", "resolver"}) text(rows[i], at, key, 64);
        for (const char* key : {"netns", "insert_failed", "clash_resolve"}) uint(rows[i], at, key);
      }
    }
  }

  void name(const json& row, const std::string& path) const {
    if (!member(row, path, "name").is_null()) text(row, path, "name", 255);
  }

  // "by_source" (trace/snapshot --top N): absent when not asked for, null when not observable, else
  // at most top rows per order and a last "other" row.
  void by_source(const json& s) const {
    if (!s.contains("by_source") || s["by_source"].is_null()) return;
    const std::string path = "/summary/by_source";
    const json& b = s["by_source"];
    type(b, path, json::value_t::object, "an object or null");
    const uint64_t top = uint(b, path, "top");
    if (top == 0 || top > kSnapshotMaxTopSources)
      fail(path + "/top", fmt::format("{} is not between 1 and {}", top, kSnapshotMaxTopSources));
    uint(b, path, "untracked");
    for (const char* key : {"by_live", "by_inserts"}) {
      const json& rows = array(b, path, key, top + 1);
      for (std::size_t i = 0; i < rows.size(); ++i) {
        auto at = path + step(key) + step(i);
        type(rows[i], at, json::value_t::object, "an object");
        const json& netns = member(rows[i], at, "netns");
        const bool other = netns == "other";
        if (!netns.is_number_unsigned() && !other)
          fail(at + "/netns", "expected a netns inode or \"other\", got " + kind_of(netns));
        if (other && i + 1 != rows.size()) fail(at + "/netns", "the \"other\" row must be the last");
        name(rows[i], at);
        auto src = text(rows[i], at, "src", kAddressTextMax);
        if (other && src != "other") fail(at + "/src", "expected \"other\" (the netns is \"other\")");
        if (!other && !is_ip_address(src)) fail(at + "/src", "expected an IPv4 or IPv6 address");
        if (!member(rows[i], at, "live").is_number_integer())
          fail(at + "/live", "expected an integer, got " + kind_of(rows[i]["live"]));
        uint(rows[i], at, "inserts");
        uint(rows[i], at, "destroys");
        number(rows[i], at, "inserts_per_s", 0);
      }
    }
  }

  void summary(const json& doc) const {
    const json& s = object(doc, "", "summary");
    if (s.value("type", json()) != "summary") fail("/summary/type", "expected \"summary\"");
    if (s.value("mode", json()) != doc["mode"]) fail("/summary/mode", "differs from /mode");
    number(s, "/summary", "duration_s", 0);
    common(s, "/summary");
    by_source(s);
  }

  void interval(const json& r, const std::string& path) const {
    type(r, path, json::value_t::object, "an object");
    if (r.value("type", json()) != "interval") fail(path + "/type", "expected \"interval\"");
    number(r, path, "t", 0);
    number(r, path, "interval_s", 0);
    common(r, path);
    const json& rates = object(r, path, "rates");
    for (const char* key : {"allocs_per_s", "inserts_per_s", "destroys_per_s"})
      number_or_null(rates, path + "/rates", key, 0);
  }

  void document(const json& doc) const {
    type(doc, "", json::value_t::object, "an object");
    const json& version = member(doc, "", "schema_version");
    if (!version.is_number_unsigned())
      fail("/schema_version", "expected an unsigned integer, got " + kind_of(version));
    if (version.get<uint64_t>() != kSnapshotSchemaVersion)
      fail("/schema_version", fmt::format("version {} is not supported (this ctbpf reads version {})",
                                          version.get<uint64_t>(), kSnapshotSchemaVersion));
    if (doc.value("type", json()) != "snapshot") fail("/type", "expected \"snapshot\"");
    text(doc, "", "host", 255);
    text(doc, "", "kernel", 255);
    auto mode = text(doc, "", "mode", 16);
    if (!mode_from_string(mode)) fail("/mode", "expected fentry, kprobe or tracepoint");
    const json& window = object(doc, "", "window");
    for (const char* key : {"start", "end"})
      if (!rfc3339(text(window, "/window", key, 40)))
        fail("/window" + step(key), "expected a UTC time like 2024-05-06T07:08:09.123Z");
    number(window, "/window", "duration_s", 0);
    if (number(doc, "", "interval_s", 0) <= 0) fail("/interval_s", "must be positive");

    const json& sysctls = object(doc, "", "sysctls");
    if (sysctls.size() > 256) fail("/sysctls", "more than 256 sysctls");
    for (const auto& [name, value] : sysctls.items()) {
      if (!sysctl_name(name)) fail("/sysctls" + step(name), "not a sysctl name");
      uint(value, "/sysctls" + step(name));
    }

    const json& intervals = array(doc, "", "intervals", kSnapshotMaxIntervals);
    const json& trigger = member(doc, "", "trigger");
    if (!trigger.is_null()) {
      type(trigger, "/trigger", json::value_t::object, "an object or null");
      const json& causes = array(trigger, "/trigger", "causes", std::size(kDropCauses));
      if (causes.empty()) fail("/trigger/causes", "empty");
      for (std::size_t i = 0; i < causes.size(); ++i) {
        const auto& c = causes[i];
        if (!c.is_string() || std::none_of(std::begin(kDropCauses), std::end(kDropCauses),
                                           [&](const auto& cause) { return c == cause.key; }))
          fail("/trigger/causes" + step(i), "not a drop cause");
      }
      if (uint(trigger, "/trigger", "interval") >= intervals.size())
        fail("/trigger/interval", "past the last interval");
    }
    summary(doc);
    for (std::size_t i = 0; i < intervals.size(); ++i) interval(intervals[i], "/intervals" + step(i));
  }

private:
  std::string name_;
};

// Nesting deeper than any snapshot needs is refused before parsing: a file of a million '[' would
// otherwise become a million nested values in memory.
void check_depth(std::string_view bytes, const std::string& name) {
  std::size_t depth = 0;
  bool in_string = false, escaped = false;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    char c = bytes[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kSnapshotMaxDepth)
        throw SnapshotError(fmt::format("{}: byte {}: nested deeper than {} levels", name, i + 1,
                                        kSnapshotMaxDepth));
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
}

}  // namespace

json make_snapshot(const SnapshotMeta& meta, const Report& summary, const std::vector<Report>& intervals) {
  if (intervals.size() > kSnapshotMaxIntervals)
    throw std::invalid_argument(fmt::format("a snapshot holds at most {} intervals", kSnapshotMaxIntervals));
  json series = json::array();
  const WhoFills* who = meta.who ? &*meta.who : nullptr;
  for (const auto& r : intervals) series.push_back(interval_json(r, meta.obs, who));
  json sysctls = json::object();
  for (const auto& [name, value] : meta.sysctls)
    if (sysctl_name(name)) sysctls[name] = value;
  json trigger = nullptr;
  if (meta.trigger) trigger = {{"causes", meta.trigger->causes}, {"interval", meta.trigger->interval}};
  // Host names and kernel releases are printed by `report`; the reader refuses anything but printable
  // ASCII, so the writer never produces a file it would refuse (netns names: render.cpp does the same).
  return {{"type", "snapshot"},
          {"schema_version", kSnapshotSchemaVersion},
          {"host", printable(meta.host)},
          {"kernel", printable(meta.kernel)},
          {"mode", to_string(meta.mode)},
          {"window",
           {{"start", rfc3339_utc(meta.start_epoch_s)},
            {"end", rfc3339_utc(meta.end_epoch_s)},
            {"duration_s", summary.duration()}}},
          {"interval_s", meta.interval_s},
          {"sysctls", sysctls},
          {"trigger", trigger},
          {"summary", summary_json(summary, meta.mode, meta.obs, who)},
          {"intervals", series}};
}

json make_snapshot(const SnapshotMeta& meta, const std::vector<Sample>& samples, bool starts_at_load) {
  if (samples.size() < 2) throw std::invalid_argument("a snapshot needs at least two samples");
  Aggregator aggregator(meta.mode, meta.obs);
  std::vector<Report> intervals;
  for (const auto& s : samples)
    if (auto r = aggregator.add(s)) intervals.push_back(*r);
  auto summary = aggregator.summary();
  // The kernel's exact maximum counts from load; a later window can only bound its own.
  if (!starts_at_load && summary.totals.chain) summary.totals.chain_max = summary.totals.chain->max_bound();
  return make_snapshot(meta, summary, intervals);
}

std::string snapshot_bytes(const json& doc) { return doc.dump(1) + '\n'; }

json read_snapshot(std::string_view bytes, const std::string& name) {
  if (bytes.size() > kSnapshotMaxBytes)
    throw SnapshotError(fmt::format("{}: {} bytes, more than the {} a snapshot may have", name,
                                    bytes.size(), kSnapshotMaxBytes));
  check_depth(bytes, name);
  json doc;
  try {
    doc = json::parse(bytes);
  } catch (const json::parse_error& e) {
    // what() quotes the bytes it choked on: keep only nlohmann's reason, made printable.
    std::string reason = e.what();
    auto colon = reason.find(": ", reason.find("column"));
    reason = colon == std::string::npos ? "syntax error" : reason.substr(colon + 2);
    reason = printable(reason.substr(0, reason.find("; last read")), 120);
    throw SnapshotError(fmt::format("{}: byte {}: not valid JSON ({})", name, e.byte, reason));
  } catch (const json::exception& e) {
    // A number too large for a double: nlohmann names it but not where it is.
    std::string reason = e.what();
    auto bracket = reason.find("] ");
    reason = printable(bracket == std::string::npos ? reason : reason.substr(bracket + 2), 120);
    throw SnapshotError(fmt::format("{}: not valid JSON ({})", name, reason));
  }
  Checker(name).document(doc);
  return doc;
}

json summary_as_now(const json& summary) {
  json s = summary;
  // Files older than the netns keys: not known, said as null.
  for (const char* key : {"own_netns", "other_netns"})
    if (s.is_object() && !s.contains(key)) s[key] = nullptr;
  if (s.contains("kernel_stats") && s["kernel_stats"].is_object())
    for (const auto& counter : kKernelCounters)
      if (!s["kernel_stats"].contains(counter.key)) s["kernel_stats"][counter.key] = nullptr;
  return s;
}

std::string rfc3339_utc(double epoch_s) {
  using namespace std::chrono;
  const sys_time<milliseconds> t{milliseconds{std::llround(epoch_s * 1000.0)}};
  const auto day = floor<days>(t);
  const year_month_day date{day};
  const hh_mm_ss time{t - day};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", static_cast<int>(date.year()),
                     static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                     time.hours().count(), time.minutes().count(), time.seconds().count(),
                     time.subseconds().count());
}

}  // namespace ctbpf::core
