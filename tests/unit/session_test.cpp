// One client connection's Session over the scripted syscall layer
// (fake_syscalls.hpp): the client is a real SOCK_SEQPACKET socketpair, so its
// datagrams really move, while connects answer from the fake's script. Covers
// how requests and replies are batched, what closing a session with connects
// in flight gives back, and what a reply whose descriptor the client cannot
// take becomes.
#include "session/session.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "codec.hpp"
#include "egress_proto.h"
#include "expect.hpp"
#include "fake_syscalls.hpp"

namespace egress {
namespace {

using namespace std::chrono_literals;
using test::Call;
using test::FakeSyscalls;
using test::IsOk;
using test::open_fds;

constexpr std::uint32_t kUid = 1000;
constexpr unsigned kLoneBatch = RecvBatch::kSize;  // what a lone client's read asks for

Endpoint ep(std::string_view text) {
    auto e = parse_endpoint(text);
    EXPECT_TRUE(e.ok()) << text;
    return e ? *e : Endpoint{};
}

proto::Bytes connect_request(std::uint64_t id) {
    proto::ConnectRequest req;
    req.dest = ep("192.0.2.80:443");
    return proto::encode_connect(id, req);
}

// A reply as the client reads it, with the descriptor it carried.
struct Received {
    proto::Reply reply;
    UniqueFd fd;

    std::uint64_t id() const { return reply.header.request_id; }
    bool says_fd_attached() const { return reply.header.flags & EGRESS_HDR_FLAG_FD_ATTACHED; }
    const proto::ConnectReply* connect() const { return std::get_if<proto::ConnectReply>(&reply.body); }
};

class SessionTest : public testing::Test {
protected:
    void SetUp() override {
        fds_before_ = open_fds();
        auto config = default_config();
        ASSERT_TRUE(config);
        // Kernel-chosen address and port: a connect is socket, connect,
        // getpeername (and getsockname once it is established).
        auto pools = std::make_shared<PoolSet>(
            *config, PortStrategy::kernel_default, PortRange{32768, 60999}, KernelVersion{6, 8},
            [](const std::vector<Endpoint>&, const Endpoint&, Transport) -> Result<std::vector<std::uint32_t>> {
                return std::vector<std::uint32_t>{};
            },
            [] { return std::chrono::steady_clock::now(); });
        ASSERT_EQ(pools->pools().size(), 1u);
        for (auto& p : pools->pools()) p.kernel_metrics = &metrics_.source(p.name, kKernelSource);
        ctx_ = std::make_unique<LoopContext>(shared_, 0, Snapshot{config, pools, std::make_shared<DaemonInfo>()}, 42);
        shared_.loop_clients.assign(1, {});
        // Create the reactor's own descriptors now, so that counts taken
        // during the test see only sockets.
        asio::steady_timer warm(io());
        int pair[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair), 0);
        client_ = UniqueFd(pair[0]);
        daemon_end_ = UniqueFd(pair[1]);
        base_fds_ = open_fds();
    }
    void TearDown() override {
        if (session_) session_->close("the test is over");
        session_.reset();
        client_.reset();
        ctx_.reset();
        EXPECT_EQ(open_fds(), fds_before_) << "a descriptor leaked";
    }

    asio::io_context& io() { return ctx_->io; }
    Pool& pool() { return ctx_->now.pools->pools().front(); }

    // Descriptors open besides the reactor's and the socketpair's.
    long extra_fds() const { return static_cast<long>(open_fds()) - static_cast<long>(base_fds_); }

    void start_session() {
        session_ = std::make_shared<Session>(*ctx_, std::move(daemon_end_), Credentials{kUid, kUid, 4242, {}},
                                             shared_.quotas.open(kUid), [this](Session*) { ++closed_calls_; });
        session_->start();
    }
    // A started session that has read everything there was (nothing) and
    // waits for the client; the fake's record starts from here.
    void start_waiting_session() {
        start_session();
        run_ready();
        const auto recvs = sys.of(Call::recvmmsg);
        ASSERT_EQ(recvs.size(), 1u);
        EXPECT_EQ(recvs[0].result.err, EAGAIN);
        sys.calls.clear();
    }

    void send(const proto::Bytes& datagram) {
        ASSERT_EQ(::send(client_.get(), datagram.data(), datagram.size(), MSG_DONTWAIT | MSG_NOSIGNAL),
                  static_cast<ssize_t>(datagram.size()));
    }

