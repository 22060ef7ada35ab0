#include "connector.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "egress_proto.h"
#include "sockaddr.hpp"

namespace egress {

PendingConnect::PendingConnect(asio::io_context& io, Syscalls& sys, ConnectPlan plan)
    : sys_(sys), plan_(std::move(plan)), sock_(io), deadline_(io) {}

void PendingConnect::start(Done done) {
    done_ = std::move(done);
    const auto dest = to_sockaddr(plan_.dest);
    auto s = sys_.socket(dest.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (!s.ok()) return fail(s.err, "socket() failed");
    UniqueFd fd(static_cast<int>(s.value));

    if (plan_.flags & EGRESS_CONNECT_TCP_NODELAY) {
        const int one = 1;
        if (auto r = sys_.setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); !r.ok())
            return fail(r.err, "setsockopt(TCP_NODELAY) failed");
    }
    if (plan_.source) {
        const auto src = to_sockaddr(*plan_.source);
        if (auto r = sys_.bind(fd.get(), src.get(), src.len); !r.ok())
            return fail(r.err, "bind() to the source address failed");
    }

    started_ = std::chrono::steady_clock::now();
    const auto r = sys_.connect(fd.get(), dest.get(), dest.len);
    if (!r.ok() && r.err != EINPROGRESS) return fail(r.err, "connect() failed");

    error_code ec;
    sock_.assign(fd.release(), ec);
    if (ec) return fail(ec.value(), "cannot register the socket with the event loop");
    if (r.ok()) {  // connected at once (possible on loopback)
        on_writable({});
        return;
    }
    // Registration is edge-triggered, but EPOLLOUT is armed by this first
    // write wait, so a connect that already completed is still reported.
    sock_.async_wait(asio::posix::stream_descriptor::wait_write,
                     [self = shared_from_this()](const error_code& e) { self->on_writable(e); });
    deadline_.expires_after(plan_.timeout);
    deadline_.async_wait([self = shared_from_this()](const error_code& e) { self->on_deadline(e); });
}

void PendingConnect::on_writable(const error_code& ec) {
    if (finished_ || ec) return;  // cancelled, or the deadline closed the socket
    deadline_.cancel();
    int err = 0;
    socklen_t len = sizeof err;
    if (auto r = sys_.getsockopt(sock_.native_handle(), SOL_SOCKET, SO_ERROR, &err, &len); !r.ok())
        err = r.err;
    if (err) return fail(err, "connect to the destination failed");

    ConnectOutcome out;
    SockAddr local, remote;
    local.len = remote.len = sizeof(sockaddr_storage);
    if (sys_.getsockname(sock_.native_handle(), local.get(), &local.len).ok())
        out.local = from_sockaddr(local.get(), local.len);
    if (auto r = sys_.getpeername(sock_.native_handle(), remote.get(), &remote.len); !r.ok())
        return fail(r.err, "connected socket has no peer");
    out.remote = from_sockaddr(remote.get(), remote.len);
    if (plan_.flags & EGRESS_CONNECT_BLOCKING) {
        const auto fl = sys_.fcntl_getfl(sock_.native_handle());
        if (!fl.ok() || !sys_.fcntl_setfl(sock_.native_handle(), static_cast<int>(fl.value) & ~O_NONBLOCK).ok())
            return fail(fl.ok() ? EIO : fl.err, "cannot switch the socket to blocking mode");
    }
    error_code ignored;
    out.fd = UniqueFd(sock_.release());
    finish(std::move(out));
}

void PendingConnect::on_deadline(const error_code& ec) {
    if (finished_ || ec) return;
    fail(ETIMEDOUT, "no answer from the destination within " + std::to_string(plan_.timeout.count()) + " ms");
}

void PendingConnect::fail(int err, std::string message) {
    ConnectOutcome out;
    out.err = err;
    out.message = std::move(message);
    finish(std::move(out));
}

void PendingConnect::finish(ConnectOutcome out) {
    finished_ = true;
    error_code ignored;
    deadline_.cancel();
    sock_.close(ignored);  // no-op after release(); closes the socket on failure
    out.attempts = 1;
    if (started_ != std::chrono::steady_clock::time_point{})
        out.connect_us = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started_)
                .count());
    if (auto done = std::move(done_)) done(std::move(out));
}

void PendingConnect::cancel() {
    if (finished_) return;
    finished_ = true;
    done_ = nullptr;
    error_code ignored;
    deadline_.cancel();
    sock_.close(ignored);
}

}  // namespace egress
