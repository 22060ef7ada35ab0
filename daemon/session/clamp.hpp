// What a reply says about a deadline that was shortened (connect.max_timeout_ms).
#pragma once

#include <cerrno>
#include <cstdint>
#include <string>

#include "connect_reply.hpp"

namespace egress {

// A request that asked for more than connect.max_timeout_ms was served with
// the maximum: its reply carries the timeout applied (TIMEOUT_MS), and a
// timeout's message names both numbers. `requested` 0: not clamped.
inline void report_clamp(proto::ConnectReply& rep, std::uint32_t requested, std::uint32_t applied) {
    if (!requested) return;
    rep.timeout_ms = applied;
    if (rep.status == ETIMEDOUT)
        rep.message += " (requested " + std::to_string(requested) + " ms, clamped to connect.max_timeout_ms)";
}

}  // namespace egress
