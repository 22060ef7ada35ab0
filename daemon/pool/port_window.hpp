// Port ranges and randomized port windows. Pure: values in, values out.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace egress {

// An inclusive range of ports, lo <= hi.
struct PortRange {
    std::uint16_t lo = 1;
    std::uint16_t hi = 65535;

    std::uint32_t size() const { return std::uint32_t{hi} - lo + 1; }
    bool contains(std::uint16_t p) const { return p >= lo && p <= hi; }
    bool overlaps(const PortRange& o) const { return lo <= o.hi && o.lo <= hi; }
    bool operator==(const PortRange&) const = default;
};

// "40000-59999" or a single port "443"; ports 1-65535, lo <= hi.
std::optional<PortRange> parse_port_range(std::string_view text);
std::string to_string(const PortRange& r);

// The IP_LOCAL_PORT_RANGE option value: low 16 bits lo, high 16 bits hi.
constexpr std::uint32_t encode_local_port_range(const PortRange& r) {
    return (std::uint32_t{r.hi} << 16) | r.lo;
}

// A window of `size` consecutive ports inside `range`, its first port drawn
// uniformly from every position where it fits (`random` is any 64-bit draw).
// A window as large as the range, or larger, is the whole range; size 0 is 1.
PortRange place_window(const PortRange& range, std::uint32_t size, std::uint64_t random);

// The parity switch, where the kernel's search has a parity preference
// (port_search_prefers_parity): it scans ports of the same parity as the
// lower bound of the range first; a port of the other parity means that half
// was exhausted and this connect took the slow path.
constexpr bool parity_switched(std::uint16_t port, const PortRange& in_effect) {
    return (port & 1) != (in_effect.lo & 1);
}

}  // namespace egress
