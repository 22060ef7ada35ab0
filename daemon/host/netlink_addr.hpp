// The host's own addresses as the kernel reports them on a NETLINK_ROUTE
// socket (RTM_NEWADDR, RTM_DELADDR, the RTM_GETADDR dump), and the table
// they build. Pure: bytes in, changes out; the socket lives in
// sys/address_watch.hpp.
#pragma once

#include <array>
#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "endpoint.hpp"

namespace egress {

// One address that came (RTM_NEWADDR) or went (RTM_DELADDR) on an interface.
struct AddrChange {
    bool added = true;
    std::uint32_t ifindex = 0;
    Endpoint address;  // port 0
    bool operator==(const AddrChange&) const = default;
};

// What one datagram from the socket says, in order. The local address of a
// message is IFA_LOCAL when present (on a point-to-point IPv4 link
// IFA_ADDRESS is the peer's), else IFA_ADDRESS.
struct AddrMessages {
    std::vector<AddrChange> changes;
    bool done = false;  // NLMSG_DONE: the dump is complete
    int error = 0;      // an NLMSG_ERROR's errno (positive); acks (0) are not reported
    // Messages skipped as malformed or truncated, for the log. Parsing stops at
    // a header that does not fit; an address message with a bad body is
    // skipped and the next one is read.
    std::vector<std::string> problems;
};

AddrMessages parse_addr_messages(std::span<const std::uint8_t> datagram);

// The addresses of this host, per interface: an address held by two
// interfaces stays until both lose it.
class HostAddressTable {
public:
    void apply(const AddrChange& c);
    void clear() { entries_.clear(); }
    // Every distinct address, ports 0.
    std::vector<Endpoint> addresses() const;
    bool operator==(const HostAddressTable&) const = default;

private:
    std::set<std::tuple<bool, std::array<std::uint8_t, 16>, std::uint32_t>> entries_;  // v6, address, ifindex
};

}  // namespace egress
