// Connected UDP (TRANSPORT 17) against the real egressd: the hosts live in a
// peer namespace behind a veth. A query and its answer over a handed-off
// socket, the source the server sees, the policy, an ICMP port unreachable,
// each port strategy running a source's UDP ports out, host names, the
// metrics and STATUS by transport, and egress-connect --udp.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dns_server.hpp"
#include "egress_client.hpp"
#include "harness.hpp"
#include "peer_netns.hpp"
#include "sockaddr.hpp"

namespace egress::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int kPeerIndex = 2;

// A "whoami" server in the peer: a DNS query (one question) gets an answer
// whose one A or AAAA record is the address the query came from; anything
// else is echoed back. It records every source it saw.
class Responder {
public:
    Responder(const PeerNetns& peer, const std::string& address, std::uint16_t port) {
        const auto at = *parse_address(address, port);
        fd_.reset(peer.make_socket(at.v6 ? AF_INET6 : AF_INET, SOCK_DGRAM));
        const auto sa = to_sockaddr(at);
        if (!fd_ || ::bind(fd_.get(), sa.get(), sa.len) != 0)
            throw std::runtime_error(std::string("responder: ") + std::strerror(errno));
        thread_ = std::thread([this] { serve(); });
    }
    ~Responder() {
        stop_ = true;
        thread_.join();
    }
    std::vector<Endpoint> sources() const {
        const std::lock_guard lock(mutex_);
        return sources_;
    }

private:
    void serve() {
        std::uint8_t buf[2048];
        while (!stop_) {
            pollfd p{fd_.get(), POLLIN, 0};
            if (::poll(&p, 1, 50) != 1) continue;
            SockAddr from;
            from.len = sizeof from.storage;
            const auto n = ::recvfrom(fd_.get(), buf, sizeof buf, 0, from.get(), &from.len);
            if (n < 0) continue;
            const auto src = from_sockaddr(from.get(), from.len);
            if (!src) continue;
            {
                const std::lock_guard lock(mutex_);
                sources_.push_back(unmap_ipv4(*src));
            }
            std::vector<std::uint8_t> out(buf, buf + n);
            const bool query = n >= 17 && buf[4] == 0 && buf[5] == 1 && !(buf[2] & 0x80);
            if (query) {
                const auto who = unmap_ipv4(*src);
                out[2] = 0x81;  // QR, RD
                out[3] = 0x80;  // RA, NOERROR
                out[7] = 1;     // ANCOUNT 1
                const std::uint8_t type = who.v6 ? 28 : 1;
                const std::uint8_t rr[] = {0xc0, 0x0c, 0, type, 0, 1, 0, 0, 0, 0, 0,
                                           static_cast<std::uint8_t>(who.addr_len())};
                out.insert(out.end(), rr, rr + sizeof rr);
                out.insert(out.end(), who.addr.begin(), who.addr.begin() + static_cast<long>(who.addr_len()));
            }
            ::sendto(fd_.get(), out.data(), out.size(), 0, from.get(), from.len);
        }
    }

    UniqueFd fd_;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    mutable std::mutex mutex_;
    std::vector<Endpoint> sources_;
};

// A DNS query for `name`, type A (1) or AAAA (28), with id `id`.
std::vector<std::uint8_t> dns_query(std::uint16_t id, const std::string& name, std::uint8_t type) {
    std::vector<std::uint8_t> q{static_cast<std::uint8_t>(id >> 8), static_cast<std::uint8_t>(id), 0x01, 0, 0, 1,
                                0, 0, 0, 0, 0, 0};
    std::size_t start = 0;
    while (start <= name.size()) {
        auto dot = name.find('.', start);
        if (dot == std::string::npos) dot = name.size();
        q.push_back(static_cast<std::uint8_t>(dot - start));
        q.insert(q.end(), name.begin() + static_cast<long>(start), name.begin() + static_cast<long>(dot));
        start = dot + 1;
    }
    q.insert(q.end(), {0, 0, type, 0, 1});
    return q;
}

