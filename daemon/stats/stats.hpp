// Load figures the event loop checks its limits against. Owned by main,
// passed down by reference; the loop is the only writer. Everything a
// dashboard needs is in metrics/metrics.hpp.
#pragma once

#include <cstdint>

namespace egress {

struct Stats {
    std::uint32_t clients_connected = 0;
    std::uint32_t inflight = 0;  // connects in flight, all clients
};

}  // namespace egress
