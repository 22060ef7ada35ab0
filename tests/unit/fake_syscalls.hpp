// A scripted egress::Syscalls for unit tests: socket() hands out real
// eventfds (so that Asio can register and wait on them; the test decides
// whether they are writable); the datagram calls on a client connection
// (recvmmsg, sendmmsg, sendmsg, poll) reach the kernel on the test's real
// socket unless a script says otherwise; every other call answers from a
// script. Every call is recorded with its arguments.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string_view>
#include <vector>

#include "endpoint.hpp"
#include "pool/port_window.hpp"
#include "sockaddr.hpp"
#include "sys/syscalls.hpp"

namespace egress::test {

constexpr int kIpBindAddressNoPort = 24;  // IP_BIND_ADDRESS_NO_PORT, Linux 4.2
constexpr int kIpLocalPortRange = 51;     // IP_LOCAL_PORT_RANGE, Linux 6.3

// Descriptors open in this process right now.
inline std::size_t open_fds() {
    std::size_t n = 0;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        while (const dirent* e = ::readdir(d))
            if (e->d_name[0] != '.') ++n;
        ::closedir(d);
    }
    return n;
}

inline Endpoint ip(std::string_view text) {
    auto a = parse_address(text);
    EXPECT_TRUE(a) << text;
    return a.value_or(Endpoint{});
}

// What the fake reports about a program's socket handed in for adoption.
struct SocketFacts {
    int domain = AF_INET;
    int type = SOCK_STREAM;
    int protocol = IPPROTO_TCP;
    std::uint8_t state = TCP_CLOSE;  // TCP_INFO's tcpi_state
    std::uint64_t netns = 1;         // SO_NETNS_COOKIE
    std::optional<Endpoint> bound;   // what the program bound
};

struct Call {
    enum Kind {
        socket, setsockopt, getsockopt, bind, connect, getsockname, getpeername, fcntl_getfl, fcntl_setfl,
        recvmmsg, sendmmsg, sendmsg, poll
    };
    Kind kind;
    int fd = -1;
    int domain = 0;                // socket
    int level = 0, name = 0;       // setsockopt, getsockopt
    std::uint32_t value = 0;       // setsockopt: the int or uint32 set; fcntl_setfl: the flags; socket: the type
    std::optional<Endpoint> addr;  // bind, connect
    unsigned count = 0;            // recvmmsg, sendmmsg: messages asked for; poll: descriptors
    SysResult result;              // recvmmsg, sendmmsg, sendmsg, poll: what the call returned
    std::vector<int> fds;          // sendmmsg, sendmsg: per message, the descriptor attached (-1: none)
};

class FakeSyscalls final : public Syscalls {
public:
    // Scripts: each call takes the front entry; when empty, the default.
    std::deque<int> socket_errs;       // 0: a new descriptor (default)
    std::deque<int> bind_errs;         // 0: bound (default)
    std::deque<int> connect_results;   // 0: connected at once; default `connect_default`
    int connect_default = EINPROGRESS;
    std::deque<int> peer_errs;         // getpeername: 0 connected (default), else its errno
    std::map<int, int> setsockopt_errs;  // by option name, every time
    int getsockname_err = 0;
    int so_error = 0;                  // what SO_ERROR reads
    bool writable = true;              // new descriptors are ready for writing at once
    std::function<int()> substitute_socket;  // when set, socket() returns what this makes
    // Client connections: 0 (default) lets the call reach the kernel, else it
    // fails with this errno before moving anything.
    std::deque<int> recvmmsg_errs;
    std::deque<int> sendmmsg_errs;
    std::deque<int> sendmsg_errs;
    // Set: a message carrying a descriptor is refused with this errno, as the
    // kernel refuses one its receiver cannot take (ETOOMANYREFS): sendmmsg
    // sends the messages before it, and fails when it is the first.
    int descriptor_err = 0;
    // The local port getsockname reports, given the socket's
    // IP_LOCAL_PORT_RANGE and the port it bound (0 if none).
    std::function<std::uint16_t(const std::optional<PortRange>&, std::uint16_t)> local_port =
        [](const std::optional<PortRange>& r, std::uint16_t bound) -> std::uint16_t {
        return bound ? bound : r ? r->lo : 45678;
    };