// The next datagram on `fd` within `limit`, or the errno its receive failed with.
Result<std::vector<std::uint8_t>> receive(int fd, std::chrono::milliseconds limit = 5s) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(limit.count())) != 1) return Error{ETIME, "nothing received"};
    std::vector<std::uint8_t> buf(2048);
    const auto n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) return Error{errno, std::strerror(errno)};
    buf.resize(static_cast<std::size_t>(n));
    return buf;
}

int int_option(int fd, int level, int name) {
    int v = -1;
    socklen_t len = sizeof v;
    return ::getsockopt(fd, level, name, &v, &len) == 0 ? v : -1;
}

ConnectOptions udp(std::uint32_t timeout_ms = 3000) {
    ConnectOptions o;
    o.transport = Transport::udp;
    o.timeout_ms = timeout_ms;
    return o;
}

bool holds(const std::vector<std::string>& list, const std::string& s) {
    return std::find(list.begin(), list.end(), s) != list.end();
}

class Udp : public ::testing::Test {
protected:
    void SetUp() override {
        peer_ = std::make_unique<PeerNetns>(PeerNetnsSetup{}, kPeerIndex);
        port_ = next_test_port();
        v4_ = std::make_unique<Responder>(*peer_, peer_->remote_v4(), port_);
        v6_ = std::make_unique<Responder>(*peer_, peer_->remote_v6(), port_);
    }

    // A pool "peer" of this side's veth addresses (both families), the
    // peer's subnets allowed, `patch` merged in (RFC 7386).
    std::string config(const json& patch = json::object()) const {
        json sources = json::array();
        for (const auto& a : peer_->local_v4()) sources.push_back(a);
        for (const auto& a : peer_->local_v6()) sources.push_back(a);
        json c = {
            {"pools", {{"peer", {{"sources", sources}, {"port_strategy", "window"}}}}},
            {"default_pool", "peer"},
            {"default_client",
             {{"name", "peer"},
              {"destinations", json::array({{{"action", "allow"}, {"dest", peer_->subnet_v4()}},
                                            {{"action", "allow"}, {"dest", peer_->subnet_v6()}}})}}},
        };
        c.merge_patch(patch);
        return c.dump();
    }

    void start(const json& patch = json::object()) {
        daemon_.emplace(config(patch));
        auto c = Client::open(daemon_->socket());
        ASSERT_TRUE(c) << c.error().message;
        client_.emplace(std::move(*c));
    }

    Endpoint peer_v4(std::uint16_t port = 0) const { return *parse_address(peer_->remote_v4(), port ? port : port_); }
    Endpoint peer_v6(std::uint16_t port = 0) const { return *parse_address(peer_->remote_v6(), port ? port : port_); }
    double metric(const std::string& series) const { return metric_value(daemon_->scrape(), series); }

    std::unique_ptr<PeerNetns> peer_;
    std::uint16_t port_ = 0;
    std::unique_ptr<Responder> v4_, v6_;
    std::optional<Daemon> daemon_;
    std::optional<Client> client_;
};