    // Runs the loop until `done` holds; false when it does not within the bound.
    bool run_until(const std::function<bool()>& done, std::chrono::milliseconds bound = 2000ms) {
        const auto deadline = std::chrono::steady_clock::now() + bound;
        while (!done()) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            io().restart();
            io().run_one_for(5ms);
        }
        return true;
    }
    // Runs what is ready, and what that makes ready, until nothing is: a
    // step the session left for a later turn has run by then.
    void run_ready() {
        for (int i = 0; i < 10000; ++i) {
            io().restart();
            if (io().poll() == 0) return;
        }
        ADD_FAILURE() << "the loop never went quiet";
    }
    // Nothing is left for the loop: no wait, no timer (a connect's deadline).
    bool loop_has_no_work() {
        const auto t0 = std::chrono::steady_clock::now();
        io().restart();
        io().run_for(5s);  // returns at once when there is no work
        return std::chrono::steady_clock::now() - t0 < 1s;
    }

    // The next reply waiting on the client's socket, if any.
    std::optional<Received> take_reply() {
        std::vector<std::uint8_t> buf(EGRESS_MAX_STATUS_REPLY + EGRESS_MAX_DATAGRAM);
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
        iovec iov{buf.data(), buf.size()};
        msghdr m{};
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = control;
        m.msg_controllen = sizeof control;
        const auto n = ::recvmsg(client_.get(), &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n <= 0) return std::nullopt;
        Received r;
        int fds = 0;
        for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            for (std::size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++k, ++fds) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof fd);
                r.fd = UniqueFd(fd);  // the last one; more than one is an error below
            }
        }
        EXPECT_LE(fds, 1) << "a reply carries at most one descriptor";
        auto decoded = proto::decode_reply(proto::ByteView(buf.data(), static_cast<std::size_t>(n)));
        EXPECT_TRUE(IsOk(decoded));
        if (decoded) r.reply = std::move(*decoded);
        return r;
    }
    // The next `n` replies, in the order they arrived.
    std::vector<Received> await_replies(std::size_t n) {
        std::vector<Received> got;
        const bool all = run_until([&] {
            while (auto r = take_reply()) got.push_back(std::move(*r));
            return got.size() >= n;
        });
        EXPECT_TRUE(all) << "got " << got.size() << " of " << n << " replies";
        return got;
    }
    // The client's socket reads end-of-stream: the session closed its end.
    bool client_reads_end() {
        char byte;
        return ::recv(client_.get(), &byte, 1, MSG_DONTWAIT) == 0;
    }

    // Connects from now on stay under way: connect() says EINPROGRESS, the
    // socket is not established yet and never becomes writable.
    void connects_never_finish(std::size_t how_many) {
        sys.writable = false;
        sys.peer_errs.assign(how_many, ENOTCONN);
    }

    FakeSyscalls sys;
    prometheus::Registry registry_;
    Metrics metrics_{registry_, BuildInfo{"test", "", ""}};
    Shared shared_{sys, metrics_};
    std::unique_ptr<LoopContext> ctx_;
    UniqueFd client_;
    std::shared_ptr<Session> session_;
    int closed_calls_ = 0;

private:
    UniqueFd daemon_end_;
    std::size_t fds_before_ = 0;
    std::size_t base_fds_ = 0;
};

// ---- batching ----

TEST_F(SessionTest, QueuedRequestsAreReadInOneBatchAndAnsweredInOne) {
    constexpr std::size_t kRequests = 5;
    start_waiting_session();
    for (std::uint64_t id = 1; id <= kRequests; ++id) send(connect_request(id));
    const auto replies = await_replies(kRequests);
    run_ready();

    // One receive moved all five; being short of what it asked for, it
    // counted as drained: no second receive.
    const auto recvs = sys.of(Call::recvmmsg);
    ASSERT_EQ(recvs.size(), 1u);
    EXPECT_EQ(recvs[0].count, kLoneBatch);
    EXPECT_EQ(recvs[0].result.value, static_cast<long>(kRequests));
    // One send carried the five replies, each with its connected socket,
    // after the last connect of the batch.
    const auto sends = sys.of(Call::sendmmsg);
    ASSERT_EQ(sends.size(), 1u);
    EXPECT_EQ(sends[0].count, kRequests);
    EXPECT_EQ(sends[0].result.value, static_cast<long>(kRequests));
    EXPECT_EQ(sends[0].fds, sys.created);
    ASSERT_EQ(sys.of(Call::connect).size(), kRequests);
    EXPECT_EQ(sys.calls.back().kind, Call::sendmmsg);

    ASSERT_EQ(replies.size(), kRequests);
    for (std::size_t i = 0; i < kRequests; ++i) {
        const auto& r = replies[i];
        EXPECT_EQ(r.id(), i + 1);
        ASSERT_TRUE(r.connect()) << i;
        EXPECT_EQ(r.connect()->status, 0u) << r.connect()->message;
        EXPECT_TRUE(r.says_fd_attached()) << i;
        EXPECT_TRUE(r.fd) << i;
    }
    EXPECT_EQ(metrics_.handoffs.Value(), static_cast<double>(kRequests));
    EXPECT_EQ(extra_fds(), static_cast<long>(kRequests));  // the client's sockets; egressd's copies closed
}

