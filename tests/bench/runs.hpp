// Single runs of the scenarios, for other scenarios (plot) to reuse. Each
// enters a private network namespace unless --no-netns: call it in_child.
#pragma once

#include <cstdint>
#include <string>

#include "common.hpp"
#include "worker.hpp"

namespace egress::bench {

// One storm (storm.cpp) in `mode` (`strategy` for broker). With `series`, the
// JSON also holds "series": [latency_ms, odd] per successful connect, in
// completion order across workers. `threads` > 0 sets egressd's loops (and
// runs at least that many workers, one client connection each).
json storm_once(const Args& a, Mode mode, const std::string& strategy, bool series = false,
                std::uint32_t threads = 0);

// One hol level (hol.cpp). With `series`, "series" holds every live connect's
// latency in ms, in request order.
json hol_once(const Args& a, std::uint32_t pending, bool series = false);

}  // namespace egress::bench
