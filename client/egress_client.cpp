#include "egress_client.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <vector>

#include "codec.hpp"

namespace egress {
namespace {

constexpr std::size_t kMaxFds = 8;  // control space; extras are closed at once

// One reply datagram and the descriptors it carried.
struct Received {
    proto::Reply reply;
    std::deque<UniqueFd> fds;
};

Result<Received> receive_raw(int sock, int flags, std::size_t capacity) {
    std::vector<std::uint8_t> buf(capacity);
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    do n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == ECONNRESET) {
        // The kernel reports a reset before the datagrams still queued, such as
        // the refusal egressd sent before closing: read what is left first.
        msg.msg_controllen = sizeof control;
        do n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0) errno = ECONNRESET;
    }
    if (n < 0) return Error{errno, std::string("receiving from egressd failed: ") + std::strerror(errno)};
    if (n == 0) return Error{ECONNRESET, "egressd closed the connection"};

    Received r;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        for (std::size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++k) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof fd);
            r.fds.emplace_back(fd);
        }
    }
    if (msg.msg_flags & MSG_TRUNC) return Error{EMSGSIZE, "a reply from egressd was larger than expected"};
    auto reply = proto::decode_reply(proto::ByteView(buf.data(), static_cast<std::size_t>(n)));
    if (!reply) return Error{EPROTO, "egressd sent a reply this client cannot read: " + reply.error().message};
    r.reply = std::move(*reply);
    return r;
}

Result<Completion> to_completion(Received r) {
    auto& reply = r.reply;
    Completion c;
    c.request_id = reply.header.request_id;
    if (auto* e = std::get_if<proto::ErrorReply>(&reply.body)) {
        c.result = Error{static_cast<int>(e->status), e->message};
        return c;
    }
    if (std::holds_alternative<proto::StatusReply>(reply.body))
        return Error{EPROTO, "egressd answered a STATUS this client did not send"};
    auto& rep = std::get<proto::ConnectReply>(reply.body);
    if (rep.status != 0) {
        c.result = Error{static_cast<int>(rep.status), rep.message};
        return c;
    }
    if (r.fds.size() != 1 || !(reply.header.flags & EGRESS_HDR_FLAG_FD_ATTACHED))
        return Error{EPROTO, "egressd reported success with " + std::to_string(r.fds.size()) + " descriptors attached"};
    c.result = Connected{std::move(r.fds.front()), std::move(rep)};
    return c;
}

Result<Completion> receive(int sock, int flags = 0) {
    auto r = receive_raw(sock, flags, EGRESS_MAX_DATAGRAM);
    if (!r) return r.error();
    return to_completion(std::move(*r));
}

}  // namespace

std::string default_client_socket_path() {
    if (const char* p = std::getenv("EGRESS_SOCKET"); p && *p) return p;
    return "/run/egressd/egressd.sock";
}

Result<Client> Client::open(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path) return Error{ENAMETOOLONG, "socket path '" + path + "' is too long"};
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!fd) return Error{errno, std::string("socket(AF_UNIX, SOCK_SEQPACKET): ") + std::strerror(errno)};
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
        const int e = errno;
        return Error{e, "cannot reach egressd at " + path + ": " + std::strerror(e) +
                            (e == ENOENT || e == ECONNREFUSED ? " (is egressd running?)" : "")};
    }
    return Client(std::move(fd));
}

Result<std::uint64_t> Client::submit(const Endpoint& dest, const ConnectOptions& o) {
    Destination d;
    d.address = dest;
    d.port = dest.port;
    return submit(d, o);
}

Result<std::uint64_t> Client::submit(const Destination& dest, const ConnectOptions& o) {
    proto::ConnectRequest req;
    if (dest.address) {
        req.dest = *dest.address;
    } else {
        req.host = dest.host;
        req.dest.port = dest.port;
    }
    req.timeout_ms = o.timeout_ms;
    req.flags = (o.nodelay ? EGRESS_CONNECT_TCP_NODELAY : 0u) | (o.blocking ? EGRESS_CONNECT_BLOCKING : 0u);
    req.pool = o.pool;
    req.transport = o.transport;
    const auto id = next_id_++;
    const auto bytes = proto::encode_connect(id, req);
    for (;;) {
        const auto n = ::send(sock_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n >= 0) return id;
        if (errno == EINTR) continue;
        const int e = errno;
        if (e == EPIPE || e == ECONNRESET) {
            // egressd may have said why it closed (a refusal, request id 0).
            auto last = receive(sock_.get(), MSG_DONTWAIT);
            if (last && last->request_id == 0 && !last->result) return last->result.error();
        }
        return Error{e, std::string("sending to egressd failed: ") + std::strerror(e)};
    }
}

