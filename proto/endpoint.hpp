// An IP endpoint as plain bytes, and its text forms. Pure: no sockets.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "egress_export.h"
#include "result.hpp"

namespace egress {

struct Endpoint {
    bool v6 = false;
    std::array<std::uint8_t, 16> addr{};  // network order; first 4 bytes for IPv4
    std::uint16_t port = 0;

    std::size_t addr_len() const { return v6 ? 16 : 4; }
    bool operator==(const Endpoint&) const = default;
};

// The transport of a connect: its IP protocol number, as CONNECT's TRANSPORT
// field carries it (EGRESS_TRANSPORT_*).
enum class Transport : std::uint8_t { tcp = 6, udp = 17 };
// "tcp" or "udp".
EGRESS_API const char* to_string(Transport t);

// Parses an IPv4 or IPv6 literal ("192.0.2.1", "::1"); no host names.
EGRESS_API std::optional<Endpoint> parse_address(std::string_view text, std::uint16_t port = 0);
// Parses "ADDR:PORT" or "[ADDR6]:PORT". The error message says what is wrong.
EGRESS_API Result<Endpoint> parse_endpoint(std::string_view text);
// "HOST:PORT" or "[HOST]:PORT" split, the port checked (1-65535); `form`
// names what was expected in the error ("ADDRESS:PORT", "HOST:PORT").
struct HostPort {
    std::string_view host;
    std::uint16_t port = 0;
    bool bracketed = false;
};
Result<HostPort> split_host_port(std::string_view text, const char* form);
// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it is
// (a.b.c.d, same port); any other endpoint unchanged.
EGRESS_API Endpoint unmap_ipv4(const Endpoint& ep);
// "192.0.2.1" or "2001:db8::1".
EGRESS_API std::string address_string(const Endpoint& ep);
// "192.0.2.1:80" or "[2001:db8::1]:80".
EGRESS_API std::string endpoint_string(const Endpoint& ep);

}  // namespace egress
