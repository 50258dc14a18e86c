// SPDX-License-Identifier: Apache-2.0
#pragma once
// serve's TLS certificate and key, read from disk again when they change: a certificate renewed on
// disk (cert-manager, certbot, a rotated Secret) is served from the next handshake on, without a
// restart, as exporter-toolkit does (it reads the files at each handshake).
#include <gnutls/abstract.h>

#include <chrono>
#include <deque>
#include <memory>
#include <string>

namespace ctbpf::cli {

class TlsCertificates {
public:
  /// Reads both files now: exit 2, one line, when they cannot serve (unreadable, not PEM, a key that
  /// does not match the certificate).
  TlsCertificates(std::string cert_file, std::string key_file);
  ~TlsCertificates();
  TlsCertificates(const TlsCertificates&) = delete;
  TlsCertificates& operator=(const TlsCertificates&) = delete;

  /// For GnuTLS at each handshake (libmicrohttpd's MHD_OPTION_HTTPS_CERT_CALLBACK), on the server's
  /// one thread. At most once a second, it looks at the files; when either changed it reads them
  /// again. A pair that cannot serve (a renewal half written: the new certificate, the old key) is
  /// refused with one line on stderr, and the last good pair goes on serving.
  int retrieve(gnutls_pcert_st** certs, unsigned* count, gnutls_privkey_t* key);

  struct Pair;

private:
  std::unique_ptr<Pair> load() const;
  void reload_if_changed();

  std::string cert_file_, key_file_;
  // The pair in use is the last. GnuTLS holds the pointers it was given for the session's handshake;
  // a few earlier pairs stay alive for handshakes begun before a renewal, then are freed.
  std::deque<std::unique_ptr<Pair>> pairs_;
  std::string refused_stamp_;  // the files' state when they were last refused: said once
  std::chrono::steady_clock::time_point next_look_{};
};

}  // namespace ctbpf::cli
