// Host-name requests (DEST_HOST) against the real egressd: the remote hosts
// live in a peer namespace, with the project's DNS test server on the peer's
// IPv4 address. Covers Happy Eyeballs (which family wins, when the second
// attempt starts, the resolution delay), every outcome a lookup can have and
// the errno egressd answers it with, the policy for resolved addresses and
// for names (a name denied costs no query), the cache, a loop that slow
// lookups never block, egress-connect with a name, and descriptors.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
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

constexpr int kPeerIndex = 1;  // one peer at a time in this binary
// Owned by nobody in the peer's /64; a permanent neighbour entry on this
// side's veth sends its frames to a MAC address nobody has: SYNs vanish.
constexpr const char* kBlackHoleV6 = "fd00:200:1::dead";
// Longer than any reply egressd owes a request here: a safety timeout only.
constexpr auto kReplyLimit = 10s;

// The reply to request `id` on `c`, waited for at most `limit`. Only for a
// client with one request outstanding (replies to others are dropped).
Result<Connected> await_reply(Client& c, std::uint64_t id, std::chrono::milliseconds limit = kReplyLimit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        pollfd p{c.native_handle(), POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1)
            return Error{ETIME, "no reply from egressd within " + std::to_string(limit.count()) + " ms"};
        auto done = c.next();
        if (!done) return done.error();
        if (done->request_id == id || done->request_id == 0) return std::move(done->result);
    }
}

// One CONNECT to `dest` ("NAME:PORT" or an address) with its safety timeout.
Result<Connected> request(Client& c, const std::string& dest, std::uint32_t timeout_ms = 5000) {
    auto d = parse_destination(dest);
    if (!d) return d.error();
    ConnectOptions o;
    o.timeout_ms = timeout_ms;
    auto id = c.submit(*d, o);
    if (!id) return id.error();
    return await_reply(c, *id);
}

// An error from egressd with errno `code` whose message holds every word.
testing::AssertionResult Fails(const Result<Connected>& r, int code, std::initializer_list<std::string> words) {
    if (r) return testing::AssertionFailure() << "connected to " << endpoint_string(*r->meta.remote);
    if (r.error().code != code)
        return testing::AssertionFailure() << errno_name(r.error().code) << " (not " << errno_name(code)
                                           << "): " << r.error().message;
    for (const auto& w : words)
        if (r.error().message.find(w) == std::string::npos)
            return testing::AssertionFailure() << "'" << r.error().message << "' lacks '" << w << "'";
    return testing::AssertionSuccess();
}

std::string peer_of(int fd) {
    SockAddr sa;
    sa.len = sizeof sa.storage;
    if (::getpeername(fd, sa.get(), &sa.len) != 0) return "";
    auto ep = from_sockaddr(sa.get(), sa.len);
    return ep ? address_string(unmap_ipv4(*ep)) : "";
}

