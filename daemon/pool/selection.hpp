// Source-address selection and the connect attempt plan. Pure: the random
// draws and the load figures are passed in.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "pool/port_window.hpp"

namespace egress {

enum class Selection { round_robin, random, least_loaded };
enum class PortStrategy { automatic, window, kernel_range, userspace_random, kernel_default };

std::optional<Selection> parse_selection(std::string_view s);
std::optional<PortStrategy> parse_port_strategy(std::string_view s);
const char* to_string(Selection s);
const char* to_string(PortStrategy s);

// The order in which to try a pool's `n` sources: every index once, the
// chosen one first, then the others in rotation after it.
//  - round_robin starts at `turn % n` (the caller advances `turn` per connect);
//  - random starts at `random % n`;
//  - least_loaded starts at the source with the smallest `load`, ties going
//    to the first in rotation from `turn`, and tries the rest by load.
std::vector<std::size_t> source_order(Selection sel, std::size_t n, std::uint64_t turn, std::uint64_t random,
                                      std::span<const std::uint32_t> load);

// A kernel release, major.minor (from uname, probe_kernel()).
struct KernelVersion {
    int major = 0, minor = 0;
    auto operator<=>(const KernelVersion&) const = default;
};

// Whether connect()'s port search, for a try made with `strategy` on
// `kernel`, scans ports of the range's lower-bound parity first, so that a
// port of the other parity means that half was exhausted (a parity switch):
//  - kernel-default (no per-socket range): on every kernel;
//  - window, kernel-range (IP_LOCAL_PORT_RANGE): only before 6.8; from 6.8
//    ("tcp/dccp: change source port selection at connect() time") a socket
//    with its own range gets one contiguous scan, either parity half the time;
//  - userspace-random binds an explicit port: there is no kernel search.
// `automatic` is resolved before any connect: false.
constexpr bool port_search_prefers_parity(PortStrategy strategy, KernelVersion kernel) {
    switch (strategy) {
    case PortStrategy::kernel_default: return true;
    case PortStrategy::window:
    case PortStrategy::kernel_range: return kernel < KernelVersion{6, 8};
    case PortStrategy::userspace_random:
    case PortStrategy::automatic: return false;
    }
    return false;
}

struct PortPolicy {
    PortStrategy strategy = PortStrategy::window;  // never `automatic` here: resolved at start
    PortRange range{32768, 60999};                 // the effective range
    KernelVersion kernel;                          // the running kernel: does port parity mean anything
    std::uint32_t window_size = 500;
    std::uint32_t max_window_retries = 8;
    std::uint32_t userspace_max_attempts = 16;
};

// One try: on which source (a slot in the source order), with which
// IP_LOCAL_PORT_RANGE (if any) or which explicit port to bind (if any).
struct Attempt {
    std::size_t slot = 0;
    std::optional<PortRange> local_range;  // IP_LOCAL_PORT_RANGE for this try
    std::uint16_t bind_port = 0;           // userspace-random: bind this port
    bool retry_on_source = false;          // not the first try on this source
};

// Yields the tries of one connect, in order. After a try fails with
// EADDRNOTAVAIL (or EADDRINUSE from an explicit bind), ask for the next:
//  - window: random windows (1 + max_window_retries), then the whole range
//    once, then the next source;
//  - kernel-range: the whole range once per source;
//  - userspace-random: up to userspace_max_attempts random ports per source;
//  - kernel-default: one plain try per source.
// `sources` 0 means the kernel picks the address: one slot.
class AttemptPlan {
public:
    AttemptPlan(const PortPolicy& policy, std::size_t sources);
    // nullopt: every try is spent.
    std::optional<Attempt> next(std::uint64_t random);

private:
    const PortPolicy& policy_;
    std::size_t slots_;
    std::size_t slot_ = 0;
    std::uint32_t on_slot_ = 0;  // tries made on the current slot
};

// The range the kernel searched for a try: its window, else the whole range.
inline PortRange range_in_effect(const Attempt& a, const PortPolicy& p) { return a.local_range.value_or(p.range); }

}  // namespace egress
