// SPDX-License-Identifier: Apache-2.0
// flowgen: makes an exact, known number of conntrack flows on addresses the caller owns (loopback or
// its own veths), so e2e tests can compare ctbpf's counts with the kernel's. Addresses are IPv4 or
// IPv6 (fd00::1); a flow's source and destination must be of one family.
//
//   flowgen udp  --dst ADDR --port FIRST --count N [--src ADDR]...   one datagram to each of N ports;
//                prints "SENT REFUSED": a datagram conntrack drops on the way out (table full, chain
//                too long) fails sendto() with EPERM and is counted as refused, not an error.
//                --burst B --gap-ms G: sleep G ms after every B datagrams, so the CPUs go idle between
//                bursts (a gateway's conntrack then runs in softirq with the idle task current)
//                --src-count K --sport FIRST: K sockets instead of one, socket j bound to source port
//                FIRST + j (on --src, or any address): K × N flows whose tuples differ by construction,
//                so N = 1 makes K flows to one busy destination port
//   flowgen udp-pairs --dst ADDR --port FIRST --count N             for each of N ports, two threads on
//                two CPUs send one datagram each from ONE socket at the same instant: one flow per
//                port, whose two first packets race to be confirmed (a clash when both are
//                unconfirmed at once, as with a resolver's parallel A and AAAA queries); prints
//                "SENT REFUSED" like udp. --sport FIRST: flow i from source port FIRST + i (a socket
//                each), every flow to --port (a resolver's queries to one DNS server)
//   flowgen udp-stream --dst ADDR --port P --sport S --rate R --count N   one flow: N datagrams from
//                source port S (one socket), datagram i sent at i/R s after the first (an absolute
//                schedule, so a late wake-up does not lower the rate); prints "SENT REFUSED" like udp
//   flowgen tcp-listen --addr ADDR --port P                          accept and hold connections
//   flowgen tcp-hold --dst ADDR --port P --count N [--ready FILE]    open N connections, hold until SIGTERM
//   flowgen tcp-serve --addr ADDR --port P [--ready FILE]            accept connections, read each to EOF,
//                close it (the server's half of tcp-connect), until SIGTERM
//   flowgen tcp-connect --dst ADDR --port P --count N [--threads T]  N whole connections, T at a time (4):
//                handshake, one byte, FIN, wait for the server's FIN, close; prints "DONE FAILED"
//                (FAILED: a connect, send or read that failed; the test decides what that means)
//   flowgen tcp-half-close --dst ADDR --port P --count N [--ready FILE]  the same, each shut down for
//                writing once open (its FIN sent: the entry moves to CLOSE_WAIT), held until SIGTERM
//   flowgen http-serve --addr ADDR --port P [--ready FILE]           for each connection: read the
//                request, write a response, close (the server closes first, as HTTP/1.0 does)
//   flowgen tcp-requests --dst ADDR --port P --count N [--sport FIRST]  N connections one after the
//                other, no keep-alive: connect, send a request, read the response to its end, close;
//                prints N. With --sport, connection i comes from port FIRST + i: no tuple is reused
//   flowgen ct-events-stall [--ready FILE]                           a ctnetlink listener of destroy
//                events that asks for reliable delivery (NETLINK_BROADCAST_ERROR, as conntrackd does) and
//                never reads: once its small buffer is full the kernel cannot deliver destroy events,
//                and parks deleted entries until it can (after SIGTERM closes the socket)
#include <arpa/inet.h>
#include <poll.h>
#include <netinet/in.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "flowgen: %s\n", msg.c_str());
  std::exit(2);
}

// An IPv4 or IPv6 (has a ':') socket address.
struct Address {
  sockaddr_storage storage{};
  socklen_t len = 0;
  int family() const { return storage.ss_family; }
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

Address address(const std::string& ip, unsigned port) {
  Address a;
  const auto p = htons(static_cast<uint16_t>(port));
  if (ip.find(':') != std::string::npos) {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = p;
    if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) != 1) die("bad IPv6 address " + ip);
    a.len = sizeof(*v6);
  } else {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
    v4->sin_family = AF_INET;
    v4->sin_port = p;
    if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) != 1) die("bad IPv4 address " + ip);
    a.len = sizeof(*v4);
  }
  return a;
}