    // Programs' sockets (adopt mode), by descriptor; any other descriptor
    // socket() did not make is not a socket (ENOTSOCK), like a pipe.
    std::map<int, SocketFacts> adopted;
    std::uint8_t state_after_connect = TCP_ESTABLISHED;  // an adopted socket's state once connecting
    // An eventfd standing in for a program's socket; `nonblocking` sets O_NONBLOCK.
    int adopt_socket(SocketFacts facts = {}, bool nonblocking = true) {
        const int fd = ::eventfd(0, EFD_CLOEXEC | (nonblocking ? EFD_NONBLOCK : 0));
        EXPECT_GE(fd, 0);
        if (!writable) {
            const std::uint64_t full = 0xFFFFFFFFFFFFFFFEull;
            EXPECT_EQ(::write(fd, &full, sizeof full), static_cast<ssize_t>(sizeof full));
        }
        state_[fd] = State{};
        state_[fd].bound = facts.bound;
        adopted[fd] = facts;
        return fd;
    }

    std::vector<Call> calls;
    std::vector<int> created;               // descriptors handed out by socket()
    std::vector<std::size_t> fds_at_socket;  // open descriptors when each socket() ran

    std::vector<Call> of(Call::Kind k) const {
        std::vector<Call> out;
        for (const auto& c : calls)
            if (c.kind == k) out.push_back(c);
        return out;
    }
    std::vector<Call> options(int name) const {
        std::vector<Call> out;
        for (const auto& c : calls)
            if (c.kind == Call::setsockopt && c.name == name) out.push_back(c);
        return out;
    }
    std::vector<Call::Kind> kinds() const {
        std::vector<Call::Kind> out;
        for (const auto& c : calls) out.push_back(c.kind);
        return out;
    }

