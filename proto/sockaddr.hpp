// Conversions between Endpoint and the C socket address structs. No syscalls.
#pragma once

#include <sys/socket.h>

#include <optional>

#include "endpoint.hpp"

namespace egress {

struct SockAddr {
    sockaddr_storage storage{};
    socklen_t len = 0;
    const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
    sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
    int family() const { return storage.ss_family; }
};

SockAddr to_sockaddr(const Endpoint& ep);
// nullopt for a family other than AF_INET/AF_INET6.
std::optional<Endpoint> from_sockaddr(const sockaddr* sa, socklen_t len);

}  // namespace egress
