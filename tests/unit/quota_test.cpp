// Per-uid quota accounting: connections and requests in flight per uid and
// per connection, the uid's shared token bucket, the refusal messages, and
// a table that forgets uids once nothing needs remembering.
#include "quota/quota.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace egress {
namespace {

using namespace std::chrono_literals;
using time_point = QuotaTable::time_point;

struct Fixture : testing::Test {
    time_point now = time_point{} + 1h;
    QuotaTable table{[this] { return now; }, 4};
};

// Refused at `limit` with a message holding every word.
testing::AssertionResult Refused(const std::optional<QuotaRefusal>& q, const std::string& limit,
                                 std::initializer_list<std::string> words = {}) {
    if (!q) return testing::AssertionFailure() << "admitted, expected a refusal at " << limit;
    if (q->limit != limit) return testing::AssertionFailure() << "refused at " << q->limit << ": " << q->message;
    for (const auto& w : words)
        if (q->message.find(w) == std::string::npos)
            return testing::AssertionFailure() << "'" << q->message << "' lacks '" << w << "'";
    return testing::AssertionSuccess() << q->message;
}

QuotaLimits limits(std::optional<std::uint32_t> per_connection, std::optional<std::uint32_t> per_uid,
                   std::optional<RateLimit> rate = {}, std::optional<std::uint32_t> connections = {}) {
    return QuotaLimits{per_connection, per_uid, rate, connections};
}

using Quota = Fixture;

TEST_F(Quota, NoLimitsAdmitEverythingAndStillCount) {
    auto a = table.open(1000);
    for (int i = 0; i < 100; ++i) {
        ASSERT_FALSE(a.admit_connect(static_cast<std::size_t>(i), "r", {}));
    }
    EXPECT_FALSE(a.admit_request("r", {}));
    EXPECT_EQ(table.inflight(1000), 100u);
    EXPECT_EQ(table.connections(1000), 1u);
    EXPECT_FALSE(table.check_connection(1000, "r", {}));
}

TEST_F(Quota, InflightPerConnection) {
    const auto l = limits(2, std::nullopt);
    auto a = table.open(1000), b = table.open(1000);
    EXPECT_FALSE(a.admit_connect(0, "sandbox", l));
    EXPECT_FALSE(a.admit_connect(1, "sandbox", l));
    EXPECT_TRUE(Refused(a.admit_connect(2, "sandbox", l), "max_inflight_per_connection",
                        {"rule 'sandbox': 2 requests in flight on this connection "
                         "(limits.max_inflight_per_connection)"}));
    EXPECT_FALSE(b.admit_connect(0, "sandbox", l));  // another connection has its own
}

TEST_F(Quota, InflightPerUidSpansItsConnections) {
    const auto l = limits(std::nullopt, 3);
    auto a = table.open(1000), b = table.open(1000), other = table.open(1001);
    for (int i = 0; i < 2; ++i) {
        ASSERT_FALSE(a.admit_connect(0, "sandbox", l));
    }
    ASSERT_FALSE(b.admit_connect(0, "sandbox", l));
    EXPECT_TRUE(Refused(b.admit_connect(1, "sandbox", l), "max_inflight_per_uid",
                        {"rule 'sandbox': 3 requests in flight for uid 1000 (limits.max_inflight_per_uid)"}));
    EXPECT_TRUE(Refused(a.admit_connect(2, "sandbox", l), "max_inflight_per_uid"));
    EXPECT_FALSE(other.admit_connect(0, "sandbox", l));  // another uid is not affected
    a.finished();
    EXPECT_EQ(table.inflight(1000), 2u);
    EXPECT_FALSE(b.admit_connect(1, "sandbox", l));
    // Closing a connection gives back what it had in flight.
    a.release();
    EXPECT_EQ(table.inflight(1000), 2u);
    b.release();
    EXPECT_EQ(table.inflight(1000), 0u);
}

TEST_F(Quota, FinishedNeverGoesBelowWhatTheConnectionStarted) {
    auto a = table.open(1000), b = table.open(1000);
    ASSERT_FALSE(b.admit_connect(0, "r", {}));
    a.finished();  // nothing of a's in flight: no effect on b's
    EXPECT_EQ(table.inflight(1000), 1u);
}

TEST_F(Quota, RateIsPerUidAcrossConnections) {
    const auto l = limits(std::nullopt, std::nullopt, RateLimit{2, 3});
    auto a = table.open(1000), b = table.open(1000), other = table.open(1001);
    EXPECT_FALSE(a.admit_connect(0, "sandbox", l));
    EXPECT_FALSE(b.admit_request("sandbox", l));  // STATUS takes a token too
    EXPECT_FALSE(b.admit_connect(0, "sandbox", l));
    EXPECT_TRUE(Refused(a.admit_connect(0, "sandbox", l), "requests_per_second",
                        {"rule 'sandbox': uid 1000 is over 2 requests per second, burst 3 "
                         "(limits.requests_per_second); retry in 500 ms"}));
    // A new connection does not come with a new bucket.
    auto c = table.open(1000);
    EXPECT_TRUE(Refused(c.admit_request("sandbox", l), "requests_per_second"));
    EXPECT_FALSE(other.admit_connect(0, "sandbox", l));
    now += 499ms;
    EXPECT_TRUE(Refused(c.admit_connect(0, "sandbox", l), "requests_per_second", {"retry in 1 ms"}));
    now += 1ms;
    EXPECT_FALSE(c.admit_connect(0, "sandbox", l));
}

TEST_F(Quota, InflightRefusalsTakeNoToken) {
    const auto l = limits(1, std::nullopt, RateLimit{1, 2});
    auto a = table.open(1000);
    ASSERT_FALSE(a.admit_connect(0, "r", l));
    for (int i = 0; i < 10; ++i) EXPECT_TRUE(Refused(a.admit_connect(1, "r", l), "max_inflight_per_connection"));
    a.finished();
    EXPECT_FALSE(a.admit_connect(0, "r", l));  // the second token is still there
}

TEST_F(Quota, ConnectionsPerUid) {
    const auto l = limits(std::nullopt, std::nullopt, std::nullopt, 2);
    EXPECT_FALSE(table.check_connection(1000, "sandbox", l));
    auto a = table.open(1000);
    auto b = table.open(1000);
    EXPECT_TRUE(Refused(table.check_connection(1000, "sandbox", l), "max_connections_per_uid",
                        {"rule 'sandbox': 2 connections open for uid 1000 (limits.max_connections_per_uid)"}));
    EXPECT_FALSE(table.check_connection(1001, "sandbox", l));
    b.release();
    b.release();  // twice: counted once
    EXPECT_EQ(table.connections(1000), 1u);
    EXPECT_FALSE(table.check_connection(1000, "sandbox", l));
    // A limit lowered by a reload: open connections stay, new ones wait.
    EXPECT_TRUE(Refused(table.check_connection(1000, "sandbox", limits({}, {}, {}, 1)), "max_connections_per_uid"));
}

TEST_F(Quota, SlotsMoveAndReleaseOnDestruction) {
    {
        auto a = table.open(1000);
        ASSERT_FALSE(a.admit_connect(0, "r", {}));
        std::vector<QuotaTable::Slot> slots;
        slots.push_back(std::move(a));
        a.release();  // moved-from: nothing to give back
        EXPECT_EQ(table.connections(1000), 1u);
        EXPECT_EQ(table.inflight(1000), 1u);
        QuotaTable::Slot b = table.open(1000);
        b = std::move(slots.back());  // b's own connection is released first
        EXPECT_EQ(table.connections(1000), 1u);
    }
    EXPECT_EQ(table.connections(1000), 0u);
    EXPECT_EQ(table.inflight(1000), 0u);
    EXPECT_EQ(table.uids(), 0u);
}

TEST_F(Quota, AUidIsForgottenWhenNothingIsLeftToRemember) {
    {
        auto a = table.open(1000);
        auto b = table.open(1001);
        EXPECT_EQ(table.uids(), 2u);
    }
    EXPECT_EQ(table.uids(), 0u);  // no connection, buckets full
}

TEST_F(Quota, ARefillingBucketOutlivesTheConnection) {
    const auto l = limits(std::nullopt, std::nullopt, RateLimit{1, 1});
    {
        auto a = table.open(1000);
        ASSERT_FALSE(a.admit_request("r", l));
    }
    EXPECT_EQ(table.uids(), 1u);  // reconnecting must not refill the bucket
    auto again = table.open(1000);
    EXPECT_TRUE(Refused(again.admit_request("r", l), "requests_per_second"));
    now += 1s;
    EXPECT_FALSE(again.admit_request("r", l));
}

TEST_F(Quota, IdleUidsAreBounded) {
    const auto l = limits(std::nullopt, std::nullopt, RateLimit{1, 1});
    for (std::uint32_t uid = 0; uid < 4; ++uid) ASSERT_FALSE(table.open(uid).admit_request("r", l));
    EXPECT_EQ(table.uids(), 4u);  // at the bound (4 in this fixture)
    now += 1s;                    // their buckets have refilled
    ASSERT_FALSE(table.open(100).admit_request("r", l));
    EXPECT_EQ(table.uids(), 1u);  // the refilled ones went; uid 100's bucket still refills
    for (std::uint32_t uid = 200; uid < 205; ++uid) ASSERT_FALSE(table.open(uid).admit_request("r", l));
    EXPECT_LE(table.uids(), 4u);  // none refilled: every idle uid is forgotten
    // Connected uids are never forgotten, however many.
    std::vector<QuotaTable::Slot> open;
    for (std::uint32_t uid = 300; uid < 320; ++uid) open.push_back(table.open(uid));
    EXPECT_GE(table.uids(), 20u);
    for (std::uint32_t uid = 300; uid < 320; ++uid) EXPECT_EQ(table.connections(uid), 1u);
}

// Event loops share the table: connections of one uid on several threads
// admit at once, and the uid's limit still holds exactly.
TEST_F(Quota, ConcurrentAdmitsNeverPassTheUidLimit) {
    const auto l = limits(std::nullopt, 50);
    std::atomic<int> admitted{0};
    std::vector<std::thread> loops;
    std::vector<QuotaTable::Slot> slots;
    for (int t = 0; t < 4; ++t) slots.push_back(table.open(1000));
    for (int t = 0; t < 4; ++t)
        loops.emplace_back([&, t] {
            for (int i = 0; i < 2000; ++i)
                if (!slots[t].admit_connect(0, "r", l)) admitted.fetch_add(1);
        });
    for (auto& t : loops) t.join();
    EXPECT_EQ(admitted.load(), 50);
    EXPECT_EQ(table.inflight(1000), 50u);
    for (auto& s : slots) s.release();
    EXPECT_EQ(table.inflight(1000), 0u);
}

}  // namespace
}  // namespace egress
