// The kernel's own socket table, read through NETLINK_SOCK_DIAG.
#pragma once

#include <cstdint>
#include <vector>

#include "endpoint.hpp"
#include "result.hpp"
#include "sys/syscalls.hpp"

namespace egress {

// For each of `sources`, how many TCP sockets in this network namespace,
// from any process, are established (or connecting) from it to `dest`
// (address and port). The kernel filters by destination; the dump is
// synchronous but short.
Result<std::vector<std::uint32_t>> count_connections(Syscalls& sys, const std::vector<Endpoint>& sources,
                                                     const Endpoint& dest);

// For each of `sources` of the family (`v6`), how many UDP sockets in this
// network namespace, from any process, are bound to it: the UDP ports it has
// taken, which every destination shares.
Result<std::vector<std::uint32_t>> count_udp_ports(Syscalls& sys, const std::vector<Endpoint>& sources, bool v6);

}  // namespace egress