TEST_F(Udp, AQueryAndItsAnswerCrossAHandedOffSocketFromAPoolSource) {
    start();
    for (const bool v6 : {false, true}) {
        SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
        const auto dest = v6 ? peer_v6() : peer_v4();
        auto r = client_->connect(dest, udp());
        ASSERT_TRUE(r) << r.error().message;
        const int fd = r->fd.get();
        EXPECT_EQ(int_option(fd, SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
        EXPECT_EQ(int_option(fd, SOL_SOCKET, SO_PROTOCOL), IPPROTO_UDP);
        EXPECT_TRUE(::fcntl(fd, F_GETFL) & O_NONBLOCK);
        ASSERT_TRUE(r->meta.local && r->meta.remote);
        EXPECT_EQ(*r->meta.remote, dest);
        EXPECT_EQ(r->meta.pool, "peer");
        EXPECT_EQ(r->meta.attempts, 1u);
        const auto& pool = v6 ? peer_->local_v6() : peer_->local_v4();
        EXPECT_TRUE(holds(pool, address_string(*r->meta.local))) << endpoint_string(*r->meta.local);
        EXPECT_NE(r->meta.local->port, 0);

        const auto q = dns_query(0x4242, "whoami.test", v6 ? 28 : 1);
        ASSERT_EQ(::send(fd, q.data(), q.size(), 0), static_cast<ssize_t>(q.size())) << std::strerror(errno);
        auto a = receive(fd);
        ASSERT_TRUE(a) << a.error().message;
        ASSERT_EQ(a->size(), q.size() + 12 + (v6 ? 16 : 4));
        EXPECT_EQ((*a)[0], 0x42);
        EXPECT_EQ((*a)[1], 0x42);
        EXPECT_EQ((*a)[7], 1) << "one answer";
        Endpoint seen;
        seen.v6 = v6;
        std::copy(a->end() - (v6 ? 16 : 4), a->end(), seen.addr.begin());
        EXPECT_EQ(address_string(seen), address_string(*r->meta.local)) << "the server saw the pool source";
        const auto sources = (v6 ? v6_ : v4_)->sources();
        ASSERT_FALSE(sources.empty());
        EXPECT_EQ(sources.back(), *r->meta.local) << "address and port, as LOCAL says";
    }
}

TEST_F(Udp, ABlockingRequestGetsABlockingSocketAndNodelayIsRefused) {
    start();
    auto o = udp();
    o.blocking = true;
    auto r = client_->connect(peer_v4(), o);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_FALSE(::fcntl(r->fd.get(), F_GETFL) & O_NONBLOCK);
    o.blocking = false;
    o.nodelay = true;
    auto n = client_->connect(peer_v4(), o);
    ASSERT_FALSE(n);
    EXPECT_EQ(n.error().code, EINVAL);
    EXPECT_NE(n.error().message.find("TCP_NODELAY"), std::string::npos) << n.error().message;
}

TEST_F(Udp, ADeniedDestinationGetsEaccesAndARuleMayRefuseUdp) {
    start();
    auto r = client_->connect(*parse_address("169.254.169.254", 53), udp());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, EACCES);
    EXPECT_NE(r.error().message.find("link-local"), std::string::npos) << r.error().message;
    // Multicast and broadcast, connectable for UDP as they are not for TCP, are denied too.
    for (const char* group : {"239.1.2.3", "255.255.255.255"}) {
        auto m = client_->connect(*parse_address(group, 5000), udp());
        ASSERT_FALSE(m) << group;
        EXPECT_EQ(m.error().code, EACCES) << group;
        EXPECT_NE(m.error().message.find("cast"), std::string::npos) << m.error().message;
    }
    EXPECT_EQ(metric(R"(egress_connects_total{pool="",result="EACCES",source="",transport="udp"})"), 3);
    EXPECT_EQ(metric(R"(egress_connects_total{pool="",result="EACCES",source="",transport="tcp"})"), 0);
    daemon_.reset();

    start({{"default_client", {{"udp", false}}}});
    auto refused = client_->connect(peer_v4(), udp());
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code, EACCES);
    EXPECT_NE(refused.error().message.find("does not allow UDP"), std::string::npos) << refused.error().message;
    EXPECT_EQ(metric(R"(egress_policy_denials_total{reason="transport",rule="peer"})"), 1);
    const UniqueFd listener(peer_->listen_tcp(peer_->remote_v4(), port_));
    ASSERT_TRUE(listener);
    auto tcp = client_->connect(peer_v4());
    EXPECT_TRUE(tcp) << "TCP stays allowed: " << tcp.error().message;
}