struct Args {
  std::string dst = "127.0.0.1", addr = "127.0.0.1", ready;
  std::vector<std::string> sources;
  unsigned port = 20000, count = 0, threads = 4, burst = 0, gap_ms = 0, sport = 0, src_count = 0, rate = 0;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 2; i < argc; ++i) {
    std::string k = argv[i];
    if (i + 1 >= argc) die("missing value for " + k);
    std::string v = argv[++i];
    if (k == "--dst") a.dst = v;
    else if (k == "--addr") a.addr = v;
    else if (k == "--src") a.sources.push_back(v);
    else if (k == "--port") a.port = static_cast<unsigned>(std::stoul(v));
    else if (k == "--count") a.count = static_cast<unsigned>(std::stoul(v));
    else if (k == "--src-count") a.src_count = static_cast<unsigned>(std::stoul(v));
    else if (k == "--sport") a.sport = static_cast<unsigned>(std::stoul(v));
    else if (k == "--ready") a.ready = v;
    else if (k == "--threads") a.threads = static_cast<unsigned>(std::stoul(v));
    else if (k == "--burst") a.burst = static_cast<unsigned>(std::stoul(v));
    else if (k == "--gap-ms") a.gap_ms = static_cast<unsigned>(std::stoul(v));
    else if (k == "--rate") a.rate = static_cast<unsigned>(std::stoul(v));
    else die("unknown option " + k);
  }
  return a;
}

// One socket per source, one datagram per destination port: every datagram is a new flow.
int udp(const Args& a) {
  std::vector<std::string> sources = a.sources.empty() ? std::vector<std::string>{""} : a.sources;
  if (a.port + a.count > 65536) die("port range overflows");
  if (a.src_count) {
    if (!a.sport) die("--src-count needs --sport FIRST");
    if (a.sources.size() > 1) die("--src-count takes at most one --src");
    if (a.sport + a.src_count > 65536) die("source port range overflows");
    const std::string any = address(a.dst, 0).family() == AF_INET6 ? "::" : "0.0.0.0";
    const std::string base = a.sources.empty() ? any : a.sources[0];
    sources.assign(a.src_count, base);
  }
  unsigned next_sport = a.sport;
  unsigned sent = 0, refused = 0;
  const auto start = std::chrono::steady_clock::now();
  for (const auto& src : sources) {
    int fd = socket(address(a.dst, 0).family(), SOCK_DGRAM, 0);
    if (fd < 0) die(std::string("socket: ") + std::strerror(errno));
    if (a.src_count) {
      const unsigned sport = next_sport++;
      auto sa = address(src, sport);
      if (bind(fd, sa.sa(), sa.len) != 0)
        die("bind " + src + " port " + std::to_string(sport) + ": " + std::strerror(errno));
    } else if (!src.empty()) {
      auto sa = address(src, 0);
      if (bind(fd, sa.sa(), sa.len) != 0) die("bind " + src + ": " + std::strerror(errno));
    }
    for (unsigned i = 0; i < a.count; ++i) {
      auto sa = address(a.dst, a.port + i);
      char byte = 'x';
      if (sendto(fd, &byte, 1, 0, sa.sa(), sa.len) == 1)
        ++sent;
      else if (errno == EPERM)
        ++refused;
      else
        die(std::string("sendto: ") + std::strerror(errno));
      if (a.burst && (i + 1) % a.burst == 0) std::this_thread::sleep_for(std::chrono::milliseconds(a.gap_ms));
    }
    close(fd);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%u %u\n", sent, refused);
  // For benchmarks: the flood's own rate, on stderr so tests can keep reading the counts.
  const unsigned flows = sent + refused;
  std::fprintf(stderr, "flowgen: %u flows in %.6f s (%.0f/s)\n", flows, seconds, flows / seconds);
  return 0;
}

// One flow at a steady rate: what a client stuck on a dead backend keeps sending.
int udp_stream(const Args& a) {
  if (!a.sport || !a.rate) die("udp-stream needs --sport and --rate");
  const auto dst = address(a.dst, a.port);
  int fd = socket(dst.family(), SOCK_DGRAM, 0);
  if (fd < 0) die(std::string("socket: ") + std::strerror(errno));
  auto src = address(dst.family() == AF_INET6 ? "::" : "0.0.0.0", a.sport);
  if (bind(fd, src.sa(), src.len) != 0) die("bind port " + std::to_string(a.sport) + ": " + std::strerror(errno));
  unsigned sent = 0, refused = 0;
  const auto start = std::chrono::steady_clock::now();
  for (unsigned i = 0; i < a.count; ++i) {
    std::this_thread::sleep_until(start + std::chrono::microseconds(1000000ULL * i / a.rate));
    char byte = 'x';
    if (sendto(fd, &byte, 1, 0, dst.sa(), dst.len) == 1)
      ++sent;
    else if (errno == EPERM)
      ++refused;
    else
      die(std::string("sendto: ") + std::strerror(errno));
  }
  close(fd);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%u %u\n", sent, refused);
  // For benchmarks (bench/overhead.sh's blackhole flood), as udp prints it.
  std::fprintf(stderr, "flowgen: %u datagrams in %.6f s (%.0f/s)\n", a.count, seconds, a.count / seconds);
  return 0;
}

void pin_to_cpu(unsigned cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) die(std::string("sched_setaffinity: ") + std::strerror(errno));
}

