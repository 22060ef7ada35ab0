// Adopt mode against the real egressd: a client sends its own socket, gets
// the reply as soon as connect() returns, and finishes the connect with its
// own event loop. egressd keeps no descriptor once each connect has ended.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "codec.hpp"
#include "egress.h"
#include "egress_client.hpp"
#include "harness.hpp"
#include "peer_netns.hpp"
#include "sockaddr.hpp"

#include <nlohmann/json.hpp>

namespace egress::test {
namespace {

constexpr const char* kPoolConfig = R"({
    "pools": {"p": {"sources": ["127.0.0.2", "127.0.0.3"], "port_strategy": "window"}},
    "default_pool": "p",
    "clients": [{"name": "no-adopt", "match": {"uid": 4242}, "adopt": false}],
    "default_client": {"name": "loopback", "destinations": [{"action": "allow", "dest": "127.0.0.0/8"}]}
})";

UniqueFd tcp_socket(int family = AF_INET, bool nonblocking = true) {
    return UniqueFd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0));
}

proto::Bytes adopt_request(std::uint64_t id, const Endpoint& dest, std::uint32_t flags = EGRESS_CONNECT_ADOPT,
                           std::uint32_t timeout_ms = 2000) {
    proto::ConnectRequest req;
    req.dest = dest;
    req.flags = flags;
    req.timeout_ms = timeout_ms;
    return proto::encode_connect(id, req);
}

// What the program's own loop sees: writable, then SO_ERROR.
int finish_connect(int fd) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 5000) != 1) return ETIMEDOUT;
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    return err;
}

std::optional<Endpoint> local_of(int fd) {
    SockAddr sa;
    sa.len = sizeof sa.storage;
    if (::getsockname(fd, sa.get(), &sa.len) != 0) return std::nullopt;
    auto ep = from_sockaddr(sa.get(), sa.len);
    return ep ? std::optional(unmap_ipv4(*ep)) : std::nullopt;
}

class Adopt : public ::testing::Test {
protected:
    void SetUp() override { idle_ = d_.settled_fds(); }
    void TearDown() override {
        EXPECT_EQ(d_.wait_fds(idle_), idle_) << "egressd kept a descriptor";
        EXPECT_TRUE(d_.alive());
    }
    // Sends `sock` for adoption and returns the reply.
    proto::ConnectReply adopt(int conn, std::uint64_t id, int sock, const Endpoint& dest,
                              std::uint32_t flags = EGRESS_CONNECT_ADOPT) {
        auto r = exchange(conn, adopt_request(id, dest, flags), {.fds = {sock}});
        EXPECT_TRUE(r) << "no reply";
        if (!r) return {};
        EXPECT_EQ(r->header.flags, 0) << "an adopt-mode reply carries no descriptor";
        return std::get<proto::ConnectReply>(r->body);
    }

    Daemon d_{kPoolConfig};
    Listener echo_{Listener::Mode::echo};
    int idle_ = 0;
};