// The source address of the next connection `listen_fd` accepts within 5 s, or "".
std::string accepted_from(int listen_fd) {
    pollfd p{listen_fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return "";
    UniqueFd conn(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
    return conn ? peer_of(conn.get()) : "";
}

bool holds(const std::vector<std::string>& list, const std::string& s) {
    return std::find(list.begin(), list.end(), s) != list.end();
}

class Names : public ::testing::Test {
protected:
    void SetUp() override {
        peer_ = std::make_unique<PeerNetns>(PeerNetnsSetup{}, kPeerIndex);
        sh("ip -6 neigh add " + std::string(kBlackHoleV6) + " lladdr 02:00:00:00:00:0d dev pe" +
           std::to_string(kPeerIndex) + "a nud permanent");
        // The DNS server's socket lives in the peer: egressd reaches it over the veth.
        const int udp = peer_->make_socket(AF_INET, SOCK_DGRAM);
        ASSERT_GE(udp, 0);
        const auto at = to_sockaddr(*parse_address(peer_->remote_v4(), 53));
        ASSERT_EQ(::bind(udp, at.get(), at.len), 0) << std::strerror(errno);
        dns_ = std::make_unique<DnsServer>(udp);
        port_ = next_test_port();
        v4_.reset(peer_->listen_tcp(peer_->remote_v4(), port_));
        v6_.reset(peer_->listen_tcp(peer_->remote_v6(), port_));
        ASSERT_TRUE(v4_ && v6_) << "no listener in the peer";
    }

    // The config every test starts from, `patch` merged in (RFC 7386): the
    // peer's server only, no hosts file, no search list, one short try; the
    // peer's private subnets and the IPv4 black hole allowed by address.
    std::string config(const json& patch = json::object()) const {
        json c = {
            {"dns", {{"servers", {peer_->remote_v4() + ":53"}}, {"hosts_file", false}, {"search", json::array()},
                     {"timeout_ms", 200}, {"tries", 1}}},
            {"default_client", {{"name", "peer"}, {"destinations", address_allows()}}},
        };
        c.merge_patch(patch);
        return c.dump();
    }
    static json address_allows() {
        return json::array({{{"action", "allow"}, {"dest", "10.200.0.0/16"}},
                            {{"action", "allow"}, {"dest", "fd00:200::/32"}},
                            {{"action", "allow"}, {"dest", std::string(kBlackHole) + "/32"}}});
    }

    // egressd with config(patch), and a client connection to it.
    void start(const json& patch = json::object(), std::vector<std::string> args = {}) {
        daemon_.emplace(config(patch), std::move(args));
        auto c = Client::open(daemon_->socket());
        ASSERT_TRUE(c) << c.error().message;
        client_.emplace(std::move(*c));
    }

    std::string at_port(const std::string& name) const { return name + ":" + std::to_string(port_); }
    Endpoint peer_v4() const { return *parse_address(peer_->remote_v4(), port_); }
    Endpoint peer_v6() const { return *parse_address(peer_->remote_v6(), port_); }
    double metric(const std::string& series) const { return metric_value(daemon_->scrape(), series); }

    // Destroyed in reverse: egressd first, then the server, then the peer.
    std::unique_ptr<PeerNetns> peer_;
    std::unique_ptr<DnsServer> dns_;
    UniqueFd v4_, v6_;  // listeners at the peer's addresses, port_; never accept unless a test does
    std::uint16_t port_ = 0;
    std::optional<Daemon> daemon_;
    std::optional<Client> client_;
};

// ---- Which address wins --------------------------------------------------

TEST_F(Names, ANameWithOnlyAnARecordConnectsOverIPv4) {
    dns_->set("four.test", {.a = {peer_->remote_v4()}});
    start();
    auto r = request(*client_, at_port("four.test"));
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_TRUE(r->meta.remote && r->meta.local);
    EXPECT_EQ(*r->meta.remote, peer_v4());
    EXPECT_EQ(r->meta.addresses, 1u);
    EXPECT_GT(r->meta.resolve_us, 0u);
    EXPECT_TRUE(holds(peer_->local_v4(), address_string(*r->meta.local))) << endpoint_string(*r->meta.local);
    EXPECT_EQ(peer_of(r->fd.get()), peer_->remote_v4()) << "the descriptor handed over is the connected socket";
    const auto source = accepted_from(v4_.get());
    EXPECT_TRUE(holds(peer_->local_v4(), source)) << "accepted from '" << source << "'";
    EXPECT_EQ(source, address_string(*r->meta.local));
    EXPECT_EQ(metric(R"(egress_name_requests_total{result="connected"})"), 1);
    EXPECT_EQ(metric(R"(egress_dns_lookups_total{family="ipv4",result="ok"})"), 1);
}

TEST_F(Names, ANameWithOnlyAnAaaaRecordConnectsOverIPv6) {
    dns_->set("six.test", {.aaaa = {peer_->remote_v6()}});
    start();
    auto r = request(*client_, at_port("six.test"));
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_TRUE(r->meta.remote && r->meta.local);
    EXPECT_EQ(*r->meta.remote, peer_v6());
    EXPECT_EQ(r->meta.addresses, 1u);
    EXPECT_TRUE(holds(peer_->local_v6(), address_string(*r->meta.local))) << endpoint_string(*r->meta.local);
    const auto source = accepted_from(v6_.get());
    EXPECT_TRUE(holds(peer_->local_v6(), source)) << "accepted from '" << source << "'";
}

TEST_F(Names, WithBothFamiliesIPv6WinsAtTheFirstAttempt) {
    dns_->set("both.test", {.a = {peer_->remote_v4()}, .aaaa = {peer_->remote_v6()}});
    start();
    auto r = request(*client_, at_port("both.test"));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r->meta.remote, peer_v6());
    EXPECT_EQ(r->meta.addresses, 1u);
    const auto m = daemon_->scrape();
    EXPECT_EQ(metric_value(m, R"(egress_happy_eyeballs_wins_total{family="ipv6"})"), 1) << m;
    EXPECT_EQ(metric_value(m, R"(egress_happy_eyeballs_wins_total{family="ipv4"})"), 0) << m;
    EXPECT_EQ(metric_value(m, "egress_happy_eyeballs_first_address_lost_total"), 0) << m;
}

TEST_F(Names, AnUnansweredIPv6AddressLosesToIPv4AfterTheAttemptDelay) {
    dns_->set("lossy.test", {.a = {peer_->remote_v4()}, .aaaa = {kBlackHoleV6}});
    start();
    const auto t0 = std::chrono::steady_clock::now();
    auto r = request(*client_, at_port("lossy.test"), 5000);
    const double ms = ms_since(t0);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r->meta.remote, peer_v4());
    EXPECT_EQ(r->meta.addresses, 2u);
    // The IPv4 attempt starts 250 ms (connect.attempt_delay_ms) after the IPv6 one.
    EXPECT_GE(ms, 200);
    EXPECT_LT(ms, 2000) << "well before the request's 5000 ms deadline";
    const auto m = daemon_->scrape();
    EXPECT_EQ(metric_value(m, "egress_happy_eyeballs_first_address_lost_total"), 1) << m;
    EXPECT_EQ(metric_value(m, R"(egress_happy_eyeballs_wins_total{family="ipv4"})"), 1) << m;
    EXPECT_EQ(metric_value(m, R"(egress_happy_eyeballs_wins_total{family="ipv6"})"), 0) << m;
}