// Two senders in lockstep: round i starts when both have arrived (a spin barrier: a sleeping wake-up
// would be far wider than the window between conntrack's lookup and its confirm).
int udp_pairs(const Args& a) {
  if (a.port + a.count > 65536) die("port range overflows");
  if (a.sport + a.count > 65536) die("source port range overflows");
  if (std::thread::hardware_concurrency() < 2) die("udp-pairs needs 2 CPUs");
  // One socket for every flow (flow i to port FIRST + i), or with --sport one per flow, each bound
  // to its own source port, all to --port (a resolver's queries, each from a new socket).
  std::vector<int> fds(a.sport ? a.count : 1);
  for (unsigned i = 0; i < fds.size(); ++i) {
    fds[i] = socket(address(a.dst, 0).family(), SOCK_DGRAM, 0);
    if (fds[i] < 0) die(std::string("socket: ") + std::strerror(errno));
    if (!a.sport) continue;
    auto src = address(address(a.dst, 0).family() == AF_INET6 ? "::" : "0.0.0.0", a.sport + i);
    if (bind(fds[i], src.sa(), src.len) != 0) die("bind port " + std::to_string(a.sport + i) + ": " + std::strerror(errno));
  }
  std::atomic<unsigned> arrived{0}, sent{0}, refused{0};
  auto sender = [&](unsigned cpu) {
    pin_to_cpu(cpu);
    for (unsigned i = 0; i < a.count; ++i) {
      auto sa = address(a.dst, a.sport ? a.port : a.port + i);
      const int fd = fds[a.sport ? i : 0];
      arrived.fetch_add(1);
      while (arrived.load() < 2 * (i + 1)) {
      }
      char byte = 'x';
      if (sendto(fd, &byte, 1, 0, sa.sa(), sa.len) == 1)
        sent.fetch_add(1);
      else if (errno == EPERM)
        refused.fetch_add(1);
      else
        die(std::string("sendto: ") + std::strerror(errno));
    }
  };
  std::thread other(sender, 1);
  sender(0);
  other.join();
  for (int fd : fds) close(fd);
  std::printf("%u %u\n", sent.load(), refused.load());
  return 0;
}

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

