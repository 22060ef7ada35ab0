// Source order and the connect attempt plan.
#include "pool/selection.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

namespace egress {
namespace {

using Order = std::vector<std::size_t>;
using Loads = std::vector<std::uint32_t>;

constexpr std::uint64_t kMax64 = std::numeric_limits<std::uint64_t>::max();

// ---- names ----

TEST(SelectionNames, RoundTrip) {
    for (const auto s : {Selection::round_robin, Selection::random, Selection::least_loaded})
        EXPECT_EQ(parse_selection(to_string(s)), s) << to_string(s);
    EXPECT_STREQ(to_string(Selection::round_robin), "round-robin");
    EXPECT_STREQ(to_string(Selection::random), "random");
    EXPECT_STREQ(to_string(Selection::least_loaded), "least-loaded");
}

TEST(SelectionNames, Unknown) {
    for (const char* bad : {"", "round_robin", "Round-Robin", "roundrobin", "least_loaded", "leastloaded", " random",
                            "random ", "rand", "auto"})
        EXPECT_FALSE(parse_selection(bad)) << '"' << bad << '"';
    EXPECT_STREQ(to_string(static_cast<Selection>(99)), "?");
}

TEST(PortStrategyNames, RoundTrip) {
    for (const auto s : {PortStrategy::automatic, PortStrategy::window, PortStrategy::kernel_range,
                         PortStrategy::userspace_random, PortStrategy::kernel_default})
        EXPECT_EQ(parse_port_strategy(to_string(s)), s) << to_string(s);
    EXPECT_STREQ(to_string(PortStrategy::automatic), "auto");
    EXPECT_STREQ(to_string(PortStrategy::window), "window");
    EXPECT_STREQ(to_string(PortStrategy::kernel_range), "kernel-range");
    EXPECT_STREQ(to_string(PortStrategy::userspace_random), "userspace-random");
    EXPECT_STREQ(to_string(PortStrategy::kernel_default), "kernel-default");
}

TEST(PortStrategyNames, Unknown) {
    for (const char* bad : {"", "automatic", "Auto", "kernel_range", "userspace_random", "kernel_default", "windows",
                            " window", "window ", "round-robin"})
        EXPECT_FALSE(parse_port_strategy(bad)) << '"' << bad << '"';
    EXPECT_STREQ(to_string(static_cast<PortStrategy>(99)), "?");
}

// ---- source_order ----

Order rotation(std::size_t n, std::size_t start) {
    Order o(n);
    for (std::size_t i = 0; i < n; ++i) o[i] = (start + i) % n;
    return o;
}

bool is_permutation_of_indices(const Order& o, std::size_t n) {
    Order sorted = o;
    std::sort(sorted.begin(), sorted.end());
    Order want(n);
    std::iota(want.begin(), want.end(), std::size_t{0});
    return sorted == want;
}

TEST(SourceOrder, NoSources) {
    for (const auto s : {Selection::round_robin, Selection::random, Selection::least_loaded})
        EXPECT_TRUE(source_order(s, 0, 5, 7, {}).empty()) << to_string(s);
}

TEST(SourceOrder, OneSource) {
    const Loads one{42};
    for (const auto s : {Selection::round_robin, Selection::random, Selection::least_loaded})
        for (std::uint64_t x : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{17}, kMax64}) {
            EXPECT_EQ(source_order(s, 1, x, x, {}), Order{0}) << to_string(s);
            EXPECT_EQ(source_order(s, 1, x, x, one), Order{0}) << to_string(s);
        }
}

TEST(SourceOrder, RoundRobinRotatesFromTurn) {
    EXPECT_EQ(source_order(Selection::round_robin, 4, 0, 3, {}), (Order{0, 1, 2, 3}));
    EXPECT_EQ(source_order(Selection::round_robin, 4, 1, 3, {}), (Order{1, 2, 3, 0}));
    EXPECT_EQ(source_order(Selection::round_robin, 4, 6, 3, {}), (Order{2, 3, 0, 1}));
    for (std::size_t n = 1; n <= 9; ++n)
        for (std::uint64_t turn = 0; turn < 3 * n + 2; ++turn)
            for (std::uint64_t random : {std::uint64_t{0}, std::uint64_t{5}, kMax64}) {
                const auto o = source_order(Selection::round_robin, n, turn, random, {});
                ASSERT_EQ(o, rotation(n, turn % n)) << "n " << n << " turn " << turn;
                ASSERT_TRUE(is_permutation_of_indices(o, n));
            }
    EXPECT_EQ(source_order(Selection::round_robin, 7, kMax64, 0, {}), rotation(7, kMax64 % 7));
}

TEST(SourceOrder, RoundRobinIgnoresLoad) {
    const Loads loads{9, 0, 5};
    EXPECT_EQ(source_order(Selection::round_robin, 3, 0, 0, loads), (Order{0, 1, 2}));
}

TEST(SourceOrder, RandomStartsAtRandomModN) {
    EXPECT_EQ(source_order(Selection::random, 3, 0, 5, {}), (Order{2, 0, 1}));
    for (std::size_t n = 1; n <= 9; ++n)
        for (std::uint64_t random = 0; random < 3 * n + 2; ++random)
            for (std::uint64_t turn : {std::uint64_t{0}, std::uint64_t{1}, kMax64}) {
                const auto o = source_order(Selection::random, n, turn, random, {});
                ASSERT_EQ(o, rotation(n, random % n)) << "n " << n << " random " << random;
                ASSERT_TRUE(is_permutation_of_indices(o, n));
            }
    EXPECT_EQ(source_order(Selection::random, 5, 0, kMax64, {}), rotation(5, kMax64 % 5));
}

TEST(SourceOrder, LeastLoadedExamples) {
    const Loads loads{5, 1, 3, 1};
    // Ties (sources 1 and 3) go to the first in rotation from turn; the rest by load.
    EXPECT_EQ(source_order(Selection::least_loaded, 4, 0, 0, loads), (Order{1, 3, 2, 0}));
    EXPECT_EQ(source_order(Selection::least_loaded, 4, 1, 0, loads), (Order{1, 3, 2, 0}));
    EXPECT_EQ(source_order(Selection::least_loaded, 4, 2, 0, loads), (Order{3, 1, 2, 0}));
    EXPECT_EQ(source_order(Selection::least_loaded, 4, 3, 0, loads), (Order{3, 1, 2, 0}));
    EXPECT_EQ(source_order(Selection::least_loaded, 4, 4, 0, loads), (Order{1, 3, 2, 0}));
    // The random draw plays no part.
    EXPECT_EQ(source_order(Selection::least_loaded, 4, 2, 12345, loads), (Order{3, 1, 2, 0}));
    // All equal: pure rotation.
    EXPECT_EQ(source_order(Selection::least_loaded, 3, 1, 0, Loads{7, 7, 7}), (Order{1, 2, 0}));
    // Strictly ordered loads: turn does not matter.
    for (std::uint64_t turn = 0; turn < 4; ++turn)
        EXPECT_EQ(source_order(Selection::least_loaded, 4, turn, 0, Loads{30, 10, 40, 20}), (Order{1, 3, 0, 2}));
    EXPECT_EQ(source_order(Selection::least_loaded, 2, 0, 0, Loads{std::numeric_limits<std::uint32_t>::max(), 0}),
              (Order{1, 0}));
}

// Exhaustive over small pools: loads 0..2 on up to 4 sources, every turn.
TEST(SourceOrder, LeastLoadedIsSortedByLoadThenRotation) {
    for (std::size_t n = 1; n <= 4; ++n) {
        std::size_t combos = 1;
        for (std::size_t i = 0; i < n; ++i) combos *= 3;
        for (std::size_t c = 0; c < combos; ++c) {
            Loads loads(n);
            for (std::size_t i = 0, x = c; i < n; ++i, x /= 3) loads[i] = static_cast<std::uint32_t>(x % 3);
            for (std::uint64_t turn = 0; turn < 2 * n; ++turn) {
                const auto o = source_order(Selection::least_loaded, n, turn, 99, loads);
                ASSERT_TRUE(is_permutation_of_indices(o, n));
                const auto rank = [&](std::size_t idx) { return (idx + n - turn % n) % n; };  // place in rotation
                for (std::size_t i = 1; i < n; ++i) {
                    ASSERT_LE(loads[o[i - 1]], loads[o[i]]) << "n " << n << " combo " << c << " turn " << turn;
                    if (loads[o[i - 1]] == loads[o[i]]) {
                        ASSERT_LT(rank(o[i - 1]), rank(o[i]));
                    }
                }
                // The first is the least loaded, first in rotation among the ties.
                const auto least = *std::min_element(loads.begin(), loads.end());
                for (std::size_t k = 0; k < n; ++k) {
                    const auto idx = (turn + k) % n;
                    if (loads[idx] == least) {
                        ASSERT_EQ(o[0], idx);
                        break;
                    }
                }
            }
        }
    }
}

// Large pools too: ties keep their rotation order however the sort is done.
TEST(SourceOrder, LeastLoadedTiesKeepRotationOrderInLargePools) {
    for (std::size_t n : {17u, 40u, 100u}) {
        Loads loads(n);
        for (std::size_t i = 0; i < n; ++i) loads[i] = static_cast<std::uint32_t>((i * 7) % 3);
        for (std::uint64_t turn : {std::uint64_t{0}, std::uint64_t{5}, std::uint64_t{n - 1}}) {
            Order want;
            for (std::uint32_t load = 0; load < 3; ++load)
                for (std::size_t k = 0; k < n; ++k) {
                    const auto idx = (turn + k) % n;
                    if (loads[idx] == load) want.push_back(idx);
                }
            EXPECT_EQ(source_order(Selection::least_loaded, n, turn, 0, loads), want) << "n " << n << " turn " << turn;
        }
    }
}

TEST(SourceOrder, LeastLoadedWithMismatchedLoadsFallsBackToRotation) {
    for (std::uint64_t turn = 0; turn < 8; ++turn) {
        EXPECT_EQ(source_order(Selection::least_loaded, 4, turn, 0, {}), rotation(4, turn % 4));
        EXPECT_EQ(source_order(Selection::least_loaded, 4, turn, 0, Loads{9, 0, 0}), rotation(4, turn % 4));
        EXPECT_EQ(source_order(Selection::least_loaded, 4, turn, 0, Loads{9, 0, 0, 0, 0}), rotation(4, turn % 4));
    }
}

// ---- AttemptPlan ----

// A deterministic, distinct draw per try.
std::uint64_t draw(std::size_t k) { return 0x9E3779B97F4A7C15ull * (k + 1) + 12345; }

std::vector<Attempt> all_attempts(const PortPolicy& policy, std::size_t sources, std::size_t cap = 100000) {
    AttemptPlan plan(policy, sources);
    std::vector<Attempt> out;
    while (auto a = plan.next(draw(out.size()))) {
        out.push_back(*a);
        if (out.size() > cap) break;
    }
    // Spent stays spent.
    EXPECT_FALSE(plan.next(0));
    EXPECT_FALSE(plan.next(kMax64));
    return out;
}

PortRange window_at(const PortPolicy& p, std::uint64_t random) {
    const auto positions = p.range.size() - p.window_size + 1;
    const auto lo = static_cast<std::uint16_t>(p.range.lo + random % positions);
    return {lo, static_cast<std::uint16_t>(lo + p.window_size - 1)};
}

PortPolicy window_policy(std::uint32_t retries = 2) {
    PortPolicy p;
    p.strategy = PortStrategy::window;
    p.range = {40000, 40999};
    p.window_size = 100;
    p.max_window_retries = retries;
    return p;
}

TEST(AttemptPlan, WindowExactSequence) {
    const auto p = window_policy(2);
    const auto got = all_attempts(p, 2);
    ASSERT_EQ(got.size(), 8u);  // 2 sources x (1 + 2 retries + whole range)
    for (std::size_t k = 0; k < got.size(); ++k) {
        SCOPED_TRACE("try " + std::to_string(k));
        const auto& a = got[k];
        const auto on_slot = k % 4;
        EXPECT_EQ(a.slot, k / 4);
        EXPECT_EQ(a.retry_on_source, on_slot != 0);
        EXPECT_EQ(a.bind_port, 0);
        ASSERT_TRUE(a.local_range);
        if (on_slot < 3) {
            EXPECT_EQ(*a.local_range, window_at(p, draw(k)));
            EXPECT_EQ(a.local_range->size(), 100u);
            EXPECT_TRUE(p.range.contains(a.local_range->lo));
            EXPECT_TRUE(p.range.contains(a.local_range->hi));
        } else {
            EXPECT_EQ(*a.local_range, p.range);
        }
        EXPECT_EQ(range_in_effect(a, p), *a.local_range);
    }
}

TEST(AttemptPlan, WindowWithoutRetriesIsOneWindowThenTheRange) {
    const auto p = window_policy(0);
    const auto got = all_attempts(p, 3);
    ASSERT_EQ(got.size(), 6u);
    for (std::size_t k = 0; k < got.size(); ++k) {
        EXPECT_EQ(got[k].slot, k / 2);
        EXPECT_EQ(got[k].retry_on_source, k % 2 == 1);
        EXPECT_EQ(*got[k].local_range, k % 2 == 0 ? window_at(p, draw(k)) : p.range);
    }
}

TEST(AttemptPlan, WindowCountForEveryRetryBound) {
    for (std::uint32_t retries : {0u, 1u, 2u, 8u, 64u})
        for (std::size_t sources : {0u, 1u, 2u, 3u, 5u}) {
            const auto p = window_policy(retries);
            const auto got = all_attempts(p, sources);
            const std::size_t slots = std::max<std::size_t>(sources, 1);
            ASSERT_EQ(got.size(), slots * (retries + 2)) << retries << " retries, " << sources << " sources";
            std::size_t whole = 0;
            for (const auto& a : got) whole += *a.local_range == p.range;
            EXPECT_EQ(whole, slots);
        }
}

TEST(AttemptPlan, WindowAsLargeAsTheRangeIsOneTryPerSlot) {
    for (const std::uint32_t size : {1000u, 1001u, 65535u}) {
        auto p = window_policy(8);
        p.window_size = size;
        const auto got = all_attempts(p, 3);
        ASSERT_EQ(got.size(), 3u) << size;
        for (std::size_t k = 0; k < 3; ++k) {
            EXPECT_EQ(got[k].slot, k);
            EXPECT_FALSE(got[k].retry_on_source);
            EXPECT_EQ(got[k].local_range, p.range);
            EXPECT_EQ(got[k].bind_port, 0);
        }
    }
}

TEST(AttemptPlan, WindowOneSmallerThanTheRange) {
    auto p = window_policy(1);
    p.window_size = 999;
    const auto got = all_attempts(p, 1);
    ASSERT_EQ(got.size(), 3u);
    for (std::size_t k = 0; k < 2; ++k) {
        const auto w = *got[k].local_range;
        EXPECT_EQ(w.size(), 999u);
        EXPECT_TRUE(w == (PortRange{40000, 40998}) || w == (PortRange{40001, 40999})) << to_string(w);
    }
    EXPECT_EQ(got[2].local_range, p.range);
}

TEST(AttemptPlan, KernelRangeIsTheWholeRangeOncePerSlot) {
    PortPolicy p;
    p.strategy = PortStrategy::kernel_range;
    p.range = {32768, 60999};
    for (std::size_t sources : {0u, 1u, 4u}) {
        const auto got = all_attempts(p, sources);
        ASSERT_EQ(got.size(), std::max<std::size_t>(sources, 1));
        for (std::size_t k = 0; k < got.size(); ++k) {
            EXPECT_EQ(got[k].slot, k);
            EXPECT_FALSE(got[k].retry_on_source);
            EXPECT_EQ(got[k].local_range, p.range);
            EXPECT_EQ(got[k].bind_port, 0);
            EXPECT_EQ(range_in_effect(got[k], p), p.range);
        }
    }
}

TEST(AttemptPlan, UserspaceRandomBindsRandomPortsInsideTheRange) {
    PortPolicy p;
    p.strategy = PortStrategy::userspace_random;
    p.range = {50000, 50009};
    p.userspace_max_attempts = 5;
    const auto got = all_attempts(p, 2);
    ASSERT_EQ(got.size(), 10u);
    for (std::size_t k = 0; k < got.size(); ++k) {
        SCOPED_TRACE("try " + std::to_string(k));
        EXPECT_EQ(got[k].slot, k / 5);
        EXPECT_EQ(got[k].retry_on_source, k % 5 != 0);
        EXPECT_FALSE(got[k].local_range);
        EXPECT_EQ(got[k].bind_port, 50000 + draw(k) % 10);
        EXPECT_EQ(range_in_effect(got[k], p), p.range);
    }
}

TEST(AttemptPlan, UserspaceRandomPortMapping) {
    PortPolicy p;
    p.strategy = PortStrategy::userspace_random;
    p.userspace_max_attempts = 1;
    // Every draw maps into the range, wrapping modulo its size, up to 65535.
    for (const PortRange r : {PortRange{1, 65535}, PortRange{65535, 65535}, PortRange{1, 1}, PortRange{60000, 65535}}) {
        p.range = r;
        for (std::uint64_t random : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{r.size() - 1},
                                     std::uint64_t{r.size()}, kMax64}) {
            AttemptPlan plan(p, 1);
            const auto a = plan.next(random);
            ASSERT_TRUE(a);
            EXPECT_EQ(a->bind_port, r.lo + random % r.size()) << to_string(r) << " " << random;
            EXPECT_TRUE(r.contains(a->bind_port));
            EXPECT_FALSE(plan.next(random));
        }
    }
}

