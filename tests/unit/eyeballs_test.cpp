// The Happy Eyeballs v2 (RFC 8305) schedule: when which address is tried.
#include "connector/eyeballs.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace egress {
namespace {

using namespace std::chrono_literals;
using Kind = Eyeballs::Step::Kind;
using Time = Eyeballs::Time;
using Addresses = std::vector<Endpoint>;

const Time t0 = Time{} + 1000s;

Endpoint v6(int n) { return *parse_address("2001:db8::" + std::to_string(n), 443); }
Endpoint v4(int n) { return *parse_address("192.0.2." + std::to_string(n), 443); }

std::string describe(const Eyeballs::Step& s) {
    switch (s.kind) {
    case Kind::start: return "start " + std::to_string(s.id) + " to " + endpoint_string(s.address);
    case Kind::wait:
        return s.until ? "wait until t0+" + std::to_string((*s.until - t0) / 1ms) + "ms" : "wait for an event";
    case Kind::exhausted: return "exhausted";
    }
    return "?";
}

testing::AssertionResult IsStart(const Eyeballs::Step& s, const Endpoint& address, std::size_t id) {
    if (s.kind == Kind::start && s.address == address && s.id == id) return testing::AssertionSuccess();
    return testing::AssertionFailure() << describe(s) << ", expected start " << id << " to "
                                       << endpoint_string(address);
}

testing::AssertionResult IsWait(const Eyeballs::Step& s, std::optional<Time> until) {
    if (s.kind == Kind::wait && s.until == until) return testing::AssertionSuccess();
    return testing::AssertionFailure() << describe(s) << ", expected "
                                       << describe(Eyeballs::Step{Kind::wait, {}, 0, until});
}

testing::AssertionResult IsExhausted(const Eyeballs::Step& s) {
    if (s.kind == Kind::exhausted) return testing::AssertionSuccess();
    return testing::AssertionFailure() << describe(s) << ", expected exhausted";
}

Eyeballs make(std::chrono::milliseconds attempt_delay = 250ms, std::chrono::milliseconds resolution_delay = 50ms) {
    return Eyeballs(EyeballsTimings{resolution_delay, attempt_delay}, t0);
}

// ---- when the first attempt starts (section 3) ----

TEST(Eyeballs, AnAnswerOfAOnlyWaitsTheResolutionDelayForAAAA) {
    auto e = make();
    e.answered(false, {v4(1), v4(2)}, t0);
    EXPECT_TRUE(IsWait(e.next(t0), t0 + 50ms));
    EXPECT_TRUE(IsWait(e.next(t0 + 49ms), t0 + 50ms));
    EXPECT_EQ(e.attempts(), 0u);
    EXPECT_TRUE(IsStart(e.next(t0 + 50ms), v4(1), 0));
    EXPECT_TRUE(IsWait(e.next(t0 + 50ms), t0 + 300ms));
    EXPECT_TRUE(IsStart(e.next(t0 + 300ms), v4(2), 1));
    // Every address is tried, but AAAA has not answered: not exhausted yet.
    EXPECT_TRUE(IsWait(e.next(t0 + 300ms), std::nullopt));
    e.failed(0, t0 + 400ms);
    e.failed(1, t0 + 400ms);
    EXPECT_TRUE(IsWait(e.next(t0 + 400ms), std::nullopt));
    e.answered(true, {}, t0 + 500ms);
    EXPECT_TRUE(IsExhausted(e.next(t0 + 500ms)));
}

TEST(Eyeballs, AnAnswerOfAAAAOnlyStartsAtOnce) {
    auto e = make();
    EXPECT_TRUE(IsWait(e.next(t0), std::nullopt));
    e.answered(true, {v6(1), v6(2)}, t0 + 5ms);
    EXPECT_TRUE(IsStart(e.next(t0 + 5ms), v6(1), 0));
    EXPECT_TRUE(IsWait(e.next(t0 + 5ms), t0 + 255ms));
    EXPECT_TRUE(IsStart(e.next(t0 + 255ms), v6(2), 1));
    EXPECT_TRUE(IsWait(e.next(t0 + 255ms), std::nullopt));
    e.failed(0, t0 + 300ms);
    e.failed(1, t0 + 300ms);
    EXPECT_TRUE(IsWait(e.next(t0 + 300ms), std::nullopt));  // A is still to come
    e.answered(false, {}, t0 + 310ms);
    EXPECT_TRUE(IsExhausted(e.next(t0 + 310ms)));
}

TEST(Eyeballs, AAAAWithinTheResolutionDelayStartsWithIPv6) {
    auto e = make();
    e.answered(false, {v4(1)}, t0);
    EXPECT_TRUE(IsWait(e.next(t0), t0 + 50ms));
    e.answered(true, {v6(1)}, t0 + 20ms);
    EXPECT_TRUE(IsStart(e.next(t0 + 20ms), v6(1), 0));
    EXPECT_TRUE(IsWait(e.next(t0 + 20ms), t0 + 270ms));
    // The shell's timer for the old resolution delay may still fire: nothing is due.
    EXPECT_TRUE(IsWait(e.next(t0 + 50ms), t0 + 270ms));
    EXPECT_TRUE(IsStart(e.next(t0 + 270ms), v4(1), 1));
}

TEST(Eyeballs, AAAAAfterTheResolutionDelayJoinsAndIsNext) {
    auto e = make();
    e.answered(false, {v4(1), v4(2)}, t0);
    EXPECT_TRUE(IsStart(e.next(t0 + 50ms), v4(1), 0));
    e.answered(true, {v6(1), v6(2)}, t0 + 80ms);
    EXPECT_TRUE(IsWait(e.next(t0 + 80ms), t0 + 300ms));
    EXPECT_TRUE(IsStart(e.next(t0 + 300ms), v6(1), 1));
    EXPECT_TRUE(IsStart(e.next(t0 + 550ms), v4(2), 2));
    EXPECT_TRUE(IsStart(e.next(t0 + 800ms), v6(2), 3));
    EXPECT_TRUE(IsWait(e.next(t0 + 800ms), std::nullopt));
}

TEST(Eyeballs, LateIPv6AddressesAreInterleavedFromTheNextAttemptOn) {
    auto e = make();
    e.answered(false, {v4(1), v4(2), v4(3)}, t0);
    EXPECT_TRUE(IsStart(e.next(t0 + 50ms), v4(1), 0));
    EXPECT_TRUE(IsStart(e.next(t0 + 300ms), v4(2), 1));
    e.answered(true, {v6(1)}, t0 + 400ms);
    EXPECT_TRUE(IsStart(e.next(t0 + 550ms), v6(1), 2));
    EXPECT_TRUE(IsStart(e.next(t0 + 800ms), v4(3), 3));
}

TEST(Eyeballs, AnEmptyAAAAAnswerThenAStartsAtOnceWhenAComes) {
    auto e = make();
    e.answered(true, {}, t0);
    EXPECT_TRUE(IsWait(e.next(t0), std::nullopt));
    e.answered(false, {v4(1), v4(2)}, t0 + 30ms);
    EXPECT_TRUE(IsStart(e.next(t0 + 30ms), v4(1), 0));
    EXPECT_TRUE(IsStart(e.next(t0 + 280ms), v4(2), 1));
}

TEST(Eyeballs, AnEmptyAAAAAnswerEndsTheResolutionDelay) {
    auto e = make();
    e.answered(false, {v4(1)}, t0);
    EXPECT_TRUE(IsWait(e.next(t0), t0 + 50ms));
    e.answered(true, {}, t0 + 10ms);
    EXPECT_TRUE(IsStart(e.next(t0 + 10ms), v4(1), 0));
}

TEST(Eyeballs, AnEmptyAAnswerWaitsForAAAAWithoutATimer) {
    auto e = make();
    e.answered(false, {}, t0);
    EXPECT_TRUE(IsWait(e.next(t0), std::nullopt));
    EXPECT_TRUE(IsWait(e.next(t0 + 60ms), std::nullopt));
    e.answered(true, {v6(1)}, t0 + 70ms);
    EXPECT_TRUE(IsStart(e.next(t0 + 70ms), v6(1), 0));
}

TEST(Eyeballs, NothingHappensBeforeAnAnswer) {
    auto e = make();
    EXPECT_TRUE(IsWait(e.next(t0), std::nullopt));
    EXPECT_TRUE(IsWait(e.next(t0 + 10s), std::nullopt));
    EXPECT_EQ(e.attempts(), 0u);
    EXPECT_FALSE(e.answered(true));
    EXPECT_FALSE(e.answered(false));
}

TEST(Eyeballs, AResolutionDelayOfZeroStartsAWithoutWaiting) {
    auto e = make(250ms, 0ms);
    e.answered(false, {v4(1)}, t0);
    EXPECT_TRUE(IsStart(e.next(t0), v4(1), 0));
}

TEST(Eyeballs, TheResolutionDelayCountsFromTheAAnswerNotTheStart) {
    auto e = make();
    e.answered(false, {v4(1)}, t0 + 1s);
    EXPECT_TRUE(IsWait(e.next(t0 + 1s), t0 + 1050ms));
    EXPECT_TRUE(IsStart(e.next(t0 + 1050ms), v4(1), 0));
    EXPECT_EQ(e.started_at(), t0);
}

TEST(Eyeballs, BothEmptyIsExhausted) {
    for (const bool aaaa_first : {true, false}) {
        auto e = make();
        e.answered(aaaa_first, {}, t0);
        EXPECT_TRUE(IsWait(e.next(t0), std::nullopt));
        e.answered(!aaaa_first, {}, t0 + 1ms);
        EXPECT_TRUE(IsExhausted(e.next(t0 + 1ms)));
        EXPECT_TRUE(IsExhausted(e.next(t0 + 1s)));  // final
        EXPECT_EQ(e.attempts(), 0u);
    }
}

// ---- order (sections 4 and 5) ----

TEST(Eyeballs, BothAtOnceAlternateStartingWithIPv6) {
    auto e = make();
    e.answered(false, {v4(1), v4(2)}, t0);
    e.answered(true, {v6(1), v6(2)}, t0);
    EXPECT_TRUE(IsStart(e.next(t0), v6(1), 0));
    EXPECT_TRUE(IsWait(e.next(t0), t0 + 250ms));
    EXPECT_TRUE(IsWait(e.next(t0 + 249ms), t0 + 250ms));
    EXPECT_TRUE(IsStart(e.next(t0 + 250ms), v4(1), 1));
    EXPECT_TRUE(IsWait(e.next(t0 + 250ms), t0 + 500ms));
    EXPECT_TRUE(IsStart(e.next(t0 + 500ms), v6(2), 2));
    EXPECT_TRUE(IsWait(e.next(t0 + 500ms), t0 + 750ms));
    EXPECT_TRUE(IsStart(e.next(t0 + 750ms), v4(2), 3));
    EXPECT_TRUE(IsWait(e.next(t0 + 750ms), std::nullopt));
    EXPECT_EQ(e.attempts(), 4u);
    EXPECT_EQ(e.in_flight(), 4u);
}

TEST(Eyeballs, WhenOneFamilyRunsOutTheOtherGoesOn) {
    {
        auto e = make();
        e.answered(true, {v6(1), v6(2), v6(3)}, t0);
        e.answered(false, {v4(1)}, t0);
        EXPECT_TRUE(IsStart(e.next(t0), v6(1), 0));
        EXPECT_TRUE(IsStart(e.next(t0 + 250ms), v4(1), 1));
        EXPECT_TRUE(IsStart(e.next(t0 + 500ms), v6(2), 2));
        EXPECT_TRUE(IsStart(e.next(t0 + 750ms), v6(3), 3));
    }
    {
        auto e = make();
        e.answered(true, {v6(1)}, t0);
        e.answered(false, {v4(1), v4(2), v4(3)}, t0);
        EXPECT_TRUE(IsStart(e.next(t0), v6(1), 0));
        EXPECT_TRUE(IsStart(e.next(t0 + 250ms), v4(1), 1));
        EXPECT_TRUE(IsStart(e.next(t0 + 500ms), v4(2), 2));
        EXPECT_TRUE(IsStart(e.next(t0 + 750ms), v4(3), 3));
    }
}

TEST(Eyeballs, AShellThatIsLateStartsLateAndPacesFromThere) {
    auto e = make();
    e.answered(true, {v6(1)}, t0);
    e.answered(false, {v4(1), v4(2)}, t0);
    EXPECT_TRUE(IsStart(e.next(t0), v6(1), 0));
    EXPECT_TRUE(IsStart(e.next(t0 + 400ms), v4(1), 1));
    EXPECT_TRUE(IsWait(e.next(t0 + 400ms), t0 + 650ms));
}

// Every mix of up to 4 addresses per family, all given at once and none
// failing: each address once, ids in order, families alternating while both
// last, within a family in the given order, attempt_delay apart.
TEST(Eyeballs, EveryAddressIsTriedOnceInInterleavedOrder) {
    for (int n6 = 0; n6 <= 4; ++n6)
        for (int n4 = 0; n4 <= 4; ++n4) {
            SCOPED_TRACE(std::to_string(n6) + " IPv6, " + std::to_string(n4) + " IPv4");
            Addresses six, four, want;
            for (int i = 1; i <= n6; ++i) six.push_back(v6(i));
            for (int i = 1; i <= n4; ++i) four.push_back(v4(i));
            for (int i = 0; i < std::max(n6, n4); ++i) {
                if (i < n6) want.push_back(six[i]);
                if (i < n4) want.push_back(four[i]);
            }
            auto e = make();
            e.answered(false, four, t0);
            e.answered(true, six, t0);
            EXPECT_EQ(e.known(true), static_cast<std::size_t>(n6));
            EXPECT_EQ(e.known(false), static_cast<std::size_t>(n4));
            Addresses got;
            Time now = t0;
            for (int guard = 0; guard < 100; ++guard) {
                const auto s = e.next(now);
                if (s.kind == Kind::start) {
                    EXPECT_EQ(s.id, got.size());
                    EXPECT_EQ(now, t0 + 250ms * got.size());
                    got.push_back(s.address);
                } else if (s.kind == Kind::wait && s.until) {
                    now = *s.until;
                } else {
                    break;
                }
            }
            EXPECT_EQ(got, want);
            EXPECT_EQ(e.attempts(), want.size());
            for (std::size_t id = 0; id < want.size(); ++id) e.failed(id, now);
            EXPECT_TRUE(IsExhausted(e.next(now)));
        }
}

// ---- pacing and failures (section 5) ----

TEST(Eyeballs, AFailureBringsTheNextAttemptForward) {
    auto e = make();
    e.answered(true, {v6(1), v6(2)}, t0);
    e.answered(false, {v4(1), v4(2)}, t0);
    EXPECT_TRUE(IsStart(e.next(t0), v6(1), 0));
    e.failed(0, t0 + 100ms);
    EXPECT_EQ(e.in_flight(), 0u);
    EXPECT_TRUE(IsStart(e.next(t0 + 100ms), v4(1), 1));
    // The delay counts from the attempt brought forward.
    EXPECT_TRUE(IsWait(e.next(t0 + 100ms), t0 + 350ms));
    EXPECT_TRUE(IsStart(e.next(t0 + 350ms), v6(2), 2));
}

TEST(Eyeballs, AFailureWhileAnotherIsInFlightKeepsThePace) {
    auto e = make();
    e.answered(true, {v6(1), v6(2)}, t0);
    e.answered(false, {v4(1), v4(2)}, t0);
    EXPECT_TRUE(IsStart(e.next(t0), v6(1), 0));
    EXPECT_TRUE(IsStart(e.next(t0 + 250ms), v4(1), 1));
    e.failed(0, t0 + 300ms);  // v4(1) is still in flight
    EXPECT_EQ(e.in_flight(), 1u);
    EXPECT_TRUE(IsWait(e.next(t0 + 300ms), t0 + 500ms));
    e.failed(1, t0 + 310ms);  // now nothing is
    EXPECT_TRUE(IsStart(e.next(t0 + 310ms), v6(2), 2));
    EXPECT_TRUE(IsWait(e.next(t0 + 310ms), t0 + 560ms));
}

TEST(Eyeballs, AFailureOfTheLastAttemptWithBothAnsweredIsExhausted) {
    auto e = make();
    e.answered(true, {v6(1)}, t0);
    e.answered(false, {v4(1)}, t0);
    EXPECT_TRUE(IsStart(e.next(t0), v6(1), 0));
    EXPECT_TRUE(IsStart(e.next(t0 + 250ms), v4(1), 1));
    e.failed(1, t0 + 260ms);
    EXPECT_TRUE(IsWait(e.next(t0 + 260ms), std::nullopt));  // v6(1) is still in flight
    e.failed(0, t0 + 900ms);
    EXPECT_TRUE(IsExhausted(e.next(t0 + 900ms)));
    EXPECT_EQ(e.in_flight(), 0u);
    EXPECT_EQ(e.attempts(), 2u);
}

// RFC 8305 section 5: "a subsequent connection MUST NOT be started within 10
// milliseconds of the previous attempt", even when the previous one failed.
TEST(Eyeballs, AnAttemptThatFailsAtOnceBringsTheNextOnlyTo10Ms) {
    auto e = make();
    e.answered(true, {v6(1)}, t0);
    e.answered(false, {v4(1), v4(2)}, t0);
    EXPECT_TRUE(IsStart(e.next(t0), v6(1), 0));
    e.failed(0, t0);  // e.g. ENETUNREACH from connect() itself
    EXPECT_TRUE(IsWait(e.next(t0), t0 + 10ms));
    EXPECT_TRUE(IsStart(e.next(t0 + 10ms), v4(1), 1));
    e.failed(1, t0 + 12ms);
    EXPECT_TRUE(IsWait(e.next(t0 + 12ms), t0 + 20ms));
    EXPECT_TRUE(IsStart(e.next(t0 + 20ms), v4(2), 2));
}

TEST(Eyeballs, AnAttemptDelayOf10MsAnd2s) {
    for (const auto delay : {std::chrono::milliseconds{10}, std::chrono::milliseconds{2000}}) {
        SCOPED_TRACE(std::to_string(delay.count()) + " ms");
        auto e = make(delay);
        e.answered(true, {v6(1), v6(2)}, t0);
        e.answered(false, {v4(1), v4(2)}, t0);
        EXPECT_TRUE(IsStart(e.next(t0), v6(1), 0));
        EXPECT_TRUE(IsWait(e.next(t0), t0 + delay));
        EXPECT_TRUE(IsWait(e.next(t0 + delay - 1ms), t0 + delay));
        EXPECT_TRUE(IsStart(e.next(t0 + delay), v4(1), 1));
        EXPECT_TRUE(IsWait(e.next(t0 + delay), t0 + 2 * delay));
        EXPECT_TRUE(IsStart(e.next(t0 + 2 * delay), v6(2), 2));
        EXPECT_TRUE(IsStart(e.next(t0 + 3 * delay), v4(2), 3));
        EXPECT_TRUE(IsWait(e.next(t0 + 3 * delay), std::nullopt));
    }
}

TEST(Eyeballs, AnAttemptDelayBelow10MsCountsAs10Ms) {
    for (const auto delay : {std::chrono::milliseconds{0}, std::chrono::milliseconds{9}}) {
        auto e = make(delay);
        e.answered(true, {v6(1)}, t0);
        e.answered(false, {v4(1)}, t0);
        EXPECT_TRUE(IsStart(e.next(t0), v6(1), 0));
        EXPECT_TRUE(IsWait(e.next(t0), t0 + 10ms)) << delay.count() << " ms";
        EXPECT_TRUE(IsStart(e.next(t0 + 10ms), v4(1), 1));
    }
}

TEST(Eyeballs, FailuresOfUnknownOrFailedIdsAreIgnored) {
    auto e = make();
    e.answered(true, {v6(1), v6(2)}, t0);
    e.answered(false, {}, t0);
    e.failed(0, t0);  // nothing started yet
    EXPECT_TRUE(IsStart(e.next(t0), v6(1), 0));
    e.failed(1, t0 + 1ms);
    e.failed(99, t0 + 1ms);
    EXPECT_EQ(e.in_flight(), 1u);
    EXPECT_TRUE(IsWait(e.next(t0 + 1ms), t0 + 250ms));
    EXPECT_TRUE(IsStart(e.next(t0 + 250ms), v6(2), 1));
    e.failed(0, t0 + 300ms);
    e.failed(0, t0 + 300ms);
    EXPECT_EQ(e.in_flight(), 1u);
    EXPECT_TRUE(IsWait(e.next(t0 + 300ms), std::nullopt));
    e.failed(1, t0 + 400ms);
    EXPECT_EQ(e.in_flight(), 0u);
    EXPECT_TRUE(IsExhausted(e.next(t0 + 400ms)));
}

// ---- answers ----

TEST(Eyeballs, DuplicateAddressesAreIgnored) {
    auto e = make();
    Endpoint other_port = v4(1);
    other_port.port = 80;
    e.answered(false, {v4(1), v4(2), v4(1), other_port}, t0);
    EXPECT_EQ(e.known(false), 2u);
    e.answered(true, {v6(1), v6(1)}, t0);
    EXPECT_EQ(e.known(true), 1u);
    EXPECT_TRUE(IsStart(e.next(t0), v6(1), 0));
    EXPECT_TRUE(IsStart(e.next(t0 + 250ms), v4(1), 1));
    EXPECT_TRUE(IsStart(e.next(t0 + 500ms), v4(2), 2));
    EXPECT_TRUE(IsWait(e.next(t0 + 750ms), std::nullopt));
}

TEST(Eyeballs, AnAddressJoinsTheFamilyItIsAndIsKnownOnce) {
    // An AAAA answer that carries an IPv4 address (e.g. unmapped from
    // ::ffff:192.0.2.1) adds it to IPv4, and the A answer's copy is ignored.
    auto e = make();
    e.answered(true, {v4(1)}, t0);
    EXPECT_EQ(e.known(true), 0u);
    EXPECT_EQ(e.known(false), 1u);
    e.answered(false, {v4(1), v4(2)}, t0 + 1ms);
    EXPECT_EQ(e.known(false), 2u);
    EXPECT_TRUE(IsStart(e.next(t0 + 1ms), v4(1), 0));
    EXPECT_TRUE(IsStart(e.next(t0 + 251ms), v4(2), 1));
}

TEST(Eyeballs, TheSameBytesInTheOtherFamilyAreADifferentAddress) {
    auto e = make();
    Endpoint six{};
    six.v6 = true;
    six.addr = v4(1).addr;  // 192.0.2.1 in the first 4 bytes: c000:201::
    six.port = 443;
    e.answered(false, {v4(1)}, t0);
    e.answered(true, {six}, t0);
    EXPECT_EQ(e.known(false), 1u);
    EXPECT_EQ(e.known(true), 1u);
}

TEST(Eyeballs, ASecondAnswerForAFamilyIsIgnored) {
    auto e = make();
    e.answered(false, {v4(1)}, t0);
    e.answered(false, {v4(2)}, t0 + 40ms);  // does not restart the resolution delay either
    EXPECT_EQ(e.known(false), 1u);
    EXPECT_TRUE(IsWait(e.next(t0 + 40ms), t0 + 50ms));
    e.answered(true, {}, t0 + 45ms);
    e.answered(true, {v6(1)}, t0 + 46ms);
    EXPECT_EQ(e.known(true), 0u);
    EXPECT_TRUE(e.answered(true));
    EXPECT_TRUE(e.answered(false));
    EXPECT_TRUE(IsStart(e.next(t0 + 46ms), v4(1), 0));
    EXPECT_TRUE(IsWait(e.next(t0 + 46ms), std::nullopt));
    e.failed(0, t0 + 100ms);
    EXPECT_TRUE(IsExhausted(e.next(t0 + 100ms)));
}

TEST(Eyeballs, AStartGivesTheAddressWithItsPort) {
    auto e = make();
    const auto a = *parse_address("2001:db8::7", 8443);
    e.answered(true, {a}, t0);
    const auto s = e.next(t0);
    ASSERT_TRUE(IsStart(s, a, 0));
    EXPECT_EQ(s.address.port, 8443);
    EXPECT_TRUE(s.address.v6);
}

}  // namespace
}  // namespace egress
