// The quotas a client rule puts on the peers it governs (config: a rule's
// "limits"). Plain values; quota.hpp enforces them.
#pragma once

#include <cstdint>
#include <optional>

#include "quota/token_bucket.hpp"

namespace egress {

// Each unset: no limit from the rule (the global `limits` still apply).
struct QuotaLimits {
    std::optional<std::uint32_t> max_inflight_per_connection;
    std::optional<std::uint32_t> max_inflight_per_uid;
    std::optional<RateLimit> rate;  // requests_per_second and burst, per uid
    std::optional<std::uint32_t> max_connections_per_uid;
};

}  // namespace egress
