#include "sockaddr.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace egress {

SockAddr to_sockaddr(const Endpoint& ep) {
    SockAddr out;
    if (ep.v6) {
        auto* s = reinterpret_cast<sockaddr_in6*>(&out.storage);
        s->sin6_family = AF_INET6;
        s->sin6_port = htons(ep.port);
        std::memcpy(&s->sin6_addr, ep.addr.data(), 16);
        out.len = sizeof(sockaddr_in6);
    } else {
        auto* s = reinterpret_cast<sockaddr_in*>(&out.storage);
        s->sin_family = AF_INET;
        s->sin_port = htons(ep.port);
        std::memcpy(&s->sin_addr, ep.addr.data(), 4);
        out.len = sizeof(sockaddr_in);
    }
    return out;
}

std::optional<Endpoint> from_sockaddr(const sockaddr* sa, socklen_t len) {
    Endpoint ep;
    if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
        const auto* s = reinterpret_cast<const sockaddr_in*>(sa);
        std::memcpy(ep.addr.data(), &s->sin_addr, 4);
        ep.port = ntohs(s->sin_port);
        return ep;
    }
    if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
        const auto* s = reinterpret_cast<const sockaddr_in6*>(sa);
        ep.v6 = true;
        std::memcpy(ep.addr.data(), &s->sin6_addr, 16);
        ep.port = ntohs(s->sin6_port);
        return ep;
    }
    return std::nullopt;
}

}  // namespace egress
