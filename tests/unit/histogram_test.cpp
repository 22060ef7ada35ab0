// Sharded histograms: the same text as prometheus-cpp's own Histogram for the
// same observations, whichever shards they went to, and no lost counts when
// loops observe at once.
#include "metrics/histogram.hpp"

#include <gtest/gtest.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace egress {
namespace {

// Powers of two, so that sums are exact in any order.
const std::vector<double> kBounds{0.0009765625, 0.0078125, 0.125, 1};

// The exposition text, lines sorted: prometheus-cpp lists series in hash order.
std::string text(const prometheus::Collectable& c) {
    std::istringstream in(prometheus::TextSerializer().Serialize(c.Collect()));
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    std::sort(lines.begin(), lines.end());
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
}

TEST(ShardedHistogram, ReadsAsPrometheusCppsOwnHistogram) {
    prometheus::Registry reference;
    auto& family = prometheus::BuildHistogram().Name("egress_x_seconds").Help("x").Register(reference);
    auto& ref_a = family.Add({{"pool", "a"}}, kBounds);
    auto& ref_b = family.Add({{"pool", "b"}, {"source", "10.0.0.1"}}, kBounds);

    HistogramFamilies ours(3);
    auto& f = ours.add("egress_x_seconds", "x");
    auto& a = f.add({{"pool", "a"}}, kBounds);
    auto& b = f.add({{"pool", "b"}, {"source", "10.0.0.1"}}, kBounds);

    // On a bound, just above one, far above all, zero, negative; spread over shards.
    const std::vector<double> values{0.0009765625, 0.001953125, 0.0625, 1, 7, 0, -1, 0.5, 0.0078125};
    for (std::size_t i = 0; i < values.size(); ++i) {
        ref_a.Observe(values[i]);
        a.observe(i, values[i]);
        if (i % 2) {
            ref_b.Observe(values[i]);
            b.observe(i + 1, values[i]);
        }
    }
    EXPECT_EQ(text(ours), text(reference));
}

TEST(ShardedHistogram, AddingTheSameLabelsReturnsTheSameSeries) {
    HistogramFamilies ours(2);
    auto& f = ours.add("egress_y_seconds", "y");
    auto& first = f.add({{"pool", "a"}}, kBounds);
    EXPECT_EQ(&first, &f.add({{"pool", "a"}}, kBounds));
    EXPECT_NE(&first, &f.add({{"pool", "b"}}, kBounds));
}

TEST(ShardedHistogram, AShardBeyondTheCountWrapsRatherThanOverruns) {
    ShardedHistogram h(kBounds, 2);
    h.observe(5, 0.5);
    h.observe(1000001, 0.5);
    EXPECT_EQ(h.collect().sample_count, 2u);
}

TEST(ShardedHistogram, RefusesBoundsThatDoNotIncrease) {
    EXPECT_THROW(ShardedHistogram({1, 0.5}, 1), std::invalid_argument);
    EXPECT_THROW(ShardedHistogram({1, 1}, 1), std::invalid_argument);
    EXPECT_THROW(ShardedHistogram(std::vector<double>(ShardedHistogram::kMaxBuckets + 1, 0), 1),
                 std::invalid_argument);
}

TEST(ShardedHistogram, LoopsObservingAtOnceLoseNothing) {
    constexpr int kThreads = 4, kEach = 20000;
    ShardedHistogram h(kBounds, 2);  // fewer shards than threads: shards are shared too
    std::vector<std::thread> loops;
    for (int t = 0; t < kThreads; ++t)
        loops.emplace_back([&h, t] {
            for (int i = 0; i < kEach; ++i) h.observe(static_cast<std::size_t>(t), 0.25);
        });
    const auto mid = h.collect();  // a scrape while they run sees no more than was observed
    EXPECT_LE(mid.sample_count, std::uint64_t{kThreads} * kEach);
    for (auto& l : loops) l.join();
    const auto end = h.collect();
    EXPECT_EQ(end.sample_count, std::uint64_t{kThreads} * kEach);
    EXPECT_EQ(end.bucket.at(2).cumulative_count, 0u);  // <= 0.125
    EXPECT_EQ(end.bucket.at(3).cumulative_count, std::uint64_t{kThreads} * kEach);  // <= 1
    EXPECT_DOUBLE_EQ(end.sample_sum, 0.25 * kThreads * kEach);
}

}  // namespace
}  // namespace egress
