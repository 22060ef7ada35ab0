// Destination prefixes, the route table and route conflicts.
#include "pool/routes.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <random>
#include <string>
#include <vector>

#include "expect.hpp"

namespace egress {
namespace {

using test::IsError;
using test::IsOk;

Endpoint addr(std::string_view text, std::uint16_t port = 0) {
    auto a = parse_address(text, port);
    EXPECT_TRUE(a) << text;
    return a.value_or(Endpoint{});
}

Prefix prefix(std::string_view text) {
    auto p = parse_prefix(text);
    EXPECT_TRUE(IsOk(p)) << text;
    return p ? *p : Prefix{};
}

// ---- parse_prefix ----

TEST(ParsePrefix, V4) {
    const auto p = parse_prefix("192.0.2.0/24");
    ASSERT_TRUE(IsOk(p));
    EXPECT_FALSE(p->net.v6);
    EXPECT_EQ(p->net, addr("192.0.2.0"));
    EXPECT_EQ(p->len, 24u);
    EXPECT_EQ(to_string(*p), "192.0.2.0/24");
}

TEST(ParsePrefix, V6) {
    const auto p = parse_prefix("2001:db8::/32");
    ASSERT_TRUE(IsOk(p));
    EXPECT_TRUE(p->net.v6);
    EXPECT_EQ(p->net, addr("2001:db8::"));
    EXPECT_EQ(p->len, 32u);
    EXPECT_EQ(to_string(*p), "2001:db8::/32");
}

TEST(ParsePrefix, BareAddressIsAHostPrefix) {
    EXPECT_EQ(prefix("192.0.2.7"), (Prefix{addr("192.0.2.7"), 32}));
    EXPECT_EQ(prefix("2001:db8::7"), (Prefix{addr("2001:db8::7"), 128}));
    EXPECT_EQ(prefix("0.0.0.0"), (Prefix{addr("0.0.0.0"), 32}));
    EXPECT_EQ(prefix("::"), (Prefix{addr("::"), 128}));
    EXPECT_EQ(to_string(prefix("192.0.2.7")), "192.0.2.7/32");
    EXPECT_EQ(to_string(prefix("::1")), "::1/128");
}

TEST(ParsePrefix, LengthsZeroAndFull) {
    EXPECT_EQ(prefix("0.0.0.0/0"), (Prefix{addr("0.0.0.0"), 0}));
    EXPECT_EQ(prefix("::/0"), (Prefix{addr("::"), 0}));
    EXPECT_EQ(prefix("192.0.2.1/32"), (Prefix{addr("192.0.2.1"), 32}));
    EXPECT_EQ(prefix("255.255.255.255/32"), (Prefix{addr("255.255.255.255"), 32}));
    EXPECT_EQ(prefix("2001:db8::1/128"), (Prefix{addr("2001:db8::1"), 128}));
    EXPECT_EQ(prefix("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128").len, 128u);
}

TEST(ParsePrefix, EveryLengthOfTheFamily) {
    for (unsigned len = 0; len <= 32; ++len) {
        const auto p = parse_prefix("0.0.0.0/" + std::to_string(len));
        ASSERT_TRUE(IsOk(p)) << len;
        EXPECT_EQ(p->len, len);
    }
    for (unsigned len = 0; len <= 128; ++len) {
        const auto p = parse_prefix("::/" + std::to_string(len));
        ASSERT_TRUE(IsOk(p)) << len;
        EXPECT_EQ(p->len, len);
    }
}

TEST(ParsePrefix, LengthOutOfRange) {
    EXPECT_TRUE(IsError(parse_prefix("192.0.2.0/33"), EINVAL, {"0-32", "33"}));
    EXPECT_TRUE(IsError(parse_prefix("0.0.0.0/128"), EINVAL, {"0-32", "128"}));
    EXPECT_TRUE(IsError(parse_prefix("2001:db8::/129"), EINVAL, {"0-128", "129"}));
    EXPECT_TRUE(IsError(parse_prefix("::/4294967296"), EINVAL, {"0-128"}));
}

TEST(ParsePrefix, MalformedLength) {
    for (const char* bad : {"192.0.2.0/", "192.0.2.0/-1", "192.0.2.0/abc", "192.0.2.0/24x", "192.0.2.0/ 24",
                            "192.0.2.0/24 ", "192.0.2.0/+24", "192.0.2.0/24/8", "::/", "::/0x10"}) {
        EXPECT_TRUE(IsError(parse_prefix(bad), EINVAL, {"prefix length"})) << bad;
    }
}

TEST(ParsePrefix, HostBitsSetSuggestsTheMaskedPrefix) {
    EXPECT_TRUE(IsError(parse_prefix("192.0.2.1/24"), EINVAL, {"192.0.2.1/24", "host bits", "192.0.2.0/24"}));
    EXPECT_TRUE(IsError(parse_prefix("10.255.0.0/9"), EINVAL, {"host bits", "10.128.0.0/9"}));
    EXPECT_TRUE(IsError(parse_prefix("192.0.3.0/23"), EINVAL, {"192.0.2.0/23"}));
    EXPECT_TRUE(IsError(parse_prefix("0.0.0.1/0"), EINVAL, {"0.0.0.0/0"}));
    EXPECT_TRUE(IsError(parse_prefix("255.255.255.255/31"), EINVAL, {"255.255.255.254/31"}));
    EXPECT_TRUE(IsError(parse_prefix("2001:db8::1/64"), EINVAL, {"host bits", "2001:db8::/64"}));
    EXPECT_TRUE(IsError(parse_prefix("2001:db8::3/127"), EINVAL, {"2001:db8::2/127"}));
    EXPECT_TRUE(IsError(parse_prefix("::1/0"), EINVAL, {"::/0"}));
    EXPECT_TRUE(IsError(parse_prefix("2001:db8:ffff::/33"), EINVAL, {"2001:db8:8000::/33"}));
}

TEST(ParsePrefix, GarbageIsNotAnAddress) {
    for (const char* bad : {"", "/24", "foo", "foo/8", "192.0.2/24", "1.2.3.4.5", "256.0.0.0/8", "[::1]/128",
                            "192.0.2.0:80", " 192.0.2.0/24", "2001:db8::g/32", "example.com"}) {
        EXPECT_TRUE(IsError(parse_prefix(bad), EINVAL, {"not an IP address"})) << bad;
    }
}

TEST(ParsePrefix, TextRoundTrips) {
    for (const char* text : {"0.0.0.0/0", "10.0.0.0/8", "10.128.0.0/9", "192.0.2.0/23", "192.0.2.128/25",
                             "203.0.113.7/32", "::/0", "2001:db8::/32", "2001:db8::/127", "fe80::/10", "::1/128"}) {
        const auto p = parse_prefix(text);
        ASSERT_TRUE(IsOk(p)) << text;
        EXPECT_EQ(to_string(*p), text);
        EXPECT_EQ(prefix(to_string(*p)), *p);
    }
}

// ---- Prefix::contains ----

// Address arithmetic on the big-endian bytes of an Endpoint.
Endpoint with_bit(Endpoint e, unsigned bit, bool on) {
    const auto m = static_cast<std::uint8_t>(0x80 >> (bit % 8));
    e.addr[bit / 8] = on ? e.addr[bit / 8] | m : e.addr[bit / 8] & static_cast<std::uint8_t>(~m);
    return e;
}

Endpoint masked(Endpoint e, unsigned len, bool host_bits) {
    for (unsigned bit = len; bit < e.addr_len() * 8; ++bit) e = with_bit(e, bit, host_bits);
    return e;
}

// +1 or -1 with carry; false when it would leave the family's space.
bool step(Endpoint& e, int dir) {
    for (auto i = static_cast<int>(e.addr_len()) - 1; i >= 0; --i) {
        auto& b = e.addr[static_cast<std::size_t>(i)];
        if (dir > 0 ? b != 0xFF : b != 0x00) {
            b = static_cast<std::uint8_t>(b + dir);
            return true;
        }
        b = dir > 0 ? 0x00 : 0xFF;
    }
    return false;
}

// The reference: the first `len` bits are equal.
bool reference_contains(const Prefix& p, const Endpoint& a) {
    if (p.net.v6 != a.v6) return false;
    for (unsigned bit = 0; bit < p.len; ++bit)
        if (((p.net.addr[bit / 8] ^ a.addr[bit / 8]) & (0x80 >> (bit % 8))) != 0) return false;
    return true;
}

TEST(PrefixContains, FamilyMismatchNeverMatches) {
    EXPECT_FALSE(prefix("0.0.0.0/0").contains(addr("::")));
    EXPECT_FALSE(prefix("0.0.0.0/0").contains(addr("::ffff:192.0.2.1")));
    EXPECT_FALSE(prefix("0.0.0.0/0").contains(addr("2001:db8::1")));
    EXPECT_FALSE(prefix("::/0").contains(addr("0.0.0.0")));
    EXPECT_FALSE(prefix("::/0").contains(addr("192.0.2.1")));
    // Same leading bytes, other family.
    EXPECT_FALSE(prefix("32.1.13.184/32").contains(addr("2001:db8::")));
    EXPECT_FALSE(prefix("2001:db8::/32").contains(addr("32.1.13.184")));
}

TEST(PrefixContains, ZeroLengthMatchesEverythingOfItsFamily) {
    for (const char* a : {"0.0.0.0", "192.0.2.1", "255.255.255.255", "127.0.0.1"})
        EXPECT_TRUE(prefix("0.0.0.0/0").contains(addr(a))) << a;
    for (const char* a : {"::", "::1", "2001:db8::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::ffff:1.2.3.4"})
        EXPECT_TRUE(prefix("::/0").contains(addr(a))) << a;
}

TEST(PrefixContains, PortIsIgnored) {
    EXPECT_TRUE(prefix("192.0.2.0/24").contains(addr("192.0.2.9", 443)));
    EXPECT_TRUE(prefix("192.0.2.9").contains(addr("192.0.2.9", 65535)));
}

TEST(PrefixContains, NonByteAlignedBoundaries) {
    const auto p9 = prefix("10.128.0.0/9");
    EXPECT_FALSE(p9.contains(addr("10.127.255.255")));
    EXPECT_TRUE(p9.contains(addr("10.128.0.0")));
    EXPECT_TRUE(p9.contains(addr("10.255.255.255")));
    EXPECT_FALSE(p9.contains(addr("11.0.0.0")));
    const auto p9low = prefix("10.0.0.0/9");
    EXPECT_TRUE(p9low.contains(addr("10.127.255.255")));
    EXPECT_FALSE(p9low.contains(addr("10.128.0.0")));

    const auto p23 = prefix("192.0.2.0/23");
    EXPECT_FALSE(p23.contains(addr("192.0.1.255")));
    EXPECT_TRUE(p23.contains(addr("192.0.2.0")));
    EXPECT_TRUE(p23.contains(addr("192.0.3.255")));
    EXPECT_FALSE(p23.contains(addr("192.0.4.0")));

    const auto p127 = prefix("2001:db8::/127");
    EXPECT_TRUE(p127.contains(addr("2001:db8::")));
    EXPECT_TRUE(p127.contains(addr("2001:db8::1")));
    EXPECT_FALSE(p127.contains(addr("2001:db8::2")));
    EXPECT_FALSE(p127.contains(addr("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff")));
    const auto p127b = prefix("2001:db8::2/127");
    EXPECT_FALSE(p127b.contains(addr("2001:db8::1")));
    EXPECT_TRUE(p127b.contains(addr("2001:db8::2")));
    EXPECT_TRUE(p127b.contains(addr("2001:db8::3")));
    EXPECT_FALSE(p127b.contains(addr("2001:db8::4")));

    const auto p1 = prefix("128.0.0.0/1");
    EXPECT_FALSE(p1.contains(addr("127.255.255.255")));
    EXPECT_TRUE(p1.contains(addr("128.0.0.0")));
    EXPECT_TRUE(p1.contains(addr("255.255.255.255")));

    const auto p31 = prefix("192.0.2.6/31");
    EXPECT_FALSE(p31.contains(addr("192.0.2.5")));
    EXPECT_TRUE(p31.contains(addr("192.0.2.6")));
    EXPECT_TRUE(p31.contains(addr("192.0.2.7")));
    EXPECT_FALSE(p31.contains(addr("192.0.2.8")));
}

TEST(PrefixContains, HostPrefixesMatchOnlyThemselves) {
    EXPECT_TRUE(prefix("192.0.2.1/32").contains(addr("192.0.2.1")));
    EXPECT_FALSE(prefix("192.0.2.1/32").contains(addr("192.0.2.0")));
    EXPECT_FALSE(prefix("192.0.2.1/32").contains(addr("192.0.2.2")));
    EXPECT_TRUE(prefix("2001:db8::1/128").contains(addr("2001:db8::1")));
    EXPECT_FALSE(prefix("2001:db8::1/128").contains(addr("2001:db8::")));
    EXPECT_FALSE(prefix("2001:db8::1/128").contains(addr("2001:db8::2")));
}

// Every length of both families: the first and last address of the prefix
// are in it, the addresses just outside are not.
TEST(PrefixContains, EveryLengthAtItsBoundaries) {
    for (const char* base : {"198.51.100.173", "255.255.255.255", "0.0.0.0", "2001:db8:a5a5:5a5a:1234:5678:9abc:def0",
                             "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::"}) {
        const auto b = addr(base);
        for (unsigned len = 0; len <= b.addr_len() * 8; ++len) {
            SCOPED_TRACE(std::string(base) + "/" + std::to_string(len));
            const Prefix p{masked(b, len, false), len};
            // The parser agrees that this is a valid prefix.
            const auto parsed = parse_prefix(to_string(p));
            ASSERT_TRUE(IsOk(parsed));
            EXPECT_EQ(*parsed, p);

            const auto first = masked(b, len, false), last = masked(b, len, true);
            EXPECT_TRUE(p.contains(first));
            EXPECT_TRUE(p.contains(last));
            EXPECT_TRUE(p.contains(b));
            auto before = first, after = last;
            if (step(before, -1)) {
                EXPECT_FALSE(p.contains(before)) << address_string(before);
            }
            if (step(after, +1)) {
                EXPECT_FALSE(p.contains(after)) << address_string(after);
            }
            // Flipping any one network bit leaves the prefix; any host bit stays in.
            for (unsigned bit = 0; bit < b.addr_len() * 8; ++bit) {
                auto flipped = b;
                flipped.addr[bit / 8] ^= static_cast<std::uint8_t>(0x80 >> (bit % 8));
                ASSERT_EQ(p.contains(flipped), bit >= len) << "bit " << bit;
            }
        }
    }
}

TEST(PrefixContains, AgreesWithABitwiseReference) {
    std::mt19937_64 rng(20240601);
    for (int i = 0; i < 20000; ++i) {
        Endpoint net, a;
        net.v6 = rng() & 1;
        a.v6 = (rng() % 8 == 0) ? !net.v6 : net.v6;
        for (auto& x : net.addr) x = static_cast<std::uint8_t>(rng());
        a = net.v6 == a.v6 ? net : a;
        for (auto& x : a.addr) x = rng() % 3 == 0 ? static_cast<std::uint8_t>(rng()) : x;
        if (!net.v6) std::fill(net.addr.begin() + 4, net.addr.end(), 0);
        if (!a.v6) std::fill(a.addr.begin() + 4, a.addr.end(), 0);
        const unsigned len = static_cast<unsigned>(rng() % (net.addr_len() * 8 + 1));
        const Prefix p{masked(net, len, false), len};
        ASSERT_EQ(p.contains(a), reference_contains(p, a)) << to_string(p) << " " << address_string(a);
    }
}

// ---- RouteTable ----

Route route(std::string_view dest, PortRange ports, std::string pool) { return Route{prefix(dest), ports, std::move(pool)}; }
Route route(std::string_view dest, std::string pool) { return route(dest, PortRange{}, std::move(pool)); }

TEST(RouteTable, EmptyTableGivesTheDefault) {
    const RouteTable t({}, "fallback");
    EXPECT_EQ(t.pool_for(addr("192.0.2.1", 80)), "fallback");
    EXPECT_EQ(t.pool_for(addr("2001:db8::1", 443)), "fallback");
    const RouteTable none;
    EXPECT_EQ(none.pool_for(addr("192.0.2.1", 80)), "");
}

TEST(RouteTable, NoMatchGivesTheDefault) {
    const RouteTable t({route("10.0.0.0/8", "ten"), route("2001:db8::/32", "doc6")}, "fallback");
    EXPECT_EQ(t.pool_for(addr("11.0.0.1", 80)), "fallback");
    EXPECT_EQ(t.pool_for(addr("2001:db9::1", 80)), "fallback");
    EXPECT_EQ(t.pool_for(addr("10.1.2.3", 80)), "ten");
    EXPECT_EQ(t.pool_for(addr("2001:db8::1", 80)), "doc6");
}

TEST(RouteTable, FamiliesDoNotCross) {
    const RouteTable t({route("0.0.0.0/0", "v4"), route("::/0", "v6")}, "fallback");
    EXPECT_EQ(t.pool_for(addr("192.0.2.1", 1)), "v4");
    EXPECT_EQ(t.pool_for(addr("::ffff:192.0.2.1", 1)), "v6");
    EXPECT_EQ(t.pool_for(addr("::", 1)), "v6");
    const RouteTable v4only({route("0.0.0.0/0", "v4")}, "fallback");
    EXPECT_EQ(v4only.pool_for(addr("2001:db8::1", 80)), "fallback");
}

TEST(RouteTable, LongestPrefixWinsInAnyOrder) {
    std::vector<Route> routes{route("10.0.0.0/8", "eight"), route("10.1.0.0/16", "sixteen"),
                              route("10.1.2.0/24", "twentyfour"), route("10.1.2.3/32", "host"),
                              route("0.0.0.0/0", "any")};
    std::sort(routes.begin(), routes.end(), [](const Route& a, const Route& b) { return a.pool < b.pool; });
    do {
        const RouteTable t(routes, "fallback");
        EXPECT_EQ(t.pool_for(addr("10.1.2.3", 80)), "host");
        EXPECT_EQ(t.pool_for(addr("10.1.2.4", 80)), "twentyfour");
        EXPECT_EQ(t.pool_for(addr("10.1.3.1", 80)), "sixteen");
        EXPECT_EQ(t.pool_for(addr("10.2.0.1", 80)), "eight");
        EXPECT_EQ(t.pool_for(addr("11.0.0.1", 80)), "any");
        EXPECT_EQ(t.pool_for(addr("2001:db8::1", 80)), "fallback");
    } while (std::next_permutation(routes.begin(), routes.end(),
                                   [](const Route& a, const Route& b) { return a.pool < b.pool; }));
}

TEST(RouteTable, NonByteAlignedLongestPrefix) {
    const RouteTable t({route("10.0.0.0/8", "eight"), route("10.128.0.0/9", "nine"), route("2001:db8::/32", "32"),
                        route("2001:db8::/127", "127")},
                       "fallback");
    EXPECT_EQ(t.pool_for(addr("10.127.255.255", 1)), "eight");
    EXPECT_EQ(t.pool_for(addr("10.128.0.0", 1)), "nine");
    EXPECT_EQ(t.pool_for(addr("2001:db8::1", 1)), "127");
    EXPECT_EQ(t.pool_for(addr("2001:db8::2", 1)), "32");
}

TEST(RouteTable, EqualPrefixThenNarrowerPortRangeWins) {
    std::vector<Route> routes{route("10.0.0.0/8", PortRange{1, 65535}, "wide"),
                              route("10.0.0.0/8", PortRange{400, 500}, "mid"),
                              route("10.0.0.0/8", PortRange{443, 443}, "tls")};
    std::sort(routes.begin(), routes.end(), [](const Route& a, const Route& b) { return a.pool < b.pool; });
    do {
        const RouteTable t(routes, "fallback");
        EXPECT_EQ(t.pool_for(addr("10.0.0.1", 443)), "tls");
        EXPECT_EQ(t.pool_for(addr("10.0.0.1", 442)), "mid");
        EXPECT_EQ(t.pool_for(addr("10.0.0.1", 444)), "mid");
        EXPECT_EQ(t.pool_for(addr("10.0.0.1", 400)), "mid");
        EXPECT_EQ(t.pool_for(addr("10.0.0.1", 500)), "mid");
        EXPECT_EQ(t.pool_for(addr("10.0.0.1", 399)), "wide");
        EXPECT_EQ(t.pool_for(addr("10.0.0.1", 501)), "wide");
        EXPECT_EQ(t.pool_for(addr("10.0.0.1", 80)), "wide");
    } while (std::next_permutation(routes.begin(), routes.end(),
                                   [](const Route& a, const Route& b) { return a.pool < b.pool; }));
}

TEST(RouteTable, LongerPrefixBeatsNarrowerPorts) {
    for (bool reversed : {false, true}) {
        std::vector<Route> routes{route("10.0.0.0/8", PortRange{443, 443}, "short-narrow"),
                                  route("10.1.0.0/16", PortRange{1, 65535}, "long-wide")};
        if (reversed) std::reverse(routes.begin(), routes.end());
        const RouteTable t(routes, "fallback");
        EXPECT_EQ(t.pool_for(addr("10.1.0.1", 443)), "long-wide");
        EXPECT_EQ(t.pool_for(addr("10.2.0.1", 443)), "short-narrow");
        EXPECT_EQ(t.pool_for(addr("10.2.0.1", 80)), "fallback");
    }
}

TEST(RouteTable, PortRangeEdgesAreInclusive) {
    const RouteTable t({route("192.0.2.0/24", PortRange{1000, 2000}, "mid"), route("192.0.2.0/24", PortRange{1, 1}, "one"),
                        route("192.0.2.0/24", PortRange{65535, 65535}, "top")},
                       "fallback");
    EXPECT_EQ(t.pool_for(addr("192.0.2.1", 999)), "fallback");
    EXPECT_EQ(t.pool_for(addr("192.0.2.1", 1000)), "mid");
    EXPECT_EQ(t.pool_for(addr("192.0.2.1", 2000)), "mid");
    EXPECT_EQ(t.pool_for(addr("192.0.2.1", 2001)), "fallback");
    EXPECT_EQ(t.pool_for(addr("192.0.2.1", 1)), "one");
    EXPECT_EQ(t.pool_for(addr("192.0.2.1", 2)), "fallback");
    EXPECT_EQ(t.pool_for(addr("192.0.2.1", 65535)), "top");
    EXPECT_EQ(t.pool_for(addr("192.0.2.1", 65534)), "fallback");
    EXPECT_EQ(t.pool_for(addr("192.0.3.1", 1000)), "fallback");
}

TEST(RouteTable, DefaultPortRangeCoversEveryPort) {
    const RouteTable t({route("192.0.2.0/24", "all")}, "fallback");
    EXPECT_EQ(t.pool_for(addr("192.0.2.1", 1)), "all");
    EXPECT_EQ(t.pool_for(addr("192.0.2.1", 65535)), "all");
}

// ---- route_conflicts ----

using Pairs = std::vector<std::pair<std::size_t, std::size_t>>;

TEST(RouteConflicts, NoneForNoRoutes) {
    EXPECT_EQ(route_conflicts({}), Pairs{});
    EXPECT_EQ(route_conflicts({route("10.0.0.0/8", "a")}), Pairs{});
}

TEST(RouteConflicts, SamePrefixSamePorts) {
    EXPECT_EQ(route_conflicts({route("10.0.0.0/8", "a"), route("10.0.0.0/8", "b")}), (Pairs{{0, 1}}));
    EXPECT_EQ(route_conflicts({route("10.0.0.0/8", PortRange{443, 443}, "a"), route("10.0.0.0/8", PortRange{443, 443}, "a")}),
              (Pairs{{0, 1}}));
    EXPECT_EQ(route_conflicts({route("2001:db8::/32", "a"), route("2001:db8::/32", "b")}), (Pairs{{0, 1}}));
}

TEST(RouteConflicts, OverlappingEqualWidths) {
    EXPECT_EQ(route_conflicts({route("10.0.0.0/8", PortRange{100, 199}, "a"), route("10.0.0.0/8", PortRange{150, 249}, "b")}),
              (Pairs{{0, 1}}));
    // One port in common is enough.
    EXPECT_EQ(route_conflicts({route("10.0.0.0/8", PortRange{100, 199}, "a"), route("10.0.0.0/8", PortRange{199, 298}, "b")}),
              (Pairs{{0, 1}}));
}

TEST(RouteConflicts, NotForDifferentWidthsDisjointPortsOrOtherPrefixes) {
    // Different widths: the narrower one wins.
    EXPECT_EQ(route_conflicts({route("10.0.0.0/8", "a"), route("10.0.0.0/8", PortRange{443, 443}, "b")}), Pairs{});
    EXPECT_EQ(route_conflicts({route("10.0.0.0/8", PortRange{100, 199}, "a"), route("10.0.0.0/8", PortRange{150, 250}, "b")}),
              Pairs{});
    // Disjoint ranges of the same width.
    EXPECT_EQ(route_conflicts({route("10.0.0.0/8", PortRange{100, 199}, "a"), route("10.0.0.0/8", PortRange{200, 299}, "b")}),
              Pairs{});
    // Different prefixes: the longer one wins, or they do not overlap.
    EXPECT_EQ(route_conflicts({route("10.0.0.0/8", "a"), route("10.0.0.0/9", "b")}), Pairs{});
    EXPECT_EQ(route_conflicts({route("10.0.0.0/8", "a"), route("11.0.0.0/8", "b")}), Pairs{});
    EXPECT_EQ(route_conflicts({route("0.0.0.0/0", "a"), route("::/0", "b")}), Pairs{});
}

TEST(RouteConflicts, EveryConflictingPairIsListedOnceInOrder) {
    EXPECT_EQ(route_conflicts({route("10.0.0.0/8", "a"), route("192.0.2.0/24", "x"), route("10.0.0.0/8", "b"),
                               route("10.0.0.0/8", "c")}),
              (Pairs{{0, 2}, {0, 3}, {2, 3}}));
}

}  // namespace
}  // namespace egress