TEST_F(SessionTest, ALoneRequestCostsOneReceiveCall) {
    start_waiting_session();
    for (const std::uint64_t id : {7, 8}) {
        sys.calls.clear();
        send(connect_request(id));
        const auto replies = await_replies(1);
        run_ready();
        ASSERT_EQ(replies.size(), 1u);
        EXPECT_EQ(replies[0].id(), id);

        const auto recvs = sys.of(Call::recvmmsg);
        ASSERT_EQ(recvs.size(), 1u) << "a short batch is drained: no receive that finds EAGAIN";
        EXPECT_EQ(recvs[0].result.value, 1);
        const auto sends = sys.of(Call::sendmmsg);
        ASSERT_EQ(sends.size(), 1u);
        EXPECT_EQ(sends[0].count, 1u);
    }
}

TEST_F(SessionTest, RequestsQueuedBeforeTheSessionStartsAreReadInItsFirstBatch) {
    constexpr std::size_t kRequests = 5;
    for (std::uint64_t id = 1; id <= kRequests; ++id) send(connect_request(id));
    start_session();
    const auto replies = await_replies(kRequests);
    run_ready();

    const auto recvs = sys.of(Call::recvmmsg);
    ASSERT_FALSE(recvs.empty());
    EXPECT_EQ(recvs[0].result.value, static_cast<long>(kRequests));
    // The reactor saw the socket readable when it was registered, before
    // that read, and reports it to the wait that follows the read: one more
    // receive, which finds nothing.
    EXPECT_LE(recvs.size(), 2u);
    for (std::size_t i = 1; i < recvs.size(); ++i) EXPECT_EQ(recvs[i].result.err, EAGAIN);
    const auto sends = sys.of(Call::sendmmsg);
    ASSERT_EQ(sends.size(), 1u);
    EXPECT_EQ(sends[0].result.value, static_cast<long>(kRequests));
    ASSERT_EQ(replies.size(), kRequests);
    for (std::size_t i = 0; i < kRequests; ++i) EXPECT_EQ(replies[i].id(), i + 1);
}

TEST_F(SessionTest, MoreRequestsThanABatchAreReadInTheNextTurn) {
    constexpr std::size_t kRequests = kLoneBatch + 3;
    start_waiting_session();
    for (std::uint64_t id = 1; id <= kRequests; ++id) send(connect_request(id));
    const auto replies = await_replies(kRequests);
    run_ready();

    // A full batch, whose replies go together, then the three left.
    const auto recvs = sys.of(Call::recvmmsg);
    ASSERT_EQ(recvs.size(), 2u);
    EXPECT_EQ(recvs[0].count, kLoneBatch);
    EXPECT_EQ(recvs[0].result.value, static_cast<long>(kLoneBatch));
    EXPECT_EQ(recvs[1].count, kLoneBatch);
    EXPECT_EQ(recvs[1].result.value, 3);
    const auto sends = sys.of(Call::sendmmsg);
    ASSERT_EQ(sends.size(), 2u);
    EXPECT_EQ(sends[0].result.value, static_cast<long>(kLoneBatch));
    EXPECT_EQ(sends[1].result.value, 3);
    ASSERT_EQ(replies.size(), kRequests);
    for (std::size_t i = 0; i < kRequests; ++i) EXPECT_EQ(replies[i].id(), i + 1);
}

// ---- closing with connects in flight ----

