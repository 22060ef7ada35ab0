// What PROTOCOL.md promises a client written from it alone: every request
// answered with its own id, a burst answered in full, mapped IPv4 connected
// as IPv4, a status document of any size read whole.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <set>

#include <nlohmann/json.hpp>

#include "codec.hpp"
#include "egress_client.hpp"
#include "harness.hpp"

namespace egress::test {
namespace {

proto::Bytes connect_to(std::uint64_t id, const Endpoint& dest, std::uint32_t timeout_ms = 0) {
    proto::ConnectRequest req;
    req.dest = dest;
    req.timeout_ms = timeout_ms;
    return proto::encode_connect(id, req);
}

// A reading client may send more requests at once than max_queued_replies:
// only replies the kernel will not take count against it.
TEST(Protocol, AReadingClientThatBurstsPastASmallReplyQueueGetsEveryReply) {
    Daemon d(R"({"limits": {"max_inflight_per_client": 4, "max_queued_replies": 4}})");
    Listener echo(Listener::Mode::echo);
    auto fd = raw_connect(d.socket());
    ASSERT_TRUE(fd);
    constexpr std::uint64_t kBurst = 48;
    for (std::uint64_t id = 1; id <= kBurst; ++id) ASSERT_TRUE(send_datagram(fd.get(), connect_to(id, echo.endpoint())));
    std::set<std::uint64_t> answered;
    bool closed = false;
    while (answered.size() < kBurst) {
        auto r = receive_reply(fd.get(), std::chrono::seconds(5), &closed);
        ASSERT_TRUE(r) << (closed ? "egressd closed the connection" : "no reply") << " after " << answered.size();
        EXPECT_TRUE(answered.insert(r->reply.header.request_id).second);
        const auto st = status_of(r->reply);
        EXPECT_TRUE(st == 0 || st == EAGAIN) << st << " " << message_of(r->reply);
    }
    const auto text = d.scrape();
    EXPECT_LE(metric_value(text, R"(egress_clients_dropped_total{reason="reply_queue_full"})"), 0);
}

// A STATUS (or a request of any type) reusing the id of a connect in flight
// is refused with EEXIST, so that no two replies share an id.
TEST(Protocol, EveryRequestTypeIsRefusedAnIdInFlight) {
    Daemon d;
    auto fd = raw_connect(d.socket());
    ASSERT_TRUE(fd);
    const auto hole = *parse_address(kBlackHole, 80);
    ASSERT_TRUE(send_datagram(fd.get(), connect_to(7, hole, 1000)));
    auto st = exchange(fd.get(), proto::encode_status(7));
    ASSERT_TRUE(st);
    EXPECT_EQ(st->header.type, EGRESS_MSG_STATUS_REPLY);
    EXPECT_EQ(st->header.request_id, 7u);
    EXPECT_EQ(status_of(*st), static_cast<std::uint32_t>(EEXIST)) << message_of(*st);
    auto other = proto::encode_status(7);
    other[5] = 0x33;  // an unknown request type
    auto unknown = exchange(fd.get(), other);
    ASSERT_TRUE(unknown);
    EXPECT_EQ(unknown->header.type, EGRESS_MSG_ERROR_REPLY);
    EXPECT_EQ(status_of(*unknown), static_cast<std::uint32_t>(EEXIST)) << message_of(*unknown);
    auto again = exchange(fd.get(), connect_to(7, hole, 1000));
    ASSERT_TRUE(again);
    EXPECT_EQ(status_of(*again), static_cast<std::uint32_t>(EEXIST));
    // The original is answered once, at its deadline.
    auto orig = receive_reply(fd.get(), std::chrono::seconds(5));
    ASSERT_TRUE(orig);
    EXPECT_EQ(orig->reply.header.request_id, 7u);
    EXPECT_EQ(status_of(orig->reply), static_cast<std::uint32_t>(ETIMEDOUT));
    // Once answered, the id is free again.
    auto later = exchange(fd.get(), proto::encode_status(7));
    ASSERT_TRUE(later);
    EXPECT_EQ(status_of(*later), 0u);
}

// ::ffff:a.b.c.d is a.b.c.d: an IPv4-only pool serves it, over IPv4.
TEST(Protocol, AMappedIpv4DestinationIsConnectedAsIpv4) {
    Daemon d(R"({"pools": {"v4": {"sources": ["127.0.0.2"]}}, "default_pool": "v4"})");
    Listener echo(Listener::Mode::echo);
    auto mapped = *parse_address("::ffff:127.0.0.1", echo.endpoint().port);
    auto c = Client::open(d.socket());
    ASSERT_TRUE(c);
    auto r = c->connect(mapped);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_TRUE(r->meta.local && r->meta.remote);
    EXPECT_FALSE(r->meta.remote->v6);
    EXPECT_EQ(endpoint_string(*r->meta.remote), endpoint_string(echo.endpoint()));
    EXPECT_EQ(address_string(*r->meta.local), "127.0.0.2");
}

// A status document far past 4096 bytes is read whole, by libegress and by
// egress-connect.
TEST(Protocol, ALargeStatusDocumentIsReadWhole) {
    std::string pools = "{";
    for (int i = 0; i < 300; ++i)
        pools += std::string(i ? "," : "") + R"("pool-with-a-long-name-)" + std::to_string(i) +
                 R"(": {"sources": ["127.0.0.2", "127.0.0.3"]})";
    pools += "}";
    Daemon d(R"({"pools": )" + pools + R"(, "default_pool": "pool-with-a-long-name-0"})");
    auto c = Client::open(d.socket());
    ASSERT_TRUE(c);
    auto st = c->status();
    ASSERT_TRUE(st) << st.error().message;
    EXPECT_GT(st->size(), 65536u);
    EXPECT_TRUE(nlohmann::json::accept(*st));
    const auto out = run({egress_connect_bin(), "--socket", d.socket(), "--status", "--json"});
    EXPECT_EQ(out.status, 0) << out.err;
    EXPECT_GT(out.out.size(), 65536u);
    EXPECT_TRUE(nlohmann::json::accept(out.out)) << out.out.substr(0, 200);
}