TEST_F(Names, TheAttemptDelayComesFromTheConfig) {
    dns_->set("lossy.test", {.a = {peer_->remote_v4()}, .aaaa = {kBlackHoleV6}});
    start({{"connect", {{"attempt_delay_ms", 50}}}});
    const auto t0 = std::chrono::steady_clock::now();
    auto r = request(*client_, at_port("lossy.test"), 5000);
    const double ms = ms_since(t0);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r->meta.remote, peer_v4());
    EXPECT_EQ(r->meta.addresses, 2u);
    EXPECT_GE(ms, 40);
    EXPECT_LT(ms, 1000) << "the default 250 ms would do too, but not 50 ms's bound of noise";
}

TEST_F(Names, WhenNoAddressAnswersTheRequestTimesOutAtItsDeadline) {
    dns_->set("void.test", {.a = {kBlackHole}, .aaaa = {kBlackHoleV6}});
    start();
    const auto t0 = std::chrono::steady_clock::now();
    auto r = request(*client_, at_port("void.test"), 1000);
    const double ms = ms_since(t0);
    EXPECT_TRUE(Fails(r, ETIMEDOUT, {"no address of void.test answered within 1000 ms"}));
    EXPECT_GE(ms, 900);
    EXPECT_LT(ms, 3000);
    EXPECT_EQ(metric(R"(egress_name_requests_total{result="timeout"})"), 1);
}

// ---- What DNS says -------------------------------------------------------

TEST_F(Names, ANameThatDoesNotExistIsENXIO) {
    start();
    auto r = request(*client_, at_port("nowhere.test"));
    EXPECT_TRUE(Fails(r, ENXIO, {"no such name", "nowhere.test"}));
    EXPECT_GE(dns_->queries("nowhere.test"), 1u);
    EXPECT_EQ(metric(R"(egress_name_requests_total{result="no_name"})"), 1);
}

TEST_F(Names, ANameWithoutAddressRecordsIsENODATA) {
    dns_->set("empty.test", {});
    start();
    EXPECT_TRUE(Fails(request(*client_, at_port("empty.test")), ENODATA, {"empty.test"}));
    EXPECT_EQ(metric(R"(egress_name_requests_total{result="no_data"})"), 1);
}