TEST_F(Adopt, TheProgramsOwnSocketIsConnectedFromThePoolAndCarriesBytes) {
    auto conn = raw_connect(d_.socket());
    for (std::uint64_t id = 1; id <= 4; ++id) {
        auto sock = tcp_socket(id % 2 ? AF_INET : AF_INET6);
        const int before = ::fcntl(sock.get(), F_GETFL);
        const auto rep = adopt(conn.get(), id, sock.get(), echo_.endpoint());
        ASSERT_TRUE(rep.status == 0 || rep.status == EINPROGRESS) << rep.error_name << ": " << rep.message;
        if (rep.status == EINPROGRESS) {
            EXPECT_EQ(rep.error_name, "EINPROGRESS");
        }
        EXPECT_EQ(rep.pool, "p");
        EXPECT_GE(rep.attempts, 1u);
        EXPECT_EQ(finish_connect(sock.get()), 0);
        const auto local = local_of(sock.get());
        ASSERT_TRUE(local && rep.local);
        EXPECT_TRUE(address_string(*local) == "127.0.0.2" || address_string(*local) == "127.0.0.3")
            << address_string(*local);
        EXPECT_EQ(endpoint_string(*local), endpoint_string(*rep.local));
        EXPECT_EQ(::fcntl(sock.get(), F_GETFL), before) << "the file flags are the program's";
        ASSERT_EQ(::write(sock.get(), "ping", 4), 4);
        pollfd p{sock.get(), POLLIN, 0};
        ASSERT_EQ(::poll(&p, 1, 5000), 1);
        char buf[8] = {};
        EXPECT_EQ(::read(sock.get(), buf, sizeof buf), 4);
        EXPECT_STREQ(buf, "ping");
    }
    // Counted once each connect ended (egressd watched those under way).
    for (int tries = 0; tries < 100; ++tries) {
        if (metric_value(d_.scrape(), R"(egress_adopted_total{result="ok"})") == 4) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const auto text = d_.scrape();
    EXPECT_EQ(metric_value(text, R"(egress_adopted_total{result="ok"})"), 4);
    const double ok = std::max(0.0, metric_value(text, R"(egress_connects_total{pool="p",result="ok",source="127.0.0.2",transport="tcp"})")) +
                      std::max(0.0, metric_value(text, R"(egress_connects_total{pool="p",result="ok",source="127.0.0.3",transport="tcp"})"));
    EXPECT_EQ(ok, 4);
}

TEST_F(Adopt, ARefusedPortShowsInTheProgramsSoError) {
    auto conn = raw_connect(d_.socket());
    auto sock = tcp_socket();
    const auto rep = adopt(conn.get(), 1, sock.get(), closed_port());
    if (rep.status == EINPROGRESS) {
        EXPECT_EQ(finish_connect(sock.get()), ECONNREFUSED);
    } else {
        EXPECT_EQ(rep.status, static_cast<std::uint32_t>(ECONNREFUSED)) << rep.message;
    }
}

TEST_F(Adopt, ADeniedDestinationLeavesTheSocketUnconnected) {
    auto conn = raw_connect(d_.socket());
    auto sock = tcp_socket();
    const auto rep = adopt(conn.get(), 1, sock.get(), *parse_address("169.254.169.254", 80));
    EXPECT_EQ(rep.status, static_cast<std::uint32_t>(EACCES)) << rep.message;
    SockAddr peer;
    peer.len = sizeof peer.storage;
    EXPECT_NE(::getpeername(sock.get(), peer.get(), &peer.len), 0);
    EXPECT_EQ(errno, ENOTCONN);
    // Still the program's to use: a connect of its own works.
    const auto sa = to_sockaddr(echo_.endpoint());
    EXPECT_TRUE(::connect(sock.get(), sa.get(), sa.len) == 0 || errno == EINPROGRESS);
}

TEST_F(Adopt, EachWrongSocketGetsItsPreciseReply) {
    auto conn = raw_connect(d_.socket());
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    UniqueFd pr(p[0]), pw(p[1]);
    UniqueFd raw(::socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP));
    ASSERT_TRUE(raw) << std::strerror(errno);
    auto listening = tcp_socket();
    ASSERT_EQ(::listen(listening.get(), 1), 0);
    auto connected = tcp_socket();
    const auto sa = to_sockaddr(echo_.endpoint());
    ::connect(connected.get(), sa.get(), sa.len);
    ASSERT_EQ(finish_connect(connected.get()), 0);
    auto blocking = tcp_socket(AF_INET, false);
    struct Case {
        const char* what;
        int fd;
        std::uint32_t status;
        const char* says;
    };
    const Case cases[] = {
        {"pipe", pr.get(), ENOTSOCK, "not a socket"},
        {"raw", raw.get(), EPROTOTYPE, "SOCK_STREAM or SOCK_DGRAM"},
        {"listening", listening.get(), EINVAL, "listening"},
        {"connected", connected.get(), EISCONN, "connected"},
        {"blocking", blocking.get(), EINVAL, "blocking"},
    };
    std::uint64_t id = 0;
    for (const auto& c : cases) {
        const auto rep = adopt(conn.get(), ++id, c.fd, echo_.endpoint());
        EXPECT_EQ(rep.status, c.status) << c.what << ": " << rep.message;
        EXPECT_NE(rep.message.find(c.says), std::string::npos) << c.what << ": " << rep.message;
    }
    // Two descriptors, none, and one without the flag.
    auto a = tcp_socket(), b = tcp_socket();
    auto two = exchange(conn.get(), adopt_request(++id, echo_.endpoint()), {.fds = {a.get(), b.get()}});
    ASSERT_TRUE(two);
    EXPECT_EQ(status_of(*two), static_cast<std::uint32_t>(EBADMSG));
    EXPECT_NE(message_of(*two).find("got 2"), std::string::npos) << message_of(*two);
    auto none = exchange(conn.get(), adopt_request(++id, echo_.endpoint()));
    ASSERT_TRUE(none);
    EXPECT_EQ(status_of(*none), static_cast<std::uint32_t>(EBADMSG));
    EXPECT_NE(message_of(*none).find("got 0"), std::string::npos) << message_of(*none);
    auto plain = exchange(conn.get(), adopt_request(++id, echo_.endpoint(), 0), {.fds = {a.get()}});
    ASSERT_TRUE(plain);
    EXPECT_EQ(status_of(*plain), static_cast<std::uint32_t>(EBADMSG));
    EXPECT_NE(message_of(*plain).find("must not carry descriptors"), std::string::npos) << message_of(*plain);
    auto with_blocking = adopt(conn.get(), ++id, a.get(), echo_.endpoint(), EGRESS_CONNECT_ADOPT | EGRESS_CONNECT_BLOCKING);
    EXPECT_EQ(with_blocking.status, static_cast<std::uint32_t>(EINVAL)) << with_blocking.message;
    // An AF_INET socket cannot reach an IPv6 destination.
    auto v6 = adopt(conn.get(), ++id, a.get(), *parse_address("::1", echo_.endpoint().port));
    EXPECT_EQ(v6.status, static_cast<std::uint32_t>(EAFNOSUPPORT)) << v6.message;
    EXPECT_EQ(d_.wait_fds(idle_ + 1), idle_ + 1) << "egressd closed every copy";
}

