// Endpoint text forms and the socket address conversions.
#include "endpoint.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "expect.hpp"
#include "sockaddr.hpp"

namespace egress {
namespace {

using test::IsError;
using test::IsOk;

TEST(ParseEndpoint, V4) {
    auto r = parse_endpoint("192.0.2.1:80");
    ASSERT_TRUE(IsOk(r));
    EXPECT_FALSE(r->v6);
    EXPECT_EQ(r->addr_len(), 4u);
    EXPECT_EQ(r->addr[0], 192);
    EXPECT_EQ(r->addr[1], 0);
    EXPECT_EQ(r->addr[2], 2);
    EXPECT_EQ(r->addr[3], 1);
    EXPECT_EQ(r->port, 80);
    for (std::size_t i = 4; i < r->addr.size(); ++i) EXPECT_EQ(r->addr[i], 0) << i;
}

TEST(ParseEndpoint, V6InBrackets) {
    auto r = parse_endpoint("[2001:db8::1]:443");
    ASSERT_TRUE(IsOk(r));
    EXPECT_TRUE(r->v6);
    EXPECT_EQ(r->addr_len(), 16u);
    const std::uint8_t want[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    EXPECT_EQ(std::memcmp(r->addr.data(), want, 16), 0);
    EXPECT_EQ(r->port, 443);
}

TEST(ParseEndpoint, PortBounds) {
    EXPECT_EQ(parse_endpoint("127.0.0.1:1")->port, 1);
    EXPECT_EQ(parse_endpoint("127.0.0.1:65535")->port, 65535);
    EXPECT_EQ(parse_endpoint("[::1]:65535")->port, 65535);
}

TEST(ParseEndpoint, MissingPort) {
    EXPECT_TRUE(IsError(parse_endpoint("192.0.2.1"), EINVAL, {"ADDRESS:PORT", "192.0.2.1"}));
    EXPECT_TRUE(IsError(parse_endpoint("192.0.2.1:"), EINVAL, {"1-65535"}));
    EXPECT_TRUE(IsError(parse_endpoint("[::1]"), EINVAL, {"[IPV6]:PORT", "[::1]"}));
    EXPECT_TRUE(IsError(parse_endpoint("[::1]:"), EINVAL, {"1-65535"}));
    EXPECT_TRUE(IsError(parse_endpoint("[::1]80"), EINVAL, {"[IPV6]:PORT"}));
    EXPECT_TRUE(IsError(parse_endpoint("[::1"), EINVAL, {"[IPV6]:PORT"}));
    EXPECT_TRUE(IsError(parse_endpoint(""), EINVAL, {"ADDRESS:PORT"}));
}

TEST(ParseEndpoint, BadPorts) {
    for (const char* port : {"0", "65536", "99999", "4294967296", "http", "80a", "-1", "+80", " 80", "8 0", "0x50"}) {
        EXPECT_TRUE(IsError(parse_endpoint(std::string("192.0.2.1:") + port), EINVAL,
                            {"1-65535", std::string("'") + port + "'"}))
            << port;
        EXPECT_TRUE(IsError(parse_endpoint(std::string("[::1]:") + port), EINVAL, {"1-65535"})) << port;
    }
}

TEST(ParseEndpoint, V6WithoutBracketsIsRejected) {
    EXPECT_TRUE(IsError(parse_endpoint("::1:80"), EINVAL, {"brackets", "[::1]:80"}));
    EXPECT_TRUE(IsError(parse_endpoint("2001:db8::1:443"), EINVAL, {"brackets"}));
}

TEST(ParseEndpoint, HostNamesAreRejectedClearly) {
    for (const char* text : {"localhost:80", "example.com:443", "[localhost]:80", "1.2.3:80", "256.1.1.1:80",
                             "[]:80", "[::g]:80"}) {
        EXPECT_TRUE(IsError(parse_endpoint(text), EINVAL, {"not an IP address", "host names are not supported"}))
            << text;
    }
    EXPECT_TRUE(IsError(parse_endpoint("localhost:80"), EINVAL, {"'localhost'"}));
}

TEST(ParseAddress, Literals) {
    auto v4 = parse_address("198.51.100.7", 53);
    ASSERT_TRUE(v4);
    EXPECT_FALSE(v4->v6);
    EXPECT_EQ(v4->port, 53);
    auto v6 = parse_address("::");
    ASSERT_TRUE(v6);
    EXPECT_TRUE(v6->v6);
    EXPECT_EQ(v6->port, 0);
    EXPECT_TRUE(parse_address("0000:0000:0000:0000:0000:ffff:255.255.255.255"));  // 45 characters
    EXPECT_FALSE(parse_address(""));
    EXPECT_FALSE(parse_address("example.com"));
    EXPECT_FALSE(parse_address(std::string(46, '1')));
}

TEST(EndpointString, Forms) {
    EXPECT_EQ(endpoint_string(*parse_endpoint("192.0.2.1:80")), "192.0.2.1:80");
    EXPECT_EQ(endpoint_string(*parse_endpoint("[2001:db8::1]:443")), "[2001:db8::1]:443");
    EXPECT_EQ(address_string(*parse_endpoint("[2001:db8::1]:443")), "2001:db8::1");
    EXPECT_EQ(address_string(*parse_endpoint("10.0.0.1:1")), "10.0.0.1");
}

TEST(EndpointString, CanonicalTextRoundTrips) {
    for (const char* text : {"0.0.0.0:1", "127.0.0.1:8080", "255.255.255.255:65535", "[::]:1", "[::1]:22",
                             "[2001:db8::1]:443", "[fe80::1:2:3:4]:5", "[::ffff:192.0.2.1]:80",
                             "[2001:db8:1:2:3:4:5:6]:9"}) {
        auto r = parse_endpoint(text);
        ASSERT_TRUE(IsOk(r)) << text;
        EXPECT_EQ(endpoint_string(*r), text);
        EXPECT_EQ(*parse_endpoint(endpoint_string(*r)), *r);
    }
}

TEST(EndpointString, NonCanonicalTextIsNormalised) {
    EXPECT_EQ(endpoint_string(*parse_endpoint("[2001:DB8:0:0:0:0:0:1]:443")), "[2001:db8::1]:443");
    EXPECT_EQ(endpoint_string(*parse_endpoint("127.0.0.1:080")), "127.0.0.1:80");
}

TEST(SockAddr, V4BothWays) {
    const auto ep = *parse_endpoint("192.0.2.1:8080");
    const auto sa = to_sockaddr(ep);
    EXPECT_EQ(sa.family(), AF_INET);
    EXPECT_EQ(sa.len, sizeof(sockaddr_in));
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa.get());
    EXPECT_EQ(in->sin_port, htons(8080));
    EXPECT_EQ(in->sin_addr.s_addr, inet_addr("192.0.2.1"));
    auto back = from_sockaddr(sa.get(), sa.len);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, ep);
}

TEST(SockAddr, V6BothWays) {
    const auto ep = *parse_endpoint("[2001:db8::1]:443");
    const auto sa = to_sockaddr(ep);
    EXPECT_EQ(sa.family(), AF_INET6);
    EXPECT_EQ(sa.len, sizeof(sockaddr_in6));
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa.get());
    EXPECT_EQ(in6->sin6_port, htons(443));
    in6_addr want{};
    ASSERT_EQ(inet_pton(AF_INET6, "2001:db8::1", &want), 1);
    EXPECT_EQ(std::memcmp(&in6->sin6_addr, &want, sizeof want), 0);
    EXPECT_EQ(in6->sin6_scope_id, 0u);
    auto back = from_sockaddr(sa.get(), sa.len);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, ep);
}

TEST(SockAddr, FromKernelStructs) {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(40000);
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    auto v4 = from_sockaddr(reinterpret_cast<const sockaddr*>(&in), sizeof in);
    ASSERT_TRUE(v4);
    EXPECT_EQ(endpoint_string(*v4), "127.0.0.1:40000");

    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(1);
    in6.sin6_addr = in6addr_loopback;
    auto v6 = from_sockaddr(reinterpret_cast<const sockaddr*>(&in6), sizeof in6);
    ASSERT_TRUE(v6);
    EXPECT_EQ(endpoint_string(*v6), "[::1]:1");
}

TEST(SockAddr, OtherFamiliesAndShortLengthsAreRefused) {
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    EXPECT_FALSE(from_sockaddr(reinterpret_cast<const sockaddr*>(&un), sizeof un));
    sockaddr_in in{};
    in.sin_family = AF_INET;
    EXPECT_FALSE(from_sockaddr(reinterpret_cast<const sockaddr*>(&in), sizeof in - 1));
    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    EXPECT_FALSE(from_sockaddr(reinterpret_cast<const sockaddr*>(&in6), sizeof in6 - 1));
}

}  // namespace
}  // namespace egress
