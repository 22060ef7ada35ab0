// The pool set: which pool serves a request, in which order its sources are
// tried, and least-loaded readings over an injected probe and clock.
#include "pool/pools.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "expect.hpp"

namespace egress {
namespace {

using namespace std::chrono_literals;
using test::IsError;
using test::IsOk;
using Order = std::vector<std::size_t>;
using Counts = std::vector<std::uint32_t>;

constexpr PortRange kEphemeral{32768, 60999};

const char* const kConfig = R"({
    "pools": {
        "web": {"sources": ["192.0.2.1", "192.0.2.2", "192.0.2.3"], "client_selectable": true},
        "rand": {"sources": ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"], "selection": "random",
                 "client_selectable": true},
        "ll": {"sources": ["192.0.2.11", "192.0.2.12", "192.0.2.13"], "selection": "least-loaded",
               "client_selectable": true},
        "mixed": {"sources": ["192.0.2.21", "2001:db8::21", "192.0.2.22", "2001:db8::22"], "client_selectable": true},
        "mixed-ll": {"sources": ["192.0.2.31", "2001:db8::31", "192.0.2.32", "2001:db8::32"],
                     "selection": "least-loaded", "client_selectable": true},
        "private": {"sources": ["192.0.2.9"]},
        "v6only": {"sources": ["2001:db8::1"], "client_selectable": true},
        "kernel": {"client_selectable": true},
        "ranged": {"sources": ["192.0.2.41"], "port_strategy": "window", "port_range": "40000-40999",
                   "window_size": 100, "max_window_retries": 3, "userspace_max_attempts": 7,
                   "client_selectable": true},
        "userspace": {"port_strategy": "userspace-random", "client_selectable": true}
    },
    "routes": [
        {"dest": "198.51.100.0/24", "pool": "private"},
        {"dest": "203.0.113.0/24", "ports": "443", "pool": "ll"},
        {"dest": "2001:db8:1::/48", "pool": "v6only"}
    ],
    "default_pool": "web",
    "least_loaded_cache_ms": 1000
})";

Endpoint ep(std::string_view text) {
    auto e = parse_endpoint(text);
    EXPECT_TRUE(IsOk(e)) << text;
    return e ? *e : Endpoint{};
}

ConfigPtr config(std::string_view json) {
    const auto load = parse_config(json);
    for (const auto& e : load.errors) ADD_FAILURE() << e;
    return load.config ? load.config : default_config();
}

// A probe that records its calls and answers from `answer` (or an error).
struct FakeProbe {
    struct Call {
        std::vector<Endpoint> sources;
        Endpoint dest;
    };
    std::vector<Call> calls;
    std::vector<Transport> transports;  // per call
    Counts answer;
    bool fail = false;

    LoadProbe fn() {
        return [this](const std::vector<Endpoint>& sources, const Endpoint& dest, Transport t) -> Result<Counts> {
            calls.push_back({sources, dest});
            transports.push_back(t);
            if (fail) return Error{EPERM, "sock_diag refused"};
            return answer;
        };
    }
};

class PoolSetTest : public testing::Test {
protected:
    std::chrono::steady_clock::time_point now = std::chrono::steady_clock::time_point{} + 1h;
    FakeProbe probe;
    ConfigPtr cfg = config(kConfig);
    PoolSet set{*cfg, PortStrategy::kernel_range, kEphemeral, KernelVersion{6, 18}, probe.fn(), [this] { return now; }};

    // A failed choice fails the test and yields a stand-in pool with no order,
    // so that the test goes on instead of crashing.
    Choice choose_ok(const std::string& requested, const Endpoint& dest, std::uint64_t random = 0) {
        auto c = set.choose(requested, dest, random);
        EXPECT_TRUE(IsOk(c)) << requested << " " << endpoint_string(dest);
        if (c) return *c;
        failed_.name = "(failed: " + c.error().message + ")";
        return Choice{&failed_, {}};
    }
    const Pool& pool(std::string_view name) {
        for (const auto& p : set.pools())
            if (p.name == name) return p;
        ADD_FAILURE() << "no pool " << name;
        return set.pools().front();
    }

private:
    Pool failed_;
};

