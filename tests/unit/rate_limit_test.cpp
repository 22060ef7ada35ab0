// The log limiter: bursts, windows, held-back counts, bounded keys.
#include "logging/rate_limit.hpp"

#include <gtest/gtest.h>

namespace egress {
namespace {

using namespace std::chrono_literals;
const auto t0 = std::chrono::steady_clock::time_point{} + 1h;

TEST(LogLimiter, LetsABurstThroughThenHoldsBack) {
    LogLimiter l(1000ms, 3);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(l.admit("k", t0), 0u);
    for (int i = 0; i < 5; ++i) EXPECT_FALSE(l.admit("k", t0 + 10ms));
}

TEST(LogLimiter, TheNextWindowReportsWhatWasHeldBack) {
    LogLimiter l(1000ms, 1);
    EXPECT_EQ(l.admit("k", t0), 0u);
    EXPECT_FALSE(l.admit("k", t0 + 1ms));
    EXPECT_FALSE(l.admit("k", t0 + 999ms));
    EXPECT_EQ(l.admit("k", t0 + 1000ms), 2u);
    EXPECT_FALSE(l.admit("k", t0 + 1001ms));
    EXPECT_EQ(l.admit("k", t0 + 5000ms), 1u);
}

TEST(LogLimiter, KeysAreIndependent) {
    LogLimiter l(1000ms, 1);
    EXPECT_EQ(l.admit("a", t0), 0u);
    EXPECT_EQ(l.admit("b", t0), 0u);
    EXPECT_FALSE(l.admit("a", t0));
    EXPECT_FALSE(l.admit("b", t0));
}

TEST(LogLimiter, TheKeyTableStaysBounded) {
    LogLimiter l(1000ms, 1, 4);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(l.admit("key" + std::to_string(i), t0), 0u) << i;
    // Still works for an old key (its window may have been forgotten: then it logs).
    EXPECT_TRUE(l.admit("key99", t0 + 2s));
}

}  // namespace
}  // namespace egress