// A TIMEOUT_MS above connect.max_timeout_ms is served with the maximum, and
// every reply after a connect attempt says so (section 6): success, failure
// and adopt mode. A request within the maximum, or refused before any
// connect, gets no TIMEOUT_MS; the counter counts the clamped ones served.
TEST(Protocol, ATimeoutAboveTheMaximumIsReportedInTheReply) {
    Daemon d(R"({"connect": {"default_timeout_ms": 200, "max_timeout_ms": 300}})");
    Listener echo(Listener::Mode::echo);
    auto fd = raw_connect(d.socket());
    auto reply_to = [&](std::uint64_t id, const proto::Bytes& request) {
        auto r = exchange(fd.get(), request);
        EXPECT_TRUE(r);
        EXPECT_EQ(r ? r->header.request_id : 0, id);
        return r ? std::get<proto::ConnectReply>(r->body) : proto::ConnectReply{};
    };

    auto ok = reply_to(1, connect_to(1, echo.endpoint(), 90000));
    EXPECT_EQ(ok.status, 0u) << ok.message;
    EXPECT_EQ(ok.timeout_ms, 300u);
    for (std::uint32_t asked : {0u, 250u, 300u}) {
        auto plain = reply_to(2, connect_to(2, echo.endpoint(), asked));
        EXPECT_EQ(plain.status, 0u) << plain.message;
        EXPECT_EQ(plain.timeout_ms, 0u) << "asked for " << asked << " ms";
    }

    const auto t0 = std::chrono::steady_clock::now();
    auto late = reply_to(3, connect_to(3, *parse_address(kBlackHole, 80), 90000));
    EXPECT_LT(ms_since(t0), 3000.0);  // the maximum, not 90 s
    EXPECT_EQ(late.status, static_cast<std::uint32_t>(ETIMEDOUT));
    EXPECT_EQ(late.timeout_ms, 300u);
    EXPECT_NE(late.message.find("300 ms (requested 90000 ms, clamped to connect.max_timeout_ms)"), std::string::npos)
        << late.message;

    proto::ConnectRequest unknown_pool;  // refused before any connect: nothing to report
    unknown_pool.dest = echo.endpoint();
    unknown_pool.timeout_ms = 90000;
    unknown_pool.pool = "no-such-pool";
    auto refused = reply_to(4, proto::encode_connect(4, unknown_pool));
    EXPECT_EQ(refused.status, static_cast<std::uint32_t>(ENOENT)) << refused.message;
    EXPECT_EQ(refused.timeout_ms, 0u);

    auto c = Client::open(d.socket());
    ASSERT_TRUE(c);
    UniqueFd own(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    auto adopted = c->adopt(own.get(), echo.endpoint(), {.timeout_ms = 90000});
    ASSERT_TRUE(adopted) << adopted.error().message;
    EXPECT_TRUE(adopted->status == 0 || adopted->status == EINPROGRESS) << adopted->message;
    EXPECT_EQ(adopted->timeout_ms, 300u);

    EXPECT_EQ(metric_value(d.scrape(), "egress_timeout_clamped_total"), 3);
}

}  // namespace
}  // namespace egress::test