TEST_F(Names, AFailingDnsServerIsEREMOTEIO) {
    dns_->set("broken.test", {.a = {peer_->remote_v4()}});
    dns_->behave("broken.test", kDnsTypeAny, DnsBehaviour::servfail);
    start();
    EXPECT_TRUE(Fails(request(*client_, at_port("broken.test")), EREMOTEIO, {"broken.test"}));
    EXPECT_EQ(metric(R"(egress_name_requests_total{result="server_failure"})"), 1);
}

TEST_F(Names, AServerThatNeverAnswersIsETIMEDOUT) {
    dns_->behave("silent.test", kDnsTypeAny, DnsBehaviour::drop);
    start();
    const auto t0 = std::chrono::steady_clock::now();
    auto r = request(*client_, at_port("silent.test"), 5000);
    const double ms = ms_since(t0);
    EXPECT_TRUE(Fails(r, ETIMEDOUT, {"resolving", "silent.test"}));
    EXPECT_LT(ms, 2000) << "the resolver's one 200 ms try, not the request's 5000 ms";
    EXPECT_GE(dns_->queries("silent.test"), 2u) << "AAAA and A";
    EXPECT_EQ(metric(R"(egress_name_requests_total{result="resolve_timeout"})"), 1);
}

TEST_F(Names, TheRequestsDeadlineCutsASlowerResolverShort) {
    dns_->behave("silent.test", kDnsTypeAny, DnsBehaviour::drop);
    start({{"dns", {{"timeout_ms", 2000}}}});
    const auto t0 = std::chrono::steady_clock::now();
    auto r = request(*client_, at_port("silent.test"), 300);
    const double ms = ms_since(t0);
    EXPECT_TRUE(Fails(r, ETIMEDOUT, {"resolving", "silent.test", "300 ms"}));
    EXPECT_GE(ms, 250);
    EXPECT_LT(ms, 1500) << "the request's 300 ms, not the resolver's 2000 ms";
}

// ---- Policy --------------------------------------------------------------

