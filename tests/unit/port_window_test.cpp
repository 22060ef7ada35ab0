// Port ranges, their text form, the IP_LOCAL_PORT_RANGE encoding, window
// placement and the parity switch.
#include "pool/port_window.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

namespace egress {
namespace {

constexpr std::uint64_t kMax64 = std::numeric_limits<std::uint64_t>::max();

// ---- PortRange ----

TEST(PortRange, DefaultIsEveryPort) {
    const PortRange r;
    EXPECT_EQ(r.lo, 1);
    EXPECT_EQ(r.hi, 65535);
    EXPECT_EQ(r.size(), 65535u);
}

TEST(PortRange, SizeCountsBothEnds) {
    EXPECT_EQ((PortRange{1, 1}.size()), 1u);
    EXPECT_EQ((PortRange{65535, 65535}.size()), 1u);
    EXPECT_EQ((PortRange{40000, 59999}.size()), 20000u);
    EXPECT_EQ((PortRange{32768, 60999}.size()), 28232u);
    EXPECT_EQ((PortRange{0, 65535}.size()), 65536u);  // no 16-bit overflow
}

TEST(PortRange, ContainsIsInclusive) {
    const PortRange r{1000, 2000};
    EXPECT_FALSE(r.contains(999));
    EXPECT_TRUE(r.contains(1000));
    EXPECT_TRUE(r.contains(1500));
    EXPECT_TRUE(r.contains(2000));
    EXPECT_FALSE(r.contains(2001));
    EXPECT_TRUE((PortRange{65535, 65535}.contains(65535)));
    EXPECT_FALSE((PortRange{65535, 65535}.contains(65534)));
    EXPECT_TRUE((PortRange{1, 1}.contains(1)));
    EXPECT_FALSE((PortRange{1, 1}.contains(0)));
}

TEST(PortRange, OverlapsIsSymmetricAndInclusive) {
    const PortRange a{100, 199};
    for (const auto& [b, want] : std::vector<std::pair<PortRange, bool>>{
             {{1, 99}, false},
             {{1, 100}, true},
             {{199, 300}, true},
             {{200, 300}, false},
             {{150, 150}, true},
             {{1, 65535}, true},
             {{100, 199}, true},
         }) {
        EXPECT_EQ(a.overlaps(b), want) << to_string(b);
        EXPECT_EQ(b.overlaps(a), want) << to_string(b);
    }
}

// ---- parse_port_range / to_string ----

TEST(ParsePortRange, RangesAndSinglePorts) {
    EXPECT_EQ(parse_port_range("40000-59999"), (PortRange{40000, 59999}));
    EXPECT_EQ(parse_port_range("1-65535"), (PortRange{1, 65535}));
    EXPECT_EQ(parse_port_range("443"), (PortRange{443, 443}));
    EXPECT_EQ(parse_port_range("1"), (PortRange{1, 1}));
    EXPECT_EQ(parse_port_range("65535"), (PortRange{65535, 65535}));
    EXPECT_EQ(parse_port_range("5-5"), (PortRange{5, 5}));
    EXPECT_EQ(parse_port_range("65535-65535"), (PortRange{65535, 65535}));
    EXPECT_EQ(parse_port_range("1-1"), (PortRange{1, 1}));
}

TEST(ParsePortRange, Rejects) {
    for (const char* bad : {"", "0", "65536", "5-3", "a-b", "1-", "-1", "-", " 1", "1 ", "1 -2", "1- 2",
                            " 1-2", "1-2 ", "0-5", "1-65536", "0-0", "+1", "1-+2", "99999999999",
                            "1-99999999999", "1-2-3", "1--2", "0x10", "1.5", "1,2", "1:2", "\t80"}) {
        EXPECT_FALSE(parse_port_range(bad)) << '"' << bad << '"';
    }
}

TEST(PortRangeText, SinglePortHasNoDash) {
    EXPECT_EQ(to_string(PortRange{443, 443}), "443");
    EXPECT_EQ(to_string(PortRange{1, 65535}), "1-65535");
    EXPECT_EQ(to_string(PortRange{40000, 59999}), "40000-59999");
    EXPECT_EQ(to_string(PortRange{65535, 65535}), "65535");
}

TEST(PortRangeText, RoundTrips) {
    for (const PortRange r : {PortRange{1, 1}, PortRange{1, 2}, PortRange{1, 65535}, PortRange{65534, 65535},
                              PortRange{65535, 65535}, PortRange{32768, 60999}, PortRange{1024, 1024}}) {
        EXPECT_EQ(parse_port_range(to_string(r)), r) << to_string(r);
    }
}

// ---- encode_local_port_range ----

TEST(EncodeLocalPortRange, LowHalfIsLoHighHalfIsHi) {
    static_assert(encode_local_port_range(PortRange{1, 65535}) == 0xFFFF0001u);
    EXPECT_EQ(encode_local_port_range(PortRange{1, 1}), 0x00010001u);
    EXPECT_EQ(encode_local_port_range(PortRange{65535, 65535}), 0xFFFFFFFFu);
    EXPECT_EQ(encode_local_port_range(PortRange{1, 65535}), 0xFFFF0001u);
    EXPECT_EQ(encode_local_port_range(PortRange{0x1234, 0xABCD}), 0xABCD1234u);
    EXPECT_EQ(encode_local_port_range(PortRange{40000, 59999}), (59999u << 16) | 40000u);
    EXPECT_EQ(encode_local_port_range(PortRange{32768, 60999}), 0xEE478000u);
    EXPECT_EQ(encode_local_port_range(PortRange{0x00FF, 0xFF00}), 0xFF0000FFu);
}

TEST(EncodeLocalPortRange, DecodesBack) {
    for (const PortRange r : {PortRange{1, 1}, PortRange{255, 256}, PortRange{40000, 59999}, PortRange{65535, 65535}}) {
        const auto v = encode_local_port_range(r);
        EXPECT_EQ(v & 0xFFFFu, r.lo);
        EXPECT_EQ(v >> 16, r.hi);
    }
}

// ---- place_window ----

// Checks, for one (range, size), that every draw lands on a window of
// `size` ports inside the range whose lower bound is range.lo + draw % positions:
// a bijection from 0..positions-1 onto every position, wrapping modulo.
void expect_exhaustive_placement(const PortRange& range, std::uint32_t size) {
    SCOPED_TRACE(to_string(range) + " size " + std::to_string(size));
    const std::uint32_t effective = size == 0 ? 1 : size;
    ASSERT_LT(effective, range.size());
    const std::uint32_t positions = range.size() - effective + 1;
    std::vector<bool> seen(positions, false);
    for (std::uint64_t r = 0; r < positions; ++r) {
        const auto w = place_window(range, size, r);
        ASSERT_EQ(w.size(), effective) << r;
        ASSERT_GE(w.lo, range.lo) << r;
        ASSERT_LE(w.hi, range.hi) << r;
        ASSERT_EQ(w.lo, range.lo + r) << r;
        ASSERT_FALSE(seen[w.lo - range.lo]) << "position drawn twice at " << r;
        seen[w.lo - range.lo] = true;
    }
    // Every position was reached, and the draw wraps modulo `positions`.
    for (std::uint32_t i = 0; i < positions; ++i) ASSERT_TRUE(seen[i]) << i;
    EXPECT_EQ(place_window(range, size, positions), place_window(range, size, 0));
    EXPECT_EQ(place_window(range, size, positions + 1), place_window(range, size, 1));
    EXPECT_EQ(place_window(range, size, 7 * std::uint64_t{positions} + 3), place_window(range, size, 3 % positions));
    const auto top = place_window(range, size, kMax64);
    EXPECT_EQ(top.lo, range.lo + kMax64 % positions);
    EXPECT_EQ(top.size(), effective);
    // The last position ends exactly at the top of the range.
    EXPECT_EQ(place_window(range, size, positions - 1).hi, range.hi);
}

TEST(PlaceWindow, EveryPositionIsReachableExactlyOnce) {
    expect_exhaustive_placement({40000, 59999}, 500);
    expect_exhaustive_placement({40000, 59999}, 1000);
    expect_exhaustive_placement({32768, 60999}, 500);
    expect_exhaustive_placement({32768, 60999}, 28231);  // one less than the range: 2 positions
    expect_exhaustive_placement({1000, 1009}, 1);
    expect_exhaustive_placement({1000, 1009}, 9);
    expect_exhaustive_placement({1001, 1010}, 3);
    expect_exhaustive_placement({1, 2}, 1);
}

TEST(PlaceWindow, EdgesOfThePortSpace) {
    // No overflow at 1 and at 65535.
    expect_exhaustive_placement({1, 65535}, 1);
    expect_exhaustive_placement({1, 65535}, 500);
    expect_exhaustive_placement({1, 65535}, 65534);
    expect_exhaustive_placement({65000, 65535}, 100);
    expect_exhaustive_placement({65534, 65535}, 1);
    expect_exhaustive_placement({1, 100}, 99);
    EXPECT_EQ(place_window({1, 65535}, 1, 65534), (PortRange{65535, 65535}));
    EXPECT_EQ(place_window({1, 65535}, 1, 0), (PortRange{1, 1}));
    EXPECT_EQ(place_window({1, 65535}, 65534, 1), (PortRange{2, 65535}));
    EXPECT_EQ(place_window({65534, 65535}, 1, 1), (PortRange{65535, 65535}));
}

TEST(PlaceWindow, SizeZeroIsOnePort) {
    expect_exhaustive_placement({40000, 40099}, 0);
    for (std::uint64_t r : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{99}, std::uint64_t{12345}, kMax64})
        EXPECT_EQ(place_window({40000, 40099}, 0, r), place_window({40000, 40099}, 1, r)) << r;
    EXPECT_EQ(place_window({7, 7}, 0, 3), (PortRange{7, 7}));
}

TEST(PlaceWindow, WindowAsLargeAsTheRangeOrLargerIsTheRange) {
    for (const PortRange range : {PortRange{40000, 59999}, PortRange{1, 65535}, PortRange{65535, 65535},
                                  PortRange{1, 1}, PortRange{1000, 1001}}) {
        for (const std::uint32_t size : {range.size(), range.size() + 1, std::uint32_t{65535}, std::uint32_t{65536},
                                         std::numeric_limits<std::uint32_t>::max()}) {
            if (size < range.size()) continue;
            for (std::uint64_t r : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{65535}, kMax64})
                EXPECT_EQ(place_window(range, size, r), range) << to_string(range) << " size " << size << " r " << r;
        }
    }
}

