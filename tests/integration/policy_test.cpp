// Client identity and egress policy against the real egressd: rules chosen by
// the peer's uid/gid (SO_PEERCRED), destination entries, the built-in deny
// list (never connected to) and the IPv4 addresses IPv6 ones embed,
// deny_private, the host's own addresses (kept current from netlink) and
// egressd's own listeners, pool permissions, the socket's owner and group,
// reload.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <grp.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "egress_client.hpp"
#include "harness.hpp"

namespace egress::test {
namespace {

using json = nlohmann::json;

// egress-connect --json DEST run as uid:gid with supplementary `groups`, so
// egressd sees those credentials on its socket.
json connect_as(const Daemon& d, uid_t uid, gid_t gid, const std::string& dest, std::vector<gid_t> groups = {}) {
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return {{"error", "pipe"}};
    const auto bin = egress_connect_bin();  // before fork: the child only makes syscalls
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out[1], 1);
        if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) ::_exit(126);
        ::execl(bin.c_str(), bin.c_str(), "--socket", d.socket().c_str(), "--json", dest.c_str(), nullptr);
        ::_exit(127);
    }
    ::close(out[1]);
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
    ::close(out[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (text.empty()) return {{"error", "egress-connect printed nothing, status " + std::to_string(status)}};
    return json::parse(text);
}

// EACCES from egressd whose message holds every word.
testing::AssertionResult Denied(const Result<Connected>& r, std::initializer_list<std::string> words) {
    if (r) return testing::AssertionFailure() << "connected from " << endpoint_string(*r->meta.local);
    if (r.error().code != EACCES)
        return testing::AssertionFailure() << errno_name(r.error().code) << ": " << r.error().message;
    for (const auto& w : words)
        if (r.error().message.find(w) == std::string::npos)
            return testing::AssertionFailure() << "'" << r.error().message << "' lacks '" << w << "'";
    return testing::AssertionSuccess();
}

std::string at(const char* addr, std::uint16_t port) { return endpoint_string(*parse_address(addr, port)); }

TEST(Policy, BuiltinDenyListRefusesBeforeAnyConnect) {
    Listener v4(Listener::Mode::echo), v6(Listener::Mode::echo, "::1");
    Daemon d(R"({"clients": []})");  // no rule allows loopback
    auto c = Client::open(d.socket());
    ASSERT_TRUE(c);
    const int fds = d.settled_fds();
    const auto port = v4.endpoint().port;
    EXPECT_TRUE(Denied(c->connect(v4.endpoint()), {"rule 'default'", "127.0.0.0/8 loopback"}));
    EXPECT_TRUE(Denied(c->connect(*parse_address("::ffff:127.0.0.1", port)), {"127.0.0.0/8 loopback"}));
    EXPECT_TRUE(Denied(c->connect(*parse_address("::127.0.0.1", port)), {"loopback"}));
    EXPECT_TRUE(Denied(c->connect(v6.endpoint()), {"::1/128 loopback"}));
    // The cloud metadata address, in every spelling: refused, never tried.
    for (const char* metadata : {"169.254.169.254", "::ffff:169.254.169.254", "::169.254.169.254"})
        EXPECT_TRUE(Denied(c->connect(*parse_address(metadata, 80)), {"cloud metadata"})) << metadata;
    EXPECT_TRUE(Denied(c->connect(*parse_address("0.0.0.0", port)), {"unspecified"}));
    EXPECT_TRUE(Denied(c->connect(*parse_address("224.0.0.1", 80)), {"multicast"}));
    EXPECT_TRUE(Denied(c->connect(*parse_address("255.255.255.255", 80)), {"broadcast"}));
    EXPECT_TRUE(Denied(c->connect(*parse_address("fe80::1", 80)), {"link-local"}));
    EXPECT_EQ(d.wait_fds(fds), fds);

    const auto m = d.scrape();
    EXPECT_EQ(metric_value(m, R"(egress_connects_total{pool="",result="EACCES",source="",transport="tcp"})"), 11) << m;
    EXPECT_EQ(metric_value(m, R"(egress_policy_denials_total{reason="destination",rule="default"})"), 11) << m;
    // No connect was attempted: the pool's series saw no outcome at all.
    EXPECT_EQ(metric_value(m, R"(egress_connects_total{pool="default",result="ok",source="kernel",transport="tcp"})"), 0) << m;
    EXPECT_EQ(m.find(R"(egress_connects_total{pool="default",result="E)"), std::string::npos) << m;
    auto status = json::parse(*c->status());
    EXPECT_EQ(status["clients"].back()["name"], "default");
    EXPECT_EQ(status["clients"].back()["denied"], 11);
    EXPECT_NE(d.log().find("denied a request of client"), std::string::npos) << d.log();
}

TEST(Policy, ClientsAreMatchedByTheirCredentials) {
    Listener echo(Listener::Mode::echo), other(Listener::Mode::echo);
    const auto port = std::to_string(echo.endpoint().port);
    Daemon d(R"({"socket": {"mode": "0666", "group": 4243},
                 "clients": [
                   {"name": "sandbox", "match": {"uid": 4242},
                    "destinations": [{"action": "deny", "dest": "127.0.0.1", "ports": ")" + port + R"("},
                                     {"action": "allow", "dest": "127.0.0.0/8"}]},
                   {"name": "by-group", "match": {"group": "nogroup"},
                    "destinations": [{"action": "allow", "dest": "127.0.0.1", "ports": ")" + port + R"("}],
                    "otherwise": "deny"},
                   {"name": "root-rule", "match": {"user": "root"},
                    "destinations": [{"action": "allow", "dest": "127.0.0.0/8"}]}]})");
    ASSERT_EQ(::chmod(d.dir().c_str(), 0711), 0);  // let other users reach the socket
    struct stat st {};
    ASSERT_EQ(::lstat(d.socket().c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0666u);
    EXPECT_EQ(st.st_gid, 4243u);
    EXPECT_EQ(st.st_uid, 0u);

    const auto to_echo = endpoint_string(echo.endpoint()), to_other = endpoint_string(other.endpoint());
    auto r = connect_as(d, 4242, 4242, to_echo);  // the sandbox rule's deny entry
    EXPECT_EQ(r["error"], "EACCES") << r;
    EXPECT_NE(r["message"].get<std::string>().find("client rule 'sandbox'"), std::string::npos) << r;
    EXPECT_NE(r["message"].get<std::string>().find("destinations[0]"), std::string::npos) << r;
    r = connect_as(d, 4242, 4242, to_other);  // its allow entry
    EXPECT_EQ(r["remote"], to_other) << r;
    r = connect_as(d, 4242, 4242, at("169.254.169.254", 80));  // the built-in list still applies
    EXPECT_EQ(r["error"], "EACCES") << r;

    r = connect_as(d, 5000, 65534, to_echo);  // group nogroup: only the echo port
    EXPECT_EQ(r["remote"], to_echo) << r;
    r = connect_as(d, 5000, 65534, to_other);
    EXPECT_EQ(r["error"], "EACCES") << r;
    EXPECT_NE(r["message"].get<std::string>().find("client rule 'by-group'"), std::string::npos) << r;
    EXPECT_NE(r["message"].get<std::string>().find("127.0.0.0/8 loopback"), std::string::npos) << r;

    r = connect_as(d, 5001, 5001, to_echo, {4000, 65534});  // nogroup as a supplementary group
    EXPECT_EQ(r["remote"], to_echo) << r;
    r = connect_as(d, 5001, 5001, to_other, {65534});
    EXPECT_NE(r["message"].get<std::string>().find("client rule 'by-group'"), std::string::npos) << r;

    r = connect_as(d, 5000, 5000, to_echo);  // no rule: the built-in default denies loopback
    EXPECT_EQ(r["error"], "EACCES") << r;
    EXPECT_NE(r["message"].get<std::string>().find("client rule 'default'"), std::string::npos) << r;

    auto root = Client::open(d.socket());  // this process: uid 0, user root
    ASSERT_TRUE(root);
    auto ok = root->connect(echo.endpoint());
    EXPECT_TRUE(ok) << ok.error().message;

    const auto m = d.scrape();
    EXPECT_EQ(metric_value(m, R"(egress_policy_denials_total{reason="destination",rule="sandbox"})"), 2) << m;
    EXPECT_EQ(metric_value(m, R"(egress_policy_denials_total{reason="destination",rule="by-group"})"), 2) << m;
    EXPECT_EQ(metric_value(m, R"(egress_policy_denials_total{reason="destination",rule="default"})"), 1) << m;
    EXPECT_EQ(metric_value(m, R"(egress_connects_total{pool="",result="EACCES",source="",transport="tcp"})"), 5) << m;
    EXPECT_NE(d.log().find("(uid 4242, gid 4242, pid "), std::string::npos) << d.log();
}

// Tried, not refused by the policy: any outcome but EACCES.
testing::AssertionResult Tried(const Result<Connected>& r) {
    if (r || r.error().code != EACCES) return testing::AssertionSuccess();
    return testing::AssertionFailure() << "EACCES: " << r.error().message;
}

// Polls `done` every 10 ms until it holds or 5 s pass (the safety timeout).
template <class F>
bool eventually(F done) {
    const auto t0 = std::chrono::steady_clock::now();
    while (!done()) {
        if (ms_since(t0) > 5000) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

TEST(Policy, EveryFormOfADeniedAddressIsRefusedNotTried) {
    // Nothing in this namespace routes these: without the policy each
    // connect fails in the kernel with ENETUNREACH instead of EACCES.
    Daemon d(R"({"clients": []})");
    auto c = Client::open(d.socket());
    ASSERT_TRUE(c);
    struct Case {
        const char *addr, *words;
    };
    for (const auto& x : {Case{"64:ff9b::7f00:1", "64:ff9b::7f00:1 embeds 127.0.0.1 (NAT64, RFC 6052): built-in deny list: 127.0.0.0/8 loopback"},
                          Case{"64:ff9b::a9fe:a9fe", "embeds 169.254.169.254 (NAT64"},
                          Case{"2002:7f00:1::1", "embeds 127.0.0.1 (6to4, RFC 3056)"},
                          Case{"2002:a9fe:a9fe::1", "embeds 169.254.169.254 (6to4"},
                          Case{"2001:0:4136:e378:8000:63bf:80ff:fffe", "embeds 127.0.0.1 (Teredo client, RFC 4380)"},
                          Case{"::ffff:0:7f00:1", "embeds 127.0.0.1 (IPv4-translated, RFC 2765)"},
                          // Private by default, in every form.
                          Case{"64:ff9b::a00:1", "embeds 10.0.0.1 (NAT64"},
                          Case{"2002:a00:1::1", "embeds 10.0.0.1 (6to4"},
                          Case{"10.0.0.1", "10.0.0.0/8 private (deny_private)"},
                          Case{"100.64.0.1", "CGNAT"},
                          Case{"fd00::1", "unique local"},
                          // The ranges the built-in list gained.
                          Case{"fd00:ec2::254", "AWS"},
                          Case{"100.100.100.200", "Alibaba"},
                          Case{"168.63.129.16", "Azure WireServer"},
                          Case{"192.0.0.192", "Oracle"},
                          Case{"240.0.0.1", "240.0.0.0/4"},
                          Case{"192.0.0.8", "192.0.0.0/24"},
                          Case{"198.18.0.2", "198.18.0.0/15"},
                          Case{"fec0::1", "fec0::/10"},
                          Case{"64:ff9b:1::a00:1", "64:ff9b:1::/48"}})
        EXPECT_TRUE(Denied(c->connect(*parse_address(x.addr, 80), {.timeout_ms = 500}), {"rule 'default'", x.words}))
            << x.addr;
    // Public IPv4 behind NAT64 is still tried (and fails here: no route).
    EXPECT_TRUE(Tried(c->connect(*parse_address("64:ff9b::808:808", 80), {.timeout_ms = 500})));
}

TEST(Policy, PrivateRangesAreDeniedByDefaultAndDenyPrivateFalseOpensThem) {
    // Nothing in this namespace routes 10/8: with deny_private false the
    // connect is tried and fails locally; by default it is refused first.
    const auto loopback = R"({"action": "allow", "dest": "127.0.0.0/8"})";
    Daemon open(std::string(R"({"default_client": {"deny_private": false, "destinations": [)") + loopback + "]}}");
    Daemon closed(std::string(R"({"default_client": {"destinations": [)") + loopback +
                  R"(, {"action": "allow", "dest": "192.168.7.0/24"}]}})");
    auto a = Client::open(open.socket()), b = Client::open(closed.socket());
    ASSERT_TRUE(a && b);
    for (const char* addr : {"10.0.0.1", "100.64.0.1", "64:ff9b::a00:1", "2002:a00:1::1"})
        EXPECT_TRUE(Tried(a->connect(*parse_address(addr, 80), {.timeout_ms = 500}))) << addr;
    for (const char* addr : {"10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.0.1", "100.64.0.1", "::ffff:10.1.2.3",
                             "fd00::1", "64:ff9b::a00:1", "2002:a00:1::1"})
        EXPECT_TRUE(Denied(b->connect(*parse_address(addr, 80)), {"private", "deny_private"})) << addr;
    // Opened explicitly.
    EXPECT_TRUE(Tried(b->connect(*parse_address("192.168.7.1", 80), {.timeout_ms = 500})));
}

TEST(Policy, TheHostsOwnAddressesAreDeniedUnlessDenyHostIsFalse) {
    Listener any(Listener::Mode::echo, "0.0.0.0");  // a service on every address of the host
    const auto port = any.endpoint().port;
    Daemon d;  // the harness's rule allows loopback only
    Daemon open(R"({"default_client": {"deny_host": false}})");
    auto c = Client::open(d.socket()), o = Client::open(open.socket());
    ASSERT_TRUE(c && o);
    // bh0's own address; the black hole next to it is no address of the host.
    EXPECT_TRUE(Denied(c->connect(*parse_address("203.0.113.1", port)),
                       {"address of this host: 203.0.113.1 (deny_host)"}));
    EXPECT_TRUE(Denied(c->connect(*parse_address("::ffff:203.0.113.1", port)), {"address of this host"}));
    EXPECT_TRUE(Denied(c->connect(*parse_address("64:ff9b::cb00:7101", port)), {"embeds 203.0.113.1", "address of this host"}));
    EXPECT_TRUE(Tried(c->connect(*parse_address(kBlackHole, 80), {.timeout_ms = 100})));
    auto r = o->connect(*parse_address("203.0.113.1", port));  // opted out: reaches the service
    EXPECT_TRUE(r) << r.error().message;
    auto status = json::parse(*c->status());
    EXPECT_GE(status["host_addresses"].get<int>(), 3) << status;  // 127.0.0.1, ::1, 203.0.113.1 at least
    EXPECT_EQ(status["clients"].back()["deny_host"], true) << status;
}

TEST(Policy, AnAddressAddedAfterStartIsDeniedUntilItIsRemoved) {
    Listener any(Listener::Mode::echo, "0.0.0.0");
    Daemon d;
    auto c = Client::open(d.socket());
    ASSERT_TRUE(c);
    const auto target = *parse_address("192.0.2.50", any.endpoint().port);
    EXPECT_TRUE(Tried(c->connect(target, {.timeout_ms = 200})));  // not an address of the host yet
    sh("ip addr add 192.0.2.50/32 dev lo");
    Result<Connected> last = Error{0, ""};
    EXPECT_TRUE(eventually([&] { return (last = c->connect(target, {.timeout_ms = 200})), !last && last.error().code == EACCES; }))
        << (last ? "connected" : last.error().message);
    EXPECT_TRUE(Denied(last, {"address of this host: 192.0.2.50"}));
    sh("ip addr del 192.0.2.50/32 dev lo");
    EXPECT_TRUE(eventually([&] { return (last = c->connect(target, {.timeout_ms = 200})), bool(Tried(last)); }));
    // IPv6 too.
    const auto target6 = *parse_address("2001:db8::50", 80);
    sh("ip -6 addr add 2001:db8::50/128 dev lo nodad");
    EXPECT_TRUE(eventually([&] { return (last = c->connect(target6, {.timeout_ms = 200})), !last && last.error().code == EACCES; }));
    EXPECT_TRUE(Denied(last, {"address of this host: 2001:db8::50"}));
    sh("ip -6 addr del 2001:db8::50/128 dev lo");
    EXPECT_TRUE(eventually([&] { return (last = c->connect(target6, {.timeout_ms = 200})), bool(Tried(last)); }));
}

TEST(Policy, EgressdsOwnMetricsEndpointIsDeniedWhateverTheRulesSay) {
    const auto all = R"({"default_client": {"deny_host": false, "deny_private": false, "destinations": [
                          {"action": "allow", "dest": "127.0.0.0/8"}, {"action": "allow", "dest": "0.0.0.0/0"},
                          {"action": "allow", "dest": "203.0.113.1"}]}})";
    Daemon d(all);  // metrics on 127.0.0.1
    auto c = Client::open(d.socket());
    ASSERT_TRUE(c);
    const auto port = static_cast<std::uint16_t>(d.metrics_port());
    EXPECT_TRUE(Denied(c->connect(*parse_address("127.0.0.1", port)),
                       {"egressd's own metrics endpoint listens on 127.0.0.1:" + std::to_string(port)}));
    EXPECT_TRUE(Denied(c->connect(*parse_address("64:ff9b::7f00:1", port)), {"embeds 127.0.0.1", "metrics endpoint"}));
    Listener echo(Listener::Mode::echo);
    auto ok = c->connect(echo.endpoint());  // the rule does allow loopback
    EXPECT_TRUE(ok) << ok.error().message;

    // Bound to the wildcard, it is denied at every address of the host.
    const auto wport = next_test_port();
    Daemon w(all, {"--metrics-listen", "0.0.0.0:" + std::to_string(wport)});
    auto cw = Client::open(w.socket());
    ASSERT_TRUE(cw);
    for (const char* a : {"127.0.0.1", "127.0.0.2", "203.0.113.1", "0.0.0.0", "::ffff:203.0.113.1"})
        EXPECT_TRUE(Denied(cw->connect(*parse_address(a, wport)), {"metrics endpoint listens on 0.0.0.0:"})) << a;
    Listener any(Listener::Mode::echo, "0.0.0.0");
    ok = cw->connect(*parse_address("203.0.113.1", any.endpoint().port));  // other ports stay open to the rule
    EXPECT_TRUE(ok) << ok.error().message;
}