TEST(AdoptRule, ARuleMayRefuseAdoptMode) {
    Daemon d(R"({"default_client": {"name": "no-adopt", "adopt": false,
                 "destinations": [{"action": "allow", "dest": "127.0.0.0/8"}]}})");
    Listener echo(Listener::Mode::echo);
    const int idle = d.settled_fds();
    auto conn = raw_connect(d.socket());
    auto sock = tcp_socket();
    auto r = exchange(conn.get(), adopt_request(1, echo.endpoint()), {.fds = {sock.get()}});
    ASSERT_TRUE(r);
    EXPECT_EQ(status_of(*r), static_cast<std::uint32_t>(EACCES)) << message_of(*r);
    EXPECT_NE(message_of(*r).find("no-adopt"), std::string::npos) << message_of(*r);
    EXPECT_EQ(d.wait_fds(idle + 1), idle + 1);
    // A plain CONNECT under the same rule still works.
    auto c = Client::open(d.socket());
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->connect(echo.endpoint()));
}

TEST_F(Adopt, LibegressAdoptsTheCallersSocketInCppAndC) {
    auto c = Client::open(d_.socket());
    ASSERT_TRUE(c);
    auto sock = tcp_socket();
    auto rep = c->adopt(sock.get(), echo_.endpoint(), {.nodelay = true});
    ASSERT_TRUE(rep) << rep.error().message;
    ASSERT_TRUE(rep->status == 0 || rep->status == EINPROGRESS) << rep->message;
    EXPECT_EQ(finish_connect(sock.get()), 0);
    int nodelay = 0;
    socklen_t len = sizeof nodelay;
    ::getsockopt(sock.get(), IPPROTO_TCP, TCP_NODELAY, &nodelay, &len);
    EXPECT_EQ(nodelay, 1);
    EXPECT_GE(::fcntl(sock.get(), F_GETFD), 0) << "the caller's fd stays open";

    egress_reply out{};
    egress_client* ec = egress_open(d_.socket().c_str(), &out);
    ASSERT_NE(ec, nullptr) << out.message;
    auto csock = tcp_socket();
    const int r = egress_adopt(ec, csock.get(), "127.0.0.1", echo_.endpoint().port, nullptr, &out);
    EXPECT_TRUE(r == 0 || out.status == EINPROGRESS) << out.error_name << ": " << out.message;
    EXPECT_EQ(finish_connect(csock.get()), 0);
    EXPECT_EQ(std::string(out.pool), "p");
    EXPECT_EQ(std::string(out.local).rfind("127.0.0.", 0), 0u) << out.local;
    egress_close(ec);
}

