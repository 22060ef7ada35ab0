// Source-IP pools and port strategies at scale, in the test namespace
// (127.0.0.2-5 and ::2-5 on lo, ip_local_port_range 40000-59999). Load comes
// from several egress-bench worker processes, each under the open-files cap.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <signal.h>

#include <cmath>
#include <fstream>

#include "egress_client.hpp"
#include "harness.hpp"

namespace egress::test {
namespace {

using nlohmann::json;

struct Storm {
    std::uint64_t ok = 0, errored = 0;
    std::map<std::string, std::uint64_t> sources, errors;
    std::map<std::string, std::string> messages;
};

// Runs `workers` processes side by side, `per_worker` connects each, all
// holding their sockets until every one has reported.
Storm storm(const Daemon& d, const Endpoint& dest, int workers, int per_worker, std::vector<std::string> extra = {}) {
    std::vector<BenchWorker> running;
    for (int w = 0; w < workers; ++w) {
        std::vector<std::string> args{"--socket", d.socket(), "--dest", endpoint_string(dest),
                                      "--count", std::to_string(per_worker), "--inflight", "64"};
        args.insert(args.end(), extra.begin(), extra.end());
        running.emplace_back(args);
    }
    Storm s;
    for (auto& w : running) {
        const auto line = w.report();
        if (line.empty()) {
            ADD_FAILURE() << "a worker died without a report";
            continue;
        }
        const auto j = json::parse(line);
        s.ok += j["ok"].get<std::uint64_t>();
        s.errored += j["errored"].get<std::uint64_t>();
        for (const auto& [k, v] : j["sources"].items()) s.sources[k] += v.get<std::uint64_t>();
        for (const auto& [k, v] : j["errors"].items()) s.errors[k] += v.get<std::uint64_t>();
        for (const auto& [k, v] : j["messages"].items()) s.messages.emplace(k, v.get<std::string>());
    }
    return s;
}

std::string describe(const Storm& s) { return json{{"errors", s.errors}, {"messages", s.messages}}.dump(); }

TEST(Pools, WindowOneSourceNineteenThousandFiveHundredConnectsNoErrors) {
    Listener sink(Listener::Mode::hold);
    Daemon d(R"({"pools": {"one": {"sources": ["127.0.0.2"], "port_strategy": "window"}},
                 "default_pool": "one"})");
    auto s = storm(d, sink.endpoint(), 2, 9750);
    EXPECT_EQ(s.errored, 0u) << describe(s);
    EXPECT_EQ(s.ok, 19500u);
    EXPECT_EQ(s.sources["127.0.0.2"], 19500u);
}

TEST(Pools, FourSourcesRoundRobinSeventyThousandConnectsEvenlySpread) {
    Listener sink(Listener::Mode::hold);
    Daemon d(R"({"pools": {"four": {"sources": ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"],
                                    "selection": "round-robin", "port_strategy": "window"}},
                 "default_pool": "four",
                 "limits": {"max_inflight": 20000}})");
    auto s = storm(d, sink.endpoint(), 5, 14000);
    EXPECT_EQ(s.errored, 0u) << describe(s);
    EXPECT_EQ(s.ok, 70000u);
    for (int i = 2; i <= 5; ++i) {
        const double share = static_cast<double>(s.sources["127.0.0." + std::to_string(i)]) / 70000.0;
        EXPECT_NEAR(share, 0.25, 0.02) << "127.0.0." << i;
    }
}

TEST(Pools, SmallWindowFillsTheWholeRangeThenSaysThePoolIsExhausted) {
    Listener sink(Listener::Mode::hold);
    Daemon d(R"({"pools": {"narrow": {"sources": ["127.0.0.2"], "port_strategy": "window",
                                      "window_size": 50, "port_range": "45000-45999"}},
                 "default_pool": "narrow"})");
    auto first = storm(d, sink.endpoint(), 1, 1000);  // exactly the range: every port
    EXPECT_EQ(first.errored, 0u) << describe(first);
    EXPECT_EQ(first.ok, 1000u);

    std::vector<BenchWorker> hold;  // keep the 1,000 while asking for one more
    hold.emplace_back(std::vector<std::string>{"--socket", d.socket(), "--dest", endpoint_string(sink.endpoint()),
                                               "--count", "1000"});
    // The first storm's sockets are closed by now; refill, then ask for one more.
    ASSERT_FALSE(hold.back().report().empty());
    auto c = Client::open(d.socket());
    ASSERT_TRUE(c);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = c->connect(sink.endpoint());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, EADDRNOTAVAIL);
    EXPECT_NE(r.error().message.find("pool 'narrow' is exhausted"), std::string::npos) << r.error().message;
    EXPECT_LT(ms_since(t0), 1000.0);  // answered at once, nothing hangs
}