TEST(Policy, PoolsARuleMayNotUseAreRefused) {
    Listener routed(Listener::Mode::echo), plain(Listener::Mode::echo);
    Daemon d(R"({"pools": {"a": {"sources": ["127.0.0.2"], "client_selectable": true},
                           "b": {"sources": ["127.0.0.3"], "client_selectable": true}},
                 "default_pool": "a",
                 "routes": [{"dest": "127.0.0.1", "ports": ")" + std::to_string(routed.endpoint().port) +
             R"(", "pool": "b"}],
                 "default_client": {"name": "only-a", "pools": ["a"],
                                    "destinations": [{"action": "allow", "dest": "127.0.0.0/8"}]}})");
    auto c = Client::open(d.socket());
    ASSERT_TRUE(c);
    EXPECT_TRUE(Denied(c->connect(plain.endpoint(), {.pool = "b"}), {"client rule 'only-a' may not use pool 'b'"}));
    EXPECT_TRUE(Denied(c->connect(routed.endpoint()), {"may not use pool 'b'", "where the routes send"}));
    auto ok = c->connect(plain.endpoint(), {.pool = "a"});
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(address_string(*ok->meta.local), "127.0.0.2");
    ok = c->connect(plain.endpoint());  // routes: default pool a
    ASSERT_TRUE(ok) << ok.error().message;
    const auto m = d.scrape();
    EXPECT_EQ(metric_value(m, R"(egress_policy_denials_total{reason="pool",rule="only-a"})"), 2) << m;
}