// ---- construction ----

TEST_F(PoolSetTest, PoolsMirrorTheConfig) {
    ASSERT_EQ(set.pools().size(), cfg->pools.size());
    const auto& web = pool("web");
    EXPECT_EQ(web.sources.size(), 3u);
    EXPECT_EQ(web.labels, (std::vector<std::string>{"192.0.2.1", "192.0.2.2", "192.0.2.3"}));
    EXPECT_EQ(web.selection, Selection::round_robin);
    EXPECT_TRUE(web.client_selectable);
    EXPECT_EQ(web.turn.get(), 0u);
    EXPECT_EQ(pool("mixed").labels, (std::vector<std::string>{"192.0.2.21", "2001:db8::21", "192.0.2.22", "2001:db8::22"}));
    EXPECT_EQ(pool("ll").selection, Selection::least_loaded);
    EXPECT_EQ(pool("rand").selection, Selection::random);
    EXPECT_FALSE(pool("private").client_selectable);
    EXPECT_TRUE(pool("kernel").sources.empty());
    EXPECT_TRUE(pool("kernel").labels.empty());
}

TEST_F(PoolSetTest, AutoResolvesToTheGivenStrategyAndTheEphemeralRange) {
    const auto& web = pool("web");
    EXPECT_EQ(web.policy.strategy, PortStrategy::kernel_range);
    EXPECT_EQ(web.policy.range, kEphemeral);
    EXPECT_EQ(web.policy.window_size, 500u);
    EXPECT_EQ(web.policy.max_window_retries, 8u);
    EXPECT_EQ(web.policy.userspace_max_attempts, 16u);
    for (const auto& p : set.pools()) EXPECT_NE(p.policy.strategy, PortStrategy::automatic) << p.name;

    for (const auto s : {PortStrategy::window, PortStrategy::kernel_default, PortStrategy::userspace_random}) {
        const PoolSet other(*cfg, s, PortRange{10000, 10999}, KernelVersion{6, 18}, probe.fn(), [this] { return now; });
        for (const auto& p : other.pools()) {
            if (p.name == "ranged") {
                EXPECT_EQ(p.policy.strategy, PortStrategy::window);
            } else if (p.name == "userspace") {
                EXPECT_EQ(p.policy.strategy, PortStrategy::userspace_random);
            } else {
                EXPECT_EQ(p.policy.strategy, s) << p.name;
                EXPECT_EQ(p.policy.range, (PortRange{10000, 10999})) << p.name;
            }
        }
    }
}

TEST_F(PoolSetTest, ExplicitStrategyAndPortRangeOverride) {
    const auto& r = pool("ranged");
    EXPECT_EQ(r.policy.strategy, PortStrategy::window);
    EXPECT_EQ(r.policy.range, (PortRange{40000, 40999}));
    EXPECT_EQ(r.policy.window_size, 100u);
    EXPECT_EQ(r.policy.max_window_retries, 3u);
    EXPECT_EQ(r.policy.userspace_max_attempts, 7u);
    EXPECT_EQ(pool("userspace").policy.strategy, PortStrategy::userspace_random);
    EXPECT_EQ(pool("userspace").policy.range, kEphemeral);
}

TEST_F(PoolSetTest, EveryPolicyCarriesTheRunningKernel) {
    for (const auto& p : set.pools()) EXPECT_EQ(p.policy.kernel, (KernelVersion{6, 18})) << p.name;
    const PoolSet old(*cfg, PortStrategy::window, kEphemeral, KernelVersion{6, 1}, probe.fn(), [this] { return now; });
    for (const auto& p : old.pools()) EXPECT_EQ(p.policy.kernel, (KernelVersion{6, 1})) << p.name;
}

TEST(PoolSet, BuiltInDefaultPool) {
    const auto cfg = default_config();
    PoolSet set(*cfg, PortStrategy::window, kEphemeral, KernelVersion{6, 18}, nullptr, nullptr);
    ASSERT_EQ(set.pools().size(), 1u);
    EXPECT_EQ(set.pools()[0].name, "default");
    const auto c = set.choose("", ep("192.0.2.1:80"), 0);
    ASSERT_TRUE(IsOk(c));
    EXPECT_EQ(c->pool->name, "default");
    EXPECT_TRUE(c->order.empty());
    EXPECT_TRUE(IsOk(set.choose("default", ep("[2001:db8::1]:80"), 0)));
}

