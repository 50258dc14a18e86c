// SPDX-License-Identifier: Apache-2.0
// ctbpf serve: always-on, in-kernel aggregation only (no per-insert user-space work), read once per
// interval and exposed to Prometheus. The ring buffer carries only drop events, rate-limited in the
// kernel (--drop-events-rate), for attribution by cause and netns. The HTTP side renders the last
// interval's data on a scrape, once per interval and format: slow or many clients cannot stall
// aggregation for longer than one render.
#include <netdb.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/http_server.h"
#include "cli/options.h"
#include "cli/trace_loop.h"
#include "core/address.h"
#include "core/aggregator.h"
#include "core/events.h"
#include "core/prometheus.h"
#include "core/recorder.h"
#include "core/snapshot.h"
#include "core/web_config.h"
#include "kernel/snapshot_files.h"
#include "kernel/system.h"
#include "kernel/attribution_sources.h"
#include "kernel/error.h"
#include "kernel/tracer.h"

#ifndef CTBPF_VERSION
#define CTBPF_VERSION "unknown"
#endif

namespace ctbpf::cli {

namespace {

struct ServeOptions {
  std::string listen = "127.0.0.1:9640";
  double interval_s = 2.0;
  std::string mode = "auto";
  std::string ready_file;
  uint32_t lifetime_one_in = 64;       // always-on: cheaper sampling (see --help)
  uint32_t chain_one_in = 64;          // likewise
  uint32_t drop_events_rate = 100;     // drop events per second per CPU into the ring; 0 = no limit
  std::string web_config;              // TLS and basic auth (exporter-toolkit's file); empty = off
  std::string record_dir;              // rolling snapshots here; empty = off
  double record_every_s = 300;         // one snapshot per this many seconds
  core::RecorderOptions record_retention;  // keep_files and max_age_s apply
  uint32_t netns_labels = core::kMaxNetnsLabels;  // netns with series of their own
};

struct Endpoint {
  std::string host;
  int port = 0;
};

// HOST:PORT, [IPV6]:PORT or :PORT (every address, as node_exporter's --web.listen-address takes it);
// HOST is an address or a name (localhost), resolved here so a typo is a usage error.
Endpoint parse_listen(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size())
    throw Error(kExitUsage, fmt::format("--listen wants HOST:PORT, got '{}'", text));
  Endpoint e;
  e.host = text.substr(0, colon);
  if (e.host.size() >= 2 && e.host.front() == '[' && e.host.back() == ']') e.host = e.host.substr(1, e.host.size() - 2);
  try {
    std::size_t used = 0;
    e.port = std::stoi(text.substr(colon + 1), &used);
    if (used != text.size() - colon - 1 || e.port < 1 || e.port > 65535) throw std::out_of_range("port");
  } catch (const std::exception&) {
    throw Error(kExitUsage, fmt::format("--listen: bad port in '{}'", text));
  }
  // "::" takes IPv4 too (IPV6_V6ONLY is off by default on Linux).
  if (e.host.empty()) e.host = "::";
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(e.host.c_str(), nullptr, &hints, &found); rc != 0)
    throw Error(kExitUsage, fmt::format("--listen: cannot resolve '{}': {}", e.host, gai_strerror(rc)));
  freeaddrinfo(found);
  return e;
}

core::WebConfig read_web_config(const std::string& path) {
  if (path.empty()) return {};
  std::ifstream in(path);
  if (!in) throw Error(kExitUsage, fmt::format("--web-config: cannot read {}", path));
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  auto slash = path.rfind('/');
  try {
    return core::parse_web_config(text, slash == std::string::npos ? "." : path.substr(0, slash));
  } catch (const core::WebConfigError& e) {
    throw Error(kExitUsage, fmt::format("--web-config {}: {}", path, e.what()));
  }
}

// One line per interval, however many requests were refused: a scraper with a wrong password (or an
// attacker) cannot flood the log.
void log_refusals(HttpServer& server, double interval_s) {
  auto refused = server.take_refusals();
  if (refused.count == 0) return;
  std::fprintf(stderr, "ctbpf: refused %llu request(s) in the last %.3g s, the last from %s%s: %s\n",
               static_cast<unsigned long long>(refused.count), interval_s, refused.last_client.c_str(),
               refused.last_user.empty() ? "" : fmt::format(" as '{}'", refused.last_user).c_str(),
               refused.last_reason.c_str());
}

