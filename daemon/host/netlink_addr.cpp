#include "netlink_addr.hpp"

#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <optional>

namespace egress {
namespace {

template <class T>
T read_at(std::span<const std::uint8_t> b, std::size_t at) {
    T v;
    std::memcpy(&v, b.data() + at, sizeof v);
    return v;
}

constexpr std::size_t align4(std::size_t n) { return (n + 3) & ~std::size_t{3}; }

// The body of an RTM_NEWADDR or RTM_DELADDR message (after the nlmsghdr).
std::optional<AddrChange> address_message(std::span<const std::uint8_t> body, bool added, std::string& problem) {
    if (body.size() < sizeof(ifaddrmsg)) {
        problem = "address message shorter than struct ifaddrmsg";
        return std::nullopt;
    }
    const auto ifa = read_at<ifaddrmsg>(body, 0);
    if (ifa.ifa_family != AF_INET && ifa.ifa_family != AF_INET6) return std::nullopt;  // not IP: not ours
    const bool v6 = ifa.ifa_family == AF_INET6;
    const std::size_t alen = v6 ? 16 : 4;
    std::optional<Endpoint> local, address;
    for (std::size_t at = NLMSG_ALIGN(sizeof(ifaddrmsg)); at + sizeof(rtattr) <= body.size();) {
        const auto rta = read_at<rtattr>(body, at);
        if (rta.rta_len < sizeof(rtattr) || at + rta.rta_len > body.size()) {
            problem = "address message with a truncated attribute";
            return std::nullopt;
        }
        if (rta.rta_type == IFA_LOCAL || rta.rta_type == IFA_ADDRESS) {
            if (rta.rta_len - sizeof(rtattr) != alen) {
                problem = "address attribute of " + std::to_string(rta.rta_len - sizeof(rtattr)) + " bytes for " +
                          (v6 ? "IPv6" : "IPv4");
                return std::nullopt;
            }
            Endpoint e;
            e.v6 = v6;
            std::memcpy(e.addr.data(), body.data() + at + RTA_LENGTH(0), alen);
            (rta.rta_type == IFA_LOCAL ? local : address) = e;
        }
        at += align4(rta.rta_len);
    }
    if (!local && !address) {
        problem = "address message without IFA_LOCAL or IFA_ADDRESS";
        return std::nullopt;
    }
    return AddrChange{added, ifa.ifa_index, local ? *local : *address};
}

}  // namespace

AddrMessages parse_addr_messages(std::span<const std::uint8_t> b) {
    AddrMessages out;
    for (std::size_t at = 0; at < b.size();) {
        if (b.size() - at < sizeof(nlmsghdr)) {
            out.problems.push_back("truncated netlink header");
            break;
        }
        const auto h = read_at<nlmsghdr>(b, at);
        if (h.nlmsg_len < sizeof(nlmsghdr) || h.nlmsg_len > b.size() - at) {
            out.problems.push_back("netlink message length " + std::to_string(h.nlmsg_len) + " does not fit the " +
                                   std::to_string(b.size() - at) + " bytes left");
            break;
        }
        const auto body = b.subspan(at + NLMSG_HDRLEN, h.nlmsg_len - NLMSG_HDRLEN);  // nlmsg_len >= the header
        std::string problem;
        switch (h.nlmsg_type) {
        case NLMSG_DONE: out.done = true; break;
        case NLMSG_ERROR:
            if (body.size() < sizeof(int)) problem = "NLMSG_ERROR without an error code";
            else if (const auto e = read_at<int>(body, 0); e != 0) out.error = -e;
            break;
        case RTM_NEWADDR:
        case RTM_DELADDR:
            if (auto c = address_message(body, h.nlmsg_type == RTM_NEWADDR, problem)) out.changes.push_back(*c);
            break;
        default: break;  // NLMSG_NOOP and anything else: nothing about addresses
        }
        if (!problem.empty()) out.problems.push_back(problem);
        at += std::min<std::size_t>(NLMSG_ALIGN(h.nlmsg_len), b.size() - at);
    }
    return out;
}

void HostAddressTable::apply(const AddrChange& c) {
    const auto key = std::make_tuple(c.address.v6, c.address.addr, c.ifindex);
    if (c.added) entries_.insert(key);
    else entries_.erase(key);
}

std::vector<Endpoint> HostAddressTable::addresses() const {
    std::vector<Endpoint> out;
    for (const auto& [v6, addr, ifindex] : entries_) {
        Endpoint e;
        e.v6 = v6;
        e.addr = addr;
        if (out.empty() || !(out.back() == e)) out.push_back(e);  // sorted by address: duplicates are adjacent
    }
    return out;
}

}  // namespace egress
