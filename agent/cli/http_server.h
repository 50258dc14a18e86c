/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// serve's HTTP front door: libmicrohttpd in its epoll mode, one thread for all connections.
//
// Why libmicrohttpd and not cpp-httplib (which serve used until issue 33): cpp-httplib gives each
// connection a pool thread for as long as it is open, so N slow or idle clients starve a scrape as
// soon as N reaches the pool's size (16 workers: 32 clients sending a header line every 2 s made
// every scrape time out), and its listen socket takes SO_REUSEPORT, so a second serve on the same
// port shares it silently. Growing the pool only moves the cliff (a thread per connection, 1,000
// idle clients = 1,000 threads). libmicrohttpd (GNU; Debian's libmicrohttpd12)
// multiplexes every connection on one epoll thread, bounds their number
// (in all and per address), their idle time and the memory each may hold (which bounds a request's
// headers), and takes a listen socket made here, so the bind is ours: no SO_REUSEPORT, our backlog,
// and a clear error when the port is taken. What it lacks, a bound on the time a request takes to
// arrive (a client dripping a header line a second is never idle), a watchdog here adds.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ctbpf::core {
struct WebConfig;
}

namespace ctbpf::cli {

// At their worst, every connection holding its whole memory pool: 2,048 x (8 KiB + ~1 KiB of
// connection state) = 18 MiB over serve's own ~13-21 MiB, under packaging/ctbpf.service's MemoryMax=64M
// with room for the kernel's socket buffers, which the unit's cgroup is charged for too.
struct HttpLimits {
  unsigned max_connections = 2048;  // in all; the listen socket waits while they are all taken
  unsigned per_address = 1536;      // from one client address: one host (or node) cannot take them all
  unsigned first_request_s = 10;    // from accept to a complete request line and headers
  unsigned idle_s = 30;             // after a request: the next one, or the response read, within this
  std::size_t connection_memory = 8 << 10;  // per connection: its request's headers (so their bound),
                                            // and the response's; a Prometheus request is < 1 KiB
  int backlog = 1024;                       // capped by net.core.somaxconn
};

struct HttpRequest {
  std::string method, path, accept;
};

struct HttpReply {
  unsigned status = 200;
  std::string body;
  // Instead of body: a page shared by every reply that sends it, held until the last one is sent, so
  // a client that asks and never reads holds no copy of its own.
  std::shared_ptr<const std::string> shared_body;
  std::string content_type = "text/plain";
  std::vector<std::pair<std::string, std::string>> headers;
};

/// Requests refused for want of the right credentials (401), since the last take_refusals().
struct HttpRefusals {
  uint64_t count = 0;
  std::string last_client, last_user, last_reason;
};

/// HTTP/1.1 (or HTTPS, per --web-config) on HOST:PORT. Handler runs on the server's one thread, so it
/// must not block for long.
class HttpServer {
public:
  using Handler = std::function<HttpReply(const HttpRequest&)>;

  /// Binds and listens (throws Error: exit 2 with who holds the port when it is taken), then serves.
  /// `web`: TLS and basic authentication (core/web_config.h); a default one is plain HTTP, open.
  HttpServer(const std::string& host, int port, Handler handler, const core::WebConfig& web, HttpLimits limits = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// The limits in force: max_connections may be lower than asked when file descriptors are short.
  const HttpLimits& limits() const;
  /// The refusals since the last call, for a log line per interval rather than one per request.
  HttpRefusals take_refusals();

  struct State;

private:
  std::unique_ptr<State> state_;
};

/// Who listens on TCP port PORT in this network namespace, as "pid 123 (ctbpf)"; empty when it cannot
/// tell (another pid namespace, or no permission to read /proc/PID/fd).
std::string tcp_port_holder(int port);

}  // namespace ctbpf::cli