TEST_F(Names, DnsCannotLeadANameToADeniedAddress) {
    dns_->set("local.test", {.a = {"127.0.0.1"}});
    dns_->set("metadata.test", {.a = {"169.254.169.254"}});
    start();
    EXPECT_TRUE(Fails(request(*client_, at_port("local.test")), EACCES,
                      {"every address of local.test is denied", "loopback"}));
    EXPECT_TRUE(Fails(request(*client_, "metadata.test:80"), EACCES,
                      {"every address of metadata.test is denied", "cloud metadata"}));
    const auto m = daemon_->scrape();
    EXPECT_EQ(metric_value(m, R"(egress_name_requests_total{result="denied"})"), 2) << m;
    // Refused, never tried: the pool's series saw no outcome at all.
    EXPECT_LE(metric_value(m, R"(egress_connects_total{pool="default",result="ok",source="kernel",transport="tcp"})"), 0) << m;
    EXPECT_EQ(m.find(R"(egress_connects_total{pool="default",result="E)"), std::string::npos) << m;
}

TEST_F(Names, ANameRuleDenyCostsNoDnsQuery) {
    dns_->set("x.blocked.test", {.a = {peer_->remote_v4()}});
    dns_->set("fine.test", {.a = {peer_->remote_v4()}});
    auto entries = address_allows();
    entries.insert(entries.begin(), json{{"action", "deny"}, {"host", "*.blocked.test"}});
    start({{"default_client", {{"destinations", entries}}}});
    EXPECT_TRUE(Fails(request(*client_, at_port("x.blocked.test")), EACCES, {"x.blocked.test", "*.blocked.test"}));
    EXPECT_EQ(dns_->queries("x.blocked.test"), 0u);
    // The rule's address entries still let other names through.
    auto ok = request(*client_, at_port("fine.test"));
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(*ok->meta.remote, peer_v4());
    EXPECT_EQ(dns_->queries("x.blocked.test"), 0u);
}

TEST_F(Names, ANameAllowListAdmitsItsNameAndRefusesOthersBeforeResolving) {
    dns_->set("ok.test", {.a = {peer_->remote_v4()}, .aaaa = {peer_->remote_v6()}});
    dns_->set("other.test", {.a = {peer_->remote_v4()}});
    // The peer's addresses are private: only deny_private false lets a name allow reach them.
    start({{"default_client", {{"destinations", json::array({{{"action", "allow"}, {"host", "ok.test"}}})},
                               {"otherwise", "deny"},
                               {"deny_private", false}}}});
    auto ok = request(*client_, at_port("ok.test"));
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_TRUE(*ok->meta.remote == peer_v6() || *ok->meta.remote == peer_v4()) << endpoint_string(*ok->meta.remote);
    EXPECT_TRUE(Fails(request(*client_, at_port("other.test")), EACCES, {"other.test", "otherwise: deny"}));
    EXPECT_EQ(dns_->queries("other.test"), 0u);
    EXPECT_EQ(metric(R"(egress_name_requests_total{result="denied"})"), 1);
}

// ---- The loop, the cache, the delays ------------------------------------

TEST_F(Names, SlowLookupsDoNotHoldUpOtherRequests) {
    constexpr int kNames = 100;
    for (int i = 0; i < kNames; ++i) {
        const auto name = "slow" + std::to_string(i) + ".test";
        dns_->set(name, {.a = {peer_->remote_v4()}});
        dns_->delay(name, kDnsTypeAny, 500ms);
    }
    // One loop: the literal request shares it with every pending lookup.
    start({{"dns", {{"timeout_ms", 2000}}}}, {"--threads", "1"});
    std::vector<std::uint64_t> ids;
    for (int i = 0; i < kNames; ++i) {
        auto id = client_->submit(*parse_destination(at_port("slow" + std::to_string(i) + ".test")),
                                  {.timeout_ms = 5000});
        ASSERT_TRUE(id) << id.error().message;
        ids.push_back(*id);
    }
    ASSERT_TRUE(eventually([&] { return dns_->queries() >= 2u * kNames; })) << dns_->queries() << " queries";

    auto other = Client::open(daemon_->socket());
    ASSERT_TRUE(other) << other.error().message;
    const auto t0 = std::chrono::steady_clock::now();
    auto literal = request(*other, endpoint_string(peer_v4()), 2000);
    const double ms = ms_since(t0);
    ASSERT_TRUE(literal) << literal.error().message;
    EXPECT_LT(ms, 250) << "a literal connect waited behind the lookups";
    pollfd p{client_->native_handle(), POLLIN, 0};
    EXPECT_EQ(::poll(&p, 1, 0), 0) << "the names were answered before the literal: nothing was pending";

    int ok = 0;
    for (int i = 0; i < kNames; ++i) {
        pollfd w{client_->native_handle(), POLLIN, 0};
        ASSERT_EQ(::poll(&w, 1, 10000), 1) << "only " << i << " of " << kNames << " replies";
        auto done = client_->next();
        ASSERT_TRUE(done) << done.error().message;
        EXPECT_NE(std::find(ids.begin(), ids.end(), done->request_id), ids.end());
        if (done->result) {
            ++ok;
            EXPECT_EQ(*done->result->meta.remote, peer_v4());
        } else {
            ADD_FAILURE() << done->result.error().message;
        }
    }
    EXPECT_EQ(ok, kNames);
}

// The first request's AAAA answer comes 100 ms late and its A answer waits
// for it (a resolution delay of 2 s; a resolver that waits as long): both
// answers are in egressd, cached or not, before that request's first
// attempt, hence before its reply.
constexpr const char* kBothAnswersFirst =
    R"({"connect": {"resolution_delay_ms": 2000}, "dns": {"timeout_ms": 2000}})";

TEST_F(Names, ASecondRequestForANameIsAnsweredFromTheCache) {
    dns_->set("cached.test", {.a = {peer_->remote_v4()}, .aaaa = {peer_->remote_v6()}});
    dns_->delay("cached.test", kDnsTypeAAAA, 100ms);
    start(json::parse(kBothAnswersFirst));
    auto first = request(*client_, at_port("cached.test"));
    ASSERT_TRUE(first) << first.error().message;
    EXPECT_GT(first->meta.resolve_us, 0u);
    EXPECT_EQ(dns_->queries("cached.test"), 2u) << "AAAA and A";
    dns_->delay("cached.test", kDnsTypeAAAA, 0ms);
    auto second = request(*client_, at_port("cached.test"));
    ASSERT_TRUE(second) << second.error().message;
    EXPECT_EQ(second->meta.resolve_us, 0u);
    EXPECT_EQ(dns_->queries("cached.test"), 2u) << "the second request asked the DNS again";
    EXPECT_EQ(*second->meta.remote, *first->meta.remote);
    EXPECT_EQ(metric(R"(egress_dns_lookups_total{family="ipv6",result="cached"})"), 1);
}

TEST_F(Names, WithoutACacheEveryRequestAsksTheDns) {
    dns_->set("cached.test", {.a = {peer_->remote_v4()}, .aaaa = {peer_->remote_v6()}});
    dns_->delay("cached.test", kDnsTypeAAAA, 100ms);
    auto patch = json::parse(kBothAnswersFirst);
    patch["dns"]["cache_entries"] = 0;
    start(patch);
    auto first = request(*client_, at_port("cached.test"));
    ASSERT_TRUE(first) << first.error().message;
    EXPECT_EQ(dns_->queries("cached.test"), 2u) << "AAAA and A";
    dns_->delay("cached.test", kDnsTypeAAAA, 0ms);
    auto second = request(*client_, at_port("cached.test"));
    ASSERT_TRUE(second) << second.error().message;
    EXPECT_GT(second->meta.resolve_us, 0u);
    // Its AAAA answer may start the attempt before the server has read the A query.
    EXPECT_TRUE(eventually([&] { return dns_->queries("cached.test") == 4u; }))
        << dns_->queries("cached.test") << " queries: the second request did not ask the DNS again";
}

TEST_F(Names, TheResolutionDelayWaitsForAnAaaaAnswerThatComesSoonAfter) {
    dns_->set("late.test", {.a = {peer_->remote_v4()}, .aaaa = {peer_->remote_v6()}});
    dns_->delay("late.test", kDnsTypeAAAA, 30ms);
    start();
    auto r = request(*client_, at_port("late.test"));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r->meta.remote, peer_v6()) << "the A answer did not wait its 50 ms for AAAA";
    EXPECT_EQ(r->meta.addresses, 1u);
}