TEST_F(Udp, AnIcmpPortUnreachableShowsAsEconnrefusedOnTheNextReceive) {
    start();
    const auto closed = static_cast<std::uint16_t>(next_test_port());  // nothing bound there in the peer
    auto r = client_->connect(peer_v4(closed), udp());
    ASSERT_TRUE(r) << r.error().message;
    const char ping[] = "ping";
    ASSERT_EQ(::send(r->fd.get(), ping, sizeof ping, 0), static_cast<ssize_t>(sizeof ping));
    auto a = receive(r->fd.get());
    ASSERT_FALSE(a) << "an answer from a closed port";
    EXPECT_EQ(a.error().code, ECONNREFUSED) << a.error().message;
}

// Each strategy on one source with a small range: a socket held on every
// port, the next request finds none and is refused naming the pool. (The
// range of userspace-random is smaller: its 64 random draws must find the
// last free port.)
TEST_F(Udp, EveryStrategyRunsASourcesPortsOutThenSaysThePoolIsExhausted) {
    for (const auto& [strategy, size] : {std::pair{"window", 16}, {"kernel-range", 16}, {"userspace-random", 4}}) {
        SCOPED_TRACE(strategy);
        start({{"pools",
                {{"peer",
                  {{"sources", {peer_->local_v4()[0]}},
                   {"port_strategy", strategy},
                   {"port_range", "45000-" + std::to_string(45000 + size - 1)},
                   {"window_size", 4},
                   {"userspace_max_attempts", 64}}}}}});
        std::vector<UniqueFd> held;
        std::vector<std::uint16_t> ports;
        for (int i = 0; i < size; ++i) {
            // Different destinations: a UDP port is taken for all of them.
            auto r = client_->connect(peer_v4(static_cast<std::uint16_t>(port_ + (i % 2))), udp());
            ASSERT_TRUE(r) << i << ": " << r.error().message;
            ports.push_back(r->meta.local->port);
            held.push_back(std::move(r->fd));
        }
        std::sort(ports.begin(), ports.end());
        EXPECT_EQ(std::unique(ports.begin(), ports.end()), ports.end());
        EXPECT_EQ(ports.front(), 45000);
        EXPECT_EQ(ports.back(), 45000 + size - 1);
        auto r = client_->connect(peer_v4(), udp());
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().code, EADDRNOTAVAIL) << r.error().message;
        EXPECT_NE(r.error().message.find("pool 'peer' is exhausted"), std::string::npos) << r.error().message;
        const auto source = peer_->local_v4()[0];
        EXPECT_EQ(metric(R"(egress_connects_total{pool="peer",result="EADDRNOTAVAIL",source=")" + source +
                         R"(",transport="udp"})"),
                  1);
        held.pop_back();  // one port free again: served at once
        auto again = client_->connect(peer_v4(), udp());
        EXPECT_TRUE(again) << again.error().message;
        daemon_.reset();
    }
}

