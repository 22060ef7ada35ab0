// egressd out of resources: at its open-files limit, and facing a client that
// never reads its replies. Requests still get precise replies, other clients
// keep being served, and every descriptor comes back once the pressure ends.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include "egress_client.hpp"
#include "harness.hpp"

namespace egress::test {
namespace {

Endpoint black_hole() { return *parse_address(kBlackHole, 80); }

proto::Bytes connect_request(std::uint64_t id, const Endpoint& dest, std::uint32_t timeout_ms) {
    proto::ConnectRequest req;
    req.dest = dest;
    req.timeout_ms = timeout_ms;
    return proto::encode_connect(id, req);
}

// Polls egressd's log for `text`; false after `timeout`.
bool log_shows(const Daemon& d, const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto t0 = std::chrono::steady_clock::now();
    while (d.log().find(text) == std::string::npos) {
        if (ms_since(t0) > static_cast<double>(timeout.count())) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

class Exhaustion : public ::testing::Test {
protected:
    void SetUp() override { idle_ = d_.settled_fds(); }
    void TearDown() override {
        auto c = Client::open(d_.socket());
        ASSERT_TRUE(c) << c.error().message;
        auto r = c->connect(echo_.endpoint());
        EXPECT_TRUE(r) << (r ? "" : r.error().message);
        c = Error{};
        EXPECT_EQ(d_.wait_fds(idle_), idle_) << "descriptor count did not return to idle";
        EXPECT_TRUE(d_.alive());
    }
    double metric(const std::string& series) const { return metric_value(d_.scrape(), series); }

    Daemon d_{R"({"connect": {"max_timeout_ms": 30000},
                  "limits": {"max_inflight_per_client": 16, "max_queued_replies": 16}})"};
    Listener echo_{Listener::Mode::echo};
    int idle_ = 0;
};

// RLIMIT_NOFILE lowered under a running egressd, then filled with connects
// that hang: further connects fail in socket() with EMFILE and say so, STATUS
// is still answered, a new client is refused with EMFILE (not left hanging),
// and once the hanging connects go, everything works again.
TEST_F(Exhaustion, AtItsOpenFilesLimitRequestsGetEmfileAndServiceResumes) {
    auto bystander = Client::open(d_.socket());
    ASSERT_TRUE(bystander);
    auto holder = raw_connect(d_.socket());
    ASSERT_EQ(d_.wait_fds(idle_ + 2), idle_ + 2);
    constexpr int kRoom = 8, kTries = 12;
    const long old_limit = d_.limit_fds(idle_ + 2 + kRoom);

    for (int i = 1; i <= kTries; ++i)
        ASSERT_TRUE(send_datagram(holder.get(), connect_request(static_cast<std::uint64_t>(i), black_hole(), 30000)));
    // The connects beyond the room fail at once; the others hang.
    int emfile = 0;
    while (auto r = receive_reply(holder.get(), std::chrono::milliseconds(emfile < kTries - kRoom ? 5000 : 300))) {
        EXPECT_EQ(status_of(r->reply), static_cast<std::uint32_t>(EMFILE)) << message_of(r->reply);
        EXPECT_NE(message_of(r->reply).find("socket()"), std::string::npos) << message_of(r->reply);
        ++emfile;
    }
    EXPECT_GE(emfile, kTries - kRoom);
    EXPECT_EQ(d_.open_fds(), idle_ + 2 + (kTries - emfile)) << "egressd should be at its limit";

    // An existing client: connects fail precisely, STATUS works.
    auto c = bystander->connect(echo_.endpoint());
    ASSERT_FALSE(c) << "a connect succeeded with no descriptor to spare";
    EXPECT_EQ(c.error().code, EMFILE) << c.error().message;
    auto status = bystander->status();
    EXPECT_TRUE(status) << (status ? "" : status.error().message);

    // A new client is accepted on the reserve descriptor and refused.
    auto late = raw_connect(d_.socket());
    auto refusal = receive_reply(late.get());
    ASSERT_TRUE(refusal) << "a client arriving at the limit got no reply";
    EXPECT_EQ(refusal->reply.header.request_id, 0u);
    EXPECT_EQ(status_of(refusal->reply), static_cast<std::uint32_t>(EMFILE)) << message_of(refusal->reply);
    bool closed = false;
    EXPECT_FALSE(receive_reply(late.get(), std::chrono::seconds(5), &closed));
    EXPECT_TRUE(closed) << "the refused client was not disconnected";

    // The hanging connects go with their client: descriptors free up.
    holder.reset();
    ASSERT_EQ(d_.wait_fds(idle_ + 1), idle_ + 1);
    auto ok = bystander->connect(echo_.endpoint());
    EXPECT_TRUE(ok) << (ok ? "" : ok.error().message);
    auto fresh = Client::open(d_.socket());
    ASSERT_TRUE(fresh);
    auto ok2 = fresh->connect(echo_.endpoint());
    EXPECT_TRUE(ok2) << (ok2 ? "" : ok2.error().message);
    fresh = Error{};
    bystander = Error{};
    d_.limit_fds(old_limit);

    const auto text = d_.scrape();
    EXPECT_EQ(metric_value(text, R"(egress_connects_total{pool="default",result="EMFILE",source="kernel",transport="tcp"})"),
              emfile + 1);
    EXPECT_EQ(metric_value(text, "egress_accept_errors_total"), 1);
    EXPECT_EQ(metric_value(text, "egress_clients_refused_total"), 1);
}

// With no descriptor at all to spare (the limit below what egressd already
// holds, so even the reserve cannot be taken back), a waiting client stays in
// the backlog: egressd retries accept every 100 ms instead of spinning, keeps
// serving its existing clients, and accepts the waiting one once allowed.
TEST_F(Exhaustion, AcceptBacksOffWithoutSpinningAndResumes) {
    auto bystander = Client::open(d_.socket());
    ASSERT_TRUE(bystander);
    ASSERT_EQ(d_.wait_fds(idle_ + 1), idle_ + 1);
    const long old_limit = d_.limit_fds(3);  // stdin, stdout and stderr only

    auto waiting = raw_connect(d_.socket());  // the kernel queues it
    ASSERT_TRUE(send_datagram(waiting.get(), proto::encode_status(7)));
    ASSERT_TRUE(log_shows(d_, "pausing accepts for")) << d_.log();

    // Measure over at least a second while accept keeps failing.
    const double cpu0 = d_.cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    auto c = bystander->connect(echo_.endpoint());
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().code, EMFILE) << c.error().message;
    EXPECT_TRUE(bystander->status());
    EXPECT_FALSE(receive_reply(waiting.get(), std::chrono::milliseconds(1000)))
        << "a client was served while egressd had no descriptor for it";
    const double paused_ms = ms_since(t0);
    const double cpu = d_.cpu_seconds() - cpu0;
    std::printf("while accept failed: %.2f s of CPU in %.0f ms\n", cpu, paused_ms);
    EXPECT_LT(cpu, 0.25 * paused_ms / 1000.0) << "egressd spins on the failing accept";

    d_.limit_fds(old_limit);
    auto r = receive_reply(waiting.get());
    ASSERT_TRUE(r) << "the waiting client was never served after descriptors freed up";
    EXPECT_EQ(r->reply.header.request_id, 7u);
    EXPECT_EQ(status_of(r->reply), 0u) << message_of(r->reply);
    const double paused_total_ms = ms_since(t0);

    const double errors = metric("egress_accept_errors_total");
    EXPECT_GE(errors, 1);
    // One retry per 100 ms backoff, with room to spare; a spin makes thousands.
    EXPECT_LE(errors, 5 + 3 * (paused_total_ms + 5000) / 100) << "accept retried faster than its backoff";
    waiting.reset();
    bystander = Error{};
    EXPECT_EQ(d_.wait_fds(idle_), idle_);
}

// A client that sends and never reads: once its socket buffer is full and
// limits.max_queued_replies more replies wait, egressd drops it, cancels its
// hanging connects and closes all it held, while another client is served.
TEST_F(Exhaustion, AClientThatNeverReadsIsDroppedAlone) {
    auto bystander = Client::open(d_.socket());
    ASSERT_TRUE(bystander);
    auto reader_less = raw_connect(d_.socket());
    const timeval tv{5, 0};
    ::setsockopt(reader_less.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    constexpr int kHanging = 8;
    std::uint64_t id = 0;
    for (int i = 0; i < kHanging; ++i)
        ASSERT_TRUE(send_datagram(reader_less.get(), connect_request(++id, black_hole(), 30000)));
    ASSERT_EQ(d_.wait_fds(idle_ + 2 + kHanging), idle_ + 2 + kHanging);

    // Requests answered at once (refused connects, and EAGAIN past the
    // per-client in-flight limit) until egressd gives up on this client.
    const auto refused = closed_port();
    const auto t0 = std::chrono::steady_clock::now();
    bool dropped = false;
    while (!dropped && id < 200000 && ms_since(t0) < 20000)
        dropped = !send_datagram(reader_less.get(), connect_request(++id, refused, 1000));
    ASSERT_TRUE(dropped) << "egressd kept a client that never reads after " << id << " requests";
    std::printf("dropped after %lu requests\n", static_cast<unsigned long>(id));

    EXPECT_EQ(d_.wait_fds(idle_ + 1), idle_ + 1) << "the dropped client's descriptors are still open";
    auto ok = bystander->connect(echo_.endpoint());
    EXPECT_TRUE(ok) << (ok ? "" : ok.error().message);
    // The client learns of it: end-of-stream, or ECONNRESET as its requests
    // were left unread, after whatever replies it had been sent.
    int delivered = 0;
    bool closed = false;
    while (receive_reply(reader_less.get(), std::chrono::seconds(5), &closed)) ++delivered;
    EXPECT_TRUE(closed) << "no end-of-stream after " << delivered << " replies";

    const auto text = d_.scrape();
    EXPECT_EQ(metric_value(text, R"(egress_clients_dropped_total{reason="reply_queue_full"})"), 1);
    EXPECT_GE(metric_value(text, R"(egress_connects_cancelled_total{pool="default"})"), kHanging);
    EXPECT_TRUE(log_shows(d_, "does not read its replies"));
}

}  // namespace
}  // namespace egress::test