// ---- which pool ----

TEST_F(PoolSetTest, RouteDecidesWhenNoPoolIsRequested) {
    probe.answer = {0, 0, 0};
    EXPECT_EQ(choose_ok("", ep("192.0.2.200:80")).pool->name, "web");  // the default pool
    EXPECT_EQ(choose_ok("", ep("198.51.100.7:80")).pool->name, "private");  // routes may use any pool
    EXPECT_EQ(choose_ok("", ep("203.0.113.5:443")).pool->name, "ll");
    EXPECT_EQ(choose_ok("", ep("203.0.113.5:444")).pool->name, "web");
    EXPECT_EQ(choose_ok("", ep("[2001:db8:1::5]:80")).pool->name, "v6only");
}

TEST_F(PoolSetTest, RequestedPoolOverridesTheRoute) {
    EXPECT_EQ(choose_ok("rand", ep("198.51.100.7:80")).pool->name, "rand");
    EXPECT_EQ(choose_ok("web", ep("203.0.113.5:443")).pool->name, "web");
}

TEST_F(PoolSetTest, ChoiceNamesThePoolInTheSet) {
    const auto c = choose_ok("web", ep("192.0.2.200:80"));
    ASSERT_NE(c.pool, nullptr);
    const Pool* first = set.pools().data();
    EXPECT_TRUE(c.pool >= first && c.pool < first + set.pools().size());
    EXPECT_EQ(c.pool->name, "web");
}

TEST_F(PoolSetTest, UnknownPoolIsENOENT) {
    EXPECT_TRUE(IsError(set.choose("nope", ep("192.0.2.200:80"), 0), ENOENT, {"nope"}));
    EXPECT_TRUE(IsError(set.choose("WEB", ep("192.0.2.200:80"), 0), ENOENT, {"WEB"}));
}

TEST_F(PoolSetTest, PoolNotClientSelectableIsEACCES) {
    EXPECT_TRUE(IsError(set.choose("private", ep("192.0.2.200:80"), 0), EACCES, {"private", "client_selectable"}));
    // Even when the route would have chosen it.
    EXPECT_TRUE(IsError(set.choose("private", ep("198.51.100.7:80"), 0), EACCES, {"private"}));
}

TEST_F(PoolSetTest, NoSourceOfTheFamilyIsEAFNOSUPPORT) {
    EXPECT_TRUE(IsError(set.choose("v6only", ep("192.0.2.200:80"), 0), EAFNOSUPPORT, {"v6only", "IPv4"}));
    EXPECT_TRUE(IsError(set.choose("web", ep("[2001:db8::5]:80"), 0), EAFNOSUPPORT, {"web", "IPv6"}));
    EXPECT_TRUE(IsError(set.choose("", ep("[2001:db8::5]:80"), 0), EAFNOSUPPORT, {"web", "IPv6"}));
    EXPECT_TRUE(IsError(set.choose("ll", ep("[2001:db8::5]:80"), 0), EAFNOSUPPORT, {"ll", "IPv6"}));
    EXPECT_TRUE(probe.calls.empty());
}

TEST_F(PoolSetTest, PoolWithoutSourcesLetsTheKernelPick) {
    for (const char* dest : {"192.0.2.200:80", "[2001:db8::5]:80"}) {
        const auto c = choose_ok("kernel", ep(dest));
        EXPECT_EQ(c.pool->name, "kernel");
        EXPECT_TRUE(c.order.empty());
    }
}

// ---- source order ----

