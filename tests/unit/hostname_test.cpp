// Host names: the normalized form, every rejection, and HOST:PORT destinations.
#include "hostname.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include "expect.hpp"

namespace egress {
namespace {

using test::IsError;
using test::IsOk;

// `count` labels of `size` letters joined by dots.
std::string labels(std::size_t count, std::size_t size) {
    std::string s;
    for (std::size_t i = 0; i < count; ++i) {
        if (i) s += '.';
        s += std::string(size, static_cast<char>('a' + i % 26));
    }
    return s;
}

// ---- normalize_host_name: the normalized form ----

TEST(NormalizeHostName, UppercaseBecomesLowercase) {
    auto r = normalize_host_name("WWW.Example.COM");
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(*r, "www.example.com");
}

TEST(NormalizeHostName, TheFinalDotOfAnAbsoluteNameIsDropped) {
    auto r = normalize_host_name("Example.COM.");
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(*r, "example.com");
}

TEST(NormalizeHostName, UnderscoresAreKept) {
    auto r = normalize_host_name("_Service._tcp.Example.com");
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(*r, "_service._tcp.example.com");
}

TEST(NormalizeHostName, ANormalizedNameIsItsOwnNormalForm) {
    for (const char* name : {"example.com", "a.b-c.d", "localhost", "xn--brger-kva.de", "1a.example", "_a"}) {
        auto r = normalize_host_name(name);
        ASSERT_TRUE(IsOk(r)) << name;
        EXPECT_EQ(*r, name);
    }
}

// ---- normalize_host_name: the boundary cases that pass ----

TEST(NormalizeHostName, A253CharacterNamePasses) {
    const auto name = labels(3, 63) + "." + std::string(61, 'z');  // 3 * 64 + 61
    ASSERT_EQ(name.size(), 253u);
    auto r = normalize_host_name(name);
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(*r, name);
    // With its final dot it is 254 characters, and still 253 once normalized.
    auto absolute = normalize_host_name(name + ".");
    ASSERT_TRUE(IsOk(absolute));
    EXPECT_EQ(*absolute, name);
}

TEST(NormalizeHostName, A63CharacterLabelPasses) {
    const auto name = std::string(63, 'a') + ".example";
    auto r = normalize_host_name(name);
    ASSERT_TRUE(IsOk(r));
    EXPECT_EQ(*r, name);
}

TEST(NormalizeHostName, OtherNamesThatPass) {
    for (const char* name : {"xn--brger-kva.de", "a.b-c.d", "localhost", "1a.example", "a", "a1", "example.1a",
                             "123.example", "a--b.example", "A-1.Example"})
        EXPECT_TRUE(IsOk(normalize_host_name(name))) << name;
}

// ---- normalize_host_name: every rejection, with its reason ----

TEST(NormalizeHostName, AnEmptyNameIsRejected) {
    EXPECT_TRUE(IsError(normalize_host_name(""), EINVAL, {"host name ''", "empty"}));
    EXPECT_TRUE(IsError(normalize_host_name("."), EINVAL, {"host name '.'", "empty"}));
}

TEST(NormalizeHostName, A254CharacterNameIsRejected) {
    const auto name = labels(3, 63) + "." + std::string(62, 'z');
    ASSERT_EQ(name.size(), 254u);
    EXPECT_TRUE(IsError(normalize_host_name(name), EINVAL, {"254 characters", "more than 253"}));
    // 254 characters plus a final dot: counted without the dot.
    EXPECT_TRUE(IsError(normalize_host_name(name + "."), EINVAL, {"254 characters", "more than 253"}));
}

TEST(NormalizeHostName, ALongNameIsCutInTheMessage) {
    const std::string name(300, 'a');
    const auto r = normalize_host_name(name);
    ASSERT_TRUE(IsError(r, EINVAL, {"300 characters", "...'"}));
    EXPECT_LT(r.error().message.size(), 200u);
}

TEST(NormalizeHostName, A64CharacterLabelIsRejected) {
    for (const auto& name : {std::string(64, 'a') + ".example", "example." + std::string(64, 'a'),
                             "a." + std::string(64, 'b') + ".c"})
        EXPECT_TRUE(IsError(normalize_host_name(name), EINVAL, {"a label has 64 characters", "more than 63"}))
            << name;
}

TEST(NormalizeHostName, AnEmptyLabelIsRejected) {
    for (const char* name : {"a..b", ".a", "a..", "..", "a.b..c"})
        EXPECT_TRUE(IsError(normalize_host_name(name), EINVAL, {"empty label"})) << name;
}

TEST(NormalizeHostName, ALabelThatBeginsOrEndsWithAHyphenIsRejected) {
    EXPECT_TRUE(IsError(normalize_host_name("-a.b"), EINVAL, {"label '-a'", "begins or ends with '-'"}));
    EXPECT_TRUE(IsError(normalize_host_name("a-.b"), EINVAL, {"label 'a-'", "begins or ends with '-'"}));
    EXPECT_TRUE(IsError(normalize_host_name("a.b-"), EINVAL, {"label 'b-'"}));
    EXPECT_TRUE(IsError(normalize_host_name("-"), EINVAL, {"label '-'"}));
}

TEST(NormalizeHostName, ACharacterOutsideLettersDigitsHyphenUnderscoreIsRejected) {
    EXPECT_TRUE(IsError(normalize_host_name("ex ample.com"), EINVAL,
                        {"host name 'ex ample.com'", "character ' '", "not a letter, digit, '-' or '_'"}));
    for (const char* name : {"a*b.com", "a/b", "a:b", "a@b.com", "a,b", "a+b.com"})
        EXPECT_TRUE(IsError(normalize_host_name(name), EINVAL, {"is not a letter, digit, '-' or '_'"})) << name;
    EXPECT_TRUE(IsError(normalize_host_name(std::string("a\0b", 3)), EINVAL, {"character '\\x00'"}));
    EXPECT_TRUE(IsError(normalize_host_name("a\nb"), EINVAL, {"'a\\x0ab'", "character '\\x0a'"}));
}

TEST(NormalizeHostName, NonASCIIIsRejectedWithThePunycodeHint) {
    EXPECT_TRUE(IsError(normalize_host_name("b\xc3\xbcrger.de"), EINVAL,
                        {"'b\\xc3\\xbcrger.de'", "not ASCII", "punycode", "xn--"}));
    EXPECT_TRUE(IsError(normalize_host_name("\xff"), EINVAL, {"not ASCII"}));
}

TEST(NormalizeHostName, AnIPv4AddressIsNotAName) {
    for (const char* name : {"1.2.3.4", "127.1", "1", "example.123", "1.2.3.4."})
        EXPECT_TRUE(IsError(normalize_host_name(name), EINVAL, {"last label is all digits", "address"})) << name;
}

// ---- parse_destination ----

TEST(ParseDestination, AnIPv4Literal) {
    auto r = parse_destination("1.2.3.4:80");
    ASSERT_TRUE(IsOk(r));
    ASSERT_TRUE(r->address);
    EXPECT_EQ(*r->address, *parse_address("1.2.3.4", 80));
    EXPECT_EQ(r->address->port, 80);
    EXPECT_TRUE(r->host.empty());
    EXPECT_EQ(r->port, 80);
}

TEST(ParseDestination, AnIPv6LiteralInBrackets) {
    auto r = parse_destination("[::1]:443");
    ASSERT_TRUE(IsOk(r));
    ASSERT_TRUE(r->address);
    EXPECT_TRUE(r->address->v6);
    EXPECT_EQ(*r->address, *parse_address("::1", 443));
    EXPECT_TRUE(r->host.empty());
    EXPECT_EQ(r->port, 443);
}

TEST(ParseDestination, ANameIsNormalized) {
    auto r = parse_destination("Example.COM.:8080");
    ASSERT_TRUE(IsOk(r));
    EXPECT_FALSE(r->address);
    EXPECT_EQ(r->host, "example.com");
    EXPECT_EQ(r->port, 8080);
}

TEST(ParseDestination, PortsOutside1To65535AreRejected) {
    EXPECT_TRUE(IsError(parse_destination("host:0"), EINVAL, {"port must be 1-65535", "'0'"}));
    EXPECT_TRUE(IsError(parse_destination("host:65536"), EINVAL, {"port must be 1-65535", "'65536'"}));
    for (const char* text : {"host:", "host:-1", "host:80x", "host: 80", "host:+80", "host:99999999999", "[::1]:"})
        EXPECT_TRUE(IsError(parse_destination(text), EINVAL, {"port must be 1-65535"})) << text;
    auto top = parse_destination("host:65535");
    ASSERT_TRUE(IsOk(top));
    EXPECT_EQ(top->port, 65535);
    auto bottom = parse_destination("host:1");
    ASSERT_TRUE(IsOk(bottom));
    EXPECT_EQ(bottom->port, 1);
}

TEST(ParseDestination, AMissingPortIsRejected) {
    EXPECT_TRUE(IsError(parse_destination("host"), EINVAL, {"expected HOST:PORT", "'host'"}));
    EXPECT_TRUE(IsError(parse_destination(""), EINVAL, {"expected HOST:PORT"}));
    for (const char* text : {"[::1]", "[::1]443", "[::1", "[::1]:"})
        EXPECT_FALSE(parse_destination(text).ok()) << text;
    EXPECT_TRUE(IsError(parse_destination("[::1]"), EINVAL, {"expected [IPV6]:PORT"}));
    EXPECT_TRUE(IsError(parse_destination("[::1]443"), EINVAL, {"expected [IPV6]:PORT"}));
}

TEST(ParseDestination, BracketsHoldOnlyAnIPv6Address) {
    EXPECT_TRUE(IsError(parse_destination("[1.2.3.4]:80"), EINVAL, {"brackets hold an IPv6 address", "'1.2.3.4'"}));
    EXPECT_TRUE(IsError(parse_destination("[example.com]:80"), EINVAL, {"'example.com' is not an IPv6 address"}));
}

TEST(ParseDestination, AnIPv6AddressWithoutBracketsGetsTheHint) {
    EXPECT_TRUE(IsError(parse_destination("::1:80"), EINVAL, {"needs brackets", "[::1]:80"}));
    EXPECT_TRUE(IsError(parse_destination("2001:db8::1:443"), EINVAL, {"[2001:db8::1]:443"}));
}

TEST(ParseDestination, ABadNameSaysWhatIsWrongWithIt) {
    EXPECT_TRUE(IsError(parse_destination(":80"), EINVAL, {"host name", "empty"}));
    EXPECT_TRUE(IsError(parse_destination("a..b:80"), EINVAL, {"empty label"}));
    EXPECT_TRUE(IsError(parse_destination("127.1:80"), EINVAL, {"all digits"}));
    EXPECT_TRUE(IsError(parse_destination("b\xc3\xbcrger.de:443"), EINVAL, {"punycode"}));
}

TEST(DestinationString, RoundTrips) {
    for (const char* text : {"192.0.2.1:80", "[2001:db8::1]:443", "[::1]:1", "example.com:8080", "localhost:65535",
                             "_srv.example:53"}) {
        auto d = parse_destination(text);
        ASSERT_TRUE(IsOk(d)) << text;
        EXPECT_EQ(destination_string(*d), text);
        auto again = parse_destination(destination_string(*d));
        ASSERT_TRUE(IsOk(again)) << text;
        EXPECT_EQ(*again, *d) << text;
    }
    // A name is written in its normalized form.
    auto d = parse_destination("Example.COM.:8080");
    ASSERT_TRUE(IsOk(d));
    EXPECT_EQ(destination_string(*d), "example.com:8080");
}

}  // namespace
}  // namespace egress
