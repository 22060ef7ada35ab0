#include "kernel.hpp"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/utsname.h>

#include <cstdio>
#include <fstream>

#include "sockaddr.hpp"
#include "unique_fd.hpp"

#ifndef IP_LOCAL_PORT_RANGE
#define IP_LOCAL_PORT_RANGE 51
#endif

namespace egress {

KernelInfo probe_kernel(Syscalls& sys) {
    KernelInfo k;
    utsname u{};
    if (uname(&u) == 0) {
        k.release = u.release;
        std::sscanf(u.release, "%d.%d", &k.major, &k.minor);
    }
    if (const auto s = sys.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); s.ok()) {
        const UniqueFd owned(static_cast<int>(s.value));
        const std::uint32_t probe = encode_local_port_range(PortRange{40000, 40001});
        k.local_port_range = sys.setsockopt(owned.get(), IPPROTO_IP, IP_LOCAL_PORT_RANGE, &probe, sizeof probe).ok();
    }
    std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
    unsigned lo = 0, hi = 0;
    if (in >> lo >> hi && lo >= 1 && lo <= hi && hi <= 65535)
        k.ephemeral = PortRange{static_cast<std::uint16_t>(lo), static_cast<std::uint16_t>(hi)};
    return k;
}

AutoChoice resolve_auto(const KernelInfo& k) {
    if (!k.local_port_range)
        return {PortStrategy::kernel_default,
                "kernel " + k.release + " lacks IP_LOCAL_PORT_RANGE (Linux 6.3+): plain connect"};
    if (k.major > 6 || (k.major == 6 && k.minor >= 8))
        return {PortStrategy::kernel_range, "kernel " + k.release +
                                                " >= 6.8 searches a per-socket range in one contiguous scan: "
                                                "the whole range, no parity preference"};
    return {PortStrategy::window,
            "kernel " + k.release + " < 6.8 prefers one port parity: small random windows avoid the slow half"};
}

std::vector<Endpoint> local_addresses() {
    std::vector<Endpoint> out;
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0) return out;
    for (auto* i = list; i; i = i->ifa_next) {
        if (!i->ifa_addr) continue;
        const auto len = i->ifa_addr->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
        if (auto ep = from_sockaddr(i->ifa_addr, static_cast<socklen_t>(len))) {
            ep->port = 0;
            out.push_back(*ep);
        }
    }
    freeifaddrs(list);
    return out;
}

}  // namespace egress
