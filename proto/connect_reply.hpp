// What egressd says about a connect: the CONNECT_REPLY's fields as values.
// Part of libegress's public API (installed), and of the codec.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "endpoint.hpp"

namespace egress::proto {

// status 0: success, and local/remote are set. Otherwise an errno with its
// name and a reason; the descriptive fields may still be set where known.
struct ConnectReply {
    std::uint32_t status = 0;
    std::string error_name;
    std::string message;
    std::optional<Endpoint> local;
    std::optional<Endpoint> remote;
    std::string pool;
    std::uint32_t attempts = 0;
    std::uint64_t connect_us = 0;
    // Only in an adopt-mode reply with status EINPROGRESS: the deadline egressd
    // applied (after its default and its maximum), so the program knows how
    // long the connect may still take. 0: absent.
    std::uint32_t timeout_ms = 0;
};

}  // namespace egress::proto