Result<proto::ConnectReply> Client::adopt(int fd, const Endpoint& dest, const ConnectOptions& o) {
    proto::ConnectRequest req;
    req.dest = dest;
    req.timeout_ms = o.timeout_ms;
    req.flags = EGRESS_CONNECT_ADOPT | (o.nodelay ? EGRESS_CONNECT_TCP_NODELAY : 0u) |
                (o.blocking ? EGRESS_CONNECT_BLOCKING : 0u);
    req.pool = o.pool;
    req.transport = o.transport;
    const auto id = next_id_++;
    const auto bytes = proto::encode_connect(id, req);
    iovec iov{const_cast<std::uint8_t*>(bytes.data()), bytes.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    ssize_t n;
    do n = ::sendmsg(sock_.get(), &msg, MSG_NOSIGNAL);  // the kernel passes a reference: fd stays ours
    while (n < 0 && errno == EINTR);
    if (n < 0) return Error{errno, std::string("sending to egressd failed: ") + std::strerror(errno)};
    for (;;) {
        auto r = receive_raw(sock_.get(), 0, EGRESS_MAX_DATAGRAM);
        if (!r) return r.error();
        const auto rid = r->reply.header.request_id;
        if (auto* rep = std::get_if<proto::ConnectReply>(&r->reply.body); rep && rid == id) {
            if (!r->fds.empty()) return Error{EPROTO, "egressd attached a descriptor to an adopt-mode reply"};
            return std::move(*rep);
        }
        if (auto* e = std::get_if<proto::ErrorReply>(&r->reply.body); e && (rid == id || rid == 0))
            return Error{static_cast<int>(e->status), e->message};
        auto other = to_completion(std::move(*r));  // a reply to an earlier CONNECT: keep it for next()
        if (!other) return other.error();
        parked_.push_back(std::move(*other));
    }
}

Result<std::string> Client::status() {
    const auto id = next_id_++;
    const auto bytes = proto::encode_status(id);
    if (::send(sock_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL) < 0)
        return Error{errno, std::string("sending to egressd failed: ") + std::strerror(errno)};
    for (;;) {
        // A status reply may exceed the usual 4 KiB: size the buffer first.
        ssize_t size;
        do size = ::recv(sock_.get(), nullptr, 0, MSG_PEEK | MSG_TRUNC);
        while (size < 0 && errno == EINTR);
        if (size < 0) return Error{errno, std::string("receiving from egressd failed: ") + std::strerror(errno)};
        const auto capacity = std::max<std::size_t>(static_cast<std::size_t>(size), EGRESS_MAX_DATAGRAM);
        if (size == 0) return Error{ECONNRESET, "egressd closed the connection"};
        auto r = receive_raw(sock_.get(), 0, capacity);
        if (!r) return r.error();
        const auto rid = r->reply.header.request_id;
        if (auto* st = std::get_if<proto::StatusReply>(&r->reply.body); st && rid == id) {
            if (st->status != 0) return Error{static_cast<int>(st->status), st->message};
            return st->json;
        }
        if (auto* e = std::get_if<proto::ErrorReply>(&r->reply.body); e && (rid == id || rid == 0))
            return Error{static_cast<int>(e->status), e->message};
        // A reply to an earlier CONNECT: keep it for next().
        auto c = to_completion(std::move(*r));
        if (!c) return c.error();
        parked_.push_back(std::move(*c));
    }
}

Result<Completion> Client::next() {
    if (!parked_.empty()) {
        auto c = std::move(parked_.front());
        parked_.pop_front();
        return c;
    }
    return receive(sock_.get());
}

Result<Connected> Client::connect(const Endpoint& dest, const ConnectOptions& o) {
    Destination d;
    d.address = dest;
    d.port = dest.port;
    return connect(d, o);
}

Result<Connected> Client::connect(const Destination& dest, const ConnectOptions& o) {
    auto id = submit(dest, o);
    if (!id) return id.error();
    for (;;) {
        auto c = receive(sock_.get());
        if (!c) return c.error();
        // Id 0 answers no request: egressd refused the connection itself.
        if (c->request_id == *id || c->request_id == 0) return std::move(c->result);
        parked_.push_back(std::move(*c));
    }
}

}  // namespace egress
