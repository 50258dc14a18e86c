// SPDX-License-Identifier: Apache-2.0
// doctor's rules on timeouts, by protocol and TCP state: established, UDP (and stateless UDP),
// the closing TCP states, ICMP and the generic timeout.
#include <algorithm>

#include <linux/netfilter/nf_conntrack_tcp.h>

#include <fmt/format.h>

#include "core/doctor_rules.h"
#include "core/render.h"

namespace ctbpf::core::doctor_rules {

using nlohmann::json;

namespace {

constexpr uint64_t kEstablishedFloor_s = 10800;  // 3 h: above the default TCP keepalive idle (7200 s)
constexpr uint64_t kLongEstablished_s = 86400;
constexpr uint64_t kUdpTimeoutProposal_s = 10;
// Live entries idle beyond the proposed timeout that make the timeout a warning on their own.
constexpr double kStaleTableShare = 0.25;

// ---- closing TCP states, ICMP and the generic timeout ------------------------------------------------

// Below this many live entries a share says nothing about the table.
constexpr uint64_t kMinEntries = 100;
// The closing (and opening) states fire the rule when they hold this share of the table or its growth.
constexpr double kClosingShare = 0.5;
// ICMP and generic entries are worth a finding from this share of the table on.
constexpr double kMeasurableShare = 0.05;
// Linux's own TIME_WAIT (TCP_TIMEWAIT_LEN, include/net/tcp.h): a translated tuple freed sooner may meet
// a server socket still in TIME_WAIT for it.
constexpr uint64_t kTimeWaitBehindNat_s = 60;

// One state of the rule. open_half: a connection in it may still carry data one way, so an entry that
// expires while it is idle can cut a connection in use, not only a finished one.
struct ClosingState {
  uint8_t state;
  const char* sysctl;
  uint64_t proposal_s;
  bool open_half;
};

constexpr ClosingState kClosingStates[] = {
    {TCP_CONNTRACK_SYN_SENT, "tcp_timeout_syn_sent", 30, true},
    {TCP_CONNTRACK_SYN_RECV, "tcp_timeout_syn_recv", 30, true},
    {TCP_CONNTRACK_FIN_WAIT, "tcp_timeout_fin_wait", 30, true},
    {TCP_CONNTRACK_CLOSE_WAIT, "tcp_timeout_close_wait", 30, true},
    {TCP_CONNTRACK_LAST_ACK, "tcp_timeout_last_ack", 30, false},
    {TCP_CONNTRACK_TIME_WAIT, "tcp_timeout_time_wait", 30, false},
};

// New UDP flows per second and the entries they hold by waiting out udp_timeout (Little's law:
// entries = arrival rate × time each stays, and every entry stays at least the timeout).
struct UdpLoad {
  uint64_t inserts = 0, all_inserts = 0;
  double per_s = 0, share = 0, held = 0;
};

std::optional<UdpLoad> udp_load(const DoctorInput& in, const Facts& f) {
  auto timeout = sysctl(in, "udp_timeout");
  if (!f.detail || !timeout || f.duration <= 0) return std::nullopt;
  UdpLoad u;
  u.inserts = f.detail->inserts_by_proto[CTBPF_PROTO_UDP];
  for (auto n : f.detail->inserts_by_proto) u.all_inserts += n;
  if (u.all_inserts == 0) return std::nullopt;
  u.per_s = static_cast<double>(u.inserts) / f.duration;
  u.share = ratio(u.inserts, u.all_inserts);
  u.held = u.per_s * static_cast<double>(*timeout);
  return u;
}

// The table's capacity the UDP entries are compared with (the count when unlimited).
double capacity(const Facts& f) {
  if (f.max && *f.max > 0) return static_cast<double>(*f.max);
  return static_cast<double>(std::max<uint64_t>(f.peak, 1));
}

// The UDP destination ports that made at least a tenth of UDP inserts (at most five), busiest first.
std::vector<PortCount> busy_udp_ports(const DoctorInput& in) {
  std::vector<PortCount> udp;
  uint64_t total = 0;
  if (in.top_ports)
    for (const auto& p : *in.top_ports)
      if (p.l4 == 17) {
        udp.push_back(p);
        total += p.inserts;
      }
  std::erase_if(udp, [&](const PortCount& p) { return p.inserts * 10 < total; });
  if (udp.size() > 5) udp.resize(5);
  return udp;
}

// Why each state's entry lives as long as it does, and what its proposal keeps.
std::string closing_why(const ClosingState& c, uint64_t proposal, const DoctorInput& in) {
  const auto retries2 = tcp_sysctl(in, "tcp_retries2").value_or(15);
  const auto within = retransmissions_within(static_cast<double>(proposal));
  switch (c.state) {
    case TCP_CONNTRACK_SYN_SENT:
      return fmt::format(
          "SYN_SENT: a SYN not answered yet. Linux resends it after 1, 3, 7, 15, 31 and 63 s "
          "(tcp_syn_retries 6); an answer arriving more than {} s after the SYN that made the entry finds "
          "none (a later SYN makes a new one). Entries idle here are mostly unanswered probes or dead "
          "destinations.",
          proposal);
    case TCP_CONNTRACK_SYN_RECV:
      return fmt::format(
          "SYN_RECV: a SYN answered, the handshake's last ACK not seen yet: half-open connections (a SYN "
          "flood, a client that vanished). Linux resends a SYN-ACK after 1, 3, 7, 15 and 31 s "
          "(tcp_synack_retries 5); {} s covers the first four.",
          proposal);
    case TCP_CONNTRACK_FIN_WAIT:
      return fmt::format(
          "FIN_WAIT: a FIN not acknowledged yet. The endpoint retransmits it with a doubling timeout (200 ms "
          "first) up to tcp_retries2 = {} times, giving up after {:.1f} s; {} s covers {} retransmissions, "
          "so an entry idle longer waits for a peer that is gone. The other direction may still send data.",
          retries2, retransmission_give_up_s(retries2), proposal, within);
    case TCP_CONNTRACK_CLOSE_WAIT:
      return "CLOSE_WAIT: one side sent its FIN, the other has not: a program that never closes its socket "
             "(it never sends its FIN) holds the entry until the timeout. But a half-closed connection may "
             "still carry data the other way: a long-poll client that shut down its sending side waits "
             "here for its answer.";
    case TCP_CONNTRACK_LAST_ACK:
      return fmt::format(
          "LAST_ACK: both FINs sent, the last ACK missing; the FIN is retransmitted up to tcp_retries2 = {} "
          "times ({:.1f} s), {} within {} s. No data can flow any more.",
          retries2, retransmission_give_up_s(retries2), within, proposal);
    case TCP_CONNTRACK_TIME_WAIT:
      return fmt::format(
          "TIME_WAIT: both sides closed; the entry waits 2 MSL (Linux's MSL is 60 s) so a late segment or a "
          "retransmitted FIN of the old connection still finds it. PAWS (TCP timestamps, "
          "net.ipv4.tcp_timestamps = {}) makes the endpoints drop old segments and tcp_tw_reuse (= {}) lets "
          "them reuse the tuple, and a new SYN on the tuple replaces a TIME_WAIT entry at once: the entry "
          "need not outlive the endpoints' own TIME_WAIT (60 s). No data can flow any more (but a FIN retransmitted "
          "in CLOSE_WAIT moves a half-closed connection here too).",
          text(tcp_sysctl(in, "tcp_timestamps")), text(tcp_sysctl(in, "tcp_tw_reuse")));
  }
  return "";
}

// ICMP and the protocols on generic_timeout: entries of one timeout each, proposed shorter when they hold
// a measurable share of the table and some are idle past the proposal.
struct ProtoTimeout {
  const char* id;
  const char* name;
  std::vector<std::string> sysctls;
  uint64_t proposal_s;
  const char* why;
};

void rule_proto_timeout(const DoctorInput& in, const Facts& f, Diagnosis& d, const ProtoTimeout& p, uint64_t live,
                        const IdleStats& stats) {
  if (!in.idle || in.idle->entries == 0) return;
  const double share = ratio(live, in.idle->entries);
  if (live < kMinEntries || share < kMeasurableShare) return;
  std::vector<std::pair<std::string, uint64_t>> settings;
  json timeouts = json::object();
  std::string timeout_text;
  for (const auto& name : p.sysctls) {
    auto t = sysctl(in, name);
    timeouts[name] = value(t);
    timeout_text += fmt::format("{}{} {} s", timeout_text.empty() ? "" : ", ", name, text(t));
    if (t && *t > p.proposal_s) settings.emplace_back(name, p.proposal_s);
  }
  const uint64_t would_free =
      settings.empty() ? 0 : stats.at_least_s(p.proposal_s).value_or(idle_beyond(stats, p.proposal_s * 1000));
  if (would_free == 0) settings.clear();
  Finding x;
  x.id = p.id;
  x.severity = f.pressure ? Severity::warning : Severity::info;
  x.title = fmt::format("{} entries are {:.0f}% of the table ({} of {})", p.name, 100 * share, live,
                        in.idle->entries);
  if (would_free) x.title += fmt::format(": {} s timeouts would free {}", p.proposal_s, would_free);
  x.measured = fmt::format("live {} entries at the window's end: {} ({:.1f}%); {}; idle {}", p.name, live,
                           100 * share, timeout_text, stats.count() ? idle_text(stats) : "not estimated");
  if (!settings.empty())
    x.measured += fmt::format("; {} idle {} s or more", would_free, p.proposal_s);
  x.why = p.why;
  for (const auto& [name, v] : settings) x.fix_now.push_back(sysctl_now(name, v));
  if (!settings.empty()) x.fix_persistent = sysctl_persistent(settings, in.system.build);
  json proposed = json::object();
  for (const auto& [name, v] : settings) proposed[name] = v;
  x.evidence = {{"live", live},
                {"entries", in.idle->entries},
                {"share", share},
                {"timeouts_s", timeouts},
                {"considered_s", p.proposal_s},
                {"proposed", proposed},
                {"would_free", would_free},
                {"idle", stats.count() ? idle_stats_json(stats) : json(nullptr)}};
  d.findings.push_back(std::move(x));
}

// The lifetimes of the TCP entries that ended in the window; empty without the destroy probe or when
// none ended.
std::optional<Histogram> tcp_lifetimes(const Facts& f) {
  if (f.detail && f.detail->lifetime[CTBPF_PROTO_TCP].count()) return f.detail->lifetime[CTBPF_PROTO_TCP];
  return std::nullopt;
}

std::string tcp_lifetime_text(const Histogram& life) {
  return fmt::format("TCP entries that ended in the window lived p50 {} ms, p99 {} ms", life.percentile(0.5),
                     life.percentile(0.99));
}

// Their p50 and p99 in a finding's evidence: null when not measured.
void add_tcp_lifetime_evidence(json& evidence, const std::optional<Histogram>& life) {
  evidence["tcp_lifetime_p50_ms"] = life ? json(life->percentile(0.5)) : json(nullptr);
  evidence["tcp_lifetime_p99_ms"] = life ? json(life->percentile(0.99)) : json(nullptr);
}

// What the table and the closing states grew by in the window: the same dump at the window's start,
// when neither dump stopped at its cap.
struct ClosingGrowth {
  std::optional<int64_t> table, closing;
  std::optional<double> share;  // closing / table, when the table grew
};

ClosingGrowth closing_growth(const DoctorInput& in) {
  ClosingGrowth g;
  const auto& idle = *in.idle;
  if (!in.idle_start || in.idle_start->capped() || idle.capped()) return g;
  g.table = static_cast<int64_t>(idle.entries) - static_cast<int64_t>(in.idle_start->entries);
  g.closing = 0;
  for (const auto& c : kClosingStates)
    *g.closing += static_cast<int64_t>(idle.live_by_tcp_state[c.state]) -
                  static_cast<int64_t>(in.idle_start->live_by_tcp_state[c.state]);
  if (*g.table > 0) g.share = static_cast<double>(*g.closing) / static_cast<double>(*g.table);
  return g;
}

// One closing state judged against its proposal.
struct ClosingVerdict {
  std::string name;
  uint64_t live = 0, nat = 0;
  std::optional<uint64_t> timeout;
  uint64_t proposal = 0;
  bool shorter = false;                   // the timeout is longer than the proposal
  uint64_t would_free = 0, would_cut = 0;  // live entries idle at least the proposal; of those, maybe in use
  std::string withheld;                   // why the proposal is not made; empty when it is
  bool propose() const { return would_free > 0 && withheld.empty(); }
};

ClosingVerdict judge_closing_state(const DoctorInput& in, const ClosingState& c, bool nat_time_wait, bool no_paws) {
  const auto& idle = *in.idle;
  const IdleStats& stats = idle.by_tcp_state[c.state];
  ClosingVerdict v;
  v.name = tcp_state_name(c.state);
  v.live = idle.live_by_tcp_state[c.state];
  v.nat = idle.nat_by_tcp_state[c.state];
  v.timeout = sysctl(in, c.sysctl);
  v.proposal = c.proposal_s;
  if (c.state == TCP_CONNTRACK_TIME_WAIT && nat_time_wait) v.proposal = kTimeWaitBehindNat_s;
  // What the proposal would not hold: the live entries idle at least that long (exact per second).
  v.shorter = v.timeout && *v.timeout > v.proposal;
  if (v.shorter) v.would_free = stats.at_least_s(v.proposal).value_or(idle_beyond(stats, v.proposal * 1000));
  if (c.open_half) v.would_cut = v.would_free;
  if (v.would_cut > 0)
    v.withheld = fmt::format(
        "{}: {} live entries idle {} s or more (max {} s) would be gone under {} s, and a connection in "
        "{} may still be in use: if they are (a half-closed long-poll waiting for its answer, a slow "
        "peer), they would be cut, through NAT or a rule dropping `ct state invalid`. Not proposed; if "
        "they are leaks (`ss -tan state {}` on the endpoint names the program), fix the program, or set "
        "it knowing it cuts them: {}.",
        v.name, v.would_cut, v.proposal, stats.max_ms / 1000, v.proposal, v.name,
        c.state == TCP_CONNTRACK_CLOSE_WAIT ? "close-wait"
        : c.state == TCP_CONNTRACK_FIN_WAIT ? "fin-wait-1"
        : c.state == TCP_CONNTRACK_SYN_RECV ? "syn-recv"
                                            : "syn-sent",
        sysctl_now(c.sysctl, v.proposal));
  else if (c.state == TCP_CONNTRACK_TIME_WAIT && v.would_free > 0 && nat_time_wait && no_paws)
    v.withheld = fmt::format(
        "TIME_WAIT: {} of these entries are NAT'd and this host has no PAWS (net.ipv4.tcp_timestamps = 0): "
        "a translated tuple freed early can be handed to a new connection while a server still holds the "
        "old one in TIME_WAIT, and without timestamps it refuses the new SYN. Not proposed.",
        v.nat);
  return v;
}

// "NAME live (share%, n NAT'd), timeout T s, idle ..., n idle P s or more".
std::string closing_state_text(const ClosingVerdict& v, const IdleStats& stats, uint64_t entries) {
  std::string out = fmt::format("{} {} ({:.1f}%{}), timeout {} s, idle {}", v.name, v.live,
                                100 * ratio(v.live, entries), v.nat ? fmt::format(", {} NAT'd", v.nat) : "",
                                text(v.timeout), stats.count() ? idle_text(stats) : "not estimated");
  if (v.shorter) out += fmt::format(", {} idle {} s or more", v.would_free, v.proposal);
  return out;
}

json closing_state_json(const ClosingVerdict& v, const ClosingState& c, const IdleStats& stats, uint64_t entries,
                        const Facts& f) {
  Count deaths;
  if (f.detail) deaths = f.detail->tcp_deaths_by_state[c.state];
  // Little's law: entries held = rate into the state × time in it; the entries that left the state by
  // dying in it (timeout or a new SYN on the tuple) stay at most the proposal each.
  json held_at_proposed = nullptr;
  if (deaths && *deaths > 0 && f.duration > 0)
    held_at_proposed = static_cast<double>(*deaths) / f.duration * static_cast<double>(v.proposal);
  return {{"live", v.live},
          {"share", ratio(v.live, entries)},
          {"nat", v.nat},
          {"timeout_s", value(v.timeout)},
          {"proposed_s", v.propose() ? json(v.proposal) : json(nullptr)},
          {"considered_s", v.proposal},
          {"would_free", v.would_free},
          {"would_cut", v.would_cut},
          {"withheld", !v.withheld.empty()},
          {"idle", stats.count() ? idle_stats_json(stats) : json(nullptr)},
          {"deaths_in_window", value(deaths)},
          {"held_at_proposed_at_most", held_at_proposed}};
}

// The NAT part of the rule's why.
std::string closing_nat_why(uint64_t nat_total) {
  if (nat_total)
    return fmt::format(
        " {} of these entries are NAT'd: an entry that expires frees its translated tuple for another "
        "connection, and a server still in TIME_WAIT for it (60 s on Linux) accepts the new SYN only through "
        "PAWS (timestamps on both ends); TIME_WAIT is considered at {} s here, not {} s.",
        nat_total, kTimeWaitBehindNat_s, kClosingStates[5].proposal_s);
  return " None of these entries is NAT'd here; on a NAT gateway, TIME_WAIT stays at least 60 s (a freed "
         "translated tuple may meet a server still in TIME_WAIT, refused without PAWS), and a NAT'd "
         "long-poll that half-closes is cut by a short close_wait.";
}

// Live ESTABLISHED entries at the window's end, idle time measurable or not; empty when the dump is
// missing or stopped by its bound before the end of the table (it then read only a sample).
Count established_live(const DoctorInput& in) {
  if (!in.idle || in.idle->capped()) return std::nullopt;
  return in.idle->live_by_tcp_state[TCP_CONNTRACK_ESTABLISHED];
}

}  // namespace

void rule_tcp_established_timeout(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  auto timeout = sysctl(in, "tcp_timeout_established");
  if (!timeout || *timeout < kLongEstablished_s) return;
  const auto tcp_life = tcp_lifetimes(f);
  uint64_t proposal = kEstablishedFloor_s;
  if (tcp_life) {
    // Twice the longest observed connection life (p99), in whole hours: the timeout is idle time, so
    // this keeps every connection seen here tracked with room to spare.
    uint64_t p99_s = (tcp_life->percentile(0.99) + 999) / 1000;
    proposal = std::max(proposal, (2 * p99_s + 3599) / 3600 * 3600);
  }
  if (*timeout <= 4 * proposal) return;

  // The live ESTABLISHED entries and how long each has gone without a packet (the dump at the window's
  // end): those idle beyond the proposal are slots this timeout alone keeps, whatever lifetimes say.
  const IdleStats* idle = nullptr;
  if (in.idle) idle = &in.idle->by_tcp_state[TCP_CONNTRACK_ESTABLISHED];
  const uint64_t live = idle ? idle->count() : 0;
  const uint64_t stale = idle ? idle_beyond(*idle, proposal * 1000) : 0;
  const bool stale_fills =
      stale > 0 && f.count_end && static_cast<double>(stale) >= kStaleTableShare * static_cast<double>(*f.count_end);

  // Table pressure makes this timeout a warning only where it can matter: with ESTABLISHED entries in
  // the table, or when the dump cannot say (none, or stopped by its bound). A table with no live
  // ESTABLISHED entry gets nothing back from a shorter timeout: info, whatever the pressure.
  const auto established = established_live(in);
  Finding x;
  x.id = "tcp_timeout_established";
  x.severity = (f.pressure && (!established || *established > 0)) || stale_fills ? Severity::warning : Severity::info;
  x.title = fmt::format("an idle established TCP entry is kept {} ({} s)", human_seconds(static_cast<double>(*timeout)),
                        *timeout);
  if (stale)
    x.title += fmt::format(": at least {} live ones idle over {}", stale, human_seconds(static_cast<double>(proposal)));
  Count established_deaths;
  if (f.detail) established_deaths = f.detail->tcp_deaths_by_state[TCP_CONNTRACK_ESTABLISHED];
  if (tcp_life)
    x.measured = fmt::format("nf_conntrack_tcp_timeout_established = {} s; {} ({} sampled); {} died while still "
                             "ESTABLISHED",
                             *timeout, tcp_lifetime_text(*tcp_life), tcp_life->count(), text(established_deaths));
  else
    x.measured = fmt::format("nf_conntrack_tcp_timeout_established = {} s; {}", *timeout,
                             f.detail ? "no TCP entry ended in the window"
                                      : "lifetimes not measured (tracepoint mode has no destroy probe)");
  if (!in.idle)
    x.measured += "; idle times not measured (no ctnetlink dump)";
  else if (!live)
    x.measured += "; no live ESTABLISHED entry with a measurable idle time";
  else
    x.measured += fmt::format("; live ESTABLISHED entries idle (time since their last packet): {}; at least {} "
                              "({:.0f}%) idle longer than the proposed {} s",
                              idle_text(*idle), stale, 100 * ratio(stale, live), proposal);
  x.why = fmt::format(
      "The timeout is how long an ESTABLISHED entry survives without a packet: a peer that vanished "
      "without FIN or RST (crash, mobile client, a NAT box upstream forgetting it) holds its slot that "
      "long. Proposed {} s: at least 3 h, above Linux's default TCP keepalive idle time (7200 s) so "
      "idle connections that keep alive stay tracked{}. Lifetimes only cover connections that ended in "
      "the window; idle times (the timeout minus the time an entry has left, from a ctnetlink dump at "
      "the window's end) show the live entries sitting silent, and those idle beyond the proposal are "
      "what it would free now. With NAT, keep it above your longest idle connection that must survive: "
      "an expired entry breaks it.",
      proposal, tcp_life ? ", and at least twice the longest connection life seen here" : "");
  x.fix_now = {sysctl_now("tcp_timeout_established", proposal)};
  x.fix_persistent = sysctl_persistent({{"tcp_timeout_established", proposal}}, in.system.build);
  x.evidence = {{"timeout_s", *timeout},
                {"proposed_s", proposal},
                {"tcp_deaths_established", value(established_deaths)},
                {"established_live", in.idle ? json(live) : json(nullptr)},
                {"established_entries", value(established)},
                {"established_idle_p50_ms", live ? json(idle->histogram().percentile(0.5)) : json(nullptr)},
                {"established_idle_p99_ms", live ? json(idle->histogram().percentile(0.99)) : json(nullptr)},
                {"established_idle_max_ms", live ? json(idle->max_ms) : json(nullptr)},
                {"established_idle_beyond_proposed", in.idle ? json(stale) : json(nullptr)}};
  add_tcp_lifetime_evidence(x.evidence, tcp_life);
  d.findings.push_back(std::move(x));
}

void rule_udp_timeout(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  auto u = udp_load(in, f);
  auto timeout = sysctl(in, "udp_timeout");
  if (!u || !timeout || *timeout <= kUdpTimeoutProposal_s || u->held < 0.1 * capacity(f)) return;
  std::optional<Histogram> udp_life;
  if (f.detail->lifetime[CTBPF_PROTO_UDP].count()) udp_life = f.detail->lifetime[CTBPF_PROTO_UDP];
  Finding x;
  x.id = "udp_timeout";
  x.severity = f.pressure ? Severity::warning : Severity::info;
  x.title = fmt::format("unanswered UDP entries wait {} s: about {:.0f} entries at {:.0f} new UDP flows/s",
                        *timeout, u->held, u->per_s);
  x.measured = fmt::format("{} UDP inserts in {:.1f} s ({:.0f}/s) × nf_conntrack_udp_timeout {} s ≈ {:.0f} "
                           "entries, {:.0f}% of {}",
                           u->inserts, f.duration, u->per_s, *timeout, u->held, 100 * u->held / capacity(f),
                           f.max && *f.max ? fmt::format("max {}", *f.max) : "the table");
  if (udp_life)
    x.measured += fmt::format("; UDP entries that ended lived p50 {} ms, p99 {} ms", udp_life->percentile(0.5),
                              udp_life->percentile(0.99));
  const IdleStats* udp_idle = nullptr;
  if (in.idle && in.idle->by_proto[CTBPF_PROTO_UDP].count()) udp_idle = &in.idle->by_proto[CTBPF_PROTO_UDP];
  if (udp_idle) x.measured += "; live UDP entries idle (time since their last packet): " + idle_text(*udp_idle);
  x.why = fmt::format(
      "A UDP entry stays nf_conntrack_udp_timeout seconds after its last packet while it has seen no "
      "reply (nf_conntrack_udp_timeout_stream once it has): one-shot request/response traffic such as "
      "DNS is idle for almost all of that. {} s still covers a retry; a UDP flow silent for longer loses "
      "its entry (and its NAT mapping).",
      kUdpTimeoutProposal_s);
  x.fix_now = {sysctl_now("udp_timeout", kUdpTimeoutProposal_s)};
  x.fix_persistent = sysctl_persistent({{"udp_timeout", kUdpTimeoutProposal_s}}, in.system.build);
  x.evidence = {{"udp_timeout_s", *timeout},
                {"proposed_s", kUdpTimeoutProposal_s},
                {"udp_inserts", u->inserts},
                {"udp_inserts_per_s", u->per_s},
                {"entries_held_estimate", u->held},
                {"udp_lifetime_p50_ms", udp_life ? json(udp_life->percentile(0.5)) : json(nullptr)},
                {"udp_idle_p50_ms", udp_idle ? json(udp_idle->histogram().percentile(0.5)) : json(nullptr)},
                {"udp_idle_p99_ms", udp_idle ? json(udp_idle->histogram().percentile(0.99)) : json(nullptr)}};
  d.findings.push_back(std::move(x));
}

void rule_stateless_udp(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  auto u = udp_load(in, f);
  if (!u || u->share < 0.5 || u->held < 0.05 * capacity(f)) return;
  const auto ports = busy_udp_ports(in);
  Finding x;
  x.id = "stateless_udp";
  x.severity = f.pressure || positive(f.chaintoolong) ? Severity::warning : Severity::info;
  x.title = fmt::format("UDP makes {:.0f}% of new entries: stateless traffic could skip conntrack",
                        100 * u->share);
  std::string port_list;
  for (const auto& p : ports) port_list += fmt::format("{}{} ({} inserts)", port_list.empty() ? "" : ", ", p.port, p.inserts);
  x.measured = fmt::format("{} of {} inserts were UDP ({:.0f}/s); busiest UDP destination ports: {}.", u->inserts,
                           u->all_inserts, u->per_s, port_list.empty() ? "not measured" : port_list);
  x.why =
      "Request/response UDP (DNS, NTP, syslog, statsd) needs no connection state unless it is NATed or "
      "matched by ct state rules: NOTRACK in a raw-priority chain (before conntrack, priority -300) "
      "keeps it out of the table entirely. The commands below do it for DNS (port 53), both directions "
      "and both hooks, for the busiest measured ports (53 when none were measured). Untracked packets "
      "skip NAT and match `ct state untracked`, not `established`: a stateful input filter needs `ct "
      "state untracked accept`.";
  std::string set = "53";
  if (!ports.empty()) {
    set.clear();
    for (const auto& p : ports) set += (set.empty() ? "" : ", ") + std::to_string(p.port);
    if (ports.size() > 1) set = "{ " + set + " }";
  }
  x.fix_now = {
      "nft add table inet no_conntrack",
      "nft add chain inet no_conntrack prerouting '{ type filter hook prerouting priority raw; policy accept; }'",
      "nft add chain inet no_conntrack output '{ type filter hook output priority raw; policy accept; }'",
      fmt::format("nft add rule inet no_conntrack prerouting udp dport {} notrack", set),
      fmt::format("nft add rule inet no_conntrack prerouting udp sport {} notrack", set),
      fmt::format("nft add rule inet no_conntrack output udp dport {} notrack", set),
      fmt::format("nft add rule inet no_conntrack output udp sport {} notrack", set),
  };
  x.fix_persistent = {
      "nft list table inet no_conntrack >> /etc/nftables.conf && systemctl enable nftables  # loaded at boot"};
  x.evidence = {{"udp_inserts", u->inserts},
                {"inserts", u->all_inserts},
                {"udp_share", u->share},
                {"udp_inserts_per_s", u->per_s},
                {"top_ports", nullptr}};
  if (in.top_ports) {
    x.evidence["top_ports"] = json::array();
    for (const auto& p : ports) x.evidence["top_ports"].push_back({{"port", p.port}, {"inserts", p.inserts}});
  }
  d.findings.push_back(std::move(x));
}

void rule_tcp_closing_states(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  if (!in.idle || in.idle->entries == 0) return;
  const auto& idle = *in.idle;
  uint64_t closing = 0;
  for (const auto& c : kClosingStates) closing += idle.live_by_tcp_state[c.state];
  const double share = ratio(closing, idle.entries);
  const auto growth = closing_growth(in);
  const bool by_table = closing >= kMinEntries && share >= kClosingShare;
  const bool by_growth = growth.table && *growth.table >= static_cast<int64_t>(kMinEntries) && growth.share &&
                         *growth.share >= kClosingShare;
  if (!by_table && !by_growth) return;

  const bool nat_time_wait = idle.nat_by_tcp_state[TCP_CONNTRACK_TIME_WAIT] > 0;
  const auto timestamps = tcp_sysctl(in, "tcp_timestamps");
  const bool no_paws = timestamps && *timestamps == 0;
  const auto tcp_life = tcp_lifetimes(f);

  Finding x;
  x.id = "tcp_closing_states";
  std::vector<std::pair<std::string, uint64_t>> settings;
  std::string per_state, warnings, whys;
  uint64_t free_total = 0, cut_total = 0, nat_total = 0;
  json states = json::object();
  for (const auto& c : kClosingStates) {
    const IdleStats& stats = idle.by_tcp_state[c.state];
    const auto v = judge_closing_state(in, c, nat_time_wait, no_paws);
    nat_total += v.nat;
    if (v.propose()) {
      settings.emplace_back(c.sysctl, v.proposal);
      free_total += v.would_free;
    }
    cut_total += v.would_cut;
    if (!v.withheld.empty()) warnings += " " + v.withheld;
    if (v.live) {
      per_state += (per_state.empty() ? "" : "; ") + closing_state_text(v, stats, idle.entries);
      whys += " " + closing_why(c, v.proposal, in);
    }
    states[v.name] = closing_state_json(v, c, stats, idle.entries, f);
  }

  x.severity = f.pressure || cut_total > 0 ? Severity::warning : Severity::info;
  x.title = fmt::format("{:.0f}% of the table is in closing TCP states ({} of {} entries)", 100 * share, closing,
                        idle.entries);
  if (free_total) x.title += fmt::format(": shorter timeouts would free {}", free_total);
  if (cut_total) x.title += fmt::format("; {} idle half-open connections would be cut", cut_total);
  x.measured = fmt::format("live entries at the window's end (ctnetlink{}): {}", 
                           idle.capped() ? fmt::format(", the first {} only", idle.entries) : "", per_state);
  if (growth.table)
    x.measured += fmt::format("; the table grew by {:+} entries in the window, closing states by {:+}{}",
                              *growth.table, *growth.closing,
                              growth.share ? fmt::format(" ({:.0f}%)", 100 * *growth.share) : std::string());
  if (tcp_life) x.measured += "; " + tcp_lifetime_text(*tcp_life);
  x.why =
      "Each state's entry stays its timeout after its last packet; shortening it frees the entries idle "
      "longer than the new value. Would-free counts are the live entries idle at least that long now (a "
      "timeout change applies from each entry's next packet: existing ones keep the expiry their last "
      "packet set, so the table shrinks within the old timeout). Idle reads up to 1 s high (ctnetlink "
      "rounds the time left down)." +
      whys;
  x.why += closing_nat_why(nat_total);
  x.why += warnings;
  for (const auto& [name, v] : settings) x.fix_now.push_back(sysctl_now(name, v));
  if (!settings.empty()) x.fix_persistent = sysctl_persistent(settings, in.system.build);
  json proposed = json::object();
  for (const auto& [name, v] : settings) proposed[name] = v;
  x.evidence = {{"entries", idle.entries},
                {"capped", idle.capped()},
                {"closing_live", closing},
                {"closing_share", share},
                {"fired_by_table_share", by_table},
                {"fired_by_growth_share", by_growth},
                {"growth", growth.table ? json(*growth.table) : json(nullptr)},
                {"closing_growth", growth.closing ? json(*growth.closing) : json(nullptr)},
                {"closing_growth_share", value(growth.share)},
                {"states", states},
                {"proposed", proposed},
                {"would_free", free_total},
                {"would_cut", cut_total},
                {"tcp_timestamps", value(tcp_sysctl(in, "tcp_timestamps"))},
                {"tcp_tw_reuse", value(tcp_sysctl(in, "tcp_tw_reuse"))},
                {"tcp_retries2", value(tcp_sysctl(in, "tcp_retries2"))}};
  add_tcp_lifetime_evidence(x.evidence, tcp_life);
  d.findings.push_back(std::move(x));
}

void rule_icmp_timeout(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  if (!in.idle) return;
  static const ProtoTimeout icmp{
      "icmp_timeout", "ICMP", {"icmp_timeout", "icmpv6_timeout"}, 10,
      "An ICMP entry (echo and other query/reply pairs) stays icmp_timeout (icmpv6_timeout) after its last "
      "packet, 30 s by default, while a reply comes within a round trip: an entry idle for seconds is a "
      "finished exchange. 10 s still covers a slow reply; a ping whose interval is longer starts a new entry "
      "per echo, which is harmless. ICMP errors (unreachable, TTL exceeded) belong to the connection they "
      "report on (RELATED), not to these entries, and are not affected."};
  rule_proto_timeout(in, f, d, icmp, in.idle->live_by_proto[CTBPF_PROTO_ICMP], in.idle->by_proto[CTBPF_PROTO_ICMP]);
}

void rule_generic_timeout(const DoctorInput& in, const Facts& f, Diagnosis& d) {
  if (!in.idle) return;
  static const ProtoTimeout generic{
      "generic_timeout", "generic-timeout (no tracker of their own: ESP, AH, OSPF, PIM, ...)", {"generic_timeout"},
      120,
      "Protocols conntrack has no tracker for share one timeout, generic_timeout (600 s by default), after "
      "their last packet. 120 s frees the finished ones sooner, but such a flow silent for longer loses its "
      "entry, and through NAT its mapping, and is cut: keep it above the longest silence of any of these "
      "protocols that must pass (an IPsec SA without traffic or dead-peer detection; routing hellos are "
      "seconds apart)."};
  rule_proto_timeout(in, f, d, generic, in.idle->live_generic, in.idle->generic);
}

}  // namespace ctbpf::core::doctor_rules