TEST_F(PoolSetTest, MixedPoolOffersOnlySourcesOfTheDestinationFamily) {
    for (int i = 0; i < 6; ++i) {
        auto v4 = choose_ok("mixed", ep("192.0.2.200:80"), static_cast<std::uint64_t>(i));
        std::sort(v4.order.begin(), v4.order.end());
        EXPECT_EQ(v4.order, (Order{0, 2}));
        auto v6 = choose_ok("mixed", ep("[2001:db8::5]:80"), static_cast<std::uint64_t>(i));
        std::sort(v6.order.begin(), v6.order.end());
        EXPECT_EQ(v6.order, (Order{1, 3}));
    }
    const auto v4 = choose_ok("mixed", ep("192.0.2.200:80"));
    for (auto i : v4.order) EXPECT_FALSE(v4.pool->sources[i].v6) << i;
    const auto v6 = choose_ok("mixed", ep("[2001:db8::5]:80"));
    for (auto i : v6.order) EXPECT_TRUE(v6.pool->sources[i].v6) << i;
}

TEST_F(PoolSetTest, MixedPoolRotatesWithinTheFamily) {
    // One turn counter per pool, advanced by every choice.
    EXPECT_EQ(choose_ok("mixed", ep("192.0.2.200:80")).order, (Order{0, 2}));
    EXPECT_EQ(choose_ok("mixed", ep("192.0.2.200:80")).order, (Order{2, 0}));
    EXPECT_EQ(choose_ok("mixed", ep("[2001:db8::5]:80")).order, (Order{1, 3}));
    EXPECT_EQ(choose_ok("mixed", ep("[2001:db8::5]:80")).order, (Order{3, 1}));
}

TEST_F(PoolSetTest, RoundRobinRotatesPerChoice) {
    EXPECT_EQ(choose_ok("web", ep("192.0.2.200:80")).order, (Order{0, 1, 2}));
    EXPECT_EQ(choose_ok("web", ep("192.0.2.200:80")).order, (Order{1, 2, 0}));
    EXPECT_EQ(choose_ok("web", ep("192.0.2.201:443")).order, (Order{2, 0, 1}));
    EXPECT_EQ(choose_ok("web", ep("192.0.2.200:80")).order, (Order{0, 1, 2}));
    EXPECT_EQ(pool("web").turn.get(), 4u);
}

TEST_F(PoolSetTest, RoundRobinSpreadsEvenly) {
    std::map<std::size_t, int> first;
    for (int i = 0; i < 300; ++i) {
        const auto c = choose_ok("", ep("192.0.2.200:80"), static_cast<std::uint64_t>(i) * 7);
        ASSERT_EQ(c.order.size(), 3u);
        std::set<std::size_t> distinct(c.order.begin(), c.order.end());
        ASSERT_EQ(distinct.size(), 3u);
        ++first[c.order.at(0)];
    }
    EXPECT_EQ(first, (std::map<std::size_t, int>{{0, 100}, {1, 100}, {2, 100}}));
    EXPECT_TRUE(probe.calls.empty());
}

TEST_F(PoolSetTest, RandomStartsAtTheDraw) {
    EXPECT_EQ(choose_ok("rand", ep("192.0.2.200:80"), 0).order, (Order{0, 1, 2, 3}));
    EXPECT_EQ(choose_ok("rand", ep("192.0.2.200:80"), 0).order, (Order{0, 1, 2, 3}));
    EXPECT_EQ(choose_ok("rand", ep("192.0.2.200:80"), 6).order, (Order{2, 3, 0, 1}));
    EXPECT_EQ(choose_ok("rand", ep("192.0.2.200:80"), 7).order, (Order{3, 0, 1, 2}));
    EXPECT_TRUE(probe.calls.empty());
}

// ---- least-loaded ----

TEST_F(PoolSetTest, LeastLoadedPicksTheLeastLoaded) {
    probe.answer = {5, 0, 3};
    const auto dest = ep("203.0.113.5:443");
    const auto c = choose_ok("ll", dest);
    EXPECT_EQ(c.order, (Order{1, 2, 0}));
    ASSERT_EQ(probe.calls.size(), 1u);
    EXPECT_EQ(probe.calls[0].sources, pool("ll").sources);
    EXPECT_EQ(probe.calls[0].dest, dest);
    // Routed there as well.
    EXPECT_EQ(choose_ok("", dest).order, (Order{1, 2, 0}));
    EXPECT_EQ(probe.calls.size(), 1u);
}

