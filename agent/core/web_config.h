// SPDX-License-Identifier: Apache-2.0
#pragma once
// serve's --web-config: exporter-toolkit's web configuration file (the one node_exporter and
// Prometheus take as --web.config.file), so a fleet's existing file and habits carry over. Parsed
// here from its text, without touching the OS; cli/http_server.cpp reads the files it names.
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ctbpf::core {

/// A file ctbpf cannot use as it stands: one line, naming the key (and its line in the file).
struct WebConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct WebConfig {
  /// tls_server_config: both empty = plain HTTP. Relative paths are resolved against the
  /// configuration file's directory, as exporter-toolkit does.
  std::string cert_file, key_file;
  /// tls_server_config.min_version / max_version as GnuTLS names ("TLS1.2", "TLS1.3").
  std::string min_tls = "TLS1.2", max_tls = "TLS1.3";
  /// basic_auth_users: user -> bcrypt hash ($2a$, $2b$ or $2y$). Empty = no authentication.
  std::map<std::string, std::string> users;

  bool tls() const { return !cert_file.empty(); }
  /// The GnuTLS priority string that allows exactly min_tls..max_tls.
  std::string tls_priorities() const;
};

/// Parses the file's text. `dir` is the file's directory, for relative paths. Unknown keys are
/// errors (exporter-toolkit reads strictly too), and so are the keys it knows that ctbpf does not
/// implement: a file that asks for client certificates must not quietly serve without them.
WebConfig parse_web_config(std::string_view text, const std::string& dir);

}  // namespace ctbpf::core
