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

#include "cli/basic_auth.h"
#include "cli/tls_certificates.h"
#include "core/web_config.h"
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

// Request states (each request's context): headers in, waiting for the rest; reply queued; with basic
// auth, credentials being checked (the connection suspended), then found good or bad.
char g_headers_in, g_answered, g_auth_waiting, g_auth_allowed, g_auth_refused;

// GnuTLS's certificate callback takes no argument of ours: the one HTTPS server of the process.
TlsCertificates* g_certificates = nullptr;

int retrieve_certificate(gnutls_session_t, const gnutls_datum_t*, int, const gnutls_pk_algorithm_t*, int,
                         gnutls_pcert_st** certs, unsigned* count, gnutls_privkey_t* key) {
  return g_certificates ? g_certificates->retrieve(certs, count, key) : -1;
}

std::string client_of(MHD_Connection* connection) {
  const auto* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (!info || !info->client_addr) return "?";
  char host[NI_MAXHOST];
  socklen_t len = info->client_addr->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (getnameinfo(info->client_addr, len, host, sizeof host, nullptr, 0, NI_NUMERICHOST) != 0) return "?";
  return host;
}

MHD_Result queue_text(MHD_Connection* connection, unsigned status, const char* text) {
  auto* response = MHD_create_response_from_buffer(std::strlen(text), const_cast<char*>(text), MHD_RESPMEM_PERSISTENT);
  if (!response) return MHD_NO;
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
  auto queued = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  return queued;
}

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
  std::unique_ptr<TlsCertificates> certificates;
  std::unique_ptr<BasicAuth> auth;
  std::mutex refusals_mutex;
  HttpRefusals refusals;

  MHD_Result refuse(MHD_Connection* connection, std::string user, const char* reason) {
    {
      std::lock_guard lock(refusals_mutex);
      ++refusals.count;
      refusals.last_client = client_of(connection);
      refusals.last_user = std::move(user);
      refusals.last_reason = reason;
    }
    static const char kBody[] = "unauthorized\n";
    auto* response = MHD_create_response_from_buffer(sizeof kBody - 1, const_cast<char*>(kBody), MHD_RESPMEM_PERSISTENT);
    if (!response) return MHD_NO;
    auto queued = MHD_queue_basic_auth_fail_response(connection, "ctbpf", response);
    MHD_destroy_response(response);
    return queued;
  }

  // With basic auth: MHD_YES once the request may be answered; otherwise the 401 or 503 is queued (or
  // the connection suspended while its password is checked), and `done` set.
  MHD_Result authenticate(MHD_Connection* connection, void** request_context, bool& done) {
    done = true;
    char* password = nullptr;
    char* user = MHD_basic_auth_get_username_password(connection, &password);
    std::unique_ptr<char, decltype(&MHD_free)> owned_user(user, MHD_free), owned_password(password, MHD_free);
    auto refused = [&](const char* reason) {
      *request_context = &g_answered;
      return refuse(connection, user ? user : "", reason);
    };
    if (*request_context == &g_auth_allowed) return done = false, MHD_YES;
    if (*request_context == &g_auth_refused) return refused("wrong user or password");
    if (!user) return refused("no credentials");
    std::string name = user, secret = password ? password : "";
    auto verdict = auth->known(name, secret);
    if (verdict) return *verdict ? (done = false, MHD_YES) : refused("wrong user or password");
    if (!auth->can_queue()) {
      *request_context = &g_answered;
      return queue_text(connection, 503, "busy checking passwords\n");
    }
    // Held until its password is checked on the verifier's thread, which puts the verdict in the
    // request's context and hands the connection back: libmicrohttpd then calls on_request again.
    *request_context = &g_auth_waiting;
    MHD_suspend_connection(connection);
    auth->queue(name, secret, [connection, request_context](bool allowed) {
      *request_context = allowed ? &g_auth_allowed : &g_auth_refused;
      MHD_resume_connection(connection);
    });
    return MHD_YES;
  }

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
    if (self->auth && bodyless) {
      bool done = false;
      auto result = self->authenticate(connection, request_context, done);
      if (done) return result;
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

HttpServer::HttpServer(const std::string& host, int port, Handler handler, const core::WebConfig& web,
                       HttpLimits limits)
    : state_(std::make_unique<State>()) {
  state_->handler = std::move(handler);
  limits.max_connections = fit_to_file_limit(limits.max_connections);
  limits.per_address = std::min(limits.per_address, limits.max_connections);
  state_->limits = limits;
  // The files and hashes are checked before the port is taken: a bad web config is exit 2, one line.
  if (web.tls()) state_->certificates = std::make_unique<TlsCertificates>(web.cert_file, web.key_file);
  if (!web.users.empty()) state_->auth = std::make_unique<BasicAuth>(web.users);
  int fd = listen_on(host, port, limits.backlog);
  // One thread, epoll: no connection holds a thread, so no number of them starves a scrape.
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD;
  const auto priorities = web.tls_priorities();
  std::vector<MHD_OptionItem> options{
      {MHD_OPTION_LISTEN_SOCKET, fd, nullptr},
      {MHD_OPTION_CONNECTION_LIMIT, limits.max_connections, nullptr},
      {MHD_OPTION_PER_IP_CONNECTION_LIMIT, limits.per_address, nullptr},
      {MHD_OPTION_CONNECTION_TIMEOUT, limits.idle_s, nullptr},
      {MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<intptr_t>(limits.connection_memory), nullptr},
      {MHD_OPTION_NOTIFY_CONNECTION, reinterpret_cast<intptr_t>(&State::on_connection), state_.get()},
  };
  if (state_->certificates) {
    flags |= MHD_USE_TLS;
    g_certificates = state_->certificates.get();
    options.push_back({MHD_OPTION_HTTPS_CERT_CALLBACK, 0, reinterpret_cast<void*>(&retrieve_certificate)});
    options.push_back({MHD_OPTION_HTTPS_PRIORITIES, 0, const_cast<char*>(priorities.c_str())});
  }
  if (state_->auth) flags |= MHD_ALLOW_SUSPEND_RESUME;
  options.push_back({MHD_OPTION_END, 0, nullptr});
  state_->daemon = MHD_start_daemon(flags, 0, nullptr, nullptr, &State::on_request, state_.get(),
                                    MHD_OPTION_ARRAY, options.data(), MHD_OPTION_END);
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
  // No request may be held (suspended) when libmicrohttpd stops: the waiting ones are refused first.
  if (state_->auth) state_->auth->stop();
  // Closes every connection (each notified, so each Conn freed) and the listen socket.
  MHD_stop_daemon(state_->daemon);
  g_certificates = nullptr;
}

const HttpLimits& HttpServer::limits() const { return state_->limits; }

HttpRefusals HttpServer::take_refusals() {
  std::lock_guard lock(state_->refusals_mutex);
  return std::exchange(state_->refusals, {});
}

}  // namespace ctbpf::cli
