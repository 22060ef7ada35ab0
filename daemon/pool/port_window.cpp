#include "port_window.hpp"

#include <charconv>

namespace egress {
namespace {

std::optional<std::uint16_t> parse_port(std::string_view s) {
    unsigned v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size() || v == 0 || v > 65535) return std::nullopt;
    return static_cast<std::uint16_t>(v);
}

}  // namespace

std::optional<PortRange> parse_port_range(std::string_view text) {
    const auto dash = text.find('-');
    const auto lo = parse_port(text.substr(0, dash));
    const auto hi = dash == std::string_view::npos ? lo : parse_port(text.substr(dash + 1));
    if (!lo || !hi || *lo > *hi) return std::nullopt;
    return PortRange{*lo, *hi};
}

std::string to_string(const PortRange& r) {
    return r.lo == r.hi ? std::to_string(r.lo) : std::to_string(r.lo) + "-" + std::to_string(r.hi);
}

PortRange place_window(const PortRange& range, std::uint32_t size, std::uint64_t random) {
    if (size == 0) size = 1;
    if (size >= range.size()) return range;
    const std::uint32_t positions = range.size() - size + 1;
    const auto lo = static_cast<std::uint16_t>(range.lo + random % positions);
    return PortRange{lo, static_cast<std::uint16_t>(lo + size - 1)};
}

}  // namespace egress
