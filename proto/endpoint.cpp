#include "endpoint.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

namespace egress {

std::optional<Endpoint> parse_address(std::string_view text, std::uint16_t port) {
    // inet_pton needs a terminated string; an address is never longer than 45 chars.
    if (text.empty() || text.size() > 45) return std::nullopt;
    const std::string s(text);
    Endpoint ep;
    ep.port = port;
    if (inet_pton(AF_INET, s.c_str(), ep.addr.data()) == 1) return ep;
    if (inet_pton(AF_INET6, s.c_str(), ep.addr.data()) == 1) {
        ep.v6 = true;
        return ep;
    }
    return std::nullopt;
}

Result<HostPort> split_host_port(std::string_view text, const char* form) {
    HostPort hp;
    std::string_view port_text;
    hp.bracketed = !text.empty() && text.front() == '[';
    if (hp.bracketed) {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return Error{EINVAL, "expected [IPV6]:PORT, got '" + std::string(text) + "'"};
        hp.host = text.substr(1, close - 1);
        port_text = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos)
            return Error{EINVAL, std::string("expected ") + form + ", got '" + std::string(text) + "'"};
        hp.host = text.substr(0, colon);
        port_text = text.substr(colon + 1);
        if (hp.host.find(':') != std::string_view::npos)
            return Error{EINVAL, "an IPv6 address needs brackets: [" + std::string(hp.host) + "]:" +
                                     std::string(port_text)};
    }
    unsigned port = 0;
    const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec != std::errc{} || end != port_text.data() + port_text.size() ||
        port == 0 || port > 65535)
        return Error{EINVAL, "port must be 1-65535, got '" + std::string(port_text) + "'"};
    hp.port = static_cast<std::uint16_t>(port);
    return hp;
}

Result<Endpoint> parse_endpoint(std::string_view text) {
    auto hp = split_host_port(text, "ADDRESS:PORT");
    if (!hp) return hp.error();
    auto ep = parse_address(hp->host, hp->port);
    if (!ep)
        return Error{EINVAL,
                     "'" + std::string(hp->host) + "' is not an IP address (host names are not supported here)"};
    return *ep;
}

Endpoint unmap_ipv4(const Endpoint& ep) {
    static constexpr std::array<std::uint8_t, 12> kMapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    if (!ep.v6 || !std::equal(kMapped.begin(), kMapped.end(), ep.addr.begin())) return ep;
    Endpoint v4;
    v4.port = ep.port;
    std::copy(ep.addr.begin() + 12, ep.addr.end(), v4.addr.begin());
    return v4;
}

std::string address_string(const Endpoint& ep) {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(ep.v6 ? AF_INET6 : AF_INET, ep.addr.data(), buf, sizeof buf);
    return buf;
}

std::string endpoint_string(const Endpoint& ep) {
    const auto port = std::to_string(ep.port);
    return ep.v6 ? "[" + address_string(ep) + "]:" + port : address_string(ep) + ":" + port;
}

const char* to_string(Transport t) { return t == Transport::udp ? "udp" : "tcp"; }

}  // namespace egress
