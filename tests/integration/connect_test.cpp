// The connect path through the real daemon: handoff, refusal, deadlines,
// head-of-line isolation and pipelining.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstring>
#include <set>

#include "egress.h"
#include "egress_client.hpp"

extern "C" int c_abi_connect(const char* socket_path, const char* address, uint16_t port, egress_reply* reply);
extern "C" int c_abi_connect_udp(const char* socket_path, const char* address, uint16_t port, egress_reply* reply);
#include "harness.hpp"

namespace egress::test {
namespace {

Client open_client(const Daemon& d) {
    auto c = Client::open(d.socket());
    if (!c) ADD_FAILURE() << c.error().message;
    return std::move(*c);
}

Endpoint black_hole() { return *parse_address(kBlackHole, 80); }

TEST(Connect, LiveListenerHandsOverAWorkingSocket) {
    Daemon d;
    Listener echo(Listener::Mode::echo);
    auto c = open_client(d);
    auto r = c.connect(echo.endpoint(), {.timeout_ms = 2000, .nodelay = true, .blocking = true});
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_TRUE(r->fd);
    EXPECT_EQ(r->meta.status, 0u);
    ASSERT_TRUE(r->meta.remote && r->meta.local);
    EXPECT_EQ(*r->meta.remote, echo.endpoint());
    EXPECT_EQ(address_string(*r->meta.local), "127.0.0.1");
    EXPECT_NE(r->meta.local->port, 0);
    EXPECT_EQ(r->meta.pool, "default");
    EXPECT_EQ(r->meta.attempts, 1u);
    EXPECT_GT(r->meta.connect_us, 0u);
    EXPECT_LT(r->meta.connect_us, 2'000'000u);

    // The socket is the connected one: its own names match the metadata.
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ASSERT_EQ(::getsockname(r->fd.get(), reinterpret_cast<sockaddr*>(&ss), &len), 0);
    EXPECT_EQ(ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port), r->meta.local->port);
    int nodelay = 0;
    len = sizeof nodelay;
    ::getsockopt(r->fd.get(), IPPROTO_TCP, 1 /* TCP_NODELAY */, &nodelay, &len);
    EXPECT_EQ(nodelay, 1);

    const std::string ping = "bytes both ways";
    ASSERT_EQ(::send(r->fd.get(), ping.data(), ping.size(), 0), static_cast<ssize_t>(ping.size()));
    std::string got(ping.size(), '\0');
    ASSERT_EQ(::recv(r->fd.get(), got.data(), got.size(), MSG_WAITALL), static_cast<ssize_t>(ping.size()));
    EXPECT_EQ(got, ping);
}

TEST(Connect, TheCAbiConnectsAndReportsErrors) {
    Daemon d;
    Listener echo(Listener::Mode::echo);
    egress_reply reply;
    const int fd = c_abi_connect(d.socket().c_str(), "127.0.0.1", echo.endpoint().port, &reply);
    ASSERT_GE(fd, 0) << reply.error_name << ": " << reply.message;
    EXPECT_EQ(reply.status, 0);
    EXPECT_EQ(std::string(reply.remote), endpoint_string(echo.endpoint()));
    EXPECT_EQ(std::string(reply.pool), "default");
    EXPECT_EQ(reply.attempts, 1u);
    ::close(fd);

    EXPECT_EQ(c_abi_connect(d.socket().c_str(), "127.0.0.1", closed_port().port, &reply), -1);
    EXPECT_EQ(reply.status, ECONNREFUSED);
    EXPECT_STREQ(reply.error_name, "ECONNREFUSED");
    EXPECT_EQ(c_abi_connect(d.socket().c_str(), "not..a-name", 80, &reply), -1);
    EXPECT_EQ(reply.status, EINVAL);
    EXPECT_NE(std::string(reply.message).find("empty label"), std::string::npos) << reply.message;
    EXPECT_EQ(c_abi_connect("/tmp/no-egressd-here.sock", "127.0.0.1", 80, &reply), -1);
    EXPECT_EQ(reply.status, ENOENT);
    EXPECT_NE(std::string(reply.message).find("is egressd running?"), std::string::npos) << reply.message;
}

TEST(Connect, TheCAbiAsksForUdpWithAnOptionBit) {
    Daemon d;
    egress_reply reply;
    const int fd = c_abi_connect_udp(d.socket().c_str(), "127.0.0.1", 53, &reply);
    ASSERT_GE(fd, 0) << reply.error_name << ": " << reply.message;
    int type = 0;
    socklen_t len = sizeof type;
    EXPECT_EQ(::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len), 0);
    EXPECT_EQ(type, SOCK_DGRAM);
    EXPECT_EQ(std::string(reply.remote), "127.0.0.1:53");
    ::close(fd);
}

