// Destination routes: which pool serves a destination. Pure.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "endpoint.hpp"
#include "pool/port_window.hpp"
#include "result.hpp"

namespace egress {

struct Prefix {
    Endpoint net;  // port unused
    unsigned len = 0;
    bool contains(const Endpoint& addr) const;
    bool operator==(const Prefix&) const = default;
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