TEST_F(Adopt, TheStatusDocumentListsTheFeatureAndTheRuleKeys) {
    auto c = Client::open(d_.socket());
    ASSERT_TRUE(c);
    auto st = c->status();
    ASSERT_TRUE(st) << st.error().message;
    auto doc = nlohmann::json::parse(*st);
    EXPECT_EQ(doc["features"], nlohmann::json::array({"adopt", "host_names", "udp"}));
    EXPECT_EQ(doc["clients"][0]["adopt"], false);
    EXPECT_EQ(doc["clients"][1]["adopt"], true);
    EXPECT_EQ(doc["clients"][1]["adopt_other_netns"], false);
}

// Watches toward the black hole: no answer ever comes, so each watch ends
// at its request's deadline. The kernel picks the source (a loopback source
// cannot leave through the black hole's veth).
constexpr const char* kHoleConfig = R"({
    "pools": {"hole": {}},
    "default_pool": "hole",
    "default_client": {"name": "anyone"}
})";

Endpoint black_hole() { return *parse_address(kBlackHole, 80); }

proto::ConnectReply connect_reply(const std::optional<proto::Reply>& r) {
    EXPECT_TRUE(r) << "no reply";
    if (!r) return {};
    EXPECT_EQ(r->header.flags, 0) << "an adopt-mode reply carries no descriptor";
    const auto* rep = std::get_if<proto::ConnectReply>(&r->body);
    EXPECT_TRUE(rep) << "not a CONNECT_REPLY";
    return rep ? *rep : proto::ConnectReply{};
}

int tcp_state(int fd) {
    tcp_info info{};
    socklen_t len = sizeof info;
    return ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 ? info.tcpi_state : -1;
}

// The program's side of a connect still under way: not writable, no error,
// SYN sent (SO_ERROR last: reading it would clear an error).
void expect_still_connecting(int fd) {
    pollfd p{fd, POLLOUT, 0};
    EXPECT_EQ(::poll(&p, 1, 0), 0) << "revents " << p.revents;
    EXPECT_EQ(tcp_state(fd), TCP_SYN_SENT);
    int err = -1;
    socklen_t len = sizeof err;
    ASSERT_EQ(::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len), 0);
    EXPECT_EQ(err, 0);
}

