// ctbpf serve: always-on, in-kernel aggregation only (no ring buffer, no per-insert user-space
// work), read once per interval and exposed to Prometheus. The HTTP side only copies a page that
// the aggregation loop pre-renders: slow or many clients cannot stall aggregation.
#include <arpa/inet.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>

#include <httplib.h>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/trace_loop.h"
#include "core/aggregator.h"
#include "core/prometheus.h"
#include "kernel/error.h"
#include "kernel/tracer.h"

#ifndef CTBPF_VERSION
#define CTBPF_VERSION "unknown"
#endif

namespace ctbpf::cli {

namespace {

struct Endpoint {
  std::string host;
  int port = 0;
};

// HOST:PORT or [IPV6]:PORT.
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
  in6_addr v6{};
  in_addr v4{};
  if (inet_pton(AF_INET, e.host.c_str(), &v4) != 1 && inet_pton(AF_INET6, e.host.c_str(), &v6) != 1)
    throw Error(kExitUsage, fmt::format("--listen: '{}' is not an IP address", e.host));
  return e;
}

struct Pages {
  std::mutex mutex;
  std::string text, openmetrics;
};

void install_routes(httplib::Server& server, Pages& pages) {
  server.Get("/metrics", [&](const httplib::Request& req, httplib::Response& res) {
    bool om = core::wants_openmetrics(req.get_header_value("Accept"));
    std::lock_guard lock(pages.mutex);
    res.set_content(om ? pages.openmetrics : pages.text, core::exposition_content_type(om));
  });
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  server.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ctbpf: GET /metrics (Prometheus), GET /healthz\n", "text/plain");
  });
  // Read-only: every other method is refused on every path.
  auto refuse = [](const httplib::Request&, httplib::Response& res) {
    res.status = 405;
    res.set_header("Allow", "GET, HEAD");
    res.set_content("method not allowed\n", "text/plain");
  };
  server.Post(".*", refuse);
  server.Put(".*", refuse);
  server.Patch(".*", refuse);
  server.Delete(".*", refuse);
  server.Options(".*", refuse);
  // Idle clients hold a worker until the read timeout: enough workers, and short enough timeouts,
  // that they cannot starve a scrape for long.
  server.new_task_queue = [] { return new httplib::ThreadPool(16); };
  server.set_read_timeout(2, 0);
  server.set_write_timeout(2, 0);
  server.set_keep_alive_timeout(2);
  server.set_keep_alive_max_count(20);
  server.set_payload_max_length(4096);
}

}  // namespace

int run_serve(const ServeOptions& options) {
  const auto endpoint = parse_listen(options.listen);
  kernel::Tracer::Options topts;
  if (options.mode != "auto") topts.forced = core::mode_from_string(options.mode);
  topts.lifetime_one_in = options.lifetime_one_in;

  install_stop_handlers();
  signal(SIGHUP, SIG_IGN);  // nothing to reopen yet; a terminal hangup must not kill the agent
  signal(SIGPIPE, SIG_IGN);

  auto tracer = kernel::Tracer::start(topts);
  core::Aggregator aggregator(tracer->mode(), tracer->observability());
  aggregator.add(tracer->sample());
  core::NetnsLabels labels(core::kMaxNetnsLabels);
  Pages pages;

  auto refresh = [&] {
    aggregator.add(tracer->sample());
    auto total = aggregator.summary();
    if (total.totals.detail) labels.admit(total.totals.detail->by_netns);
    core::ExpositionInput in{tracer->mode(), &tracer->observability(), &total, &labels, CTBPF_VERSION, false};
    auto text = core::render_exposition(in);
    in.openmetrics = true;
    auto om = core::render_exposition(in);
    std::lock_guard lock(pages.mutex);
    pages.text = std::move(text);
    pages.openmetrics = std::move(om);
  };
  refresh();

  httplib::Server server;
  install_routes(server, pages);
  if (!server.bind_to_port(endpoint.host.c_str(), endpoint.port))
    throw Error(kExitFailure, fmt::format("cannot listen on {}: {}", options.listen, std::strerror(errno)));
  std::thread http([&] { server.listen_after_bind(); });

  write_ready_file(options.ready_file, tracer->mode());
  std::fprintf(stderr, "ctbpf: serving %s mode metrics on http://%s/metrics\n",
               core::to_string(tracer->mode()).c_str(), options.listen.c_str());

  using clock = std::chrono::steady_clock;
  const auto interval = std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(options.interval_s));
  auto next = clock::now() + interval;
  while (!stop_requested()) {
    if (clock::now() >= next) {
      refresh();
      next += interval;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  server.stop();
  http.join();
  return kExitOk;
}

}  // namespace ctbpf::cli
