// SPDX-License-Identifier: Apache-2.0
#include "cli/http_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_set>

#include <fmt/format.h>

#include "kernel/error.h"

namespace ctbpf::cli {

namespace {

using Clock = std::chrono::steady_clock;

// One accepted connection, as the watchdog sees it. Made and freed on the server's thread (connection
// notifications); the watchdog only reads it under State::mutex.
struct Conn {
  int fd = -1;
  Clock::time_point deadline;
  bool cut = false;
};

// Request states (each request's context): headers in, waiting for the rest; reply queued.
char g_headers_in, g_answered;

std::string endpoint_text(const std::string& host, int port) {
  return host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
}

// The listen socket, made here rather than by libmicrohttpd: SO_REUSEADDR (a restart rebinds at once
// over connections in TIME_WAIT) but never SO_REUSEPORT, so a second process cannot share the port.
int listen_on(const std::string& host, int port, int backlog) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  auto service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0)
    throw Error(kExitUsage, fmt::format("--listen: cannot resolve '{}': {}", host, gai_strerror(rc)));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owned(found, freeaddrinfo);
  int fd = socket(found->ai_family, found->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, found->ai_protocol);
  if (fd < 0) throw Error(kExitFailure, fmt::format("socket: {}", std::strerror(errno)));
  int on = 1, off = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  // "::" takes IPv4 too, whatever net.ipv6.bindv6only says.
  if (found->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  if (bind(fd, found->ai_addr, found->ai_addrlen) != 0) {
    int err = errno;
    close(fd);
    auto where = endpoint_text(host, port);
    if (err == EADDRINUSE) {
      auto holder = tcp_port_holder(port);
      throw Error(kExitUsage, holder.empty() ? fmt::format("cannot listen on {}: address in use", where)
                                             : fmt::format("cannot listen on {}: address in use by {}", where, holder));
    }
    throw Error(kExitFailure, fmt::format("cannot listen on {}: {}", where, std::strerror(err)));
  }
  if (listen(fd, backlog) != 0) {
    int err = errno;
    close(fd);
    throw Error(kExitFailure, fmt::format("cannot listen on {}: {}", endpoint_text(host, port), std::strerror(err)));
  }
  return fd;
}

// Each connection is a file descriptor: the soft limit (1024 under systemd's default) is raised
// towards the hard one, and the connection bound lowered to what still fits.
unsigned fit_to_file_limit(unsigned wanted) {
  constexpr rlim_t kReserve = 64;  // BPF maps and programs, the ring, /proc reads, snapshot files
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return wanted;
  rlim_t need = wanted + kReserve;
  if (lim.rlim_cur < need) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max == RLIM_INFINITY ? need : std::min(need, lim.rlim_max);
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  if (lim.rlim_cur >= need) return wanted;
  return lim.rlim_cur > 2 * kReserve ? static_cast<unsigned>(lim.rlim_cur - kReserve) : static_cast<unsigned>(kReserve);
}

// Listening inodes on PORT in one of /proc/net/tcp{,6}.
void listening_inodes(const char* table, int port, std::unordered_set<std::string>& inodes) {
  std::ifstream in(table);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues, timer, retrans, uid, timeout, inode;
    if (!(fields >> slot >> local >> remote >> state >> queues >> timer >> retrans >> uid >> timeout >> inode)) continue;
    if (state != "0A") continue;  // TCP_LISTEN
    auto colon = local.rfind(':');
    if (colon == std::string::npos) continue;
    if (std::strtol(local.c_str() + colon + 1, nullptr, 16) == port && inode != "0") inodes.insert(inode);
  }
}

struct DirCloser {
  void operator()(DIR* dir) const { closedir(dir); }
};
using Dir = std::unique_ptr<DIR, DirCloser>;

}  // namespace

