// SPDX-License-Identifier: Apache-2.0
#pragma once
// IP addresses as text, for every view that prints one. The core's one use of the socket headers: the
// C library's inet_ntop/inet_pton are pure functions (RFC 5952 text, no system call), kept here so no
// other core file needs an OS header.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ctbpf::core {

/// The longest address text and its terminating NUL: INET6_ADDRSTRLEN, an IPv4-mapped IPv6 one.
inline constexpr std::size_t kAddressTextMax = 46;

/// `bytes` holds 16 bytes (an IPv4 address in the first 4); l3 is AF_INET or AF_INET6 as the kernel
/// records it. "?" for another family.
std::string address_text(uint8_t l3, const uint8_t* bytes);

/// address_text() into a caller's buffer: the per-event path allocates nothing.
using AddressText = char[kAddressTextMax];
std::string_view address_view(uint8_t l3, const uint8_t* bytes, AddressText& buf);

/// An IPv4 or IPv6 address in text form (the snapshot reader's check of `by_source` keys).
bool is_ip_address(const std::string& text);

}  // namespace ctbpf::core