TEST(Pools, LeastLoadedAvoidsASourceBusyWithAnotherProcess) {
    Listener sink(Listener::Mode::hold);
    // Another process, not egressd, holds 15,000 connections from 127.0.0.2.
    BenchWorker other({"--mode", "direct-kernel-range", "--source", "127.0.0.2", "--dest",
                       endpoint_string(sink.endpoint()), "--count", "15000"});
    const auto j = json::parse(other.report());
    ASSERT_EQ(j["ok"].get<int>(), 15000) << j.dump();

    Daemon d(R"({"pools": {"ab": {"sources": ["127.0.0.2", "127.0.0.3"], "selection": "least-loaded"}},
                 "default_pool": "ab"})");
    auto s = storm(d, sink.endpoint(), 1, 300);
    EXPECT_EQ(s.errored, 0u) << describe(s);
    EXPECT_EQ(s.sources["127.0.0.3"], 300u) << json(s.sources).dump();
}

TEST(Pools, IPv6PoolSpreadsAStormOverItsSources) {
    Listener sink(Listener::Mode::hold, "::1");
    Daemon d(R"({"pools": {"v6": {"sources": ["::2", "::3", "::4", "::5"], "port_strategy": "window"}},
                 "default_pool": "v6"})");
    auto s = storm(d, sink.endpoint(), 4, 2000);
    EXPECT_EQ(s.errored, 0u) << describe(s);
    EXPECT_EQ(s.ok, 8000u);
    for (int i = 2; i <= 5; ++i) EXPECT_NEAR(s.sources["::" + std::to_string(i)] / 8000.0, 0.25, 0.02);
}

TEST(Pools, EveryPortStrategyConnects) {
    Listener sink(Listener::Mode::hold);
    for (const char* strategy : {"window", "kernel-range", "userspace-random", "kernel-default", "auto"}) {
        Daemon d(std::string(R"({"pools": {"p": {"sources": ["127.0.0.2"], "port_strategy": ")") + strategy +
                 R"("}}, "default_pool": "p"})");
        auto s = storm(d, sink.endpoint(), 1, 2000);
        EXPECT_EQ(s.errored, 0u) << strategy << ": " << describe(s);
        EXPECT_EQ(s.sources["127.0.0.2"], 2000u) << strategy;
    }
}

TEST(Pools, RoutesSendEachDestinationThroughItsOwnPool) {
    Listener web(Listener::Mode::hold), other(Listener::Mode::hold);
    Daemon d(R"({"pools": {"a": {"sources": ["127.0.0.2"]}, "b": {"sources": ["127.0.0.3"]}},
                 "routes": [{"dest": "127.0.0.1/32", "ports": ")" + std::to_string(web.endpoint().port) +
             R"(", "pool": "a"}, {"dest": "127.0.0.0/8", "pool": "b"}],
                 "default_pool": "b"})");
    auto c = Client::open(d.socket());
    ASSERT_TRUE(c);
    for (int i = 0; i < 10; ++i) {
        auto r1 = c->connect(web.endpoint());
        ASSERT_TRUE(r1) << r1.error().message;
        EXPECT_EQ(r1->meta.pool, "a");
        EXPECT_EQ(address_string(*r1->meta.local), "127.0.0.2");
        auto r2 = c->connect(other.endpoint());
        ASSERT_TRUE(r2) << r2.error().message;
        EXPECT_EQ(r2->meta.pool, "b");
        EXPECT_EQ(address_string(*r2->meta.local), "127.0.0.3");
    }
}

