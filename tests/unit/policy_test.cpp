// Client rules and destination policy: every address family corner, prefix
// lengths 0 and 32/128, port range edges, the built-in deny list, IPv4
// addresses embedded in IPv6 ones, the host's own addresses and listeners,
// host-name entries and the refusal before resolving.
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

ClientRule rule(std::vector<DestEntry> entries = {}, bool deny_private = true, Action otherwise = Action::allow) {
    ClientRule r;
    r.name = "r";
    r.destinations = std::move(entries);
    r.deny_private = deny_private;
    r.otherwise = otherwise;
    return r;
}

const HostFacts kNoHost{};

// Allowed or denied, with the reason mentioning every word.
testing::AssertionResult Denied(const ClientRule& r, const Endpoint& d, std::initializer_list<std::string> words = {},
                                const HostFacts& host = kNoHost) {
    const auto dec = evaluate(r, d, host);
    if (dec.allowed) return testing::AssertionFailure() << endpoint_string(d) << " allowed";
    if (dec.rule != r.name) return testing::AssertionFailure() << "decided by '" << dec.rule << "'";
    for (const auto& w : words)
        if (dec.reason.find(w) == std::string::npos)
            return testing::AssertionFailure() << "reason '" << dec.reason << "' lacks '" << w << "'";
    return testing::AssertionSuccess() << dec.reason;
}

testing::AssertionResult Allowed(const ClientRule& r, const Endpoint& d, const HostFacts& host = kNoHost) {
    const auto dec = evaluate(r, d, host);
    if (!dec.allowed) return testing::AssertionFailure() << endpoint_string(d) << " denied: " << dec.reason;
    return testing::AssertionSuccess();
}

DestEntry host_entry(Action a, const std::string& pattern, PortRange ports = {}) {
    const auto p = parse_host_pattern(pattern);
    EXPECT_TRUE(p) << pattern;
    return DestEntry{a, {}, ports, p ? *p : HostPattern{}};  // an empty pattern matches nothing
}

// As Denied and Allowed, for `d` resolved from `name`.
testing::AssertionResult NameDenied(const ClientRule& r, const std::string& name, const Endpoint& d,
                                    std::initializer_list<std::string> words = {}, const HostFacts& host = kNoHost) {
    const auto dec = evaluate(r, d, host, name);
    if (dec.allowed) return testing::AssertionFailure() << name << " -> " << endpoint_string(d) << " allowed";
    if (dec.rule != r.name) return testing::AssertionFailure() << "decided by '" << dec.rule << "'";
    for (const auto& w : words)
        if (dec.reason.find(w) == std::string::npos)
            return testing::AssertionFailure() << "reason '" << dec.reason << "' lacks '" << w << "'";
    return testing::AssertionSuccess() << dec.reason;
}

testing::AssertionResult NameAllowed(const ClientRule& r, const std::string& name, const Endpoint& d,
                                     const HostFacts& host = kNoHost) {
    const auto dec = evaluate(r, d, host, name);
    if (!dec.allowed)
        return testing::AssertionFailure() << name << " -> " << endpoint_string(d) << " denied: " << dec.reason;
    return testing::AssertionSuccess();
}

