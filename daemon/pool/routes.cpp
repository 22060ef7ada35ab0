#include "routes.hpp"

#include <charconv>

namespace egress {

Result<Prefix> parse_prefix(std::string_view text) {
    const auto slash = text.find('/');
    auto addr = parse_address(text.substr(0, slash));
    if (!addr) return Error{EINVAL, "'" + std::string(text.substr(0, slash)) + "' is not an IP address"};
    const unsigned max = addr->v6 ? 128 : 32;
    unsigned len = max;
    if (slash != std::string_view::npos) {
        const auto s = text.substr(slash + 1);
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), len);
        if (s.empty() || ec != std::errc{} || end != s.data() + s.size() || len > max)
            return Error{EINVAL, "prefix length must be 0-" + std::to_string(max) + ", got '" + std::string(s) + "'"};
    }
    Prefix p{*addr, len};
    p.net.port = 0;
    // Host bits must be zero: compare with the masked network.
    Prefix masked = p;
    for (unsigned bit = len; bit < max; ++bit) masked.net.addr[bit / 8] &= static_cast<std::uint8_t>(~(0x80 >> (bit % 8)));
    if (!(masked.net == p.net))
        return Error{EINVAL, "'" + std::string(text) + "' has host bits set; did you mean " + to_string(masked) + "?"};
    return p;
}

std::string to_string(const Prefix& p) { return address_string(p.net) + "/" + std::to_string(p.len); }

RouteTable::RouteTable(std::vector<Route> routes, std::string default_pool)
    : routes_(std::move(routes)), default_pool_(std::move(default_pool)) {}

const std::string& RouteTable::pool_for(const Endpoint& dest) const {
    const Route* best = nullptr;
    for (const auto& r : routes_) {
        if (!r.dest.contains(dest) || !r.ports.contains(dest.port)) continue;
        if (!best || r.dest.len > best->dest.len ||
            (r.dest.len == best->dest.len && r.ports.size() < best->ports.size()))
            best = &r;
    }
    return best ? best->pool : default_pool_;
}

std::vector<std::pair<std::size_t, std::size_t>> route_conflicts(const std::vector<Route>& routes) {
    std::vector<std::pair<std::size_t, std::size_t>> out;
    for (std::size_t i = 0; i < routes.size(); ++i)
        for (std::size_t j = i + 1; j < routes.size(); ++j) {
            const auto &a = routes[i], &b = routes[j];
            if (a.dest == b.dest && a.ports.overlaps(b.ports) && a.ports.size() == b.ports.size())
                out.emplace_back(i, j);
        }
    return out;
}

}  // namespace egress
