#include "selection.hpp"

#include <algorithm>
#include <numeric>

namespace egress {

std::optional<Selection> parse_selection(std::string_view s) {
    if (s == "round-robin") return Selection::round_robin;
    if (s == "random") return Selection::random;
    if (s == "least-loaded") return Selection::least_loaded;
    return std::nullopt;
}

std::optional<PortStrategy> parse_port_strategy(std::string_view s) {
    if (s == "auto") return PortStrategy::automatic;
    if (s == "window") return PortStrategy::window;
    if (s == "kernel-range") return PortStrategy::kernel_range;
    if (s == "userspace-random") return PortStrategy::userspace_random;
    if (s == "kernel-default") return PortStrategy::kernel_default;
    return std::nullopt;
}

const char* to_string(Selection s) {
    switch (s) {
    case Selection::round_robin: return "round-robin";
    case Selection::random: return "random";
    case Selection::least_loaded: return "least-loaded";
    }
    return "?";
}

const char* to_string(PortStrategy s) {
    switch (s) {
    case PortStrategy::automatic: return "auto";
    case PortStrategy::window: return "window";
    case PortStrategy::kernel_range: return "kernel-range";
    case PortStrategy::userspace_random: return "userspace-random";
    case PortStrategy::kernel_default: return "kernel-default";
    }
    return "?";
}

std::vector<std::size_t> source_order(Selection sel, std::size_t n, std::uint64_t turn, std::uint64_t random,
                                      std::span<const std::uint32_t> load) {
    std::vector<std::size_t> order(n);
    if (n == 0) return order;
    const std::size_t start = sel == Selection::random ? random % n : turn % n;
    for (std::size_t i = 0; i < n; ++i) order[i] = (start + i) % n;
    if (sel == Selection::least_loaded && load.size() == n)
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return load[a] < load[b]; });
    return order;
}

AttemptPlan::AttemptPlan(const PortPolicy& policy, std::size_t sources)
    : policy_(policy), slots_(std::max<std::size_t>(sources, 1)) {}

std::optional<Attempt> AttemptPlan::next(std::uint64_t random) {
    for (; slot_ < slots_; ++slot_, on_slot_ = 0) {
        Attempt a;
        a.slot = slot_;
        a.retry_on_source = on_slot_ > 0;
        const auto n = on_slot_;
        switch (policy_.strategy) {
        case PortStrategy::window:
            if (policy_.window_size >= policy_.range.size() && n > 0) continue;  // the window was the range
            if (n <= policy_.max_window_retries) {
                a.local_range = place_window(policy_.range, policy_.window_size, random);
            } else if (n == policy_.max_window_retries + 1 && policy_.window_size < policy_.range.size()) {
                a.local_range = policy_.range;  // the whole range, once
            } else {
                continue;
            }
            break;
        case PortStrategy::kernel_range:
            if (n > 0) continue;
            a.local_range = policy_.range;
            break;
        case PortStrategy::userspace_random:
            if (n >= policy_.userspace_max_attempts) continue;
            a.bind_port = static_cast<std::uint16_t>(policy_.range.lo + random % policy_.range.size());
            break;
        case PortStrategy::kernel_default:
        case PortStrategy::automatic:
            if (n > 0) continue;
            break;
        }
        ++on_slot_;
        return a;
    }
    return std::nullopt;
}

}  // namespace egress