TEST_F(PoolSetTest, LeastLoadedProbesOncePerIntervalPerPoolAndDestination) {
    probe.answer = {0, 0, 0};
    const auto a = ep("203.0.113.5:443"), b = ep("203.0.113.6:443"), a_other_port = ep("203.0.113.5:8443");
    for (int i = 0; i < 5; ++i) choose_ok("ll", a);
    EXPECT_EQ(probe.calls.size(), 1u);
    choose_ok("ll", b);
    EXPECT_EQ(probe.calls.size(), 2u);
    EXPECT_EQ(probe.calls[1].dest, b);
    choose_ok("ll", a_other_port);
    EXPECT_EQ(probe.calls.size(), 3u);
    // Another least-loaded pool, same destination: its own reading.
    choose_ok("mixed-ll", a);
    ASSERT_EQ(probe.calls.size(), 4u);
    EXPECT_EQ(probe.calls[3].sources, pool("mixed-ll").sources);
    // Just inside the interval: still cached.
    now += 999ms;
    for (const auto& d : {a, b, a_other_port}) choose_ok("ll", d);
    EXPECT_EQ(probe.calls.size(), 4u);
    // At the end of the interval: read again, once per destination.
    now += 1ms;
    choose_ok("ll", a);
    choose_ok("ll", a);
    EXPECT_EQ(probe.calls.size(), 5u);
    choose_ok("ll", b);
    EXPECT_EQ(probe.calls.size(), 6u);
}

TEST_F(PoolSetTest, LeastLoadedFollowsAFreshReading) {
    const auto dest = ep("203.0.113.5:443");
    probe.answer = {0, 9, 9};
    EXPECT_EQ(choose_ok("ll", dest).order.at(0), 0u);
    probe.answer = {9, 9, 0};
    EXPECT_EQ(choose_ok("ll", dest).order.at(0), 0u);  // cached
    now += 1s;
    EXPECT_EQ(choose_ok("ll", dest).order.at(0), 2u);  // read again
    EXPECT_EQ(probe.calls.size(), 2u);
}

TEST_F(PoolSetTest, LeastLoadedUdpReadsEachSourcesPortsOncePerFamilyForEveryDestination) {
    probe.answer = {5, 0, 5};
    const auto a = ep("203.0.113.5:53"), b = ep("198.51.100.9:443");
    auto c = set.choose("ll", a, 0, Transport::udp);
    ASSERT_TRUE(IsOk(c));
    EXPECT_EQ(c->order.at(0), 1u);
    ASSERT_EQ(probe.transports.size(), 1u);
    EXPECT_EQ(probe.transports[0], Transport::udp);
    // Another destination of the family: the same reading (a UDP port is taken for all of them).
    for (int i = 0; i < 5; ++i) {
        auto d = set.choose("ll", b, 0, Transport::udp);
        ASSERT_TRUE(IsOk(d));
        set.record_success(*d->pool, d->order.at(0), b, Transport::udp);
    }
    EXPECT_EQ(probe.calls.size(), 1u);
    // Source 1 is now at 5 like the others: all tie, and the rotation decides.
    std::set<std::size_t> firsts;
    for (int i = 0; i < 3; ++i) {
        auto e = set.choose("ll", a, 0, Transport::udp);
        ASSERT_TRUE(IsOk(e));
        firsts.insert(e->order.at(0));
    }
    EXPECT_EQ(firsts.size(), 3u) << "the successes were not counted on the UDP reading";
    // TCP reads its own, per destination.
    auto t = set.choose("ll", a, 0);
    ASSERT_TRUE(IsOk(t));
    ASSERT_EQ(probe.transports.size(), 2u);
    EXPECT_EQ(probe.transports[1], Transport::tcp);
}