// least-loaded reads the UDP ports each source has taken, toward any
// destination and from any process: here five sockets of the test's own.
TEST_F(Udp, LeastLoadedPicksTheSourceWithFewerUdpPortsTaken) {
    const auto& v4 = peer_->local_v4();
    const auto& v6 = peer_->local_v6();
    start({{"pools", {{"peer", {{"sources", {v4[0], v4[1], v4[2], v6[0], v6[1]}}, {"selection", "least-loaded"}}}}}});
    std::vector<UniqueFd> busy;
    const auto occupy = [&](const std::string& address, int n) {
        for (int i = 0; i < n; ++i) {
            const auto at = *parse_address(address, 0);
            busy.emplace_back(::socket(at.v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
            const auto sa = to_sockaddr(at);
            ASSERT_EQ(::bind(busy.back().get(), sa.get(), sa.len), 0) << address << ": " << std::strerror(errno);
        }
    };
    occupy(v4[0], 5);
    occupy(v4[2], 6);
    occupy(v6[0], 5);
    std::vector<UniqueFd> held;
    for (int i = 0; i < 4; ++i) {
        auto r = client_->connect(peer_v4(static_cast<std::uint16_t>(port_ + i)), udp());
        ASSERT_TRUE(r) << r.error().message;
        EXPECT_EQ(address_string(*r->meta.local), v4[1]) << i;
        held.push_back(std::move(r->fd));
        auto r6 = client_->connect(peer_v6(static_cast<std::uint16_t>(port_ + i)), udp());
        ASSERT_TRUE(r6) << r6.error().message;
        EXPECT_EQ(address_string(*r6->meta.local), address_string(*parse_address(v6[1]))) << i;
        held.push_back(std::move(r6->fd));
    }
}

TEST_F(Udp, MetricsAndStatusCountEachTransportApart) {
    start();
    auto r = client_->connect(peer_v4(), udp());
    ASSERT_TRUE(r) << r.error().message;
    const auto src = address_string(*r->meta.local);
    const auto m = daemon_->scrape();
    EXPECT_EQ(metric_value(m, R"(egress_connects_total{pool="peer",result="ok",source=")" + src +
                                  R"(",transport="udp"})"),
              1)
        << m;
    EXPECT_EQ(metric_value(m, R"(egress_connects_total{pool="peer",result="ok",source=")" + src +
                                  R"(",transport="tcp"})"),
              0)
        << m;
    const auto parity = r->meta.local->port % 2 ? "odd" : "even";
    EXPECT_EQ(metric_value(m, std::string(R"(egress_connect_duration_seconds_count{pool="peer",port_parity=")") +
                                  parity + R"(",result="ok",source=")" + src + R"(",transport="udp"})"),
              1)
        << m;
    EXPECT_EQ(metric_value(m, std::string(R"(egress_connect_duration_seconds_count{pool="peer",port_parity=")") +
                                  parity + R"(",result="ok",source=")" + src + R"(",transport="tcp"})"),
              0)
        << m;

    auto st = client_->status();
    ASSERT_TRUE(st) << st.error().message;
    const auto doc = json::parse(*st);
    const auto& features = doc["features"];
    EXPECT_NE(std::find(features.begin(), features.end(), "udp"), features.end()) << features.dump();
    std::uint64_t udp_ok = 0, tcp_ok = 0;
    for (const auto& p : doc["pools"])
        for (const auto& s : p["sources"]) {
            tcp_ok += s.value("connects_ok", 0ULL);
            if (s.contains("udp")) udp_ok += s["udp"].value("connects_ok", 0ULL);
        }
    EXPECT_EQ(udp_ok, 1u) << doc.dump();
    EXPECT_EQ(tcp_ok, 0u) << doc.dump();
}

TEST_F(Udp, AHostNameResolvesAndConnects) {
    const int dns_fd = peer_->make_socket(AF_INET, SOCK_DGRAM);
    ASSERT_GE(dns_fd, 0);
    const auto at = to_sockaddr(*parse_address(peer_->remote_v4(), 53));
    ASSERT_EQ(::bind(dns_fd, at.get(), at.len), 0) << std::strerror(errno);
    DnsServer dns(dns_fd);
    dns.set("upstream.test", {.a = {peer_->remote_v4()}, .aaaa = {peer_->remote_v6()}});
    start({{"dns", {{"servers", {peer_->remote_v4() + ":53"}}, {"hosts_file", false}, {"search", json::array()}}}});
    auto d = parse_destination("upstream.test:" + std::to_string(port_));
    ASSERT_TRUE(d);
    auto r = client_->connect(*d, udp());
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r->meta.remote, peer_v6()) << "IPv6 first; a UDP connect completes at once";
    EXPECT_EQ(r->meta.addresses, 1u);
    EXPECT_EQ(int_option(r->fd.get(), SOL_SOCKET, SO_TYPE), SOCK_DGRAM);
    const char hello[] = "hello";
    ASSERT_EQ(::send(r->fd.get(), hello, 5, 0), 5);
    auto a = receive(r->fd.get());
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(std::string(a->begin(), a->end()), "hello");
}

