// Client rules and destination policy: every address family corner, prefix
// lengths 0 and 32/128, port range edges, the built-in deny list.
#include "policy/policy.hpp"

#include <gtest/gtest.h>

#include <string>

namespace egress {
namespace {

Endpoint dest(const std::string& addr, std::uint16_t port = 443) {
    auto a = parse_address(addr, port);
    EXPECT_TRUE(a) << addr;
    return a.value_or(Endpoint{});
}

Prefix pfx(const std::string& text) {
    auto p = parse_prefix(text);
    EXPECT_TRUE(p) << text;
    return p ? *p : Prefix{};
}

DestEntry entry(Action a, const std::string& prefix, PortRange ports = {}) { return DestEntry{a, pfx(prefix), ports}; }

ClientRule rule(std::vector<DestEntry> entries = {}, bool deny_private = false, Action otherwise = Action::allow) {
    ClientRule r;
    r.name = "r";
    r.destinations = std::move(entries);
    r.deny_private = deny_private;
    r.otherwise = otherwise;
    return r;
}

// Allowed or denied, with the reason mentioning every word.
testing::AssertionResult Denied(const ClientRule& r, const Endpoint& d, std::initializer_list<std::string> words = {}) {
    const auto dec = evaluate(r, d);
    if (dec.allowed) return testing::AssertionFailure() << endpoint_string(d) << " allowed";
    if (dec.rule != r.name) return testing::AssertionFailure() << "decided by '" << dec.rule << "'";
    for (const auto& w : words)
        if (dec.reason.find(w) == std::string::npos)
            return testing::AssertionFailure() << "reason '" << dec.reason << "' lacks '" << w << "'";
    return testing::AssertionSuccess() << dec.reason;
}

testing::AssertionResult Allowed(const ClientRule& r, const Endpoint& d) {
    const auto dec = evaluate(r, d);
    if (!dec.allowed) return testing::AssertionFailure() << endpoint_string(d) << " denied: " << dec.reason;
    return testing::AssertionSuccess();
}

TEST(Normalize, Ipv4AndPlainIpv6AreUnchanged) {
    for (const char* a : {"0.0.0.0", "127.0.0.1", "255.255.255.255", "2001:db8::1", "::1", "::", "fe80::1",
                          "::fffe:7f00:1", "0:0:0:0:1:ffff:7f00:1", "64:ff9b::7f00:1", "1::7f00:1"})
        EXPECT_EQ(normalize(dest(a)), dest(a)) << a;
}

TEST(Normalize, MappedAndCompatibleBecomeIpv4KeepingThePort) {
    EXPECT_EQ(normalize(dest("::ffff:127.0.0.1", 22)), dest("127.0.0.1", 22));
    EXPECT_EQ(normalize(dest("::ffff:169.254.169.254", 80)), dest("169.254.169.254", 80));
    EXPECT_EQ(normalize(dest("::ffff:0.0.0.0")), dest("0.0.0.0"));
    EXPECT_EQ(normalize(dest("::ffff:255.255.255.255")), dest("255.255.255.255"));
    EXPECT_EQ(normalize(dest("::127.0.0.1", 22)), dest("127.0.0.1", 22));
    EXPECT_EQ(normalize(dest("::169.254.169.254")), dest("169.254.169.254"));
    EXPECT_EQ(normalize(dest("::2")), dest("0.0.0.2"));  // compatible, not IPv6 loopback
    EXPECT_EQ(normalize(dest("::1.0.0.0")), dest("1.0.0.0"));
}

TEST(EmbeddedIpv4, PrefixesInsideTheMappedOrCompatibleSpace) {
    EXPECT_EQ(embedded_ipv4(pfx("::ffff:0:0/96")), pfx("0.0.0.0/0"));
    EXPECT_EQ(embedded_ipv4(pfx("::ffff:127.0.0.0/104")), pfx("127.0.0.0/8"));
    EXPECT_EQ(embedded_ipv4(pfx("::ffff:169.254.169.254/128")), pfx("169.254.169.254/32"));
    EXPECT_EQ(embedded_ipv4(pfx("::/96")), pfx("0.0.0.0/0"));
    EXPECT_EQ(embedded_ipv4(pfx("::10.0.0.0/104")), pfx("10.0.0.0/8"));
    EXPECT_EQ(embedded_ipv4(pfx("::2/128")), pfx("0.0.0.2/32"));
    for (const char* outside : {"::1/128", "::/128", "::/95", "::/0", "::fffe:0:0/95", "2001:db8::/32",
                                "::fffe:0:0/96", "10.0.0.0/8", "0.0.0.0/0"})
        EXPECT_FALSE(embedded_ipv4(pfx(outside))) << outside;
}

TEST(BuiltinDenyList, EdgesOfEveryRangeInBothFamiliesAndEmbeddedForms) {
    const auto r = rule();
    struct Range {
        const char *first, *last, *below, *above, *what;
    };
    for (const auto& x : {Range{"127.0.0.0", "127.255.255.255", "126.255.255.255", "128.0.0.0", "loopback"},
                          Range{"0.0.0.0", "0.255.255.255", nullptr, "1.0.0.0", "unspecified"},
                          Range{"169.254.0.0", "169.254.255.255", "169.253.255.255", "169.255.0.0", "link-local"},
                          Range{"224.0.0.0", "239.255.255.255", "223.255.255.255", "240.0.0.0", "multicast"},
                          Range{"255.255.255.255", "255.255.255.255", "255.255.255.254", nullptr, "broadcast"}}) {
        for (const auto* a : {x.first, x.last}) {
            EXPECT_TRUE(Denied(r, dest(a), {x.what, "built-in"})) << a;
            EXPECT_TRUE(Denied(r, dest(std::string("::ffff:") + a), {x.what})) << a;
            if (std::string(a) != "0.0.0.0") {  // ::0.0.0.0 is ::, IPv6's own unspecified address
                EXPECT_TRUE(Denied(r, dest(std::string("::") + a), {x.what})) << a;
            }
        }
        for (const auto* a : {x.below, x.above})
            if (a) {
                EXPECT_TRUE(Allowed(r, dest(a))) << a;
                EXPECT_TRUE(Allowed(r, dest(std::string("::ffff:") + a))) << a;
            }
    }
    EXPECT_TRUE(Denied(r, dest("169.254.169.254", 80), {"169.254.0.0/16", "cloud metadata"}));
    EXPECT_TRUE(Denied(r, dest("::ffff:169.254.169.254", 80), {"cloud metadata"}));
    EXPECT_TRUE(Denied(r, dest("::1"), {"::1/128", "loopback"}));
    EXPECT_TRUE(Denied(r, dest("::"), {"unspecified"}));
    EXPECT_TRUE(Denied(r, dest("::2"), {"0.0.0.0/8"}));
    EXPECT_TRUE(Denied(r, dest("fe80::"), {"fe80::/10", "link-local"}));
    EXPECT_TRUE(Denied(r, dest("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), {"link-local"}));
    EXPECT_TRUE(Denied(r, dest("ff00::"), {"multicast"}));
    EXPECT_TRUE(Denied(r, dest("ff02::1"), {"multicast"}));
    EXPECT_TRUE(Denied(r, dest("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), {"multicast"}));
    for (const char* a : {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fec0::", "feff::1", "2001:db8::1", "::3:0:0",
                          "1.1.1.1", "8.8.8.8", "198.18.0.2", "64:ff9b::7f00:1"})
        EXPECT_TRUE(Allowed(r, dest(a))) << a;
}

TEST(BuiltinDenyList, PrivateRangesOnlyWithDenyPrivate) {
    struct Range {
        const char *first, *last, *below, *above;
    };
    const auto open = rule(), closed = rule({}, true);
    for (const auto& x : {Range{"10.0.0.0", "10.255.255.255", "9.255.255.255", "11.0.0.0"},
                          Range{"172.16.0.0", "172.31.255.255", "172.15.255.255", "172.32.0.0"},
                          Range{"192.168.0.0", "192.168.255.255", "192.167.255.255", "192.169.0.0"},
                          Range{"fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                                "fe00::"}}) {
        const bool v6 = std::string(x.first).find(':') != std::string::npos;
        for (const auto* a : {x.first, x.last}) {
            EXPECT_TRUE(Allowed(open, dest(a))) << a;
            EXPECT_TRUE(Denied(closed, dest(a), {"private", "deny_private"})) << a;
            if (!v6) {
                EXPECT_TRUE(Denied(closed, dest(std::string("::ffff:") + a), {"private"})) << a;
            }
        }
        for (const auto* a : {x.below, x.above}) EXPECT_TRUE(Allowed(closed, dest(a))) << a;
    }
}

TEST(Evaluate, FirstMatchingEntryWinsAndNamesRuleAndIndex) {
    const auto r = rule({entry(Action::allow, "192.0.2.1/32"), entry(Action::deny, "192.0.2.0/24"),
                         entry(Action::allow, "192.0.2.0/24")});
    EXPECT_TRUE(Allowed(r, dest("192.0.2.1")));
    EXPECT_TRUE(Denied(r, dest("192.0.2.2"), {"destinations[1]", "rule 'r'", "deny 192.0.2.0/24"}));
    EXPECT_TRUE(Allowed(r, dest("192.0.3.1")));  // no entry: otherwise allow
    EXPECT_TRUE(Denied(r, dest("::ffff:192.0.2.2"), {"destinations[1]"}));  // matched as IPv4
}

TEST(Evaluate, PrefixLengthZeroAndFull) {
    const auto all4 = rule({entry(Action::deny, "0.0.0.0/0")});
    EXPECT_TRUE(Denied(all4, dest("1.2.3.4"), {"destinations[0]"}));
    EXPECT_TRUE(Denied(all4, dest("255.255.255.254"), {"destinations[0]"}));
    EXPECT_TRUE(Denied(all4, dest("::ffff:1.2.3.4"), {"destinations[0]"}));
    EXPECT_TRUE(Allowed(all4, dest("2001:db8::1")));  // IPv4 prefixes never match IPv6
    const auto all6 = rule({entry(Action::deny, "::/0")});
    EXPECT_TRUE(Denied(all6, dest("2001:db8::1"), {"destinations[0]"}));
    EXPECT_TRUE(Allowed(all6, dest("1.2.3.4")));
    EXPECT_TRUE(Allowed(all6, dest("::ffff:1.2.3.4")));  // it is an IPv4 destination
    const auto host4 = rule({entry(Action::deny, "192.0.2.7/32")});
    EXPECT_TRUE(Denied(host4, dest("192.0.2.7")));
    EXPECT_TRUE(Allowed(host4, dest("192.0.2.6")));
    EXPECT_TRUE(Allowed(host4, dest("192.0.2.8")));
    const auto host6 = rule({entry(Action::deny, "2001:db8::7/128")});
    EXPECT_TRUE(Denied(host6, dest("2001:db8::7")));
    EXPECT_TRUE(Allowed(host6, dest("2001:db8::6")));
    EXPECT_TRUE(Allowed(host6, dest("2001:db8::8")));
    const auto odd = rule({entry(Action::deny, "192.0.2.128/25"), entry(Action::deny, "2001:db8::/33")});
    EXPECT_TRUE(Allowed(odd, dest("192.0.2.127")));
    EXPECT_TRUE(Denied(odd, dest("192.0.2.128")));
    EXPECT_TRUE(Denied(odd, dest("2001:db8:7fff::1")));
    EXPECT_TRUE(Allowed(odd, dest("2001:db8:8000::1")));
}

TEST(Evaluate, PortRangeEdges) {
    const auto r = rule({entry(Action::deny, "192.0.2.0/24", PortRange{80, 443})});
    EXPECT_TRUE(Allowed(r, dest("192.0.2.1", 79)));
    EXPECT_TRUE(Denied(r, dest("192.0.2.1", 80), {"ports 80-443"}));
    EXPECT_TRUE(Denied(r, dest("192.0.2.1", 443)));
    EXPECT_TRUE(Allowed(r, dest("192.0.2.1", 444)));
    const auto single = rule({entry(Action::deny, "0.0.0.0/0", PortRange{25, 25})});
    EXPECT_TRUE(Allowed(single, dest("192.0.2.1", 24)));
    EXPECT_TRUE(Denied(single, dest("192.0.2.1", 25)));
    EXPECT_TRUE(Allowed(single, dest("192.0.2.1", 26)));
    const auto ends = rule({entry(Action::deny, "0.0.0.0/0", PortRange{1, 1}),
                            entry(Action::deny, "0.0.0.0/0", PortRange{65535, 65535})});
    EXPECT_TRUE(Denied(ends, dest("192.0.2.1", 1), {"destinations[0]"}));
    EXPECT_TRUE(Allowed(ends, dest("192.0.2.1", 2)));
    EXPECT_TRUE(Allowed(ends, dest("192.0.2.1", 65534)));
    EXPECT_TRUE(Denied(ends, dest("192.0.2.1", 65535), {"destinations[1]"}));
    // The default range covers every port.
    const auto full = rule({entry(Action::deny, "192.0.2.0/24")});
    EXPECT_TRUE(Denied(full, dest("192.0.2.1", 1)));
    EXPECT_TRUE(Denied(full, dest("192.0.2.1", 65535)));
}

TEST(Evaluate, AnAllowOpensABuiltinRangeOnlyFromInsideIt) {
    const auto lo = rule({entry(Action::allow, "127.0.0.0/8"), entry(Action::allow, "::1/128")});
    EXPECT_TRUE(Allowed(lo, dest("127.0.0.1")));
    EXPECT_TRUE(Allowed(lo, dest("127.255.255.255")));
    EXPECT_TRUE(Allowed(lo, dest("::ffff:127.0.0.1")));
    EXPECT_TRUE(Allowed(lo, dest("::127.0.0.1")));
    EXPECT_TRUE(Allowed(lo, dest("::1")));
    EXPECT_TRUE(Denied(lo, dest("169.254.169.254"), {"link-local"}));

    const auto one = rule({entry(Action::allow, "127.0.0.1/32", PortRange{8080, 8080})});
    EXPECT_TRUE(Allowed(one, dest("127.0.0.1", 8080)));
    EXPECT_TRUE(Denied(one, dest("127.0.0.1", 8081), {"loopback"}));
    EXPECT_TRUE(Denied(one, dest("127.0.0.2", 8080), {"loopback"}));

    const auto wide = rule({entry(Action::allow, "0.0.0.0/0"), entry(Action::allow, "::/0")});
    EXPECT_TRUE(Allowed(wide, dest("192.0.2.1")));
    EXPECT_TRUE(Denied(wide, dest("127.0.0.1"), {"loopback", "wider than that range", "destinations[0]"}));
    EXPECT_TRUE(Denied(wide, dest("169.254.169.254"), {"cloud metadata"}));
    EXPECT_TRUE(Denied(wide, dest("::ffff:169.254.169.254"), {"cloud metadata"}));
    EXPECT_TRUE(Denied(wide, dest("fe80::1"), {"link-local", "destinations[1]"}));

    const auto metadata = rule({entry(Action::allow, "169.254.169.254/32", PortRange{80, 80})});
    EXPECT_TRUE(Allowed(metadata, dest("169.254.169.254", 80)));
    EXPECT_TRUE(Allowed(metadata, dest("::ffff:169.254.169.254", 80)));
    EXPECT_TRUE(Denied(metadata, dest("169.254.169.253", 80)));

    const auto priv = rule({entry(Action::allow, "10.1.0.0/16"), entry(Action::allow, "8.0.0.0/5")}, true);
    EXPECT_TRUE(Allowed(priv, dest("10.1.2.3")));
    EXPECT_TRUE(Denied(priv, dest("10.2.0.1"), {"private", "wider", "destinations[1]"}));
    EXPECT_TRUE(Allowed(priv, dest("8.8.8.8")));
}

TEST(Evaluate, OtherwiseDenyMakesAnAllowList) {
    const auto r = rule({entry(Action::allow, "192.0.2.0/24", PortRange{443, 443})}, false, Action::deny);
    EXPECT_TRUE(Allowed(r, dest("192.0.2.9", 443)));
    EXPECT_TRUE(Denied(r, dest("192.0.2.9", 80), {"otherwise: deny", "rule 'r'"}));
    EXPECT_TRUE(Denied(r, dest("2001:db8::1"), {"otherwise"}));
    // The built-in list is named before `otherwise` when both deny.
    EXPECT_TRUE(Denied(r, dest("127.0.0.1"), {"loopback"}));
}

TEST(ClientPolicy, FirstMatchingRuleElseTheDefault) {
    ClientRule a, b, c, def;
    a.name = "by-uid";
    a.match = ClientMatch{ClientMatch::Kind::uid, 1000};
    b.name = "by-gid";
    b.match = ClientMatch{ClientMatch::Kind::gid, 50};
    c.name = "uid-again";
    c.match = ClientMatch{ClientMatch::Kind::uid, 1000};
    def.name = "fallback";
    const ClientPolicy p({a, b, c}, def);
    EXPECT_EQ(p.rule_for({1000, 50, 1}).name, "by-uid");
    EXPECT_EQ(p.rule_for({1000, 0, 1}).name, "by-uid");
    EXPECT_EQ(p.rule_for({1001, 50, 1}).name, "by-gid");
    EXPECT_EQ(p.rule_for({50, 1000, 1}).name, "fallback");  // uid and gid are not interchangeable
    EXPECT_EQ(p.rule_for({7, 7, 1, {3, 50, 9}}).name, "by-gid");  // a supplementary group
    EXPECT_EQ(p.rule_for({7, 7, 1, {3, 1000, 9}}).name, "fallback");  // groups are not uids
    EXPECT_EQ(p.rule_for({0, 0, 1}).name, "fallback");
    EXPECT_EQ(p.rule_for({4294967294u, 4294967294u, 1}).name, "fallback");
    EXPECT_EQ(ClientPolicy().rule_for({0, 0, 1}).name, kDefaultRuleName);
    EXPECT_TRUE(ClientPolicy().rules().empty());
}

TEST(ClientRule, PoolsUnsetMeansAny) {
    ClientRule r;
    EXPECT_TRUE(r.may_use_pool("anything"));
    r.pools = std::vector<std::string>{"a", "b"};
    EXPECT_TRUE(r.may_use_pool("a"));
    EXPECT_TRUE(r.may_use_pool("b"));
    EXPECT_FALSE(r.may_use_pool("c"));
    EXPECT_FALSE(r.may_use_pool(""));
    EXPECT_FALSE(r.may_use_pool("A"));
}

}  // namespace
}  // namespace egress
