#include "connector.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "egress_proto.h"
#include "pool/port_window.hpp"

#ifndef IP_LOCAL_PORT_RANGE
#define IP_LOCAL_PORT_RANGE 51  // Linux 6.3; glibc 2.36's headers predate it
#endif
#include "sockaddr.hpp"

namespace egress {

PendingConnect::PendingConnect(asio::io_context& io, Syscalls& sys, Random& random, ConnectPlan plan,
                               std::shared_ptr<FairQueue::Lane> lane)
    : sys_(sys), random_(random), plan_(std::move(plan)), lane_(std::move(lane)), adopt_(static_cast<bool>(plan_.adopted)),
      udp_(plan_.transport == Transport::udp), io_(io) {
    // The kernel's UDP port search walks its whole hash table when few ports
    // are free, however small the range: a full window costs a full walk,
    // and each retry another (egress-bench storm --transport udp: 9.7x-28x
    // slower than one search of the whole range, tests/bench/README.md). A
    // window pool's UDP connects search its range in one go instead.
    if (udp_ && plan_.policy.strategy == PortStrategy::window) plan_.policy.strategy = PortStrategy::kernel_range;
}

Endpoint PendingConnect::on_socket(const Endpoint& e) const {
    if (!adopt_ || !plan_.adopted_v6 || e.v6) return e;
    Endpoint mapped;
    mapped.v6 = true;
    mapped.port = e.port;
    mapped.addr[10] = mapped.addr[11] = 0xFF;
    std::copy(e.addr.begin(), e.addr.begin() + 4, mapped.addr.begin() + 12);
    return mapped;
}

void PendingConnect::in_turn(void (PendingConnect::*step)(const error_code&), const error_code& ec) {
    if (finished_ || ec) return;  // nothing to do: no need to wait for a turn
    if (!lane_) return (this->*step)(ec);
    lane_->run_or_post([self = shared_from_this(), step, ec] {
        ((*self).*step)(ec);
        return 1U;
    });
}

void PendingConnect::wait_writable() {
    wait_->sock.async_wait(asio::posix::stream_descriptor::wait_write,
                     [self = shared_from_this()](const error_code& e) { self->in_turn(&PendingConnect::on_writable, e); });
}

void PendingConnect::start(Done done, Done in_progress) {
    done_ = std::move(done);
    in_progress_ = std::move(in_progress);
    started_ = std::chrono::steady_clock::now();
    AttemptPlan tries(plan_.policy, plan_.sources.size());
    int err = 0;
    std::string what;
    // Port exhaustion shows at once, inside connect(): retry synchronously.
    // attempt_ keeps the last try after the loop: exhaustion is charged to
    // the source that ran out last.
    while (auto next = tries.next(random_())) {
        attempt_ = next;
        ++attempts_;
        if (attempt_->retry_on_source) ++retries_;
        err = try_once(*attempt_, what);
        if (err == 0) return;
        if (!ports_exhausted(err)) return fail(err, what);
    }
    const auto n = plan_.sources.size();
    fail(EADDRNOTAVAIL, "pool '" + plan_.pool + "' is exhausted for " + endpoint_string(plan_.dest) +
                            ": no free source port on " +
                            (n ? "any of its " + std::to_string(n) + " source address(es)" : "the kernel-chosen address") +
                            " after " + std::to_string(attempts_) + " attempts");
}

bool PendingConnect::ports_exhausted(int err) const {
    // TCP: connect() finds no free 4-tuple (EADDRNOTAVAIL), an explicit
    // bind() finds its port taken (EADDRINUSE). UDP takes a port for every
    // destination at once: bind() with port 0 finds none (EADDRINUSE), and
    // so does the automatic bind inside connect(), which says EAGAIN.
    return err == EADDRNOTAVAIL || err == EADDRINUSE || (udp_ && err == EAGAIN);
}

int PendingConnect::try_once(const Attempt& a, std::string& what) {
    const auto dest = to_sockaddr(on_socket(plan_.dest));
    UniqueFd fresh;
    if (!adopt_) {
        const int type = udp_ ? SOCK_DGRAM : SOCK_STREAM;
        auto s = sys_.socket(dest.family(), type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (!s.ok()) return what = "socket() failed", s.err;
        fresh = UniqueFd(static_cast<int>(s.value));
    }
    // Every try of adopt mode is made on the program's socket, which stays in
    // plan_ (for the next try) until its connect is under way.
    const int fd = adopt_ ? plan_.adopted.get() : fresh.get();
    const auto keep = [&] { return adopt_ ? std::move(plan_.adopted) : std::move(fresh); };
    const int one = 1;
    if (plan_.flags & EGRESS_CONNECT_TCP_NODELAY) {
        if (auto r = sys_.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); !r.ok())
            return what = "setsockopt(TCP_NODELAY) failed", r.err;  // never UDP: the codec and adopt checks refuse it
    }
    // The range before the bind: a UDP bind() to port 0 searches it at once.
    // (A TCP bind with IP_BIND_ADDRESS_NO_PORT leaves the search to connect().)
    if (a.local_range) {
        const std::uint32_t range = encode_local_port_range(*a.local_range);
        if (auto r = sys_.setsockopt(fd, IPPROTO_IP, IP_LOCAL_PORT_RANGE, &range, sizeof range); !r.ok())
            return what = "setsockopt(IP_LOCAL_PORT_RANGE " + to_string(*a.local_range) + ") failed", r.err;
    }
    // A bound socket keeps its address: an adopted one is bound once.
    if ((!plan_.sources.empty() || a.bind_port) && !adopted_bound_) {
        Endpoint src = plan_.sources.empty() ? Endpoint{plan_.dest.v6, {}, 0} : plan_.sources[a.slot];
        src.port = a.bind_port;
        // TCP: without a port, bind only records the address: the port is
        // chosen by connect(), per destination, instead of reserved for all
        // of them. A UDP port is taken for every destination whenever it is
        // chosen: bind() chooses it, and spares connect() the search.
        if (!a.bind_port && !udp_) {
            if (auto r = sys_.setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one); !r.ok())
                return what = "setsockopt(IP_BIND_ADDRESS_NO_PORT) failed", r.err;
        }
        const auto sa = to_sockaddr(on_socket(src));
        if (auto r = sys_.bind(fd, sa.get(), sa.len); !r.ok())
            return what = "bind() to " + endpoint_string(src) + " failed", r.err;
        adopted_bound_ = adopt_;
    }
    const auto r = sys_.connect(fd, dest.get(), dest.len);
    if (!r.ok() && r.err != EINPROGRESS) return what = "connect() failed", r.err;

