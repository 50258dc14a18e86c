// SPDX-License-Identifier: Apache-2.0
#include "cli/basic_auth.h"

#include <crypt.h>
#include <gnutls/crypto.h>

#include <memory>

#include <fmt/format.h>

#include "kernel/error.h"

namespace ctbpf::cli {

namespace {

constexpr std::size_t kQueued = 32;      // checks waiting: ~2 s of bcrypt at cost 10
// Verdicts remembered, each kind forgotten all at once when full. Apart, so that a flood of wrong
// passwords never pushes out a scraper's right one.
constexpr std::size_t kAllowedKept = 256, kRefusedKept = 4096;

// A user that does not exist costs the same bcrypt as one that does (exporter-toolkit does the same),
// so the time of a refusal does not tell which names exist. Any valid cost-10 hash does.
constexpr const char* kNobodysHash = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

std::string key_of(const std::string& user, const std::string& password) {
  auto both = user + '\0' + password;
  unsigned char digest[32];
  gnutls_hash_fast(GNUTLS_DIG_SHA256, both.data(), both.size(), digest);
  return std::string(reinterpret_cast<char*>(digest), sizeof digest);
}

bool bcrypt_matches(const std::string& password, const std::string& hash, crypt_data& scratch) {
  const char* out = crypt_r(password.c_str(), hash.c_str(), &scratch);
  if (!out || out[0] == '*') return false;  // "*0"/"*1": libxcrypt's failure tokens
  // Constant time over the hash's length.
  std::string made(out);
  if (made.size() != hash.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < made.size(); ++i) diff |= static_cast<unsigned char>(made[i] ^ hash[i]);
  return diff == 0;
}

}  // namespace

BasicAuth::BasicAuth(std::map<std::string, std::string> users) : users_(std::move(users)) {
  auto scratch = std::make_unique<crypt_data>();
  for (const auto& [user, hash] : users_) {
    const char* out = crypt_r("", hash.c_str(), scratch.get());
    if (!out || out[0] == '*')
      throw Error(kExitUsage, fmt::format("--web-config: basic_auth_users.{}: this system's crypt(3) cannot check that bcrypt hash", user));
  }
  verifier_ = std::thread([this] { verify_loop(); });
}

BasicAuth::~BasicAuth() { stop(); }

void BasicAuth::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (verifier_.joinable()) verifier_.join();
}

std::optional<bool> BasicAuth::known(const std::string& user, const std::string& password) {
  auto key = key_of(user, password);
  std::lock_guard lock(mutex_);
  return known_locked(key);
}

std::optional<bool> BasicAuth::known_locked(const std::string& key) const {
  if (allowed_.count(key)) return true;
  if (refused_.count(key)) return false;
  return std::nullopt;
}

bool BasicAuth::can_queue() {
  std::lock_guard lock(mutex_);
  return !stopping_ && jobs_.size() < kQueued;
}

void BasicAuth::queue(const std::string& user, const std::string& password, std::function<void(bool)> done) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back({user, password, key_of(user, password), std::move(done)});
  }
  wake_.notify_one();
}

bool BasicAuth::verify(const std::string& user, const std::string& password) const {
  thread_local auto scratch = std::make_unique<crypt_data>();
  auto found = users_.find(user);
  bool matches = bcrypt_matches(password, found != users_.end() ? found->second : kNobodysHash, *scratch);
  return matches && found != users_.end();
}

void BasicAuth::verify_loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping, and every waiting request answered
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    // Asked twice while the first was queued: the verdict may be known by now. At stop, the waiting
    // requests are refused without a check: the server is closing them anyway.
    auto verdict = stopping_ ? std::optional<bool>(false) : known_locked(job.key);
    lock.unlock();
    bool allowed = verdict ? *verdict : verify(job.user, job.password);
    lock.lock();
    if (!verdict) {
      auto& kept = allowed ? allowed_ : refused_;
      if (kept.size() >= (allowed ? kAllowedKept : kRefusedKept)) kept.clear();
      kept.insert(job.key);
    }
    lock.unlock();
    job.done(allowed);
    lock.lock();
  }
}

}  // namespace ctbpf::cli
