// The resolver's answer cache: TTLs, the maximum TTL, the entry bound.
#include <gtest/gtest.h>

#include "resolve/cache.hpp"

namespace egress {
namespace {

using namespace std::chrono_literals;
using Time = DnsCache::Time;

const Time t0{};
Endpoint v4(std::uint8_t last) { return Endpoint{false, {192, 0, 2, last}, 0}; }

TEST(DnsCache, AnAnswerIsKeptForItsTtlAndThenAskedAgain) {
    DnsCache c(16, 300s);
    c.store("a.example", false, {{v4(1), v4(2)}}, 30s, t0);
    auto hit = c.find("a.example", false, t0 + 29s);
    ASSERT_TRUE(hit);
    EXPECT_EQ(hit->addresses, (std::vector<Endpoint>{v4(1), v4(2)}));
    EXPECT_FALSE(c.find("a.example", false, t0 + 30s));
    EXPECT_EQ(c.size(), 0u);  // the expired entry went
}

TEST(DnsCache, FamiliesAndNamesAreKeptApart) {
    DnsCache c(16, 300s);
    c.store("a.example", false, {{v4(1)}}, 30s, t0);
    EXPECT_FALSE(c.find("a.example", true, t0));
    EXPECT_FALSE(c.find("b.example", false, t0));
}

TEST(DnsCache, NegativeAnswersAreKeptForTheirTtl) {
    DnsCache c(16, 300s);
    c.store("none.example", true, {{}, false}, 5s, t0);
    c.store("gone.example", false, {{}, true}, 5s, t0);
    EXPECT_EQ(c.find("none.example", true, t0 + 4s), (DnsCache::Answer{{}, false}));
    EXPECT_EQ(c.find("gone.example", false, t0 + 4s), (DnsCache::Answer{{}, true}));
    EXPECT_FALSE(c.find("none.example", true, t0 + 5s));
}

TEST(DnsCache, NoTtlOrNoRoomKeepsNothing) {
    DnsCache c(16, 300s);
    c.store("zero.example", false, {{v4(1)}}, 0s, t0);
    c.store("negative.example", false, {{}, true}, 0s, t0);
    EXPECT_EQ(c.size(), 0u);
    DnsCache off(0, 300s);
    off.store("a.example", false, {{v4(1)}}, 30s, t0);
    EXPECT_FALSE(off.find("a.example", false, t0));
}

TEST(DnsCache, ALongTtlIsCutToTheMaximum) {
    DnsCache c(16, 60s);
    c.store("a.example", false, {{v4(1)}}, 86400s, t0);
    EXPECT_TRUE(c.find("a.example", false, t0 + 59s));
    EXPECT_FALSE(c.find("a.example", false, t0 + 60s));
}

TEST(DnsCache, AtTheBoundTheLeastRecentlyUsedGoes) {
    DnsCache c(2, 300s);
    c.store("a.example", false, {{v4(1)}}, 30s, t0);
    c.store("b.example", false, {{v4(2)}}, 30s, t0);
    EXPECT_TRUE(c.find("a.example", false, t0));  // a is now the most recent
    c.store("c.example", false, {{v4(3)}}, 30s, t0);
    EXPECT_EQ(c.size(), 2u);
    EXPECT_TRUE(c.find("a.example", false, t0));
    EXPECT_FALSE(c.find("b.example", false, t0));
    EXPECT_TRUE(c.find("c.example", false, t0));
}

TEST(DnsCache, ANewAnswerReplacesTheOld) {
    DnsCache c(2, 300s);
    c.store("a.example", false, {{v4(1)}}, 30s, t0);
    c.store("a.example", false, {{v4(9)}}, 10s, t0 + 5s);
    EXPECT_EQ(c.size(), 1u);
    EXPECT_EQ(c.find("a.example", false, t0 + 14s)->addresses, std::vector<Endpoint>{v4(9)});
    EXPECT_FALSE(c.find("a.example", false, t0 + 15s));
}

}  // namespace
}  // namespace egress