TEST_F(Names, AnAaaaAnswerLaterThanTheResolutionDelayLosesToIPv4) {
    dns_->set("late.test", {.a = {peer_->remote_v4()}, .aaaa = {peer_->remote_v6()}});
    dns_->delay("late.test", kDnsTypeAAAA, 400ms);
    start({{"dns", {{"timeout_ms", 2000}}}});  // the AAAA answer is late, not lost
    const auto t0 = std::chrono::steady_clock::now();
    auto r = request(*client_, at_port("late.test"));
    const double ms = ms_since(t0);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(*r->meta.remote, peer_v4());
    EXPECT_EQ(r->meta.addresses, 1u);
    EXPECT_GE(ms, 40) << "the A answer waits the 50 ms resolution delay";
    EXPECT_LT(ms, 300) << "not for the AAAA answer's 400 ms";
    EXPECT_EQ(metric(R"(egress_happy_eyeballs_wins_total{family="ipv4"})"), 1);
    EXPECT_EQ(metric(R"(egress_dns_lookups_total{family="ipv4",result="ok"})"), 1);
    // The AAAA answer that came after the reply is counted too, when it comes.
    EXPECT_TRUE(eventually([&] { return metric(R"(egress_dns_lookups_total{family="ipv6",result="ok"})") == 1; }))
        << "the late AAAA answer was not counted";
}

// ---- egress-connect ------------------------------------------------------

TEST_F(Names, EgressConnectResolvesANameAndPrintsWhatItTried) {
    dns_->set("cli.test", {.a = {peer_->remote_v4()}});
    start();
    auto r = run({egress_connect_bin(), "--socket", daemon_->socket(), "--json", at_port("cli.test")});
    ASSERT_EQ(r.status, 0) << r.err;
    const auto j = json::parse(r.out);
    EXPECT_EQ(j["remote"], endpoint_string(peer_v4())) << j;
    EXPECT_EQ(j["addresses"], 1) << j;
    ASSERT_TRUE(j.contains("resolve_us")) << j;
    EXPECT_GT(j["resolve_us"].get<std::uint64_t>(), 0u) << j;
}