TEST(Connect, IPv6LoopbackWorks) {
    Daemon d;
    Listener echo(Listener::Mode::echo, "::1");
    auto c = open_client(d);
    auto r = c.connect(echo.endpoint());
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_TRUE(r->meta.remote->v6);
    EXPECT_EQ(*r->meta.remote, echo.endpoint());
}

TEST(Connect, ClosedPortIsRefused) {
    Daemon d;
    auto c = open_client(d);
    auto r = c.connect(closed_port());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ECONNREFUSED);
    EXPECT_NE(r.error().message.find("Connection refused"), std::string::npos) << r.error().message;
}

TEST(Connect, BlackHoleTimesOutAtItsDeadline) {
    Daemon d;
    auto c = open_client(d);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = c.connect(black_hole(), {.timeout_ms = 1000});
    const double ms = ms_since(t0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ETIMEDOUT) << r.error().message;
    EXPECT_GE(ms, 1000.0);
    EXPECT_LT(ms, 1100.0);  // within 10% of the deadline
    std::printf("black-holed connect, 1000 ms deadline: ETIMEDOUT after %.1f ms\n", ms);
}

TEST(Connect, RequestedTimeoutIsCappedByConfig) {
    Daemon d(R"({"connect": {"default_timeout_ms": 300, "max_timeout_ms": 500}})");
    auto c = open_client(d);
    auto t0 = std::chrono::steady_clock::now();
    auto r = c.connect(black_hole(), {.timeout_ms = 60000});
    EXPECT_EQ(r.error().code, ETIMEDOUT);
    EXPECT_LT(ms_since(t0), 1500.0);  // capped at 500 ms, not 60 s
    EXPECT_NE(r.error().message.find("within 500 ms (requested 60000 ms, clamped to connect.max_timeout_ms)"),
              std::string::npos)
        << r.error().message;
    t0 = std::chrono::steady_clock::now();
    r = c.connect(black_hole());  // no timeout: the configured default
    EXPECT_EQ(r.error().code, ETIMEDOUT);
    EXPECT_GE(ms_since(t0), 300.0);
    EXPECT_LT(ms_since(t0), 1000.0);
}

// libegress hands over the deadline egressd applied when it is not the one asked for.
TEST(Connect, MetaSaysWhenTheTimeoutWasCapped) {
    Daemon d(R"({"connect": {"default_timeout_ms": 300, "max_timeout_ms": 500}})");
    Listener echo(Listener::Mode::echo);
    auto c = open_client(d);
    auto capped = c.connect(echo.endpoint(), {.timeout_ms = 60000});
    ASSERT_TRUE(capped) << capped.error().message;
    EXPECT_EQ(capped->meta.timeout_ms, 500u);
    auto asked = c.connect(echo.endpoint(), {.timeout_ms = 500});
    ASSERT_TRUE(asked) << asked.error().message;
    EXPECT_EQ(asked->meta.timeout_ms, 0u);
}

// The acceptance pin: connects hanging on a black hole do not slow a live one.
TEST(Connect, LiveConnectIsFastWhileTwoHundredHang) {
    Daemon d;
    Listener echo(Listener::Mode::hold);
    const int idle = d.settled_fds();
    auto stuck = open_client(d);
    for (int i = 0; i < 200; ++i) ASSERT_TRUE(stuck.submit(black_hole(), {.timeout_ms = 10000}));
    // All 200 are pending once egressd holds their sockets (plus the client's).
    ASSERT_EQ(d.wait_fds(idle + 1 + 200), idle + 1 + 200);

    auto live = open_client(d);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = live.connect(echo.endpoint());
    const double ms = ms_since(t0);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_LT(ms, 50.0);
    std::printf("live connect with 200 pending: %.3f ms\n", ms);
}

