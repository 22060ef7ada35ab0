// Destination routes: which pool serves a destination. Pure.
#pragma once

#include <endian.h>

#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "endpoint.hpp"
#include "pool/port_window.hpp"
#include "result.hpp"

namespace egress {

// Bytes [at, at + 8) of an address (at 0 or 8), the first in the top bits.
inline std::uint64_t address_word(const Endpoint& e, std::size_t at) {
    std::uint64_t w;
    std::memcpy(&w, e.addr.data() + at, sizeof w);
    return be64toh(w);
}

struct Prefix {
    Endpoint net;  // port unused
    unsigned len = 0;
    // On the request path (routes, rules): compared a 64-bit word at a time.
    bool contains(const Endpoint& addr) const {
        if (addr.v6 != net.v6) return false;
        return differs_within(address_word(addr, 0), address_word(net, 0), len) == 0 &&
               (len <= 64 || differs_within(address_word(addr, 8), address_word(net, 8), len - 64) == 0);
    }
    bool operator==(const Prefix&) const = default;

private:
    // The bits in which a and b differ among their first `bits` (of 64).
    static std::uint64_t differs_within(std::uint64_t a, std::uint64_t b, unsigned bits) {
        if (bits == 0) return 0;
        return bits >= 64 ? a ^ b : (a ^ b) >> (64 - bits);
    }
};

// "192.0.2.0/24", "2001:db8::/32", or a bare address (a /32 or /128).
// Host bits set below the prefix length are an error (usually a typo).
Result<Prefix> parse_prefix(std::string_view text);
std::string to_string(const Prefix& p);

struct Route {
    Prefix dest;
    PortRange ports;  // 1-65535 when the route names none
    std::string pool;
};

class RouteTable {
public:
    RouteTable() = default;
    RouteTable(std::vector<Route> routes, std::string default_pool);

    // The longest matching prefix wins, then the narrower port range; with
    // no match, the default pool.
    const std::string& pool_for(const Endpoint& dest) const;

private:
    std::vector<Route> routes_;
    std::string default_pool_;
};

// Pairs of routes a destination could match with equal specificity (same
// prefix, overlapping port ranges of the same width), by index in `routes`.
std::vector<std::pair<std::size_t, std::size_t>> route_conflicts(const std::vector<Route>& routes);

}  // namespace egress