volatile std::sig_atomic_t g_rotate = 0;
void on_hangup(int) { g_rotate = 1; }

/// Rolling snapshots (--record DIR): every `every_s`, the window's intervals go to one snapshot file
/// in the same format as `ctbpf snapshot`; retention by count and age. SIGHUP writes the current
/// window now (for log shippers and before maintenance) and starts the next.
class RollingRecorder {
public:
  RollingRecorder(std::string dir, double every_s, const core::RecorderOptions& retention,
                  const kernel::Tracer& tracer, double interval_s)
      : dir_(std::move(dir)), every_s_(every_s), retention_(retention), tracer_(tracer), interval_s_(interval_s) {}

  void add(const core::Sample& sample) {
    if (!window_) {
      start(sample);
      return;
    }
    closed(window_->add(sample));
    if (sample.t_s - window_start_t_ >= every_s_ || g_rotate) {
      g_rotate = 0;
      write(sample);
      start(sample);
    }
  }

  /// At shutdown: the partial window is written too, so stopping loses nothing.
  void finish(const core::Sample& sample) {
    if (!window_) return;
    closed(window_->add(sample));
    write(sample);
  }

private:
  // Names are asked for each interval, while the namespace is active: it may be gone by the write.
  void closed(const std::optional<core::Report>& interval) {
    if (!interval) return;
    intervals_.push_back(*interval);
    if (interval->totals.detail) namer_.name_new(interval->totals.detail->by_netns, names_);
  }

  void start(const core::Sample& sample) {
    window_.emplace(tracer_.mode(), tracer_.observability());
    window_->add(sample);
    window_start_t_ = sample.t_s;
    window_start_wall_ = kernel::wall_clock_s();
    intervals_.clear();
  }

  void write(const core::Sample& last) {
    if (intervals_.empty()) return;
    core::SnapshotMeta meta;
    meta.host = kernel::host_name();
    meta.kernel = kernel::kernel_release();
    meta.mode = tracer_.mode();
    meta.obs = tracer_.observability();
    meta.start_epoch_s = window_start_wall_;
    meta.end_epoch_s = window_start_wall_ + (last.t_s - window_start_t_);
    meta.interval_s = interval_s_;
    meta.sysctls = kernel::read_conntrack_sysctls();
    meta.who.emplace().netns_names = names_;
    meta.who->own_netns = kernel::own_netns();  // whose table and kernel stats the file holds
    meta.who->other_netns = kernel::named_netns_tables();
    auto doc = core::make_snapshot(meta, window_->summary(), intervals_);
    auto name = core::recording_file_name(meta.end_epoch_s, {"rolling"});
    try {
      kernel::write_file_atomically(dir_ + "/" + name, core::snapshot_bytes(doc));
    } catch (const std::exception& e) {
      // An agent keeps serving metrics when its disk is full; it says so and tries next window.
      std::fprintf(stderr, "ctbpf: rolling snapshot: %s\n", e.what());
    }
    for (const auto& old : core::expired_recordings(kernel::list_files(dir_), kernel::wall_clock_s(), retention_))
      kernel::remove_file(dir_, old);
  }

  std::string dir_;
  double every_s_;
  core::RecorderOptions retention_;
  const kernel::Tracer& tracer_;
  double interval_s_;
  std::optional<core::Aggregator> window_;
  std::vector<core::Report> intervals_;
  double window_start_t_ = 0, window_start_wall_ = 0;
  kernel::NetnsNamer namer_;
  core::NetnsNames names_;  // every namespace named so far: a snapshot names all its rows
};

/// The page's data as of the last interval, rendered when a scraper asks, once per format per interval:
/// an agent nobody scrapes between intervals renders nothing (rendering was ~85% of a refresh's CPU).
/// Each interval's data is an owned copy, so a scrape renders it while the loop reads the next.
class Pages {
public:
  struct Data {
    core::ExpositionInput in;  // its pointers point at the members below, or are null
    core::Observability obs;
    core::Report total;
    core::NetnsLabels labels{0};
    core::NetnsSeriesCounts drop_events, nat_blackholes, dns_races;
  };

  void publish(std::unique_ptr<const Data> data) {
    std::lock_guard lock(mutex_);
    data_ = std::move(data);
    text_.reset();
    openmetrics_.reset();
  }