// A listening socket on ADDR:PORT (SO_REUSEADDR, backlog 4096); then the --ready file says so.
int listen_on(const Args& a, int flags) {
  auto sa = address(a.addr, a.port);
  int fd = socket(sa.family(), SOCK_STREAM | flags, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, sa.sa(), sa.len) != 0 || listen(fd, 4096) != 0)
    die(std::string("listen: ") + std::strerror(errno));
  if (!a.ready.empty()) std::ofstream(a.ready) << "ready\n";
  return fd;
}

int tcp_listen(const Args& a) {
  int fd = listen_on(a, 0);
  std::vector<int> held;
  std::signal(SIGTERM, on_signal);
  while (!g_stop) {
    int c = accept(fd, nullptr, nullptr);
    if (c >= 0) held.push_back(c);
  }
  return 0;
}

// tcp-hold and tcp-half-close: COUNT connections held open until SIGTERM, each shut down for writing
// first with half_close (its FIN sent: the entry moves to CLOSE_WAIT).
int hold_connections(const Args& a, bool half_close) {
  std::vector<int> held;
  for (unsigned i = 0; i < a.count; ++i) {
    auto sa = address(a.dst, a.port);
    int fd = socket(sa.family(), SOCK_STREAM, 0);
    if (connect(fd, sa.sa(), sa.len) != 0) die(std::string("connect: ") + std::strerror(errno));
    if (half_close && shutdown(fd, SHUT_WR) != 0) die(std::string("shutdown: ") + std::strerror(errno));
    held.push_back(fd);
  }
  if (!a.ready.empty()) std::ofstream(a.ready) << held.size() << "\n";
  std::signal(SIGTERM, on_signal);
  while (!g_stop) pause();
  return 0;
}

// Closes each connection when the client has closed its side, so every connection ends with a FIN from
// both ends (a close with unread data would send a RST instead). One thread, poll over all of them.
int tcp_serve(const Args& a) {
  int lfd = listen_on(a, SOCK_NONBLOCK);
  std::signal(SIGTERM, on_signal);
  std::vector<pollfd> fds{{lfd, POLLIN, 0}};
  while (!g_stop) {
    if (poll(fds.data(), fds.size(), 200) < 0) continue;  // EINTR on SIGTERM
    for (std::size_t i = fds.size(); i-- > 1;) {
      if (!fds[i].revents) continue;
      char buf[256];
      ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n > 0 || (n < 0 && errno == EAGAIN)) continue;
      close(fds[i].fd);  // EOF (or an error): our FIN goes out now
      fds[i] = fds.back();
      fds.pop_back();
    }
    if (fds[0].revents & POLLIN) {
      int c;
      while ((c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK)) >= 0) fds.push_back({c, POLLIN, 0});
    }
  }
  return 0;
}

// One whole TCP connection: handshake, a byte, our FIN, the server's FIN (read returns 0), close.
bool tcp_one(const Address& sa) {
  int fd = socket(sa.family(), SOCK_STREAM, 0);
  if (fd < 0) die(std::string("socket: ") + std::strerror(errno));
  char byte = 'x';
  bool ok = connect(fd, sa.sa(), sa.len) == 0 && send(fd, &byte, 1, MSG_NOSIGNAL) == 1 &&
            shutdown(fd, SHUT_WR) == 0 && read(fd, &byte, 1) == 0;
  close(fd);
  return ok;
}

int tcp_connect(const Args& a) {
  if (a.threads == 0) die("--threads must be at least 1");
  const auto sa = address(a.dst, a.port);
  std::atomic<unsigned> next{0}, done{0}, failed{0};
  auto worker = [&] {
    while (next.fetch_add(1) < a.count) (tcp_one(sa) ? done : failed).fetch_add(1);
  };
  std::vector<std::thread> workers;
  for (unsigned i = 0; i < a.threads; ++i) workers.emplace_back(worker);
  for (auto& w : workers) w.join();
  std::printf("%u %u\n", done.load(), failed.load());
  return 0;
}