TEST(AttemptPlan, UserspaceRandomCount) {
    PortPolicy p;
    p.strategy = PortStrategy::userspace_random;
    for (std::uint32_t max : {1u, 2u, 16u, 64u})
        for (std::size_t sources : {0u, 1u, 3u}) {
            p.userspace_max_attempts = max;
            EXPECT_EQ(all_attempts(p, sources).size(), std::max<std::size_t>(sources, 1) * max);
        }
}

TEST(AttemptPlan, KernelDefaultIsOnePlainTryPerSlot) {
    PortPolicy p;
    p.strategy = PortStrategy::kernel_default;
    for (std::size_t sources : {0u, 1u, 3u}) {
        const auto got = all_attempts(p, sources);
        ASSERT_EQ(got.size(), std::max<std::size_t>(sources, 1));
        for (std::size_t k = 0; k < got.size(); ++k) {
            EXPECT_EQ(got[k].slot, k);
            EXPECT_FALSE(got[k].retry_on_source);
            EXPECT_FALSE(got[k].local_range);
            EXPECT_EQ(got[k].bind_port, 0);
            EXPECT_EQ(range_in_effect(got[k], p), p.range);
        }
    }
}

TEST(AttemptPlan, UnresolvedAutomaticIsAPlainTry) {
    PortPolicy p;
    p.strategy = PortStrategy::automatic;
    const auto got = all_attempts(p, 2);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_FALSE(got[0].local_range);
    EXPECT_EQ(got[0].bind_port, 0);
}