  /// Shared by every reply that sends it until the next interval's: a scraper that never reads its
  /// reply holds no copy of its own.
  std::shared_ptr<const std::string> page(bool openmetrics) {
    std::lock_guard lock(mutex_);
    auto& cached = openmetrics ? openmetrics_ : text_;
    if (!cached) {
      auto in = data_->in;
      in.openmetrics = openmetrics;
      cached = std::make_shared<const std::string>(core::render_exposition(in));
    }
    return cached;
  }

private:
  std::mutex mutex_;
  std::unique_ptr<const Data> data_;
  std::shared_ptr<const std::string> text_, openmetrics_;
};

// The routes: GET (and HEAD, which libmicrohttpd answers without the body) on /metrics, /healthz and
// /; every other path 404. Read-only: every other method 405 on every path, with or without a body.
HttpReply route(const HttpRequest& req, Pages& pages) {
  if (req.method != "GET" && req.method != "HEAD")
    return {405, "method not allowed\n", nullptr, "text/plain", {{"Allow", "GET, HEAD"}}};
  if (req.path == "/metrics") {
    bool om = core::wants_openmetrics(req.accept);
    return {200, {}, pages.page(om), core::exposition_content_type(om), {}};
  }
  if (req.path == "/healthz") return {200, "ok\n", nullptr, "text/plain", {}};
  if (req.path == "/") return {200, "ctbpf: GET /metrics (Prometheus), GET /healthz\n", nullptr, "text/plain", {}};
  return {404, "not found\n", nullptr, "text/plain", {}};
}

// One interval's NAT'd-flow drops and DNS races into serve's bounded per-netns counters.
void count_nat_drops(const core::Totals& grown, const core::NetnsLabels& labels, core::NetnsSeriesCounts& blackholes,
                     core::NetnsSeriesCounts& races) {
  if (grown.nat_blackholes)
    for (const auto& f : *grown.nat_blackholes)
      blackholes.add(fmt::format("reason=\"{}\"", f.reason_name), f.netns, f.packets, labels);
  if (grown.dns_races)
    for (const auto& r : *grown.dns_races) {
      const auto resolver = core::address_text(r.l3, r.resolver.data());
      if (r.insert_failed)
        races.add(fmt::format("cause=\"insert_failed\",resolver=\"{}\"", resolver), r.netns, r.insert_failed, labels);
      if (r.clash_resolve)
        races.add(fmt::format("cause=\"clash_resolve\",resolver=\"{}\"", resolver), r.netns, r.clash_resolve, labels);
    }
}

