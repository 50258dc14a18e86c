// SPDX-License-Identifier: Apache-2.0
// serve --web-config: exporter-toolkit's file, read strictly. The files below are in the format of
// exporter-toolkit's docs/web-configuration.md; the hash is htpasswd's (Apache), not made by ctbpf.
#include <doctest/doctest.h>

#include <string>

#include "core/web_config.h"

using ctbpf::core::parse_web_config;
using ctbpf::core::WebConfigError;

namespace {
const std::string kHash = "$2y$10$kjYsVCpzvRSQfZ1BdSZM4.bPzt3IOOphXfGOdOQrr5U4zauG.cNHu";

std::string error_of(const std::string& text) {
  try {
    parse_web_config(text, "/etc/ctbpf");
  } catch (const WebConfigError& e) {
    return e.what();
  }
  return "accepted";
}
}  // namespace

TEST_CASE("web config: TLS and users, paths from the file's directory") {
  auto config = parse_web_config("tls_server_config:\n  cert_file: tls/server.crt\n  key_file: /keys/server.key\n"
                                 "basic_auth_users:\n  prometheus: '" + kHash + "'\n",
                                 "/etc/ctbpf");
  CHECK(config.tls());
  CHECK(config.cert_file == "/etc/ctbpf/tls/server.crt");
  CHECK(config.key_file == "/keys/server.key");
  REQUIRE(config.users.size() == 1);
  CHECK(config.users.at("prometheus") == kHash);
  CHECK(config.tls_priorities() == "NORMAL:-VERS-ALL:+VERS-TLS1.2:+VERS-TLS1.3");
}

TEST_CASE("web config: an empty file or basic auth alone is plain HTTP") {
  CHECK_FALSE(parse_web_config("", "/x").tls());
  auto users_only = parse_web_config("basic_auth_users:\n  a: '" + kHash + "'\n", "/x");
  CHECK_FALSE(users_only.tls());
  CHECK(users_only.users.size() == 1);
}

TEST_CASE("web config: TLS versions as exporter-toolkit names them") {
  auto only13 = parse_web_config("tls_server_config: {cert_file: c, key_file: k, min_version: TLS13}", "/x");
  CHECK(only13.tls_priorities() == "NORMAL:-VERS-ALL:+VERS-TLS1.3");
  auto only12 = parse_web_config("tls_server_config: {cert_file: c, key_file: k, max_version: TLS12}", "/x");
  CHECK(only12.tls_priorities() == "NORMAL:-VERS-ALL:+VERS-TLS1.2");
  CHECK(error_of("tls_server_config: {cert_file: c, key_file: k, min_version: TLS10}") ==
        "line 1: tls_server_config.min_version: 'TLS10' is not one ctbpf serves (TLS12 or TLS13)");
  CHECK(error_of("tls_server_config: {cert_file: c, key_file: k, min_version: TLS13, max_version: TLS12}") ==
        "line 1: tls_server_config: min_version is above max_version");
}

TEST_CASE("web config: what it refuses, by name and line") {
  CHECK(error_of("tls_server_config:\n  certfile: c\n  key_file: k\n") == "line 2: unknown key tls_server_config.certfile");
  CHECK(error_of("tls_server_config:\n  key_file: k\n") == "line 2: tls_server_config: cert_file is missing");
  CHECK(error_of("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_ca_file: ca\n") ==
        "line 4: tls_server_config.client_ca_file is not implemented by ctbpf serve");
  CHECK(error_of("http_server_config:\n  http2: false\n") == "line 1: http_server_config is not implemented by ctbpf serve");
  CHECK(error_of("basic_auth_user:\n  a: b\n") ==
        "line 1: unknown key basic_auth_user (ctbpf knows tls_server_config, basic_auth_users)");
  CHECK(error_of("basic_auth_users:\n  alice: hunter2\n") ==
        "line 2: basic_auth_users.alice: not a bcrypt hash (make one with: htpasswd -nBC 10 alice)");
  CHECK(error_of("basic_auth_users: [a, b]\n") == "line 1: basic_auth_users must be a map of user: bcrypt hash");
  CHECK(error_of("tls_server_config: {cert_file: [a], key_file: k}") == "line 1: tls_server_config.cert_file must be a string");
  CHECK(error_of("- a\n- b\n") == "line 1: not a map of tls_server_config, basic_auth_users");
  CHECK(error_of("tls_server_config: {cert_file: c\n") .rfind("line ", 0) == 0);  // YAML's own error, with its line
}
