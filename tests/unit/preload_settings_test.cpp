// The preload shim's environment: what bypasses egressd, how bad values are
// reported and what they fall back to.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <cstring>
#include <string>
#include <vector>

#include "settings.hpp"

namespace {

using namespace egress::preload;

Addr ip(const char* text, std::uint16_t port = 80) {
    Addr a;
    if (::inet_pton(AF_INET, text, a.bytes) != 1) {
        a.v6 = true;
        EXPECT_EQ(::inet_pton(AF_INET6, text, a.bytes), 1) << text;
    }
    a.port = port;
    return a;
}

struct Parsed {
    Settings s;
    std::vector<std::string> warnings;
};

Parsed parse(const Environment& env) {
    Parsed p;
    parse_settings(env, p.s, [](void* ctx, const char* line) { static_cast<Parsed*>(ctx)->warnings.push_back(line); },
                   &p);
    return p;
}

bool cidr_has(const char* cidr, const char* addr) {
    Cidr c;
    EXPECT_TRUE(parse_cidr(cidr, std::strlen(cidr), c)) << cidr;
    return cidr_contains(c, ip(addr));
}

TEST(PreloadCidr, ParsesAddressesAndBlocks) {
    Cidr c;
    for (const char* good : {"10.0.0.0/8", "192.0.2.1", "0.0.0.0/0", "::/0", "2001:db8::/32", "::1", "fd00::1/128"})
        EXPECT_TRUE(parse_cidr(good, std::strlen(good), c)) << good;
    for (const char* bad : {"", "/8", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/8x", "10.0.0.0/-1",
                            "example.com", "10.0.0.0/0008", "10.0.0/8", "fe80::1%eth0"})
        EXPECT_FALSE(parse_cidr(bad, std::strlen(bad), c)) << bad;
    // Only the given length is read: "10.0.0.0/8" inside a longer list.
    EXPECT_TRUE(parse_cidr("10.0.0.0/8,x", 10, c));
    EXPECT_EQ(c.prefix, 8);
}

TEST(PreloadCidr, MatchesByPrefixBits) {
    EXPECT_TRUE(cidr_has("10.0.0.0/8", "10.255.1.2"));
    EXPECT_FALSE(cidr_has("10.0.0.0/8", "11.0.0.1"));
    EXPECT_TRUE(cidr_has("192.168.4.0/22", "192.168.7.255"));
    EXPECT_FALSE(cidr_has("192.168.4.0/22", "192.168.8.0"));
    EXPECT_TRUE(cidr_has("0.0.0.0/0", "203.0.113.9"));
    EXPECT_FALSE(cidr_has("0.0.0.0/0", "2001:db8::1")) << "families never mix";
    EXPECT_TRUE(cidr_has("2001:db8::/33", "2001:db8:7fff::1"));
    EXPECT_FALSE(cidr_has("2001:db8::/33", "2001:db8:8000::1"));
    EXPECT_TRUE(cidr_has("192.0.2.1", "192.0.2.1"));
    EXPECT_FALSE(cidr_has("192.0.2.1", "192.0.2.2"));
}

TEST(PreloadCidr, AnIpv4MappedAddressMatchesAsItsIpv4Address) {
    EXPECT_TRUE(cidr_has("127.0.0.0/8", "::ffff:127.0.0.1"));
    EXPECT_TRUE(cidr_has("10.0.0.0/8", "::ffff:10.1.1.1"));
    EXPECT_FALSE(cidr_has("::/0", "::ffff:10.1.1.1"));
}

TEST(PreloadSettings, DefaultsWithAnEmptyEnvironment) {
    const auto p = parse({});
    EXPECT_TRUE(p.warnings.empty());
    EXPECT_STREQ(p.s.socket_path, "/run/egressd/egressd.sock");
    EXPECT_EQ(p.s.pool_len, 0u);
    EXPECT_EQ(p.s.fallback, Fallback::closed);
    EXPECT_FALSE(p.s.debug);
}

TEST(PreloadSettings, LoopbackAndUnspecifiedAlwaysBypass) {
    const auto p = parse({});
    for (const char* a : {"127.0.0.1", "127.200.0.1", "::1", "0.0.0.0", "::", "::ffff:127.0.0.1"})
        EXPECT_TRUE(bypassed(p.s, ip(a))) << a;
    for (const char* a : {"10.0.0.1", "192.0.2.1", "2001:db8::1", "::2", "128.0.0.1"})
        EXPECT_FALSE(bypassed(p.s, ip(a))) << a;
}

TEST(PreloadSettings, BypassEntriesAddToLoopback) {
    Environment env;
    env.bypass = "10.0.0.0/8, 2001:db8::/32\t192.0.2.7";
    const auto p = parse(env);
    EXPECT_TRUE(p.warnings.empty());
    for (const char* a : {"10.9.9.9", "2001:db8::5", "192.0.2.7", "127.0.0.1"}) EXPECT_TRUE(bypassed(p.s, ip(a))) << a;
    EXPECT_FALSE(bypassed(p.s, ip("192.0.2.8")));
}

TEST(PreloadSettings, AnUnreadableBypassEntryIsLeftOutWithAWarning) {
    Environment env;
    env.bypass = "10.0.0.0/8,bogus,,192.0.2.0/33";
    const auto p = parse(env);
    ASSERT_EQ(p.warnings.size(), 2u);
    EXPECT_NE(p.warnings[0].find("'bogus'"), std::string::npos) << p.warnings[0];
    EXPECT_NE(p.warnings[1].find("'192.0.2.0/33'"), std::string::npos) << p.warnings[1];
    EXPECT_TRUE(bypassed(p.s, ip("10.1.1.1")));
    EXPECT_FALSE(bypassed(p.s, ip("192.0.2.1"))) << "the safe side: through egressd's policy";
}

TEST(PreloadSettings, TooManyBypassEntriesKeepTheFirstAndWarn) {
    std::string list;
    for (int i = 0; i < 70; ++i) list += "10.0." + std::to_string(i) + ".0/24,";
    Environment env;
    env.bypass = list.c_str();
    const auto p = parse(env);
    ASSERT_EQ(p.warnings.size(), 1u);
    EXPECT_NE(p.warnings[0].find("10.0.60.0/24"), std::string::npos) << p.warnings[0];
    EXPECT_EQ(p.s.bypass_count, Settings::kMaxBypass);
    EXPECT_TRUE(bypassed(p.s, ip("10.0.59.1")));
    EXPECT_FALSE(bypassed(p.s, ip("10.0.60.1")));
}

TEST(PreloadSettings, SocketPoolFallbackAndDebug) {
    Environment env;
    env.socket = "/tmp/e.sock";
    env.pool = "edge";
    env.fallback = "direct";
    env.debug = "1";
    const auto p = parse(env);
    EXPECT_TRUE(p.warnings.empty());
    EXPECT_STREQ(p.s.socket_path, "/tmp/e.sock");
    EXPECT_STREQ(p.s.pool, "edge");
    EXPECT_EQ(p.s.pool_len, 4u);
    EXPECT_EQ(p.s.fallback, Fallback::direct);
    EXPECT_TRUE(p.s.debug);
    env.debug = "0";
    EXPECT_FALSE(parse(env).s.debug);
    env.debug = "";
    EXPECT_FALSE(parse(env).s.debug);
}

TEST(PreloadSettings, BadValuesWarnAndTakeTheSafeDefault) {
    Environment env;
    env.fallback = "sometimes";
    const std::string long_pool(65, 'p'), long_path(200, 's');
    env.pool = long_pool.c_str();
    env.socket = long_path.c_str();
    const auto p = parse(env);
    ASSERT_EQ(p.warnings.size(), 3u);
    EXPECT_EQ(p.s.fallback, Fallback::closed);
    EXPECT_TRUE(p.s.pool_too_long);
    EXPECT_EQ(p.s.pool_len, 0u);
    EXPECT_STREQ(p.s.socket_path, "/run/egressd/egressd.sock");
    EXPECT_NE(p.warnings[2].find("EGRESS_FALLBACK"), std::string::npos) << p.warnings[2];
}

}  // namespace