TEST(AdoptWatch, EndsAtTheDeadlineAndLeavesTheProgramsConnectAlone) {
    Daemon d(kHoleConfig);
    const int idle = d.settled_fds();
    auto conn = raw_connect(d.socket());
    auto sock = tcp_socket();
    const auto t0 = std::chrono::steady_clock::now();
    const auto rep = connect_reply(
        exchange(conn.get(), adopt_request(1, black_hole(), EGRESS_CONNECT_ADOPT, 300), {.fds = {sock.get()}}));
    ASSERT_EQ(rep.status, static_cast<std::uint32_t>(EINPROGRESS)) << rep.error_name << ": " << rep.message;
    EXPECT_EQ(rep.error_name, "EINPROGRESS");
    EXPECT_EQ(rep.pool, "hole");
    EXPECT_EQ(rep.timeout_ms, 300u) << "the reply names the deadline it applies";
    EXPECT_EQ(d.open_fds(), idle + 2) << "the client's connection and the watched copy";
    EXPECT_EQ(metric_value(d.scrape(), R"(egress_adopted_total{result="ETIMEDOUT"})"), -1) << "counted early";

    EXPECT_EQ(d.wait_fds(idle + 1, std::chrono::seconds(3)), idle + 1) << "the watch kept its copy";
    EXPECT_GE(ms_since(t0), 250) << "the watch ended before its deadline";
    expect_still_connecting(sock.get());

    const auto adopted = R"(egress_adopted_total{result="ETIMEDOUT"})";
    const auto connects = R"(egress_connects_total{pool="hole",result="ETIMEDOUT",source="kernel",transport="tcp"})";
    EXPECT_TRUE(eventually([&] { return metric_value(d.scrape(), adopted) == 1; }));
    const auto text = d.scrape();
    EXPECT_EQ(metric_value(text, adopted), 1);
    EXPECT_EQ(metric_value(text, connects), 1);
    EXPECT_EQ(metric_value(text, "egress_requests_in_flight"), 0);
    EXPECT_EQ(metric_value(text, R"(egress_adopted_total{result="unknown"})"), -1);
    EXPECT_TRUE(d.alive());
    conn.reset();
    EXPECT_EQ(d.wait_fds(idle), idle);
}

TEST(AdoptWatch, OutlivesItsClientsConnectionAndThenReleasesItsShare) {
    Daemon d(R"({
        "pools": {"hole": {}},
        "default_pool": "hole",
        "clients": [{"name": "root", "match": {"uid": 0}, "limits": {"max_connections_per_uid": 1}}]
    })");
    const int idle = d.settled_fds();
    auto sock = tcp_socket();
    auto conn = raw_connect(d.socket());
    const auto t0 = std::chrono::steady_clock::now();
    const auto rep = connect_reply(
        exchange(conn.get(), adopt_request(1, black_hole(), EGRESS_CONNECT_ADOPT, 500), {.fds = {sock.get()}}));
    ASSERT_EQ(rep.status, static_cast<std::uint32_t>(EINPROGRESS)) << rep.error_name << ": " << rep.message;
    conn.reset();  // at once: the watch goes on without its connection

    // Until the watch ends it holds the connection's share of the quota.
    {
        auto early = raw_connect(d.socket());
        const auto r = receive_reply(early.get(), std::chrono::seconds(2));
        ASSERT_TRUE(r) << "a second connection of uid 0 was let in during the watch";
        EXPECT_LT(ms_since(t0), 450) << "too slow to see the watch hold its share";
        EXPECT_EQ(status_of(r->reply), static_cast<std::uint32_t>(EAGAIN)) << message_of(r->reply);
        EXPECT_NE(message_of(r->reply).find("max_connections_per_uid"), std::string::npos) << message_of(r->reply);
    }
    EXPECT_EQ(metric_value(d.scrape(), "egress_requests_in_flight"), 1) << "the watch counts as in flight";

    EXPECT_EQ(d.wait_fds(idle, std::chrono::seconds(3)), idle) << "the watch kept its copy";
    EXPECT_GE(ms_since(t0), 450) << "the watch ended before its deadline";
    EXPECT_TRUE(d.alive());
    EXPECT_GE(::fcntl(sock.get(), F_GETFD), 0) << "the program's socket stays open";
    expect_still_connecting(sock.get());
    EXPECT_TRUE(eventually([&] { return metric_value(d.scrape(), "egress_requests_in_flight") == 0; }));
    EXPECT_EQ(metric_value(d.scrape(), R"(egress_adopted_total{result="ETIMEDOUT"})"), 1);

    // The share is back: a new connection gets in (the listener may still be
    // closing the refused one), and the status document shows nothing in flight.
    std::optional<proto::StatusReply> st;
    EXPECT_TRUE(eventually([&] {
        auto c = raw_connect(d.socket());
        auto r = exchange(c.get(), proto::encode_status(7));
        if (!r || r->header.request_id != 7) return false;
        st = std::get<proto::StatusReply>(r->body);
        return true;
    })) << "no connection let in after the watch ended";
    ASSERT_TRUE(st);
    ASSERT_EQ(st->status, 0u) << st->message;
    const auto doc = nlohmann::json::parse(st->json);
    EXPECT_EQ(doc["requests_in_flight"], 0);
    EXPECT_EQ(doc["clients_connected"], 1);
    EXPECT_EQ(d.wait_fds(idle), idle);
}