TEST(AttemptPlan, NoSourcesIsOneSlot) {
    const auto p = window_policy(1);
    const auto got = all_attempts(p, 0);
    ASSERT_EQ(got.size(), 3u);
    for (const auto& a : got) EXPECT_EQ(a.slot, 0u);
}

TEST(AttemptPlan, SlotsAdvanceInOrderAndEachStartsFresh) {
    for (const auto s : {PortStrategy::window, PortStrategy::kernel_range, PortStrategy::userspace_random,
                         PortStrategy::kernel_default}) {
        auto p = window_policy(3);
        p.strategy = s;
        p.userspace_max_attempts = 3;
        const auto got = all_attempts(p, 4);
        ASSERT_FALSE(got.empty());
        EXPECT_EQ(got.front().slot, 0u);
        EXPECT_FALSE(got.front().retry_on_source);
        EXPECT_EQ(got.back().slot, 3u) << to_string(s);
        for (std::size_t k = 1; k < got.size(); ++k) {
            ASSERT_TRUE(got[k].slot == got[k - 1].slot || got[k].slot == got[k - 1].slot + 1) << to_string(s);
            EXPECT_EQ(got[k].retry_on_source, got[k].slot == got[k - 1].slot) << to_string(s) << " try " << k;
        }
    }
}