    SysResult socket(int domain, int type, int protocol) override {
        calls.push_back({Call::socket, -1, domain});
        calls.back().value = static_cast<std::uint32_t>(type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC));
        fds_at_socket.push_back(open_fds());
        EXPECT_TRUE(type == (SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC) ||
                    type == (SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC))
            << type;
        EXPECT_EQ(protocol, 0);
        if (const int e = pop(socket_errs, 0)) return {-1, e};
        const int fd = substitute_socket ? substitute_socket() : ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fd < 0) return {-1, errno};
        if (!writable) {
            // An eventfd at its maximum count is not writable until read.
            const std::uint64_t full = 0xFFFFFFFFFFFFFFFEull;
            EXPECT_EQ(::write(fd, &full, sizeof full), static_cast<ssize_t>(sizeof full));
        }
        calls.back().fd = fd;
        created.push_back(fd);
        state_[fd] = State{};
        return {fd, 0};
    }
    SysResult setsockopt(int fd, int level, int name, const void* value, socklen_t len) override {
        Call c{Call::setsockopt, fd, 0, level, name};
        if (len == sizeof(std::uint32_t)) std::memcpy(&c.value, value, sizeof c.value);
        calls.push_back(c);
        if (const auto it = setsockopt_errs.find(name); it != setsockopt_errs.end()) return {-1, it->second};
        if (level == IPPROTO_IP && name == kIpLocalPortRange)
            state_[fd].range = PortRange{static_cast<std::uint16_t>(c.value & 0xFFFF),
                                         static_cast<std::uint16_t>(c.value >> 16)};
        return {0, 0};
    }
    SysResult getsockopt(int fd, int level, int name, void* value, socklen_t* len) override {
        calls.push_back({Call::getsockopt, fd, 0, level, name});
        if (const auto a = adopted.find(fd); a != adopted.end()) {
            const auto& f = a->second;
            if (level == SOL_SOCKET && (name == SO_DOMAIN || name == SO_TYPE || name == SO_PROTOCOL)) {
                const int v = name == SO_DOMAIN ? f.domain : name == SO_TYPE ? f.type : f.protocol;
                std::memcpy(value, &v, sizeof v);
                *len = sizeof v;
                return {0, 0};
            }
            if (level == SOL_SOCKET && name == 71 /* SO_NETNS_COOKIE */) {
                std::memcpy(value, &f.netns, sizeof f.netns);
                *len = sizeof f.netns;
                return {0, 0};
            }
            if (level == IPPROTO_TCP && name == TCP_INFO) {
                tcp_info info{};
                info.tcpi_state = f.state;
                std::memcpy(value, &info, std::min<socklen_t>(*len, sizeof info));
                return {0, 0};
            }
        } else if (!state_.count(fd)) {
            return {-1, ENOTSOCK};
        }
        if (level == SOL_SOCKET && name == SO_ERROR && *len >= sizeof(int)) {
            std::memcpy(value, &so_error, sizeof(int));
            *len = sizeof(int);
            return {0, 0};
        }
        return {-1, ENOPROTOOPT};
    }
    SysResult bind(int fd, const sockaddr* addr, socklen_t len) override {
        calls.push_back({Call::bind, fd, 0, 0, 0, 0, from_sockaddr(addr, len)});
        if (const int e = pop(bind_errs, 0)) return {-1, e};
        state_[fd].bound = from_sockaddr(addr, len);
        return {0, 0};
    }
    SysResult connect(int fd, const sockaddr* addr, socklen_t len) override {
        calls.push_back({Call::connect, fd, 0, 0, 0, 0, from_sockaddr(addr, len)});
        const int r = pop(connect_results, connect_default);
        if (const auto a = adopted.find(fd); a != adopted.end() && (r == 0 || r == EINPROGRESS))
            a->second.state = r == 0 ? std::uint8_t{TCP_ESTABLISHED} : state_after_connect;
        if (r == 0 || r == EINPROGRESS || !adopted.count(fd)) state_[fd].dest = from_sockaddr(addr, len);
        return r ? SysResult{-1, r} : SysResult{0, 0};
    }
    SysResult getsockname(int fd, sockaddr* addr, socklen_t* len) override {
        calls.push_back({Call::getsockname, fd});
        if (getsockname_err) return {-1, getsockname_err};
        const auto& s = state_[fd];
        if (const auto a = adopted.find(fd); a != adopted.end() && !s.dest) {
            // Not connecting yet: what the program bound, or the unspecified address.
            Endpoint e = s.bound.value_or(Endpoint{});
            e.v6 = s.bound ? s.bound->v6 : a->second.domain == AF_INET6;
            return fill(e, addr, len);
        }
        Endpoint local = s.bound.value_or(Endpoint{});
        local.v6 = s.dest && s.dest->v6;
        if (local.addr == Endpoint{}.addr) local.addr = ip(local.v6 ? "2001:db8:ff::1" : "198.51.100.1").addr;
        local.port = local_port(s.range, s.bound ? s.bound->port : 0);
        return fill(local, addr, len);
    }
    SysResult getpeername(int fd, sockaddr* addr, socklen_t* len) override {
        calls.push_back({Call::getpeername, fd});
        if (const int e = pop(peer_errs, 0)) return {-1, e};
        const auto& s = state_[fd];
        if (!s.dest) return {-1, ENOTCONN};
        return fill(*s.dest, addr, len);
    }
    SysResult fcntl_getfl(int fd) override {
        calls.push_back({Call::fcntl_getfl, fd});
        const int r = ::fcntl(fd, F_GETFL);
        return r < 0 ? SysResult{-1, errno} : SysResult{r, 0};
    }
    SysResult fcntl_setfl(int fd, int flags) override {
        calls.push_back({Call::fcntl_setfl, fd, 0, 0, 0, static_cast<std::uint32_t>(flags)});
        return ::fcntl(fd, F_SETFL, flags) < 0 ? SysResult{-1, errno} : SysResult{0, 0};
    }
    SysResult recvmmsg(int fd, mmsghdr* msgs, unsigned count, int flags) override {
        Call c{Call::recvmmsg, fd};
        c.count = count;
        if (const int e = pop(recvmmsg_errs, 0)) c.result = {-1, e};
        else c.result = kernel(::recvmmsg(fd, msgs, count, flags, nullptr));
        calls.push_back(c);
        return c.result;
    }
    SysResult sendmmsg(int fd, mmsghdr* msgs, unsigned count, int flags) override {
        Call c{Call::sendmmsg, fd};
        c.count = count;
        for (unsigned i = 0; i < count; ++i) c.fds.push_back(attached_fd(msgs[i].msg_hdr));
        // With descriptor_err, only the messages before the first descriptor go.
        const auto refused = std::find_if(c.fds.begin(), c.fds.end(), [](int d) { return d >= 0; });
        const auto sendable = descriptor_err ? static_cast<unsigned>(refused - c.fds.begin()) : count;
        if (const int e = pop(sendmmsg_errs, 0)) c.result = {-1, e};
        else if (sendable == 0) c.result = {-1, descriptor_err};
        else c.result = kernel(::sendmmsg(fd, msgs, sendable, flags));
        calls.push_back(c);
        return c.result;
    }
    SysResult sendmsg(int fd, const msghdr* msg, int flags) override {
        Call c{Call::sendmsg, fd};
        c.count = 1;
        c.fds.push_back(attached_fd(*msg));
        if (const int e = pop(sendmsg_errs, 0)) c.result = {-1, e};
        else if (descriptor_err && c.fds.front() >= 0) c.result = {-1, descriptor_err};
        else c.result = kernel(::sendmsg(fd, msg, flags));
        calls.push_back(c);
        return c.result;
    }
    SysResult poll(pollfd* fds, nfds_t count, int timeout_ms) override {
        Call c{Call::poll, count ? fds[0].fd : -1};
        c.count = static_cast<unsigned>(count);
        c.result = kernel(::poll(fds, count, timeout_ms));
        calls.push_back(c);
        return c.result;
    }
    // Not used by the connector or a session.
    SysResult listen(int, int) override { return unexpected("listen"); }
    SysResult accept4(int, int) override { return unexpected("accept4"); }
    SysResult recvmsg(int, msghdr*, int) override { return unexpected("recvmsg"); }
    SysResult shutdown(int, int) override { return unexpected("shutdown"); }

private:
    struct State {
        std::optional<PortRange> range;
        std::optional<Endpoint> bound;
        std::optional<Endpoint> dest;
    };
    std::map<int, State> state_;

    static int pop(std::deque<int>& q, int dflt) {
        if (q.empty()) return dflt;
        const int v = q.front();
        q.pop_front();
        return v;
    }
    static SysResult fill(const Endpoint& e, sockaddr* addr, socklen_t* len) {
        const auto sa = to_sockaddr(e);
        std::memcpy(addr, sa.get(), std::min<socklen_t>(*len, sa.len));
        *len = sa.len;
        return {0, 0};
    }
    static SysResult unexpected(const char* what) {
        ADD_FAILURE() << "unexpected call: " << what;
        return {-1, ENOSYS};
    }
    static SysResult kernel(long r) { return r < 0 ? SysResult{-1, errno} : SysResult{r, 0}; }
    // The descriptor a message carries (SCM_RIGHTS), or -1.
    static int attached_fd(const msghdr& m) {
        for (const cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(const_cast<msghdr*>(&m), const_cast<cmsghdr*>(c)))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
                return fd;
            }
        return -1;
    }
};

}  // namespace egress::test