TEST_F(Names, EgressConnectRefusesAnInvalidNameWithExitTwo) {
    start();
    auto r = run({egress_connect_bin(), "--socket", daemon_->socket(), "--json", "a..b:80"});
    EXPECT_EQ(r.status, 2) << r.out << r.err;
    EXPECT_NE(r.err.find("host name 'a..b' is not valid: it has an empty label"), std::string::npos) << r.err;
    EXPECT_EQ(dns_->queries(), 0u);
}

// ---- Descriptors ---------------------------------------------------------

TEST_F(Names, NoDescriptorOutlivesANameRequest) {
    dns_->set("four.test", {.a = {peer_->remote_v4()}});
    dns_->set("both.test", {.a = {peer_->remote_v4()}, .aaaa = {peer_->remote_v6()}});
    dns_->set("lossy.test", {.a = {peer_->remote_v4()}, .aaaa = {kBlackHoleV6}});
    dns_->set("void.test", {.a = {kBlackHole}, .aaaa = {kBlackHoleV6}});
    dns_->set("local.test", {.a = {"127.0.0.1"}});
    dns_->set("broken.test", {.a = {peer_->remote_v4()}});
    dns_->behave("broken.test", kDnsTypeAny, DnsBehaviour::servfail);
    start({{"connect", {{"attempt_delay_ms", 50}}}});
    // Once a lookup has run, whatever the resolver keeps between lookups is in the baseline.
    ASSERT_TRUE(request(*client_, at_port("four.test")));
    const int idle = daemon_->settled_fds();

    for (int round = 0; round < 3; ++round) {
        EXPECT_TRUE(request(*client_, at_port("four.test")));
        EXPECT_TRUE(request(*client_, at_port("both.test")));
        auto lost = request(*client_, at_port("lossy.test"));  // the IPv6 attempt loses, still pending
        EXPECT_TRUE(lost && lost->meta.addresses == 2u) << (lost ? "one address" : lost.error().message);
        EXPECT_TRUE(Fails(request(*client_, at_port("void.test"), 300), ETIMEDOUT, {"void.test"}));
        EXPECT_TRUE(Fails(request(*client_, at_port("nowhere" + std::to_string(round) + ".test")), ENXIO, {}));
        EXPECT_TRUE(Fails(request(*client_, at_port("local.test")), EACCES, {}));
        EXPECT_TRUE(Fails(request(*client_, at_port("broken.test")), EREMOTEIO, {}));
    }
    EXPECT_EQ(daemon_->wait_fds(idle), idle) << "egressd kept a descriptor";

    // A client that goes away with requests pending: one waiting for its
    // lookups, one with both attempts still in flight. Both are abandoned.
    dns_->set("slow.test", {.a = {peer_->remote_v4()}});
    dns_->delay("slow.test", kDnsTypeAny, 2000ms);
    {
        auto gone = Client::open(daemon_->socket());
        ASSERT_TRUE(gone) << gone.error().message;
        ASSERT_TRUE(gone->submit(*parse_destination(at_port("slow.test")), {.timeout_ms = 5000}));
        ASSERT_TRUE(gone->submit(*parse_destination(at_port("void.test")), {.timeout_ms = 5000}));
        ASSERT_TRUE(eventually([&] { return dns_->queries("slow.test") >= 2u; }));
        // Held now: this connection, the resolver's socket (slow.test is
        // pending) and both attempts to void.test (v6, then v4 50 ms later).
        ASSERT_TRUE(eventually([&] { return daemon_->open_fds() >= idle + 4; })) << daemon_->open_fds();
    }
    ASSERT_TRUE(eventually([&] { return metric(R"(egress_name_requests_total{result="cancelled"})") == 2; }))
        << metric(R"(egress_name_requests_total{result="cancelled"})");
    EXPECT_EQ(daemon_->wait_fds(idle), idle) << "egressd kept a descriptor of an abandoned request";
    EXPECT_TRUE(daemon_->alive());
}

}  // namespace
}  // namespace egress::test