TEST(Pools, NamingAPoolNeedsPermissionAndTheRightFamily) {
    Listener v4(Listener::Mode::hold), v6(Listener::Mode::hold, "::1");
    Daemon d(R"({"pools": {"open": {"sources": ["127.0.0.2"], "client_selectable": true},
                           "closed": {"sources": ["127.0.0.3"]}},
                 "default_pool": "closed"})");
    auto c = Client::open(d.socket());
    ASSERT_TRUE(c);
    auto ok = c->connect(v4.endpoint(), {.pool = "open"});
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(address_string(*ok->meta.local), "127.0.0.2");
    auto denied = c->connect(v4.endpoint(), {.pool = "closed"});
    ASSERT_FALSE(denied);
    EXPECT_EQ(denied.error().code, EACCES);
    EXPECT_NE(denied.error().message.find("client_selectable"), std::string::npos);
    auto family = c->connect(v6.endpoint(), {.pool = "open"});
    ASSERT_FALSE(family);
    EXPECT_EQ(family.error().code, EAFNOSUPPORT);
    EXPECT_NE(family.error().message.find("no IPv6 source"), std::string::npos) << family.error().message;
}

// Polls the daemon's log for `text` (5 s safety bound).
bool log_shows(const Daemon& d, const std::string& text) {
    const auto t0 = std::chrono::steady_clock::now();
    while (d.log().find(text) == std::string::npos) {
        if (ms_since(t0) > 5000) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

TEST(Pools, SighupReloadsPoolsAndRefusesABadConfig) {
    Listener sink(Listener::Mode::hold);
    Daemon d(R"({"pools": {"p": {"sources": ["127.0.0.2"]}}, "default_pool": "p"})");
    auto c = Client::open(d.socket());
    ASSERT_TRUE(c);
    auto before = c->connect(sink.endpoint());
    ASSERT_TRUE(before) << before.error().message;
    EXPECT_EQ(address_string(*before->meta.local), "127.0.0.2");

    std::ofstream(d.dir() + "/config.json") << test_config(R"({"pools": {"p": {"sources": ["127.0.0.3"]}}, "default_pool": "p"})");
    ::kill(d.pid(), SIGHUP);
    ASSERT_TRUE(log_shows(d, "reloaded configuration")) << d.log();
    auto after = c->connect(sink.endpoint());  // the same client connection, new pools
    ASSERT_TRUE(after) << after.error().message;
    EXPECT_EQ(address_string(*after->meta.local), "127.0.0.3");

    std::ofstream(d.dir() + "/config.json") << R"({"pools": {"p": {"sources": ["not an address"]}}})";
    ::kill(d.pid(), SIGHUP);
    ASSERT_TRUE(log_shows(d, "reload refused: ")) << d.log();
    EXPECT_NE(d.log().find("pools.p.sources[0]"), std::string::npos) << d.log();
    auto still = c->connect(sink.endpoint());
    ASSERT_TRUE(still) << still.error().message;
    EXPECT_EQ(address_string(*still->meta.local), "127.0.0.3");
    EXPECT_TRUE(d.alive());
}

TEST(Pools, CheckConfigWarnsAboutSourcesNoInterfaceHolds) {
    char tmpl[] = "/tmp/egressd-pools.XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    std::ofstream(dir + "/c.json") << R"({"pools": {"p": {"sources": ["127.0.0.2", "192.0.2.77"]}}, "default_pool": "p"})";
    auto r = run({egressd_bin(), "--check-config", dir + "/c.json"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("warning: pools.p.sources: 192.0.2.77 is not configured on any local interface"),
              std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("127.0.0.2"), std::string::npos) << r.err;
    std::system(("rm -rf " + dir).c_str());
}

TEST(Pools, ConfigErrorsNameTheirPath) {
    char tmpl[] = "/tmp/egressd-pools.XXXXXX";
    const std::string dir = ::mkdtemp(tmpl);
    std::ofstream(dir + "/c.json") << R"({
        "pools": {"p": {"sources": ["127.0.0.2", "nope"], "selection": "fastest", "port_range": "9-3",
                        "window_size": 0}},
        "routes": [{"dest": "10.0.0.1/8", "pool": "p"}, {"dest": "192.0.2.0/24", "pool": "q"},
                   {"dest": "198.51.100.0/24", "ports": "80", "pool": "p"},
                   {"dest": "198.51.100.0/24", "ports": "80", "pool": "p"}],
        "default_pool": "p"})";
    auto r = run({egressd_bin(), "--check-config", dir + "/c.json"});
    EXPECT_EQ(r.status, 1);
    for (const char* want : {"pools.p.sources[1]", "pools.p.selection", "pools.p.port_range", "pools.p.window_size",
                             "routes[0].dest", "host bits", "routes[1].pool: no pool named \"q\"",
                             "equal specificity"})
        EXPECT_NE(r.err.find(want), std::string::npos) << want << " missing from:\n" << r.err;
    std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace egress::test
