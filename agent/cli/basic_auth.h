// SPDX-License-Identifier: Apache-2.0
#pragma once
// serve's basic authentication (--web-config basic_auth_users): bcrypt, as exporter-toolkit.
//
// bcrypt is made to be slow (cost 10: ~60 ms of CPU), and serve's HTTP side is one thread: checked
// there, 17 wrong passwords a second would starve every scrape. So a password is checked once, on a
// thread of its own, while libmicrohttpd holds the request (suspended); the verdict is remembered
// (keyed by a SHA-256 of user and password, never the password), so a scraper's every later request
// is answered at once. Requests wait in a bounded queue: when it is full, a request with credentials
// not seen before gets 503 at once rather than waiting, and a known scraper is never behind them.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>

namespace ctbpf::cli {

class BasicAuth {
public:
  /// user -> bcrypt hash. Checks each hash with the system's crypt(3) now: exit 2 if it cannot.
  explicit BasicAuth(std::map<std::string, std::string> users);
  ~BasicAuth();
  BasicAuth(const BasicAuth&) = delete;
  BasicAuth& operator=(const BasicAuth&) = delete;

  /// The verdict already known for these credentials, if any.
  std::optional<bool> known(const std::string& user, const std::string& password);
  /// Room for one more check (only the server's thread adds, so true stays true until it does).
  bool can_queue();
  /// Checks on the verifier's thread, then calls done(verdict) there.
  void queue(const std::string& user, const std::string& password, std::function<void(bool)> done);
  /// Refuses every waiting check (done(false)) and ends the verifier's thread; from then on nothing
  /// can be queued. Before the server stops: it must not stop with requests held.
  void stop();

private:
  void verify_loop();
  bool verify(const std::string& user, const std::string& password) const;

  std::map<std::string, std::string> users_;
  struct Job {
    std::string user, password, key;
    std::function<void(bool)> done;
  };
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;
  std::optional<bool> known_locked(const std::string& key) const;
  std::unordered_set<std::string> allowed_, refused_;  // SHA-256 keys; bounded (basic_auth.cpp)
  bool stopping_ = false;
  std::thread verifier_;
};

}  // namespace ctbpf::cli
