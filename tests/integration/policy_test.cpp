// Client identity and egress policy against the real egressd: rules chosen by
// the peer's uid/gid (SO_PEERCRED), destination entries, the built-in deny
// list (never connected to), deny_private, pool permissions, the socket's
// owner and group, reload.
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
    EXPECT_EQ(metric_value(m, R"(egress_connects_total{pool="",result="EACCES",source=""})"), 11) << m;
    EXPECT_EQ(metric_value(m, R"(egress_policy_denials_total{reason="destination",rule="default"})"), 11) << m;
    // No connect was attempted: the pool's series saw no outcome at all.
    EXPECT_EQ(metric_value(m, R"(egress_connects_total{pool="default",result="ok",source="kernel"})"), 0) << m;
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
    EXPECT_EQ(metric_value(m, R"(egress_connects_total{pool="",result="EACCES",source=""})"), 5) << m;
    EXPECT_NE(d.log().find("(uid 4242, gid 4242, pid "), std::string::npos) << d.log();
}

TEST(Policy, DenyPrivateIsOptIn) {
    // Nothing in this namespace routes 10/8: without deny_private the connect
    // is tried and fails locally; with it, it is refused first.
    const auto loopback = R"({"action": "allow", "dest": "127.0.0.0/8"})";
    Daemon open(std::string(R"({"default_client": {"destinations": [)") + loopback + "]}}");
    Daemon closed(std::string(R"({"default_client": {"deny_private": true, "destinations": [)") + loopback +
                  R"(, {"action": "allow", "dest": "192.168.7.0/24"}]}})");
    auto a = Client::open(open.socket()), b = Client::open(closed.socket());
    ASSERT_TRUE(a && b);
    auto tried = a->connect(*parse_address("10.0.0.1", 80), {.timeout_ms = 500});
    ASSERT_FALSE(tried);
    EXPECT_NE(tried.error().code, EACCES) << tried.error().message;
    for (const char* addr : {"10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.0.1", "::ffff:10.1.2.3", "fd00::1"})
        EXPECT_TRUE(Denied(b->connect(*parse_address(addr, 80)), {"private", "deny_private"})) << addr;
    auto allowed = b->connect(*parse_address("192.168.7.1", 80), {.timeout_ms = 500});  // opened explicitly
    ASSERT_FALSE(allowed);
    EXPECT_NE(allowed.error().code, EACCES) << allowed.error().message;
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
