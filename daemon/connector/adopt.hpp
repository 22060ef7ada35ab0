// Adopt mode: the checks egressd makes on a socket a client sends it, before
// touching it (PROTOCOL.md section 6a). Every probe goes through Syscalls and
// none changes the socket.
#pragma once

#include <cstdint>
#include <optional>

#include "endpoint.hpp"
#include "result.hpp"
#include "sys/syscalls.hpp"

namespace egress {

// SO_NETNS_COOKIE (Linux 5.14): a u64 naming a socket's network namespace.
inline constexpr int kSoNetnsCookie = 71;

// What egressd learns of an adopted socket that passed every check.
struct AdoptedSocket {
    bool v6 = false;                // AF_INET6 (else AF_INET)
    Transport transport = Transport::tcp;  // SOCK_STREAM/IPPROTO_TCP or SOCK_DGRAM/IPPROTO_UDP
    std::optional<Endpoint> bound;  // what the program bound (an address, a port or both); unset: nothing
};

// Checks, in this order, that `fd` is a socket (ENOTSOCK), AF_INET or
// AF_INET6 (EAFNOSUPPORT), SOCK_STREAM or SOCK_DGRAM (EPROTOTYPE), of
// protocol IPPROTO_TCP or IPPROTO_UDP to match (EPROTONOSUPPORT), and, for
// TCP, not listening (EINVAL), neither connected (EISCONN) nor connecting
// (EALREADY), and non-blocking (EINVAL); then, unless `any_netns`, that it
// lives in the network namespace whose cookie is `own_netns` (EACCES; an
// unknown own cookie fails closed). A UDP socket may be blocking (its
// connect() never waits) and already connected (connect() changes its peer,
// as the kernel's does). The message says what is wrong. `fd` stays the
// caller's.
Result<AdoptedSocket> inspect_adopted(Syscalls& sys, int fd, std::optional<std::uint64_t> own_netns, bool any_netns);

// The cookie of the network namespace `fd` lives in; nullopt when the kernel
// cannot say (before 5.14).
std::optional<std::uint64_t> netns_cookie(Syscalls& sys, int fd);

}  // namespace egress