TEST(RangeInEffect, WindowElseTheWholeRange) {
    PortPolicy p;
    p.range = {40000, 59999};
    Attempt a;
    EXPECT_EQ(range_in_effect(a, p), p.range);
    a.local_range = PortRange{40001, 40500};
    EXPECT_EQ(range_in_effect(a, p), (PortRange{40001, 40500}));
    a.local_range.reset();
    a.bind_port = 45000;
    EXPECT_EQ(range_in_effect(a, p), p.range);
}

// ---- does the kernel's port search prefer a parity ----

TEST(PortSearchPrefersParity, KernelDefaultOnEveryKernel) {
    for (const KernelVersion k : {KernelVersion{4, 19}, {5, 15}, {6, 1}, {6, 7}, {6, 8}, {6, 18}, {7, 0}})
        EXPECT_TRUE(port_search_prefers_parity(PortStrategy::kernel_default, k)) << k.major << "." << k.minor;
}

TEST(PortSearchPrefersParity, PerSocketRangeOnlyBefore6Point8) {
    for (const auto s : {PortStrategy::window, PortStrategy::kernel_range}) {
        SCOPED_TRACE(to_string(s));
        // 6.1 (IP_LOCAL_PORT_RANGE backported to 6.1.31) through 6.7: the parity pass applies.
        for (const KernelVersion k : {KernelVersion{6, 1}, {6, 3}, {6, 7}})
            EXPECT_TRUE(port_search_prefers_parity(s, k)) << k.major << "." << k.minor;
        // 6.8 on: one contiguous scan.
        for (const KernelVersion k : {KernelVersion{6, 8}, {6, 9}, {6, 18}, {7, 0}, {10, 2}})
            EXPECT_FALSE(port_search_prefers_parity(s, k)) << k.major << "." << k.minor;
    }
}

TEST(PortSearchPrefersParity, NeverForAnExplicitBindOrAnUnresolvedStrategy) {
    for (const KernelVersion k : {KernelVersion{5, 15}, {6, 7}, {6, 18}}) {
        EXPECT_FALSE(port_search_prefers_parity(PortStrategy::userspace_random, k));
        EXPECT_FALSE(port_search_prefers_parity(PortStrategy::automatic, k));
    }
}

TEST(PortSearchPrefersParity, AnUnknownKernelCountsAsOld) {
    // probe_kernel() leaves 0.0 when uname cannot be parsed: keep counting.
    EXPECT_TRUE(port_search_prefers_parity(PortStrategy::kernel_range, KernelVersion{}));
}

}  // namespace
}  // namespace egress