TEST(Connect, FiftyClientsPipelineTwentyRequestsEach) {
    Daemon d;
    Listener sink(Listener::Mode::hold);
    constexpr int kClients = 50, kRequests = 20;
    std::atomic<int> answered{0}, failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kClients; ++t) {
        threads.emplace_back([&] {
            auto c = Client::open(d.socket());
            if (!c) return void(++failures);
            std::set<std::uint64_t> sent, seen;
            for (int i = 0; i < kRequests; ++i) {
                auto id = c->submit(sink.endpoint());
                if (!id) return void(++failures);
                sent.insert(*id);
            }
            for (int i = 0; i < kRequests; ++i) {
                auto done = c->next();
                if (!done || !done->result || !sent.count(done->request_id) ||
                    !seen.insert(done->request_id).second)
                    return void(++failures);
                ++answered;
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(answered.load(), kClients * kRequests);
}

TEST(Connect, RepliesComeInCompletionOrder) {
    Daemon d;
    Listener echo(Listener::Mode::echo);
    auto c = open_client(d);
    auto slow = c.submit(black_hole(), {.timeout_ms = 800});
    auto fast = c.submit(echo.endpoint());
    ASSERT_TRUE(slow && fast);
    auto first = c.next();
    auto second = c.next();
    ASSERT_TRUE(first && second);
    EXPECT_EQ(first->request_id, *fast);
    EXPECT_TRUE(first->result);
    EXPECT_EQ(second->request_id, *slow);
    EXPECT_EQ(second->result.error().code, ETIMEDOUT);
}

TEST(Connect, PerClientInflightLimitAnswersEagain) {
    Daemon d(R"({"limits": {"max_inflight_per_client": 5}})");
    auto c = open_client(d);
    for (int i = 0; i < 6; ++i) ASSERT_TRUE(c.submit(black_hole(), {.timeout_ms = 500}));
    int eagain = 0, timedout = 0;
    for (int i = 0; i < 6; ++i) {
        auto r = c.next();
        ASSERT_TRUE(r);
        if (!r->result && r->result.error().code == EAGAIN) ++eagain;
        if (!r->result && r->result.error().code == ETIMEDOUT) ++timedout;
    }
    EXPECT_EQ(eagain, 1);
    EXPECT_EQ(timedout, 5);
}

TEST(Connect, UnknownPoolIsNamed) {
    Daemon d;
    Listener echo(Listener::Mode::echo);
    auto c = open_client(d);
    auto r = c.connect(echo.endpoint(), {.pool = "nope"});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ENOENT);
    EXPECT_NE(r.error().message.find("nope"), std::string::npos);
    EXPECT_TRUE(c.connect(echo.endpoint(), {.pool = "default"}));
}

TEST(Connect, ClientsOverTheLimitAreRefusedWithAReply) {
    Daemon d(R"({"limits": {"max_clients": 2}})");
    Listener echo(Listener::Mode::echo);
    d.settled_fds();  // the harness's readiness probe has gone
    auto a = open_client(d);
    auto b = open_client(d);
    ASSERT_TRUE(a.connect(echo.endpoint()));
    auto third = Client::open(d.socket());
    ASSERT_TRUE(third);
    auto r = third->connect(echo.endpoint());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, EAGAIN);
    EXPECT_NE(r.error().message.find("max_clients"), std::string::npos) << r.error().message;
    EXPECT_TRUE(b.connect(echo.endpoint()));
}

// A plain client that sends at once, before egressd has even accepted it:
// its first recv is the refusal, its second end-of-stream; never a reset.
TEST(Connect, ARefusedClientReadsTheRefusalBeforeEndOfStream) {
    Daemon d(R"({"limits": {"max_clients": 1}})");
    Listener echo(Listener::Mode::echo);
    d.settled_fds();
    auto holder = open_client(d);
    ASSERT_TRUE(holder.connect(echo.endpoint()));  // egressd now serves its one client
    for (int round = 0; round < 20; ++round) {
        auto fd = raw_connect(d.socket());
        ASSERT_TRUE(fd);
        for (std::uint64_t id = 1; id <= 3; ++id)
            send_datagram(fd.get(), proto::encode_connect(id, {.dest = echo.endpoint()}));  // EPIPE once refused
        timeval tv{5, 0};
        ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        std::uint8_t buf[EGRESS_MAX_DATAGRAM];
        const auto n = ::recv(fd.get(), buf, sizeof buf, 0);
        ASSERT_GT(n, 0) << "round " << round << ": the first recv failed: " << std::strerror(errno);
        const auto reply = proto::decode_reply(proto::ByteView(buf, static_cast<std::size_t>(n)));
        ASSERT_TRUE(reply) << reply.error().message;
        EXPECT_EQ(reply->header.type, EGRESS_MSG_ERROR_REPLY);
        EXPECT_EQ(reply->header.request_id, 0u);
        EXPECT_EQ(status_of(*reply), static_cast<std::uint32_t>(EAGAIN));
        EXPECT_EQ(::recv(fd.get(), buf, sizeof buf, 0), 0) << "round " << round << ": " << std::strerror(errno);
    }
}

}  // namespace
}  // namespace egress::test
