// Clients that misbehave: garbage, descriptors sent to egressd, vanishing
// with connects in flight. egressd answers precisely or disconnects, leaks
// no descriptor, and keeps serving everyone else.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "codec.hpp"
#include "egress_client.hpp"
#include "harness.hpp"

namespace egress::test {
namespace {

Endpoint black_hole() { return *parse_address(kBlackHole, 80); }

proto::Bytes valid_request(std::uint64_t id) {
    proto::ConnectRequest req;
    req.dest = black_hole();
    req.timeout_ms = 100;
    return proto::encode_connect(id, req);
}

class Hostile : public ::testing::Test {
protected:
    void SetUp() override {
        idle_ = d_.settled_fds();
        std::printf("egressd idle descriptors: %d\n", idle_);
    }
    // egressd still serves a well-behaved client and holds no extra descriptor.
    void TearDown() override {
        auto c = Client::open(d_.socket());
        ASSERT_TRUE(c);
        EXPECT_TRUE(c->connect(echo_.endpoint()));
        c = Error{};  // closed
        const int after = d_.wait_fds(idle_);
        EXPECT_EQ(after, idle_) << "descriptor count did not return to idle";
        std::printf("egressd descriptors after the test: %d\n", after);
        EXPECT_TRUE(d_.alive());
    }
    // A short timeout cap: a request that mutates into a valid one ends fast.
    Daemon d_{R"({"connect": {"default_timeout_ms": 100, "max_timeout_ms": 200}})"};
    Listener echo_{Listener::Mode::echo};
    int idle_ = 0;
};

TEST_F(Hostile, UnframeableDatagramClosesOnlyThatClient) {
    auto bystander = Client::open(d_.socket());
    ASSERT_TRUE(bystander);
    auto bad = raw_connect(d_.socket());
    EXPECT_FALSE(exchange(bad.get(), proto::Bytes{'h', 'e', 'l', 'l', 'o'}));  // too short
    auto bad2 = raw_connect(d_.socket());
    auto wrong_magic = valid_request(1);
    wrong_magic[0] = 'X';
    EXPECT_FALSE(exchange(bad2.get(), wrong_magic));
    auto bad3 = raw_connect(d_.socket());
    EXPECT_FALSE(exchange(bad3.get(), proto::Bytes{}));  // zero-length: unframeable too
    EXPECT_TRUE(bystander->connect(echo_.endpoint()));
    const auto text = d_.scrape();
    EXPECT_EQ(metric_value(text, R"(egress_clients_dropped_total{reason="unframed"})"), 3);
    EXPECT_EQ(metric_value(text, R"(egress_protocol_errors_total{kind="unframed"})"), 3);
    EXPECT_NE(d_.log().find("datagram of 0 bytes"), std::string::npos);
}

// Larger than egressd's receive buffer: the kernel cuts it (MSG_TRUNC) and
// egressd answers EMSGSIZE from the header it did receive.
TEST_F(Hostile, TruncatedDatagramsGetEmsgsize) {
    auto s = raw_connect(d_.socket());
    const int big = 256 * 1024;
    ::setsockopt(s.get(), SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    for (const std::size_t size : {std::size_t{EGRESS_MAX_DATAGRAM + 1}, std::size_t{65536}, std::size_t{200000}}) {
        auto bytes = valid_request(size);
        bytes.resize(size, 0xAB);
        auto r = exchange(s.get(), bytes);
        ASSERT_TRUE(r) << size << " bytes: " << std::strerror(errno);
        EXPECT_EQ(r->header.request_id, size);
        EXPECT_EQ(status_of(*r), static_cast<std::uint32_t>(EMSGSIZE)) << message_of(*r);
    }
    auto r = exchange(s.get(), valid_request(9));  // the connection still serves
    ASSERT_TRUE(r);
    EXPECT_EQ(status_of(*r), static_cast<std::uint32_t>(ETIMEDOUT)) << message_of(*r);
    EXPECT_EQ(metric_value(d_.scrape(), R"(egress_protocol_errors_total{kind="oversized"})"), 3);
}

TEST_F(Hostile, EachMalformedRequestGetsAPreciseReply) {
    auto s = raw_connect(d_.socket());
    struct Case {
        const char* what;
        proto::Bytes bytes;
        std::uint32_t status;
        const char* says;
    };
    auto version = valid_request(2);
    version[4] = 9;
    auto flags = valid_request(3);
    flags[6] = 1;
    auto length = valid_request(4);
    length[16] += 1;
    auto type = valid_request(5);
    type[5] = 0x42;
    auto field = valid_request(6);
    field.resize(field.size() - 1);
    field[16] -= 1;  // keep the header honest: the field itself is short
    proto::Bytes oversized = valid_request(7);
    oversized.resize(EGRESS_MAX_DATAGRAM + 100, 0);
    const Case cases[] = {
        {"version", version, EPROTONOSUPPORT, "version 9"},
        {"flags", flags, EINVAL, "flags"},
        {"length", length, EBADMSG, "payload"},
        {"type", type, EOPNOTSUPP, "type 66"},
        {"field", field, EBADMSG, "0x0003"},
        {"oversized", oversized, EMSGSIZE, "4096"},
    };
    for (const auto& c : cases) {
        auto r = exchange(s.get(), c.bytes);
        ASSERT_TRUE(r) << c.what << ": connection closed";
        EXPECT_EQ(r->header.request_id, proto::read_header(c.bytes)->request_id) << c.what;
        EXPECT_EQ(status_of(*r), c.status) << c.what << ": " << message_of(*r);
        EXPECT_NE(message_of(*r).find(c.says), std::string::npos) << c.what << ": " << message_of(*r);
    }
}

TEST_F(Hostile, DescriptorsSentToEgressdAreClosed) {
    auto s = raw_connect(d_.socket());
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    auto r = exchange(s.get(), valid_request(1), {.fds = {p[0]}});
    ::close(p[0]);
    ASSERT_TRUE(r);
    EXPECT_EQ(status_of(*r), static_cast<std::uint32_t>(EBADMSG));
    EXPECT_NE(message_of(*r).find("descriptor"), std::string::npos) << message_of(*r);
    // egressd closed its copy: the pipe's read side is gone, so writing fails.
    EXPECT_EQ(d_.wait_fds(idle_ + 1), idle_ + 1);  // only our connection remains
    EXPECT_LT(::write(p[1], "x", 1), 0);
    ::close(p[1]);
}

// More descriptors than egressd has room for (the kernel's maximum of 253 in
// one message, in several datagrams of one batch): all closed, none kept.
TEST_F(Hostile, ManyDescriptorsAreAllClosed) {
    auto s = raw_connect(d_.socket());
    std::vector<int> fds;
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    for (int i = 0; i < 253; ++i) fds.push_back(p[0]);  // one pipe end, many references
    for (std::uint64_t id = 1; id <= 4; ++id)
        ASSERT_TRUE(send_datagram(s.get(), valid_request(id), {.fds = fds})) << std::strerror(errno);
    ::close(p[0]);
    for (int i = 0; i < 4; ++i) {
        auto r = receive_reply(s.get());
        ASSERT_TRUE(r);
        EXPECT_EQ(status_of(r->reply), static_cast<std::uint32_t>(EBADMSG)) << message_of(r->reply);
        EXPECT_NE(message_of(r->reply).find("descriptors"), std::string::npos) << message_of(r->reply);
    }
    EXPECT_EQ(d_.wait_fds(idle_ + 1), idle_ + 1);
    EXPECT_LT(::write(p[1], "x", 1), 0) << "egressd still holds the pipe's read end";
    ::close(p[1]);
    EXPECT_EQ(metric_value(d_.scrape(), R"(egress_protocol_errors_total{kind="fd_attached"})"), 4);
}

// Credentials in ancillary data (genuine or, as root may, forged) never reach
// egressd: it does not set SO_PASSCRED, so the kernel drops them and the
// request is served on its own merits.
TEST_F(Hostile, CredentialsSentToEgressdChangeNothing) {
    auto s = raw_connect(d_.socket());
    const int one = 1;
    ::setsockopt(s.get(), SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
    const ucred own{::getpid(), ::getuid(), ::getgid()}, forged{1, 0, 0};
    std::uint64_t id = 0;
    for (const auto& creds : {own, forged}) {
        auto r = exchange(s.get(), valid_request(++id), {.credentials = creds});
        ASSERT_TRUE(r) << "pid " << creds.pid << ": " << std::strerror(errno);
        EXPECT_EQ(status_of(*r), static_cast<std::uint32_t>(ETIMEDOUT)) << message_of(*r);
    }
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    auto r = exchange(s.get(), valid_request(++id), {.fds = {p[0]}, .credentials = forged});
    ::close(p[0]);
    ASSERT_TRUE(r);
    EXPECT_EQ(status_of(*r), static_cast<std::uint32_t>(EBADMSG)) << message_of(*r);
    EXPECT_EQ(d_.wait_fds(idle_ + 1), idle_ + 1);
    EXPECT_LT(::write(p[1], "x", 1), 0);
    ::close(p[1]);
}

TEST_F(Hostile, DisconnectingClientCancelsItsConnectsAtOnce) {
    {
        auto c = Client::open(d_.socket());
        ASSERT_TRUE(c);
        for (int i = 0; i < 100; ++i) ASSERT_TRUE(c->submit(black_hole(), {.timeout_ms = 30000}));
        ASSERT_EQ(d_.wait_fds(idle_ + 1 + 100), idle_ + 1 + 100);
    }  // gone with 100 connects in flight
    // Back to idle long before the 30 s deadline: the sockets were closed.
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(d_.wait_fds(idle_, std::chrono::seconds(3)), idle_);
    EXPECT_LT(ms_since(t0), 3000.0);
}

TEST_F(Hostile, RandomGarbageNeverHurtsTheDaemon) {
    std::mt19937 rng(42);
    for (int i = 0; i < 300; ++i) {
        auto s = raw_connect(d_.socket());
        auto bytes = valid_request(static_cast<std::uint64_t>(i) + 1);
        const int mode = i % 3;
        if (mode == 0) {  // flip random bytes
            for (int k = 0; k < 4; ++k) bytes[rng() % bytes.size()] = static_cast<std::uint8_t>(rng());
        } else if (mode == 1) {  // cut it short
            bytes.resize(rng() % bytes.size());
        } else {  // pure noise
            bytes.resize(rng() % 200);
            for (auto& b : bytes) b = static_cast<std::uint8_t>(rng());
        }
        exchange(s.get(), bytes);  // a reply or a disconnect, never a hang (5 s safety net)
    }
    EXPECT_TRUE(d_.alive());
}

TEST_F(Hostile, AFloodOfBadClientsIsCountedInFullButLoggedSparingly) {
    for (int i = 0; i < 50; ++i) {
        auto s = raw_connect(d_.socket());
        EXPECT_FALSE(exchange(s.get(), proto::Bytes{'b', 'a', 'd'}));
    }
    const auto text = d_.scrape();
    EXPECT_EQ(metric_value(text, R"(egress_clients_dropped_total{reason="unframed"})"), 50);
    const auto log = d_.log();
    std::size_t lines = 0;
    for (auto at = log.find("] dropped client"); at != std::string::npos; at = log.find("] dropped client", at + 1))
        ++lines;
    EXPECT_GE(lines, 1u);
    EXPECT_LE(lines, 5u) << log;
}

}  // namespace
}  // namespace egress::test
