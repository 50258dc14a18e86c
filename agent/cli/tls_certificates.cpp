// SPDX-License-Identifier: Apache-2.0
#include "cli/tls_certificates.h"

#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <vector>

#include <fmt/format.h>

#include "kernel/error.h"

namespace ctbpf::cli {

namespace {

constexpr unsigned kMaxChain = 16;        // certificates in cert_file: the server's and its CAs'
constexpr std::size_t kPairsKept = 4;     // the pair in use and the three before it

// What identifies a file's version without reading it: its inode (a renewal that renames a new file
// into place), its change time and size (one that rewrites it).
std::string stamp(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return "missing";
  return fmt::format("{}:{}.{}:{}", st.st_ino, st.st_ctim.tv_sec, st.st_ctim.tv_nsec, st.st_size);
}

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(kExitUsage, fmt::format("--web-config: cannot read {} {}", what, path));
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

gnutls_datum_t datum(std::string& bytes) {
  return {reinterpret_cast<unsigned char*>(bytes.data()), static_cast<unsigned>(bytes.size())};
}

std::string der_of(gnutls_pubkey_t key) {
  gnutls_datum_t out{};
  if (gnutls_pubkey_export2(key, GNUTLS_X509_FMT_DER, &out) != 0) return {};
  std::string der(reinterpret_cast<char*>(out.data), out.size);
  gnutls_free(out.data);
  return der;
}

}  // namespace

struct TlsCertificates::Pair {
  gnutls_pcert_st certs[kMaxChain]{};
  unsigned count = 0;
  gnutls_privkey_t key = nullptr;
  std::string stamp;

  ~Pair() {
    for (unsigned i = 0; i < count; ++i) gnutls_pcert_deinit(&certs[i]);
    if (key) gnutls_privkey_deinit(key);
  }
};

TlsCertificates::TlsCertificates(std::string cert_file, std::string key_file)
    : cert_file_(std::move(cert_file)), key_file_(std::move(key_file)) {
  pairs_.push_back(load());
  next_look_ = std::chrono::steady_clock::now() + std::chrono::seconds(1);
}

TlsCertificates::~TlsCertificates() = default;

std::unique_ptr<TlsCertificates::Pair> TlsCertificates::load() const {
  auto pair = std::make_unique<Pair>();
  // Stamped before reading: a change while reading is seen at the next look.
  pair->stamp = stamp(cert_file_) + " " + stamp(key_file_);
  auto cert_pem = read_file(cert_file_, "tls_server_config.cert_file");
  auto key_pem = read_file(key_file_, "tls_server_config.key_file");
  auto cert_data = datum(cert_pem), key_data = datum(key_pem);
  pair->count = kMaxChain;
  if (int rc = gnutls_pcert_list_import_x509_raw(pair->certs, &pair->count, &cert_data, GNUTLS_X509_FMT_PEM, 0); rc < 0) {
    pair->count = 0;
    throw Error(kExitUsage, fmt::format("--web-config: {} is not a PEM certificate: {}", cert_file_, gnutls_strerror(rc)));
  }
  if (pair->count == 0) throw Error(kExitUsage, fmt::format("--web-config: no certificate in {}", cert_file_));
  gnutls_privkey_init(&pair->key);
  if (int rc = gnutls_privkey_import_x509_raw(pair->key, &key_data, GNUTLS_X509_FMT_PEM, nullptr, 0); rc < 0)
    throw Error(kExitUsage, fmt::format("--web-config: {} is not a PEM private key: {}", key_file_, gnutls_strerror(rc)));
  // A key that does not match the certificate would fail every handshake; say so here instead.
  gnutls_pubkey_t from_key = nullptr;
  gnutls_pubkey_init(&from_key);
  bool matches = gnutls_pubkey_import_privkey(from_key, pair->key, 0, 0) == 0 &&
                 der_of(from_key) == der_of(pair->certs[0].pubkey);
  gnutls_pubkey_deinit(from_key);
  if (!matches)
    throw Error(kExitUsage, fmt::format("--web-config: the key in {} does not match the certificate in {}", key_file_, cert_file_));
  return pair;
}

void TlsCertificates::reload_if_changed() {
  auto now = std::chrono::steady_clock::now();
  if (now < next_look_) return;
  next_look_ = now + std::chrono::seconds(1);
  auto current = stamp(cert_file_) + " " + stamp(key_file_);
  if (current == pairs_.back()->stamp || current == refused_stamp_) return;
  try {
    pairs_.push_back(load());
    if (pairs_.size() > kPairsKept) pairs_.pop_front();
    std::fprintf(stderr, "ctbpf: serving the renewed TLS certificate from %s\n", cert_file_.c_str());
  } catch (const std::exception& e) {
    refused_stamp_ = current;
    std::fprintf(stderr, "ctbpf: %s; still serving the previous certificate\n", e.what());
  }
}

int TlsCertificates::retrieve(gnutls_pcert_st** certs, unsigned* count, gnutls_privkey_t* key) {
  reload_if_changed();
  const auto& pair = *pairs_.back();
  *certs = const_cast<gnutls_pcert_st*>(pair.certs);
  *count = pair.count;
  *key = pair.key;
  return 0;
}

}  // namespace ctbpf::cli