TEST(PlaceWindow, SinglePortRanges) {
    for (const std::uint16_t p : {std::uint16_t{1}, std::uint16_t{2}, std::uint16_t{443}, std::uint16_t{65535}}) {
        const PortRange range{p, p};
        for (const std::uint32_t size : {0u, 1u, 2u, 500u})
            for (std::uint64_t r : {std::uint64_t{0}, std::uint64_t{1}, kMax64})
                EXPECT_EQ(place_window(range, size, r), range) << p << " size " << size;
    }
}

// ---- parity_switched ----

TEST(ParitySwitched, EvenLowerBound) {
    const PortRange even{40000, 59999};
    EXPECT_FALSE(parity_switched(40000, even));
    EXPECT_TRUE(parity_switched(40001, even));
    EXPECT_FALSE(parity_switched(59998, even));
    EXPECT_TRUE(parity_switched(59999, even));
    static_assert(parity_switched(32769, PortRange{32768, 60999}));
    static_assert(!parity_switched(32770, PortRange{32768, 60999}));
}

TEST(ParitySwitched, OddLowerBound) {
    const PortRange odd{40001, 60000};
    EXPECT_FALSE(parity_switched(40001, odd));
    EXPECT_TRUE(parity_switched(40002, odd));
    EXPECT_FALSE(parity_switched(59999, odd));
    EXPECT_TRUE(parity_switched(60000, odd));
}

TEST(ParitySwitched, EveryPortAgainstBothParities) {
    for (std::uint32_t port = 1; port <= 65535; ++port) {
        const auto p = static_cast<std::uint16_t>(port);
        ASSERT_EQ(parity_switched(p, PortRange{2, 65535}), port % 2 == 1) << port;
        ASSERT_EQ(parity_switched(p, PortRange{1, 65535}), port % 2 == 0) << port;
    }
    // Only the lower bound matters, not the upper.
    EXPECT_EQ(parity_switched(101, PortRange{100, 100}), parity_switched(101, PortRange{100, 65535}));
    EXPECT_TRUE(parity_switched(65535, PortRange{65534, 65535}));
    EXPECT_FALSE(parity_switched(65535, PortRange{65535, 65535}));
}

}  // namespace
}  // namespace egress