TEST(AdoptWatch, WatchesCountAgainstTheConnectionsInflightLimit) {
    Daemon d(R"({
        "pools": {"hole": {}},
        "default_pool": "hole",
        "default_client": {"name": "anyone"},
        "limits": {"max_inflight_per_client": 2}
    })");
    const int idle = d.settled_fds();
    auto conn = raw_connect(d.socket());
    auto a = tcp_socket(), b = tcp_socket(), c = tcp_socket();
    for (const auto& [id, fd] : {std::pair{1, a.get()}, std::pair{2, b.get()}}) {
        const auto rep = connect_reply(
            exchange(conn.get(), adopt_request(id, black_hole(), EGRESS_CONNECT_ADOPT, 300), {.fds = {fd}}));
        ASSERT_EQ(rep.status, static_cast<std::uint32_t>(EINPROGRESS)) << id << ": " << rep.message;
    }
    EXPECT_EQ(d.open_fds(), idle + 3) << "the connection and two watched copies";
    // Id 1 is free once its reply has gone; the limit is not.
    const auto third = connect_reply(
        exchange(conn.get(), adopt_request(1, black_hole(), EGRESS_CONNECT_ADOPT, 300), {.fds = {c.get()}}));
    EXPECT_EQ(third.status, static_cast<std::uint32_t>(EAGAIN)) << third.error_name << ": " << third.message;
    EXPECT_NE(third.message.find("2 requests in flight (limits.max_inflight_per_client)"), std::string::npos)
        << third.message;
    proto::ConnectRequest plain;
    plain.dest = black_hole();
    plain.timeout_ms = 300;
    const auto r = exchange(conn.get(), proto::encode_connect(3, plain));
    ASSERT_TRUE(r);
    EXPECT_EQ(status_of(*r), static_cast<std::uint32_t>(EAGAIN)) << message_of(*r);
    // Before any scrape: its HTTP connection may linger a moment in egressd.
    EXPECT_EQ(d.open_fds(), idle + 3) << "the refused socket's copy is closed";
    EXPECT_EQ(metric_value(d.scrape(), R"(egress_protocol_errors_total{kind="client_inflight_limit"})"), 2);
    // Refused before anything touched it: neither bound nor connecting.
    EXPECT_EQ(tcp_state(c.get()), TCP_CLOSE);
    ASSERT_TRUE(local_of(c.get()));
    EXPECT_EQ(endpoint_string(*local_of(c.get())), "0.0.0.0:0");

    // Both watches end at their deadline: the limit lets the next one in.
    EXPECT_EQ(d.wait_fds(idle + 1, std::chrono::seconds(3)), idle + 1);
    EXPECT_TRUE(eventually([&] { return metric_value(d.scrape(), "egress_requests_in_flight") == 0; }));
    const auto again = connect_reply(
        exchange(conn.get(), adopt_request(1, black_hole(), EGRESS_CONNECT_ADOPT, 200), {.fds = {c.get()}}));
    EXPECT_EQ(again.status, static_cast<std::uint32_t>(EINPROGRESS)) << again.error_name << ": " << again.message;
    EXPECT_EQ(d.wait_fds(idle + 1, std::chrono::seconds(3)), idle + 1);
    EXPECT_TRUE(eventually([&] { return metric_value(d.scrape(), R"(egress_adopted_total{result="ETIMEDOUT"})") == 3; }));
    conn.reset();
    EXPECT_EQ(d.wait_fds(idle), idle);
    EXPECT_TRUE(d.alive());
}