TEST_F(SessionTest, ClientHangingUpCancelsEveryConnectInFlight) {
    constexpr std::size_t kConnects = 3;
    connects_never_finish(kConnects);
    for (std::uint64_t id = 1; id <= kConnects; ++id) send(connect_request(id));
    start_session();
    ASSERT_TRUE(run_until([&] { return session_->inflight() == kConnects; }));
    run_ready();
    // Each connect holds its socket and its counts.
    EXPECT_EQ(extra_fds(), static_cast<long>(kConnects));
    EXPECT_EQ(shared_.stats.inflight.get(), kConnects);
    EXPECT_EQ(metrics_.inflight.Value(), static_cast<double>(kConnects));
    EXPECT_EQ(pool().inflight.get(), kConnects);
    EXPECT_EQ(shared_.quotas.inflight(kUid), kConnects);
    EXPECT_EQ(shared_.quotas.connections(kUid), 1u);
    EXPECT_EQ(metrics_.clients.Value(), 1.0);
    EXPECT_TRUE(sys.of(Call::sendmmsg).empty());

    client_.reset();
    ASSERT_TRUE(run_until([&] { return closed_calls_ > 0; }));
    run_ready();

    EXPECT_EQ(closed_calls_, 1);
    EXPECT_FALSE(sys.of(Call::poll).empty()) << "the session asks whether the client hung up";
    EXPECT_EQ(session_->inflight(), 0u);
    EXPECT_TRUE(session_->idle());
    // Every connect's socket closed, and the session's end of the client's.
    EXPECT_EQ(extra_fds(), -2);
    EXPECT_EQ(shared_.stats.inflight.get(), 0u);
    EXPECT_EQ(metrics_.inflight.Value(), 0.0);
    EXPECT_EQ(pool().inflight.get(), 0u);
    EXPECT_EQ(shared_.quotas.inflight(kUid), 0u);
    EXPECT_EQ(shared_.quotas.connections(kUid), 0u);
    EXPECT_EQ(metrics_.cancelled(pool().name).Value(), static_cast<double>(kConnects));
    EXPECT_EQ(metrics_.clients.Value(), 0.0);
    EXPECT_TRUE(sys.of(Call::sendmmsg).empty()) << "a cancelled connect has no reply";
    // Nothing is left waiting (no deadline), and the session is let go.
    std::weak_ptr<Session> gone = session_;
    session_.reset();
    EXPECT_TRUE(loop_has_no_work());
    EXPECT_TRUE(gone.expired());
}

TEST_F(SessionTest, ClosingTheSessionCancelsEveryConnectInFlight) {
    constexpr std::size_t kConnects = 4;
    connects_never_finish(kConnects);
    for (std::uint64_t id = 1; id <= kConnects; ++id) send(connect_request(id));
    start_session();
    ASSERT_TRUE(run_until([&] { return session_->inflight() == kConnects; }));
    run_ready();
    EXPECT_EQ(extra_fds(), static_cast<long>(kConnects));
    EXPECT_EQ(shared_.stats.inflight.get(), kConnects);

    session_->close("closed by its owner");
    // All given back at once, before the loop runs again.
    EXPECT_EQ(closed_calls_, 1);
    EXPECT_EQ(session_->inflight(), 0u);
    EXPECT_EQ(extra_fds(), -1);  // the client's end stays open
    EXPECT_EQ(shared_.stats.inflight.get(), 0u);
    EXPECT_EQ(metrics_.inflight.Value(), 0.0);
    EXPECT_EQ(pool().inflight.get(), 0u);
    EXPECT_EQ(shared_.quotas.inflight(kUid), 0u);
    EXPECT_EQ(shared_.quotas.connections(kUid), 0u);
    EXPECT_EQ(metrics_.cancelled(pool().name).Value(), static_cast<double>(kConnects));
    EXPECT_EQ(metrics_.clients.Value(), 0.0);
    EXPECT_TRUE(client_reads_end());

    // Again: nothing more to give back, the owner is not told twice.
    session_->close("closed again");
    EXPECT_EQ(closed_calls_, 1);
    EXPECT_EQ(metrics_.cancelled(pool().name).Value(), static_cast<double>(kConnects));
    EXPECT_EQ(metrics_.clients.Value(), 0.0);

    std::weak_ptr<Session> gone = session_;
    session_.reset();
    EXPECT_TRUE(loop_has_no_work());
    EXPECT_TRUE(gone.expired());
    EXPECT_TRUE(sys.of(Call::sendmmsg).empty());
}

// ---- a descriptor the client cannot take ----