int run_serve(const ServeOptions& options) {
  const auto endpoint = parse_listen(options.listen);
  const auto web = read_web_config(options.web_config);
  const auto url = fmt::format("{}://{}/metrics", web.tls() ? "https" : "http", options.listen);
  kernel::Tracer::Options topts;
  if (options.mode != "auto") topts.forced = core::mode_from_string(options.mode);
  topts.lifetime_one_in = options.lifetime_one_in;
  topts.chain_one_in = options.chain_one_in;
  // Drop events only, few of them: a small ring holds more than the kernel lets through per poll.
  topts.event_mask = 1U << CTBPF_EV_DROP;
  topts.ring_bytes = 64 << 10;
  topts.drop_events_per_s = options.drop_events_rate;

  install_stop_handlers();
  signal(SIGHUP, on_hangup);
  signal(SIGPIPE, SIG_IGN);

  std::vector<core::PrivilegeState> privileges;
  for (const auto& need : kernel::privilege_needs())
    privileges.push_back({need.capability, need.feature, need.missing});
  Pages pages;
  auto waiting = std::make_unique<Pages::Data>();
  waiting->in.version = CTBPF_VERSION;
  waiting->in.attached = false;
  waiting->in.privileges = privileges;
  pages.publish(std::move(waiting));

  // Binds before anything else: a taken port is exit 2, one line, before any kernel work.
  HttpServer server(endpoint.host, endpoint.port, [&](const HttpRequest& req) { return route(req, pages); }, web);

  // Started at boot, serve usually comes before the firewall loads conntrack: it serves
  // ctbpf_attached 0 until the module is there, then attaches. It never loads the module itself.
  if (!kernel::conntrack_present()) {
    kernel::warn_missing_privileges(topts.forced);
    std::fprintf(stderr, "ctbpf: nf_conntrack is not loaded: serving ctbpf_attached 0 on %s "
                 "until it is, then attaching\n", url.c_str());
    while (!kernel::conntrack_present()) {
      if (stop_requested()) return kExitOk;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  auto tracer = kernel::Tracer::start(topts);
  if (kernel::drop_sys_admin()) std::fputs("ctbpf: attached; CAP_SYS_ADMIN given up\n", stderr);
  core::Aggregator aggregator(tracer->mode(), tracer->observability());
  aggregator.add(tracer->sample());
  core::NetnsLabels labels(options.netns_labels);
  kernel::NetnsNamer names;
  core::NetnsSeriesCounts drop_events, nat_blackholes, dns_races;
  const kernel::Tracer::EventHandler on_event = [&](std::span<const std::byte> raw) {
    // Our own programs write every record: a wrong size cannot happen short of an ABI mismatch.
    if (auto e = core::decode_event(raw)) drop_events.add(*e, labels);
  };
  std::optional<RollingRecorder> recorder;
  if (!options.record_dir.empty()) {
    kernel::ensure_writable_dir(options.record_dir);
    recorder.emplace(options.record_dir, options.record_every_s, options.record_retention, *tracer,
                     options.interval_s);
  }

  double last_refresh_t = 0;
  auto refresh = [&] {
    // Events first, counters next: the counters are never behind the events on the page.
    tracer->drain_events(on_event);
    auto sample = tracer->sample();
    const auto interval = aggregator.add(sample);
    if (interval) count_nat_drops(interval->totals, labels, nat_blackholes, dns_races);
    if (recorder) recorder->add(sample);
    auto data = std::make_unique<Pages::Data>();
    data->total = aggregator.summary();
    if (const auto& detail = data->total.totals.detail) {
      // Which netns live now (and their current names), read after the sample: a netns that counted in
      // it and is gone by now is dead, and one made since has nothing in it yet.
      const auto live = names.live();
      uint64_t inserts = 0, destroys = 0;
      for (std::size_t i = 0; i < CTBPF_PROTO_MAX; ++i) {
        inserts += detail->inserts_by_proto[i];
        destroys += detail->destroys_by_proto[i];
      }
      // Where NAT'd traffic dies makes a netns as worth a label as its drop events do.
      auto busy = drop_events.take_recent();
      for (auto* counts : {&nat_blackholes, &dns_races})
        for (const auto& [netns, n] : counts->take_recent()) busy[netns] += n;
      labels.update(detail->by_netns, inserts, destroys, live, busy,
                    last_refresh_t ? sample.t_s - last_refresh_t : 0, &drop_events);
      nat_blackholes.keep_only(labels.all());
      dns_races.keep_only(labels.all());
      last_refresh_t = sample.t_s;
    }
    data->obs = tracer->observability();
    data->labels = labels;
    data->in = {tracer->mode(), &data->obs, &data->total, &data->labels, CTBPF_VERSION, false, {}};
    data->in.privileges = privileges;
    // Tracepoint mode has no conntrack probes, so no drop events: no family rather than a made-up 0.
    if (data->obs.conntrack_points) {
      data->drop_events = drop_events;
      data->in.drop_events = &data->drop_events;
      data->dns_races = dns_races;
      data->in.dns_races = &data->dns_races;
    }
    if (data->obs.drop_reasons) {
      data->nat_blackholes = nat_blackholes;
      data->in.nat_blackholes = &data->nat_blackholes;
    }
    for (auto netns : labels.all()) data->in.netns_names[netns] = names.name(netns);
    pages.publish(std::move(data));
  };
  refresh();

  write_ready_file(options.ready_file, tracer->mode());
  std::fprintf(stderr, "ctbpf: serving %s mode metrics on %s%s\n", core::to_string(tracer->mode()).c_str(),
               url.c_str(), web.users.empty() ? "" : " (basic auth)");

  using clock = std::chrono::steady_clock;
  const auto interval = std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(options.interval_s));
  auto next = clock::now() + interval;
  while (!stop_requested()) {
    if (clock::now() >= next) {
      refresh();
      log_refusals(server, options.interval_s);
      next += interval;
    }
    tracer->poll_events(50, on_event);
  }
  if (recorder) recorder->finish(tracer->sample());
  return kExitOk;
}

}  // namespace

