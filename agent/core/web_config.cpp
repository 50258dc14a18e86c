// SPDX-License-Identifier: Apache-2.0
#include "core/web_config.h"

#include <array>
#include <utility>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace ctbpf::core {

namespace {

[[noreturn]] void fail(const YAML::Node& at, std::string_view what) {
  auto mark = at.Mark();
  if (mark.line >= 0) throw WebConfigError(fmt::format("line {}: {}", mark.line + 1, what));
  throw WebConfigError(std::string(what));
}

std::string text_of(const YAML::Node& node, std::string_view key) {
  if (!node.IsScalar()) fail(node, fmt::format("{} must be a string", key));
  return node.Scalar();
}

// exporter-toolkit's names for TLS versions, and GnuTLS's.
std::string tls_version(const YAML::Node& node, std::string_view key) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 2> kVersions{
      {{"TLS12", "TLS1.2"}, {"TLS13", "TLS1.3"}}};
  auto name = text_of(node, key);
  for (auto [ours, gnutls] : kVersions)
    if (name == ours) return std::string(gnutls);
  fail(node, fmt::format("{}: '{}' is not one ctbpf serves (TLS12 or TLS13)", key, name));
}

std::string resolved(std::string path, const std::string& dir) {
  if (path.empty() || path.front() == '/' || dir.empty()) return path;
  return dir + "/" + path;
}

// Keys exporter-toolkit knows that ctbpf does not implement: refused by name rather than ignored.
bool known_elsewhere(std::string_view key) {
  static constexpr std::array<std::string_view, 8> kNotImplemented{
      "client_auth_type", "client_ca_file",     "client_allowed_sans", "cipher_suites",
      "curve_preferences", "prefer_server_cipher_suites", "cert", "key"};
  for (auto k : kNotImplemented)
    if (k == key) return true;
  return false;
}

void read_tls(const YAML::Node& tls, const std::string& dir, WebConfig& config) {
  if (!tls.IsMap()) fail(tls, "tls_server_config must be a map");
  for (const auto& entry : tls) {
    auto key = entry.first.Scalar();
    const auto& value = entry.second;
    if (key == "cert_file") config.cert_file = resolved(text_of(value, "tls_server_config.cert_file"), dir);
    else if (key == "key_file") config.key_file = resolved(text_of(value, "tls_server_config.key_file"), dir);
    else if (key == "min_version") config.min_tls = tls_version(value, "tls_server_config.min_version");
    else if (key == "max_version") config.max_tls = tls_version(value, "tls_server_config.max_version");
    else if (known_elsewhere(key))
      fail(entry.first, fmt::format("tls_server_config.{} is not implemented by ctbpf serve", key));
    else fail(entry.first, fmt::format("unknown key tls_server_config.{}", key));
  }
  if (config.cert_file.empty()) fail(tls, "tls_server_config: cert_file is missing");
  if (config.key_file.empty()) fail(tls, "tls_server_config: key_file is missing");
  if (config.min_tls > config.max_tls) fail(tls, "tls_server_config: min_version is above max_version");
}

void read_users(const YAML::Node& users, WebConfig& config) {
  if (users.IsNull()) return;
  if (!users.IsMap()) fail(users, "basic_auth_users must be a map of user: bcrypt hash");
  for (const auto& entry : users) {
    auto user = text_of(entry.first, "a basic_auth_users name");
    auto hash = text_of(entry.second, fmt::format("basic_auth_users.{}", user));
    // exporter-toolkit takes bcrypt only; so does ctbpf (a plain password here would be a leak).
    bool bcrypt = hash.size() == 60 && (hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$"));
    if (!bcrypt) fail(entry.second, fmt::format("basic_auth_users.{}: not a bcrypt hash (make one with: htpasswd -nBC 10 {})", user, user));
    if (user.find(':') != std::string::npos) fail(entry.first, fmt::format("basic_auth_users: '{}' has a ':', which basic auth cannot carry", user));
    config.users[user] = hash;
  }
}

}  // namespace

std::string WebConfig::tls_priorities() const {
  std::string versions;
  if (min_tls <= "TLS1.2" && max_tls >= "TLS1.2") versions += ":+VERS-TLS1.2";
  if (max_tls >= "TLS1.3") versions += ":+VERS-TLS1.3";
  return "NORMAL:-VERS-ALL" + versions;
}

WebConfig parse_web_config(std::string_view text, const std::string& dir) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    throw WebConfigError(fmt::format("line {}: {}", e.mark.line + 1, e.msg));
  }
  WebConfig config;
  if (root.IsNull()) return config;  // an empty file: plain HTTP, no authentication, as exporter-toolkit
  if (!root.IsMap()) fail(root, "not a map of tls_server_config, basic_auth_users");
  for (const auto& entry : root) {
    auto key = entry.first.Scalar();
    if (key == "tls_server_config") read_tls(entry.second, dir, config);
    else if (key == "basic_auth_users") read_users(entry.second, config);
    else if (key == "http_server_config") fail(entry.first, "http_server_config is not implemented by ctbpf serve");
    else fail(entry.first, fmt::format("unknown key {} (ctbpf knows tls_server_config, basic_auth_users)", key));
  }
  return config;
}

}  // namespace ctbpf::core