TEST(Policy, SighupAppliesNewRulesToOpenConnections) {
    Listener echo(Listener::Mode::echo);
    Daemon d;  // the harness's rule allows loopback
    auto c = Client::open(d.socket());
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->connect(echo.endpoint()));
    std::ofstream(d.dir() + "/config.json")
        << R"({"default_client": {"name": "locked", "destinations": [{"action": "deny", "dest": "127.0.0.0/8"}]}})";
    ::kill(d.pid(), SIGHUP);
    const auto t0 = std::chrono::steady_clock::now();
    while (d.log().find("reloaded configuration") == std::string::npos && ms_since(t0) < 5000)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_TRUE(Denied(c->connect(echo.endpoint()), {"client rule 'locked'", "destinations[0]"})) << d.log();
}

TEST(Policy, SocketOwnerThatDoesNotExistStopsTheStart) {
    char tmpl[] = "/tmp/egressd-policy.XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    std::ofstream(dir + "/c.json") << R"({"socket": {"owner": "no-such-user-here"}})";
    auto r = run({egressd_bin(), "--config", dir + "/c.json", "--socket", dir + "/s.sock"});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("socket.owner: no user of that name"), std::string::npos) << r.err;
    std::system(("rm -rf " + dir).c_str());
}

TEST(Policy, RefusesASymlinkAtTheSocketPath) {
    char tmpl[] = "/tmp/egressd-policy.XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    std::ofstream(dir + "/target") << "precious";
    ASSERT_EQ(::symlink((dir + "/target").c_str(), (dir + "/s.sock").c_str()), 0);
    auto r = run({egressd_bin(), "--socket", dir + "/s.sock", "--metrics-listen="});
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("symbolic link"), std::string::npos) << r.err;
    struct stat st {};
    ASSERT_EQ(::stat((dir + "/target").c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace egress::test
