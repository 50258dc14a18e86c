// SPDX-License-Identifier: Apache-2.0
#include "core/address.h"

#include <arpa/inet.h>
#include <sys/socket.h>

namespace ctbpf::core {

static_assert(kAddressTextMax == INET6_ADDRSTRLEN);

std::string address_text(uint8_t l3, const uint8_t* bytes) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (l3 == AF_INET || l3 == AF_INET6) inet_ntop(l3, bytes, text, sizeof(text));
  return text;
}

std::string_view address_view(uint8_t l3, const uint8_t* bytes, AddressText& buf) {
  if ((l3 != AF_INET && l3 != AF_INET6) || !inet_ntop(l3, bytes, buf, sizeof buf)) return "?";
  return buf;
}

bool is_ip_address(const std::string& text) {
  unsigned char addr[16];
  return inet_pton(AF_INET, text.c_str(), addr) == 1 || inet_pton(AF_INET6, text.c_str(), addr) == 1;
}

}  // namespace ctbpf::core