    // Fast path: on loopback and other near peers the handshake has often
    // completed inside connect(). getpeername() succeeds only once the socket
    // is established, so one call spares the event-loop registration.
    SockAddr peer;
    peer.len = sizeof peer.storage;
    if (r.ok()) {
        complete(keep(), plan_.dest);
        return 0;
    }
    if (sys_.getpeername(fd, peer.get(), &peer.len).ok()) {
        complete(keep(), from_sockaddr(peer.get(), peer.len));
        return 0;
    }
    auto owned = keep();
    wait_.emplace(io_);
    error_code ec;
    // Asio marks an assigned descriptor as possibly duplicated, so closing it
    // removes it from egressd's epoll set even while the program holds the
    // same socket (epoll forgets a file only when its last descriptor closes).
    wait_->sock.assign(owned.get(), ec);  // on failure Asio does not take the descriptor: owned still closes it
    if (ec) return what = "cannot register the socket with the event loop", ec.value();
    owned.release();  // sock_ owns it now
    // Registration is edge-triggered, but EPOLLOUT is armed by this first
    // write wait, so a connect that already completed is still reported.
    wait_writable();
    wait_->deadline.expires_after(plan_.timeout);
    wait_->deadline.async_wait([self = shared_from_this()](const error_code& e) { self->in_turn(&PendingConnect::on_deadline, e); });
    if (auto tell = std::move(in_progress_)) {
        ConnectOutcome out;
        out.err = EINPROGRESS;
        out.message = "the connect is under way on the adopted socket";
        SockAddr local;
        local.len = sizeof local.storage;
        if (sys_.getsockname(wait_->sock.native_handle(), local.get(), &local.len).ok())
            if (auto l = from_sockaddr(local.get(), local.len)) out.local = unmap_ipv4(*l);
        account(out);
        tell(std::move(out));
    }
    return 0;
}

