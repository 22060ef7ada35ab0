// The token bucket: burst, refill, fractional rates, limits changed between
// takes, clocks that jump, and gaps large enough to overflow naive arithmetic.
#include "quota/token_bucket.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace egress {
namespace {

using namespace std::chrono_literals;
using time_point = TokenBucket::time_point;
const auto t0 = time_point{} + 1h;

// Takes until refused; returns how many were taken.
int drain(TokenBucket& b, const RateLimit& r, time_point now) {
    int n = 0;
    while (b.take(r, now) && n < 1000000) ++n;
    return n;
}

TEST(TokenBucket, IntervalIsOneSecondOverTheRate) {
    EXPECT_EQ(RateLimit({10, 1}).interval(), 100ms);
    EXPECT_EQ(RateLimit({0.5, 1}).interval(), 2s);
    EXPECT_EQ(RateLimit({3, 1}).interval(), 333333333ns);
    EXPECT_EQ(RateLimit({1e12, 1}).interval(), 1ns);  // never zero
    EXPECT_EQ(RateLimit({0, 1}).interval(), std::chrono::nanoseconds::max());  // never refills
    EXPECT_EQ(RateLimit({-1, 1}).interval(), std::chrono::nanoseconds::max());
}

TEST(TokenBucket, StartsFullAndLetsTheBurstThrough) {
    TokenBucket b;
    const RateLimit r{10, 5};
    EXPECT_TRUE(b.full(t0));
    EXPECT_EQ(b.available(r, t0), 5u);
    EXPECT_EQ(drain(b, r, t0), 5);
    EXPECT_EQ(b.available(r, t0), 0u);
    EXPECT_FALSE(b.full(t0));
    EXPECT_EQ(b.wait(r, t0), 100ms);
}

TEST(TokenBucket, RefillsOneTokenPerInterval) {
    TokenBucket b;
    const RateLimit r{10, 5};
    ASSERT_EQ(drain(b, r, t0), 5);
    EXPECT_FALSE(b.take(r, t0 + 99ms));
    EXPECT_EQ(b.wait(r, t0 + 99ms), 1ms);
    EXPECT_TRUE(b.take(r, t0 + 100ms));
    EXPECT_FALSE(b.take(r, t0 + 100ms));
    EXPECT_EQ(b.available(r, t0 + 350ms), 2u);  // 250 ms: two whole tokens
    EXPECT_EQ(b.available(r, t0 + 600ms), 5u);
    EXPECT_TRUE(b.full(t0 + 600ms));
    EXPECT_EQ(b.available(r, t0 + 1h), 5u);  // never more than the burst
    EXPECT_EQ(drain(b, r, t0 + 1h), 5);
}

TEST(TokenBucket, SteadyRateIsSustainedExactly) {
    TokenBucket b;
    const RateLimit r{4, 1};
    int taken = 0;
    for (auto t = t0; t < t0 + 10s; t += 50ms) taken += b.take(r, t);  // offered 20/s
    EXPECT_EQ(taken, 40);
}

TEST(TokenBucket, FractionalRates) {
    TokenBucket b;
    const RateLimit r{0.5, 2};  // a token every 2 s
    EXPECT_EQ(drain(b, r, t0), 2);
    EXPECT_FALSE(b.take(r, t0 + 1999ms));
    EXPECT_EQ(b.wait(r, t0 + 1500ms), 500ms);
    EXPECT_TRUE(b.take(r, t0 + 2s));
    EXPECT_FALSE(b.take(r, t0 + 3s));

    TokenBucket c;
    const RateLimit third{3, 3};  // 333.33 ms intervals, rounded to the ns
    EXPECT_EQ(drain(c, third, t0), 3);
    EXPECT_EQ(c.available(third, t0 + 1s - 1ns), 3u);
    int taken = 0;
    for (auto t = t0 + 1s; t < t0 + 61s; t += 10ms) taken += c.take(third, t);
    EXPECT_NEAR(taken, 3 + 180, 1);  // the full bucket, then 3 a second
}

TEST(TokenBucket, ABackwardClockJumpEmptiesAtWorst) {
    TokenBucket b;
    const RateLimit r{10, 5};
    ASSERT_EQ(drain(b, r, t0), 5);
    // An hour earlier: the bucket counts as empty, not an hour in debt...
    EXPECT_EQ(b.available(r, t0 - 1h), 0u);
    EXPECT_EQ(b.wait(r, t0 - 1h), 100ms);
    EXPECT_FALSE(b.take(r, t0 - 1h));
    // ...and refills at its pace from the first take after the jump.
    EXPECT_TRUE(b.take(r, t0 - 1h + 100ms));
    EXPECT_EQ(b.available(r, t0 - 1h + 500ms), 4u);
    EXPECT_EQ(b.available(r, t0 - 1h + 600ms), 5u);
}

TEST(TokenBucket, AForwardJumpRefillsToTheBurstOnly) {
    TokenBucket b;
    const RateLimit r{10, 5};
    ASSERT_EQ(drain(b, r, t0), 5);
    EXPECT_EQ(drain(b, r, t0 + 24h * 365), 5);
}

TEST(TokenBucket, LargeGapsAndLimitsNeverOverflow) {
    TokenBucket b;
    const RateLimit slow{0.01, 1000000};  // capacity 10^6 x 100 s, three years
    const auto late = time_point::max() - 1000s;
    EXPECT_EQ(b.available(slow, late), 1000000u);
    EXPECT_TRUE(b.take(slow, late));
    EXPECT_EQ(b.available(slow, late), 999999u);
    EXPECT_EQ(b.wait(slow, late), 0ns);
    // At the end of time the refill point saturates instead of wrapping round.
    TokenBucket end;
    EXPECT_TRUE(end.take({1, 2}, time_point::max()));
    EXPECT_LE(end.available({1, 2}, time_point::max()), 2u);
    EXPECT_EQ(end.available({1, 2}, t0), 0u);  // far ahead of t0: empty, not negative

    TokenBucket c;
    const RateLimit absurd{1e-30, 4000000000u};  // the interval saturates; one token fits
    EXPECT_EQ(drain(c, absurd, t0), 1);
    EXPECT_EQ(c.available(absurd, t0 + 24h * 365 * 100), 0u);
    EXPECT_GT(c.wait(absurd, t0), 0ns);

    TokenBucket d;
    ASSERT_TRUE(d.take({1, 1}, time_point{}));
    EXPECT_FALSE(d.take({1, 1}, time_point{}));
    EXPECT_TRUE(d.take({1, 1}, time_point{} + 24h * 365 * 200));  // 200 years later
}

TEST(TokenBucket, ALimitChangedByReloadAppliesFromTheNextTake) {
    TokenBucket b;
    const RateLimit slow{0.01, 1};  // a token every 100 s
    ASSERT_TRUE(b.take(slow, t0));
    ASSERT_FALSE(b.take(slow, t0 + 1s));
    // Raised: at worst empty under the new limit, not 99 s behind.
    const RateLimit fast{100, 10};
    EXPECT_EQ(b.available(fast, t0 + 1s), 0u);
    EXPECT_EQ(b.wait(fast, t0 + 1s), 10ms);
    EXPECT_FALSE(b.take(fast, t0 + 1s));
    EXPECT_TRUE(b.take(fast, t0 + 1s + 10ms));
    EXPECT_EQ(b.available(fast, t0 + 1s + 110ms), 10u);
    EXPECT_EQ(drain(b, fast, t0 + 1s + 110ms), 10);
    // Lowered: the debt carries over, measured in the new intervals.
    TokenBucket c;
    ASSERT_EQ(drain(c, fast, t0), 10);  // 100 ms to refill
    EXPECT_EQ(c.available(RateLimit{1, 2}, t0 + 50ms), 1u);
    EXPECT_EQ(c.available(RateLimit{1, 2}, t0 + 100ms), 2u);
}

TEST(TokenBucket, ARefusedTakeCostsNothing) {
    TokenBucket b;
    const RateLimit r{10, 1};
    ASSERT_TRUE(b.take(r, t0));
    for (int i = 0; i < 1000; ++i) ASSERT_FALSE(b.take(r, t0 + 50ms));
    EXPECT_TRUE(b.take(r, t0 + 100ms));
}

// Several event loops take from one uid's bucket at once: together they get
// exactly the burst, never a token more.
TEST(TokenBucket, ConcurrentTakesGrantExactlyTheBurst) {
    TokenBucket b;
    const RateLimit r{1, 1000};
    std::atomic<int> granted{0};
    std::vector<std::thread> loops;
    for (int t = 0; t < 4; ++t)
        loops.emplace_back([&] {
            for (int i = 0; i < 1000; ++i)
                if (b.take(r, t0)) granted.fetch_add(1);
        });
    for (auto& t : loops) t.join();
    EXPECT_EQ(granted.load(), 1000);
    EXPECT_EQ(b.available(r, t0), 0u);
}

}  // namespace
}  // namespace egress