TEST_F(PoolSetTest, LeastLoadedCountsSuccessesUntilTheNextReading) {
    probe.answer = {0, 0, 0};
    const auto dest = ep("203.0.113.5:443");
    std::map<std::size_t, int> picks;
    for (int i = 0; i < 30; ++i) {
        auto c = choose_ok("ll", dest);
        ASSERT_EQ(c.order.size(), 3u);
        ++picks[c.order.at(0)];
        set.record_success(*c.pool, c.order.at(0), dest);
    }
    EXPECT_EQ(picks, (std::map<std::size_t, int>{{0, 10}, {1, 10}, {2, 10}}));
    EXPECT_EQ(probe.calls.size(), 1u);

    // Successes pile onto the reading: with {4, 0, 0}, eight connects go to
    // sources 1 and 2 before source 0 is picked again.
    now += 1s;
    probe.answer = {4, 0, 0};
    picks.clear();
    for (int i = 0; i < 8; ++i) {
        auto c = choose_ok("ll", dest);
        ++picks[c.order.at(0)];
        set.record_success(*c.pool, c.order.at(0), dest);
    }
    EXPECT_EQ(picks, (std::map<std::size_t, int>{{1, 4}, {2, 4}}));
    const auto turn = pool("ll").turn.get();
    EXPECT_EQ(choose_ok("ll", dest).order.at(0), turn % 3);  // all at 4: rotation decides
    EXPECT_EQ(probe.calls.size(), 2u);

    // A new reading forgets the counted successes.
    now += 1s;
    probe.answer = {0, 5, 5};
    EXPECT_EQ(choose_ok("ll", dest).order, (Order{0, 1, 2}));
}

TEST_F(PoolSetTest, RecordSuccessIsPerDestination) {
    probe.answer = {0, 0, 0};
    const auto a = ep("203.0.113.5:443"), b = ep("203.0.113.6:443");
    auto ca = choose_ok("ll", a);  // turn 0
    ASSERT_EQ(ca.order.at(0), 0u);
    choose_ok("ll", b);             // turn 1, reading for b
    set.record_success(*ca.pool, 0, a);
    set.record_success(*ca.pool, 0, a);
    // Source 0 is busier towards a only.
    Pool* p = ca.pool;
    p->turn = 0;
    EXPECT_EQ(choose_ok("ll", a).order, (Order{1, 2, 0}));
    p->turn = 0;
    EXPECT_EQ(choose_ok("ll", b).order, (Order{0, 1, 2}));
}

TEST_F(PoolSetTest, RecordSuccessWithoutAReadingOrOutOfRangeIsHarmless) {
    probe.answer = {0, 0, 0};
    Pool* web = choose_ok("web", ep("192.0.2.200:80")).pool;
    set.record_success(*web, 0, ep("192.0.2.200:80"));  // not least-loaded: nothing to count
    EXPECT_EQ(choose_ok("web", ep("192.0.2.200:80")).order, (Order{1, 2, 0}));

    const auto dest = ep("203.0.113.99:443");
    Pool* ll = choose_ok("ll", ep("203.0.113.1:443")).pool;  // turn 0, another destination
    set.record_success(*ll, 0, dest);                        // no reading for dest yet
    EXPECT_EQ(choose_ok("ll", dest).order, (Order{1, 2, 0}));  // turn 1, fresh zeros
    set.record_success(*ll, 99, dest);                       // no such source
    ll->turn = 0;
    EXPECT_EQ(choose_ok("ll", dest).order, (Order{0, 1, 2}));
    EXPECT_EQ(probe.calls.size(), 2u);
}

TEST_F(PoolSetTest, ProbeErrorDegradesToRotation) {
    probe.fail = true;
    const auto dest = ep("203.0.113.5:443");
    EXPECT_EQ(choose_ok("ll", dest).order, (Order{0, 1, 2}));
    EXPECT_EQ(choose_ok("ll", dest).order, (Order{1, 2, 0}));
    EXPECT_EQ(choose_ok("ll", dest).order, (Order{2, 0, 1}));
    // The failed reading is kept for the interval too: no probe storm.
    EXPECT_EQ(probe.calls.size(), 1u);
    now += 1s;
    probe.fail = false;
    probe.answer = {7, 7, 0};
    EXPECT_EQ(choose_ok("ll", dest).order.at(0), 2u);
    EXPECT_EQ(probe.calls.size(), 2u);
}