constexpr char kRequest[] = "GET / HTTP/1.0\r\n\r\n";
constexpr char kResponse[] = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok";

int http_serve(const Args& a) {
  int fd = listen_on(a, 0);
  std::signal(SIGTERM, on_signal);
  while (!g_stop) {
    int c = accept(fd, nullptr, nullptr);
    if (c < 0) continue;
    // The whole request before the answer: closing with unread data would send a RST, not a FIN.
    char buf[256];
    std::size_t got = 0;
    while (got < sizeof(kRequest) - 1) {
      auto n = read(c, buf, sizeof(buf));
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    if (got == sizeof(kRequest) - 1 && write(c, kResponse, sizeof(kResponse) - 1) < 0) {
      // The client is gone: nothing to answer.
    }
    close(c);
  }
  return 0;
}

int tcp_requests(const Args& a) {
  if (a.sport && a.sport + a.count > 65536) die("source port range overflows");
  unsigned done = 0;
  for (unsigned i = 0; i < a.count; ++i) {
    auto sa = address(a.dst, a.port);
    int fd = socket(sa.family(), SOCK_STREAM, 0);
    if (a.sport) {
      auto src = address(sa.family() == AF_INET6 ? "::" : "0.0.0.0", a.sport + i);
      if (bind(fd, src.sa(), src.len) != 0) die(std::string("bind: ") + std::strerror(errno));
    }
    if (connect(fd, sa.sa(), sa.len) != 0) die(std::string("connect: ") + std::strerror(errno));
    if (write(fd, kRequest, sizeof(kRequest) - 1) != static_cast<ssize_t>(sizeof(kRequest) - 1))
      die(std::string("write: ") + std::strerror(errno));
    char buf[256];
    std::size_t got = 0;
    for (ssize_t n; (n = read(fd, buf, sizeof(buf))) != 0; got += static_cast<std::size_t>(n))
      if (n < 0) die(std::string("read: ") + std::strerror(errno));
    if (got != sizeof(kResponse) - 1) die("short response");
    close(fd);
    ++done;
  }
  std::printf("%u\n", done);
  return 0;
}

int ct_events_stall(const Args& a) {
  int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER);
  if (fd < 0) die(std::string("netlink socket: ") + std::strerror(errno));
  int one = 1, small = 1;  // the kernel rounds SO_RCVBUF up to its minimum
  if (setsockopt(fd, SOL_NETLINK, NETLINK_BROADCAST_ERROR, &one, sizeof(one)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) != 0)
    die(std::string("netlink setsockopt: ") + std::strerror(errno));
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = NF_NETLINK_CONNTRACK_DESTROY;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) die(std::string("netlink bind: ") + std::strerror(errno));
  if (!a.ready.empty()) std::ofstream(a.ready) << "ready\n";
  std::signal(SIGTERM, on_signal);
  while (!g_stop) pause();
  close(fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) die("usage: flowgen udp|udp-pairs|udp-stream|tcp-listen|tcp-hold|tcp-serve|tcp-connect|tcp-half-close|http-serve|tcp-requests|ct-events-stall [options]");
  std::string cmd = argv[1];
  Args a = parse(argc, argv);
  if (cmd == "udp") return udp(a);
  if (cmd == "udp-pairs") return udp_pairs(a);
  if (cmd == "udp-stream") return udp_stream(a);
  if (cmd == "tcp-listen") return tcp_listen(a);
  if (cmd == "tcp-hold") return hold_connections(a, false);
  if (cmd == "tcp-serve") return tcp_serve(a);
  if (cmd == "tcp-connect") return tcp_connect(a);
  if (cmd == "tcp-half-close") return hold_connections(a, true);
  if (cmd == "http-serve") return http_serve(a);
  if (cmd == "tcp-requests") return tcp_requests(a);
  if (cmd == "ct-events-stall") return ct_events_stall(a);
  die("unknown command " + cmd);
}