// deny_before_resolving() refuses `name` at `port`, the reason mentioning every word.
testing::AssertionResult RefusedUnresolved(const ClientRule& r, const std::string& name, std::uint16_t port,
                                           std::initializer_list<std::string> words = {}) {
    const auto dec = deny_before_resolving(r, name, port);
    if (!dec) return testing::AssertionFailure() << name << ":" << port << " left to the resolver";
    if (dec->allowed) return testing::AssertionFailure() << "a decision that allows";
    if (dec->rule != r.name) return testing::AssertionFailure() << "decided by '" << dec->rule << "'";
    for (const auto& w : words)
        if (dec->reason.find(w) == std::string::npos)
            return testing::AssertionFailure() << "reason '" << dec->reason << "' lacks '" << w << "'";
    return testing::AssertionSuccess() << dec->reason;
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
                          Range{"224.0.0.0", "239.255.255.255", "223.255.255.255", nullptr, "multicast"},
                          Range{"240.0.0.0", "255.255.255.254", nullptr, nullptr, "reserved"},
                          Range{"255.255.255.255", "255.255.255.255", nullptr, nullptr, "broadcast"},
                          Range{"192.0.0.0", "192.0.0.255", "191.255.255.255", "192.0.1.0", "IETF protocol assignments"},
                          Range{"198.18.0.0", "198.19.255.255", "198.17.255.255", "198.20.0.0", "benchmarking"}}) {
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
    EXPECT_TRUE(Denied(r, dest("fec0::"), {"fec0::/10", "site-local"}));
    EXPECT_TRUE(Denied(r, dest("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), {"site-local"}));
    EXPECT_TRUE(Denied(r, dest("64:ff9b:1::"), {"64:ff9b:1::/48", "local-use NAT64"}));
    EXPECT_TRUE(Denied(r, dest("64:ff9b:1:ffff:ffff:ffff:ffff:ffff"), {"RFC 8215"}));
    EXPECT_TRUE(Denied(r, dest("64:ff9b:1:0:7f00:1::"), {"RFC 8215"}));
    for (const char* a : {"fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::1", "::3:0:0", "1.1.1.1", "8.8.8.8", "203.0.113.2", "64:ff9b:0:ffff:ffff:ffff:ffff:ffff",
                          "64:ff9b:2::", "64:ff9b::808:808", "2002:808:808::1"})
        EXPECT_TRUE(Allowed(r, dest(a))) << a;
}

TEST(BuiltinDenyList, PrivateRangesUnlessDenyPrivateIsFalse) {
    struct Range {
        const char *first, *last, *below, *above;
    };
    const auto open = rule({}, false), closed = rule({}, true);
    for (const auto& x : {Range{"10.0.0.0", "10.255.255.255", "9.255.255.255", "11.0.0.0"},
                          Range{"100.64.0.0", "100.127.255.255", "100.63.255.255", "100.128.0.0"},
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

// The IPv4 addresses embedded_forms() finds in `a`, as "how=addr:port" strings.
std::vector<std::string> forms(const std::string& a, std::uint16_t port = 443) {
    std::vector<std::string> out;
    for (const auto& f : embedded_forms(dest(a, port)))
        out.push_back(std::string(f.how) + "=" + endpoint_string(f.v4));
    return out;
}
using Forms = std::vector<std::string>;

TEST(EmbeddedForms, Nat64WellKnownPrefixCarriesTheLast32Bits) {
    EXPECT_EQ(forms("64:ff9b::7f00:1", 22), (Forms{"NAT64, RFC 6052=127.0.0.1:22"}));
    EXPECT_EQ(forms("64:ff9b::a9fe:a9fe"), (Forms{"NAT64, RFC 6052=169.254.169.254:443"}));
    EXPECT_EQ(forms("64:ff9b::"), (Forms{"NAT64, RFC 6052=0.0.0.0:443"}));
    EXPECT_EQ(forms("64:ff9b::ffff:ffff"), (Forms{"NAT64, RFC 6052=255.255.255.255:443"}));
    EXPECT_EQ(forms("64:ff9b::192.0.2.33"), (Forms{"NAT64, RFC 6052=192.0.2.33:443"}));
    // Only the /96: a bit set anywhere in bits 32-95, or another prefix, embeds nothing.
    for (const char* a : {"64:ff9b:0:0:1::7f00:1", "64:ff9b::1:7f00:1", "64:ff9b:0:1::7f00:1", "64:ff9b:8000::7f00:1",
                          "64:ff9b:0:0:0:8000:7f00:1", "64:ff9a::7f00:1", "64:ff9c::7f00:1", "65:ff9b::7f00:1",
                          "64:ff9b:1::7f00:1", "2064:ff9b::7f00:1"})
        EXPECT_EQ(forms(a), Forms{}) << a;
}

TEST(EmbeddedForms, SixToFourCarriesBits16To47WhateverFollows) {
    EXPECT_EQ(forms("2002:7f00:1::1", 80), (Forms{"6to4, RFC 3056=127.0.0.1:80"}));
    EXPECT_EQ(forms("2002:a9fe:a9fe::1"), (Forms{"6to4, RFC 3056=169.254.169.254:443"}));
    EXPECT_EQ(forms("2002::"), (Forms{"6to4, RFC 3056=0.0.0.0:443"}));
    EXPECT_EQ(forms("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), (Forms{"6to4, RFC 3056=255.255.255.255:443"}));
    // The subnet and interface bits do not change the decoding.
    for (const char* a : {"2002:a00:1::", "2002:a00:1:ffff::", "2002:a00:1:0:ffff:ffff:ffff:ffff", "2002:a00:1:1:2:3:4:5"})
        EXPECT_EQ(forms(a), (Forms{"6to4, RFC 3056=10.0.0.1:443"})) << a;
    for (const char* a : {"2003:7f00:1::1", "2012:7f00:1::1", "3002:7f00:1::1", "2000:7f00:1::1", "2102:7f00:1::1"})
        EXPECT_EQ(forms(a), Forms{}) << a;
}

TEST(EmbeddedForms, TeredoCarriesServerAndInvertedClientWhateverTheFlagsAndPort) {
    // RFC 4380's example: server 65.54.227.120, client 192.0.2.45, port 40000.
    EXPECT_EQ(forms("2001:0:4136:e378:8000:63bf:3fff:fdd2"),
              (Forms{"Teredo server, RFC 4380=65.54.227.120:443", "Teredo client, RFC 4380=192.0.2.45:443"}));
    for (const char* a : {"2001:0:4136:e378:8000:63bf:80ff:fffe", "2001:0:4136:e378::80ff:fffe",
                          "2001:0:4136:e378:ffff:ffff:80ff:fffe", "2001:0:4136:e378:1:0:80ff:fffe",
                          "2001:0:4136:e378:7fff:1:80ff:fffe"})
        EXPECT_EQ(forms(a), (Forms{"Teredo server, RFC 4380=65.54.227.120:443", "Teredo client, RFC 4380=127.0.0.1:443"}))
            << a;
    EXPECT_EQ(forms("2001:0:7f00:1::ffff:ffff"),
              (Forms{"Teredo server, RFC 4380=127.0.0.1:443", "Teredo client, RFC 4380=0.0.0.0:443"}));
    EXPECT_EQ(forms("2001::"),
              (Forms{"Teredo server, RFC 4380=0.0.0.0:443", "Teredo client, RFC 4380=255.255.255.255:443"}));
    for (const char* a : {"2001:1::80ff:fffe", "2001:db8::80ff:fffe", "2001:8000::80ff:fffe", "2000::80ff:fffe",
                          "2011::80ff:fffe"})
        EXPECT_EQ(forms(a), Forms{}) << a;
}

TEST(EmbeddedForms, Ipv4TranslatedIsNotMappedOrCompatible) {
    EXPECT_EQ(forms("::ffff:0:7f00:1"), (Forms{"IPv4-translated, RFC 2765=127.0.0.1:443"}));
    EXPECT_EQ(forms("::ffff:0:a9fe:a9fe"), (Forms{"IPv4-translated, RFC 2765=169.254.169.254:443"}));
    EXPECT_EQ(forms("::ffff:0:0:0"), (Forms{"IPv4-translated, RFC 2765=0.0.0.0:443"}));
    // Mapped and compatible addresses are IPv4 destinations already.
    EXPECT_EQ(forms("::ffff:7f00:1"), Forms{});
    EXPECT_EQ(forms("::7f00:1"), Forms{});
    for (const char* a : {"::ffff:1:7f00:1", "::fffe:0:7f00:1", "::1:ffff:0:7f00:1", "1::ffff:0:7f00:1",
                          "::7fff:0:7f00:1", "0:0:0:1:ffff:0:7f00:1", "::1", "::", "2001:db8::1", "fe80::1"})
        EXPECT_EQ(forms(a), Forms{}) << a;
    EXPECT_EQ(forms("127.0.0.1"), Forms{});  // IPv4 embeds nothing
}

TEST(Evaluate, EveryEmbeddedFormOfADeniedAddressIsDenied) {
    const auto r = rule();
    EXPECT_TRUE(Denied(r, dest("64:ff9b::7f00:1"),
                       {"64:ff9b::7f00:1 embeds 127.0.0.1 (NAT64, RFC 6052): built-in deny list: 127.0.0.0/8 loopback"}));
    EXPECT_TRUE(Denied(r, dest("64:ff9b::a9fe:a9fe", 80), {"embeds 169.254.169.254 (NAT64", "cloud metadata"}));
    EXPECT_TRUE(Denied(r, dest("2002:7f00:1::1"), {"2002:7f00:1::1 embeds 127.0.0.1 (6to4, RFC 3056)", "loopback"}));
    EXPECT_TRUE(Denied(r, dest("2002:a9fe:a9fe::1"), {"6to4", "cloud metadata"}));
    EXPECT_TRUE(Denied(r, dest("2001:0:4136:e378:8000:63bf:80ff:fffe"), {"embeds 127.0.0.1 (Teredo client", "loopback"}));
    EXPECT_TRUE(Denied(r, dest("2001:0:a9fe:a9fe::"), {"embeds 169.254.169.254 (Teredo server", "cloud metadata"}));
    EXPECT_TRUE(Denied(r, dest("::ffff:0:7f00:1"), {"embeds 127.0.0.1 (IPv4-translated, RFC 2765)", "loopback"}));
    EXPECT_TRUE(Denied(r, dest("64:ff9b::e000:1"), {"multicast"}));
    EXPECT_TRUE(Denied(r, dest("64:ff9b::c000:c0"), {"embeds 192.0.0.192", "Oracle"}));
    EXPECT_TRUE(Denied(r, dest("2002:6464:64c8::"), {"embeds 100.100.100.200", "Alibaba"}));
    // Private by default, in every form; deny_private false opens them all.
    for (const char* a : {"64:ff9b::a00:1", "2002:a00:1::1", "2001:0:4136:e378::f5ff:fffe", "::ffff:0:c0a8:101",
                          "64:ff9b::6440:1", "2002:ac10:1::"}) {
        EXPECT_TRUE(Denied(r, dest(a), {"embeds", "private", "deny_private"})) << a;
        EXPECT_TRUE(Allowed(rule({}, false), dest(a))) << a;
    }
    // Public IPv4 through NAT64 and 6to4 stays reachable: prefixes are decoded, not blocked.
    for (const char* a : {"64:ff9b::808:808", "64:ff9b::c000:221", "2002:808:808::1", "2001:0:4136:e378::f7f7:f7f7",
                          "::ffff:0:808:808"})
        EXPECT_TRUE(Allowed(r, dest(a))) << a;
}

TEST(Evaluate, EmbeddedFormsMeetTheRuleLikeLiteralIpv4) {
    // An allow entry inside a built-in range opens it for the embedded form too.
    const auto lo = rule({entry(Action::allow, "127.0.0.0/8")});
    EXPECT_TRUE(Allowed(lo, dest("64:ff9b::7f00:1")));
    EXPECT_TRUE(Allowed(lo, dest("2002:7f00:1::1")));
    EXPECT_TRUE(Denied(lo, dest("64:ff9b::a9fe:a9fe"), {"cloud metadata"}));
    // A wider one does not.
    const auto wide = rule({entry(Action::allow, "0.0.0.0/0"), entry(Action::allow, "::/0")});
    EXPECT_TRUE(Denied(wide, dest("64:ff9b::7f00:1"), {"embeds 127.0.0.1", "wider than that range", "destinations[0]"}));
    EXPECT_TRUE(Allowed(wide, dest("64:ff9b::808:808")));
    // Deny entries apply to the embedded form, ports included.
    const auto deny = rule({entry(Action::deny, "192.0.2.0/24", PortRange{80, 80})});
    EXPECT_TRUE(Denied(deny, dest("64:ff9b::c000:201", 80), {"embeds 192.0.2.1 (NAT64", "destinations[0]"}));
    EXPECT_TRUE(Denied(deny, dest("2002:c000:201::1", 80), {"6to4", "deny 192.0.2.0/24 ports 80"}));
    EXPECT_TRUE(Denied(deny, dest("2001:0:4136:e378::3fff:fdfe", 80), {"Teredo client"}));
    EXPECT_TRUE(Allowed(deny, dest("64:ff9b::c000:201", 443)));
    // The IPv6 form is judged first and as today: its own deny entry decides.
    const auto v6deny = rule({entry(Action::deny, "64:ff9b::/96")});
    EXPECT_TRUE(Denied(v6deny, dest("64:ff9b::808:808"), {"deny 64:ff9b::/96"}));
    // An allow of the IPv6 form does not open what the embedded form is denied for.
    const auto nat64 = rule({entry(Action::allow, "64:ff9b::/96"), entry(Action::deny, "192.0.2.0/24")});
    EXPECT_TRUE(Denied(nat64, dest("64:ff9b::7f00:1"), {"loopback"}));
    EXPECT_TRUE(Denied(nat64, dest("64:ff9b::c000:201"), {"destinations[1]"}));
    EXPECT_TRUE(Allowed(nat64, dest("64:ff9b::808:808")));
    // `otherwise` is not applied to the embedded form: the IPv6 form's decision stands.
    const auto only_nat64 = rule({entry(Action::allow, "64:ff9b::/96")}, true, Action::deny);
    EXPECT_TRUE(Allowed(only_nat64, dest("64:ff9b::808:808")));
    EXPECT_TRUE(Denied(only_nat64, dest("64:ff9b::a00:1"), {"private"}));
    const auto only_v4 = rule({entry(Action::allow, "8.8.8.8/32")}, true, Action::deny);
    EXPECT_TRUE(Denied(only_v4, dest("64:ff9b::808:808"), {"otherwise: deny"}));
    EXPECT_TRUE(Allowed(only_v4, dest("8.8.8.8")));
    // Both Teredo forms are judged: either one denied denies.
    const auto teredo = rule({entry(Action::deny, "65.54.227.120/32")});
    EXPECT_TRUE(Denied(teredo, dest("2001:0:4136:e378:8000:63bf:f7f7:f7f7"), {"Teredo server", "65.54.227.120"}));
    EXPECT_TRUE(Allowed(rule(), dest("2001:0:4136:e378:8000:63bf:f7f7:f7f7")));
}

TEST(BuiltinDenyList, MetadataOutsideLinkLocalIsDeniedEvenWithoutDenyPrivate) {
    for (const bool priv : {false, true}) {
        const auto r = rule({}, priv);
        EXPECT_TRUE(Denied(r, dest("fd00:ec2::254", 80), {"fd00:ec2::254/128", "AWS"})) << priv;
        EXPECT_TRUE(Denied(r, dest("100.100.100.200", 80), {"100.100.100.200/32", "Alibaba"})) << priv;
        EXPECT_TRUE(Denied(r, dest("168.63.129.16", 80), {"168.63.129.16/32", "Azure WireServer"})) << priv;
        EXPECT_TRUE(Denied(r, dest("192.0.0.192", 80), {"192.0.0.192/32", "Oracle"})) << priv;
        EXPECT_TRUE(Denied(r, dest("::ffff:100.100.100.200", 80), {"Alibaba"})) << priv;
    }
    const auto open = rule({}, false);
    for (const char* a : {"fd00:ec2::253", "fd00:ec2::255", "100.100.100.199", "100.100.100.201", "168.63.129.15",
                          "168.63.129.17"})
        EXPECT_TRUE(Allowed(open, dest(a))) << a;
    EXPECT_TRUE(Denied(rule(), dest("fd00:ec2::253"), {"unique local", "deny_private"}));
    EXPECT_TRUE(Denied(rule(), dest("100.100.100.199"), {"CGNAT", "deny_private"}));
    // Opening the range around one does not open it: the narrowest range decides.
    const auto ula = rule({entry(Action::allow, "fd00::/8"), entry(Action::allow, "192.0.0.0/24"),
                           entry(Action::allow, "100.64.0.0/10")});
    EXPECT_TRUE(Allowed(ula, dest("fd00:ec2::253")));
    EXPECT_TRUE(Denied(ula, dest("fd00:ec2::254"), {"AWS", "wider than that range", "destinations[0]"}));
    EXPECT_TRUE(Allowed(ula, dest("192.0.0.1")));
    EXPECT_TRUE(Denied(ula, dest("192.0.0.192"), {"Oracle", "destinations[1]"}));
    EXPECT_TRUE(Denied(ula, dest("100.100.100.200"), {"Alibaba", "destinations[2]"}));
    const auto named = rule({entry(Action::allow, "fd00:ec2::254"), entry(Action::allow, "192.0.0.192/32"),
                             entry(Action::allow, "168.63.129.16")});
    EXPECT_TRUE(Allowed(named, dest("fd00:ec2::254")));
    EXPECT_TRUE(Allowed(named, dest("192.0.0.192")));
    EXPECT_TRUE(Allowed(named, dest("168.63.129.16")));
    EXPECT_TRUE(Allowed(named, dest("64:ff9b::a83f:8110")));  // 168.63.129.16 through NAT64
}

TEST(BuiltinDenyList, PrivateIsTheDefaultOfEveryRule) {
    EXPECT_TRUE(ClientRule{}.deny_private);
    EXPECT_TRUE(ClientPolicy().default_rule().deny_private);
    ClientRule r;
    r.name = "r";
    for (const char* a : {"10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1", "fd00::1", "::ffff:10.0.0.1"})
        EXPECT_TRUE(Denied(r, dest(a), {"private", "deny_private"})) << a;
    r.deny_private = false;
    for (const char* a : {"10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1", "fd00::1", "::ffff:10.0.0.1"})
        EXPECT_TRUE(Allowed(r, dest(a))) << a;
}

HostFacts host_facts() {
    return make_host_facts({dest("203.0.113.1"), dest("2001:db8::5"), dest("10.0.0.5"), dest("fe80::1"),
                            dest("127.0.0.1"), dest("::1"), dest("127.0.0.5")},
                           {});
}

TEST(HostFacts, AddressesAreNormalisedSortedAndUnique) {
    const auto h = make_host_facts({dest("2001:db8::1", 80), dest("::ffff:192.0.2.1"), dest("192.0.2.1", 9),
                                    dest("10.0.0.1"), dest("2001:db8::1")},
                                   {{dest("127.0.0.1", 9466), "metrics endpoint"}});
    ASSERT_EQ(h.addresses.size(), 3u);
    EXPECT_EQ(h.addresses[0], dest("10.0.0.1", 0));
    EXPECT_EQ(h.addresses[1], dest("192.0.2.1", 0));
    EXPECT_EQ(h.addresses[2], dest("2001:db8::1", 0));
    ASSERT_EQ(h.listeners.size(), 1u);
    EXPECT_EQ(h.listeners[0].at.port, 9466);
    EXPECT_TRUE(address_less(dest("255.255.255.255"), dest("::")));
    EXPECT_FALSE(address_less(dest("::"), dest("255.255.255.255")));
    EXPECT_FALSE(address_less(dest("192.0.2.1", 1), dest("192.0.2.1", 2)));
}

TEST(Evaluate, TheHostsOwnAddressesAreDeniedUnlessDenyHostIsFalse) {
    const auto h = host_facts();
    const auto r = rule();
    EXPECT_TRUE(Denied(r, dest("203.0.113.1"), {"address of this host: 203.0.113.1 (deny_host)"}, h));
    EXPECT_TRUE(Denied(r, dest("::ffff:203.0.113.1"), {"address of this host"}, h));
    EXPECT_TRUE(Denied(r, dest("2001:db8::5"), {"address of this host: 2001:db8::5"}, h));
    EXPECT_TRUE(Denied(r, dest("64:ff9b::cb00:7101"), {"embeds 203.0.113.1 (NAT64", "address of this host"}, h));
    EXPECT_TRUE(Denied(r, dest("2002:cb00:7101::1"), {"6to4", "address of this host"}, h));
    EXPECT_TRUE(Denied(r, dest("fe80::1"), {"address of this host"}, h));
    EXPECT_TRUE(Allowed(r, dest("203.0.113.2"), h));
    EXPECT_TRUE(Allowed(r, dest("2001:db8::6"), h));
    EXPECT_TRUE(Allowed(r, dest("203.0.113.1"), kNoHost));
    auto open = rule();
    open.deny_host = false;
    EXPECT_TRUE(Allowed(open, dest("203.0.113.1"), h));
    EXPECT_TRUE(Allowed(open, dest("2001:db8::5"), h));
    EXPECT_TRUE(Allowed(open, dest("64:ff9b::cb00:7101"), h));
    EXPECT_TRUE(Denied(open, dest("10.0.0.5"), {"private"}, h));  // still private
    EXPECT_TRUE(Denied(open, dest("fe80::1"), {"link-local"}, h));
}

TEST(Evaluate, AHostAddressOpensOnlyToAnEntryNamingExactlyIt) {
    const auto h = host_facts();
    const auto subnet = rule({entry(Action::allow, "203.0.113.0/24"), entry(Action::allow, "10.0.0.0/8"),
                              entry(Action::allow, "2001:db8::/32")});
    EXPECT_TRUE(Allowed(subnet, dest("203.0.113.2"), h));
    EXPECT_TRUE(Denied(subnet, dest("203.0.113.1"), {"address of this host", "wider than that range", "destinations[0]"},
                       h));
    EXPECT_TRUE(Allowed(subnet, dest("10.0.0.6"), h));  // private, opened by the entry
    EXPECT_TRUE(Denied(subnet, dest("10.0.0.5"), {"address of this host", "destinations[1]"}, h));
    EXPECT_TRUE(Denied(subnet, dest("2001:db8::5"), {"address of this host", "destinations[2]"}, h));
    const auto named = rule({entry(Action::allow, "203.0.113.1/32", PortRange{8080, 8080}),
                             entry(Action::allow, "2001:db8::5")});
    EXPECT_TRUE(Allowed(named, dest("203.0.113.1", 8080), h));
    EXPECT_TRUE(Denied(named, dest("203.0.113.1", 8081), {"address of this host"}, h));
    EXPECT_TRUE(Allowed(named, dest("2001:db8::5"), h));
    // Deny entries still come first.
    EXPECT_TRUE(Denied(rule({entry(Action::deny, "203.0.113.0/24")}), dest("203.0.113.1"), {"destinations[0]"}, h));
}

TEST(Evaluate, LoopbackHostAddressesStayWithTheLoopbackRange) {
    const auto h = host_facts();
    const auto lo = rule({entry(Action::allow, "127.0.0.0/8"), entry(Action::allow, "::1/128")});
    EXPECT_TRUE(Allowed(lo, dest("127.0.0.1"), h));
    EXPECT_TRUE(Allowed(lo, dest("127.0.0.5"), h));
    EXPECT_TRUE(Allowed(lo, dest("::1"), h));
    EXPECT_TRUE(Denied(rule(), dest("127.0.0.5"), {"127.0.0.0/8 loopback"}, h));
}

TEST(Evaluate, OwnListenersAreDeniedWhateverTheRuleSays) {
    auto h = host_facts();
    h.listeners = {{dest("127.0.0.1", 9466), "metrics endpoint"}};
    auto all = rule({entry(Action::allow, "127.0.0.0/8"), entry(Action::allow, "0.0.0.0/0"),
                     entry(Action::allow, "::/0")}, false);
    all.deny_host = false;
    EXPECT_TRUE(Denied(all, dest("127.0.0.1", 9466),
                       {"egressd's own metrics endpoint listens on 127.0.0.1:9466", "whatever the rules say"}, h));
    EXPECT_TRUE(Denied(all, dest("::ffff:127.0.0.1", 9466), {"metrics endpoint"}, h));
    EXPECT_TRUE(Denied(all, dest("::127.0.0.1", 9466), {"metrics endpoint"}, h));
    EXPECT_TRUE(Denied(all, dest("64:ff9b::7f00:1", 9466), {"embeds 127.0.0.1", "metrics endpoint"}, h));
    EXPECT_TRUE(Denied(all, dest("::ffff:0:7f00:1", 9466), {"IPv4-translated", "metrics endpoint"}, h));
    EXPECT_TRUE(Allowed(all, dest("127.0.0.1", 9465), h));
    EXPECT_TRUE(Allowed(all, dest("127.0.0.1", 9467), h));
    EXPECT_TRUE(Allowed(all, dest("127.0.0.2", 9466), h));  // bound to one address: only that one
    EXPECT_TRUE(Allowed(all, dest("203.0.113.1", 9466), h));
    // A deny entry matching first does not change that it is denied.
    EXPECT_TRUE(Denied(rule({entry(Action::deny, "127.0.0.1/32")}), dest("127.0.0.1", 9466), {"metrics"}, h));
}

TEST(OwnListenerAt, TakesTheAddressOfTheListenTextAndTheRealPort) {
    EXPECT_EQ(own_listener_at("127.0.0.1:9466", 9466, "metrics endpoint").at, dest("127.0.0.1", 9466));
    EXPECT_EQ(own_listener_at("127.0.0.1:0", 41234, "m").at, dest("127.0.0.1", 41234));
    EXPECT_EQ(own_listener_at("0.0.0.0:9466", 9466, "m").at, dest("0.0.0.0", 9466));
    EXPECT_EQ(own_listener_at("[::1]:9466", 9466, "m").at, dest("::1", 9466));
    EXPECT_EQ(own_listener_at("[::]:9466", 9466, "m").at, dest("::", 9466));
    EXPECT_EQ(own_listener_at("localhost:9466", 9466, "m").at, dest("::", 9466));  // unknown: every address
    EXPECT_EQ(own_listener_at("9466", 9466, "m").at, dest("::", 9466));
    EXPECT_EQ(own_listener_at("[::1]:9466", 9466, "metrics endpoint").what, "metrics endpoint");
}

TEST(Evaluate, AWildcardOwnListenerCoversEveryHostAddressLoopbackAndUnspecified) {
    for (const char* wildcard : {"0.0.0.0", "::"}) {
        auto h = host_facts();
        h.listeners = {{dest(wildcard, 9466), "metrics endpoint"}};
        auto all = rule({entry(Action::allow, "127.0.0.0/8"), entry(Action::allow, "::1/128"),
                         entry(Action::allow, "0.0.0.0/8"), entry(Action::allow, "::/128"),
                         entry(Action::allow, "0.0.0.0/0"), entry(Action::allow, "::/0")}, false);
        all.deny_host = false;
        for (const char* a : {"203.0.113.1", "::ffff:203.0.113.1", "10.0.0.5", "2001:db8::5", "fe80::1", "127.0.0.1",
                              "127.9.9.9", "::1", "0.0.0.0", "::", "64:ff9b::cb00:7101"})
            EXPECT_TRUE(Denied(all, dest(a, 9466), {"metrics endpoint"}, h)) << wildcard << " " << a;
        for (const char* a : {"203.0.113.2", "2001:db8::6", "192.0.2.1"})
            EXPECT_TRUE(Allowed(all, dest(a, 9466), h)) << wildcard << " " << a;
        EXPECT_TRUE(Allowed(all, dest("203.0.113.1", 80), h)) << wildcard;
        EXPECT_TRUE(Allowed(all, dest("127.0.0.1", 80), h)) << wildcard;
    }
}

TEST(HostPattern, AnExactNameMatchesOnlyItselfIgnoringCaseAndTheFinalDot) {
    const HostPattern p{"api.example.com", false};
    for (const char* n : {"api.example.com", "API.Example.COM", "api.example.com."})
        EXPECT_TRUE(p.matches(n)) << n;
    for (const char* n : {"example.com", "x.api.example.com", "pi.example.com", "api.example.co", "api.example.com.evil",
                          "api.example.com..", "", "."})
        EXPECT_FALSE(p.matches(n)) << n;
}

TEST(HostPattern, AWildcardMatchesEveryNameBelowItsDomainButNotTheDomain) {
    const HostPattern p{"example.com", true};
    for (const char* n : {"a.example.com", "a.b.example.com", "API.EXAMPLE.COM.", "_srv.example.com"})
        EXPECT_TRUE(p.matches(n)) << n;
    for (const char* n : {"example.com", "example.com.", "EXAMPLE.com", ".example.com", "badexample.com",
                          "a.example.com.evil", "a.example.co", "com", ""})
        EXPECT_FALSE(p.matches(n)) << n;
}

TEST(HostPattern, ParsingNormalizesTheNameAndRefusesMisplacedStars) {
    EXPECT_EQ(*parse_host_pattern("API.Example.COM."), (HostPattern{"api.example.com", false}));
    EXPECT_EQ(*parse_host_pattern("*.Example.COM"), (HostPattern{"example.com", true}));
    EXPECT_EQ(*parse_host_pattern("*.com"), (HostPattern{"com", true}));
    EXPECT_EQ(to_string(*parse_host_pattern("*.Corp.Example.")), "*.corp.example");
    EXPECT_EQ(to_string(*parse_host_pattern("Api.Example.Com")), "api.example.com");
    for (const char* bad : {"*", "*.", "*..", "a.*.b", "**.x", "*.*.x", "*x.example.com", "x*.example.com", "example.*",
                            "*example.com"}) {
        const auto p = parse_host_pattern(bad);
        ASSERT_FALSE(p) << bad;
        EXPECT_EQ(p.error().code, EINVAL) << bad;
        EXPECT_NE(p.error().message.find("'*' may only be the whole first label"), std::string::npos)
            << bad << ": " << p.error().message;
    }
    // Anything else wrong is normalize_host_name's to say, wildcard or not.
    EXPECT_NE(parse_host_pattern("a..b").error().message.find("empty label"), std::string::npos);
    EXPECT_NE(parse_host_pattern("*.a..b").error().message.find("empty label"), std::string::npos);
    EXPECT_NE(parse_host_pattern("127.0.0.1").error().message.find("all digits"), std::string::npos);
    EXPECT_NE(parse_host_pattern("").error().message.find("empty"), std::string::npos);
    EXPECT_NE(parse_host_pattern("*.ex ample.com").error().message.find("not a letter"), std::string::npos);
}

TEST(Evaluate, NameEntriesNeverMatchALiteral) {
    const auto deny = rule({host_entry(Action::deny, "*.example.com")});
    EXPECT_TRUE(Allowed(deny, dest("192.0.2.1")));
    EXPECT_TRUE(Allowed(deny, dest("2001:db8::1")));
    const auto allow = rule({host_entry(Action::allow, "api.example.com")}, true, Action::deny);
    EXPECT_TRUE(Denied(allow, dest("8.8.8.8"), {"otherwise: deny"}));
    EXPECT_TRUE(NameAllowed(allow, "api.example.com", dest("8.8.8.8")));
}

TEST(Evaluate, AnExactNameEntryMatchesThatNameOnly) {
    const auto r = rule({host_entry(Action::deny, "api.example.com")});
    EXPECT_TRUE(NameDenied(r, "api.example.com", dest("192.0.2.1"),
                           {"deny host api.example.com ports 1-65535 (destinations[0] of rule 'r')"}));
    EXPECT_TRUE(NameDenied(r, "api.example.com", dest("2001:db8::1")));
    EXPECT_TRUE(NameAllowed(r, "www.example.com", dest("192.0.2.1")));
    EXPECT_TRUE(NameAllowed(r, "example.com", dest("192.0.2.1")));
    EXPECT_TRUE(NameAllowed(r, "a.api.example.com", dest("192.0.2.1")));
}

TEST(Evaluate, AWildcardEntryMatchesSubdomainsNotTheApex) {
    const auto r = rule({host_entry(Action::deny, "*.example.com")});
    EXPECT_TRUE(NameDenied(r, "a.example.com", dest("192.0.2.1"), {"deny host *.example.com", "destinations[0]"}));
    EXPECT_TRUE(NameDenied(r, "a.b.example.com", dest("192.0.2.1")));
    EXPECT_TRUE(NameAllowed(r, "example.com", dest("192.0.2.1")));
    EXPECT_TRUE(NameAllowed(r, "notexample.com", dest("192.0.2.1")));
}

TEST(Evaluate, NameAndAddressEntriesAreWalkedInOrder) {
    // An address deny before a name allow denies what the name resolves to.
    const auto deny_first = rule({entry(Action::deny, "192.0.2.0/24"), host_entry(Action::allow, "api.example.com")},
                                 true, Action::deny);
    EXPECT_TRUE(NameDenied(deny_first, "api.example.com", dest("192.0.2.1"), {"deny 192.0.2.0/24", "destinations[0]"}));
    EXPECT_TRUE(NameAllowed(deny_first, "api.example.com", dest("198.51.100.1")));
    // A name allow before it wins for that name only.
    const auto allow_first = rule({host_entry(Action::allow, "api.example.com"), entry(Action::deny, "192.0.2.0/24")},
                                  true, Action::deny);
    EXPECT_TRUE(NameAllowed(allow_first, "api.example.com", dest("192.0.2.1")));
    EXPECT_TRUE(NameDenied(allow_first, "www.example.com", dest("192.0.2.1"), {"destinations[1]"}));
    EXPECT_TRUE(NameDenied(allow_first, "www.example.com", dest("198.51.100.1"), {"otherwise: deny"}));
    // A name deny before an address allow, and after it.
    const auto name_deny_first = rule({host_entry(Action::deny, "api.example.com"), entry(Action::allow, "0.0.0.0/0")});
    EXPECT_TRUE(NameDenied(name_deny_first, "api.example.com", dest("8.8.8.8"), {"destinations[0]"}));
    EXPECT_TRUE(Allowed(name_deny_first, dest("8.8.8.8")));
    const auto name_deny_last = rule({entry(Action::allow, "0.0.0.0/0"), host_entry(Action::deny, "api.example.com")});
    EXPECT_TRUE(NameAllowed(name_deny_last, "api.example.com", dest("8.8.8.8")));
    EXPECT_TRUE(NameDenied(name_deny_last, "api.example.com", dest("2001:db8::1"), {"destinations[1]"}));
}

TEST(Evaluate, NameEntryPortsApplyAsForAddressEntries) {
    const auto only_443 = rule({host_entry(Action::allow, "api.example.com", PortRange{443, 443})}, true, Action::deny);
    EXPECT_TRUE(NameAllowed(only_443, "api.example.com", dest("8.8.8.8", 443)));
    EXPECT_TRUE(NameDenied(only_443, "api.example.com", dest("8.8.8.8", 80), {"otherwise: deny"}));
    EXPECT_TRUE(NameDenied(only_443, "api.example.com", dest("8.8.8.8", 444), {"otherwise: deny"}));
    const auto range = rule({host_entry(Action::deny, "*.example.com", PortRange{80, 443})});
    EXPECT_TRUE(NameAllowed(range, "a.example.com", dest("192.0.2.1", 79)));
    EXPECT_TRUE(NameDenied(range, "a.example.com", dest("192.0.2.1", 80), {"deny host *.example.com ports 80-443"}));
    EXPECT_TRUE(NameDenied(range, "a.example.com", dest("192.0.2.1", 443)));
    EXPECT_TRUE(NameAllowed(range, "a.example.com", dest("192.0.2.1", 444)));
}

TEST(Evaluate, ANameAllowOpensNoBuiltinRangeWhatTheNameResolvesTo) {
    for (const auto otherwise : {Action::allow, Action::deny}) {
        const auto r = rule({host_entry(Action::allow, "evil.example.com")}, true, otherwise);
        const auto by_name = [&](const char* a, std::initializer_list<std::string> words, std::uint16_t port = 443) {
            return NameDenied(r, "evil.example.com", dest(a, port), words);
        };
        const std::string opens_nothing = "allows evil.example.com by name, which opens no built-in range";
        EXPECT_TRUE(by_name("127.0.0.1", {"127.0.0.0/8 loopback", "destinations[0]", opens_nothing}));
        EXPECT_TRUE(by_name("127.0.0.53", {"loopback"}));
        EXPECT_TRUE(by_name("::1", {"::1/128 loopback", opens_nothing}));
        EXPECT_TRUE(by_name("::ffff:127.0.0.1", {"loopback"}));
        EXPECT_TRUE(by_name("169.254.169.254", {"cloud metadata", opens_nothing}, 80));
        EXPECT_TRUE(by_name("fd00:ec2::254", {"AWS"}, 80));
        EXPECT_TRUE(by_name("0.0.0.0", {"unspecified"}));
        EXPECT_TRUE(by_name("10.0.0.1", {"private", "deny_private", opens_nothing}));
        EXPECT_TRUE(by_name("192.168.1.1", {"private"}));
        EXPECT_TRUE(by_name("fd12::1", {"unique local"}));
        EXPECT_TRUE(by_name("64:ff9b::7f00:1", {"64:ff9b::7f00:1 embeds 127.0.0.1 (NAT64, RFC 6052)", "loopback",
                                                opens_nothing}));
        EXPECT_TRUE(by_name("2002:7f00:1::1", {"6to4", "loopback"}));
        EXPECT_TRUE(by_name("2001:0:4136:e378:8000:63bf:80ff:fffe", {"Teredo client", "loopback"}));
        EXPECT_TRUE(by_name("64:ff9b::a9fe:a9fe", {"embeds 169.254.169.254", "cloud metadata"}, 80));
        EXPECT_TRUE(by_name("64:ff9b::a00:1", {"embeds 10.0.0.1", "private"}));
    }
    // With deny_private false the private ranges are the rule's to open, by name too.
    const auto open = rule({host_entry(Action::allow, "db.internal.example")}, false, Action::deny);
    EXPECT_TRUE(NameAllowed(open, "db.internal.example", dest("10.0.0.1")));
    EXPECT_TRUE(NameDenied(open, "db.internal.example", dest("127.0.0.1"), {"loopback"}));
}

TEST(Evaluate, ANameAllowOfAPublicAddressStandsEvenWithOtherwiseDeny) {
    const auto r = rule({host_entry(Action::allow, "api.example.com")}, true, Action::deny);
    for (const char* a : {"8.8.8.8", "2001:db8::1", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"})
        EXPECT_TRUE(NameAllowed(r, "api.example.com", dest(a))) << a;
    EXPECT_TRUE(NameDenied(r, "www.example.com", dest("8.8.8.8"), {"otherwise: deny"}));
}

TEST(Evaluate, ANameAllowDoesNotOpenTheHostsOwnAddresses) {
    const auto h = host_facts();
    const auto r = rule({host_entry(Action::allow, "evil.example.com")}, true, Action::deny);
    EXPECT_TRUE(NameDenied(r, "evil.example.com", dest("203.0.113.1"),
                           {"address of this host: 203.0.113.1 (deny_host)", "by name, which opens no built-in range"},
                           h));
    EXPECT_TRUE(NameDenied(r, "evil.example.com", dest("2001:db8::5"), {"address of this host"}, h));
    EXPECT_TRUE(NameDenied(r, "evil.example.com", dest("64:ff9b::cb00:7101"), {"embeds 203.0.113.1",
                                                                                "address of this host"}, h));
    EXPECT_TRUE(NameAllowed(r, "evil.example.com", dest("203.0.113.2"), h));
    auto open = r;
    open.deny_host = false;
    EXPECT_TRUE(NameAllowed(open, "evil.example.com", dest("203.0.113.1"), h));
}

TEST(Evaluate, ANameAllowDoesNotReachEgressdsOwnListeners) {
    auto h = host_facts();
    h.listeners = {{dest("0.0.0.0", 9466), "metrics endpoint"}};
    auto r = rule({host_entry(Action::allow, "evil.example.com")}, false, Action::deny);
    r.deny_host = false;
    for (const char* a : {"203.0.113.1", "127.0.0.1", "::ffff:203.0.113.1", "64:ff9b::cb00:7101"})
        EXPECT_TRUE(NameDenied(r, "evil.example.com", dest(a, 9466), {"egressd's own metrics endpoint"}, h)) << a;
    EXPECT_TRUE(NameAllowed(r, "evil.example.com", dest("203.0.113.1", 80), h));
}

TEST(Evaluate, TheFirstMatchDecidesWhetherANameOrAnAddressEntryOpensARange) {
    // Only an address entry inside the range opens it, and only if it comes first.
    const auto address_first = rule({entry(Action::allow, "127.0.0.0/8"), host_entry(Action::allow, "local.example")});
    EXPECT_TRUE(NameAllowed(address_first, "local.example", dest("127.0.0.1")));
    const auto name_first = rule({host_entry(Action::allow, "local.example"), entry(Action::allow, "127.0.0.0/8")});
    EXPECT_TRUE(NameDenied(name_first, "local.example", dest("127.0.0.1"), {"loopback", "destinations[0]"}));
    EXPECT_TRUE(Allowed(name_first, dest("127.0.0.1")));  // the literal meets the address entry
}

TEST(Evaluate, EmbeddedFormsMeetNameEntriesToo) {
    // The embedded IPv4 form is judged with the same name: an earlier address deny still applies.
    const auto r = rule({entry(Action::deny, "192.0.2.0/24"), host_entry(Action::allow, "api.example.com")}, true,
                        Action::deny);
    EXPECT_TRUE(NameDenied(r, "api.example.com", dest("64:ff9b::c000:201"), {"embeds 192.0.2.1", "destinations[0]"}));
    EXPECT_TRUE(NameAllowed(r, "api.example.com", dest("64:ff9b::808:808")));
    const auto deny = rule({host_entry(Action::deny, "api.example.com")});
    EXPECT_TRUE(NameDenied(deny, "api.example.com", dest("64:ff9b::808:808"), {"deny host api.example.com"}));
}

TEST(DenyBeforeResolving, AMatchingNameDenyRefusesTheName) {
    const auto r = rule({host_entry(Action::deny, "*.corp.example"), entry(Action::allow, "0.0.0.0/0")});
    EXPECT_TRUE(RefusedUnresolved(r, "api.corp.example", 443,
                                  {"host name api.corp.example is denied before resolving",
                                   "deny host *.corp.example ports 1-65535 (destinations[0] of rule 'r')"}));
    EXPECT_TRUE(RefusedUnresolved(r, "a.b.corp.example", 1));
    EXPECT_FALSE(deny_before_resolving(r, "corp.example", 443));  // the apex is not below it
    EXPECT_FALSE(deny_before_resolving(r, "www.example.com", 443));
}

TEST(DenyBeforeResolving, OtherwiseDenyWithNoEntryThatCouldAllowRefuses) {
    const auto r = rule({host_entry(Action::allow, "api.example.com")}, true, Action::deny);
    EXPECT_TRUE(RefusedUnresolved(r, "www.example.com", 443,
                                  {"host name www.example.com is denied before resolving",
                                   "no destination entry of rule 'r' allows it", "otherwise: deny"}));
    EXPECT_FALSE(deny_before_resolving(r, "api.example.com", 443));
    EXPECT_FALSE(deny_before_resolving(rule(), "www.example.com", 443));  // otherwise allow: the addresses decide
}

TEST(DenyBeforeResolving, AnAddressAllowLeavesItToTheResolvedAddresses) {
    const auto r = rule({entry(Action::allow, "8.8.8.8/32")}, true, Action::deny);
    EXPECT_FALSE(deny_before_resolving(r, "dns.example", 443));
    // Before a matching name deny, too: some address might match it first.
    const auto before = rule({entry(Action::allow, "0.0.0.0/0"), host_entry(Action::deny, "api.example.com")});
    EXPECT_FALSE(deny_before_resolving(before, "api.example.com", 443));
    const auto after = rule({host_entry(Action::deny, "api.example.com"), entry(Action::allow, "0.0.0.0/0")});
    EXPECT_TRUE(RefusedUnresolved(after, "api.example.com", 443, {"destinations[0]"}));
}

TEST(DenyBeforeResolving, AddressDenyEntriesOnlyDenyMoreAndAreSkipped) {
    const auto r = rule({entry(Action::deny, "0.0.0.0/0"), entry(Action::deny, "::/0"),
                         host_entry(Action::deny, "api.example.com")});
    EXPECT_TRUE(RefusedUnresolved(r, "api.example.com", 443, {"deny host api.example.com", "destinations[2]"}));
    EXPECT_FALSE(deny_before_resolving(rule({entry(Action::deny, "0.0.0.0/0")}), "api.example.com", 443));
    const auto all_denied = rule({entry(Action::deny, "192.0.2.0/24")}, true, Action::deny);
    EXPECT_TRUE(RefusedUnresolved(all_denied, "api.example.com", 443, {"otherwise: deny"}));
}

TEST(DenyBeforeResolving, EntriesCountOnlyAtTheirPorts) {
    const auto deny25 = rule({host_entry(Action::deny, "*.example.com", PortRange{25, 25})});
    EXPECT_TRUE(RefusedUnresolved(deny25, "mx.example.com", 25, {"ports 25"}));
    EXPECT_FALSE(deny_before_resolving(deny25, "mx.example.com", 443));
    const auto allow443 = rule({host_entry(Action::allow, "api.example.com", PortRange{443, 443}),
                                entry(Action::allow, "8.8.8.8/32", PortRange{53, 53})}, true, Action::deny);
    EXPECT_FALSE(deny_before_resolving(allow443, "api.example.com", 443));
    EXPECT_TRUE(RefusedUnresolved(allow443, "api.example.com", 80, {"otherwise: deny"}));
    EXPECT_FALSE(deny_before_resolving(allow443, "dns.example", 53));
}

TEST(DenyBeforeResolving, NeverRefusesANameThatEvaluateWouldAllowAtSomeAddress) {
    // Every rule of up to three entries drawn from these, both `otherwise`s:
    // whenever a name is refused unresolved, each sample address it could
    // resolve to is denied by evaluate() too.
    const std::vector<DestEntry> pool{
        host_entry(Action::allow, "api.example.com"), host_entry(Action::deny, "api.example.com"),
        host_entry(Action::allow, "*.example.com", PortRange{443, 443}), host_entry(Action::deny, "*.example.com"),
        entry(Action::allow, "0.0.0.0/0", PortRange{80, 80}), entry(Action::deny, "192.0.2.0/24"),
        entry(Action::allow, "127.0.0.0/8"), entry(Action::allow, "::/0")};
    std::vector<std::vector<DestEntry>> lists{{}};
    for (std::size_t at = 0; at < lists.size(); ++at)
        if (lists[at].size() < 3)
            for (const auto& e : pool) {
                auto longer = lists[at];
                longer.push_back(e);
                lists.push_back(std::move(longer));
            }
    int refused = 0;
    for (const auto& l : lists)
        for (const auto otherwise : {Action::allow, Action::deny}) {
            const auto r = rule(l, true, otherwise);
            for (const char* name : {"api.example.com", "www.example.com", "other.test"})
                for (const std::uint16_t port : {80, 443}) {
                    if (!deny_before_resolving(r, name, port)) continue;
                    ++refused;
                    for (const char* a : {"8.8.8.8", "192.0.2.1", "127.0.0.1", "2001:db8::1", "64:ff9b::808:808"})
                        EXPECT_FALSE(evaluate(r, dest(a, port), kNoHost, name).allowed)
                            << name << ":" << port << " -> " << a << " with " << l.size() << " entries";
                }
        }
    EXPECT_GT(refused, 100);  // the property was put to work
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