std::string tcp_port_holder(int port) {
  std::unordered_set<std::string> inodes;
  listening_inodes("/proc/net/tcp", port, inodes);
  listening_inodes("/proc/net/tcp6", port, inodes);
  if (inodes.empty()) return {};
  Dir proc(opendir("/proc"));
  if (!proc) return {};
  while (auto* entry = readdir(proc.get())) {
    std::string pid = entry->d_name;
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    auto fd_dir = "/proc/" + pid + "/fd";
    Dir fds(opendir(fd_dir.c_str()));
    if (!fds) continue;
    while (auto* fd = readdir(fds.get())) {
      char target[64];
      auto path = fd_dir + "/" + fd->d_name;
      auto n = readlink(path.c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      std::string link(target, static_cast<std::size_t>(n));
      if (link.rfind("socket:[", 0) != 0 || !inodes.count(link.substr(8, link.size() - 9))) continue;
      std::string comm;
      std::ifstream("/proc/" + pid + "/comm") >> comm;
      return comm.empty() ? "pid " + pid : fmt::format("pid {} ({})", pid, comm);
    }
  }
  return {};
}

struct HttpServer::State {
  Handler handler;
  HttpLimits limits;
  MHD_Daemon* daemon = nullptr;

  // The watchdog: closes (shutdown, so the server's thread sees the end and frees it) connections whose
  // request has not arrived by their deadline. Conn entries are freed under `mutex` on the server's
  // thread before libmicrohttpd closes their descriptor, so a shutdown never hits a reused number.
  std::mutex mutex;
  std::unordered_set<Conn*> conns;
  std::condition_variable wake;
  bool stopping = false;
  std::thread watchdog;

  void watch() {
    std::unique_lock lock(mutex);
    while (!wake.wait_for(lock, std::chrono::milliseconds(250), [&] { return stopping; })) {
      auto now = Clock::now();
      for (auto* c : conns)
        if (!c->cut && now >= c->deadline) {
          c->cut = true;
          shutdown(c->fd, SHUT_RDWR);
        }
    }
  }

  static void on_connection(void* cls, MHD_Connection* connection, void** socket_context,
                            MHD_ConnectionNotificationCode code) {
    auto* self = static_cast<State*>(cls);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
      const auto* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
      if (!info) return;
      auto* c = new Conn{info->connect_fd, Clock::now() + std::chrono::seconds(self->limits.first_request_s)};
      std::lock_guard lock(self->mutex);
      self->conns.insert(c);
      *socket_context = c;
    } else if (auto* c = static_cast<Conn*>(*socket_context)) {
      std::lock_guard lock(self->mutex);
      self->conns.erase(c);
      delete c;
      *socket_context = nullptr;
    }
  }

  static MHD_Result on_request(void* cls, MHD_Connection* connection, const char* url, const char* method,
                               const char* /*version*/, const char* /*upload_data*/, std::size_t* upload_data_size,
                               void** request_context) {
    auto* self = static_cast<State*>(cls);
    if (*request_context == &g_answered) {
      *upload_data_size = 0;  // a refused request's body: read and dropped
      return MHD_YES;
    }
    bool bodyless = std::strcmp(method, "GET") == 0 || std::strcmp(method, "HEAD") == 0;
    if (*request_context == nullptr) {
      // The request's headers are here: from now on it has the idle bound to be answered and read, and
      // the next request on this connection the same from this one.
      if (const auto* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT)) {
        if (auto* c = static_cast<Conn*>(info->socket_context)) {
          std::lock_guard lock(self->mutex);
          c->deadline = Clock::now() + std::chrono::seconds(self->limits.idle_s);
        }
      }
      // GET and HEAD are answered once the request is complete, so the connection can be kept alive
      // for the next scrape. Any other method is answered now (serve refuses them all): its body is
      // never read, and libmicrohttpd closes the connection after the reply.
      if (bodyless) {
        *request_context = &g_headers_in;
        return MHD_YES;
      }
    } else if (*upload_data_size != 0) {
      *upload_data_size = 0;  // a GET's body: dropped
      return MHD_YES;
    }
    *request_context = &g_answered;
    HttpRequest request;
    request.method = method;
    request.path = url;
    if (const char* accept = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT))
      request.accept = accept;
    HttpReply reply;
    try {
      reply = self->handler(request);
    } catch (const std::exception&) {
      reply = {500, "internal error\n", nullptr, "text/plain", {}};
    }
    MHD_Response* response = nullptr;
    if (reply.shared_body) {
      auto* held = new std::shared_ptr<const std::string>(std::move(reply.shared_body));
      response = MHD_create_response_from_buffer_with_free_callback_cls(
          (*held)->size(), const_cast<char*>((*held)->data()),
          [](void* page) { delete static_cast<std::shared_ptr<const std::string>*>(page); }, held);
      if (!response) delete held;
    } else {
      response = MHD_create_response_from_buffer(reply.body.size(), reply.body.data(), MHD_RESPMEM_MUST_COPY);
    }
    if (!response) return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, reply.content_type.c_str());
    for (const auto& [name, value] : reply.headers) MHD_add_response_header(response, name.c_str(), value.c_str());
    auto queued = MHD_queue_response(connection, reply.status, response);
    MHD_destroy_response(response);
    return queued;
  }
};

HttpServer::HttpServer(const std::string& host, int port, Handler handler, HttpLimits limits)
    : state_(std::make_unique<State>()) {
  state_->handler = std::move(handler);
  limits.max_connections = fit_to_file_limit(limits.max_connections);
  limits.per_address = std::min(limits.per_address, limits.max_connections);
  state_->limits = limits;
  int fd = listen_on(host, port, limits.backlog);
  // One thread, epoll: no connection holds a thread, so no number of them starves a scrape.
  state_->daemon = MHD_start_daemon(
      MHD_USE_EPOLL_INTERNAL_THREAD, 0, nullptr, nullptr, &State::on_request, state_.get(),
      MHD_OPTION_LISTEN_SOCKET, fd,
      MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned>(limits.max_connections),
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, static_cast<unsigned>(limits.per_address),
      MHD_OPTION_CONNECTION_TIMEOUT, static_cast<unsigned>(limits.idle_s),
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<std::size_t>(limits.connection_memory),
      MHD_OPTION_NOTIFY_CONNECTION, &State::on_connection, state_.get(),
      MHD_OPTION_END);
  if (!state_->daemon) {
    close(fd);
    throw Error(kExitFailure, fmt::format("cannot serve HTTP on {}", endpoint_text(host, port)));
  }
  state_->watchdog = std::thread([s = state_.get()] { s->watch(); });
}

HttpServer::~HttpServer() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
  }
  state_->wake.notify_all();
  state_->watchdog.join();
  // Closes every connection (each notified, so each Conn freed) and the listen socket.
  MHD_stop_daemon(state_->daemon);
}

const HttpLimits& HttpServer::limits() const { return state_->limits; }

}  // namespace ctbpf::cli
