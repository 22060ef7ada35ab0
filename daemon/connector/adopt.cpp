#include "connector/adopt.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cstring>
#include <string>

#include "sockaddr.hpp"

namespace egress {
namespace {

Result<int> int_option(Syscalls& sys, int fd, int level, int name) {
    int v = 0;
    socklen_t len = sizeof v;
    if (auto r = sys.getsockopt(fd, level, name, &v, &len); !r.ok()) return Error{r.err, ""};
    return v;
}

Error failed(const char* what, int err) {
    return Error{err, std::string("cannot inspect the socket: getsockopt(") + what + ") failed: " + errno_name(err)};
}

bool unspecified(const Endpoint& e) {
    for (std::size_t i = 0; i < e.addr_len(); ++i)
        if (e.addr[i]) return false;
    return true;
}

}  // namespace

std::optional<std::uint64_t> netns_cookie(Syscalls& sys, int fd) {
    std::uint64_t cookie = 0;
    socklen_t len = sizeof cookie;
    if (!sys.getsockopt(fd, SOL_SOCKET, kSoNetnsCookie, &cookie, &len).ok() || len != sizeof cookie)
        return std::nullopt;
    return cookie;
}

Result<AdoptedSocket> inspect_adopted(Syscalls& sys, int fd, std::optional<std::uint64_t> own_netns, bool any_netns) {
    // SO_DOMAIN fails with ENOTSOCK on anything but a socket: no fstat needed.
    const auto domain = int_option(sys, fd, SOL_SOCKET, SO_DOMAIN);
    if (!domain && domain.error().code == ENOTSOCK)
        return Error{ENOTSOCK, "the descriptor sent for adoption is not a socket"};
    if (!domain) return failed("SO_DOMAIN", domain.error().code);
    if (*domain != AF_INET && *domain != AF_INET6)
        return Error{EAFNOSUPPORT, "the adopted socket is of family " + std::to_string(*domain) +
                                       ", not AF_INET or AF_INET6"};
    const auto type = int_option(sys, fd, SOL_SOCKET, SO_TYPE);
    if (!type) return failed("SO_TYPE", type.error().code);
    if (*type != SOCK_STREAM && *type != SOCK_DGRAM)
        return Error{EPROTOTYPE, "the adopted socket is of type " + std::to_string(*type) +
                                     ", not SOCK_STREAM or SOCK_DGRAM"};
    const bool udp = *type == SOCK_DGRAM;
    const int want = udp ? IPPROTO_UDP : IPPROTO_TCP;
    const auto protocol = int_option(sys, fd, SOL_SOCKET, SO_PROTOCOL);
    if (!protocol) return failed("SO_PROTOCOL", protocol.error().code);
    if (*protocol != want)
        return Error{EPROTONOSUPPORT, "the adopted socket is of protocol " + std::to_string(*protocol) + ", not " +
                                          (udp ? "IPPROTO_UDP" : "IPPROTO_TCP")};
    if (!udp) {
        // One call tells a fresh socket (CLOSE) from a listening, connecting or connected one.
        tcp_info info{};
        socklen_t len = sizeof info;
        if (auto r = sys.getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len); !r.ok()) return failed("TCP_INFO", r.err);
        switch (info.tcpi_state) {
        case TCP_CLOSE: break;
        case TCP_LISTEN: return Error{EINVAL, "the adopted socket is listening"};
        case TCP_SYN_SENT: return Error{EALREADY, "the adopted socket already has a connect in progress"};
        default: return Error{EISCONN, "the adopted socket is already connected (TCP state " +
                                           std::to_string(info.tcpi_state) + ")"};
        }
        // egressd's loop must never wait inside connect().
        const auto fl = sys.fcntl_getfl(fd);
        if (!fl.ok()) return Error{fl.err, "cannot read the adopted socket's file flags: " + errno_name(fl.err)};
        if (!(fl.value & O_NONBLOCK))
            return Error{EINVAL, "the adopted socket is blocking: set O_NONBLOCK (egressd never changes a program's "
                                 "file flags, and never waits in connect())"};
    }
    if (!any_netns) {
        const auto theirs = netns_cookie(sys, fd);
        if (!own_netns || !theirs)
            return Error{EACCES, "cannot tell the adopted socket's network namespace (SO_NETNS_COOKIE, Linux 5.14)"};
        if (*theirs != *own_netns)
            return Error{EACCES, "the adopted socket belongs to another network namespace than egressd's"};
    }
    AdoptedSocket out;
    out.v6 = *domain == AF_INET6;
    out.transport = udp ? Transport::udp : Transport::tcp;
    SockAddr local;
    local.len = sizeof local.storage;
    if (auto r = sys.getsockname(fd, local.get(), &local.len); !r.ok())
        return Error{r.err, "cannot read the adopted socket's local address: " + errno_name(r.err)};
    if (auto ep = from_sockaddr(local.get(), local.len); ep && (ep->port || !unspecified(*ep))) out.bound = *ep;
    return out;
}

}  // namespace egress