TEST_F(PoolSetTest, AProbeAnswerOfTheWrongSizeDegradesToRotation) {
    probe.answer = {1};  // three sources, one count: unusable, never read past its end
    const auto dest = ep("203.0.113.6:443");
    EXPECT_EQ(choose_ok("ll", dest).order, (Order{0, 1, 2}));
    EXPECT_EQ(choose_ok("ll", dest).order, (Order{1, 2, 0}));
}

TEST_F(PoolSetTest, LeastLoadedInAMixedPoolUsesTheLoadsOfItsFamily) {
    // Loads per source of the whole pool: v4 at 0 and 2, v6 at 1 and 3.
    probe.answer = {9, 0, 1, 5};
    EXPECT_EQ(choose_ok("mixed-ll", ep("192.0.2.200:80")).order, (Order{2, 0}));
    EXPECT_EQ(choose_ok("mixed-ll", ep("[2001:db8::5]:80")).order, (Order{1, 3}));
    ASSERT_EQ(probe.calls.size(), 2u);
    EXPECT_EQ(probe.calls[0].sources.size(), 4u);  // the probe sees every source
    probe.answer = {0, 9, 1, 5};
    now += 1s;
    EXPECT_EQ(choose_ok("mixed-ll", ep("192.0.2.200:80")).order, (Order{0, 2}));
    EXPECT_EQ(choose_ok("mixed-ll", ep("[2001:db8::5]:80")).order, (Order{3, 1}));
    // Successes are counted against the pool's own index.
    auto c = choose_ok("mixed-ll", ep("192.0.2.200:80"));
    ASSERT_EQ(c.order.at(0), 0u);
    set.record_success(*c.pool, 0, ep("192.0.2.200:80"));  // 0 -> 1: tie with source 2
    c.pool->turn = 0;                                       // rotation from the first eligible
    EXPECT_EQ(choose_ok("mixed-ll", ep("192.0.2.200:80")).order, (Order{0, 2}));
    set.record_success(*c.pool, 0, ep("192.0.2.200:80"));  // 2 > 1
    EXPECT_EQ(choose_ok("mixed-ll", ep("192.0.2.200:80")).order, (Order{2, 0}));
}

TEST(PoolSet, ZeroCacheIntervalProbesEveryTime) {
    const auto cfg = config(R"({"pools": {"ll": {"sources": ["192.0.2.1", "192.0.2.2"],
        "selection": "least-loaded", "client_selectable": true}}, "default_pool": "ll", "least_loaded_cache_ms": 0})");
    FakeProbe probe;
    probe.answer = {1, 0};
    const auto now = std::chrono::steady_clock::time_point{} + 1h;
    PoolSet set(*cfg, PortStrategy::window, kEphemeral, KernelVersion{6, 18}, probe.fn(), [&] { return now; });
    for (int i = 0; i < 4; ++i) {
        const auto c = set.choose("", ep("192.0.2.200:80"), 0);
        ASSERT_TRUE(IsOk(c));
        EXPECT_EQ(c->order, (Order{1, 0}));
    }
    EXPECT_EQ(probe.calls.size(), 4u);
}

TEST(PoolSet, ManyDestinationsStayBounded) {
    const auto cfg = config(R"({"pools": {"ll": {"sources": ["192.0.2.1", "192.0.2.2"],
        "selection": "least-loaded", "client_selectable": true}}, "default_pool": "ll"})");
    FakeProbe probe;
    probe.answer = {1, 0};
    auto now = std::chrono::steady_clock::time_point{} + 1h;
    PoolSet set(*cfg, PortStrategy::window, kEphemeral, KernelVersion{6, 18}, probe.fn(), [&] { return now; });
    // More destinations than readings kept: every choice still works and
    // each new destination gets its own reading.
    Endpoint d = ep("10.0.0.0:80");
    for (std::uint32_t i = 0; i < 5000; ++i) {
        d.addr[2] = static_cast<std::uint8_t>(i >> 8);
        d.addr[3] = static_cast<std::uint8_t>(i);
        const auto c = set.choose("", d, 0);
        ASSERT_TRUE(IsOk(c));
        ASSERT_EQ(c->order[0], 1u);
    }
    EXPECT_EQ(probe.calls.size(), 5000u);
}

}  // namespace
}  // namespace egress