Command add_serve(CLI::App& parent) {
  auto o = std::make_shared<ServeOptions>();
  auto* cmd = parent.add_subcommand(
      "serve",
      "Always-on: in-kernel aggregation only, exposed as Prometheus metrics on GET /metrics\n"
      "(OpenMetrics when the scraper asks for it) and GET /healthz. SIGTERM stops it cleanly.");
  cmd->add_option("--listen", o->listen, "HOST:PORT, [IPV6]:PORT or :PORT (every address) to listen on; HOST may be a\n"
                  "name (localhost). Loopback unless you name another address")
      ->default_val("127.0.0.1:9640");
  cmd->add_option("-i,--interval", o->interval_s, "Seconds between reads of the kernel's counters")
      ->check(bounded(core::kIntervalSeconds))
      ->default_val(2.0);
  add_mode_option(*cmd, o->mode);
  add_ready_file_option(*cmd, o->ready_file, "Write this file once listening and attached");
  cmd->add_option("--lifetime-sample", o->lifetime_one_in,
                  "Keep lifetimes for 1 entry in N (power of two), picked by a hash of its tuple\n"
                  "and the CPU's insert count; serve's 64 (trace: 8) costs new flows an eighth of\n"
                  "trace's birth records and lets the 65536-slot births map cover a 4M-entry table")
      ->check(bounded(core::kSampleOneIn))
      ->default_val(64);
  cmd->add_option("--chain-sample", o->chain_one_in,
                  "Walk the hash chain of 1 insert in N (power of two) on each CPU for\n"
                  "ctbpf_conntrack_chain_length: the walk is the costliest part of an insert's\n"
                  "program (a read per node), and 1 in 64 still gives the histogram hundreds of\n"
                  "samples a minute at 1000 new flows/s. Counts and drops stay exact. 1: every\n"
                  "insert (trace's default is 16, snapshot's and doctor's 1)")
      ->check(bounded(core::kSampleOneIn))
      ->default_val(64);
  cmd->add_option("--drop-events-rate", o->drop_events_rate,
                  "Drop events (cause, netns) per second per CPU the kernel puts in the ring for\n"
                  "ctbpf_conntrack_drop_events_total; the rest are only counted (suppressed). Limited\n"
                  "in the kernel so a drop storm costs no ring space or user-space work per packet;\n"
                  "drops_total stays exact. 0: no limit")
      ->check(bounded(core::kEventsPerSecond))
      ->default_val(o->drop_events_rate);
  cmd->add_option("--web-config", o->web_config,
                  "TLS and basic auth, from a file in exporter-toolkit's format (node_exporter's\n"
                  "--web.config.file): tls_server_config (cert_file, key_file, min_version,\n"
                  "max_version) and basic_auth_users (user: bcrypt hash, from htpasswd -nBC 10 USER).\n"
                  "A certificate renewed on disk is served from the next connection; docs/serve.md")
      ->check(CLI::ExistingFile);
  cmd->add_option("--record", o->record_dir,
                  "Rolling snapshots (the `ctbpf snapshot` format) in DIR; SIGHUP writes one now");
  cmd->add_option("--record-every", o->record_every_s, "Seconds per rolling snapshot")
      ->check(bounded(core::kRecordEverySeconds))
      ->default_val(300);
  cmd->add_option("--record-keep", o->record_retention.keep_files, "Newest snapshot files kept")
      ->check(bounded(core::kRecordKeepFiles))
      ->default_val(288);
  cmd->add_option("--record-max-age", o->record_retention.max_age_s, "Seconds after which snapshot files are deleted")
      ->check(bounded(core::kRecordMaxAgeSeconds))
      ->default_val(7 * 86400);
  cmd->add_option("--netns-labels", o->netns_labels,
                  "Network namespaces (pods) with series of their own in the per-netns families\n"
                  "(ctbpf_conntrack_netns_inserts_total, _destroys_total, drop_events_total,\n"
                  "ctbpf_netns_info): the busiest live ones, decided each interval. A dead netns's\n"
                  "series ends and its counts move into netns=\"other\", so the series plus other\n"
                  "always add up to the global counter; a busier netns takes the least busy one's\n"
                  "label when it is twice as busy (recent inserts and drop events, 2-minute\n"
                  "half-life). Each label adds 3 series to a scrape, and one per drop cause it has.\n"
                  "0: only \"other\"")
      ->check(bounded(core::kNetnsLabels))
      ->default_val(o->netns_labels);
  cmd->footer("Examples:\n"
             "  ctbpf serve                          # metrics on http://127.0.0.1:9640/metrics\n"
             "  ctbpf serve --record /var/lib/ctbpf  # also a snapshot file every 5 minutes\n"
             "  ctbpf serve --listen :9640 --web-config /etc/ctbpf/web.yml  # HTTPS, basic auth");
  return {cmd, [o] { return run_serve(*o); }};
}
}  // namespace ctbpf::cli
