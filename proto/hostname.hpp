// Host names as egressd takes them (the DEST_HOST field, rules' "host"
// entries, egress-connect's HOST:PORT) and the one form it compares them in.
// Pure: no resolver here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "egress_export.h"
#include "endpoint.hpp"
#include "result.hpp"

namespace egress {

// The longest name, in its normalized form (RFC 1035: 255 octets on the
// wire, which is 253 characters of text without the final dot).
inline constexpr std::size_t kMaxHostName = 253;
inline constexpr std::size_t kMaxHostLabel = 63;

// The normalized form of a host name: lowercase, the final dot of an
// absolute name ("example.com.") dropped. EINVAL, with a message that says
// what is wrong, for: an empty name; one longer than 253 characters; an
// empty label ("a..b") or one longer than 63; a character other than ASCII
// letters, digits, '-' and '_' (non-ASCII: send its punycode, "xn--..."); a
// label that begins or ends with '-'; a last label of digits only (an IPv4
// address, whole or shortened like "127.1", is not a name).
EGRESS_API Result<std::string> normalize_host_name(std::string_view text);

// Where a user asks to connect: an address literal, or a host name
// (normalized) with a port.
struct Destination {
    std::optional<Endpoint> address;  // set: a literal; port inside
    std::string host;                 // set when address is not
    std::uint16_t port = 0;

    bool operator==(const Destination&) const = default;
};

// "ADDRESS:PORT", "[IPV6]:PORT" or "NAME:PORT" (port 1-65535). The error
// message says what is wrong.
EGRESS_API Result<Destination> parse_destination(std::string_view text);
// "192.0.2.1:80", "[2001:db8::1]:80" or "example.com:80".
EGRESS_API std::string destination_string(const Destination& d);

}  // namespace egress