// A socket of another network namespace reaches that namespace's network,
// not the one egressd's policy was written for: refused unless a rule says.
TEST(AdoptNetns, ASocketOfAnotherNamespaceNeedsTheRulesConsent) {
    PeerNetns peer;
    UniqueFd listener(peer.listen_tcp("127.0.0.1", next_test_port()));
    ASSERT_TRUE(listener);
    SockAddr sa;
    sa.len = sizeof sa.storage;
    ASSERT_EQ(::getsockname(listener.get(), sa.get(), &sa.len), 0);
    const auto dest = *from_sockaddr(sa.get(), sa.len);
    for (const bool allowed : {false, true}) {
        SCOPED_TRACE(allowed ? "adopt_other_netns: true" : "default");
        Daemon d(std::string(R"({"default_client": {"name": "peer", "adopt_other_netns": )") +
                 (allowed ? "true" : "false") + R"(, "destinations": [{"action": "allow", "dest": "127.0.0.0/8"}]}})");
        const int idle = d.settled_fds();
        auto conn = raw_connect(d.socket());
        UniqueFd sock(peer.make_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK));
        ASSERT_TRUE(sock);
        const auto rep = connect_reply(exchange(conn.get(), adopt_request(1, dest), {.fds = {sock.get()}}));
        if (!allowed) {
            EXPECT_EQ(rep.status, static_cast<std::uint32_t>(EACCES)) << rep.message;
            EXPECT_NE(rep.message.find("adopt_other_netns"), std::string::npos) << rep.message;
            EXPECT_EQ(tcp_state(sock.get()), TCP_CLOSE) << "egressd touched a socket it refused";
        } else {
            ASSERT_TRUE(rep.status == 0 || rep.status == EINPROGRESS) << rep.error_name << ": " << rep.message;
            EXPECT_EQ(finish_connect(sock.get()), 0) << "the peer's own loopback, reached in its namespace";
        }
        conn.reset();
        EXPECT_EQ(d.wait_fds(idle), idle);
    }
}

// An explicit port, once bound, cannot change for a retry: an adopted socket
// of a userspace-random pool gets the pool's whole range from the kernel.
TEST(AdoptPorts, AUserspaceRandomPoolConnectsAdoptedSocketsThroughTheKernelRange) {
    Daemon d(R"({
        "pools": {"r": {"sources": ["127.0.0.2"], "port_strategy": "userspace-random", "port_range": "45000-45999"}},
        "default_pool": "r",
        "default_client": {"name": "loopback", "destinations": [{"action": "allow", "dest": "127.0.0.0/8"}]}
    })");
    Listener echo(Listener::Mode::echo);
    auto conn = raw_connect(d.socket());
    for (std::uint64_t id = 1; id <= 20; ++id) {
        auto sock = tcp_socket();
        const auto rep = connect_reply(exchange(conn.get(), adopt_request(id, echo.endpoint()), {.fds = {sock.get()}}));
        ASSERT_TRUE(rep.status == 0 || rep.status == EINPROGRESS) << rep.error_name << ": " << rep.message;
        ASSERT_EQ(finish_connect(sock.get()), 0);
        std::uint32_t range = 0;
        socklen_t len = sizeof range;
        ASSERT_EQ(::getsockopt(sock.get(), IPPROTO_IP, 51 /* IP_LOCAL_PORT_RANGE */, &range, &len), 0);
        EXPECT_EQ(range & 0xffff, 45000u);
        EXPECT_EQ(range >> 16, 45999u);
        const auto local = local_of(sock.get());
        ASSERT_TRUE(local);
        EXPECT_EQ(address_string(*local), "127.0.0.2");
        EXPECT_GE(local->port, 45000);
        EXPECT_LE(local->port, 45999);
        EXPECT_EQ(rep.attempts, 1u);
    }
}

}  // namespace
}  // namespace egress::test