TEST_F(Udp, AProgramsOwnUdpSocketIsAdoptedAndMayBeConnectedAgain) {
    start();
    // Blocking, unbound: egressd binds a pool source and connects it in place.
    UniqueFd own(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(own);
    auto r = client_->adopt(own.get(), peer_v4());
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->status, 0u) << r->message;
    ASSERT_TRUE(r->local && r->remote);
    EXPECT_EQ(*r->remote, peer_v4());
    EXPECT_TRUE(holds(peer_->local_v4(), address_string(*r->local))) << endpoint_string(*r->local);
    EXPECT_FALSE(::fcntl(own.get(), F_GETFL) & O_NONBLOCK) << "egressd never changes a program's file flags";
    const auto q = dns_query(7, "whoami.test", 1);
    ASSERT_EQ(::send(own.get(), q.data(), q.size(), 0), static_cast<ssize_t>(q.size()));
    auto a = receive(own.get());
    ASSERT_TRUE(a) << a.error().message;
    EXPECT_EQ(v4_->sources().back(), *r->local);

    // Connected again, to another port: the socket keeps its address and port.
    const auto other = peer_v4(static_cast<std::uint16_t>(port_ + 1));
    auto again = client_->adopt(own.get(), other);
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(again->status, 0u) << again->message;
    EXPECT_EQ(again->local, r->local);
    EXPECT_EQ(again->remote, other);
    // A destination the policy denies is refused, and the socket stays as it was.
    auto denied = client_->adopt(own.get(), *parse_address("169.254.169.254", 53));
    ASSERT_TRUE(denied) << denied.error().message;
    EXPECT_EQ(denied->status, static_cast<std::uint32_t>(EACCES)) << denied->message;
    SockAddr peer;
    peer.len = sizeof peer.storage;
    ASSERT_EQ(::getpeername(own.get(), peer.get(), &peer.len), 0);
    EXPECT_EQ(from_sockaddr(peer.get(), peer.len), other);
    EXPECT_EQ(metric(R"(egress_adopted_total{result="ok"})"), 2);
}

TEST_F(Udp, EgressConnectRelaysEachLineAsADatagram) {
    start();
    const auto target = endpoint_string(peer_v4());
    auto relayed = run({egress_connect_bin(), "--socket", daemon_->socket(), "--udp", "--wait", "500", target},
                       "one\ntwo\nthree");
    EXPECT_EQ(relayed.status, 0) << relayed.err;
    EXPECT_EQ(relayed.out, "one\ntwo\nthree");
    EXPECT_EQ(v4_->sources().size(), 3u) << "three datagrams";

    auto meta = run({egress_connect_bin(), "--socket", daemon_->socket(), "--udp", "--json", target});
    ASSERT_EQ(meta.status, 0) << meta.err;
    const auto j = json::parse(meta.out);
    EXPECT_EQ(j["transport"], "udp");
    EXPECT_EQ(j["remote"], target);
    EXPECT_TRUE(holds(peer_->local_v4(), address_string(*parse_endpoint(j["local"].get<std::string>()))));

    const auto closed = endpoint_string(peer_v4(next_test_port()));
    auto refused = run({egress_connect_bin(), "--socket", daemon_->socket(), "--udp", closed}, "x\n");
    EXPECT_EQ(refused.status, 1);
    EXPECT_NE(refused.err.find("ECONNREFUSED"), std::string::npos) << refused.err;

    auto usage = run({egress_connect_bin(), "--socket", daemon_->socket(), "--udp", "--nodelay", target});
    EXPECT_EQ(usage.status, 2);
    EXPECT_NE(usage.err.find("--nodelay"), std::string::npos) << usage.err;
}

}  // namespace
}  // namespace egress::test