void PendingConnect::on_writable(const error_code& ec) {
    if (finished_ || ec) return;  // cancelled, or the deadline closed the socket
    if (adopt_) {
        // SO_ERROR would clear the program's error: the TCP state tells
        // established from failed without touching it.
        tcp_info info{};
        socklen_t len = sizeof info;
        if (auto r = sys_.getsockopt(wait_->sock.native_handle(), IPPROTO_TCP, TCP_INFO, &info, &len); !r.ok())
            return fail(r.err, "cannot read the adopted socket's TCP state");
        if (info.tcpi_state == TCP_SYN_SENT) return wait_writable();  // a wake with no change behind it
        if (info.tcpi_state == TCP_CLOSE)
            return fail(kAdoptedFailureUnseen, "the connect failed; its errno is the program's to read (SO_ERROR)");
        // Established (or already past it): SO_ERROR stays the program's.
    } else {
        int err = 0;
        socklen_t len = sizeof err;
        if (auto r = sys_.getsockopt(wait_->sock.native_handle(), SOL_SOCKET, SO_ERROR, &err, &len); !r.ok()) err = r.err;
        if (err) return fail(err, "connect to the destination failed");
    }

    SockAddr remote;
    remote.len = sizeof remote.storage;
    if (auto r = sys_.getpeername(wait_->sock.native_handle(), remote.get(), &remote.len); !r.ok()) {
        // No error and no peer: still connecting. The event loop can wake a
        // wait with no change of state behind it; wait on, the deadline holds.
        if (r.err == ENOTCONN) return wait_writable();
        return fail(r.err, "connected socket has no peer");
    }
    complete(UniqueFd(wait_->sock.release()), from_sockaddr(remote.get(), remote.len));
}

void PendingConnect::complete(UniqueFd fd, std::optional<Endpoint> remote) {
    ConnectOutcome out;
    out.remote = remote;
    SockAddr local;
    local.len = sizeof local.storage;
    if (sys_.getsockname(fd.get(), local.get(), &local.len).ok()) out.local = from_sockaddr(local.get(), local.len);
    // An adopted AF_INET6 socket reached an IPv4 destination as ::ffff:a.b.c.d: report it as IPv4.
    if (adopt_ && out.local) out.local = unmap_ipv4(*out.local);
    if (adopt_ && out.remote) out.remote = unmap_ipv4(*out.remote);
    // The UDP port search has no parity preference (a random start, then an odd stride).
    if (!udp_ && out.local && attempt_ && port_search_prefers_parity(plan_.policy.strategy, plan_.policy.kernel))
        out.parity_switch = parity_switched(out.local->port, range_in_effect(*attempt_, plan_.policy));
    if (plan_.flags & EGRESS_CONNECT_BLOCKING) {
        const auto fl = sys_.fcntl_getfl(fd.get());
        if (!fl.ok() || !sys_.fcntl_setfl(fd.get(), static_cast<int>(fl.value) & ~O_NONBLOCK).ok())
            return fail(fl.ok() ? EIO : fl.err, "cannot switch the socket to blocking mode");
    }
    out.fd = std::move(fd);
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
    if (wait_) {
        error_code ignored;
        wait_->deadline.cancel();
        wait_->sock.close(ignored);  // no-op after release(); closes the socket on failure
    }
    plan_.adopted.reset();  // egressd's copy of an adopted socket that never got under way
    in_progress_ = nullptr;
    account(out);
    if (auto done = std::move(done_)) done(std::move(out));
}

void PendingConnect::account(ConnectOutcome& out) const {
    out.attempts = attempts_;
    out.window_retries = retries_;
    out.transport = plan_.transport;
    if (attempt_ && !plan_.sources.empty()) out.source = attempt_->slot;
    if (started_ != std::chrono::steady_clock::time_point{})
        out.connect_us = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started_)
                .count());
}

void PendingConnect::cancel() {
    if (finished_) return;
    finished_ = true;
    done_ = nullptr;
    in_progress_ = nullptr;
    plan_.adopted.reset();
    if (wait_) {
        error_code ignored;
        wait_->deadline.cancel();
        wait_->sock.close(ignored);
    }
}

}  // namespace egress