TEST_F(SessionTest, ARefusedDescriptorBecomesAnETOOMANYREFSReply) {
    sys.descriptor_err = ETOOMANYREFS;
    send(connect_request(3));
    start_session();
    const auto replies = await_replies(1);
    run_ready();

    ASSERT_EQ(replies.size(), 1u);
    const auto& r = replies[0];
    EXPECT_EQ(r.id(), 3u);
    ASSERT_TRUE(r.connect());
    EXPECT_EQ(r.connect()->status, static_cast<std::uint32_t>(ETOOMANYREFS));
    EXPECT_EQ(r.connect()->error_name, "ETOOMANYREFS");
    EXPECT_NE(r.connect()->message.find("too many descriptors in flight"), std::string::npos) << r.connect()->message;
    EXPECT_FALSE(r.says_fd_attached());
    EXPECT_FALSE(r.fd);
    // The send with the socket was refused; the same reply went again without it.
    const auto sends = sys.of(Call::sendmmsg);
    ASSERT_EQ(sends.size(), 2u);
    ASSERT_EQ(sys.created.size(), 1u);
    EXPECT_EQ(sends[0].fds, std::vector<int>{sys.created[0]});
    EXPECT_EQ(sends[0].result.err, ETOOMANYREFS);
    EXPECT_EQ(sends[1].fds, std::vector<int>{-1});
    EXPECT_EQ(sends[1].result.value, 1);
    // egressd's copy of the socket is closed: nobody holds it.
    EXPECT_EQ(extra_fds(), 0);
    EXPECT_EQ(metrics_.handoffs.Value(), 0.0);
    EXPECT_EQ(metrics_.handoffs_refused.Value(), 1.0);
    EXPECT_EQ(shared_.stats.inflight.get(), 0u);

    // The session goes on: once the client can take descriptors, it gets them.
    EXPECT_EQ(closed_calls_, 0);
    sys.descriptor_err = 0;
    send(connect_request(4));
    const auto next = await_replies(1);
    ASSERT_EQ(next.size(), 1u);
    EXPECT_EQ(next[0].id(), 4u);
    ASSERT_TRUE(next[0].connect());
    EXPECT_EQ(next[0].connect()->status, 0u);
    EXPECT_TRUE(next[0].fd);
    EXPECT_EQ(metrics_.handoffs.Value(), 1.0);
}

TEST_F(SessionTest, InABatchOnlyTheRepliesWithADescriptorAreRewritten) {
    sys.descriptor_err = ETOOMANYREFS;
    send(connect_request(1));
    send(proto::encode_status(2));
    send(connect_request(3));
    start_session();
    const auto replies = await_replies(3);
    run_ready();

    ASSERT_EQ(replies.size(), 3u);
    EXPECT_EQ(replies[0].id(), 1u);
    EXPECT_EQ(replies[1].id(), 2u);
    EXPECT_EQ(replies[2].id(), 3u);
    for (const auto* r : {&replies[0], &replies[2]}) {
        ASSERT_TRUE(r->connect());
        EXPECT_EQ(r->connect()->status, static_cast<std::uint32_t>(ETOOMANYREFS));
        EXPECT_FALSE(r->fd);
    }
    const auto* status = std::get_if<proto::StatusReply>(&replies[1].reply.body);
    ASSERT_TRUE(status);
    EXPECT_EQ(status->status, 0u);
    EXPECT_FALSE(status->json.empty());
    // [fd, -, fd] refused; [-, -, fd] sends two; [fd] refused; [-] sends one.
    const auto sends = sys.of(Call::sendmmsg);
    ASSERT_EQ(sends.size(), 4u);
    ASSERT_EQ(sys.created.size(), 2u);
    EXPECT_EQ(sends[0].fds, (std::vector<int>{sys.created[0], -1, sys.created[1]}));
    EXPECT_EQ(sends[1].result.value, 2);
    EXPECT_EQ(sends[2].fds, std::vector<int>{sys.created[1]});
    EXPECT_EQ(sends[3].result.value, 1);
    EXPECT_EQ(extra_fds(), 0);
    EXPECT_EQ(closed_calls_, 0);
}

TEST_F(SessionTest, ETOOMANYREFSForAReplyWithoutADescriptorClosesTheSession) {
    // The kernel says so only for a descriptor; for a plain reply it is a
    // send failure like any other.
    sys.sendmmsg_errs = {ETOOMANYREFS};
    send(proto::encode_status(5));
    start_session();
    ASSERT_TRUE(run_until([&] { return closed_calls_ > 0; }));
    run_ready();

    EXPECT_EQ(closed_calls_, 1);
    ASSERT_EQ(sys.of(Call::sendmmsg).size(), 1u);
    EXPECT_EQ(sys.of(Call::sendmmsg)[0].fds, std::vector<int>{-1});
    EXPECT_TRUE(client_reads_end()) << "no reply, then the end of the stream";
    EXPECT_EQ(extra_fds(), -1);
    EXPECT_EQ(metrics_.clients.Value(), 0.0);
}

}  // namespace
}  // namespace egress
